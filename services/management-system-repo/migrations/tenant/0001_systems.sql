-- Tenant schema tenant_<slug> in management_system_repository: management systems, their
-- versions and the relations between them. Runs as the tenant's NOLOGIN owner role with
-- search_path set to the tenant schema; every row carries tenant_id under forced RLS.

CREATE TABLE systems (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    name          text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    display_name  text        NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    description   text        NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    -- JSON Schema the system's configurations (MongoDB config_db) are validated against.
    config_schema jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(config_schema) = 'object'),
    attributes    jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX systems_tenant_name_key ON systems (tenant_id, name);
CREATE INDEX systems_tenant_created_idx ON systems (tenant_id, created_at, id);

CREATE TABLE system_versions (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    system_id   uuid        NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    version     text        NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    notes       text        NOT NULL DEFAULT '' CHECK (length(notes) <= 2000),
    released_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX system_versions_tenant_system_version_key ON system_versions (tenant_id, system_id, version);

CREATE TABLE system_relations (
    tenant_id  uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    source_id  uuid        NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    target_id  uuid        NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('depends_on', 'manages', 'integrates_with', 'replaces')),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, source_id, target_id, kind),
    CHECK (source_id <> target_id)
);
CREATE INDEX system_relations_tenant_target_idx ON system_relations (tenant_id, target_id);

ALTER TABLE systems ENABLE ROW LEVEL SECURITY;
ALTER TABLE systems FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON systems
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE system_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE system_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON system_versions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE system_relations ENABLE ROW LEVEL SECURITY;
ALTER TABLE system_relations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON system_relations
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

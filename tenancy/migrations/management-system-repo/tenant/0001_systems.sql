-- Tenant schema tenant_<slug> in management_system_repository: management systems, their
-- versions and the relations between them. Runs as the tenant's NOLOGIN owner role with
-- search_path set to the tenant schema; every row carries tenant_id under forced RLS.
--
-- References between tables are composite (tenant_id, id): a version or relation row, whose
-- tenant_id row-level security forces to the session's tenant, can only point at a system of
-- that same tenant, even if a future change moved these tables into one shared schema.

CREATE TABLE systems (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    name          text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    kind          text        NOT NULL DEFAULT 'application' CHECK (kind ~ '^[a-z][a-z0-9_-]{0,62}$'),
    display_name  text        NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    description   text        NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    -- JSON Schema the system's configurations (MongoDB config_db) are validated against.
    config_schema jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(config_schema) = 'object'),
    attributes    jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    -- Optimistic concurrency: bumped by every update, served as the ETag.
    revision      bigint      NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT systems_tenant_id_key UNIQUE (tenant_id, id)
);
-- Name is unique per tenant (POST/PATCH conflicts).
CREATE UNIQUE INDEX systems_tenant_name_key ON systems (tenant_id, name);
-- Keyset pagination of GET /v1/systems (and ?kind= filter on top of it).
CREATE INDEX systems_tenant_created_idx ON systems (tenant_id, created_at, id);

CREATE TABLE system_versions (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    system_id   uuid        NOT NULL,
    version     text        NOT NULL CHECK (length(version) BETWEEN 1 AND 64
                                            AND version ~ '^[0-9]+\.[0-9]+(\.[0-9]+)?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'),
    notes       text        NOT NULL DEFAULT '' CHECK (length(notes) <= 10000),
    status      text        NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'released', 'deprecated')),
    released_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT system_versions_system_fkey FOREIGN KEY (tenant_id, system_id)
        REFERENCES systems (tenant_id, id) ON DELETE CASCADE,
    CHECK (status = 'draft' OR released_at IS NOT NULL)
);
-- Version string unique per system.
CREATE UNIQUE INDEX system_versions_tenant_system_version_key ON system_versions (tenant_id, system_id, version);
-- Keyset pagination of GET /v1/systems/{id}/versions.
CREATE INDEX system_versions_tenant_system_created_idx ON system_versions (tenant_id, system_id, created_at, id);

CREATE TABLE system_relations (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    source_id   uuid        NOT NULL,
    target_id   uuid        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('depends_on', 'integrates_with', 'replaces', 'manages', 'part_of')),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT system_relations_source_fkey FOREIGN KEY (tenant_id, source_id)
        REFERENCES systems (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT system_relations_target_fkey FOREIGN KEY (tenant_id, target_id)
        REFERENCES systems (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT system_relations_no_self CHECK (source_id <> target_id)
);
-- One edge of a kind between two systems (duplicates are 409).
CREATE UNIQUE INDEX system_relations_tenant_edge_key ON system_relations (tenant_id, source_id, target_id, kind);
-- Keyset pagination of a system's outgoing and incoming relations.
CREATE INDEX system_relations_tenant_source_created_idx ON system_relations (tenant_id, source_id, created_at, id);
CREATE INDEX system_relations_tenant_target_created_idx ON system_relations (tenant_id, target_id, created_at, id);

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

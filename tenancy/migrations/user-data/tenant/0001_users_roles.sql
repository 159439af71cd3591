-- Tenant schema tenant_<slug>: the tenant's users, roles and memberships.
-- Runs as the tenant's NOLOGIN owner role with search_path set to the tenant schema.
-- Schema separation is the first wall; every row still carries tenant_id under forced
-- row-level security, so a query that names another tenant's schema finds nothing.

CREATE TABLE users (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    email        text        NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    display_name text        NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    status       text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'invited')),
    attributes   jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Email is unique per tenant (stored lowercased).
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, email);
-- Keyset pagination order.
CREATE INDEX users_tenant_created_idx ON users (tenant_id, created_at, id);

CREATE TABLE roles (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    name        text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.:-]{0,62}$'),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    permissions text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX roles_tenant_name_key ON roles (tenant_id, name);
CREATE INDEX roles_tenant_created_idx ON roles (tenant_id, created_at, id);

CREATE TABLE user_roles (
    tenant_id  uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id    uuid        NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, user_id, role_id)
);
CREATE INDEX user_roles_tenant_role_idx ON user_roles (tenant_id, role_id);

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON roles
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE user_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_roles
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

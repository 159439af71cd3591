-- Shared table: the audit trail of every change, all tenants in one table.
-- Isolation: tenant_id NOT NULL, row-level security enabled and forced (the owner too), one
-- policy for all commands on the transaction-local app.tenant_id; indexes lead with tenant_id.
CREATE TABLE audit_events (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('create', 'update', 'delete', 'grant', 'revoke')),
    entity      text        NOT NULL CHECK (entity IN ('user', 'role')),
    entity_id   uuid        NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_events_tenant_time_idx ON audit_events (tenant_id, occurred_at, id);
CREATE INDEX audit_events_tenant_entity_idx ON audit_events (tenant_id, entity_id);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

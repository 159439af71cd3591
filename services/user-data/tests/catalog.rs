//! Catalog lint of a provisioned `system_users` database: the tenancy contract as the catalogs
//! see it. The second half breaks the catalog one way at a time and checks the lint notices,
//! so these tests can fail when isolation breaks.

#![allow(clippy::unwrap_used)]

mod support;

use support::spawn_app;

/// The tables the lint must inspect: the shared ones and every tenant's, as `pg_tables` sees
/// them.
const CONTRACT_TABLES: &str = "(schemaname = 'prismicx' OR schemaname LIKE 'tenant\\_%') AND tablename <> 'schema_migrations'";

#[tokio::test]
async fn provisioned_database_keeps_the_contract() {
    let app = spawn_app().await;
    // Every shared and tenant table was inspected: 1 shared + 3 per tenant × 2 tenants; also
    // after provisioning a tenant again.
    let schema = &prismicx_user_data::migrations::SCHEMA;
    app.expect_catalog_contract(schema, CONTRACT_TABLES, 7)
        .await;
}

// Each case breaks a fresh database's catalog one way and expects the lint to notice.
#[rustfmt::skip]
prismicx_harness::lint_catches! { spawn_app;
    dropping_a_policy_is_caught => [("DROP POLICY tenant_isolation ON prismicx.audit_events", "prismicx.audit_events", "no policy"), ("DROP POLICY tenant_isolation ON {schema0}.users", "{ident0}.users", "no policy")];
    a_policy_that_ignores_the_tenant_is_caught => [("DROP POLICY tenant_isolation ON prismicx.audit_events; CREATE POLICY open ON prismicx.audit_events USING (true)", "prismicx.audit_events", "no policy")];
    unforced_or_disabled_rls_is_caught => [("ALTER TABLE prismicx.audit_events NO FORCE ROW LEVEL SECURITY", "prismicx.audit_events", "not forced"), ("ALTER TABLE {schema1}.roles DISABLE ROW LEVEL SECURITY", "{ident1}.roles", "not enabled")];
    missing_tenant_index_or_nullable_tenant_id_is_caught => [("DROP INDEX prismicx.audit_events_tenant_time_idx; DROP INDEX prismicx.audit_events_tenant_entity_idx", "prismicx.audit_events", "no index leads with tenant_id"), ("ALTER TABLE prismicx.audit_events ALTER COLUMN tenant_id DROP NOT NULL", "prismicx.audit_events", "nullable")];
    an_unpinned_tenant_table_is_caught => [("ALTER TABLE {schema0}.roles DROP CONSTRAINT tenant_id_is_this_tenant", "{ident0}.roles", "pinning tenant_id")];
    a_login_role_that_bypasses_or_owns_is_caught => [("ALTER ROLE \"{login}\" BYPASSRLS", "{login}", "BYPASSRLS"), ("ALTER TABLE prismicx.audit_events OWNER TO \"{login}\"", "{login}", "owns"), ("GRANT \"{ident0}_owner\" TO \"{login}\"", "{login}", "owns"), ("ALTER ROLE \"{ident0}_owner\" LOGIN", "{ident0}.users", "can log in")];
}

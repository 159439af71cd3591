//! Catalog lint of a provisioned `management_system_repository` database: the tenancy contract
//! (RLS enabled + forced, tenant policies, tenant_id NOT NULL and pinned, indexes leading with
//! tenant_id, a login role that owns nothing) as the catalogs see it; then the catalog is broken
//! one way at a time to show the lint notices, and the database itself refuses cross-tenant
//! references.

#![allow(clippy::unwrap_used)]

mod support;

use prismicx_service_common::pg::query_scalar;
use support::spawn_app;

#[tokio::test]
async fn provisioned_database_keeps_the_contract() {
    let app = spawn_app().await;
    // Every tenant table was inspected: 3 per tenant × 2 tenants, no shared tables; also after
    // provisioning a tenant again.
    let inspected = "schemaname LIKE 'tenant\\_%' AND tablename <> 'schema_migrations'";
    let schema = &prismicx_management_system_repo::migrations::SCHEMA;
    app.expect_catalog_contract(schema, inspected, 6).await;
    let mut admin = app.admin().await;
    // Every index of every tenant table leads with tenant_id (the primary keys on id aside).
    let stray: Vec<String> = query_scalar::<String>(
        "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] \
         WHERE n.nspname LIKE 'tenant\\_%' AND t.relname <> 'schema_migrations' \
           AND a.attname <> 'tenant_id' AND NOT x.indisprimary",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(stray, Vec::<String>::new());
}

// Each case breaks a fresh database's catalog one way and expects the lint to notice.
#[rustfmt::skip]
prismicx_harness::lint_catches! { spawn_app;
    a_dropped_policy_is_caught => [("DROP POLICY tenant_isolation ON {schema0}.system_relations", "{ident0}.system_relations", "no policy")];
    unforced_or_disabled_rls_is_caught => [("ALTER TABLE {schema1}.system_versions NO FORCE ROW LEVEL SECURITY", "{ident1}.system_versions", "not forced"), ("ALTER TABLE {schema0}.systems DISABLE ROW LEVEL SECURITY", "{ident0}.systems", "not enabled")];
    an_unpinned_table_or_a_login_role_that_bypasses_is_caught => [("ALTER TABLE {schema0}.systems DROP CONSTRAINT tenant_id_is_this_tenant", "{ident0}.systems", "pinning tenant_id"), ("ALTER ROLE \"{login}\" BYPASSRLS", "{login}", "BYPASSRLS")];
}

//! Catalog lint of a provisioned `management_system_repository` database: the tenancy contract
//! (RLS enabled + forced, tenant policies, tenant_id NOT NULL and pinned, indexes leading with
//! tenant_id, a login role that owns nothing) as the catalogs see it; then the catalog is broken
//! one way at a time to show the lint notices, and the database itself refuses cross-tenant
//! references.

#![allow(clippy::unwrap_used)]

mod support;

use prismicx_service_common::pg::lint::{lint_database, Violation};
use prismicx_service_common::pg::migrate::DatabaseRoles;
use prismicx_service_common::pg::query_scalar;
use sqlx::Executor;
use support::{spawn_app, TestApp};

async fn lint(app: &TestApp) -> Vec<Violation> {
    let roles = vec![app.login.clone(), DatabaseRoles::for_database(&app.db).app];
    let mut admin = app.admin().await;
    lint_database(&mut admin, &roles).await.unwrap()
}

fn object(app: &TestApp, i: usize, table: &str) -> String {
    format!("{}.{table}", app.tenant(i).placement.slug.pg_schema())
}

#[tokio::test]
async fn provisioned_database_keeps_the_contract() {
    let app = spawn_app().await;
    assert_eq!(lint(&app).await, vec![]);
    // Every tenant table was inspected: 3 per tenant × 2 tenants, no shared tables.
    let mut admin = app.admin().await;
    let n: i64 = query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname LIKE 'tenant\\_%' AND tablename <> 'schema_migrations'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(n, 6);
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

/// Applies `sql`, then expects a violation on `object` whose text contains `needle`.
async fn breaks(
    sql: impl Fn(&TestApp) -> String,
    object: impl Fn(&TestApp) -> String,
    needle: &str,
) {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    admin.execute(sql(&app).as_str()).await.unwrap();
    let found = lint(&app).await;
    let object = object(&app);
    assert!(
        found
            .iter()
            .any(|v| v.object == object && v.problem.contains(needle)),
        "expected `{needle}` on {object}, got {found:?}"
    );
}

#[tokio::test]
async fn a_dropped_policy_is_caught() {
    breaks(
        |a| {
            format!(
                "DROP POLICY tenant_isolation ON {}.system_relations",
                a.schema(0)
            )
        },
        |a| object(a, 0, "system_relations"),
        "no policy",
    )
    .await;
}

#[tokio::test]
async fn unforced_or_disabled_rls_is_caught() {
    breaks(
        |a| {
            format!(
                "ALTER TABLE {}.system_versions NO FORCE ROW LEVEL SECURITY",
                a.schema(1)
            )
        },
        |a| object(a, 1, "system_versions"),
        "not forced",
    )
    .await;
    breaks(
        |a| {
            format!(
                "ALTER TABLE {}.systems DISABLE ROW LEVEL SECURITY",
                a.schema(0)
            )
        },
        |a| object(a, 0, "systems"),
        "not enabled",
    )
    .await;
}

#[tokio::test]
async fn an_unpinned_table_or_a_login_role_that_bypasses_is_caught() {
    breaks(
        |a| {
            format!(
                "ALTER TABLE {}.systems DROP CONSTRAINT tenant_id_is_this_tenant",
                a.schema(0)
            )
        },
        |a| object(a, 0, "systems"),
        "pinning tenant_id",
    )
    .await;
    breaks(
        |a| format!("ALTER ROLE \"{}\" BYPASSRLS", a.login),
        |a| a.login.clone(),
        "BYPASSRLS",
    )
    .await;
}

#[tokio::test]
async fn provisioning_is_idempotent_and_versions_are_visible() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let slug = &app.tenant(0).placement.slug;
    let schema = &prismicx_management_system_repo::migrations::SCHEMA;
    let v = prismicx_service_common::pg::migrate::provision_tenant(
        &mut admin,
        schema,
        slug,
        app.tenant(0).id(),
    )
    .await
    .unwrap();
    assert_eq!(v, schema.tenant_version());
    assert_eq!(
        prismicx_service_common::pg::migrate::tenant_version(&mut admin, slug)
            .await
            .unwrap(),
        Some(v)
    );
    assert_eq!(lint(&app).await, vec![]);
}

//! Catalog lint of a provisioned `system_users` database: the tenancy contract as the catalogs
//! see it. The second half breaks the catalog one way at a time and checks the lint notices,
//! so these tests can fail when isolation breaks.

#![allow(clippy::unwrap_used)]

mod support;

use prismicx_service_common::pg::lint::{lint_database, Violation};
use prismicx_service_common::pg::migrate::DatabaseRoles;
use sqlx::Executor;
use support::{spawn_app, TestApp};

async fn lint(app: &TestApp) -> Vec<Violation> {
    let roles = vec![app.login.clone(), DatabaseRoles::for_database(&app.db).app];
    let mut admin = app.admin().await;
    lint_database(&mut admin, &roles).await.unwrap()
}

fn tenant_schema(app: &TestApp, i: usize) -> String {
    format!("\"tenant_{}\"", app.tenant(i).slug.replace('-', "_"))
}

#[tokio::test]
async fn provisioned_database_keeps_the_contract() {
    let app = spawn_app().await;
    assert_eq!(lint(&app).await, vec![]);
    // Every shared and tenant table was inspected: 1 shared + 3 per tenant × 2 tenants.
    let mut admin = app.admin().await;
    let n: i64 = prismicx_service_common::pg::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE (schemaname = 'prismicx' OR schemaname LIKE 'tenant\\_%') AND tablename <> 'schema_migrations'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(n, 7);
}

/// Applies `breakage`, then expects a violation on `object` whose text contains `needle`.
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
async fn dropping_a_policy_is_caught() {
    breaks(
        |_| "DROP POLICY tenant_isolation ON prismicx.audit_events".into(),
        |_| "prismicx.audit_events".into(),
        "no policy",
    )
    .await;
    breaks(
        |a| {
            format!(
                "DROP POLICY tenant_isolation ON {}.users",
                tenant_schema(a, 0)
            )
        },
        |a| format!("tenant_{}.users", a.tenant(0).slug.replace('-', "_")),
        "no policy",
    )
    .await;
}

#[tokio::test]
async fn a_policy_that_ignores_the_tenant_is_caught() {
    breaks(
        |_| "DROP POLICY tenant_isolation ON prismicx.audit_events; CREATE POLICY open ON prismicx.audit_events USING (true)".into(),
        |_| "prismicx.audit_events".into(),
        "no policy",
    )
    .await;
}

#[tokio::test]
async fn unforced_or_disabled_rls_is_caught() {
    breaks(
        |_| "ALTER TABLE prismicx.audit_events NO FORCE ROW LEVEL SECURITY".into(),
        |_| "prismicx.audit_events".into(),
        "not forced",
    )
    .await;
    breaks(
        |a| {
            format!(
                "ALTER TABLE {}.roles DISABLE ROW LEVEL SECURITY",
                tenant_schema(a, 1)
            )
        },
        |a| format!("tenant_{}.roles", a.tenant(1).slug.replace('-', "_")),
        "not enabled",
    )
    .await;
}

#[tokio::test]
async fn missing_tenant_index_or_nullable_tenant_id_is_caught() {
    breaks(
        |_| "DROP INDEX prismicx.audit_events_tenant_time_idx; DROP INDEX prismicx.audit_events_tenant_entity_idx".into(),
        |_| "prismicx.audit_events".into(),
        "no index leads with tenant_id",
    )
    .await;
    breaks(
        |_| "ALTER TABLE prismicx.audit_events ALTER COLUMN tenant_id DROP NOT NULL".into(),
        |_| "prismicx.audit_events".into(),
        "nullable",
    )
    .await;
}

#[tokio::test]
async fn an_unpinned_tenant_table_is_caught() {
    breaks(
        |a| {
            format!(
                "ALTER TABLE {}.roles DROP CONSTRAINT tenant_id_is_this_tenant",
                tenant_schema(a, 0)
            )
        },
        |a| format!("tenant_{}.roles", a.tenant(0).slug.replace('-', "_")),
        "pinning tenant_id",
    )
    .await;
}

#[tokio::test]
async fn a_login_role_that_bypasses_or_owns_is_caught() {
    breaks(
        |a| format!("ALTER ROLE \"{}\" BYPASSRLS", a.login),
        |a| a.login.clone(),
        "BYPASSRLS",
    )
    .await;
    breaks(
        |a| format!("ALTER TABLE prismicx.audit_events OWNER TO \"{}\"", a.login),
        |a| a.login.clone(),
        "owns",
    )
    .await;
    breaks(
        |a| {
            format!(
                "GRANT \"tenant_{}_owner\" TO \"{}\"",
                a.tenant(0).slug.replace('-', "_"),
                a.login
            )
        },
        |a| a.login.clone(),
        "owns",
    )
    .await;
    breaks(
        |a| {
            format!(
                "ALTER ROLE \"tenant_{}_owner\" LOGIN",
                a.tenant(0).slug.replace('-', "_")
            )
        },
        |a| format!("tenant_{}.users", a.tenant(0).slug.replace('-', "_")),
        "can log in",
    )
    .await;
}

#[tokio::test]
async fn provisioning_is_idempotent_and_versions_are_visible() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    let slug = prismicx_service_common::tenancy::TenantSlug::parse(&app.tenant(0).slug).unwrap();
    let v = prismicx_service_common::pg::migrate::provision_tenant(
        &mut admin,
        &prismicx_user_data::migrations::SCHEMA,
        &slug,
        app.tenant(0).id,
    )
    .await
    .unwrap();
    assert_eq!(v, prismicx_user_data::migrations::SCHEMA.tenant_version());
    assert_eq!(
        prismicx_service_common::pg::migrate::tenant_version(&mut admin, &slug)
            .await
            .unwrap(),
        Some(v)
    );
    let none = prismicx_service_common::tenancy::TenantSlug::parse("never-provisioned").unwrap();
    assert_eq!(
        prismicx_service_common::pg::migrate::tenant_version(&mut admin, &none)
            .await
            .unwrap(),
        None
    );
    assert_eq!(lint(&app).await, vec![]);
}

//! A tenant's own database credentials (`migrate::ensure_tenant_login`, what the operator puts in
//! the tenant's Secret) connect through PgBouncer and reach that tenant's data only — tried the
//! way a tenant holding them would try to reach further.

#![allow(clippy::unwrap_used)]

mod support;

use prismicx_harness::kit::expect_sqlstate;
use prismicx_harness::{servers, unique_name};
use prismicx_service_common::config::Secret;
use prismicx_service_common::pg::{migrate, query, query_scalar};
use prismicx_service_common::tenancy::TenantSlug;
use sqlx::{Connection, PgConnection};
use support::spawn_app;

#[tokio::test]
async fn tenant_credentials_reach_their_own_tenant_only() {
    let app = spawn_app().await;
    app.create_user(0, "own@a.io", "Own").await;
    app.create_user(1, "other@b.io", "Other").await;
    app.get(1, "/v1/users").await;
    let a = TenantSlug::parse(app.tenant(0).slug()).unwrap();
    let b_schema = format!("\"tenant_{}\"", app.tenant(1).slug().replace('-', "_"));
    let password = Secret::new(unique_name("pw"));
    let mut admin = app.admin().await;
    let login = migrate::ensure_tenant_login(&mut admin, &a, app.tenant(0).id(), &password)
        .await
        .unwrap();
    // Idempotent, and the password can be rotated.
    let password = Secret::new(unique_name("pw"));
    migrate::ensure_tenant_login(&mut admin, &a, app.tenant(0).id(), &password)
        .await
        .unwrap();

    let opts = servers()
        .pgbouncer
        .options(&app.pg().db, &login, password.expose());
    let mut c = PgConnection::connect_with(&opts).await.unwrap();

    // Its own rows, with no setup: search_path and tenant come from the role's defaults.
    let mut tx = c.begin().await.unwrap();
    let emails: Vec<String> = query_scalar("SELECT email FROM users")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(emails, ["own@a.io"]);
    tx.commit().await.unwrap();

    // Another tenant's schema, the shared tables: no access at all. Nor can it change the
    // schema, the policies, or the migration record.
    for sql in [
        format!("SELECT * FROM {b_schema}.users"),
        "SELECT * FROM prismicx.audit_events".into(),
        "ALTER TABLE users DISABLE ROW LEVEL SECURITY".into(),
        "DELETE FROM schema_migrations".into(),
    ] {
        let mut tx = c.begin().await.unwrap();
        let refused = query(&sql).execute(&mut *tx).await;
        expect_sqlstate(refused, "42501", &sql);
    }

    // Claiming to be tenant B in its own schema shows nothing more (every row there is A's),
    // and a row for B is refused: the schema's CHECK pins tenant_id to A.
    let mut tx = c.begin().await.unwrap();
    query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(app.tenant(1).id().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let forged = query("INSERT INTO users (email, display_name) VALUES ('x@b.io', 'X')")
        .execute(&mut *tx)
        .await;
    let err = expect_sqlstate(forged, "23514", "a row for B");
    assert!(err.to_string().contains(migrate::TENANT_ID_CHECK), "{err}");
    drop(tx);

    // B's data is untouched; the lint still holds with the tenant login among the roles.
    let r = app.get(1, "/v1/users").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let violations =
        prismicx_service_common::pg::lint::lint_database(&mut admin, std::slice::from_ref(&login))
            .await
            .unwrap();
    assert_eq!(violations, vec![]);

    // An old password no longer works.
    let mut stale = servers().pgbouncer.options(&app.pg().db, &login, "wrong");
    stale = stale.application_name("stale");
    assert!(PgConnection::connect_with(&stale).await.is_err());
}

//! The catalog lint against a real PostgreSQL: a correctly provisioned database is clean, and
//! each way of breaking the tenancy contract is reported, naming the table or role.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use prismicx_service_common::pg::lint::{lint_database, Violation};
use prismicx_service_common::pg::{quote_ident, TenantDb};
use prismicx_service_common::tenancy::TenantPlacement;
use sqlx::Executor;
use support::{run, scalar, PgFixture};

async fn lint(fx: &PgFixture) -> Vec<Violation> {
    let mut admin = fx.admin().await;
    lint_database(&mut admin, &[fx.login.clone(), fx.roles().app])
        .await
        .unwrap()
}

async fn admin_sql(fx: &PgFixture, sql: &str) {
    let mut admin = fx.admin().await;
    admin.execute(sql).await.unwrap();
}

/// `ALTER ROLE <the fixture's login> <attribute>` as the superuser.
async fn alter_login(fx: &PgFixture, attribute: &str) {
    let login = quote_ident(&fx.login);
    admin_sql(fx, &format!("ALTER ROLE {login} {attribute}")).await;
}

/// Asserts the violations are exactly one per `(object, problem fragment)` given, in any order.
fn assert_violations(found: &[Violation], expected: &[(&str, &str)]) {
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (object, fragment) in expected {
        assert!(
            found
                .iter()
                .any(|v| v.object == *object && v.problem.contains(fragment)),
            "expected a violation on {object} mentioning {fragment:?}; found {found:#?}"
        );
    }
}

/// A provisioned database with one tenant; returns it and its tenant table's name.
async fn fixture() -> (PgFixture, String) {
    let fx = PgFixture::provision(1).await;
    let items = format!("{}.items", fx.tenants[0].slug.pg_schema());
    (fx, items)
}

#[tokio::test]
async fn a_correctly_provisioned_database_is_clean() {
    let (fx, _) = fixture().await;
    assert_eq!(lint(&fx).await, vec![]);
}

#[tokio::test]
async fn missing_policy_is_reported() {
    let (fx, items) = fixture().await;
    admin_sql(&fx, "DROP POLICY tenant_isolation ON prismicx.notes").await;
    assert_violations(&lint(&fx).await, &[("prismicx.notes", "no policy")]);
    admin_sql(&fx, &format!("DROP POLICY tenant_isolation ON {items}")).await;
    assert_violations(
        &lint(&fx).await,
        &[("prismicx.notes", "no policy"), (&items, "no policy")],
    );
}

#[tokio::test]
async fn a_policy_for_select_only_is_reported() {
    let (fx, _) = fixture().await;
    admin_sql(
        &fx,
        "DROP POLICY tenant_isolation ON prismicx.notes; \
         CREATE POLICY read_own ON prismicx.notes FOR SELECT \
           USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)",
    )
    .await;
    assert_violations(&lint(&fx).await, &[("prismicx.notes", "no policy")]);
}

#[tokio::test]
async fn unforced_row_level_security_is_reported() {
    let (fx, items) = fixture().await;
    admin_sql(
        &fx,
        &format!("ALTER TABLE {items} NO FORCE ROW LEVEL SECURITY"),
    )
    .await;
    assert_violations(&lint(&fx).await, &[(&items, "not forced")]);
}

#[tokio::test]
async fn disabled_row_level_security_is_reported() {
    let (fx, _) = fixture().await;
    admin_sql(&fx, "ALTER TABLE prismicx.notes DISABLE ROW LEVEL SECURITY").await;
    assert_violations(&lint(&fx).await, &[("prismicx.notes", "not enabled")]);
}

#[tokio::test]
async fn missing_tenant_index_is_reported() {
    let (fx, items) = fixture().await;
    admin_sql(&fx, "DROP INDEX prismicx.notes_tenant_created").await;
    assert_violations(
        &lint(&fx).await,
        &[("prismicx.notes", "no index leads with tenant_id")],
    );
    // An index with tenant_id in second place does not count.
    let schema = fx.tenants[0].slug.pg_schema();
    admin_sql(
        &fx,
        &format!(
            "DROP INDEX {schema}.items_tenant_created; \
             CREATE INDEX items_created_tenant ON {items} (created_at, tenant_id)"
        ),
    )
    .await;
    assert_violations(
        &lint(&fx).await,
        &[
            ("prismicx.notes", "no index leads with tenant_id"),
            (&items, "no index leads with tenant_id"),
        ],
    );
}

#[tokio::test]
async fn nullable_or_missing_tenant_id_is_reported() {
    let (fx, items) = fixture().await;
    admin_sql(
        &fx,
        "ALTER TABLE prismicx.notes ALTER COLUMN tenant_id DROP NOT NULL",
    )
    .await;
    assert_violations(&lint(&fx).await, &[("prismicx.notes", "nullable")]);
    let schema = fx.tenants[0].slug.pg_schema();
    admin_sql(
        &fx,
        &format!(
            "CREATE TABLE {schema}.loose (id int); \
             ALTER TABLE {schema}.loose ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY"
        ),
    )
    .await;
    let found = lint(&fx).await;
    let loose = format!("{schema}.loose");
    assert!(
        found
            .iter()
            .any(|v| v.object == loose && v.problem.contains("no tenant_id column")),
        "{found:#?}"
    );
    assert!(!found.iter().any(|v| v.object == items), "{found:#?}");
}

#[tokio::test]
async fn bypassrls_on_the_login_role_is_reported() {
    let (fx, _) = fixture().await;
    alter_login(&fx, "BYPASSRLS").await;
    assert_violations(&lint(&fx).await, &[(&fx.login, "BYPASSRLS")]);
}

#[tokio::test]
async fn a_superuser_login_role_is_reported() {
    let (fx, _) = fixture().await;
    alter_login(&fx, "SUPERUSER").await;
    let found = lint(&fx).await;
    assert!(
        found
            .iter()
            .any(|v| v.object == fx.login && v.problem.contains("superuser")),
        "{found:#?}"
    );
}

#[tokio::test]
async fn a_login_role_owning_a_table_is_reported() {
    let (fx, items) = fixture().await;
    let login = quote_ident(&fx.login);
    admin_sql(&fx, &format!("ALTER TABLE prismicx.notes OWNER TO {login}")).await;
    assert_violations(&lint(&fx).await, &[(&fx.login, "prismicx.notes")]);
    // A tenant table owned by the login role: the role owns it, and its owner can log in.
    admin_sql(
        &fx,
        &format!(
            "ALTER TABLE prismicx.notes OWNER TO {}; ALTER TABLE {items} OWNER TO {login}",
            quote_ident(&fx.roles().owner)
        ),
    )
    .await;
    assert_violations(
        &lint(&fx).await,
        &[
            (&fx.login, &items),
            (&items, "owned by a role that can log in"),
        ],
    );
}

#[tokio::test]
async fn a_login_role_in_an_owner_role_is_reported() {
    let (fx, items) = fixture().await;
    let login = quote_ident(&fx.login);
    admin_sql(
        &fx,
        &format!("GRANT {} TO {login}", quote_ident(&fx.roles().owner)),
    )
    .await;
    assert_violations(&lint(&fx).await, &[(&fx.login, "prismicx.notes")]);
    admin_sql(
        &fx,
        &format!(
            "REVOKE {} FROM {login}; GRANT {} TO {login}",
            quote_ident(&fx.roles().owner),
            quote_ident(&fx.tenants[0].slug.pg_owner_role())
        ),
    )
    .await;
    assert_violations(&lint(&fx).await, &[(&fx.login, &items)]);
}

/// Writes a note as tenant `t` (committed).
async fn write_note(db: &TenantDb, t: &TenantPlacement) {
    let mut tx = db.begin(t).await.unwrap();
    run(tx.conn(), "INSERT INTO prismicx.notes (body) VALUES ('a')").await;
    tx.commit().await.unwrap();
}

/// How many notes tenant `t` sees.
async fn notes_seen(db: &TenantDb, t: &TenantPlacement) -> i64 {
    let mut tx = db.begin(t).await.unwrap();
    scalar(tx.conn(), "SELECT count(*) FROM prismicx.notes").await
}

/// A policy scoped `TO <db>_app` is enforced for the login role (a member of the app role), so
/// the catalog is sound; the lint should not call the table unprotected.
#[tokio::test]
async fn a_policy_to_the_app_role_counts() {
    let fx = PgFixture::provision(2).await;
    let app_role = quote_ident(&fx.roles().app);
    let to_app = format!("ALTER POLICY tenant_isolation ON prismicx.notes TO {app_role}");
    admin_sql(&fx, &to_app).await;
    // The policy applies to the login role: A writes and reads its row (with no applicable
    // policy, FORCE'd RLS would refuse the insert), B sees nothing.
    let db = fx.tenant_db(2);
    write_note(&db, &fx.tenants[0]).await;
    for (t, expected) in [(&fx.tenants[0], 1), (&fx.tenants[1], 0)] {
        let seen = notes_seen(&db, t).await;
        assert_eq!(seen, expected);
    }
    db.close().await;
    assert_eq!(lint(&fx).await, vec![]);
}

/// An extra permissive policy is OR-ed with the tenant policy: every tenant sees every row.
/// Proven here through a real tenant transaction, then the lint must report it.
#[tokio::test]
async fn an_extra_permissive_policy_is_reported() {
    let fx = PgFixture::provision(2).await;
    admin_sql(
        &fx,
        "CREATE POLICY open_door ON prismicx.notes FOR SELECT USING (true)",
    )
    .await;
    let db = fx.tenant_db(2);
    write_note(&db, &fx.tenants[0]).await;
    let seen = notes_seen(&db, &fx.tenants[1]).await;
    assert_eq!(seen, 1, "B sees A's row through the open policy");
    db.close().await;
    let found = lint(&fx).await;
    assert!(
        found.iter().any(|v| v.object == "prismicx.notes"),
        "the lint missed the open policy: {found:#?}"
    );
}

//! Schema migrations of a service database: the shared (system) schema and every tenant schema.
//!
//! A service crate owns its migrations as numbered SQL files and hands them over as a
//! [`ServiceSchema`]; the service applies the system migrations at start-up and the operator
//! applies the tenant migrations to every tenant schema. Both run as an administrative role
//! (superuser, or a role with CREATEROLE) and are safe to run concurrently and repeatedly.
//!
//! Roles, per service database `<db>`:
//! - `<db>_owner` (NOLOGIN) owns the system schema [`SYSTEM_SCHEMA`] and its tables;
//! - `<db>_app` (NOLOGIN) holds the DML grants; service login roles are members of it and own
//!   nothing they query;
//! - per tenant, `tenant_<slug>_owner` (NOLOGIN) owns schema `tenant_<slug>` in every database.
//!
//! Each schema records its applied migrations (version, name, SHA-256 checksum) in its own
//! `schema_migrations` table; a recorded migration whose SQL changed is refused, never re-run.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{query, quote_ident, SYSTEM_SCHEMA};
use crate::config::Secret;
use crate::tenancy::TenantSlug;

/// One numbered migration. Applied migrations are never edited; add a new one instead.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A service's migrations: shared tables, and the tables of each tenant schema.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSchema {
    pub system: &'static [Migration],
    pub tenant: &'static [Migration],
}

impl ServiceSchema {
    /// The newest tenant-schema version this build knows.
    pub fn tenant_version(&self) -> i32 {
        self.tenant.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// The group roles of a service database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRoles {
    pub database: String,
    pub owner: String,
    pub app: String,
}

impl DatabaseRoles {
    pub fn for_database(database: &str) -> Self {
        DatabaseRoles {
            database: database.to_string(),
            owner: format!("{database}_owner"),
            app: format!("{database}_app"),
        }
    }
}

/// Creates `role` (NOLOGIN) unless it exists; concurrent creators are tolerated.
async fn ensure_nologin_role(conn: &mut PgConnection, role: &str) -> Result<()> {
    let sql = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN \
             CREATE ROLE {ident} NOLOGIN NOINHERIT; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
         END $$",
        lit = quote_literal(role),
        ident = quote_ident(role),
    );
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&sql)).await?;
    // A non-superuser administrator must be a member to act as (SET ROLE) the owner.
    let is_super: bool =
        super::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut *conn)
            .await?;
    if !is_super {
        sqlx::Executor::execute(
            &mut *conn,
            sqlx::raw_sql(&format!("GRANT {} TO CURRENT_USER", quote_ident(role))),
        )
        .await?;
    }
    Ok(())
}

/// A quoted SQL string literal (standard_conforming_strings is on in every supported server).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Evaluates `$attempt` (an expression producing a future of `Result`) until it succeeds or
/// fails with something other than the errors concurrent DDL raises (tuple concurrently updated,
/// deadlocks, serialization failures, catalog unique violations); at most 6 tries.
macro_rules! retry_concurrent_ddl {
    ($attempt:expr) => {{
        let mut tries = 0u64;
        loop {
            match $attempt.await {
                Err(e) if tries < 5 && is_concurrent_ddl_error(&e) => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * tries)).await;
                }
                other => break other,
            }
        }
    }};
}

/// Whether `e` is one of the errors concurrent DDL raises (tuple concurrently updated, deadlock,
/// serialization failure, a catalog unique violation): retrying the idempotent step helps.
pub fn is_concurrent_ddl_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sqlx::Error>()
            .and_then(|e| match e {
                sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
                _ => None,
            })
            .is_some_and(|code| matches!(code.as_str(), "XX000" | "40P01" | "40001" | "23505"))
    })
}

/// Applies pending migrations to `schema` inside the current transaction, as `owner`.
async fn apply_pending(
    conn: &mut PgConnection,
    schema: &str,
    owner: &str,
    migrations: &[Migration],
) -> Result<i32> {
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(&format!("SET LOCAL ROLE {}", quote_ident(owner))),
    )
    .await?;
    query("SELECT set_config('search_path', $1, true)")
        .bind(quote_ident(schema))
        .execute(&mut *conn)
        .await?;
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
           version integer PRIMARY KEY, \
           name text NOT NULL, \
           checksum text NOT NULL, \
           applied_at timestamptz NOT NULL DEFAULT now())",
        ),
    )
    .await?;
    let applied: Vec<(i32, String, String)> =
        super::query_as("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    let mut sorted: Vec<&Migration> = migrations.iter().collect();
    sorted.sort_by_key(|m| m.version);
    let mut version = 0;
    for m in sorted {
        if let Some((_, name, checksum)) = applied.iter().find(|(v, _, _)| *v == m.version) {
            if *checksum != m.checksum() {
                bail!(
                    "migration {} ({name}) of schema {schema} was applied with different SQL; \
                     applied migrations must never be edited",
                    m.version
                );
            }
        } else {
            sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(m.sql))
                .await
                .with_context(|| {
                    format!("migration {} ({}) in schema {schema}", m.version, m.name)
                })?;
            query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)")
                .bind(m.version)
                .bind(m.name)
                .bind(m.checksum())
                .execute(&mut *conn)
                .await?;
        }
        version = version.max(m.version);
    }
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql("RESET ROLE")).await?;
    Ok(version)
}

/// Grants the app role what it needs in `schema`: USAGE, DML on every table, read-only on
/// `schema_migrations`. Re-run after every migration so new tables are covered.
async fn grant_app(conn: &mut PgConnection, schema: &str, app: &str) -> Result<()> {
    let (s, a) = (quote_ident(schema), quote_ident(app));
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(&format!(
            "GRANT USAGE ON SCHEMA {s} TO {a}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {a}; \
         REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {s}.schema_migrations FROM {a};"
        )),
    )
    .await?;
    Ok(())
}

/// Applies the system migrations of a service database (run by the service at start-up and by
/// the operator; serialized by an advisory lock). Returns the applied version.
pub async fn apply_system(conn: &mut PgConnection, schema: &ServiceSchema) -> Result<i32> {
    let db: String = super::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await?;
    let roles = DatabaseRoles::for_database(&db);
    retry_concurrent_ddl!(apply_system_once(&mut *conn, &roles, schema.system))
}

async fn apply_system_once(
    conn: &mut PgConnection,
    roles: &DatabaseRoles,
    migrations: &[Migration],
) -> Result<i32> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    query("SELECT pg_advisory_xact_lock(hashtext('prismicx:migrate:system'))")
        .execute(&mut *tx)
        .await?;
    ensure_nologin_role(&mut tx, &roles.owner).await?;
    ensure_nologin_role(&mut tx, &roles.app).await?;
    let (db, s, o, a) = (
        quote_ident(&roles.database),
        quote_ident(SYSTEM_SCHEMA),
        quote_ident(&roles.owner),
        quote_ident(&roles.app),
    );
    sqlx::Executor::execute(
        &mut *tx,
        sqlx::raw_sql(&format!(
            "REVOKE ALL ON DATABASE {db} FROM PUBLIC; \
                 GRANT CONNECT ON DATABASE {db} TO {a}; \
                 CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {o};"
        )),
    )
    .await?;
    let version = apply_pending(&mut tx, SYSTEM_SCHEMA, &roles.owner, migrations).await?;
    grant_app(&mut tx, SYSTEM_SCHEMA, &roles.app).await?;
    tx.commit().await?;
    Ok(version)
}

/// Creates or updates a login role for the service: LOGIN, NOBYPASSRLS, member of the app role.
/// The password travels only as a bind parameter, so statement logs never contain it.
pub async fn ensure_login_role(
    conn: &mut PgConnection,
    login: &str,
    password: &Secret<String>,
) -> Result<()> {
    let db: String = super::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await?;
    let roles = DatabaseRoles::for_database(&db);
    retry_concurrent_ddl!(ensure_login_role_once(&mut *conn, &roles, login, password))
}

async fn ensure_login_role_once(
    conn: &mut PgConnection,
    roles: &DatabaseRoles,
    login: &str,
    password: &Secret<String>,
) -> Result<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    ensure_nologin_role(&mut tx, &roles.app).await?;
    ensure_login(&mut tx, login, password).await?;
    sqlx::Executor::execute(
        &mut *tx,
        sqlx::raw_sql(&format!(
            "GRANT {} TO {}",
            quote_ident(&roles.app),
            quote_ident(login)
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates `login` (LOGIN, NOBYPASSRLS, no other privilege) unless it exists and sets its
/// password, inside the caller's transaction. The password travels only as a bind parameter,
/// read back inside a `DO` block, so statement logs never contain it.
async fn ensure_login(
    conn: &mut PgConnection,
    login: &str,
    password: &Secret<String>,
) -> Result<()> {
    query("SELECT set_config('prismicx.login_password', $1, true)")
        .bind(password.expose())
        .execute(&mut *conn)
        .await?;
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(&format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN \
                 EXECUTE format('CREATE ROLE %I LOGIN NOBYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE', {lit}); \
               END IF; \
               EXECUTE format('ALTER ROLE %I LOGIN NOBYPASSRLS PASSWORD %L', {lit}, current_setting('prismicx.login_password')); \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN \
               EXECUTE format('ALTER ROLE %I LOGIN NOBYPASSRLS PASSWORD %L', {lit}, current_setting('prismicx.login_password')); \
             END $$",
            lit = quote_literal(login),
        )),
    )
    .await?;
    query("SELECT set_config('prismicx.login_password', '', true)")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The login role of a tenant's own credentials: `tenant_<slug>_login`.
pub fn tenant_login_role(slug: &TenantSlug) -> String {
    format!("tenant_{}_login", slug.ident())
}

/// Creates or updates the tenant's own login role (the credentials the operator hands the
/// tenant) and gives it the tenant's schema in the connected database — and nothing else.
///
/// The role is not a member of `<db>_app`: it has USAGE on `tenant_<slug>` and DML on its tables
/// only, no grant on the shared schema, no other tenant's schema. Its defaults in this database
/// set `search_path` to the tenant schema and `app.tenant_id` to the tenant, so row-level
/// security shows it its rows; setting `app.tenant_id` to another tenant's id shows it nothing
/// more, since every row it can reach carries its own id. Returns the role's name.
pub async fn ensure_tenant_login(
    conn: &mut PgConnection,
    slug: &TenantSlug,
    tenant_id: Uuid,
    password: &Secret<String>,
) -> Result<String> {
    let login = tenant_login_role(slug);
    retry_concurrent_ddl!(ensure_tenant_login_once(
        &mut *conn, slug, tenant_id, &login, password
    ))?;
    Ok(login)
}

async fn ensure_tenant_login_once(
    conn: &mut PgConnection,
    slug: &TenantSlug,
    tenant_id: Uuid,
    login: &str,
    password: &Secret<String>,
) -> Result<()> {
    let db: String = super::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    ensure_login(&mut tx, login, password).await?;
    let (d, s, l) = (
        quote_ident(&db),
        quote_ident(&slug.pg_schema()),
        quote_ident(login),
    );
    sqlx::Executor::execute(
        &mut *tx,
        sqlx::raw_sql(&format!(
            "ALTER ROLE {l} IN DATABASE {d} SET search_path = {s}; \
             ALTER ROLE {l} IN DATABASE {d} SET app.tenant_id = {id}; \
             GRANT CONNECT ON DATABASE {d} TO {l}; \
             GRANT USAGE ON SCHEMA {s} TO {l}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {l}; \
             REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {s}.schema_migrations FROM {l};",
            id = quote_literal(&tenant_id.to_string()),
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Provisions (or upgrades) a tenant's schema in the connected service database: owner role,
/// schema, pending tenant migrations, grants to the app role. Returns the applied version.
pub async fn provision_tenant(
    conn: &mut PgConnection,
    schema: &ServiceSchema,
    slug: &TenantSlug,
    tenant_id: Uuid,
) -> Result<i32> {
    let db: String = super::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await?;
    let roles = DatabaseRoles::for_database(&db);
    retry_concurrent_ddl!(provision_tenant_once(
        &mut *conn,
        &roles,
        schema.tenant,
        slug,
        tenant_id
    ))
}

async fn provision_tenant_once(
    conn: &mut PgConnection,
    roles: &DatabaseRoles,
    migrations: &[Migration],
    slug: &TenantSlug,
    tenant_id: Uuid,
) -> Result<i32> {
    let (tenant_schema, owner) = (slug.pg_schema(), slug.pg_owner_role());
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    query("SELECT pg_advisory_xact_lock(hashtext('prismicx:migrate:tenant:' || $1))")
        .bind(slug.as_str())
        .execute(&mut *tx)
        .await?;
    ensure_nologin_role(&mut tx, &owner).await?;
    ensure_nologin_role(&mut tx, &roles.app).await?;
    sqlx::Executor::execute(
        &mut *tx,
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}",
            quote_ident(&tenant_schema),
            quote_ident(&owner)
        )),
    )
    .await?;
    // Column defaults and policies read the tenant id; set it for the migration too.
    query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await?;
    let version = apply_pending(&mut tx, &tenant_schema, &owner, migrations).await?;
    pin_tenant_id(&mut tx, &tenant_schema, tenant_id).await?;
    ensure_row_security(&mut tx, &tenant_schema).await?;
    grant_app(&mut tx, &tenant_schema, &roles.app).await?;
    tx.commit().await?;
    Ok(version)
}

/// Name of the CHECK constraint that pins a tenant table's `tenant_id` to its tenant.
pub const TENANT_ID_CHECK: &str = "tenant_id_is_this_tenant";

/// Adds to every table of the tenant schema a CHECK that `tenant_id` is this tenant's id, so the
/// schema can only ever hold the tenant's rows, whatever a session sets `app.tenant_id` to (row
/// level security checks rows against the session's tenant; this checks them against the
/// schema's). Tables that already have it are left alone.
async fn pin_tenant_id(conn: &mut PgConnection, schema: &str, tenant_id: Uuid) -> Result<()> {
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(&format!(
            "DO $$ DECLARE t record; BEGIN \
               FOR t IN SELECT c.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
                 WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p') \
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.conname = {check}) \
               LOOP \
                 EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (tenant_id = %L::uuid)', \
                                {schema}, t.relname, {check}, {id}); \
               END LOOP; \
             END $$",
            schema = quote_literal(schema),
            check = quote_literal(TENANT_ID_CHECK),
            id = quote_literal(&tenant_id.to_string()),
        )),
    )
    .await?;
    Ok(())
}

/// Name of the policy every tenant table carries.
pub const TENANT_POLICY: &str = "tenant_isolation";

/// Restores row-level security on every table of `schema` that has a `tenant_id` column:
/// `ENABLE` + `FORCE`, and the [`TENANT_POLICY`] policy on `app.tenant_id` when the table has no
/// policy of that name. Migrations create all of this; running it after them repairs a catalog
/// changed out of band (a dropped policy, RLS disabled) on the operator's next reconcile.
pub async fn ensure_row_security(conn: &mut PgConnection, schema: &str) -> Result<()> {
    const CHECK: &str = "tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid";
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(&format!(
            "DO $$ DECLARE t record; BEGIN \
               FOR t IN SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, \
                   EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = {policy}) AS has_policy \
                 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
                 WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p') \
               LOOP \
                 IF NOT t.relrowsecurity THEN \
                   EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', {schema}, t.relname); \
                 END IF; \
                 IF NOT t.relforcerowsecurity THEN \
                   EXECUTE format('ALTER TABLE %I.%I FORCE ROW LEVEL SECURITY', {schema}, t.relname); \
                 END IF; \
                 IF NOT t.has_policy THEN \
                   EXECUTE format('CREATE POLICY %I ON %I.%I USING ({CHECK}) WITH CHECK ({CHECK})', \
                                  {policy}, {schema}, t.relname); \
                 END IF; \
               END LOOP; \
             END $$",
            schema = quote_literal(schema),
            policy = quote_literal(TENANT_POLICY),
        )),
    )
    .await?;
    Ok(())
}

/// The tenant schema's applied migration version, `None` when the schema does not exist.
pub async fn tenant_version(conn: &mut PgConnection, slug: &TenantSlug) -> Result<Option<i32>> {
    let schema = slug.pg_schema();
    let exists: bool = super::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations')",
    )
    .bind(&schema)
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Ok(None);
    }
    let row = super::query(&format!(
        "SELECT coalesce(max(version), 0) AS v FROM {}.schema_migrations",
        quote_ident(&schema)
    ))
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(row.try_get("v")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_identifiers_are_quoted() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn checksum_changes_with_sql() {
        let a = Migration {
            version: 1,
            name: "a",
            sql: "CREATE TABLE a()",
        };
        let b = Migration {
            version: 1,
            name: "a",
            sql: "CREATE TABLE b()",
        };
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(a.checksum().len(), 64);
    }
}

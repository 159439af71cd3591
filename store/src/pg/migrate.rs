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
//!
//! Tenant identifiers stay out of what other roles can read: the schema → tenant mapping lives
//! in the private schema [`PLATFORM_SCHEMA`], the pinning CHECK calls [`PIN_FUNCTION`] instead
//! of spelling the id out, role defaults are hidden by [`hide_role_settings`], and passwords
//! reach the server only as SCRAM verifiers ([`super::scram`]).

use anyhow::{bail, Context, Result};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{query, quote_ident, SYSTEM_SCHEMA};
use crate::Secret;
pub use prismicx_tenancy::layout::{Migration, ServiceSchema};
pub use prismicx_tenancy::names::{
    tenant_login_role, DatabaseRoles, PIN_FUNCTION, PLATFORM_SCHEMA, TENANT_ID_CHECK,
    TENANT_POLICY, TENANT_SCHEMAS_TABLE,
};
use prismicx_tenancy::TenantSlug;

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
/// deadlocks, serialization failures, catalog unique violations), under the store's retry policy
/// ([`TRANSIENT`](crate::retry::TRANSIENT): its attempts and backoff). A macro rather than
/// [`RetryPolicy::run_if`](crate::retry::RetryPolicy::run_if) because each attempt borrows the
/// caller's connection anew.
macro_rules! retry_concurrent_ddl {
    ($attempt:expr) => {{
        let policy = crate::retry::TRANSIENT;
        let mut tries = 0u32;
        loop {
            match $attempt.await {
                Err(e) if tries + 1 < policy.attempts && is_concurrent_ddl_error(&e) => {
                    tokio::time::sleep(policy.backoff(tries)).await;
                    tries += 1;
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
/// The password is sent as a SCRAM-SHA-256 verifier computed here, never in clear.
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
/// password, inside the caller's transaction. The password is sent as a SCRAM-SHA-256 verifier
/// computed here ([`super::scram`]), never in clear, not even as a bind parameter: a statement
/// log (`log_statement = 'all'` logs bind parameters too) holds the verifier at most.
async fn ensure_login(
    conn: &mut PgConnection,
    login: &str,
    password: &Secret<String>,
) -> Result<()> {
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(&format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN \
                 EXECUTE format('CREATE ROLE %I LOGIN NOBYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE', {lit}); \
               END IF; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
             END $$",
            lit = quote_literal(login),
        )),
    )
    .await?;
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(&format!(
            "ALTER ROLE {} LOGIN NOBYPASSRLS PASSWORD {}",
            quote_ident(login),
            quote_literal(&super::scram::verifier(password)),
        )),
    )
    .await?;
    Ok(())
}

/// Limits every tenant login role carries: role defaults for the three timeouts (cluster-wide,
/// so they hold in every database) and a `CONNECTION LIMIT`.
///
/// The timeouts are defaults a session may change with `SET` (PostgreSQL has no per-role
/// ceiling for user-settable parameters): they stop runaway statements, forgotten locks and
/// abandoned transactions of well-meaning clients. The connection limit is enforced by the
/// server and cannot be raised by the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub statement_timeout_ms: u32,
    pub lock_timeout_ms: u32,
    pub idle_in_transaction_session_timeout_ms: u32,
    /// Concurrent sessions of the role across the cluster (PgBouncer's server connections
    /// included).
    pub connection_limit: i32,
}

impl LoginLimits {
    /// The platform's defaults for a tenant's own login (see docs/tenancy.md).
    pub const TENANT_DEFAULT: LoginLimits = LoginLimits {
        statement_timeout_ms: 30_000,
        lock_timeout_ms: 5_000,
        idle_in_transaction_session_timeout_ms: 60_000,
        connection_limit: 20,
    };

    fn settings(&self) -> [(&'static str, u32); 3] {
        [
            ("statement_timeout", self.statement_timeout_ms),
            ("lock_timeout", self.lock_timeout_ms),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_session_timeout_ms,
            ),
        ]
    }
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self::TENANT_DEFAULT
    }
}

/// Sets `limits` on `login` (which must exist).
pub async fn set_login_limits(
    conn: &mut PgConnection,
    login: &str,
    limits: &LoginLimits,
) -> Result<()> {
    let l = quote_ident(login);
    let mut sql = format!(
        "ALTER ROLE {l} CONNECTION LIMIT {};",
        limits.connection_limit
    );
    for (name, ms) in limits.settings() {
        // Plain integers (milliseconds): stored as `name=<ms>`, which `login_limits` reads back.
        sql.push_str(&format!(" ALTER ROLE {l} SET {name} = {ms};"));
    }
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&sql)).await?;
    Ok(())
}

/// The limits `login` carries now, `None` when the role does not exist. A timeout that is not
/// set (or not in milliseconds as [`set_login_limits`] writes it) reads as 0, which no
/// platform default is, so a changed limit shows as a difference.
pub async fn login_limits(conn: &mut PgConnection, login: &str) -> Result<Option<LoginLimits>> {
    let row: Option<(i32, Option<Vec<String>>)> =
        super::query_as("SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = $1")
            .bind(login)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((connection_limit, config)) = row else {
        return Ok(None);
    };
    let config = config.unwrap_or_default();
    let get = |name: &str| -> u32 {
        config
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Some(LoginLimits {
        statement_timeout_ms: get("statement_timeout"),
        lock_timeout_ms: get("lock_timeout"),
        idle_in_transaction_session_timeout_ms: get("idle_in_transaction_session_timeout"),
        connection_limit,
    }))
}

/// Takes `pg_db_role_setting` (every role's per-database defaults, `app.tenant_id` of every
/// tenant login among them) away from PUBLIC in the connected database. The catalog is shared
/// by the cluster but its privileges are kept per database, so this is needed in every
/// database a tenant login can connect to; a database created from `template1` after it was
/// done there inherits it. Only a superuser may change a catalog's privileges: for any other
/// administrator this changes nothing and returns `false` (the defaults stay readable).
/// Returns whether PUBLIC is now unable to read the catalog here.
pub async fn hide_role_settings(conn: &mut PgConnection) -> Result<bool> {
    let (is_super, public_reads): (bool, bool) = super::query_as(
        "SELECT rolsuper, has_table_privilege('public', 'pg_catalog.pg_db_role_setting', 'SELECT') \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !public_reads {
        return Ok(true);
    }
    if !is_super {
        return Ok(false);
    }
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql("REVOKE SELECT ON pg_catalog.pg_db_role_setting FROM PUBLIC"),
    )
    .await?;
    Ok(true)
}

/// Creates or updates the tenant's own login role (the credentials the operator hands the
/// tenant) and gives it the tenant's schema in the connected database — and nothing else.
///
/// The role is not a member of `<db>_app`: it has USAGE on `tenant_<slug>` and DML on its tables
/// only, no grant on the shared schema, no other tenant's schema. Its defaults in this database
/// set `search_path` to the tenant schema and `app.tenant_id` to the tenant, so row-level
/// security shows it its rows; setting `app.tenant_id` to another tenant's id shows it nothing
/// more, since every row it can reach carries its own id. Those defaults are kept from other
/// roles by [`hide_role_settings`] (superuser administrators only). The role gets the
/// platform's [`LoginLimits::TENANT_DEFAULT`]. Returns the role's name.
pub async fn ensure_tenant_login(
    conn: &mut PgConnection,
    slug: &TenantSlug,
    tenant_id: Uuid,
    password: &Secret<String>,
) -> Result<String> {
    ensure_tenant_login_with_limits(
        conn,
        slug,
        tenant_id,
        password,
        &LoginLimits::TENANT_DEFAULT,
    )
    .await
}

/// [`ensure_tenant_login`] with other limits than the platform's defaults.
pub async fn ensure_tenant_login_with_limits(
    conn: &mut PgConnection,
    slug: &TenantSlug,
    tenant_id: Uuid,
    password: &Secret<String>,
    limits: &LoginLimits,
) -> Result<String> {
    let login = tenant_login_role(slug);
    retry_concurrent_ddl!(ensure_tenant_login_once(
        &mut *conn, slug, tenant_id, &login, password, limits
    ))?;
    Ok(login)
}

async fn ensure_tenant_login_once(
    conn: &mut PgConnection,
    slug: &TenantSlug,
    tenant_id: Uuid,
    login: &str,
    password: &Secret<String>,
    limits: &LoginLimits,
) -> Result<()> {
    let db: String = super::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    ensure_login(&mut tx, login, password).await?;
    set_login_limits(&mut tx, login, limits).await?;
    if !hide_role_settings(&mut tx).await? {
        tracing::warn!(
            database = %db,
            "not a superuser: pg_db_role_setting stays readable by every role, and with it \
             the app.tenant_id default of every tenant login"
        );
    }
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
    register_tenant_schema(&mut tx, slug, tenant_id, None).await?;
    let version = apply_pending(&mut tx, &tenant_schema, &owner, migrations).await?;
    pin_tenant_id(&mut tx, &tenant_schema).await?;
    ensure_row_security(&mut tx, &tenant_schema).await?;
    grant_app(&mut tx, &tenant_schema, &roles.app).await?;
    tx.commit().await?;
    Ok(version)
}

/// Creates [`PLATFORM_SCHEMA`], its table and [`PIN_FUNCTION`] unless they exist, inside the
/// caller's transaction.
async fn ensure_platform_schema(conn: &mut PgConnection) -> Result<()> {
    let present: bool = super::query_scalar(
        "SELECT to_regprocedure('prismicx_tenancy.row_is_schema_tenant(oid, uuid)') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?;
    if present {
        return Ok(());
    }
    query("SELECT pg_advisory_xact_lock(hashtext('prismicx:migrate:tenancy'))")
        .execute(&mut *conn)
        .await?;
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(
            "CREATE SCHEMA IF NOT EXISTS prismicx_tenancy; \
             REVOKE ALL ON SCHEMA prismicx_tenancy FROM PUBLIC; \
             CREATE TABLE IF NOT EXISTS prismicx_tenancy.tenant_schemas ( \
               schema_name text PRIMARY KEY, \
               tenant_id uuid NOT NULL, \
               namespace text); \
             REVOKE ALL ON prismicx_tenancy.tenant_schemas FROM PUBLIC; \
             CREATE OR REPLACE FUNCTION prismicx_tenancy.row_is_schema_tenant(rel oid, tenant uuid) \
               RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER \
               SET search_path = pg_catalog, pg_temp AS \
             $$ SELECT EXISTS (SELECT 1 FROM prismicx_tenancy.tenant_schemas s \
                  JOIN pg_catalog.pg_namespace n ON n.nspname = s.schema_name \
                  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid \
                  WHERE c.oid = rel AND s.tenant_id = tenant) $$; \
             REVOKE ALL ON FUNCTION prismicx_tenancy.row_is_schema_tenant(oid, uuid) FROM PUBLIC; \
             GRANT EXECUTE ON FUNCTION prismicx_tenancy.row_is_schema_tenant(oid, uuid) TO PUBLIC;",
        ),
    )
    .await?;
    Ok(())
}

/// Records in [`TENANT_SCHEMAS_TABLE`] that the tenant's schema belongs to `tenant_id` (and,
/// when given, to `namespace`). A schema keeps the tenant it was first registered for: another
/// id is refused, as the pinning CHECK would refuse that tenant's rows.
pub async fn register_tenant_schema(
    conn: &mut PgConnection,
    slug: &TenantSlug,
    tenant_id: Uuid,
    namespace: Option<&str>,
) -> Result<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    ensure_platform_schema(&mut tx).await?;
    let schema = slug.pg_schema();
    let registered: Uuid = super::query_scalar(
        "INSERT INTO prismicx_tenancy.tenant_schemas AS t (schema_name, tenant_id, namespace) \
         VALUES ($1, $2, $3) \
         ON CONFLICT (schema_name) DO UPDATE SET namespace = coalesce(EXCLUDED.namespace, t.namespace) \
         RETURNING t.tenant_id",
    )
    .bind(&schema)
    .bind(tenant_id)
    .bind(namespace)
    .fetch_one(&mut *tx)
    .await?;
    if registered != tenant_id {
        bail!("schema {schema} is registered to tenant {registered}, not {tenant_id}");
    }
    tx.commit().await?;
    Ok(())
}

/// The tenant id and namespace registered for the tenant's schema in the connected database
/// (`None` when nothing is, or the namespace was never recorded).
pub async fn registered_tenant_schema(
    conn: &mut PgConnection,
    slug: &TenantSlug,
) -> Result<Option<(Uuid, String)>> {
    let exists: bool =
        super::query_scalar("SELECT to_regclass('prismicx_tenancy.tenant_schemas') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Ok(None);
    }
    let row: Option<(Uuid, Option<String>)> = super::query_as(
        "SELECT tenant_id, namespace FROM prismicx_tenancy.tenant_schemas WHERE schema_name = $1",
    )
    .bind(slug.pg_schema())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.and_then(|(id, ns)| ns.map(|ns| (id, ns))))
}

/// Forgets the tenant's schema in [`TENANT_SCHEMAS_TABLE`] (after the schema was dropped).
pub async fn unregister_tenant_schema(conn: &mut PgConnection, slug: &TenantSlug) -> Result<()> {
    let exists: bool =
        super::query_scalar("SELECT to_regclass('prismicx_tenancy.tenant_schemas') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if exists {
        query("DELETE FROM prismicx_tenancy.tenant_schemas WHERE schema_name = $1")
            .bind(slug.pg_schema())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Gives every table of the tenant schema the CHECK [`TENANT_ID_CHECK`]
/// `prismicx_tenancy.row_is_schema_tenant(tableoid, tenant_id)`: a row's `tenant_id` must be
/// the tenant registered for the schema, so the schema can only ever hold the tenant's rows,
/// whatever a session sets `app.tenant_id` to (row level security checks rows against the
/// session's tenant; this checks them against the schema's). The definition names no tenant,
/// so `pg_constraint` (readable by every role) shows no id. A CHECK of the older form, which
/// spelled the id out (`tenant_id = '<uuid>'::uuid`), is replaced (and the table's rows
/// validated against the registered tenant).
async fn pin_tenant_id(conn: &mut PgConnection, schema: &str) -> Result<()> {
    sqlx::Executor::execute(
        &mut *conn,
        sqlx::raw_sql(&format!(
            "DO $$ DECLARE t record; BEGIN \
               FOR t IN SELECT c.relname, k.oid IS NOT NULL AS has_check FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
                 LEFT JOIN pg_constraint k ON k.conrelid = c.oid AND k.conname = {check} \
                 WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p') \
                   AND (k.oid IS NULL OR NOT EXISTS (SELECT 1 FROM pg_depend d \
                     WHERE d.classid = 'pg_constraint'::regclass AND d.objid = k.oid \
                       AND d.refclassid = 'pg_proc'::regclass \
                       AND d.refobjid = {signature}::regprocedure)) \
               LOOP \
                 IF t.has_check THEN \
                   EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I, ADD CONSTRAINT %I CHECK ({function}(tableoid, tenant_id))', \
                                  {schema}, t.relname, {check}, {check}); \
                 ELSE \
                   EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK ({function}(tableoid, tenant_id))', \
                                  {schema}, t.relname, {check}); \
                 END IF; \
               END LOOP; \
             END $$",
            schema = quote_literal(schema),
            check = quote_literal(TENANT_ID_CHECK),
            signature = quote_literal(&format!("{PIN_FUNCTION}(oid, uuid)")),
            function = PIN_FUNCTION,
        )),
    )
    .await?;
    Ok(())
}

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

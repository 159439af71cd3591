//! The tenant in PostgreSQL: per service database, the service database itself (created and
//! migrated if missing), the tenant schema with its NOLOGIN owner, the tenant-schema migrations,
//! row-level security, grants, and the tenant's own login role; suspension (NOLOGIN and its
//! sessions ended), drift observation from the catalogs, and cleanup.
//!
//! Everything runs as the operator's administrative role, straight to PostgreSQL (DDL does not
//! go through PgBouncer). The SQL that creates schemas and roles lives in
//! `prismicx_store::pg::migrate`, shared with the services and the local platform.

use anyhow::{Context as _, Result};
use prismicx_store::pg::migrate::{self, DatabaseRoles};
use prismicx_store::pg::{lint, query, query_as, query_scalar, quote_ident, SYSTEM_SCHEMA};
use prismicx_store::Secret;
use prismicx_tenancy::TenantSlug;
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

use super::plan::{PgPlan, TenantPlan};
use crate::catalog::PostgresLayout;
use crate::dataplane::DataPlane;

const SCHEMA_COMMENT_PREFIX: &str = "prismicx tenant ";

/// Runs an idempotent step again (at most 5 more times, with a short growing pause) when it
/// failed on concurrent DDL: other reconciles change the same catalog rows (a database's ACL,
/// shared roles), and PostgreSQL then answers "tuple concurrently updated" or a deadlock.
pub async fn retry_concurrent<T, F, Fut>(mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0u64;
    loop {
        match step().await {
            Err(e) if tries < 5 && migrate::is_concurrent_ddl_error(&e) => {
                tries += 1;
                tracing::debug!(error = %e, tries, "concurrent DDL; retrying the step");
                tokio::time::sleep(std::time::Duration::from_millis(25 * tries)).await;
            }
            other => return other,
        }
    }
}

/// Creates the service database if it does not exist and applies its system migrations (once
/// per database and process; see [`DataPlane::is_ensured`]).
pub async fn ensure_database(
    dp: &DataPlane,
    database: &str,
    layout: &PostgresLayout,
) -> Result<()> {
    if dp.is_ensured(database) {
        return Ok(());
    }
    let mut admin = dp.pg("postgres").await?;
    let exists: bool = query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(database)
        .fetch_one(&mut *admin)
        .await?;
    if !exists {
        match admin
            .execute(format!("CREATE DATABASE {}", quote_ident(database)).as_str())
            .await
        {
            Ok(_) => tracing::info!(database, "created service database"),
            // Created concurrently by another reconcile: fine.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e).with_context(|| format!("creating database {database}")),
        }
    }
    let mut conn = dp.pg(database).await?;
    migrate::apply_system(&mut conn, &layout.schema)
        .await
        .with_context(|| format!("system migrations of {database}"))?;
    hide_role_settings(dp, database).await?;
    dp.mark_ensured(database);
    Ok(())
}

/// Keeps `pg_db_role_setting` (every login's per-database defaults, `app.tenant_id` among
/// them) from the roles that can connect: revoked from PUBLIC in the service database and in
/// `postgres` (CONNECT for PUBLIC by default), and CONNECT on `template1` revoked from PUBLIC
/// (connecting there to change it would block every CREATE DATABASE while connected). A
/// non-superuser operator can do none of it; that is logged.
async fn hide_role_settings(dp: &DataPlane, database: &str) -> Result<()> {
    for db in [database, "postgres"] {
        let hidden = retry_concurrent(|| async move {
            let mut conn = dp.pg(db).await?;
            migrate::hide_role_settings(&mut conn).await
        })
        .await
        .with_context(|| format!("hiding role settings in {db}"))?;
        if !hidden {
            tracing::warn!(
                database = db,
                "the operator is not a superuser: every role can read the role defaults \
                 (app.tenant_id of each tenant login) in pg_db_role_setting"
            );
        }
    }
    retry_concurrent(|| async move {
        let mut conn = dp.pg("postgres").await?;
        let (is_super, public_connects): (bool, bool) = query_as(
            "SELECT rolsuper, has_database_privilege('public', 'template1', 'CONNECT') \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *conn)
        .await?;
        if is_super && public_connects {
            conn.execute("REVOKE CONNECT ON DATABASE template1 FROM PUBLIC")
                .await?;
        }
        Ok(())
    })
    .await
    .context("revoking CONNECT on template1")
}

/// Provisions (or repairs) the tenant in one database; returns the applied schema version.
pub async fn apply(
    dp: &DataPlane,
    plan: &TenantPlan,
    pg: &PgPlan,
    password: &Secret<String>,
) -> Result<i32> {
    ensure_database(
        dp,
        pg.database,
        &PostgresLayout {
            database: pg.database,
            schema: pg.migrations,
        },
    )
    .await?;
    let mut conn = dp.pg(pg.database).await?;
    let version = migrate::provision_tenant(&mut conn, &pg.migrations, &plan.slug, plan.tenant_id)
        .await
        .with_context(|| format!("tenant schema in {}", pg.database))?;
    // Who owns the schema is recorded in the platform's private table, never in the schema's
    // comment (pg_description is readable by every role).
    migrate::register_tenant_schema(&mut conn, &plan.slug, plan.tenant_id, Some(&plan.namespace))
        .await
        .with_context(|| format!("registering the tenant schema in {}", pg.database))?;
    if schema_comment_of(&mut conn, &pg.schema)
        .await?
        .as_deref()
        .and_then(parse_schema_comment)
        .is_some()
    {
        conn.execute(format!("COMMENT ON SCHEMA {} IS NULL", quote_ident(&pg.schema)).as_str())
            .await?;
    }
    revoke_public(&mut conn, &pg.schema).await?;
    let login_exists = role_exists(&mut conn, &pg.login_role).await?;
    if !plan.suspended || !login_exists {
        migrate::ensure_tenant_login(&mut conn, &plan.slug, plan.tenant_id, password)
            .await
            .with_context(|| format!("tenant login in {}", pg.database))?;
    }
    Ok(version)
}

/// The tenant's schema and tables granted to PUBLIC (every role, other tenants' logins
/// included) out of band.
async fn public_grants(conn: &mut PgConnection, schema: &str) -> Result<Vec<String>> {
    Ok(query_scalar(
        "SELECT n.nspname::text FROM pg_namespace n \
           WHERE n.nspname = $1 AND has_schema_privilege('public', n.oid, 'USAGE') \
         UNION ALL \
         SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v') \
             AND has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE')",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?)
}

/// Takes back what PUBLIC was granted on the tenant's schema (only when something was: a
/// REVOKE rewrites the catalog row, and every reconcile runs this).
async fn revoke_public(conn: &mut PgConnection, schema: &str) -> Result<()> {
    if public_grants(conn, schema).await?.is_empty() {
        return Ok(());
    }
    let s = quote_ident(schema);
    conn.execute(
        format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM PUBLIC; REVOKE ALL ON SCHEMA {s} FROM PUBLIC"
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

/// Lets the tenant's login role log in, or not; refusing also ends its open sessions.
pub async fn set_login(dp: &DataPlane, plan: &TenantPlan, enabled: bool) -> Result<()> {
    let login = plan.login_role();
    let mut conn = dp.pg("postgres").await?;
    if !role_exists(&mut conn, &login).await? {
        return Ok(());
    }
    conn.execute(
        format!(
            "ALTER ROLE {} {}",
            quote_ident(&login),
            if enabled { "LOGIN" } else { "NOLOGIN" }
        )
        .as_str(),
    )
    .await?;
    if !enabled {
        terminate_sessions(&mut conn, &login).await?;
    }
    Ok(())
}

async fn terminate_sessions(conn: &mut PgConnection, role: &str) -> Result<()> {
    query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()")
        .bind(role)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn schema_comment_of(conn: &mut PgConnection, schema: &str) -> Result<Option<String>> {
    Ok(query_scalar(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1",
    )
    .bind(schema)
    .fetch_optional(&mut *conn)
    .await?
    .flatten())
}

async fn role_exists(conn: &mut PgConnection, role: &str) -> Result<bool> {
    Ok(
        query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await?,
    )
}

async fn database_exists(dp: &DataPlane, database: &str) -> Result<bool> {
    let mut admin = dp.pg("postgres").await?;
    Ok(
        query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut *admin)
            .await?,
    )
}

#[derive(sqlx::FromRow)]
struct Facts {
    schema_owner: Option<String>,
    owner_can_login: Option<bool>,
    login_can_login: Option<bool>,
    app_usage: Option<bool>,
    login_usage: Option<bool>,
    login_connect: Option<bool>,
}

/// Compares the catalogs of one database with the plan; returns what differs (empty: in sync).
pub async fn observe(dp: &DataPlane, plan: &TenantPlan, pg: &PgPlan) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if !database_exists(dp, pg.database).await? {
        out.push(format!("database {} is missing", pg.database));
        return Ok(out);
    }
    let mut conn = dp.pg(pg.database).await?;
    let app = DatabaseRoles::for_database(pg.database).app;
    let f: Facts = query_as(
        "SELECT \
           (SELECT r.rolname::text FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = $1) AS schema_owner, \
           (SELECT rolcanlogin FROM pg_roles WHERE rolname = $2) AS owner_can_login, \
           (SELECT rolcanlogin FROM pg_roles WHERE rolname = $3) AS login_can_login, \
           CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $4) \
                THEN has_schema_privilege($4, $1, 'USAGE') END AS app_usage, \
           CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $3) \
                THEN has_schema_privilege($3, $1, 'USAGE') END AS login_usage, \
           CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $3) \
                THEN has_database_privilege($3, current_database(), 'CONNECT') END AS login_connect",
    )
    .bind(&pg.schema)
    .bind(&pg.owner_role)
    .bind(&pg.login_role)
    .bind(&app)
    .fetch_one(&mut *conn)
    .await?;
    let db = pg.database;
    for granted in public_grants(&mut conn, &pg.schema).await? {
        out.push(format!("{db}: {granted} is granted to PUBLIC"));
    }
    match f.schema_owner.as_deref() {
        None => out.push(format!("{db}: schema {} is missing", pg.schema)),
        Some(o) if o != pg.owner_role => {
            out.push(format!("{db}: schema {} is owned by {o}", pg.schema))
        }
        _ => {}
    }
    match f.owner_can_login {
        None => out.push(format!("role {} is missing", pg.owner_role)),
        Some(true) => out.push(format!("role {} can log in", pg.owner_role)),
        _ => {}
    }
    match f.login_can_login {
        None => out.push(format!("role {} is missing", pg.login_role)),
        Some(can) if can == plan.suspended => out.push(format!(
            "role {} {} log in while the tenant is {}",
            pg.login_role,
            if can { "can" } else { "cannot" },
            if plan.suspended {
                "suspended"
            } else {
                "active"
            }
        )),
        _ => {}
    }
    if f.app_usage == Some(false) {
        out.push(format!("{db}: {app} lost USAGE on {}", pg.schema));
    }
    if f.login_usage == Some(false) {
        out.push(format!(
            "{db}: {} lost USAGE on {}",
            pg.login_role, pg.schema
        ));
    }
    if f.login_connect == Some(false) && !plan.suspended {
        out.push(format!("{db}: {} lost CONNECT", pg.login_role));
    }
    if let Some(limits) = migrate::login_limits(&mut conn, &pg.login_role).await? {
        if limits != migrate::LoginLimits::TENANT_DEFAULT {
            out.push(format!(
                "role {} has limits {limits:?}, not the platform's",
                pg.login_role
            ));
        }
    }
    if f.schema_owner.is_some() {
        match migrate::registered_tenant_schema(&mut conn, &plan.slug).await? {
            Some((id, ns)) if id == plan.tenant_id && ns == plan.namespace => {}
            _ => out.push(format!(
                "{db}: schema {} is not registered to the tenant in {}",
                pg.schema,
                migrate::TENANT_SCHEMAS_TABLE
            )),
        }
        if schema_comment_of(&mut conn, &pg.schema)
            .await?
            .as_deref()
            .and_then(parse_schema_comment)
            .is_some()
        {
            out.push(format!(
                "{db}: schema {} has a comment naming its tenant",
                pg.schema
            ));
        }
        // The tenant's schema, the shared tables and the services' app role, checked against
        // the tenancy contract.
        for v in lint::lint_tenant_schema(&mut conn, std::slice::from_ref(&app), &pg.schema).await?
        {
            out.push(format!("{db}: {}: {}", v.object, v.problem));
        }
        match migrate::tenant_version(&mut conn, &plan.slug).await? {
            Some(v) if v >= pg.migrations.tenant_version() => {}
            other => out.push(format!(
                "{db}: schema version {} behind {}",
                other.unwrap_or(0),
                pg.migrations.tenant_version()
            )),
        }
    }
    Ok(out)
}

/// The comment earlier versions of the operator put on a tenant schema:
/// `prismicx tenant <uuid> namespace <ns>` (still read when the private registration is
/// missing, and removed when the tenant is applied).
pub fn schema_comment(tenant_id: Uuid, namespace: &str) -> String {
    format!("{SCHEMA_COMMENT_PREFIX}{tenant_id} namespace {namespace}")
}

/// The tenant id and owning namespace a schema comment records.
pub fn parse_schema_comment(comment: &str) -> Option<(Uuid, String)> {
    let rest = comment.strip_prefix(SCHEMA_COMMENT_PREFIX)?;
    let (id, ns) = rest.split_once(" namespace ")?;
    Some((Uuid::parse_str(id.trim()).ok()?, ns.trim().to_string()))
}

/// The id (and owning namespace) a tenant with this slug had when its data was retained, so a
/// re-created Tenant finds its data again: from the platform's private registration of its
/// schema ([`migrate::registered_tenant_schema`]), else from the comment older versions put on
/// the schema.
pub async fn retained_tenant_id(
    dp: &DataPlane,
    slug: &TenantSlug,
    databases: &[&str],
) -> Result<Option<(Uuid, String)>> {
    for db in databases {
        if !database_exists(dp, db).await? {
            continue;
        }
        let mut conn = dp.pg(db).await?;
        if let Some(found) = migrate::registered_tenant_schema(&mut conn, slug).await? {
            return Ok(Some(found));
        }
        let comment = schema_comment_of(&mut conn, &slug.pg_schema()).await?;
        if let Some(found) = comment.as_deref().and_then(parse_schema_comment) {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Probes isolation in one database acting as the tenant's login role (`SET ROLE`, so it works
/// while suspended too) and as the services' app role in the tenant's context. Returns what was
/// checked; fails naming what leaked.
pub async fn probe(dp: &DataPlane, plan: &TenantPlan, pg: &PgPlan) -> Result<Vec<String>> {
    let mut conn = dp.pg(pg.database).await?;
    let db = pg.database;
    let app = DatabaseRoles::for_database(db).app;
    let me = plan.tenant_id.to_string();
    let mut checked = Vec::new();

    // The login role's own default tenant is this tenant.
    let default: Option<String> = query_scalar(
        "SELECT s.setting FROM pg_db_role_setting d \
           JOIN pg_roles r ON r.oid = d.setrole \
           JOIN pg_database b ON b.oid = d.setdatabase AND b.datname = current_database(), \
           unnest(d.setconfig) AS s(setting) \
         WHERE r.rolname = $1 AND s.setting LIKE 'app.tenant_id=%'",
    )
    .bind(&pg.login_role)
    .fetch_optional(&mut *conn)
    .await?;
    anyhow::ensure!(
        default.as_deref() == Some(format!("app.tenant_id={me}").as_str()),
        "{db}: {} does not default to its own tenant id",
        pg.login_role
    );

    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    tx.execute(format!("SET LOCAL ROLE {}", quote_ident(&pg.login_role)).as_str())
        .await?;
    let reachable: Vec<String> = query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE ((nspname LIKE 'tenant\\_%' AND nspname <> $1) OR nspname = $2 OR nspname = $3) \
           AND has_schema_privilege(oid, 'USAGE') ORDER BY 1",
    )
    .bind(&pg.schema)
    .bind(SYSTEM_SCHEMA)
    .bind(migrate::PLATFORM_SCHEMA)
    .fetch_all(&mut *tx)
    .await?;
    anyhow::ensure!(
        reachable.is_empty(),
        "{db}: {} can use schemas {reachable:?}",
        pg.login_role
    );
    checked.push(format!("{db}: login reaches no other schema"));
    // What every role can read about this tenant's schema names no tenant: not its comment,
    // not its tables' constraints (cheap: this schema's objects only). The role defaults are
    // hidden when the operator could hide them (a superuser).
    let published: i64 = query_scalar(
        // The constraints are picked first (materialized), so only this schema's are
        // deparsed: deparsing a constraint of a table being dropped concurrently fails.
        "WITH k AS MATERIALIZED ( \
           SELECT k.oid FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1) \
         SELECT (SELECT count(*) FROM pg_description d JOIN pg_namespace n ON d.objoid = n.oid \
                  AND d.classoid = 'pg_namespace'::regclass \
                 WHERE n.nspname = $1 AND d.description LIKE '%' || $2 || '%') \
              + (SELECT count(*) FROM k WHERE pg_get_constraintdef(k.oid) LIKE '%' || $2 || '%')",
    )
    .bind(&pg.schema)
    .bind(&me)
    .fetch_one(&mut *tx)
    .await?;
    anyhow::ensure!(
        published == 0,
        "{db}: the catalogs show {} the tenant id of {}",
        pg.login_role,
        pg.schema
    );
    let (can_read_settings, operator_is_super): (bool, bool) = query_as(
        "SELECT has_table_privilege('pg_catalog.pg_db_role_setting', 'SELECT'), \
                (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)",
    )
    .fetch_one(&mut *tx)
    .await?;
    anyhow::ensure!(
        !(can_read_settings && operator_is_super),
        "{db}: {} can read every role's defaults in pg_db_role_setting",
        pg.login_role
    );
    checked.push(format!(
        "{db}: catalogs name no tenant id (role defaults {})",
        if can_read_settings {
            "readable: operator is not a superuser"
        } else {
            "hidden"
        }
    ));
    tx.rollback().await?;
    drop(conn);

    // Through PgBouncer, as the services' transactions run there: as the services' app role in
    // this tenant's context, no other tenant's row is visible in the shared tables, in the tenant's own schema, nor in the next [`RING_NEIGHBOURS`] tenant
    // schemas after this one (in name order, wrapping round): every tenant checks its
    // successors, so over one resync interval, when every tenant has been reconciled, every
    // tenant schema has been checked by others.
    let mut pooled = dp.pooled(db).await?;
    let mut tx = sqlx::Connection::begin(&mut *pooled).await?;
    tx.execute(format!("SET LOCAL ROLE {}", quote_ident(&app)).as_str())
        .await?;
    query("SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true)")
        .bind(&me)
        .bind(quote_ident(&pg.schema))
        .execute(&mut *tx)
        .await?;
    // Candidate schemas first (materialized), so the privilege function runs only on their
    // tables, not on every table of every tenant. Schemas the app role cannot use (another
    // tenant's drifted grant) show nothing and are skipped.
    let tables: Vec<(String, String)> = query_as(
        "WITH others AS MATERIALIZED ( \
           SELECT oid, nspname, nspname > $2 AS after FROM pg_namespace \
             WHERE nspname LIKE 'tenant\\_%' AND nspname <> $2 \
               AND has_schema_privilege(oid, 'USAGE') \
         ), ns AS MATERIALIZED ( \
           SELECT oid, nspname FROM pg_namespace WHERE nspname = $1 OR nspname = $2 \
           UNION ALL \
           (SELECT oid, nspname FROM others ORDER BY after DESC, nspname LIMIT $3) \
         ), t AS MATERIALIZED ( \
           SELECT n.nspname, c.relname, c.oid FROM pg_class c \
             JOIN ns n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
           WHERE c.relkind IN ('r', 'p') \
         ) \
         SELECT nspname::text, relname::text FROM t \
         WHERE has_table_privilege(oid, 'SELECT') ORDER BY 1, 2",
    )
    .bind(SYSTEM_SCHEMA)
    .bind(&pg.schema)
    .bind(RING_NEIGHBOURS)
    .fetch_all(&mut *tx)
    .await?;
    for (schema, table) in &tables {
        // Another tenant's schema may lose its grant or be dropped between the sampling and
        // the count (its own reconcile, drift): in a savepoint, such a table is skipped.
        let mut sp = sqlx::Connection::begin(&mut *tx).await?;
        let counted: std::result::Result<i64, sqlx::Error> = query_scalar(&format!(
            "SELECT count(*) FROM {}.{} WHERE tenant_id IS DISTINCT FROM $1::uuid",
            quote_ident(schema),
            quote_ident(table)
        ))
        .bind(&me)
        .fetch_one(&mut *sp)
        .await;
        let foreign = match counted {
            Ok(n) => {
                sp.commit().await?;
                n
            }
            Err(sqlx::Error::Database(e))
                if schema != SYSTEM_SCHEMA
                    && matches!(e.code().as_deref(), Some("42501" | "42P01" | "3F000")) =>
            {
                sp.rollback().await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        anyhow::ensure!(
            foreign == 0,
            "{db}: {foreign} rows of other tenants visible in {schema}.{table}"
        );
    }
    checked.push(format!(
        "{db}: no foreign row in {} shared, own and neighbouring tenants' tables",
        tables.len()
    ));
    tx.rollback().await?;
    Ok(checked)
}

/// Other tenants' schemas each probe reads (see [`probe`]).
pub const RING_NEIGHBOURS: i64 = 3;

/// Takes back from the tenant's login every privilege on a schema other than its own (a grant
/// made out of band, which [`probe`] reports); returns the schemas repaired.
pub async fn revoke_foreign_grants(dp: &DataPlane, pg: &PgPlan) -> Result<Vec<String>> {
    let mut conn = dp.pg(pg.database).await?;
    let reachable: Vec<String> = query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE ((nspname LIKE 'tenant\\_%' AND nspname <> $2) OR nspname = $3 OR nspname = $4) \
           AND has_schema_privilege($1, oid, 'USAGE') ORDER BY 1",
    )
    .bind(&pg.login_role)
    .bind(&pg.schema)
    .bind(SYSTEM_SCHEMA)
    .bind(migrate::PLATFORM_SCHEMA)
    .fetch_all(&mut *conn)
    .await?;
    for schema in &reachable {
        let (s, l) = (quote_ident(schema), quote_ident(&pg.login_role));
        conn.execute(
            format!(
                "REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {l}; REVOKE ALL ON SCHEMA {s} FROM {l}"
            )
            .as_str(),
        )
        .await?;
    }
    Ok(reachable
        .into_iter()
        .map(|s| format!("{}: revoked {}'s grants on {s}", pg.database, pg.login_role))
        .collect())
}

/// Revokes the tenant's access to every service database and, with `drop`, drops its schemas,
/// its rows in shared tables and its roles. Whatever is already gone counts as done.
pub async fn cleanup(
    dp: &DataPlane,
    plan: &TenantPlan,
    databases: &[&str],
    drop: bool,
) -> Result<()> {
    let login = plan.login_role();
    let owner = plan.slug.pg_owner_role();
    // In this order: revoke CONNECT everywhere, forbid login and end the sessions, then drop.
    let mut present = Vec::new();
    for db in databases {
        if !database_exists(dp, db).await? {
            continue;
        }
        present.push(*db);
        let mut conn = dp.pg(db).await?;
        if role_exists(&mut conn, &login).await? {
            conn.execute(
                format!(
                    "REVOKE CONNECT ON DATABASE {} FROM {}",
                    quote_ident(db),
                    quote_ident(&login)
                )
                .as_str(),
            )
            .await?;
        }
    }
    set_login(dp, plan, false).await?;
    if !drop {
        return Ok(());
    }
    for db in present {
        let mut conn = dp.pg(db).await?;
        delete_shared_rows(&mut conn, db, plan.tenant_id).await?;
        conn.execute(
            format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_ident(&plan.slug.pg_schema())
            )
            .as_str(),
        )
        .await
        .with_context(|| format!("dropping the tenant schema in {db}"))?;
        migrate::unregister_tenant_schema(&mut conn, &plan.slug).await?;
        for role in [&owner, &login] {
            if role_exists(&mut conn, role).await? {
                conn.execute(format!("DROP OWNED BY {}", quote_ident(role)).as_str())
                    .await
                    .with_context(|| format!("DROP OWNED BY {role} in {db}"))?;
            }
        }
    }
    let mut conn = dp.pg("postgres").await?;
    for role in [&login, &owner] {
        conn.execute(format!("DROP ROLE IF EXISTS {}", quote_ident(role)).as_str())
            .await
            .with_context(|| format!("dropping role {role}"))?;
    }
    Ok(())
}

/// Deletes the tenant's rows from the shared tables of `db`, as their owner in the tenant's
/// context (so row-level security scopes the delete to the tenant).
async fn delete_shared_rows(conn: &mut PgConnection, db: &str, tenant_id: Uuid) -> Result<()> {
    let roles = DatabaseRoles::for_database(db);
    if !role_exists(conn, &roles.owner).await? {
        return Ok(());
    }
    let tables: Vec<String> = query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
    )
    .bind(SYSTEM_SCHEMA)
    .fetch_all(&mut *conn)
    .await?;
    if tables.is_empty() {
        return Ok(());
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    tx.execute(format!("SET LOCAL ROLE {}", quote_ident(&roles.owner)).as_str())
        .await?;
    query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await?;
    for t in tables {
        query(&format!(
            "DELETE FROM {}.{} WHERE tenant_id = $1::uuid",
            quote_ident(SYSTEM_SCHEMA),
            quote_ident(&t)
        ))
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_comments_round_trip() {
        let id = Uuid::from_u128(42);
        let c = schema_comment(id, "team-a");
        assert_eq!(parse_schema_comment(&c), Some((id, "team-a".to_string())));
        assert_eq!(
            parse_schema_comment("prismicx tenant not-a-uuid namespace x"),
            None
        );
        assert_eq!(parse_schema_comment("someone else's comment"), None);
    }
}

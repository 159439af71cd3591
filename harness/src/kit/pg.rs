//! PostgreSQL for a service's tests: a fresh database on the harness server with a service
//! schema's system migrations, each tenant's schema provisioned, a login role that reaches it
//! only through the harness PgBouncer (a dedicated tenant through its own pool alias), and the
//! [`TenantDb`] a service runs on.

use std::time::Duration;

use prismicx_service_common::config::Secret;
use prismicx_service_common::pg::lint::{lint_database, Violation};
use prismicx_service_common::pg::migrate::{self, DatabaseRoles, ServiceSchema};
use prismicx_service_common::pg::{dedicated_pool_alias, PgSettings, TenantDb};
use prismicx_service_common::tenancy::{TenantPlacement, TenantSlug, Tier};
use sqlx::PgConnection;

use crate::{servers, unique_name, PoolAlias};

/// How [`PgService::provision`] sets the database up.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Route the shared pool through a PgBouncer alias of this size (`<db>_shared`).
    pub shared_pool_alias_size: Option<u32>,
    /// The shared pool's size on the service side.
    pub pool_size: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            shared_pool_alias_size: None,
            pool_size: 8,
        }
    }
}

/// A provisioned service database on the harness servers.
#[derive(Debug)]
pub struct PgService {
    /// The database's name.
    pub db: String,
    /// The service's login role (`<db>_svc`).
    pub login: String,
    pub password: Secret<String>,
    /// What the service connects to through PgBouncer: the database, or the shared pool alias.
    pub dbname: String,
    pub pool_size: u32,
    /// The system schema version the migrations reached.
    pub system_version: i32,
    /// The tenant schema version each tenant reached, in the order given.
    pub tenant_versions: Vec<i32>,
}

impl PgService {
    /// A fresh database with `schema`'s system migrations, every tenant of `tenants` provisioned,
    /// a login role for the service and the PgBouncer aliases the tenants' tiers and `opts` need.
    pub async fn provision<'a>(
        schema: &ServiceSchema,
        tenants: impl IntoIterator<Item = &'a TenantPlacement>,
        opts: PgOptions,
    ) -> PgService {
        let s = servers();
        let db = s
            .postgres
            .create_database()
            .await
            .expect("create database")
            .name;
        let mut admin = s.postgres.admin_connect(&db).await.expect("admin connect");
        let system_version = migrate::apply_system(&mut admin, schema)
            .await
            .expect("system migrations");
        let login = format!("{db}_svc");
        let password = Secret::new(unique_name("pw"));
        migrate::ensure_login_role(&mut admin, &login, &password)
            .await
            .expect("login role");
        let mut aliases = Vec::new();
        let mut tenant_versions = Vec::new();
        for t in tenants {
            let v = migrate::provision_tenant(&mut admin, schema, &t.slug, t.id)
                .await
                .expect("tenant migrations");
            tenant_versions.push(v);
            if t.tier == Tier::Dedicated {
                aliases.push(PoolAlias {
                    name: dedicated_pool_alias(&db, &t.slug),
                    dbname: db.clone(),
                    pool_size: 2,
                });
            }
        }
        let mut dbname = db.clone();
        if let Some(size) = opts.shared_pool_alias_size {
            dbname = format!("{db}_shared");
            aliases.push(PoolAlias {
                name: dbname.clone(),
                dbname: db.clone(),
                pool_size: size,
            });
        }
        if !aliases.is_empty() {
            s.pgbouncer
                .set_aliases(&aliases)
                .await
                .expect("pgbouncer aliases");
        }
        PgService {
            db,
            login,
            password,
            dbname,
            pool_size: opts.pool_size,
            system_version,
            tenant_versions,
        }
    }

    /// A superuser connection straight to the database (not through PgBouncer), to see what
    /// really is stored.
    pub async fn admin(&self) -> PgConnection {
        servers()
            .postgres
            .admin_connect(&self.db)
            .await
            .expect("admin connect")
    }

    /// The catalog lint of the database with the service's login and app roles: what breaks
    /// the tenancy contract (docs/tenancy.md), empty when nothing does.
    pub async fn lint(&self) -> Vec<Violation> {
        let roles = [self.login.clone(), self.roles().app];
        lint_database(&mut self.admin().await, &roles)
            .await
            .expect("catalog lint")
    }

    /// A superuser's `SELECT count(*) FROM pg_tables WHERE <filter>`: how many tables the
    /// catalog lint had to inspect.
    pub async fn count_tables(&self, filter: &str) -> i64 {
        self.count_rows(&format!("pg_tables WHERE {filter}")).await
    }

    /// The catalog lint finds nothing, and it inspected `tables` tables: those of `pg_tables`
    /// matching `filter`.
    pub async fn expect_contract_kept(&self, filter: &str, tables: i64) {
        assert_eq!(self.lint().await, vec![]);
        let inspected = self.count_tables(filter).await;
        assert_eq!(inspected, tables, "tables inspected: {filter}");
    }

    /// A superuser's `SELECT count(*) FROM <table>` (`table` ready for SQL text, schema
    /// qualified and quoted as needed): what is stored, seen past row-level security.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        prismicx_service_common::pg::query_scalar(&sql)
            .fetch_one(&mut self.admin().await)
            .await
            .expect("count rows")
    }

    /// Provisions `tenant` of `schema` again: idempotent, at the schema's tenant version, which
    /// `tenant_version` reports, and the catalog still keeps the contract; a slug never
    /// provisioned has no version.
    pub async fn expect_reprovision_idempotent(
        &self,
        schema: &ServiceSchema,
        tenant: &TenantPlacement,
    ) {
        let mut admin = self.admin().await;
        let v = migrate::provision_tenant(&mut admin, schema, &tenant.slug, tenant.id)
            .await
            .expect("provision again");
        assert_eq!(v, schema.tenant_version());
        let seen = migrate::tenant_version(&mut admin, &tenant.slug).await;
        assert_eq!(seen.expect("tenant version"), Some(v));
        let none = TenantSlug::parse("never-provisioned").expect("a slug");
        let seen = migrate::tenant_version(&mut admin, &none).await;
        assert_eq!(seen.expect("tenant version"), None);
        assert_eq!(
            self.lint().await,
            vec![],
            "the catalog after provisioning again"
        );
    }

    /// The database's owner and app roles.
    pub fn roles(&self) -> DatabaseRoles {
        DatabaseRoles::for_database(&self.db)
    }

    /// Settings reaching `dbname` (the database or a pool alias) through PgBouncer as the login
    /// role, with a shared pool of `pool_size`.
    pub fn settings_for(&self, dbname: &str, pool_size: u32) -> PgSettings {
        PgSettings {
            host: "127.0.0.1".into(),
            port: servers().pgbouncer.port(),
            database: dbname.to_string(),
            user: self.login.clone(),
            password: self.password.clone(),
            pool_size,
            dedicated_pool_size: 2,
            acquire_timeout: Duration::from_secs(10),
        }
    }

    /// The settings the service runs with ([`PgOptions`]).
    pub fn settings(&self) -> PgSettings {
        self.settings_for(&self.dbname, self.pool_size)
    }

    /// The service's [`TenantDb`] (lazy: nothing connects until it is used).
    pub fn tenant_db(&self) -> TenantDb {
        TenantDb::connect_lazy(self.settings())
    }
}

/// Runs each of `statements` (SQL aimed at another tenant's rows) in one transaction of `tenant`
/// and expects none of them to touch a row; then commits, so that a write which slipped through
/// would stay for the test to see.
pub async fn expect_no_rows_touched(
    db: &TenantDb,
    tenant: &TenantPlacement,
    statements: &[String],
) {
    let mut tx = db
        .begin(tenant)
        .await
        .expect("begin the tenant's transaction");
    for sql in statements {
        let done = prismicx_service_common::pg::query(sql)
            .execute(tx.conn())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(
            done.rows_affected(),
            0,
            "{sql} touched another tenant's rows"
        );
    }
    tx.commit().await.expect("commit");
}

/// The SQLSTATE of a database error (`None` for any other error).
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Fails the test unless `result` (of `what`) is a database error with SQLSTATE `code`;
/// returns the error.
#[track_caller]
pub fn expect_sqlstate<T: std::fmt::Debug>(
    result: Result<T, sqlx::Error>,
    code: &str,
    what: &str,
) -> sqlx::Error {
    let err = match result {
        Ok(v) => panic!("{what}: expected SQLSTATE {code}, it succeeded: {v:?}"),
        Err(e) => e,
    };
    assert_eq!(sqlstate(&err).as_deref(), Some(code), "{what}: {err}");
    err
}

/// Tests, one a name, that each break a fresh service database's catalog with SQL and expect the
/// catalog lint to name the object with a problem containing the needle
/// ([`ServiceApp::expect_lint_catches`](super::ServiceApp::expect_lint_catches); `{login}`,
/// `{schemaN}` and `{identN}` in the texts stand for tenant N's names).
///
/// ```ignore
/// prismicx_harness::lint_catches! { spawn_app;
///     dropping_a_policy_is_caught => [("DROP POLICY p ON {schema0}.t", "{ident0}.t", "no policy")];
/// }
/// ```
#[macro_export]
macro_rules! lint_catches {
    ($spawn:path; $($name:ident => [$(($sql:expr, $object:expr, $needle:expr)),+ $(,)?];)+) => {
        $(
            #[tokio::test]
            async fn $name() {
                $($spawn().await.expect_lint_catches($sql, $object, $needle).await;)+
            }
        )+
    };
}

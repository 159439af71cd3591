//! PostgreSQL access that keeps the tenancy contract.
//!
//! Every tenant unit of work is one transaction opened by [`TenantDb::begin`]:
//! `BEGIN; SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true); …; COMMIT`.
//! Both settings are transaction-local, so nothing leaks to the next client of a PgBouncer
//! server connection. The pools are private to [`TenantDb`]: a service cannot reach a connection
//! without a tenant transaction.
//!
//! Statements must be unnamed (PgBouncer 1.18 in transaction mode cannot keep named prepared
//! statements): use [`query`], [`query_as`], [`query_scalar`] and [`build_query_as`], which set
//! `persistent(false)`. The workspace's `clippy.toml` forbids calling `sqlx::query*` directly.
//!
//! Standard tenants share the service database's pool; dedicated tenants get their own
//! PgBouncer pool alias ([`dedicated_pool_alias`]) and a small client pool of their own here.

pub mod lint;
pub mod migrate;
pub mod pgbouncer;
pub mod scram;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use crate::Secret;
pub use prismicx_tenancy::names::{dedicated_pool_alias, MAX_ALIAS_LEN, SYSTEM_SCHEMA};
use prismicx_tenancy::{TenantPlacement, Tier};

/// How a service reaches its database (through PgBouncer).
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub host: String,
    pub port: u16,
    /// The service database (e.g. `system_users`).
    pub database: String,
    /// The service's login role.
    pub user: String,
    pub password: Secret<String>,
    /// Client connections for the shared pool.
    pub pool_size: u32,
    /// Client connections per dedicated tenant's pool.
    pub dedicated_pool_size: u32,
    /// How long a request waits for a connection before a 503.
    pub acquire_timeout: Duration,
}

impl PgSettings {
    /// Connect options for database (or PgBouncer pool alias) `dbname`.
    pub fn connect_options(&self, dbname: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .database(dbname)
            .username(&self.user)
            .password(self.password.expose())
            .application_name("prismicx")
            // Named statements break behind a transaction pooler; keep none.
            .statement_cache_capacity(0)
    }
}

/// A quoted SQL identifier.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Tenant-scoped access to a service database.
#[derive(Debug)]
pub struct TenantDb {
    settings: PgSettings,
    shared: PgPool,
    dedicated: Mutex<HashMap<String, PgPool>>,
}

impl TenantDb {
    /// Creates the pools; connections open on first use (so a service starts while its database
    /// is still coming up, and `/readyz` reports it).
    pub fn connect_lazy(settings: PgSettings) -> Self {
        let shared = pool_options(settings.pool_size, settings.acquire_timeout)
            .connect_lazy_with(settings.connect_options(&settings.database));
        TenantDb {
            settings,
            shared,
            dedicated: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    fn pool_for(&self, tenant: &TenantPlacement) -> PgPool {
        if tenant.tier != Tier::Dedicated {
            return self.shared.clone();
        }
        let alias = dedicated_pool_alias(&self.settings.database, &tenant.slug);
        let mut pools = self.dedicated.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .entry(alias.clone())
            .or_insert_with(|| {
                pool_options(
                    self.settings.dedicated_pool_size,
                    self.settings.acquire_timeout,
                )
                .connect_lazy_with(self.settings.connect_options(&alias))
            })
            .clone()
    }

    /// Opens the tenant's transaction: `app.tenant_id` and `search_path` set transaction-locally.
    pub async fn begin(&self, tenant: &TenantPlacement) -> Result<TenantTx, sqlx::Error> {
        let mut tx = self.pool_for(tenant).begin().await?;
        query("SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true)")
            .bind(tenant.id.to_string())
            .bind(quote_ident(&tenant.slug.pg_schema()))
            .execute(&mut *tx)
            .await?;
        Ok(TenantTx {
            tx,
            tenant_id: tenant.id,
        })
    }

    /// Readiness: a round trip through PgBouncer to the database.
    pub async fn check(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.shared.begin().await?;
        query_scalar::<i32>("SELECT 1").fetch_one(&mut *tx).await?;
        tx.commit().await
    }

    /// Closes every pool (graceful shutdown).
    pub async fn close(&self) {
        self.shared.close().await;
        let pools: Vec<PgPool> = self
            .dedicated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for p in pools {
            p.close().await;
        }
    }
}

fn pool_options(size: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size.max(1))
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        // A ping would run outside a transaction; PgBouncer already checks its server side.
        .test_before_acquire(false)
}

/// One tenant transaction. Dropping it without [`TenantTx::commit`] rolls back.
#[derive(Debug)]
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant_id: Uuid,
}

impl TenantTx {
    /// The connection, for the query helpers of this module.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// The tenant this transaction acts for.
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// An unnamed (non-persistent) statement.
#[allow(clippy::disallowed_methods)]
pub fn query(sql: &str) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}

/// An unnamed statement mapped to `O`.
#[allow(clippy::disallowed_methods)]
pub fn query_as<'q, O>(sql: &'q str) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as(sql).persistent(false)
}

/// An unnamed statement returning one column.
#[allow(clippy::disallowed_methods)]
pub fn query_scalar<'q, O>(sql: &'q str) -> QueryScalar<'q, Postgres, O, PgArguments>
where
    (O,): for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(false)
}

/// An unnamed statement from a [`QueryBuilder`] (dynamic filters), mapped to `O`.
#[allow(clippy::disallowed_methods)]
pub fn build_query_as<'q, O>(
    qb: &'q mut QueryBuilder<'_, Postgres>,
) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    qb.build_query_as().persistent(false)
}

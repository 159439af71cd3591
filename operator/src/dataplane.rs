//! Connections to the platform's data servers: PostgreSQL (as an administrative role, straight
//! to the server), PgBouncer's admin console, mongodb-system, mongodb-tenant and Redis; plus the
//! addresses tenants use, which go into their credentials Secrets.
//!
//! Pools are created lazily, one small pool per PostgreSQL database, so a reconcile of many
//! tenants reuses connections instead of paying a connection per step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use prismicx_store::Secret;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres};
use tokio::sync::Mutex;

use crate::config::DataArgs;

/// Addresses as tenants (and PgBouncer) see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// PostgreSQL, for the Secret's `host`/`port`.
    pub postgres_host: String,
    pub postgres_port: u16,
    /// PgBouncer, for the Secret's `pooler-uri`.
    pub pooler_host: String,
    pub pooler_port: u16,
    /// PostgreSQL as PgBouncer reaches it (the host of every pool entry).
    pub pool_server_host: String,
    pub pool_server_port: u16,
    /// mongodb-tenant as tenants reach it.
    pub mongo_tenant_address: String,
    /// mongodb-system as the deployed services reach it.
    pub mongo_system_address: String,
}

/// The data servers.
#[derive(Clone)]
pub struct DataPlane {
    pg_admin: PgConnectOptions,
    pools: Arc<Mutex<HashMap<String, PgPool>>>,
    /// Pools of connections through PgBouncer (the isolation probe's path), per database.
    pooler_pools: Arc<Mutex<HashMap<String, PgPool>>>,
    /// Service databases created and migrated by this process (see [`DataPlane::is_ensured`]).
    ensured: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    pgbouncer_admin: PgConnectOptions,
    /// The include file PgBouncer reads its `[databases]` from.
    pub pgbouncer_databases_file: PathBuf,
    pub mongo_system: mongodb::Client,
    pub mongo_tenant: mongodb::Client,
    pub redis: redis::Client,
    pub endpoints: Endpoints,
    /// Pool size of a dedicated tenant whose spec names none.
    pub default_dedicated_pool_size: u32,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The pool of `db` in `pools`, made on first use (lazily connecting, up to `max` connections,
/// with `options`).
async fn cached_pool(
    pools: &Mutex<HashMap<String, PgPool>>,
    db: &str,
    max: u32,
    options: impl FnOnce() -> PgConnectOptions,
) -> PgPool {
    pools
        .lock()
        .await
        .entry(db.to_string())
        .or_insert_with(|| {
            PgPoolOptions::new()
                .max_connections(max)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(15))
                .idle_timeout(Duration::from_secs(60))
                .connect_lazy_with(options())
        })
        .clone()
}

/// Everything [`DataPlane::connect`] needs; built from flags ([`DataArgs`]) or by tests.
#[derive(Debug, Clone)]
pub struct DataPlaneSettings {
    /// The PostgreSQL superuser the operator provisions with.
    pub pg_admin: PgConnectOptions,
    /// PgBouncer's admin console (`RELOAD`, `SHOW DATABASES`).
    pub pgbouncer_admin: PgConnectOptions,
    /// The include file PgBouncer reads its `[databases]` from.
    pub pgbouncer_databases_file: PathBuf,
    /// mongodb-system: the services' system databases and the tenant registry.
    pub mongo_system_uri: Secret<String>,
    /// mongodb-tenant: dedicated tenants' databases and users.
    pub mongo_tenant_uri: Secret<String>,
    /// Redis, for tenant lifecycle events.
    pub redis_url: Secret<String>,
    /// Where the tenants and the deployed services reach the data servers.
    pub endpoints: Endpoints,
    /// Pool size of a dedicated tenant whose spec names none.
    pub default_dedicated_pool_size: u32,
}

/// Connection options of `user` at `host:port`.
fn login(host: &str, port: u16, user: &str, password: &Secret<String>) -> PgConnectOptions {
    PgConnectOptions::new()
        .host(host)
        .port(port)
        .username(user)
        .password(password.expose())
}

impl DataPlaneSettings {
    pub fn from_args(a: &DataArgs) -> Self {
        DataPlaneSettings {
            pg_admin: login(
                &a.postgres_host,
                a.postgres_port,
                &a.postgres_admin_user,
                &a.postgres_admin_password,
            )
            .application_name("prismicx-operator"),
            pgbouncer_admin: login(
                &a.pgbouncer_host,
                a.pgbouncer_port,
                &a.pgbouncer_admin_user,
                &a.pgbouncer_admin_password,
            )
            .database("pgbouncer"),
            pgbouncer_databases_file: a.pgbouncer_databases_file.clone(),
            mongo_system_uri: a.mongodb_system_uri.clone(),
            mongo_tenant_uri: a.mongodb_tenant_uri.clone(),
            redis_url: a.redis_url.clone(),
            endpoints: Endpoints {
                postgres_host: a.postgres_host.clone(),
                postgres_port: a.postgres_port,
                pooler_host: a.pgbouncer_host.clone(),
                pooler_port: a.pgbouncer_port,
                pool_server_host: a
                    .pgbouncer_server_host
                    .clone()
                    .unwrap_or_else(|| a.postgres_host.clone()),
                pool_server_port: a.pgbouncer_server_port.unwrap_or(a.postgres_port),
                mongo_tenant_address: a.mongodb_tenant_address.clone(),
                mongo_system_address: a.mongodb_system_address.clone(),
            },
            default_dedicated_pool_size: a.dedicated_pool_size,
        }
    }
}

impl DataPlane {
    /// Creates the clients (no connection is opened yet; the first use connects).
    pub async fn connect(s: DataPlaneSettings) -> Result<Self> {
        let mongo_system = mongodb::Client::with_uri_str(s.mongo_system_uri.expose())
            .await
            .context("parsing MONGODB_SYSTEM_URI")?;
        let mongo_tenant = mongodb::Client::with_uri_str(s.mongo_tenant_uri.expose())
            .await
            .context("parsing MONGODB_TENANT_URI")?;
        let redis =
            redis::Client::open(s.redis_url.expose().as_str()).context("parsing REDIS_URL")?;
        Ok(DataPlane {
            pg_admin: s.pg_admin,
            pools: Arc::default(),
            pooler_pools: Arc::default(),
            ensured: Arc::default(),
            pgbouncer_admin: s.pgbouncer_admin,
            pgbouncer_databases_file: s.pgbouncer_databases_file,
            mongo_system,
            mongo_tenant,
            redis,
            endpoints: s.endpoints,
            default_dedicated_pool_size: s.default_dedicated_pool_size,
        })
    }

    /// Administrative connect options for database `db`.
    pub fn pg_admin_options(&self, db: &str) -> PgConnectOptions {
        self.pg_admin.clone().database(db)
    }

    /// An administrative connection to `db` from that database's pool.
    pub async fn pg(&self, db: &str) -> Result<PoolConnection<Postgres>> {
        let pool = cached_pool(&self.pools, db, 4, || self.pg_admin_options(db)).await;
        pool.acquire()
            .await
            .with_context(|| format!("connecting to PostgreSQL database {db}"))
    }

    /// An administrative connection to `db` through PgBouncer, the way the services reach it
    /// (transaction mode: everything it runs is one transaction with transaction-local
    /// settings, and unnamed statements). The probe's PgBouncer pool is the administrative
    /// role's, one per database, so probing every tenant adds no server connection per tenant.
    pub async fn pooled(&self, db: &str) -> Result<PoolConnection<Postgres>> {
        let pool = cached_pool(&self.pooler_pools, db, 2, || {
            self.pg_admin_options(db)
                .host(&self.endpoints.pooler_host)
                .port(self.endpoints.pooler_port)
                .statement_cache_capacity(0)
        })
        .await;
        pool.acquire()
            .await
            .with_context(|| format!("connecting to {db} through PgBouncer"))
    }

    /// Whether this process already created and migrated service database `db`. Checked
    /// once per database and process rather than in every reconcile (the system migrations take
    /// a database-wide advisory lock); [`DataPlane::forget_ensured`] makes the next reconcile
    /// check again, as it does after drift was found.
    pub fn is_ensured(&self, db: &str) -> bool {
        self.ensured.lock().map(|e| e.contains(db)).unwrap_or(false)
    }

    pub fn mark_ensured(&self, db: &str) {
        if let Ok(mut e) = self.ensured.lock() {
            e.insert(db.to_string());
        }
    }

    pub fn forget_ensured(&self) {
        if let Ok(mut e) = self.ensured.lock() {
            e.clear();
        }
    }

    /// Closes and forgets the pool of `db` (before dropping that database).
    pub async fn forget_pool(&self, db: &str) {
        let pool = self.pools.lock().await.remove(db);
        if let Some(p) = pool {
            p.close().await;
        }
    }

    /// A connection to PgBouncer's admin console (simple query protocol only).
    pub async fn pgbouncer_admin(&self) -> Result<PgConnection> {
        PgConnection::connect_with(&self.pgbouncer_admin)
            .await
            .context("connecting to the PgBouncer admin console")
    }

    /// A Redis connection.
    pub async fn redis(&self) -> Result<redis::aio::MultiplexedConnection> {
        self.redis
            .get_multiplexed_async_connection()
            .await
            .context("connecting to Redis")
    }
}

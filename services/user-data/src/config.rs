//! Configuration from flags or environment (the platform's conventions: `USER_DB_*`,
//! `USER_DATA_LOG_LEVEL`, plus the shared `HOST`, `PORT`, `API_KEY`, …).

use std::time::Duration;

use clap::Parser;
use prismicx_service_common::config::{CommonArgs, Secret};
use prismicx_service_common::pg::PgSettings;

/// The platform's port for user-data-service.
pub const DEFAULT_PORT: u16 = 8502;

/// user-data-service: users, attributes, roles and memberships of PrismicX tenants.
#[derive(Debug, Clone, Parser)]
#[command(name = "user-data-service", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// PgBouncer host in front of postgres-system.
    #[arg(long, env = "USER_DB_HOST", default_value = "pgbouncer")]
    pub db_host: String,
    /// PgBouncer port.
    #[arg(long, env = "USER_DB_PORT", default_value_t = 6432)]
    pub db_port: u16,
    /// The service database.
    #[arg(long, env = "USER_DB_NAME", default_value = crate::migrations::DATABASE)]
    pub db_name: String,
    /// The service's login role (member of `<db>_app`, owns nothing).
    #[arg(long, env = "USER_DB_USER", default_value = "user_data_svc")]
    pub db_user: String,
    /// Password of the login role.
    #[arg(long, env = "USER_DB_PASSWORD", hide_env_values = true)]
    pub db_password: Secret<String>,
    /// Client connections to the shared pool.
    #[arg(long, env = "USER_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,
    /// Client connections per dedicated tenant's pool.
    #[arg(long, env = "USER_DB_DEDICATED_POOL_SIZE", default_value_t = 4)]
    pub db_dedicated_pool_size: u32,
    /// Seconds a request waits for a database connection before a 503.
    #[arg(long, env = "USER_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    pub db_acquire_timeout_secs: u64,
    /// An administrative connection URL (direct to PostgreSQL) used at start-up to apply the
    /// system migrations under an advisory lock; unset to leave migrations to the operator.
    #[arg(long, env = "USER_DB_MIGRATE_URL", hide_env_values = true)]
    pub db_migrate_url: Option<Secret<String>>,
    /// Log level: INFO, DEBUG, WARNING, ERROR, or a tracing filter.
    #[arg(long, env = "USER_DATA_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
}

impl Config {
    pub fn pg_settings(&self) -> PgSettings {
        PgSettings {
            host: self.db_host.clone(),
            port: self.db_port,
            database: self.db_name.clone(),
            user: self.db_user.clone(),
            password: self.db_password.clone(),
            pool_size: self.db_pool_size,
            dedicated_pool_size: self.db_dedicated_pool_size,
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_secs),
        }
    }
}

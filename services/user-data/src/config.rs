//! Configuration from flags or environment (the platform's conventions: `USER_DB_*`,
//! `USER_DATA_LOG_LEVEL`, plus the shared `HOST`, `PORT`, `API_KEY`, …).

use clap::Parser;
use prismicx_service_common::config::{CommonArgs, Secret};
use prismicx_service_common::pg_args;

pg_args!(DbArgs, "USER", crate::migrations::DATABASE, "user_data_svc");

/// The platform's port for user-data-service.
pub const DEFAULT_PORT: u16 = 8502;

/// user-data-service: users, attributes, roles and memberships of PrismicX tenants.
#[derive(Debug, Clone, Parser)]
#[command(name = "user-data-service", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// An administrative connection URL (direct to PostgreSQL) used at start-up to apply the
    /// system migrations under an advisory lock; unset to leave migrations to the operator.
    #[arg(long, env = "USER_DB_MIGRATE_URL", hide_env_values = true)]
    pub db_migrate_url: Option<Secret<String>>,
    /// Log level: INFO, DEBUG, WARNING, ERROR, or a tracing filter.
    #[arg(long, env = "USER_DATA_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
}

//! Configuration from flags or environment (the platform's conventions: `MONGODB_URI`,
//! `TENANT_MGMT_LOG_LEVEL`, plus the shared `HOST`, `PORT`, `API_KEY`, `REDIS_URL`, …).

use clap::Parser;
use prismicx_service_common::config::{CommonArgs, MongoArgs};

/// The platform's port for tenant-mgmt-service.
pub const DEFAULT_PORT: u16 = 8501;

/// tenant-mgmt-service: the tenant registry, tenant settings and tenant API keys.
#[derive(Debug, Clone, Parser)]
#[command(name = "tenant-mgmt-service", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Log level: INFO, DEBUG, WARNING, ERROR, or a tracing filter.
    #[arg(long, env = "TENANT_MGMT_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
}

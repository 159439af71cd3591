//! Configuration from flags or environment (the platform's conventions: `MONGODB_URI`,
//! `MONGODB_TENANT_URI`, `TASK_REPO_LOG_LEVEL`, plus the shared `HOST`, `PORT`, `API_KEY`, …).

use clap::Parser;
use prismicx_service_common::config::{CommonArgs, MongoArgs};

/// The platform's port for task-repo-service.
pub const DEFAULT_PORT: u16 = 8503;

/// task-repo-service: tasks of PrismicX tenants (MongoDB `task_repository`).
#[derive(Debug, Clone, Parser)]
#[command(name = "task-repo-service", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// mongodb-system (the `task_repository` database) and mongodb-tenant (dedicated tenants).
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Log level: INFO, DEBUG, WARNING, ERROR, or a tracing filter.
    #[arg(long, env = "TASK_REPO_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
}

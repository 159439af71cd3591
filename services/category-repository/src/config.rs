//! Configuration from flags or environment (the platform's conventions: `MONGODB_URI`,
//! `MONGODB_TENANT_URI`, `CATEGORY_REPOSITORY_LOG_LEVEL`, plus the shared `HOST`, `PORT`,
//! `API_KEY`, …).

use clap::Parser;
use prismicx_service_common::config::{CommonArgs, MongoArgs};

/// The container port of category-repository-service (its Kubernetes Service exposes 8504).
pub const DEFAULT_PORT: u16 = 8080;

/// category-repository-service: hierarchical categories of PrismicX tenants.
#[derive(Debug, Clone, Parser)]
#[command(name = "category-repository-service", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// mongodb-system (database `category_repository`) and mongodb-tenant.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Log level: INFO, DEBUG, WARNING, ERROR, or a tracing filter.
    #[arg(long, env = "CATEGORY_REPOSITORY_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_environment_names() {
        let c = Config::try_parse_from([
            "category-repository-service",
            "--api-key",
            "k",
            "--mongodb-uri",
            "mongodb://127.0.0.1:1",
        ])
        .expect("parses");
        assert_eq!(c.log_level, "INFO");
        assert!(c.mongo.mongodb_tenant_uri.is_none());
        assert_eq!(c.common.port, None);
    }
}

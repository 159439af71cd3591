//! Configuration from flags or environment (the platform's conventions: `MANAGEMENT_DB_*` for
//! PostgreSQL through PgBouncer, `MONGODB_URI` / `MONGODB_TENANT_URI` for `config_db`,
//! `MANAGEMENT_SYSTEM_REPO_LOG_LEVEL`, plus the shared `HOST`, `PORT`, `API_KEY`, …).

use std::time::Duration;

use clap::Parser;
use prismicx_service_common::config::{CommonArgs, MongoArgs};
use prismicx_service_common::pg_args;

use crate::schema::gate::GateSettings;

pg_args!(
    DbArgs,
    "MANAGEMENT",
    crate::migrations::DATABASE,
    "management_system_repository_svc"
);

/// The platform's container port for management-system-repo (exposed as 8505).
pub const DEFAULT_PORT: u16 = 8080;

/// management-system-repo: management systems, their versions and relations, and their
/// versioned configurations.
#[derive(Debug, Clone, Parser)]
#[command(name = "management-system-repo", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// MongoDB servers holding `config_db` (standard tenants) and dedicated tenants' databases.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Milliseconds a configSchema compile or a configuration validation may run before its
    /// request is answered 422.
    #[arg(
        long,
        env = "MANAGEMENT_SCHEMA_CHECK_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub schema_check_timeout_ms: u64,
    /// Schema compiles and validations running at once (0: the number of CPUs, at least 2); one
    /// tenant may use half of them.
    #[arg(long, env = "MANAGEMENT_SCHEMA_CHECKS", default_value_t = 0)]
    pub schema_checks: usize,
    /// Log level: INFO, DEBUG, WARNING, ERROR, or a tracing filter.
    #[arg(long, env = "MANAGEMENT_SYSTEM_REPO_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
}

impl Config {
    pub fn schema_gate(&self) -> GateSettings {
        let mut g = GateSettings::default();
        if self.schema_checks > 0 {
            g.concurrent = self.schema_checks;
            g.per_tenant = (self.schema_checks / 2).max(1);
        }
        g.deadline = Duration::from_millis(self.schema_check_timeout_ms.max(1));
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_platform() {
        let c = Config::try_parse_from([
            "management-system-repo",
            "--api-key",
            "k",
            "--db-password",
            "pw",
            "--mongodb-uri",
            "mongodb://localhost:27018",
        ])
        .expect("parses");
        assert_eq!(c.db.db_name, "management_system_repository");
        assert_eq!(c.db.db_port, 6432);
        assert_eq!(c.log_level, "INFO");
        assert_eq!(c.schema_gate().deadline, Duration::from_secs(2));
        assert!(c.schema_gate().per_tenant < c.schema_gate().concurrent);
        assert!(!format!("{c:?}").contains("pw\""));
        assert!(!format!("{c:?}").contains("localhost:27018"));
    }
}

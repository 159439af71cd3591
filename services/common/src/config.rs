//! Configuration shared by every service, read from flags or the platform's environment
//! variables (`SERVICE_NAME`, `HOST`, `PORT`, `API_KEY`, …). Service-specific settings
//! (`*_DB_*`, `*_LOG_LEVEL`) live in each service's own config and use [`Secret`] for passwords.

use std::path::PathBuf;
use std::time::Duration;

pub use prismicx_store::Secret;

/// Settings every service reads the same way.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Service identifier used in logs and metrics (e.g. `user-data-service`).
    #[arg(long, env = "SERVICE_NAME")]
    pub service_name: Option<String>,
    /// Address to bind.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to bind (each service has its platform default).
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// The platform API key: full access to every tenant (the tenant is named by `X-Tenant`).
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Secret<String>,
    /// tenant-mgmt's URL (e.g. `http://tenant-mgmt-service:8501`): tenants and tenant API keys
    /// are resolved through its internal API. Takes precedence over `TENANT_REGISTRY_FILE`.
    #[arg(long, env = "TENANT_MGMT_URL")]
    pub tenant_mgmt_url: Option<String>,
    /// File with the tenant registry and tenant-scoped API keys (JSON; see docs/services.md),
    /// for running a service on its own, without tenant-mgmt.
    #[arg(long, env = "TENANT_REGISTRY_FILE")]
    pub tenant_registry_file: Option<PathBuf>,
    /// How long resolved tenants and verified keys stay cached in this process (seconds).
    /// Redis lifecycle events evict entries earlier.
    #[arg(long, env = "TENANT_CACHE_TTL_SECS", default_value_t = 30)]
    pub tenant_cache_ttl_secs: u64,
    /// How long an unknown key's miss stays cached (seconds; at most `TENANT_CACHE_TTL_SECS`): a
    /// repeated garbage key is answered 401 without asking the key store again. A `keysChanged`
    /// event clears it earlier.
    #[arg(long, env = "NEGATIVE_KEY_CACHE_TTL_SECS", default_value_t = 5)]
    pub negative_key_cache_ttl_secs: u64,
    /// Failed authentications one client (peer address; an IPv6 /64) may make per window before
    /// it is answered 429 without its key being looked up. 0: no limit.
    #[arg(long, env = "AUTH_FAILURE_LIMIT_PER_CLIENT", default_value_t = 20)]
    pub auth_failure_limit_per_client: u32,
    /// Failed authentications per window naming one tenant in `X-Tenant`. 0: no limit.
    #[arg(long, env = "AUTH_FAILURE_LIMIT_PER_TENANT", default_value_t = 100)]
    pub auth_failure_limit_per_tenant: u32,
    /// The window of the failed-authentication limits (seconds).
    #[arg(long, env = "AUTH_FAILURE_WINDOW_SECS", default_value_t = 60)]
    pub auth_failure_window_secs: u64,
    /// A header with the client's address set by a trusted proxy (e.g. `x-forwarded-for`; its
    /// last address counts). Unset: the peer address. Set it only when every request arrives
    /// through such a proxy, or clients can name themselves.
    #[arg(long, env = "RATE_LIMIT_CLIENT_IP_HEADER")]
    pub rate_limit_client_ip_header: Option<String>,
    /// Each tenant's platform default request rate (requests per second, fractions allowed;
    /// 0: no limit). A tenant's registry entry may carry its own (`rate_limit`).
    #[arg(long, env = "TENANT_RATE_LIMIT_RPS", default_value_t = 100.0)]
    pub tenant_rate_limit_rps: f64,
    /// The burst each tenant may make above its rate (requests).
    #[arg(long, env = "TENANT_RATE_LIMIT_BURST", default_value_t = 200)]
    pub tenant_rate_limit_burst: u32,
    /// How long a request over its tenant's budget is held before its 429 (milliseconds; 0:
    /// answered at once), so a client that retries at once is slowed down.
    #[arg(long, env = "TENANT_RATE_LIMIT_DELAY_MS", default_value_t = 250)]
    pub tenant_rate_limit_delay_ms: u64,
    /// Redis for lifecycle events (cache invalidation), e.g. `redis://redis-cache:6379`.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<Secret<String>>,
    /// Requests taking longer are answered 503 (seconds).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Largest accepted request body (bytes).
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Declares a PostgreSQL service's database flags as a clap `Args` struct named `$name`, to be
/// flattened into its `Config`: `--db-host`, `--db-port`, `--db-name`, `--db-user`,
/// `--db-password`, `--db-pool-size`, `--db-dedicated-pool-size` and
/// `--db-acquire-timeout-secs`, read from `<PREFIX>_DB_HOST` … `<PREFIX>_DB_ACQUIRE_TIMEOUT_SECS`.
/// The variable names are the contract with the chart and the operator, so each service passes
/// its own prefix, then its default database and login role:
/// `pg_args!(DbArgs, "USER", crate::migrations::DATABASE, "user_data_svc");`.
/// `$name::settings` turns the flags into the store's [`PgSettings`](crate::pg::PgSettings).
#[macro_export]
macro_rules! pg_args {
    ($name:ident, $prefix:literal, $database:expr, $user:literal) => {
        #[doc = concat!("The PostgreSQL flags, `", $prefix, "_DB_*`.")]
        #[derive(Debug, Clone, clap::Args)]
        pub struct $name {
            /// PgBouncer host in front of postgres-system.
            #[arg(long, env = concat!($prefix, "_DB_HOST"), default_value = "pgbouncer")]
            pub db_host: String,
            /// PgBouncer port.
            #[arg(long, env = concat!($prefix, "_DB_PORT"), default_value_t = 6432)]
            pub db_port: u16,
            /// The service database.
            #[arg(long, env = concat!($prefix, "_DB_NAME"), default_value = $database)]
            pub db_name: String,
            /// The service's login role (member of `<db>_app`, owns nothing).
            #[arg(long, env = concat!($prefix, "_DB_USER"), default_value = $user)]
            pub db_user: String,
            /// Password of the login role.
            #[arg(long, env = concat!($prefix, "_DB_PASSWORD"), hide_env_values = true)]
            pub db_password: $crate::config::Secret<String>,
            /// Client connections to the shared pool.
            #[arg(long, env = concat!($prefix, "_DB_POOL_SIZE"), default_value_t = 16)]
            pub db_pool_size: u32,
            /// Client connections per dedicated tenant's pool.
            #[arg(long, env = concat!($prefix, "_DB_DEDICATED_POOL_SIZE"), default_value_t = 4)]
            pub db_dedicated_pool_size: u32,
            /// Seconds a request waits for a database connection before a 503.
            #[arg(long, env = concat!($prefix, "_DB_ACQUIRE_TIMEOUT_SECS"), default_value_t = 5)]
            pub db_acquire_timeout_secs: u64,
        }

        impl $name {
            /// The connection settings of the shared and the dedicated pools.
            pub fn settings(&self) -> $crate::pg::PgSettings {
                $crate::pg::PgSettings {
                    host: self.db_host.clone(),
                    port: self.db_port,
                    database: self.db_name.clone(),
                    user: self.db_user.clone(),
                    password: self.db_password.clone(),
                    pool_size: self.db_pool_size,
                    dedicated_pool_size: self.db_dedicated_pool_size,
                    acquire_timeout: std::time::Duration::from_secs(self.db_acquire_timeout_secs),
                }
            }
        }
    };
}

/// The MongoDB servers of a MongoDB service (`MONGODB_URI`, `MONGODB_TENANT_URI`).
#[derive(Debug, Clone, clap::Args)]
pub struct MongoArgs {
    /// mongodb-system: the service database, holding standard tenants' shared collections.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: Secret<String>,
    /// mongodb-tenant: dedicated tenants' own databases. Defaults to `MONGODB_URI`.
    #[arg(long, env = "MONGODB_TENANT_URI", hide_env_values = true)]
    pub mongodb_tenant_uri: Option<Secret<String>>,
}

impl CommonArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn tenant_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.tenant_cache_ttl_secs)
    }

    /// The rate limits these settings describe.
    pub fn limits(&self) -> anyhow::Result<crate::ratelimit::Limits> {
        let client_ip_header = self
            .rate_limit_client_ip_header
            .as_deref()
            .map(|h| {
                axum::http::HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
                    anyhow::anyhow!("RATE_LIMIT_CLIENT_IP_HEADER is not a header name")
                })
            })
            .transpose()?;
        let rps = self.tenant_rate_limit_rps;
        if rps.is_nan() || rps < 0.0 || rps.is_infinite() {
            anyhow::bail!("TENANT_RATE_LIMIT_RPS must be a number of at least 0");
        }
        Ok(crate::ratelimit::Limits {
            auth_failures_per_client: self.auth_failure_limit_per_client,
            auth_failures_per_tenant: self.auth_failure_limit_per_tenant,
            auth_failure_window: Duration::from_secs(self.auth_failure_window_secs),
            tenant_rate: crate::ratelimit::RateLimit {
                rps: self.tenant_rate_limit_rps,
                burst: self.tenant_rate_limit_burst,
            },
            throttle_delay: Duration::from_millis(self.tenant_rate_limit_delay_ms.min(10_000)),
            client_ip_header,
            ..crate::ratelimit::Limits::off()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse(args: &[&str]) -> CommonArgs {
        let mut all = vec!["svc", "--api-key", "k"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().common
    }

    #[test]
    fn rate_limits_have_sane_defaults_and_refuse_nonsense() {
        let l = parse(&[]).limits().unwrap();
        assert_eq!(l.auth_failures_per_client, 20);
        assert_eq!(l.auth_failures_per_tenant, 100);
        assert_eq!(l.auth_failure_window, Duration::from_secs(60));
        assert_eq!(l.tenant_rate.rps, 100.0);
        assert_eq!(l.tenant_rate.burst, 200);
        assert!(l.client_ip_header.is_none());
        let l = parse(&[
            "--tenant-rate-limit-rps",
            "0",
            "--rate-limit-client-ip-header",
            "X-Forwarded-For",
        ])
        .limits()
        .unwrap();
        assert!(l.tenant_rate.is_off());
        assert_eq!(l.client_ip_header.unwrap().as_str(), "x-forwarded-for");
        assert!(parse(&["--tenant-rate-limit-rps=-1"]).limits().is_err());
        assert!(parse(&["--rate-limit-client-ip-header", "not a header"])
            .limits()
            .is_err());
    }

    crate::pg_args!(DemoDbArgs, "DEMO", "demo_db", "demo_svc");

    #[test]
    fn pg_args_read_the_prefixed_variables() {
        use clap::CommandFactory;
        #[derive(Debug, Parser)]
        struct DbCli {
            #[command(flatten)]
            db: DemoDbArgs,
        }
        let envs: Vec<String> = DbCli::command()
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            envs,
            [
                "DEMO_DB_HOST",
                "DEMO_DB_PORT",
                "DEMO_DB_NAME",
                "DEMO_DB_USER",
                "DEMO_DB_PASSWORD",
                "DEMO_DB_POOL_SIZE",
                "DEMO_DB_DEDICATED_POOL_SIZE",
                "DEMO_DB_ACQUIRE_TIMEOUT_SECS",
            ]
        );
        let s = DbCli::try_parse_from(["svc", "--db-password", "pw"])
            .unwrap()
            .db
            .settings();
        assert_eq!((s.host.as_str(), s.port), ("pgbouncer", 6432));
        assert_eq!(
            (s.database.as_str(), s.user.as_str()),
            ("demo_db", "demo_svc")
        );
        assert_eq!((s.pool_size, s.dedicated_pool_size), (16, 4));
        assert_eq!(s.acquire_timeout, Duration::from_secs(5));
        assert_eq!(s.password.expose(), "pw");
    }

    #[test]
    fn secrets_never_print() {
        let s: Secret<String> = "hunter2-very-secret".into();
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Secret<String>,
        }
        let h = Holder {
            password: s.clone(),
        };
        assert!(!format!("{h:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}

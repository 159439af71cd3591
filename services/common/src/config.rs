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

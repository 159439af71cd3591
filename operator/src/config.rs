//! The operator's configuration: flags, each also read from an environment variable (the Helm
//! chart sets the variables). Passwords and connection strings with credentials are
//! [`Secret`]s, so they never appear in logs or errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use prismicx_store::Secret;

/// Command-line and environment configuration of `prismicx-operator`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "prismicx-operator", version, about = "The PrismicX operator")]
pub struct OperatorArgs {
    /// Namespace whose Tenants are reconciled; unset: every namespace.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// The platform's namespace (the chart's release namespace): the only namespace whose
    /// DatabaseServices are deployed, since they hold the platform's database credentials. A
    /// DatabaseService in any other namespace is refused (`Degraded`, reason
    /// `OutsidePlatformNamespace`) and nothing is created or changed for it. Default: the
    /// operator's own namespace (`POD_NAMESPACE`).
    #[arg(long, env = "PLATFORM_NAMESPACE")]
    pub platform_namespace: Option<String>,

    /// Namespaces whose Tenants are reconciled (comma-separated); the operator then reads and
    /// writes Secrets in these namespaces only (and the platform namespace). Unset: the watched
    /// namespace (`WATCH_NAMESPACE`), else every namespace. A Tenant in any other namespace is
    /// not reconciled.
    #[arg(long, env = "TENANT_NAMESPACES", value_delimiter = ',')]
    pub tenant_namespaces: Vec<String>,

    /// Tenants reconciled at the same time.
    #[arg(long, env = "OPERATOR_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,

    /// Seconds between drift checks of a Ready tenant (the catalogs compared with the plan).
    #[arg(long, env = "RESYNC_INTERVAL_SECS", default_value_t = 300)]
    pub resync_interval_secs: u64,

    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Log level (ERROR, WARNING, INFO, DEBUG) or a tracing filter.
    #[arg(long, env = "OPERATOR_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,

    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// Take a Lease before reconciling, so only one replica acts at a time.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE",
        default_value = "prismicx-operator"
    )]
    pub lease_name: String,

    /// Namespace of the Lease (default: the watched namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Registry of the services' default images: a DatabaseService without `spec.image` runs
    /// `<registry>/<service k8s name>:<tag>`, e.g. `prismicx/user-data-service:0.1.0`.
    #[arg(long, env = "IMAGE_REGISTRY", default_value = "prismicx")]
    pub image_registry: String,

    /// Tag of the services' default images (default: the operator's version).
    #[arg(long, env = "IMAGE_TAG", default_value = env!("CARGO_PKG_VERSION"))]
    pub image_tag: String,

    /// `REDIS_URL` the deployed services get, as a plain value in their ConfigMap (used unless
    /// `--services-redis-secret` is set).
    #[arg(
        long,
        env = "SERVICES_REDIS_URL",
        default_value = "redis://redis-cache:6379"
    )]
    pub services_redis_url: String,

    /// A Secret (in each DatabaseService's namespace) whose key `--services-redis-secret-key`
    /// holds the services' `REDIS_URL`, for a Redis with credentials; replaces
    /// `--services-redis-url`.
    #[arg(long, env = "SERVICES_REDIS_SECRET")]
    pub services_redis_secret: Option<String>,

    /// The key of `--services-redis-secret` that holds the URL.
    #[arg(long, env = "SERVICES_REDIS_SECRET_KEY", default_value = "redis-url")]
    pub services_redis_secret_key: String,

    #[command(flatten)]
    pub data: DataArgs,
}

/// Where the data servers are, as the operator reaches them and as tenants reach them.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// PostgreSQL host the operator connects to (directly, not through PgBouncer).
    #[arg(long, env = "POSTGRES_HOST", default_value = "postgres-system")]
    pub postgres_host: String,
    #[arg(long, env = "POSTGRES_PORT", default_value_t = 5432)]
    pub postgres_port: u16,
    /// Administrative role: superuser, or CREATEROLE + CREATEDB.
    #[arg(long, env = "POSTGRES_ADMIN_USER", default_value = "postgres")]
    pub postgres_admin_user: String,
    #[arg(long, env = "POSTGRES_ADMIN_PASSWORD", hide_env_values = true)]
    pub postgres_admin_password: Secret<String>,

    /// PgBouncer host and port (the admin console, and what the tenants' `pooler-uri` names).
    #[arg(long, env = "PGBOUNCER_HOST", default_value = "pgbouncer")]
    pub pgbouncer_host: String,
    #[arg(long, env = "PGBOUNCER_PORT", default_value_t = 6432)]
    pub pgbouncer_port: u16,
    #[arg(long, env = "PGBOUNCER_ADMIN_USER", default_value = "postgres")]
    pub pgbouncer_admin_user: String,
    #[arg(long, env = "PGBOUNCER_ADMIN_PASSWORD", hide_env_values = true)]
    pub pgbouncer_admin_password: Secret<String>,
    /// The `[databases]` file PgBouncer `%include`s; the operator edits it and sends `RELOAD`.
    #[arg(long, env = "PGBOUNCER_DATABASES_FILE")]
    pub pgbouncer_databases_file: PathBuf,
    /// PostgreSQL host and port as PgBouncer reaches it (default: `--postgres-host`/`-port`).
    #[arg(long, env = "PGBOUNCER_SERVER_HOST")]
    pub pgbouncer_server_host: Option<String>,
    #[arg(long, env = "PGBOUNCER_SERVER_PORT")]
    pub pgbouncer_server_port: Option<u16>,
    /// PgBouncer pool size of a dedicated tenant whose spec names none.
    #[arg(long, env = "DEDICATED_POOL_SIZE", default_value_t = 10)]
    pub dedicated_pool_size: u32,

    /// mongodb-system: the services' system databases and the tenant registry.
    #[arg(long, env = "MONGODB_SYSTEM_URI", hide_env_values = true)]
    pub mongodb_system_uri: Secret<String>,
    /// mongodb-tenant: dedicated tenants' databases and users.
    #[arg(long, env = "MONGODB_TENANT_URI", hide_env_values = true)]
    pub mongodb_tenant_uri: Secret<String>,
    /// `host:port` of mongodb-tenant as tenants reach it (their Secret's `mongodb-uri`).
    #[arg(
        long,
        env = "MONGODB_TENANT_ADDRESS",
        default_value = "mongodb-tenant:27017"
    )]
    pub mongodb_tenant_address: String,
    /// `host:port` of mongodb-system as the deployed services reach it (their `MONGODB_URI`).
    #[arg(
        long,
        env = "MONGODB_SYSTEM_ADDRESS",
        default_value = "mongodb-system:27018"
    )]
    pub mongodb_system_address: String,

    /// Redis, for tenant lifecycle events.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Secret<String>,
}

impl OperatorArgs {
    pub fn resync_interval(&self) -> Duration {
        Duration::from_secs(self.resync_interval_secs.max(1))
    }
}

impl OperatorArgs {
    /// The flags with only the required ones set, plus `extra` (for unit tests).
    #[cfg(test)]
    pub(crate) fn for_test(extra: &[&str]) -> Self {
        use clap::Parser;
        let required = [
            "prismicx-operator",
            "--postgres-admin-password=x",
            "--pgbouncer-admin-password=x",
            "--pgbouncer-databases-file=/tmp/db.ini",
            "--mongodb-system-uri=mongodb://m",
            "--mongodb-tenant-uri=mongodb://m",
            "--redis-url=redis://r",
        ];
        #[allow(clippy::expect_used)]
        OperatorArgs::try_parse_from(required.iter().chain(extra)).expect("valid test flags")
    }
}

//! The PrismicX platform on one machine, with no cluster.
//!
//! [`up`] starts real PostgreSQL, PgBouncer, Redis and a MongoDB wire server as local processes
//! (through `prismicx-harness`), creates the `system_users` database with its login role,
//! provisions two demo tenants (`demo`, standard; `demo-vip`, dedicated with its own PgBouncer
//! pool) with the same migrations the operator applies, starts user-data-service as a separate
//! process (this binary re-run as `prismicx-local service user-data`, configured only through the
//! platform's environment variables), waits until it is ready, prints how to reach it, and on
//! Ctrl-C stops every process it started and removes their files.
//!
//! The demo keys are fixed development keys so the README's examples work as printed; every
//! server and service listens on 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use prismicx_harness::{PoolAlias, Ports, Servers, StartOptions};
use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::config::Secret;
use prismicx_service_common::pg::{dedicated_pool_alias, migrate};
use prismicx_service_common::tenancy::TenantSlug;
use sqlx::Executor;
use uuid::Uuid;

/// The platform key of the local platform (development only).
pub const PLATFORM_KEY: &str = "local-platform-key";
/// The demo tenants: slug, tier, API key (development only).
pub const DEMO_TENANTS: &[(&str, &str, &str)] = &[
    ("demo", "standard", "demo-tenant-key"),
    ("demo-vip", "dedicated", "demo-vip-tenant-key"),
];

/// Options of `prismicx-local up`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpArgs {
    /// Add this to every port (5432, 6432, 6379, 27017, 8502) when those are taken.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Use free ports chosen at start-up instead of the platform's.
    #[arg(long)]
    pub free_ports: bool,
    /// Stop again as soon as everything is ready (scripted checks).
    #[arg(long)]
    pub exit_when_ready: bool,
}

/// Where the local platform's services listen.
#[derive(Debug, Clone, Copy)]
pub struct ServicePorts {
    pub user_data: u16,
}

impl ServicePorts {
    pub fn platform(offset: u16) -> Self {
        ServicePorts {
            user_data: prismicx_user_data::config::DEFAULT_PORT + offset,
        }
    }
}

/// The `curl` commands printed when the platform is ready; each succeeds as printed.
pub fn examples(ports: ServicePorts) -> Vec<String> {
    let base = format!("http://127.0.0.1:{}", ports.user_data);
    vec![
        format!("curl -s {base}/readyz"),
        format!(
            "curl -s -X POST {base}/v1/users -H 'Authorization: Bearer demo-tenant-key' \
             -H 'Content-Type: application/json' \
             -d '{{\"email\":\"ada@example.com\",\"displayName\":\"Ada Lovelace\",\"attributes\":{{\"team\":\"engines\"}}}}'"
        ),
        format!("curl -s '{base}/v1/users?q=ada&limit=10' -H 'Authorization: Bearer demo-tenant-key'"),
        format!("curl -s '{base}/v1/users?attr.team=engines' -H 'Authorization: Bearer demo-tenant-key'"),
        format!(
            "curl -s -X POST {base}/v1/roles -H 'Authorization: Bearer demo-vip-tenant-key' \
             -H 'Content-Type: application/json' -d '{{\"name\":\"admin\",\"permissions\":[\"users:write\"]}}'"
        ),
        format!(
            "curl -s {base}/v1/roles -H 'Authorization: Bearer {PLATFORM_KEY}' -H 'X-Tenant: demo-vip'"
        ),
        format!("curl -s {base}/v1/audit-events -H 'Authorization: Bearer demo-tenant-key'"),
        format!("curl -s {base}/openapi.json"),
    ]
}

/// Marker printed once everything is ready (scripts and tests wait for it).
pub const READY_MARKER: &str = "PrismicX is up.";

fn check_port_free(port: u16, what: &str) -> Result<()> {
    if TcpListener::bind(("127.0.0.1", port)).is_err() {
        bail!(
            "port {port} ({what}) is already in use; run with another offset, e.g. \
             `make run RUN_ARGS=\"--port-offset 10000\"`, or with RUN_ARGS=--free-ports"
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Status of `GET path` on 127.0.0.1:port, if the service answers at all.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A service process the launcher started.
struct ServiceProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ServiceProcess {
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if http_status(port, "/readyz") == Some(200) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready; its log ends with:\n{}",
                    self.name,
                    log_tail(&self.log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} was not ready within {timeout:?}; its log ends with:\n{}",
                    self.name,
                    log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Brings the platform up, prints how to reach it, and tears it down on Ctrl-C.
pub async fn up(args: UpArgs) -> Result<()> {
    let (ports, service_ports) = if args.free_ports {
        (
            Ports {
                postgres: free_port()?,
                pgbouncer: free_port()?,
                redis: free_port()?,
                mongo: free_port()?,
            },
            ServicePorts {
                user_data: free_port()?,
            },
        )
    } else {
        let p = Ports::platform(args.port_offset);
        for (port, what) in [
            (p.postgres, "postgres"),
            (p.pgbouncer, "pgbouncer"),
            (p.redis, "redis"),
            (p.mongo, "mongodb"),
        ] {
            check_port_free(port, what)?;
        }
        let s = ServicePorts::platform(args.port_offset);
        check_port_free(s.user_data, "user-data-service")?;
        (p, s)
    };
    println!("Starting PostgreSQL, PgBouncer, Redis and the MongoDB wire server…");
    let servers = tokio::task::spawn_blocking(move || {
        Servers::start(StartOptions {
            dir: None,
            ports: Some(ports),
        })
    })
    .await??;
    let result = run_platform(&servers, ports, service_ports, &args).await;
    servers.stop();
    if let Err(e) = &result {
        eprintln!("prismicx-local failed: {e:#}");
    }
    println!(
        "Stopped every process and removed {}.",
        servers.dir().display()
    );
    result
}

async fn run_platform(
    servers: &Servers,
    ports: Ports,
    service_ports: ServicePorts,
    args: &UpArgs,
) -> Result<()> {
    let db = prismicx_user_data::migrations::DATABASE;
    let login = "user_data_svc";
    let password = Secret::new(random_secret());
    let mut admin = servers.postgres.admin_connect("postgres").await?;
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .context("creating system_users")?;
    let mut admin = servers.postgres.admin_connect(db).await?;
    migrate::ensure_login_role(&mut admin, login, &password).await?;

    let mut registry = Vec::new();
    let mut aliases = Vec::new();
    for (slug, tier, key) in DEMO_TENANTS {
        let parsed = TenantSlug::parse(slug).map_err(anyhow::Error::msg)?;
        let id = Uuid::new_v4();
        // The service applies the system migrations itself at start-up; the tenant schemas are
        // provisioned here as the operator does. The system schema must exist first.
        migrate::apply_system(&mut admin, &prismicx_user_data::migrations::SCHEMA).await?;
        migrate::provision_tenant(
            &mut admin,
            &prismicx_user_data::migrations::SCHEMA,
            &parsed,
            id,
        )
        .await?;
        if *tier == "dedicated" {
            aliases.push(PoolAlias {
                name: dedicated_pool_alias(db, &parsed),
                dbname: db.into(),
                pool_size: 4,
            });
        }
        registry.push(serde_json::json!({
            "slug": slug, "id": id, "tier": tier, "state": "active",
            "apiKeys": [KeyDigest::of(key).to_string()],
        }));
    }
    servers.pgbouncer.set_aliases(&aliases).await?;
    let registry_file = servers.dir().join("tenant-registry.json");
    std::fs::write(
        &registry_file,
        serde_json::to_vec_pretty(&serde_json::json!({ "tenants": registry }))?,
    )?;

    let log = servers.dir().join("user-data-service.log");
    let log_file = std::fs::File::create(&log)?;
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(std::env::current_exe()?)
            .args(["service", "user-data"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SERVICE_NAME", "user-data-service")
            .env("HOST", "127.0.0.1")
            .env("PORT", service_ports.user_data.to_string())
            .env("API_KEY", PLATFORM_KEY)
            .env("USER_DB_HOST", "127.0.0.1")
            .env("USER_DB_PORT", ports.pgbouncer.to_string())
            .env("USER_DB_NAME", db)
            .env("USER_DB_USER", login)
            .env("USER_DB_PASSWORD", password.expose())
            .env("USER_DB_MIGRATE_URL", servers.postgres.admin_url(db))
            .env("TENANT_REGISTRY_FILE", &registry_file)
            .env("REDIS_URL", servers.redis.url())
            .env("USER_DATA_LOG_LEVEL", "INFO")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .context("starting user-data-service")?
    };
    servers.guardian().watch_pid(child.id());
    let mut service = ServiceProcess {
        name: "user-data-service",
        child,
        log: log.clone(),
    };
    let ready = tokio::task::block_in_place(|| {
        service.wait_ready(service_ports.user_data, Duration::from_secs(60))
    });
    if let Err(e) = ready {
        service.stop();
        return Err(e);
    }

    print_summary(servers, ports, service_ports, &log);
    if !args.exit_when_ready {
        println!("Press Ctrl-C to stop everything.");
        prismicx_service_common::http::shutdown_signal().await;
    }
    println!("Stopping…");
    tokio::task::block_in_place(|| service.stop());
    Ok(())
}

fn print_summary(servers: &Servers, ports: Ports, service_ports: ServicePorts, log: &Path) {
    println!();
    println!("{READY_MARKER}");
    println!();
    println!(
        "  user-data-service   http://127.0.0.1:{}   (log: {})",
        service_ports.user_data,
        log.display()
    );
    println!(
        "  postgres-system     127.0.0.1:{}   (superuser postgres, password in this run only)",
        ports.postgres
    );
    println!("  pgbouncer           127.0.0.1:{}   (transaction mode; admin console: database pgbouncer)", ports.pgbouncer);
    println!("  redis-cache         127.0.0.1:{}", ports.redis);
    println!(
        "  mongodb             127.0.0.1:{}   ({})",
        ports.mongo,
        servers.mongo.kind()
    );
    println!(
        "  data and logs       {} (removed on exit)",
        servers.dir().display()
    );
    println!();
    println!("  Tenants: demo (standard, key demo-tenant-key), demo-vip (dedicated pool, key demo-vip-tenant-key).");
    println!(
        "  Platform key: {PLATFORM_KEY} (names the tenant in X-Tenant). Development keys only."
    );
    println!();
    println!("Try:");
    for e in examples(service_ports) {
        println!("{e}");
    }
    println!();
}

fn random_secret() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

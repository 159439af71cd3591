//! The PrismicX platform on one machine, with no cluster.
//!
//! `make run` (`prismicx-local up`) starts the whole platform the way a cluster runs it
//! ([`platform::Platform`]): real PostgreSQL, PgBouncer, Redis and a MongoDB wire server as
//! local processes; a local Kubernetes-API endpoint with the CRDs; the operator, unmodified, as
//! its own process against that endpoint; a process runner ([`runner`]) that plays the kubelet
//! for the Deployments the operator creates; the DatabaseServices of the services; and two
//! example Tenants, provisioned by the operator. It prints the kubeconfig for `kubectl`, the
//! services' URLs, the tenants' API keys (issued by tenant-mgmt) and `curl` examples that work
//! as printed, and on Ctrl-C stops every process it started and removes their files.
//!
//! Every server, the endpoint and every service listen on 127.0.0.1 only; the platform key is a
//! fixed development key.

pub mod cli;
pub mod platform;
pub mod runner;

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{bail, Result};
use prismicx_harness::Ports;

pub use platform::{Platform, PlatformOptions, EXAMPLE_TENANTS, NAMESPACE, PLATFORM_KEY};

/// Options of `prismicx-local up`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpArgs {
    /// Add this to every port (5432, 6432, 6379, 27017, 6443, 8501–8505, 8510) when those are
    /// taken.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Use free ports chosen at start-up instead of the platform's.
    #[arg(long)]
    pub free_ports: bool,
    /// Stop again as soon as everything is ready (scripted checks).
    #[arg(long)]
    pub exit_when_ready: bool,
}

/// The API endpoint's port before any offset (the Kubernetes API's usual port).
pub const API_PORT: u16 = 6443;

/// Marker printed once everything is ready (scripts and tests wait for it).
pub const READY_MARKER: &str = "PrismicX is up.";

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// An offset that puts the services' ports (8501–8505, 8510) on free ports.
fn free_service_offset() -> Result<u16> {
    for _ in 0..50 {
        let offset = 20000 + rand::random::<u16>() % 30000;
        if platform::SERVICES
            .iter()
            .all(|k| port_free(k.external_port() + offset))
        {
            return Ok(offset);
        }
    }
    bail!("found no free range of service ports")
}

/// The options `up` starts the platform with.
pub fn options(args: &UpArgs, launcher: std::path::PathBuf) -> Result<PlatformOptions> {
    let tenants = EXAMPLE_TENANTS
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    if args.free_ports {
        return Ok(PlatformOptions {
            ports: Ports {
                postgres: free_port()?,
                pgbouncer: free_port()?,
                redis: free_port()?,
                mongo_system: free_port()?,
                mongo_tenant: free_port()?,
            },
            api_port: free_port()?,
            service_port_offset: free_service_offset()?,
            launcher,
            dir: None,
            tenants,
        });
    }
    let ports = Ports::platform(args.port_offset);
    let api_port = API_PORT + args.port_offset;
    let mut wanted = vec![
        (ports.postgres, "postgres"),
        (ports.pgbouncer, "pgbouncer"),
        (ports.redis, "redis"),
        (ports.mongo_system, "mongodb-system"),
        (ports.mongo_tenant, "mongodb-tenant"),
        (api_port, "the Kubernetes API endpoint"),
    ];
    for k in platform::SERVICES {
        wanted.push((k.external_port() + args.port_offset, k.k8s_name()));
    }
    for (port, what) in wanted {
        if !port_free(port) {
            bail!(
                "port {port} ({what}) is already in use; run with another offset, e.g. \
                 `make run RUN_ARGS=\"--port-offset 10000\"`, or with RUN_ARGS=--free-ports"
            );
        }
    }
    Ok(PlatformOptions {
        ports,
        api_port,
        service_port_offset: args.port_offset,
        launcher,
        dir: None,
        tenants,
    })
}

/// Brings the platform up, prints how to reach it, and tears it down on Ctrl-C.
pub async fn up(args: UpArgs) -> Result<()> {
    let opts = options(&args, std::env::current_exe()?)?;
    let mut platform = Platform::start(opts).await?;
    print_summary(&platform);
    if !args.exit_when_ready {
        println!("Press Ctrl-C to stop everything.");
        prismicx_service_common::http::shutdown_signal().await;
    }
    println!("Stopping…");
    let dir = platform.servers.dir().to_path_buf();
    tokio::time::timeout(Duration::from_secs(60), platform.stop())
        .await
        .ok();
    println!("Stopped every process and removed {}.", dir.display());
    Ok(())
}

/// The services' local URLs with the platform's ports shifted by `offset`.
pub fn service_urls(offset: u16) -> std::collections::BTreeMap<&'static str, String> {
    platform::SERVICES
        .iter()
        .map(|k| {
            (
                k.k8s_name(),
                format!("http://127.0.0.1:{}", k.external_port() + offset),
            )
        })
        .collect()
}

/// The `curl` examples with the tenants' keys as `$DEMO_KEY` and `$VIP_KEY` (as the README
/// shows them).
pub fn example_templates(urls: &std::collections::BTreeMap<&'static str, String>) -> Vec<String> {
    let url = |name: &str| urls.get(name).cloned().unwrap_or_default();
    let json = "-H 'Content-Type: application/json'";
    let mut out = Vec::new();
    for name in urls.keys() {
        out.push(format!("curl -s {}/readyz", url(name)));
    }
    out.extend([
        format!("curl -s {}/v1/tenant -H \"Authorization: Bearer $DEMO_KEY\"", url("tenant-mgmt-service")),
        format!(
            "curl -s -X POST {}/v1/users -H \"Authorization: Bearer $DEMO_KEY\" {json} \
             -d '{{\"email\":\"ada@example.com\",\"displayName\":\"Ada Lovelace\",\"attributes\":{{\"team\":\"engines\"}}}}'",
            url("user-data-service")
        ),
        format!(
            "curl -s -X POST {}/v1/tasks -H \"Authorization: Bearer $DEMO_KEY\" {json} \
             -d '{{\"title\":\"Write the launch notes\",\"labels\":[\"docs\"]}}'",
            url("task-repo-service")
        ),
        format!("curl -s '{}/v1/tasks?status=todo' -H \"Authorization: Bearer $DEMO_KEY\"", url("task-repo-service")),
        format!(
            "curl -s -X POST {}/v1/categories -H \"Authorization: Bearer $VIP_KEY\" {json} -d '{{\"name\":\"Hardware\"}}'",
            url("category-repository-service")
        ),
        format!(
            "curl -s -X POST {}/v1/systems -H \"Authorization: Bearer $VIP_KEY\" {json} -d '{{\"name\":\"billing\",\"kind\":\"erp\"}}'",
            url("management-system-repo")
        ),
        format!(
            "curl -s {}/v1/categories -H 'Authorization: Bearer {PLATFORM_KEY}' -H 'X-Tenant: demo-vip'",
            url("category-repository-service")
        ),
        format!(
            "curl -s -X POST {}/v1/collections -H \"Authorization: Bearer $DEMO_KEY\" {json} \
             -d '{{\"name\":\"docs\",\"dimension\":3,\"metric\":\"cosine\"}}'",
            url("vector-store-service")
        ),
        format!(
            "curl -s -X PUT {}/v1/collections/docs/points -H \"Authorization: Bearer $DEMO_KEY\" {json} \
             -d '{{\"points\":[{{\"id\":\"a\",\"vector\":[1,0,0],\"payload\":{{\"lang\":\"en\"}}}},{{\"id\":\"b\",\"vector\":[0.9,0.1,0],\"payload\":{{\"lang\":\"de\"}}}}]}}'",
            url("vector-store-service")
        ),
        format!(
            "curl -s -X POST {}/v1/collections/docs/query -H \"Authorization: Bearer $DEMO_KEY\" {json} \
             -d '{{\"vector\":[1,0,0],\"limit\":5,\"filter\":{{\"lang\":\"de\"}}}}'",
            url("vector-store-service")
        ),
        format!("curl -s {}/openapi.json", url("task-repo-service")),
    ]);
    out
}

/// The `curl` commands printed when the platform is ready, with the issued keys in place; each
/// succeeds as printed.
pub fn examples(p: &Platform) -> Vec<String> {
    let key = |t: &str| p.tenant_keys.get(t).cloned().unwrap_or_default();
    example_templates(&p.service_urls)
        .into_iter()
        .map(|e| {
            e.replace("$DEMO_KEY", &key("demo"))
                .replace("$VIP_KEY", &key("demo-vip"))
        })
        .collect()
}

fn print_summary(p: &Platform) {
    let kubeconfig = p.kubeconfig.display();
    println!();
    println!("{READY_MARKER}");
    println!();
    for (name, url) in &p.service_urls {
        println!("  {name:<29} {url}");
    }
    let s = &p.servers;
    println!("  {:<29} {}", "Kubernetes API", p.api.url());
    println!(
        "  {:<29} 127.0.0.1:{}",
        "postgres-system",
        s.postgres.port()
    );
    println!(
        "  {:<29} 127.0.0.1:{} (transaction mode)",
        "pgbouncer",
        s.pgbouncer.port()
    );
    println!("  {:<29} 127.0.0.1:{}", "redis-cache", s.redis.port());
    for m in [&s.mongo_system, &s.mongo_tenant] {
        println!(
            "  {:<29} 127.0.0.1:{} ({}, authentication on)",
            m.role(),
            m.port(),
            m.kind()
        );
    }
    println!("  data and logs {} (removed on exit)", p.dir.display());
    println!();
    println!("  Tenants (namespace {NAMESPACE}), provisioned by the operator; keys issued by tenant-mgmt:");
    for (name, tier) in EXAMPLE_TENANTS {
        println!(
            "    {name:<10} {tier:<10} key {}",
            p.tenant_keys.get(*name).map(String::as_str).unwrap_or("?")
        );
    }
    println!(
        "  Platform key: {PLATFORM_KEY} (names the tenant in X-Tenant). Development keys only."
    );
    println!(
        "  For the README's examples: export DEMO_KEY={} VIP_KEY={}",
        p.tenant_keys.get("demo").map(String::as_str).unwrap_or("?"),
        p.tenant_keys
            .get("demo-vip")
            .map(String::as_str)
            .unwrap_or("?")
    );
    println!();
    println!("With kubectl:");
    println!("  export KUBECONFIG={kubeconfig}");
    println!("  kubectl -n {NAMESPACE} get tenants,databaseservices");
    println!("  kubectl -n {NAMESPACE} get deployments,services,secrets");
    println!();
    println!("Try:");
    for e in examples(p) {
        println!("{e}");
    }
    println!();
}

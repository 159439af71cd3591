//! `prismicx-apiserver`: serves the local Kubernetes-compatible API until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use prismicx_local_apiserver::{ApiServer, ServerOptions};

/// A Kubernetes-API-compatible endpoint for local runs and tests (plain HTTP, in memory, no auth).
#[derive(Debug, Parser)]
#[command(name = "prismicx-apiserver", version)]
struct Args {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Directory of CustomResourceDefinition YAML files to load at start (repeatable).
    #[arg(long = "crds")]
    crds: Vec<PathBuf>,
    /// Write a kubeconfig for this server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Changes kept per resource type for resuming watches.
    #[arg(long, default_value_t = 1000)]
    watch_history: usize,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 5)]
    bookmark_interval: u64,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let handle = ApiServer::start(ServerOptions {
        listen: SocketAddr::new(args.host, args.port),
        crds_dirs: args.crds.clone(),
        watch_history: args.watch_history,
        bookmark_interval: Duration::from_secs(args.bookmark_interval.max(1)),
    })
    .await?;
    if let Some(path) = &args.kubeconfig {
        handle.write_kubeconfig(path)?;
        eprintln!("kubeconfig written to {}", path.display());
    }
    // The first stdout line is the URL, for scripts that start the server on port 0.
    println!("{}", handle.url());
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

//! Shared test setup: a server per test on a free port, with the workspace's CRDs loaded.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use prismicx_local_apiserver::{ApiServer, Handle, ServerOptions};

/// The workspace's `crds/` directory.
pub fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds")
}

/// Options with the CRDs loaded.
pub fn options() -> ServerOptions {
    ServerOptions {
        crds_dirs: vec![crds_dir()],
        ..ServerOptions::default()
    }
}

/// Starts a server with `opts` and a kube client for it.
pub async fn start_with(opts: ServerOptions) -> (Handle, kube::Client) {
    let handle = ApiServer::start(opts).await.unwrap();
    let client = client_for(&handle);
    (handle, client)
}

/// Starts a server with the CRDs and a kube client for it.
pub async fn start() -> (Handle, kube::Client) {
    start_with(options()).await
}

/// A kube client for a running server (namespace `default`).
pub fn client_for(handle: &Handle) -> kube::Client {
    install_tls_provider();
    let config = kube::Config::new(handle.url().parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

/// Waits up to 10 s for `f` to return `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Installs ring as the process's rustls provider: a workspace build enables two providers, and
/// rustls then refuses to pick one when the kube client is built (the binaries do the same at
/// start-up, `prismicx_service_common::tls`).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

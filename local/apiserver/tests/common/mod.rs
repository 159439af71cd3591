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

/// `Api::patch` with default parameters and a JSON merge patch, the tests' most common write.
#[allow(async_fn_in_trait)]
pub trait MergePatch<K> {
    async fn merge(&self, name: &str, patch: serde_json::Value) -> kube::Result<K>;
}

impl<K> MergePatch<K> for kube::Api<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    async fn merge(&self, name: &str, patch: serde_json::Value) -> kube::Result<K> {
        let params = kube::api::PatchParams::default();
        self.patch(name, &params, &kube::api::Patch::Merge(patch))
            .await
    }
}

/// Creates the namespace `name`.
pub async fn create_namespace(
    namespaces: &kube::Api<k8s_openapi::api::core::v1::Namespace>,
    name: &str,
) {
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&kube::api::PostParams::default(), &ns)
        .await
        .unwrap();
}

//! `prismicx-local-apiserver`: a Kubernetes-API-compatible endpoint for local runs and tests.
//!
//! A development and test tool, never a production path: plain HTTP on 127.0.0.1, all state in
//! memory, no authentication or authorization. It serves enough of the Kubernetes API for the
//! unmodified operator (kube-rs client, kube-runtime controllers and watchers, finalizers, event
//! recorder, Lease leader election) and for `kubectl get/apply/delete`:
//!
//! - discovery (`/version`, `/api`, `/apis`, per group and version);
//! - built-in resources (namespaces, secrets, configmaps, services, serviceaccounts,
//!   persistentvolumeclaims (stored only), events,
//!   pods (stored only), deployments, leases, events.k8s.io events, CRDs) and custom resources
//!   from CRDs (loaded at start or created through the API), with schema pruning, defaulting
//!   and validation;
//! - CRUD with resourceVersion, generation, status subresource, finalizers, owner-reference
//!   cascade, namespace deletion;
//! - merge, JSON and (approximated) strategic-merge patches and server-side apply;
//! - list/watch with selectors, bookmarks and 410 Gone after the bounded history;
//! - `Table` output with printer columns for kubectl.
//!
//! See `docs/local-apiserver.md` for what it does not implement.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use prismicx_local_apiserver::{ApiServer, ServerOptions};
//! let handle = ApiServer::start(ServerOptions {
//!     crds_dirs: vec!["crds".into()],
//!     ..ServerOptions::default()
//! })
//! .await?;
//! handle.write_kubeconfig("/tmp/kubeconfig".as_ref())?;
//! println!("serving on {}", handle.url());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

pub mod error;
pub mod patch;
pub mod registry;
pub mod schema;
pub mod select;
pub mod server;
pub mod store;
pub mod table;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::Value;
use tokio::sync::watch;

pub use error::ApiError;
pub use store::Store;

/// The name of the cluster, user and context in written kubeconfigs.
pub const CONTEXT_NAME: &str = "prismicx-local";

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Directories whose `*.yaml`/`*.yml`/`*.json` CustomResourceDefinitions are loaded at start.
    pub crds_dirs: Vec<PathBuf>,
    /// Changes kept per resource type for watches resuming from a resourceVersion; older
    /// resourceVersions get 410 Gone. Default 1000.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get one. Default 5 s.
    pub bookmark_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            crds_dirs: Vec::new(),
            watch_history: 1000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// Starts servers.
#[derive(Debug)]
pub struct ApiServer;

/// A running server: its address, and how to stop it.
#[derive(Debug)]
pub struct Handle {
    addr: SocketAddr,
    app: Arc<server::AppState>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ApiServer {
    /// Binds, loads the CRDs and serves in a background task until [`Handle::shutdown`] (or
    /// until the handle is dropped). Must be called inside a Tokio runtime.
    pub async fn start(opts: ServerOptions) -> anyhow::Result<Handle> {
        let store = Arc::new(Store::new(opts.watch_history));
        for dir in &opts.crds_dirs {
            load_crds(&store, dir)?;
        }
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (close_watches, _) = watch::channel(0u64);
        let app = Arc::new(server::AppState {
            store,
            address: addr.to_string(),
            bookmark_interval: opts.bookmark_interval,
            shutdown: shutdown_rx.clone(),
            close_watches,
        });
        let router = axum::Router::new()
            .fallback(server::dispatch)
            .with_state(app.clone());
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the local API server failed");
            }
        });
        tracing::info!(%addr, "local Kubernetes API server listening");
        Ok(Handle {
            addr,
            app,
            shutdown,
            task: Some(task),
        })
    }
}

impl Handle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The object store (for embedding: direct reads and writes without HTTP).
    pub fn store(&self) -> Arc<Store> {
        self.app.store.clone()
    }

    /// Writes a kubeconfig pointing at this server (see [`write_kubeconfig`]).
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        write_kubeconfig(path, &self.url())
    }

    /// Ends every open watch; clients resume from their last resourceVersion (and relist when
    /// that is older than the history). Meant for tests.
    pub fn close_watches(&self) {
        self.app.close_watches.send_modify(|n| *n += 1);
    }

    /// Stops serving: ends the watches, lets requests in flight finish, and waits for the
    /// server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Loads every CustomResourceDefinition in the YAML/JSON files of `dir` (multi-document YAML
/// allowed; other kinds are skipped). A CRD that exists already is replaced.
pub fn load_crds(store: &Store, dir: &Path) -> anyhow::Result<usize> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the CRD directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    let def = store
        .def("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .context("the CRD resource is missing")?;
    let opts = store::WriteOpts {
        dry_run: false,
        manager: "prismicx-apiserver".into(),
    };
    let mut loaded = 0;
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(doc).with_context(|| format!("parsing {}", file.display()))?;
            if value["kind"].as_str() != Some("CustomResourceDefinition") {
                continue;
            }
            let name = value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let result = match store.create(&def, None, value.clone(), &opts) {
                Err(e) if e.code == 409 => store.update(&def, None, &name, false, value, &opts),
                other => other,
            };
            result.map_err(|e| anyhow::anyhow!("loading {} from {}: {e}", name, file.display()))?;
            loaded += 1;
        }
    }
    Ok(loaded)
}

/// Writes a kubeconfig for `url`: cluster, user (a dummy bearer token; the server accepts any
/// token or none) and context all named [`CONTEXT_NAME`], the context current, namespace
/// `default`.
pub fn write_kubeconfig(path: &Path, url: &str) -> anyhow::Result<()> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT_NAME, "user": {"token": "prismicx-local-dummy-token"}}],
        "contexts": [{"name": CONTEXT_NAME, "context": {
            "cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": "default"}}],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    });
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let yaml = serde_yaml::to_string(&config)?;
    std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

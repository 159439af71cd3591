//! The end-to-end suite's view of a running platform, wherever it runs.
//!
//! The scenarios in `tests/` are written once against a kube client, the services' URLs and the
//! platform key. [`target`] supplies them:
//!
//! - **kind** (`make e2e-kind`): from the environment — `PRISMICX_E2E_KUBECONFIG`,
//!   `PRISMICX_E2E_NAMESPACE` (default `prismicx`), `PRISMICX_E2E_URLS`
//!   (`tenant-mgmt-service=http://127.0.0.1:18501,…`, port-forwards to the Services) and
//!   `PRISMICX_E2E_PLATFORM_KEY`;
//! - **local** (`make test`): otherwise, the local platform (`prismicx_local::Platform`: real
//!   servers, the local API endpoint, the operator, the process runner) started once per test
//!   process on free ports, in a thread of its own so it outlives each test's runtime. The
//!   harness guardian stops every process it started when the test process ends.
//!
//! Restarting the operator differs: locally the process is killed (SIGKILL) and started again;
//! on kind the operator's pods are deleted and its Deployment starts a new one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use prismicx_operator_api::{DatabaseService, Tenant};
use serde_json::{json, Value};

/// A platform under test.
#[derive(Debug)]
pub struct Target {
    pub kubeconfig: PathBuf,
    pub namespace: String,
    /// Service Kubernetes name → base URL.
    pub urls: BTreeMap<String, String>,
    pub platform_key: String,
    /// The local platform's logs (operator.log, one per service), for failure messages.
    pub logs: Option<PathBuf>,
    local: Option<Mutex<CommandSender>>,
}

/// Where operator restarts are sent to the local platform's thread, with where to answer.
type CommandSender = mpsc::Sender<(Command, mpsc::Sender<Result<()>>)>;

#[derive(Debug, Clone, Copy)]
enum Command {
    KillOperator,
    StartOperator,
}

static TARGET: OnceLock<Target> = OnceLock::new();

/// The platform under test (started on first use in local mode). `launcher` is the
/// `prismicx-e2e-node` binary (`env!("CARGO_BIN_EXE_prismicx-e2e-node")` in the tests).
pub fn target(launcher: &str) -> &'static Target {
    prismicx_service_common::tls::install_default_provider();
    TARGET.get_or_init(|| match std::env::var("PRISMICX_E2E_KUBECONFIG") {
        Ok(kubeconfig) => from_env(kubeconfig).expect("PRISMICX_E2E_* settings"),
        Err(_) => start_local(launcher.into()).expect("the local platform starts"),
    })
}

fn from_env(kubeconfig: String) -> Result<Target> {
    let urls = std::env::var("PRISMICX_E2E_URLS").context("PRISMICX_E2E_URLS")?;
    let urls = urls
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("PRISMICX_E2E_URLS: {pair} is not name=url"))?;
            Ok((k.to_string(), v.trim_end_matches('/').to_string()))
        })
        .collect::<Result<_>>()?;
    Ok(Target {
        kubeconfig: kubeconfig.into(),
        namespace: std::env::var("PRISMICX_E2E_NAMESPACE").unwrap_or_else(|_| "prismicx".into()),
        urls,
        platform_key: std::env::var("PRISMICX_E2E_PLATFORM_KEY")
            .context("PRISMICX_E2E_PLATFORM_KEY")?,
        logs: None,
        local: None,
    })
}

fn start_local(launcher: PathBuf) -> Result<Target> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Target>>();
    let (cmd_tx, cmd_rx) = mpsc::channel::<(Command, mpsc::Sender<Result<()>>)>();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
        };
        rt.block_on(async move {
            let opts = prismicx_local::options(
                &prismicx_local::UpArgs {
                    free_ports: true,
                    ..Default::default()
                },
                launcher,
            );
            let opts = match opts {
                Ok(mut o) => {
                    // The scenarios create their own tenants.
                    o.tenants.clear();
                    o
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut platform = match prismicx_local::Platform::start(opts).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(Target {
                kubeconfig: platform.kubeconfig.clone(),
                namespace: prismicx_local::NAMESPACE.into(),
                urls: platform
                    .service_urls
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                platform_key: prismicx_local::PLATFORM_KEY.into(),
                logs: Some(platform.dir.join("logs")),
                local: None,
            }));
            // Serve operator restarts for as long as the test process lives.
            while let Ok((cmd, reply)) = tokio::task::block_in_place(|| cmd_rx.recv()) {
                let out = match cmd {
                    Command::KillOperator => {
                        platform.kill_operator();
                        Ok(())
                    }
                    Command::StartOperator => platform.start_operator(),
                };
                let _ = reply.send(out);
            }
        });
    });
    let mut target = ready_rx
        .recv()
        .map_err(|_| anyhow!("the local platform's thread ended"))??;
    target.local = Some(Mutex::new(cmd_tx));
    Ok(target)
}

impl Target {
    /// Whether this is the local platform (else a cluster).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    fn command(&self, cmd: Command) -> Result<()> {
        let sender = self
            .local
            .as_ref()
            .ok_or_else(|| anyhow!("not the local platform"))?
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .clone();
        let (tx, rx) = mpsc::channel();
        sender
            .send((cmd, tx))
            .map_err(|_| anyhow!("the local platform is gone"))?;
        rx.recv().map_err(|_| anyhow!("no answer"))?
    }

    /// A kube client (one per test runtime).
    pub async fn client(&self) -> Result<kube::Client> {
        prismicx_local::platform::client_for(&self.kubeconfig).await
    }

    pub fn url(&self, service: &str) -> String {
        self.urls.get(service).cloned().unwrap_or_default()
    }

    /// Stops the operator at once: SIGKILL locally, its pods deleted on a cluster.
    pub async fn kill_operator(&self) -> Result<()> {
        if self.is_local() {
            return self.command(Command::KillOperator);
        }
        let pods: Api<Pod> = Api::namespaced(self.client().await?, &self.namespace);
        let lp = ListParams::default().labels("app.kubernetes.io/component=operator");
        pods.delete_collection(&DeleteParams::default().grace_period(0), &lp)
            .await?;
        Ok(())
    }

    /// Starts the operator again (on a cluster its Deployment does).
    pub async fn start_operator(&self) -> Result<()> {
        if self.is_local() {
            return self.command(Command::StartOperator);
        }
        Ok(())
    }
}

/// A unique, DNS-safe name.
pub fn unique(prefix: &str) -> String {
    prismicx_harness::unique_name(prefix)
}

/// Creates a Tenant.
pub async fn create_tenant(t: &Target, name: &str, spec: Value) -> Result<()> {
    let api: Api<Tenant> = Api::namespaced(t.client().await?, &t.namespace);
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "prismicx.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name}, "spec": spec,
    }))?;
    api.create(&PostParams::default(), &tenant).await?;
    Ok(())
}

/// Merge-patches a Tenant's spec.
pub async fn patch_tenant(t: &Target, name: &str, spec: Value) -> Result<()> {
    patch_spec::<Tenant>(t, name, spec).await
}

/// Merge-patches a DatabaseService's spec (a pod-template change rolls its service).
pub async fn patch_database_service(t: &Target, name: &str, spec: Value) -> Result<()> {
    patch_spec::<DatabaseService>(t, name, spec).await
}

async fn patch_spec<K>(t: &Target, name: &str, spec: Value) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(t.client().await?, &t.namespace);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await?;
    Ok(())
}

/// The Tenant as JSON, if it exists.
pub async fn tenant(t: &Target, name: &str) -> Result<Option<Value>> {
    let api: Api<Tenant> = Api::namespaced(t.client().await?, &t.namespace);
    Ok(api
        .get_opt(name)
        .await?
        .map(serde_json::to_value)
        .transpose()?)
}

/// `(status, reason)` of a condition of `obj`.
pub fn condition(obj: &Value, kind: &str) -> Option<(String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Polls `check` every 250 ms until it returns `Some`, failing after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("{what} did not happen within {timeout:?} {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long provisioning may take (SecantusDB is slow; a cluster pulls images).
pub const PROVISIONING: Duration = Duration::from_secs(240);

/// Waits until the Tenant's `Ready` condition has `status` (and `reason`, when given). On a
/// timeout the error carries the Tenant's last status and, locally, the end of the operator's log.
pub async fn wait_tenant(t: &Target, name: &str, status: &str, reason: Option<&str>) -> Result<()> {
    let seen = std::sync::Arc::new(Mutex::new(String::new()));
    let waited = eventually(
        &format!("Tenant {name} Ready={status}"),
        PROVISIONING,
        || {
            let seen = seen.clone();
            async move {
                let Some(obj) = tenant(t, name).await? else {
                    return Ok(None);
                };
                if let Ok(mut s) = seen.lock() {
                    *s = obj["status"].to_string();
                }
                Ok(condition(&obj, "Ready")
                    .filter(|(s, r)| s == status && reason.is_none_or(|want| want == r))
                    .map(|_| ()))
            }
        },
    )
    .await;
    waited.map_err(|e| {
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        anyhow!("{e:#}\nlast status: {seen}\n{}", t.operator_log_tail())
    })
}

impl Target {
    /// The last lines of the local operator's log ("" on a cluster).
    pub fn operator_log_tail(&self) -> String {
        let Some(dir) = &self.logs else {
            return String::new();
        };
        let text = std::fs::read_to_string(dir.join("operator.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "operator log (last lines):\n{}",
            lines[lines.len().saturating_sub(25)..].join("\n")
        )
    }
}

/// Deletes a Tenant and waits until it is gone (its finalizer done).
pub async fn delete_tenant(t: &Target, name: &str) -> Result<()> {
    let api: Api<Tenant> = Api::namespaced(t.client().await?, &t.namespace);
    api.delete(name, &DeleteParams::default()).await?;
    eventually(&format!("Tenant {name} gone"), PROVISIONING, || async {
        Ok(tenant(t, name).await?.is_none().then_some(()))
    })
    .await
}

/// The DatabaseService as JSON.
pub async fn database_service(t: &Target, name: &str) -> Result<Value> {
    let api: Api<DatabaseService> = Api::namespaced(t.client().await?, &t.namespace);
    Ok(serde_json::to_value(api.get(name).await?)?)
}

/// An HTTP answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// `method url` with `key` (Bearer), an optional `X-Tenant` and JSON body.
pub async fn call(
    method: reqwest::Method,
    url: &str,
    key: &str,
    tenant: Option<&str>,
    body: Option<Value>,
) -> Result<Reply> {
    prismicx_service_common::tls::install_default_provider();
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(key)
        .timeout(Duration::from_secs(30));
    if let Some(t) = tenant {
        req = req.header("x-tenant", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.with_context(|| format!("calling {url}"))?;
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    Ok(Reply { status, body })
}

/// Issues an API key for `tenant` through tenant-mgmt with the platform key.
pub async fn issue_key(t: &Target, tenant: &str) -> Result<String> {
    let r = call(
        reqwest::Method::POST,
        &format!("{}/v1/api-keys", t.url("tenant-mgmt-service")),
        &t.platform_key,
        Some(tenant),
        Some(json!({"name": "e2e"})),
    )
    .await?;
    if r.status != 201 {
        bail!("issuing a key for {tenant}: {} {}", r.status, r.body);
    }
    r.body["key"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| anyhow!("no key in {}", r.body))
}

/// One resource per service: where to create it, the body, and where to read it back.
#[derive(Debug, Clone)]
pub struct Probe {
    pub service: &'static str,
    pub create: (reqwest::Method, String, Value),
    /// The collection the created resource's id is appended to (`None`: `create`'s path).
    pub read_base: Option<String>,
}

impl Probe {
    /// A resource created by `POST collection` and read back at `collection/<its id>`.
    fn posted(service: &'static str, collection: &str, body: Value) -> Probe {
        Probe {
            service,
            create: (reqwest::Method::POST, collection.into(), body),
            read_base: Some(collection.into()),
        }
    }
}

/// A resource to create in each service (names made unique with `tag`).
pub fn probes(tag: &str) -> Vec<Probe> {
    vec![
        Probe {
            service: "tenant-mgmt-service",
            create: (
                reqwest::Method::PUT,
                format!("/v1/settings/e2e-{tag}"),
                json!({"value": {"tag": tag}}),
            ),
            read_base: None,
        },
        Probe::posted(
            "user-data-service",
            "/v1/users",
            json!({"email": format!("{tag}@example.com"), "displayName": tag}),
        ),
        Probe::posted(
            "task-repo-service",
            "/v1/tasks",
            json!({"title": format!("task {tag}")}),
        ),
        Probe::posted(
            "category-repository-service",
            "/v1/categories",
            json!({"name": format!("cat {tag}")}),
        ),
        Probe::posted(
            "management-system-repo",
            "/v1/systems",
            json!({"name": format!("sys-{tag}"), "kind": "erp"}),
        ),
    ]
}

/// Creates `probe`'s resource as `key`; returns the URL that reads it back.
pub async fn create_probe(t: &Target, probe: &Probe, key: &str) -> Result<String> {
    let base = t.url(probe.service);
    let (method, path, body) = probe.create.clone();
    let r = call(method, &format!("{base}{path}"), key, None, Some(body)).await?;
    if !(200..300).contains(&r.status) {
        bail!("{} {path}: {} {}", probe.service, r.status, r.body);
    }
    Ok(match &probe.read_base {
        None => format!("{base}{path}"),
        Some(coll) => format!(
            "{base}{coll}/{}",
            r.body["id"].as_str().ok_or_else(|| anyhow!(
                "{}: no id in {}",
                probe.service,
                r.body
            ))?
        ),
    })
}

/// The status of `GET url` as `key`.
pub async fn status_of(url: &str, key: &str, tenant: Option<&str>) -> Result<u16> {
    Ok(call(reqwest::Method::GET, url, key, tenant, None)
        .await?
        .status)
}

/// The kubectl binary `make deps` installs.
pub fn kubectl() -> PathBuf {
    let tools = std::env::var("PRISMICX_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/prismicx/tools")
        });
    tools.join("bin/kubectl")
}

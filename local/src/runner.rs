//! The process runner: plays the kubelet for the local API endpoint.
//!
//! For every Deployment in the API it runs one local process — the workspace binary its
//! container image names — with the pod template's environment (values, Secret and ConfigMap
//! references, `envFrom`), arguments and port, and reports the Deployment's `/status` back, so
//! the operator's DatabaseService status shows real readiness.
//!
//! Data flow: a reflector keeps every Deployment and Service in memory; once a second
//! [`Runner::sync`] compares each Deployment with its process:
//!
//! - no process, or the pod template changed (a config change rolls it) → start (stopping the
//!   old one first);
//! - the process exited → start it again after a backoff (1 s doubling to 30 s), counting
//!   restarts;
//! - the Deployment is gone or scaled to 0 → stop the process (SIGTERM, then SIGKILL after 10 s);
//! - readiness: the container's `readinessProbe.httpGet` on the process's port (TCP connect when
//!   it has no HTTP probe), then `/status` is patched when what it reports changed.
//!
//! Networking without a cluster: each process listens on 127.0.0.1 at the port of the Service
//! that selects it (its `PORT` is overridden), and every `<service>:<port>` in its environment
//! (any of the Service's DNS forms) is rewritten to `127.0.0.1:<port>`, so
//! `TENANT_MGMT_URL=http://tenant-mgmt-service:8501` reaches the local tenant-mgmt. Volumes
//! become directories under the runner's directory, and an environment value naming a mount
//! path is rewritten to that directory. One process per Deployment whatever its `replicas`
//! (they would all need the same port); the status reports that one replica.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

/// How a container image becomes a command: `None` when the runner cannot run that image.
pub type CommandFor = Arc<dyn Fn(&str) -> Option<Command> + Send + Sync>;

/// The binary an image names: `registry/prismicx/task-repo-service:0.1.0` → `task-repo-service`.
pub fn binary_of_image(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// Settings of a [`Runner`].
#[derive(Clone)]
pub struct RunnerConfig {
    /// Logs (`<namespace>.<deployment>.log`) and volume directories go here.
    pub dir: PathBuf,
    pub command_for: CommandFor,
    /// Added to every Service port to get the local port (when the platform's ports are taken).
    pub port_offset: u16,
    /// Called with the pid of every process started (to have it stopped if the caller dies).
    pub on_spawn: Option<Arc<dyn Fn(u32) + Send + Sync>>,
}

impl std::fmt::Debug for RunnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

struct Proc {
    child: Option<Child>,
    template_hash: String,
    port: Option<u16>,
    restarts: u32,
    next_start: Option<Instant>,
    backoff: Duration,
    ready: bool,
    /// The status last written, to write only changes.
    reported: Option<serde_json::Value>,
    problem: Option<String>,
}

/// Runs the Deployments of one API endpoint as local processes.
pub struct Runner {
    client: Client,
    config: RunnerConfig,
    deployments: Store<Deployment>,
    services: Store<Service>,
    procs: HashMap<(String, String), Proc>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("processes", &self.procs.len())
            .finish_non_exhaustive()
    }
}

/// A store kept in step with every object of `api` by a background watch (restarted with
/// the default backoff when it fails).
fn mirror<K>(api: Api<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    store
}

fn key_of(d: &Deployment) -> (String, String) {
    (d.namespace().unwrap_or_default(), d.name_any())
}

fn hash_of(v: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Runner {
    /// Starts watching Deployments and Services; call [`Runner::run`] to act on them.
    pub fn new(client: Client, config: RunnerConfig) -> Self {
        let deployments = mirror(Api::<Deployment>::all(client.clone()));
        let services = mirror(Api::<Service>::all(client.clone()));
        Runner {
            client,
            config,
            deployments,
            services,
            procs: HashMap::new(),
        }
    }

    /// Syncs once a second until `stop` resolves, then stops every process.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => self.sync().await,
            }
        }
        self.stop_all().await;
    }

    /// Stops every process the runner started.
    pub async fn stop_all(&mut self) {
        for (_, mut p) in self.procs.drain() {
            stop_child(&mut p.child).await;
        }
    }

    /// One pass: start, restart, stop, probe, report.
    pub async fn sync(&mut self) {
        let deployments = self.deployments.state();
        let live: Vec<(String, String)> = deployments.iter().map(|d| key_of(d)).collect();
        let gone: Vec<(String, String)> = self
            .procs
            .keys()
            .filter(|k| !live.contains(k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(mut p) = self.procs.remove(&k) {
                tracing::info!(namespace = %k.0, deployment = %k.1, "deployment gone: stopping its process");
                stop_child(&mut p.child).await;
            }
        }
        for d in deployments {
            if let Err(e) = self.sync_one(&d).await {
                tracing::warn!(deployment = %d.name_any(), error = format!("{e:#}"), "runner could not sync a deployment");
            }
        }
    }

    async fn sync_one(&mut self, d: &Deployment) -> Result<()> {
        let key = key_of(d);
        let spec = d.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let template_hash = hash_of(&spec.template);
        let deleting = d.metadata.deletion_timestamp.is_some();
        let entry = self.procs.entry(key.clone()).or_insert_with(|| Proc {
            child: None,
            template_hash: String::new(),
            port: None,
            restarts: 0,
            next_start: None,
            backoff: Duration::from_secs(1),
            ready: false,
            reported: None,
            problem: None,
        });
        if replicas == 0 || deleting {
            stop_child(&mut entry.child).await;
            entry.ready = false;
        } else {
            if entry.template_hash != template_hash && entry.child.is_some() {
                tracing::info!(namespace = %key.0, deployment = %key.1, "pod template changed: restarting");
                stop_child(&mut entry.child).await;
                entry.restarts = 0;
                entry.next_start = None;
            }
            // Exited?
            if let Some(child) = entry.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    tracing::warn!(namespace = %key.0, deployment = %key.1, %status, "process exited; restarting after backoff");
                    entry.child = None;
                    entry.ready = false;
                    entry.restarts += 1;
                    entry.next_start = Some(Instant::now() + entry.backoff);
                    entry.backoff = (entry.backoff * 2).min(Duration::from_secs(30));
                    entry.problem = Some(format!("process exited ({status})"));
                }
            }
            if entry.child.is_none() && entry.next_start.is_none_or(|t| Instant::now() >= t) {
                let services = self.services.state();
                match prepare(&self.client, &self.config, d, &services).await {
                    Ok(prepared) => {
                        let log = self.config.dir.join(format!("{}.{}.log", key.0, key.1));
                        match spawn(prepared.command, &log) {
                            Ok(child) => {
                                if let (Some(cb), Some(pid)) = (&self.config.on_spawn, child.id()) {
                                    cb(pid);
                                }
                                tracing::info!(namespace = %key.0, deployment = %key.1, port = ?prepared.port, log = %log.display(), "process started");
                                entry.child = Some(child);
                                entry.port = prepared.port;
                                entry.template_hash = template_hash.clone();
                                entry.next_start = None;
                                entry.problem = None;
                            }
                            Err(e) => {
                                entry.problem = Some(format!("{e:#}"));
                                entry.next_start = Some(Instant::now() + entry.backoff);
                            }
                        }
                    }
                    Err(e) => {
                        entry.problem = Some(format!("{e:#}"));
                        entry.next_start = Some(Instant::now() + entry.backoff);
                    }
                }
            }
            entry.ready = match (&entry.child, entry.port) {
                (Some(_), Some(port)) => probe(d, port).await,
                _ => false,
            };
            if entry.ready {
                entry.backoff = Duration::from_secs(1);
            }
        }
        let status = status_of(
            d,
            replicas.min(1),
            entry.ready,
            entry.restarts,
            entry.problem.as_deref(),
        );
        if entry.reported.as_ref() != Some(&status) {
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), &key.0);
            api.patch_status(
                &key.1,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
            .context("writing the deployment status")?;
            entry.reported = Some(status);
        }
        Ok(())
    }
}

/// A started-to-be process.
struct Prepared {
    command: Command,
    port: Option<u16>,
}

/// The local port and DNS names of every Service: `<name>`, `<name>.<ns>`, `<name>.<ns>.svc`,
/// `<name>.<ns>.svc.cluster.local`, each with the Service's port.
fn service_addresses(services: &[Arc<Service>], offset: u16) -> Vec<(String, u16, u16)> {
    let mut out = Vec::new();
    for s in services {
        let name = s.name_any();
        let ns = s.namespace().unwrap_or_default();
        for p in s
            .spec
            .as_ref()
            .and_then(|sp| sp.ports.as_ref())
            .into_iter()
            .flatten()
        {
            for host in [
                name.clone(),
                format!("{name}.{ns}"),
                format!("{name}.{ns}.svc"),
                format!("{name}.{ns}.svc.cluster.local"),
            ] {
                out.push((host, p.port as u16, (p.port as u16).saturating_add(offset)));
            }
        }
    }
    // Longest names first, so `x.ns.svc` is replaced before `x`.
    out.sort_by_key(|(h, _, _)| std::cmp::Reverse(h.len()));
    out
}

/// The host of an `http(s)://<host>:<port>` value that still names a cluster Service after
/// [`rewrite_hosts`]: a single DNS label (or a `.svc` name) other than `localhost`.
fn unresolved_service_url(value: &str) -> Option<&str> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let host = host.rsplit('@').next()?;
    let cluster_name = (!host.contains('.') || host.contains(".svc")) && host != "localhost";
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    (cluster_name && !is_ip && !host.is_empty() && port.parse::<u16>().is_ok()).then_some(host)
}

/// `value` with every `<service host>:<port>` pointing at `127.0.0.1:<local port>`.
pub fn rewrite_hosts(value: &str, addresses: &[(String, u16, u16)]) -> String {
    let mut v = value.to_string();
    for (host, port, local) in addresses {
        for (prefix, suffix) in [("//", ":"), ("@", ":"), ("", ":")] {
            let from = format!("{prefix}{host}{suffix}{port}");
            if prefix.is_empty() {
                // Only a whole host: the start of the value or after a separator.
                let mut out = String::new();
                let mut rest = v.as_str();
                while let Some(i) = rest.find(&from) {
                    let before = &rest[..i];
                    let boundary =
                        before.is_empty() || before.ends_with(['/', '@', ',', '=', ' ', ';']);
                    out.push_str(before);
                    if boundary {
                        out.push_str(&format!("127.0.0.1:{local}"));
                    } else {
                        out.push_str(&from);
                    }
                    rest = &rest[i + from.len()..];
                }
                out.push_str(rest);
                v = out;
            } else {
                v = v.replace(&from, &format!("{prefix}127.0.0.1:{local}"));
            }
        }
    }
    v
}

/// The Service port of the Service that selects `d`'s pods.
fn local_port(d: &Deployment, services: &[Arc<Service>]) -> Option<u16> {
    let ns = d.namespace().unwrap_or_default();
    let labels: BTreeMap<String, String> = d
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    services.iter().find_map(|s| {
        if s.namespace().unwrap_or_default() != ns {
            return None;
        }
        let spec = s.spec.as_ref()?;
        let selector = spec.selector.as_ref()?;
        if selector.is_empty() || !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return None;
        }
        spec.ports.as_ref()?.first().map(|p| p.port as u16)
    })
}

async fn secret_value(client: &Client, ns: &str, name: &str, key: &str) -> Result<String> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("Secret {name}"))?;
    let bytes = s
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| anyhow!("Secret {name} has no key {key}"))?;
    String::from_utf8(bytes.0).map_err(|_| anyhow!("Secret {name} key {key} is not UTF-8"))
}

async fn config_value(client: &Client, ns: &str, name: &str, key: &str) -> Result<String> {
    let c = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("ConfigMap {name}"))?;
    c.data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| anyhow!("ConfigMap {name} has no key {key}"))
}

/// The container's environment, resolved (references read from the API).
async fn environment(client: &Client, ns: &str, c: &Container) -> Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            let c = Api::<ConfigMap>::namespaced(client.clone(), ns)
                .get(&cm.name)
                .await
                .with_context(|| format!("ConfigMap {}", cm.name))?;
            for (k, v) in c.data.unwrap_or_default() {
                env.push((format!("{prefix}{k}"), v));
            }
        }
        if let Some(sr) = &from.secret_ref {
            let s = Api::<Secret>::namespaced(client.clone(), ns)
                .get(&sr.name)
                .await
                .with_context(|| format!("Secret {}", sr.name))?;
            for (k, v) in s.data.unwrap_or_default() {
                env.push((
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v.0).into_owned(),
                ));
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                if let Some(r) = &from.secret_key_ref {
                    secret_value(client, ns, &r.name, &r.key).await?
                } else if let Some(r) = &from.config_map_key_ref {
                    config_value(client, ns, &r.name, &r.key).await?
                } else if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "metadata.namespace" => ns.to_string(),
                        _ => String::new(),
                    }
                } else {
                    String::new()
                }
            }
            (None, None) => String::new(),
        };
        env.retain(|(k, _)| k != &e.name);
        env.push((e.name.clone(), value));
    }
    Ok(env)
}

async fn prepare(
    client: &Client,
    config: &RunnerConfig,
    d: &Deployment,
    services: &[Arc<Service>],
) -> Result<Prepared> {
    let ns = d.namespace().unwrap_or_default();
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .ok_or_else(|| anyhow!("the deployment has no pod template"))?;
    let c = pod
        .containers
        .first()
        .ok_or_else(|| anyhow!("the pod template has no container"))?;
    let image = c.image.clone().unwrap_or_default();
    let binary = binary_of_image(&image);
    let mut command =
        (config.command_for)(binary).ok_or_else(|| anyhow!("no local binary for image {image}"))?;
    command.args(c.args.iter().flatten());
    let addresses = service_addresses(services, config.port_offset);
    let port = local_port(d, services).map(|p| p.saturating_add(config.port_offset));
    // Volumes: a directory per volume under the runner's directory.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let dir = config
            .dir
            .join("volumes")
            .join(&ns)
            .join(d.name_any())
            .join(&m.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        mounts.push((m.mount_path.clone(), dir));
    }
    command.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (k, v) in environment(client, &ns, c).await? {
        let mut v = rewrite_hosts(&v, &addresses);
        for (mount, dir) in &mounts {
            if let Some(rest) = v.strip_prefix(mount.as_str()) {
                v = format!("{}{rest}", dir.display());
            }
        }
        // A Service this process calls that the runner does not know yet (its DatabaseService
        // is still being reconciled): start later, or the name would never resolve here.
        if let Some(host) = unresolved_service_url(&v) {
            return Err(anyhow!(
                "waiting for Service {host}, which {k} names, to exist"
            ));
        }
        command.env(k, v);
    }
    command.env("HOST", "127.0.0.1");
    if let Some(p) = port {
        command.env("PORT", p.to_string());
    }
    Ok(Prepared { command, port })
}

fn spawn(mut command: Command, log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    command
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    command.spawn().context("starting the process")
}

async fn stop_child(child: &mut Option<Child>) {
    let Some(mut c) = child.take() else { return };
    if let Some(pid) = c.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(10), c.wait())
        .await
        .is_err()
    {
        let _ = c.kill().await;
    }
}

/// The readiness probe: HTTP GET on its path (2xx/3xx) or a TCP connect.
async fn probe(d: &Deployment, port: u16) -> bool {
    let path = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.readiness_probe.as_ref())
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.clone());
    let connect = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    let Ok(Ok(mut stream)) = connect else {
        return false;
    };
    let Some(path) = path else { return true };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n >= 12 => matches!(buf[9], b'2' | b'3'),
        _ => false,
    }
}

fn status_of(
    d: &Deployment,
    replicas: i32,
    ready: bool,
    restarts: u32,
    problem: Option<&str>,
) -> serde_json::Value {
    let ready_n = i32::from(ready && replicas > 0);
    let (available, reason, message) = if replicas == 0 {
        ("True", "ScaledToZero", "no process runs".to_string())
    } else if ready {
        (
            "True",
            "MinimumReplicasAvailable",
            format!("the local process is ready (restarts: {restarts})"),
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            match problem {
                Some(p) => format!("the local process is not ready: {p}"),
                None => "the local process is not ready yet".to_string(),
            },
        )
    };
    json!({
        "observedGeneration": d.metadata.generation.unwrap_or(0),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready_n,
        "availableReplicas": ready_n,
        "unavailableReplicas": replicas - ready_n,
        "conditions": [
            {"type": "Available", "status": available, "reason": reason, "message": message},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": "the local process runs the current pod template"},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_name_their_binaries() {
        assert_eq!(
            binary_of_image("registry.example.com/prismicx/task-repo-service:0.1.0"),
            "task-repo-service"
        );
        assert_eq!(binary_of_image("user-data-service"), "user-data-service");
        assert_eq!(
            binary_of_image("prismicx/management-system-repo@sha256:abc"),
            "management-system-repo"
        );
    }

    #[test]
    fn a_url_naming_a_service_not_rewritten_yet_is_recognised() {
        assert_eq!(
            unresolved_service_url("http://tenant-mgmt-service:8501"),
            Some("tenant-mgmt-service")
        );
        assert_eq!(
            unresolved_service_url("https://x.prismicx.svc:443/p"),
            Some("x.prismicx.svc")
        );
        assert_eq!(unresolved_service_url("http://127.0.0.1:8501"), None);
        assert_eq!(unresolved_service_url("http://localhost:8501"), None);
        assert_eq!(unresolved_service_url("https://example.com:443"), None);
        assert_eq!(unresolved_service_url("redis://redis-cache:6379"), None);
        assert_eq!(unresolved_service_url("INFO"), None);
    }

    #[test]
    fn service_hosts_are_rewritten_to_loopback() {
        let addrs = vec![
            ("tenant-mgmt-service.default.svc".to_string(), 8501, 8501),
            ("tenant-mgmt-service".to_string(), 8501, 8501),
            ("pgbouncer".to_string(), 6432, 16432),
        ];
        assert_eq!(
            rewrite_hosts("http://tenant-mgmt-service:8501", &addrs),
            "http://127.0.0.1:8501"
        );
        assert_eq!(
            rewrite_hosts("http://tenant-mgmt-service.default.svc:8501/x", &addrs),
            "http://127.0.0.1:8501/x"
        );
        assert_eq!(
            rewrite_hosts("postgres://u:p@pgbouncer:6432/db", &addrs),
            "postgres://u:p@127.0.0.1:16432/db"
        );
        assert_eq!(rewrite_hosts("pgbouncer:6432", &addrs), "127.0.0.1:16432");
        // Not a host: left alone.
        assert_eq!(
            rewrite_hosts("mypgbouncer:6432", &addrs),
            "mypgbouncer:6432"
        );
        assert_eq!(rewrite_hosts("pgbouncer", &addrs), "pgbouncer");
    }
}

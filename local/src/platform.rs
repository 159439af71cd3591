//! The whole platform on one machine, the way a cluster runs it.
//!
//! [`Platform::start`] brings up, in order:
//!
//! 1. the database servers (PostgreSQL, PgBouncer, Redis, a MongoDB wire server) as local
//!    processes, through `prismicx-harness`;
//! 2. the local Kubernetes-API endpoint (`prismicx-local-apiserver`) with the CRDs from
//!    `crds/`, and a kubeconfig for it;
//! 3. the operator, as its own process (the launcher binary re-run as `operator`, which runs the
//!    same code as the `prismicx-operator` binary), pointed at that endpoint and at the servers;
//! 4. the process runner ([`crate::runner`]), which starts a local process for every Deployment
//!    the operator creates and reports its readiness back;
//! 5. the platform API-key Secret and the DatabaseServices of the services that have a binary,
//!    then waits until each is Available;
//! 6. the example Tenants (`demo`, standard; `demo-vip`, dedicated), waits until each is Ready,
//!    and issues an API key for each through tenant-mgmt.
//!
//! [`Platform::stop`] stops everything it started, in reverse, and removes the servers' files.
//! The same type backs `make run` and the end-to-end suite.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use prismicx_harness::{Ports, Servers, StartOptions};
use prismicx_local_apiserver::{ApiServer, ServerOptions};
use prismicx_operator_api::{DatabaseService, ServiceKind, Tenant};
use serde_json::json;

use crate::runner::{Runner, RunnerConfig};

/// The platform key of the local platform (development only).
pub const PLATFORM_KEY: &str = "local-platform-key";
/// The namespace the platform's resources live in.
pub const NAMESPACE: &str = "prismicx";
/// The Secret holding the platform key, and its key.
pub const API_KEY_SECRET: (&str, &str) = ("prismicx-platform", "api-key");

/// The services the platform runs: all six. vector-store-service keeps its vectors in the
/// runner's directory for its claim's mount (under the platform's data directory), so they go
/// with the platform on exit.
pub const SERVICES: &[ServiceKind] = &ServiceKind::ALL;

/// The example tenants: name and tier.
pub const EXAMPLE_TENANTS: &[(&str, &str)] = &[("demo", "standard"), ("demo-vip", "dedicated")];

/// How to start a [`Platform`].
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    /// The database servers' ports.
    pub ports: Ports,
    /// The API endpoint's port.
    pub api_port: u16,
    /// Added to each service's platform port (8501…) for its local port.
    pub service_port_offset: u16,
    /// The launcher binary (`prismicx-local`), re-run as `operator` and `service <name>`.
    pub launcher: PathBuf,
    /// Where the kubeconfig and the logs go; `None`: the servers' temporary directory.
    pub dir: Option<PathBuf>,
    /// Tenants to create and wait for (name, tier); the examples by default.
    pub tenants: Vec<(String, String)>,
}

/// A running local platform.
pub struct Platform {
    pub servers: Servers,
    pub api: prismicx_local_apiserver::Handle,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
    /// Service Kubernetes name → local URL.
    pub service_urls: BTreeMap<&'static str, String>,
    /// Tenant name → its issued API key.
    pub tenant_keys: BTreeMap<String, String>,
    pub dir: PathBuf,
    operator: Option<Child>,
    operator_env: Vec<(String, String)>,
    launcher: PathBuf,
    runner_stop: Option<tokio::sync::oneshot::Sender<()>>,
    runner_task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("api", &self.api.url())
            .field("kubeconfig", &self.kubeconfig)
            .field("service_urls", &self.service_urls)
            .finish_non_exhaustive()
    }
}

/// The repository's `crds/` directory.
pub fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Platform {
    /// Brings everything up (see the module docs); on failure, stops what it started.
    pub async fn start(opts: PlatformOptions) -> Result<Platform> {
        let ports = opts.ports;
        let servers_dir = opts.dir.clone().map(|d| d.join("servers"));
        println!("Starting PostgreSQL, PgBouncer, Redis and the MongoDB wire server…");
        let servers = tokio::task::spawn_blocking(move || {
            Servers::start(StartOptions {
                dir: servers_dir,
                ports: Some(ports),
            })
        })
        .await??;
        let dir = opts
            .dir
            .clone()
            .unwrap_or_else(|| servers.dir().to_path_buf());
        std::fs::create_dir_all(dir.join("logs"))?;

        println!("Starting the Kubernetes API endpoint…");
        let api = ApiServer::start(ServerOptions {
            listen: ([127, 0, 0, 1], opts.api_port).into(),
            crds_dirs: vec![crds_dir()],
            ..ServerOptions::default()
        })
        .await?;
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig)?;
        let client = client_for(&kubeconfig).await?;

        let mut platform = Platform {
            servers,
            api,
            kubeconfig,
            client,
            service_urls: BTreeMap::new(),
            tenant_keys: BTreeMap::new(),
            dir,
            operator: None,
            operator_env: Vec::new(),
            launcher: opts.launcher.clone(),
            runner_stop: None,
            runner_task: None,
        };
        match platform.bring_up(&opts).await {
            Ok(()) => Ok(platform),
            Err(e) => {
                platform.stop().await;
                Err(e)
            }
        }
    }

    async fn bring_up(&mut self, opts: &PlatformOptions) -> Result<()> {
        self.operator_env = operator_env(&self.servers, &self.kubeconfig)?;
        println!("Starting the operator…");
        self.start_operator()?;

        let launcher = opts.launcher.clone();
        let guardian_pid: Arc<dyn Fn(u32) + Send + Sync> =
            Arc::new(self.servers.guardian().pid_registrar());
        let runner = Runner::new(
            self.client.clone(),
            RunnerConfig {
                dir: self.dir.join("logs"),
                command_for: Arc::new(move |binary: &str| {
                    let mut c = tokio::process::Command::new(&launcher);
                    c.args(["service", binary]);
                    Some(c)
                }),
                port_offset: opts.service_port_offset,
                on_spawn: Some(guardian_pid),
            },
        );
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        self.runner_stop = Some(stop_tx);
        self.runner_task = Some(tokio::spawn(runner.run(async move {
            let _ = stop_rx.await;
        })));

        self.apply_base().await?;
        println!("Deploying the services…");
        for kind in SERVICES {
            self.apply_database_service(*kind).await?;
            self.service_urls.insert(
                kind.k8s_name(),
                format!(
                    "http://127.0.0.1:{}",
                    kind.external_port() + opts.service_port_offset
                ),
            );
        }
        for kind in SERVICES {
            self.wait_service_available(kind.k8s_name(), Duration::from_secs(240))
                .await?;
        }
        println!("Provisioning the example tenants…");
        for (name, tier) in &opts.tenants {
            self.apply_tenant(name, tier).await?;
        }
        for (name, _) in &opts.tenants {
            self.wait_tenant_ready(name, Duration::from_secs(240))
                .await?;
            let key = self.issue_key(name).await?;
            self.tenant_keys.insert(name.clone(), key);
        }
        Ok(())
    }

    /// Starts the operator process (again, after [`Platform::kill_operator`]).
    pub fn start_operator(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("logs").join("operator.log"))?;
        let child = Command::new(&self.launcher)
            .arg("operator")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.operator_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the operator")?;
        self.servers.guardian().watch_pid(child.id());
        self.operator = Some(child);
        Ok(())
    }

    /// Kills the operator at once (SIGKILL), as a crashed pod would stop.
    pub fn kill_operator(&mut self) {
        if let Some(mut c) = self.operator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the runner's processes, the operator, the API endpoint and the servers.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.runner_stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.runner_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        if let Some(mut c) = self.operator.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.api.close_watches();
        self.servers.stop();
    }

    async fn apply_base(&self) -> Result<()> {
        let ns: Api<Namespace> = Api::all(self.client.clone());
        create_if_absent(
            &ns,
            serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), NAMESPACE);
        create_if_absent(
            &secrets,
            serde_json::from_value(json!({
                "metadata": {"name": API_KEY_SECRET.0},
                "stringData": {API_KEY_SECRET.1: PLATFORM_KEY},
            }))?,
        )
        .await
    }

    async fn apply_database_service(&self, kind: ServiceKind) -> Result<()> {
        let api: Api<DatabaseService> = Api::namespaced(self.client.clone(), NAMESPACE);
        let ds: DatabaseService = serde_json::from_value(json!({
            "apiVersion": "prismicx.io/v1alpha1",
            "kind": "DatabaseService",
            "metadata": {"name": kind.k8s_name()},
            "spec": {
                "service": kind,
                "replicas": 1,
                "logLevel": "INFO",
                "apiKeySecret": {"name": API_KEY_SECRET.0, "key": API_KEY_SECRET.1},
            },
        }))?;
        create_if_absent(&api, ds).await
    }

    /// Creates the Tenant `name` of `tier` using every service that has a binary.
    pub async fn apply_tenant(&self, name: &str, tier: &str) -> Result<()> {
        let api: Api<Tenant> = Api::namespaced(self.client.clone(), NAMESPACE);
        let t: Tenant = serde_json::from_value(json!({
            "apiVersion": "prismicx.io/v1alpha1",
            "kind": "Tenant",
            "metadata": {"name": name},
            "spec": {"tier": tier, "services": SERVICES, "displayName": format!("Example tenant {name}")},
        }))?;
        create_if_absent(&api, t).await
    }

    /// Waits until the DatabaseService `name` reports `Available=True`.
    pub async fn wait_service_available(&self, name: &str, timeout: Duration) -> Result<()> {
        let logs = format!("logs in {}", self.dir.join("logs").display());
        self.wait_for::<DatabaseService>(name, "Available", timeout, &logs)
            .await
    }

    /// Waits until the Tenant `name` reports `Ready=True`.
    pub async fn wait_tenant_ready(&self, name: &str, timeout: Duration) -> Result<()> {
        let logs = format!(
            "operator log: {}",
            self.dir.join("logs/operator.log").display()
        );
        self.wait_for::<Tenant>(name, "Ready", timeout, &logs).await
    }

    /// Waits until the `K` named `name` reports `condition=True`; a timeout names the object
    /// and where its logs are.
    async fn wait_for<K>(
        &self,
        name: &str,
        condition: &str,
        timeout: Duration,
        logs: &str,
    ) -> Result<()>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + serde::Serialize,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), NAMESPACE);
        wait_condition(name, condition, timeout, || async {
            Ok(serde_json::to_value(api.get(name).await?)?)
        })
        .await
        .with_context(|| format!("{} {name} ({logs})", K::kind(&())))
    }

    /// Issues an API key for `tenant` through tenant-mgmt with the platform key.
    pub async fn issue_key(&self, tenant: &str) -> Result<String> {
        let url = format!(
            "{}/v1/api-keys",
            self.service_urls
                .get("tenant-mgmt-service")
                .ok_or_else(|| anyhow!("tenant-mgmt-service is not deployed"))?
        );
        let res = reqwest::Client::new()
            .post(&url)
            .bearer_auth(PLATFORM_KEY)
            .header("x-tenant", tenant)
            .json(&json!({"name": "local example"}))
            .send()
            .await?;
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("issuing a key for {tenant}: HTTP {status}: {body}");
        }
        body["key"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| anyhow!("tenant-mgmt answered without a key"))
    }
}

/// A kube client for `kubeconfig`.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    prismicx_service_common::tls::install_default_provider();
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

async fn create_if_absent<K>(api: &Api<K>, obj: K) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn wait_condition<F, Fut>(
    name: &str,
    condition: &str,
    timeout: Duration,
    get: F,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match get().await {
            Ok(obj) => {
                let conds = obj["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if let Some(c) = conds.iter().find(|c| c["type"] == condition) {
                    if c["status"] == "True" {
                        return Ok(());
                    }
                    last = format!(
                        "{condition}={} {}: {}",
                        c["status"].as_str().unwrap_or("?"),
                        c["reason"].as_str().unwrap_or(""),
                        c["message"].as_str().unwrap_or("")
                    );
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("{name} did not become {condition} within {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The operator's environment: the API endpoint (kubeconfig) and the servers as it reaches
/// them, which are also the addresses it hands the services.
fn operator_env(servers: &Servers, kubeconfig: &Path) -> Result<Vec<(String, String)>> {
    let pg = servers.postgres.port().to_string();
    Ok(vec![
        ("KUBECONFIG".into(), kubeconfig.display().to_string()),
        ("OPERATOR_LOG_LEVEL".into(), "INFO".into()),
        ("METRICS_ADDR".into(), format!("127.0.0.1:{}", free_port()?)),
        ("RESYNC_INTERVAL_SECS".into(), "60".into()),
        ("PLATFORM_NAMESPACE".into(), NAMESPACE.into()),
        ("POSTGRES_HOST".into(), "127.0.0.1".into()),
        ("POSTGRES_PORT".into(), pg.clone()),
        ("POSTGRES_ADMIN_USER".into(), "postgres".into()),
        (
            "POSTGRES_ADMIN_PASSWORD".into(),
            servers.postgres.superuser_password().to_string(),
        ),
        ("PGBOUNCER_HOST".into(), "127.0.0.1".into()),
        (
            "PGBOUNCER_PORT".into(),
            servers.pgbouncer.port().to_string(),
        ),
        ("PGBOUNCER_ADMIN_USER".into(), "postgres".into()),
        (
            "PGBOUNCER_ADMIN_PASSWORD".into(),
            servers.postgres.superuser_password().to_string(),
        ),
        (
            "PGBOUNCER_DATABASES_FILE".into(),
            servers.pgbouncer.databases_file().display().to_string(),
        ),
        ("PGBOUNCER_SERVER_HOST".into(), "127.0.0.1".into()),
        ("PGBOUNCER_SERVER_PORT".into(), pg),
        ("MONGODB_SYSTEM_URI".into(), servers.mongo_system.uri()),
        ("MONGODB_TENANT_URI".into(), servers.mongo_tenant.uri()),
        (
            "MONGODB_SYSTEM_ADDRESS".into(),
            servers.mongo_system.address(),
        ),
        (
            "MONGODB_TENANT_ADDRESS".into(),
            servers.mongo_tenant.address(),
        ),
        ("REDIS_URL".into(), servers.redis.url()),
        ("SERVICES_REDIS_URL".into(), servers.redis.url()),
    ])
}

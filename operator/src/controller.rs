//! The operator process: configuration → clients → (leader election) → the Tenant and
//! DatabaseService controllers, with `/metrics`, `/healthz` and `/readyz` served beside them,
//! until SIGTERM or Ctrl-C.
//!
//! The Tenant controller watches Tenants (one namespace or all) and the Secrets it owns, and runs
//! [`crate::tenant::reconcile`]. The DatabaseService controller watches DatabaseServices and the
//! Deployments, Services, ServiceAccounts, ConfigMaps and Secrets they own (so a Deployment's
//! status change re-reconciles its DatabaseService), and runs
//! [`crate::database_service::reconcile`]. Both share one [`Context`], run with the configured
//! concurrency, stop on the same shutdown signal, and send failures to [`error_policy`]: an
//! invalid spec waits for the next change, anything else is retried after a back-off. Every
//! outcome is counted in the metrics by the reconcilers themselves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::Api;
use prismicx_operator_api::{DatabaseService, Tenant};
use tokio::task::JoinHandle;

use crate::catalog::Catalog;
use crate::conditions::Reason;
use crate::config::OperatorArgs;
use crate::context::Context;
use crate::database_service::{self, plan::Settings, DatabaseServiceContext};
use crate::dataplane::{DataPlane, DataPlaneSettings};
use crate::error::Error;
use crate::http::{self, HealthState};
use crate::leader::{LeaderElector, LeaseSettings};
use crate::tenant::{self, status};

/// What a controller does after a failed reconcile (of a Tenant or a DatabaseService).
pub fn error_policy<K, C>(_object: Arc<K>, err: &Error, _ctx: Arc<C>) -> Action {
    if err.is_permanent() {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(10))
    }
}

/// Counts the Tenants in the store by state, for the `tenants` gauge.
pub fn tenants_by_state(tenants: &[Arc<Tenant>]) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for t in tenants {
        let state = if t.metadata.deletion_timestamp.is_some() {
            "deleting"
        } else if status::is_ready(t.status.as_ref()) {
            if t.spec.suspended {
                "suspended"
            } else {
                "ready"
            }
        } else if status::ready(t.status.as_ref())
            .is_some_and(|c| c.reason != Reason::Provisioning.as_str())
        {
            "failed"
        } else {
            "provisioning"
        };
        *counts.entry(state).or_insert(0) += 1;
    }
    counts
}

/// Runs the operator until a shutdown signal: context, signal handler, HTTP server, (leader
/// election), controllers; then the lease and the server are released in that order.
pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    prismicx_store::process::init(&args.log_level, &args.log_format);
    let (settings, client, ctx) = build_context(&args).await?;
    let shutdown = Shutdown::on_signal();
    let (health, server) = start_http(&args, &ctx, &shutdown).await?;
    let Some(leadership) = lead(&args, &client, &ctx, &shutdown).await else {
        return Ok(());
    };
    let tenants = tenant_controllers(&args, &client, &shutdown);
    spawn_state_gauge(tenants.iter().map(|c| c.store()).collect(), ctx.clone());
    let services = service_controller(&args, &client, &settings, &shutdown);
    let dctx = Arc::new(DatabaseServiceContext {
        ctx: ctx.clone(),
        settings,
    });

    health.set_ready(true);
    run_controllers(tenants, services, ctx, dctx).await;
    health.set_ready(false);
    tracing::info!("controllers stopped");
    leadership.release().await;
    stop_http(server).await;
    Ok(())
}

/// The settings of the deployed services, the Kubernetes client and the shared [`Context`]
/// (connected to the data servers).
async fn build_context(
    args: &OperatorArgs,
) -> anyhow::Result<(Settings, kube::Client, Arc<Context>)> {
    let settings = Settings::from_args(args)?;
    let client = kube::Client::try_default().await?;
    let data = DataPlane::connect(DataPlaneSettings::from_args(&args.data)).await?;
    let ctx = Arc::new(Context::new(
        client.clone(),
        data,
        Catalog::platform(),
        args.resync_interval(),
    ));
    Ok((settings, client, ctx))
}

/// The shutdown signal (SIGTERM or Ctrl-C), shared by every part of the process.
#[derive(Clone)]
struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    fn on_signal() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            prismicx_store::process::shutdown_signal().await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the signal came.
    fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Binds the metrics and health address (before anything else starts, so a taken port fails
/// the start-up loudly) and serves it until shutdown.
async fn start_http(
    args: &OperatorArgs,
    ctx: &Context,
    shutdown: &Shutdown,
) -> anyhow::Result<(HealthState, JoinHandle<anyhow::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.metrics_addr))?;
    let health = HealthState::new(ctx.metrics.clone());
    let server = tokio::spawn(http::serve_on(
        listener,
        http::router(health.clone()),
        shutdown.wait(),
    ));
    Ok((health, server))
}

/// The right to act: held from winning the lease until [`Leadership::release`].
struct Leadership {
    release: tokio::sync::watch::Sender<bool>,
    /// The election task's view of the lease; closed once it has released it.
    leading: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Leadership {
    /// Releases the lease now that no reconcile runs, so a successor takes over at once.
    async fn release(self) {
        let _ = self.release.send(true);
        if let Some(mut rx) = self.leading {
            // The election task ends (closing the channel) once the lease is released.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while rx.changed().await.is_ok() {}
            })
            .await;
        }
    }
}

/// Without leader election, leads at once (a single replica acts without a lease); with it,
/// waits for the lease (`None`: shutdown came first) and exits the process if it is lost.
async fn lead(
    args: &OperatorArgs,
    client: &kube::Client,
    ctx: &Context,
    shutdown: &Shutdown,
) -> Option<Leadership> {
    let (release, released) = tokio::sync::watch::channel(false);
    if !args.leader_election {
        ctx.metrics.set_leader(true);
        return Some(Leadership {
            release,
            leading: None,
        });
    }
    let identity = args.identity.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("prismicx-operator-{}", std::process::id()))
    });
    let namespace = args
        .lease_namespace
        .clone()
        .or_else(|| args.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let elector = LeaderElector::new(
        client.clone(),
        LeaseSettings {
            namespace,
            name: args.lease_name.clone(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
        },
    );
    // The lease is released only after the controllers have drained (Leadership::release).
    let mut leading = elector.spawn(released);
    tracing::info!("waiting to lead");
    loop {
        if *leading.borrow() {
            break;
        }
        if shutdown.requested() {
            return None;
        }
        tokio::select! {
            r = leading.changed() => { if r.is_err() { return None; } }
            _ = shutdown.wait() => { return None; }
        }
    }
    ctx.metrics.set_leader(true);
    tracing::info!("leading; starting the controllers");
    exit_on_lost_lease(leading.clone(), ctx, shutdown);
    Some(Leadership {
        release,
        leading: Some(leading),
    })
}

/// Losing the lease means another replica may act: stop acting at once.
fn exit_on_lost_lease(
    mut lost: tokio::sync::watch::Receiver<bool>,
    ctx: &Context,
    shutdown: &Shutdown,
) {
    let metrics = ctx.metrics.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        while lost.changed().await.is_ok() {
            if !*lost.borrow() && !stopping.requested() {
                metrics.set_leader(false);
                tracing::error!("lost the leader lease; exiting so a leader can take over");
                std::process::exit(1);
            }
        }
    });
}

/// Owned objects are watched by the managed-by label, so only the operator's are cached.
fn owned() -> watcher::Config {
    watcher::Config::default().labels("app.kubernetes.io/managed-by=prismicx-operator")
}

/// One Tenant controller per namespace it manages (or one for all), each watching the
/// credentials Secrets of its namespace only: the operator needs Secrets nowhere else.
fn tenant_controllers(
    args: &OperatorArgs,
    client: &kube::Client,
    shutdown: &Shutdown,
) -> Vec<Controller<Tenant>> {
    tenant_scopes(args)
        .into_iter()
        .map(|scope| {
            Controller::new(
                namespaced_or_all::<Tenant>(client, &scope),
                watcher::Config::default().any_semantic(),
            )
            .owns(namespaced_or_all::<Secret>(client, &scope), owned())
            .with_config(ControllerConfig::default().concurrency(args.concurrency))
            .graceful_shutdown_on(shutdown.wait())
        })
        .collect()
}

/// The DatabaseService controller. DatabaseServices run only in the platform namespace, so the
/// objects they own (and the Secrets they read) are watched there only; DatabaseServices
/// elsewhere are still watched, to be refused with a condition.
fn service_controller(
    args: &OperatorArgs,
    client: &kube::Client,
    settings: &Settings,
    shutdown: &Shutdown,
) -> Controller<DatabaseService> {
    let platform = Some(settings.platform_namespace.clone());
    Controller::new(
        namespaced_or_all::<DatabaseService>(client, &args.namespace),
        watcher::Config::default().any_semantic(),
    )
    .owns(namespaced_or_all::<Deployment>(client, &platform), owned())
    .owns(namespaced_or_all::<Service>(client, &platform), owned())
    .owns(
        namespaced_or_all::<ServiceAccount>(client, &platform),
        owned(),
    )
    .owns(namespaced_or_all::<ConfigMap>(client, &platform), owned())
    .owns(namespaced_or_all::<Secret>(client, &platform), owned())
    .owns(
        namespaced_or_all::<PersistentVolumeClaim>(client, &platform),
        owned(),
    )
    .with_config(ControllerConfig::default().concurrency(args.concurrency))
    .graceful_shutdown_on(shutdown.wait())
}

/// Runs every controller until all have shut down.
async fn run_controllers(
    tenants: Vec<Controller<Tenant>>,
    services: Controller<DatabaseService>,
    ctx: Arc<Context>,
    dctx: Arc<DatabaseServiceContext>,
) {
    let tenant_loop = futures::future::join_all(tenants.into_iter().map(|c| {
        c.run(tenant::reconcile, error_policy, ctx.clone())
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "tenant reconcile ended with an error");
                }
            })
    }));
    let service_loop = services
        .run(database_service::reconcile, error_policy, dctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "databaseservice reconcile ended with an error");
            }
        });
    futures::future::join(tenant_loop, service_loop).await;
}

/// Waits for the metrics and health server to end (it stops on the shutdown signal).
async fn stop_http(server: JoinHandle<anyhow::Result<()>>) {
    match server.await {
        Ok(Err(e)) => tracing::error!(error = %e, "the metrics and health server failed"),
        Err(e) => tracing::error!(error = %e, "the metrics and health server panicked"),
        Ok(Ok(())) => {}
    }
}

/// The namespaces whose Tenants are reconciled, one controller each: `--tenant-namespaces`, else
/// the watched namespace, else every namespace (`None`).
pub fn tenant_scopes(args: &OperatorArgs) -> Vec<Option<String>> {
    if args.tenant_namespaces.is_empty() {
        vec![args.namespace.clone()]
    } else {
        args.tenant_namespaces.iter().cloned().map(Some).collect()
    }
}

/// `Api` of one namespace, or of all when none is configured.
fn namespaced_or_all<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn spawn_state_gauge(stores: Vec<Store<Tenant>>, ctx: Arc<Context>) {
    tokio::spawn(async move {
        loop {
            let all: Vec<Arc<Tenant>> = stores.iter().flat_map(|s| s.state()).collect();
            ctx.metrics.set_tenants_by_state(&tenants_by_state(&all));
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> OperatorArgs {
        OperatorArgs::for_test(extra)
    }

    #[test]
    fn tenants_are_reconciled_in_the_listed_namespaces_else_the_watched_one_else_all() {
        assert_eq!(tenant_scopes(&args(&[])), vec![None]);
        assert_eq!(
            tenant_scopes(&args(&["--namespace=tenants"])),
            vec![Some("tenants".to_string())]
        );
        assert_eq!(
            tenant_scopes(&args(&["--tenant-namespaces=team-a,team-b"])),
            vec![Some("team-a".to_string()), Some("team-b".to_string())]
        );
    }
}

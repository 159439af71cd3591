//! The operator process: configuration → clients → (leader election) → the Tenant controller,
//! with `/metrics`, `/healthz` and `/readyz` served beside it, until SIGTERM or Ctrl-C.
//!
//! The controller watches Tenants (one namespace or all) and the Secrets it owns, runs
//! [`crate::tenant::reconcile`] with the configured concurrency, and sends failures to
//! [`error_policy`]: an invalid spec waits for the next change, anything else is retried after
//! a back-off. Every outcome is counted in the metrics by the reconciler itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::Api;
use prismicx_operator_api::Tenant;

use crate::catalog::Catalog;
use crate::config::OperatorArgs;
use crate::context::Context;
use crate::dataplane::{DataPlane, DataPlaneSettings};
use crate::error::Error;
use crate::http::{self, HealthState};
use crate::leader::{LeaderElector, LeaseSettings};
use crate::tenant::{self, status};

/// What the controller does after a failed reconcile.
pub fn error_policy(_tenant: Arc<Tenant>, err: &Error, _ctx: Arc<Context>) -> Action {
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
        } else if status::is_true(t.status.as_ref(), status::READY) {
            if t.spec.suspended {
                "suspended"
            } else {
                "ready"
            }
        } else if t
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == status::READY))
            .is_some_and(|c| c.reason != "Provisioning")
        {
            "failed"
        } else {
            "provisioning"
        };
        *counts.entry(state).or_insert(0) += 1;
    }
    counts
}

/// Runs the operator until a shutdown signal.
pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    prismicx_service_common::telemetry::init(&args.log_level, &args.log_format);
    let client = kube::Client::try_default().await?;
    let data = DataPlane::connect(DataPlaneSettings::from_args(&args.data)).await?;
    let ctx = Arc::new(Context::new(
        client.clone(),
        data,
        Catalog::platform(),
        args.resync_interval(),
    ));

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        prismicx_service_common::http::shutdown_signal().await;
        let _ = shutdown_tx.send(true);
    });
    let wait_shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };

    let health = HealthState::new(ctx.metrics.clone());
    let server = tokio::spawn(http::serve(
        args.metrics_addr,
        http::router(health.clone()),
        wait_shutdown(shutdown_rx.clone()),
    ));

    let (elector_tx, elector_rx) = tokio::sync::watch::channel(false);
    if args.leader_election {
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
        // The lease is released only after the controller has drained (see the end of run).
        let mut leading = elector.spawn(elector_rx);
        tracing::info!("waiting to lead");
        loop {
            if *leading.borrow() {
                break;
            }
            if *shutdown_rx.borrow() {
                return Ok(());
            }
            tokio::select! {
                r = leading.changed() => { if r.is_err() { return Ok(()); } }
                _ = wait_shutdown(shutdown_rx.clone()) => { return Ok(()); }
            }
        }
        ctx.metrics.set_leader(true);
        tracing::info!("leading; starting the controller");
        // Losing the lease means another replica may act: stop acting at once.
        let mut lost = leading.clone();
        let metrics = ctx.metrics.clone();
        let stopping = shutdown_rx.clone();
        tokio::spawn(async move {
            while lost.changed().await.is_ok() {
                if !*lost.borrow() && !*stopping.borrow() {
                    metrics.set_leader(false);
                    tracing::error!("lost the leader lease; exiting so a leader can take over");
                    std::process::exit(1);
                }
            }
        });
    }

    let tenants: Api<Tenant> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let secrets: Api<Secret> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let controller = Controller::new(tenants, watcher::Config::default().any_semantic())
        .owns(
            secrets,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=prismicx-operator"),
        )
        .with_config(ControllerConfig::default().concurrency(args.concurrency))
        .graceful_shutdown_on(wait_shutdown(shutdown_rx.clone()));
    spawn_state_gauge(controller.store(), ctx.clone());
    health.set_ready(true);
    controller
        .run(tenant::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile ended with an error");
            }
        })
        .await;
    health.set_ready(false);
    tracing::info!("controller stopped");
    // Release the lease now that no reconcile runs, so a successor takes over at once.
    let _ = elector_tx.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = server.await;
    Ok(())
}

fn spawn_state_gauge(store: Store<Tenant>, ctx: Arc<Context>) {
    tokio::spawn(async move {
        loop {
            ctx.metrics
                .set_tenants_by_state(&tenants_by_state(&store.state()));
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
    });
}

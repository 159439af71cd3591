//! The DatabaseService reconciler: runs one of the six services as a Deployment with its
//! Service, ServiceAccount, ConfigMap and database credentials.
//!
//! One reconcile is a pipeline of steps, one file each, carried by a [`Deploy`]: only
//! [`validate`], [`credentials`], [`apply`] and [`status`] touch the Kubernetes API, only
//! [`dependencies`] touches the data servers, and what they compute is pure and unit-tested:
//! [`plan`], [`config_hash`], [`resources`] (the object builders) and [`observe`] (status from
//! the Deployment). The status and its Events go through the runner both reconcilers share
//! ([`crate::pipeline::Run`]):
//!
//! ```text
//! DatabaseService ──► validate: platform namespace, plan (pure: names, ConfigMap data, env,
//!       image), the Deployment of that name (is it ours?)
//!   ──► credentials: every Secret key the env references, the operator's database Secret
//!       (`<k8s-name>-db`)                                        secret step metrics
//!   ──► dependencies: the service database, system schema and login role / MongoDB users
//!                                                                postgres / mongo step metrics
//!   ──► apply: config hash, ConfigMap, ServiceAccount, Service, PersistentVolumeClaim
//!       (vector-store), Deployment (server-side apply, field manager `prismicx-operator`,
//!       forced) + prune
//!   ──► status: Deployed / ConfigChanged Event, readyReplicas, Available/Progressing/Degraded,
//!       observedGeneration, configHash
//! ```
//!
//! A failed step stops the pipeline, sets `Degraded=True` with the step's reason
//! (`InvalidSpec`, `SecretFailed`, `PostgresFailed`, `MongoFailed`, `KubernetesApiFailed`),
//! records a Warning Event and returns the error to the controller's error policy. The
//! dependencies run before the Deployment is applied, so the first rollout never starts against
//! a database that does not exist; a later failure leaves the running pods alone and holds back
//! configuration changes until the databases are reachable again. A successful reconcile
//! requeues after [`RESYNC`] to refresh the status (the controller also wakes on changes of
//! the objects it owns, such as the Deployment's status).
//!
//! Decisions:
//! - Names: every object is named `spec.service.k8s_name()` (`category-repository-service`, …);
//!   one DatabaseService per service and namespace: a Deployment of that name controlled by
//!   another object makes the spec invalid. Labels: `app.kubernetes.io/name` (the k8s name),
//!   `app.kubernetes.io/instance` (the DatabaseService), `component=service`,
//!   `part-of=prismicx`, `managed-by=prismicx-operator`; the Deployment selects on `name` and
//!   `instance` only (its selector is immutable).
//! - Service: ClusterIP, port `external_port` → targetPort `container_port`, named `http`
//!   (8504 → 8080 for category-repository).
//! - Configuration: non-secret settings in the ConfigMap (read with `envFrom`): `SERVICE_NAME`,
//!   `HOST=0.0.0.0`, `PORT`, `<PREFIX>_LOG_LEVEL` (from `spec.logLevel`), `LOG_FORMAT=json`,
//!   `TENANT_MGMT_URL=http://tenant-mgmt-service:8501` (not for tenant-mgmt), `REDIS_URL`
//!   (operator flag `--services-redis-url`), `<DB>_DB_HOST/PORT/NAME` (PgBouncer, from the
//!   operator's `--pgbouncer-host/-port`) and vector-store's `VECTOR_STORE_DATA_DIR`,
//!   `VECTOR_STORE_MEMORY_BUDGET_MB` (`spec.vectorStore.memoryBudgetMb`, else three quarters of
//!   the memory limit, else 1024), `VECTOR_STORE_DURABILITY` (`fsync` unless the spec says
//!   `relaxed`) and the `VECTOR_STORE_MAX_*` default quotas the spec sets. Secrets
//!   only as `secretKeyRef`s in `env`: `API_KEY` (`spec.apiKeySecret`), `<DB>_DB_USER/PASSWORD`
//!   (keys `username`, `password`), `MONGODB_URI` / `MONGODB_TENANT_URI` (keys `mongodb-uri`,
//!   `mongodb-tenant-uri`), and `REDIS_URL` when `--services-redis-secret` names a Secret (for a
//!   Redis with credentials; that Secret must exist in every DatabaseService's namespace).
//!   `spec.env` entries replace the operator's variable of the same name (it leaves the
//!   ConfigMap or the env) and come last, in their order.
//! - Database credentials: by default the operator creates `<k8s-name>-db` (keys `host`,
//!   `port`, `dbname`, `username`, `password`, plus `mongodb-uri`, `mongodb-tenant-uri` for a
//!   MongoDB service; a generated password kept across reconciles) before any role uses it.
//!   With `spec.databaseSecret` the pods read that Secret instead — for PostgreSQL all five
//!   `<DB>_DB_*` variables, since the Secret says where the database is — and the operator
//!   deletes its own `<k8s-name>-db` if it made one earlier.
//! - Rollouts: the pod template carries `prismicx.io/config-hash`, SHA-256 over the ConfigMap
//!   data, the container env and the value of every Secret key the env references (so a
//!   rotated API key, a changed log level or a new env entry rolls the pods); the same value is
//!   `status.configHash`. Referenced Secrets are re-read on every reconcile, so a change of an
//!   unowned Secret (the API key) rolls the pods within [`RESYNC`].
//! - Pods: liveness `GET /healthz`, readiness `GET /readyz` on the `http` port; non-root (uid
//!   65532), read-only root filesystem, no privilege escalation, all capabilities dropped,
//!   seccomp `RuntimeDefault`, no ServiceAccount token; an emptyDir at `/tmp`. vector-store
//!   keeps vectors on a ReadWriteOnce PersistentVolumeClaim `vector-store-service-data`
//!   (`spec.storage.size`, default 10Gi; `spec.storage.storageClassName`, default the
//!   cluster's) mounted at `/var/lib/prismicx/vectors` (group-writable through `fsGroup`); it
//!   runs at most one replica (more is `InvalidSpec`: one writer owns the data directory) with
//!   the `Recreate` strategy, so the old pod releases the volume before the new one starts.
//!   Resources default to requests 50m/64Mi, limits
//!   500m/256Mi. Image: `spec.image`, else `<--image-registry>/<k8s name>:<--image-tag>` (e.g. `prismicx/user-data-service:0.1.0`).
//! - Ownership and removal: every object carries a controller reference to the
//!   DatabaseService, so deleting it removes them (Kubernetes' garbage collector); objects the
//!   DatabaseService owns that the plan no longer names are deleted ([`prune`]). `replicas: 0`
//!   keeps every object with no pod. Databases, roles and users stay when a DatabaseService
//!   goes (the data is the platform's); a new one resets the login's password. vector-store's
//!   claim is never pruned, but it is owned like the rest: deleting the DatabaseService deletes
//!   the claim, and its StorageClass's `reclaimPolicy` decides the volume's fate (`Delete`, the
//!   default of dynamic provisioning, erases the vectors; use a `Retain` class to keep them).
//! - Status: Available mirrors the Deployment's (True with `ScaledToZero` at 0 replicas),
//!   Progressing is True while a rollout is under way, Degraded is True when the rollout
//!   missed its deadline, a ReplicaSet cannot create pods, the service is unavailable without
//!   a rollout, or a reconcile step failed ([`observe::observe`]).

pub mod apply;
pub mod config_hash;
pub mod credentials;
pub mod dependencies;
pub mod observe;
pub mod plan;
pub mod resources;
pub mod status;
#[cfg(test)]
mod tests;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use prismicx_operator_api::DatabaseService;

use crate::conditions::{Cond, Reason, ServiceCondition};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::pipeline::Run;
pub use apply::prune;
use plan::{ServicePlan, Settings};
use prismicx_store::Secret as Hidden;

/// How often a reconciled DatabaseService is looked at again (status, referenced Secrets).
pub const RESYNC: Duration = Duration::from_secs(60);

/// The Secret keys the env references (Secret name, key), each with whether it is optional.
pub type SecretRefs = BTreeMap<(String, String), bool>;
/// The value of each referenced Secret key (`None`: optional and missing).
pub type SecretValues = BTreeMap<(String, String), Option<Vec<u8>>>;

/// What the DatabaseService controller shares: the operator's [`Context`] (the same one the
/// Tenant controller uses) and the settings of the deployed services.
#[derive(Debug, Clone)]
pub struct DatabaseServiceContext {
    pub ctx: Arc<Context>,
    pub settings: Settings,
}

/// Reconciles one DatabaseService (the controller's entry point; tests call it directly).
#[tracing::instrument(skip_all, fields(databaseservice = %ds.name_any(), namespace = ds.namespace().unwrap_or_default()))]
pub async fn reconcile(
    ds: Arc<DatabaseService>,
    dctx: Arc<DatabaseServiceContext>,
) -> Result<Action> {
    let timer = dctx.ctx.metrics.reconcile_timer("databaseservice");
    let result = reconcile_inner(&ds, &dctx).await;
    timer.finish(result.as_ref().map(|_| ()));
    if let Err(e) = &result {
        tracing::warn!(error = %e, "databaseservice reconcile failed");
    }
    result
}

async fn reconcile_inner(ds: &DatabaseService, dctx: &DatabaseServiceContext) -> Result<Action> {
    if ds.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes what the DatabaseService owns.
        return Ok(Action::await_change());
    }
    let mut run = Run::new(&dctx.ctx, ds);
    match pipeline(ds, dctx, &mut run).await {
        Ok(()) => Ok(Action::requeue(RESYNC)),
        Err(e) => Err(run.fail(e).await),
    }
}

/// The Kubernetes APIs of one namespace.
#[derive(Debug)]
pub struct Apis {
    deployments: Api<Deployment>,
    services: Api<Service>,
    accounts: Api<ServiceAccount>,
    config_maps: Api<ConfigMap>,
    secrets: Api<Secret>,
    claims: Api<PersistentVolumeClaim>,
}

impl Apis {
    fn new(client: &kube::Client, ns: &str) -> Self {
        Apis {
            deployments: Api::namespaced(client.clone(), ns),
            services: Api::namespaced(client.clone(), ns),
            accounts: Api::namespaced(client.clone(), ns),
            config_maps: Api::namespaced(client.clone(), ns),
            secrets: Api::namespaced(client.clone(), ns),
            claims: Api::namespaced(client.clone(), ns),
        }
    }
}

/// What one pass carries from step to step.
pub struct Deploy<'a> {
    pub ctx: &'a Context,
    pub plan: ServicePlan,
    apis: Apis,
    /// The DatabaseService's uid (the owner whose objects are pruned).
    pub owner_uid: Option<String>,
    /// The Secret keys the env references.
    pub refs: SecretRefs,
    /// Their values, for the config hash (from the credentials step).
    pub values: SecretValues,
    /// The logins' password when the operator keeps the credentials (from the credentials step).
    pub password: Option<Hidden<String>>,
    /// What the dependencies step ensured (for the `Deployed` Event).
    pub ensured: Vec<String>,
}

impl std::fmt::Debug for Deploy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deploy")
            .field("plan", &self.plan)
            .field("ensured", &self.ensured)
            .finish_non_exhaustive()
    }
}

/// The steps in their order (see the module docs); the first failure stops the pass.
async fn pipeline(
    ds: &DatabaseService,
    dctx: &DatabaseServiceContext,
    run: &mut Run<'_, DatabaseService>,
) -> Result<()> {
    let ctx = &dctx.ctx;
    let (plan, apis) = validate::step(ds, dctx).await?;
    let mut d = Deploy {
        ctx,
        refs: plan::secret_refs(&plan.env),
        plan,
        apis,
        owner_uid: ds.uid(),
        values: SecretValues::new(),
        password: None,
        ensured: Vec::new(),
    };
    // The credentials first (durable before a role uses them), then the servers.
    credentials::step(run, &mut d).await?;
    d.ensured = dependencies::ensure(ctx, d.plan.kind, d.password.as_ref()).await?;
    let applied = apply::step(&d).await?;
    status::step(run, &d, applied).await
}

impl Run<'_, DatabaseService> {
    /// Records a failure as `Degraded=True` and a Warning Event, and returns the error.
    async fn fail(&mut self, err: Error) -> Error {
        let reason = match &err {
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::Refused { reason, .. } => reason.clone(),
            Error::Step { step, .. } => step.failed_reason(),
            Error::Kube(_) => Reason::KubernetesApiFailed,
            Error::Config(_) => Reason::ConfigurationError,
        };
        let message = err.to_string();
        // The Degraded Event below carries the message; no second one.
        self.set(Cond::new(
            ServiceCondition::Degraded,
            true,
            reason.clone(),
            message.clone(),
        ));
        if err.is_permanent() {
            // This generation was looked at: it waits for a change.
            self.status.observed_generation = self.generation;
        }
        if !self.has_event(&reason) {
            self.event(true, reason, message);
        }
        if let Err(e) = self.write().await {
            tracing::warn!(error = %e, "could not record the failure in the status");
        }
        err
    }
}

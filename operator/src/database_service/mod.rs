//! The DatabaseService reconciler: runs one of the six services as a Deployment with its
//! Service, ServiceAccount, ConfigMap and database credentials.
//!
//! One reconcile is a pipeline; only `dereference`, `apply` and `status` touch the Kubernetes
//! API, only `dependencies` touches the data servers, and everything in between is pure and
//! unit-tested, one file each: [`plan`], [`config_hash`], [`resources`] (the object builders)
//! and [`observe`] (status from the Deployment). The status and its Events go through the
//! runner both reconcilers share ([`crate::pipeline::Run`]):
//!
//! ```text
//! DatabaseService ──► validate + plan (pure: names, ConfigMap data, env, image)
//!   ──► dereference: the Deployment (is it ours?), every Secret key the env references
//!   ──► dependencies: the operator's database Secret (`<k8s-name>-db`), then the service
//!       database, system schema and login role / MongoDB users ([`dependencies`])
//!   ──► build: config hash, ConfigMap, ServiceAccount, Service, Deployment
//!   ──► apply (server-side apply, field manager `prismicx-operator`, forced) + prune
//!   ──► status (readyReplicas, Available/Progressing/Degraded, observedGeneration, configHash)
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
//!   operator's `--pgbouncer-host/-port`) and vector-store's `VECTOR_STORE_DATA_DIR`. Secrets
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
//!   seccomp `RuntimeDefault`, no ServiceAccount token; an emptyDir at `/tmp`; vector-store
//!   keeps vectors in an emptyDir at `/var/lib/prismicx/vectors` (lost with the pod: a
//!   PersistentVolumeClaim is future work). Resources default to requests 50m/64Mi, limits
//!   500m/256Mi. Image: `spec.image`, else `<--image-registry>/<k8s name>:<--image-tag>` (e.g. `prismicx/user-data-service:0.1.0`).
//! - Ownership and removal: every object carries a controller reference to the
//!   DatabaseService, so deleting it removes them (Kubernetes' garbage collector); objects the
//!   DatabaseService owns that the plan no longer names are deleted ([`prune`]). `replicas: 0`
//!   keeps every object with no pod. Databases, roles and users stay when a DatabaseService
//!   goes (the data is the platform's); a new one resets the login's password.
//! - Status: Available mirrors the Deployment's (True with `ScaledToZero` at 0 replicas),
//!   Progressing is True while a rollout is under way, Degraded is True when the rollout
//!   missed its deadline, a ReplicaSet cannot create pods, the service is unavailable without
//!   a rollout, or a reconcile step failed ([`observe::observe`]).

pub mod config_hash;
pub mod dependencies;
pub mod observe;
pub mod plan;
pub mod resources;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use prismicx_operator_api::DatabaseService;
use serde::de::DeserializeOwned;

use crate::conditions::{Cond, Reason, ServiceCondition};
use crate::context::Context;
use crate::error::{Error, Result, Step, StepContext};
use crate::pipeline::{server_side_apply as apply, Run};
use plan::{ServicePlan, Settings};
use prismicx_store::Secret as Hidden;

/// How often a reconciled DatabaseService is looked at again (status, referenced Secrets).
pub const RESYNC: Duration = Duration::from_secs(60);

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
struct Apis {
    deployments: Api<Deployment>,
    services: Api<Service>,
    accounts: Api<ServiceAccount>,
    config_maps: Api<ConfigMap>,
    secrets: Api<Secret>,
}

impl Apis {
    fn new(client: &kube::Client, ns: &str) -> Self {
        Apis {
            deployments: Api::namespaced(client.clone(), ns),
            services: Api::namespaced(client.clone(), ns),
            accounts: Api::namespaced(client.clone(), ns),
            config_maps: Api::namespaced(client.clone(), ns),
            secrets: Api::namespaced(client.clone(), ns),
        }
    }
}

async fn pipeline(
    ds: &DatabaseService,
    dctx: &DatabaseServiceContext,
    run: &mut Run<'_, DatabaseService>,
) -> Result<()> {
    let ctx = &dctx.ctx;
    // Only the platform's namespace holds the platform's database credentials: anywhere else a
    // namespace owner could read (or pre-create) the Secret whose password the service logins
    // get. Refused before anything is read or written.
    let ns = ds.namespace().unwrap_or_default();
    if ns != dctx.settings.platform_namespace {
        return Err(Error::Refused {
            reason: Reason::OutsidePlatformNamespace,
            message: format!(
                "DatabaseServices run only in the platform namespace {}; this one is in {ns} \
                 and nothing was created for it",
                dctx.settings.platform_namespace
            ),
        });
    }
    // Validate and plan: nothing is touched for an invalid spec.
    let plan = plan::plan(ds, &dctx.settings, &ctx.data.endpoints)?;
    let apis = Apis::new(&ctx.client, &plan.namespace);

    // Dereference.
    let uid = ds.uid();
    if let Some(existing) = apis.deployments.get_opt(&plan.name).await? {
        if let Some(other) = existing
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && Some(&o.uid) != uid.as_ref())
        {
            return Err(Error::InvalidSpec(format!(
                "Deployment {} is already controlled by {} {}; one DatabaseService per service and namespace",
                plan.name, other.kind, other.name
            )));
        }
    }
    let refs = plan::secret_refs(&plan.env);
    let own = plan
        .operator_secret
        .then_some(plan.database_secret.as_str());
    let mut values = read_secrets(&apis.secrets, &refs, own).await?;

    // Dependencies: the credentials first (durable before a role uses them), then the servers.
    let password = if plan.operator_secret {
        let credentials = ensure_credentials(ctx, &apis, &plan, &refs, &mut values);
        Some(run.step(Step::Secret, credentials).await?)
    } else {
        None
    };
    let ensured = dependencies::ensure(ctx, plan.kind, password.as_ref()).await?;

    // Build.
    let hash = config_hash::config_hash(&plan.config, &plan.env, &values);
    let config_map = resources::config_map(&plan);
    let account = resources::service_account(&plan);
    let service = resources::service(&plan);
    let deployment = resources::deployment(&plan, &hash);

    // Apply, then remove what is no longer wanted.
    apply(&apis.config_maps, &config_map).await?;
    apply(&apis.accounts, &account).await?;
    apply(&apis.services, &service).await?;
    let applied = apply(&apis.deployments, &deployment).await?;
    prune_all(&apis, &plan, uid.as_deref()).await?;

    // Status.
    let event = match run.status.config_hash.as_deref() {
        Some(old) if old == hash => None,
        Some(old) => Some((
            Reason::ConfigChanged,
            format!(
                "configuration changed ({} → {}); rolling out",
                short(old),
                short(&hash)
            ),
        )),
        None => Some((
            Reason::Deployed,
            format!(
                "deployed {} ({}); configuration {}",
                plan.image,
                ensured.join(", "),
                short(&hash)
            ),
        )),
    };
    if let Some((reason, note)) = event {
        run.event(false, reason, note);
    }
    let observed = observe::observe(Some(&applied), plan.replicas);
    for c in observed.conditions {
        run.set(c);
    }
    run.status.ready_replicas = observed.ready_replicas;
    run.status.observed_generation = run.generation;
    run.status.config_hash = Some(hash);
    run.write().await
}

/// The operator's database Secret (`<k8s-name>-db`), with the password it already holds or a
/// new one; the values the env reads from it join `values` (for the config hash). Returns the
/// password for the logins.
async fn ensure_credentials(
    ctx: &Context,
    apis: &Apis,
    plan: &ServicePlan,
    refs: &BTreeMap<(String, String), bool>,
    values: &mut BTreeMap<(String, String), Option<Vec<u8>>>,
) -> Result<Hidden<String>> {
    ctx.check_fault(Step::Secret).step(Step::Secret)?;
    let password =
        match crate::tenant::secret::existing_password(&apis.secrets, &plan.database_secret).await?
        {
            Some(p) => p,
            None => crate::tenant::secret::new_password(),
        };
    if let Some(secret) = resources::database_secret(plan, &ctx.data.endpoints, &password) {
        let data = secret.data.clone().unwrap_or_default();
        for ((name, key), _) in refs.iter().filter(|((n, _), _)| n == &plan.database_secret) {
            values.insert(
                (name.clone(), key.clone()),
                data.get(key).map(|b| b.0.clone()),
            );
        }
        apply(&apis.secrets, &secret).await?;
    }
    Ok(password)
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The value of every referenced Secret key (`None`: optional and missing), except those of
/// `skip` (the operator's own Secret, whose values the reconciler knows). A missing Secret or
/// key that is not optional fails the `secret` step: the pods could not start without it.
async fn read_secrets(
    api: &Api<Secret>,
    refs: &BTreeMap<(String, String), bool>,
    skip: Option<&str>,
) -> Result<BTreeMap<(String, String), Option<Vec<u8>>>> {
    let names: BTreeSet<&str> = refs
        .keys()
        .map(|(n, _)| n.as_str())
        .filter(|n| Some(*n) != skip)
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        let found = api.get_opt(name).await?;
        let data = found.as_ref().and_then(|s| s.data.clone());
        for ((_, key), optional) in refs.iter().filter(|((n, _), _)| n == name) {
            let value = data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone());
            if value.is_none() && !optional {
                let what = if found.is_none() {
                    format!("Secret {name} not found")
                } else {
                    format!("Secret {name} has no key {key}")
                };
                return Err(anyhow::anyhow!(what)).step(Step::Secret);
            }
            out.insert((name.to_string(), key.clone()), value);
        }
    }
    Ok(out)
}

async fn prune_all(apis: &Apis, plan: &ServicePlan, owner_uid: Option<&str>) -> Result<()> {
    let Some(uid) = owner_uid else {
        return Ok(());
    };
    let selector = resources::owned_selector(&plan.instance);
    let keep = [plan.name.as_str()];
    prune(&apis.deployments, &selector, uid, &keep).await?;
    prune(&apis.services, &selector, uid, &keep).await?;
    prune(&apis.accounts, &selector, uid, &keep).await?;
    prune(&apis.config_maps, &selector, uid, &keep).await?;
    // The Secret the pods read stays, even a `spec.databaseSecret` naming the operator's own.
    prune(
        &apis.secrets,
        &selector,
        uid,
        &[plan.database_secret.as_str()],
    )
    .await?;
    Ok(())
}

/// Deletes the objects matching `selector` that `owner_uid` controls and `keep` does not
/// name; returns their names.
pub async fn prune<K>(
    api: &Api<K>,
    selector: &str,
    owner_uid: &str,
    keep: &[&str],
) -> Result<Vec<String>>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let mut removed = Vec::new();
    for obj in api.list(&ListParams::default().labels(selector)).await? {
        let name = obj.name_any();
        let ours = obj
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == owner_uid);
        if !ours || keep.contains(&name.as_str()) {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(object = %name, "removed an object the DatabaseService no longer wants");
        removed.push(name);
    }
    Ok(removed)
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

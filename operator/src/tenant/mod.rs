//! The Tenant reconciler.
//!
//! One reconcile is a pipeline (see the crate docs): resolve the tenant id (assigned once and
//! written to the status before anything else, so a crash never yields two ids) → plan (pure,
//! [`plan`]) → observe drift on a tenant that was Ready → apply each step → probe isolation →
//! write the status. Every step is idempotent, so a reconcile interrupted anywhere is finished
//! by the next one; a failed step sets its condition to False with the reason, records an
//! Event and returns the error to the controller (which backs off and counts it).
//!
//! Deletion goes through the finalizer [`FINALIZER`] (added before the first step): `Retain` revokes access and unregisters
//! the tenant but keeps its data (a re-created Tenant of the same name finds it again, with the
//! same id); `Delete` revokes access, ends sessions, drops what the tenant owns, and removes it
//! everywhere. Anything already gone counts as done.

pub mod mongo;
pub mod plan;
pub mod pool;
pub mod postgres;
pub mod registry;
pub mod secret;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use prismicx_operator_api::{DeletionPolicy, Tenant, TenantStatus, Tier};
use prismicx_store::events::TenantEventKind;
use prismicx_tenancy::{TenantSlug, TenantState};
use uuid::Uuid;

use crate::context::Context;
use crate::error::{Error, Result, Step};
use plan::TenantPlan;
use status::Cond;

/// The finalizer that runs the tenant's cleanup before the Tenant goes.
pub const FINALIZER: &str = "prismicx.io/tenant-cleanup";

/// Reconciles one Tenant (the controller's entry point; tests call it directly).
#[tracing::instrument(skip_all, fields(tenant = %tenant.name_any(), namespace = tenant.namespace().unwrap_or_default()))]
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action> {
    let timer = ctx.metrics.reconcile_timer("tenant");
    let result = reconcile_inner(tenant, &ctx).await;
    timer.finish(result.as_ref().map(|_| ()));
    if let Err(e) = &result {
        tracing::warn!(error = %e, "tenant reconcile failed");
    }
    result
}

async fn reconcile_inner(tenant: Arc<Tenant>, ctx: &Context) -> Result<Action> {
    let ns = tenant.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Tenant> = Api::namespaced(ctx.client.clone(), &ns);
    let has_finalizer = tenant.finalizers().iter().any(|f| f == FINALIZER);
    if tenant.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            cleanup(tenant.clone(), ctx).await?;
            set_finalizer(&api, &tenant, false).await?;
        }
        return Ok(Action::await_change());
    }
    let tenant = if has_finalizer {
        tenant
    } else {
        Arc::new(
            set_finalizer(&api, &tenant, true)
                .await?
                .unwrap_or_else(|| (*tenant).clone()),
        )
    };
    apply(tenant, ctx).await
}

/// Adds or removes [`FINALIZER`] with a merge patch that carries the object's
/// resourceVersion, so a concurrent change of the finalizer list makes it fail (and retry)
/// rather than overwrite another controller's finalizer. Returns the updated object.
async fn set_finalizer(api: &Api<Tenant>, t: &Tenant, present: bool) -> Result<Option<Tenant>> {
    let mut finalizers: Vec<String> = t
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.to_string());
    }
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": t.resource_version(),
        }
    });
    match api
        .patch(
            &t.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(updated) => Ok(Some(updated)),
        // Gone already: nothing left to hold.
        Err(kube::Error::Api(e)) if e.code == 404 && !present => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One run of the pipeline: the object, its status as it is being rewritten, and the Events
/// to publish once the status is written.
struct Run<'a> {
    ctx: &'a Context,
    api: Api<Tenant>,
    name: String,
    generation: Option<i64>,
    status: TenantStatus,
    reference: ObjectReference,
    events: Vec<(bool, String, String)>,
}

impl<'a> Run<'a> {
    fn new(ctx: &'a Context, t: &Tenant) -> Self {
        let ns = t.namespace().unwrap_or_else(|| "default".into());
        Run {
            ctx,
            api: Api::namespaced(ctx.client.clone(), &ns),
            name: t.name_any(),
            generation: t.metadata.generation,
            status: t.status.clone().unwrap_or_default(),
            reference: t.object_ref(&()),
            events: Vec::new(),
        }
    }

    /// Sets a condition; a change of its status queues an Event.
    fn set(&mut self, c: Cond) {
        let before = self
            .status
            .conditions
            .iter()
            .find(|x| x.type_ == c.type_)
            .map(|x| x.status == "True");
        if before != Some(c.ok) && c.type_ != status::READY {
            let warning = !c.ok && c.type_ != status::DRIFTED || c.ok && c.type_ == status::DRIFTED;
            self.events.push((
                warning,
                c.reason.clone(),
                format!("{}: {}", c.type_, c.message),
            ));
        }
        status::set(
            &mut self.status.conditions,
            &c,
            self.generation,
            Timestamp::now(),
        );
    }

    async fn write(&mut self) -> Result<()> {
        status::write(&self.api, &self.name, &self.status).await?;
        for (warning, reason, note) in std::mem::take(&mut self.events) {
            self.ctx
                .event(&self.reference, warning, &reason, "Reconcile", note)
                .await;
        }
        Ok(())
    }

    /// Records that the Tenant is refused (Ready=False with `reason`, a Warning Event) and
    /// returns the permanent error the controller waits on until the object changes.
    async fn refuse(&mut self, reason: &str, msg: String) -> Result<Error> {
        self.set(Cond::new(status::READY, false, reason, msg.clone()));
        self.events.push((true, reason.into(), msg.clone()));
        self.write().await?;
        Ok(Error::InvalidSpec(msg))
    }

    /// Records a failed step in the status and as an Event, and returns the error.
    async fn fail(&mut self, step: Step, err: anyhow::Error) -> Error {
        let reason = if err.downcast_ref::<mongo::MoveConflict>().is_some() {
            "MoveConflict".to_string()
        } else {
            step.failed_reason()
        };
        let err = Error::Step { step, source: err };
        let message = err.to_string();
        if let Some(ty) = condition_of(step) {
            self.set(Cond::new(ty, false, &reason, message.clone()));
        }
        self.set(Cond::new(status::READY, false, &reason, message.clone()));
        self.events.push((true, reason, message));
        if let Err(e) = self.write().await {
            tracing::warn!(error = %e, "could not record the failure in the status");
        }
        err
    }
}

fn condition_of(step: Step) -> Option<&'static str> {
    match step {
        Step::Postgres => Some(status::POSTGRES_READY),
        Step::Mongo => Some(status::MONGO_READY),
        Step::Pool => Some(status::POOL_READY),
        Step::Registry => Some(status::REGISTERED),
        Step::Isolation => Some(status::ISOLATION_VERIFIED),
        Step::Secret | Step::Verify | Step::Cleanup => None,
    }
}

/// Why a Tenant is refused an id; nothing is touched for it.
enum Refusal {
    /// A Tenant of another namespace holds the slug (`SlugTaken`).
    SlugTaken(String),
    /// The Tenant's status names an id the registry does not give it (`TenantIdMismatch`).
    IdMismatch(String),
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Failed(e)
    }
}

/// The tenant's id, from the registry: the id its entry was claimed with when the slug is this
/// namespace's; else the id a retained record or schema holds for the slug in this namespace, or
/// a new one, claimed atomically ([`registry::claim`]) before anything else is done. The status
/// is never trusted: a `status.tenantId` that differs from the registry's (or, before the first
/// claim, names an id the registry gives another slug) is refused.
async fn resolve_id(
    ctx: &Context,
    t: &Tenant,
    slug: &TenantSlug,
    ns: &str,
) -> Result<Uuid, Refusal> {
    let step = |e: anyhow::Error| {
        Refusal::Failed(Error::Step {
            step: Step::Registry,
            source: e,
        })
    };
    let taken = |other: &str, how: &str| {
        Refusal::SlugTaken(format!(
            "metadata.name: the tenant slug {slug} is {how} a Tenant in namespace {other}"
        ))
    };
    let mismatch = |what: String| {
        Refusal::IdMismatch(format!(
            "status.tenantId: {what}; the registry is the source of the tenant's id, so nothing \
             is provisioned until the status is corrected"
        ))
    };
    let status_id = match t.status.as_ref().and_then(|s| s.tenant_id.as_deref()) {
        None => None,
        Some(raw) => {
            Some(Uuid::parse_str(raw).map_err(|_| mismatch(format!("{raw:?} is not a UUID")))?)
        }
    };
    if let Some((owner, id)) = registry::entry(&ctx.data, slug).await.map_err(step)? {
        if owner != ns {
            return Err(taken(&owner, "registered by"));
        }
        let id = id.ok_or_else(|| {
            step(anyhow::anyhow!(
                "the registry entry of {slug} has no tenant_id"
            ))
        })?;
        return match status_id {
            Some(s) if s != id => Err(mismatch(format!(
                "{s} differs from the id registered for {slug}"
            ))),
            _ => Ok(id),
        };
    }
    let dbs: Vec<&str> = ctx
        .catalog
        .all_postgres()
        .iter()
        .map(|p| p.database)
        .collect();
    let retained = match registry::retained(&ctx.data, slug).await.map_err(step)? {
        Some(found) => Some(found),
        None => postgres::retained_tenant_id(&ctx.data, slug, &dbs)
            .await
            .map_err(step)?,
    };
    let id = match (retained, status_id) {
        (Some((_, owner)), _) if owner != ns => return Err(taken(&owner, "retained for")),
        (Some((id, _)), Some(s)) if s != id => {
            return Err(mismatch(format!(
                "{s} differs from the id retained for {slug}"
            )))
        }
        (Some((id, _)), _) => id,
        // A status id with no claim behind it (a claim interrupted before its entry was written
        // by an older operator, or a forgery): kept only if no other tenant has it.
        (None, Some(s)) => {
            if let Some(other) = registry::id_used_elsewhere(&ctx.data, s, slug)
                .await
                .map_err(step)?
            {
                return Err(mismatch(format!("{s} belongs to the tenant {other}")));
            }
            s
        }
        (None, None) => Uuid::new_v4(),
    };
    let tier = match t.spec.tier {
        Tier::Standard => "standard",
        Tier::Dedicated => "dedicated",
    };
    match registry::claim(&ctx.data, slug, ns, tier, id)
        .await
        .map_err(step)?
    {
        registry::Claim::Ours(claimed) if status_id.is_some_and(|s| s != claimed) => Err(mismatch(
            format!("the registry gave {slug} the id {claimed}"),
        )),
        registry::Claim::Ours(claimed) => Ok(claimed),
        registry::Claim::Taken(owner) => Err(taken(&owner, "registered by")),
    }
}

/// Everything the plan says differs from the servers (empty: in sync). An observation that
/// cannot be made counts as drift, so the repair runs.
async fn observe(ctx: &Context, plan: &TenantPlan) -> Vec<String> {
    let mut out = Vec::new();
    for pg in &plan.postgres {
        match postgres::observe(&ctx.data, plan, pg).await {
            Ok(f) => out.extend(f),
            Err(e) => out.push(format!("{}: could not observe: {e:#}", pg.database)),
        }
    }
    match pool::observe(&ctx.data, plan).await {
        Ok(f) => out.extend(f),
        Err(e) => out.push(format!("pgbouncer: could not observe: {e:#}")),
    }
    match mongo::observe(&ctx.data, plan).await {
        Ok(f) => out.extend(f),
        Err(e) => out.push(format!("mongodb: could not observe: {e:#}")),
    }
    out
}

async fn apply(t: Arc<Tenant>, ctx: &Context) -> Result<Action> {
    let mut run = Run::new(ctx, &t);
    let ns = t.namespace().unwrap_or_else(|| "default".into());

    // Validate before anything is touched.
    if let Err(e) = plan::plan(
        &t,
        Uuid::nil(),
        &ctx.catalog,
        ctx.data.default_dedicated_pool_size,
    ) {
        run.set(Cond::new(
            status::READY,
            false,
            "InvalidSpec",
            e.to_string(),
        ));
        run.status.observed_generation = run.generation;
        run.events.push((true, "InvalidSpec".into(), e.to_string()));
        run.write().await?;
        return Err(e);
    }
    let slug = TenantSlug::parse(&t.name_any()).map_err(Error::InvalidSpec)?;
    let tenant_id = match resolve_id(ctx, &t, &slug, &ns).await {
        Ok(id) => id,
        Err(Refusal::SlugTaken(msg)) => return Err(run.refuse("SlugTaken", msg).await?),
        Err(Refusal::IdMismatch(msg)) => return Err(run.refuse("TenantIdMismatch", msg).await?),
        Err(Refusal::Failed(Error::Step { step, source })) => {
            return Err(run.fail(step, source).await)
        }
        Err(Refusal::Failed(e)) => return Err(e),
    };
    if run.status.tenant_id.is_none() {
        run.status.tenant_id = Some(tenant_id.to_string());
        run.set(Cond::new(
            status::READY,
            false,
            "Provisioning",
            "tenant id assigned; provisioning",
        ));
        run.write().await?;
    }
    let plan = plan::plan(
        &t,
        tenant_id,
        &ctx.catalog,
        ctx.data.default_dedicated_pool_size,
    )?;

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let password = match secret::existing_password(&secrets, &plan.secret_name).await? {
        Some(p) => p,
        None => secret::new_password(),
    };

    // Drift: a tenant that was Ready for this generation is compared with the catalogs first.
    let was_ready = status::is_true(t.status.as_ref(), status::READY)
        && run.status.observed_generation == run.generation;
    let drift = if was_ready {
        observe(ctx, &plan).await
    } else {
        Vec::new()
    };
    if !drift.is_empty() {
        // Check the service databases again too: drift may have reached them.
        ctx.data.forget_ensured();
        run.set(Cond::new(
            status::DRIFTED,
            true,
            "DriftDetected",
            drift.join("; "),
        ));
        run.write().await?;
    }

    // The Secret first: the password must be durable before any role uses it.
    let owner = t.controller_owner_ref(&());
    let built = secret::build(&plan, &ctx.data.endpoints, &password, &ns, owner);
    if let Err(e) = ctx.check_fault(Step::Secret) {
        return Err(run.fail(Step::Secret, e).await);
    }
    if let Err(e) = secret::apply(&secrets, &built).await {
        return Err(run.fail(Step::Secret, e.into()).await);
    }

    let mut versions = BTreeMap::new();
    let pg_result: anyhow::Result<()> = async {
        ctx.check_fault(Step::Postgres)?;
        for pg in &plan.postgres {
            let v = postgres::retry_concurrent(|| postgres::apply(&ctx.data, &plan, pg, &password))
                .await?;
            versions.insert(pg.database.to_string(), v);
        }
        postgres::retry_concurrent(|| postgres::set_login(&ctx.data, &plan, !plan.suspended))
            .await?;
        Ok(())
    }
    .await;
    if let Err(e) = pg_result {
        return Err(run.fail(Step::Postgres, e).await);
    }
    run.set(Cond::new(
        status::POSTGRES_READY,
        true,
        "Provisioned",
        if plan.postgres.is_empty() {
            "the tenant uses no PostgreSQL service".to_string()
        } else {
            format!(
                "schema {} in {}; login {}",
                plan.slug.pg_schema(),
                versions
                    .iter()
                    .map(|(db, v)| format!("{db} (version {v})"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if plan.suspended {
                    "disabled (suspended)"
                } else {
                    "enabled"
                }
            )
        },
    ));

    let pool_result = async {
        ctx.check_fault(Step::Pool)?;
        pool::apply(&ctx.data, &plan).await
    }
    .await;
    match pool_result {
        Ok(summary) => run.set(Cond::new(status::POOL_READY, true, "Configured", summary)),
        Err(e) => return Err(run.fail(Step::Pool, e).await),
    }

    let mongo_result = async {
        ctx.check_fault(Step::Mongo)?;
        mongo::apply(&ctx.data, &plan, &password).await
    }
    .await;
    match mongo_result {
        Ok(summary) => run.set(Cond::new(status::MONGO_READY, true, "Provisioned", summary)),
        Err(e) => return Err(run.fail(Step::Mongo, e).await),
    }

    let state = if plan.suspended {
        TenantState::Suspended
    } else {
        TenantState::Active
    };
    let reg_result = async {
        ctx.check_fault(Step::Registry)?;
        if let Some(kind) = registry::upsert(&ctx.data, &plan, state, &versions).await? {
            registry::publish(&ctx.data, &plan, kind).await?;
            registry::event_published(&ctx.data, &plan.slug).await?;
        }
        anyhow::Ok(())
    }
    .await;
    match reg_result {
        Ok(()) => run.set(Cond::new(
            status::REGISTERED,
            true,
            "Registered",
            format!(
                "tenant_registry entry {} ({})",
                plan.slug,
                if plan.suspended {
                    "suspended"
                } else {
                    "active"
                }
            ),
        )),
        Err(e) => return Err(run.fail(Step::Registry, e).await),
    }

    let probe = || async {
        ctx.check_fault(Step::Isolation)?;
        let mut checked = Vec::new();
        for pg in &plan.postgres {
            checked.extend(postgres::probe(&ctx.data, &plan, pg).await?);
        }
        checked.extend(mongo::probe(&ctx.data, &plan).await?);
        anyhow::Ok(checked)
    };
    let probe_result = match probe().await {
        Ok(checked) => Ok(("Verified", checked)),
        // A leak the probe found: the Warning Event names it; what the tenant's own roles hold
        // beyond the plan is taken back, and the probe runs again.
        Err(found) => {
            run.events.push((
                true,
                "IsolationFailed".into(),
                format!("{}: {found:#}", status::ISOLATION_VERIFIED),
            ));
            let repaired = async {
                let mut done = Vec::new();
                for pg in &plan.postgres {
                    done.extend(postgres::revoke_foreign_grants(&ctx.data, pg).await?);
                }
                anyhow::Ok(done)
            }
            .await;
            match repaired {
                Ok(done) if !done.is_empty() => probe().await.map(|mut checked| {
                    checked.insert(0, format!("repaired ({found:#}): {}", done.join(", ")));
                    ("Repaired", checked)
                }),
                Ok(_) => Err(found),
                Err(e) => Err(found.context(format!("repair failed: {e:#}"))),
            }
        }
    };
    match probe_result {
        Ok((reason, checked)) => run.set(Cond::new(
            status::ISOLATION_VERIFIED,
            true,
            reason,
            checked.join("; "),
        )),
        Err(e) => return Err(run.fail(Step::Isolation, e).await),
    }

    // Every reconcile ends by comparing the catalogs with the plan, so Ready means checked.
    let left = observe(ctx, &plan).await;
    if !left.is_empty() {
        run.set(Cond::new(
            status::DRIFTED,
            true,
            "RepairIncomplete",
            left.join("; "),
        ));
        let err = anyhow::anyhow!("the catalogs differ from the plan: {}", left.join("; "));
        return Err(run.fail(Step::Verify, err).await);
    } else if drift.is_empty() {
        run.set(Cond::new(
            status::DRIFTED,
            false,
            "InSync",
            "the catalogs match the plan",
        ));
    } else {
        run.set(Cond::new(
            status::DRIFTED,
            false,
            "Repaired",
            format!("repaired: {}", drift.join("; ")),
        ));
    }

    let was_ready_now = status::is_true(Some(&run.status), status::READY);
    let (reason, message) = if plan.suspended {
        ("Suspended", "provisioned; access suspended, data kept")
    } else {
        (
            "Provisioned",
            "provisioned in every service the tenant uses",
        )
    };
    if !was_ready_now || run.status.observed_generation != run.generation {
        run.events.push((false, reason.into(), message.into()));
    }
    run.set(Cond::new(status::READY, true, reason, message));
    run.status.observed_generation = run.generation;
    run.status.secret_name = Some(plan.secret_name.clone());
    run.status.schema_versions = versions;
    run.write().await?;
    Ok(Action::requeue(ctx.resync))
}

/// Builds a plan good enough to clean up after a Tenant whose spec no longer validates.
fn cleanup_plan(t: &Tenant, id: Uuid, ctx: &Context) -> Result<TenantPlan> {
    match plan::plan(t, id, &ctx.catalog, ctx.data.default_dedicated_pool_size) {
        Ok(p) => Ok(p),
        Err(Error::InvalidSpec(_)) => {
            let mut fixed = t.clone();
            if fixed.spec.tier == Tier::Standard {
                fixed.spec.pool = None;
            }
            fixed.spec.pool = fixed.spec.pool.filter(|p| (1..=200).contains(&p.size));
            fixed.spec.services.sort();
            fixed.spec.services.dedup();
            if fixed.spec.services.is_empty() {
                fixed.spec.services = prismicx_operator_api::ServiceKind::ALL.to_vec();
            }
            fixed.spec.display_name = None;
            fixed.spec.rate_limit = None;
            plan::plan(
                &fixed,
                id,
                &ctx.catalog,
                ctx.data.default_dedicated_pool_size,
            )
        }
        Err(e) => Err(e),
    }
}

async fn cleanup(t: Arc<Tenant>, ctx: &Context) -> Result<Action> {
    let mut run = Run::new(ctx, &t);
    match cleanup_steps(&t, ctx).await {
        Ok(None) => Ok(Action::await_change()),
        Ok(Some(drop)) => {
            ctx.event(
                &run.reference,
                false,
                if drop { "Deleted" } else { "Retained" },
                "Cleanup",
                if drop {
                    "access revoked; schemas, roles, databases, users, pools and registry entry removed"
                        .into()
                } else {
                    "access revoked and registry entry removed; data retained".into()
                },
            )
            .await;
            Ok(Action::await_change())
        }
        Err(err) => {
            // A stuck deletion shows why in the status, and the finalizer stays.
            run.set(Cond::new(
                status::READY,
                false,
                "CleanupFailed",
                err.to_string(),
            ));
            run.events
                .push((true, "CleanupFailed".into(), err.to_string()));
            if let Err(w) = run.write().await {
                tracing::warn!(error = %w, "could not record the cleanup failure");
            }
            Err(err)
        }
    }
}

/// Revokes and (with `Delete`) removes the tenant; `Ok(None)` when there was nothing of this
/// Tenant's to clean up, else `Ok(Some(dropped))`.
async fn cleanup_steps(t: &Tenant, ctx: &Context) -> Result<Option<bool>> {
    let ns = t.namespace().unwrap_or_else(|| "default".into());
    let Ok(slug) = TenantSlug::parse(&t.name_any()) else {
        // Never provisioned: an invalid name is refused before any step.
        return Ok(None);
    };
    let step = |e: anyhow::Error| Error::Step {
        step: Step::Cleanup,
        source: e,
    };
    // The id comes from the registry (never from the status alone): a slug registered by a
    // Tenant of another namespace is not this Tenant's to clean up, and an unregistered Tenant
    // cleans up under its status id only if no other tenant has that id.
    let id = match registry::entry(&ctx.data, &slug).await.map_err(step)? {
        Some((owner, _)) if owner != ns => return Ok(None),
        Some((_, id)) => id,
        None => match t
            .status
            .as_ref()
            .and_then(|s| s.tenant_id.as_deref())
            .and_then(|id| Uuid::parse_str(id).ok())
        {
            Some(id) => match registry::id_used_elsewhere(&ctx.data, id, &slug)
                .await
                .map_err(step)?
            {
                Some(_) => None,
                None => Some(id),
            },
            None => None,
        },
    };
    let Some(id) = id else {
        // No id was ever assigned, so nothing was provisioned.
        return Ok(None);
    };
    let mut plan = cleanup_plan(t, id, ctx)?;
    plan.suspended = true;
    let drop = t.spec.deletion_policy == DeletionPolicy::Delete;
    let dbs: Vec<&str> = ctx
        .catalog
        .all_postgres()
        .iter()
        .map(|p| p.database)
        .collect();

    let result: anyhow::Result<()> = async {
        ctx.check_fault(Step::Cleanup)?;
        if registry::is_registered(&ctx.data, &slug).await? {
            registry::upsert(&ctx.data, &plan, TenantState::Deleting, &BTreeMap::new()).await?;
            registry::publish(&ctx.data, &plan, TenantEventKind::Suspended).await?;
        }
        postgres::retry_concurrent(|| postgres::cleanup(&ctx.data, &plan, &dbs, drop)).await?;
        pool::remove(&ctx.data, &plan).await?;
        if drop {
            // Every layout the catalog knows: the tenant may have used services it no longer lists.
            let mut all = plan.clone();
            all.mongo = ctx
                .catalog
                .all_mongo()
                .into_iter()
                .map(|layout| plan::MongoPlan {
                    dedicated_database: layout.dedicated_database(&plan.slug),
                    layout,
                })
                .collect();
            mongo::cleanup(&ctx.data, &all, true).await?;
        } else {
            mongo::cleanup(&ctx.data, &plan, false).await?;
        }
        registry::set_retained(&ctx.data, &plan, !drop).await?;
        registry::remove(&ctx.data, &slug).await?;
        registry::publish(&ctx.data, &plan, TenantEventKind::Deleted).await?;
        anyhow::Ok(())
    }
    .await;
    result.map_err(step)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    secret::delete(&secrets, &plan.secret_name).await?;
    Ok(Some(drop))
}

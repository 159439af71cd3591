//! The Tenant reconciler: the entry point, the finalizer and the order of the steps. Each step
//! has its own file, and a failed step stops the pipeline ([`runner`]).
//!
//! ```text
//! reconcile ──► finalizer (kube::runtime::finalizer, FINALIZER)
//!   Apply:   plan::plan (validate; InvalidSpec touches nothing)
//!            ──► resolve   the tenant id, from the registry; written to the status at once
//!            ──► plan      (pure, with the id)
//!            ──► verify::drift_before   (a Ready tenant compared with the catalogs)
//!            ──► secret    credentials Secret (before any role uses the password)
//!            ──► postgres  schemas, roles, RLS, login            PostgresReady
//!            ──► pool      PgBouncer aliases                     PoolReady
//!            ──► mongo     indexes, dedicated databases, users   MongoReady
//!            ──► registry  tenant_registry entry + Redis event   Registered
//!            ──► verify    isolation probe (and repair)          IsolationVerified
//!            ──► verify    the catalogs against the plan         Drifted
//!            ──► status    Ready, observedGeneration, Secret name, schema versions
//!   Cleanup: deletion (Retain / Delete)
//! ```
//!
//! Every step is idempotent, so a reconcile interrupted anywhere is finished by the next one;
//! a failed step sets its condition to False with the reason, records an Event, counts the
//! failure in the step metrics and returns the error to the controller (which backs off).

pub mod deletion;
pub mod mongo;
pub mod plan;
pub mod pool;
pub mod postgres;
pub mod registry;
pub mod resolve;
pub mod runner;
pub mod secret;
pub mod status;
pub mod verify;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::ResourceExt;
use prismicx_operator_api::Tenant;
use prismicx_tenancy::TenantSlug;
use uuid::Uuid;

use crate::context::Context;
use crate::error::{Error, Result, Step};
use crate::pipeline::Run;
use runner::{run_step, Provision};

/// The finalizer that runs the tenant's cleanup before the Tenant goes.
pub const FINALIZER: &str = "prismicx.io/tenant-cleanup";

/// The provisioning steps, in order (see the module docs).
pub const STEPS: [Step; 7] = [
    Step::Secret,
    Step::Postgres,
    Step::Pool,
    Step::Mongo,
    Step::Registry,
    Step::Isolation,
    Step::Verify,
];

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

/// The namespace of `t` (`default` when it has none).
pub fn namespace_of(t: &Tenant) -> String {
    t.namespace().unwrap_or_else(|| "default".into())
}

async fn reconcile_inner(tenant: Arc<Tenant>, ctx: &Context) -> Result<Action> {
    let api: Api<Tenant> = Api::namespaced(ctx.client.clone(), &namespace_of(&tenant));
    let needs_finalizer = tenant.metadata.deletion_timestamp.is_none()
        && !tenant.finalizers().iter().any(|f| f == FINALIZER);
    let tenant = if needs_finalizer {
        Arc::new(add_finalizer(&api, &tenant).await?)
    } else {
        tenant
    };
    with_finalizer(&api, tenant, ctx).await
}

/// Adds [`FINALIZER`] with a merge patch that carries the object's resourceVersion, so a
/// concurrent change of the finalizer list makes it fail (and retry) rather than overwrite
/// another controller's finalizer; returns the updated object, which the steps then run on in
/// the same pass. (kube's [`finalizer`] would add it with a JSON patch testing an absent list
/// against `null`, which Kubernetes accepts but the in-memory API the tests use refuses, and
/// would leave the steps to the next reconcile.)
async fn add_finalizer(api: &Api<Tenant>, t: &Tenant) -> Result<Tenant> {
    let mut finalizers = t.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": t.resource_version(),
        }
    });
    Ok(api
        .patch(
            &t.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?)
}

/// Runs `tenant` through kube's [`finalizer`]: [`apply`] while it lives, [`deletion::cleanup`]
/// and then the finalizer's removal once it is deleted (a JSON patch that tests the entry
/// first, so another controller's finalizer is never removed). A refused or failed cleanup
/// keeps the finalizer; the reconciler's own error reaches the controller's error policy.
async fn with_finalizer(api: &Api<Tenant>, tenant: Arc<Tenant>, ctx: &Context) -> Result<Action> {
    let name = tenant.name_any();
    let outcome = finalizer(api, FINALIZER, tenant, |event| async move {
        match event {
            finalizer::Event::Apply(t) => apply(t, ctx).await,
            finalizer::Event::Cleanup(t) => deletion::cleanup(t, ctx).await,
        }
    })
    .await;
    match outcome {
        Ok(action) => Ok(action),
        Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
        // Gone already: nothing left to hold.
        Err(finalizer::Error::RemoveFinalizer(kube::Error::Api(e))) if e.code == 404 => {
            Ok(Action::await_change())
        }
        // The list changed since the object was read (the removal tests our entry first): done
        // if the entry is gone already, else retried.
        Err(finalizer::Error::RemoveFinalizer(kube::Error::Api(e))) if e.code == 422 => {
            match api.get_opt(&name).await? {
                Some(now) if now.finalizers().iter().any(|f| f == FINALIZER) => {
                    Err(kube::Error::Api(e).into())
                }
                _ => Ok(Action::await_change()),
            }
        }
        Err(finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e)) => {
            Err(e.into())
        }
        Err(e) => Err(Error::Config(format!("finalizer {FINALIZER}: {e}"))),
    }
}

/// Provisions (or repairs) the tenant: the steps in their order.
async fn apply(t: Arc<Tenant>, ctx: &Context) -> Result<Action> {
    let mut run = Run::new(ctx, &*t);
    let ns = namespace_of(&t);

    // Validate before anything is touched.
    if let Err(e) = plan::plan(
        &t,
        Uuid::nil(),
        &ctx.catalog,
        ctx.data.default_dedicated_pool_size,
    ) {
        return Err(run.invalid_spec(e).await?);
    }
    let slug = TenantSlug::parse(&t.name_any()).map_err(Error::InvalidSpec)?;
    let tenant_id = resolve::step(&mut run, ctx, &t, &slug, &ns).await?;
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
    let mut p = Provision::new(ctx, &t, plan, password, secrets);

    verify::drift_before(&mut run, &mut p).await?;
    for step in STEPS {
        run_step(&mut run, &mut p, step).await?;
    }
    status::step(&mut run, p).await?;
    Ok(Action::requeue(ctx.resync))
}

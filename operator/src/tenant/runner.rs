//! How a Tenant's steps run: [`Provision`] carries what one pass computes from step to step
//! (plan, password, schema versions, drift found at the start), each step records conditions
//! and Events in it, and [`run_step`] moves those into the [`Run`] after the step, times the
//! step and turns a failure into the status ([`Run::fail`]: the step's condition and Ready
//! False with the reason, a Warning Event) and the error the controller backs off on.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use prismicx_operator_api::Tenant;
use prismicx_store::Secret as Hidden;

use super::plan::TenantPlan;
use super::{mongo, pool, postgres, registry, secret, verify};
use crate::conditions::{Cond, Reason, TenantCondition};
use crate::context::Context;
use crate::error::{Error, Step};
use crate::pipeline::Run;

/// A condition of a Tenant.
pub type TenantCond = Cond<TenantCondition>;

/// What one provisioning pass carries from step to step.
pub struct Provision<'a> {
    pub ctx: &'a Context,
    pub tenant: &'a Tenant,
    pub namespace: String,
    pub plan: TenantPlan,
    pub password: Hidden<String>,
    pub secrets: Api<Secret>,
    /// The applied schema version per PostgreSQL database (from the postgres step).
    pub versions: BTreeMap<String, i32>,
    /// What differed from the plan before the steps ran (empty: in sync, or not looked at).
    pub drift: Vec<String>,
    records: Vec<Record>,
}

/// What a step recorded, in order: moved into the [`Run`] once the step ends.
enum Record {
    Condition(TenantCond),
    Event(bool, Reason, String),
}

impl std::fmt::Debug for Provision<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provision")
            .field("plan", &self.plan)
            .field("versions", &self.versions)
            .field("drift", &self.drift)
            .finish_non_exhaustive()
    }
}

impl<'a> Provision<'a> {
    pub fn new(
        ctx: &'a Context,
        tenant: &'a Tenant,
        plan: TenantPlan,
        password: Hidden<String>,
        secrets: Api<Secret>,
    ) -> Self {
        Provision {
            ctx,
            tenant,
            namespace: super::namespace_of(tenant),
            plan,
            password,
            secrets,
            versions: BTreeMap::new(),
            drift: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Records a condition.
    pub fn set(&mut self, c: TenantCond) {
        self.records.push(Record::Condition(c));
    }

    /// Records that the condition `type_` is True.
    pub fn ready(&mut self, type_: TenantCondition, reason: Reason, message: impl Into<String>) {
        self.set(Cond::new(type_, true, reason, message));
    }

    /// Records an Event.
    pub fn event(&mut self, warning: bool, reason: Reason, note: String) {
        self.records.push(Record::Event(warning, reason, note));
    }
}

/// Runs one step of the pipeline.
async fn dispatch(p: &mut Provision<'_>, step: Step) -> anyhow::Result<()> {
    match step {
        Step::Secret => secret::step(p).await,
        Step::Postgres => postgres::step(p).await,
        Step::Pool => pool::step(p).await,
        Step::Mongo => mongo::step(p).await,
        Step::Registry => registry::step(p).await,
        Step::Isolation => verify::isolation_step(p).await,
        Step::Verify => verify::step(p).await,
        Step::Cleanup => anyhow::bail!("cleanup is not a provisioning step"),
    }
}

/// Runs `step` (timed), moves what it recorded into `run`, and records a failure.
pub async fn run_step(
    run: &mut Run<'_, Tenant>,
    p: &mut Provision<'_>,
    step: Step,
) -> Result<(), Error> {
    let result = run.step(step, dispatch(p, step)).await;
    for record in p.records.drain(..) {
        match record {
            Record::Condition(c) => run.set(c),
            Record::Event(warning, reason, note) => run.event(warning, reason, note),
        }
    }
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(run.fail(step, e).await),
    }
}

impl Run<'_, Tenant> {
    /// Ready=False with `reason` and `message`, and a Warning Event saying the same.
    pub fn not_ready(&mut self, reason: Reason, message: String) {
        self.set(Cond::new(
            TenantCondition::Ready,
            false,
            reason.clone(),
            message.clone(),
        ));
        self.event(true, reason, message);
    }

    /// Records that the spec cannot be planned (Ready=False `InvalidSpec`, a Warning Event;
    /// this generation was looked at) and returns the error.
    pub async fn invalid_spec(&mut self, err: Error) -> Result<Error, Error> {
        self.not_ready(Reason::InvalidSpec, err.to_string());
        self.status.observed_generation = self.generation;
        self.write().await?;
        Ok(err)
    }

    /// Records that the Tenant is refused (Ready=False with `reason`, a Warning Event) and
    /// returns the permanent error the controller waits on until the object changes.
    pub async fn refuse(&mut self, reason: Reason, msg: String) -> Result<Error, Error> {
        self.not_ready(reason, msg.clone());
        self.write().await?;
        Ok(Error::InvalidSpec(msg))
    }

    /// Records a failed step in the status and as an Event, and returns the error.
    pub async fn fail(&mut self, step: Step, err: anyhow::Error) -> Error {
        let reason = if err.downcast_ref::<mongo::MoveConflict>().is_some() {
            Reason::MoveConflict
        } else {
            step.failed_reason()
        };
        let err = Error::Step { step, source: err };
        let message = err.to_string();
        if let Some(ty) = TenantCondition::of_step(step) {
            self.set(Cond::new(ty, false, reason.clone(), message.clone()));
        }
        self.not_ready(reason, message);
        if let Err(e) = self.write().await {
            tracing::warn!(error = %e, "could not record the failure in the status");
        }
        err
    }
}

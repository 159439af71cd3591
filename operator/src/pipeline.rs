//! The runner both reconcilers share: one [`Run`] per reconcile holds the object's status as it
//! is being rewritten and the Events to publish once it is written; [`Run::step`] runs one
//! named step, timing it in the step metrics.
//!
//! ```text
//! Run::new(object) ──► step(Step, work)  (reconcile_step_duration_seconds, _failures_total)
//!                  ──► set(Cond)          (condition; a change the type publishes queues an Event)
//!                  ──► event(…)           (an Event of the reconciler's own wording)
//!                  ──► write()            (status subresource, then the queued Events)
//! ```
//!
//! What a failure does to the status differs by resource, so each reconciler adds its own
//! `fail` to `Run<'_, Tenant>` / `Run<'_, DatabaseService>`.

use std::fmt::Debug;
use std::future::Future;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use prismicx_operator_api::{DatabaseService, DatabaseServiceStatus, Tenant, TenantStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::conditions::{self, Cond, ConditionType, Reason, ServiceCondition, TenantCondition};
use crate::context::Context;
use crate::error::{Result, Step};

/// A resource the operator reconciles through a [`Run`].
pub trait Reconciled:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
{
    type Condition: ConditionType;
    type Status: Clone + Default + Serialize + Send + Sync;
    /// The `resource` label of the metrics.
    const RESOURCE: &'static str;
    fn status_of(&self) -> Option<&Self::Status>;
    fn conditions_of(status: &Self::Status) -> &[Condition];
    fn conditions_mut(status: &mut Self::Status) -> &mut Vec<Condition>;
}

/// Implements [`Reconciled`] for a resource whose status has a `conditions` list.
macro_rules! reconciled {
    ($kind:ty, $status:ty, $condition:ty, $resource:literal) => {
        impl Reconciled for $kind {
            type Condition = $condition;
            type Status = $status;
            const RESOURCE: &'static str = $resource;
            fn status_of(&self) -> Option<&$status> {
                self.status.as_ref()
            }
            fn conditions_of(status: &$status) -> &[Condition] {
                &status.conditions
            }
            fn conditions_mut(status: &mut $status) -> &mut Vec<Condition> {
                &mut status.conditions
            }
        }
    };
}

reconciled!(Tenant, TenantStatus, TenantCondition, "tenant");
reconciled!(
    DatabaseService,
    DatabaseServiceStatus,
    ServiceCondition,
    "databaseservice"
);

/// An Event waiting for the status write.
#[derive(Debug, Clone)]
struct Queued {
    warning: bool,
    reason: Reason,
    note: String,
}

/// One reconcile of one object.
pub struct Run<'a, K: Reconciled> {
    pub ctx: &'a Context,
    api: Api<K>,
    name: String,
    pub generation: Option<i64>,
    pub status: K::Status,
    pub reference: ObjectReference,
    events: Vec<Queued>,
}

impl<K: Reconciled> Debug for Run<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("object", &self.reference)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl<'a, K: Reconciled> Run<'a, K> {
    pub fn new(ctx: &'a Context, obj: &K) -> Self {
        let ns = obj.namespace().unwrap_or_else(|| "default".into());
        Run {
            ctx,
            api: Api::namespaced(ctx.client.clone(), &ns),
            name: obj.name_any(),
            generation: obj.meta().generation,
            status: obj.status_of().cloned().unwrap_or_default(),
            reference: obj.object_ref(&()),
            events: Vec::new(),
        }
    }

    /// Runs `work` as the step `step`: its duration and, on failure, a failure are counted in
    /// the step metrics. What the outcome means for the status is the caller's.
    pub async fn step<T, E>(
        &self,
        step: Step,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let timer = self.ctx.metrics.step_timer(K::RESOURCE, step);
        let result = work.await;
        timer.finish(result.is_ok());
        result
    }

    /// Whether `type_` is True in the status being written.
    pub fn is_true(&self, type_: K::Condition) -> bool {
        conditions::status_of(K::conditions_of(&self.status), type_) == Some(true)
    }

    /// Sets a condition (its transition time moves only on a change); a change its type
    /// publishes ([`ConditionType::event_on_change`]) queues an Event.
    pub fn set(&mut self, c: Cond<K::Condition>) {
        let before = conditions::status_of(K::conditions_of(&self.status), c.type_);
        if let Some(warning) = c.type_.event_on_change(before, c.ok) {
            self.event(
                warning,
                c.reason.clone(),
                format!("{}: {}", c.type_.as_str(), c.message),
            );
        }
        conditions::set(
            K::conditions_mut(&mut self.status),
            &c,
            self.generation,
            Timestamp::now(),
        );
    }

    /// Queues an Event, published after the next status write.
    pub fn event(&mut self, warning: bool, reason: Reason, note: String) {
        self.events.push(Queued {
            warning,
            reason,
            note,
        });
    }

    /// Whether an Event with `reason` is queued.
    pub fn has_event(&self, reason: &Reason) -> bool {
        self.events.iter().any(|e| &e.reason == reason)
    }

    /// Writes the status, then publishes the queued Events.
    pub async fn write(&mut self) -> Result<()> {
        write_status(&self.api, &self.name, &self.status).await?;
        for e in std::mem::take(&mut self.events) {
            self.ctx
                .event(
                    &self.reference,
                    e.warning,
                    e.reason.as_str(),
                    "Reconcile",
                    e.note,
                )
                .await;
        }
        Ok(())
    }
}

/// Writes `status` to the status subresource of `name` (server-side apply, field manager
/// [`crate::FIELD_MANAGER`]; the operator owns the whole status).
pub async fn write_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Server-side apply of `obj` with the operator's field manager, forced (the operator owns
/// every field it sets); returns the object as stored.
pub async fn server_side_apply<K>(api: &Api<K>, obj: &K) -> Result<K>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(obj).map_err(|e| crate::Error::Config(e.to_string()))?;
    let dt = K::DynamicType::default();
    body["apiVersion"] = K::api_version(&dt).into();
    body["kind"] = K::kind(&dt).into();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(crate::FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?)
}

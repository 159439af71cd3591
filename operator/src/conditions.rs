//! Typed status conditions of both resources: the condition types ([`TenantCondition`],
//! [`ServiceCondition`]) and their reasons ([`Reason`]) are enums, rendered to the API's
//! strings here and nowhere else (`as_str`). The CRD's status readers, the docs and the tests
//! read those strings, so they never change.
//!
//! ```text
//! step outcome ──► Cond<T> { type, ok, reason, message }
//!     ──► set(conditions, cond)  (lastTransitionTime moves only when the status changes;
//!                                  the list stays in T::ALL order)
//!     ──► T::event_on_change      (whether the change is worth an Event, and its type)
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::error::Step;

/// A resource's condition type: its API string, its place in the list, and which changes of it
/// are published as Events.
pub trait ConditionType: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// Every type, in display order.
    const ALL: &'static [Self];

    /// The condition's `type` as the API shows it.
    fn as_str(self) -> &'static str;

    /// Whether a change of this condition from `before` (`None`: absent) to `ok` is published
    /// as an Event: `Some(true)` as a Warning, `Some(false)` as Normal, `None` not at all.
    fn event_on_change(self, before: Option<bool>, ok: bool) -> Option<bool>;
}

/// The condition types of a Tenant, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantCondition {
    Ready,
    PostgresReady,
    MongoReady,
    PoolReady,
    Registered,
    IsolationVerified,
    Drifted,
}

impl ConditionType for TenantCondition {
    const ALL: &'static [Self] = &[
        Self::Ready,
        Self::PostgresReady,
        Self::MongoReady,
        Self::PoolReady,
        Self::Registered,
        Self::IsolationVerified,
        Self::Drifted,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::PostgresReady => "PostgresReady",
            Self::MongoReady => "MongoReady",
            Self::PoolReady => "PoolReady",
            Self::Registered => "Registered",
            Self::IsolationVerified => "IsolationVerified",
            Self::Drifted => "Drifted",
        }
    }

    /// Every change except of Ready (whose Events the reconciler words itself); a step turning
    /// False is a Warning, and so is Drifted turning True.
    fn event_on_change(self, before: Option<bool>, ok: bool) -> Option<bool> {
        if before == Some(ok) || self == Self::Ready {
            return None;
        }
        Some(if self == Self::Drifted { ok } else { !ok })
    }
}

impl TenantCondition {
    /// The condition a failure of `step` sets to False (besides Ready), if it has one.
    pub fn of_step(step: Step) -> Option<Self> {
        match step {
            Step::Postgres => Some(Self::PostgresReady),
            Step::Mongo => Some(Self::MongoReady),
            Step::Pool => Some(Self::PoolReady),
            Step::Registry => Some(Self::Registered),
            Step::Isolation => Some(Self::IsolationVerified),
            Step::Secret | Step::Verify | Step::Cleanup => None,
        }
    }
}

/// The condition types of a DatabaseService, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceCondition {
    Available,
    Progressing,
    Degraded,
}

impl ConditionType for ServiceCondition {
    const ALL: &'static [Self] = &[Self::Available, Self::Progressing, Self::Degraded];

    fn as_str(self) -> &'static str {
        match self {
            Self::Available => "Available",
            Self::Progressing => "Progressing",
            Self::Degraded => "Degraded",
        }
    }

    /// Available and Degraded changes only (Progressing follows every rollout); Available
    /// turning False and Degraded turning True are Warnings. Degraded=False on the first
    /// reconcile is no news.
    fn event_on_change(self, before: Option<bool>, ok: bool) -> Option<bool> {
        if before == Some(ok) {
            return None;
        }
        match self {
            Self::Available => Some(!ok),
            Self::Degraded if ok || before.is_some() => Some(ok),
            Self::Degraded | Self::Progressing => None,
        }
    }
}

/// Every condition (and Event) reason the operator writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    // Tenant.
    InvalidSpec,
    SlugTaken,
    TenantIdMismatch,
    Provisioning,
    Provisioned,
    Suspended,
    Configured,
    Registered,
    Verified,
    Repaired,
    DriftDetected,
    RepairIncomplete,
    InSync,
    MoveConflict,
    /// A failed step: `PostgresFailed`, `MongoFailed`, …, `CleanupFailed`.
    Failed(Step),
    Deleted,
    Retained,
    // DatabaseService.
    OutsidePlatformNamespace,
    KubernetesApiFailed,
    ConfigurationError,
    Deployed,
    ConfigChanged,
    NotDeployed,
    Deploying,
    AsExpected,
    ScaledToZero,
    ReplicasAvailable,
    WaitingForReplicas,
    RollingOut,
    RolloutComplete,
    ProgressDeadlineExceeded,
    ReplicaFailure,
    Unavailable,
    /// A reason the Deployment's own condition gives, mirrored as it is.
    Deployment(String),
}

impl Reason {
    /// The reason as the API shows it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::SlugTaken => "SlugTaken",
            Self::TenantIdMismatch => "TenantIdMismatch",
            Self::Provisioning => "Provisioning",
            Self::Provisioned => "Provisioned",
            Self::Suspended => "Suspended",
            Self::Configured => "Configured",
            Self::Registered => "Registered",
            Self::Verified => "Verified",
            Self::Repaired => "Repaired",
            Self::DriftDetected => "DriftDetected",
            Self::RepairIncomplete => "RepairIncomplete",
            Self::InSync => "InSync",
            Self::MoveConflict => "MoveConflict",
            Self::Failed(step) => match step {
                Step::Postgres => "PostgresFailed",
                Step::Mongo => "MongoFailed",
                Step::Pool => "PoolFailed",
                Step::Registry => "RegistryFailed",
                Step::Secret => "SecretFailed",
                Step::Isolation => "IsolationFailed",
                Step::Verify => "VerifyFailed",
                Step::Cleanup => "CleanupFailed",
            },
            Self::Deleted => "Deleted",
            Self::Retained => "Retained",
            Self::OutsidePlatformNamespace => "OutsidePlatformNamespace",
            Self::KubernetesApiFailed => "KubernetesApiFailed",
            Self::ConfigurationError => "ConfigurationError",
            Self::Deployed => "Deployed",
            Self::ConfigChanged => "ConfigChanged",
            Self::NotDeployed => "NotDeployed",
            Self::Deploying => "Deploying",
            Self::AsExpected => "AsExpected",
            Self::ScaledToZero => "ScaledToZero",
            Self::ReplicasAvailable => "ReplicasAvailable",
            Self::WaitingForReplicas => "WaitingForReplicas",
            Self::RollingOut => "RollingOut",
            Self::RolloutComplete => "RolloutComplete",
            Self::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            Self::ReplicaFailure => "ReplicaFailure",
            Self::Unavailable => "Unavailable",
            Self::Deployment(reason) => reason,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond<T> {
    pub type_: T,
    pub ok: bool,
    pub reason: Reason,
    pub message: String,
}

impl<T> Cond<T> {
    pub fn new(type_: T, ok: bool, reason: Reason, message: impl Into<String>) -> Self {
        Cond {
            type_,
            ok,
            reason,
            message: message.into(),
        }
    }
}

/// Sets `c` in `conditions`: the transition time is kept when the status did not change; the
/// list stays in `T::ALL` order (unknown types last).
pub fn set<T: ConditionType>(
    conditions: &mut Vec<Condition>,
    c: &Cond<T>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if c.ok { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|x| x.type_ == c.type_.as_str()) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = c.reason.as_str().to_string();
            existing.message = c.message.clone();
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: c.type_.as_str().to_string(),
            status,
            reason: c.reason.as_str().to_string(),
            message: c.message.clone(),
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
    conditions.sort_by_key(|x| {
        T::ALL
            .iter()
            .position(|t| t.as_str() == x.type_)
            .unwrap_or(T::ALL.len())
    });
}

/// The status of `type_` in `conditions`: `Some(true)` when True, `None` when absent.
pub fn status_of<T: ConditionType>(conditions: &[Condition], type_: T) -> Option<bool> {
    find(conditions, type_).map(|c| c.status == "True")
}

/// The condition `type_` in `conditions`.
pub fn find<T: ConditionType>(conditions: &[Condition], type_: T) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use TenantCondition::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn transition_time_moves_only_on_a_status_change() {
        let mut conds = Vec::new();
        set(
            &mut conds,
            &Cond::new(Ready, false, Reason::Provisioning, "a"),
            Some(1),
            t(10),
        );
        set(
            &mut conds,
            &Cond::new(Ready, false, Reason::Failed(Step::Postgres), "b"),
            Some(1),
            t(20),
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, Time(t(10)));
        assert_eq!(conds[0].reason, "PostgresFailed");
        set(
            &mut conds,
            &Cond::new(Ready, true, Reason::Provisioned, "c"),
            Some(2),
            t(30),
        );
        assert_eq!(conds[0].last_transition_time, Time(t(30)));
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[0].observed_generation, Some(2));
    }

    #[test]
    fn conditions_keep_a_stable_order() {
        let mut conds = Vec::new();
        for ty in [Drifted, PoolReady, Ready] {
            set(
                &mut conds,
                &Cond::new(ty, true, Reason::InSync, ""),
                None,
                t(1),
            );
        }
        let order: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(order, ["Ready", "PoolReady", "Drifted"]);
        assert_eq!(status_of(&conds, Ready), Some(true));
        assert_eq!(status_of(&conds, MongoReady), None);
    }

    #[test]
    fn the_api_strings_are_the_documented_ones() {
        let types: Vec<&str> = TenantCondition::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            types.join(" "),
            "Ready PostgresReady MongoReady PoolReady Registered IsolationVerified Drifted"
        );
        let types: Vec<&str> = ServiceCondition::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(types, ["Available", "Progressing", "Degraded"]);
        for (step, reason) in [
            (Step::Postgres, "PostgresFailed"),
            (Step::Mongo, "MongoFailed"),
            (Step::Pool, "PoolFailed"),
            (Step::Registry, "RegistryFailed"),
            (Step::Secret, "SecretFailed"),
            (Step::Isolation, "IsolationFailed"),
            (Step::Verify, "VerifyFailed"),
            (Step::Cleanup, "CleanupFailed"),
        ] {
            assert_eq!(Reason::Failed(step).as_str(), reason);
            assert_eq!(step.failed_reason().as_str(), reason);
        }
        assert_eq!(Reason::Deployment("X".into()).as_str(), "X");
    }

    #[test]
    fn events_follow_the_documented_changes() {
        assert_eq!(PostgresReady.event_on_change(None, true), Some(false));
        assert_eq!(PostgresReady.event_on_change(Some(true), false), Some(true));
        assert_eq!(PostgresReady.event_on_change(Some(true), true), None);
        assert_eq!(Ready.event_on_change(None, true), None);
        assert_eq!(Drifted.event_on_change(Some(false), true), Some(true));
        use ServiceCondition as S;
        assert_eq!(S::Degraded.event_on_change(None, false), None);
        assert_eq!(S::Degraded.event_on_change(None, true), Some(true));
        assert_eq!(S::Degraded.event_on_change(Some(true), false), Some(false));
        assert_eq!(S::Available.event_on_change(Some(true), false), Some(true));
        assert_eq!(S::Progressing.event_on_change(None, true), None);
    }
}

//! The DatabaseService's status from its Deployment (pure): readyReplicas and the Available /
//! Progressing / Degraded conditions.

use k8s_openapi::api::apps::v1::Deployment;

use crate::conditions::{Cond, Reason, ServiceCondition};

/// What the Deployment says, as the DatabaseService reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub ready_replicas: i32,
    pub conditions: Vec<Cond<ServiceCondition>>,
}

/// Derives readyReplicas and the Available / Progressing / Degraded conditions from the
/// Deployment (as in ClusterOperator status: Available = serving, Progressing = a rollout is
/// under way, Degraded = not in the desired state without progressing towards it).
pub fn observe(deployment: Option<&Deployment>, desired: i32) -> Observed {
    let Some(dep) = deployment else {
        return Observed {
            ready_replicas: 0,
            conditions: vec![
                Cond::new(
                    ServiceCondition::Available,
                    false,
                    Reason::NotDeployed,
                    "no Deployment yet",
                ),
                Cond::new(
                    ServiceCondition::Progressing,
                    true,
                    Reason::Deploying,
                    "creating the Deployment",
                ),
                Cond::new(ServiceCondition::Degraded, false, Reason::AsExpected, ""),
            ],
        };
    };
    let st = dep.status.clone().unwrap_or_default();
    let conds = st.conditions.clone().unwrap_or_default();
    let cond = |t: &str| conds.iter().find(|c| c.type_ == t);
    let ready = st.ready_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let seen = match (dep.metadata.generation, st.observed_generation) {
        (Some(g), Some(o)) => o >= g,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let deadline = cond("Progressing")
        .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    let replica_failure = cond("ReplicaFailure").filter(|c| c.status == "True");
    let counts = format!("{ready}/{desired} ready, {updated} updated, {available} available");

    let available_cond = if desired == 0 {
        Cond::new(
            ServiceCondition::Available,
            true,
            Reason::ScaledToZero,
            "replicas is 0: the objects are kept, no pod runs",
        )
    } else if let Some(c) = cond("Available") {
        Cond::new(
            ServiceCondition::Available,
            c.status == "True",
            Reason::Deployment(
                c.reason
                    .clone()
                    .unwrap_or_else(|| "DeploymentAvailable".into()),
            ),
            format!("{}; {counts}", c.message.as_deref().unwrap_or_default()),
        )
    } else if available >= desired {
        Cond::new(
            ServiceCondition::Available,
            true,
            Reason::ReplicasAvailable,
            counts.clone(),
        )
    } else {
        Cond::new(
            ServiceCondition::Available,
            false,
            Reason::WaitingForReplicas,
            counts.clone(),
        )
    };
    // A rollout is complete when the deployment controller says so (Progressing with
    // NewReplicaSetAvailable; a pod lost later does not reopen it), else by the counts.
    let rolled_out = seen && updated >= desired && total == updated;
    let complete = match cond("Progressing").and_then(|c| c.reason.as_deref()) {
        Some("NewReplicaSetAvailable") => rolled_out,
        Some(_) => false,
        None => rolled_out && available >= desired,
    };
    let progressing = if deadline {
        Cond::new(
            ServiceCondition::Progressing,
            false,
            Reason::ProgressDeadlineExceeded,
            cond("Progressing")
                .and_then(|c| c.message.clone())
                .unwrap_or_default(),
        )
    } else if complete {
        Cond::new(
            ServiceCondition::Progressing,
            false,
            Reason::RolloutComplete,
            counts.clone(),
        )
    } else {
        Cond::new(
            ServiceCondition::Progressing,
            true,
            Reason::RollingOut,
            counts.clone(),
        )
    };
    let degraded = if deadline {
        Cond::new(
            ServiceCondition::Degraded,
            true,
            Reason::ProgressDeadlineExceeded,
            "the rollout made no progress within its deadline",
        )
    } else if let Some(c) = replica_failure {
        Cond::new(
            ServiceCondition::Degraded,
            true,
            Reason::ReplicaFailure,
            c.message.clone().unwrap_or_default(),
        )
    } else if !progressing.ok && !available_cond.ok {
        Cond::new(
            ServiceCondition::Degraded,
            true,
            Reason::Unavailable,
            counts,
        )
    } else {
        Cond::new(ServiceCondition::Degraded, false, Reason::AsExpected, "")
    };
    Observed {
        ready_replicas: ready,
        conditions: vec![available_cond, progressing, degraded],
    }
}

//! The last step: the Tenant's status once every step succeeded (Ready=True `Provisioned`, or
//! `Suspended`; observedGeneration, the Secret's name and the schema versions), with a Normal
//! Event when the Tenant becomes Ready or a new generation is provisioned. Also how the rest
//! of the operator reads a Tenant's readiness.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use prismicx_operator_api::{Tenant, TenantStatus};

use super::runner::Provision;
use crate::conditions::{self, Cond, Reason, TenantCondition};
use crate::error::Result;
use crate::pipeline::Run;

/// Writes the status of a provisioned tenant.
pub async fn step(run: &mut Run<'_, Tenant>, p: Provision<'_>) -> Result<()> {
    let was_ready = run.is_true(TenantCondition::Ready);
    let (reason, message) = if p.plan.suspended {
        (
            Reason::Suspended,
            "provisioned; access suspended, data kept",
        )
    } else {
        (
            Reason::Provisioned,
            "provisioned in every service the tenant uses",
        )
    };
    if !was_ready || run.status.observed_generation != run.generation {
        run.event(false, reason.clone(), message.into());
    }
    run.set(Cond::new(TenantCondition::Ready, true, reason, message));
    run.status.observed_generation = run.generation;
    run.status.secret_name = Some(p.plan.secret_name.clone());
    run.status.schema_versions = p.versions;
    run.write().await
}

/// The Ready condition of `status`.
pub fn ready(status: Option<&TenantStatus>) -> Option<&Condition> {
    status.and_then(|s| conditions::find(&s.conditions, TenantCondition::Ready))
}

/// Whether the Tenant is Ready.
pub fn is_ready(status: Option<&TenantStatus>) -> bool {
    ready(status).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn readiness_is_read_from_the_ready_condition() {
        let mut conds = Vec::new();
        for ty in [TenantCondition::Drifted, TenantCondition::Ready] {
            conditions::set(
                &mut conds,
                &Cond::new(ty, true, Reason::InSync, ""),
                None,
                Timestamp::from_second(1).unwrap(),
            );
        }
        let status = TenantStatus {
            conditions: conds,
            ..Default::default()
        };
        assert!(is_ready(Some(&status)));
        assert_eq!(ready(Some(&status)).unwrap().type_, "Ready");
        assert!(!is_ready(None));
        assert!(!is_ready(Some(&TenantStatus::default())));
    }
}

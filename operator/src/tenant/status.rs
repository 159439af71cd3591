//! Tenant status: conditions computed so `lastTransitionTime` moves only when a condition's
//! status changes (pure, unit-tested), and the one place that writes a status subresource (the
//! DatabaseService reconciler uses both too).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::Api;
use prismicx_operator_api::TenantStatus;

use crate::error::Result;

pub const READY: &str = "Ready";
pub const POSTGRES_READY: &str = "PostgresReady";
pub const MONGO_READY: &str = "MongoReady";
pub const POOL_READY: &str = "PoolReady";
pub const REGISTERED: &str = "Registered";
pub const ISOLATION_VERIFIED: &str = "IsolationVerified";
pub const DRIFTED: &str = "Drifted";

/// Every condition type a Tenant reports, in display order.
pub const ALL: [&str; 7] = [
    READY,
    POSTGRES_READY,
    MONGO_READY,
    POOL_READY,
    REGISTERED,
    ISOLATION_VERIFIED,
    DRIFTED,
];

/// One condition's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(type_: &'static str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            ok,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Sets `c` in `conditions`: the transition time is kept when the status did not change.
pub fn set(conditions: &mut Vec<Condition>, c: &Cond, generation: Option<i64>, now: Timestamp) {
    let status = if c.ok { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = c.reason.clone();
            existing.message = c.message.clone();
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: c.type_.to_string(),
            status,
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
    conditions.sort_by_key(|x| ALL.iter().position(|t| *t == x.type_).unwrap_or(ALL.len()));
}

/// Whether `type_` is True in `status`.
pub fn is_true(status: Option<&TenantStatus>, type_: &str) -> bool {
    status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .is_some_and(|c| c.status == "True")
}

/// Writes `status` to the status subresource of `name` (server-side apply, field manager
/// [`crate::FIELD_MANAGER`]; the operator owns the whole status). Used for both resources.
pub async fn write<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn transition_time_moves_only_on_a_status_change() {
        let mut conds = Vec::new();
        set(
            &mut conds,
            &Cond::new(READY, false, "Provisioning", "a"),
            Some(1),
            t(10),
        );
        set(
            &mut conds,
            &Cond::new(READY, false, "PostgresFailed", "b"),
            Some(1),
            t(20),
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, Time(t(10)));
        assert_eq!(conds[0].reason, "PostgresFailed");
        set(
            &mut conds,
            &Cond::new(READY, true, "Provisioned", "c"),
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
        for ty in [DRIFTED, POOL_READY, READY] {
            set(&mut conds, &Cond::new(ty, true, "R", ""), None, t(1));
        }
        let order: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(order, [READY, POOL_READY, DRIFTED]);
        let status = TenantStatus {
            conditions: conds,
            ..Default::default()
        };
        assert!(is_true(Some(&status), READY));
        assert!(!is_true(Some(&status), MONGO_READY));
        assert!(!is_true(None, READY));
    }
}

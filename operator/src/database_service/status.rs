//! The status step: an Event for a first deployment (`Deployed`) or a changed configuration
//! (`ConfigChanged`), the conditions observed on the applied Deployment ([`super::observe`]),
//! `readyReplicas`, `observedGeneration` and `configHash`, written to the status subresource
//! with the queued Events.

use prismicx_operator_api::DatabaseService;

use super::apply::Applied;
use super::{observe, Deploy};
use crate::conditions::Reason;
use crate::error::Result;
use crate::pipeline::Run;

/// Records the outcome of a successful pass and writes the status.
pub async fn step(
    run: &mut Run<'_, DatabaseService>,
    d: &Deploy<'_>,
    applied: Applied,
) -> Result<()> {
    let Applied { deployment, hash } = applied;
    if let Some((reason, note)) = rollout_event(run.status.config_hash.as_deref(), d, &hash) {
        run.event(false, reason, note);
    }
    let observed = observe::observe(Some(&deployment), d.plan.replicas);
    for c in observed.conditions {
        run.set(c);
    }
    run.status.ready_replicas = observed.ready_replicas;
    run.status.observed_generation = run.generation;
    run.status.config_hash = Some(hash);
    run.write().await
}

/// The Event a new config hash earns: none while it is the one in the status.
fn rollout_event(old: Option<&str>, d: &Deploy<'_>, hash: &str) -> Option<(Reason, String)> {
    match old {
        Some(old) if old == hash => None,
        Some(old) => Some((
            Reason::ConfigChanged,
            format!(
                "configuration changed ({} → {}); rolling out",
                short(old),
                short(hash)
            ),
        )),
        None => Some((
            Reason::Deployed,
            format!(
                "deployed {} ({}); configuration {}",
                d.plan.image,
                d.ensured.join(", "),
                short(hash)
            ),
        )),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

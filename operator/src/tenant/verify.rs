//! Verification: drift and isolation.
//!
//! - Before the steps, a tenant that was Ready for this generation is compared with the
//!   catalogs ([`drift_before`]); what differs sets Drifted=True (`DriftDetected`) and the steps
//!   repair it.
//! - The isolation step probes, as the tenant's own roles, that nothing of another tenant is
//!   reachable ([`isolation_step`]); a leak it finds is reported (a Warning Event), what the
//!   tenant's roles hold beyond the plan is taken back, and the probe runs again.
//! - The verify step compares the catalogs with the plan once more ([`step`]), so Ready means
//!   checked: Drifted=False `InSync` or `Repaired`, else Drifted=True `RepairIncomplete` and the
//!   step fails.

use prismicx_operator_api::Tenant;

use super::plan::TenantPlan;
use super::runner::Provision;
use super::{mongo, pool, postgres};
use crate::conditions::{self, Cond, ConditionType, Reason, TenantCondition};
use crate::context::Context;
use crate::error::{Result, Step};
use crate::pipeline::Run;

/// Everything the plan says differs from the servers (empty: in sync). An observation that
/// cannot be made counts as drift, so the repair runs.
pub async fn observe(ctx: &Context, plan: &TenantPlan) -> Vec<String> {
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

/// Drift of a tenant that was Ready for this generation, recorded (Drifted=True) before the
/// steps repair it; kept in `p.drift` for the verify step.
pub async fn drift_before(run: &mut Run<'_, Tenant>, p: &mut Provision<'_>) -> Result<()> {
    let was_ready = p
        .tenant
        .status
        .as_ref()
        .and_then(|s| conditions::status_of(&s.conditions, TenantCondition::Ready))
        == Some(true)
        && run.status.observed_generation == run.generation;
    if !was_ready {
        return Ok(());
    }
    p.drift = observe(p.ctx, &p.plan).await;
    if !p.drift.is_empty() {
        // Check the service databases again too: drift may have reached them.
        p.ctx.data.forget_ensured();
        run.set(Cond::new(
            TenantCondition::Drifted,
            true,
            Reason::DriftDetected,
            p.drift.join("; "),
        ));
        run.write().await?;
    }
    Ok(())
}

/// What the probe checked, as the tenant's own roles.
async fn probe(p: &Provision<'_>) -> anyhow::Result<Vec<String>> {
    p.ctx.check_fault(Step::Isolation)?;
    let mut checked = Vec::new();
    for pg in &p.plan.postgres {
        checked.extend(postgres::probe(&p.ctx.data, &p.plan, pg).await?);
    }
    checked.extend(mongo::probe(&p.ctx.data, &p.plan).await?);
    Ok(checked)
}

/// The isolation step: probe, and after a leak repair and probe again. Sets
/// IsolationVerified (`Verified` or `Repaired`).
pub async fn isolation_step(p: &mut Provision<'_>) -> anyhow::Result<()> {
    let (reason, checked) = match probe(p).await {
        Ok(checked) => (Reason::Verified, checked),
        // A leak the probe found: the Warning Event names it; what the tenant's own roles hold
        // beyond the plan is taken back, and the probe runs again.
        Err(found) => {
            p.event(
                true,
                Step::Isolation.failed_reason(),
                format!("{}: {found:#}", TenantCondition::IsolationVerified.as_str()),
            );
            let repaired = async {
                let mut done = Vec::new();
                for pg in &p.plan.postgres {
                    done.extend(postgres::revoke_foreign_grants(&p.ctx.data, pg).await?);
                }
                anyhow::Ok(done)
            }
            .await;
            match repaired {
                Ok(done) if !done.is_empty() => {
                    let mut checked = probe(p).await?;
                    checked.insert(0, format!("repaired ({found:#}): {}", done.join(", ")));
                    (Reason::Repaired, checked)
                }
                Ok(_) => return Err(found),
                Err(e) => return Err(found.context(format!("repair failed: {e:#}"))),
            }
        }
    };
    p.set(Cond::new(
        TenantCondition::IsolationVerified,
        true,
        reason,
        checked.join("; "),
    ));
    Ok(())
}

/// The verify step: the catalogs compared with the plan after every other step. Sets Drifted.
pub async fn step(p: &mut Provision<'_>) -> anyhow::Result<()> {
    let left = observe(p.ctx, &p.plan).await;
    if !left.is_empty() {
        p.set(Cond::new(
            TenantCondition::Drifted,
            true,
            Reason::RepairIncomplete,
            left.join("; "),
        ));
        anyhow::bail!("the catalogs differ from the plan: {}", left.join("; "));
    }
    let cond = if p.drift.is_empty() {
        Cond::new(
            TenantCondition::Drifted,
            false,
            Reason::InSync,
            "the catalogs match the plan",
        )
    } else {
        Cond::new(
            TenantCondition::Drifted,
            false,
            Reason::Repaired,
            format!("repaired: {}", p.drift.join("; ")),
        )
    };
    p.set(cond);
    Ok(())
}

//! Deletion, run by the finalizer ([`super::FINALIZER`]) before the Tenant goes. `Retain`
//! revokes access and unregisters the tenant but keeps its data (a re-created Tenant of the
//! same name finds it again, with the same id); `Delete` revokes access, ends sessions, drops
//! what the tenant owns, and removes it everywhere. Anything already gone counts as done.
//!
//! The id comes from the registry, as in provisioning: a Tenant whose slug another namespace
//! registered, or whose status id belongs to another tenant, deletes nothing. A cleanup that
//! fails shows why in the status (Ready=False `CleanupFailed`) and keeps the finalizer.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use prismicx_operator_api::{DeletionPolicy, Tenant, Tier};
use prismicx_store::events::TenantEventKind;
use prismicx_tenancy::{TenantSlug, TenantState};
use uuid::Uuid;

use super::plan::{self, TenantPlan};
use super::{mongo, pool, postgres, registry, secret};
use crate::conditions::Reason;
use crate::context::Context;
use crate::error::{Error, Result, Step};
use crate::pipeline::Run;

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
            fixed.spec.limits = None;
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

/// The finalizer's cleanup of `t`.
pub async fn cleanup(t: Arc<Tenant>, ctx: &Context) -> Result<Action> {
    let mut run = Run::new(ctx, &*t);
    let outcome = run.step(Step::Cleanup, cleanup_steps(&t, ctx)).await;
    match outcome {
        Ok(None) => Ok(Action::await_change()),
        Ok(Some(drop)) => {
            ctx.event(
                &run.reference,
                false,
                if drop {
                    Reason::Deleted
                } else {
                    Reason::Retained
                }
                .as_str(),
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
            run.not_ready(Step::Cleanup.failed_reason(), err.to_string());
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
    let ns = super::namespace_of(t);
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
    let dbs = ctx.catalog.postgres_databases();

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
        registry::publish_deleted(&ctx.data, &plan, drop).await?;
        anyhow::Ok(())
    }
    .await;
    result.map_err(step)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    secret::delete(&secrets, &plan.secret_name).await?;
    Ok(Some(drop))
}

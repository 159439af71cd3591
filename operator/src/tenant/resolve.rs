//! Step one: the tenant's id. It comes from the registry (never from the status alone) and is
//! claimed atomically before anything else is done; once assigned it is written to the status
//! at once, so a crash never yields two ids. A Tenant whose slug another namespace holds, or
//! whose status names an id the registry does not give it, is refused and nothing is touched.

use prismicx_operator_api::{Tenant, Tier};
use prismicx_tenancy::TenantSlug;
use uuid::Uuid;

use super::{postgres, registry};
use crate::conditions::{Cond, Reason, TenantCondition};
use crate::context::Context;
use crate::error::{Error, Result, Step};
use crate::pipeline::Run;

/// Resolves the tenant's id ([`resolve_id`]), records a refusal or failure, and writes a newly
/// assigned id to the status (Ready=False `Provisioning`) before any step runs.
pub async fn step(
    run: &mut Run<'_, Tenant>,
    ctx: &Context,
    t: &Tenant,
    slug: &TenantSlug,
    ns: &str,
) -> Result<Uuid> {
    let tenant_id = match resolve_id(ctx, t, slug, ns).await {
        Ok(id) => id,
        Err(Refusal::SlugTaken(msg)) => return Err(run.refuse(Reason::SlugTaken, msg).await?),
        Err(Refusal::IdMismatch(msg)) => {
            return Err(run.refuse(Reason::TenantIdMismatch, msg).await?)
        }
        Err(Refusal::Failed(Error::Step { step, source })) => {
            return Err(run.fail(step, source).await)
        }
        Err(Refusal::Failed(e)) => return Err(e),
    };
    if run.status.tenant_id.is_none() {
        run.status.tenant_id = Some(tenant_id.to_string());
        run.set(Cond::new(
            TenantCondition::Ready,
            false,
            Reason::Provisioning,
            "tenant id assigned; provisioning",
        ));
        run.write().await?;
    }
    Ok(tenant_id)
}

/// Why a Tenant is refused an id; nothing is touched for it.
enum Refusal {
    /// A Tenant of another namespace holds the slug (`SlugTaken`).
    SlugTaken(String),
    /// The Tenant's status names an id the registry does not give it (`TenantIdMismatch`).
    IdMismatch(String),
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Failed(e)
    }
}

/// The tenant's id, from the registry: the id its entry was claimed with when the slug is this
/// namespace's; else the id a retained record or schema holds for the slug in this namespace, or
/// a new one, claimed atomically ([`registry::claim`]) before anything else is done. The status
/// is never trusted: a `status.tenantId` that differs from the registry's (or, before the first
/// claim, names an id the registry gives another slug) is refused.
async fn resolve_id(
    ctx: &Context,
    t: &Tenant,
    slug: &TenantSlug,
    ns: &str,
) -> Result<Uuid, Refusal> {
    let step = |e: anyhow::Error| {
        Refusal::Failed(Error::Step {
            step: Step::Registry,
            source: e,
        })
    };
    let taken = |other: &str, how: &str| {
        Refusal::SlugTaken(format!(
            "metadata.name: the tenant slug {slug} is {how} a Tenant in namespace {other}"
        ))
    };
    let mismatch = |what: String| {
        Refusal::IdMismatch(format!(
            "status.tenantId: {what}; the registry is the source of the tenant's id, so nothing \
             is provisioned until the status is corrected"
        ))
    };
    let status_id = match t.status.as_ref().and_then(|s| s.tenant_id.as_deref()) {
        None => None,
        Some(raw) => {
            Some(Uuid::parse_str(raw).map_err(|_| mismatch(format!("{raw:?} is not a UUID")))?)
        }
    };
    if let Some((owner, id)) = registry::entry(&ctx.data, slug).await.map_err(step)? {
        if owner != ns {
            return Err(taken(&owner, "registered by"));
        }
        let id = id.ok_or_else(|| {
            step(anyhow::anyhow!(
                "the registry entry of {slug} has no tenant_id"
            ))
        })?;
        return match status_id {
            Some(s) if s != id => Err(mismatch(format!(
                "{s} differs from the id registered for {slug}"
            ))),
            _ => Ok(id),
        };
    }
    let dbs = ctx.catalog.postgres_databases();
    let retained = match registry::retained(&ctx.data, slug).await.map_err(step)? {
        Some(found) => Some(found),
        None => postgres::retained_tenant_id(&ctx.data, slug, &dbs)
            .await
            .map_err(step)?,
    };
    let id = match (retained, status_id) {
        (Some((_, owner)), _) if owner != ns => return Err(taken(&owner, "retained for")),
        (Some((id, _)), Some(s)) if s != id => {
            return Err(mismatch(format!(
                "{s} differs from the id retained for {slug}"
            )))
        }
        (Some((id, _)), _) => id,
        // A status id with no claim behind it (a claim interrupted before its entry was written
        // by an older operator, or a forgery): kept only if no other tenant has it.
        (None, Some(s)) => {
            if let Some(other) = registry::id_used_elsewhere(&ctx.data, s, slug)
                .await
                .map_err(step)?
            {
                return Err(mismatch(format!("{s} belongs to the tenant {other}")));
            }
            s
        }
        (None, None) => Uuid::new_v4(),
    };
    let tier = match t.spec.tier {
        Tier::Standard => "standard",
        Tier::Dedicated => "dedicated",
    };
    match registry::claim(&ctx.data, slug, ns, tier, id)
        .await
        .map_err(step)?
    {
        registry::Claim::Ours(claimed) if status_id.is_some_and(|s| s != claimed) => Err(mismatch(
            format!("the registry gave {slug} the id {claimed}"),
        )),
        registry::Claim::Ours(claimed) => Ok(claimed),
        registry::Claim::Taken(owner) => Err(taken(&owner, "registered by")),
    }
}

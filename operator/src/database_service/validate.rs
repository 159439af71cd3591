//! The first step of a DatabaseService reconcile: where it may run, the plan (pure, from the
//! spec and the operator's settings) and whether the Deployment of that name is ours. Nothing
//! is written before this step passes; a failure is permanent (`OutsidePlatformNamespace`,
//! `InvalidSpec`) and waits for a change of the object.

use kube::ResourceExt;
use prismicx_operator_api::DatabaseService;

use super::plan::{self, ServicePlan};
use super::{Apis, DatabaseServiceContext};
use crate::conditions::Reason;
use crate::error::{Error, Result};

/// Validates `ds` and plans it; returns the plan and the APIs of its namespace.
pub async fn step(
    ds: &DatabaseService,
    dctx: &DatabaseServiceContext,
) -> Result<(ServicePlan, Apis)> {
    let ctx = &dctx.ctx;
    // Only the platform's namespace holds the platform's database credentials: anywhere else a
    // namespace owner could read (or pre-create) the Secret whose password the service logins
    // get. Refused before anything is read or written.
    let ns = ds.namespace().unwrap_or_default();
    if ns != dctx.settings.platform_namespace {
        return Err(Error::Refused {
            reason: Reason::OutsidePlatformNamespace,
            message: format!(
                "DatabaseServices run only in the platform namespace {}; this one is in {ns} \
                 and nothing was created for it",
                dctx.settings.platform_namespace
            ),
        });
    }
    // Nothing is touched for an invalid spec.
    let plan = plan::plan(ds, &dctx.settings, &ctx.data.endpoints)?;
    let apis = Apis::new(&ctx.client, &plan.namespace);
    ensure_deployment_is_ours(ds, &apis, &plan).await?;
    Ok((plan, apis))
}

/// One DatabaseService per service and namespace: a Deployment of the plan's name that another
/// object controls makes the spec invalid.
async fn ensure_deployment_is_ours(
    ds: &DatabaseService,
    apis: &Apis,
    plan: &ServicePlan,
) -> Result<()> {
    let uid = ds.uid();
    let Some(existing) = apis.deployments.get_opt(&plan.name).await? else {
        return Ok(());
    };
    match existing
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && Some(&o.uid) != uid.as_ref())
    {
        Some(other) => Err(Error::InvalidSpec(format!(
            "Deployment {} is already controlled by {} {}; one DatabaseService per service and namespace",
            plan.name, other.kind, other.name
        ))),
        None => Ok(()),
    }
}

//! The apply step: the config hash and the objects of the plan (ConfigMap, ServiceAccount,
//! Service, vector-store's PersistentVolumeClaim, Deployment), server-side applied in that
//! order (field manager `prismicx-operator`, forced), then [`prune`] of what the
//! DatabaseService owns and the plan no longer names. Runs after the dependencies, so the first
//! rollout never starts against a database that does not exist. A claim is never pruned: only
//! the DatabaseService's deletion removes it (and the data on it).

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::{config_hash, resources, Deploy};
use crate::error::Result;
use crate::pipeline::server_side_apply as apply;

/// What the apply step leaves for the status.
#[derive(Debug)]
pub struct Applied {
    /// The Deployment as stored.
    pub deployment: Deployment,
    /// The config hash on its pod template.
    pub hash: String,
}

/// Builds and applies the service's objects, then prunes the ones it no longer wants.
pub async fn step(d: &Deploy<'_>) -> Result<Applied> {
    let plan = &d.plan;
    let hash = config_hash::config_hash(&plan.config, &plan.env, &d.values);
    let config_map = resources::config_map(plan);
    let account = resources::service_account(plan);
    let service = resources::service(plan);
    let deployment = resources::deployment(plan, &hash);

    apply(&d.apis.config_maps, &config_map).await?;
    apply(&d.apis.accounts, &account).await?;
    apply(&d.apis.services, &service).await?;
    if let Some(claim) = resources::volume_claim(plan) {
        apply(&d.apis.claims, &claim).await?;
    }
    let deployment = apply(&d.apis.deployments, &deployment).await?;
    prune_all(d).await?;
    Ok(Applied { deployment, hash })
}

async fn prune_all(d: &Deploy<'_>) -> Result<()> {
    let Some(uid) = d.owner_uid.as_deref() else {
        return Ok(());
    };
    let (apis, plan) = (&d.apis, &d.plan);
    let selector = resources::owned_selector(&plan.instance);
    let keep = [plan.name.as_str()];
    prune(&apis.deployments, &selector, uid, &keep).await?;
    prune(&apis.services, &selector, uid, &keep).await?;
    prune(&apis.accounts, &selector, uid, &keep).await?;
    prune(&apis.config_maps, &selector, uid, &keep).await?;
    // The Secret the pods read stays, even a `spec.databaseSecret` naming the operator's own.
    prune(
        &apis.secrets,
        &selector,
        uid,
        &[plan.database_secret.as_str()],
    )
    .await?;
    Ok(())
}

/// Deletes the objects matching `selector` that `owner_uid` controls and `keep` does not
/// name; returns their names.
pub async fn prune<K>(
    api: &Api<K>,
    selector: &str,
    owner_uid: &str,
    keep: &[&str],
) -> Result<Vec<String>>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let mut removed = Vec::new();
    for obj in api.list(&ListParams::default().labels(selector)).await? {
        let name = obj.name_any();
        let ours = obj
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == owner_uid);
        if !ours || keep.contains(&name.as_str()) {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(object = %name, "removed an object the DatabaseService no longer wants");
        removed.push(name);
    }
    Ok(removed)
}

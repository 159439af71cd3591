//! The tenant registry (tenant-mgmt's `tenant_registry.tenants` on mongodb-system, one document
//! per tenant with `_id` = slug) and the lifecycle events on Redis that tell every service to
//! drop what it cached about the tenant.
//!
//! The operator writes only its own fields (`$set`), so fields tenant-mgmt keeps in the same
//! document survive. An event is published when the registered state, tier or services change.

use anyhow::{Context as _, Result};
use mongodb::bson::{doc, Bson, Document};
use prismicx_service_common::events::{self, TenantEvent, TenantEventKind};
use prismicx_service_common::mongo::tenant_bson;
use prismicx_service_common::tenancy::{TenantSlug, TenantState};
use uuid::Uuid;

use super::plan::TenantPlan;
use crate::dataplane::DataPlane;

fn collection(dp: &DataPlane) -> mongodb::Collection<Document> {
    dp.mongo_system
        .database(prismicx_tenant_mgmt::MONGO.database)
        .collection(prismicx_tenant_mgmt::REGISTRY_COLLECTION)
}

fn state_str(s: TenantState) -> &'static str {
    match s {
        TenantState::Provisioning => "provisioning",
        TenantState::Active => "active",
        TenantState::Suspended => "suspended",
        TenantState::Deleting => "deleting",
    }
}

/// The registry document's operator-owned fields for `plan` in `state`.
pub fn document(
    plan: &TenantPlan,
    state: TenantState,
    versions: &std::collections::BTreeMap<String, i32>,
) -> Document {
    let postgres: Vec<Document> = plan
        .postgres
        .iter()
        .map(|p| {
            doc! {
                "database": p.database,
                "schema": &p.schema,
                "pool": p.pool.as_ref().map(|x| x.alias.clone()).unwrap_or_else(|| p.database.to_string()),
                "schemaVersion": versions.get(p.database).copied().unwrap_or(0),
            }
        })
        .collect();
    let mongo: Vec<Document> = plan
        .mongo
        .iter()
        .map(|m| {
            if plan.dedicated() {
                doc! { "service": m.layout.database, "server": "mongodb-tenant", "database": &m.dedicated_database }
            } else {
                doc! { "service": m.layout.database, "server": "mongodb-system", "database": m.layout.database }
            }
        })
        .collect();
    let tier = match plan.tier {
        prismicx_operator_api::Tier::Standard => "standard",
        prismicx_operator_api::Tier::Dedicated => "dedicated",
    };
    doc! {
        "slug": plan.slug.as_str(),
        "tenant_id": tenant_bson(plan.tenant_id),
        "tier": tier,
        "state": state_str(state),
        "display_name": plan.display_name.clone().map(Bson::String).unwrap_or(Bson::Null),
        "services": plan.services.iter().map(|s| serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()).collect::<Vec<String>>(),
        "placement": { "postgres": postgres, "mongo": mongo },
    }
}

/// Registers the tenant; returns the event to publish when something services care about
/// changed (`None` when the entry was already up to date).
pub async fn upsert(
    dp: &DataPlane,
    plan: &TenantPlan,
    state: TenantState,
    versions: &std::collections::BTreeMap<String, i32>,
) -> Result<Option<TenantEventKind>> {
    let coll = collection(dp);
    let before = coll
        .find_one(doc! { "_id": plan.slug.as_str() })
        .await
        .context("reading the registry")?;
    let mut set = document(plan, state, versions);
    let now = Bson::DateTime(mongodb::bson::DateTime::now());
    set.insert("updated_at", now.clone());
    let unchanged = before.as_ref().is_some_and(|b| {
        [
            "tenant_id",
            "tier",
            "state",
            "services",
            "placement",
            "display_name",
        ]
        .iter()
        .all(|k| b.get(k) == set.get(k))
    });
    if unchanged {
        return Ok(None);
    }
    coll.update_one(
        doc! { "_id": plan.slug.as_str() },
        doc! { "$set": set, "$setOnInsert": { "created_at": now } },
    )
    .upsert(true)
    .await
    .context("writing the registry")?;
    let kind = match (before.as_ref().and_then(|b| b.get_str("state").ok()), state) {
        (None, _) => TenantEventKind::Provisioned,
        (Some(prev), TenantState::Suspended) if prev != "suspended" => TenantEventKind::Suspended,
        (Some("suspended"), TenantState::Active) => TenantEventKind::Resumed,
        (Some("provisioning"), TenantState::Active) => TenantEventKind::Provisioned,
        _ => TenantEventKind::Updated,
    };
    Ok(Some(kind))
}

/// The id registered for `slug`, if any.
pub async fn registered_id(dp: &DataPlane, slug: &TenantSlug) -> Result<Option<Uuid>> {
    let found = collection(dp)
        .find_one(doc! { "_id": slug.as_str() })
        .await
        .context("reading the registry")?;
    Ok(found.and_then(|d| match d.get("tenant_id") {
        Some(Bson::Binary(b)) => Uuid::from_slice(&b.bytes).ok(),
        _ => None,
    }))
}

/// Whether the registry holds `slug`.
pub async fn is_registered(dp: &DataPlane, slug: &TenantSlug) -> Result<bool> {
    Ok(collection(dp)
        .find_one(doc! { "_id": slug.as_str() })
        .await
        .context("reading the registry")?
        .is_some())
}

/// Removes the registry entry (gone already: fine).
pub async fn remove(dp: &DataPlane, slug: &TenantSlug) -> Result<()> {
    collection(dp)
        .delete_one(doc! { "_id": slug.as_str() })
        .await
        .context("removing the registry entry")?;
    Ok(())
}

/// Publishes a lifecycle event on Redis.
pub async fn publish(dp: &DataPlane, plan: &TenantPlan, kind: TenantEventKind) -> Result<()> {
    let mut conn = dp.redis().await?;
    events::publish(
        &mut conn,
        &TenantEvent::new(kind, plan.tenant_id, plan.slug.clone()),
    )
    .await
    .context("publishing the lifecycle event")?;
    Ok(())
}

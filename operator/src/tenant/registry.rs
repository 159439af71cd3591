//! The tenant registry (tenant-mgmt's `tenant_registry.tenants` on mongodb-system, one document
//! per tenant with `_id` = slug) and the lifecycle events on Redis that tell every service to
//! drop what it cached about the tenant.
//!
//! - The operator writes only its own fields (`$set`), so fields tenant-mgmt keeps in the same
//!   document survive.
//! - Slugs are platform-wide but Tenants are namespaced: each entry records the namespace that
//!   owns the slug ([`entry`]); a Tenant of the same name in another namespace is
//!   refused and its deletion touches nothing.
//! - An event is due when the registered state, tier, services or placement change. It is
//!   stored in the entry (`event_pending`) in the same write and cleared only after Redis took
//!   it ([`event_published`]), so a failed publish is retried by the next reconcile.
//! - The registry is the source of truth for a tenant's id, never the Tenant's status (which
//!   whoever may patch `tenants/status`, or restores a Tenant, can write). A new slug is claimed
//!   with one insert ([`claim`]): `_id` is unique, so of two namespaces claiming it at the same
//!   moment exactly one wins and the other finds the winner's entry. Every later write of the
//!   entry names the slug, the namespace and the id it was claimed with, so it can never
//!   overwrite another claim.
//! - Deleting a tenant with `Retain` leaves a record in `retained_tenants` (slug → id,
//!   namespace), so a new Tenant of that name in that namespace gets its data back.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use mongodb::bson::{doc, Bson, Document};
use prismicx_store::events::{self, TenantEvent, TenantEventKind};
use prismicx_store::mongo::tenant_bson;
use prismicx_tenancy::{TenantSlug, TenantState};
use uuid::Uuid;

use super::plan::TenantPlan;
use crate::dataplane::DataPlane;

use super::runner::Provision;
use crate::conditions::{Reason, TenantCondition};
use crate::error::Step;

/// Collection of retained tenants' ids, beside the registry.
pub const RETAINED_COLLECTION: &str = "retained_tenants";

fn database(dp: &DataPlane) -> mongodb::Database {
    dp.mongo_system
        .database(prismicx_tenancy::services::tenant_mgmt::MONGO.database)
}

fn collection(dp: &DataPlane) -> mongodb::Collection<Document> {
    database(dp).collection(prismicx_tenancy::services::tenant_mgmt::REGISTRY_COLLECTION)
}

/// The name `value` has on the wire (its serde form: `active`, `provisioned`, …), as the
/// services write it into the registry.
fn wire_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn uuid_of(d: &Document, key: &str) -> Option<Uuid> {
    match d.get(key) {
        Some(Bson::Binary(b)) => Uuid::from_slice(&b.bytes).ok(),
        _ => None,
    }
}

/// The registry document's operator-owned fields for `plan` in `state` (pure).
pub fn document(
    plan: &TenantPlan,
    state: TenantState,
    versions: &BTreeMap<String, i32>,
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
    let services: Vec<String> = plan
        .services
        .iter()
        .map(|s| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect();
    doc! {
        "slug": plan.slug.as_str(),
        "tenant_id": tenant_bson(plan.tenant_id),
        "namespace": &plan.namespace,
        "tier": tier,
        "state": wire_name(state),
        "display_name": plan.display_name.clone().map(Bson::String).unwrap_or(Bson::Null),
        "rate_limit": plan
            .rate_limit
            .map(|(rps, burst)| Bson::Document(doc! { "rps": i64::from(rps), "burst": i64::from(burst) }))
            .unwrap_or(Bson::Null),
        "vector_quota": plan.vector_quota.map(vector_quota_document).unwrap_or(Bson::Null),
        "services": services,
        "placement": { "postgres": postgres, "mongo": mongo },
    }
}

/// A vector-store quota in the registry: `{max_collections, max_points, max_bytes}` as 64-bit
/// integers, an unset field left out (the service's default applies to it).
fn vector_quota_document(quota: prismicx_tenancy::VectorQuota) -> Bson {
    let mut d = Document::new();
    for (key, value) in [
        ("max_collections", quota.max_collections),
        ("max_points", quota.max_points),
        ("max_bytes", quota.max_bytes),
    ] {
        if let Some(v) = value.and_then(|v| i64::try_from(v).ok()) {
            d.insert(key, v);
        }
    }
    Bson::Document(d)
}

/// The outcome of [`claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The slug belongs to this namespace, with this id (just claimed, or claimed earlier).
    Ours(Uuid),
    /// A Tenant of this other namespace holds the slug.
    Taken(String),
}

/// The registry entry of `slug`: its owning namespace and id (`None` when unregistered).
pub async fn entry(dp: &DataPlane, slug: &TenantSlug) -> Result<Option<(String, Option<Uuid>)>> {
    let found = collection(dp)
        .find_one(doc! { "_id": slug.as_str() })
        .await
        .context("reading the registry")?;
    Ok(found.map(|d| {
        (
            d.get_str("namespace").unwrap_or_default().to_string(),
            uuid_of(&d, "tenant_id"),
        )
    }))
}

/// Claims `slug` for `namespace` with `id`, atomically: the first claim inserts the entry (in
/// state `provisioning`); any later one reads who holds it.
pub async fn claim(
    dp: &DataPlane,
    slug: &TenantSlug,
    namespace: &str,
    tier: &str,
    id: Uuid,
) -> Result<Claim> {
    let now = Bson::DateTime(mongodb::bson::DateTime::now());
    let inserted = collection(dp)
        .insert_one(doc! {
            "_id": slug.as_str(),
            "slug": slug.as_str(),
            "tenant_id": tenant_bson(id),
            "namespace": namespace,
            "tier": tier,
            "state": wire_name(TenantState::Provisioning),
            "created_at": now.clone(),
            "updated_at": now,
        })
        .await;
    match inserted {
        Ok(_) => Ok(Claim::Ours(id)),
        Err(e) if prismicx_store::mongo::is_duplicate_key(&e) => match entry(dp, slug).await? {
            Some((owner, Some(existing))) if owner == namespace => Ok(Claim::Ours(existing)),
            Some((owner, _)) if owner != namespace => Ok(Claim::Taken(owner)),
            // Malformed (no id), or removed again in between: let the next reconcile look again.
            _ => anyhow::bail!("the registry entry of {slug} changed while it was being claimed"),
        },
        Err(e) => Err(e).context("claiming the slug in the registry"),
    }
}

/// The slug, other than `slug`, whose registry entry or retained record carries `id`.
pub async fn id_used_elsewhere(
    dp: &DataPlane,
    id: Uuid,
    slug: &TenantSlug,
) -> Result<Option<String>> {
    let filter = doc! { "tenant_id": tenant_bson(id), "_id": { "$ne": slug.as_str() } };
    let registered = collection(dp)
        .find_one(filter.clone())
        .await
        .context("reading the registry")?;
    let found = match registered {
        Some(d) => Some(d),
        None => database(dp)
            .collection::<Document>(RETAINED_COLLECTION)
            .find_one(filter)
            .await
            .context("reading the retained tenants")?,
    };
    Ok(found.and_then(|d| d.get_str("_id").ok().map(String::from)))
}

/// Registers the tenant. Returns the event due (a new one when something services care about
/// changed, or one stored earlier whose publication failed); `None` when nothing is due.
pub async fn upsert(
    dp: &DataPlane,
    plan: &TenantPlan,
    state: TenantState,
    versions: &BTreeMap<String, i32>,
) -> Result<Option<TenantEventKind>> {
    let coll = collection(dp);
    let before = coll
        .find_one(doc! { "_id": plan.slug.as_str() })
        .await
        .context("reading the registry")?;
    let mut set = document(plan, state, versions);
    let unchanged = before.as_ref().is_some_and(|b| {
        [
            "tenant_id",
            "tier",
            "state",
            "services",
            "placement",
            "display_name",
            "namespace",
            "rate_limit",
            "vector_quota",
        ]
        .iter()
        .all(|k| b.get(k) == set.get(k))
    });
    let pending = before
        .as_ref()
        .and_then(|b| b.get_str("event_pending").ok())
        .and_then(|k| serde_json::from_value::<TenantEventKind>(k.into()).ok());
    if unchanged {
        return Ok(pending);
    }
    let kind = match (before.as_ref().and_then(|b| b.get_str("state").ok()), state) {
        (None, _) => TenantEventKind::Provisioned,
        (Some(prev), TenantState::Suspended) if prev != "suspended" => TenantEventKind::Suspended,
        (Some("suspended"), TenantState::Active) => TenantEventKind::Resumed,
        (Some("provisioning"), TenantState::Active) => TenantEventKind::Provisioned,
        _ => TenantEventKind::Updated,
    };
    let now = Bson::DateTime(mongodb::bson::DateTime::now());
    set.insert("updated_at", now.clone());
    set.insert("event_pending", wire_name(kind));
    // Filtered by the claim (slug, namespace, id): an entry claimed by anyone else makes the
    // upsert's insert fail on the unique `_id` rather than overwrite it.
    coll.update_one(
        doc! {
            "_id": plan.slug.as_str(),
            "namespace": &plan.namespace,
            "tenant_id": tenant_bson(plan.tenant_id),
        },
        doc! { "$set": set, "$setOnInsert": { "created_at": now } },
    )
    .upsert(true)
    .await
    .context("writing the registry")?;
    Ok(Some(kind))
}

/// Marks the due event as published.
pub async fn event_published(dp: &DataPlane, slug: &TenantSlug) -> Result<()> {
    collection(dp)
        .update_one(
            doc! { "_id": slug.as_str() },
            doc! { "$unset": { "event_pending": "" } },
        )
        .await
        .context("clearing the pending event")?;
    Ok(())
}

/// The retained record of `slug`: its id and the namespace whose Tenant retained it.
pub async fn retained(dp: &DataPlane, slug: &TenantSlug) -> Result<Option<(Uuid, String)>> {
    let found = database(dp)
        .collection::<Document>(RETAINED_COLLECTION)
        .find_one(doc! { "_id": slug.as_str() })
        .await
        .context("reading the retained tenants")?;
    Ok(found.and_then(|d| {
        Some((
            uuid_of(&d, "tenant_id")?,
            d.get_str("namespace").ok()?.to_string(),
        ))
    }))
}

/// Records (`Some`) or forgets (`None`) that `slug`'s data is retained.
pub async fn set_retained(dp: &DataPlane, plan: &TenantPlan, retained: bool) -> Result<()> {
    let coll = database(dp).collection::<Document>(RETAINED_COLLECTION);
    if retained {
        coll.replace_one(
            doc! { "_id": plan.slug.as_str() },
            doc! {
                "tenant_id": tenant_bson(plan.tenant_id),
                "namespace": &plan.namespace,
                "retained_at": mongodb::bson::DateTime::now(),
            },
        )
        .upsert(true)
        .await
        .context("recording the retained tenant")?;
    } else {
        coll.delete_one(doc! { "_id": plan.slug.as_str() })
            .await
            .context("forgetting the retained tenant")?;
    }
    Ok(())
}

/// Whether the registry holds `slug`.
pub async fn is_registered(dp: &DataPlane, slug: &TenantSlug) -> Result<bool> {
    Ok(entry(dp, slug).await?.is_some())
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
    send(
        dp,
        &TenantEvent::new(kind, plan.tenant_id, plan.slug.clone()),
    )
    .await
}

/// Publishes the `deleted` event, saying whether the tenant's data was kept or removed (the
/// services that keep files remove theirs on `Deleted`).
pub async fn publish_deleted(dp: &DataPlane, plan: &TenantPlan, removed: bool) -> Result<()> {
    let data = if removed {
        events::DataDisposition::Deleted
    } else {
        events::DataDisposition::Retained
    };
    send(
        dp,
        &TenantEvent::deleted(plan.tenant_id, plan.slug.clone(), data),
    )
    .await
}

async fn send(dp: &DataPlane, event: &TenantEvent) -> Result<()> {
    let mut conn = dp.redis().await?;
    events::publish(&mut conn, event)
        .await
        .context("publishing the lifecycle event")?;
    Ok(())
}

/// The registry step: the tenant's entry ([`upsert`]) and, when one is due, its lifecycle
/// event ([`publish`], then [`event_published`]). Sets Registered.
pub async fn step(p: &mut Provision<'_>) -> Result<()> {
    p.ctx.check_fault(Step::Registry)?;
    let (dp, plan) = (&p.ctx.data, &p.plan);
    let state = if plan.suspended {
        TenantState::Suspended
    } else {
        TenantState::Active
    };
    if let Some(kind) = upsert(dp, plan, state, &p.versions).await? {
        publish(dp, plan, kind).await?;
        event_published(dp, &plan.slug).await?;
    }
    let state = if plan.suspended {
        "suspended"
    } else {
        "active"
    };
    let message = format!("tenant_registry entry {} ({state})", plan.slug);
    p.ready(TenantCondition::Registered, Reason::Registered, message);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_the_registry_names_the_services_read() {
        for (state, name) in [
            (TenantState::Provisioning, "provisioning"),
            (TenantState::Active, "active"),
            (TenantState::Suspended, "suspended"),
            (TenantState::Deleting, "deleting"),
        ] {
            assert_eq!(wire_name(state), name);
        }
    }

    fn planned(spec: serde_json::Value) -> TenantPlan {
        let spec: prismicx_operator_api::TenantSpec = serde_json::from_value(spec).unwrap();
        let mut tenant = prismicx_operator_api::Tenant::new("acme", spec);
        tenant.metadata.namespace = Some("default".into());
        super::super::plan::plan(
            &tenant,
            Uuid::from_u128(7),
            &crate::catalog::Catalog::platform(),
            10,
        )
        .unwrap()
    }

    #[test]
    fn the_vector_quota_is_written_beside_the_rate_limit_with_unset_fields_left_out() {
        let versions = BTreeMap::new();
        let with = document(
            &planned(serde_json::json!({
                "rateLimit": {"requestsPerSecond": 5, "burst": 10},
                "limits": {"vectorStore": {"maxCollections": 4, "maxBytes": 1048576}},
            })),
            TenantState::Active,
            &versions,
        );
        assert_eq!(
            with.get_document("vector_quota").unwrap(),
            &doc! { "max_collections": 4_i64, "max_bytes": 1_048_576_i64 }
        );
        assert_eq!(
            with.get_document("rate_limit").unwrap(),
            &doc! { "rps": 5_i64, "burst": 10_i64 }
        );
        let without = document(
            &planned(serde_json::json!({})),
            TenantState::Active,
            &versions,
        );
        // Null, not absent: `$set` clears a quota the spec no longer has.
        assert_eq!(without.get("vector_quota"), Some(&Bson::Null));
    }
}

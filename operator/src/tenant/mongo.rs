//! The tenant in MongoDB.
//!
//! - Every tier: the shared collections of each service database on mongodb-system have their
//!   indexes (each leading with `tenant_id`).
//! - `dedicated`: the tenant's own database per service on mongodb-tenant, with the same
//!   collections and indexes, and a user (`tenant_<slug>` in `admin`) holding `readWrite` on
//!   those databases only — no role at all while the tenant is suspended. Documents the tenant
//!   still has in the shared collections are moved in.
//! - `standard`: documents left in a dedicated database (after a tier change) are moved back
//!   into the same-named shared collections (every collection of that database, not only the
//!   layout's), then that database and the user are dropped.
//!
//! Moves copy first (upsert by `_id`), then delete exactly the copied documents from the
//! source, so a crash in between loses nothing and the next reconcile finishes the move.

use anyhow::{Context as _, Result};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::{Database, IndexModel};
use prismicx_service_common::config::Secret;
use prismicx_service_common::mongo::{tenant_bson, MongoLayout, TENANT_FIELD};

use super::plan::TenantPlan;
use crate::dataplane::DataPlane;

/// Brings MongoDB in line with the plan; returns a summary.
pub async fn apply(dp: &DataPlane, plan: &TenantPlan, password: &Secret<String>) -> Result<String> {
    let tenant = tenant_bson(plan.tenant_id);
    let existing = dp
        .mongo_tenant
        .list_database_names()
        .await
        .context("listing databases on mongodb-tenant")?;
    let mut moved = 0u64;
    for m in &plan.mongo {
        let shared = dp.mongo_system.database(m.layout.database);
        ensure_indexes(&shared, &m.layout).await?;
        let own = dp.mongo_tenant.database(&m.dedicated_database);
        if plan.dedicated() {
            ensure_indexes(&own, &m.layout).await?;
            for c in m.layout.collections {
                moved += move_documents(&shared, &own, c.name, &tenant).await?;
            }
        } else if existing.contains(&m.dedicated_database) {
            // Every collection, not only the layout's: nothing in the database is dropped
            // before it has been moved.
            let names = own
                .list_collection_names()
                .await
                .with_context(|| format!("listing collections of {}", m.dedicated_database))?;
            for name in names.iter().filter(|n| !n.starts_with("system.")) {
                moved += move_documents(&own, &shared, name, &tenant).await?;
            }
            own.drop()
                .await
                .with_context(|| format!("dropping {}", m.dedicated_database))?;
        }
    }
    if plan.dedicated() {
        ensure_user(dp, plan, password).await?;
    } else {
        drop_user(dp, &plan.mongo_user).await?;
    }
    let place = if plan.dedicated() {
        format!("{} own databases on mongodb-tenant", plan.mongo.len())
    } else {
        format!("shared collections in {} databases", plan.mongo.len())
    };
    Ok(if moved > 0 {
        format!("{place}; moved {moved} documents")
    } else {
        place
    })
}

async fn ensure_indexes(db: &Database, layout: &MongoLayout) -> Result<()> {
    layout
        .ensure_indexes(db)
        .await
        .with_context(|| format!("indexes in {}", db.name()))
}

/// Moves the tenant's documents of `collection` from `from` to `to`; returns how many.
async fn move_documents(
    from: &Database,
    to: &Database,
    collection: &str,
    tenant: &Bson,
) -> Result<u64> {
    let source = from.collection::<Document>(collection);
    let target = to.collection::<Document>(collection);
    let docs: Vec<Document> = source
        .find(doc! { TENANT_FIELD: tenant.clone() })
        .await?
        .try_collect()
        .await?;
    if docs.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(docs.len());
    for d in &docs {
        let id = d.get("_id").cloned().unwrap_or(Bson::Null);
        target
            .replace_one(doc! { "_id": id.clone() }, d)
            .upsert(true)
            .await
            .with_context(|| format!("copying into {}.{collection}", to.name()))?;
        ids.push(id);
    }
    source
        .delete_many(doc! { TENANT_FIELD: tenant.clone(), "_id": { "$in": ids } })
        .await
        .with_context(|| format!("removing moved documents from {}.{collection}", from.name()))?;
    Ok(docs.len() as u64)
}

fn user_roles(plan: &TenantPlan) -> Vec<Document> {
    if plan.suspended {
        return Vec::new();
    }
    plan.mongo
        .iter()
        .map(|m| doc! { "role": "readWrite", "db": &m.dedicated_database })
        .collect()
}

async fn ensure_user(dp: &DataPlane, plan: &TenantPlan, password: &Secret<String>) -> Result<()> {
    let admin = dp.mongo_tenant.database("admin");
    let roles = user_roles(plan);
    let exists = user_info(dp, &plan.mongo_user).await?.is_some();
    let cmd = if exists {
        doc! { "updateUser": &plan.mongo_user, "pwd": password.expose(), "roles": roles }
    } else {
        doc! { "createUser": &plan.mongo_user, "pwd": password.expose(), "roles": roles }
    };
    admin.run_command(cmd).await.map_err(|e| {
        anyhow::anyhow!(
            "{} user {}: {}",
            if exists { "updating" } else { "creating" },
            plan.mongo_user,
            redact(&e)
        )
    })?;
    Ok(())
}

/// A driver error's text without the command it carried (which may hold a password).
fn redact(e: &mongodb::error::Error) -> String {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => format!("{} (code {})", c.code_name, c.code),
        _ => "the server refused the command".into(),
    }
}

async fn drop_user(dp: &DataPlane, user: &str) -> Result<()> {
    if user_info(dp, user).await?.is_some() {
        dp.mongo_tenant
            .database("admin")
            .run_command(doc! { "dropUser": user })
            .await
            .with_context(|| format!("dropping user {user}"))?;
    }
    Ok(())
}

/// The user's document from `usersInfo`, if it exists.
async fn user_info(dp: &DataPlane, user: &str) -> Result<Option<Document>> {
    let reply = dp
        .mongo_tenant
        .database("admin")
        .run_command(doc! { "usersInfo": { "user": user, "db": "admin" } })
        .await
        .context("usersInfo")?;
    Ok(reply
        .get_array("users")
        .ok()
        .and_then(|a| a.first())
        .and_then(|u| u.as_document())
        .cloned())
}

/// The `(db, role)` pairs of a user document.
fn roles_of(user: &Document) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = user
        .get_array("roles")
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_document())
                .map(|r| {
                    (
                        r.get_str("db").unwrap_or_default().to_string(),
                        r.get_str("role").unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Compares MongoDB with the plan.
pub async fn observe(dp: &DataPlane, plan: &TenantPlan) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for m in &plan.mongo {
        let mut dbs = vec![dp.mongo_system.database(m.layout.database)];
        if plan.dedicated() {
            dbs.push(dp.mongo_tenant.database(&m.dedicated_database));
        }
        for db in dbs {
            for c in m.layout.collections {
                let names: Vec<String> = db
                    .collection::<Document>(c.name)
                    .list_index_names()
                    .await
                    .unwrap_or_default();
                for i in c.indexes {
                    if !names.iter().any(|n| n == i.name) {
                        out.push(format!(
                            "index {}.{}.{} is missing",
                            db.name(),
                            c.name,
                            i.name
                        ));
                    }
                }
            }
        }
    }
    let user = user_info(dp, &plan.mongo_user).await?;
    match (plan.dedicated(), user) {
        (true, None) => out.push(format!("mongodb user {} is missing", plan.mongo_user)),
        (true, Some(u)) => {
            let mut want: Vec<(String, String)> = user_roles(plan)
                .iter()
                .map(|r| {
                    (
                        r.get_str("db").unwrap_or_default().to_string(),
                        r.get_str("role").unwrap_or_default().to_string(),
                    )
                })
                .collect();
            want.sort();
            if roles_of(&u) != want {
                out.push(format!(
                    "mongodb user {} has other roles than planned",
                    plan.mongo_user
                ));
            }
        }
        (false, Some(_)) => out.push(format!(
            "mongodb user {} exists for a standard tenant",
            plan.mongo_user
        )),
        (false, None) => {}
    }
    Ok(out)
}

/// Confirms the tenant's MongoDB access reaches only its own data: a dedicated tenant's user
/// holds roles on its own databases only; every index of the shared collections leads with
/// `tenant_id`. Returns what was checked.
pub async fn probe(dp: &DataPlane, plan: &TenantPlan) -> Result<Vec<String>> {
    let mut checked = Vec::new();
    if plan.dedicated() {
        let own: Vec<&str> = plan
            .mongo
            .iter()
            .map(|m| m.dedicated_database.as_str())
            .collect();
        if let Some(u) = user_info(dp, &plan.mongo_user).await? {
            for (db, role) in roles_of(&u) {
                anyhow::ensure!(
                    own.contains(&db.as_str()),
                    "mongodb user {} holds {role} on {db}, outside its own databases",
                    plan.mongo_user
                );
            }
        }
        checked.push(format!(
            "mongodb user {} reaches only its {} databases",
            plan.mongo_user,
            own.len()
        ));
    }
    for m in &plan.mongo {
        let db = dp.mongo_system.database(m.layout.database);
        for c in m.layout.collections {
            let indexes: Vec<IndexModel> = db
                .collection::<Document>(c.name)
                .list_indexes()
                .await?
                .try_collect()
                .await?;
            for i in indexes {
                let first = i.keys.keys().next().map(String::as_str);
                anyhow::ensure!(
                    first == Some(TENANT_FIELD) || first == Some("_id"),
                    "index {:?} of {}.{} does not lead with tenant_id",
                    i.options.and_then(|o| o.name),
                    m.layout.database,
                    c.name
                );
            }
        }
    }
    checked.push(format!(
        "{} shared databases index by tenant_id first",
        plan.mongo.len()
    ));
    Ok(checked)
}

/// Revokes the tenant's MongoDB access and, with `drop`, removes its documents from the shared
/// collections, its own databases and its user.
pub async fn cleanup(dp: &DataPlane, plan: &TenantPlan, drop: bool) -> Result<()> {
    let tenant = tenant_bson(plan.tenant_id);
    if let Some(_u) = user_info(dp, &plan.mongo_user).await? {
        if drop {
            drop_user(dp, &plan.mongo_user).await?;
        } else {
            dp.mongo_tenant
                .database("admin")
                .run_command(
                    doc! { "updateUser": &plan.mongo_user, "roles": Vec::<Document>::new() },
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!("revoking the roles of {}: {}", plan.mongo_user, redact(&e))
                })?;
        }
    }
    if !drop {
        return Ok(());
    }
    for m in &plan.mongo {
        let shared = dp.mongo_system.database(m.layout.database);
        for c in m.layout.collections {
            shared
                .collection::<Document>(c.name)
                .delete_many(doc! { TENANT_FIELD: tenant.clone() })
                .await
                .with_context(|| {
                    format!(
                        "deleting the tenant's documents from {}.{}",
                        m.layout.database, c.name
                    )
                })?;
        }
        dp.mongo_tenant
            .database(&m.dedicated_database)
            .drop()
            .await
            .with_context(|| format!("dropping {}", m.dedicated_database))?;
    }
    Ok(())
}

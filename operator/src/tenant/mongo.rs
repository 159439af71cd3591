//! The tenant in MongoDB.
//!
//! - Every tier: the shared collections of each service database on mongodb-system have their
//!   indexes (each leading with `tenant_id`).
//! - `dedicated`: the tenant's own database per service on mongodb-tenant, with the same
//!   collections and indexes, and a user (`tenant_<slug>_login` in `admin`) holding `readWrite` on
//!   those databases only — no role at all while the tenant is suspended. Documents the tenant
//!   still has in the shared collections are moved in.
//! - `standard`: documents left in a dedicated database (after a tier change) are moved back
//!   into the shared collections, then that database and the user are dropped.
//!
//! - The service's user on mongodb-tenant (`<db>_svc`, made by the DatabaseService reconciler)
//!   holds `readWrite` on each dedicated tenant database of its service and nothing else: a
//!   dedicated tenant's database is granted to it here, and revoked when the tenant moves back to
//!   `standard` or is deleted (whatever the deletion policy).
//!
//! Moves copy first, then delete exactly the copied documents from the source, so a crash in
//! between loses nothing and the next reconcile finishes the move. They stream (a cursor, never
//! the whole collection in memory).
//!
//! A dedicated tenant holds `readWrite` on its own databases, so everything in them is input
//! from the tenant. The move back to the shared collections therefore trusts nothing in them:
//! - only the collections the service's layout declares are moved (the platform's own
//!   collections, such as the tenant registry and the API keys, are never in a layout, and
//!   [`crate::catalog`] checks that), whatever else the tenant created there is dropped with the
//!   database;
//! - only documents whose `tenant_id` is the tenant's own are read;
//! - a document is written only where no document of another tenant has its `_id`: the copy is
//!   a replace filtered by `_id` *and* the tenant's id, upserting, so a planted `_id` of another
//!   tenant's document fails on the unique `_id` instead of replacing it. Such a conflict stops
//!   the move ([`MoveConflict`]): nothing is overwritten, the dedicated database is kept, and the
//!   Tenant shows `MongoReady=False` with reason `MoveConflict` and a Warning Event.

use anyhow::{Context as _, Result};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::{Database, IndexModel};
use prismicx_store::mongo::{tenant_bson, LayoutIndexes, MongoLayout, TENANT_FIELD};
use prismicx_store::Secret;

use super::plan::{MongoPlan, TenantPlan};
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
            set_service_access(dp, m, true).await?;
        } else if existing.contains(&m.dedicated_database) {
            // The layout's collections only: the rest of the database is the tenant's own
            // input and never reaches a shared collection (see the module docs).
            for c in m.layout.collections {
                moved += move_documents(&own, &shared, c.name, &tenant).await?;
            }
            set_service_access(dp, m, false).await?;
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
    drop_legacy_user(dp, plan).await?;
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

/// A tier move that would have replaced a document of another tenant (see the module docs).
#[derive(Debug, thiserror::Error)]
#[error(
    "moving {collection} into {database}: the document with _id {id} conflicts with one \
     already there (another tenant's document with that _id, or a unique key); nothing was \
     overwritten and the move is stopped"
)]
pub struct MoveConflict {
    pub database: String,
    pub collection: String,
    /// The `_id` as JSON text (never a document's content).
    pub id: String,
}

/// Moves the tenant's documents of `collection` from `from` to `to`; returns how many.
async fn move_documents(
    from: &Database,
    to: &Database,
    collection: &str,
    tenant: &Bson,
) -> Result<u64> {
    /// Source documents deleted per round trip once copied.
    const BATCH: usize = 500;
    let source = from.collection::<Document>(collection);
    let target = to.collection::<Document>(collection);
    let mut cursor = source.find(doc! { TENANT_FIELD: tenant.clone() }).await?;
    let mut copied: Vec<Bson> = Vec::with_capacity(BATCH);
    let mut moved = 0u64;
    while let Some(d) = cursor.try_next().await? {
        let Some(id) = d.get("_id").cloned() else {
            continue;
        };
        // The filter names the tenant too: when another tenant's document holds this `_id`,
        // the filter matches nothing and the upsert's insert fails on the unique `_id`.
        match target
            .replace_one(doc! { "_id": id.clone(), TENANT_FIELD: tenant.clone() }, &d)
            .upsert(true)
            .await
        {
            Ok(_) => {}
            Err(e) if prismicx_store::mongo::is_duplicate_key(&e) => {
                delete_copied(&source, tenant, &mut copied).await?;
                return Err(MoveConflict {
                    database: to.name().to_string(),
                    collection: collection.to_string(),
                    id: id.into_relaxed_extjson().to_string(),
                }
                .into());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("copying into {}.{collection}", to.name()))
            }
        }
        copied.push(id);
        moved += 1;
        if copied.len() >= BATCH {
            delete_copied(&source, tenant, &mut copied).await?;
        }
    }
    delete_copied(&source, tenant, &mut copied).await?;
    Ok(moved)
}

/// Deletes from `source` the tenant's documents whose `_id`s were copied (and empties `ids`).
async fn delete_copied(
    source: &mongodb::Collection<Document>,
    tenant: &Bson,
    ids: &mut Vec<Bson>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(ids);
    source
        .delete_many(doc! { TENANT_FIELD: tenant.clone(), "_id": { "$in": batch } })
        .await
        .with_context(|| {
            format!(
                "removing moved documents from {}.{}",
                source.namespace().db,
                source.name()
            )
        })?;
    Ok(())
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

/// Earlier releases named a dedicated tenant's user `tenant_<slug>`, a name a slug could share
/// with a platform user (`registry-svc` → tenant-mgmt's `tenant_registry_svc`). Such a user is
/// dropped only when every role it holds is on this tenant's own databases, so a platform user
/// of that name is never touched.
async fn drop_legacy_user(dp: &DataPlane, plan: &TenantPlan) -> Result<()> {
    let legacy = format!("tenant_{}", plan.slug.ident());
    let Some(u) = user_info(dp, &legacy).await? else {
        return Ok(());
    };
    let own = |db: &str| plan.mongo.iter().any(|m| m.dedicated_database == db);
    if roles_of(&u).iter().all(|(db, _)| own(db)) {
        drop_user(dp, &legacy).await?;
    }
    Ok(())
}

/// The service's user on mongodb-tenant (`<db>_svc`), if the DatabaseService made it.
fn service_user(m: &MongoPlan) -> String {
    crate::database_service::build::service_user(m.layout.database)
}

/// Whether the service's user holds `readWrite` on the tenant's database; `None` when the
/// service has no user on mongodb-tenant (yet).
async fn service_access(dp: &DataPlane, m: &MongoPlan) -> Result<Option<bool>> {
    Ok(user_info(dp, &service_user(m)).await?.map(|u| {
        roles_of(&u)
            .iter()
            .any(|(db, role)| *db == m.dedicated_database && role == "readWrite")
    }))
}

/// Grants (or revokes) the tenant's database to the service's user; nothing when that user does
/// not exist (the DatabaseService grants every existing tenant database when it makes it).
async fn set_service_access(dp: &DataPlane, m: &MongoPlan, granted: bool) -> Result<()> {
    let Some(has) = service_access(dp, m).await? else {
        return Ok(());
    };
    if has == granted {
        return Ok(());
    }
    let user = service_user(m);
    let roles = vec![doc! { "role": "readWrite", "db": &m.dedicated_database }];
    let cmd = if granted {
        doc! { "grantRolesToUser": &user, "roles": roles }
    } else {
        doc! { "revokeRolesFromUser": &user, "roles": roles }
    };
    dp.mongo_tenant
        .database("admin")
        .run_command(cmd)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{} {} for {user}: {}",
                if granted { "granting" } else { "revoking" },
                m.dedicated_database,
                redact(&e)
            )
        })?;
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
    for m in &plan.mongo {
        match (plan.dedicated(), service_access(dp, m).await?) {
            (true, Some(false)) => out.push(format!(
                "service user {} cannot reach {}",
                service_user(m),
                m.dedicated_database
            )),
            (false, Some(true)) => out.push(format!(
                "service user {} still reaches {}",
                service_user(m),
                m.dedicated_database
            )),
            _ => {}
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
    drop_legacy_user(dp, plan).await?;
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
    for m in &plan.mongo {
        set_service_access(dp, m, false).await?;
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

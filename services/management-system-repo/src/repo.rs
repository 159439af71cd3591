//! SQL of the service. Every function takes a [`TenantTx`]: the tenant's transaction with
//! `app.tenant_id` and `search_path` already set, so tenant tables are unqualified and row-level
//! security scopes every statement. Errors stay `sqlx::Error` (wrapped in [`Fail`]) so the
//! caller's retry can tell transient failures from permanent ones.

use prismicx_service_common::pg::rows::{self, After};
use prismicx_service_common::pg::{query, query_as, TenantTx};
use prismicx_service_common::ApiError;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::{NewRelation, NewSystem, NewVersion, Relation, System, SystemVersion};
use prismicx_service_common::pg::retry::Fail;

const SYSTEM_COLUMNS: &str = "id, tenant_id, name, kind, display_name, description, attributes, \
                              config_schema, revision, created_at, updated_at";
const VERSION_COLUMNS: &str =
    "id, tenant_id, system_id, version, notes, status, released_at, created_at, updated_at";
const RELATION_COLUMNS: &str =
    "id, tenant_id, source_id, target_id, kind, description, created_at, updated_at";

/// The order of every list: oldest first.
const CREATED: (&str, &str) = ("created_at", "id");

/// Maps unique violations on known constraints to a 409 naming the field.
fn conflict_on_unique(e: sqlx::Error) -> Fail {
    if let sqlx::Error::Database(db) = &e {
        let field = match db.constraint() {
            Some("systems_tenant_name_key") => {
                Some(("name", "a system with this name already exists"))
            }
            Some("system_versions_tenant_system_version_key") => {
                Some(("version", "this system already has this version"))
            }
            Some("system_relations_tenant_edge_key") => Some((
                "targetId",
                "this relation (same target and kind) already exists",
            )),
            _ => None,
        };
        if let Some((f, m)) = field {
            return Fail::Api(ApiError::conflict(f, m));
        }
    }
    Fail::Db(e)
}

/// `q` with the system's writable fields bound next, in the order the insert and the update
/// both list them: name, kind, display name, description, attributes, config schema.
fn with_system_fields<'q>(q: SystemQuery<'q>, s: &'q NewSystem) -> SystemQuery<'q> {
    q.bind(&s.name)
        .bind(&s.kind)
        .bind(&s.display_name)
        .bind(&s.description)
        .bind(&s.attributes)
        .bind(&s.config_schema)
}

type SystemQuery<'q> = QueryAs<'q, Postgres, System, PgArguments>;

pub async fn insert_system(tx: &mut TenantTx, s: &NewSystem) -> Result<System, Fail> {
    let sql = format!(
        "INSERT INTO systems (name, kind, display_name, description, attributes, config_schema) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SYSTEM_COLUMNS}"
    );
    with_system_fields(query_as::<System>(&sql), s)
        .fetch_one(tx.conn())
        .await
        .map_err(conflict_on_unique)
}

/// The system, optionally locked: `FOR UPDATE` (it will change or go) or `FOR SHARE` (it must
/// stay while its configurations are written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    Share,
    Update,
}

pub async fn get_system(tx: &mut TenantTx, id: Uuid, lock: Lock) -> Result<Option<System>, Fail> {
    let sql = format!(
        "SELECT {SYSTEM_COLUMNS} FROM systems WHERE id = $1{}",
        match lock {
            Lock::None => "",
            Lock::Share => " FOR SHARE",
            Lock::Update => " FOR UPDATE",
        }
    );
    Ok(query_as::<System>(&sql)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

pub async fn system_exists(tx: &mut TenantTx, id: Uuid) -> Result<bool, Fail> {
    Ok(prismicx_service_common::pg::query_scalar::<bool>(
        "SELECT EXISTS (SELECT 1 FROM systems WHERE id = $1)",
    )
    .bind(id)
    .fetch_one(tx.conn())
    .await?)
}

pub async fn update_system(tx: &mut TenantTx, id: Uuid, s: &NewSystem) -> Result<System, Fail> {
    let sql = format!(
        "UPDATE systems SET name = $2, kind = $3, display_name = $4, description = $5, \
         attributes = $6, config_schema = $7, revision = revision + 1, \
         updated_at = clock_timestamp() WHERE id = $1 RETURNING {SYSTEM_COLUMNS}"
    );
    with_system_fields(query_as::<System>(&sql).bind(id), s)
        .fetch_one(tx.conn())
        .await
        .map_err(conflict_on_unique)
}

pub async fn delete_system(tx: &mut TenantTx, id: Uuid) -> Result<bool, Fail> {
    Ok(rows::delete_by_id(tx, "systems", id).await?)
}

pub async fn list_systems(
    tx: &mut TenantTx,
    kind: Option<&str>,
    after: After,
    limit: u32,
) -> Result<Vec<System>, Fail> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {SYSTEM_COLUMNS} FROM systems WHERE TRUE"));
    if let Some(k) = kind {
        qb.push(" AND kind = ").push_bind(k.to_string());
    }
    Ok(rows::keyset_page(tx, qb, CREATED, after, limit).await?)
}

pub async fn insert_version(
    tx: &mut TenantTx,
    system_id: Uuid,
    v: &NewVersion,
) -> Result<SystemVersion, Fail> {
    let sql = format!(
        "INSERT INTO system_versions (system_id, version, notes, status, released_at) \
         VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'draft' THEN NULL ELSE clock_timestamp() END) \
         RETURNING {VERSION_COLUMNS}"
    );
    query_as::<SystemVersion>(&sql)
        .bind(system_id)
        .bind(&v.version)
        .bind(&v.notes)
        .bind(&v.status)
        .fetch_one(tx.conn())
        .await
        .map_err(conflict_on_unique)
}

pub async fn get_version(
    tx: &mut TenantTx,
    system_id: Uuid,
    id: Uuid,
    for_update: bool,
) -> Result<Option<SystemVersion>, Fail> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM system_versions WHERE system_id = $1 AND id = $2{}",
        if for_update { " FOR UPDATE" } else { "" }
    );
    Ok(query_as::<SystemVersion>(&sql)
        .bind(system_id)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

pub async fn update_version(
    tx: &mut TenantTx,
    id: Uuid,
    notes: &str,
    status: &str,
) -> Result<SystemVersion, Fail> {
    let sql = format!(
        "UPDATE system_versions SET notes = $2, status = $3, \
         released_at = CASE WHEN $3 <> 'draft' THEN coalesce(released_at, clock_timestamp()) END, \
         updated_at = clock_timestamp() WHERE id = $1 RETURNING {VERSION_COLUMNS}"
    );
    Ok(query_as::<SystemVersion>(&sql)
        .bind(id)
        .bind(notes)
        .bind(status)
        .fetch_one(tx.conn())
        .await?)
}

pub async fn delete_version(tx: &mut TenantTx, system_id: Uuid, id: Uuid) -> Result<bool, Fail> {
    let r = query("DELETE FROM system_versions WHERE system_id = $1 AND id = $2")
        .bind(system_id)
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn list_versions(
    tx: &mut TenantTx,
    system_id: Uuid,
    status: Option<&str>,
    after: After,
    limit: u32,
) -> Result<Vec<SystemVersion>, Fail> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {VERSION_COLUMNS} FROM system_versions WHERE system_id = "
    ));
    qb.push_bind(system_id);
    if let Some(s) = status {
        qb.push(" AND status = ").push_bind(s.to_string());
    }
    Ok(rows::keyset_page(tx, qb, CREATED, after, limit).await?)
}

pub async fn insert_relation(
    tx: &mut TenantTx,
    source_id: Uuid,
    r: &NewRelation,
) -> Result<Relation, Fail> {
    let sql = format!(
        "INSERT INTO system_relations (source_id, target_id, kind, description) \
         VALUES ($1, $2, $3, $4) RETURNING {RELATION_COLUMNS}"
    );
    query_as::<Relation>(&sql)
        .bind(source_id)
        .bind(r.target_id)
        .bind(&r.kind)
        .bind(&r.description)
        .fetch_one(tx.conn())
        .await
        .map_err(conflict_on_unique)
}

/// A relation with `system_id` at either end.
pub async fn get_relation(
    tx: &mut TenantTx,
    system_id: Uuid,
    id: Uuid,
) -> Result<Option<Relation>, Fail> {
    let sql = format!(
        "SELECT {RELATION_COLUMNS} FROM system_relations \
         WHERE id = $2 AND (source_id = $1 OR target_id = $1)"
    );
    Ok(query_as::<Relation>(&sql)
        .bind(system_id)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

pub async fn delete_relation(tx: &mut TenantTx, system_id: Uuid, id: Uuid) -> Result<bool, Fail> {
    let r =
        query("DELETE FROM system_relations WHERE id = $2 AND (source_id = $1 OR target_id = $1)")
            .bind(system_id)
            .bind(id)
            .execute(tx.conn())
            .await?;
    Ok(r.rows_affected() == 1)
}

/// Which of a system's relations to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outgoing,
    Incoming,
    Both,
}

pub async fn list_relations(
    tx: &mut TenantTx,
    system_id: Uuid,
    direction: Direction,
    kind: Option<&str>,
    after: After,
    limit: u32,
) -> Result<Vec<Relation>, Fail> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {RELATION_COLUMNS} FROM system_relations WHERE "
    ));
    match direction {
        Direction::Outgoing => {
            qb.push("source_id = ").push_bind(system_id);
        }
        Direction::Incoming => {
            qb.push("target_id = ").push_bind(system_id);
        }
        Direction::Both => {
            qb.push("(source_id = ")
                .push_bind(system_id)
                .push(" OR target_id = ")
                .push_bind(system_id)
                .push(")");
        }
    }
    if let Some(k) = kind {
        qb.push(" AND kind = ").push_bind(k.to_string());
    }
    Ok(rows::keyset_page(tx, qb, CREATED, after, limit).await?)
}

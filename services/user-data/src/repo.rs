//! SQL of the service. Every function takes a [`TenantTx`]: the tenant's transaction with
//! `app.tenant_id` and `search_path` already set, so tenant tables are unqualified and row-level
//! security scopes every statement. Shared tables are qualified with the system schema. Errors
//! are [`Fail`]: a database error kept as it is, so the handlers' retry can tell a transient one,
//! or the API error a constraint means (409).

use prismicx_service_common::pg::retry::Fail;
use prismicx_service_common::pg::rows::{self, After};
use prismicx_service_common::pg::{query, query_as, TenantTx};
use prismicx_service_common::ApiError;
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::{AuditEvent, NewRole, NewUser, Role, User};

const USER_COLUMNS: &str =
    "id, tenant_id, email, display_name, status, attributes, created_at, updated_at";
const ROLE_COLUMNS: &str = "id, tenant_id, name, description, permissions, created_at, updated_at";

/// Maps a unique violation on a known constraint to a 409 naming the field.
fn unique_to_conflict(e: sqlx::Error) -> Fail {
    if let sqlx::Error::Database(db) = &e {
        match db.constraint() {
            Some("users_tenant_email_key") => {
                return ApiError::conflict("email", "a user with this email already exists").into()
            }
            Some("roles_tenant_name_key") => {
                return ApiError::conflict("name", "a role with this name already exists").into()
            }
            _ => {}
        }
    }
    e.into()
}

pub async fn audit(
    tx: &mut TenantTx,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: Uuid,
    details: Value,
) -> Result<(), Fail> {
    query(
        "INSERT INTO prismicx.audit_events (actor, action, entity, entity_id, details) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor)
    .bind(action)
    .bind(entity)
    .bind(entity_id)
    .bind(details)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// `q` with the user's writable fields bound next, in the order the insert and the update both
/// list them: email, display name, status, attributes.
fn with_user_fields<'q>(q: UserQuery<'q>, u: &'q NewUser) -> UserQuery<'q> {
    q.bind(&u.email)
        .bind(&u.display_name)
        .bind(&u.status)
        .bind(&u.attributes)
}

type UserQuery<'q> = QueryAs<'q, Postgres, User, PgArguments>;

pub async fn insert_user(tx: &mut TenantTx, u: &NewUser) -> Result<User, Fail> {
    let sql = format!(
        "INSERT INTO users (email, display_name, status, attributes) VALUES ($1, $2, $3, $4) \
         RETURNING {USER_COLUMNS}"
    );
    with_user_fields(query_as::<User>(&sql), u)
        .fetch_one(tx.conn())
        .await
        .map_err(unique_to_conflict)
}

pub async fn get_user(tx: &mut TenantTx, id: Uuid, for_update: bool) -> Result<Option<User>, Fail> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1{}",
        if for_update { " FOR UPDATE" } else { "" }
    );
    Ok(query_as::<User>(&sql)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

pub async fn update_user(tx: &mut TenantTx, id: Uuid, u: &NewUser) -> Result<User, Fail> {
    let sql = format!(
        "UPDATE users SET email = $2, display_name = $3, status = $4, attributes = $5, \
         updated_at = clock_timestamp() WHERE id = $1 RETURNING {USER_COLUMNS}"
    );
    with_user_fields(query_as::<User>(&sql).bind(id), u)
        .fetch_one(tx.conn())
        .await
        .map_err(unique_to_conflict)
}

pub async fn delete_user(tx: &mut TenantTx, id: Uuid) -> Result<bool, Fail> {
    Ok(rows::delete_by_id(tx, "users", id).await?)
}

/// Filters of `GET /v1/users`.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub status: Option<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    /// Case-insensitive substring of email or display name.
    pub text: Option<String>,
    /// `attributes ->> key = value` for each pair.
    pub attributes: Vec<(String, String)>,
    /// Keyset position: items strictly after (created_at, id).
    pub after: After,
    pub limit: u32,
}

/// Escapes LIKE wildcards so user text matches literally.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Up to `limit + 1` users in (created_at, id) order, so the caller knows whether more remain.
pub async fn list_users(tx: &mut TenantTx, f: &UserFilter) -> Result<Vec<User>, Fail> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users u WHERE TRUE"));
    if let Some(s) = &f.status {
        qb.push(" AND u.status = ").push_bind(s.clone());
    }
    if let Some(e) = &f.email {
        qb.push(" AND u.email = ").push_bind(e.clone());
    }
    if let Some(t) = &f.text {
        let p = like_pattern(t);
        qb.push(" AND (u.email ILIKE ")
            .push_bind(p.clone())
            .push(" ESCAPE '\\' OR u.display_name ILIKE ")
            .push_bind(p)
            .push(" ESCAPE '\\')");
    }
    if let Some(r) = &f.role {
        qb.push(
            " AND EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
             WHERE ur.user_id = u.id AND r.name = ",
        )
        .push_bind(r.clone())
        .push(")");
    }
    for (k, v) in &f.attributes {
        qb.push(" AND u.attributes ->> ")
            .push_bind(k.clone())
            .push(" = ")
            .push_bind(v.clone());
    }
    let order = ("u.created_at", "u.id");
    Ok(rows::keyset_page(tx, qb, order, f.after, f.limit).await?)
}

pub async fn insert_role(tx: &mut TenantTx, r: &NewRole) -> Result<Role, Fail> {
    let sql = format!(
        "INSERT INTO roles (name, description, permissions) VALUES ($1, $2, $3) RETURNING {ROLE_COLUMNS}"
    );
    query_as::<Role>(&sql)
        .bind(&r.name)
        .bind(&r.description)
        .bind(&r.permissions)
        .fetch_one(tx.conn())
        .await
        .map_err(unique_to_conflict)
}

pub async fn get_role(tx: &mut TenantTx, id: Uuid) -> Result<Option<Role>, Fail> {
    let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE id = $1");
    Ok(query_as::<Role>(&sql)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

pub async fn delete_role(tx: &mut TenantTx, id: Uuid) -> Result<bool, Fail> {
    Ok(rows::delete_by_id(tx, "roles", id).await?)
}

pub async fn list_roles(tx: &mut TenantTx, after: After, limit: u32) -> Result<Vec<Role>, Fail> {
    let qb = QueryBuilder::new(format!("SELECT {ROLE_COLUMNS} FROM roles WHERE TRUE"));
    Ok(rows::keyset_page(tx, qb, ("created_at", "id"), after, limit).await?)
}

/// Grants `role_id` to `user_id`; `false` when the user already had it.
pub async fn grant_role(tx: &mut TenantTx, user_id: Uuid, role_id: Uuid) -> Result<bool, Fail> {
    let r = query(
        "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) \
         ON CONFLICT (tenant_id, user_id, role_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(role_id)
    .execute(tx.conn())
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn revoke_role(tx: &mut TenantTx, user_id: Uuid, role_id: Uuid) -> Result<bool, Fail> {
    let r = query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
        .bind(user_id)
        .bind(role_id)
        .execute(tx.conn())
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn roles_of_user(tx: &mut TenantTx, user_id: Uuid) -> Result<Vec<Role>, Fail> {
    let sql = "SELECT r.id, r.tenant_id, r.name, r.description, r.permissions, r.created_at, r.updated_at \
               FROM roles r JOIN user_roles ur ON ur.role_id = r.id \
               WHERE ur.user_id = $1 ORDER BY r.name";
    Ok(query_as::<Role>(sql)
        .bind(user_id)
        .fetch_all(tx.conn())
        .await?)
}

pub async fn list_audit(
    tx: &mut TenantTx,
    entity_id: Option<Uuid>,
    after: After,
    limit: u32,
) -> Result<Vec<AuditEvent>, Fail> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT id, tenant_id, occurred_at, actor, action, entity, entity_id, details \
         FROM prismicx.audit_events WHERE TRUE",
    );
    if let Some(e) = entity_id {
        qb.push(" AND entity_id = ").push_bind(e);
    }
    Ok(rows::keyset_page(tx, qb, ("occurred_at", "id"), after, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}

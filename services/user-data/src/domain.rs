//! The service's domain types, parsed and validated at the edge: a request body becomes a
//! validated value or a 422 listing every bad field, before any database work.

use chrono::{DateTime, Utc};
use prismicx_service_common::error::Problems;
use prismicx_service_common::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Limits on `attributes`.
use prismicx_service_common::attributes::apply_patch;
pub use prismicx_service_common::attributes::{
    merge_patch, validate_attributes, MAX_ATTRIBUTES_BYTES, MAX_ATTRIBUTE_DEPTH, MAX_ATTRIBUTE_KEYS,
};

/// A user of a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Lowercased; unique within the tenant.
    pub email: String,
    pub display_name: String,
    /// `active`, `disabled` or `invited`.
    pub status: String,
    /// Extensible attributes (a JSON object).
    #[schema(value_type = Object)]
    pub attributes: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A role users can be members of.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of the tenant's audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// `platform` or `tenant-key`.
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Uuid,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Body of `POST /v1/users`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub display_name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
}

/// Body of `PATCH /v1/users/{id}`: every field optional; `attributes` is a JSON merge patch
/// (RFC 7396: a `null` value removes the key).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUser {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub status: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
}

/// Body of `POST /v1/roles`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRole {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

/// A validated new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub status: String,
    pub attributes: Value,
}

/// A validated new role.
#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

/// The validated user, or every field error collected in `p`.
fn new_user(
    p: Problems,
    email: Option<String>,
    display_name: Option<String>,
    status: Option<String>,
    attributes: Value,
) -> Result<NewUser, ApiError> {
    p.finish()?;
    match (email, display_name, status) {
        (Some(email), Some(display_name), Some(status)) => Ok(NewUser {
            email,
            display_name,
            status,
            attributes,
        }),
        _ => Err(Problems::lost()),
    }
}

/// A syntactically valid email address, lowercased.
pub fn parse_email(s: &str) -> Result<String, String> {
    let e = s.trim().to_lowercase();
    if e.len() < 3 || e.len() > 254 {
        return Err("must be 3 to 254 characters".into());
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let Some((local, domain)) = e.split_once('@') else {
        return Err("must contain @".into());
    };
    if local.is_empty() || local.len() > 64 {
        return Err("the part before @ must be 1 to 64 characters".into());
    }
    if domain.contains('@') {
        return Err("must contain exactly one @".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
    {
        return Err("must have a domain such as example.com".into());
    }
    Ok(e)
}

pub fn parse_display_name(s: &str) -> Result<String, String> {
    let n = s.trim();
    if n.is_empty() {
        return Err("must not be empty".into());
    }
    if n.chars().count() > 200 {
        return Err("must be at most 200 characters".into());
    }
    if n.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(n.to_string())
}

pub const STATUSES: &[&str] = &["active", "disabled", "invited"];

pub fn parse_status(s: &str) -> Result<String, String> {
    if STATUSES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("must be one of {}", STATUSES.join(", ")))
    }
}

impl CreateUser {
    pub fn validate(self) -> Result<NewUser, ApiError> {
        let mut p = Problems::default();
        let email = p.check("email", parse_email(&self.email));
        let display_name = p.check("displayName", parse_display_name(&self.display_name));
        let status = p.check(
            "status",
            parse_status(self.status.as_deref().unwrap_or("active")),
        );
        let attributes = self.attributes.unwrap_or_else(|| Value::Object(Map::new()));
        validate_attributes(&attributes, &mut p.0);
        new_user(p, email, display_name, status, attributes)
    }
}

impl UpdateUser {
    /// Applies the patch to `current`, validating every changed field.
    pub fn apply(&self, current: &User) -> Result<NewUser, ApiError> {
        let mut p = Problems::default();
        if self.email.is_none()
            && self.display_name.is_none()
            && self.status.is_none()
            && self.attributes.is_none()
        {
            return Err(ApiError::invalid("body", "names no field to change"));
        }
        let email = p.check_change("email", self.email.as_deref(), parse_email, &current.email);
        let display_name = p.check_change(
            "displayName",
            self.display_name.as_deref(),
            parse_display_name,
            &current.display_name,
        );
        let status = p.check_change(
            "status",
            self.status.as_deref(),
            parse_status,
            &current.status,
        );
        let attributes = apply_patch(&current.attributes, self.attributes.as_ref(), &mut p.0);
        new_user(p, email, display_name, status, attributes)
    }
}

pub fn parse_role_name(s: &str) -> Result<String, String> {
    let ok = s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(
            "must start with a lowercase letter and contain only a-z, 0-9, _ . : - (at most 63)"
                .into(),
        )
    }
}

impl CreateRole {
    pub fn validate(self) -> Result<NewRole, ApiError> {
        let mut p = Problems::default();
        let name = p.check("name", parse_role_name(&self.name));
        let description = self.description.unwrap_or_default();
        if description.chars().count() > 1000 {
            p.0.push(FieldError::new(
                "description",
                "must be at most 1000 characters",
            ));
        }
        let permissions = self.permissions.unwrap_or_default();
        if permissions.len() > 100 {
            p.0.push(FieldError::new(
                "permissions",
                "must have at most 100 entries",
            ));
        }
        for (i, perm) in permissions.iter().enumerate() {
            if perm.is_empty()
                || perm.len() > 128
                || perm.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                p.0.push(FieldError::new(
                    format!("permissions[{i}]"),
                    "must be 1 to 128 characters without spaces",
                ));
            }
        }
        p.finish()?;
        Ok(NewRole {
            name: name.unwrap_or_default(),
            description,
            permissions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails() {
        assert_eq!(parse_email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "", "a", "ada", "ada@", "@x.io", "a@b", "a b@x.io", "a@@x.io", "a@x..io", "a@-x.io",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_user_reports_every_bad_field() {
        let e = CreateUser {
            email: "nope".into(),
            display_name: " ".into(),
            status: Some("zombie".into()),
            attributes: Some(json!({"1bad": 1})),
        }
        .validate()
        .unwrap_err();
        let fields: Vec<String> = e.problem().errors.into_iter().map(|f| f.field).collect();
        assert_eq!(
            fields,
            ["email", "displayName", "status", "attributes.1bad"]
        );
    }

    #[test]
    fn role_names() {
        assert!(parse_role_name("admin").is_ok());
        assert!(parse_role_name("billing.read:all").is_ok());
        assert!(parse_role_name("Admin").is_err());
        assert!(parse_role_name("").is_err());
    }
}

//! The API's types and their validation.

use chrono::{DateTime, Utc};
use prismicx_service_common::tenancy::{TenantSlug, TenantState, Tier};
use prismicx_service_common::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A tenant as the registry records it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// The UUID the operator assigned.
    pub id: Uuid,
    pub slug: TenantSlug,
    pub tier: Tier,
    pub state: TenantState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The Kubernetes namespace of the Tenant resource that owns the slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The services the tenant uses.
    pub services: Vec<String>,
    /// Where the tenant's data lives: PostgreSQL databases, schemas and pools; MongoDB servers
    /// and databases.
    #[schema(value_type = Object)]
    pub placement: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Whether a key still authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyStatus {
    Active,
    Expired,
    Revoked,
}

/// An API key as listed: never the key itself, only its first characters.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's first 12 characters, to tell keys apart.
    pub prefix: String,
    pub status: ApiKeyStatus,
    pub created_at: DateTime<Utc>,
    /// `platform` (the platform key) or `tenant-key` (one of the tenant's keys).
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just issued: the only answer that ever contains the key in clear.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKeyView,
    /// The key. Store it now: it cannot be shown again.
    pub key: String,
}

/// Issue a key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for (1 to 100 characters).
    pub name: String,
    /// When the key stops working (in the future); never when absent.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl CreateApiKey {
    /// The trimmed name, or the fields that are wrong.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<String, ApiError> {
        let mut errors = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            errors.push(FieldError::new("name", "must be 1 to 100 characters"));
        }
        if name.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if self.expires_at.is_some_and(|e| e <= now) {
            errors.push(FieldError::new("expiresAt", "must be in the future"));
        }
        if errors.is_empty() {
            Ok(name.to_string())
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// A tenant setting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    pub key: String,
    /// Any JSON value.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// Increases with every change; the `ETag`.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Set a setting.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutSetting {
    /// Any JSON value (at most 64 KiB once serialized).
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

/// Largest serialized setting value.
pub const MAX_SETTING_BYTES: usize = 64 * 1024;

/// A setting key: 1 to 128 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_setting_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
        && key.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "key",
            "must be 1 to 128 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_keys() {
        for ok in ["theme", "ui.theme", "a-b_c.1", &"x".repeat(128)] {
            assert!(validate_setting_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "A", "a b", "a/b", &"x".repeat(129), "é"] {
            assert!(validate_setting_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_requests_are_validated() {
        let now = Utc::now();
        let past = CreateApiKey {
            name: "  ".into(),
            expires_at: Some(now - chrono::Duration::seconds(1)),
        };
        match past.validate(now).unwrap_err() {
            ApiError::Validation(errs) => {
                let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["name", "expiresAt"]);
            }
            other => panic!("{other:?}"),
        }
        let ok = CreateApiKey {
            name: " ci ".into(),
            expires_at: None,
        };
        assert_eq!(ok.validate(now).unwrap(), "ci");
    }
}

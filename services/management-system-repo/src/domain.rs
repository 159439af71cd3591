//! The service's domain types, parsed and validated at the edge: a request body becomes a
//! validated value or a 422 listing every bad field, before any database work.

use chrono::{DateTime, Utc};
use prismicx_service_common::error::Problems;
use prismicx_service_common::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::schema;

/// Limits on `attributes`.
use prismicx_service_common::attributes::apply_patch;
pub use prismicx_service_common::attributes::{
    depth, merge_patch, validate_attributes, MAX_ATTRIBUTES_BYTES, MAX_ATTRIBUTE_DEPTH,
    MAX_ATTRIBUTE_KEYS,
};
/// Limits on a configuration document.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;
pub const MAX_CONFIG_DEPTH: usize = 32;
pub const MAX_COMMENT_CHARS: usize = 1000;

/// A management system registered by a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct System {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Unique within the tenant: lowercase letters, digits, `.`, `_`, `-` (1 to 100).
    pub name: String,
    /// What sort of system this is (`application`, `database`, `erp`, …).
    pub kind: String,
    pub display_name: String,
    pub description: String,
    /// Extensible attributes (a JSON object).
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// The JSON Schema every configuration of this system must satisfy (`{}` accepts any object).
    #[schema(value_type = Object)]
    pub config_schema: Value,
    /// Bumped by every change; the `ETag` is `"<revision>"`.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A version (release) of a system.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct SystemVersion {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub system_id: Uuid,
    /// Semver-like (`MAJOR.MINOR[.PATCH][-pre][+build]`), unique within the system.
    pub version: String,
    /// Release notes.
    pub notes: String,
    /// `draft`, `released` or `deprecated`.
    pub status: String,
    /// When the version was first released.
    pub released_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A typed edge between two systems of the tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Relation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The system the edge starts at (`sourceId` depends_on `targetId`, …).
    pub source_id: Uuid,
    pub target_id: Uuid,
    /// One of `depends_on`, `integrates_with`, `replaces`, `manages`, `part_of`.
    pub kind: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One stored version of a system's configuration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub tenant_id: Uuid,
    pub system_id: Uuid,
    /// 1, 2, 3, … per system, gapless; the `ETag` is `"<version>"`.
    pub version: i64,
    /// The configuration document, exactly as written.
    #[schema(value_type = Object)]
    pub config: Value,
    pub comment: String,
    /// Set when this version was made by a rollback: the version whose content it copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<i64>,
    /// `platform` or `tenant-key`.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A configuration version in the history (without its document).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationSummary {
    pub system_id: Uuid,
    pub version: i64,
    pub comment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// The difference between two configuration versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationDiff {
    pub system_id: Uuid,
    pub from: i64,
    pub to: i64,
    /// RFC 6902 JSON Patch: applied in order to version `from`'s config, gives version `to`'s.
    pub patch: Vec<crate::diff::PatchOp>,
}

/// Body of `POST /v1/systems`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSystem {
    pub name: String,
    /// Default `application`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
    /// A JSON Schema (draft 4 to 2020-12); default `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config_schema: Option<Value>,
}

/// Body of `PATCH /v1/systems/{id}`: every field optional; `attributes` is a JSON merge patch
/// (RFC 7396), `configSchema` replaces the schema.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSystem {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub config_schema: Option<Value>,
}

/// Body of `POST /v1/systems/{id}/versions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVersion {
    pub version: String,
    #[serde(default)]
    pub notes: Option<String>,
    /// Default `draft`.
    #[serde(default)]
    pub status: Option<String>,
}

/// Body of `PATCH /v1/systems/{id}/versions/{versionId}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateVersion {
    pub notes: Option<String>,
    /// `draft` → `released` | `deprecated`; `released` ↔ `deprecated`; never back to `draft`.
    pub status: Option<String>,
}

/// Body of `POST /v1/systems/{id}/relations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRelation {
    /// Another system of the same tenant.
    pub target_id: Uuid,
    /// One of `depends_on`, `integrates_with`, `replaces`, `manages`, `part_of`.
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PUT /v1/systems/{id}/configuration`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutConfiguration {
    /// The configuration document (a JSON object), validated against the system's configSchema.
    #[schema(value_type = Object)]
    pub config: Value,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Body of `POST /v1/systems/{id}/configuration/rollback`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollback {
    /// The version whose content becomes the new latest version.
    pub to_version: i64,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A validated new or updated system.
#[derive(Debug, Clone)]
pub struct NewSystem {
    pub name: String,
    pub kind: String,
    pub display_name: String,
    pub description: String,
    pub attributes: Value,
    pub config_schema: Value,
}

/// A validated new version.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub version: String,
    pub notes: String,
    pub status: String,
}

/// A validated new relation.
#[derive(Debug, Clone)]
pub struct NewRelation {
    pub target_id: Uuid,
    pub kind: String,
    pub description: String,
}

pub fn parse_name(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let ok = (1..=100).contains(&s.len())
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be 1 to 100 of a-z, 0-9, . _ - starting with a letter or digit".into())
    }
}

pub fn parse_kind(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let ok = s.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be 1 to 63 of a-z, 0-9, _ - starting with a letter".into())
    }
}

/// A text of at most `max` characters as sent, stored trimmed.
fn parse_text(s: &str, max: usize, single_line: bool) -> Result<String, String> {
    // Counted as sent, so the limit is one a JSON Schema `maxLength` states exactly.
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    let t = s.trim();
    if t.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if t.chars()
        .any(|c| c.is_control() && (single_line || !matches!(c, '\n' | '\r' | '\t')))
    {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_string())
}

/// The validated system, or every field error collected in `p`.
fn new_system(
    p: Problems,
    (name, kind, display_name, description): SystemTexts,
    attributes: Value,
    config_schema: Value,
) -> Result<NewSystem, ApiError> {
    p.finish()?;
    match (name, kind, display_name, description) {
        (Some(name), Some(kind), Some(display_name), Some(description)) => Ok(NewSystem {
            name,
            kind,
            display_name,
            description,
            attributes,
            config_schema,
        }),
        _ => Err(Problems::lost()),
    }
}

/// A system's text fields as validated: name, kind, display name, description.
type SystemTexts = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl CreateSystem {
    pub fn validate(self) -> Result<NewSystem, ApiError> {
        let mut p = Problems::default();
        let name = p.check("name", parse_name(&self.name));
        let kind = p.check(
            "kind",
            parse_kind(self.kind.as_deref().unwrap_or("application")),
        );
        let display_name = p.check(
            "displayName",
            parse_text(self.display_name.as_deref().unwrap_or(""), 200, true),
        );
        let description = p.check(
            "description",
            parse_text(self.description.as_deref().unwrap_or(""), 2000, false),
        );
        let attributes = self.attributes.unwrap_or_else(|| Value::Object(Map::new()));
        validate_attributes(&attributes, &mut p.0);
        let config_schema = self
            .config_schema
            .unwrap_or_else(|| Value::Object(Map::new()));
        schema::check_schema(&config_schema, &mut p.0);
        let fields = (name, kind, display_name, description);
        new_system(p, fields, attributes, config_schema)
    }
}

impl UpdateSystem {
    /// Applies the patch to `current`, validating every changed field except `configSchema`
    /// (see [`schema::check`]).
    pub fn apply(self, current: &System) -> Result<NewSystem, ApiError> {
        if self.name.is_none()
            && self.kind.is_none()
            && self.display_name.is_none()
            && self.description.is_none()
            && self.attributes.is_none()
            && self.config_schema.is_none()
        {
            return Err(ApiError::invalid("body", "names no field to change"));
        }
        let mut p = Problems::default();
        let name = p.check_change("name", self.name.as_deref(), parse_name, &current.name);
        let kind = p.check_change("kind", self.kind.as_deref(), parse_kind, &current.kind);
        let display_name = p.check_change(
            "displayName",
            self.display_name.as_deref(),
            |d| parse_text(d, 200, true),
            &current.display_name,
        );
        let description = p.check_change(
            "description",
            self.description.as_deref(),
            |d| parse_text(d, 2000, false),
            &current.description,
        );
        let attributes = apply_patch(&current.attributes, self.attributes.as_ref(), &mut p.0);
        // A new configSchema was checked by the caller ([`schema::check`]) before it opened the
        // transaction this runs in: compiling a client's schema must not hold a database lock.
        let config_schema = self
            .config_schema
            .unwrap_or_else(|| current.config_schema.clone());
        let fields = (name, kind, display_name, description);
        new_system(p, fields, attributes, config_schema)
    }
}

pub const VERSION_STATUSES: &[&str] = &["draft", "released", "deprecated"];

pub fn parse_version_status(s: &str) -> Result<String, String> {
    if VERSION_STATUSES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("must be one of {}", VERSION_STATUSES.join(", ")))
    }
}

fn numeric_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 10 && s.chars().all(|c| c.is_ascii_digit())
}

fn ident_part(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| !p.is_empty())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
}

/// A semver-like version: `MAJOR.MINOR[.PATCH][-prerelease][+build]`, at most 64 characters.
pub fn parse_version(s: &str) -> Result<String, String> {
    let bad = || {
        "must look like MAJOR.MINOR[.PATCH][-prerelease][+build], e.g. 1.4.2 or 2.0.0-rc.1 (at most 64 characters)"
            .to_string()
    };
    if s.is_empty() || s.len() > 64 {
        return Err(bad());
    }
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts.iter().all(|p| numeric_part(p))
        && pre.is_none_or(ident_part)
        && build.is_none_or(ident_part);
    if ok {
        Ok(s.to_string())
    } else {
        Err(bad())
    }
}

impl CreateVersion {
    pub fn validate(self) -> Result<NewVersion, ApiError> {
        let mut p = Problems::default();
        let version = p.check("version", parse_version(&self.version));
        let notes = p.check(
            "notes",
            parse_text(self.notes.as_deref().unwrap_or(""), 10_000, false),
        );
        let status = p.check(
            "status",
            parse_version_status(self.status.as_deref().unwrap_or("draft")),
        );
        p.finish()?;
        match (version, notes, status) {
            (Some(version), Some(notes), Some(status)) => Ok(NewVersion {
                version,
                notes,
                status,
            }),
            _ => Err(Problems::lost()),
        }
    }
}

/// Whether a version may go from status `from` to `to`.
pub fn status_transition_allowed(from: &str, to: &str) -> bool {
    from == to
        || matches!(
            (from, to),
            ("draft", "released")
                | ("draft", "deprecated")
                | ("released", "deprecated")
                | ("deprecated", "released")
        )
}

impl UpdateVersion {
    /// The new (notes, status) of `current`.
    pub fn apply(self, current: &SystemVersion) -> Result<(String, String), ApiError> {
        if self.notes.is_none() && self.status.is_none() {
            return Err(ApiError::invalid("body", "names no field to change"));
        }
        let mut p = Problems::default();
        let notes = p.check_change(
            "notes",
            self.notes.as_deref(),
            |n| parse_text(n, 10_000, false),
            &current.notes,
        );
        let status = match &self.status {
            Some(s) => p.check("status", parse_version_status(s)).and_then(|s| {
                if status_transition_allowed(&current.status, &s) {
                    Some(s)
                } else {
                    p.0.push(FieldError::new(
                        "status",
                        format!("a {} version cannot become {s}", current.status),
                    ));
                    None
                }
            }),
            None => Some(current.status.clone()),
        };
        p.finish()?;
        match (notes, status) {
            (Some(n), Some(s)) => Ok((n, s)),
            _ => Err(Problems::lost()),
        }
    }
}

pub const RELATION_KINDS: &[&str] = &[
    "depends_on",
    "integrates_with",
    "replaces",
    "manages",
    "part_of",
];

pub fn parse_relation_kind(s: &str) -> Result<String, String> {
    if RELATION_KINDS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("must be one of {}", RELATION_KINDS.join(", ")))
    }
}

impl CreateRelation {
    pub fn validate(self, source_id: Uuid) -> Result<NewRelation, ApiError> {
        let mut p = Problems::default();
        if self.target_id == source_id {
            p.0.push(FieldError::new(
                "targetId",
                "a system cannot have a relation to itself",
            ));
        }
        let kind = p.check("kind", parse_relation_kind(&self.kind));
        let description = p.check(
            "description",
            parse_text(self.description.as_deref().unwrap_or(""), 2000, false),
        );
        p.finish()?;
        match (kind, description) {
            (Some(kind), Some(description)) => Ok(NewRelation {
                target_id: self.target_id,
                kind,
                description,
            }),
            _ => Err(Problems::lost()),
        }
    }
}

/// A comment of a configuration version.
pub fn parse_comment(c: Option<&str>) -> Result<String, ApiError> {
    parse_text(c.unwrap_or(""), MAX_COMMENT_CHARS, false)
        .map_err(|m| ApiError::invalid("comment", m))
}

/// Checks a configuration document can be stored exactly as sent: a JSON object, at most
/// [`MAX_CONFIG_BYTES`] and [`MAX_CONFIG_DEPTH`], keys that MongoDB stores verbatim (not
/// starting with `$`, no NUL), integers within 64 bits. Errors carry JSON pointers.
pub fn validate_config_document(config: &Value) -> Result<(), ApiError> {
    if !config.is_object() {
        return Err(ApiError::invalid("/config", "must be a JSON object"));
    }
    if serde_json::to_vec(config).map(|b| b.len()).unwrap_or(0) > MAX_CONFIG_BYTES {
        return Err(ApiError::invalid(
            "/config",
            format!("must be at most {MAX_CONFIG_BYTES} bytes of JSON"),
        ));
    }
    if depth(config) > MAX_CONFIG_DEPTH {
        return Err(ApiError::invalid(
            "/config",
            format!("nests deeper than {MAX_CONFIG_DEPTH} levels"),
        ));
    }
    let mut errors = Vec::new();
    storable(config, "/config".to_string(), &mut errors);
    errors.truncate(schema::MAX_VIOLATIONS);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn storable(v: &Value, path: String, errors: &mut Vec<FieldError>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                let p = format!("{path}/{}", crate::diff::escape(k));
                if k.starts_with('$') || k.contains('\0') {
                    errors.push(FieldError::new(
                        p.clone(),
                        "keys must not start with $ or contain NUL",
                    ));
                }
                storable(val, p, errors);
            }
        }
        Value::Array(a) => {
            for (i, val) in a.iter().enumerate() {
                storable(val, format!("{path}/{i}"), errors);
            }
        }
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => {
            errors.push(FieldError::new(path, "integers must fit in 64 signed bits"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(e: ApiError) -> Vec<String> {
        e.problem().errors.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn create_system_reports_every_bad_field() {
        let e = CreateSystem {
            name: "Bad Name".into(),
            kind: Some("9x".into()),
            display_name: Some("a\u{7}b".into()),
            description: Some("x".repeat(2001)),
            attributes: Some(json!({"1bad": 1})),
            config_schema: Some(json!({"type": "nope"})),
        }
        .validate()
        .unwrap_err();
        let f = fields(e);
        assert_eq!(
            &f[..5],
            [
                "name",
                "kind",
                "displayName",
                "description",
                "attributes.1bad"
            ]
        );
        assert!(f[5].starts_with("/configSchema"));
    }

    #[test]
    fn versions_are_semver_like() {
        for ok in [
            "1.0",
            "1.2.3",
            "10.20.30-rc.1",
            "1.0.0+build.5",
            "1.0.0-alpha-1+x",
        ] {
            assert!(parse_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1",
            "v1.0",
            "1.2.3.4",
            "1..2",
            "1.2.3-",
            "1.2.3+",
            "a.b",
            "1.2.3-a..b",
            "1.2 .3",
        ] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_transitions() {
        assert!(status_transition_allowed("draft", "released"));
        assert!(status_transition_allowed("released", "deprecated"));
        assert!(status_transition_allowed("deprecated", "released"));
        assert!(!status_transition_allowed("released", "draft"));
        assert!(!status_transition_allowed("deprecated", "draft"));
    }

    #[test]
    fn self_relations_and_unknown_kinds_are_refused() {
        let id = Uuid::new_v4();
        let e = CreateRelation {
            target_id: id,
            kind: "likes".into(),
            description: None,
        }
        .validate(id)
        .unwrap_err();
        assert_eq!(fields(e), ["targetId", "kind"]);
    }

    #[test]
    fn config_documents_must_be_storable() {
        assert!(validate_config_document(&json!({"a": {"b.c": [1, 2.5, null]}})).is_ok());
        assert_eq!(
            fields(validate_config_document(&json!([1])).unwrap_err()),
            ["/config"]
        );
        let e =
            validate_config_document(&json!({"a": [{"$where": 1}], "n": u64::MAX, "k\u{0}": 1}))
                .unwrap_err();
        let mut f = fields(e);
        f.sort();
        assert_eq!(f, ["/config/a/0/$where", "/config/k\u{0}", "/config/n"]);
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "d": deep });
        }
        assert!(validate_config_document(&deep).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}

//! The API's types and the validation of what clients send.
//!
//! Names are trimmed, 1 to 100 characters, and unique among siblings case-insensitively (their
//! Unicode lowercase form, `name_key`, is what the unique index compares). Descriptions are
//! optional (up to 1,000 characters; empty means none). Attributes are a JSON object of at most
//! 16 KiB, nested at most 8 levels, whose keys are non-empty, do not start with `$` and contain
//! no `.` (MongoDB field names), and whose numbers fit a 64-bit signed integer or a double.

use chrono::{DateTime, Utc};
pub use prismicx_service_common::attributes::merge_patch;
use prismicx_service_common::{ApiError, FieldError};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// Levels a tree may have: roots are at depth 0, the deepest node at depth `MAX_DEPTH - 1`.
pub const MAX_DEPTH: i64 = 32;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
pub const MAX_ATTRIBUTE_NESTING: usize = 8;

/// A category: one node of a tenant's forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub id: Uuid,
    /// The tenant owning the category.
    pub tenant_id: Uuid,
    /// Unique among its siblings, compared case-insensitively.
    pub name: String,
    pub description: Option<String>,
    /// The parent category; `null` for a root.
    pub parent_id: Option<Uuid>,
    /// The ids of the category's ancestors, root first (empty for a root).
    pub ancestors: Vec<Uuid>,
    /// Number of ancestors: 0 for a root.
    pub depth: u32,
    /// Place among its siblings, from 0; siblings' positions are always 0..n-1.
    pub position: u32,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// Bumped by every change of the category (including a change of its path by a move of an
    /// ancestor); its `ETag` is `"<revision>"`.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `Some(value)` when the field is present (`Some(None)` when it is `null`), `None` when absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /v1/categories`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCategory {
    /// 1 to 100 characters after trimming; unique among the siblings (case-insensitively).
    pub name: String,
    /// Up to 1,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// The parent; absent or `null` creates a root.
    #[serde(default)]
    pub parent_id: Option<Uuid>,
    /// Where among the siblings, from 0 to their number; later siblings shift by one.
    /// Default: after the last sibling.
    #[serde(default)]
    pub position: Option<u32>,
    /// A JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
}

/// Body of `PATCH /v1/categories/{id}`: only the fields present change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCategory {
    /// The new name (unique among the siblings, case-insensitively).
    #[serde(default)]
    pub name: Option<String>,
    /// The new description; `null` or `""` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    /// A JSON merge patch (RFC 7396) of the attributes: keys set to `null` are removed;
    /// `null` removes every attribute.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable)]
    pub attributes: Option<Option<Value>>,
}

/// Body of `POST /v1/categories/{id}/move`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveCategory {
    /// The new parent (required); `null` makes the category a root. The new parent may not be
    /// the category itself or one of its descendants.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>, required = true)]
    pub parent_id: Option<Option<Uuid>>,
    /// Where among the new siblings, from 0 to their number (to their number minus one when the
    /// parent does not change). Default: after the last sibling.
    #[serde(default)]
    pub position: Option<u32>,
}

/// Body of `POST /v1/categories/{id}/reorder`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReorderCategory {
    /// The new place among the siblings, from 0 to their number minus one.
    pub position: u32,
}

/// A validated new category.
#[derive(Debug, Clone)]
pub struct NewCategory {
    pub name: String,
    pub name_key: String,
    pub description: Option<String>,
    pub parent_id: Option<Uuid>,
    pub position: Option<i64>,
    pub attributes: Map<String, Value>,
}

/// A validated change of a category's fields.
#[derive(Debug, Clone, Default)]
pub struct CategoryChanges {
    pub name: Option<(String, String)>,
    pub description: Option<Option<String>>,
    /// The merge patch to apply (validated again once merged).
    pub attributes: Option<Value>,
}

/// A validated move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub parent_id: Option<Uuid>,
    pub position: Option<i64>,
}

/// The case-insensitive form of a name that sibling uniqueness compares.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// A trimmed name of 1 to 100 characters without control characters.
pub fn parse_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    let n = t.chars().count();
    if n == 0 {
        return Err("must not be empty".into());
    }
    if n > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_string())
}

/// A trimmed description of up to 1,000 characters; empty means none.
pub fn parse_description(s: Option<&str>) -> Result<Option<String>, String> {
    let Some(t) = s.map(str::trim) else {
        return Ok(None);
    };
    if t.is_empty() {
        return Ok(None);
    }
    if t.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    Ok(Some(t.to_string()))
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && !k.starts_with('$') && !k.contains('.') && !k.contains('\0')
}

/// Checks a (merged) attributes value; problems are pushed with their path under `field`.
pub fn validate_attributes(v: &Value, field: &str, errors: &mut Vec<FieldError>) {
    fn walk(v: &Value, path: &str, level: usize, errors: &mut Vec<FieldError>) {
        if errors.len() >= 10 {
            return;
        }
        let nests = matches!(v, Value::Object(_) | Value::Array(_));
        if nests && level > MAX_ATTRIBUTE_NESTING {
            errors.push(FieldError::new(
                path,
                format!("nests deeper than {MAX_ATTRIBUTE_NESTING} levels"),
            ));
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if !valid_key(k) {
                        errors.push(FieldError::new(
                            path,
                            format!(
                                "key {k:?} is not allowed: keys must be non-empty, not start with '$' and contain no '.'"
                            ),
                        ));
                        continue;
                    }
                    walk(child, &format!("{path}.{k}"), level + 1, errors);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    walk(child, &format!("{path}.{i}"), level + 1, errors);
                }
            }
            Value::Number(n) if n.is_u64() && n.as_i64().is_none() => {
                errors.push(FieldError::new(
                    path,
                    "numbers must fit a 64-bit signed integer or a double",
                ));
            }
            _ => {}
        }
    }
    if !v.is_object() {
        errors.push(FieldError::new(field, "must be a JSON object"));
        return;
    }
    walk(v, field, 1, errors);
    if errors.is_empty() && serde_json::to_vec(v).map_or(0, |b| b.len()) > MAX_ATTRIBUTES_BYTES {
        errors.push(FieldError::new(
            field,
            format!("must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
        ));
    }
}

/// The attributes after `patch`, validated.
pub fn patched_attributes(
    current: &Map<String, Value>,
    patch: &Value,
) -> Result<Map<String, Value>, ApiError> {
    let mut merged = Value::Object(current.clone());
    merge_patch(&mut merged, patch);
    if merged.is_null() {
        return Ok(Map::new());
    }
    let mut errors = Vec::new();
    validate_attributes(&merged, "attributes", &mut errors);
    match merged {
        Value::Object(m) if errors.is_empty() => Ok(m),
        _ => Err(ApiError::Validation(errors)),
    }
}

fn finish(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

impl CreateCategory {
    pub fn validate(self) -> Result<NewCategory, ApiError> {
        let mut errors = Vec::new();
        let name = parse_name(&self.name)
            .map_err(|m| errors.push(FieldError::new("name", m)))
            .ok();
        let description = parse_description(self.description.as_deref())
            .map_err(|m| errors.push(FieldError::new("description", m)))
            .ok()
            .flatten();
        let attributes = match self.attributes {
            None | Some(Value::Null) => Map::new(),
            Some(v) => {
                validate_attributes(&v, "attributes", &mut errors);
                match v {
                    Value::Object(m) => m,
                    _ => Map::new(),
                }
            }
        };
        finish(errors)?;
        let name = name.unwrap_or_default();
        Ok(NewCategory {
            name_key: name_key(&name),
            name,
            description,
            parent_id: self.parent_id,
            position: self.position.map(i64::from),
            attributes,
        })
    }
}

impl UpdateCategory {
    pub fn validate(self) -> Result<CategoryChanges, ApiError> {
        let mut errors = Vec::new();
        let name = match self.name.as_deref().map(parse_name) {
            None => None,
            Some(Ok(n)) => Some((name_key(&n), n)),
            Some(Err(m)) => {
                errors.push(FieldError::new("name", m));
                None
            }
        };
        let description = match self.description {
            None => None,
            Some(d) => match parse_description(d.as_deref()) {
                Ok(d) => Some(d),
                Err(m) => {
                    errors.push(FieldError::new("description", m));
                    None
                }
            },
        };
        let attributes = match self.attributes {
            None => None,
            Some(None) => Some(Value::Null),
            Some(Some(v)) => {
                if !v.is_object() {
                    errors.push(FieldError::new(
                        "attributes",
                        "must be a JSON object (a merge patch) or null",
                    ));
                }
                Some(v)
            }
        };
        finish(errors)?;
        Ok(CategoryChanges {
            name: name.map(|(k, n)| (n, k)),
            description,
            attributes,
        })
    }
}

impl MoveCategory {
    pub fn validate(self) -> Result<Move, ApiError> {
        let parent_id = self.parent_id.ok_or_else(|| {
            ApiError::invalid(
                "parentId",
                "is required: the new parent's id, or null to make the category a root",
            )
        })?;
        Ok(Move {
            parent_id,
            position: self.position.map(i64::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Books ").unwrap(), "Books");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(101)).is_err());
        assert!(parse_name(&"é".repeat(100)).is_ok());
        assert!(parse_name("a\u{0}b").is_err());
        assert_eq!(name_key("BöOks"), "böoks");
    }

    #[test]
    fn attributes_are_checked_for_mongo_and_size() {
        let mut e = Vec::new();
        validate_attributes(&json!({"a": {"b": [1, 2.5, "x"]}}), "attributes", &mut e);
        assert!(e.is_empty(), "{e:?}");
        for bad in [
            json!([1]),
            json!({"$where": 1}),
            json!({"a.b": 1}),
            json!({"": 1}),
            json!({"n": u64::MAX}),
            json!({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}),
            json!({"big": "x".repeat(MAX_ATTRIBUTES_BYTES)}),
        ] {
            let mut e = Vec::new();
            validate_attributes(&bad, "attributes", &mut e);
            assert!(!e.is_empty(), "{bad} passed");
            assert!(e[0].field.starts_with("attributes"));
        }
    }

    #[test]
    fn merge_patch_removes_nulls_and_merges_objects() {
        let current = json!({"a": 1, "b": {"c": 2, "d": 3}});
        let m = patched_attributes(
            current.as_object().unwrap(),
            &json!({"a": null, "b": {"c": null, "e": 4}}),
        )
        .unwrap();
        assert_eq!(Value::Object(m), json!({"b": {"d": 3, "e": 4}}));
        let m = patched_attributes(current.as_object().unwrap(), &Value::Null).unwrap();
        assert!(m.is_empty());
    }

    #[test]
    fn move_needs_an_explicit_parent() {
        let m: MoveCategory = serde_json::from_value(json!({"position": 1})).unwrap();
        assert_eq!(
            m.validate().unwrap_err().problem().errors[0].field,
            "parentId"
        );
        let m: MoveCategory = serde_json::from_value(json!({"parentId": null})).unwrap();
        assert_eq!(m.validate().unwrap().parent_id, None);
    }
}

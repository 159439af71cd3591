//! JSON Schema handling: a system's `configSchema` must be a valid JSON Schema (checked against
//! its draft's meta-schema and compiled, on every write), and a configuration must be valid
//! against it. Drafts 4, 6, 7, 2019-09 and 2020-12 are recognised by `$schema` (2020-12 when
//! absent). References are resolved only inside the schema itself: the validator has no HTTP or
//! file retriever, so a remote `$ref` or a custom `$schema` is refused rather than fetched.

use std::panic::{catch_unwind, AssertUnwindSafe};

use prismicx_service_common::{ApiError, FieldError};
use serde_json::Value;

/// Largest accepted `configSchema`, as serialized JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Most violations listed in one 422.
pub const MAX_VIOLATIONS: usize = 100;

/// JSON pointer of `path` (already a pointer, `""` for the root) inside body field `field`.
fn pointer(field: &str, path: &str) -> String {
    format!("/{field}{path}")
}

/// Refuses every external `$ref`: a schema a client sends must not make the service fetch URLs
/// or read files (whatever features the `jsonschema` build has), only refer within itself.
struct NoExternalReferences;

impl jsonschema::Retrieve for NoExternalReferences {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("external references are not allowed ({})", uri.as_str()).into())
    }
}

/// Compiles `schema`, refusing one that is not a valid JSON Schema. Errors name the offending
/// place as a JSON pointer into the request body (`/configSchema/properties/port/type`).
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, Vec<FieldError>> {
    if !schema.is_object() {
        return Err(vec![FieldError::new(
            "configSchema",
            "must be a JSON object (a JSON Schema)",
        )]);
    }
    // The validator must never bring the service down on a client's schema; a panic inside the
    // library is reported as an invalid schema.
    let built = catch_unwind(AssertUnwindSafe(|| {
        jsonschema::options()
            .with_retriever(NoExternalReferences)
            .build(schema)
    }));
    match built {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(vec![FieldError::new(
            pointer("configSchema", e.instance_path().as_str()),
            format!("is not a valid JSON Schema: {}", e.masked()),
        )]),
        Err(_) => Err(vec![FieldError::new(
            "configSchema",
            "is not a valid JSON Schema",
        )]),
    }
}

/// Validates a `configSchema` sent by a client: size, then [`compile`].
pub fn check_schema(schema: &Value, errors: &mut Vec<FieldError>) {
    if serde_json::to_vec(schema).map(|b| b.len()).unwrap_or(0) > MAX_SCHEMA_BYTES {
        errors.push(FieldError::new(
            "configSchema",
            format!("must be at most {MAX_SCHEMA_BYTES} bytes of JSON"),
        ));
        return;
    }
    if let Err(e) = compile(schema) {
        errors.extend(e);
    }
}

/// Validates `config` against the system's stored `schema`: a 422 listing every violation
/// (up to [`MAX_VIOLATIONS`]) with its JSON pointer into the request body (`/config/port`).
pub fn validate_config(schema: &Value, config: &Value) -> Result<(), ApiError> {
    let validator = compile(schema).map_err(|_| {
        ApiError::conflict(
            "configSchema",
            "the system's configSchema can no longer be compiled; correct it with PATCH first",
        )
    })?;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        validator
            .iter_errors(config)
            .take(MAX_VIOLATIONS)
            .map(|e| {
                FieldError::new(
                    pointer("config", e.instance_path().as_str()),
                    e.masked().to_string(),
                )
            })
            .collect::<Vec<_>>()
    }));
    match outcome {
        Ok(errors) if errors.is_empty() => Ok(()),
        Ok(errors) => Err(ApiError::Validation(errors)),
        Err(_) => Err(ApiError::invalid(
            "config",
            "could not be validated against the system's configSchema",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(e: Vec<FieldError>) -> Vec<String> {
        e.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn valid_schemas_compile() {
        for s in [
            json!({}),
            json!({"type": "object", "properties": {"port": {"type": "integer", "minimum": 1}}}),
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}),
            json!({"$defs": {"p": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/p"}}}),
        ] {
            assert!(compile(&s).is_ok(), "{s}");
        }
    }

    #[test]
    fn invalid_schemas_are_refused_with_a_pointer() {
        let e = compile(&json!({"type": "object", "properties": {"port": {"type": "integr"}}}))
            .unwrap_err();
        assert!(fields(e)[0].starts_with("/configSchema"));
        for bad in [
            json!({"type": 5}),
            json!({"minimum": "x"}),
            json!({"required": "name"}),
            json!({"pattern": "("}),
            json!({"$ref": "https://example.com/remote.json"}),
            json!({"$ref": "#/$defs/missing"}),
            json!({"$schema": "https://example.com/custom-meta"}),
            json!({"properties": {"a": {"$ref": "file:///etc/passwd"}}}),
        ] {
            assert!(compile(&bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(fields(compile(&json!([1])).unwrap_err()), ["configSchema"]);
        assert_eq!(fields(compile(&json!(true)).unwrap_err()), ["configSchema"]);
    }

    #[test]
    fn config_violations_list_every_pointer() {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "port": {"type": "integer", "maximum": 65535},
                "hosts": {"type": "array", "items": {"type": "string"}},
                "tls": {"type": "object", "properties": {"enabled": {"type": "boolean"}}}
            },
            "additionalProperties": false
        });
        let e = validate_config(
            &schema,
            &json!({"port": 70000, "hosts": ["a", 5], "tls": {"enabled": "yes"}, "x": 1}),
        )
        .unwrap_err();
        let mut f: Vec<String> = e.problem().errors.into_iter().map(|f| f.field).collect();
        f.sort();
        assert_eq!(
            f,
            [
                "/config",
                "/config",
                "/config/hosts/1",
                "/config/port",
                "/config/tls/enabled"
            ]
        );
        assert!(validate_config(&schema, &json!({"name": "n", "port": 80})).is_ok());
        // Messages do not echo the client's values.
        let e =
            validate_config(&schema, &json!({"name": "n", "port": "secret-value"})).unwrap_err();
        assert!(!format!("{:?}", e.problem()).contains("secret-value"));
    }

    #[test]
    fn recursive_and_pathological_schemas_neither_hang_nor_crash() {
        let cyclic = json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
        if compile(&cyclic).is_ok() {
            let _ = validate_config(&cyclic, &json!({"x": 1}));
        }
        let tree = json!({"type": "object", "properties": {"child": {"$ref": "#"}}});
        assert!(compile(&tree).is_ok());
        assert!(validate_config(&tree, &json!({"child": {"child": {"child": {}}}})).is_ok());
        let evil = json!({"properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}});
        if compile(&evil).is_ok() {
            let _ = validate_config(&evil, &json!({"s": format!("{}!", "a".repeat(40))}));
        }
    }

    #[test]
    fn external_references_are_refused_not_fetched() {
        for r in [
            "http://169.254.169.254/latest/meta-data",
            "https://example.com/schema.json",
            "file:///etc/passwd",
        ] {
            let e = compile(&json!({"$ref": r})).unwrap_err();
            assert_eq!(e[0].field, "/configSchema", "{r}");
        }
    }

    #[test]
    fn keys_with_slashes_are_escaped_in_pointers() {
        let schema = json!({"properties": {"a/b": {"type": "integer"}}});
        let e = validate_config(&schema, &json!({"a/b": "x"})).unwrap_err();
        assert_eq!(e.problem().errors[0].field, "/config/a~1b");
    }
}

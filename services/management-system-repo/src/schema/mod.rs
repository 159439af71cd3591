//! JSON Schema handling: a system's `configSchema` must be a valid JSON Schema (checked against
//! its draft's meta-schema and compiled, on every write), and a configuration must be valid
//! against it. Drafts 4, 6, 7, 2019-09 and 2020-12 are recognised by `$schema` (2020-12 when
//! absent). References are resolved only inside the schema itself: the validator has no HTTP or
//! file retriever, so a remote `$ref` or a custom `$schema` is refused rather than fetched.
//!
//! A schema is tenant input that the service executes, so before it is compiled it must pass
//! the static bounds of [`limits`] (size, nesting, subschemas, references, patterns, `$ref`
//! expansion). Patterns (`pattern`, `patternProperties`) are compiled with the `regex` crate's
//! engine, which matches in linear time and has no look-around or backreferences, with a cap on
//! each compiled pattern's size. The handlers run [`check_schema`] and [`validate_config`] through
//! a [`gate::SchemaGate`]: on the blocking pool, outside any database transaction, with a
//! deadline and a bound on how many run at once.

pub mod gate;
pub mod limits;

use std::panic::{catch_unwind, AssertUnwindSafe};

use prismicx_service_common::{ApiError, FieldError};
use serde_json::Value;

pub use limits::MAX_SCHEMA_BYTES;

/// Most violations listed in one 422.
pub const MAX_VIOLATIONS: usize = 100;
/// Largest compiled program of one pattern, and the largest cache of its lazy DFA.
pub const MAX_PATTERN_PROGRAM_BYTES: usize = 64 * 1024;

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
            .with_pattern_options(
                jsonschema::PatternOptions::regex()
                    .size_limit(MAX_PATTERN_PROGRAM_BYTES)
                    .dfa_size_limit(MAX_PATTERN_PROGRAM_BYTES),
            )
            .build(schema)
    }));
    match built {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let path = e.instance_path().as_str().to_string();
            let message = if is_pattern(&path) && e.masked().to_string().contains("regex") {
                format!(
                    "is not a pattern this service accepts: ECMA 262 syntax without look-around \
                     or backreferences, compiling to at most {MAX_PATTERN_PROGRAM_BYTES} bytes"
                )
            } else {
                format!("is not a valid JSON Schema: {}", e.masked())
            };
            Err(vec![FieldError::new(
                pointer("configSchema", &path),
                message,
            )])
        }
        Err(_) => Err(vec![FieldError::new(
            "configSchema",
            "is not a valid JSON Schema",
        )]),
    }
}

/// Whether a compile error at `path` (a pointer into the schema) is about a regular expression.
fn is_pattern(path: &str) -> bool {
    path.ends_with("/pattern")
        || path
            .rsplit_once('/')
            .is_some_and(|(parent, _)| parent.ends_with("/patternProperties"))
}

/// Validates a `configSchema` sent by a client: the static [`limits`], then [`compile`].
pub fn check_schema(schema: &Value, errors: &mut Vec<FieldError>) {
    if let Err(e) = limits::check(schema) {
        errors.push(e);
        return;
    }
    if let Err(e) = compile(schema) {
        errors.extend(e);
    }
}

/// [`check_schema`] on its own: a 422 listing what is wrong with `schema`.
pub fn check(schema: &Value) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    check_schema(schema, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Validates `config` against the system's stored `schema`: a 422 listing every violation
/// (up to [`MAX_VIOLATIONS`]) with its JSON pointer into the request body (`/config/port`).
pub fn validate_config(schema: &Value, config: &Value) -> Result<(), ApiError> {
    // A schema stored before a limit existed is held to it too.
    let validator = limits::check(schema)
        .map_err(|_| ())
        .and_then(|()| compile(schema).map_err(|_| ()))
        .map_err(|()| {
            ApiError::conflict(
                "configSchema",
                "the system's configSchema can no longer be compiled within the service's \
                 limits; correct it with PATCH first",
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
        assert!(compile(&evil).is_ok());
        let e =
            validate_config(&evil, &json!({"s": format!("{}b", "a".repeat(100_000))})).unwrap_err();
        assert_eq!(e.problem().errors[0].field, "/config/s");
    }

    #[test]
    fn patterns_the_linear_engine_cannot_take_are_refused_with_their_pointer() {
        for (bad, field) in [
            (
                json!({"properties": {"a": {"pattern": "^(?=a)a$"}}}),
                "/configSchema/properties/a/pattern",
            ),
            (
                json!({"properties": {"a": {"pattern": "^(a)\\1$"}}}),
                "/configSchema/properties/a/pattern",
            ),
            (
                json!({"patternProperties": {"(?<!x)y": {}}}),
                "/configSchema/patternProperties/(?<!x)y",
            ),
            (
                json!({"pattern": "\\w{500}\\w{500}"}),
                "/configSchema/pattern",
            ),
        ] {
            let mut errors = Vec::new();
            check_schema(&bad, &mut errors);
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(errors[0].field, field, "{bad}");
            assert!(
                errors[0].message.contains("pattern"),
                "{}",
                errors[0].message
            );
        }
        assert!(compile(&json!({"pattern": "^[a-z]+\\d{2,4}$"})).is_ok());
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

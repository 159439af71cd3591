//! Extractors whose rejections are problem+json with the offending field named.
//!
//! [`Json`] reports the JSON path of a bad value (`attributes.team: invalid type …`), refuses
//! unknown media types (415) and oversized bodies (413) and bodies holding the NUL character
//! (422, [`reject_nul`]); [`Path`] and [`Query`] name the bad parameter. Nothing a client sends
//! can make them panic.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, FieldError};

/// A JSON body (request) or response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "the request body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("the request body is larger than allowed".into())
            } else {
                ApiError::BadRequest {
                    detail: "the request body could not be read".into(),
                    field: None,
                }
            }
        })?;
        check_nul(&bytes)?;
        parse_json(&bytes).map(Json)
    }
}

/// Refuses a body that holds the NUL character (U+0000) in any key or string. PostgreSQL cannot
/// store it in `text` or `jsonb`, MongoDB not in keys; a tenant could otherwise turn any field
/// into a 500. In JSON text NUL can only be written as the escape `\u0000`, so bodies without
/// that sequence are not parsed twice.
fn check_nul(bytes: &[u8]) -> Result<(), ApiError> {
    let escaped = bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..] == b"0000");
    if !escaped {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => reject_nul(&v),
        // Malformed: parse_json reports it.
        Err(_) => Ok(()),
    }
}

/// The NUL rule of [`Json`] on a parsed body: 422 naming each top-level field (or `body`) whose
/// keys or strings hold U+0000, without echoing the value.
pub fn reject_nul(body: &serde_json::Value) -> Result<(), ApiError> {
    use serde_json::Value;
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(has_nul),
            Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    let message = "must not contain the NUL character (\\u0000) in any key or string";
    match body {
        Value::Object(m) => {
            let errors: Vec<FieldError> = m
                .iter()
                .filter(|(k, v)| k.contains('\0') || has_nul(v))
                .map(|(k, _)| {
                    let field = if k.contains('\0') { "body" } else { k.as_str() };
                    FieldError::new(field, message)
                })
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(ApiError::Validation(errors))
            }
        }
        other if has_nul(other) => Err(ApiError::invalid("body", message)),
        _ => Ok(()),
    }
}

/// Deserializes `bytes`, turning a failure into a 400 (malformed JSON) or 422 (valid JSON of the
/// wrong shape) that names the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let mut result = serde_path_to_error::deserialize(de);
    // JSON (and JSON Schema's `integer`) does not tell 3 from 3.0, but serde's integer types
    // refuse the latter. Each integral float an integer field refused is rewritten as that
    // integer and the body read again; nothing else in it changes (a free-form `2.0` stays).
    let mut value: Option<serde_json::Value> = None;
    for _ in 0..MAX_FLOAT_RETRIES {
        let Err(e) = &result else { break };
        if !e
            .inner()
            .to_string()
            .starts_with("invalid type: floating point")
        {
            break;
        }
        if value.is_none() {
            value = serde_json::from_slice(bytes).ok();
        }
        let Some(v) = value.as_mut() else { break };
        if !integral_float_to_integer(v, e.path()) {
            break;
        }
        result = serde_path_to_error::deserialize(v.clone());
    }
    result.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = strip_position(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Data => {
                // serde_path_to_error's path already ends with an unknown field's name, but stops
                // at the parent of a missing one.
                let field = missing_field_name(&message)
                    .map(|f| join_path(&path, f))
                    .or_else(|| {
                        (path == ".")
                            .then(|| unknown_field_name(&message).map(str::to_string))
                            .flatten()
                    })
                    .unwrap_or_else(|| if path == "." { "body".into() } else { path });
                ApiError::Validation(vec![FieldError::new(field, message)])
            }
            _ => ApiError::BadRequest {
                detail: format!("the request body is not valid JSON: {message}"),
                field: Some("body".into()),
            },
        }
    })
}

/// -2^63, exactly representable.
const I64_MIN: f64 = i64::MIN as f64;

/// How many integral floats [`parse_json`] rewrites in one body before it gives up.
const MAX_FLOAT_RETRIES: usize = 32;

/// Rewrites the number at `path` in `v` as an integer when it is an integral float within the
/// i64 range; whether it did. Beyond ±2^53 the value is the IEEE double the text denotes, as
/// RFC 8259 §6 leaves it.
fn integral_float_to_integer(v: &mut serde_json::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let mut at = v;
    for segment in path.iter() {
        let next = match (segment, at) {
            (Segment::Seq { index }, serde_json::Value::Array(a)) => a.get_mut(*index),
            (Segment::Map { key }, serde_json::Value::Object(m)) => m.get_mut(key),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return false,
        }
    }
    match at.as_f64() {
        // -2^63 ≤ f < 2^63: `as` is exact for every integral f64 in that range.
        Some(f) if at.is_f64() && f.fract() == 0.0 && (I64_MIN..-I64_MIN).contains(&f) => {
            *at = serde_json::Value::from(f as i64);
            true
        }
        _ => false,
    }
}

fn join_path(parent: &str, field: &str) -> String {
    if parent == "." || parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn unknown_field_name(msg: &str) -> Option<&str> {
    msg.strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
}

fn missing_field_name(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a bad one is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => {
                let detail = e.body_text();
                Err(ApiError::BadRequest {
                    field: Some(path_param_name(&detail).unwrap_or("path").to_string()),
                    detail,
                })
            }
        }
    }
}

fn path_param_name(detail: &str) -> Option<&str> {
    // axum: "Invalid URL: Cannot parse `id` with value `x` to a `u128`"
    detail
        .split('`')
        .nth(1)
        .filter(|_| detail.contains("Cannot parse `"))
}

/// Query parameters; a bad one is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        // PostgreSQL cannot compare text with U+0000, so a filter holding it is refused here
        // rather than failing in the database.
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let field = if name.contains('\0') {
                "query".into()
            } else {
                name.into_owned()
            };
            return Err(ApiError::BadRequest {
                detail: "must not contain the NUL character (U+0000)".into(),
                field: Some(field),
            });
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                let field = unknown_field_name(&message)
                    .map(str::to_string)
                    .unwrap_or(if path == "." { "query".into() } else { path });
                ApiError::BadRequest {
                    detail: format!("invalid query parameter: {message}"),
                    field: Some(field),
                }
            })
    }
}

/// The `If-Match` precondition of a write: the revision the client last read (its `ETag`).
/// `None` when the header is absent; `*` is refused, since every write here names a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Option<i64>);

impl IfMatch {
    /// The revision, or 428 Precondition Required naming the header when the client sent none
    /// (RFC 6585: the write is conditional, and a malformed header stays a 400).
    pub fn required(self) -> Result<i64, ApiError> {
        self.0.ok_or_else(|| ApiError::PreconditionRequired {
            detail: "this write needs the If-Match header with the ETag you last read".into(),
            field: "If-Match".into(),
        })
    }
}

/// `201 Created` with `Location: location` (the new resource's URL) and `response`'s body and
/// headers (an `ETag`, say).
pub fn created(location: &str, response: impl IntoResponse) -> Response {
    let mut res = (axum::http::StatusCode::CREATED, response).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `204 No Content` when `found` (a delete found what it deleted), else the error `missing`.
pub fn no_content_if(
    found: bool,
    missing: impl FnOnce() -> ApiError,
) -> Result<axum::http::StatusCode, ApiError> {
    if found {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(missing())
    }
}

/// `body` as JSON with the `ETag` of `revision`, answered with `status`.
pub fn with_etag<T: Serialize>(status: axum::http::StatusCode, revision: i64, body: T) -> Response {
    (status, [(header::ETAG, etag(revision))], Json(body)).into_response()
}

/// The `ETag` of a resource at `revision`: a strong tag, `"<revision>"`.
pub fn etag(revision: i64) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(&format!("\"{revision}\""))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("\"0\""))
}

/// Parses one entity tag as [`etag`] writes it (a weak `W/` prefix is tolerated).
pub fn parse_etag(value: &str) -> Option<i64> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

impl<S> FromRequestParts<S> for IfMatch
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let bad = || {
            ApiError::bad_request(
                "If-Match",
                "must be one entity tag as returned in ETag, e.g. \"3\"",
            )
        };
        let text = raw.to_str().map_err(|_| bad())?;
        parse_etag(text).map(|r| IfMatch(Some(r))).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        email: String,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        count: u32,
    }

    fn field_of(e: ApiError) -> (u16, String) {
        let p = e.problem();
        (
            p.status,
            p.errors
                .first()
                .map(|f| f.field.clone())
                .unwrap_or_default(),
        )
    }

    #[test]
    fn nul_anywhere_in_a_body_is_refused_naming_the_field_and_not_the_value() {
        assert!(check_nul(br#"{"name": "a", "x": {"y": ["ok"]}}"#).is_ok());
        // An escaped backslash followed by "u0000" is text, not NUL.
        assert!(check_nul(br#"{"name": "a\\u0000"}"#).is_ok());
        let e = check_nul(
            br#"{"name": "ok", "schema": {"a\u0000b": {}}, "attributes": {"team": ["y\u0000"]}}"#,
        )
        .unwrap_err();
        let mut fields: Vec<String> = e.problem().errors.iter().map(|f| f.field.clone()).collect();
        fields.sort();
        assert_eq!(fields, ["attributes", "schema"]);
        assert_eq!(e.problem().status, 422);
        assert_eq!(
            field_of(check_nul(br#"{"k\u0000": 1}"#).unwrap_err()).1,
            "body"
        );
        let e = check_nul(br#"{"description": "secret\u0000"}"#).unwrap_err();
        assert!(!format!("{:?}", e.problem()).contains("secret"));
        assert_eq!(field_of(check_nul(br#""\u0000""#).unwrap_err()).1, "body");
    }

    #[test]
    fn unknown_field_is_named() {
        let e = parse_json::<Body>(br#"{"email":"a@b.c","tenantId":"x"}"#).unwrap_err();
        assert_eq!(field_of(e), (422, "tenantId".into()));
    }

    #[test]
    fn nested_type_error_names_path() {
        let e = parse_json::<Body>(br#"{"email":"a@b.c","nested":{"count":"x"}}"#).unwrap_err();
        assert_eq!(field_of(e), (422, "nested.count".into()));
    }

    #[test]
    fn missing_field_is_named() {
        let e = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(field_of(e), (422, "email".into()));
    }

    #[test]
    fn entity_tags_round_trip() {
        let tag = etag(7);
        assert_eq!(tag.to_str().unwrap(), "\"7\"");
        assert_eq!(parse_etag("\"7\""), Some(7));
        assert_eq!(parse_etag("W/\"7\""), Some(7));
        assert_eq!(parse_etag("*"), None);
        assert_eq!(parse_etag("7"), None);
        let missing = IfMatch(None).required().unwrap_err().problem();
        assert_eq!(missing.status, 428);
        assert_eq!(missing.errors[0].field, "If-Match");
    }

    #[test]
    fn integral_floats_are_integers_and_nothing_else_changes() {
        let b: Body = parse_json(br#"{"email":"a@b.c","nested":{"count":3.0}}"#).unwrap();
        assert_eq!(b.nested.unwrap().count, 3);
        #[derive(Debug, Deserialize)]
        struct Free {
            n: u32,
            m: u32,
            free: serde_json::Value,
        }
        let f: Free = parse_json(br#"{"n": 1.0, "m": 2.0, "free": {"x": 2.0}}"#).unwrap();
        assert_eq!((f.n, f.m), (1, 2));
        assert_eq!(f.free["x"].as_f64(), Some(2.0));
        assert!(f.free["x"].is_f64());
        let big: Body =
            parse_json(br#"{"email":"a@b.c","nested":{"count":4294967295.0}}"#).unwrap();
        assert_eq!(big.nested.unwrap().count, u32::MAX);
        let e = parse_json::<Body>(br#"{"email":"a@b.c","nested":{"count":3.5}}"#).unwrap_err();
        assert_eq!(field_of(e), (422, "nested.count".into()));
    }

    #[test]
    fn malformed_json_is_400() {
        let e = parse_json::<Body>(br#"{"email": "#).unwrap_err();
        assert_eq!(field_of(e), (400, "body".into()));
    }
}

//! The one error type of the services' HTTP layer, rendered as RFC 9457 problem+json.
//!
//! Client errors carry a message (and field errors) a client can act on; server errors are
//! logged with their cause and answered with a generic message that echoes no internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prismicx_store::mongo::TenantMongoError;
use prismicx_store::retry::TransientError;
use prismicx_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One invalid input: where (a JSON pointer-like path, a query parameter or a header) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The offending field, e.g. `email`, `attributes.team`, `cursor` or `X-Tenant`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Collects the field errors of one request body, then fails with all of them at once (a 422
/// naming every offending field), so a client fixes its request in one round trip.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    /// The value of `r`, or `None` with its message recorded against `field`.
    pub fn check<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.push(field, m);
                None
            }
        }
    }

    /// For a PATCH: the parsed new value when the field was sent (`None` with its message
    /// recorded if `parse` refuses it), else `current`.
    pub fn check_change<V: ?Sized, T>(
        &mut self,
        field: &str,
        sent: Option<&V>,
        parse: impl FnOnce(&V) -> Result<T, String>,
        current: &T,
    ) -> Option<T>
    where
        T: Clone,
    {
        match sent {
            Some(v) => self.check(field, parse(v)),
            None => Some(current.clone()),
        }
    }

    /// Records `message` against `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded, else the 422 with every field error.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }

    /// The error for a validated value that is missing although no field error was recorded (a
    /// bug in the validation, answered 500).
    pub fn lost() -> ApiError {
        ApiError::internal(anyhow::anyhow!("validation lost an error"))
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened, for this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field-level errors (validation failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Errors a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {detail}")]
    Conflict {
        detail: String,
        field: Option<String>,
    },
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// A write that would take the tenant past one of its quotas: 409, type `quota-exceeded`,
    /// the quota named as the field. Nothing was written.
    #[error("quota exceeded: {detail}")]
    QuotaExceeded { detail: String, field: String },
    /// A conditional write sent without its precondition (`If-Match`); the header is named.
    #[error("precondition required: {detail}")]
    PreconditionRequired { detail: String, field: String },
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A rate limit: answered 429 with `Retry-After: <retry_after_secs>`.
    #[error("too many requests: {detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    pub fn conflict(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// 404 for the resource `what` (e.g. `user`) named `id`: "user 42 does not exist".
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} {id} does not exist"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::QuotaExceeded { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionRequired { .. } => StatusCode::PRECONDITION_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PreconditionFailed(_) => "precondition-failed",
            ApiError::QuotaExceeded { .. } => "quota-exceeded",
            ApiError::PreconditionRequired { .. } => "precondition-required",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Validation(_) => "validation",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The problem document for this error (server errors say nothing of their cause).
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (detail, errors) = match self {
            ApiError::BadRequest { detail, field } | ApiError::Conflict { detail, field } => (
                Some(detail.clone()),
                field
                    .iter()
                    .map(|f| FieldError::new(f.clone(), detail.clone()))
                    .collect(),
            ),
            ApiError::PreconditionRequired { detail, field }
            | ApiError::QuotaExceeded { detail, field } => (
                Some(detail.clone()),
                vec![FieldError::new(field.clone(), detail.clone())],
            ),
            ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::PreconditionFailed(d)
            | ApiError::PayloadTooLarge(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::Unavailable(d)
            | ApiError::TooManyRequests { detail: d, .. } => (Some(d.clone()), Vec::new()),
            ApiError::Validation(errors) => (
                Some(match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    many => format!("{} fields are invalid", many.len()),
                }),
                errors.clone(),
            ),
            ApiError::Internal(_) => (
                Some("an internal error occurred; it has been logged".to_string()),
                Vec::new(),
            ),
        };
        Problem {
            problem_type: format!("https://prismicx.io/problems/{}", self.kind()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(
                error = format!("{e:#}"),
                "request failed with an internal error"
            );
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        res
    }
}

/// PostgreSQL SQLSTATEs the services map to client errors.
mod sqlstate {
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            match db.code().as_deref() {
                Some(sqlstate::UNIQUE_VIOLATION) => {
                    return ApiError::Conflict {
                        detail: "a resource with the same unique value already exists".into(),
                        field: None,
                    }
                }
                Some(sqlstate::FOREIGN_KEY_VIOLATION) => {
                    return ApiError::Conflict {
                        detail: "a referenced resource does not exist or is still referenced"
                            .into(),
                        field: None,
                    }
                }
                Some(sqlstate::CHECK_VIOLATION) => {
                    return ApiError::Validation(vec![FieldError::new(
                        db.constraint().unwrap_or("body"),
                        "violates a database constraint",
                    )])
                }
                // Row-level security refusing a write: the request tried to act outside its tenant.
                Some(sqlstate::INSUFFICIENT_PRIVILEGE) => {
                    tracing::warn!(error = %db, "write refused by row-level security or grants");
                    return ApiError::Forbidden(
                        "the operation is outside the tenant's data".into(),
                    );
                }
                Some(sqlstate::SERIALIZATION_FAILURE) | Some(sqlstate::DEADLOCK_DETECTED) => {
                    return ApiError::Conflict {
                        detail: "a concurrent change conflicted with this one; retry".into(),
                        field: None,
                    }
                }
                _ => {}
            }
        }
        if matches!(e, sqlx::Error::PoolTimedOut) {
            return ApiError::Unavailable("the database is busy; retry".into());
        }
        ApiError::Internal(e.into())
    }
}

impl From<mongodb::error::Error> for ApiError {
    fn from(e: mongodb::error::Error) -> Self {
        if crate::mongo::is_duplicate_key(&e) {
            return ApiError::Conflict {
                detail: "a resource with the same unique value already exists".into(),
                field: None,
            };
        }
        ApiError::Internal(e.into())
    }
}

impl From<TenantMongoError> for ApiError {
    fn from(e: TenantMongoError) -> Self {
        match e {
            TenantMongoError::ForeignTenant | TenantMongoError::TenantFieldUpdate => {
                ApiError::Forbidden("the operation is outside the tenant's data".into())
            }
            TenantMongoError::Mongo(m) => m.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Postgres(e) => e.into(),
            StoreError::Mongo(e) => e.into(),
        }
    }
}

/// A handler's error inside a store retry (a MongoDB transaction body): transient only when it
/// wraps a transient MongoDB error.
impl TransientError for ApiError {
    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        match self {
            ApiError::Internal(e) => e.downcast_ref::<mongodb::error::Error>(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_transient_only_when_they_wrap_one() {
        assert!(!ApiError::NotFound("x".into()).is_transient());
        assert!(!ApiError::internal(anyhow::anyhow!("boom")).is_transient());
    }

    #[test]
    fn store_errors_keep_their_http_mapping() {
        assert_eq!(
            ApiError::from(TenantMongoError::ForeignTenant).status(),
            403
        );
        assert_eq!(
            ApiError::from(StoreError::Postgres(sqlx::Error::PoolTimedOut)).status(),
            503
        );
        assert_eq!(
            ApiError::from(StoreError::Mongo(TenantMongoError::TenantFieldUpdate)).status(),
            403
        );
    }

    #[test]
    fn internal_errors_do_not_echo_their_cause() {
        let e = ApiError::internal(anyhow::anyhow!("password=hunter2 connection refused"));
        let p = e.problem();
        assert_eq!(p.status, 500);
        assert!(!serde_json::to_string(&p).unwrap().contains("hunter2"));
    }

    #[test]
    fn validation_problem_lists_fields() {
        let e = ApiError::Validation(vec![
            FieldError::new("email", "must contain @"),
            FieldError::new("displayName", "must not be empty"),
        ]);
        let p = e.problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors.len(), 2);
        assert_eq!(p.detail.as_deref(), Some("2 fields are invalid"));
        assert_eq!(p.problem_type, "https://prismicx.io/problems/validation");
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let res = ApiError::TooManyRequests {
            detail: "slow down".into(),
            retry_after_secs: 7,
        }
        .into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn responses_are_problem_json() {
        let res = ApiError::NotFound("user not found".into()).into_response();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}

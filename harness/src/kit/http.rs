//! An HTTP client that drives an axum application in process (`oneshot`, no socket): [`Call`]
//! builds a request (key, headers, JSON body), [`ApiClient`] sends it, [`Reply`] holds the
//! status, headers and JSON body and checks problem+json answers.

use std::fmt::Display;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{TestTenant, PLATFORM_KEY};

/// A response, its body parsed as JSON (`Null` when empty, a string when not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The fields named in a problem document's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn is_problem(&self) -> bool {
        self.headers
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }

    /// Fails the test unless the status is `want` (the message names `what` and the body).
    #[track_caller]
    pub fn expect(self, want: StatusCode, what: &str) -> Self {
        assert_eq!(self.status, want, "{what}: {}", self.body);
        self
    }

    /// Fails the test unless the status is `want` and the problem's `errors` name exactly
    /// `fields`, in order (the message names `what` and the body).
    #[track_caller]
    pub fn expect_fields(self, want: StatusCode, fields: &[&str], what: impl Display) -> Self {
        assert_eq!(self.status, want, "{what}: {}", self.body);
        assert_eq!(self.error_fields(), fields, "{what}");
        self
    }

    /// Fails the test unless this is an `application/problem+json` answer with status `want`
    /// whose `errors` name exactly `fields`, in any order (the message names `what` and the body).
    #[track_caller]
    pub fn expect_field_set(self, want: StatusCode, fields: &[&str], what: &str) -> Self {
        assert_eq!(self.status, want, "{what}: {}", self.body);
        assert!(self.is_problem(), "{what}: not problem+json");
        let mut got = self.error_fields();
        got.sort();
        let mut fields = fields.to_vec();
        fields.sort_unstable();
        assert_eq!(got, fields, "{what}");
        self
    }

    /// Fails the test unless this is an `application/problem+json` answer with status `want`
    /// whose `status` member agrees.
    #[track_caller]
    pub fn expect_problem(self, want: StatusCode, what: &str) -> Self {
        assert_eq!(self.status, want, "{what}: {}", self.body);
        assert!(
            self.is_problem(),
            "{what}: not problem+json: {:?}",
            self.headers
        );
        assert_eq!(self.body["status"], want.as_u16(), "{what}: {}", self.body);
        self
    }

    /// `field` of every element of the list at `body[list]` (`"items"` for a page; `""` when
    /// the body itself is the list), as strings; fails the test when the list or a field is
    /// missing or not a string.
    #[track_caller]
    pub fn strs_of(&self, list: &str, field: &str) -> Vec<String> {
        let items = if list.is_empty() {
            &self.body
        } else {
            &self.body[list]
        };
        let items = items
            .as_array()
            .unwrap_or_else(|| panic!("no list {list:?} in {}", self.body));
        field_strs(items, field)
    }

    /// `field` of every item of a page (`body.items`), as strings: [`Reply::strs_of`].
    #[track_caller]
    pub fn item_strs(&self, field: &str) -> Vec<String> {
        self.strs_of("items", field)
    }

    /// `body[field]` as a string; panics (fails the test) when absent.
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing in {}", self.body))
            .to_string()
    }
}

/// `field` of every one of `items` as strings (a page's items, [`ApiClient::all_pages`]'s
/// result); fails the test when one has no such string.
#[track_caller]
pub fn field_strs(items: &[Value], field: &str) -> Vec<String> {
    items
        .iter()
        .map(|e| {
            e[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} missing in {e}"))
                .to_string()
        })
        .collect()
}

/// One request for [`ApiClient::send`].
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Call {
            method,
            path: path.into(),
            key: None,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Drives an application in process.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub router: Router,
}

impl ApiClient {
    pub fn new(router: Router) -> Self {
        ApiClient { router }
    }

    pub async fn send(&self, call: Call) -> Reply {
        let mut req = Request::builder().method(call.method).uri(call.path);
        if let Some(k) = &call.key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        for (n, v) in &call.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let req = match call.body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&b).expect("json"))),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.raw(req).await
    }

    /// Sends a request built by hand (malformed bodies, odd headers).
    pub async fn raw(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET path` with `key` (any key: revoked, expired, issued by the test).
    pub async fn get_with(&self, key: &str, path: &str) -> Reply {
        self.send(Call::new(Method::GET, path).key(key)).await
    }

    /// `method path` as `tenant`, with its own key.
    pub async fn as_tenant(
        &self,
        tenant: &TestTenant,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut call = Call::new(method, path).key(&tenant.key);
        call.body = body;
        self.send(call).await
    }

    /// Every item of the list at `path` with `key`, page by page (`limit` a page, following
    /// `nextCursor`), each page checked: 200 and at most `limit` items.
    pub async fn all_pages(&self, key: &str, path: &str, limit: u32) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let page = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let r = self.send(Call::new(Method::GET, &page).key(key)).await;
            assert_eq!(r.status, StatusCode::OK, "{page}: {}", r.body);
            let items = r.body["items"].as_array().expect("items");
            assert!(
                items.len() <= limit as usize,
                "{page}: a page over its limit"
            );
            out.extend(items.iter().cloned());
            match r.body.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
        panic!("{path}: pagination did not end");
    }

    /// `method path` as `tenant` with `body` sent as it is under `content_type` (malformed JSON,
    /// other media types).
    pub async fn raw_as(
        &self,
        tenant: &TestTenant,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", tenant.key))
            .header("content-type", content_type)
            .body(body.into())
            .expect("request");
        self.raw(req).await
    }

    /// `method path` as `tenant` with `If-Match: "<tag>"`.
    pub async fn as_tenant_if(
        &self,
        tenant: &TestTenant,
        method: Method,
        path: &str,
        tag: i64,
        body: Option<Value>,
    ) -> Reply {
        let mut call = Call::new(method, path)
            .key(&tenant.key)
            .header("if-match", &format!("\"{tag}\""));
        call.body = body;
        self.send(call).await
    }

    /// `method path` with the platform key, acting for `slug` (`X-Tenant`).
    pub async fn as_platform(
        &self,
        slug: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut call = Call::new(method, path)
            .key(PLATFORM_KEY)
            .header("x-tenant", slug);
        call.body = body;
        self.send(call).await
    }
}

//! `spawn()` for task-repo tests: tenants with their own keys (standard and dedicated), the
//! service's layout provisioned on the harness MongoDB as the operator does it, and the
//! application driven without a socket through [`ApiClient`].

#![allow(dead_code, clippy::unwrap_used)]

use axum::http::{Method, StatusCode};
use prismicx_harness::service::{
    mongo_store, tenancy_of, test_tenants, ApiClient, Call, Reply, TestTenant,
};
use prismicx_service_common::mongo::MongoStore;
use prismicx_task_repo::{app, AppSettings, AppState, MONGO};
use serde_json::{json, Value};

pub struct TestApp {
    pub api: ApiClient,
    pub tenants: Vec<TestTenant>,
    pub store: MongoStore,
}

/// `n` tenants (those in `dedicated` dedicated) and the application serving them.
pub async fn spawn(n: usize, dedicated: &[usize]) -> TestApp {
    spawn_tenants(test_tenants(n, dedicated)).await
}

pub async fn spawn_tenants(tenants: Vec<TestTenant>) -> TestApp {
    let store = mongo_store(MONGO, &tenants).await;
    let state = AppState {
        store: store.clone(),
        tenancy: tenancy_of(&tenants),
    };
    TestApp {
        api: ApiClient::new(app(state, AppSettings::default())),
        tenants,
        store,
    }
}

/// `"<revision>"` as If-Match wants it.
pub fn tag(revision: i64) -> String {
    format!("\"{revision}\"")
}

impl TestApp {
    pub fn t(&self, i: usize) -> &TestTenant {
        &self.tenants[i]
    }

    pub async fn call(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.api
            .as_tenant(&self.tenants[i], method, path, body)
            .await
    }

    /// `method path` as tenant `i` with `If-Match: "<revision>"`.
    pub async fn call_if(
        &self,
        i: usize,
        method: Method,
        path: &str,
        revision: i64,
        body: Option<Value>,
    ) -> Reply {
        let mut call = Call::new(method, path)
            .key(&self.tenants[i].key)
            .header("if-match", &tag(revision));
        call.body = body;
        self.api.send(call).await
    }

    /// Creates a task for tenant `i` from `body`; returns the created task.
    pub async fn create(&self, i: usize, body: Value) -> Value {
        let r = self.call(i, Method::POST, "/v1/tasks", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    /// Creates a task titled `title`; returns its id.
    pub async fn create_titled(&self, i: usize, title: &str) -> String {
        self.create(i, json!({ "title": title })).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Task `id` as tenant `i` sees it (status and body).
    pub async fn get(&self, i: usize, id: &str) -> Reply {
        self.call(i, Method::GET, &format!("/v1/tasks/{id}"), None)
            .await
    }

    /// Moves task `id` of tenant `i` (at `revision`) to `to`.
    pub async fn transition(&self, i: usize, id: &str, revision: i64, to: &str) -> Reply {
        self.call_if(
            i,
            Method::POST,
            &format!("/v1/tasks/{id}/transitions"),
            revision,
            Some(json!({ "to": to })),
        )
        .await
    }

    /// Every task of tenant `i` through `query` (without limit/cursor), following nextCursor
    /// with page size `limit`; the ids in order.
    pub async fn list_all(&self, i: usize, query: &str, limit: u32) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if query.is_empty() { "" } else { "&" };
        for _ in 0..1000 {
            let mut path = format!("/v1/tasks?{query}{sep}limit={limit}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let r = self.call(i, Method::GET, &path, None).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            let items = r.body["items"].as_array().unwrap();
            assert!(items.len() <= limit as usize);
            out.extend(items.iter().cloned());
            match r.body.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
        panic!("pagination did not end");
    }
}

/// The ids of a list of tasks.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

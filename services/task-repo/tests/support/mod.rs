//! task-repo's own test support: the application on the kit's tenants (standard and dedicated)
//! and MongoDB layout ([`spawn`]), and its seeds (create, get, transition, list every page).

#![allow(dead_code, clippy::unwrap_used)]

use axum::http::{Method, StatusCode};
use prismicx_harness::kit::Reply;
use prismicx_task_repo::{app, AppSettings, AppState, MONGO};
use serde_json::{json, Value};

prismicx_harness::service_app!(
    /// The application under test; the kit's `ServiceApp` plus this service's seeds.
    pub struct TestApp(AppState);
    mongo MONGO,
    |store, tenancy| AppState { store, tenancy },
    |state| app(state, AppSettings::default())
);

/// `"<revision>"` as If-Match wants it.
pub fn tag(revision: i64) -> String {
    format!("\"{revision}\"")
}

impl TestApp {
    /// Creates a task for tenant `i` from `body`; returns the created task.
    pub async fn create(&self, i: usize, body: Value) -> Value {
        let r = self.post(i, "/v1/tasks", body).await;
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
    pub async fn task(&self, i: usize, id: &str) -> Reply {
        self.get(i, &format!("/v1/tasks/{id}")).await
    }

    /// Patches task `id` of tenant `i` (at `revision`) with `body`.
    pub async fn patch_task(&self, i: usize, id: &str, revision: i64, body: Value) -> Reply {
        let path = format!("/v1/tasks/{id}");
        self.patch_if(i, &path, revision, body).await
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
    /// with page size `limit`.
    pub async fn list_all(&self, i: usize, query: &str, limit: u32) -> Vec<Value> {
        let path = match query {
            "" => "/v1/tasks".to_string(),
            q => format!("/v1/tasks?{q}"),
        };
        self.all_pages(i, &path, limit).await
    }
}

/// The ids of a list of tasks.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

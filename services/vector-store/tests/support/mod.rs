//! vector-store's own test support: the application on the kit's tenants and MongoDB layout,
//! over an engine in a data directory the test owns ([`spawn`], [`spawn_on`] to open a second
//! application over the same directory), and its seeds (a collection, a batch of points, a
//! query).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use mongodb::bson::{doc, Document};
use prismicx_harness::kit::{raw_find, Reply, ServiceApp, TestTenant};
use prismicx_service_common::mongo::tenant_bson;
use prismicx_tenancy::VectorQuota;
use prismicx_vector_store::engine::{Durability, Engine, EngineConfig};
use prismicx_vector_store::{app, AppSettings, AppState, COLLECTIONS, MONGO};
use serde_json::{json, Value};

prismicx_harness::service_app!(
    /// The application under test; the kit's `ServiceApp` plus this service's seeds.
    pub struct TestApp(AppState);
);

/// The quota of the tests that do not test quotas.
pub fn roomy() -> VectorQuota {
    VectorQuota {
        max_collections: Some(100),
        max_points: Some(1_000_000),
        max_bytes: Some(1 << 32),
    }
}

/// A data directory removed when the test ends.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("data directory")
}

/// The application serving `tenants` over the engine in `dir`, with `quota` as the default.
pub async fn spawn_on(tenants: Vec<TestTenant>, dir: &Path, quota: VectorQuota) -> TestApp {
    let dir: PathBuf = dir.to_path_buf();
    let app = ServiceApp::on_mongo(MONGO, tenants, move |store, tenancy| {
        let engine = Engine::open(EngineConfig {
            data_dir: dir.clone(),
            memory_budget_bytes: 64 * 1024 * 1024,
            durability: Durability::Relaxed,
            checkpoint_bytes: 1024 * 1024,
        })
        .expect("the engine opens");
        let state = AppState::new(store, tenancy, engine, dir, quota);
        let settings = AppSettings {
            body_limit: 32 * 1024 * 1024,
            ..AppSettings::default()
        };
        (app(state.clone(), settings), state)
    });
    TestApp(app.await)
}

/// `n` tenants (those in `dedicated` dedicated) and the application serving them over a fresh
/// data directory (kept as long as the returned directory lives).
pub async fn spawn(n: usize, dedicated: &[usize]) -> (TestApp, tempfile::TempDir) {
    let dir = data_dir();
    let app = spawn_on(
        prismicx_harness::kit::test_tenants(n, dedicated),
        dir.path(),
        roomy(),
    )
    .await;
    (app, dir)
}

/// A deterministic vector of `dimension` values for point number `i`.
pub fn vector(i: usize, dimension: usize) -> Vec<f32> {
    (0..dimension)
        .map(|d| {
            (((i * 31 + d * 7) % 17) as f32 - 8.0) / 8.0
                + if d == i % dimension { 3.0 } else { 0.0 }
        })
        .collect()
}

/// `n` points `p0…` of `dimension` with payload `{"n": i, "even": i % 2 == 0}`.
pub fn points(n: usize, dimension: usize) -> Value {
    let points: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("p{i}"), "vector": vector(i, dimension),
                   "payload": {"n": i, "even": i % 2 == 0}})
        })
        .collect();
    json!({ "points": points })
}

impl TestApp {
    /// Creates collection `name` of `dimension` (cosine) as tenant `t`.
    pub async fn create(&self, t: usize, name: &str, dimension: usize) -> Reply {
        self.post(
            t,
            "/v1/collections",
            json!({"name": name, "dimension": dimension, "metric": "l2",
                   "indexedFields": ["n"]}),
        )
        .await
        .expect(StatusCode::CREATED, &format!("create {name}"))
    }

    /// Upserts [`points`] `n` of `dimension` into `name` as tenant `t`.
    pub async fn seed(&self, t: usize, name: &str, n: usize, dimension: usize) {
        let r = self
            .put(
                t,
                &format!("/v1/collections/{name}/points"),
                points(n, dimension),
            )
            .await
            .expect(StatusCode::OK, &format!("seed {name}"));
        assert_eq!(r.body["upserted"], n as u64);
    }

    /// The number of points in `name` as tenant `t` sees it.
    pub async fn count(&self, t: usize, name: &str) -> u64 {
        let r = self
            .post(
                t,
                &format!("/v1/collections/{name}/points/count"),
                json!({}),
            )
            .await
            .expect(StatusCode::OK, "count");
        r.body["count"].as_u64().expect("count")
    }

    /// The ids of the `limit` nearest points to `vector` in `name`, as tenant `t`.
    pub async fn nearest(&self, t: usize, name: &str, vector: &[f32], limit: usize) -> Vec<String> {
        let r = self
            .post(
                t,
                &format!("/v1/collections/{name}/query"),
                json!({"vector": vector, "limit": limit}),
            )
            .await
            .expect(StatusCode::OK, "query");
        r.strs_of("results", "id")
    }

    /// Tenant `t`'s metadata documents, read raw where they must be.
    pub async fn raw_docs(&self, t: usize) -> Vec<Document> {
        let filter = doc! {"tenant_id": tenant_bson(self.tenants[t].id())};
        raw_find(MONGO, &self.tenants[t], COLLECTIONS, filter, None).await
    }
}

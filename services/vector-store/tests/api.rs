//! The API end to end against real MongoDB servers and a real engine: the round trip of a
//! collection and its points, validation that changes nothing, quota refusals that leave
//! nothing, a restart over the same data directory, the garbage rule, the platform routes.

mod support;

use axum::http::{Method, StatusCode};
use prismicx_harness::kit::Call;
use prismicx_tenancy::VectorQuota;
use prismicx_vector_store::engine::{
    CollectionKey, CollectionSpec, IndexParams, Metric, Quota, Scope,
};
use serde_json::json;
use support::{points, spawn, spawn_on, vector};
use uuid::Uuid;

#[tokio::test]
async fn a_collection_round_trips_through_every_route() {
    let (app, _dir) = spawn(1, &[]).await;
    let r = app.create(0, "docs", 4).await;
    assert_eq!(
        r.header("location").as_deref(),
        Some("/v1/collections/docs")
    );
    assert_eq!(r.body["dimension"], 4);
    assert_eq!(r.body["metric"], "l2");
    assert_eq!(r.body["index"]["efSearch"], 64);
    assert_eq!(r.body["tenantId"], app.tenant(0).id().to_string());
    app.create(0, "other", 2).await;
    app.seed(0, "docs", 20, 4).await;

    let r = app
        .get(0, "/v1/collections/docs")
        .await
        .expect(StatusCode::OK, "get");
    assert_eq!(r.body["stats"]["points"], 20);
    assert_eq!(r.body["usage"]["collections"], 2);
    assert_eq!(r.body["usage"]["points"], 20);
    assert_eq!(r.body["quota"]["maxPoints"], 1_000_000);
    assert!(r.body["stats"]["bytesOnDisk"].as_u64().is_some());
    let names: Vec<String> = app
        .all_pages(0, "/v1/collections", 1)
        .await
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["docs", "other"]);

    // A point, with and without its vector; an unknown one.
    let r = app
        .get(0, "/v1/collections/docs/points/p3?withVector=true")
        .await
        .expect(StatusCode::OK, "point");
    assert_eq!(r.body["payload"], json!({"n": 3, "even": false}));
    assert_eq!(r.body["vector"].as_array().unwrap().len(), 4);
    let r = app.get(0, "/v1/collections/docs/points/p3").await;
    assert!(r.body.get("vector").is_none(), "{}", r.body);
    app.get(0, "/v1/collections/docs/points/nope")
        .await
        .expect_problem(StatusCode::NOT_FOUND, "unknown point");

    // The nearest point to p5's vector is p5; a filter and an exact scan agree.
    let near = app.nearest(0, "docs", &vector(5, 4), 3).await;
    assert_eq!(near[0], "p5");
    let r = app
        .post(
            0,
            "/v1/collections/docs/query",
            json!({"vector": vector(5, 4), "limit": 5, "exact": true,
                   "filter": {"even": true}, "withVector": true}),
        )
        .await
        .expect(StatusCode::OK, "filtered query");
    let ids = r.strs_of("results", "id");
    assert!(!ids.is_empty() && ids.len() <= 5);
    for hit in r.body["results"].as_array().unwrap() {
        assert_eq!(hit["payload"]["even"], true, "{hit}");
        assert_eq!(hit["vector"].as_array().unwrap().len(), 4);
    }
    assert_eq!(r.body["plan"], "exact_scan");
    let r = app
        .post(
            0,
            "/v1/collections/docs/query/batch",
            json!({"queries": [{"vector": vector(1, 4), "limit": 1, "withPayload": false},
                               {"vector": vector(2, 4), "limit": 2}]}),
        )
        .await
        .expect(StatusCode::OK, "batch");
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["results"][0]["id"], "p1");
    assert!(results[0]["results"][0].get("payload").is_none());
    assert_eq!(results[1]["results"].as_array().unwrap().len(), 2);

    // Count with a filter, scroll by both methods, delete by id and by filter.
    let r = app
        .post(
            0,
            "/v1/collections/docs/points/count",
            json!({"filter": {"n": {"$lt": 5}}}),
        )
        .await
        .expect(StatusCode::OK, "count");
    assert_eq!(r.body["count"], 5);
    let scrolled = app
        .all_pages(0, "/v1/collections/docs/points/scroll", 6)
        .await;
    assert_eq!(scrolled.len(), 20);
    let r = app
        .post(
            0,
            "/v1/collections/docs/points/scroll",
            json!({"limit": 3, "filter": {"even": false}}),
        )
        .await
        .expect(StatusCode::OK, "scroll");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 3);
    let cursor = r.str("nextCursor");
    let r = app
        .post(
            0,
            "/v1/collections/docs/points/scroll",
            json!({"limit": 200, "filter": {"even": false}, "cursor": cursor}),
        )
        .await
        .expect(StatusCode::OK, "scroll on");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 7);
    let r = app
        .post(
            0,
            "/v1/collections/docs/points/delete",
            json!({"ids": ["p0", "p1", "zz"]}),
        )
        .await
        .expect(StatusCode::OK, "delete ids");
    assert_eq!(r.body["deleted"], 2);
    let r = app
        .post(
            0,
            "/v1/collections/docs/points/delete",
            json!({"filter": {"even": true}}),
        )
        .await
        .expect(StatusCode::OK, "delete filter");
    assert_eq!(r.body["deleted"], 9);
    assert_eq!(app.count(0, "docs").await, 9);

    // An upsert replaces by id.
    let r = app
        .put(
            0,
            "/v1/collections/docs/points",
            json!({"points": [{"id": "p3", "vector": [0, 0, 0, 1], "payload": {"v": 2}}]}),
        )
        .await
        .expect(StatusCode::OK, "replace");
    assert_eq!(r.body["upserted"], 1);
    let r = app.get(0, "/v1/collections/docs/points/p3").await;
    assert_eq!(r.body["payload"], json!({"v": 2}));
    assert_eq!(app.count(0, "docs").await, 9);

    // Delete: 204, then 404 everywhere; the name is free again.
    app.delete(0, "/v1/collections/docs")
        .await
        .expect(StatusCode::NO_CONTENT, "delete");
    app.expect_statuses(
        0,
        &[
            (Method::GET, "/v1/collections/docs", StatusCode::NOT_FOUND),
            (
                Method::DELETE,
                "/v1/collections/docs",
                StatusCode::NOT_FOUND,
            ),
            (
                Method::GET,
                "/v1/collections/docs/points/p3",
                StatusCode::NOT_FOUND,
            ),
        ],
    )
    .await;
    assert_eq!(app.raw_docs(0).await.len(), 1);
    app.create(0, "docs", 8).await;
    assert_eq!(app.count(0, "docs").await, 0);
}

#[tokio::test]
async fn invalid_requests_are_422s_naming_the_field_and_change_nothing() {
    let (app, _dir) = spawn(1, &[]).await;
    let bad = StatusCode::UNPROCESSABLE_ENTITY;
    app.expect_errors(
        0,
        Method::POST,
        "/v1/collections",
        &[
            (json!({"name": "Docs", "dimension": 4, "metric": "l2"}), bad, &["name"]),
            (json!({"name": "1docs", "dimension": 4, "metric": "l2"}), bad, &["name"]),
            (json!({"name": "d", "dimension": 0, "metric": "l2"}), bad, &["dimension"]),
            (json!({"name": "d", "dimension": 4097, "metric": "l2"}), bad, &["dimension"]),
            (json!({"name": "d", "dimension": 4, "metric": "hamming"}), bad, &["metric"]),
            (
                json!({"name": "d", "dimension": 4, "metric": "dot", "index": {"m": 65, "efSearch": 0}}),
                bad,
                &["index.m", "index.efSearch"],
            ),
            (
                json!({"name": "d", "dimension": 4, "metric": "dot",
                       "indexedFields": (0..17).map(|i| format!("f{i}")).collect::<Vec<_>>()}),
                bad,
                &["indexedFields"],
            ),
        ],
    )
    .await;
    assert!(
        app.raw_docs(0).await.is_empty(),
        "a refused create stored metadata"
    );
    app.create(0, "docs", 3).await;
    app.post(
        0,
        "/v1/collections",
        json!({"name": "docs", "dimension": 3, "metric": "l2"}),
    )
    .await
    .expect_fields(StatusCode::CONFLICT, &["name"], "duplicate name");
    app.seed(0, "docs", 3, 3).await;

    let path = "/v1/collections/docs/points";
    let mut many = points(1001, 3);
    let too_many = many.take();
    app.expect_errors(
        0,
        Method::PUT,
        path,
        &[
            (
                json!({"points": [{"id": "a", "vector": [1, 2, 3]}, {"id": "b", "vector": [1, 2]},
                                  {"id": "c", "vector": [1, 2, 3], "payload": [1]},
                                  {"id": "d", "vector": [1, 2, 3e300]}]}),
                bad,
                &["points[1].vector", "points[2].payload", "points[3].vector"],
            ),
            (json!({"points": []}), bad, &["points"]),
            (too_many, bad, &["points"]),
            (
                json!({"points": [{"id": "a", "vector": ["x", 1, 2]}]}),
                bad,
                &["points[0].vector[0]"],
            ),
        ],
    )
    .await;
    // Nothing of the refused batches was written, and the old points are as they were.
    assert_eq!(app.count(0, "docs").await, 3);
    app.get(0, "/v1/collections/docs/points/a")
        .await
        .expect(StatusCode::NOT_FOUND, "a refused point");

    let q = "/v1/collections/docs/query";
    app.expect_errors(
        0,
        Method::POST,
        q,
        &[
            (json!({"vector": [1, 2]}), bad, &["vector"]),
            (json!({"vector": [1, 2, 3], "limit": 0}), bad, &["limit"]),
            (json!({"vector": [1, 2, 3], "limit": 1001}), bad, &["limit"]),
            (json!({"vector": [1, 2, 3], "ef": 0}), bad, &["ef"]),
        ],
    )
    .await;
    let r = app
        .post(
            0,
            q,
            json!({"vector": [1, 2, 3], "filter": {"n": {"$gt": "x", "$bogus": 1}}}),
        )
        .await;
    assert_eq!(r.status, bad, "{}", r.body);
    assert!(
        r.error_fields().iter().all(|f| f.starts_with("filter")),
        "{}",
        r.body
    );
    let r = app
        .post(
            0,
            "/v1/collections/docs/query/batch",
            json!({"queries": [{"vector": [1, 2, 3]}, {"vector": [1, 2, 3]},
                               {"vector": [1, 2, 3], "filter": {"$and": 5}}]}),
        )
        .await;
    assert_eq!(r.status, bad, "{}", r.body);
    assert!(
        r.error_fields()
            .iter()
            .all(|f| f.starts_with("queries[2].filter")),
        "{}",
        r.body
    );
    app.post(
        0,
        "/v1/collections/docs/query/batch",
        json!({"queries": []}),
    )
    .await
    .expect_fields(bad, &["queries"], "no queries");
    app.expect_errors(
        0,
        Method::POST,
        "/v1/collections/docs/points/delete",
        &[
            (json!({}), bad, &["ids"]),
            (json!({"ids": ["p1"], "filter": {"n": 1}}), bad, &["ids"]),
            (json!({"ids": [""]}), bad, &["ids[0]"]),
        ],
    )
    .await;
    assert_eq!(app.count(0, "docs").await, 3);
}

#[tokio::test]
async fn a_quota_refusal_writes_nothing() {
    let dir = support::data_dir();
    let quota = VectorQuota {
        max_collections: Some(1),
        max_points: Some(5),
        max_bytes: None,
    };
    let app = spawn_on(
        prismicx_harness::kit::test_tenants(1, &[]),
        dir.path(),
        quota,
    )
    .await;
    app.create(0, "docs", 3).await;
    let r = app
        .post(
            0,
            "/v1/collections",
            json!({"name": "more", "dimension": 3, "metric": "l2"}),
        )
        .await
        .expect_problem(StatusCode::CONFLICT, "second collection");
    assert_eq!(
        r.body["type"],
        "https://prismicx.io/problems/quota-exceeded"
    );
    assert_eq!(r.error_fields(), ["quota.maxCollections"]);
    assert_eq!(
        app.raw_docs(0).await.len(),
        1,
        "the refused collection's metadata stayed"
    );
    app.get(0, "/v1/collections/more")
        .await
        .expect(StatusCode::NOT_FOUND, "refused collection");

    app.seed(0, "docs", 4, 3).await;
    let r = app
        .put(0, "/v1/collections/docs/points", points(3, 3))
        .await
        .expect(StatusCode::OK, "replacing stays within the quota");
    assert_eq!(r.body["upserted"], 3);
    let batch =
        json!({"points": [{"id": "x1", "vector": [1, 0, 0]}, {"id": "x2", "vector": [0, 1, 0]}]});
    let r = app
        .put(0, "/v1/collections/docs/points", batch)
        .await
        .expect_problem(StatusCode::CONFLICT, "over the point quota");
    assert_eq!(r.error_fields(), ["quota.maxPoints"]);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("nothing was written"));
    assert_eq!(app.count(0, "docs").await, 4);
    app.get(0, "/v1/collections/docs/points/x1")
        .await
        .expect(StatusCode::NOT_FOUND, "a point of the refused batch");
}

#[tokio::test]
async fn a_restart_over_the_same_data_directory_keeps_everything() {
    let dir = support::data_dir();
    let tenants = prismicx_harness::kit::test_tenants(2, &[1]);
    let first = spawn_on(tenants.clone(), dir.path(), support::roomy()).await;
    for t in 0..2 {
        first.create(t, "docs", 4).await;
        first.seed(t, "docs", 12, 4).await;
    }
    first
        .post(
            0,
            "/v1/collections/docs/points/delete",
            json!({"ids": ["p2"]}),
        )
        .await
        .expect(StatusCode::OK, "delete");
    drop(first);

    let second = spawn_on(tenants, dir.path(), support::roomy()).await;
    assert_eq!(second.count(0, "docs").await, 11);
    assert_eq!(second.count(1, "docs").await, 12);
    for t in 0..2 {
        assert_eq!(second.nearest(t, "docs", &vector(7, 4), 1).await, ["p7"]);
    }
    second
        .get(0, "/v1/collections/docs/points/p2")
        .await
        .expect(StatusCode::NOT_FOUND, "a deleted point after the restart");
}

#[tokio::test]
async fn data_without_metadata_is_swept_once_older_than_a_minute() {
    use prismicx_vector_store::garbage;
    let (app, _dir) = spawn(1, &[]).await;
    app.create(0, "kept", 2).await;
    let tenant = app.tenant(0).placement.clone();
    let spec = CollectionSpec {
        dimension: 2,
        metric: Metric::Cosine,
        index: IndexParams::default(),
        indexed_fields: vec![],
    };
    let at = |secs_ago: u64| {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap();
        Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            since.as_secs(),
            since.subsec_nanos(),
        ))
    };
    let (old, young) = (at(3600), at(5));
    assert!(garbage::old_enough(old, std::time::SystemTime::now()));
    assert!(!garbage::old_enough(young, std::time::SystemTime::now()));
    let engine = app.state.vectors.engine.clone();
    for id in [old, young] {
        let key = CollectionKey {
            scope: Scope::Shared,
            tenant: tenant.id,
            collection: id,
        };
        engine
            .create_collection(&key, &spec, &Quota::default())
            .expect("an orphan collection");
    }
    let dropped = garbage::sweep(&app.state.vectors, &app.state.store, &tenant)
        .await
        .expect("sweep");
    assert_eq!(dropped, 1);
    let left = engine.collections_of(Scope::Shared, tenant.id).unwrap();
    assert!(left.contains(&young) && !left.contains(&old), "{left:?}");
    assert_eq!(
        left.len(),
        2,
        "the documented collection was swept: {left:?}"
    );
    // The start-up sweep follows the same rule.
    let dropped =
        garbage::sweep_at_start(&app.state.vectors, &app.state.store, &app.state.data_dir)
            .await
            .expect("start-up sweep");
    assert_eq!(dropped, 0);
    app.seed(0, "kept", 2, 2).await;
}

#[tokio::test]
async fn platform_routes_metrics_and_key_refusals() {
    let (app, _dir) = spawn(2, &[]).await;
    let doc = app.expect_platform_routes().await;
    assert!(doc.body["paths"]["/v1/collections/{name}/query"].is_object());
    app.expect_key_refusals("/v1/collections").await;
    app.create(0, "docs", 2).await;
    app.seed(0, "docs", 3, 2).await;
    app.nearest(0, "docs", &[1.0, 0.0], 1).await;
    let r = app.api.send(Call::new(Method::GET, "/metrics")).await;
    let text = r.body.as_str().expect("metrics text").to_string();
    assert!(text.contains("vector_queries_total{"), "{text}");
    assert!(
        text.contains(r#"plan="index""#) || text.contains(r#"plan="exact_scan""#),
        "{text}"
    );
    assert!(text.contains("vector_resident_collections"), "{text}");
    let tenant = app.tenant(0).id().to_string();
    assert!(
        text.lines().any(|l| l.starts_with("vector_tenant_points")
            && l.contains(&tenant)
            && l.ends_with(" 3")),
        "{text}"
    );
}

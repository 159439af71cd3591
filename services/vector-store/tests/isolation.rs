//! Tenant isolation as an attacker sees it: tenant B's key on tenant A's collection names, a
//! forged `X-Tenant`, the same name in two tenants, and where a dedicated tenant's metadata is
//! stored.

mod support;

use axum::http::{Method, StatusCode};
use mongodb::bson::doc;
use prismicx_harness::kit::{mongo_system, raw_count, Call};
use prismicx_service_common::mongo::tenant_bson;
use prismicx_vector_store::{COLLECTIONS, MONGO};
use serde_json::json;
use support::{spawn, vector};

#[tokio::test]
async fn another_tenants_collection_is_not_found_on_every_route_and_stays_intact() {
    let (app, _dir) = spawn(2, &[]).await;
    let (victim, attacker) = (0, 1);
    app.create(victim, "secrets", 3).await;
    app.seed(victim, "secrets", 6, 3).await;
    let base = "/v1/collections/secrets";
    let attacks = [
        (Method::GET, base.to_string(), None),
        (Method::DELETE, base.to_string(), None),
        (
            Method::PUT,
            format!("{base}/points"),
            Some(
                json!({"points": [{"id": "p0", "vector": [9, 9, 9], "payload": {"owned": true}}]}),
            ),
        ),
        (Method::GET, format!("{base}/points/p0"), None),
        (
            Method::POST,
            format!("{base}/points/delete"),
            Some(json!({"filter": {}})),
        ),
        (
            Method::POST,
            format!("{base}/points/delete"),
            Some(json!({"ids": ["p1"]})),
        ),
        (
            Method::POST,
            format!("{base}/points/count"),
            Some(json!({})),
        ),
        (Method::GET, format!("{base}/points/scroll"), None),
        (
            Method::POST,
            format!("{base}/points/scroll"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("{base}/query"),
            Some(json!({"vector": [1, 0, 0]})),
        ),
        (
            Method::POST,
            format!("{base}/query/batch"),
            Some(json!({"queries": [{"vector": [1, 0, 0]}]})),
        ),
    ];
    for (method, path, body) in &attacks {
        let r = app.call(attacker, method.clone(), path, body.clone()).await;
        r.expect_problem(StatusCode::NOT_FOUND, &format!("{method} {path}"));
    }
    // The attacker's list is empty; the victim's collection is as it was.
    let r = app.get(attacker, "/v1/collections").await;
    assert_eq!(r.body["items"], json!([]));
    assert_eq!(app.count(victim, "secrets").await, 6);
    let r = app.get(victim, "/v1/collections/secrets/points/p0").await;
    assert_eq!(r.body["payload"]["n"], 0, "{}", r.body);
    assert_eq!(
        app.nearest(victim, "secrets", &vector(4, 3), 1).await,
        ["p4"]
    );
}

#[tokio::test]
async fn a_forged_tenant_header_with_a_tenant_key_is_refused() {
    let (app, _dir) = spawn(2, &[]).await;
    app.create(0, "docs", 2).await;
    for (method, path, body) in [
        (Method::GET, "/v1/collections/docs", None),
        (
            Method::POST,
            "/v1/collections/docs/points/count",
            Some(json!({})),
        ),
        (
            Method::PUT,
            "/v1/collections/docs/points",
            Some(json!({"points": [{"id": "x", "vector": [1, 2]}]})),
        ),
    ] {
        let mut call = Call::new(method.clone(), path)
            .key(&app.tenant(1).key)
            .header("x-tenant", app.tenant(0).slug());
        if let Some(b) = body {
            call = call.json(b);
        }
        let r = app.api.send(call).await;
        r.expect_problem(StatusCode::FORBIDDEN, &format!("{method} {path}"));
    }
    assert_eq!(app.count(0, "docs").await, 0);
    // The platform key may name the tenant.
    let r = app
        .platform(
            0,
            Method::POST,
            "/v1/collections/docs/points/count",
            Some(json!({})),
        )
        .await
        .expect(StatusCode::OK, "platform key");
    assert_eq!(r.body["count"], 0);
}

#[tokio::test]
async fn the_same_name_in_two_tenants_names_two_independent_collections() {
    let (app, _dir) = spawn(2, &[1]).await;
    app.create(0, "docs", 2).await;
    app.post(
        1,
        "/v1/collections",
        json!({"name": "docs", "dimension": 5, "metric": "dot"}),
    )
    .await
    .expect(StatusCode::CREATED, "the same name in another tenant");
    app.seed(0, "docs", 4, 2).await;
    app.seed(1, "docs", 7, 5).await;
    assert_eq!(app.count(0, "docs").await, 4);
    assert_eq!(app.count(1, "docs").await, 7);
    let a = app.get(0, "/v1/collections/docs").await;
    let b = app.get(1, "/v1/collections/docs").await;
    assert_ne!(a.body["id"], b.body["id"]);
    assert_eq!(
        (a.body["dimension"].clone(), b.body["dimension"].clone()),
        (json!(2), json!(5))
    );
    app.delete(0, "/v1/collections/docs")
        .await
        .expect(StatusCode::NO_CONTENT, "delete in tenant 0");
    assert_eq!(app.count(1, "docs").await, 7);
    assert_eq!(app.nearest(1, "docs", &vector(3, 5), 1).await.len(), 1);
}

#[tokio::test]
async fn a_dedicated_tenants_metadata_lands_in_its_own_database() {
    let (app, _dir) = spawn(2, &[1]).await;
    app.create(0, "shared-one", 2).await;
    app.create(1, "own-one", 2).await;
    let docs = app.raw_docs(1).await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].get_str("name").unwrap(), "own-one");
    let own_db = MONGO.dedicated_database(&app.tenant(1).placement.slug);
    assert_ne!(own_db, MONGO.database);
    let system = mongo_system().await.database(MONGO.database);
    let filter = doc! {"tenant_id": tenant_bson(app.tenant(1).id())};
    assert_eq!(
        raw_count(&system, COLLECTIONS, filter).await,
        0,
        "a dedicated tenant's metadata is in the shared database"
    );
    let standard = app.raw_docs(0).await;
    assert_eq!(standard.len(), 1);
    assert_eq!(standard[0].get_str("name").unwrap(), "shared-one");
    for key in [
        "dimension",
        "metric",
        "index",
        "indexed_fields",
        "created_at",
        "_id",
    ] {
        assert!(
            standard[0].contains_key(key),
            "{key} missing: {:?}",
            standard[0]
        );
    }
    // The engine keeps the dedicated tenant's files under dedicated/<tenant>/.
    let dir = app
        .state
        .data_dir
        .join("dedicated")
        .join(app.tenant(1).id().to_string());
    assert!(dir.is_dir(), "{} is missing", dir.display());
}

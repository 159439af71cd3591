//! Tenant A (standard) attacking B (dedicated) and C (standard) through tenant-mgmt: every key
//! and setting operation with A's key against the others' ids and names, a forged `X-Tenant`,
//! and a check that each tier's settings are where its tier puts them.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use mongodb::bson::{doc, Document};
use prismicx_harness::kit::{mongo_system, mongo_tenant, Call, TestTenant};
use prismicx_service_common::mongo::tenant_bson;
use prismicx_tenant_mgmt::MONGO;
use serde_json::json;
use support::spawn;

async fn issue(t: &support::TestApp, tenant: &TestTenant, name: &str) -> (String, String) {
    let r = t
        .api
        .as_tenant(
            tenant,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (r.str("id"), r.str("key"))
}

#[tokio::test]
async fn one_tenants_key_never_reaches_another_tenants_keys_or_settings() {
    let t = spawn().await;
    let (a, b, c) = (&t.tenants[0], &t.tenants[1], &t.tenants[2]);
    for victim in [b, c] {
        let (victim_key_id, victim_key) = issue(&t, victim, "victim").await;
        let r = t
            .api
            .as_tenant(
                victim,
                Method::PUT,
                "/v1/settings/secret",
                Some(json!({"value": "v"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);

        // Keys: read, revoke and list.
        let path = format!("/v1/api-keys/{victim_key_id}");
        let r = t.get(0, &path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = t.delete(0, &path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = t.get(0, "/v1/api-keys?limit=200").await;
        assert!(!r.item_strs("id").contains(&victim_key_id));

        // Settings: A's reads and writes of the same name touch A's own setting only.
        let r = t.get(0, "/v1/settings/secret").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = t.delete(0, "/v1/settings/secret").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = t
            .put_if(0, "/v1/settings/secret", 1, json!({"value": "overwritten"}))
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);

        // Naming the victim in X-Tenant with A's key.
        for (method, path) in [
            (Method::GET, "/v1/settings/secret"),
            (Method::GET, "/v1/api-keys"),
            (Method::GET, "/v1/tenant"),
        ] {
            let r = t
                .api
                .send(
                    Call::new(method.clone(), path)
                        .key(&a.key)
                        .header("x-tenant", victim.slug()),
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        }
        let r = t
            .api
            .send(
                Call::new(Method::POST, "/v1/api-keys")
                    .key(&a.key)
                    .header("x-tenant", victim.slug())
                    .json(json!({"name": "planted"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // The victim's key and setting are intact.
        let r = t.api.get_with(&victim_key, "/v1/settings/secret").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["value"], "v");
        assert_eq!(r.body["revision"], 1);
        let r = t
            .api
            .as_tenant(victim, Method::GET, "/v1/api-keys?limit=200", None)
            .await;
        assert!(r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["name"] != "planted"));
    }
    // A's writes under the same name created A's own setting, not the victims'.
    let r = t
        .put(0, "/v1/settings/secret", json!({"value": "mine"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for victim in [b, c] {
        let r = t
            .api
            .as_tenant(victim, Method::GET, "/v1/settings/secret", None)
            .await;
        assert_eq!(r.body["value"], "v");
    }
}

#[tokio::test]
async fn each_tiers_settings_are_where_the_tier_puts_them() {
    let t = spawn().await;
    let (a, b) = (&t.tenants[0], &t.tenants[1]);
    for x in [a, b] {
        let r = t
            .api
            .as_tenant(
                x,
                Method::PUT,
                "/v1/settings/where",
                Some(json!({"value": x.slug()})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let client = mongo_system().await;
    let shared = client
        .database(MONGO.database)
        .collection::<Document>("settings");
    let own = mongo_tenant()
        .await
        .database(&MONGO.dedicated_database(&b.placement.slug))
        .collection::<Document>("settings");
    let count = |coll: &mongodb::Collection<Document>, x: &TestTenant| {
        let coll = coll.clone();
        let id = tenant_bson(x.id());
        async move { coll.count_documents(doc! {"tenant_id": id}).await.unwrap() }
    };
    assert_eq!(count(&shared, a).await, 1);
    assert_eq!(count(&shared, b).await, 0);
    assert_eq!(count(&own, b).await, 1);
    // The dedicated tenant's document still carries its tenant_id.
    let d = own.find_one(doc! {}).await.unwrap().unwrap();
    assert_eq!(d.get("tenant_id"), Some(&tenant_bson(b.id())));
    // API keys are platform data: every tier's keys are in the shared collection.
    let keys = client
        .database(MONGO.database)
        .collection::<Document>("api_keys");
    assert_eq!(
        keys.count_documents(doc! {"tenant_id": tenant_bson(b.id())})
            .await
            .unwrap(),
        1
    );
}

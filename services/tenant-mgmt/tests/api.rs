//! tenant-mgmt's API against the harness MongoDB: the registry, API keys (issue once, list by
//! prefix, revoke, expiry), settings with revisions, the internal directory, and error paths.

#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use prismicx_harness::kit::{field_strs, Call, PLATFORM_KEY};
use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::tenancy::{TenantState, Tier};
use serde_json::json;
use support::{field, issue_key, mentions, register, set_state, spawn, store_key, verify_key};

#[tokio::test]
async fn keys_are_shown_once_listed_by_prefix_and_stop_working_when_revoked() {
    let t = spawn().await;
    let a = &t.tenants[0];
    let created = issue_key(&t.api, a, "ci").await;
    let key = created.str("key");
    let id = created.str("id");
    assert!(key.starts_with("pxk_"));
    assert_eq!(created.str("prefix"), key[..12]);
    assert_eq!(created.str("status"), "active");
    assert_eq!(created.str("createdBy"), "platform");
    assert_eq!(
        created.header("location").unwrap(),
        format!("/v1/api-keys/{id}")
    );

    // The new key authenticates as its tenant.
    let me = t.api.get_with(&key, "/v1/tenant").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.str("slug"), a.slug());

    // Listings and reads never show the key or its digest again.
    let list = t.get(0, "/v1/api-keys").await;
    assert_eq!(list.status, StatusCode::OK);
    let items = list.body["items"].as_array().unwrap();
    assert!(items.iter().any(|k| k["id"] == id.as_str()));
    assert!(!mentions(&list.body, &key[12..]));
    assert!(!mentions(&list.body, "sha256:"));
    let one = t.get(0, &format!("/v1/api-keys/{id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.body.get("key").is_none());
    assert!(!mentions(&one.body, &key[12..]));

    // Revoked: refused at once by this service, revoking again is harmless.
    let revoke = t.delete(0, &format!("/v1/api-keys/{id}")).await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let me = t.api.get_with(&key, "/v1/tenant").await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(me.is_problem());
    let again = t.delete(0, &format!("/v1/api-keys/{id}")).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let one = t.get(0, &format!("/v1/api-keys/{id}")).await;
    assert_eq!(one.str("status"), "revoked");
    assert!(one.body["revokedAt"].is_string());
    // The fixture key is untouched.
    let me = t.get(0, "/v1/tenant").await;
    assert_eq!(me.status, StatusCode::OK);
}

#[tokio::test]
async fn expired_keys_are_refused_and_bad_key_requests_name_the_field() {
    let t = spawn().await;
    let a = &t.tenants[0];
    store_key(&t.state, a, "pxk_expired_fixture_key_000000000000", true).await;
    let r = t
        .api
        .get_with("pxk_expired_fixture_key_000000000000", "/v1/tenant")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let list = t.get(0, "/v1/api-keys").await;
    assert!(list.item_strs("status").iter().any(|s| s == "expired"));

    for (body, field) in [
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "expiresAt": "2001-01-01T00:00:00Z"}),
            "expiresAt",
        ),
        (json!({"name": "x", "tenantId": "other"}), "tenantId"),
        (json!({"name": 5}), "name"),
        (json!({"name": "x", "expiresAt": "tomorrow"}), "expiresAt"),
    ] {
        let r = t.post(0, "/v1/api-keys", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.error_fields(), [field], "{body}: {}", r.body);
    }
    let r = t.get(0, "/v1/api-keys/not-a-uuid").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = t.get(0, "/v1/api-keys?limit=0").await;
    assert_eq!(r.error_fields(), ["limit"]);
    let r = t.get(0, "/v1/api-keys?cursor=garbage").await;
    assert_eq!(r.error_fields(), ["cursor"]);
    // Nothing was created by the refused requests.
    let list = t.get(0, "/v1/api-keys").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn api_keys_page_through_every_key_once() {
    let t = spawn().await;
    for i in 0..4 {
        let r = t
            .post(0, "/v1/api-keys", json!({"name": format!("k{i}")}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let seen = field_strs(&t.all_pages(0, "/v1/api-keys", 2).await, "id");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(unique.len(), 5);
}

#[tokio::test]
async fn the_registry_is_listed_for_the_platform_only() {
    let t = spawn().await;
    let (a, b) = (&t.tenants[0], &t.tenants[1]);
    // Other tests register tenants too: page through the whole registry.
    let slugs = field_strs(
        &t.api.all_pages(PLATFORM_KEY, "/v1/tenants", 7).await,
        "slug",
    );
    let mut sorted = slugs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(slugs, sorted, "pages are in slug order without repeats");
    for s in [a, b] {
        assert_eq!(slugs.iter().filter(|x| *x == s.slug()).count(), 1);
    }
    for s in [a, b] {
        let one = t
            .api
            .send(Call::new(Method::GET, format!("/v1/tenants/{}", s.slug())).key(PLATFORM_KEY))
            .await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(one.str("id"), s.id().to_string());
        assert_eq!(
            one.str("tier"),
            if s.placement.tier == Tier::Dedicated {
                "dedicated"
            } else {
                "standard"
            }
        );
        assert_eq!(one.str("state"), "active");
        assert_eq!(one.str("namespace"), "tests");
        assert!(field(&one.body, "placement")["mongo"].is_array());
    }
    let r = t
        .api
        .get_with(PLATFORM_KEY, "/v1/tenants?tier=dedicated&limit=200")
        .await;
    assert!(r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["tier"] == "dedicated"));

    // Tenant keys see their own entry only.
    let r = t.get(0, "/v1/tenants").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t.get(0, &format!("/v1/tenants/{}", b.slug())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t.get(0, &format!("/v1/tenants/{}", a.slug())).await;
    assert_eq!(r.status, StatusCode::OK);

    for (path, field) in [
        ("/v1/tenants?state=asleep", "state"),
        ("/v1/tenants?tier=gold", "tier"),
        ("/v1/tenants?color=red", "color"),
        ("/v1/tenants/Not_A_Slug", "slug"),
    ] {
        t.api
            .send(Call::new(Method::GET, path).key(PLATFORM_KEY))
            .await
            .expect_fields(StatusCode::BAD_REQUEST, &[field], path);
    }
    let r = t
        .api
        .get_with(PLATFORM_KEY, "/v1/tenants/no-such-tenant-x")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_internal_directory_answers_the_platform_key_only() {
    let t = spawn().await;
    let (a, b) = (&t.tenants[0], &t.tenants[1]);
    let path = format!("/internal/v1/tenants/{}", b.slug());
    let r = t.api.get_with(PLATFORM_KEY, &path).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.str("id"), b.id().to_string());
    assert_eq!(r.str("tier"), "dedicated");
    assert_eq!(r.str("state"), "active");
    assert!(r.body.get("vectorQuota").is_none(), "{}", r.body);
    let r = t.get(0, &path).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The operator's `vector_quota` (from `spec.limits.vectorStore`) reaches the services.
    t.store
        .system_database()
        .collection::<mongodb::bson::Document>(prismicx_tenant_mgmt::REGISTRY_COLLECTION)
        .update_one(
            mongodb::bson::doc! { "_id": b.slug() },
            mongodb::bson::doc! { "$set": { "vector_quota": { "max_collections": 2_i64, "max_points": 100_i64 } } },
        )
        .await
        .unwrap();
    let r = t.api.get_with(PLATFORM_KEY, &path).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["vectorQuota"],
        json!({"maxCollections": 2, "maxPoints": 100}),
        "{}",
        r.body
    );

    let verify = |digest: String| {
        Call::new(Method::POST, "/internal/v1/api-keys/verify")
            .key(PLATFORM_KEY)
            .json(json!({ "digest": digest }))
    };
    let r = t.api.send(verify(KeyDigest::of(&a.key).to_string())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.str("tenant"), a.slug());
    let r = t
        .api
        .send(verify(KeyDigest::of("pxk_unknown").to_string()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.api.send(verify("md5:abc".into())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["digest"]);
    let r = verify_key(&t.api, &a.key, &a.key).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_tenant_created_again_under_the_same_name_does_not_inherit_the_old_keys() {
    let t = spawn().await;
    let a = t.tenants[0].clone();
    let r = t.api.as_tenant(&a, Method::GET, "/v1/tenant", None).await;
    assert_eq!(r.status, StatusCode::OK);
    // Deleted with deletionPolicy Delete and created again: a new id under the same slug.
    let mut reborn = a.clone();
    reborn.placement.id = uuid::Uuid::new_v4();
    register(&t.store, &reborn).await;
    t.state.tenancy.invalidate_all();
    let r = t.api.as_tenant(&a, Method::GET, "/v1/tenant", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = verify_key(&t.api, PLATFORM_KEY, &a.key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn suspended_tenants_are_refused_but_stay_visible_to_the_platform() {
    let t = spawn().await;
    let a = &t.tenants[0];
    set_state(&t.store, a, TenantState::Suspended).await;
    t.state.tenancy.invalidate_all();
    let r = t.get(0, "/v1/settings").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body["detail"].as_str().unwrap().contains("suspended"));
    let r = t
        .api
        .send(Call::new(Method::GET, format!("/v1/tenants/{}", a.slug())).key(PLATFORM_KEY))
        .await;
    assert_eq!(r.str("state"), "suspended");
}

#[tokio::test]
async fn settings_have_revisions_and_refuse_stale_writes() {
    let t = spawn().await;
    let value =
        json!({"dotted.key": 1, "$dollar": [1, 2.5, "x", null], "big": 9007199254740993u64});
    let r = t
        .put(0, "/v1/settings/ui.theme", json!({"value": value}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.header("etag").unwrap(), "\"1\"");
    assert_eq!(r.body["value"], value);

    let r = t
        .put(0, "/v1/settings/ui.theme", json!({"value": "dark"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revision"], 2);

    // A stale If-Match changes nothing.
    let r = t
        .put_if(0, "/v1/settings/ui.theme", 1, json!({"value": "light"}))
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = t.get(0, "/v1/settings/ui.theme").await;
    assert_eq!(r.body["value"], "dark");
    assert_eq!(r.header("etag").unwrap(), "\"2\"");

    let r = t
        .put_if(0, "/v1/settings/ui.theme", 2, json!({"value": "light"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revision"], 3);

    // If-Match on a setting that does not exist is a failed precondition, not a creation.
    let r = t
        .put_if(0, "/v1/settings/absent", 1, json!({"value": 1}))
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = t.get(0, "/v1/settings/absent").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let theme = "/v1/settings/ui.theme";
    #[rustfmt::skip]
    let steps = [
        (Method::DELETE, theme, 2, None, StatusCode::PRECONDITION_FAILED),
        (Method::DELETE, theme, 3, None, StatusCode::NO_CONTENT),
    ];
    t.expect_conditional(0, &steps).await;
    t.expect_statuses(0, &[(Method::DELETE, theme, StatusCode::NOT_FOUND)])
        .await;
}

#[tokio::test]
async fn settings_list_in_key_order_and_bad_input_names_the_field() {
    let t = spawn().await;
    let a = &t.tenants[0];
    for k in ["c", "a", "b"] {
        let r = t
            .put(0, &format!("/v1/settings/{k}"), json!({"value": k}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = t.get(0, "/v1/settings?limit=2").await;
    let keys = r.item_strs("key");
    assert_eq!(keys, ["a", "b"]);
    let cursor = r.str("nextCursor");
    let r = t
        .get(0, &format!("/v1/settings?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(r.body["items"][0]["key"], "c");
    assert!(r.body.get("nextCursor").is_none());

    let big = "x".repeat(70 * 1024);
    for (method, path, body, status, field) in [
        (
            Method::PUT,
            "/v1/settings/Bad%20Key",
            Some(json!({"value": 1})),
            400,
            "key",
        ),
        (
            Method::PUT,
            "/v1/settings/ok",
            Some(json!({"value": big})),
            422,
            "value",
        ),
        (
            Method::PUT,
            "/v1/settings/ok",
            Some(json!({"value": 1, "x": 2})),
            422,
            "x",
        ),
        (
            Method::PUT,
            "/v1/settings/ok",
            Some(json!({})),
            422,
            "value",
        ),
        (Method::GET, "/v1/settings?sort=key", None, 400, "sort"),
    ] {
        let r = t.call(0, method.clone(), path, body).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
        assert_eq!(r.error_fields(), [field], "{path}");
        assert!(r.is_problem());
    }
    let r = t
        .api
        .send(
            Call::new(Method::PUT, "/v1/settings/ok")
                .key(&a.key)
                .header("if-match", "three")
                .json(json!({"value": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_fields(), ["If-Match"]);
    let r = t
        .api
        .raw(
            Request::builder()
                .method(Method::PUT)
                .uri("/v1/settings/ok")
                .header("authorization", format!("Bearer {}", a.key))
                .header("content-type", "application/json")
                .body(Body::from("{\"value\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // None of the refused writes created the setting.
    let r = t.get(0, "/v1/settings/ok").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn platform_routes_and_openapi_are_served() {
    let t = spawn().await;
    let r = t.api.send(Call::new(Method::GET, "/readyz")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t.api.send(Call::new(Method::GET, "/openapi.json")).await;
    assert_eq!(r.status, StatusCode::OK);
    for path in [
        "/v1/api-keys",
        "/v1/settings/{key}",
        "/internal/v1/tenants/{slug}",
        "/internal/v1/api-keys/verify",
    ] {
        assert!(r.body["paths"][path].is_object(), "{path}");
    }
    let r = t.api.send(Call::new(Method::GET, "/v1/tenant")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

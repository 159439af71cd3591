//! Systems, versions and relations through the API against the real servers (PostgreSQL through
//! PgBouncer): every success path and error path, with what is stored checked where a failed
//! request must not have written anything.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use prismicx_harness::kit::field_strs;
use serde_json::json;
use support::{spawn_app, spawn_tiers};

const SYSTEMS: &str = "/v1/systems";

#[tokio::test]
async fn system_crud_with_etags() {
    let app = spawn_app().await;
    let schema = json!({"type": "object", "properties": {"port": {"type": "integer"}}});
    let r = app
        .post(
            0,
            SYSTEMS,
            json!({
                "name": "billing-erp", "kind": "erp", "displayName": "Billing ERP",
                "description": "Runs invoices", "attributes": {"owner": "finance", "tier": 1},
                "configSchema": schema
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.str("id");
    assert_eq!(r.header("location").unwrap(), format!("/v1/systems/{id}"));
    assert_eq!(r.header("etag").unwrap(), "\"1\"");
    assert_eq!(r.body["tenantId"], app.tenant(0).id().to_string());
    assert_eq!(r.body["configSchema"], schema);
    assert_eq!(r.body["revision"], 1);

    let path = format!("/v1/systems/{id}");
    let r = app.get(0, &path).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("etag").unwrap(), "\"1\"");
    assert_eq!(r.body["attributes"], json!({"owner": "finance", "tier": 1}));

    // PATCH needs If-Match: 428 Precondition Required naming it.
    let r = app.patch(0, &path, json!({"description": "x"})).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(r.error_fields(), ["If-Match"]);
    let r = app
        .patch_if(0, &path, 1, json!({"description": "Runs invoices and dunning", "attributes": {"tier": null, "region": "eu"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.header("etag").unwrap(), "\"2\"");
    assert_eq!(
        r.body["attributes"],
        json!({"owner": "finance", "region": "eu"})
    );
    assert_eq!(r.body["name"], "billing-erp");
    assert!(r.body["updatedAt"].as_str() > r.body["createdAt"].as_str());
    // A stale ETag: 412 and nothing changes.
    let r = app
        .patch_if(0, &path, 1, json!({"description": "lost update"}))
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert!(r.is_problem());
    let r = app.get(0, &path).await;
    assert_eq!(r.body["description"], "Runs invoices and dunning");
    assert_eq!(r.body["revision"], 2);
    // Malformed If-Match.
    app.expect_malformed_if_match(0, &path, json!({"description": "x"}))
        .await;

    // DELETE with a stale If-Match is refused; without one it goes.
    let r = app.delete_if(0, &path, 1).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.stored_rows(0, "systems").await, 1);
    let r = app.delete_if(0, &path, 2).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.expect_statuses(
        0,
        &[
            (Method::GET, &path, StatusCode::NOT_FOUND),
            (Method::DELETE, &path, StatusCode::NOT_FOUND),
        ],
    )
    .await;
    assert_eq!(app.stored_rows(0, "systems").await, 0);
}

#[tokio::test]
async fn system_validation_errors_name_every_field_and_store_nothing() {
    let app = spawn_app().await;
    let everything_wrong = json!({
        "name": "Not Valid!", "kind": "9", "displayName": "bell\u{7}",
        "attributes": {"bad key": 1},
        "configSchema": {"type": "object", "properties": {"port": {"type": "integr"}}}
    });
    let r = app.post(0, SYSTEMS, everything_wrong).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.is_problem());
    let fields = r.error_fields();
    assert_eq!(
        &fields[..4],
        ["name", "kind", "displayName", "attributes.bad key"]
    );
    assert!(
        fields[4].starts_with("/configSchema/properties/port"),
        "{fields:?}"
    );

    for (body, field) in [
        (json!({"name": "ok", "configSchema": [1]}), "configSchema"),
        (
            json!({"name": "ok", "configSchema": {"$ref": "https://example.com/s.json"}}),
            "/configSchema/$ref",
        ),
        (
            json!({"name": "ok", "configSchema": {"minimum": "ten"}}),
            "/configSchema/minimum",
        ),
        (
            json!({"name": "ok", "tenantId": app.tenant(1).id()}),
            "tenantId",
        ),
        (json!({"name": "ok", "revision": 7}), "revision"),
        (json!({"kind": "erp"}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "ok", "attributes": [1]}), "attributes"),
    ] {
        app.post(0, SYSTEMS, body.clone()).await.expect_fields(
            StatusCode::UNPROCESSABLE_ENTITY,
            &[field],
            &body,
        );
    }

    // Malformed JSON, wrong media type, oversized body, bad id.
    let post = |ct, body| app.raw_body(0, Method::POST, SYSTEMS, ct, body);
    let r = post("application/json", "{\"name\": ").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_fields(), ["body"]);
    let r = post("text/plain", "name=x").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"name": "big", "description": "x".repeat(2 * 1024 * 1024)});
    let r = app.post(0, SYSTEMS, huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = app.get(0, "/v1/systems/not-a-uuid").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.is_problem());
    assert_eq!(app.stored_rows(0, "systems").await, 0);

    // Name conflicts: on create and on rename; the PATCH errors change nothing.
    let a = app.create_system(0, "alpha", None).await;
    app.create_system(0, "beta", None).await;
    let r = app.post(0, SYSTEMS, json!({"name": "alpha"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_fields(), ["name"]);
    let path = format!("/v1/systems/{a}");
    for (body, want, fields) in [
        (
            json!({"name": "beta"}),
            StatusCode::CONFLICT,
            Some(["name"]),
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, None),
        (
            json!({"configSchema": {"type": "nope"}, "kind": "db"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"tenantId": app.tenant(1).id()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(["tenantId"]),
        ),
    ] {
        let r = app.patch_if(0, &path, 1, body.clone()).await;
        assert_eq!(r.status, want, "{body}: {}", r.body);
        if let Some(fields) = fields {
            assert_eq!(r.error_fields(), fields, "{body}");
        }
    }
    let r = app.get(0, &path).await;
    assert_eq!(r.body["name"], "alpha");
    assert_eq!(r.body["kind"], "application");
    assert_eq!(r.body["revision"], 1);
    // The same name in another tenant is fine.
    app.create_system(1, "alpha", None).await;
}

#[tokio::test]
async fn system_lists_paginate_filter_and_reject_unknown_parameters() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let kind = if n % 2 == 0 { "erp" } else { "crm" };
        let r = app
            .post(0, SYSTEMS, json!({"name": format!("s{n}"), "kind": kind}))
            .await;
        ids.push(r.str("id"));
    }
    let seen = field_strs(&app.all_pages(0, SYSTEMS, 2).await, "id");
    assert_eq!(seen, ids, "every system once, in creation order");
    let r = app.get(0, "/v1/systems?kind=erp").await;
    let names = r.item_strs("name");
    assert_eq!(names, ["s0", "s2", "s4"]);
    let bad = [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=x", "limit"),
        ("cursor=garbage", "cursor"),
        ("kind=Bad%20Kind", "kind"),
        ("sort=name", "sort"),
    ];
    app.expect_bad_queries(0, SYSTEMS, &bad).await;
}

#[tokio::test]
async fn versions_lifecycle_and_errors() {
    let app = spawn_app().await;
    let sys = app.create_system(0, "core", None).await;
    let base = format!("/v1/systems/{sys}/versions");
    let r = app
        .post(
            0,
            &base,
            json!({"version": "1.0.0", "notes": "first\nrelease"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "draft");
    assert!(r.body["releasedAt"].is_null());
    assert_eq!(r.body["systemId"], sys);
    let v1 = r.str("id");
    assert_eq!(r.header("location").unwrap(), format!("{base}/{v1}"));
    let r = app
        .post(
            0,
            &base,
            json!({"version": "1.1.0-rc.1", "status": "released"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body["releasedAt"].is_string());
    let v2 = r.str("id");

    // Duplicates and bad input.
    let cases: &[(serde_json::Value, StatusCode, &[&str])] = &[
        (
            json!({"version": "1.0.0"}),
            StatusCode::CONFLICT,
            &["version"],
        ),
        (
            json!({"version": "v1", "status": "gone", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["extra"],
        ),
        (
            json!({"version": "v1", "status": "gone"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["version", "status"],
        ),
    ];
    app.expect_errors(0, Method::POST, &base, cases).await;
    // The same version string on another system is fine.
    let other = app.create_system(0, "edge", None).await;
    let r = app
        .post(
            0,
            &format!("/v1/systems/{other}/versions"),
            json!({"version": "1.0.0"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let other_v = r.str("id");
    // A version is reached only under its own system.
    let r = app.get(0, &format!("{base}/{other_v}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Status transitions.
    let p1 = format!("{base}/{v1}");
    let r = app.patch(0, &p1, json!({"status": "released"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let released_at = r.body["releasedAt"].clone();
    assert!(released_at.is_string());
    let r = app
        .patch(0, &p1, json!({"status": "deprecated", "notes": "use 1.1"}))
        .await;
    assert_eq!(r.body["status"], "deprecated");
    assert_eq!(
        r.body["releasedAt"], released_at,
        "first release time is kept"
    );
    let r = app.patch(0, &p1, json!({"status": "draft"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["status"]);
    let r = app.patch(0, &p1, json!({"version": "9.9.9"})).await;
    assert_eq!(r.error_fields(), ["version"]);
    let r = app.get(0, &p1).await;
    assert_eq!(r.body["status"], "deprecated");
    assert_eq!(r.body["notes"], "use 1.1");
    assert_eq!(r.body["version"], "1.0.0");

    // Lists: paginated, filtered by status.
    let r = app.get(0, &format!("{base}?limit=1")).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let c = r.str("nextCursor");
    let r = app.get(0, &format!("{base}?limit=1&cursor={c}")).await;
    assert_eq!(r.body["items"][0]["id"], v2);
    assert!(r.body.get("nextCursor").is_none());
    let r = app.get(0, &format!("{base}?status=released")).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["id"], v2);
    let bad = [("status=nope", "status"), ("versionLike=1", "versionLike")];
    app.expect_bad_queries(0, &base, &bad).await;
    let missing = format!("/v1/systems/{}/versions", uuid::Uuid::new_v4());
    let steps = [
        (Method::GET, &missing, None),
        (Method::POST, &missing, Some(json!({"version": "1.0"}))),
    ];
    for (method, path, body) in steps {
        let r = app.call(0, method, path, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }

    // Delete.
    app.expect_statuses(
        0,
        &[
            (Method::DELETE, &p1, StatusCode::NO_CONTENT),
            (Method::DELETE, &p1, StatusCode::NOT_FOUND),
        ],
    )
    .await;
    assert_eq!(app.stored_rows(0, "system_versions").await, 2);
    // Deleting the system deletes its versions.
    let r = app.delete(0, &format!("/v1/systems/{sys}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.stored_rows(0, "system_versions").await, 1);
}

#[tokio::test]
async fn relations_between_systems_of_a_tenant() {
    let app = spawn_app().await;
    let a = app.create_system(0, "a", None).await;
    let b = app.create_system(0, "b", None).await;
    let c = app.create_system(0, "c", None).await;
    let rel = |s: &str| format!("/v1/systems/{s}/relations");
    let r = app
        .post(
            0,
            &rel(&a),
            json!({"targetId": b, "kind": "depends_on", "description": "reads ledger"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["sourceId"], a);
    assert_eq!(r.body["targetId"], b);
    let ab = r.str("id");
    assert_eq!(r.header("location").unwrap(), format!("{}/{ab}", rel(&a)));
    let r = app
        .post(0, &rel(&c), json!({"targetId": a, "kind": "replaces"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let ca = r.str("id");
    // Another kind between the same pair is a different relation.
    let r = app
        .post(
            0,
            &rel(&a),
            json!({"targetId": b, "kind": "integrates_with"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    // Errors: duplicate, self, unknown target, bad kind, bad id, unknown field.
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: &[(serde_json::Value, StatusCode, &[&str])] = &[
        (
            json!({"targetId": b, "kind": "depends_on"}),
            StatusCode::CONFLICT,
            &["targetId"],
        ),
        (
            json!({"targetId": a, "kind": "depends_on"}),
            unprocessable,
            &["targetId"],
        ),
        (
            json!({"targetId": uuid::Uuid::new_v4(), "kind": "depends_on"}),
            unprocessable,
            &["targetId"],
        ),
        (
            json!({"targetId": c, "kind": "loves"}),
            unprocessable,
            &["kind"],
        ),
        (
            json!({"targetId": "nope", "kind": "depends_on"}),
            unprocessable,
            &["targetId"],
        ),
        (
            json!({"targetId": c, "kind": "depends_on", "sourceId": b}),
            unprocessable,
            &["sourceId"],
        ),
    ];
    app.expect_errors(0, Method::POST, &rel(&a), cases).await;
    let r = app
        .post(
            0,
            &rel(&uuid::Uuid::new_v4().to_string()),
            json!({"targetId": c, "kind": "depends_on"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.stored_rows(0, "system_relations").await, 3);

    // Lists by direction and kind, paginated.
    let ids = |r: &prismicx_harness::kit::Reply| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };
    let r = app.get(0, &rel(&a)).await;
    assert_eq!(ids(&r).len(), 3);
    let r = app.get(0, &format!("{}?direction=incoming", rel(&a))).await;
    assert_eq!(ids(&r), std::slice::from_ref(&ca));
    let r = app
        .get(
            0,
            &format!("{}?direction=outgoing&kind=depends_on", rel(&a)),
        )
        .await;
    assert_eq!(ids(&r), std::slice::from_ref(&ab));
    let r = app.get(0, &format!("{}?limit=2", rel(&a))).await;
    assert_eq!(ids(&r).len(), 2);
    let next = r.str("nextCursor");
    let r2 = app
        .get(0, &format!("{}?limit=2&cursor={next}", rel(&a)))
        .await;
    assert_eq!(ids(&r2).len(), 1);
    let bad = [
        ("direction=sideways", "direction"),
        ("kind=x", "kind"),
        ("target=1", "target"),
    ];
    app.expect_bad_queries(0, &rel(&a), &bad).await;

    // Reached from either end; not from an unrelated system. Deleting a system removes the
    // relations at either end.
    let (from_a, from_b, from_c) = (
        format!("{}/{ab}", rel(&a)),
        format!("{}/{ab}", rel(&b)),
        format!("{}/{ab}", rel(&c)),
    );
    app.expect_statuses(
        0,
        &[
            (Method::GET, from_b.as_str(), StatusCode::OK),
            (Method::GET, &from_c, StatusCode::NOT_FOUND),
            (Method::DELETE, &from_c, StatusCode::NOT_FOUND),
            (Method::DELETE, &from_b, StatusCode::NO_CONTENT),
            (Method::GET, &from_a, StatusCode::NOT_FOUND),
            (
                Method::DELETE,
                &format!("/v1/systems/{a}"),
                StatusCode::NO_CONTENT,
            ),
        ],
    )
    .await;
    assert_eq!(app.stored_rows(0, "system_relations").await, 0);
}

#[tokio::test]
async fn authentication_platform_key_and_suspended_tenants() {
    let app = spawn_tiers(3, &[], &[2]).await;
    app.expect_key_refusals(SYSTEMS).await;
    // The platform key acts for the tenant it names, and must name one.
    app.expect_platform_creates(1, SYSTEMS, json!({"name": "ops"}))
        .await;
    // Suspended: 403 for its key and for the platform key acting for it.
    let r = app.get(2, SYSTEMS).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body["detail"].as_str().unwrap().contains("suspended"));
    let r = app
        .platform(2, Method::POST, SYSTEMS, Some(json!({"name": "x"})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.stored_rows(2, "systems").await, 0);
    // The platform routes.
    let r = app.expect_platform_routes().await;
    assert!(r.body["paths"]["/v1/systems/{id}/configuration/rollback"]["post"].is_object());
}

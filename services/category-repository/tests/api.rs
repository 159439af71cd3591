//! category-repository API behaviour against the real MongoDB wire server: every success path
//! and every error path, with the stored tree checked (raw) where a write must not happen.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use prismicx_harness::kit::{Call, TestTenant, PLATFORM_KEY};
use prismicx_service_common::tenancy::{TenantState, Tier};
use serde_json::{json, Value};
use support::{spawn, spawn_tenants, TestApp};

const CATEGORIES_API: &str = "/v1/categories";

fn names(list: &[Value]) -> Vec<&str> {
    list.iter().map(|c| c["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn create_get_rename_round_trip() {
    let app = spawn(1, &[]).await;
    let books = json!({
        "name": "  Books ", "description": "Printed matter",
        "attributes": {"icon": "book", "order": {"weight": 3}}
    });
    let r = app.post(0, CATEGORIES_API, books).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.str("id");
    let item = format!("/v1/categories/{id}");
    assert_eq!(
        r.header("location").unwrap(),
        format!("/v1/categories/{id}")
    );
    assert_eq!(r.header("etag").unwrap(), "\"1\"");
    assert_eq!(r.body["name"], "Books");
    assert_eq!(r.body["tenantId"], app.tenant(0).id().to_string());
    assert_eq!(r.body["parentId"], Value::Null);
    assert_eq!(r.body["ancestors"], json!([]));
    assert_eq!(r.body["depth"], 0);
    assert_eq!(r.body["position"], 0);
    assert_eq!(r.body["revision"], 1);

    let got = app.category(0, &id).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, r.body);
    assert_eq!(got.header("etag").unwrap(), "\"1\"");

    // Rename with the right If-Match; merge-patch the attributes.
    let r = app
        .patch_if(
            0,
            &item,
            1,
            json!({
                "name": "Printed books", "description": null,
                "attributes": {"icon": null, "order": {"rank": 1}}
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "Printed books");
    assert_eq!(r.body["description"], Value::Null);
    assert_eq!(
        r.body["attributes"],
        json!({"order": {"weight": 3, "rank": 1}})
    );
    assert_eq!(r.body["revision"], 2);
    assert_eq!(r.header("etag").unwrap(), "\"2\"");
    assert!(r.body["updatedAt"].as_str() >= r.body["createdAt"].as_str());

    // A stale If-Match is refused and changes nothing.
    let r = app
        .patch_if(0, &item, 1, json!({"name": "Lost update"}))
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert!(r.is_problem());
    // Without If-Match the change applies; a change to the same values bumps nothing.
    let r = app.patch(0, &item, json!({"description": "Paper"})).await;
    assert_eq!(r.body["revision"], 3);
    let unchanged = json!({"name": "Printed books", "description": "Paper"});
    let r = app.patch(0, &item, unchanged).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revision"], 3);
    // Case-only rename of itself is allowed (it is not a sibling of itself).
    let r = app.patch(0, &item, json!({"name": "PRINTED BOOKS"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.category(0, &id).await.body["name"], "PRINTED BOOKS");
    app.check_tree(0).await;
}

#[tokio::test]
async fn children_keep_their_order_and_insert_at_position_shifts_later_siblings() {
    let app = spawn(1, &[]).await;
    let p = app.create(0, "parent", None).await;
    for n in ["a", "b", "c"] {
        app.create(0, n, Some(&p)).await;
    }
    let place = |name: &str, position: u32| {
        let body = json!({"name": name, "parentId": p, "position": position});
        app.post(0, CATEGORIES_API, body)
    };
    let r = place("d", 1).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["position"], 1);
    assert_eq!(r.body["depth"], 1);
    assert_eq!(r.body["ancestors"], json!([p]));
    let r = place("e", 0).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = place("f", 6).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["position"]);
    let all = app
        .all_pages(0, &format!("/v1/categories/{p}/children"), 2)
        .await;
    assert_eq!(names(&all), ["e", "a", "d", "b", "c"]);
    for (i, c) in all.iter().enumerate() {
        assert_eq!(c["position"], i);
    }
    // Roots are a list too, in order.
    app.create(0, "second root", None).await;
    let r = app
        .post(
            0,
            CATEGORIES_API,
            json!({"name": "first root", "position": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        names(&app.all_pages(0, CATEGORIES_API, 1).await),
        ["first root", "parent", "second root"]
    );
    // An empty page of a leaf.
    let leaf = all[0]["id"].as_str().unwrap();
    let r = app.get(0, &format!("/v1/categories/{leaf}/children")).await;
    assert_eq!(r.body, json!({"items": []}));
    app.check_tree(0).await;
}

#[tokio::test]
async fn sibling_names_are_unique_case_insensitively() {
    let app = spawn(1, &[]).await;
    let p = app.create(0, "parent", None).await;
    let q = app.create(0, "other", None).await;
    let books = app.create(0, "Books", Some(&p)).await;
    let r = app
        .post(0, CATEGORIES_API, json!({"name": " bOOKS ", "parentId": p}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_fields(), ["name"]);
    let r = app.post(0, CATEGORIES_API, json!({"name": "PARENT"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "roots are siblings too");
    // Same name under another parent is fine.
    let other_books = app.create(0, "books", Some(&q)).await;
    // Renaming into a clash, or moving into one, is refused.
    let music = app.create(0, "Music", Some(&p)).await;
    let r = app
        .patch(
            0,
            &format!("/v1/categories/{music}"),
            json!({"name": "BOOKS"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_fields(), ["name"]);
    let r = app.move_to(0, &other_books, Some(&p), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_fields(), ["parentId"]);
    assert_eq!(app.category(0, &other_books).await.body["parentId"], q);
    assert_eq!(app.category(0, &books).await.body["revision"], 1);
    assert_eq!(app.category(0, &music).await.body["name"], "Music");
    app.check_tree(0).await;
}

/// root ─ a ─ a1 ─ a11
///      │    └ a2
///      └ b ─ b1
async fn sample_tree(app: &TestApp) -> [String; 7] {
    let root = app.create(0, "root", None).await;
    let a = app.create(0, "a", Some(&root)).await;
    let b = app.create(0, "b", Some(&root)).await;
    let a1 = app.create(0, "a1", Some(&a)).await;
    let a2 = app.create(0, "a2", Some(&a)).await;
    let b1 = app.create(0, "b1", Some(&b)).await;
    let a11 = app.create(0, "a11", Some(&a1)).await;
    [root, a, b, a1, a2, b1, a11]
}

#[tokio::test]
async fn ancestors_and_descendants() {
    let app = spawn(1, &[]).await;
    let [root, a, _b, a1, _a2, _b1, a11] = sample_tree(&app).await;
    let r = app.get(0, &format!("/v1/categories/{a11}/ancestors")).await;
    assert_eq!(r.status, StatusCode::OK);
    let path = r.strs_of("", "id");
    assert_eq!(path, [root.as_str(), a.as_str(), a1.as_str()]);
    let r = app.category(0, &a11).await;
    assert_eq!(r.body["ancestors"], json!([root, a, a1]));
    assert_eq!(r.body["depth"], 3);
    let r = app
        .get(0, &format!("/v1/categories/{root}/ancestors"))
        .await;
    assert_eq!(r.body, json!([]));

    // Level by level; siblings together and in order.
    let all = app
        .all_pages(0, &format!("/v1/categories/{root}/descendants"), 2)
        .await;
    let n = names(&all);
    assert_eq!(n.len(), 6);
    assert_eq!(&n[..2], ["a", "b"]);
    let level2: Vec<&str> = n[2..5].to_vec();
    assert!(
        level2 == ["a1", "a2", "b1"] || level2 == ["b1", "a1", "a2"],
        "{level2:?}"
    );
    assert_eq!(n[5], "a11");
    let one = app
        .all_pages(
            0,
            &format!("/v1/categories/{root}/descendants?maxDepth=1"),
            50,
        )
        .await;
    assert_eq!(names(&one), ["a", "b"]);
    let two = app
        .all_pages(0, &format!("/v1/categories/{a}/descendants?maxDepth=2"), 1)
        .await;
    assert_eq!(names(&two), ["a1", "a2", "a11"]);
    let leaf = app
        .all_pages(0, &format!("/v1/categories/{a11}/descendants"), 5)
        .await;
    assert!(leaf.is_empty());
}

#[tokio::test]
async fn moves_carry_the_subtree_and_keep_both_sibling_orders() {
    let app = spawn(1, &[]).await;
    let [root, a, b, a1, a2, b1, a11] = sample_tree(&app).await;
    let b2 = app.create(0, "b2", Some(&b)).await;
    // a1 (with a11) moves under b at position 1: b's children b1, a1, b2; a keeps a2 at 0.
    let r = app.move_to(0, &a1, Some(&b), Some(1)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["parentId"], b);
    assert_eq!(r.body["ancestors"], json!([root, b]));
    assert_eq!(r.body["position"], 1);
    assert_eq!(r.body["revision"], 2);
    assert_eq!(app.child_names(0, Some(&b)).await, ["b1", "a1", "b2"]);
    assert_eq!(app.child_names(0, Some(&a)).await, ["a2"]);
    assert_eq!(app.category(0, &a2).await.body["position"], 0);
    assert_eq!(app.category(0, &b2).await.body["position"], 2);
    let g = app.category(0, &a11).await;
    assert_eq!(g.body["ancestors"], json!([root, b, a1]));
    assert_eq!(g.body["depth"], 3);
    assert_eq!(
        g.body["revision"], 2,
        "a path change is a change of the node"
    );
    app.check_tree(0).await;

    // To the roots (default: last), then back to the front of the roots.
    let r = app.move_to(0, &b, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["depth"], 0);
    assert_eq!(r.body["position"], 1);
    assert_eq!(
        app.category(0, &a11).await.body["ancestors"],
        json!([b, a1])
    );
    assert_eq!(app.category(0, &a11).await.body["depth"], 2);
    let r = app.move_to(0, &b, None, Some(0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.child_names(0, None).await, ["b", "root"]);
    // Deeper again: b under a2 (b's subtree grows two levels deeper).
    let r = app.move_to(0, &b, Some(&a2), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.category(0, &a11).await.body["ancestors"],
        json!([root, a, a2, b, a1])
    );
    assert_eq!(app.category(0, &a11).await.body["depth"], 5);
    app.check_tree(0).await;

    // Reorder among siblings, down and up, and the default (last).
    let c: Vec<String> = {
        let mut v = Vec::new();
        for n in ["c0", "c1", "c2", "c3"] {
            v.push(app.create(0, n, Some(&root)).await);
        }
        v
    };
    let reorder = |id: String, pos: u32| {
        let app = &app;
        async move {
            app.post(
                0,
                &format!("/v1/categories/{id}/reorder"),
                json!({"position": pos}),
            )
            .await
        }
    };
    let r = reorder(c[0].clone(), 3).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.child_names(0, Some(&root)).await,
        ["a", "c1", "c2", "c0", "c3"]
    );
    let r = reorder(c[3].clone(), 0).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.child_names(0, Some(&root)).await,
        ["c3", "a", "c1", "c2", "c0"]
    );
    let r = reorder(c[1].clone(), 5).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["position"]);
    let r = app.move_to(0, &c[3], Some(&root), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["position"], 4);
    // A move to a position beyond the new siblings is refused and changes nothing.
    let before = app.check_tree(0).await;
    let r = app.move_to(0, &c[2], Some(&a2), Some(3)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["position"]);
    assert_eq!(app.check_tree(0).await, before);
    let _ = b1;
}

#[tokio::test]
async fn cycles_are_rejected_and_change_nothing() {
    let app = spawn(1, &[]).await;
    let [root, a, _b, a1, _a2, _b1, a11] = sample_tree(&app).await;
    let before = app.check_tree(0).await;
    for (id, target) in [(&a, &a), (&a, &a1), (&root, &a11), (&a, &a11)] {
        let r = app.move_to(0, id, Some(target), None).await;
        assert_eq!(
            r.status,
            StatusCode::CONFLICT,
            "{id} under {target}: {}",
            r.body
        );
        assert_eq!(r.error_fields(), ["parentId"]);
        assert!(r.is_problem());
    }
    assert_eq!(
        app.check_tree(0).await,
        before,
        "a refused move changed the tree"
    );
}

#[tokio::test]
async fn depth_is_limited_to_32_levels() {
    let app = spawn(1, &[]).await;
    let mut chain = vec![app.create(0, "l0", None).await];
    for i in 1..32 {
        let parent = chain.last().unwrap().clone();
        chain.push(app.create(0, &format!("l{i}"), Some(&parent)).await);
    }
    assert_eq!(app.category(0, &chain[31]).await.body["depth"], 31);
    let r = app
        .post(
            0,
            CATEGORIES_API,
            json!({"name": "too deep", "parentId": chain[31]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["parentId"]);
    // A two-level subtree fits under depth 29 but not under depth 30.
    let top = app.create(0, "sub", None).await;
    app.create(0, "sub-child", Some(&top)).await;
    let before = app.check_tree(0).await;
    let r = app.move_to(0, &top, Some(&chain[30]), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.error_fields(), ["parentId"]);
    assert_eq!(app.check_tree(0).await, before);
    let r = app.move_to(0, &top, Some(&chain[29]), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.check_tree(0).await;
}

#[tokio::test]
async fn delete_refuses_parents_unless_cascade_and_closes_the_gap() {
    let app = spawn(1, &[]).await;
    let [root, a, b, a1, a2, b1, a11] = sample_tree(&app).await;
    let before = app.check_tree(0).await;
    let r = app.delete(0, &format!("/v1/categories/{a}")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_fields(), ["cascade"]);
    let r = app
        .delete(0, &format!("/v1/categories/{a}?cascade=false"))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // A stale If-Match is refused.
    let r = app.delete_if(0, &format!("/v1/categories/{a2}"), 7).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.check_tree(0).await, before);

    // A leaf goes; with the right If-Match.
    let r = app.delete_if(0, &format!("/v1/categories/{a2}"), 1).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.category(0, &a2).await.status, StatusCode::NOT_FOUND);
    // The cascade removes a's whole subtree in one go; b closes the gap among the root's children.
    let r = app
        .delete(0, &format!("/v1/categories/{a}?cascade=true"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for gone in [&a, &a1, &a11] {
        assert_eq!(app.category(0, gone).await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(app.category(0, &b).await.body["position"], 0);
    let left = app.check_tree(0).await;
    assert_eq!(left.len(), 3);
    let r = app.delete(0, &format!("/v1/categories/{a}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Cascade on a root leaves the other roots alone.
    let other = app.create(0, "other root", None).await;
    let r = app
        .delete(0, &format!("/v1/categories/{root}?cascade=true"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let left = app.check_tree(0).await;
    assert_eq!(left.len(), 1);
    assert_eq!(app.category(0, &other).await.body["position"], 0);
    let _ = b1;
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_the_field_and_changes_nothing() {
    let app = spawn(1, &[]).await;
    let p = app.create(0, "parent", None).await;
    let child = app.create(0, "child", Some(&p)).await;
    let before = app.check_tree(0).await;
    let post = |body: Value| {
        let app = &app;
        async move { app.post(0, CATEGORIES_API, body).await }
    };
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": 5}), "name"),
        (
            json!({"name": "ok", "description": "d".repeat(1001)}),
            "description",
        ),
        (json!({"name": "ok", "attributes": [1, 2]}), "attributes"),
        (
            json!({"name": "ok", "attributes": {"$set": 1}}),
            "attributes",
        ),
        (
            json!({"name": "ok", "attributes": {"a": {"b.c": 1}}}),
            "attributes.a",
        ),
        (json!({"name": "ok", "position": -1}), "position"),
        (json!({"name": "ok", "position": 5}), "position"),
        (json!({"name": "ok", "parentId": "not-a-uuid"}), "parentId"),
        (
            json!({"name": "ok", "tenantId": uuid::Uuid::new_v4()}),
            "tenantId",
        ),
        (json!({"name": "ok", "revision": 9}), "revision"),
    ] {
        let r = post(body.clone()).await;
        let r = r.expect_fields(StatusCode::UNPROCESSABLE_ENTITY, &[field], &body);
        assert!(r.is_problem(), "{body}");
    }
    // A parent that does not exist.
    let r = post(json!({"name": "ok", "parentId": uuid::Uuid::new_v4()})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["detail"].as_str().unwrap().contains("parentId"));

    // Moves.
    let mv = format!("/v1/categories/{child}/move");
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    for (body, status, field) in [
        (json!({}), invalid, "parentId"),
        (json!({"position": 0}), invalid, "parentId"),
        (json!({"parentId": 7}), invalid, "parentId"),
        (
            json!({"parentId": null, "position": "1"}),
            invalid,
            "position",
        ),
        (
            json!({"parentId": null, "tenant_id": "x"}),
            invalid,
            "tenant_id",
        ),
    ] {
        let r = app.post(0, &mv, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.error_fields(), [field], "{body}");
    }
    let r = app
        .move_to(0, &child, Some(&uuid::Uuid::new_v4().to_string()), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(0, &format!("/v1/categories/{child}/reorder"), json!({}))
        .await;
    assert_eq!(r.error_fields(), ["position"]);
    // Patches.
    let patch = format!("/v1/categories/{child}");
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"attributes": "x"}), "attributes"),
        (json!({"parentId": null}), "parentId"),
        (json!({"attributes": {"a": u64::MAX}}), "attributes.a"),
    ] {
        app.patch(0, &patch, body.clone()).await.expect_fields(
            StatusCode::UNPROCESSABLE_ENTITY,
            &[field],
            &body,
        );
    }
    app.expect_malformed_if_match(0, &patch, json!({"name": "x"}))
        .await;

    // Paths and queries.
    for (path, field) in [
        ("/v1/categories/nope".to_string(), "id"),
        ("/v1/categories/nope/children".to_string(), "id"),
        ("/v1/categories?limit=0".to_string(), "limit"),
        ("/v1/categories?limit=201".to_string(), "limit"),
        ("/v1/categories?limit=ten".to_string(), "limit"),
        ("/v1/categories?cursor=garbage".to_string(), "cursor"),
        ("/v1/categories?sort=name".to_string(), "sort"),
        (format!("/v1/categories/{p}/children?cursor=e30"), "cursor"),
        (
            format!("/v1/categories/{p}/descendants?maxDepth=0"),
            "maxDepth",
        ),
        (
            format!("/v1/categories/{p}/descendants?maxDepth=x"),
            "maxDepth",
        ),
        (format!("/v1/categories/{p}/descendants?depth=1"), "depth"),
    ] {
        app.get(0, &path)
            .await
            .expect_fields(StatusCode::BAD_REQUEST, &[field], path);
    }
    for (query, field) in [("cascade=maybe", "cascade"), ("force=true", "force")] {
        app.delete(0, &format!("/v1/categories/{p}?{query}"))
            .await
            .expect_fields(StatusCode::BAD_REQUEST, &[field], query);
    }
    for path in [
        format!("/v1/categories/{}", uuid::Uuid::new_v4()),
        format!("/v1/categories/{}/children", uuid::Uuid::new_v4()),
        format!("/v1/categories/{}/ancestors", uuid::Uuid::new_v4()),
        format!("/v1/categories/{}/descendants", uuid::Uuid::new_v4()),
    ] {
        let r = app.get(0, &path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.is_problem());
    }

    // Malformed bodies.
    let post = |body, ct| app.raw_body(0, Method::POST, CATEGORIES_API, ct, body);
    let r = post("{\"name\": ", "application/json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.is_problem());
    let r = post("name=x", "application/x-www-form-urlencoded").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = post("[]", "application/json").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // No key, a wrong key.
    let r = app.api.send(Call::new(Method::GET, CATEGORIES_API)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .api
        .send(Call::new(Method::GET, CATEGORIES_API).key("nope"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    assert_eq!(
        app.check_tree(0).await,
        before,
        "a refused request changed the tree"
    );
}

#[tokio::test]
async fn platform_key_acts_for_the_named_tenant_and_suspended_tenants_are_refused() {
    let tenants = vec![
        TestTenant::new(Tier::Standard),
        TestTenant::new(Tier::Standard).with_state(TenantState::Suspended),
    ];
    let app = spawn_tenants(tenants).await;
    let r = app
        .expect_platform_creates(0, CATEGORIES_API, json!({"name": "by platform"}))
        .await;
    let id = r.str("id");
    assert_eq!(app.category(0, &id).await.status, StatusCode::OK);
    let r = app
        .api
        .send(Call::new(Method::GET, CATEGORIES_API).key(PLATFORM_KEY))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_fields(), ["X-Tenant"]);
    let r = app.post(1, CATEGORIES_API, json!({"name": "x"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.platform(1, Method::GET, CATEGORIES_API, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(app.raw_docs(1).await.is_empty());
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let app = spawn(1, &[]).await;
    let r = app.api.send(Call::new(Method::GET, "/openapi.json")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["info"]["title"], "category-repository-service");
    assert!(r.body["paths"]["/v1/categories/{id}/move"]["post"].is_object());
}

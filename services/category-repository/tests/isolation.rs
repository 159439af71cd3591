//! Tenant isolation, tested as an attacker would try to break it: tenant A (standard) uses its
//! key against the categories of B (dedicated) and C (standard) through every route — read,
//! list, update, move, reorder, delete, and as a parent or move target of its own categories —
//! forges tenant ids in bodies, and names another tenant in `X-Tenant`. B's and C's data are
//! verified unchanged afterwards (through the API as their owners, and raw), and the documents
//! of each tier are checked to be in the right database.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use mongodb::bson::{doc, Document};
use prismicx_category_repository::{CATEGORIES, FORESTS, MONGO};
use prismicx_harness::kit::{mongo_system, mongo_tenant, raw_count, raw_find, Call};
use prismicx_service_common::mongo::tenant_bson;
use serde_json::{json, Value};
use support::{spawn, TestApp};

const CATEGORIES_API: &str = "/v1/categories";

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// root ─ mid ─ leaf, plus a second root; returns the ids.
async fn small_tree(app: &TestApp, t: usize) -> Vec<String> {
    let root = app.create(t, "root", None).await;
    let mid = app.create(t, "mid", Some(&root)).await;
    let leaf = app.create(t, "leaf", Some(&mid)).await;
    let other = app.create(t, "other", None).await;
    vec![root, mid, leaf, other]
}

/// Every node of `t` as its owner reads it, plus its raw documents.
async fn snapshot(app: &TestApp, t: usize, ids: &[String]) -> (Vec<Value>, Vec<Document>) {
    let mut seen = Vec::new();
    for id in ids {
        let r = app.category(t, id).await;
        assert_eq!(r.status, StatusCode::OK);
        seen.push(r.body);
    }
    let mut raw = app.raw_docs(t).await;
    raw.sort_by_key(|d| format!("{:?}", d.get("_id")));
    (seen, raw)
}

#[tokio::test]
async fn tenant_a_key_never_reaches_b_or_c_categories() {
    let app = spawn(3, &[B]).await;
    let mine = small_tree(&app, A).await;
    let victims = [
        (B, small_tree(&app, B).await),
        (C, small_tree(&app, C).await),
    ];
    let before_b = snapshot(&app, B, &victims[0].1).await;
    let before_c = snapshot(&app, C, &victims[1].1).await;

    for (v, ids) in &victims {
        for id in ids {
            let base = format!("/v1/categories/{id}");
            let attempts: Vec<(Method, String, Option<Value>)> = vec![
                (Method::GET, base.clone(), None),
                (Method::PATCH, base.clone(), Some(json!({"name": "pwned"}))),
                (
                    Method::PATCH,
                    base.clone(),
                    Some(json!({"attributes": {"owner": "A"}})),
                ),
                (Method::DELETE, base.clone(), None),
                (Method::DELETE, format!("{base}?cascade=true"), None),
                (
                    Method::POST,
                    format!("{base}/move"),
                    Some(json!({"parentId": null})),
                ),
                (
                    Method::POST,
                    format!("{base}/move"),
                    Some(json!({"parentId": mine[0]})),
                ),
                (
                    Method::POST,
                    format!("{base}/reorder"),
                    Some(json!({"position": 0})),
                ),
                (Method::GET, format!("{base}/children"), None),
                (Method::GET, format!("{base}/ancestors"), None),
                (Method::GET, format!("{base}/descendants"), None),
            ];
            for (method, path, body) in attempts {
                let what = format!("A: {method} {path} on tenant {v}");
                let r = app.call(A, method, &path, body).await;
                r.expect_problem(StatusCode::NOT_FOUND, &what);
            }
            // The victim's node as the parent or target of A's own categories.
            let r = app
                .post(
                    A,
                    CATEGORIES_API,
                    json!({"name": "implant", "parentId": id}),
                )
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
            let r = app.move_to(A, &mine[3], Some(id), None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        }
    }

    // A's lists show only A's categories.
    for path in [
        CATEGORIES_API.to_string(),
        format!("/v1/categories/{}/children", mine[0]),
        format!("/v1/categories/{}/descendants", mine[0]),
    ] {
        let r = app.get(A, &path).await;
        assert_eq!(r.status, StatusCode::OK);
        for item in r.body["items"].as_array().unwrap() {
            assert_eq!(
                item["tenantId"],
                app.tenant(A).id().to_string(),
                "{path} leaked {item}"
            );
            assert!(mine.contains(&item["id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(app.child_names(A, None).await, ["root", "other"]);

    // Forged tenant ids in bodies are refused by name and write nothing.
    let forged = [
        (
            Method::POST,
            CATEGORIES_API.to_string(),
            json!({"name": "forged", "tenantId": app.tenant(B).id()}),
        ),
        (
            Method::POST,
            CATEGORIES_API.to_string(),
            json!({"name": "forged", "tenant_id": app.tenant(C).id()}),
        ),
        (
            Method::PATCH,
            format!("/v1/categories/{}", mine[0]),
            json!({"tenantId": app.tenant(B).id()}),
        ),
        (
            Method::POST,
            format!("/v1/categories/{}/move", mine[3]),
            json!({"parentId": null, "tenantId": app.tenant(B).id()}),
        ),
    ];
    for (method, path, body) in forged {
        let r = app.call(A, method, &path, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let field = r.error_fields();
        assert!(field == ["tenantId"] || field == ["tenant_id"], "{field:?}");
    }

    // A's key naming another tenant in X-Tenant is refused, whatever the route.
    for (v, ids) in &victims {
        let slug = app.tenant(*v).slug().to_string();
        for (method, path, body) in [
            (Method::GET, CATEGORIES_API.to_string(), None),
            (Method::GET, format!("/v1/categories/{}", ids[0]), None),
            (
                Method::POST,
                CATEGORIES_API.to_string(),
                Some(json!({"name": "x"})),
            ),
            (
                Method::DELETE,
                format!("/v1/categories/{}?cascade=true", ids[0]),
                None,
            ),
        ] {
            let mut call = Call::new(method, &path)
                .key(&app.tenant(A).key)
                .header("x-tenant", &slug);
            call.body = body;
            let r = app.api.send(call).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
        }
    }

    // B and C are exactly as they left them.
    assert_eq!(snapshot(&app, B, &victims[0].1).await, before_b);
    assert_eq!(snapshot(&app, C, &victims[1].1).await, before_c);
    app.check_tree(A).await;
    app.check_tree(B).await;
    app.check_tree(C).await;

    // The platform key acts for the tenant X-Tenant names.
    for (v, ids) in &victims {
        let r = app
            .platform(*v, Method::GET, &format!("/v1/categories/{}", ids[1]), None)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["tenantId"], app.tenant(*v).id().to_string());
        let r = app
            .platform(
                *v,
                Method::POST,
                &format!("/v1/categories/{}/move", ids[2]),
                Some(json!({"parentId": ids[0]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // ...and only for it: A's ids are not found as B or C.
        let r = app
            .platform(
                *v,
                Method::GET,
                &format!("/v1/categories/{}", mine[0]),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn documents_live_in_the_database_of_their_tier() {
    let app = spawn(3, &[B]).await;
    let ids: Vec<Vec<String>> = vec![
        small_tree(&app, A).await,
        small_tree(&app, B).await,
        small_tree(&app, C).await,
    ];
    let shared = mongo_system().await.database(MONGO.database);
    let dedicated = mongo_tenant()
        .await
        .database(&MONGO.dedicated_database(&app.tenant(B).placement.slug));
    for t in [A, B, C] {
        let tenant = doc! {"tenant_id": tenant_bson(app.tenant(t).id())};
        let in_shared = raw_count(&shared, CATEGORIES, tenant.clone()).await;
        let in_dedicated = raw_count(&dedicated, CATEGORIES, tenant.clone()).await;
        let forests_shared = raw_count(&shared, FORESTS, tenant.clone()).await;
        let forests_dedicated = raw_count(&dedicated, FORESTS, tenant.clone()).await;
        if t == B {
            assert_eq!((in_shared, in_dedicated), (0, 4), "B's categories");
            assert_eq!((forests_shared, forests_dedicated), (0, 1));
        } else {
            assert_eq!((in_shared, in_dedicated), (4, 0), "tenant {t}'s categories");
            assert_eq!((forests_shared, forests_dedicated), (1, 0));
        }
    }
    // The dedicated database holds nothing but B's documents, all stamped with B's id and the
    // timestamps every tenant document carries.
    let all = raw_find(MONGO, app.tenant(B), CATEGORIES, doc! {}, None).await;
    assert_eq!(all.len(), 4);
    for d in &all {
        assert_eq!(d.get("tenant_id"), Some(&tenant_bson(app.tenant(B).id())));
        assert!(d.get_datetime("created_at").is_ok());
        assert!(d.get_datetime("updated_at").is_ok());
    }
    // The stored ids are the API's ids.
    let raw_ids: std::collections::BTreeSet<String> = app
        .check_tree(B)
        .await
        .keys()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(raw_ids, ids[B].iter().cloned().collect());
}

//! The task API end to end against the harness MongoDB: create, read, update, delete, the
//! status state machine, optimistic concurrency headers, and every error path (each asserting
//! that a refused request changed nothing).

#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use prismicx_harness::kit::{Call, TestTenant, PLATFORM_KEY};
use prismicx_service_common::tenancy::{TenantState, Tier};
use serde_json::{json, Value};
use support::{spawn, spawn_tenants, tag, TestApp};

const TASKS: &str = "/v1/tasks";

/// The number of tasks tenant `i` has (through the API).
async fn count(app: &TestApp, i: usize) -> usize {
    app.list_all(i, "", 200).await.len()
}

#[tokio::test]
async fn create_returns_the_task_with_defaults_location_and_etag() {
    let app = spawn(1, &[]).await;
    let r = app
        .post(
            0,
            TASKS,
            json!({
                "title": "  Write the report  ",
                "description": "Quarterly numbers",
                "assignee": "user-42",
                "dueAt": "2030-05-01T12:30:00.250+02:00",
                "labels": ["Finance", " finance", "Q2"],
                "attributes": {"estimate": 3, "links": ["https://example.com"], "meta": {"a": 1.5}}
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let t = &r.body;
    let id = t["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(r.header("location").unwrap(), format!("/v1/tasks/{id}"));
    assert_eq!(r.header("etag").unwrap(), "\"1\"");
    assert_eq!(t["tenantId"], app.tenant(0).id().to_string());
    assert_eq!(t["title"], "Write the report");
    assert_eq!(t["status"], "todo");
    assert_eq!(t["priority"], "normal");
    assert_eq!(t["labels"], json!(["finance", "q2"]));
    assert_eq!(t["revision"], 1);
    assert_eq!(t["dueAt"], "2030-05-01T10:30:00.250Z");
    assert_eq!(t["completedAt"], Value::Null);
    assert_eq!(t["createdAt"], t["updatedAt"]);
    // What was stored is what was answered.
    let g = app.task(0, id).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.header("etag").unwrap(), "\"1\"");
    assert_eq!(&g.body, t);

    // Starting in progress is allowed; optional fields come back as null.
    let t = app
        .create(
            0,
            json!({"title": "started", "status": "in_progress", "priority": "urgent"}),
        )
        .await;
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["priority"], "urgent");
    for f in ["description", "assignee", "dueAt"] {
        assert_eq!(t[f], Value::Null, "{f}");
    }
    assert_eq!(t["attributes"], json!({}));
}

#[tokio::test]
async fn invalid_creates_name_the_field_and_store_nothing() {
    let app = spawn(1, &[]).await;
    let many: Vec<String> = (0..21).map(|i| format!("l{i}")).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "x".repeat(201)}), "title"),
        (json!({"title": 5}), "title"),
        (
            json!({"title": "t", "description": "d".repeat(10_001)}),
            "description",
        ),
        (json!({"title": "t", "priority": "extreme"}), "priority"),
        (json!({"title": "t", "status": "done"}), "status"),
        (json!({"title": "t", "status": "cancelled"}), "status"),
        (json!({"title": "t", "status": "archived"}), "status"),
        (json!({"title": "t", "assignee": ""}), "assignee"),
        (
            json!({"title": "t", "assignee": "a".repeat(201)}),
            "assignee",
        ),
        (json!({"title": "t", "dueAt": "next friday"}), "dueAt"),
        (json!({"title": "t", "dueAt": "2030-01-01"}), "dueAt"),
        (json!({"title": "t", "labels": many}), "labels"),
        (
            json!({"title": "t", "labels": ["ok", "x".repeat(51)]}),
            "labels[1]",
        ),
        (json!({"title": "t", "labels": ["a,b"]}), "labels[0]"),
        (json!({"title": "t", "labels": "one"}), "labels"),
        (json!({"title": "t", "attributes": [1, 2]}), "attributes"),
        (
            json!({"title": "t", "attributes": {"$where": 1}}),
            "attributes.$where",
        ),
        (
            json!({"title": "t", "attributes": {"ok": {"a.b": 1}}}),
            "attributes.ok",
        ),
        (
            json!({"title": "t", "attributes": {"big": "x".repeat(17 * 1024)}}),
            "attributes",
        ),
        (json!({"title": "t", "revision": 7}), "revision"),
        (json!({"title": "t", "id": uuid::Uuid::new_v4()}), "id"),
        (
            json!({"title": "t", "completedAt": "2030-01-01T00:00:00Z"}),
            "completedAt",
        ),
    ];
    for (body, field) in cases {
        let r = app.post(0, TASKS, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert!(r.is_problem());
        assert!(
            r.error_fields().contains(&field.to_string()),
            "{body}: expected {field} in {:?}",
            r.error_fields()
        );
    }
    // A title of exactly 200 characters (after trimming) is fine.
    let t = app
        .create(0, json!({"title": format!(" {} ", "é".repeat(200))}))
        .await;
    assert_eq!(t["title"].as_str().unwrap().chars().count(), 200);

    // Malformed JSON, wrong media type: 400 and 415, problem+json.
    let raw = |ct: &str, body: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri(TASKS)
            .header("authorization", format!("Bearer {}", app.tenant(0).key))
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap()
    };
    let r = app.api.raw(raw("application/json", r#"{"title": "#)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_fields(), ["body"]);
    let r = app
        .api
        .raw(raw("application/json", "\u{0}\u{ff}garbage"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.api.raw(raw("text/plain", r#"{"title": "x"}"#)).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.is_problem());

    assert_eq!(count(&app, 0).await, 1, "only the valid task was stored");
}

#[tokio::test]
async fn get_answers_404_for_unknown_ids_and_400_for_malformed_ones() {
    let app = spawn(1, &[]).await;
    let r = app.task(0, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.is_problem());
    let r = app.task(0, "not-a-uuid").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_fields(), ["id"]);
    let r = app.call(0, Method::PUT, TASKS, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn patch_changes_fields_bumps_the_revision_and_clears_with_null() {
    let app = spawn(1, &[]).await;
    let t = app
        .create(
            0,
            json!({"title": "t", "description": "d", "assignee": "u1",
                   "dueAt": "2030-01-01T00:00:00Z", "labels": ["a"],
                   "attributes": {"keep": 1, "drop": 2, "nested": {"x": 1}}}),
        )
        .await;
    let id = t["id"].as_str().unwrap();
    let path = format!("/v1/tasks/{id}");
    let r = app
        .patch_if(
            0,
            &path,
            1,
            json!({
                "title": " renamed ", "priority": "high", "labels": ["B", "c", "b"],
                "attributes": {"drop": null, "nested": {"y": 2}, "added": true}
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("etag").unwrap(), "\"2\"");
    let u = &r.body;
    assert_eq!(u["title"], "renamed");
    assert_eq!(u["priority"], "high");
    assert_eq!(u["labels"], json!(["b", "c"]));
    assert_eq!(
        u["attributes"],
        json!({"keep": 1, "nested": {"x": 1, "y": 2}, "added": true})
    );
    assert_eq!(u["revision"], 2);
    assert_eq!(u["description"], "d", "untouched fields stay");
    assert_eq!(u["createdAt"], t["createdAt"]);
    assert!(u["updatedAt"].as_str().unwrap() >= t["updatedAt"].as_str().unwrap());
    assert_eq!(&app.task(0, id).await.body, u);

    let r = app
        .patch_if(
            0,
            &path,
            2,
            json!({"description": null, "assignee": null, "dueAt": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for f in ["description", "assignee", "dueAt"] {
        assert_eq!(r.body[f], Value::Null, "{f}");
    }
    assert_eq!(r.body["revision"], 3);
    assert_eq!(app.task(0, id).await.body, r.body);
}

#[tokio::test]
async fn writes_need_a_current_if_match_and_refused_ones_change_nothing() {
    let app = spawn(1, &[]).await;
    let t = app
        .create(0, json!({"title": "original", "labels": ["x"]}))
        .await;
    let id = t["id"].as_str().unwrap();
    let path = format!("/v1/tasks/{id}");
    let change = json!({"title": "changed"});

    // Every write: PATCH, DELETE and a transition.
    let writes = [
        (Method::PATCH, path.clone(), Some(change.clone())),
        (Method::DELETE, path.clone(), None),
        (
            Method::POST,
            format!("{path}/transitions"),
            Some(json!({"to": "in_progress"})),
        ),
    ];
    // No If-Match: 428 Precondition Required naming the header, for every write.
    for (method, p, body) in writes.clone() {
        let r = app.call(0, method.clone(), &p, body).await;
        assert_eq!(
            r.status,
            StatusCode::PRECONDITION_REQUIRED,
            "{method} {p}: {}",
            r.body
        );
        assert_eq!(r.error_fields(), ["If-Match"]);
    }
    // Malformed If-Match values.
    for bad in ["*", "1", "\"one\"", "\"1\", \"2\""] {
        let r = app
            .api
            .send(
                Call::new(Method::PATCH, path.clone())
                    .key(&app.tenant(0).key)
                    .header("if-match", bad)
                    .json(change.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.error_fields(), ["If-Match"]);
    }
    // Stale (or future) revisions: 412.
    for rev in [0, 2, 99] {
        for (method, p, body) in writes.clone() {
            let r = app.call_if(0, method.clone(), &p, rev, body).await;
            assert_eq!(
                r.status,
                StatusCode::PRECONDITION_FAILED,
                "{method} rev {rev}"
            );
            assert!(r.is_problem());
        }
    }
    // Invalid patches: 422 naming the field.
    for (body, field) in [
        (json!({}), "body"),
        (json!({"title": null}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"status": null}), "status"),
        (json!({"priority": "meh"}), "priority"),
        (json!({"labels": null}), "labels"),
        (json!({"dueAt": "soon"}), "dueAt"),
        (json!({"attributes": null}), "attributes"),
        (json!({"attributes": 3}), "attributes"),
        (json!({"attributes": {"Bad-Key": 1}}), "attributes.Bad-Key"),
        (json!({"tenantId": uuid::Uuid::new_v4()}), "tenantId"),
        (json!({"revision": 5}), "revision"),
        (json!({"createdAt": "2020-01-01T00:00:00Z"}), "createdAt"),
    ] {
        let r = app.patch_if(0, &path, 1, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert!(
            r.error_fields().contains(&field.to_string()),
            "{body}: {:?}",
            r.error_fields()
        );
    }
    // Merged attributes over the limit: 422, nothing written.
    let keys: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
    let r = app.patch_if(0, &path, 1, json!({"attributes": keys})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Unknown task: 404 whatever the revision.
    let other = format!("/v1/tasks/{}", uuid::Uuid::new_v4());
    assert_eq!(
        app.patch_if(0, &other, 1, change.clone()).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete_if(0, &other, 1).await.status,
        StatusCode::NOT_FOUND
    );

    // Nothing of the above changed the task.
    let g = app.task(0, id).await;
    assert_eq!(g.body, t);
    assert_eq!(g.header("etag").unwrap(), "\"1\"");
}

#[tokio::test]
async fn delete_needs_the_current_revision_and_then_the_task_is_gone() {
    let app = spawn(1, &[]).await;
    let keep = app.create_titled(0, "keep").await;
    let id = app.create_titled(0, "remove").await;
    let path = format!("/v1/tasks/{id}");
    let r = app.patch_if(0, &path, 1, json!({"title": "v2"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.delete_if(0, &path, 1).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.task(0, &id).await.body["title"], "v2");
    let r = app.delete_if(0, &path, 2).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null);
    assert_eq!(app.task(0, &id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete_if(0, &path, 2).await.status,
        StatusCode::NOT_FOUND
    );
    let all = app.list_all(0, "", 50).await;
    assert_eq!(support::ids(&all), vec![keep.clone()]);
    assert_eq!(app.task(0, &keep).await.status, StatusCode::OK);
}

/// Every allowed transition, through the dedicated endpoint and through PATCH `status`.
#[tokio::test]
async fn every_allowed_transition_moves_the_task_and_keeps_completed_at_in_step() {
    let app = spawn(1, &[]).await;
    // A walk over all seven edges: todo→in_progress→todo→cancelled→todo→in_progress→done
    // →in_progress→cancelled.
    let walk = [
        ("todo", "in_progress"),
        ("in_progress", "todo"),
        ("todo", "cancelled"),
        ("cancelled", "todo"),
        ("todo", "in_progress"),
        ("in_progress", "done"),
        ("done", "in_progress"),
        ("in_progress", "cancelled"),
    ];
    for via_patch in [false, true] {
        let id = app.create_titled(0, "walker").await;
        let mut rev = 1;
        for (from, to) in walk {
            let before = app.task(0, &id).await.body;
            assert_eq!(before["status"], from);
            let r = if via_patch {
                app.patch_task(0, &id, rev, json!({"status": to})).await
            } else {
                app.transition(0, &id, rev, to).await
            };
            assert_eq!(r.status, StatusCode::OK, "{from} -> {to}: {}", r.body);
            rev += 1;
            assert_eq!(r.body["status"], to);
            assert_eq!(r.body["revision"], rev);
            assert_eq!(r.header("etag").unwrap(), tag(rev));
            if to == "done" {
                assert!(r.body["completedAt"].is_string());
                assert_eq!(r.body["completedAt"], r.body["updatedAt"]);
            } else {
                assert_eq!(r.body["completedAt"], Value::Null, "{from} -> {to}");
            }
            assert_eq!(app.task(0, &id).await.body, r.body, "stored as answered");
        }
    }
}

#[tokio::test]
async fn invalid_transitions_are_refused_with_the_allowed_ones_and_change_nothing() {
    let app = spawn(1, &[]).await;
    let allowed: &[(&str, &[&str])] = &[
        ("todo", &["in_progress", "cancelled"]),
        ("in_progress", &["done", "todo", "cancelled"]),
        ("done", &["in_progress"]),
        ("cancelled", &["todo"]),
    ];
    // One task in each status (reached through allowed transitions).
    let mut tasks = Vec::new();
    for (status, path) in [
        ("todo", &[][..]),
        ("in_progress", &["in_progress"][..]),
        ("done", &["in_progress", "done"][..]),
        ("cancelled", &["cancelled"][..]),
    ] {
        let id = app.create_titled(0, status).await;
        for (i, to) in path.iter().enumerate() {
            let r = app.transition(0, &id, i as i64 + 1, to).await;
            assert_eq!(r.status, StatusCode::OK);
        }
        tasks.push((status, id));
    }
    for (status, id) in &tasks {
        let ok = allowed.iter().find(|(s, _)| s == status).unwrap().1;
        for to in ["todo", "in_progress", "done", "cancelled"] {
            if ok.contains(&to) {
                continue;
            }
            let before = app.task(0, id).await;
            assert_eq!(before.body["status"], *status);
            let rev = before.body["revision"].as_i64().unwrap();
            let r = app.transition(0, id, rev, to).await;
            assert_eq!(
                r.status,
                StatusCode::CONFLICT,
                "{status} -> {to}: {}",
                r.body
            );
            assert!(r.is_problem());
            assert_eq!(r.error_fields(), ["status"]);
            let detail = r.body["detail"].as_str().unwrap();
            assert!(detail.contains(&ok.join(", ")), "{detail}");
            assert_eq!(app.task(0, id).await.body, before.body, "{status} -> {to}");
            if to == *status {
                continue;
            }
            // PATCH refuses it too, and writes none of its other fields.
            let r = app
                .patch_task(
                    0,
                    id,
                    rev,
                    json!({"status": to, "title": "must not be written"}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CONFLICT, "PATCH {status} -> {to}");
            assert_eq!(r.error_fields(), ["status"]);
            assert_eq!(
                app.task(0, id).await.body,
                before.body,
                "PATCH {status} -> {to}"
            );
        }
        // Through PATCH, naming the current status is no transition: the other fields change.
        let before = app.task(0, id).await.body;
        let rev = before["revision"].as_i64().unwrap();
        let r = app
            .patch_task(0, id, rev, json!({"status": status, "title": "renamed"}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["status"], *status);
        assert_eq!(r.body["title"], "renamed");
        assert_eq!(r.body["completedAt"], before["completedAt"]);
    }
    // An unknown target status is a 422 naming `to`.
    let rev = app.task(0, &tasks[0].1).await.body["revision"]
        .as_i64()
        .unwrap();
    let r = app.transition(0, &tasks[0].1, rev, "archived").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["to"]);
    let r = app
        .call_if(
            0,
            Method::POST,
            &format!("/v1/tasks/{}/transitions", tasks[0].1),
            rev,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["to"]);
}

#[tokio::test]
async fn keys_tenants_and_suspension() {
    let active = TestTenant::new(Tier::Standard);
    let suspended = TestTenant::new(Tier::Standard).with_state(TenantState::Suspended);
    let app = spawn_tenants(vec![active, suspended]).await;
    // No key, a wrong key: 401.
    let r = app.api.send(Call::new(Method::GET, TASKS)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .api
        .send(Call::new(Method::GET, TASKS).key("nope"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A suspended tenant's key: 403 for reads and writes.
    for (m, body) in [
        (Method::GET, None),
        (Method::POST, Some(json!({"title": "x"}))),
    ] {
        let r = app.call(1, m, TASKS, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.is_problem());
    }
    let r = app.platform(1, Method::GET, TASKS, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The platform key acts for the tenant named in X-Tenant.
    let r = app
        .expect_platform_creates(0, TASKS, json!({"title": "by platform"}))
        .await;
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(app.task(0, id).await.body["title"], "by platform");
    // The platform key without X-Tenant names no tenant.
    let r = app
        .api
        .send(Call::new(Method::GET, TASKS).key(PLATFORM_KEY))
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    // Platform routes need no key.
    let r = app.api.send(Call::new(Method::GET, "/openapi.json")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["paths"]["/v1/tasks/{id}/transitions"].is_object());
    let r = app.api.send(Call::new(Method::GET, "/readyz")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

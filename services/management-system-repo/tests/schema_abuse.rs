//! Request bodies carrying NUL characters, which PostgreSQL cannot store, against the real
//! servers: each is a 422 naming the field and stores nothing.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::spawn_app;

fn cfg(system: &str) -> String {
    format!("/v1/systems/{system}/configuration")
}

#[tokio::test]
async fn nul_characters_in_bodies_are_a_422_and_store_nothing() {
    let app = spawn_app().await;
    for (body, field) in [
        (
            json!({"name": "nul", "configSchema": {"properties": {"a\u{0}b": {}}}}),
            "configSchema",
        ),
        (
            json!({"name": "nul", "configSchema": {"description": "x\u{0}y"}}),
            "configSchema",
        ),
        (
            json!({"name": "nul", "configSchema": {"enum": ["\u{0}"]}}),
            "configSchema",
        ),
        (
            json!({"name": "nul", "attributes": {"team": "a\u{0}"}}),
            "attributes",
        ),
        (
            json!({"name": "nul", "attributes": {"tags": ["ok", "\u{0}"]}}),
            "attributes",
        ),
        (
            json!({"name": "nul", "displayName": "a\u{0}"}),
            "displayName",
        ),
        (
            json!({"name": "nul", "description": "\u{0}"}),
            "description",
        ),
        (json!({"name": "nu\u{0}l"}), "name"),
    ] {
        let r = app
            .call(0, Method::POST, "/v1/systems", Some(body.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert!(r.is_problem());
        assert_eq!(r.error_fields(), [field], "{body}");
    }
    assert_eq!(app.stored_rows(0, "systems").await, 0);

    let sys = app.create_system(0, "plain", None).await;
    let system_path = format!("/v1/systems/{sys}");
    for (body, field) in [
        (
            json!({"configSchema": {"properties": {"\u{0}": {}}}}),
            "configSchema",
        ),
        (json!({"attributes": {"team": "\u{0}"}}), "attributes"),
    ] {
        let r = app
            .call_if(0, Method::PATCH, &system_path, 1, Some(body.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.error_fields(), [field], "{body}");
    }
    let r = app.call(0, Method::GET, &system_path, None).await;
    assert_eq!(r.body["revision"], 1);
    assert_eq!(r.body["configSchema"], json!({}));
    assert_eq!(r.body["attributes"], json!({}));

    for body in [
        json!({"config": {"key": "a\u{0}"}}),
        json!({"config": {"a\u{0}": 1}}),
    ] {
        let r = app
            .call(0, Method::PUT, &cfg(&sys), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.error_fields(), ["config"], "{body}");
    }
    let r = app
        .call(
            0,
            Method::PUT,
            &cfg(&sys),
            Some(json!({"config": {}, "comment": "\u{0}"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["comment"]);
    assert!(app.raw_configs(0, &sys).await.is_empty());

    let r = app
        .call(
            0,
            Method::POST,
            &format!("/v1/systems/{sys}/versions"),
            Some(json!({"version": "1.0.0", "notes": "\u{0}"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["notes"]);
    assert_eq!(app.stored_rows(0, "system_versions").await, 0);
}

//! Tenant-supplied configuration schemas used as an attack on the service, against the real
//! servers: schemas that would make compiling or validating explode (catastrophic backtracking,
//! deep nesting, `$ref` fan-out and recursion) and request bodies with NUL characters. Each
//! attack gets its 4xx and stores nothing, and other tenants keep being served while one
//! tenant's validation is running.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use prismicx_harness::kit::Reply;
use prismicx_management_system_repo::GateSettings;
use serde_json::{json, Map, Value};
use support::{spawn_app, spawn_app_with, Options, TestApp};

const SYSTEMS: &str = "/v1/systems";

fn cfg(system: &str) -> String {
    format!("/v1/systems/{system}/configuration")
}

/// `a0` … `a{n}` in `$defs`, each `allOf` two references to the previous one: 2ⁿ evaluations
/// of `a0` per value `a{n}` applies to.
fn fan_out_defs(n: usize) -> Map<String, Value> {
    let mut defs = Map::new();
    defs.insert("a0".into(), json!({"type": "integer"}));
    for i in 1..=n {
        let prev = format!("#/$defs/a{}", i - 1);
        defs.insert(
            format!("a{i}"),
            json!({"allOf": [{"$ref": prev}, {"$ref": prev}]}),
        );
    }
    defs
}

/// A schema just inside the limits whose validation is nonetheless heavy: every element of
/// `xs` gets about 500 subschema evaluations.
fn heavy_schema() -> Value {
    json!({
        "$defs": fan_out_defs(7),
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"$ref": "#/$defs/a7"}}}
    })
}

/// A valid configuration of [`heavy_schema`] that takes long to validate (~200 KB).
fn heavy_config() -> Value {
    json!({"xs": vec![1; 100_000]})
}

/// Tenant 1's ordinary work, checked end to end while something else is going on.
async fn other_tenant_is_served(app: &TestApp) {
    let schema = json!({"type": "object", "properties": {"port": {"type": "integer"}},
                        "required": ["port"]});
    let sys = app.create_system(1, "billing", Some(schema.clone())).await;
    let version = app.put_config(1, &sys, json!({"port": 8080})).await;
    assert_eq!(version, 1);
    let r = app.get(1, &cfg(&sys)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["config"], json!({"port": 8080}));
    let r = app.get(1, &format!("/v1/systems/{sys}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["configSchema"], schema);
    assert_eq!(r.body["description"], "billing of tenant 1");
}

/// Waits until a schema job is running (the request under test reached its validation).
async fn until_validating(app: &TestApp, request: &tokio::task::JoinHandle<Reply>) {
    while app.state.schemas.running() == 0 {
        assert!(
            !request.is_finished(),
            "the request ended before its validation was seen running"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn long_validation_of_one_tenant_does_not_stall_another_tenant() {
    let app = spawn_app_with(Options {
        tenants: 2,
        schema_gate: Some(GateSettings {
            deadline: Duration::from_secs(600),
            ..GateSettings::default()
        }),
        ..Default::default()
    })
    .await;
    let sys = app.create_system(0, "heavy", Some(heavy_schema())).await;
    let (api, attacker) = (app.api.clone(), app.tenant(0).clone());
    let path = cfg(&sys);
    let heavy = tokio::spawn(async move {
        api.as_tenant(
            &attacker,
            Method::PUT,
            &path,
            Some(json!({"config": heavy_config()})),
        )
        .await
    });
    until_validating(&app, &heavy).await;
    // The test runs on one thread: had the validation run on it, nothing else could have.
    other_tenant_is_served(&app).await;
    assert!(
        !heavy.is_finished(),
        "tenant 1 was served while tenant 0's validation ran"
    );
    let r = heavy.await.unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body["errors"]);
    assert_eq!(app.raw_configs(0, &sys).await.len(), 1);
}

#[tokio::test]
async fn validation_past_the_deadline_is_a_422_and_stores_nothing() {
    let app = spawn_app_with(Options {
        tenants: 2,
        schema_gate: Some(GateSettings {
            deadline: Duration::from_millis(50),
            // The overrunning job keeps tenant 0's slot until it ends; its next write waits.
            queue_wait: Duration::from_secs(600),
            ..GateSettings::default()
        }),
        ..Default::default()
    })
    .await;
    let sys = app.create_system(0, "heavy", Some(heavy_schema())).await;
    let r = app
        .put(0, &cfg(&sys), json!({"config": heavy_config()}))
        .await;
    // (Only the errors are printed: the body may echo a 200 KB document.)
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        r.body["errors"]
    );
    assert!(r.is_problem());
    assert_eq!(r.error_fields(), ["config"]);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("took longer than 50 ms"),
        "{:?}",
        r.body
    );
    assert!(app.raw_configs(0, &sys).await.is_empty());
    // The overrunning job may still hold its slot; the service keeps answering everyone.
    other_tenant_is_served(&app).await;
    assert_eq!(app.put_config(0, &sys, json!({"xs": [1, 2]})).await, 1);
}

#[tokio::test]
async fn catastrophic_backtracking_pattern_is_matched_in_linear_time_or_refused() {
    let app = spawn_app().await;
    // Nested quantifiers: linear with the regex engine, answered as an ordinary violation.
    let schema = json!({"type": "object",
                        "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}});
    let sys = app.create_system(0, "regex", Some(schema)).await;
    let evil = format!("{}b", "a".repeat(200_000));
    let (api, attacker, path) = (app.api.clone(), app.tenant(0).clone(), cfg(&sys));
    let attack = tokio::spawn(async move {
        api.as_tenant(
            &attacker,
            Method::PUT,
            &path,
            Some(json!({"config": {"s": evil}})),
        )
        .await
    });
    other_tenant_is_served(&app).await;
    let r = attack.await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.error_fields(), ["/config/s"]);
    assert!(app.raw_configs(0, &sys).await.is_empty());

    // What only a backtracking engine can run (look-around, backreferences) is refused when
    // the schema is written, naming the pattern.
    for (schema, field) in [
        (
            json!({"properties": {"s": {"pattern": "^(?=(a+)+$)"}}}),
            "/configSchema/properties/s/pattern",
        ),
        (
            json!({"properties": {"s": {"pattern": "^(a+)+\\1$"}}}),
            "/configSchema/properties/s/pattern",
        ),
        (
            json!({"patternProperties": {"^(?!x)(a+)+$": {}}}),
            "/configSchema/patternProperties/^(?!x)(a+)+$",
        ),
    ] {
        app.post(
            0,
            SYSTEMS,
            json!({"name": "lookaround", "configSchema": schema}),
        )
        .await
        .expect_fields(StatusCode::UNPROCESSABLE_ENTITY, &[field], &schema);
        let r = app
            .patch_if(
                0,
                &format!("/v1/systems/{sys}"),
                1,
                json!({"configSchema": schema}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{schema}");
    }
    assert_eq!(app.stored_rows(0, "systems").await, 1);
    let r = app.get(0, &format!("/v1/systems/{sys}")).await;
    assert_eq!(r.body["revision"], 1, "the system is unchanged");
}

/// `{"not": {"not": … {}}}`, `levels` deep.
fn nested(levels: usize) -> Value {
    let mut s = json!({});
    for _ in 0..levels {
        s = json!({ "not": s });
    }
    s
}

#[tokio::test]
async fn deeply_nested_or_exploding_schemas_are_refused_naming_the_limit() {
    let app = spawn_app().await;
    let recursive_fan_out = json!({
        "$defs": {"a": {"properties": {"x": {"allOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/a"}]}}}},
        "$ref": "#/$defs/a"
    });
    let self_applying =
        json!({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"});
    let many_refs: Vec<Value> = (0..300).map(|_| json!({"$ref": "#/$defs/p"})).collect();
    for (schema, needle) in [
        (nested(100), "nests deeper than 64 levels"),
        (
            json!({"$defs": fan_out_defs(40), "$ref": "#/$defs/a40"}),
            "more than 1000 subschemas applied to one location",
        ),
        (recursive_fan_out, "more than 1000 subschemas applied"),
        (self_applying, "infinite recursion"),
        (
            json!({"$defs": {"p": {}}, "anyOf": many_refs}),
            "more than 200 references",
        ),
    ] {
        let r = app
            .post(0, SYSTEMS, json!({"name": "bomb", "configSchema": schema}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{needle}: {:?}",
            r.body
        );
        assert!(r.is_problem());
        assert_eq!(r.error_fields(), ["configSchema"], "{needle}");
        let message = r.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(app.stored_rows(0, "systems").await, 0);

    // The same through PATCH: refused, the system as it was.
    let sys = app
        .create_system(0, "plain", Some(json!({"type": "object"})))
        .await;
    let r = app
        .patch_if(
            0,
            &format!("/v1/systems/{sys}"),
            1,
            json!({"configSchema": {"$defs": fan_out_defs(30), "$ref": "#/$defs/a30"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.error_fields(), ["configSchema"]);
    let r = app.get(0, &format!("/v1/systems/{sys}")).await;
    assert_eq!(r.body["revision"], 1);
    assert_eq!(r.body["configSchema"], json!({"type": "object"}));
    other_tenant_is_served(&app).await;
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
        let r = app.post(0, SYSTEMS, body.clone()).await;
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
        app.patch_if(0, &system_path, 1, body.clone())
            .await
            .expect_fields(StatusCode::UNPROCESSABLE_ENTITY, &[field], body);
    }
    let r = app.get(0, &system_path).await;
    assert_eq!(r.body["revision"], 1);
    assert_eq!(r.body["configSchema"], json!({}));
    assert_eq!(r.body["attributes"], json!({}));

    for body in [
        json!({"config": {"key": "a\u{0}"}}),
        json!({"config": {"a\u{0}": 1}}),
    ] {
        let r = app.put(0, &cfg(&sys), body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.error_fields(), ["config"], "{body}");
    }
    let r = app
        .put(0, &cfg(&sys), json!({"config": {}, "comment": "\u{0}"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["comment"]);
    assert!(app.raw_configs(0, &sys).await.is_empty());

    let r = app
        .post(
            0,
            &format!("/v1/systems/{sys}/versions"),
            json!({"version": "1.0.0", "notes": "\u{0}"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["notes"]);
    assert_eq!(app.stored_rows(0, "system_versions").await, 0);
}

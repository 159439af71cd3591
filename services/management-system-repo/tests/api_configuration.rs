//! Configurations through the API against the real servers (PostgreSQL for the system and its
//! schema, the MongoDB wire server for the versions): versioning, history, If-Match, schema
//! violations with JSON pointers, rollback exactness, diff correctness, deletion with the
//! system, and failed requests that store nothing.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{apply_patch, spawn_app, spawn_tiers, TestApp};

fn cfg(system: &str) -> String {
    format!("/v1/systems/{system}/configuration")
}

/// A document exercising what must survive storage exactly: nested objects and arrays, every
/// JSON number shape, strings with unicode and escapes, empty containers, keys with dots and
/// slashes.
fn tricky() -> Value {
    json!({
        "service": {"name": "ledger", "replicas": 3, "ratio": 0.75, "whole": 2.0,
                    "big": 9_007_199_254_740_993_i64, "neg": -42, "tiny": 1.5e-300, "huge": 1.7e308},
        "hosts": ["a.example", "b.example", {"nested": [1, [2, [3, []]], {}]}],
        "flags": {"enabled": true, "disabled": false, "unset": null},
        "text": "päivää \u{1F600} \"quoted\" \\ back\nslash",
        "log.level": "debug",
        "path/with/slashes": {"~tilde": 0},
        "empty": {"obj": {}, "arr": []}
    })
}

#[tokio::test]
async fn versions_are_numbered_kept_and_listed_newest_first() {
    let app = spawn_app().await;
    let sys = app.create_system(0, "erp", None).await;
    let r = app.get(0, &cfg(&sys)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no configuration yet");
    let r = app.get(0, &format!("{}/versions", cfg(&sys))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"], json!([]));

    let docs: Vec<Value> = (1..=4)
        .map(|n| json!({"n": n, "list": vec![n; n as usize]}))
        .collect();
    for (i, d) in docs.iter().enumerate() {
        let r = app
            .put(
                0,
                &cfg(&sys),
                json!({"config": d, "comment": format!("change {i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let n = i as i64 + 1;
        assert_eq!(r.body["version"], n);
        assert_eq!(r.header("etag").unwrap(), format!("\"{n}\""));
        assert_eq!(
            r.header("location").unwrap(),
            format!("{}/versions/{n}", cfg(&sys))
        );
        assert_eq!(r.body["createdBy"], "tenant-key");
        assert_eq!(r.body["tenantId"], app.tenant(0).id().to_string());
        assert!(r.body.get("rolledBackFrom").is_none());
    }
    let r = app.get(0, &cfg(&sys)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 4);
    assert_eq!(r.body["config"], docs[3]);
    assert_eq!(r.header("etag").unwrap(), "\"4\"");
    // Every version is still there, unchanged.
    for (i, d) in docs.iter().enumerate() {
        let r = app
            .get(0, &format!("{}/versions/{}", cfg(&sys), i + 1))
            .await;
        assert_eq!(r.body["config"], *d);
        assert_eq!(r.body["comment"], format!("change {i}"));
    }
    // History: newest first, paginated, without documents.
    let r = app.get(0, &format!("{}/versions?limit=3", cfg(&sys))).await;
    let versions: Vec<i64> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [4, 3, 2]);
    assert!(r.body["items"][0].get("config").is_none());
    let c = r.str("nextCursor");
    let r = app
        .get(0, &format!("{}/versions?limit=3&cursor={c}", cfg(&sys)))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["version"], 1);
    assert!(r.body.get("nextCursor").is_none());
    for (q, field) in [
        ("limit=0", "limit"),
        ("cursor=%%%", "cursor"),
        ("order=asc", "order"),
    ] {
        let r = app.get(0, &format!("{}/versions?{q}", cfg(&sys))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(r.error_fields(), [field]);
    }
    // Missing versions, bad numbers.
    let r = app.get(0, &format!("{}/versions/5", cfg(&sys))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get(0, &format!("{}/versions/0", cfg(&sys))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get(0, &format!("{}/versions/two", cfg(&sys))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Stored as documents 1..=4, never overwritten.
    let raw = app.raw_configs(0, &sys).await;
    let stored: Vec<i64> = raw.iter().map(|d| d.get_i64("version").unwrap()).collect();
    assert_eq!(stored, [1, 2, 3, 4]);
    // The platform key's writes are recorded as such.
    let r = app
        .platform(
            0,
            Method::PUT,
            &cfg(&sys),
            Some(json!({"config": {"by": "ops"}})),
        )
        .await;
    assert_eq!(r.body["createdBy"], "platform");
    assert_eq!(r.body["version"], 5);
}

#[tokio::test]
async fn if_match_is_optional_but_enforced() {
    let app = spawn_app().await;
    let sys = app.create_system(0, "erp", None).await;
    // "0": there must be no configuration yet; then each write names the version it replaces.
    // Rollback honours it too.
    let (put, rollback) = (cfg(&sys), format!("{}/rollback", cfg(&sys)));
    let stale = StatusCode::PRECONDITION_FAILED;
    #[rustfmt::skip]
    let steps = [
        (Method::PUT, &put, 0, Some(json!({"config": {"v": 1}})), StatusCode::CREATED),
        (Method::PUT, &put, 0, Some(json!({"config": {"v": "stale"}})), stale),
        (Method::PUT, &put, 1, Some(json!({"config": {"v": 2}})), StatusCode::CREATED),
        (Method::PUT, &put, 1, Some(json!({"config": {"v": "stale"}})), stale),
        (Method::PUT, &put, 7, Some(json!({"config": {"v": "future"}})), stale),
        (Method::POST, &rollback, 1, Some(json!({"toVersion": 1})), stale),
    ];
    app.expect_conditional(0, &steps).await;
    let r = app
        .api
        .send(
            prismicx_harness::kit::Call::new(Method::PUT, cfg(&sys))
                .key(&app.tenant(0).key)
                .header("if-match", "version-2")
                .json(json!({"config": {}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_fields(), ["If-Match"]);
    // Only the two accepted writes are stored.
    let raw = app.raw_configs(0, &sys).await;
    assert_eq!(raw.len(), 2);
    let r = app.get(0, &cfg(&sys)).await;
    assert_eq!(r.body["config"], json!({"v": 2}));
}

#[tokio::test]
async fn schema_violations_are_listed_with_json_pointers_and_store_nothing() {
    let app = spawn_app().await;
    let schema = json!({
        "type": "object",
        "required": ["database"],
        "properties": {
            "database": {"type": "object", "required": ["host", "port"], "properties": {
                "host": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535}}},
            "replicas": {"type": "integer", "minimum": 1},
            "hosts": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["active", "passive"]}
        },
        "additionalProperties": false
    });
    let sys = app
        .create_system(0, "db-cluster", Some(schema.clone()))
        .await;
    let r = app
        .put(
            0,
            &cfg(&sys),
            json!({"config": {
                "database": {"host": "", "port": 70000},
                "replicas": 0, "hosts": ["ok", 5], "mode": "chaos", "unknown": 1
            }}),
        )
        .await;
    r.expect_field_set(
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            "/config",
            "/config/database/host",
            "/config/database/port",
            "/config/hosts/1",
            "/config/mode",
            "/config/replicas",
        ],
        "every config field wrong",
    );
    let r = app.put(0, &cfg(&sys), json!({"config": {}})).await;
    assert_eq!(r.error_fields(), ["/config"]);
    let r = app
        .put(
            0,
            &cfg(&sys),
            json!({"config": {"database": {"host": "h"}}}),
        )
        .await;
    assert_eq!(r.error_fields(), ["/config/database"]);
    // Shapes the store cannot keep exactly, and other bad bodies.
    for (body, fields) in [
        (json!({"config": [1, 2]}), vec!["/config"]),
        (json!({"config": "text"}), vec!["/config"]),
        (json!({"config": {"$set": {"a": 1}}}), vec!["/config/$set"]),
        (
            json!({"config": {"a": [{"b": u64::MAX}]}}),
            vec!["/config/a/0/b"],
        ),
        (json!({"comment": "no config"}), vec!["config"]),
        (json!({"config": {}, "version": 3}), vec!["version"]),
        (
            json!({"config": {}, "tenantId": app.tenant(1).id()}),
            vec!["tenantId"],
        ),
        (
            json!({"config": {}, "comment": "x".repeat(1001)}),
            vec!["comment"],
        ),
    ] {
        let r = app.put(0, &cfg(&sys), body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.error_fields(), fields, "{body}");
    }
    assert!(app.raw_configs(0, &sys).await.is_empty());
    let r = app
        .put(
            0,
            &cfg(&sys),
            json!({"config": {"database": {"host": "db", "port": 5432}, "mode": "active"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["version"], 1);

    // A new schema applies to new versions; the old ones stay as they were.
    let r = app
        .patch_if(
            0,
            &format!("/v1/systems/{sys}"),
            1,
            json!({"configSchema": {"type": "object", "required": ["region"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .put(0, &cfg(&sys), json!({"config": {"database": 1}}))
        .await;
    assert_eq!(r.error_fields(), ["/config"]);
    assert_eq!(app.put_config(0, &sys, json!({"region": "eu"})).await, 2);
    // Rolling back to a version the current schema refuses is refused, listing why.
    let r = app
        .post(
            0,
            &format!("{}/rollback", cfg(&sys)),
            json!({"toVersion": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["/config"]);
    assert_eq!(app.raw_configs(0, &sys).await.len(), 2);
}

#[tokio::test]
async fn rollback_restores_exactly_the_earlier_version() {
    let app = spawn_app().await;
    let sys = app.create_system(0, "ledger", None).await;
    let original = tricky();
    assert_eq!(app.put_config(0, &sys, original.clone()).await, 1);
    let mut changed = original.clone();
    changed["service"]["replicas"] = json!(5);
    changed["service"]["whole"] = json!(2);
    changed["hosts"] = json!(["c.example"]);
    changed["empty"] = json!(null);
    changed["added"] = json!({"deep": [1.25]});
    assert_eq!(app.put_config(0, &sys, changed.clone()).await, 2);
    assert_eq!(
        app.put_config(0, &sys, json!({"completely": "different"}))
            .await,
        3
    );

    let r = app
        .post(
            0,
            &format!("{}/rollback", cfg(&sys)),
            json!({"toVersion": 1, "comment": "back to the start"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["version"], 4);
    assert_eq!(r.body["rolledBackFrom"], 1);
    assert_eq!(r.body["comment"], "back to the start");
    assert_eq!(r.header("etag").unwrap(), "\"4\"");
    assert_eq!(r.body["config"], original);

    // Read back independently: latest, by number, and the serialized text, all deep-equal.
    let latest = app.get(0, &cfg(&sys)).await;
    let v1 = app.get(0, &format!("{}/versions/1", cfg(&sys))).await;
    assert_eq!(latest.body["config"], original);
    assert_eq!(latest.body["config"], v1.body["config"]);
    assert_eq!(
        latest.body["config"].to_string(),
        v1.body["config"].to_string()
    );
    assert!(
        latest.body["config"]["service"]["whole"].is_f64(),
        "2.0 stays a float"
    );
    assert!(
        latest.body["config"]["service"]["big"].is_i64(),
        "big stays an exact integer"
    );
    assert_eq!(
        latest.body["config"]["service"]["big"].as_i64(),
        Some(9_007_199_254_740_993)
    );
    // The stored documents are equal too, field for field (raw BSON).
    let raw = app.raw_configs(0, &sys).await;
    assert_eq!(raw.len(), 4);
    assert_eq!(
        raw[3].get_document("config").unwrap(),
        raw[0].get_document("config").unwrap()
    );
    assert_eq!(raw[3].get_i64("rolled_back_from").unwrap(), 1);

    // Roll back to a rollback, and default comment.
    let r = app
        .post(
            0,
            &format!("{}/rollback", cfg(&sys)),
            json!({"toVersion": 2}),
        )
        .await;
    assert_eq!(r.body["version"], 5);
    assert_eq!(r.body["config"], changed);
    assert_eq!(r.body["comment"], "rollback to version 2");
    // Versions before are untouched.
    let r = app.get(0, &format!("{}/versions/3", cfg(&sys))).await;
    assert_eq!(r.body["config"], json!({"completely": "different"}));

    // Errors store nothing.
    for (body, status, field) in [
        (
            json!({"toVersion": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "toVersion",
        ),
        (
            json!({"toVersion": 99}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "toVersion",
        ),
        (
            json!({"toVersion": "1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "toVersion",
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "toVersion"),
        (
            json!({"toVersion": 1, "config": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "config",
        ),
    ] {
        let r = app
            .post(0, &format!("{}/rollback", cfg(&sys)), body.clone())
            .await;
        assert_eq!(r.status, status, "{body}");
        assert_eq!(r.error_fields(), [field], "{body}");
    }
    assert_eq!(app.raw_configs(0, &sys).await.len(), 5);
}

async fn diff(app: &TestApp, sys: &str, from: i64, to: i64) -> Vec<Value> {
    let r = app
        .get(0, &format!("{}/diff?from={from}&to={to}", cfg(sys)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["from"], from);
    assert_eq!(r.body["to"], to);
    r.body["patch"].as_array().unwrap().clone()
}

#[tokio::test]
async fn diff_is_a_json_patch_from_one_version_to_another() {
    let app = spawn_app().await;
    let sys = app.create_system(0, "web", None).await;
    let v1 = tricky();
    let mut v2 = v1.clone();
    v2["service"]["replicas"] = json!(4);
    v2["service"]["whole"] = json!(2);
    v2["hosts"] = json!(["a.example", {"nested": [1]}, "z.example", "y.example"]);
    v2["flags"].as_object_mut().unwrap().remove("unset");
    v2["path/with/slashes"]["~tilde"] = json!([0]);
    v2["new"] = json!({"k": [true]});
    let v3 = json!({"service": "now a string", "log.level": "debug"});
    let configs = [v1.clone(), v2.clone(), v3.clone()];
    for c in &configs {
        app.put_config(0, &sys, c.clone()).await;
    }
    for from in 1..=3_i64 {
        for to in 1..=3_i64 {
            let patch = diff(&app, &sys, from, to).await;
            let applied = apply_patch(&configs[from as usize - 1], &patch).unwrap();
            assert_eq!(
                applied,
                configs[to as usize - 1],
                "diff {from}→{to}: {patch:?}"
            );
            if from == to {
                assert!(patch.is_empty());
            }
        }
    }
    // The patch is precise: a single scalar change is one replace at its pointer.
    app.put_config(0, &sys, {
        let mut v = v3.clone();
        v["log.level"] = json!("info");
        v
    })
    .await;
    assert_eq!(
        diff(&app, &sys, 3, 4).await,
        [json!({"op": "replace", "path": "/log.level", "value": "info"})]
    );
    // Errors.
    for (q, status, field) in [
        ("from=1", StatusCode::BAD_REQUEST, Some("to")),
        ("to=1", StatusCode::BAD_REQUEST, Some("from")),
        ("from=x&to=1", StatusCode::BAD_REQUEST, Some("from")),
        (
            "from=1&to=2&format=text",
            StatusCode::BAD_REQUEST,
            Some("format"),
        ),
        ("from=1&to=9", StatusCode::NOT_FOUND, None),
    ] {
        let r = app.get(0, &format!("{}/diff?{q}", cfg(&sys))).await;
        assert_eq!(r.status, status, "{q}");
        if let Some(f) = field {
            assert_eq!(r.error_fields(), [f], "{q}");
        }
    }
}

#[tokio::test]
async fn deleting_a_system_deletes_its_configurations_in_either_tier() {
    let app = spawn_tiers(2, &[1], &[]).await;
    for t in 0..2 {
        let sys = app.create_system(t, "doomed", None).await;
        let keep = app.create_system(t, "kept", None).await;
        app.put_config(t, &sys, json!({"a": 1})).await;
        app.put_config(t, &sys, json!({"a": 2})).await;
        app.put_config(t, &keep, json!({"b": 1})).await;
        assert_eq!(app.raw_configs(t, &sys).await.len(), 2);
        let r = app.delete(t, &format!("/v1/systems/{sys}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(
            app.raw_configs(t, &sys).await.is_empty(),
            "tenant {t}: configurations left behind"
        );
        assert_eq!(
            app.raw_configs(t, &keep).await.len(),
            1,
            "tenant {t}: another system's configuration went too"
        );
        for path in [
            cfg(&sys),
            format!("{}/versions", cfg(&sys)),
            format!("{}/versions/1", cfg(&sys)),
        ] {
            assert_eq!(
                app.get(t, &path).await.status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let r = app.put(t, &cfg(&sys), json!({"config": {"a": 3}})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(app.raw_configs(t, &sys).await.is_empty());
        // A new system of the same name starts from version 1.
        let again = app.create_system(t, "doomed", None).await;
        assert_eq!(app.put_config(t, &again, json!({"a": 4})).await, 1);
    }
}

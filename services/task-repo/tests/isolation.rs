//! Tenant isolation, tested as an attacker would try to break it: tenants A (standard),
//! B (dedicated) and C (standard); each tenant's key against the others' task ids through every
//! route, lists and filters, replayed cursors, forged tenant ids, X-Tenant naming another
//! tenant; the victims' data checked unchanged afterwards; and each tier's documents found in
//! the right database with a raw client.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use mongodb::bson::{doc, spec::BinarySubtype, Bson, Document};
use prismicx_harness::kit::{mongo_system, mongo_tenant, Call};
use prismicx_service_common::mongo::tenant_bson;
use serde_json::{json, Value};
use support::{spawn, TestApp};

const TASKS: &str = "/v1/tasks";

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// A (standard), B (dedicated), C (standard), each with one distinctive task.
async fn three_tenants() -> (TestApp, Vec<Value>) {
    let app = spawn(3, &[B]).await;
    let mut tasks = Vec::new();
    for (i, name) in ["alpha", "bravo", "charlie"].iter().enumerate() {
        tasks.push(
            app.create(
                i,
                json!({"title": format!("{name} secret"), "assignee": format!("{name}-user"),
                       "labels": [format!("{name}-label")], "dueAt": "2001-01-01T00:00:00Z",
                       "attributes": {"owner": name}}),
            )
            .await,
        );
    }
    (app, tasks)
}

/// Every (attacker, victim) pair of two different tenants among A, B and C.
fn attacks() -> impl Iterator<Item = (usize, usize)> {
    [A, B, C]
        .into_iter()
        .flat_map(|a| [A, B, C].into_iter().map(move |v| (a, v)))
        .filter(|(a, v)| a != v)
}

fn id(t: &Value) -> &str {
    t["id"].as_str().unwrap()
}

#[tokio::test]
async fn no_tenant_key_reaches_another_tenants_tasks() {
    let (app, tasks) = three_tenants().await;
    for (attacker, victim) in attacks() {
        let vid = id(&tasks[victim]);
        let path = format!("/v1/tasks/{vid}");
        let before = app.task(victim, vid).await;
        let ctx = format!("tenant {attacker} against tenant {victim}");
        // Read, update, transition, delete by id: 404, as if the task did not exist.
        let r = app.task(attacker, vid).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{ctx}: GET");
        for rev in [1, 2] {
            let r = app
                .patch_if(attacker, &path, rev, json!({"title": "pwned"}))
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{ctx}: PATCH");
            let r = app.transition(attacker, vid, rev, "in_progress").await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{ctx}: transition");
            let r = app.delete_if(attacker, &path, rev).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{ctx}: DELETE");
        }
        // Lists and every filter that names the victim's data show only the attacker's.
        let name = ["alpha", "bravo", "charlie"][victim];
        for query in [
            String::new(),
            format!("q={name}"),
            format!("assignee={name}-user"),
            format!("label={name}-label"),
            "overdue=true".into(),
            "status=todo".into(),
            "sort=-dueAt".into(),
            "sort=priority".into(),
        ] {
            for item in app.list_all(attacker, &query, 1).await {
                assert_eq!(
                    item["tenantId"],
                    app.tenant(attacker).id().to_string(),
                    "{ctx}: ?{query}"
                );
                assert_ne!(item["id"], tasks[victim]["id"], "{ctx}: ?{query}");
            }
        }
        // The platform key naming the victim in X-Tenant is not the attacker's key: a
        // tenant key with X-Tenant naming another tenant is refused.
        for (m, p, body) in [
            (Method::GET, path.clone(), None),
            (Method::GET, TASKS.to_string(), None),
            (
                Method::POST,
                TASKS.to_string(),
                Some(json!({"title": "planted"})),
            ),
        ] {
            let mut call = Call::new(m.clone(), p.clone())
                .key(&app.tenant(attacker).key)
                .header("x-tenant", app.tenant(victim).slug());
            call.body = body;
            let r = app.api.send(call).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{ctx}: {m} {p} with X-Tenant"
            );
        }
        // The victim's task is exactly as it was.
        let after = app.task(victim, vid).await;
        assert_eq!(after.status, StatusCode::OK);
        assert_eq!(after.body, before.body, "{ctx}");
        assert_eq!(after.header("etag"), before.header("etag"));
    }
    // Each tenant still has exactly its own one task.
    for t in [A, B, C] {
        let all = app.list_all(t, "", 200).await;
        assert_eq!(
            support::ids(&all),
            [id(&tasks[t]).to_string()],
            "tenant {t}"
        );
    }
}

#[tokio::test]
async fn a_cursor_of_another_tenant_shows_only_the_callers_tasks() {
    let (app, tasks) = three_tenants().await;
    app.create_titled(B, "bravo two").await;
    let r = app.get(B, "/v1/tasks?limit=1").await;
    let cursor = r.body["nextCursor"].as_str().unwrap().to_string();
    for attacker in [A, C] {
        let r = app
            .get(attacker, &format!("/v1/tasks?cursor={cursor}"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        for item in r.body["items"].as_array().unwrap() {
            assert_eq!(item["tenantId"], app.tenant(attacker).id().to_string());
        }
        assert!(!r.body.to_string().contains("bravo"));
    }
    let _ = tasks;
}

#[tokio::test]
async fn forged_tenant_ids_in_bodies_are_refused_and_write_nothing() {
    let (app, tasks) = three_tenants().await;
    for (attacker, victim) in attacks() {
        let victim_id = app.tenant(victim).id().to_string();
        for field in ["tenantId", "tenant_id"] {
            let mut body = json!({"title": "forged"});
            body[field] = json!(victim_id);
            let r = app.post(attacker, TASKS, body).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(r.error_fields(), [field]);
            // On the attacker's own task: PATCH and transition bodies.
            let own = format!("/v1/tasks/{}", id(&tasks[attacker]));
            let r = app
                .patch_if(attacker, &own, 1, json!({ field: victim_id }))
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(r.error_fields(), [field]);
            let r = app
                .call_if(
                    attacker,
                    Method::POST,
                    &format!("{own}/transitions"),
                    1,
                    Some(json!({"to": "in_progress", field: victim_id})),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(r.error_fields(), [field]);
        }
    }
    for t in [A, B, C] {
        let all = app.list_all(t, "", 200).await;
        assert_eq!(all, vec![tasks[t].clone()], "tenant {t} unchanged");
    }
}

#[tokio::test]
async fn the_platform_key_acts_for_the_tenant_in_x_tenant() {
    let (app, tasks) = three_tenants().await;
    for t in [A, B, C] {
        let slug = app.tenant(t).slug().to_string();
        let path = format!("/v1/tasks/{}", id(&tasks[t]));
        let r = app.api.as_platform(&slug, Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, tasks[t]);
        let r = app.api.as_platform(&slug, Method::GET, TASKS, None).await;
        assert_eq!(r.body["items"], json!([tasks[t].clone()]));
        let r = app
            .api
            .send(
                Call::new(Method::PATCH, path.clone())
                    .key(prismicx_harness::kit::PLATFORM_KEY)
                    .header("x-tenant", &slug)
                    .header("if-match", "\"1\"")
                    .json(json!({"priority": "urgent"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(app.task(t, id(&tasks[t])).await.body["priority"], "urgent");
        // Acting for another tenant does not reach this one's task.
        let other = app.tenant((t + 1) % 3).slug().to_string();
        let r = app.api.as_platform(&other, Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

/// Raw documents of tenant `i` in database `db`.
async fn raw(client: &mongodb::Client, db: &str, tenant: uuid::Uuid) -> Vec<Document> {
    use futures::TryStreamExt;
    client
        .database(db)
        .collection::<Document>("tasks")
        .find(doc! {"tenant_id": tenant_bson(tenant)})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_tier_stores_its_documents_in_its_own_database() {
    let (app, tasks) = three_tenants().await;
    let client = mongo_system().await;
    let tenant_server = mongo_tenant().await;
    let dedicated_db = |i: usize| {
        format!(
            "task_repository__{}",
            app.tenant(i).slug().replace('-', "_")
        )
    };
    // B (dedicated): in its own database on mongodb-tenant, not in the shared one.
    let b = raw(&tenant_server, &dedicated_db(B), app.tenant(B).id()).await;
    assert_eq!(b.len(), 1);
    assert!(raw(&client, "task_repository", app.tenant(B).id())
        .await
        .is_empty());
    // A and C (standard): in the shared database, not in a database of their own.
    for s in [A, C] {
        let docs = raw(&client, "task_repository", app.tenant(s).id()).await;
        assert_eq!(docs.len(), 1, "tenant {s}");
        let names = tenant_server.list_database_names().await.unwrap();
        assert!(
            !names.contains(&dedicated_db(s)),
            "tenant {s} got a database"
        );
    }
    // The dedicated database holds nothing of other tenants.
    let all_b: Vec<Document> = {
        use futures::TryStreamExt;
        tenant_server
            .database(&dedicated_db(B))
            .collection::<Document>("tasks")
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(all_b.len(), 1);
    // Stored shape: _id and tenant_id are BSON UUIDs, times are BSON dates, the revision an int.
    for (i, d) in [
        (
            A,
            raw(&client, "task_repository", app.tenant(A).id())
                .await
                .remove(0),
        ),
        (B, b[0].clone()),
    ] {
        let uuid_of = |k: &str| match d.get(k) {
            Some(Bson::Binary(bin)) if bin.subtype == BinarySubtype::Uuid => {
                uuid::Uuid::from_slice(&bin.bytes).unwrap()
            }
            other => panic!("{k} is not a BSON UUID: {other:?}"),
        };
        assert_eq!(uuid_of("_id").to_string(), id(&tasks[i]));
        assert_eq!(uuid_of("tenant_id"), app.tenant(i).id());
        assert!(matches!(d.get("created_at"), Some(Bson::DateTime(_))));
        assert!(matches!(d.get("due_at"), Some(Bson::DateTime(_))));
        assert_eq!(d.get_i64("revision").unwrap(), 1);
    }
    // The operator's indexes exist where each tier's data is, each leading with tenant_id.
    for (db, server) in [
        ("task_repository".to_string(), &client),
        (dedicated_db(B), &tenant_server),
    ] {
        let names = server
            .database(&db)
            .collection::<Document>("tasks")
            .list_index_names()
            .await
            .unwrap();
        for idx in prismicx_task_repo::MONGO.collections[0].indexes {
            assert!(
                names.contains(&idx.name.to_string()),
                "{db}: {} missing",
                idx.name
            );
        }
    }
}

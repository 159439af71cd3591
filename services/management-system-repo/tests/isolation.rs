//! Tenant isolation, tested as an attacker would try to break it. Tenant A (standard) holds a
//! key; tenant B (dedicated: its own MongoDB database and its own PgBouncer pool) and tenant C
//! (standard: the shared collections, like A) hold the victims' data. A's key is tried against
//! every route with B's and C's ids, with forged tenant ids and with `X-Tenant`; afterwards B's
//! and C's data is read back as B and C and found unchanged. Then where the data really is
//! (raw MongoDB and PgBouncer), and what the database itself refuses below the API.

#![allow(clippy::unwrap_used)]

mod support;

use prismicx_harness::kit::{expect_no_rows_touched, expect_sqlstate};

use axum::http::{Method, StatusCode};
use mongodb::bson::{doc, Document};
use prismicx_harness::kit::{mongo_system, mongo_tenant, raw_count, Call};
use prismicx_service_common::mongo::tenant_bson;
use prismicx_service_common::pg::query_scalar;
use serde_json::{json, Value};
use support::{spawn_tiers, TestApp};

const SYSTEMS: &str = "/v1/systems";

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// What a victim owns: two related systems, a version, two configuration versions.
struct Victim {
    sys: String,
    other: String,
    version: String,
    relation: String,
    snapshot: Value,
}

async fn victim(app: &TestApp, t: usize) -> Victim {
    let schema = json!({"type": "object", "properties": {"secret": {"type": "string"}}});
    let sys = app.create_system(t, "crown-jewels", Some(schema)).await;
    let other = app.create_system(t, "vault", None).await;
    let r = app
        .post(
            t,
            &format!("/v1/systems/{sys}/versions"),
            json!({"version": "1.0.0", "notes": "mine"}),
        )
        .await;
    let version = r.str("id");
    let r = app
        .post(
            t,
            &format!("/v1/systems/{sys}/relations"),
            json!({"targetId": other, "kind": "depends_on"}),
        )
        .await;
    let relation = r.str("id");
    app.put_config(t, &sys, json!({"secret": format!("tenant {t} v1")}))
        .await;
    app.put_config(t, &sys, json!({"secret": format!("tenant {t} v2")}))
        .await;
    let snapshot = snapshot(app, t, &sys, &version, &relation).await;
    Victim {
        sys,
        other,
        version,
        relation,
        snapshot,
    }
}

/// Everything a tenant sees of its victim data, read as that tenant.
async fn snapshot(app: &TestApp, t: usize, sys: &str, version: &str, relation: &str) -> Value {
    let mut s = serde_json::Map::new();
    for path in [
        format!("/v1/systems/{sys}"),
        format!("/v1/systems/{sys}/versions/{version}"),
        format!("/v1/systems/{sys}/relations/{relation}"),
        format!("/v1/systems/{sys}/relations"),
        format!("/v1/systems/{sys}/configuration"),
        format!("/v1/systems/{sys}/configuration/versions"),
        format!("/v1/systems/{sys}/configuration/versions/1"),
        SYSTEMS.to_string(),
    ] {
        let r = app.get(t, &path).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "owner {t} reading {path}: {:?}",
            r.body
        );
        s.insert(path, r.body);
    }
    Value::Object(s)
}

#[tokio::test]
async fn tenant_a_key_never_reaches_b_or_c_data_in_either_tier() {
    let app = spawn_tiers(3, &[B], &[]).await;
    let a_sys = app.create_system(A, "attacker", None).await;
    let a_other = app.create_system(A, "attacker-2", None).await;
    app.put_config(A, &a_sys, json!({"mine": true})).await;
    let victims = [(B, victim(&app, B).await), (C, victim(&app, C).await)];

    for (t, v) in &victims {
        let (sys, ver, rel) = (&v.sys, &v.version, &v.relation);
        let cfg = format!("/v1/systems/{sys}/configuration");
        // Every route with the victim's ids: 404, as if they did not exist.
        let attempts: Vec<(Method, String, Option<Value>, Option<i64>)> = vec![
            (Method::GET, format!("/v1/systems/{sys}"), None, None),
            (
                Method::PATCH,
                format!("/v1/systems/{sys}"),
                Some(json!({"description": "pwned"})),
                Some(1),
            ),
            (Method::DELETE, format!("/v1/systems/{sys}"), None, None),
            (Method::DELETE, format!("/v1/systems/{sys}"), None, Some(1)),
            (
                Method::GET,
                format!("/v1/systems/{sys}/versions"),
                None,
                None,
            ),
            (
                Method::POST,
                format!("/v1/systems/{sys}/versions"),
                Some(json!({"version": "6.6.6"})),
                None,
            ),
            (
                Method::GET,
                format!("/v1/systems/{sys}/versions/{ver}"),
                None,
                None,
            ),
            (
                Method::PATCH,
                format!("/v1/systems/{sys}/versions/{ver}"),
                Some(json!({"status": "deprecated"})),
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/systems/{sys}/versions/{ver}"),
                None,
                None,
            ),
            (
                Method::GET,
                format!("/v1/systems/{sys}/relations"),
                None,
                None,
            ),
            (
                Method::POST,
                format!("/v1/systems/{sys}/relations"),
                Some(json!({"targetId": v.other, "kind": "replaces"})),
                None,
            ),
            (
                Method::GET,
                format!("/v1/systems/{sys}/relations/{rel}"),
                None,
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/systems/{sys}/relations/{rel}"),
                None,
                None,
            ),
            // The victim's child ids under the attacker's own system.
            (
                Method::GET,
                format!("/v1/systems/{a_sys}/versions/{ver}"),
                None,
                None,
            ),
            (
                Method::PATCH,
                format!("/v1/systems/{a_sys}/versions/{ver}"),
                Some(json!({"notes": "x"})),
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/systems/{a_sys}/versions/{ver}"),
                None,
                None,
            ),
            (
                Method::GET,
                format!("/v1/systems/{a_sys}/relations/{rel}"),
                None,
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/systems/{a_sys}/relations/{rel}"),
                None,
                None,
            ),
            // Configurations: read, history, diff, write, rollback.
            (Method::GET, cfg.clone(), None, None),
            (Method::GET, format!("{cfg}/versions"), None, None),
            (Method::GET, format!("{cfg}/versions/1"), None, None),
            (Method::GET, format!("{cfg}/diff?from=1&to=2"), None, None),
            (
                Method::PUT,
                cfg.clone(),
                Some(json!({"config": {"secret": "overwritten"}})),
                None,
            ),
            (
                Method::PUT,
                cfg.clone(),
                Some(json!({"config": {"secret": "overwritten"}})),
                Some(2),
            ),
            (
                Method::POST,
                format!("{cfg}/rollback"),
                Some(json!({"toVersion": 1})),
                None,
            ),
        ];
        for (method, path, body, tag) in attempts {
            let r = match tag {
                Some(tag) => app.call_if(A, method.clone(), &path, tag, body).await,
                None => app.call(A, method.clone(), &path, body).await,
            };
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "A: {method} {path} (victim {t}): {:?}",
                r.body
            );
            assert!(r.is_problem());
        }
        // Relating the attacker's system to the victim's: the target does not exist for A.
        let r = app
            .post(
                A,
                &format!("/v1/systems/{a_sys}/relations"),
                json!({"targetId": sys, "kind": "depends_on"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.error_fields(), ["targetId"]);
        // A tenant key naming the victim in X-Tenant is refused outright.
        for (method, path) in [
            (Method::GET, SYSTEMS.to_string()),
            (Method::GET, format!("/v1/systems/{sys}")),
            (Method::GET, cfg.clone()),
            (Method::DELETE, format!("/v1/systems/{sys}")),
        ] {
            let r = app
                .api
                .send(
                    Call::new(method.clone(), &path)
                        .key(&app.tenant(A).key)
                        .header("x-tenant", app.tenant(*t).slug()),
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        }
    }

    // Forged tenant ids in bodies are refused and write nothing.
    let b_id = app.tenant(B).id();
    for (method, path, body, field) in [
        (
            Method::POST,
            SYSTEMS.to_string(),
            json!({"name": "forged", "tenantId": b_id}),
            "tenantId",
        ),
        (
            Method::POST,
            SYSTEMS.to_string(),
            json!({"name": "forged", "tenant_id": b_id}),
            "tenant_id",
        ),
        (
            Method::POST,
            format!("/v1/systems/{a_sys}/versions"),
            json!({"version": "1.0", "tenantId": b_id}),
            "tenantId",
        ),
        (
            Method::POST,
            format!("/v1/systems/{a_sys}/relations"),
            json!({"targetId": a_other, "kind": "depends_on", "tenantId": b_id}),
            "tenantId",
        ),
        (
            Method::PUT,
            format!("/v1/systems/{a_sys}/configuration"),
            json!({"config": {}, "tenantId": b_id}),
            "tenantId",
        ),
        (
            Method::POST,
            format!("/v1/systems/{a_sys}/configuration/rollback"),
            json!({"toVersion": 1, "tenant_id": b_id}),
            "tenant_id",
        ),
    ] {
        let r = app.call(A, method.clone(), &path, Some(body)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}"
        );
        assert_eq!(r.error_fields(), [field]);
    }
    // A forged tenant_id inside a configuration is just data of A's (it cannot move the document).
    let r = app
        .put(
            A,
            &format!("/v1/systems/{a_sys}/configuration"),
            json!({"config": {"tenant_id": b_id.to_string()}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["tenantId"], app.tenant(A).id().to_string());

    // A's lists show only A's data.
    let r = app.get(A, "/v1/systems?limit=200").await;
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for s in items {
        assert_eq!(s["tenantId"], app.tenant(A).id().to_string());
    }
    assert!(!r.body.to_string().contains("crown-jewels"));

    // The platform key acts for the tenant it names.
    for (t, v) in &victims {
        let r = app
            .platform(
                *t,
                Method::GET,
                &format!("/v1/systems/{}/configuration", v.sys),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["config"]["secret"], format!("tenant {t} v2"));
        let r = app
            .platform(A, Method::GET, &format!("/v1/systems/{}", v.sys), None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "platform acting for A sees only A"
        );
    }

    // The victims' data is exactly as they left it, read as them, and in storage.
    for (t, v) in &victims {
        let now = snapshot(&app, *t, &v.sys, &v.version, &v.relation).await;
        assert_eq!(now, v.snapshot, "tenant {t}'s data changed");
        assert_eq!(app.stored_rows(*t, "systems").await, 2);
        assert_eq!(app.stored_rows(*t, "system_versions").await, 1);
        assert_eq!(app.stored_rows(*t, "system_relations").await, 1);
        assert_eq!(app.raw_configs(*t, &v.sys).await.len(), 2);
    }
}

/// Tenant `tenant`'s configurations in `db` (a dedicated database, `config_db__…`, lives on
/// mongodb-tenant; the shared one on mongodb-system).
async fn count(db: &str, tenant: uuid::Uuid) -> u64 {
    let client = if db.contains("__") {
        mongo_tenant().await
    } else {
        mongo_system().await
    };
    let filter = doc! {"tenant_id": tenant_bson(tenant)};
    raw_count(&client.database(db), "configurations", filter).await
}

#[tokio::test]
async fn documents_live_where_the_tier_says_and_dedicated_tenants_use_their_own_pool() {
    let app = spawn_tiers(3, &[B], &[]).await;
    for t in [A, B, C] {
        let sys = app.create_system(t, "placed", None).await;
        app.put_config(t, &sys, json!({"tier": t})).await;
        app.put_config(t, &sys, json!({"tier": t, "again": true}))
            .await;
    }
    let shared = "config_db";
    let dedicated =
        prismicx_management_system_repo::MONGO.dedicated_database(&app.tenant(B).placement.slug);
    assert_eq!(
        dedicated,
        format!("config_db__{}", app.tenant(B).placement.slug.ident())
    );
    // B: only in its own database; A and C: only in the shared one.
    assert_eq!(count(&dedicated, app.tenant(B).id()).await, 2);
    assert_eq!(count(shared, app.tenant(B).id()).await, 0);
    for t in [A, C] {
        assert_eq!(count(shared, app.tenant(t).id()).await, 2);
        assert_eq!(count(&dedicated, app.tenant(t).id()).await, 0);
    }
    // The dedicated database holds nothing but B's documents, with its tenant_id on each.
    let all = mongo_tenant()
        .await
        .database(&dedicated)
        .collection::<Document>("configurations")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(all, 2);
    // The layout's unique index is in both places.
    for (db, client) in [
        (shared, mongo_system().await),
        (dedicated.as_str(), mongo_tenant().await),
    ] {
        let names = client
            .database(db)
            .collection::<Document>("configurations")
            .list_index_names()
            .await
            .unwrap();
        assert!(
            names.contains(&"configurations_tenant_system_version".to_string()),
            "{db}: {names:?}"
        );
    }

    // B's PostgreSQL traffic goes through its own PgBouncer pool alias.
    let alias = prismicx_service_common::pg::dedicated_pool_alias(
        &app.pg().db,
        &app.tenant(B).placement.slug,
    );
    let pools = prismicx_harness::servers()
        .pgbouncer
        .show_databases()
        .await
        .unwrap();
    assert_eq!(pools.get(&alias), Some(&2));
    let served = |rows: &[sqlx::postgres::PgRow]| -> i64 {
        rows.iter()
            .filter(|r| sqlx::Row::get::<String, _>(*r, "database") == alias)
            .map(|r| {
                sqlx::Row::try_get_unchecked::<String, _>(r, "total_xact_count")
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .sum()
    };
    let mut console = prismicx_harness::servers()
        .pgbouncer
        .admin_console()
        .await
        .unwrap();
    let before = served(
        &sqlx::Executor::fetch_all(&mut console, "SHOW STATS")
            .await
            .unwrap(),
    );
    for _ in 0..3 {
        assert_eq!(app.get(B, SYSTEMS).await.status, StatusCode::OK);
    }
    // PgBouncer publishes its stats periodically: wait for the counter rather than for time.
    let mut after = before;
    for _ in 0..100 {
        after = served(
            &sqlx::Executor::fetch_all(&mut console, "SHOW STATS")
                .await
                .unwrap(),
        );
        if after >= before + 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        after >= before + 3,
        "B's transactions should run on {alias}: {before} → {after}"
    );
}

#[tokio::test]
async fn below_the_api_the_database_refuses_cross_tenant_rows() {
    let app = spawn_tiers(2, &[], &[]).await;
    let a_sys = app.create_system(A, "mine", None).await;
    let b_sys = app.create_system(B, "theirs", None).await;
    let a = app.tenant(A).placement.clone();
    let b_schema = app.schema(B);

    // RLS hides B's rows from A's transaction even when B's schema is named.
    let mut tx = app.state.db.begin(&a).await.unwrap();
    let seen: i64 = query_scalar(&format!("SELECT count(*) FROM {b_schema}.systems"))
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(seen, 0);
    // A relation from A's system to B's system id: the composite foreign key refuses it.
    expect_sqlstate(prismicx_service_common::pg::query(
        "INSERT INTO system_relations (source_id, target_id, kind) VALUES ($1, $2, 'depends_on')",
    )
    .bind(uuid::Uuid::parse_str(&a_sys).unwrap())
    .bind(uuid::Uuid::parse_str(&b_sys).unwrap())
    .execute(tx.conn())
    .await, "23503", "a relation to another tenant's system must be refused");
    drop(tx);
    // Forging B's tenant id on a row (row-level security refuses it) and writing into B's schema
    // from A's transaction (the schema's pinned tenant_id refuses it), each in a transaction of
    // its own.
    let query = prismicx_service_common::pg::query;
    let planted = format!("INSERT INTO {b_schema}.systems (name) VALUES ('planted')");
    for (write, sqlstate, what) in [
        (
            query("INSERT INTO systems (tenant_id, name) VALUES ($1, 'forged')")
                .bind(app.tenant(B).id()),
            "42501",
            "forged tenant_id",
        ),
        (
            query(&planted),
            "23514",
            "planting a row in another tenant's schema",
        ),
    ] {
        let mut tx = app.state.db.begin(&a).await.unwrap();
        expect_sqlstate(write.execute(tx.conn()).await, sqlstate, what);
        drop(tx);
    }
    // Updates and deletes aimed at B's schema touch nothing.
    let aimed_at_b = [
        format!("UPDATE {b_schema}.systems SET description = 'pwned'"),
        format!("DELETE FROM {b_schema}.systems"),
    ];
    expect_no_rows_touched(&app.state.db, &a, &aimed_at_b).await;
    let r = app.get(B, &format!("/v1/systems/{b_sys}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["description"], "theirs of tenant 1");

    // MongoDB: A's tenant-scoped collection does not see B's configuration documents, even
    // asked by B's system id.
    app.put_config(B, &b_sys, json!({"k": 1})).await;
    let coll = app.state.store.collection::<Document>(&a, "configurations");
    let b_uuid = uuid::Uuid::parse_str(&b_sys).unwrap();
    assert_eq!(
        coll.count(doc! {"system_id": tenant_bson(b_uuid)})
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        coll.delete_many(doc! {"system_id": tenant_bson(b_uuid)})
            .await
            .unwrap(),
        0
    );
    let b_coll = app
        .state
        .store
        .collection::<Document>(&app.tenant(B).placement, "configurations");
    assert_eq!(
        b_coll
            .count(doc! {"system_id": tenant_bson(b_uuid)})
            .await
            .unwrap(),
        1
    );
}

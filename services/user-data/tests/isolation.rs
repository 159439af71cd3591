//! Tenant isolation, tested as an attacker would try to break it: tenant A's key against
//! tenant B's data through every route, forged tenant ids, session-variable leaks through a
//! PgBouncer pool of one server connection, and many tenants in parallel.

#![allow(clippy::unwrap_used)]

mod support;

use prismicx_harness::kit::{expect_no_rows_touched, expect_sqlstate};

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use prismicx_service_common::pg::query_scalar;
use serde_json::json;
use support::{spawn_app, spawn_app_with, spawn_tiers, Options, TestApp};

const USERS: &str = "/v1/users";

/// Counts B's rows as the superuser sees them, to prove nothing was written or removed.
async fn stored(app: &TestApp, tenant: usize, table: &str) -> i64 {
    let schema = format!("tenant_{}", app.tenant(tenant).slug().replace('-', "_"));
    let mut admin = app.admin().await;
    query_scalar(&format!("SELECT count(*) FROM \"{schema}\".{table}"))
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn tenant_a_key_never_reaches_tenant_b_data() {
    let app = spawn_app().await;
    let b_user = app.create_user(1, "victim@b.io", "Victim").await;
    let r = app.post(1, "/v1/roles", json!({"name": "b-admin"})).await;
    let b_role = r.body["id"].as_str().unwrap().to_string();
    let a_user = app.create_user(0, "attacker@a.io", "Attacker").await;

    // Direct reads and writes by id.
    let b_path = format!("/v1/users/{b_user}");
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"displayName": "pwned"}))),
        (Method::DELETE, None),
    ] {
        let r = app.call(0, method.clone(), &b_path, body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {b_path}: {:?}",
            r.body
        );
    }
    let b_role_path = format!("/v1/roles/{b_role}");
    app.expect_statuses(
        0,
        &[
            (
                Method::GET,
                format!("{b_path}/roles"),
                StatusCode::NOT_FOUND,
            ),
            (Method::GET, b_role_path.clone(), StatusCode::NOT_FOUND),
            (Method::DELETE, b_role_path, StatusCode::NOT_FOUND),
        ],
    )
    .await;
    // Membership across tenants: A's user into B's role, B's user into A's view.
    assert_eq!(
        app.call(
            0,
            Method::PUT,
            &format!("/v1/users/{a_user}/roles/{b_role}"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(
            0,
            Method::PUT,
            &format!("/v1/users/{b_user}/roles/{b_role}"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    // Lists and searches show only A's data.
    for path in [
        USERS,
        "/v1/users?q=victim",
        "/v1/users?email=victim@b.io",
        "/v1/users?role=b-admin",
        "/v1/roles",
        "/v1/audit-events",
    ] {
        let r = app.get(0, path).await;
        assert_eq!(r.status, StatusCode::OK);
        for item in r.body["items"].as_array().unwrap() {
            assert_eq!(
                item["tenantId"],
                app.tenant(0).id().to_string(),
                "{path} leaked {item}"
            );
        }
        assert!(
            !r.body.to_string().contains("victim"),
            "{path} leaked B's data"
        );
    }
    let r = app
        .get(0, &format!("/v1/audit-events?entityId={b_user}"))
        .await;
    assert_eq!(r.body["items"], json!([]));

    // A cursor is no key to another tenant's rows: B's cursor replayed by A.
    let r = app.get(1, "/v1/users?limit=1").await;
    assert!(r.body.get("nextCursor").is_none());

    // Forged tenant id in the body: refused, nothing written to B.
    let r = app
        .post(
            0,
            USERS,
            json!({
                "email": "forged@b.io", "displayName": "Forged", "tenantId": app.tenant(1).id()
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["tenantId"]);
    let r = app
        .patch(
            0,
            &format!("/v1/users/{a_user}"),
            json!({"tenantId": app.tenant(1).id()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // B's data is exactly as B left it.
    let r = app.get(1, &b_path).await;
    assert_eq!(r.body["displayName"], "Victim");
    assert_eq!(stored(&app, 1, "users").await, 1);
    assert_eq!(stored(&app, 1, "roles").await, 1);
    assert_eq!(stored(&app, 1, "user_roles").await, 0);
}

#[tokio::test]
async fn sql_acting_as_a_tenant_cannot_reach_another_tenants_rows() {
    // Below the API: a transaction opened for A that names B's schema or forges B's id.
    let app = spawn_app().await;
    app.create_user(1, "victim@b.io", "Victim").await;
    let a = app
        .state
        .tenancy
        .tenant_for(
            &prismicx_service_common::auth::Principal::Platform,
            Some(app.tenant(0).slug()),
        )
        .await
        .unwrap();
    let b_schema = format!("\"tenant_{}\"", app.tenant(1).slug().replace('-', "_"));
    let mut tx = app.state.db.begin(&a).await.unwrap();
    let seen: i64 = query_scalar(&format!("SELECT count(*) FROM {b_schema}.users"))
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(
        seen, 0,
        "row-level security must hide B's rows even when B's schema is named"
    );
    let forged = prismicx_service_common::pg::query("INSERT INTO prismicx.audit_events (tenant_id, actor, action, entity, entity_id) VALUES ($1, 'x', 'create', 'user', gen_random_uuid())")
        .bind(app.tenant(1).id())
        .execute(tx.conn())
        .await;
    expect_sqlstate(forged, "42501", "a row for another tenant must be refused");
    drop(tx);
    let aimed_at_b = [format!(
        "UPDATE {b_schema}.users SET display_name = 'pwned'"
    )];
    expect_no_rows_touched(&app.state.db, &a, &aimed_at_b).await;
    let r = app.get(1, USERS).await;
    assert_eq!(r.body["items"][0]["displayName"], "Victim");
}

#[tokio::test]
async fn no_tenant_context_leaks_through_a_pool_of_one_server_connection() {
    // Every request goes through a PgBouncer alias with pool_size 1: each transaction reuses the
    // one server connection the previous tenant used.
    let app = spawn_app_with(Options {
        tenants: 2,
        shared_pool_alias_size: Some(1),
        client_pool_size: 4,
        ..Default::default()
    })
    .await;
    let pools = prismicx_harness::servers()
        .pgbouncer
        .show_databases()
        .await
        .unwrap();
    assert_eq!(pools.get(&format!("{}_shared", app.pg().db)), Some(&1));
    let a = app.create_user(0, "a@a.io", "A").await;
    let b = app.create_user(1, "b@b.io", "B").await;

    // A raw client on the same alias, with no tenant: sees nothing, inherits nothing.
    let opts = prismicx_harness::servers().pgbouncer.options(
        &format!("{}_shared", app.pg().db),
        &app.pg().login,
        app.pg().password.expose(),
    );
    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    for round in 0..30 {
        let i = round % 2;
        let r = app.get(i, USERS).await;
        let ids = r.item_strs("id");
        assert_eq!(
            ids,
            [if i == 0 { a.as_str() } else { b.as_str() }],
            "round {round}"
        );
        let mut tx = raw.begin().await.unwrap();
        let setting: Option<String> =
            query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(
            setting, None,
            "round {round}: app.tenant_id leaked to the next client"
        );
        let path: String = query_scalar("SELECT current_setting('search_path')")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(
            !path.contains("tenant_"),
            "round {round}: search_path leaked: {path}"
        );
        let visible: i64 = query_scalar("SELECT count(*) FROM prismicx.audit_events")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(visible, 0, "round {round}: rows visible without a tenant");
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn many_parallel_requests_from_several_tenants_each_get_their_own_data() {
    let app = spawn_app_with(Options {
        tenants: 4,
        client_pool_size: 8,
        ..Default::default()
    })
    .await;
    // Writes in parallel: 4 tenants × 15 users.
    let writes = (0..60).map(|n| {
        let app = &app;
        async move {
            let t = n % 4;
            let r = app
                .post(
                    t,
                    USERS,
                    json!({"email": format!("u{n}@t{t}.io"), "displayName": format!("t{t}")}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            (t, r.body["id"].as_str().unwrap().to_string())
        }
    });
    let created = join_all(writes).await;
    // Reads in parallel: lists and gets, each must belong to the caller.
    let reads = (0..120).map(|n| {
        let app = &app;
        let created = &created;
        async move {
            let t = n % 4;
            if n % 3 == 0 {
                let r = app.get(t, "/v1/users?limit=200").await;
                let items = r.body["items"].as_array().unwrap();
                assert_eq!(items.len(), 15);
                for u in items {
                    assert_eq!(u["tenantId"], app.tenant(t).id().to_string());
                    assert_eq!(u["displayName"], format!("t{t}"));
                }
            } else {
                let (owner, id) = &created[n % created.len()];
                let r = app.get(t, &format!("/v1/users/{id}")).await;
                if *owner == t {
                    assert_eq!(r.status, StatusCode::OK);
                    assert_eq!(r.body["tenantId"], app.tenant(t).id().to_string());
                } else {
                    assert_eq!(
                        r.status,
                        StatusCode::NOT_FOUND,
                        "tenant {t} read tenant {owner}'s user"
                    );
                }
            }
        }
    });
    join_all(reads).await;
}

#[tokio::test]
async fn dedicated_tenants_use_their_own_pgbouncer_pool() {
    let app = spawn_tiers(2, &[1], &[]).await;
    let slug = prismicx_service_common::tenancy::TenantSlug::parse(app.tenant(1).slug()).unwrap();
    let alias = prismicx_service_common::pg::dedicated_pool_alias(&app.pg().db, &slug);
    assert_eq!(
        prismicx_harness::servers()
            .pgbouncer
            .show_databases()
            .await
            .unwrap()
            .get(&alias),
        Some(&2)
    );
    let id = app.create_user(1, "vip@d.io", "VIP").await;
    let vip = format!("/v1/users/{id}");
    for (tenant, want) in [(1, StatusCode::OK), (0, StatusCode::NOT_FOUND)] {
        let got = app.get(tenant, &vip).await.status;
        assert_eq!(
            got, want,
            "tenant {tenant} reading the dedicated tenant's user"
        );
    }
    // The dedicated pool served it: PgBouncer counts requests per pool alias.
    let mut console = prismicx_harness::servers()
        .pgbouncer
        .admin_console()
        .await
        .unwrap();
    let rows = sqlx::Executor::fetch_all(&mut console, "SHOW STATS")
        .await
        .unwrap();
    let served: i64 = rows
        .iter()
        .filter(|r| sqlx::Row::get::<String, _>(*r, "database") == alias)
        // The admin console answers in text; total_xact_count is NUMERIC.
        .map(|r| {
            sqlx::Row::try_get_unchecked::<String, _>(r, "total_xact_count")
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    assert!(
        served >= 2,
        "expected the dedicated alias {alias} to carry the tenant's transactions, saw {served}"
    );
}

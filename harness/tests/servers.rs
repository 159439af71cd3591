//! The harness starts real servers that answer, and PgBouncer pools behave as configured.

#![allow(clippy::unwrap_used)]

use prismicx_harness::{servers, unique_name, PoolAlias};
use sqlx::{Connection, Executor, Row};

#[tokio::test]
async fn postgres_and_pgbouncer_serve_a_fresh_database_with_scram_login() {
    let s = servers();
    let db = s.postgres.create_database().await.unwrap();
    let mut admin = s.postgres.admin_connect(&db.name).await.unwrap();
    let role = unique_name("r_");
    admin
        .execute(format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'").as_str())
        .await
        .unwrap();
    let mut c = sqlx::PgConnection::connect_with(&s.pgbouncer.options(
        &db.name,
        &role,
        &format!("pw-{role}"),
    ))
    .await
    .unwrap();
    let row = c
        .fetch_one("SELECT current_user::text AS u, current_database()::text AS d")
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("u"), role);
    assert_eq!(row.get::<String, _>("d"), db.name);

    let wrong =
        sqlx::PgConnection::connect_with(&s.pgbouncer.options(&db.name, &role, "wrong")).await;
    assert!(wrong.is_err(), "a wrong password must be refused");
}

#[tokio::test]
async fn pool_aliases_are_applied_with_reload() {
    let s = servers();
    let db = s.postgres.create_database().await.unwrap();
    let alias = unique_name("pool_");
    s.pgbouncer
        .set_aliases(&[PoolAlias {
            name: alias.clone(),
            dbname: db.name.clone(),
            pool_size: 3,
        }])
        .await
        .unwrap();
    let dbs = s.pgbouncer.show_databases().await.unwrap();
    assert_eq!(dbs.get(&alias), Some(&3));
}

#[tokio::test]
async fn redis_answers() {
    let s = servers();
    let client = redis::Client::open(s.redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn mongo_wire_servers_answer_their_administrator_only() {
    let s = servers();
    assert_ne!(s.mongo_system.port(), s.mongo_tenant.port());
    for m in [&s.mongo_system, &s.mongo_tenant] {
        let anonymous = mongodb::Client::with_uri_str(m.anonymous_uri())
            .await
            .unwrap();
        assert!(
            anonymous
                .database("x")
                .collection::<mongodb::bson::Document>("c")
                .find_one(mongodb::bson::doc! {})
                .await
                .is_err(),
            "{} refuses unauthenticated reads",
            m.role()
        );
        let wrong = mongodb::Client::with_uri_str(m.uri_as("admin", "not-the-password", "admin"))
            .await
            .unwrap();
        assert!(
            wrong.list_database_names().await.is_err(),
            "{} refuses a wrong password",
            m.role()
        );
    }
    let client = mongodb::Client::with_uri_str(s.mongo_system.uri())
        .await
        .unwrap();
    let db = client.database(&unique_name("h_"));
    db.collection::<mongodb::bson::Document>("c")
        .insert_one(mongodb::bson::doc! {"a": 1})
        .await
        .unwrap();
    let n = db
        .collection::<mongodb::bson::Document>("c")
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap();
    assert_eq!(n, 1);
}

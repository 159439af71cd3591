//! user-data runs each request's transaction again on a transient database error (the store's
//! one retry policy): a trigger in the tenant's schema fails the first attempts with a
//! serialization failure (SQLSTATE 40001). A sequence counts the attempts, since `nextval`
//! is not rolled back with the failed transaction (the trigger runs as its owner, the
//! harness administrator, so the tenant needs no grant on it).

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use prismicx_service_common::pg::query_scalar;
use prismicx_service_common::pg::retry::ATTEMPTS;
use serde_json::json;
use sqlx::Connection;
use support::{spawn_app, TestApp};

/// Makes inserts into tenant `schema`'s users fail with 40001 while the attempt counter is at
/// most `failing`.
async fn fail_user_inserts(conn: &mut sqlx::PgConnection, schema: &str, failing: u32) {
    let sql = format!(
        "CREATE SEQUENCE {schema}.attempts;
         CREATE FUNCTION {schema}.flaky() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
         BEGIN
           IF nextval('{schema}.attempts') <= {failing} THEN
             RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER flaky BEFORE INSERT ON {schema}.users
           FOR EACH ROW EXECUTE FUNCTION {schema}.flaky();"
    );
    sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
}

/// The app, tenant 0's schema, and a superuser connection with which tenant 0's user inserts
/// fail `failing` times.
async fn failing_app(failing: u32) -> (TestApp, String, sqlx::PgConnection) {
    let app = spawn_app().await;
    let schema = app.tenant(0).pg_schema();
    let mut admin = app.pg().admin().await;
    fail_user_inserts(&mut admin, &schema, failing).await;
    (app, schema, admin)
}

async fn attempts(conn: &mut sqlx::PgConnection, schema: &str) -> i64 {
    query_scalar(&format!("SELECT last_value FROM {schema}.attempts"))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

async fn users(conn: &mut sqlx::PgConnection, schema: &str) -> i64 {
    query_scalar(&format!("SELECT count(*) FROM {schema}.users"))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_write_that_meets_a_transient_failure_is_run_again_and_lands_once() {
    let (app, schema, mut admin) = failing_app(2).await;
    let user = json!({"email": "retry@example.com", "displayName": "R"});
    let r = app.post(0, "/v1/users", user).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        attempts(&mut admin, &schema).await,
        3,
        "two failed attempts, then one that held"
    );
    assert_eq!(
        users(&mut admin, &schema).await,
        1,
        "the user is written once"
    );
    // The id is the service's own UUID, safe to put in the SQL text.
    let id = uuid::Uuid::parse_str(r.body["id"].as_str().unwrap()).unwrap();
    let trail = format!("prismicx.audit_events WHERE entity_id = '{id}'");
    let audit = app.pg().count_rows(&trail).await;
    assert_eq!(audit, 1, "the audit trail records the creation once");
    admin.close().await.unwrap();
}

#[tokio::test]
async fn a_failure_that_persists_stops_after_the_policys_attempts_and_writes_nothing() {
    let (app, schema, mut admin) = failing_app(u32::MAX / 2).await;
    let user = json!({"email": "never@example.com", "displayName": "N"});
    let r = app.post(0, "/v1/users", user).await;
    // A serialization failure that outlasts the attempts is the client's to retry.
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert!(
        !r.body.to_string().contains("injected"),
        "the database's message stays out of the answer: {:?}",
        r.body
    );
    assert_eq!(attempts(&mut admin, &schema).await, i64::from(ATTEMPTS));
    assert_eq!(users(&mut admin, &schema).await, 0);
    admin.close().await.unwrap();
}

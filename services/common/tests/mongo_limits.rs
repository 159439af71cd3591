//! Every read a service sends through a `TenantCollection` carries a server-side time limit
//! (`maxTimeMS`), so a query a tenant made expensive is stopped by the server. Checked on the
//! wire: the driver's command monitoring records each command the harness MongoDB receives.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mongodb::bson::{doc, Document};
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::{ClientOptions, FindOptions};
use prismicx_harness::{servers, unique_name};
use prismicx_service_common::mongo::{TenantCollection, QUERY_TIME_LIMIT};
use uuid::Uuid;

/// A client whose commands (name, body) are recorded.
async fn recording_client() -> (mongodb::Client, Arc<Mutex<Vec<(String, Document)>>>) {
    let seen: Arc<Mutex<Vec<(String, Document)>>> = Arc::default();
    let mut opts = ClientOptions::parse(servers().mongo_system.uri())
        .await
        .unwrap();
    let sink = seen.clone();
    opts.command_event_handler = Some(EventHandler::callback(move |e: CommandEvent| {
        if let CommandEvent::Started(s) = e {
            sink.lock()
                .unwrap()
                .push((s.command_name.clone(), s.command.clone()));
        }
    }));
    (mongodb::Client::with_options(opts).unwrap(), seen)
}

fn max_time_of(seen: &[(String, Document)], command: &str) -> Vec<Option<i64>> {
    seen.iter()
        .filter(|(name, _)| name == command)
        .map(|(_, body)| match body.get("maxTimeMS") {
            Some(mongodb::bson::Bson::Int32(v)) => Some(i64::from(*v)),
            Some(mongodb::bson::Bson::Int64(v)) => Some(*v),
            Some(other) => other.as_f64().map(|f| f as i64),
            None => None,
        })
        .collect()
}

#[tokio::test]
async fn every_read_carries_a_server_side_time_limit() {
    let (client, seen) = recording_client().await;
    let db = client.database(&unique_name("limits_"));
    let c: TenantCollection<Document> = TenantCollection::new(&db, "things", Uuid::new_v4());
    c.insert_one(&doc! {"n": 1}).await.unwrap();
    c.find_one(doc! {"n": 1}).await.unwrap();
    c.find(doc! {}, None).await.unwrap();
    c.find(doc! {}, Some(FindOptions::builder().limit(5).build()))
        .await
        .unwrap();
    c.count(doc! {}).await.unwrap();
    c.aggregate(vec![doc! {"$project": {"n": 1}}])
        .await
        .unwrap();
    let limit = QUERY_TIME_LIMIT.as_millis() as i64;
    let seen = seen.lock().unwrap().clone();
    let finds = max_time_of(&seen, "find");
    assert_eq!(finds, vec![Some(limit); 3], "find and find_one: {seen:?}");
    // count_documents is an aggregation on the wire.
    let aggregates = max_time_of(&seen, "aggregate");
    assert_eq!(aggregates, vec![Some(limit); 2], "count and aggregate");
}

#[tokio::test]
async fn a_service_may_set_a_shorter_limit_and_an_explicit_one_is_kept() {
    let (client, seen) = recording_client().await;
    let db = client.database(&unique_name("limits_"));
    let c: TenantCollection<Document> = TenantCollection::new(&db, "things", Uuid::new_v4())
        .with_max_time(Duration::from_millis(750));
    c.find_one(doc! {}).await.unwrap();
    c.find(
        doc! {},
        Some(
            FindOptions::builder()
                .max_time(Duration::from_millis(200))
                .build(),
        ),
    )
    .await
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(max_time_of(&seen, "find"), vec![Some(750), Some(200)]);
}

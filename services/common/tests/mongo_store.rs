//! `MongoStore` against the harness MongoDB wire server: where each tier's documents go, and
//! transactions that commit together, abort together, and survive write conflicts by running
//! again.

#![allow(clippy::unwrap_used)]

use mongodb::bson::{doc, Document};
use prismicx_harness::kit::{mongo_system, mongo_tenant, test_tenants};
use prismicx_service_common::mongo::{
    CollectionLayout, IndexLayout, LayoutIndexes, MongoLayout, MongoStore, TenantCollection,
    TenantMongoError,
};
use prismicx_service_common::tenancy::TenantPlacement;
use prismicx_service_common::ApiError;

const LAYOUT: MongoLayout = MongoLayout {
    database: "store_tests",
    collections: &[CollectionLayout {
        name: "counters",
        indexes: &[IndexLayout {
            name: "counters_tenant_name",
            keys: &[("name", 1)],
            unique: true,
        }],
    }],
};

async fn store() -> MongoStore {
    let s = MongoStore::new(mongo_system().await, mongo_tenant().await, LAYOUT);
    LAYOUT.ensure_indexes(&s.system_database()).await.unwrap();
    s
}

/// The store, a fresh standard tenant, and that tenant's `counters` collection.
async fn counters() -> (MongoStore, TenantPlacement, TenantCollection<Document>) {
    let s = store().await;
    let tenant = test_tenants(1, &[]).remove(0).placement;
    let coll = s.collection::<Document>(&tenant, "counters");
    (s, tenant, coll)
}

#[tokio::test]
async fn standard_tenants_share_the_service_database_and_dedicated_ones_get_their_own() {
    let s = store().await;
    let t = test_tenants(2, &[1]);
    let (standard, dedicated) = (&t[0].placement, &t[1].placement);
    assert_eq!(s.database(standard).name(), "store_tests");
    assert_eq!(
        s.database(dedicated).name(),
        format!("store_tests__{}", dedicated.slug.ident())
    );
    s.collection::<Document>(dedicated, "counters")
        .insert_one(&doc! {"name": "a", "n": 1})
        .await
        .unwrap();
    // The dedicated tenant's document is in its own database, with its tenant_id, and not in
    // the shared one.
    let own = s
        .database(dedicated)
        .collection::<Document>("counters")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert!(own.get("tenant_id").is_some());
    assert_eq!(
        s.collection::<Document>(standard, "counters")
            .count(doc! {"name": "a"})
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_failing_body_leaves_nothing_behind() {
    let (s, tenant, coll) = counters().await;
    let out: Result<(), ApiError> = s
        .transaction(&tenant, |session| {
            let coll = coll.clone();
            Box::pin(async move {
                coll.insert_one_in(session, &doc! {"name": "first", "n": 0})
                    .await?;
                Err(ApiError::invalid("name", "refused after the first write"))
            })
        })
        .await;
    assert_eq!(out.unwrap_err().status(), 422);
    assert_eq!(coll.count(doc! {}).await.unwrap(), 0);

    let out: Result<(), TenantMongoError> = s
        .transaction(&tenant, |session| {
            let coll = coll.clone();
            Box::pin(async move {
                // Two writes in the one transaction, both kept.
                for name in ["x", "y"] {
                    let counter = doc! {"name": name, "n": 0};
                    coll.insert_one_in(session, &counter).await?;
                }
                Ok(())
            })
        })
        .await;
    out.unwrap();
    assert_eq!(coll.count(doc! {}).await.unwrap(), 2);
}

#[tokio::test]
async fn conflicting_transactions_run_again_and_lose_no_update() {
    let (s, tenant, coll) = counters().await;
    coll.insert_one(&doc! {"name": "c", "n": 0}).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (s, coll, tenant) = (s.clone(), coll.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let out: Result<(), TenantMongoError> = s
                    .transaction(&tenant, |session| {
                        let coll = coll.clone();
                        Box::pin(async move {
                            // Read-modify-write: only correct if a conflicting commit makes
                            // this attempt fail and run again.
                            let cur = coll
                                .find_one_in(session, doc! {"name": "c"})
                                .await?
                                .and_then(|d| d.get_i32("n").ok())
                                .unwrap_or(-100);
                            coll.update_one_in(
                                session,
                                doc! {"name": "c"},
                                doc! {"$set": {"n": cur + 1}},
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .await;
                out.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = coll
        .find_one(doc! {"name": "c"})
        .await
        .unwrap()
        .unwrap()
        .get_i32("n")
        .unwrap();
    assert_eq!(n, 20);
}

/// A service whose mongodb-tenant connections were opened before the operator granted it a new
/// dedicated tenant's database still reaches that tenant, for single operations and
/// transactions: the store reconnects once when the server answers `Unauthorized`.
#[tokio::test]
async fn a_database_granted_while_the_service_runs_is_reached_without_a_restart() {
    let s = prismicx_harness::servers();
    let t = test_tenants(1, &[0]);
    let tenant = t[0].placement.clone();
    let db = LAYOUT.dedicated_database(&tenant.slug);
    let user = prismicx_harness::unique_name("svc_");
    let admin = mongo_tenant().await.database("admin");
    admin
        .run_command(doc! {"createUser": &user, "pwd": "pw-1", "roles": []})
        .await
        .unwrap();
    let uri = s.mongo_tenant.uri_as(&user, "pw-1", "admin");
    let options = mongodb::options::ClientOptions::parse(&uri).await.unwrap();
    let client = mongodb::Client::with_options(options.clone()).unwrap();
    let store = MongoStore::new(mongo_system().await, client, LAYOUT).with_tenant_options(options);
    // Connections open and authenticate before the grant.
    store.ping().await.unwrap();
    admin
        .run_command(doc! {"grantRolesToUser": &user, "roles": [{"role": "readWrite", "db": &db}]})
        .await
        .unwrap();
    let coll = store.collection::<Document>(&tenant, "counters");
    coll.insert_one(&doc! {"name": "a", "n": 1})
        .await
        .expect("reached after the grant");
    let out: Result<(), TenantMongoError> = store
        .transaction(&tenant, |session| {
            let coll = coll.clone();
            Box::pin(async move {
                coll.insert_one_in(session, &doc! {"name": "b", "n": 2})
                    .await?;
                Ok(())
            })
        })
        .await;
    out.expect("a transaction too");
    assert_eq!(coll.count(doc! {}).await.unwrap(), 2);

    // A database never granted stays refused.
    let other = test_tenants(1, &[0]);
    let refused = store
        .collection::<Document>(&other[0].placement, "counters")
        .insert_one(&doc! {"name": "x", "n": 0})
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

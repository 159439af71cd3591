//! `TenantCollection` against the harness MongoDB wire server: two tenants on one shared
//! collection, each confined to its own documents for reads, writes, aggregations and indexes.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::options::FindOptions;
use mongodb::{Collection, Database};
use prismicx_harness::{servers, unique_name};
use prismicx_service_common::mongo::{
    is_duplicate_key, tenant_bson, TenantCollection, TenantMongoError, TENANT_FIELD,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const COLLECTION: &str = "things";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    #[serde(rename = "_id")]
    id: ObjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<bson::Uuid>,
    name: String,
    n: i32,
}

impl Doc {
    fn new(name: &str, n: i32) -> Doc {
        Doc {
            id: ObjectId::new(),
            tenant_id: None,
            name: name.into(),
            n,
        }
    }
}

/// An integer field, whatever integer (or double) type the server chose.
fn number(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Double(v)) => *v as i64,
        other => panic!("{key}: {other:?}"),
    }
}

fn buuid(id: Uuid) -> bson::Uuid {
    bson::Uuid::from_bytes(*id.as_bytes())
}

struct Fixture {
    db: Database,
    a_id: Uuid,
    b_id: Uuid,
    a: TenantCollection<Doc>,
    b: TenantCollection<Doc>,
}

impl Fixture {
    async fn new() -> Fixture {
        let client = mongodb::Client::with_uri_str(servers().mongo_system.uri())
            .await
            .unwrap();
        let db = client.database(&unique_name("m_"));
        let (a_id, b_id) = (Uuid::new_v4(), Uuid::new_v4());
        Fixture {
            a: TenantCollection::new(&db, COLLECTION, a_id),
            b: TenantCollection::new(&db, COLLECTION, b_id),
            db,
            a_id,
            b_id,
        }
    }

    /// The collection without any tenant filter: the test's view of the ground truth.
    fn raw(&self) -> Collection<Document> {
        self.db.collection(COLLECTION)
    }

    /// Inserts `a-0..a-{na}` for A and `b-0..b-{nb}` for B; returns their ids.
    async fn seed(&self, na: i32, nb: i32) -> (Vec<ObjectId>, Vec<ObjectId>) {
        let mut ids = (Vec::new(), Vec::new());
        for i in 0..na {
            let d = Doc::new(&format!("a-{i}"), i);
            self.a.insert_one(&d).await.unwrap();
            ids.0.push(d.id);
        }
        for i in 0..nb {
            let d = Doc::new(&format!("b-{i}"), i);
            self.b.insert_one(&d).await.unwrap();
            ids.1.push(d.id);
        }
        (ids.0, ids.1)
    }

    async fn raw_doc(&self, id: ObjectId) -> Document {
        self.raw()
            .find_one(doc! {"_id": id})
            .await
            .unwrap()
            .expect("document exists")
    }
}

#[tokio::test]
async fn reads_return_only_the_tenants_own_documents() {
    let fx = Fixture::new().await;
    let (a_ids, b_ids) = fx.seed(3, 2).await;
    assert_eq!(fx.raw().count_documents(doc! {}).await.unwrap(), 5);

    let all_a = fx.a.find(doc! {}, None).await.unwrap();
    assert_eq!(all_a.len(), 3);
    assert!(all_a.iter().all(|d| d.tenant_id == Some(buuid(fx.a_id))));
    let all_b =
        fx.b.find(
            doc! {},
            Some(FindOptions::builder().sort(doc! {"n": 1}).build()),
        )
        .await
        .unwrap();
    let names: Vec<&str> = all_b.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["b-0", "b-1"]);

    assert_eq!(fx.a.count(doc! {}).await.unwrap(), 3);
    assert_eq!(fx.b.count(doc! {}).await.unwrap(), 2);
    assert_eq!(fx.a.count(doc! {"n": {"$gte": 0}}).await.unwrap(), 3);
    assert_eq!(fx.b.count(doc! {"n": 0}).await.unwrap(), 1);

    // B's documents by name, by id, or by B's tenant id are invisible to A.
    assert!(fx
        .a
        .find(doc! {"name": "b-0"}, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(fx.a.find_one(doc! {"_id": b_ids[0]}).await.unwrap(), None);
    assert_eq!(
        fx.a.count(doc! {TENANT_FIELD: tenant_bson(fx.b_id)})
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        fx.a.count(doc! {"$or": [{"name": "b-1"}, {"name": {"$exists": true}}]})
            .await
            .unwrap(),
        3
    );
    // A's own document by id.
    let own =
        fx.a.find_one(doc! {"_id": a_ids[1]})
            .await
            .unwrap()
            .unwrap();
    assert_eq!(own.name, "a-1");
    assert_eq!(
        fx.a.find_one(doc! {}).await.unwrap().unwrap().tenant_id,
        Some(buuid(fx.a_id))
    );
}

#[tokio::test]
async fn writes_aimed_at_another_tenants_documents_affect_nothing() {
    let fx = Fixture::new().await;
    let (a_ids, _) = fx.seed(2, 2).await;

    assert_eq!(fx.b.delete_one(doc! {"_id": a_ids[0]}).await.unwrap(), 0);
    assert_eq!(
        fx.b.update_one(doc! {"_id": a_ids[0]}, doc! {"$set": {"name": "pwned"}})
            .await
            .unwrap(),
        0
    );
    // Unfiltered writes by B reach only B's documents.
    assert_eq!(
        fx.b.update_many(doc! {}, doc! {"$set": {"name": "b-renamed"}})
            .await
            .unwrap(),
        2
    );
    assert_eq!(fx.b.delete_many(doc! {}).await.unwrap(), 2);
    assert_eq!(fx.b.count(doc! {}).await.unwrap(), 0);

    // A's documents are all there, unchanged.
    assert_eq!(fx.raw().count_documents(doc! {}).await.unwrap(), 2);
    for (i, id) in a_ids.iter().enumerate() {
        let d = fx.raw_doc(*id).await;
        assert_eq!(d.get_str("name").unwrap(), format!("a-{i}"));
        assert_eq!(d.get(TENANT_FIELD), Some(&tenant_bson(fx.a_id)));
    }
    // And A can still change its own.
    assert_eq!(
        fx.a.update_one(doc! {"_id": a_ids[0]}, doc! {"$set": {"name": "mine"}})
            .await
            .unwrap(),
        1
    );
    assert_eq!(fx.a.delete_one(doc! {"_id": a_ids[1]}).await.unwrap(), 1);
}

#[tokio::test]
async fn inserts_carry_the_tenant_and_foreign_tenant_ids_are_refused() {
    let fx = Fixture::new().await;

    // Without a tenant_id, the handle stamps its own (as a BSON UUID, subtype 4).
    let d = Doc::new("plain", 1);
    fx.b.insert_one(&d).await.unwrap();
    let stored = fx.raw_doc(d.id).await;
    assert_eq!(stored.get(TENANT_FIELD), Some(&tenant_bson(fx.b_id)));
    assert!(matches!(
        stored.get(TENANT_FIELD),
        Some(Bson::Binary(bin)) if bin.subtype == bson::spec::BinarySubtype::Uuid
    ));

    // Its own id, explicitly: accepted.
    let mut own = Doc::new("explicit", 2);
    own.tenant_id = Some(buuid(fx.b_id));
    fx.b.insert_one(&own).await.unwrap();

    // A's id through B's handle: refused, nothing written.
    let mut forged = Doc::new("forged", 3);
    forged.tenant_id = Some(buuid(fx.a_id));
    let err = fx.b.insert_one(&forged).await.unwrap_err();
    assert!(matches!(err, TenantMongoError::ForeignTenant), "{err:?}");
    assert_eq!(
        fx.raw()
            .count_documents(doc! {"_id": forged.id})
            .await
            .unwrap(),
        0
    );
    assert_eq!(fx.a.count(doc! {}).await.unwrap(), 0);
    assert_eq!(fx.raw().count_documents(doc! {}).await.unwrap(), 2);
}

/// A document type whose tenant_id is a plain string (someone else's id in another encoding).
#[derive(Debug, Serialize, Deserialize)]
struct StringTenant {
    tenant_id: String,
    name: String,
}

#[tokio::test]
async fn a_tenant_id_in_another_encoding_is_refused_too() {
    let fx = Fixture::new().await;
    let b: TenantCollection<StringTenant> = TenantCollection::new(&fx.db, COLLECTION, fx.b_id);
    let err = b
        .insert_one(&StringTenant {
            tenant_id: fx.a_id.to_string(),
            name: "x".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, TenantMongoError::ForeignTenant), "{err:?}");
    assert_eq!(fx.raw().count_documents(doc! {}).await.unwrap(), 0);
}

#[tokio::test]
async fn updates_touching_tenant_id_are_refused() {
    let fx = Fixture::new().await;
    let (a_ids, _) = fx.seed(1, 0).await;
    let to_b = tenant_bson(fx.b_id);
    for update in [
        doc! {"$set": {TENANT_FIELD: to_b.clone()}},
        doc! {"$set": {"name": "ok", TENANT_FIELD: to_b.clone()}},
        doc! {"$setOnInsert": {TENANT_FIELD: to_b.clone()}},
        doc! {"$unset": {TENANT_FIELD: ""}},
        doc! {"$rename": {TENANT_FIELD: "was_tenant"}},
        doc! {"$rename": {"name": TENANT_FIELD}},
        doc! {"$set": {"tenant_id.sub": 1}},
        doc! {"$currentDate": {TENANT_FIELD: true}},
    ] {
        let err =
            fx.a.update_one(doc! {"_id": a_ids[0]}, update.clone())
                .await
                .unwrap_err();
        assert!(
            matches!(err, TenantMongoError::TenantFieldUpdate),
            "{update}: {err:?}"
        );
        let err = fx.a.update_many(doc! {}, update.clone()).await.unwrap_err();
        assert!(
            matches!(err, TenantMongoError::TenantFieldUpdate),
            "{update}: {err:?}"
        );
    }
    let stored = fx.raw_doc(a_ids[0]).await;
    assert_eq!(stored.get(TENANT_FIELD), Some(&tenant_bson(fx.a_id)));
    assert_eq!(stored.get_str("name").unwrap(), "a-0");
    assert_eq!(fx.b.count(doc! {}).await.unwrap(), 0);
}

#[tokio::test]
async fn aggregations_see_only_own_documents_and_cannot_reach_other_collections() {
    let fx = Fixture::new().await;
    fx.seed(3, 2).await;

    let grouped =
        fx.a.aggregate(vec![
            doc! {"$group": {"_id": null, "count": {"$sum": 1}, "total": {"$sum": "$n"}}},
        ])
        .await
        .unwrap();
    assert_eq!(grouped.len(), 1);
    assert_eq!(number(&grouped[0], "count"), 3);
    assert_eq!(number(&grouped[0], "total"), 3); // 0 + 1 + 2
    let all_b = fx.b.aggregate(vec![]).await.unwrap();
    assert_eq!(all_b.len(), 2);
    assert!(all_b
        .iter()
        .all(|d| d.get(TENANT_FIELD) == Some(&tenant_bson(fx.b_id))));
    // A $match naming the other tenant adds to the tenant's own $match; it cannot widen it.
    let none =
        fx.a.aggregate(vec![doc! {"$match": {TENANT_FIELD: tenant_bson(fx.b_id)}}])
            .await
            .unwrap();
    assert!(none.is_empty());

    let target = "stolen";
    for stage in [
        doc! {"$lookup": {"from": COLLECTION, "localField": "name", "foreignField": "name", "as": "x"}},
        doc! {"$graphLookup": {"from": COLLECTION, "startWith": "$name", "connectFromField": "name", "connectToField": "name", "as": "x"}},
        doc! {"$unionWith": {"coll": COLLECTION}},
        doc! {"$out": target},
        doc! {"$merge": {"into": target}},
    ] {
        let name = stage.keys().next().unwrap().clone();
        let err =
            fx.a.aggregate(vec![doc! {"$match": {}}, stage])
                .await
                .unwrap_err();
        assert!(
            matches!(&err, TenantMongoError::ForbiddenStage(s) if *s == name),
            "{name}: {err:?}"
        );
    }
    let collections = fx.db.list_collection_names().await.unwrap();
    assert!(!collections.iter().any(|c| c == target), "{collections:?}");
}

/// `$lookup` nested in a `$facet` sub-pipeline is not checked: it reads the whole shared
/// collection, i.e. every tenant's documents.
#[tokio::test]
async fn nested_lookup_in_facet_is_refused() {
    let fx = Fixture::new().await;
    fx.seed(1, 2).await;
    let result =
        fx.a.aggregate(vec![doc! {"$facet": {"leak": [
            {"$lookup": {"from": COLLECTION, "pipeline": [], "as": "everyone"}},
        ]}}])
        .await;
    match result {
        Err(TenantMongoError::ForbiddenStage(_)) => {}
        other => panic!("expected ForbiddenStage, got {other:?}"),
    }
}

#[tokio::test]
async fn indexes_lead_with_tenant_id_and_unique_ones_are_per_tenant() {
    let fx = Fixture::new().await;
    // Even when the caller lists tenant_id elsewhere, it leads.
    fx.a.ensure_index("name_unique", doc! {"name": 1, TENANT_FIELD: -1}, true)
        .await
        .unwrap();
    fx.b.ensure_index("by_n", doc! {"n": -1}, false)
        .await
        .unwrap();
    // Idempotent.
    fx.a.ensure_index("name_unique", doc! {"name": 1}, true)
        .await
        .unwrap();

    let mut cursor = fx.raw().list_indexes().await.unwrap();
    let mut seen = Vec::new();
    while cursor.advance().await.unwrap() {
        let model = cursor.deserialize_current().unwrap();
        let name = model.options.as_ref().and_then(|o| o.name.clone()).unwrap();
        if name == "_id_" {
            continue;
        }
        let keys: Vec<(String, Bson)> = model.keys.into_iter().collect();
        assert_eq!(keys[0].0, TENANT_FIELD, "index {name}: {keys:?}");
        let unique = model.options.and_then(|o| o.unique).unwrap_or(false);
        seen.push((
            name,
            keys.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            unique,
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "by_n".to_string(),
                vec![TENANT_FIELD.to_string(), "n".into()],
                false
            ),
            (
                "name_unique".to_string(),
                vec![TENANT_FIELD.to_string(), "name".into()],
                true
            ),
        ]
    );

    // Both tenants may use the name "x"; one tenant cannot use it twice.
    fx.a.insert_one(&Doc::new("x", 1)).await.unwrap();
    fx.b.insert_one(&Doc::new("x", 1)).await.unwrap();
    let dup = Doc::new("x", 2);
    let err = fx.a.insert_one(&dup).await.unwrap_err();
    match err {
        TenantMongoError::Mongo(e) => assert!(is_duplicate_key(&e), "{e:?}"),
        other => panic!("expected a duplicate-key error, got {other:?}"),
    }
    assert_eq!(
        fx.raw()
            .count_documents(doc! {"_id": dup.id})
            .await
            .unwrap(),
        0
    );
    assert_eq!(fx.a.count(doc! {"name": "x"}).await.unwrap(), 1);
    assert_eq!(fx.b.count(doc! {"name": "x"}).await.unwrap(), 1);
}

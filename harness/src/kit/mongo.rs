//! MongoDB for a service's tests: administrator clients of the harness's two servers (for raw
//! reads and writes), and a [`MongoStore`] connected the way a service is in production, with
//! the service's layout provisioned as the operator does it.

use mongodb::bson::{doc, Document};
use prismicx_service_common::mongo::{LayoutIndexes, MongoLayout, MongoStore};
use prismicx_service_common::tenancy::Tier;

use super::TestTenant;
use crate::{servers, unique_name, Mongo};

/// The administrator's client of `server`.
async fn admin_client(server: &Mongo) -> mongodb::Client {
    mongodb::Client::with_uri_str(server.uri())
        .await
        .expect("MongoDB administrator client")
}

/// An administrator's client of mongodb-system (for raw reads and writes in tests).
pub async fn mongo_system() -> mongodb::Client {
    admin_client(&servers().mongo_system).await
}

/// An administrator's client of mongodb-tenant (for raw reads and writes in tests).
pub async fn mongo_tenant() -> mongodb::Client {
    admin_client(&servers().mongo_tenant).await
}

/// The administrator's client of the server a tenant of `tier` keeps its documents on.
pub async fn mongo_for(tier: Tier) -> mongodb::Client {
    match tier {
        Tier::Standard => mongo_system().await,
        Tier::Dedicated => mongo_tenant().await,
    }
}

/// A [`MongoStore`] as a service has it in production: on mongodb-system as a user defined in
/// the service database with `readWrite` on it only, and on mongodb-tenant as a user with
/// `readWrite` on the dedicated `tenants`' databases only (both created for this store, so
/// parallel tests do not share them). `layout`'s indexes are in the shared database and in each
/// dedicated tenant's database, as the operator provisions them. A service that reads a
/// dedicated tenant's documents from the wrong server, or reaches a database outside its own,
/// is refused.
pub async fn mongo_store(layout: MongoLayout, tenants: &[TestTenant]) -> MongoStore {
    let s = servers();
    let (system_admin, tenant_admin) = (mongo_system().await, mongo_tenant().await);
    let dedicated: Vec<&TestTenant> = tenants
        .iter()
        .filter(|t| t.placement.tier == Tier::Dedicated)
        .collect();
    let user = unique_name("svc_");
    let password = unique_name("pw");
    system_admin
        .database(layout.database)
        .run_command(doc! {
            "createUser": &user, "pwd": &password,
            "roles": [{"role": "readWrite", "db": layout.database}],
        })
        .await
        .expect("service user on mongodb-system");
    let roles: Vec<Document> = dedicated
        .iter()
        .map(|t| {
            doc! {"role": "readWrite", "db": layout.dedicated_database(&t.placement.slug)}
        })
        .collect();
    tenant_admin
        .database("admin")
        .run_command(doc! {"createUser": &user, "pwd": &password, "roles": roles})
        .await
        .expect("service user on mongodb-tenant");
    let system =
        mongodb::Client::with_uri_str(s.mongo_system.uri_as(&user, &password, layout.database))
            .await
            .expect("service client of mongodb-system");
    let tenant = mongodb::Client::with_uri_str(s.mongo_tenant.uri_as(&user, &password, "admin"))
        .await
        .expect("service client of mongodb-tenant");
    layout
        .ensure_indexes(&system_admin.database(layout.database))
        .await
        .expect("shared indexes");
    for t in dedicated {
        layout
            .ensure_indexes(&tenant_admin.database(&layout.dedicated_database(&t.placement.slug)))
            .await
            .expect("dedicated indexes");
    }
    MongoStore::new(system, tenant, layout)
}

/// The database of `layout` where `tenant`'s documents must be (the shared one for a standard
/// tenant, its own for a dedicated one), through the administrator: reads there see everything,
/// with no tenant filter.
pub async fn raw_database(layout: MongoLayout, tenant: &TestTenant) -> mongodb::Database {
    let name = match tenant.tier() {
        Tier::Standard => layout.database.to_string(),
        Tier::Dedicated => layout.dedicated_database(&tenant.placement.slug),
    };
    mongo_for(tenant.tier()).await.database(&name)
}

/// Every document of `collection` matching `filter` in `tenant`'s [`raw_database`], in `sort`
/// order.
pub async fn raw_find(
    layout: MongoLayout,
    tenant: &TestTenant,
    collection: &str,
    filter: Document,
    sort: Option<Document>,
) -> Vec<Document> {
    use futures::TryStreamExt;
    let coll = raw_database(layout, tenant)
        .await
        .collection::<Document>(collection);
    let mut find = coll.find(filter);
    if let Some(sort) = sort {
        find = find.sort(sort);
    }
    find.await
        .expect("raw find")
        .try_collect()
        .await
        .expect("raw documents")
}

/// How many documents of `collection` in `db` match `filter`, counted through whatever client
/// `db` came from (the administrator's, for raw reads that see past the tenant filter).
pub async fn raw_count(db: &mongodb::Database, collection: &str, filter: Document) -> u64 {
    db.collection::<Document>(collection)
        .count_documents(filter)
        .await
        .expect("raw count")
}

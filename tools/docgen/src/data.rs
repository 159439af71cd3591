//! The platform's data, as the code declares it: the operator's catalog (what each service keeps
//! per tenant: its PostgreSQL migrations, its MongoDB layout), the platform collections beside
//! them, and the service catalog of the operator API (names, ports, database names). The
//! migrations are read with [`crate::sql`]; the diagrams and the schema reference render this.

use anyhow::{bail, Context, Result};
use prismicx_operator::catalog::{Catalog, PLATFORM_COLLECTIONS};
use prismicx_operator_api::ServiceKind;
use prismicx_tenancy::layout::{Migration, MongoLayout};

use crate::sql::Schema;

/// A service's PostgreSQL database: the shared schema and the schema every tenant gets.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pub service: ServiceKind,
    pub name: &'static str,
    /// Tables of the shared schema `prismicx` (system migrations).
    pub system: Schema,
    /// Tables of each `tenant_<slug>` schema (tenant migrations).
    pub tenant: Schema,
}

/// A service's MongoDB database on mongodb-system and the collections a dedicated tenant's own
/// database gets.
#[derive(Debug, Clone)]
pub struct MongoDatabase {
    pub service: ServiceKind,
    pub layout: MongoLayout,
    /// The platform's own collections in this database (one document per tenant or key; not
    /// part of the tenant layout, never on mongodb-tenant).
    pub platform_collections: Vec<&'static str>,
}

/// Everything the diagrams and the schema reference show.
#[derive(Debug, Clone)]
pub struct DataModel {
    pub postgres: Vec<PgDatabase>,
    pub mongo: Vec<MongoDatabase>,
}

impl DataModel {
    /// Reads the operator's catalog and every migration; fails on SQL the reader does not know
    /// and on a database name the catalog and the service catalog disagree on.
    pub fn platform() -> Result<Self> {
        let catalog = Catalog::platform();
        let mut postgres = Vec::new();
        let mut mongo = Vec::new();
        for service in ServiceKind::ALL {
            let data = catalog.service(service);
            agree(
                service,
                "PostgreSQL",
                data.postgres.map(|p| p.database),
                service.postgres_database(),
            )?;
            agree(
                service,
                "MongoDB",
                data.mongo.map(|m| m.database),
                service.mongo_database(),
            )?;
            if let Some(p) = data.postgres {
                postgres.push(PgDatabase {
                    service,
                    name: p.database,
                    system: read_migrations(p.database, "system", p.schema.system)?,
                    tenant: read_migrations(p.database, "tenant", p.schema.tenant)?,
                });
            }
            if let Some(layout) = data.mongo {
                let platform_collections = PLATFORM_COLLECTIONS
                    .iter()
                    .filter(|(db, _)| *db == layout.database)
                    .map(|(_, c)| *c)
                    .collect();
                mongo.push(MongoDatabase {
                    service,
                    layout,
                    platform_collections,
                });
            }
        }
        Ok(DataModel { postgres, mongo })
    }
}

/// Fails when the operator's catalog and the service catalog name different databases.
fn agree(
    service: ServiceKind,
    store: &str,
    catalog: Option<&str>,
    service_catalog: Option<&str>,
) -> Result<()> {
    if catalog != service_catalog {
        bail!(
            "{}: the operator's catalog has {store} database {catalog:?}, the service catalog \
             {service_catalog:?}",
            service.k8s_name()
        );
    }
    Ok(())
}

fn read_migrations(database: &str, scope: &str, migrations: &[Migration]) -> Result<Schema> {
    let mut schema = Schema::default();
    for m in migrations {
        schema
            .apply(m.sql)
            .with_context(|| format!("{database} {scope} migration {:04}_{}", m.version, m.name))?;
    }
    Ok(schema)
}

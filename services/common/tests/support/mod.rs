//! Fixtures shared by the integration tests: a tiny service schema that follows the tenancy
//! contract, and a freshly provisioned database of it (the harness kit's [`PgService`]: system
//! schema, tenants, login role) on the harness PostgreSQL. Every fixture has its own database,
//! roles and tenant slugs, so tests run in parallel on the shared servers.
#![allow(dead_code)]
// A failed query in a fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::ops::Deref;

use prismicx_harness::kit::{PgOptions, PgService};
use prismicx_harness::{servers, unique_name, PoolAlias};
use prismicx_service_common::pg::migrate::{Migration, ServiceSchema};
use prismicx_service_common::pg::{query, query_scalar, TenantDb};
use prismicx_service_common::tenancy::{TenantPlacement, TenantSlug, TenantState, Tier};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

/// Shared table `prismicx.notes`, RLS enabled and forced, policy on `app.tenant_id`, index
/// leading with `tenant_id`.
pub const NOTES: Migration = Migration {
    version: 1,
    name: "notes",
    sql: r#"
CREATE TABLE prismicx.notes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    body text,
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE prismicx.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE prismicx.notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON prismicx.notes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE INDEX notes_tenant_created ON prismicx.notes (tenant_id, created_at);
"#,
};

/// Tenant-schema table `items` (created in `tenant_<slug>` through the migration's search_path),
/// with the same protections as the shared table.
pub const ITEMS: Migration = Migration {
    version: 1,
    name: "items",
    sql: r#"
CREATE TABLE items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON items
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE INDEX items_tenant_created ON items (tenant_id, created_at);
"#,
};

/// A second tenant migration, so the tenant version (2) differs from the system version (1).
pub const ITEMS_QTY: Migration = Migration {
    version: 2,
    name: "items_qty",
    sql: "ALTER TABLE items ADD COLUMN qty integer NOT NULL DEFAULT 0",
};

pub static SCHEMA: ServiceSchema = ServiceSchema {
    system: &[NOTES],
    tenant: &[ITEMS, ITEMS_QTY],
};

/// A provisioned service database of [`SCHEMA`] on the harness servers (the kit's
/// [`PgService`]) and its standard tenants.
#[derive(Debug)]
pub struct PgFixture {
    pub pg: PgService,
    pub tenants: Vec<TenantPlacement>,
}

impl Deref for PgFixture {
    type Target = PgService;
    fn deref(&self) -> &PgService {
        &self.pg
    }
}

impl PgFixture {
    /// A fresh database with the system schema applied, `n` standard tenants provisioned and a
    /// login role for the service.
    pub async fn provision(n: usize) -> PgFixture {
        let tenants: Vec<TenantPlacement> = (0..n).map(|_| new_tenant(Tier::Standard)).collect();
        let pg = PgService::provision(&SCHEMA, &tenants, PgOptions::default()).await;
        assert_eq!(pg.system_version, 1);
        assert!(
            pg.tenant_versions.iter().all(|v| *v == 2),
            "{:?}",
            pg.tenant_versions
        );
        PgFixture { pg, tenants }
    }

    /// A [`TenantDb`] on the service database through PgBouncer.
    pub fn tenant_db(&self, pool_size: u32) -> TenantDb {
        TenantDb::connect_lazy(self.settings_for(&self.db, pool_size))
    }
}

/// A tenant with a fresh slug and id (not provisioned).
pub fn new_tenant(tier: Tier) -> TenantPlacement {
    TenantPlacement {
        id: Uuid::new_v4(),
        slug: TenantSlug::parse(&unique_name("t")).unwrap(),
        tier,
        state: TenantState::Active,
    }
}

/// Adds a PgBouncer pool alias over the fixture's database `dbname` with `pool_size` server
/// connections, and checks PgBouncer serves it, at that size, after the RELOAD.
pub async fn set_alias(name: &str, dbname: &str, pool_size: u32) {
    let pgbouncer = &servers().pgbouncer;
    let alias = PoolAlias {
        name: name.to_string(),
        dbname: dbname.to_string(),
        pool_size,
    };
    pgbouncer.set_aliases(&[alias]).await.unwrap();
    let served = pgbouncer.show_databases().await.unwrap();
    assert!(
        served.contains_key(name),
        "alias {name} missing after RELOAD"
    );
    assert_eq!(
        served.get(name),
        Some(&i64::from(pool_size)),
        "alias {name}'s pool size"
    );
}

#[allow(unused_imports)]
pub use prismicx_harness::kit::sqlstate;

/// Every value of the one-column query `sql` on `conn` (a failed query fails the test).
pub async fn column<T>(conn: &mut PgConnection, sql: &str) -> Vec<T>
where
    (T,): for<'r> FromRow<'r, PgRow>,
    T: Send + Unpin,
{
    query_scalar(sql).fetch_all(conn).await.unwrap()
}

/// The one value of the one-row, one-column query `sql` on `conn`.
pub async fn scalar<T>(conn: &mut PgConnection, sql: &str) -> T
where
    (T,): for<'r> FromRow<'r, PgRow>,
    T: Send + Unpin,
{
    query_scalar(sql).fetch_one(conn).await.unwrap()
}

/// Runs the statement `sql` on `conn`, returning how many rows it touched.
pub async fn run(conn: &mut PgConnection, sql: &str) -> u64 {
    query(sql).execute(conn).await.unwrap().rows_affected()
}

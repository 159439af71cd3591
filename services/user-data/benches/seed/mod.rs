//! Seeding shared by the user-data benchmarks: a fresh database with the service's system
//! migrations and a login role ([`BenchDb::create`]), tenants provisioned in it and filled with
//! [`USERS`] users whose ids are `ID_PREFIX` + n (12 digits) ([`BenchDb::seed_tenant`]), and the
//! service's pool through the harness PgBouncer as that login ([`BenchDb::tenant_db`]); and the
//! small pieces both reports share (a load tool's checked output, the core count).

use std::time::Duration;

use prismicx_harness::{unique_name, Servers};
use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::config::Secret;
use prismicx_service_common::pg::{migrate, PgSettings, TenantDb};
use prismicx_service_common::tenancy::{RegistryEntry, TenantSlug, TenantState, Tier};
use prismicx_user_data::migrations;
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

/// Users seeded per tenant.
pub const USERS: u32 = 1000;
/// Seeded user `n` has the id `ID_PREFIX` followed by `n` in 12 digits.
pub const ID_PREFIX: &str = "00000000-0000-4000-8000-";

/// A benchmark's database, its administrator connection and the service's login role.
pub struct BenchDb {
    pub db: String,
    pub login: String,
    pub password: String,
    pub admin: PgConnection,
}

impl BenchDb {
    /// A new database with the system migrations applied and a login role for the service.
    pub async fn create(s: &Servers) -> anyhow::Result<BenchDb> {
        let db = s.postgres.create_database().await?.name;
        let mut admin = s.postgres.admin_connect(&db).await?;
        migrate::apply_system(&mut admin, &migrations::SCHEMA).await?;
        let login = format!("{db}_svc");
        let password = unique_name("pw");
        migrate::ensure_login_role(&mut admin, &login, &Secret::new(password.clone())).await?;
        Ok(BenchDb {
            db,
            login,
            password,
            admin,
        })
    }

    /// Provisions the standard tenant `name` (its slug), seeds it with [`USERS`] users
    /// (`user<n>@<name>.io`), and returns its registry entry, whose API key is `<name>-key`.
    pub async fn seed_tenant(&mut self, name: &str) -> anyhow::Result<RegistryEntry> {
        let slug = TenantSlug::parse(name).map_err(anyhow::Error::msg)?;
        let id = Uuid::new_v4();
        migrate::provision_tenant(&mut self.admin, &migrations::SCHEMA, &slug, id).await?;
        let schema = slug.pg_schema();
        self.admin
            .execute(
                format!(
                    "INSERT INTO {schema}.users (id, tenant_id, email, display_name, attributes) \
                     SELECT ('{ID_PREFIX}' || lpad(n::text, 12, '0'))::uuid, '{id}', \
                            'user' || n || '@{name}.io', 'User ' || n, jsonb_build_object('n', n) \
                     FROM generate_series(1, {USERS}) n"
                )
                .as_str(),
            )
            .await?;
        self.admin
            .execute(format!("ANALYZE {schema}.users").as_str())
            .await?;
        Ok(RegistryEntry {
            slug,
            id,
            tier: Tier::Standard,
            state: TenantState::Active,
            api_keys: vec![KeyDigest::of(&format!("{name}-key")).to_string()],
        })
    }

    /// The service's pool (16 connections) through the harness PgBouncer as the login role.
    pub fn tenant_db(&self, s: &Servers) -> TenantDb {
        TenantDb::connect_lazy(PgSettings {
            host: "127.0.0.1".into(),
            port: s.pgbouncer.port(),
            database: self.db.clone(),
            user: self.login.clone(),
            password: Secret::new(self.password.clone()),
            pool_size: 16,
            dedicated_pool_size: 2,
            acquire_timeout: Duration::from_secs(10),
        })
    }
}

/// A fresh scratch folder for a benchmark's scripts.
pub fn scratch_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(unique_name("prismicx-bench-"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The standard output of a load tool's run, or an error naming `tool` with all it printed when
/// it failed.
pub fn succeeded(out: &std::process::Output, tool: &str) -> anyhow::Result<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "{tool} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// The cores this machine offers (0 when unknown), for the report's header.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

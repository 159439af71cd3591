//! Tenants of a test: unique slugs, ids and API keys, the tier and state each test asks for, and
//! the [`Tenancy`] (a [`StaticRegistry`] of them plus [`PLATFORM_KEY`]) a service authenticates
//! them with.

use std::sync::Arc;
use std::time::Duration;

use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::tenancy::{
    RegistryEntry, StaticRegistry, Tenancy, TenantPlacement, TenantSlug, TenantState, Tier,
};
use uuid::Uuid;

use crate::unique_name;

/// The platform key the kit's [`Tenancy`] accepts.
pub const PLATFORM_KEY: &str = "platform-test-key";

/// A tenant of a test: its placement and a tenant-scoped API key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub placement: TenantPlacement,
    pub key: String,
}

impl TestTenant {
    /// A fresh tenant with a unique slug, a new id and key, active.
    pub fn new(tier: Tier) -> Self {
        let slug = TenantSlug::parse(&unique_name("tn-")).expect("unique names are slugs");
        TestTenant {
            placement: TenantPlacement {
                id: Uuid::new_v4(),
                slug,
                tier,
                state: TenantState::Active,
            },
            key: unique_name("key_"),
        }
    }

    pub fn slug(&self) -> &str {
        self.placement.slug.as_str()
    }

    pub fn id(&self) -> Uuid {
        self.placement.id
    }

    pub fn tier(&self) -> Tier {
        self.placement.tier
    }

    /// The tenant's PostgreSQL schema, `tenant_<slug with _>` (unquoted).
    pub fn pg_schema(&self) -> String {
        self.placement.slug.pg_schema()
    }

    /// [`TestTenant::pg_schema`] quoted, ready for SQL text.
    pub fn quoted_schema(&self) -> String {
        format!("\"{}\"", self.pg_schema())
    }

    pub fn with_state(mut self, state: TenantState) -> Self {
        self.placement.state = state;
        self
    }
}

/// `n` tenants: those whose index is in `dedicated` are dedicated, the rest standard.
pub fn test_tenants(n: usize, dedicated: &[usize]) -> Vec<TestTenant> {
    tenants_with(n, dedicated, &[])
}

/// `n` tenants as [`test_tenants`], those whose index is in `suspended` suspended.
pub fn tenants_with(n: usize, dedicated: &[usize], suspended: &[usize]) -> Vec<TestTenant> {
    (0..n)
        .map(|i| {
            let tier = if dedicated.contains(&i) {
                Tier::Dedicated
            } else {
                Tier::Standard
            };
            let t = TestTenant::new(tier);
            if suspended.contains(&i) {
                t.with_state(TenantState::Suspended)
            } else {
                t
            }
        })
        .collect()
}

/// A registry of `tenants` with their keys.
pub fn registry_of(tenants: &[TestTenant]) -> StaticRegistry {
    StaticRegistry::from_entries(
        tenants
            .iter()
            .map(|t| RegistryEntry {
                slug: t.placement.slug.clone(),
                id: t.placement.id,
                tier: t.placement.tier,
                state: t.placement.state,
                api_keys: vec![KeyDigest::of(&t.key).to_string()],
            })
            .collect(),
    )
}

/// A [`Tenancy`] over [`registry_of`] `tenants`, with [`PLATFORM_KEY`].
pub fn tenancy_of(tenants: &[TestTenant]) -> Tenancy {
    let r = Arc::new(registry_of(tenants));
    Tenancy::new(&PLATFORM_KEY.into(), r.clone(), r, Duration::from_secs(60))
}

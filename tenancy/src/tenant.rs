//! Who a tenant is and where it lives: its slug, tier and lifecycle state, and the placement a
//! service resolves it to. These are the values every crate agrees on — the operator writes them
//! into the registry, tenant-mgmt serves them, every service reads them to scope its data.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Header naming the tenant when the platform key is used.
pub const TENANT_HEADER: &str = "x-tenant";

/// The field every tenant-owned MongoDB document carries (the tenant's UUID, as BSON binary
/// subtype 4), and every index leads with.
pub const TENANT_FIELD: &str = "tenant_id";

/// A tenant's slug: its `metadata.name`, a DNS label of at most 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub const MAX_LEN: usize = 40;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(format!("must be 1 to {} characters", Self::MAX_LEN));
        }
        let bytes = s.as_bytes();
        let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
        if !bytes.iter().all(|&c| ok_char(c)) {
            return Err("may contain only lowercase letters, digits and '-'".into());
        }
        if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
            return Err("must start and end with a letter or digit".into());
        }
        Ok(TenantSlug(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slug as an SQL identifier fragment: `-` becomes `_`. Slugs never contain `_`, so
    /// distinct slugs give distinct identifiers.
    pub fn ident(&self) -> String {
        self.0.replace('-', "_")
    }

    /// The tenant's PostgreSQL schema in every service database: `tenant_<slug>`.
    pub fn pg_schema(&self) -> String {
        format!("tenant_{}", self.ident())
    }

    /// The NOLOGIN role owning the tenant's schemas: `tenant_<slug>_owner`.
    pub fn pg_owner_role(&self) -> String {
        format!("tenant_{}_owner", self.ident())
    }
}

impl<'de> Deserialize<'de> for TenantSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantSlug::parse(&s).map_err(|e| serde::de::Error::custom(format!("tenant slug {e}")))
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Service tier: `standard` tenants share pools and collections, `dedicated` tenants get their
/// own PgBouncer pool and MongoDB database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Standard,
    Dedicated,
}

/// Lifecycle state in the registry. Only `active` tenants are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    Provisioning,
    #[default]
    Active,
    Suspended,
    Deleting,
}

/// Where a tenant lives and whether it may be served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TenantPlacement {
    /// The UUID the operator assigned; carried by every row and document of the tenant.
    pub id: Uuid,
    pub slug: TenantSlug,
    pub tier: Tier,
    pub state: TenantState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_dns_labels() {
        for ok in ["a", "acme", "acme-corp", "a1", &"x".repeat(40)] {
            assert!(TenantSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "é",
            &"x".repeat(41),
            "a b",
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
        let s = TenantSlug::parse("acme-corp").unwrap();
        assert_eq!(s.pg_schema(), "tenant_acme_corp");
        assert_eq!(s.pg_owner_role(), "tenant_acme_corp_owner");
    }
}

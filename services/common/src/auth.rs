//! API-key authentication.
//!
//! Clients send `Authorization: Bearer <key>` (or `X-API-Key: <key>`). The platform key
//! (`API_KEY`) may act for any tenant; a tenant-scoped key acts only for its tenant and is
//! verified by a [`KeyStore`]. Keys are compared as SHA-256 digests in constant time and never
//! logged. The middleware [`require_api_key`](crate::tenancy::require_api_key) names the client
//! ([`ClientId`](crate::ratelimit::ClientId)) so that
//! [`Tenancy::authenticate_from`](crate::tenancy::Tenancy::authenticate_from) can refuse a client
//! guessing keys before it looks one up.

use std::fmt;

use async_trait::async_trait;
use axum::http::header;
use chrono::{DateTime, Utc};
use prismicx_tenancy::TenantSlug;
use sha2::{Digest, Sha256};

/// Errors of a resolver or key store backend (the registry being unreachable, say).
pub type DirectoryError = anyhow::Error;

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The platform key: any tenant, named per request by `X-Tenant`.
    Platform,
    /// A tenant-scoped key.
    Tenant(TenantSlug),
}

/// A key as a client presented it. `Debug` shows only its first characters.
#[derive(Clone)]
pub struct PresentedKey(String);

impl PresentedKey {
    pub fn new(key: impl Into<String>) -> Self {
        PresentedKey(key.into())
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    /// The first 8 characters, as tenant-mgmt lists keys by prefix.
    pub fn prefix(&self) -> &str {
        let end = self
            .0
            .char_indices()
            .nth(8)
            .map(|(i, _)| i)
            .unwrap_or(self.0.len());
        &self.0[..end]
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey({}…)", self.prefix())
    }
}

/// SHA-256 digest of an API key; rendered `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or("must look like sha256:<64 hex digits>")?;
        if hex.len() != 64 {
            return Err("must have 64 hex digits".into());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).map_err(|_| "is not hex")?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| "is not hex")?;
        }
        Ok(KeyDigest(out))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({self})")
    }
}

/// A key a [`KeyStore`] vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub tenant: TenantSlug,
    /// When the key stops working; a cache must not serve it past this.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Verifies tenant-scoped API keys: which tenant, if any, a key belongs to.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn verify(&self, key: &PresentedKey) -> Result<Option<TenantSlug>, DirectoryError>;

    /// [`verify`](Self::verify) with the key's expiry; stores whose keys expire override it.
    async fn verify_key(&self, key: &PresentedKey) -> Result<Option<VerifiedKey>, DirectoryError> {
        Ok(self.verify(key).await?.map(|tenant| VerifiedKey {
            tenant,
            expires_at: None,
        }))
    }
}

/// The key a request presents, if any.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<PresentedKey> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = v.splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next()) {
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                return Some(PresentedKey::new(token.trim()));
            }
        }
        return None;
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .map(|v| PresentedKey::new(v.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn digests_round_trip_and_compare() {
        let d = KeyDigest::of("secret-key");
        let parsed = KeyDigest::parse(&d.to_string()).unwrap();
        assert!(parsed.ct_eq(&d));
        assert!(!KeyDigest::of("other").ct_eq(&d));
        assert!(KeyDigest::parse("md5:00").is_err());
        assert!(KeyDigest::parse("sha256:zz").is_err());
    }

    #[test]
    fn debug_never_shows_the_whole_key() {
        let k = PresentedKey::new("pk_live_0123456789abcdef");
        let s = format!("{k:?}");
        assert!(!s.contains("0123456789abcdef"), "{s}");
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented_key(&h).unwrap().0, "abc");
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("xyz"));
        assert_eq!(presented_key(&h).unwrap().0, "xyz");
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(presented_key(&h).is_none());
    }
}

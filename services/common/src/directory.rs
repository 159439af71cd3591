//! The tenant directory as every service but tenant-mgmt sees it: tenant-mgmt's internal API,
//! reached over HTTP with the platform key.
//!
//! [`RemoteDirectory`] implements [`KeyStore`] and [`TenantResolver`]; [`Tenancy`] caches what it
//! returns and Redis lifecycle events evict the cache (see [`crate::events`]). Keys travel as
//! their SHA-256 digests, never in clear. The wire types here are the contract tenant-mgmt
//! serves:
//!
//! - `GET  /internal/v1/tenants/{slug}` → 200 [`TenantRecord`] (the [`TenantPlacement`](crate::tenancy::TenantPlacement) fields,
//!   plus `rateLimit` when the tenant has its own), 404 when unknown;
//! - `POST /internal/v1/api-keys/verify` with [`VerifyKeyRequest`] → 200 [`VerifyKeyResponse`]
//!   (the tenant, and `expiresAt` when the key expires: no cache serves it longer), 404 when no
//!   live key has that digest.
//!
//! Both additions are optional fields: an older tenant-mgmt without them means "platform default
//! rate" and "cached for the TTL", and an older client ignores them.
//!
//! A transport failure or a 5xx is retried a few times with a short backoff, then reported as
//! [`DirectoryError`], which the shell answers with 503: an unreachable tenant-mgmt never lets a
//! request through.
//!
//! [`Tenancy`]: crate::tenancy::Tenancy

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use chrono::{DateTime, Utc};

use crate::auth::{KeyStore, PresentedKey, VerifiedKey};
use crate::config::Secret;
use crate::tenancy::{DirectoryError, TenantRecord, TenantResolver, TenantSlug};

/// Path of the placement lookup, below the tenant-mgmt base URL.
pub const TENANT_PATH: &str = "/internal/v1/tenants";
/// Path of the key verification.
pub const VERIFY_KEY_PATH: &str = "/internal/v1/api-keys/verify";

/// Body of a key verification: the digest of the key a client presented.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKeyRequest {
    /// `sha256:<64 hex digits>` of the presented key.
    #[schema(pattern = r"^sha256:[0-9a-fA-F]{64}$")]
    pub digest: String,
}

/// A verified key: the tenant it acts for, and when it expires (absent: never).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyKeyResponse {
    pub tenant: TenantSlug,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// tenant-mgmt's internal API as a [`KeyStore`] and [`TenantResolver`].
#[derive(Debug, Clone)]
pub struct RemoteDirectory {
    base: String,
    platform_key: Secret<String>,
    http: reqwest::Client,
}

/// Attempts per lookup (transport failures and 5xx only).
const ATTEMPTS: u32 = 3;

impl RemoteDirectory {
    /// `base` is tenant-mgmt's URL (`TENANT_MGMT_URL`, e.g. `http://tenant-mgmt-service:8501`).
    pub fn new(base: &str, platform_key: Secret<String>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(anyhow!(
                "TENANT_MGMT_URL must be an http:// or https:// URL"
            ));
        }
        crate::tls::install_default_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .context("building the tenant-mgmt HTTP client")?;
        Ok(RemoteDirectory {
            base,
            platform_key,
            http,
        })
    }

    /// Sends the request `make` builds, retrying transport errors and 5xx; `None` on 404.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Option<T>, DirectoryError> {
        let mut last = anyhow!("no attempt made");
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let res = make()
                .bearer_auth(self.platform_key.expose())
                .header("accept", "application/json")
                .send()
                .await;
            match res {
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return Ok(None),
                Ok(r) if r.status().is_success() => {
                    return r
                        .json::<T>()
                        .await
                        .map(Some)
                        .with_context(|| format!("tenant-mgmt {what}: unreadable answer"));
                }
                Ok(r) if r.status().is_server_error() => {
                    last = anyhow!("tenant-mgmt {what}: HTTP {}", r.status());
                }
                // 401/403/4xx: a configuration error (wrong platform key); retrying won't help.
                Ok(r) => return Err(anyhow!("tenant-mgmt {what}: HTTP {}", r.status())),
                // The error's URL holds no secret (the key travels in a header).
                Err(e) => last = anyhow!(e).context(format!("tenant-mgmt {what}")),
            }
        }
        Err(last)
    }
}

#[async_trait]
impl TenantResolver for RemoteDirectory {
    async fn resolve(
        &self,
        slug: &TenantSlug,
    ) -> Result<Option<crate::tenancy::TenantPlacement>, DirectoryError> {
        Ok(self.resolve_record(slug).await?.map(|r| r.placement))
    }

    async fn resolve_record(
        &self,
        slug: &TenantSlug,
    ) -> Result<Option<TenantRecord>, DirectoryError> {
        let url = format!("{}{TENANT_PATH}/{}", self.base, slug.as_str());
        self.call("tenant lookup", || self.http.get(&url)).await
    }
}

#[async_trait]
impl KeyStore for RemoteDirectory {
    async fn verify(&self, key: &PresentedKey) -> Result<Option<TenantSlug>, DirectoryError> {
        Ok(self.verify_key(key).await?.map(|v| v.tenant))
    }

    async fn verify_key(&self, key: &PresentedKey) -> Result<Option<VerifiedKey>, DirectoryError> {
        let url = format!("{}{VERIFY_KEY_PATH}", self.base);
        let body = VerifyKeyRequest {
            digest: key.digest().to_string(),
        };
        let found: Option<VerifyKeyResponse> = self
            .call("key verification", || self.http.post(&url).json(&body))
            .await?;
        Ok(found.map(|r| VerifiedKey {
            tenant: r.tenant,
            expires_at: r.expires_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(RemoteDirectory::new("tenant-mgmt:8501", "k".into()).is_err());
        let d = RemoteDirectory::new("http://tenant-mgmt-service:8501/", "k".into()).unwrap();
        assert_eq!(d.base, "http://tenant-mgmt-service:8501");
        assert!(!format!("{d:?}").contains("\"k\""));
    }
}

//! Tenant identity and resolution: request → principal → tenant → placement.
//!
//! A [`TenantResolver`] says where a tenant lives (id, tier, state) and, optionally, the tenant's
//! own request budget ([`TenantRecord`]). tenant-mgmt implements it from the registry;
//! [`StaticRegistry`] reads it from a file. [`Tenancy`] puts in-process caches in front of the
//! resolver and of the [`KeyStore`] — verified keys (never past their
//! expiry), placements, and, in a bounded cache of its own so a flood cannot evict valid entries,
//! keys found unknown — and applies the [`ratelimit`](crate::ratelimit) limits: failed
//! authentications per client and per named tenant before a key is looked up, and each tenant's
//! request budget once its placement is known. The [`require_api_key`] middleware authenticates
//! each request through it and records the principal; the [`Tenant`] extractor then gives
//! handlers a resolved, active tenant within its budget, or refuses the request.
//!
//! The tenant values themselves ([`TenantSlug`], [`Tier`], [`TenantState`], [`TenantPlacement`])
//! are the tenancy contract's (prismicx-tenancy), re-exported here.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{presented_key, KeyDigest, KeyStore, PresentedKey, Principal};
use crate::cache::TtlCache;
use crate::config::Secret;
use crate::error::ApiError;
use crate::ratelimit::{ClientId, FailureLimiter, Limits, RateLimit, TenantBuckets};

pub use prismicx_tenancy::{TenantPlacement, TenantSlug, TenantState, Tier, TENANT_HEADER};

/// A placement with what else the directory knows of the tenant: its own request budget, when
/// it has one (absent: the platform default). On the wire (tenant-mgmt's internal API) it is the
/// placement's fields with `rateLimit` beside them, so a client reading only a `TenantPlacement`
/// still understands it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    #[serde(flatten)]
    pub placement: TenantPlacement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// The tenant's vector-store quota when its spec sets one (absent: the service's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub vector_quota: Option<prismicx_tenancy::VectorQuota>,
}

impl From<TenantPlacement> for TenantRecord {
    fn from(placement: TenantPlacement) -> Self {
        TenantRecord {
            placement,
            rate_limit: None,
            vector_quota: None,
        }
    }
}

pub use crate::auth::DirectoryError;

/// Resolves a tenant slug to its placement.
#[async_trait]
pub trait TenantResolver: Send + Sync + 'static {
    async fn resolve(&self, slug: &TenantSlug) -> Result<Option<TenantPlacement>, DirectoryError>;

    /// [`resolve`](Self::resolve) with the tenant's own rate limit; resolvers that know one
    /// override it.
    async fn resolve_record(
        &self,
        slug: &TenantSlug,
    ) -> Result<Option<TenantRecord>, DirectoryError> {
        Ok(self.resolve(slug).await?.map(TenantRecord::from))
    }
}

/// The tenant registry and tenant keys from a JSON file (`TENANT_REGISTRY_FILE`):
/// `{"tenants":[{"slug":"demo","id":"…","tier":"standard","state":"active","apiKeys":["sha256:<hex>"]}]}`.
/// Keys are stored as SHA-256 digests, never in clear.
#[derive(Debug, Clone, Default)]
pub struct StaticRegistry {
    tenants: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryEntry {
    pub slug: TenantSlug,
    pub id: Uuid,
    #[serde(default)]
    pub tier: Tier,
    #[serde(default)]
    pub state: TenantState,
    /// `sha256:<64 hex digits>` digests of the tenant's API keys.
    #[serde(default)]
    pub api_keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    tenants: Vec<RegistryEntry>,
}

impl StaticRegistry {
    pub fn from_entries(tenants: Vec<RegistryEntry>) -> Self {
        StaticRegistry { tenants }
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading tenant registry {}: {e}", path.display()))?;
        let file: RegistryFile = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing tenant registry {}: {e}", path.display()))?;
        for t in &file.tenants {
            for k in &t.api_keys {
                KeyDigest::parse(k)
                    .map_err(|e| anyhow::anyhow!("tenant {}: api key digest {e}", t.slug))?;
            }
        }
        Ok(StaticRegistry {
            tenants: file.tenants,
        })
    }
}

#[async_trait]
impl TenantResolver for StaticRegistry {
    async fn resolve(&self, slug: &TenantSlug) -> Result<Option<TenantPlacement>, DirectoryError> {
        Ok(self
            .tenants
            .iter()
            .find(|t| &t.slug == slug)
            .map(|t| TenantPlacement {
                id: t.id,
                slug: t.slug.clone(),
                tier: t.tier,
                state: t.state,
            }))
    }
}

#[async_trait]
impl KeyStore for StaticRegistry {
    async fn verify(&self, key: &PresentedKey) -> Result<Option<TenantSlug>, DirectoryError> {
        let digest = key.digest();
        Ok(self
            .tenants
            .iter()
            .find(|t| {
                t.api_keys
                    .iter()
                    .filter_map(|k| KeyDigest::parse(k).ok())
                    .any(|d| d.ct_eq(&digest))
            })
            .map(|t| t.slug.clone()))
    }
}

/// How [`Tenancy`] caches and limits.
#[derive(Debug, Clone)]
pub struct TenancyOptions {
    /// How long verified keys and placements stay cached: the longest a revoked key or a
    /// suspended tenant keeps working in this process when no lifecycle event reaches it.
    pub cache_ttl: Duration,
    /// How long a key found unknown stays cached as such.
    pub negative_ttl: Duration,
    /// Most unknown keys cached at once (a cache separate from the verified keys').
    pub negative_capacity: usize,
    pub limits: Limits,
}

/// The default [`TenancyOptions::negative_ttl`].
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

impl TenancyOptions {
    /// Caches for `cache_ttl`, misses for [`DEFAULT_NEGATIVE_TTL`] (at most `cache_ttl`), no
    /// rate limits.
    pub fn new(cache_ttl: Duration) -> Self {
        TenancyOptions {
            cache_ttl,
            negative_ttl: DEFAULT_NEGATIVE_TTL.min(cache_ttl),
            negative_capacity: 10_000,
            limits: Limits::off(),
        }
    }

    /// The options the shared settings describe (`TENANT_CACHE_TTL_SECS`,
    /// `NEGATIVE_KEY_CACHE_TTL_SECS`, at most the former, and the rate limits).
    pub fn from_args(common: &crate::config::CommonArgs) -> anyhow::Result<Self> {
        Ok(TenancyOptions {
            negative_ttl: Duration::from_secs(common.negative_key_cache_ttl_secs)
                .min(common.tenant_cache_ttl()),
            limits: common.limits()?,
            ..TenancyOptions::new(common.tenant_cache_ttl())
        })
    }
}

/// Authentication and tenant resolution with their caches and limits; cheap to clone.
#[derive(Clone)]
pub struct Tenancy {
    inner: Arc<TenancyInner>,
}

struct TenancyInner {
    platform_key: KeyDigest,
    keys: Arc<dyn KeyStore>,
    resolver: Arc<dyn TenantResolver>,
    key_cache: TtlCache<KeyDigest, TenantSlug>,
    /// Keys the store did not know; separate, so a flood of them cannot evict `key_cache`.
    unknown_keys: TtlCache<KeyDigest, ()>,
    tenant_cache: TtlCache<TenantSlug, TenantRecord>,
    client_failures: FailureLimiter<ClientId>,
    tenant_failures: FailureLimiter<TenantSlug>,
    buckets: TenantBuckets,
    limits: Limits,
}

impl fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenancy")
            .field("cached_keys", &self.inner.key_cache.len())
            .field("cached_unknown_keys", &self.inner.unknown_keys.len())
            .field("cached_tenants", &self.inner.tenant_cache.len())
            .finish_non_exhaustive()
    }
}

/// The instant a wall-clock expiry corresponds to (now, when it is past).
fn instant_of(at: chrono::DateTime<chrono::Utc>) -> Instant {
    let left = (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + left
}

impl Tenancy {
    /// Caches for `ttl` (see [`TenancyOptions::new`]), with no rate limits.
    pub fn new(
        platform_key: &Secret<String>,
        keys: Arc<dyn KeyStore>,
        resolver: Arc<dyn TenantResolver>,
        ttl: Duration,
    ) -> Self {
        Self::with_options(platform_key, keys, resolver, TenancyOptions::new(ttl))
    }

    pub fn with_options(
        platform_key: &Secret<String>,
        keys: Arc<dyn KeyStore>,
        resolver: Arc<dyn TenantResolver>,
        options: TenancyOptions,
    ) -> Self {
        let l = &options.limits;
        Tenancy {
            inner: Arc::new(TenancyInner {
                platform_key: KeyDigest::of(platform_key.expose()),
                keys,
                resolver,
                key_cache: TtlCache::new(options.cache_ttl, 100_000),
                unknown_keys: TtlCache::new(options.negative_ttl, options.negative_capacity),
                tenant_cache: TtlCache::new(options.cache_ttl, 100_000),
                client_failures: FailureLimiter::new(
                    l.auth_failures_per_client,
                    l.auth_failure_window,
                    l.max_tracked,
                ),
                tenant_failures: FailureLimiter::new(
                    l.auth_failures_per_tenant,
                    l.auth_failure_window,
                    l.max_tracked,
                ),
                buckets: TenantBuckets::new(l.max_tracked),
                limits: options.limits,
            }),
        }
    }

    /// The client a request comes from, for the failed-authentication limit.
    pub fn client_of<B>(&self, req: &axum::http::Request<B>) -> ClientId {
        ClientId::of(req, self.inner.limits.client_ip_header.as_ref())
    }

    /// [`authenticate`](Self::authenticate) under the failed-authentication limits: a `client`
    /// (or, unless the key is the platform key, a `named` tenant) that has used up its failures
    /// in the current window is answered 429 before the key is looked up; a key found invalid
    /// counts against both.
    pub async fn authenticate_from(
        &self,
        key: &PresentedKey,
        client: &ClientId,
        named: Option<&TenantSlug>,
    ) -> Result<Principal, ApiError> {
        let inner = &self.inner;
        if let Some(retry) = inner.client_failures.blocked(client) {
            return Err(ApiError::TooManyRequests {
                detail: "too many failed authentications from this client; retry later".into(),
                retry_after_secs: retry,
            });
        }
        // The platform key is checked locally, so a flood naming a tenant cannot lock the
        // platform out of it.
        if key.digest().ct_eq(&inner.platform_key) {
            return Ok(Principal::Platform);
        }
        if let Some(retry) = named.and_then(|t| inner.tenant_failures.blocked(t)) {
            return Err(ApiError::TooManyRequests {
                detail: "too many failed authentications for this tenant; retry later".into(),
                retry_after_secs: retry,
            });
        }
        let result = self.authenticate(key).await;
        if let Err(ApiError::Unauthorized(_)) = &result {
            if inner.client_failures.record_failure(client) {
                tracing::warn!(client = ?client, "failed-authentication limit reached for a client");
            }
            if let Some(t) = named {
                if inner.tenant_failures.record_failure(t) {
                    tracing::warn!(tenant = %t, "failed-authentication limit reached for a tenant");
                }
            }
        }
        result
    }

    /// Verifies a presented key: the platform key, or a tenant key known to the key store.
    pub async fn authenticate(&self, key: &PresentedKey) -> Result<Principal, ApiError> {
        let inner = &self.inner;
        let digest = key.digest();
        if digest.ct_eq(&inner.platform_key) {
            return Ok(Principal::Platform);
        }
        if let Some(slug) = inner.key_cache.get(&digest) {
            return Ok(Principal::Tenant(slug));
        }
        let invalid = || ApiError::Unauthorized("the API key is not valid".into());
        if inner.unknown_keys.get(&digest).is_some() {
            return Err(invalid());
        }
        match inner.keys.verify_key(key).await {
            Ok(Some(found)) => {
                let until = found.expires_at.map(instant_of);
                if until.is_some_and(|u| u <= Instant::now()) {
                    // Expired by this process's clock: refuse, whatever the store said.
                    return Err(invalid());
                }
                inner
                    .key_cache
                    .insert_until(digest, found.tenant.clone(), until);
                Ok(Principal::Tenant(found.tenant))
            }
            Ok(None) => {
                inner.unknown_keys.insert(digest, ());
                Err(invalid())
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "key store unavailable");
                Err(ApiError::Unavailable(
                    "API keys cannot be verified right now".into(),
                ))
            }
        }
    }

    /// The placement of `slug` (cached), whatever its state.
    pub async fn resolve(&self, slug: &TenantSlug) -> Result<Option<TenantPlacement>, ApiError> {
        Ok(self.resolve_record(slug).await?.map(|r| r.placement))
    }

    /// The placement and rate limit of `slug` (cached), whatever its state.
    pub async fn resolve_record(
        &self,
        slug: &TenantSlug,
    ) -> Result<Option<TenantRecord>, ApiError> {
        if let Some(r) = self.inner.tenant_cache.get(slug) {
            return Ok(Some(r));
        }
        match self.inner.resolver.resolve_record(slug).await {
            Ok(Some(r)) => {
                self.inner.tenant_cache.insert(slug.clone(), r.clone());
                Ok(Some(r))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "tenant registry unavailable");
                Err(ApiError::Unavailable(
                    "tenants cannot be resolved right now".into(),
                ))
            }
        }
    }

    /// Forgets everything cached about `slug` (its placement and the keys that named it), and
    /// every cached unknown key: one of them may just have been issued.
    pub fn invalidate(&self, slug: &TenantSlug) {
        self.inner.tenant_cache.remove(slug);
        self.inner.key_cache.retain(|_, s| s != slug);
        self.inner.unknown_keys.clear();
    }

    /// Forgets everything cached.
    pub fn invalidate_all(&self) {
        self.inner.tenant_cache.clear();
        self.inner.key_cache.clear();
        self.inner.unknown_keys.clear();
    }

    /// The tenant a request acts for, given its principal and `X-Tenant` header.
    pub async fn tenant_for(
        &self,
        principal: &Principal,
        header: Option<&str>,
    ) -> Result<TenantPlacement, ApiError> {
        let named = match header {
            Some(h) => Some(
                TenantSlug::parse(h)
                    .map_err(|e| ApiError::bad_request("X-Tenant", format!("tenant slug {e}")))?,
            ),
            None => None,
        };
        let slug = match (principal, named) {
            (Principal::Tenant(own), Some(named)) if &named != own => {
                return Err(ApiError::Forbidden(
                    "this API key belongs to another tenant".into(),
                ))
            }
            (Principal::Tenant(own), _) => own.clone(),
            (Principal::Platform, Some(named)) => named,
            (Principal::Platform, None) => {
                return Err(ApiError::bad_request(
                    "X-Tenant",
                    "the platform key must name a tenant in the X-Tenant header",
                ))
            }
        };
        let record = self
            .resolve_record(&slug)
            .await?
            .ok_or_else(|| match principal {
                Principal::Platform => ApiError::NotFound(format!("tenant {slug} does not exist")),
                Principal::Tenant(_) => ApiError::Unauthorized("the API key is not valid".into()),
            })?;
        let placement = record.placement;
        match placement.state {
            TenantState::Active => {
                let rate = record.rate_limit.unwrap_or(self.inner.limits.tenant_rate);
                match self.inner.buckets.take(placement.id, rate) {
                    Ok(()) => Ok(placement),
                    Err(retry) => {
                        // Held before the refusal (see `Limits::throttle_delay`).
                        let delay = self.inner.limits.throttle_delay;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Err(ApiError::TooManyRequests {
                            detail: format!("tenant {slug} is over its request rate; retry later"),
                            retry_after_secs: retry,
                        })
                    }
                }
            }
            TenantState::Suspended => {
                Err(ApiError::Forbidden(format!("tenant {slug} is suspended")))
            }
            TenantState::Provisioning => Err(ApiError::Unavailable(format!(
                "tenant {slug} is still being provisioned"
            ))),
            TenantState::Deleting => Err(ApiError::NotFound(format!(
                "tenant {slug} is being deleted"
            ))),
        }
    }
}

/// The active tenant a request acts for. Extracting it requires an authenticated request
/// (see [`require_api_key`]) and spends one of the tenant's request tokens (429
/// when it has none left).
#[derive(Debug, Clone)]
pub struct Tenant(pub TenantPlacement);

impl<S> FromRequestParts<S> for Tenant
where
    Tenancy: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("an API key is required".into()))?;
        let header = match parts.headers.get(TENANT_HEADER) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| ApiError::bad_request("X-Tenant", "must be ASCII"))?
                    .to_string(),
            ),
            None => None,
        };
        let tenancy = Tenancy::from_ref(state);
        tenancy
            .tenant_for(&principal, header.as_deref())
            .await
            .map(Tenant)
    }
}

/// A tenant handler's first argument: the service state and the request's [`Tenant`], extracted
/// in that order (the state never fails, so the request is refused exactly as by [`Tenant`]).
/// `Scoped { state, tenant }: Scoped<AppState>` stands for the pair
/// `State(state): State<AppState>, Tenant(tenant): Tenant`.
#[derive(Debug, Clone)]
pub struct Scoped<S> {
    pub state: S,
    pub tenant: TenantPlacement,
}

impl<S> FromRequestParts<S> for Scoped<S>
where
    Tenancy: FromRef<S>,
    S: Clone + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Tenant(tenant) = Tenant::from_request_parts(parts, state).await?;
        Ok(Scoped {
            state: state.clone(),
            tenant,
        })
    }
}

/// Middleware: refuses requests without a valid key (401) and clients (or named tenants) that
/// failed too often (429), else records the [`Principal`] in the request's extensions for the
/// [`Tenant`] extractor.
pub async fn require_api_key(
    State(tenancy): State<Tenancy>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(key) = presented_key(req.headers()) else {
        return ApiError::Unauthorized(
            "an API key is required (Authorization: Bearer <key> or X-API-Key)".into(),
        )
        .into_response();
    };
    let client = tenancy.client_of(&req);
    // Only a well-formed slug names a tenant; a malformed header is refused later (400).
    let named = req
        .headers()
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| TenantSlug::parse(v).ok());
    match tenancy
        .authenticate_from(&key, &client, named.as_ref())
        .await
    {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> StaticRegistry {
        StaticRegistry::from_entries(vec![
            RegistryEntry {
                slug: TenantSlug::parse("a").unwrap(),
                id: Uuid::new_v4(),
                tier: Tier::Standard,
                state: TenantState::Active,
                api_keys: vec![KeyDigest::of("key-a").to_string()],
            },
            RegistryEntry {
                slug: TenantSlug::parse("b").unwrap(),
                id: Uuid::new_v4(),
                tier: Tier::Dedicated,
                state: TenantState::Suspended,
                api_keys: vec![KeyDigest::of("key-b").to_string()],
            },
        ])
    }

    fn tenancy() -> Tenancy {
        let r = Arc::new(registry());
        Tenancy::new(&"platform".into(), r.clone(), r, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn keys_map_to_their_tenant_and_no_other() {
        let t = tenancy();
        let a = t.authenticate(&PresentedKey::new("key-a")).await.unwrap();
        assert_eq!(a, Principal::Tenant(TenantSlug::parse("a").unwrap()));
        assert_eq!(t.tenant_for(&a, None).await.unwrap().slug.as_str(), "a");
        let err = t.tenant_for(&a, Some("b")).await.unwrap_err();
        assert_eq!(err.status(), 403);
        let err = t
            .authenticate(&PresentedKey::new("key-c"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[tokio::test]
    async fn platform_key_needs_a_tenant_header_and_suspended_tenants_are_refused() {
        let t = tenancy();
        let p = t
            .authenticate(&PresentedKey::new("platform"))
            .await
            .unwrap();
        assert_eq!(p, Principal::Platform);
        assert_eq!(t.tenant_for(&p, None).await.unwrap_err().status(), 400);
        assert_eq!(
            t.tenant_for(&p, Some("a")).await.unwrap().slug.as_str(),
            "a"
        );
        assert_eq!(t.tenant_for(&p, Some("b")).await.unwrap_err().status(), 403);
        assert_eq!(
            t.tenant_for(&p, Some("zz")).await.unwrap_err().status(),
            404
        );
        assert_eq!(
            t.tenant_for(&p, Some("Bad_Slug"))
                .await
                .unwrap_err()
                .status(),
            400
        );
    }
}

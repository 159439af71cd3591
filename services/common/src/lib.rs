//! The shared library of the six PrismicX services.
//!
//! A request flows through it like this:
//!
//! 1. [`http::platform_router`] wraps a service's API router with request IDs, a timeout, a body
//!    limit, tracing and metrics, and adds `/healthz`, `/readyz`, `/metrics` and `/openapi.json`.
//! 2. [`tenancy::require_api_key`] authenticates the `Authorization: Bearer` (or `X-API-Key`) key:
//!    the platform key from `API_KEY`, or a tenant-scoped key verified by a [`auth::KeyStore`]
//!    (misses cached briefly); a client or named tenant with too many failed attempts is
//!    answered 429 before its key is looked up ([`ratelimit`]).
//! 3. The [`tenancy::Tenant`] extractor turns the principal into a tenant and its placement
//!    (tier, state, pools, databases) through a cached [`tenancy::TenantResolver`]; suspended or
//!    unknown tenants stop here, and a tenant over its request budget gets 429.
//! 4. Handlers reach data only through tenant-scoped handles: [`pg::TenantDb::begin`] opens a
//!    transaction that sets `app.tenant_id` and `search_path` transaction-locally, and
//!    [`mongo::TenantCollection`] adds the tenant filter to every query and write.
//! 5. Errors become RFC 9457 problem+json through [`error::ApiError`].
//!
//! [`events`] carries tenant lifecycle events over Redis so every service drops cached keys and
//! placements when a tenant changes. [`directory`] is tenant-mgmt's internal API as the other
//! services reach it, and [`service`] the start-up every service binary shares.

pub mod attributes;
pub mod auth;
pub mod cache;
pub mod config;
pub mod directory;
pub mod error;
pub mod events;
pub mod extract;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod pg;
pub mod ratelimit;
pub mod service;
pub mod tenancy;

pub use error::{ApiError, FieldError};

pub use prismicx_store as store;
/// The lower crates at the paths the services have always used: the tenancy contract, and the
/// store layer's MongoDB access, logging set-up and TLS provider.
pub use prismicx_store::{mongo, telemetry, tls};
pub use prismicx_tenancy as contract;

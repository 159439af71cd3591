//! The PrismicX operator.
//!
//! It reconciles `Tenant` resources (`prismicx-operator-api`) against the platform's data
//! servers: PostgreSQL (tenant schemas, roles, row-level security), PgBouncer (dedicated pools),
//! MongoDB (indexes of shared collections, dedicated databases and users), the tenant registry
//! and Redis lifecycle events, and writes each tenant's credentials Secret.
//!
//! Data flow of one Tenant reconcile ([`tenant::reconcile`]):
//!
//! ```text
//! Tenant ──► plan (pure: names, pools, databases, desired state)
//!        ──► observe (catalogs vs plan → drift findings)
//!        ──► apply: postgres → pool → mongo → registry + event → secret → isolation probe
//!        ──► status (conditions with observedGeneration; Events on every change)
//! ```
//!
//! Only the apply steps touch the data servers and only `tenant::status`, `tenant::secret` and
//! the finalizer touch the Kubernetes API. [`catalog`] says what each service needs;
//! [`dataplane`] holds the connections. The binary ([`run`]) adds leader election
//! ([`leader`]), `/metrics` and `/healthz` ([`http`], [`metrics`]).

pub mod catalog;
pub mod config;
pub mod context;
pub mod controller;
pub mod database_service;
pub mod dataplane;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod tenant;

pub use config::OperatorArgs;
pub use context::Context;
pub use controller::run;
pub use error::{Error, Result, Step};

/// The field manager of every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "prismicx-operator";

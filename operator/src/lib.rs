//! The PrismicX operator.
//!
//! It reconciles `Tenant` resources (`prismicx-operator-api`) against the platform's data
//! servers: PostgreSQL (tenant schemas, roles, row-level security), PgBouncer (dedicated pools),
//! MongoDB (indexes of shared collections, dedicated databases and users), the tenant registry
//! and Redis lifecycle events, and writes each tenant's credentials Secret.
//!
//! Data flow of one Tenant reconcile ([`tenant::reconcile`], one file per step in [`tenant`]):
//!
//! ```text
//! Tenant ──► finalizer ──► plan (pure) ──► resolve (tenant id) ──► drift observed
//!        ──► steps: secret → postgres → pool → mongo → registry → isolation → verify
//!        ──► status (conditions with observedGeneration; Events on every change)
//! ```
//!
//! Both reconcilers run their steps through [`pipeline::Run`] (status, Events, step metrics);
//! condition types and reasons are the enums of [`conditions`]. Only the steps touch the data
//! servers and only the runner, the Secrets and the finalizer touch the Kubernetes API.
//! [`catalog`] says what each service needs; [`dataplane`] holds the connections. The binary
//! ([`run`]) adds leader election ([`leader`]), `/metrics` and `/healthz` ([`http`],
//! [`metrics`]).

pub mod catalog;
pub mod conditions;
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
pub mod pipeline;
pub mod tenant;

pub use config::OperatorArgs;
pub use context::Context;
pub use controller::run;
pub use error::{Error, Result, Step};

/// The field manager of every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "prismicx-operator";

//! PostgreSQL access for the services: prismicx-store's [`prismicx_store::pg`] at its old path,
//! [`rows`], query shapes the services' repositories share, and [`retry`], which runs a
//! handler's unit of work under the store's retry policy and answers with an
//! [`ApiError`](crate::ApiError).

pub use prismicx_store::pg::*;

pub mod retry;
pub mod rows;

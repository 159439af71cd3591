//! The store layer's errors. Each store keeps its own — PostgreSQL calls return the driver's
//! `sqlx::Error`, MongoDB calls through a [`TenantCollection`](crate::mongo::TenantCollection)
//! return [`TenantMongoError`] — and [`StoreError`] holds either, for code that spans both or
//! hands them on. None of them knows HTTP: the services' HTTP layer maps them to responses in
//! one place (prismicx-service-common's `error`).

use crate::mongo::TenantMongoError;

/// An error of either store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    #[error(transparent)]
    Mongo(#[from] TenantMongoError),
}

impl From<mongodb::error::Error> for StoreError {
    fn from(e: mongodb::error::Error) -> Self {
        StoreError::Mongo(TenantMongoError::Mongo(e))
    }
}

//! The service's schema, as the operator and the service apply it: declared with the tenancy
//! contract (`tenancy/migrations/user-data/`, see its `README.md`).

pub use prismicx_tenancy::services::user_data::{DATABASE, SCHEMA};

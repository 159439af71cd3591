//! Each service's declared layout: its PostgreSQL database and migrations, its MongoDB database
//! and collections. The service crates re-export their own module from here; the operator reads
//! all of them to provision a tenant, the docs generator to describe them.

/// A [`Migration`](crate::layout::Migration) of `tenancy/migrations/`: its version, its name and
/// its file there, whose SQL is compiled in.
macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        crate::layout::Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../migrations/", $file)),
        }
    };
}

pub mod category_repository;
pub mod management_system_repo;
pub mod task_repo;
pub mod tenant_mgmt;
pub mod user_data;
pub mod vector_store;

use crate::layout::{MongoLayout, PostgresLayout};

/// Every PostgreSQL service database of the platform.
pub const ALL_POSTGRES: &[PostgresLayout] =
    &[user_data::POSTGRES, management_system_repo::POSTGRES];

/// Every MongoDB service database of the platform.
pub const ALL_MONGO: &[MongoLayout] = &[
    tenant_mgmt::MONGO,
    task_repo::MONGO,
    category_repository::MONGO,
    management_system_repo::MONGO,
    vector_store::MONGO,
];

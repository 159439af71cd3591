//! task-repo-service: tasks of a tenant (MongoDB task_repository).
//!
//! This crate holds the service's data layout, which the operator provisions for every tenant:
//! the MongoDB collections and indexes in [`MONGO`] (shared collections for `standard` tenants,
//! the same collections in the tenant's own database for `dedicated` ones). //! The HTTP service itself is not built yet.

use prismicx_service_common::mongo::{CollectionLayout, IndexLayout, MongoLayout};

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "task_repository",
    collections: &[CollectionLayout {
        name: "tasks",
        indexes: &[
            IndexLayout {
                name: "tasks_tenant_created",
                keys: &[("created_at", 1), ("_id", 1)],
                unique: false,
            },
            IndexLayout {
                name: "tasks_tenant_status_due",
                keys: &[("status", 1), ("due_at", 1)],
                unique: false,
            },
            IndexLayout {
                name: "tasks_tenant_assignee_status",
                keys: &[("assignee", 1), ("status", 1)],
                unique: false,
            },
            IndexLayout {
                name: "tasks_tenant_labels",
                keys: &[("labels", 1)],
                unique: false,
            },
        ],
    }],
};

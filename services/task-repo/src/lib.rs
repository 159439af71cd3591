//! task-repo-service: the tasks of each PrismicX tenant — CRUD, a status state machine,
//! assignment, due dates, labels, JSON attributes, filters and cursor pagination, with
//! optimistic concurrency (`ETag`/`If-Match` on a per-task revision).
//!
//! Data flow: a request passes the shared HTTP shell (auth, tenant resolution) into a handler in
//! [`routes`], which validates its input with [`domain`] (a 400/422 before any database work),
//! then reaches the tenant's `tasks` collection only through a
//! [`TenantCollection`](prismicx_service_common::mongo::TenantCollection) from the
//! [`MongoStore`]: the shared `task_repository.tasks` on mongodb-system for a `standard` tenant,
//! `task_repository__<slug>.tasks` on mongodb-tenant for a `dedicated` one. Every query and write
//! carries the tenant filter; every document carries `tenant_id`. Writes to an existing task are
//! single conditional updates (`{_id, revision: <If-Match>}`), so concurrent writers of one
//! revision cannot both win and no transaction is needed.
//!
//! [`MONGO`] is the data layout the operator provisions for every tenant.

pub mod config;
pub mod domain;
pub mod openapi;
mod repo;
pub mod routes;

#[cfg(doc)]
use prismicx_service_common::mongo::MongoStore;
use prismicx_service_common::mongo::{CollectionLayout, IndexLayout, MongoLayout};
use prismicx_service_common::service;
pub use prismicx_service_common::service::AppSettings;

pub use config::Config;

/// The name in logs and metrics (the Kubernetes service name).
pub const SERVICE: &str = "task-repo-service";

/// The collection holding tasks.
pub const TASKS: &str = "tasks";

/// The service's MongoDB layout; every index leads with `tenant_id` (the operator adds it).
/// Which query uses which index is in `docs/services/task-repo-service.md`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "task_repository",
    collections: &[CollectionLayout {
        name: TASKS,
        indexes: &[
            // sort=createdAt / -createdAt (the default list order) and its cursor.
            IndexLayout {
                name: "tasks_tenant_created",
                keys: &[("created_at", 1), ("_id", 1)],
                unique: false,
            },
            // sort=updatedAt / -updatedAt.
            IndexLayout {
                name: "tasks_tenant_updated",
                keys: &[("updated_at", 1), ("_id", 1)],
                unique: false,
            },
            // sort=dueAt / -dueAt (`due_sort`: the due date, or "never" for tasks without one).
            IndexLayout {
                name: "tasks_tenant_due",
                keys: &[("due_sort", 1), ("_id", 1)],
                unique: false,
            },
            // sort=priority / -priority.
            IndexLayout {
                name: "tasks_tenant_priority",
                keys: &[("priority_rank", 1), ("_id", 1)],
                unique: false,
            },
            // status filters, overdue=true and dueBefore/dueAfter within a status.
            IndexLayout {
                name: "tasks_tenant_status_due",
                keys: &[("status", 1), ("due_at", 1)],
                unique: false,
            },
            // assignee filter (with or without status).
            IndexLayout {
                name: "tasks_tenant_assignee_status",
                keys: &[("assignee", 1), ("status", 1)],
                unique: false,
            },
            // label filter (multikey).
            IndexLayout {
                name: "tasks_tenant_labels",
                keys: &[("labels", 1)],
                unique: false,
            },
        ],
    }],
};

/// What handlers share: the service's [`MongoStore`] and tenancy.
pub type AppState = service::MongoState;

prismicx_service_common::service_entry_points!(TaskRepo, connect: |config, tenancy| service::MongoState::connect(&config.mongo, MONGO, SERVICE, tenancy));

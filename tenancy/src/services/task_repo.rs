//! task-repo-service's data: tasks in MongoDB `task_repository`.

use crate::layout::{CollectionLayout, IndexLayout, MongoLayout};

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

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
            IndexLayout::on("tasks_tenant_created", &[("created_at", 1), ("_id", 1)]),
            // sort=updatedAt / -updatedAt.
            IndexLayout::on("tasks_tenant_updated", &[("updated_at", 1), ("_id", 1)]),
            // sort=dueAt / -dueAt (`due_sort`: the due date, or "never" for tasks without one).
            IndexLayout::on("tasks_tenant_due", &[("due_sort", 1), ("_id", 1)]),
            // sort=priority / -priority.
            IndexLayout::on("tasks_tenant_priority", &[("priority_rank", 1), ("_id", 1)]),
            // status filters, overdue=true and dueBefore/dueAfter within a status.
            IndexLayout::on("tasks_tenant_status_due", &[("status", 1), ("due_at", 1)]),
            // assignee filter (with or without status).
            IndexLayout::on(
                "tasks_tenant_assignee_status",
                &[("assignee", 1), ("status", 1)],
            ),
            // label filter (multikey).
            IndexLayout::on("tasks_tenant_labels", &[("labels", 1)]),
        ],
    }],
};

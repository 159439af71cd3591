//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

use crate::{domain, routes};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "task-repo-service",
        description = "Tasks of a PrismicX tenant: CRUD, a status state machine (todo → in_progress → \
                       done, reopen, cancel), assignment, due dates, labels, JSON attributes, filters \
                       and cursor pagination in several orders. Every task carries a revision: responses \
                       for one task send it as `ETag: \"<revision>\"`, and PATCH, DELETE and transitions \
                       require it in `If-Match` (412 when stale; nothing is overwritten). Authenticate \
                       with `Authorization: Bearer <key>`: a tenant key acts for its tenant; the platform \
                       key names the tenant in `X-Tenant`. Errors are RFC 9457 problem+json."
    ),
    paths(
        routes::create_task, routes::list_tasks, routes::get_task, routes::update_task,
        routes::delete_task, routes::transition_task,
    ),
    components(schemas(
        domain::Task, domain::Status, domain::Priority, domain::CreateTask, domain::UpdateTask,
        domain::TransitionRequest
    )),
    tags((name = "tasks", description = "Tasks of the tenant")),
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    use prismicx_service_common::openapi::{attributes_schema, trimmed_text, ApiDocument};
    use serde_json::json;
    // The rules the handlers enforce that the derived schemas cannot state.
    let assignee = json!({ "maxLength": 200,
        "pattern": "^[^\\s\\x00-\\x1f\\x7f-\\x9f]([^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f])?$" });
    let mut label = trimmed_text(1, 50, false, ",");
    label["type"] = json!("string");
    // An RFC 3339 date-time in the years 1900 to 9999.
    let due = json!({ "format": "date-time", "pattern": "^(19[0-9]{2}|[2-9][0-9]{3})-" });
    // Comma-separated labels, each as in a task.
    let piece = label["pattern"].as_str().unwrap_or("^.*$");
    let piece = &piece[1..piece.len() - 1];
    let labels_param = json!({ "pattern": format!("^{piece}(,{piece})*$") });
    let bodies = &["CreateTask", "UpdateTask"];
    let tasks = "/v1/tasks";
    let list = |values: &str| json!({ "pattern": format!("^({values})(,({values}))*$") });
    let mut doc = ApiDocument::new(ApiDoc::openapi());
    doc.constrain("/components/schemas/UpdateTask", json!({ "minProperties": 1 }))
        // A task starts unfinished.
        .replace_property(
            &["CreateTask"],
            "status",
            json!({ "type": ["string", "null"], "enum": ["todo", "in_progress", null] }),
        )
        .property(bodies, "title", trimmed_text(1, 200, false, ""))
        .property(bodies, "assignee", assignee.clone())
        .property(bodies, "labels", json!({ "maxItems": 20, "items": label }))
        .property(bodies, "description", json!({ "maxLength": 10000 }))
        .property(bodies, "dueAt", due.clone())
        // Nested keys are stored as MongoDB field names: not empty, no leading `$`, no `.`.
        .property(
            bodies,
            "attributes",
            attributes_schema("^[^$.\\u0000][^.\\u0000]*$"),
        )
        .param(tasks, "get", "status", list("todo|in_progress|done|cancelled"))
        .param(tasks, "get", "priority", list("low|normal|high|urgent"))
        .param(
            tasks,
            "get",
            "sort",
            json!({ "enum": [
            "createdAt", "-createdAt", "dueAt", "-dueAt", "priority", "-priority", "updatedAt", "-updatedAt"] }),
        )
        .param(tasks, "get", "label", labels_param)
        .param(tasks, "get", "assignee", assignee)
        .param(
            tasks,
            "get",
            "q",
            json!({ "maxLength": 200, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$" }),
        );
    for p in ["dueBefore", "dueAfter"] {
        doc.param(tasks, "get", p, due.clone());
    }
    doc.build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let doc = super::document();
        let paths = doc["paths"].as_object().unwrap();
        for p in ["/v1/tasks", "/v1/tasks/{id}", "/v1/tasks/{id}/transitions"] {
            assert!(paths.contains_key(p), "{p}");
        }
        assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
        assert!(doc["components"]["schemas"]["Task"].is_object());
    }
}

//! The OpenAPI document served at `/openapi.json`.

use prismicx_service_common::http::ApiKeyAuth;
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
        domain::TransitionRequest,
        prismicx_service_common::error::Problem, prismicx_service_common::FieldError
    )),
    modifiers(&ApiKeyAuth),
    tags((name = "tasks", description = "Tasks of the tenant")),
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
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

//! HTTP handlers: parse and validate the request, reach the tenant's `tasks` collection through
//! `repo`, answer with the task and its `ETag`.
//!
//! Writes to an existing task (`PATCH`, `DELETE`, transitions) need `If-Match: "<revision>"`.
//! The handler reads the task (404 when the tenant has none with that id), answers 412 when the
//! revision moved on, computes the next revision, and stores it with one conditional update on
//! `{_id, revision: <If-Match>}`; when that matches nothing a concurrent writer won (412) or
//! the task was deleted meanwhile (404). A refused request has changed nothing.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document};
use prismicx_service_common::error::Problem;
use prismicx_service_common::extract::{created, with_etag, IfMatch, Json, Path, Query};
use prismicx_service_common::pagination::{self, Page};
use prismicx_service_common::tenancy::{Scoped, TenantPlacement};
use prismicx_service_common::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{self, CreateTask, Priority, Status, Task, TransitionRequest, UpdateTask};
use crate::repo::{self, Tasks};
use crate::{AppState, TASKS};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tasks", get(list_tasks).post(create_task))
        .route(
            "/v1/tasks/{id}",
            get(get_task).patch(update_task).delete(delete_task),
        )
        .route("/v1/tasks/{id}/transitions", post(transition_task))
}

fn tasks(state: &AppState, tenant: &TenantPlacement) -> Tasks {
    state.store.collection(tenant, TASKS)
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found("task", id)
}

fn stale(expected: i64, current: i64) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "If-Match names revision {expected} but the task is at revision {current}; \
         read it again and reapply your change"
    ))
}

/// A concurrent write of the same revision was stored first.
fn lost_race(expected: i64, current: i64) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "another change to revision {expected} was stored first (the task is now at revision \
         {current}); read it again and reapply your change"
    ))
}

/// The task as the body, its revision as the `ETag`.
fn task_response(status: StatusCode, task: Task) -> Response {
    with_etag(status, task.revision, task)
}

/// The task `id` at revision `expected`, or 404 / 412.
async fn current(
    coll: &Tasks,
    tenant: &TenantPlacement,
    id: Uuid,
    expected: i64,
) -> Result<Task, ApiError> {
    let task = repo::get(coll, tenant.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if task.revision != expected {
        return Err(stale(expected, task.revision));
    }
    Ok(task)
}

/// Stores `next` over revision `expected`; 412 (or 404) when a concurrent writer got there first.
async fn store_next(
    coll: &Tasks,
    tenant: &TenantPlacement,
    next: Task,
    expected: i64,
) -> Result<Response, ApiError> {
    if repo::update_if(coll, &next, expected).await? {
        return Ok(task_response(StatusCode::OK, next));
    }
    Err(match repo::get(coll, tenant.id, next.id).await? {
        Some(now) => lost_race(expected, now.revision),
        None => not_found(next.id),
    })
}

/// Create a task.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = CreateTask,
    responses(
        (status = 201, description = "Created (revision 1)", body = Task, headers(
            ("location" = String, description = "URL of the new task"),
            ("etag" = String, description = "The task's revision, `\"1\"`"))),
        (status = 422, description = "Invalid or unknown fields (each named)", body = Problem)))]
pub async fn create_task(
    Scoped { state, tenant }: Scoped<AppState>,
    Json(body): Json<CreateTask>,
) -> Result<Response, ApiError> {
    let task = body.into_task(tenant.id, domain::now())?;
    repo::insert(&tasks(&state, &tenant), &task).await?;
    let location = format!("/v1/tasks/{}", task.id);
    Ok(created(&location, task_response(StatusCode::CREATED, task)))
}

/// Get a task.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task", body = Task, headers(("etag" = String, description = "The task's revision, e.g. `\"3\"`"))),
        (status = 404, description = "The tenant has no such task", body = Problem)))]
pub async fn get_task(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let task = repo::get(&tasks(&state, &tenant), tenant.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(task_response(StatusCode::OK, task))
}

/// Change a task's fields (and possibly its status) at the revision named in `If-Match`.
#[utoipa::path(patch, path = "/v1/tasks/{id}", tag = "tasks", request_body = UpdateTask,
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-Match" = String, Header, description = "The ETag last read, e.g. `\"3\"` (required)")),
    responses(
        (status = 200, description = "The task at its next revision", body = Task, headers(("etag" = String, description = "The new revision"))),
        (status = 404, description = "The tenant has no such task", body = Problem),
        (status = 409, description = "`status` names a transition the state machine refuses (the allowed ones are listed)", body = Problem),
        (status = 422, description = "Invalid or unknown fields (each named)", body = Problem)))]
pub async fn update_task(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
    Json(body): Json<UpdateTask>,
) -> Result<Response, ApiError> {
    let expected = if_match.required()?;
    let changes = body.validate()?;
    let coll = tasks(&state, &tenant);
    let task = current(&coll, &tenant, id, expected).await?;
    let next = changes.apply(&task, domain::now())?;
    store_next(&coll, &tenant, next, expected).await
}

/// Move a task to another status at the revision named in `If-Match`.
///
/// Allowed: `todo → in_progress | cancelled`, `in_progress → done | todo | cancelled`,
/// `done → in_progress` (reopen), `cancelled → todo` (reopen). Entering `done` sets
/// `completedAt`; leaving it clears it.
#[utoipa::path(post, path = "/v1/tasks/{id}/transitions", tag = "tasks", request_body = TransitionRequest,
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-Match" = String, Header, description = "The ETag last read, e.g. `\"3\"` (required)")),
    responses(
        (status = 200, description = "The task in its new status, at its next revision", body = Task, headers(("etag" = String, description = "The new revision"))),
        (status = 404, description = "The tenant has no such task", body = Problem),
        (status = 409, description = "The transition is not allowed from the current status (field `status`; the allowed ones are listed)", body = Problem),
        (status = 422, description = "`to` is missing or not a status", body = Problem)))]
pub async fn transition_task(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
    Json(body): Json<TransitionRequest>,
) -> Result<Response, ApiError> {
    let expected = if_match.required()?;
    let coll = tasks(&state, &tenant);
    let task = current(&coll, &tenant, id, expected).await?;
    let next = task.transition(body.to, domain::now())?;
    store_next(&coll, &tenant, next, expected).await
}

/// Delete a task at the revision named in `If-Match`.
#[utoipa::path(delete, path = "/v1/tasks/{id}", tag = "tasks",
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-Match" = String, Header, description = "The ETag last read, e.g. `\"3\"` (required)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The tenant has no such task", body = Problem)))]
pub async fn delete_task(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let expected = if_match.required()?;
    let coll = tasks(&state, &tenant);
    current(&coll, &tenant, id, expected).await?;
    if repo::delete_if(&coll, id, expected).await? {
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(match repo::get(&coll, tenant.id, id).await? {
        Some(now) => lost_race(expected, now.revision),
        None => not_found(id),
    })
}

/// What a list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortField {
    CreatedAt,
    UpdatedAt,
    DueAt,
    Priority,
}

/// A list order: a field, ascending or descending, ties broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sort {
    field: SortField,
    descending: bool,
}

const SORTS: &str =
    "createdAt, -createdAt, dueAt, -dueAt, priority, -priority, updatedAt, -updatedAt";

impl Sort {
    fn parse(s: &str) -> Result<Sort, ApiError> {
        let (descending, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let field = match name {
            "createdAt" => SortField::CreatedAt,
            "updatedAt" => SortField::UpdatedAt,
            "dueAt" => SortField::DueAt,
            "priority" => SortField::Priority,
            _ => {
                return Err(ApiError::bad_request(
                    "sort",
                    format!("must be one of {SORTS}"),
                ))
            }
        };
        Ok(Sort { field, descending })
    }

    fn name(self) -> String {
        let n = match self.field {
            SortField::CreatedAt => "createdAt",
            SortField::UpdatedAt => "updatedAt",
            SortField::DueAt => "dueAt",
            SortField::Priority => "priority",
        };
        if self.descending {
            format!("-{n}")
        } else {
            n.to_string()
        }
    }

    /// The stored field sorted on.
    fn db_field(self) -> &'static str {
        match self.field {
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::DueAt => "due_sort",
            SortField::Priority => "priority_rank",
        }
    }

    /// A task's sort key as the cursor carries it.
    fn key(self, t: &Task) -> i64 {
        match self.field {
            SortField::CreatedAt => t.created_at.timestamp_millis(),
            SortField::UpdatedAt => t.updated_at.timestamp_millis(),
            SortField::DueAt => repo::due_sort(t.due_at),
            SortField::Priority => i64::from(t.priority.rank()),
        }
    }

    /// A cursor's key as the stored value it compares with.
    fn key_bson(self, k: i64) -> Result<Bson, ApiError> {
        Ok(match self.field {
            SortField::CreatedAt | SortField::UpdatedAt => BsonDate::from_millis(k).into(),
            SortField::DueAt => Bson::Int64(k),
            SortField::Priority => Bson::Int32(
                i32::try_from(k)
                    .ok()
                    .filter(|r| (0..=3).contains(r))
                    .ok_or_else(|| {
                        ApiError::bad_request("cursor", "is not a cursor this API issued")
                    })?,
            ),
        })
    }

    fn direction(self) -> i32 {
        if self.descending {
            -1
        } else {
            1
        }
    }

    fn order(self) -> Document {
        doc! { self.db_field(): self.direction(), "_id": self.direction() }
    }

    /// Tasks strictly after the cursor's position in this order.
    fn after(self, c: &ListCursor) -> Result<Document, ApiError> {
        let op = if self.descending { "$lt" } else { "$gt" };
        let key = self.key_bson(c.k)?;
        Ok(doc! { "$or": [
            { self.db_field(): { op: key.clone() } },
            { self.db_field(): key, "_id": { op: repo::id_bson(c.id) } },
        ]})
    }
}

/// What a `nextCursor` holds: the sort it was made for, the last item's key and id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ListCursor {
    s: String,
    k: i64,
    id: Uuid,
}

const LIST_PARAMS: &[&str] = &[
    "limit",
    "cursor",
    "sort",
    "status",
    "priority",
    "assignee",
    "label",
    "dueBefore",
    "dueAfter",
    "overdue",
    "q",
];
/// Parameters that may be repeated (their values add up), besides taking comma-separated lists.
const REPEATABLE: &[&str] = &["status", "priority", "label"];
const MAX_Q_CHARS: usize = 200;

/// `q` as a regular expression matching itself literally: every ASCII character other than a
/// letter, digit or `_` is escaped (a backslash before such a character is always a literal in
/// PCRE and in the wire server's engine).
pub fn regex_literal(q: &str) -> String {
    let mut out = String::with_capacity(q.len() * 2);
    for c in q.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .collect()
}

/// List the tenant's tasks with filters, in one of several orders, with cursor pagination.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page; only valid with the same sort"),
        ("sort" = Option<String>, Query, description = "createdAt (default), -createdAt, dueAt, -dueAt, priority, -priority, updatedAt or -updatedAt; ties broken by id. dueAt: tasks without a due date come after every dated one (first with -dueAt). priority: low < normal < high < urgent"),
        ("status" = Option<String>, Query, description = "Only these statuses: comma-separated and/or repeated (todo, in_progress, done, cancelled)"),
        ("priority" = Option<String>, Query, description = "Only these priorities: comma-separated and/or repeated"),
        ("assignee" = Option<String>, Query, description = "Only tasks assigned to exactly this id"),
        ("label" = Option<String>, Query, description = "Only tasks carrying all these labels: comma-separated and/or repeated (case-insensitive)"),
        ("dueBefore" = Option<String>, Query, description = "Only tasks due strictly before this RFC 3339 time"),
        ("dueAfter" = Option<String>, Query, description = "Only tasks due at or after this RFC 3339 time"),
        ("overdue" = Option<bool>, Query, description = "true: only open tasks (todo, in_progress) due before now; false: all others"),
        ("q" = Option<String>, Query, description = "Case-insensitive text in the title (taken literally, at most 200 characters)"),
    ),
    responses((status = 200, description = "One page of tasks", body = Page<Task>)))]
pub async fn list_tasks(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Page<Task>>, ApiError> {
    let mut single: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut multi: std::collections::HashMap<&str, Vec<String>> = std::collections::HashMap::new();
    for (k, v) in &params {
        let Some(name) = LIST_PARAMS.iter().find(|p| **p == k.as_str()) else {
            return Err(ApiError::bad_request(
                k.clone(),
                "is not a parameter of this list",
            ));
        };
        if REPEATABLE.contains(name) {
            multi.entry(name).or_default().push(v.clone());
        } else if single.insert(name, v.as_str()).is_some() {
            return Err(ApiError::bad_request(k.clone(), "may be given only once"));
        }
    }
    let limit = pagination::limit_text(single.get("limit").copied())?;
    let sort = Sort::parse(single.get("sort").copied().unwrap_or("createdAt"))?;
    let mut clauses: Vec<Document> = Vec::new();
    if let Some(values) = multi.get("status") {
        let statuses = split_list(values)
            .iter()
            .map(|s| Status::parse(s).map(|s| s.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ApiError::bad_request("status", m))?;
        clauses.push(doc! { "status": { "$in": statuses } });
    }
    if let Some(values) = multi.get("priority") {
        let priorities = split_list(values)
            .iter()
            .map(|p| Priority::parse(p).map(|p| p.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ApiError::bad_request("priority", m))?;
        clauses.push(doc! { "priority": { "$in": priorities } });
    }
    if let Some(values) = multi.get("label") {
        let labels = split_list(values)
            .iter()
            .map(|l| domain::parse_label(l))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ApiError::bad_request("label", m))?;
        clauses.push(doc! { "labels": { "$all": labels } });
    }
    if let Some(a) = single.get("assignee") {
        let a = domain::parse_assignee(a).map_err(|m| ApiError::bad_request("assignee", m))?;
        clauses.push(doc! { "assignee": a });
    }
    for (param, op) in [("dueBefore", "$lt"), ("dueAfter", "$gte")] {
        if let Some(v) = single.get(param) {
            let t = domain::parse_date_time(v).map_err(|m| ApiError::bad_request(param, m))?;
            clauses.push(doc! { "due_at": { op: repo::bson_time(t) } });
        }
    }
    if let Some(v) = single.get("overdue") {
        let overdue = doc! {
            "due_at": { "$lt": repo::bson_time(domain::now()) },
            "status": { "$in": [Status::Todo.as_str(), Status::InProgress.as_str()] },
        };
        clauses.push(match *v {
            "true" => overdue,
            "false" => doc! { "$nor": [overdue] },
            _ => return Err(ApiError::bad_request("overdue", "must be true or false")),
        });
    }
    if let Some(q) = single.get("q") {
        if q.chars().count() > MAX_Q_CHARS {
            return Err(ApiError::bad_request(
                "q",
                format!("must be at most {MAX_Q_CHARS} characters"),
            ));
        }
        if q.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "q",
                "must not contain control characters",
            ));
        }
        let q = q.trim();
        if !q.is_empty() {
            clauses.push(doc! { "title": { "$regex": regex_literal(q), "$options": "i" } });
        }
    }
    if let Some(c) = single.get("cursor") {
        let cursor: ListCursor = pagination::decode_cursor(c)?;
        if cursor.s != sort.name() {
            return Err(ApiError::bad_request(
                "cursor",
                format!(
                    "was made for sort={} but this request sorts by {}; start again without a cursor",
                    cursor.s,
                    sort.name()
                ),
            ));
        }
        clauses.push(sort.after(&cursor)?);
    }
    let filter = if clauses.is_empty() {
        Document::new()
    } else {
        doc! { "$and": clauses }
    };
    let coll = tasks(&state, &tenant);
    let items = repo::list(&coll, tenant.id, filter, sort.order(), i64::from(limit) + 1).await?;
    Ok(Json(Page::from_overfetch(items, limit, |t| ListCursor {
        s: sort.name(),
        k: sort.key(t),
        id: t.id,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_metacharacters_are_escaped() {
        assert_eq!(regex_literal("a.b*(c)"), r"a\.b\*\(c\)");
        assert_eq!(regex_literal("ünï_1"), "ünï_1");
        assert_eq!(regex_literal(r"\d+$"), r"\\d\+\$");
    }

    #[test]
    fn sorts_round_trip_and_unknown_ones_name_the_parameter() {
        for s in SORTS.split(", ") {
            assert_eq!(Sort::parse(s).unwrap().name(), s);
        }
        let e = Sort::parse("title").unwrap_err();
        assert_eq!(e.problem().errors[0].field, "sort");
    }

    #[test]
    fn priority_cursor_keys_are_bounded() {
        let s = Sort::parse("priority").unwrap();
        assert!(s.key_bson(3).is_ok());
        assert_eq!(s.key_bson(99).unwrap_err().status(), 400);
    }
}

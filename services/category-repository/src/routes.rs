//! HTTP handlers: parse and validate the request, call the tenant's [`Tree`], answer with the
//! category (and its `ETag`) or a problem document.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use prismicx_service_common::error::Problem;
use prismicx_service_common::extract::{self, IfMatch, Json, Path, Query};
use prismicx_service_common::pagination::{self, Page, PageQuery};
use prismicx_service_common::tenancy::Scoped;
use prismicx_service_common::ApiError;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::domain::{Category, CreateCategory, MoveCategory, ReorderCategory, UpdateCategory};
use crate::repo::{self, CategoryDoc, ChildCursor, DescendantCursor, Target, Tree};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/categories", get(list_roots).post(create_category))
        .route(
            "/v1/categories/{id}",
            get(get_category)
                .patch(update_category)
                .delete(delete_category),
        )
        .route("/v1/categories/{id}/move", post(move_category))
        .route("/v1/categories/{id}/reorder", post(reorder_category))
        .route("/v1/categories/{id}/children", get(list_children))
        .route("/v1/categories/{id}/ancestors", get(list_ancestors))
        .route("/v1/categories/{id}/descendants", get(list_descendants))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::bad_request("id", "must be a UUID"))
}

/// The category with its `ETag`.
fn with_etag(status: StatusCode, c: &CategoryDoc) -> Response {
    extract::with_etag(status, c.revision, c.to_api())
}

/// Query of the descendants list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DescendantsQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only descendants at most this many levels below the category (1: its children), 1 to 32.
    pub max_depth: Option<u32>,
}

/// Query of a delete.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteQuery {
    /// Delete the whole subtree (atomically). Without it, a category with children is not
    /// deleted (409).
    pub cascade: Option<bool>,
}

fn children_page(items: Vec<CategoryDoc>, limit: u32) -> Page<Category> {
    let page = Page::from_overfetch(items, limit, |c| (c.position, repo::uuid(c.id)));
    Page {
        items: page.items.iter().map(CategoryDoc::to_api).collect(),
        next_cursor: page.next_cursor,
    }
}

/// Create a category: a root, or a child of `parentId` at `position` (default: last).
#[utoipa::path(post, path = "/v1/categories", tag = "categories", request_body = CreateCategory,
    responses(
        (status = 201, description = "Created", body = Category, headers(
            ("location" = String, description = "URL of the new category"),
            ("etag" = String, description = "The revision, for If-Match"))),
        (status = 404, description = "parentId names no category of the tenant", body = Problem),
        (status = 409, description = "A sibling has the same name (case-insensitively)", body = Problem),
        (status = 422, description = "Invalid fields (name, description, position, attributes, depth over 32 levels)", body = Problem)))]
pub async fn create_category(
    Scoped { state, tenant }: Scoped<AppState>,
    Json(body): Json<CreateCategory>,
) -> Result<Response, ApiError> {
    let new = body.validate()?;
    let c = Tree::new(&state.store, &tenant).create(new).await?;
    let location = format!("/v1/categories/{}", repo::uuid(c.id));
    Ok(extract::created(
        &location,
        with_etag(StatusCode::CREATED, &c),
    ))
}

/// List the roots of the tenant's forest, in order.
#[utoipa::path(get, path = "/v1/categories", tag = "categories", params(PageQuery),
    responses(
        (status = 200, description = "Roots ordered by position", body = Page<Category>)))]
pub async fn list_roots(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<Category>>, ApiError> {
    let (limit, cursor) = q.page::<ChildCursor>()?;
    let items = Tree::new(&state.store, &tenant)
        .children(None, cursor, limit)
        .await?;
    Ok(Json(children_page(items, limit)))
}

/// Get a category.
#[utoipa::path(get, path = "/v1/categories/{id}", tag = "categories",
    params(("id" = Uuid, Path, description = "Category id")),
    responses(
        (status = 200, description = "The category", body = Category, headers(("etag" = String, description = "The revision, for If-Match"))),
        (status = 404, description = "No such category in the tenant", body = Problem)))]
pub async fn get_category(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let c = Tree::new(&state.store, &tenant)
        .get(id)
        .await?
        .ok_or_else(|| repo::not_found(id))?;
    Ok(with_etag(StatusCode::OK, &c))
}

/// Rename or describe a category, or merge-patch its attributes. `If-Match` is optional; when
/// present it must name the current revision.
#[utoipa::path(patch, path = "/v1/categories/{id}", tag = "categories", request_body = UpdateCategory,
    params(("id" = Uuid, Path, description = "Category id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; the change is refused (412) if the category changed since")),
    responses(
        (status = 200, description = "The changed category", body = Category, headers(("etag" = String, description = "The new revision"))),
        (status = 404, description = "No such category in the tenant", body = Problem),
        (status = 409, description = "A sibling has the new name", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem)))]
pub async fn update_category(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    Json(body): Json<UpdateCategory>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let changes = body.validate()?;
    let c = Tree::new(&state.store, &tenant)
        .update(id, changes, if_match)
        .await?;
    Ok(with_etag(StatusCode::OK, &c))
}

/// Delete a category. With `cascade=true` its whole subtree goes in one transaction; without,
/// a category that has children is refused (409). Later siblings close the gap.
#[utoipa::path(delete, path = "/v1/categories/{id}", tag = "categories",
    params(("id" = Uuid, Path, description = "Category id"), DeleteQuery,
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused (412) if the category changed since")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such category in the tenant", body = Problem),
        (status = 409, description = "The category has children and cascade is not set", body = Problem)))]
pub async fn delete_category(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    Tree::new(&state.store, &tenant)
        .delete(id, q.cascade.unwrap_or(false), if_match)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a category with its subtree under another parent (or to the roots with
/// `parentId: null`), at `position` among the new siblings (default: last). Atomic: the
/// subtree's paths, the old siblings closing the gap and the new ones opening one commit
/// together. Moving under itself or a descendant is refused (409 naming `parentId`).
#[utoipa::path(post, path = "/v1/categories/{id}/move", tag = "tree", request_body = MoveCategory,
    params(("id" = Uuid, Path, description = "Category id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused (412) if the category changed since")),
    responses(
        (status = 200, description = "The moved category", body = Category, headers(("etag" = String, description = "The new revision"))),
        (status = 404, description = "The category or the new parent does not exist in the tenant", body = Problem),
        (status = 409, description = "The move would create a cycle, a sibling there has the same name, or a concurrent change won", body = Problem),
        (status = 422, description = "parentId missing, position out of range, or the tree would be deeper than 32 levels", body = Problem)))]
pub async fn move_category(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    Json(body): Json<MoveCategory>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let m = body.validate()?;
    let c = Tree::new(&state.store, &tenant)
        .move_to(id, Target::Parent(m.parent_id), m.position, if_match)
        .await?;
    Ok(with_etag(StatusCode::OK, &c))
}

/// Change a category's place among its siblings; the siblings in between shift by one.
#[utoipa::path(post, path = "/v1/categories/{id}/reorder", tag = "tree", request_body = ReorderCategory,
    params(("id" = Uuid, Path, description = "Category id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused (412) if the category changed since")),
    responses(
        (status = 200, description = "The category at its new position", body = Category, headers(("etag" = String, description = "The new revision"))),
        (status = 404, description = "No such category in the tenant", body = Problem),
        (status = 409, description = "A concurrent change won", body = Problem),
        (status = 422, description = "position out of range", body = Problem)))]
pub async fn reorder_category(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    Json(body): Json<ReorderCategory>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let c = Tree::new(&state.store, &tenant)
        .move_to(
            id,
            Target::SameParent,
            Some(i64::from(body.position)),
            if_match,
        )
        .await?;
    Ok(with_etag(StatusCode::OK, &c))
}

/// The children of a category, ordered by position.
#[utoipa::path(get, path = "/v1/categories/{id}/children", tag = "tree",
    params(("id" = Uuid, Path, description = "Category id"), PageQuery),
    responses(
        (status = 200, description = "Children ordered by position", body = Page<Category>),
        (status = 404, description = "No such category in the tenant", body = Problem)))]
pub async fn list_children(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<Category>>, ApiError> {
    let id = parse_id(&id)?;
    let (limit, cursor) = q.page::<ChildCursor>()?;
    let tree = Tree::new(&state.store, &tenant);
    tree.get(id).await?.ok_or_else(|| repo::not_found(id))?;
    let items = tree.children(Some(id), cursor, limit).await?;
    Ok(Json(children_page(items, limit)))
}

/// The path from the root to the category (excluding it), root first.
#[utoipa::path(get, path = "/v1/categories/{id}/ancestors", tag = "tree",
    params(("id" = Uuid, Path, description = "Category id")),
    responses(
        (status = 200, description = "Ancestors, root first; empty for a root", body = Vec<Category>),
        (status = 404, description = "No such category in the tenant", body = Problem)))]
pub async fn list_ancestors(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Category>>, ApiError> {
    let id = parse_id(&id)?;
    let path = Tree::new(&state.store, &tenant).ancestors(id).await?;
    Ok(Json(path.iter().map(CategoryDoc::to_api).collect()))
}

/// The descendants of a category, level by level: ordered by depth, then parent id, then
/// position (siblings stay together, in order). `maxDepth` limits how many levels below.
#[utoipa::path(get, path = "/v1/categories/{id}/descendants", tag = "tree",
    params(("id" = Uuid, Path, description = "Category id"), DescendantsQuery),
    responses(
        (status = 200, description = "Descendants by depth, parent, position", body = Page<Category>),
        (status = 404, description = "No such category in the tenant", body = Problem)))]
pub async fn list_descendants(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DescendantsQuery>,
) -> Result<Json<Page<Category>>, ApiError> {
    let id = parse_id(&id)?;
    let limit = pagination::limit(q.limit)?;
    if let Some(m) = q.max_depth {
        if !(1..=32).contains(&m) {
            return Err(ApiError::bad_request(
                "maxDepth",
                "must be between 1 and 32",
            ));
        }
    }
    let cursor: Option<DescendantCursor> = q
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let tree = Tree::new(&state.store, &tenant);
    let x = tree.get(id).await?.ok_or_else(|| repo::not_found(id))?;
    let items = tree.descendants(&x, q.max_depth, cursor, limit).await?;
    let page = Page::from_overfetch(items, limit, |c| {
        (
            c.depth,
            c.parent_id.map(repo::uuid).unwrap_or_default(),
            c.position,
            repo::uuid(c.id),
        )
    });
    Ok(Json(Page {
        items: page.items.iter().map(CategoryDoc::to_api).collect(),
        next_cursor: page.next_cursor,
    }))
}

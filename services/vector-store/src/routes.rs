//! HTTP handlers: resolve the tenant's collection by name through the [`Catalog`] (another
//! tenant's collection is simply not there: 404), validate the body into the engine's types,
//! run the engine call on the blocking pool ([`Vectors`]), answer JSON or a problem document.
//!
//! [`Catalog`]: crate::catalog::Catalog
//! [`Vectors`]: crate::vectors::Vectors

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use prismicx_service_common::error::{Problem, Problems};
use prismicx_service_common::extract::{self, Json, Path, Query};
use prismicx_service_common::pagination::{self, Page, PageQuery};
use prismicx_service_common::tenancy::{Scoped, TenantPlacement};
use prismicx_service_common::ApiError;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::catalog::CollectionMeta;
use crate::domain::{
    Collection, CollectionDetail, CountPoints, Counted, CreateCollection, DeletePoints, Deleted,
    Deletion, PlanOut, PointOut, PointPage, QueryBatch, QueryBatchResult, QueryIn, QueryResult,
    QuotaOut, ScrollPoints, UpsertPoints, Upserted, MAX_QUERIES,
};
use crate::vectors::{engine_quota, scope_of};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/collections",
            get(list_collections).post(create_collection),
        )
        .route(
            "/v1/collections/{name}",
            get(get_collection).delete(delete_collection),
        )
        .route("/v1/collections/{name}/points", put(upsert_points))
        .route("/v1/collections/{name}/points/{id}", get(get_point))
        .route("/v1/collections/{name}/points/delete", post(delete_points))
        .route("/v1/collections/{name}/points/count", post(count_points))
        .route(
            "/v1/collections/{name}/points/scroll",
            get(scroll_points_get).post(scroll_points),
        )
        .route("/v1/collections/{name}/query", post(query))
        .route("/v1/collections/{name}/query/batch", post(query_batch))
}

/// The tenant's collection `name`, its scope prepared first.
async fn collection(
    state: &AppState,
    tenant: &TenantPlacement,
    name: &str,
) -> Result<CollectionMeta, ApiError> {
    state.vectors.prepare(&state.store, tenant).await?;
    state.vectors.catalog.get(&state.store, tenant, name).await
}

/// Create a collection. The name is unique in the tenant; dimension, metric, index parameters
/// and indexed payload fields are fixed for its life.
#[utoipa::path(post, path = "/v1/collections", tag = "collections", request_body = CreateCollection,
    responses(
        (status = 201, description = "Created", body = Collection, headers(
            ("location" = String, description = "URL of the new collection"))),
        (status = 409, description = "The tenant has a collection of that name, or the tenant's collection quota is reached (type `quota-exceeded`)", body = Problem),
        (status = 422, description = "Invalid fields (name, dimension, metric, index, indexedFields)", body = Problem)),
    security(("api_key" = [])))]
pub async fn create_collection(
    Scoped { state, tenant }: Scoped<AppState>,
    Json(body): Json<CreateCollection>,
) -> Result<Response, ApiError> {
    let (name, spec) = body.validate()?;
    let v = &state.vectors;
    v.prepare(&state.store, &tenant).await?;
    let quota = engine_quota(v.quota(&state.tenancy, &tenant).await?);
    let meta = v
        .catalog
        .insert(&state.store, &tenant, name, spec.clone())
        .await?;
    let created = v
        .write(&tenant, &meta, move |e, key| {
            e.create_collection(key, &spec, &quota)
        })
        .await;
    if let Err(refused) = created {
        // The document goes again; should that fail, the garbage rule has nothing to remove
        // (no engine data) and the name stays taken until the collection is deleted.
        if let Err(e) = v.catalog.delete(&state.store, &tenant, &meta).await {
            tracing::warn!(tenant = %tenant.slug, collection = %meta.name, error = %e, "metadata of a refused collection not removed");
        }
        return Err(refused);
    }
    let location = format!("/v1/collections/{}", meta.name);
    Ok(extract::created(&location, Json(meta.to_api())))
}

/// List the tenant's collections by name.
#[utoipa::path(get, path = "/v1/collections", tag = "collections", params(PageQuery),
    responses(
        (status = 200, description = "Collections ordered by name", body = Page<Collection>)),
    security(("api_key" = [])))]
pub async fn list_collections(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<Collection>>, ApiError> {
    let (limit, after) = q.page::<String>()?;
    let items = state
        .vectors
        .catalog
        .list(&state.store, &tenant, after.as_deref(), limit)
        .await?;
    let page = Page::from_overfetch(items, limit, |m| m.name.clone());
    Ok(Json(Page {
        items: page.items.iter().map(CollectionMeta::to_api).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A collection with its size, and the tenant's usage and quota.
#[utoipa::path(get, path = "/v1/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 200, description = "The collection", body = CollectionDetail),
        (status = 404, description = "The tenant has no collection of that name", body = Problem)),
    security(("api_key" = [])))]
pub async fn get_collection(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CollectionDetail>, ApiError> {
    let meta = collection(&state, &tenant, &name).await?;
    let v = &state.vectors;
    let (scope, id) = (scope_of(tenant.tier), tenant.id);
    let (stats, usage) = v
        .on(&tenant, &meta, move |e, key| {
            Ok((e.stats(key)?, e.usage(scope, id)?))
        })
        .await?;
    let quota = v.quota(&state.tenancy, &tenant).await?;
    Ok(Json(CollectionDetail {
        collection: meta.to_api(),
        stats: stats.into(),
        usage: usage.into(),
        quota: QuotaOut {
            max_collections: quota.max_collections,
            max_points: quota.max_points,
            max_bytes: quota.max_bytes,
        },
    }))
}

/// Delete a collection with all its points.
#[utoipa::path(delete, path = "/v1/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The tenant has no collection of that name", body = Problem)),
    security(("api_key" = [])))]
pub async fn delete_collection(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let meta = collection(&state, &tenant, &name).await?;
    let v = &state.vectors;
    // Engine data first, the document second: a crash in between leaves a document without
    // data, which the next delete removes (the engine's NotFound counts as done).
    v.write(&tenant, &meta, |e, key| match e.drop_collection(key) {
        Err(crate::engine::EngineError::NotFound) => Ok(()),
        other => other,
    })
    .await?;
    let found = v.catalog.delete(&state.store, &tenant, &meta).await?;
    extract::no_content_if(found, || crate::catalog::not_found(&name))
}

/// Insert or replace points by id, all or nothing: a batch with one bad point, or one that
/// would exceed the tenant's quota, writes nothing.
#[utoipa::path(put, path = "/v1/collections/{name}/points", tag = "points", request_body = UpsertPoints,
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 200, description = "Written (durable as `VECTOR_STORE_DURABILITY` says)", body = Upserted),
        (status = 404, description = "The tenant has no collection of that name", body = Problem),
        (status = 409, description = "The tenant's point or byte quota would be exceeded (type `quota-exceeded`); nothing written", body = Problem),
        (status = 422, description = "More than 1000 points, or a bad point (`points[3].vector`: wrong dimension or not finite; `points[3].payload`: not an object; `points[3].id`: empty, too long or repeated); nothing written", body = Problem)),
    security(("api_key" = [])))]
pub async fn upsert_points(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(name): Path<String>,
    Json(body): Json<UpsertPoints>,
) -> Result<Json<Upserted>, ApiError> {
    let meta = collection(&state, &tenant, &name).await?;
    let points = body.validate(meta.spec.dimension)?;
    let v = &state.vectors;
    let quota = engine_quota(v.quota(&state.tenancy, &tenant).await?);
    let upserted = v
        .write(&tenant, &meta, move |e, key| e.upsert(key, points, &quota))
        .await?;
    Ok(Json(Upserted { upserted }))
}

/// Query of a point read.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PointQuery {
    /// Include the vector (default false).
    #[serde(default, alias = "with_vector")]
    pub with_vector: Option<bool>,
}

/// One point.
#[utoipa::path(get, path = "/v1/collections/{name}/points/{id}", tag = "points",
    params(("name" = String, Path, description = "Collection name"),
        ("id" = String, Path, description = "Point id"), PointQuery),
    responses(
        (status = 200, description = "The point", body = PointOut),
        (status = 404, description = "No such collection in the tenant, or no such point in it", body = Problem)),
    security(("api_key" = [])))]
pub async fn get_point(
    Scoped { state, tenant }: Scoped<AppState>,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<PointQuery>,
) -> Result<Json<PointOut>, ApiError> {
    let meta = collection(&state, &tenant, &name).await?;
    let with_vector = q.with_vector.unwrap_or(false);
    let wanted = id.clone();
    let found = state
        .vectors
        .on(&tenant, &meta, move |e, key| {
            e.get(key, &[wanted], with_vector)
        })
        .await?;
    found
        .into_iter()
        .next()
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found("point", id))
}

/// Delete points by id, or every point whose payload matches a filter (exactly one of the two).
#[utoipa::path(post, path = "/v1/collections/{name}/points/delete", tag = "points", request_body = DeletePoints,
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 200, description = "How many points were deleted", body = Deleted),
        (status = 404, description = "The tenant has no collection of that name", body = Problem),
        (status = 422, description = "Neither or both of ids and filter, too many ids, or a bad filter (each error at its path, `filter.$and[1].price.$gt`)", body = Problem)),
    security(("api_key" = [])))]
pub async fn delete_points(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(name): Path<String>,
    Json(body): Json<DeletePoints>,
) -> Result<Json<Deleted>, ApiError> {
    let meta = collection(&state, &tenant, &name).await?;
    let deletion = body.validate()?;
    let deleted = state
        .vectors
        .write(&tenant, &meta, move |e, key| match &deletion {
            Deletion::Ids(ids) => e.delete_ids(key, ids),
            Deletion::Filter(f) => e.delete_filter(key, f),
        })
        .await?;
    Ok(Json(Deleted { deleted }))
}

/// Count the points, or those whose payload matches a filter.
#[utoipa::path(post, path = "/v1/collections/{name}/points/count", tag = "points", request_body = CountPoints,
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 200, description = "The count", body = Counted),
        (status = 404, description = "The tenant has no collection of that name", body = Problem),
        (status = 422, description = "A bad filter (each error at its path)", body = Problem)),
    security(("api_key" = [])))]
pub async fn count_points(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(name): Path<String>,
    Json(body): Json<CountPoints>,
) -> Result<Json<Counted>, ApiError> {
    let meta = collection(&state, &tenant, &name).await?;
    let mut p = Problems::default();
    let filter = crate::domain::parse_filter(&mut p, "filter", body.filter.as_ref());
    p.finish()?;
    let count = state
        .vectors
        .on(&tenant, &meta, move |e, key| e.count(key, filter.as_ref()))
        .await?;
    Ok(Json(Counted { count }))
}

/// Query of the scroll by GET.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScrollQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Include the vectors (default false).
    #[serde(default, alias = "with_vector")]
    pub with_vector: Option<bool>,
}

/// The points in id order, a page at a time (without a filter; POST takes one).
#[utoipa::path(get, path = "/v1/collections/{name}/points/scroll", tag = "points",
    params(("name" = String, Path, description = "Collection name"), ScrollQuery),
    responses(
        (status = 200, description = "One page of points", body = PointPage),
        (status = 404, description = "The tenant has no collection of that name", body = Problem)),
    security(("api_key" = [])))]
pub async fn scroll_points_get(
    scoped: Scoped<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ScrollQuery>,
) -> Result<Json<PointPage>, ApiError> {
    let body = ScrollPoints {
        cursor: q.cursor,
        limit: q.limit,
        filter: None,
        with_vector: q.with_vector.unwrap_or(false),
    };
    scroll(scoped, name, body).await
}

/// The points in id order, a page at a time, optionally only those whose payload matches.
#[utoipa::path(post, path = "/v1/collections/{name}/points/scroll", tag = "points", request_body = ScrollPoints,
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 200, description = "One page of points", body = PointPage),
        (status = 404, description = "The tenant has no collection of that name", body = Problem),
        (status = 422, description = "A bad filter (each error at its path)", body = Problem)),
    security(("api_key" = [])))]
pub async fn scroll_points(
    scoped: Scoped<AppState>,
    Path(name): Path<String>,
    Json(body): Json<ScrollPoints>,
) -> Result<Json<PointPage>, ApiError> {
    scroll(scoped, name, body).await
}

async fn scroll(
    Scoped { state, tenant }: Scoped<AppState>,
    name: String,
    body: ScrollPoints,
) -> Result<Json<PointPage>, ApiError> {
    let (limit, after) = pagination::page::<String>(body.limit, body.cursor.as_deref())?;
    let mut p = Problems::default();
    let filter = crate::domain::parse_filter(&mut p, "filter", body.filter.as_ref());
    p.finish()?;
    let meta = collection(&state, &tenant, &name).await?;
    let with_vector = body.with_vector;
    let (records, next) = state
        .vectors
        .on(&tenant, &meta, move |e, key| {
            e.scroll(
                key,
                after.as_deref(),
                limit as usize,
                filter.as_ref(),
                with_vector,
            )
        })
        .await?;
    Ok(Json(PointPage {
        items: records.into_iter().map(PointOut::from).collect(),
        next_cursor: next.map(|c| pagination::encode_cursor(&c)),
    }))
}

/// The nearest points to a vector, closest first, optionally only those whose payload matches
/// a filter. `plan` says how the engine answered (the index, the index with the filter, or an
/// exact scan).
#[utoipa::path(post, path = "/v1/collections/{name}/query", tag = "query", request_body = QueryIn,
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 200, description = "The results", body = QueryResult),
        (status = 404, description = "The tenant has no collection of that name", body = Problem),
        (status = 422, description = "A bad vector, limit, ef or filter (each error at its path)", body = Problem)),
    security(("api_key" = [])))]
pub async fn query(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(name): Path<String>,
    Json(body): Json<QueryIn>,
) -> Result<Json<QueryResult>, ApiError> {
    let meta = collection(&state, &tenant, &name).await?;
    let mut p = Problems::default();
    let q = body.validate(&mut p, "", meta.spec.dimension);
    p.finish()?;
    let q = q.ok_or_else(Problems::lost)?;
    let (hits, plan) = state
        .vectors
        .on(&tenant, &meta, move |e, key| e.query(key, &q))
        .await?;
    Ok(Json(answer(&state, hits, plan)))
}

fn answer(
    state: &AppState,
    hits: Vec<crate::engine::Hit>,
    plan: crate::engine::Plan,
) -> QueryResult {
    let plan = PlanOut::from(plan);
    state.vectors.metrics.query(plan.label());
    QueryResult {
        results: hits.into_iter().map(Into::into).collect(),
        plan,
    }
}

/// Up to 64 queries on one collection, answered in order.
#[utoipa::path(post, path = "/v1/collections/{name}/query/batch", tag = "query", request_body = QueryBatch,
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 200, description = "One result per query, in order", body = QueryBatchResult),
        (status = 404, description = "The tenant has no collection of that name", body = Problem),
        (status = 422, description = "No or more than 64 queries, or a bad query (`queries[2].filter…`)", body = Problem)),
    security(("api_key" = [])))]
pub async fn query_batch(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(name): Path<String>,
    Json(body): Json<QueryBatch>,
) -> Result<Json<QueryBatchResult>, ApiError> {
    let meta = collection(&state, &tenant, &name).await?;
    if body.queries.is_empty() || body.queries.len() > MAX_QUERIES {
        return Err(ApiError::invalid(
            "queries",
            format!("must hold 1 to {MAX_QUERIES} queries"),
        ));
    }
    let mut p = Problems::default();
    let queries: Vec<_> = body
        .queries
        .into_iter()
        .enumerate()
        .map(|(i, q)| q.validate(&mut p, &format!("queries[{i}]."), meta.spec.dimension))
        .collect();
    p.finish()?;
    let queries: Vec<_> = queries
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(Problems::lost)?;
    let answers = state
        .vectors
        .on(&tenant, &meta, move |e, key| {
            queries
                .iter()
                .map(|q| e.query(key, q))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(Json(QueryBatchResult {
        results: answers
            .into_iter()
            .map(|(hits, plan)| answer(&state, hits, plan))
            .collect(),
    }))
}

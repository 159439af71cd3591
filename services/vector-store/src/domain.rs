//! The API's bodies and their rules: what a client sends (validated into the engine's types,
//! every offending field named in one 422) and what it is answered.
//!
//! JSON fields are camelCase like the platform's other services; request fields also accept
//! their snake_case spelling (`with_payload`, `ef_construction`, `indexed_fields`).

use chrono::{DateTime, Utc};
use prismicx_service_common::error::Problems;
use prismicx_service_common::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::engine::{
    CollectionSpec, CollectionStats, Filter, IndexParams, IndexState, Metric, Plan, Point, Query,
    Usage, MAX_LIMIT,
};

/// Longest collection name.
pub const MAX_NAME_LEN: usize = 64;
/// Largest dimension of a collection.
pub const MAX_DIMENSION: usize = 4096;
/// Most indexed payload fields of a collection.
pub const MAX_INDEXED_FIELDS: usize = 16;
/// Longest indexed field path.
pub const MAX_FIELD_LEN: usize = 128;
/// Most points in one upsert, ids in one delete.
pub const MAX_BATCH: usize = 1000;
/// Most queries in one batch.
pub const MAX_QUERIES: usize = 64;
/// Longest point id, in bytes of UTF-8 (the engine's limit).
pub const MAX_ID_LEN: usize = 256;
/// Bounds of the HNSW parameters.
pub const M_RANGE: (usize, usize) = (4, 64);
pub const EF_CONSTRUCTION_RANGE: (usize, usize) = (8, 1024);
pub const EF_SEARCH_RANGE: (usize, usize) = (1, 4096);

fn in_range(v: usize, (lo, hi): (usize, usize)) -> Result<usize, String> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be between {lo} and {hi}"))
    }
}

/// Checks a collection name: 1 to 64 characters of `a-z 0-9 _ -`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let rule = "must be 1 to 64 characters of a-z, 0-9, _ and -, starting with a letter";
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(rule.into())
    }
}

/// How two vectors are compared (the engine's [`Metric`], as the API document names it).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricName {
    /// Cosine similarity (higher is closer).
    Cosine,
    /// Euclidean distance (lower is closer).
    L2,
    /// Inner product (higher is closer).
    Dot,
}

/// Whether a collection's index is in memory (`resident`) or only on disk (`ondisk`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IndexStateName {
    Resident,
    OnDisk,
}

/// HNSW parameters as sent; an absent one takes the default.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexParamsIn {
    /// Graph degree, 4 to 64 (default 16).
    pub m: Option<usize>,
    /// Build breadth, 8 to 1024 (default 200).
    #[serde(alias = "ef_construction")]
    pub ef_construction: Option<usize>,
    /// Default query breadth, 1 to 4096 (default 64).
    #[serde(alias = "ef_search")]
    pub ef_search: Option<usize>,
}

/// A new collection.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateCollection {
    /// Unique in the tenant: 1 to 64 characters of `a-z 0-9 _ -`, starting with a letter.
    pub name: String,
    /// Length of every vector, 1 to 4096.
    pub dimension: usize,
    #[schema(value_type = MetricName)]
    pub metric: Metric,
    #[serde(default)]
    pub index: Option<IndexParamsIn>,
    /// Payload fields with an index (at most 16); dotted paths reach into objects.
    #[serde(default, alias = "indexed_fields")]
    pub indexed_fields: Option<Vec<String>>,
}

impl CreateCollection {
    /// The name and the engine's spec, or a 422 naming every bad field.
    pub fn validate(self) -> Result<(String, CollectionSpec), ApiError> {
        let mut p = Problems::default();
        p.check("name", check_name(&self.name));
        p.check("dimension", in_range(self.dimension, (1, MAX_DIMENSION)));
        let sent = self.index.unwrap_or_default();
        let d = IndexParams::default();
        let index = IndexParams {
            m: p.check("index.m", in_range(sent.m.unwrap_or(d.m), M_RANGE))
                .unwrap_or(d.m),
            ef_construction: p
                .check(
                    "index.efConstruction",
                    in_range(
                        sent.ef_construction.unwrap_or(d.ef_construction),
                        EF_CONSTRUCTION_RANGE,
                    ),
                )
                .unwrap_or(d.ef_construction),
            ef_search: p
                .check(
                    "index.efSearch",
                    in_range(sent.ef_search.unwrap_or(d.ef_search), EF_SEARCH_RANGE),
                )
                .unwrap_or(d.ef_search),
        };
        let fields = self.indexed_fields.unwrap_or_default();
        if fields.len() > MAX_INDEXED_FIELDS {
            p.push(
                "indexedFields",
                format!("at most {MAX_INDEXED_FIELDS} fields"),
            );
        }
        for (i, f) in fields.iter().enumerate() {
            let field = format!("indexedFields[{i}]");
            p.check(&field, check_field_path(f));
            if fields[..i].contains(f) {
                p.push(field, "is named twice");
            }
        }
        p.finish()?;
        Ok((
            self.name,
            CollectionSpec {
                dimension: self.dimension,
                metric: self.metric,
                index,
                indexed_fields: fields,
            },
        ))
    }
}

/// An indexed field path: dot-separated non-empty segments, none starting with `$`.
fn check_field_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > MAX_FIELD_LEN {
        return Err(format!("must be 1 to {MAX_FIELD_LEN} characters"));
    }
    if path
        .split('.')
        .any(|s| s.is_empty() || s.starts_with('$') || s.contains('\0'))
    {
        return Err("must be dot-separated names, none empty or starting with $".into());
    }
    Ok(())
}

/// HNSW parameters of a collection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndexParamsOut {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl From<IndexParams> for IndexParamsOut {
    fn from(p: IndexParams) -> Self {
        IndexParamsOut {
            m: p.m,
            ef_construction: p.ef_construction,
            ef_search: p.ef_search,
        }
    }
}

/// A collection as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub dimension: usize,
    #[schema(value_type = MetricName)]
    pub metric: Metric,
    pub index: IndexParamsOut,
    pub indexed_fields: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A collection's size.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub points: u64,
    pub bytes_on_disk: u64,
    pub bytes_in_memory: u64,
    #[schema(value_type = IndexStateName)]
    pub index_state: IndexState,
    /// Deleted points whose space compaction has not reclaimed yet.
    pub deleted_pending: u64,
}

impl From<CollectionStats> for Stats {
    fn from(s: CollectionStats) -> Self {
        Stats {
            points: s.points,
            bytes_on_disk: s.bytes_on_disk,
            bytes_in_memory: s.bytes_in_memory,
            index_state: s.index_state,
            deleted_pending: s.deleted_pending,
        }
    }
}

/// What the tenant uses across its collections.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageOut {
    pub collections: u64,
    pub points: u64,
    pub bytes: u64,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        UsageOut {
            collections: u.collections,
            points: u.points,
            bytes: u.bytes,
        }
    }
}

/// The tenant's limits (absent: unlimited).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaOut {
    pub max_collections: Option<u64>,
    pub max_points: Option<u64>,
    pub max_bytes: Option<u64>,
}

/// A collection with its size and the tenant's usage and quota.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionDetail {
    #[serde(flatten)]
    pub collection: Collection,
    pub stats: Stats,
    pub usage: UsageOut,
    pub quota: QuotaOut,
}

/// A point to write.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointIn {
    /// Unique in the collection: any string of 1 to 256 bytes of UTF-8 (a UUID's text, say).
    pub id: String,
    pub vector: Vec<f64>,
    /// A JSON object (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
}

/// An upsert: points inserted or replaced by id, all or nothing.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertPoints {
    /// 1 to 1000 points.
    pub points: Vec<PointIn>,
}

/// Checks a point id.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        Err(format!("must be 1 to {MAX_ID_LEN} bytes of UTF-8"))
    } else {
        Ok(())
    }
}

/// `vector` as the engine's `f32`s if it has `dimension` finite values, else why not.
pub fn check_vector(vector: &[f64], dimension: usize) -> Result<Vec<f32>, String> {
    if vector.len() != dimension {
        return Err(format!(
            "has dimension {}, the collection's is {dimension}",
            vector.len()
        ));
    }
    let out: Vec<f32> = vector.iter().map(|&v| v as f32).collect();
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "holds a value that is not a finite 32-bit float at index {i}"
        ));
    }
    Ok(out)
}

impl UpsertPoints {
    /// The engine's points, or a 422 naming every bad one (`points[3].vector`).
    pub fn validate(self, dimension: usize) -> Result<Vec<Point>, ApiError> {
        let mut p = Problems::default();
        if self.points.is_empty() || self.points.len() > MAX_BATCH {
            p.push("points", format!("must hold 1 to {MAX_BATCH} points"));
            return Err(ApiError::Validation(p.0));
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(self.points.len());
        for (i, point) in self.points.into_iter().enumerate() {
            let at = |f: &str| format!("points[{i}].{f}");
            if p.check(&at("id"), check_id(&point.id)).is_some() && !seen.insert(point.id.clone()) {
                p.push(at("id"), "is sent twice in this batch");
            }
            let vector = p.check(&at("vector"), check_vector(&point.vector, dimension));
            let payload = match point.payload {
                None => Some(Value::Object(Default::default())),
                Some(v @ Value::Object(_)) => Some(v),
                Some(_) => {
                    p.push(at("payload"), "must be a JSON object");
                    None
                }
            };
            if let (Some(vector), Some(payload)) = (vector, payload) {
                out.push(Point {
                    id: point.id,
                    vector,
                    payload,
                });
            }
        }
        p.finish()?;
        Ok(out)
    }
}

/// The answer of an upsert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Upserted {
    pub upserted: u64,
}

/// A stored point.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PointOut {
    pub id: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

impl From<crate::engine::Record> for PointOut {
    fn from(r: crate::engine::Record) -> Self {
        PointOut {
            id: r.id,
            payload: r.payload,
            vector: r.vector,
        }
    }
}

/// Parses an optional filter sent at `root` (`filter`, `queries[2].filter`).
pub fn parse_filter(p: &mut Problems, root: &str, filter: Option<&Value>) -> Option<Filter> {
    let f = filter?;
    match Filter::parse(root, f) {
        Ok(f) => Some(f),
        Err(errors) => {
            for e in errors {
                p.push(e.field, e.message);
            }
            None
        }
    }
}

/// Which points to delete: exactly one of `ids` and `filter`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletePoints {
    /// 1 to 1000 ids.
    pub ids: Option<Vec<String>>,
    /// Every point whose payload matches.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

/// A validated delete.
#[derive(Debug)]
pub enum Deletion {
    Ids(Vec<String>),
    Filter(Filter),
}

impl DeletePoints {
    pub fn validate(self) -> Result<Deletion, ApiError> {
        let mut p = Problems::default();
        let deletion = match (self.ids, self.filter) {
            (Some(ids), None) => {
                if ids.is_empty() || ids.len() > MAX_BATCH {
                    p.push("ids", format!("must hold 1 to {MAX_BATCH} ids"));
                }
                for (i, id) in ids.iter().enumerate() {
                    p.check(&format!("ids[{i}]"), check_id(id));
                }
                Some(Deletion::Ids(ids))
            }
            (None, Some(f)) => parse_filter(&mut p, "filter", Some(&f)).map(Deletion::Filter),
            _ => {
                p.push("ids", "send exactly one of ids and filter");
                None
            }
        };
        p.finish()?;
        deletion.ok_or_else(Problems::lost)
    }
}

/// The answer of a delete.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    pub deleted: u64,
}

/// A count, of every point or of those whose payload matches `filter`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountPoints {
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

/// The answer of a count.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Counted {
    pub count: u64,
}

/// A page of points in id order.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScrollPoints {
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    #[serde(default, alias = "with_vector")]
    pub with_vector: bool,
}

/// One page of points.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointPage {
    pub items: Vec<PointOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueryIn {
    /// The query vector, of the collection's dimension.
    pub vector: Vec<f64>,
    /// How many results, 1 to 1000 (default 10).
    pub limit: Option<usize>,
    /// Only points whose payload matches.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Return each result's payload (default true).
    #[serde(default, alias = "with_payload")]
    pub with_payload: Option<bool>,
    /// Return each result's vector (default false).
    #[serde(default, alias = "with_vector")]
    pub with_vector: Option<bool>,
    /// Search breadth, 1 to 4096 (default: the collection's `efSearch`).
    pub ef: Option<usize>,
    /// Scan every point instead of the index (exact results).
    #[serde(default)]
    pub exact: Option<bool>,
}

impl QueryIn {
    /// The engine's query; each problem is recorded under `root` (`""` or `queries[2].`).
    pub fn validate(self, p: &mut Problems, root: &str, dimension: usize) -> Option<Query> {
        let at = |f: &str| format!("{root}{f}");
        let vector = p.check(&at("vector"), check_vector(&self.vector, dimension));
        let limit = p.check(
            &at("limit"),
            in_range(self.limit.unwrap_or(10), (1, MAX_LIMIT)),
        );
        let ef = self
            .ef
            .map(|ef| p.check(&at("ef"), in_range(ef, EF_SEARCH_RANGE)));
        let filter = parse_filter(p, &at("filter"), self.filter.as_ref());
        if self.filter.is_some() && filter.is_none() {
            return None;
        }
        Some(Query {
            vector: vector?,
            limit: limit?,
            ef: ef.map_or(Some(None), |e| e.map(Some))?,
            filter,
            with_payload: self.with_payload.unwrap_or(true),
            with_vector: self.with_vector.unwrap_or(false),
            exact: self.exact.unwrap_or(false),
        })
    }
}

/// Several queries on one collection.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBatch {
    /// 1 to 64 queries.
    pub queries: Vec<QueryIn>,
}

/// How a query was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanOut {
    /// The HNSW index.
    Index,
    /// The index, with the filter applied during the search.
    FilteredIndex,
    /// A scan of every (matching) point.
    ExactScan,
}

impl From<Plan> for PlanOut {
    fn from(p: Plan) -> Self {
        match p {
            Plan::Index => PlanOut::Index,
            Plan::FilteredIndex => PlanOut::FilteredIndex,
            Plan::ExactScan => PlanOut::ExactScan,
        }
    }
}

impl PlanOut {
    pub fn label(self) -> &'static str {
        match self {
            PlanOut::Index => "index",
            PlanOut::FilteredIndex => "filtered_index",
            PlanOut::ExactScan => "exact_scan",
        }
    }
}

/// One result, closest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HitOut {
    pub id: String,
    /// Cosine similarity or inner product (higher is closer), or Euclidean distance (lower is
    /// closer), as the collection's metric says.
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

impl From<crate::engine::Hit> for HitOut {
    fn from(h: crate::engine::Hit) -> Self {
        HitOut {
            id: h.id,
            score: h.score,
            payload: h.payload,
            vector: h.vector,
        }
    }
}

/// The answer of a query.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryResult {
    pub results: Vec<HitOut>,
    pub plan: PlanOut,
}

/// The answer of a batch: one result per query, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryBatchResult {
    pub results: Vec<QueryResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: ApiError) -> Vec<String> {
        e.problem().errors.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "docs", "a-1_b", &"a".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "_a", "A", "a b", "ä", &"a".repeat(65), "a.b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_create_names_every_bad_field() {
        let body: CreateCollection = serde_json::from_value(serde_json::json!({
            "name": "Bad", "dimension": 0, "metric": "cosine",
            "index": {"m": 3, "ef_construction": 2000, "efSearch": 0},
            "indexedFields": ["a", "a", "$x"]
        }))
        .unwrap();
        assert_eq!(
            fields(body.validate().unwrap_err()),
            [
                "name",
                "dimension",
                "index.m",
                "index.efConstruction",
                "index.efSearch",
                "indexedFields[1]",
                "indexedFields[2]"
            ]
        );
    }

    #[test]
    fn upserts_name_the_bad_point_and_keep_nothing() {
        let body: UpsertPoints = serde_json::from_value(serde_json::json!({"points": [
            {"id": "a", "vector": [1.0, 2.0]},
            {"id": "b", "vector": [1.0]},
            {"id": "a", "vector": [1.0, 2.0], "payload": 3},
            {"id": "", "vector": [1e300, 0.0]},
        ]}))
        .unwrap();
        assert_eq!(
            fields(body.validate(2).unwrap_err()),
            [
                "points[1].vector",
                "points[2].id",
                "points[2].payload",
                "points[3].id",
                "points[3].vector"
            ]
        );
    }
}

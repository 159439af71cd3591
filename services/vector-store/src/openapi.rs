//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

use crate::routes;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "vector-store-service",
        description = "Collections of embeddings of a PrismicX tenant: create a collection (dimension, \
                       metric, HNSW parameters, indexed payload fields), upsert points (an id, a \
                       vector and a JSON payload) in batches of up to 1000, read, count, scroll and \
                       delete them, and find the nearest points to a vector, optionally filtered by \
                       payload with MongoDB-style operators ($eq $ne $in $nin $gt $gte $lt $lte \
                       $exists $and $or $not). Writes are checked against the tenant's quota; a \
                       refused write changes nothing. Authenticate with `Authorization: Bearer \
                       <key>`: a tenant key acts for its tenant; the platform key names the tenant \
                       in `X-Tenant`. Errors are RFC 9457 problem+json."
    ),
    paths(
        routes::create_collection, routes::list_collections, routes::get_collection,
        routes::delete_collection,
        routes::upsert_points, routes::get_point, routes::delete_points, routes::count_points,
        routes::scroll_points_get, routes::scroll_points,
        routes::query, routes::query_batch,
    ),
    tags(
        (name = "collections", description = "The tenant's collections"),
        (name = "points", description = "Writing and reading points"),
        (name = "query", description = "Nearest-neighbour search"),
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    use crate::domain::*;
    use prismicx_service_common::openapi::ApiDocument;
    use serde_json::json;
    let range = |lo: usize, hi: usize| json!({ "minimum": lo, "maximum": hi });
    // 256 bytes of UTF-8 hold any 64 characters.
    let id = json!({ "minLength": 1, "maxLength": MAX_ID_LEN / 4 });
    let name =
        json!({ "pattern": "^[a-z][a-z0-9_-]{0,63}$", "minLength": 1, "maxLength": MAX_NAME_LEN });
    let name_pointer = |path: &str, method: &str| {
        format!(
            "/paths/{}/{method}/parameters/0/schema",
            path.replace('/', "~1")
        )
    };
    let mut doc = ApiDocument::new(ApiDoc::openapi());
    doc.property(&["CreateCollection"], "name", name.clone())
        .property(&["CreateCollection"], "dimension", range(1, MAX_DIMENSION))
        .property(&["IndexParamsIn"], "m", range(M_RANGE.0, M_RANGE.1))
        .property(
            &["IndexParamsIn"],
            "efConstruction",
            range(EF_CONSTRUCTION_RANGE.0, EF_CONSTRUCTION_RANGE.1),
        )
        .property(
            &["IndexParamsIn"],
            "efSearch",
            range(EF_SEARCH_RANGE.0, EF_SEARCH_RANGE.1),
        )
        .property(
            &["CreateCollection"],
            "indexedFields",
            json!({ "maxItems": MAX_INDEXED_FIELDS, "uniqueItems": true,
                    "items": { "minLength": 1, "maxLength": MAX_FIELD_LEN,
                               "pattern": "^[^$.\\u0000][^.\\u0000]*(\\.[^$.\\u0000][^.\\u0000]*)*$" } }),
        )
        .property(&["PointIn"], "id", id.clone())
        .property(
            &["UpsertPoints"],
            "points",
            json!({ "minItems": 1, "maxItems": MAX_BATCH }),
        )
        .property(
            &["DeletePoints"],
            "ids",
            json!({ "minItems": 1, "maxItems": MAX_BATCH, "items": id }),
        )
        .property(&["QueryIn"], "limit", range(1, crate::engine::MAX_LIMIT))
        .property(&["QueryIn"], "ef", range(EF_SEARCH_RANGE.0, EF_SEARCH_RANGE.1))
        .property(&["ScrollPoints"], "limit", range(1, 200))
        .property(
            &["QueryBatch"],
            "queries",
            json!({ "minItems": 1, "maxItems": MAX_QUERIES }),
        );
    for (path, method) in [
        ("/v1/collections/{name}", "get"),
        ("/v1/collections/{name}", "delete"),
        ("/v1/collections/{name}/points", "put"),
        ("/v1/collections/{name}/points/{id}", "get"),
        ("/v1/collections/{name}/points/delete", "post"),
        ("/v1/collections/{name}/points/count", "post"),
        ("/v1/collections/{name}/points/scroll", "get"),
        ("/v1/collections/{name}/points/scroll", "post"),
        ("/v1/collections/{name}/query", "post"),
        ("/v1/collections/{name}/query/batch", "post"),
    ] {
        doc.constrain(&name_pointer(path, method), name.clone());
    }
    doc.build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_with_bearer_security() {
        let doc = super::document();
        let paths = doc["paths"].as_object().expect("paths");
        for p in [
            "/v1/collections",
            "/v1/collections/{name}",
            "/v1/collections/{name}/points",
            "/v1/collections/{name}/points/{id}",
            "/v1/collections/{name}/points/delete",
            "/v1/collections/{name}/points/count",
            "/v1/collections/{name}/points/scroll",
            "/v1/collections/{name}/query",
            "/v1/collections/{name}/query/batch",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        assert_eq!(
            doc["paths"]["/v1/collections/{name}/query"]["post"]["parameters"][0]["schema"]
                ["pattern"],
            "^[a-z][a-z0-9_-]{0,63}$"
        );
        assert!(doc["components"]["schemas"]["CollectionDetail"].is_object());
    }
}

//! The HTTP layer: discovery, resource URLs, content negotiation (JSON, Table), watches.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

use crate::error::{ApiError, ApiResult};
use crate::patch::PatchKind;
use crate::registry::ResourceDef;
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeKind, DeleteOpts, Store, WriteOpts};
use crate::table::{self, IncludeObject};

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct AppState {
    /// The objects.
    pub store: Arc<Store>,
    /// `host:port` the server answers on (for `/api`'s serverAddressByClientCIDRs).
    pub address: String,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Becomes `true` on shutdown: every watch ends.
    pub shutdown: watch::Receiver<bool>,
    /// Bumped to end every open watch (clients then resume from their last resourceVersion).
    pub close_watches: watch::Sender<u64>,
}

type Params = HashMap<String, String>;

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}

/// The single entry point: every request is routed here.
pub async fn dispatch(
    State(app): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Params = Query::<Params>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let path = uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    tracing::debug!(%method, %uri, "request");
    let result = route(&app, &method, &segs, &params, &headers, body).await;
    match result {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %uri, code = e.code, message = %e.message, "request failed");
            e.into_response()
        }
    }
}

async fn route(
    app: &Arc<AppState>,
    method: &Method,
    segs: &[&str],
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let path = format!("/{}", segs.join("/"));
    match segs {
        ["healthz" | "livez" | "readyz"] => Ok((StatusCode::OK, "ok").into_response()),
        ["version"] => Ok(ok(&json!({
            "major": "1",
            "minor": "35",
            "gitVersion": "v1.35.0+prismicx-local",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "n/a (prismicx-local-apiserver, Rust)",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }))),
        ["api"] => Ok(ok(&json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": app.address}],
        }))),
        ["apis"] => {
            let groups: Vec<Value> = app
                .store
                .registry()
                .groups()
                .into_iter()
                .map(|(g, vs)| group_json(&g, &vs))
                .collect();
            Ok(ok(
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ))
        }
        ["apis", group] => {
            let groups = app.store.registry().groups();
            match groups.get(*group) {
                Some(vs) => {
                    let mut g = group_json(group, vs);
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    Ok(ok(&g))
                }
                None => Err(ApiError::no_route(&path)),
            }
        }
        ["openapi", "v3"] => Ok(ok(&openapi_index(app))),
        ["openapi", "v3", "api", "v1"] => openapi_doc(app, "", "v1").map(|d| ok(&d)),
        ["openapi", "v3", "apis", group, version] => {
            openapi_doc(app, group, version).map(|d| ok(&d))
        }
        ["api", "v1", rest @ ..] => {
            resource(app, method, "", "v1", rest, params, headers, body, &path).await
        }
        ["apis", group, version, rest @ ..] => {
            resource(
                app, method, group, version, rest, params, headers, body, &path,
            )
            .await
        }
        _ => Err(ApiError::no_route(&path)),
    }
}

/// `/openapi/v3`: one document per group version.
fn openapi_index(app: &AppState) -> Value {
    let registry = app.store.registry();
    let mut paths = serde_json::Map::new();
    let mut gvs = vec![(String::new(), "v1".to_string())];
    for (g, vs) in registry.groups() {
        for v in vs {
            gvs.push((g.clone(), v));
        }
    }
    for (g, v) in gvs {
        let key = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        let hash = openapi_doc(app, &g, &v)
            .map(|d| fnv(&d.to_string()))
            .unwrap_or_default();
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash:016X}")}),
        );
    }
    json!({"paths": paths})
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A minimal OpenAPI v3 document of one group version: for each resource, the item path with
/// its verbs (PATCH declares `fieldValidation`, which tells kubectl to validate server-side), and
/// the schemas of custom resources.
fn openapi_doc(app: &AppState, group: &str, version: &str) -> ApiResult<Value> {
    let registry = app.store.registry();
    if !registry.has_group_version(group, version) {
        return Err(ApiError::no_route(&format!(
            "/openapi/v3/{group}/{version}"
        )));
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for def in registry.in_group_version(group, version) {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let item = if def.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", def.plural)
        } else {
            format!("{prefix}/{}/{{name}}", def.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": def.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ]);
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", def.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(
            item,
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        if let Some(schema) = &def.schema {
            let mut s = schema.raw().clone();
            s["x-kubernetes-group-version-kind"] = json!([gvk]);
            let rev_group: Vec<&str> = group.split('.').rev().collect();
            schemas.insert(format!("{}.{version}.{}", rev_group.join("."), def.kind), s);
        }
    }
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (prismicx-local-apiserver)", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

fn manager(params: &Params, headers: &HeaderMap) -> String {
    if let Some(m) = params.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(format!(
            "only JSON (and YAML) bodies are supported, got {ct}"
        )));
    }
    if ct.contains("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid YAML body: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|a| a.split(',').any(|part| part.contains("as=Table")))
}

fn flag(params: &Params, key: &str) -> bool {
    matches!(params.get(key).map(String::as_str), Some("true" | "1"))
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    app: &Arc<AppState>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
    path: &str,
) -> ApiResult<Response> {
    let store = &app.store;
    if rest.is_empty() {
        let registry = store.registry();
        if !registry.has_group_version(group, version) {
            return Err(ApiError::no_route(path));
        }
        let resources: Vec<Value> = registry
            .in_group_version(group, version)
            .iter()
            .flat_map(|d| d.discovery())
            .collect();
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        return Ok(ok(&json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        })));
    }
    let namespaced_target = rest.len() >= 3
        && rest[0] == "namespaces"
        && store
            .def(group, version, rest[2])
            .is_some_and(|d| d.namespaced);
    let (ns, plural, tail) = if namespaced_target {
        (Some(rest[1]), rest[2], &rest[3..])
    } else {
        (None, rest[0], &rest[1..])
    };
    let def = store
        .def(group, version, plural)
        .ok_or_else(|| ApiError::no_route(path))?;
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some(*name), None),
        [name, sub] => (Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route(path)),
    };
    if def.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::no_route(path));
    }
    let status = match sub {
        None => false,
        Some("status") if def.has_status => true,
        Some(_) => return Err(ApiError::no_route(path)),
    };
    let dry_run = params.get("dryRun").is_some_and(|d| d == "All");
    let wopts = WriteOpts {
        dry_run,
        manager: manager(params, headers),
    };
    let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?;
    let fields = FieldSelector::parse(params.get("fieldSelector").map_or("", String::as_str))?;
    let table = wants_table(headers);
    let include = IncludeObject::parse(params.get("includeObject").map(String::as_str));
    let single = |obj: Value| -> Response {
        if table {
            ok(&table::table(&def, &[obj], None, include))
        } else {
            ok(&obj)
        }
    };
    match (method.clone(), name) {
        (Method::GET, None) => {
            if flag(params, "watch") {
                return watch_collection(app, def, ns, labels, fields, params, table, include);
            }
            let (items, rv) = store.list(&def, ns, &labels, &fields);
            if table {
                return Ok(ok(&table::table(&def, &items, Some(rv), include)));
            }
            Ok(ok(&json!({
                "kind": format!("{}List", def.kind),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            })))
        }
        (Method::POST, None) => {
            let body = parse_body(headers, &body)?;
            let created = store.create(&def, ns, body, &wopts)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (Method::DELETE, None) => {
            let opts = delete_opts(params, headers, &body)?;
            let (items, rv) = store.delete_collection(&def, ns, &labels, &fields, &opts)?;
            Ok(ok(&json!({
                "kind": format!("{}List", def.kind),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            })))
        }
        (Method::GET, Some(name)) => {
            let obj = store.get(&def, ns, name)?;
            Ok(single(obj))
        }
        (Method::PUT, Some(name)) => {
            let body = parse_body(headers, &body)?;
            let updated = store.update(&def, ns, name, status, body, &wopts)?;
            Ok(single(updated))
        }
        (Method::PATCH, Some(name)) => {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind = PatchKind::from_content_type(ct)?;
            let existed = kind == PatchKind::Apply && store.get(&def, ns, name).is_ok();
            let patched = store.patch(&def, ns, name, status, kind, &body, &wopts)?;
            if kind == PatchKind::Apply && !existed && !dry_run {
                return Ok(json_response(StatusCode::CREATED, &patched));
            }
            Ok(single(patched))
        }
        (Method::DELETE, Some(name)) => {
            let opts = delete_opts(params, headers, &body)?;
            let deleted = store.delete(&def, ns, name, &opts)?;
            Ok(ok(&deleted))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {path}"
        ))),
    }
}

fn delete_opts(params: &Params, headers: &HeaderMap, body: &[u8]) -> ApiResult<DeleteOpts> {
    let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_body(headers, body)?
    };
    let dry_run = params.get("dryRun").is_some_and(|d| d == "All")
        || parsed["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All"));
    let propagation = params
        .get("propagationPolicy")
        .cloned()
        .or_else(|| parsed["propagationPolicy"].as_str().map(str::to_string))
        .or_else(|| {
            (parsed["orphanDependents"].as_bool() == Some(true)
                || params.get("orphanDependents").is_some_and(|o| o == "true"))
            .then(|| "Orphan".to_string())
        });
    Ok(DeleteOpts {
        dry_run,
        propagation,
        uid: parsed["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: parsed["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    })
}

/// The watch event a change means for one watcher, if any (an object leaving the selector
/// is DELETED for it, one entering it ADDED).
fn event_for(
    change: &Change,
    def: &ResourceDef,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Option<(&'static str, Value)> {
    if change.gr != def.group_resource() {
        return None;
    }
    let in_scope = |o: &Value| {
        ns.is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n))
            && labels.matches(o)
            && fields.matches(o)
    };
    let now_in = in_scope(&change.object);
    let kind = match change.kind {
        ChangeKind::Added => now_in.then_some("ADDED"),
        ChangeKind::Deleted => now_in.then_some("DELETED"),
        ChangeKind::Modified => {
            let was_in = change.old.as_ref().is_none_or(&in_scope);
            match (was_in, now_in) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }?;
    let mut object = change.object.clone();
    object["apiVersion"] = json!(def.api_version());
    object["kind"] = json!(def.kind);
    Some((kind, object))
}

#[allow(clippy::too_many_arguments)]
fn watch_collection(
    app: &Arc<AppState>,
    def: Arc<ResourceDef>,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
    params: &Params,
    table: bool,
    include: IncludeObject,
) -> ApiResult<Response> {
    let send_initial = flag(params, "sendInitialEvents");
    let rv = if send_initial {
        None
    } else {
        params.get("resourceVersion").map(String::as_str)
    };
    let bookmarks = flag(params, "allowWatchBookmarks");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs);
    let ns = ns.map(str::to_string);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let encode = {
        let def = def.clone();
        move |kind: &str, object: Value| -> Bytes {
            let object = if table && kind != "BOOKMARK" && kind != "ERROR" {
                table::table(&def, &[object], None, include)
            } else {
                object
            };
            let mut line = json!({"type": kind, "object": object}).to_string();
            line.push('\n');
            Bytes::from(line)
        }
    };
    let start = match app.store.watch(&def, rv) {
        Ok(s) => s,
        Err(e) if e.code == 410 => {
            // As the real server does: the watch starts and its first event is the error.
            let line = encode("ERROR", e.to_status());
            let body =
                Body::from_stream(futures::stream::once(
                    async move { Ok::<_, Infallible>(line) },
                ));
            return Ok(stream_response(body));
        }
        Err(e) => return Err(e),
    };
    let app = app.clone();
    tokio::spawn(async move {
        let mut shutdown = app.shutdown.clone();
        let mut close = app.close_watches.subscribe();
        let mut live = start.live;
        let ns = ns.as_deref();
        let bookmark = |rv: u64, initial_end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta})
        };
        for change in &start.initial {
            if let Some((kind, obj)) = event_for(change, &def, ns, &labels, &fields) {
                if tx.send(encode(kind, obj)).await.is_err() {
                    return;
                }
            }
        }
        if send_initial && bookmarks {
            let rv = app.store.current_rv();
            let _ = tx.send(encode("BOOKMARK", bookmark(rv, true))).await;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticks = tokio::time::interval(app.bookmark_interval.max(Duration::from_millis(10)));
        ticks.tick().await;
        let mut processed: u64 = 0;
        loop {
            let received = tokio::select! {
                r = live.recv() => Some(r),
                _ = ticks.tick(), if bookmarks => None,
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return,
                _ = shutdown.changed() => return,
                _ = close.changed() => return,
                _ = tx.closed() => return,
            };
            match received {
                Some(Ok(change)) => {
                    processed = processed.max(change.rv);
                    if let Some((kind, obj)) = event_for(&change, &def, ns, &labels, &fields) {
                        if tx.send(encode(kind, obj)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let status = ApiError::gone("the watch fell behind; too old resource version")
                        .to_status();
                    let _ = tx.send(encode("ERROR", status)).await;
                    return;
                }
                Some(Err(broadcast::error::RecvError::Closed)) => return,
                None => {
                    // Everything up to `rv` is in the channel already: drain it, then mark.
                    let rv = app.store.current_rv();
                    loop {
                        match live.try_recv() {
                            Ok(change) => {
                                processed = processed.max(change.rv);
                                if let Some((kind, obj)) =
                                    event_for(&change, &def, ns, &labels, &fields)
                                {
                                    if tx.send(encode(kind, obj)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                let status = ApiError::gone(
                                    "the watch fell behind; too old resource version",
                                )
                                .to_status();
                                let _ = tx.send(encode("ERROR", status)).await;
                                return;
                            }
                            Err(_) => break,
                        }
                    }
                    let rv = rv.max(processed);
                    if tx
                        .send(encode("BOOKMARK", bookmark(rv, false)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok(stream_response(Body::from_stream(stream)))
}

fn stream_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

//! Static bounds on a client's `configSchema`, checked before the `jsonschema` crate sees it, so
//! that compiling it and validating any storable configuration against it takes bounded time
//! and memory.
//!
//! The check reads the schema as a graph: every (sub)schema is a node named by its JSON
//! pointer; *in-place* edges (`allOf`/`anyOf`/`oneOf`/`not`/`if`/`then`/`else`,
//! `dependentSchemas`, `$ref`/`$dynamicRef`/`$recursiveRef`) apply another node to the same
//! configuration value, *child* edges (`properties`, `items`, `additionalProperties`, …) apply
//! it to a member or element. From that it bounds:
//!
//! - size ([`MAX_SCHEMA_BYTES`]), JSON nesting ([`MAX_SCHEMA_DEPTH`]), subschemas
//!   ([`MAX_SUBSCHEMAS`]), references ([`MAX_REFS`]) and patterns ([`MAX_PATTERNS`]);
//! - references: only within the schema (`#`, `#/json/pointer`, `#anchor`, optionally prefixed
//!   by the root `$id`), and `$id` only at the root, so every target is known here;
//! - `$ref` expansion: how many subschemas can apply to one location of a configuration
//!   ([`MAX_EVALUATIONS`]), counted with every reference expanded, down to the deepest
//!   location a configuration may have. This catches fan-out (`allOf` of two references to a
//!   definition that does the same, twenty times over) and recursion that multiplies per level;
//!   a reference cycle that never descends into the configuration is refused outright.
//!
//! The counts over-approximate (a `properties` entry and a `patternProperties` entry are assumed
//! to match the same member), so a refused schema may have been harmless, never the reverse.

use std::collections::{HashMap, VecDeque};

use prismicx_service_common::FieldError;
use serde_json::Value;

use crate::domain::MAX_CONFIG_DEPTH;

/// Largest accepted `configSchema`, as serialized JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Deepest JSON nesting of a `configSchema` (twice the configuration's, which it describes).
pub const MAX_SCHEMA_DEPTH: usize = 2 * MAX_CONFIG_DEPTH;
/// Most (sub)schemas in one `configSchema`.
pub const MAX_SUBSCHEMAS: usize = 2_000;
/// Most `$ref` / `$dynamicRef` / `$recursiveRef` in one `configSchema`.
pub const MAX_REFS: usize = 200;
/// Most regular expressions (`pattern` values and `patternProperties` keys).
pub const MAX_PATTERNS: usize = 128;
/// Most subschemas that may apply to one location of a configuration, references expanded.
pub const MAX_EVALUATIONS: u64 = 1_000;

const FIELD: &str = "configSchema";

fn refuse(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn at(pointer: &str) -> String {
    format!("/{FIELD}{pointer}")
}

/// Checks every bound; the error names `configSchema` (or a pointer into it) and the limit.
pub fn check(schema: &Value) -> Result<(), FieldError> {
    let bytes = serde_json::to_vec(schema).map(|b| b.len()).unwrap_or(0);
    if bytes > MAX_SCHEMA_BYTES {
        return Err(refuse(
            FIELD,
            format!("must be at most {MAX_SCHEMA_BYTES} bytes of JSON"),
        ));
    }
    if crate::domain::depth(schema) > MAX_SCHEMA_DEPTH {
        return Err(refuse(
            FIELD,
            format!("nests deeper than {MAX_SCHEMA_DEPTH} levels"),
        ));
    }
    let index = Index::build(schema)?;
    Graph::build(schema, &index)?.check_evaluations()
}

/// Keywords whose value is one subschema applied in place, or to members / elements.
const IN_PLACE_ONE: &[&str] = &["not", "if", "then", "else"];
const IN_PLACE_LIST: &[&str] = &["allOf", "anyOf", "oneOf"];
const IN_PLACE_MAP: &[&str] = &["dependentSchemas", "dependencies"];
const ANY_MEMBER: &[&str] = &[
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
];
const ANY_ELEMENT: &[&str] = &["additionalItems", "unevaluatedItems", "contains"];
/// Subschemas that are only definitions (walked for anchors and counts, never applied unless
/// referenced).
const DEFINITIONS: &[&str] = &["$defs", "definitions", "contentSchema"];
const REFS: &[&str] = &["$ref", "$dynamicRef", "$recursiveRef"];

/// The schema's (sub)schemas, anchors and root `$id`, from one walk over the schema positions.
struct Index {
    root_id: Option<String>,
    anchors: HashMap<String, String>,
    subschemas: usize,
    refs: usize,
    patterns: usize,
}

impl Index {
    fn build(schema: &Value) -> Result<Self, FieldError> {
        let draft4 = schema
            .get("$schema")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("draft-04"));
        let id_key = if draft4 { "id" } else { "$id" };
        let root_id = schema
            .get(id_key)
            .and_then(Value::as_str)
            .filter(|s| !s.starts_with('#'))
            .map(|s| s.trim_end_matches('#').to_string());
        let mut index = Index {
            root_id,
            anchors: HashMap::new(),
            subschemas: 0,
            refs: 0,
            patterns: 0,
        };
        // Explicit stack: the depth is bounded already, but a walk should not depend on it.
        let mut todo = vec![(String::new(), schema)];
        while let Some((pointer, node)) = todo.pop() {
            index.subschemas += 1;
            if index.subschemas > MAX_SUBSCHEMAS {
                return Err(refuse(
                    FIELD,
                    format!("has more than {MAX_SUBSCHEMAS} subschemas"),
                ));
            }
            let Value::Object(map) = node else { continue };
            if let Some(id) = map.get(id_key).and_then(Value::as_str) {
                if let Some(anchor) = id.strip_prefix('#') {
                    index.anchors.insert(anchor.to_string(), pointer.clone());
                } else if !pointer.is_empty() {
                    return Err(refuse(
                        at(&format!("{pointer}/{id_key}")),
                        "is only allowed at the root of configSchema",
                    ));
                }
            }
            for key in ["$anchor", "$dynamicAnchor"] {
                if let Some(a) = map.get(key).and_then(Value::as_str) {
                    index.anchors.insert(a.to_string(), pointer.clone());
                }
            }
            index.refs += REFS
                .iter()
                .filter(|k| map.get(**k).is_some_and(Value::is_string))
                .count();
            if index.refs > MAX_REFS {
                return Err(refuse(
                    FIELD,
                    format!(
                        "has more than {MAX_REFS} references ($ref, $dynamicRef, $recursiveRef)"
                    ),
                ));
            }
            if map.get("pattern").is_some_and(Value::is_string) {
                index.patterns += 1;
            }
            if let Some(Value::Object(pp)) = map.get("patternProperties") {
                index.patterns += pp.len();
            }
            if index.patterns > MAX_PATTERNS {
                return Err(refuse(
                    FIELD,
                    format!("has more than {MAX_PATTERNS} patterns (pattern, patternProperties)"),
                ));
            }
            for (key, value) in map {
                let here = format!("{pointer}/{}", escape(key));
                let k = key.as_str();
                let one = IN_PLACE_ONE.contains(&k)
                    || ANY_MEMBER.contains(&k)
                    || ANY_ELEMENT.contains(&k)
                    || k == "items";
                let list = IN_PLACE_LIST.contains(&k) || k == "prefixItems" || k == "items";
                let named = IN_PLACE_MAP.contains(&k)
                    || DEFINITIONS.contains(&k)
                    || k == "properties"
                    || k == "patternProperties";
                match value {
                    Value::Object(_) | Value::Bool(_) if one || (k == "contentSchema") => {
                        todo.push((here, value));
                    }
                    Value::Array(items) if list => {
                        for (i, item) in items.iter().enumerate() {
                            if item.is_object() || item.is_boolean() {
                                todo.push((format!("{here}/{i}"), item));
                            }
                        }
                    }
                    Value::Object(entries) if named => {
                        for (name, sub) in entries {
                            if sub.is_object() || sub.is_boolean() {
                                todo.push((format!("{here}/{}", escape(name)), sub));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(index)
    }

    /// The JSON pointer a reference names, if it names something inside `schema`.
    fn resolve(&self, schema: &Value, reference: &str) -> Option<String> {
        let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        if !base.is_empty() && Some(base) != self.root_id.as_deref() {
            return None;
        }
        let pointer = if fragment.is_empty() {
            String::new()
        } else if fragment.starts_with('/') {
            percent_decode(fragment)?
        } else {
            self.anchors.get(fragment)?.clone()
        };
        schema.pointer(&pointer).map(|_| pointer)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A node's edges, as node ids.
#[derive(Default)]
struct Edges {
    in_place: Vec<usize>,
    /// `properties` values: each applies to a different member, so only the largest counts.
    by_name: Vec<usize>,
    /// Applied to any member (`patternProperties`, `additionalProperties`, …): all may add up.
    any_member: Vec<usize>,
    /// `prefixItems` (and array-form `items`): each applies to a different element.
    by_index: Vec<usize>,
    any_element: Vec<usize>,
}

struct Graph {
    edges: Vec<Edges>,
}

/// Numbers the nodes (by JSON pointer) as [`Graph::build`] discovers them.
struct Nodes {
    ids: HashMap<String, usize>,
    edges: Vec<Edges>,
    queue: VecDeque<(usize, String)>,
}

impl Nodes {
    fn id(&mut self, pointer: String) -> usize {
        if let Some(&id) = self.ids.get(&pointer) {
            return id;
        }
        let id = self.edges.len();
        self.ids.insert(pointer.clone(), id);
        self.edges.push(Edges::default());
        self.queue.push_back((id, pointer));
        id
    }
}

fn schema_like(v: &Value) -> bool {
    v.is_object() || v.is_boolean()
}

impl Graph {
    /// Every node reachable from the root through any edge, with references resolved.
    fn build(schema: &Value, index: &Index) -> Result<Self, FieldError> {
        let mut nodes = Nodes {
            ids: HashMap::new(),
            edges: Vec::new(),
            queue: VecDeque::new(),
        };
        nodes.id(String::new());
        while let Some((me, pointer)) = nodes.queue.pop_front() {
            // Nodes are never more than the walked subschemas plus reference targets.
            if nodes.edges.len() > MAX_SUBSCHEMAS + MAX_REFS {
                return Err(refuse(
                    FIELD,
                    format!("has more than {MAX_SUBSCHEMAS} subschemas"),
                ));
            }
            let Some(Value::Object(map)) = schema.pointer(&pointer) else {
                continue;
            };
            let mut e = Edges::default();
            for (key, value) in map {
                let here = format!("{pointer}/{}", escape(key));
                let k = key.as_str();
                if REFS.contains(&k) {
                    let Some(r) = value.as_str() else { continue };
                    let target = if k == "$recursiveRef" {
                        Some(String::new())
                    } else {
                        index.resolve(schema, r)
                    };
                    let Some(t) = target else {
                        return Err(refuse(
                            at(&here),
                            "must refer to a part of this schema that exists \
                             (#, #/json/pointer or #anchor; no other documents)",
                        ));
                    };
                    e.in_place.push(nodes.id(t));
                    continue;
                }
                let single = if IN_PLACE_ONE.contains(&k) {
                    Some(&mut e.in_place)
                } else if ANY_MEMBER.contains(&k) {
                    Some(&mut e.any_member)
                } else if ANY_ELEMENT.contains(&k) || (k == "items" && !value.is_array()) {
                    Some(&mut e.any_element)
                } else {
                    None
                };
                if let Some(list) = single {
                    if schema_like(value) {
                        list.push(nodes.id(here));
                    }
                    continue;
                }
                match value {
                    Value::Array(items) => {
                        let list = if IN_PLACE_LIST.contains(&k) {
                            &mut e.in_place
                        } else if k == "prefixItems" || k == "items" {
                            &mut e.by_index
                        } else {
                            continue;
                        };
                        for (i, item) in items.iter().enumerate() {
                            if schema_like(item) {
                                list.push(nodes.id(format!("{here}/{i}")));
                            }
                        }
                    }
                    Value::Object(entries) => {
                        let list = if IN_PLACE_MAP.contains(&k) {
                            &mut e.in_place
                        } else if k == "properties" {
                            &mut e.by_name
                        } else if k == "patternProperties" {
                            &mut e.any_member
                        } else {
                            continue;
                        };
                        for (name, sub) in entries {
                            if schema_like(sub) {
                                list.push(nodes.id(format!("{here}/{}", escape(name))));
                            }
                        }
                    }
                    _ => {}
                }
            }
            nodes.edges[me] = e;
        }
        Ok(Graph { edges: nodes.edges })
    }

    /// Nodes ordered so that every in-place target comes before the nodes applying it; `None`
    /// when the in-place edges have a cycle (a schema applying itself to the same value).
    fn in_place_order(&self) -> Option<Vec<usize>> {
        let n = self.edges.len();
        // Count, per node, the in-place targets not yet ordered.
        let mut pending: Vec<usize> = self.edges.iter().map(|e| e.in_place.len()).collect();
        let mut appliers: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, e) in self.edges.iter().enumerate() {
            for &t in &e.in_place {
                appliers[t].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop() {
            order.push(i);
            for &a in &appliers[i] {
                pending[a] -= 1;
                if pending[a] == 0 {
                    ready.push(a);
                }
            }
        }
        (order.len() == n).then_some(order)
    }

    /// `count[d][i]`: at most how many subschemas apply to one location `d` levels below a value
    /// that node `i` is applied to, references expanded. Saturates instead of overflowing.
    fn check_evaluations(&self) -> Result<(), FieldError> {
        let Some(order) = self.in_place_order() else {
            return Err(refuse(
                FIELD,
                "has a reference cycle that applies a schema to the same value again \
                 without descending into the configuration (infinite recursion)",
            ));
        };
        let n = self.edges.len();
        let mut previous: Vec<u64> = Vec::new();
        for level in 0..=MAX_CONFIG_DEPTH {
            let mut count = vec![0u64; n];
            for &i in &order {
                let e = &self.edges[i];
                let own = if level == 0 {
                    1
                } else {
                    let max = |l: &[usize]| l.iter().map(|&c| previous[c]).max().unwrap_or(0);
                    let sum = |l: &[usize]| {
                        l.iter()
                            .fold(0u64, |acc, &c| acc.saturating_add(previous[c]))
                    };
                    let members = max(&e.by_name).saturating_add(sum(&e.any_member));
                    let elements = max(&e.by_index).saturating_add(sum(&e.any_element));
                    members.max(elements)
                };
                count[i] = e
                    .in_place
                    .iter()
                    .fold(own, |acc, &t| acc.saturating_add(count[t]));
            }
            if count[0] > MAX_EVALUATIONS {
                return Err(refuse(
                    FIELD,
                    format!(
                        "expands to more than {MAX_EVALUATIONS} subschemas applied to one \
                         location of a configuration (at depth {level}); reduce $ref fan-out, \
                         recursion or composition"
                    ),
                ));
            }
            previous = count;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(schema: &Value) -> String {
        let e = check(schema).expect_err("refused");
        format!("{}: {}", e.field, e.message)
    }

    /// `a0` … `a{n}`, each `allOf` two references to the previous one.
    fn fan_out(n: usize) -> Value {
        let mut defs = serde_json::Map::new();
        defs.insert("a0".into(), json!({"type": "integer"}));
        for i in 1..=n {
            let prev = format!("#/$defs/a{}", i - 1);
            defs.insert(
                format!("a{i}"),
                json!({"allOf": [{"$ref": prev}, {"$ref": prev}]}),
            );
        }
        json!({"$defs": defs, "$ref": format!("#/$defs/a{n}")})
    }

    #[test]
    fn ordinary_schemas_pass() {
        for s in [
            json!({}),
            json!({"type": "object", "properties": {"child": {"$ref": "#"}}}),
            json!({"properties": {"left": {"$ref": "#"}, "right": {"$ref": "#"}}}),
            json!({"$defs": {"p": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/p"}, "b": {"$ref": "#/$defs/p"}}}),
            json!({"$id": "https://example.com/s", "$defs": {"p": {"$anchor": "port"}}, "properties": {"a": {"$ref": "#port"}, "b": {"$ref": "https://example.com/s#/$defs/p"}}}),
            json!({"$schema": "http://json-schema.org/draft-04/schema#", "definitions": {"x": {"id": "#x"}}, "items": {"$ref": "#x"}, "default": {"id": "main"}}),
            json!({"properties": {"id": {"type": "string"}, "$ref": {"type": "string"}}}),
            json!({"$defs": {"a~b/c": {}}, "$ref": "#/$defs/a~0b~1c"}),
            json!({"$defs": {"a b": {}}, "$ref": "#/$defs/a%20b"}),
            fan_out(7),
        ] {
            assert!(check(&s).is_ok(), "{s}: {:?}", check(&s).err());
        }
    }

    #[test]
    fn fan_out_is_refused() {
        assert!(message(&fan_out(8)).contains("more than 1000 subschemas applied"));
        assert!(message(&fan_out(60)).contains("more than 1000"));
    }

    #[test]
    fn recursion_that_multiplies_per_level_is_refused() {
        let s = json!({"$defs": {"a": {"properties": {"x": {"allOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/a"}]}}}}, "$ref": "#/$defs/a"});
        assert!(message(&s).contains("applied to one location"));
        let s =
            json!({"properties": {"x": {"$ref": "#"}}, "patternProperties": {"^x": {"$ref": "#"}}});
        assert!(message(&s).contains("applied to one location"));
    }

    #[test]
    fn in_place_cycles_are_refused() {
        for s in [
            json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
            json!({"anyOf": [{"$ref": "#"}]}),
            json!({"$defs": {"a": {"not": {"$ref": "#/$defs/b"}}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}),
        ] {
            assert!(message(&s).contains("infinite recursion"), "{s}");
        }
    }

    #[test]
    fn references_must_stay_inside_and_exist() {
        for (s, field) in [
            (json!({"$ref": "#/$defs/missing"}), "/configSchema/$ref"),
            (
                json!({"properties": {"a": {"$ref": "other.json"}}}),
                "/configSchema/properties/a/$ref",
            ),
            (json!({"$ref": "#nowhere"}), "/configSchema/$ref"),
            (
                json!({"$defs": {"x": {"$id": "https://example.com/x"}}}),
                "/configSchema/$defs/x/$id",
            ),
        ] {
            assert_eq!(check(&s).expect_err("refused").field, field, "{s}");
        }
    }

    #[test]
    fn counts_and_sizes_are_bounded() {
        let mut deep = json!({});
        for _ in 0..MAX_SCHEMA_DEPTH {
            deep = json!({ "not": deep });
        }
        assert!(message(&deep).contains("deeper than"));
        let many: serde_json::Map<String, Value> = (0..MAX_SUBSCHEMAS)
            .map(|i| (format!("p{i}"), json!({})))
            .collect();
        assert!(message(&json!({"properties": many})).contains("subschemas"));
        let refs: Vec<Value> = (0..=MAX_REFS)
            .map(|_| json!({"$ref": "#/$defs/a"}))
            .collect();
        assert!(message(&json!({"$defs": {"a": {}}, "items": refs})).contains("references"));
        let patterns: serde_json::Map<String, Value> = (0..=MAX_PATTERNS)
            .map(|i| (format!("^p{i}"), json!({})))
            .collect();
        assert!(message(&json!({"patternProperties": patterns})).contains("patterns"));
        let big = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(message(&big).contains("bytes"));
    }
}

//! The payload filter language: a small set of MongoDB query operators over a point's JSON
//! payload (`$eq $ne $in $nin $gt $gte $lt $lte $exists $and $or $not`).
//!
//! Data flow: a request's filter document goes through [`Filter::parse`] once, which validates
//! it (collecting every problem as a [`FilterError`] with the path of the offending part under
//! the request field, e.g. `filter.$and[1].price.$gt`) and turns it into a tree of nodes
//! whose field paths are already split into segments and whose literals are already typed (an
//! `$in` list is sorted once for binary search). The engine then calls [`Filter::matches`] for
//! every point it considers; matching walks the tree and looks values up in the payload in
//! place: it allocates nothing and never converts the payload. When a collection has indexed
//! fields, the engine first asks [`Filter::candidates`] for the ids that may match (see
//! `payload_index.rs`).
//!
//! # The language
//!
//! A filter is a JSON object. Each key is one condition and all of them must hold:
//! - `"field": value` is `{"field": {"$eq": value}}`;
//! - `"field": {"$op": operand, ...}` applies operators to the field (all must hold):
//!   `$eq`, `$ne` (any JSON value), `$gt`, `$gte`, `$lt`, `$lte` (a number or a string),
//!   `$in`, `$nin` (an array of JSON values), `$exists` (a boolean), `$not` (an object of
//!   field operators, itself non-empty);
//! - `"$and": [filter, ...]`, `"$or": [filter, ...]` (non-empty arrays of filters) and
//!   `"$not": filter` combine filters, at the top level and nested in one another.
//!
//! `{}` matches every payload. A field's value that is an object without any `$` key is a
//! literal (`{"meta": {"a": 1}}` is equality with that object); an object mixing `$` keys and
//! other keys is refused.
//!
//! # Field paths
//!
//! `a.b.c` walks nested objects. As in MongoDB, an array met along the path is walked
//! element-wise: `items.sku` reaches the `sku` of every object in the array `items` (elements
//! that are not objects contribute nothing), and a segment that is a decimal number also
//! reaches that element of an array (`items.0.sku`). A path can thus reach several values; a
//! path that reaches none is *missing*. A path segment may not be empty or start with `$`. A
//! payload that is not an object has no fields (every path is missing).
//!
//! # Semantics (a field's reached values, each possibly an array)
//!
//! - `$eq v`: some reached value equals `v`, or is an array with an element equal to `v`.
//!   Equality is deep for arrays and objects (key order is irrelevant); numbers compare by
//!   value, so `1`, `1.0` and `1e0` are equal; integers compare exactly as integers (so
//!   `9007199254740993` differs from `9007199254740992` although both are the same `f64`),
//!   and an integer compares with a float exactly (no rounding of either). Strings compare
//!   by bytes, booleans only with booleans, null only with null.
//! - `$eq null` also matches a missing field (MongoDB). A path that reaches some values but
//!   not through every array element (`a.b` over `[{"b": 1}, {}]`) is *not* missing: it
//!   matches `$eq null` only if some reached value is null. (MongoDB would match it.)
//! - `$in [..]`: `$eq` holds for one of the values (so `null` in the list matches missing).
//! - `$ne v` is exactly `not $eq v`, `$nin [..]` exactly `not $in [..]`; both therefore
//!   match a missing field, and an array field only when no element matches.
//! - `$gt $gte $lt $lte`: some reached value, or some element of a reached array, is of the
//!   operand's kind (number with number, string with string) and compares as asked. Values
//!   of another kind never match, in either direction (`{"$lt": 5}` does not match `"a"`,
//!   nor null, nor a missing field). Nested arrays are not searched.
//! - `$exists true`: the path reaches at least one value (null counts as a value);
//!   `$exists false`: it reaches none.
//! - `$not {ops}` on a field: the operators do not all hold (so it matches missing fields,
//!   as in MongoDB); `$not filter` at the filter level: the filter does not match.
//!
//! # Limits (each breach is a [`FilterError`])
//!
//! - depth: the filter document nests at most [`MAX_DEPTH`] JSON containers (the filter's own
//!   object is level 1; `{"$and": [{"a": {"$in": [1]}}]}` reaches level 5), literals included;
//! - nodes: at most [`MAX_NODES`] conditions, counting one per logical operator (`$and`,
//!   `$or`, `$not`), one per field operator and one per implicit equality; the error is
//!   reported once, on the root;
//! - `$in` / `$nin`: at most [`MAX_IN_VALUES`] values;
//! - field paths: at most [`MAX_PATH_BYTES`] bytes;
//! - strings anywhere in literals: at most [`MAX_STRING_BYTES`] bytes.
//!
//! JSON has no NaN nor infinities, so every number in a filter or a payload is finite.

use std::cmp::Ordering;

use serde::Serialize;
use serde_json::{Map, Number, Value};

/// The deepest JSON nesting of a filter document (its own object is level 1).
pub const MAX_DEPTH: usize = 16;
/// The most conditions a filter may hold.
pub const MAX_NODES: usize = 256;
/// The most values of one `$in` / `$nin`.
pub const MAX_IN_VALUES: usize = 1024;
/// The longest field path, in bytes.
pub const MAX_PATH_BYTES: usize = 256;
/// The longest string literal, in bytes.
pub const MAX_STRING_BYTES: usize = 4096;

/// A parsed, validated filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub(super) root: Node,
}

/// Why a filter was refused: the path of the offending part (`filter.$and[1].price.$gt`) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterError {
    pub field: String,
    pub message: String,
}

/// One filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// Every child matches (`[]`: always).
    And(Vec<Node>),
    /// Some child matches.
    Or(Vec<Node>),
    Not(Box<Node>),
    Field {
        path: FieldPath,
        condition: Condition,
    },
}

/// A field path, split once at parse time.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FieldPath {
    /// The path as written (`a.b.c`); the payload index is keyed by it.
    pub(super) text: String,
    pub(super) segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Segment {
    name: String,
    /// `Some(n)` when the segment is a decimal number: it also reaches element `n` of an array.
    index: Option<usize>,
}

/// What must hold of one field.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Condition {
    Eq(Literal),
    Ne(Literal),
    In(LiteralSet),
    Nin(LiteralSet),
    Range(RangeOp, Bound),
    Exists(bool),
    /// The inner condition does not hold.
    Not(Box<Condition>),
    /// Every inner condition holds (several operators on one field).
    All(Vec<Condition>),
}

/// A filter's value, typed once.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    Null,
    Bool(bool),
    Number(Num),
    String(String),
    /// An array or an object: deep equality.
    Composite(Value),
}

/// A JSON number, exact: integers (`i64` or `u64`) as `i128`, the others as `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    Int(i128),
    Float(f64),
}

/// The values of an `$in` / `$nin`, arranged for lookups without allocation.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct LiteralSet {
    pub(super) null: bool,
    pub(super) bools: [bool; 2],
    /// Sorted by [`compare_numbers`], without duplicates.
    pub(super) numbers: Vec<Num>,
    /// Sorted by bytes, without duplicates.
    pub(super) strings: Vec<String>,
    pub(super) composites: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// The operand of a range operator.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bound {
    Number(Num),
    String(String),
}

impl Filter {
    /// Parses and validates a filter; every problem found is reported, in path order, each with its path under
    /// `root` (the request field the filter came in, e.g. `filter`).
    pub fn parse(root: &str, value: &Value) -> Result<Filter, Vec<FilterError>> {
        let mut parser = Parser::default();
        let node = parser.filter(root, value, 1);
        if parser.nodes > MAX_NODES {
            parser.errors.insert(
                0,
                FilterError {
                    field: root.to_owned(),
                    message: format!(
                        "the filter has {} conditions, at most {MAX_NODES} are allowed",
                        parser.nodes
                    ),
                },
            );
        }
        if parser.errors.is_empty() {
            Ok(Filter { root: node })
        } else {
            // In path order: a JSON object's key order depends on serde_json's features, and a
            // client should get the same answer from every build.
            parser.errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(parser.errors)
        }
    }

    /// A filter that matches every payload (the empty filter `{}`).
    pub fn match_all() -> Filter {
        Filter {
            root: Node::And(Vec::new()),
        }
    }

    /// Whether a payload matches.
    pub fn matches(&self, payload: &Value) -> bool {
        self.root.matches(payload)
    }
}

impl FieldPath {
    /// Splits a (valid) dotted path into its segments.
    pub(super) fn new(text: &str) -> FieldPath {
        let segments = text
            .split('.')
            .map(|name| Segment {
                name: name.to_owned(),
                index: if name.bytes().all(|b| b.is_ascii_digit()) {
                    name.parse().ok()
                } else {
                    None
                },
            })
            .collect();
        FieldPath {
            text: text.to_owned(),
            segments,
        }
    }
}

impl Node {
    fn matches(&self, payload: &Value) -> bool {
        match self {
            Node::And(children) => children.iter().all(|child| child.matches(payload)),
            Node::Or(children) => children.iter().any(|child| child.matches(payload)),
            Node::Not(inner) => !inner.matches(payload),
            Node::Field { path, condition } => condition.holds(payload, &path.segments),
        }
    }
}

impl Condition {
    fn holds(&self, payload: &Value, segments: &[Segment]) -> bool {
        match self {
            Condition::Eq(literal) => equality_holds(payload, segments, literal),
            Condition::Ne(literal) => !equality_holds(payload, segments, literal),
            Condition::In(set) => membership_holds(payload, segments, set),
            Condition::Nin(set) => !membership_holds(payload, segments, set),
            Condition::Range(op, bound) => any_value(payload, segments, &mut |value| {
                value_or_element(value, |candidate| {
                    op.accepts(compare_with_bound(candidate, bound))
                })
            }),
            Condition::Exists(wanted) => any_value(payload, segments, &mut |_| true) == *wanted,
            Condition::Not(inner) => !inner.holds(payload, segments),
            Condition::All(conditions) => conditions
                .iter()
                .all(|condition| condition.holds(payload, segments)),
        }
    }
}

fn equality_holds(payload: &Value, segments: &[Segment], literal: &Literal) -> bool {
    let mut reached = false;
    let found = any_value(payload, segments, &mut |value| {
        reached = true;
        value_or_element(value, |candidate| literal.equals(candidate))
    });
    found || (!reached && *literal == Literal::Null)
}

fn membership_holds(payload: &Value, segments: &[Segment], set: &LiteralSet) -> bool {
    let mut reached = false;
    let found = any_value(payload, segments, &mut |value| {
        reached = true;
        value_or_element(value, |candidate| set.contains(candidate))
    });
    found || (!reached && set.null)
}

/// Whether `test` holds of `value` or, when `value` is an array, of one of its elements.
fn value_or_element(value: &Value, mut test: impl FnMut(&Value) -> bool) -> bool {
    if test(value) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(test),
        _ => false,
    }
}

/// Walks `segments` from a payload (see "Field paths" in the module doc) and tells whether
/// `test` holds of one of the values reached; stops at the first that does. A payload that is
/// not an object holds no field.
pub(super) fn any_value<'v>(
    payload: &'v Value,
    segments: &[Segment],
    test: &mut impl FnMut(&'v Value) -> bool,
) -> bool {
    payload.is_object() && walk(payload, segments, test)
}

fn walk<'v>(
    value: &'v Value,
    segments: &[Segment],
    test: &mut impl FnMut(&'v Value) -> bool,
) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return test(value);
    };
    match value {
        Value::Object(map) => map
            .get(first.name.as_str())
            .is_some_and(|child| walk(child, rest, test)),
        Value::Array(items) => {
            if let Some(item) = first.index.and_then(|index| items.get(index)) {
                if walk(item, rest, test) {
                    return true;
                }
            }
            items
                .iter()
                .any(|item| item.is_object() && walk(item, segments, test))
        }
        _ => false,
    }
}

impl Literal {
    fn from_value(value: &Value) -> Literal {
        match value {
            Value::Null => Literal::Null,
            Value::Bool(b) => Literal::Bool(*b),
            Value::Number(n) => Literal::Number(Num::from_json(n)),
            Value::String(s) => Literal::String(s.clone()),
            Value::Array(_) | Value::Object(_) => Literal::Composite(value.clone()),
        }
    }

    /// Whether a payload value equals this literal.
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Literal::Null, Value::Null) => true,
            (Literal::Bool(a), Value::Bool(b)) => a == b,
            (Literal::Number(a), Value::Number(b)) => {
                compare_numbers(*a, Num::from_json(b)) == Some(Ordering::Equal)
            }
            (Literal::String(a), Value::String(b)) => a == b,
            (Literal::Composite(a), b) => json_equal(a, b),
            _ => false,
        }
    }
}

impl LiteralSet {
    fn insert(&mut self, literal: Literal) {
        match literal {
            Literal::Null => self.null = true,
            Literal::Bool(b) => self.bools[usize::from(b)] = true,
            Literal::Number(n) => self.numbers.push(n),
            Literal::String(s) => self.strings.push(s),
            Literal::Composite(v) => self.composites.push(v),
        }
    }

    fn finish(&mut self) {
        self.numbers
            .sort_by(|a, b| compare_numbers(*a, *b).unwrap_or(Ordering::Equal));
        self.numbers
            .dedup_by(|a, b| compare_numbers(*a, *b) == Some(Ordering::Equal));
        self.strings.sort_unstable();
        self.strings.dedup();
    }

    /// Whether a payload value equals one of the set's values.
    fn contains(&self, value: &Value) -> bool {
        match value {
            Value::Null => self.null,
            Value::Bool(b) => self.bools[usize::from(*b)],
            Value::Number(n) => {
                let n = Num::from_json(n);
                self.numbers
                    .binary_search_by(|probe| compare_numbers(*probe, n).unwrap_or(Ordering::Less))
                    .is_ok()
            }
            Value::String(s) => self
                .strings
                .binary_search_by(|probe| probe.as_str().cmp(s.as_str()))
                .is_ok(),
            Value::Array(_) | Value::Object(_) => self
                .composites
                .iter()
                .any(|composite| json_equal(composite, value)),
        }
    }
}

impl Num {
    pub(super) fn from_json(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    /// The nearest `f64` (exact for floats; monotone for integers).
    pub(super) fn to_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Compares two numbers exactly (`None` only for NaN, which JSON cannot carry).
pub(super) fn compare_numbers(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
        (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
        (Num::Int(a), Num::Float(b)) => compare_int_float(a, b),
        (Num::Float(a), Num::Int(b)) => compare_int_float(b, a).map(Ordering::reverse),
    }
}

/// `int` against `float` without rounding either: compare with the float's integral part
/// (exact: every float beyond 2^53 is an integer, `as` saturates beyond i128), then with its
/// fraction.
fn compare_int_float(int: i128, float: f64) -> Option<Ordering> {
    if float.is_nan() {
        return None;
    }
    let integral = float.trunc();
    match int.cmp(&(integral as i128)) {
        Ordering::Equal => 0.0_f64.partial_cmp(&(float - integral)),
        other => Some(other),
    }
}

fn compare_with_bound(value: &Value, bound: &Bound) -> Option<Ordering> {
    match (value, bound) {
        (Value::Number(n), Bound::Number(b)) => compare_numbers(Num::from_json(n), *b),
        (Value::String(s), Bound::String(b)) => Some(s.as_bytes().cmp(b.as_bytes())),
        _ => None,
    }
}

impl RangeOp {
    /// Whether `value <op> bound` holds, given `value`'s ordering against the bound.
    fn accepts(self, ordering: Option<Ordering>) -> bool {
        match (self, ordering) {
            (_, None) => false,
            (RangeOp::Gt, Some(o)) => o == Ordering::Greater,
            (RangeOp::Gte, Some(o)) => o != Ordering::Less,
            (RangeOp::Lt, Some(o)) => o == Ordering::Less,
            (RangeOp::Lte, Some(o)) => o != Ordering::Greater,
        }
    }
}

/// Deep JSON equality with numbers compared by value (`1 == 1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            compare_numbers(Num::from_json(x), Num::from_json(y)) == Some(Ordering::Equal)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, p)| y.get(key).is_some_and(|q| json_equal(p, q)))
        }
        _ => a == b,
    }
}

/// Turns a filter document into [`Node`]s, collecting every problem.
#[derive(Default)]
struct Parser {
    errors: Vec<FilterError>,
    nodes: usize,
}

impl Parser {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FilterError {
            field: path.to_owned(),
            message: message.into(),
        });
    }

    /// Whether a container at `depth` is within the limit (reports it otherwise).
    fn depth_ok(&mut self, path: &str, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            self.error(
                path,
                format!("the filter nests deeper than {MAX_DEPTH} levels"),
            );
            return false;
        }
        true
    }

    /// A filter object (the root, an element of `$and`/`$or`, the operand of `$not`).
    fn filter(&mut self, path: &str, value: &Value, depth: usize) -> Node {
        let Value::Object(map) = value else {
            self.error(
                path,
                format!("a filter is a JSON object, not {}", kind(value)),
            );
            return Node::And(Vec::new());
        };
        if !self.depth_ok(path, depth) {
            return Node::And(Vec::new());
        }
        let mut conditions = Vec::with_capacity(map.len());
        for (key, operand) in map {
            let key_path = format!("{path}.{key}");
            match key.as_str() {
                "$and" | "$or" => {
                    self.nodes += 1;
                    let children = self.filter_list(&key_path, key, operand, depth + 1);
                    conditions.push(if key == "$and" {
                        Node::And(children)
                    } else {
                        Node::Or(children)
                    });
                }
                "$not" => {
                    self.nodes += 1;
                    let inner = self.filter(&key_path, operand, depth + 1);
                    conditions.push(Node::Not(Box::new(inner)));
                }
                operator if operator.starts_with('$') => {
                    let message = if FIELD_OPERATORS.contains(&operator) {
                        format!(
                            "`{operator}` applies to a field: {{\"field\": {{\"{operator}\": …}}}}"
                        )
                    } else {
                        format!(
                            "unknown operator `{operator}` (a filter combines fields with $and, $or and $not)"
                        )
                    };
                    self.error(&key_path, message);
                }
                field => {
                    let path = self.field_path(&key_path, field);
                    let condition = self.field_condition(&key_path, operand, depth + 1);
                    if let Some(path) = path {
                        conditions.push(Node::Field { path, condition });
                    }
                }
            }
        }
        single_or(conditions, Node::And)
    }

    /// The operand of `$and` / `$or`: a non-empty array of filters.
    fn filter_list(
        &mut self,
        path: &str,
        operator: &str,
        value: &Value,
        depth: usize,
    ) -> Vec<Node> {
        match value {
            Value::Array(items) if !items.is_empty() => {
                if !self.depth_ok(path, depth) {
                    return Vec::new();
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.filter(&format!("{path}[{i}]"), item, depth + 1))
                    .collect()
            }
            _ => {
                self.error(
                    path,
                    format!(
                        "`{operator}` takes a non-empty array of filters, not {}",
                        kind_or_empty(value)
                    ),
                );
                Vec::new()
            }
        }
    }

    fn field_path(&mut self, path: &str, field: &str) -> Option<FieldPath> {
        if field.is_empty() {
            self.error(path, "empty field name");
            return None;
        }
        if field.len() > MAX_PATH_BYTES {
            self.error(
                path,
                format!(
                    "the field path is {} bytes long, at most {MAX_PATH_BYTES} are allowed",
                    field.len()
                ),
            );
            return None;
        }
        if field.split('.').any(str::is_empty) {
            self.error(
                path,
                format!("the field path `{field}` has an empty segment"),
            );
            return None;
        }
        if field.split('.').any(|name| name.starts_with('$')) {
            self.error(
                path,
                format!("the field path `{field}` has a segment starting with `$`"),
            );
            return None;
        }
        Some(FieldPath::new(field))
    }

    /// The value of a field key: a literal (implicit `$eq`) or an object of operators.
    fn field_condition(&mut self, path: &str, value: &Value, depth: usize) -> Condition {
        match value {
            Value::Object(map) if map.keys().any(|key| key.starts_with('$')) => {
                self.operators(path, map, depth)
            }
            _ => {
                self.nodes += 1;
                Condition::Eq(self.literal(path, value, depth))
            }
        }
    }

    /// An object of field operators (all of them must hold).
    fn operators(&mut self, path: &str, map: &Map<String, Value>, depth: usize) -> Condition {
        if !self.depth_ok(path, depth) {
            return Condition::All(Vec::new());
        }
        if let Some(plain) = map.keys().find(|key| !key.starts_with('$')) {
            self.error(
                path,
                format!(
                    "the object mixes operators with the field `{plain}`; nest fields in the path (`a.b`) or compare with the object through $eq"
                ),
            );
            return Condition::All(Vec::new());
        }
        let conditions: Vec<Condition> = map
            .iter()
            .filter_map(|(operator, operand)| {
                self.operator(&format!("{path}.{operator}"), operator, operand, depth + 1)
            })
            .collect();
        single_or(conditions, Condition::All)
    }

    fn operator(
        &mut self,
        path: &str,
        operator: &str,
        operand: &Value,
        depth: usize,
    ) -> Option<Condition> {
        self.nodes += 1;
        let condition = match operator {
            "$eq" => Condition::Eq(self.literal(path, operand, depth)),
            "$ne" => Condition::Ne(self.literal(path, operand, depth)),
            "$gt" | "$gte" | "$lt" | "$lte" => {
                let op = match operator {
                    "$gt" => RangeOp::Gt,
                    "$gte" => RangeOp::Gte,
                    "$lt" => RangeOp::Lt,
                    _ => RangeOp::Lte,
                };
                let bound = match operand {
                    Value::Number(n) => Bound::Number(Num::from_json(n)),
                    Value::String(s) => {
                        self.string_ok(path, s);
                        Bound::String(s.clone())
                    }
                    other => {
                        self.error(
                            path,
                            format!(
                                "`{operator}` compares with a number or a string, not {}",
                                kind(other)
                            ),
                        );
                        return None;
                    }
                };
                Condition::Range(op, bound)
            }
            "$in" | "$nin" => {
                let set = self.literal_set(path, operator, operand, depth)?;
                if operator == "$in" {
                    Condition::In(set)
                } else {
                    Condition::Nin(set)
                }
            }
            "$exists" => match operand {
                Value::Bool(b) => Condition::Exists(*b),
                other => {
                    self.error(
                        path,
                        format!("`$exists` takes true or false, not {}", kind(other)),
                    );
                    return None;
                }
            },
            "$not" => match operand {
                Value::Object(map)
                    if !map.is_empty() && map.keys().all(|key| key.starts_with('$')) =>
                {
                    Condition::Not(Box::new(self.operators(path, map, depth)))
                }
                other => {
                    self.error(
                        path,
                        format!(
                            "`$not` on a field takes a non-empty object of operators (`{{\"$not\": {{\"$gt\": 5}}}}`), not {}",
                            kind_or_empty(other)
                        ),
                    );
                    return None;
                }
            },
            "$and" | "$or" => {
                self.error(
                    path,
                    format!(
                        "`{operator}` combines filters, not a field's operators: {{\"{operator}\": [{{\"field\": …}}, …]}}"
                    ),
                );
                return None;
            }
            unknown => {
                self.error(path, format!("unknown operator `{unknown}`"));
                return None;
            }
        };
        Some(condition)
    }

    fn literal_set(
        &mut self,
        path: &str,
        operator: &str,
        operand: &Value,
        depth: usize,
    ) -> Option<LiteralSet> {
        let Value::Array(items) = operand else {
            self.error(
                path,
                format!(
                    "`{operator}` takes an array of values, not {}",
                    kind(operand)
                ),
            );
            return None;
        };
        if items.len() > MAX_IN_VALUES {
            self.error(
                path,
                format!(
                    "`{operator}` has {} values, at most {MAX_IN_VALUES} are allowed",
                    items.len()
                ),
            );
            return None;
        }
        if !self.depth_ok(path, depth) {
            return None;
        }
        let mut set = LiteralSet::default();
        for (i, item) in items.iter().enumerate() {
            set.insert(self.literal(&format!("{path}[{i}]"), item, depth + 1));
        }
        set.finish();
        Some(set)
    }

    /// A literal value: checks its strings' lengths and its depth.
    fn literal(&mut self, path: &str, value: &Value, depth: usize) -> Literal {
        self.check_literal(path, value, depth);
        Literal::from_value(value)
    }

    fn check_literal(&mut self, path: &str, value: &Value, depth: usize) {
        match value {
            Value::String(s) => self.string_ok(path, s),
            Value::Array(items) => {
                if self.depth_ok(path, depth) {
                    for (i, item) in items.iter().enumerate() {
                        self.check_literal(&format!("{path}[{i}]"), item, depth + 1);
                    }
                }
            }
            Value::Object(map) => {
                if self.depth_ok(path, depth) {
                    for (key, item) in map {
                        self.check_literal(&format!("{path}.{key}"), item, depth + 1);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn string_ok(&mut self, path: &str, s: &str) {
        if s.len() > MAX_STRING_BYTES {
            self.error(
                path,
                format!(
                    "the string is {} bytes long, at most {MAX_STRING_BYTES} are allowed",
                    s.len()
                ),
            );
        }
    }
}

/// The one item, or all of them combined.
fn single_or<T>(items: Vec<T>, combine: fn(Vec<T>) -> T) -> T {
    match <[T; 1]>::try_from(items) {
        Ok([one]) => one,
        Err(items) => combine(items),
    }
}

/// The operators that apply to a field (refused at the filter level).
const FIELD_OPERATORS: &[&str] = &[
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists",
];

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn kind_or_empty(value: &Value) -> &'static str {
    match value {
        Value::Array(items) if items.is_empty() => "an empty array",
        Value::Object(map) if map.is_empty() => "an empty object",
        other => kind(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(filter: Value) -> Filter {
        Filter::parse("filter", &filter).unwrap_or_else(|errors| panic!("{filter}: {errors:?}"))
    }

    fn matches(filter: Value, payload: Value) -> bool {
        parsed(filter).matches(&payload)
    }

    /// The paths of the errors, in order.
    fn error_fields(filter: Value) -> Vec<String> {
        match Filter::parse("filter", &filter) {
            Ok(_) => panic!("{filter} was accepted"),
            Err(errors) => errors.into_iter().map(|error| error.field).collect(),
        }
    }

    /// Asserts that the filter is refused with exactly one error, at `field`, whose message
    /// contains `fragment`.
    fn assert_error(filter: Value, field: impl AsRef<str>, fragment: &str) {
        let error = single_error(filter);
        assert_eq!(error.field, field.as_ref());
        assert!(error.message.contains(fragment), "{}", error.message);
    }

    fn single_error(filter: Value) -> FilterError {
        let mut errors = Filter::parse("filter", &filter).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    #[test]
    fn implicit_and_explicit_equality() {
        let payload = json!({"color": "red", "size": 3, "ok": true, "none": null});
        assert!(matches(json!({"color": "red"}), payload.clone()));
        assert!(matches(json!({"color": {"$eq": "red"}}), payload.clone()));
        assert!(!matches(json!({"color": "blue"}), payload.clone()));
        assert!(matches(json!({"size": 3}), payload.clone()));
        assert!(matches(json!({"size": 3.0}), payload.clone()));
        assert!(!matches(json!({"size": "3"}), payload.clone()));
        assert!(matches(json!({"ok": true}), payload.clone()));
        assert!(!matches(json!({"ok": 1}), payload.clone()));
        assert!(matches(json!({"none": null}), payload.clone()));
        assert!(!matches(json!({"none": false}), payload));
    }

    #[test]
    fn equality_with_objects_and_arrays_is_deep() {
        let payload = json!({"meta": {"a": 1, "b": [1, 2]}, "pair": [1, 2]});
        assert!(matches(
            json!({"meta": {"b": [1.0, 2], "a": 1}}),
            payload.clone()
        ));
        assert!(!matches(json!({"meta": {"a": 1}}), payload.clone()));
        assert!(matches(json!({"pair": [1, 2]}), payload.clone()));
        assert!(!matches(json!({"pair": [2, 1]}), payload.clone()));
        assert!(matches(json!({"pair": {"$eq": [1, 2]}}), payload.clone()));
        assert!(matches(json!({"pair": {"$ne": [2, 1]}}), payload.clone()));
        assert!(matches(
            json!({"pair": {"$in": [[1, 2], 7]}}),
            payload.clone()
        ));
        assert!(!matches(
            json!({"pair": {"$in": [[2, 1]]}}),
            payload.clone()
        ));
        // An element that is itself an array matches an array literal.
        assert!(matches(json!({"m": [1, 2]}), json!({"m": [[1, 2], 3]})));
        assert!(matches(json!({"empty": {}}), json!({"empty": {}})));
    }

    #[test]
    fn not_equal_matches_missing_and_other_values() {
        assert!(matches(json!({"a": {"$ne": 1}}), json!({"a": 2})));
        assert!(matches(json!({"a": {"$ne": 1}}), json!({})));
        assert!(matches(json!({"a": {"$ne": 1}}), json!({"a": "1"})));
        assert!(!matches(json!({"a": {"$ne": 1}}), json!({"a": 1.0})));
    }

    #[test]
    fn numeric_ranges() {
        let p = json!({"price": 10});
        assert!(matches(json!({"price": {"$gt": 9}}), p.clone()));
        assert!(!matches(json!({"price": {"$gt": 10}}), p.clone()));
        assert!(matches(json!({"price": {"$gte": 10}}), p.clone()));
        assert!(matches(json!({"price": {"$gte": 9.5}}), p.clone()));
        assert!(!matches(json!({"price": {"$gte": 10.5}}), p.clone()));
        assert!(matches(json!({"price": {"$lt": 10.000001}}), p.clone()));
        assert!(!matches(json!({"price": {"$lt": 10}}), p.clone()));
        assert!(matches(json!({"price": {"$lte": 10.0}}), p.clone()));
        assert!(!matches(json!({"price": {"$lte": 9}}), p.clone()));
        assert!(matches(json!({"price": {"$gt": -1e300}}), p.clone()));
        assert!(matches(json!({"price": {"$gt": 5, "$lt": 11}}), p.clone()));
        assert!(!matches(json!({"price": {"$gt": 5, "$lt": 10}}), p));
        assert!(matches(json!({"x": {"$lt": 0}}), json!({"x": -0.5})));
        assert!(matches(json!({"x": {"$gte": 0}}), json!({"x": -0.0})));
        assert!(matches(
            json!({"x": {"$gt": 9_223_372_036_854_775_807_i64}}),
            json!({"x": u64::MAX})
        ));
    }

    #[test]
    fn integers_beyond_f64_precision_compare_exactly() {
        let big = 9_007_199_254_740_993_i64; // 2^53 + 1: its f64 is 2^53
        let p = json!({"n": big});
        assert!(matches(json!({"n": big}), p.clone()));
        assert!(!matches(json!({"n": big - 1}), p.clone()));
        assert!(!matches(
            json!({"n": 9_007_199_254_740_992.0_f64}),
            p.clone()
        ));
        assert!(matches(json!({"n": {"$gt": big - 1}}), p.clone()));
        assert!(matches(
            json!({"n": {"$gt": 9_007_199_254_740_992.0_f64}}),
            p.clone()
        ));
        assert!(!matches(json!({"n": {"$lt": big}}), p));
        assert!(matches(
            json!({"n": 9_007_199_254_740_992_i64}),
            json!({"n": 9_007_199_254_740_992.0_f64})
        ));
        assert!(matches(
            json!({"n": {"$in": [1, u64::MAX]}}),
            json!({"n": u64::MAX})
        ));
        assert!(!matches(
            json!({"n": {"$in": [1, u64::MAX - 1]}}),
            json!({"n": u64::MAX})
        ));
    }

    #[test]
    fn string_ranges_compare_bytes() {
        let p = json!({"name": "banana"});
        assert!(matches(json!({"name": {"$gt": "apple"}}), p.clone()));
        assert!(matches(json!({"name": {"$gte": "banana"}}), p.clone()));
        assert!(!matches(json!({"name": {"$gt": "banana"}}), p.clone()));
        assert!(matches(json!({"name": {"$lt": "banana!"}}), p.clone()));
        assert!(matches(json!({"name": {"$lt": "c"}}), p.clone()));
        assert!(!matches(json!({"name": {"$lte": "B"}}), p));
        // Byte order: every upper-case letter sorts before every lower-case one.
        assert!(matches(json!({"w": {"$lt": "a"}}), json!({"w": "Z"})));
        assert!(matches(json!({"w": {"$gt": "z"}}), json!({"w": "é"})));
    }

    #[test]
    fn mixed_types_never_match_ranges() {
        for payload in [
            json!({"v": "10"}),
            json!({"v": true}),
            json!({"v": null}),
            json!({"v": {"a": 1}}),
            json!({}),
        ] {
            for op in ["$gt", "$gte", "$lt", "$lte"] {
                assert!(
                    !matches(json!({"v": {op: 5}}), payload.clone()),
                    "{op} {payload}"
                );
            }
        }
        for payload in [
            json!({"v": 10}),
            json!({"v": false}),
            json!({"v": null}),
            json!({}),
        ] {
            for op in ["$gt", "$gte", "$lt", "$lte"] {
                assert!(
                    !matches(json!({"v": {op: "a"}}), payload.clone()),
                    "{op} {payload}"
                );
            }
        }
    }

    #[test]
    fn in_and_not_in() {
        let f = json!({"tag": {"$in": ["a", "b", 3, true]}});
        assert!(matches(f.clone(), json!({"tag": "a"})));
        assert!(matches(f.clone(), json!({"tag": 3.0})));
        assert!(matches(f.clone(), json!({"tag": true})));
        assert!(!matches(f.clone(), json!({"tag": false})));
        assert!(!matches(f.clone(), json!({"tag": "c"})));
        assert!(!matches(f.clone(), json!({})));
        assert!(!matches(f.clone(), json!({"tag": null})));
        assert!(matches(f, json!({"tag": ["x", "b"]})));
        assert!(!matches(json!({"tag": {"$in": []}}), json!({"tag": "a"})));

        let nin = json!({"tag": {"$nin": ["a", "b"]}});
        assert!(matches(nin.clone(), json!({"tag": "c"})));
        assert!(matches(nin.clone(), json!({})));
        assert!(!matches(nin.clone(), json!({"tag": "a"})));
        assert!(!matches(nin.clone(), json!({"tag": ["c", "b"]})));
        assert!(matches(nin, json!({"tag": ["c", "d"]})));
        assert!(matches(json!({"tag": {"$nin": []}}), json!({"tag": "a"})));
    }

    #[test]
    fn null_in_a_set_matches_missing() {
        let f = json!({"tag": {"$in": [null, "a"]}});
        assert!(matches(f.clone(), json!({})));
        assert!(matches(f.clone(), json!({"tag": null})));
        assert!(matches(f.clone(), json!({"tag": [1, null]})));
        assert!(!matches(f, json!({"tag": "b"})));
        assert!(!matches(json!({"tag": {"$nin": [null]}}), json!({})));
        assert!(matches(json!({"tag": {"$nin": [null]}}), json!({"tag": 0})));
    }

    #[test]
    fn exists() {
        assert!(matches(json!({"a": {"$exists": true}}), json!({"a": 0})));
        assert!(matches(json!({"a": {"$exists": true}}), json!({"a": null})));
        assert!(!matches(json!({"a": {"$exists": true}}), json!({"b": 0})));
        assert!(matches(json!({"a": {"$exists": false}}), json!({"b": 0})));
        assert!(!matches(json!({"a": {"$exists": false}}), json!({"a": []})));
        assert!(matches(
            json!({"a.b": {"$exists": true}}),
            json!({"a": {"b": false}})
        ));
        assert!(!matches(json!({"a.b": {"$exists": true}}), json!({"a": 5})));
        assert!(matches(
            json!({"a.b": {"$exists": true}}),
            json!({"a": [{}, {"b": 1}]})
        ));
        assert!(!matches(
            json!({"a.b": {"$exists": true}}),
            json!({"a": [1, 2]})
        ));
    }

    #[test]
    fn null_matches_null_and_missing() {
        assert!(matches(json!({"a": null}), json!({"a": null})));
        assert!(matches(json!({"a": null}), json!({})));
        assert!(matches(json!({"a": {"$eq": null}}), json!({"b": 1})));
        assert!(matches(json!({"a": null}), json!({"a": [1, null]})));
        assert!(!matches(json!({"a": null}), json!({"a": 0})));
        assert!(!matches(json!({"a": null}), json!({"a": [1]})));
        assert!(matches(json!({"a.b": null}), json!({"a": 1})));
        assert!(!matches(json!({"a": {"$ne": null}}), json!({})));
        assert!(matches(json!({"a": {"$ne": null}}), json!({"a": false})));
        // Reached through some array elements only: not missing (see the module doc).
        assert!(!matches(json!({"a.b": null}), json!({"a": [{"b": 1}, {}]})));
    }

    #[test]
    fn arrays_match_by_element() {
        let p = json!({"tags": ["red", "green"], "scores": [3, 8], "nested": [[5]]});
        assert!(matches(json!({"tags": "red"}), p.clone()));
        assert!(matches(json!({"tags": "green"}), p.clone()));
        assert!(!matches(json!({"tags": "blue"}), p.clone()));
        assert!(!matches(json!({"tags": {"$ne": "red"}}), p.clone()));
        assert!(matches(json!({"tags": {"$ne": "blue"}}), p.clone()));
        assert!(matches(json!({"scores": {"$gt": 7}}), p.clone()));
        assert!(!matches(json!({"scores": {"$gt": 8}}), p.clone()));
        assert!(matches(json!({"scores": {"$lt": 4}}), p.clone()));
        // Each operator may hold through a different element (MongoDB).
        assert!(matches(json!({"scores": {"$gt": 5, "$lt": 4}}), p.clone()));
        assert!(matches(json!({"scores": {"$not": {"$gt": 10}}}), p.clone()));
        assert!(!matches(json!({"nested": {"$gt": 1}}), p.clone()));
        assert!(!matches(json!({"nested": 5}), p.clone()));
        assert!(matches(json!({"nested": [5]}), p.clone()));
        assert!(!matches(json!({"tags": {"$exists": false}}), p));
        assert!(!matches(json!({"tags": "red"}), json!({"tags": []})));
        assert!(matches(
            json!({"tags": {"$ne": "red"}}),
            json!({"tags": []})
        ));
    }

    #[test]
    fn dotted_paths_walk_objects_and_arrays() {
        let p = json!({
            "a": {"b": {"c": 7}},
            "items": [{"sku": "x1", "qty": 2}, {"sku": "x2", "qty": 5}, 9],
            "grid": [[1, 2], [3]],
            "0": "key zero",
        });
        assert!(matches(json!({"a.b.c": 7}), p.clone()));
        assert!(matches(json!({"a.b": {"c": 7}}), p.clone()));
        assert!(!matches(json!({"a.b.c.d": 7}), p.clone()));
        assert!(!matches(json!({"a.x.c": 7}), p.clone()));
        assert!(matches(json!({"a.x.c": {"$exists": false}}), p.clone()));
        assert!(matches(json!({"items.sku": "x2"}), p.clone()));
        assert!(matches(json!({"items.qty": {"$gte": 5}}), p.clone()));
        assert!(!matches(json!({"items.qty": {"$gt": 5}}), p.clone()));
        assert!(matches(json!({"items.1.sku": "x2"}), p.clone()));
        assert!(!matches(json!({"items.0.sku": "x2"}), p.clone()));
        assert!(matches(json!({"items.2": 9}), p.clone()));
        assert!(!matches(json!({"items.7": 9}), p.clone()));
        assert!(matches(json!({"grid.1": [3]}), p.clone()));
        assert!(matches(json!({"grid.0": 2}), p.clone()));
        assert!(matches(json!({"0": "key zero"}), p.clone()));
        assert!(!matches(json!({"a.b.c": 7}), json!({"a": "b"})));
        assert!(!matches(json!({"a": 1}), json!([{"a": 1}])));
        assert!(!matches(json!({"a": 1}), json!("a")));
    }

    #[test]
    fn logical_operators() {
        let p = json!({"a": 1, "b": "x"});
        assert!(matches(json!({"a": 1, "b": "x"}), p.clone()));
        assert!(!matches(json!({"a": 1, "b": "y"}), p.clone()));
        assert!(matches(json!({"$and": [{"a": 1}, {"b": "x"}]}), p.clone()));
        assert!(!matches(json!({"$and": [{"a": 1}, {"b": "y"}]}), p.clone()));
        assert!(matches(json!({"$or": [{"a": 2}, {"b": "x"}]}), p.clone()));
        assert!(!matches(json!({"$or": [{"a": 2}, {"b": "y"}]}), p.clone()));
        assert!(matches(json!({"$not": {"a": 2}}), p.clone()));
        assert!(!matches(json!({"$not": {"a": 1, "b": "x"}}), p.clone()));
        assert!(matches(json!({"$not": {"a": 1, "b": "y"}}), p.clone()));
        assert!(matches(json!({"$not": {"c": 1}}), p.clone()));
        assert!(matches(
            json!({"$or": [{"$and": [{"a": 1}, {"$not": {"b": "x"}}]}, {"$and": [{"a": {"$lt": 5}}, {"b": {"$in": ["x"]}}]}]}),
            p.clone()
        ));
        assert!(!matches(
            json!({"a": 1, "$or": [{"b": "y"}, {"c": 1}]}),
            p.clone()
        ));
        assert!(matches(json!({"a": {"$not": {"$gt": 5}}}), p.clone()));
        assert!(!matches(
            json!({"a": {"$not": {"$gt": 0, "$lt": 5}}}),
            p.clone()
        ));
        assert!(matches(
            json!({"a": {"$not": {"$gt": 0, "$lt": 1}}}),
            p.clone()
        ));
        assert!(matches(json!({"c": {"$not": {"$gt": 5}}}), p.clone()));
        assert!(matches(json!({"a": {"$not": {"$not": {"$eq": 1}}}}), p));
    }

    #[test]
    fn the_empty_filter_matches_everything() {
        assert!(matches(json!({}), json!({})));
        assert!(matches(json!({}), json!({"a": 1})));
        assert!(Filter::match_all().matches(&json!({"a": 1})));
        assert_eq!(parsed(json!({})), Filter::match_all());
    }

    #[test]
    fn a_filter_is_an_object() {
        assert_error(json!([{"a": 1}]), "filter", "object");
        assert_eq!(error_fields(json!("a")), ["filter"]);
        assert_eq!(
            error_fields(json!({"$and": [{"a": 1}, 5]})),
            ["filter.$and[1]"]
        );
        assert_eq!(error_fields(json!({"$not": null})), ["filter.$not"]);
    }

    #[test]
    fn unknown_and_misplaced_operators() {
        assert_error(
            json!({"$nor": [{"a": 1}]}),
            "filter.$nor",
            "unknown operator `$nor`",
        );
        assert_error(json!({"$eq": 1}), "filter.$eq", "applies to a field");
        assert_error(
            json!({"price": {"$regex": "a"}}),
            "filter.price.$regex",
            "unknown operator",
        );
        assert_eq!(
            error_fields(json!({"price": {"$and": [{"$gt": 1}]}})),
            ["filter.price.$and"]
        );
        assert_eq!(
            error_fields(json!({"$and": [{"a": 1}, {"price": {"$or": []}}]})),
            ["filter.$and[1].price.$or"]
        );
    }

    #[test]
    fn operands_of_the_wrong_type() {
        assert_error(json!({"tags": {"$in": "a"}}), "filter.tags.$in", "array");
        assert_eq!(
            error_fields(json!({"tags": {"$nin": {"a": 1}}})),
            ["filter.tags.$nin"]
        );
        assert_error(
            json!({"a": {"$exists": 1}}),
            "filter.a.$exists",
            "true or false",
        );
        for operand in [json!({}), json!([1]), json!(null), json!(true)] {
            assert_error(
                json!({"$and": [{"a": 1}, {"price": {"$gt": operand}}]}),
                "filter.$and[1].price.$gt",
                "a number or a string",
            );
        }
        for op in ["$gte", "$lt", "$lte"] {
            assert_eq!(
                error_fields(json!({"p": {op: null}})),
                [format!("filter.p.{op}")]
            );
        }
        for operand in [json!([]), json!({}), json!({"a": 1}), json!(1)] {
            assert_error(
                json!({"$and": operand.clone()}),
                "filter.$and",
                "non-empty array",
            );
            assert_eq!(error_fields(json!({"$or": operand})), ["filter.$or"]);
        }
        for operand in [
            json!({}),
            json!(5),
            json!({"$gt": 1, "x": 2}),
            json!({"x": 1}),
        ] {
            assert_eq!(
                error_fields(json!({"a": {"$not": operand.clone()}})),
                ["filter.a.$not"],
                "{operand}"
            );
        }
    }

    #[test]
    fn bad_field_names() {
        let error = single_error(json!({"": 1}));
        assert_eq!(error.field, "filter.");
        assert_eq!(error.message, "empty field name");
        assert_eq!(error_fields(json!({"a..b": 1})), ["filter.a..b"]);
        assert_eq!(error_fields(json!({".a": 1})), ["filter..a"]);
        assert_eq!(error_fields(json!({"a.": 1})), ["filter.a."]);
        assert_error(json!({"a.$b": 1}), "filter.a.$b", "starting with `$`");
        assert_error(
            json!({"a": {"$gt": 1, "b": 2}}),
            "filter.a",
            "mixes operators",
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let fields = error_fields(json!({
            "$and": [
                {"a": {"$in": 1}},
                {"b": {"$gt": [1]}, "": 2},
                {"c": {"$exists": "yes", "$bogus": 1}},
            ],
            "$or": [],
            "d.$e": {"$lt": null},
        }));
        assert_eq!(
            fields,
            [
                "filter.$and[0].a.$in",
                "filter.$and[1].",
                "filter.$and[1].b.$gt",
                "filter.$and[2].c.$bogus",
                "filter.$and[2].c.$exists",
                "filter.$or",
                "filter.d.$e",
                "filter.d.$e.$lt",
            ]
        );
    }

    fn nested_nots(levels: usize) -> Value {
        (0..levels).fold(json!({"a": 1}), |inner, _| json!({"$not": inner}))
    }

    #[test]
    fn depth_limit() {
        // The innermost object of n nested `$not`s is at level n + 1.
        assert!(Filter::parse("filter", &nested_nots(MAX_DEPTH - 1)).is_ok());
        assert_error(
            nested_nots(MAX_DEPTH),
            format!("filter{}", ".$not".repeat(MAX_DEPTH)),
            "deeper than 16",
        );
        // Literals count too: the root (1), the field's object value (2..).
        let deep_literal = (0..MAX_DEPTH - 1).fold(json!(1), |inner, _| json!([inner]));
        assert!(Filter::parse("filter", &json!({"a": deep_literal})).is_ok());
        let too_deep = json!({"a": [deep_literal]});
        let error = single_error(too_deep);
        assert_eq!(
            error.field,
            format!("filter.a{}", "[0]".repeat(MAX_DEPTH - 1))
        );
    }

    fn conjunction(conditions: usize) -> Value {
        let children: Vec<Value> = (0..conditions).map(|i| json!({"a": i})).collect();
        json!({"$and": children})
    }

    #[test]
    fn node_limit() {
        // `$and` is a condition too.
        assert!(Filter::parse("filter", &conjunction(MAX_NODES - 1)).is_ok());
        assert_error(conjunction(MAX_NODES), "filter", "257 conditions");
        let operators = json!({"a": {"$gt": 1, "$lt": 2, "$not": {"$eq": 3, "$ne": 4}}});
        let mut parser = Parser::default();
        parser.filter("filter", &operators, 1);
        assert_eq!(parser.nodes, 5);
    }

    #[test]
    fn in_limit() {
        let values: Vec<Value> = (0..MAX_IN_VALUES).map(|i| json!(i)).collect();
        let f = parsed(json!({"tags": {"$in": values.clone()}}));
        assert!(f.matches(&json!({"tags": 1023})));
        assert!(!f.matches(&json!({"tags": 1024})));
        let mut too_many = values;
        too_many.push(json!("one more"));
        assert_error(
            json!({"tags": {"$nin": too_many}}),
            "filter.tags.$nin",
            "1025 values",
        );
    }

    #[test]
    fn path_length_limit() {
        let longest = "a".repeat(MAX_PATH_BYTES);
        assert!(matches(json!({&longest: 1}), json!({&longest: 1})));
        let too_long = format!("b.{longest}");
        assert_error(
            json!({&too_long: 1}),
            format!("filter.{too_long}"),
            "258 bytes",
        );
    }

    #[test]
    fn string_length_limit() {
        let longest = "s".repeat(MAX_STRING_BYTES);
        assert!(matches(
            json!({"name": &longest}),
            json!({"name": &longest})
        ));
        let too_long = "é".repeat(MAX_STRING_BYTES / 2 + 1);
        let cases = [
            (json!({"name": &too_long}), "filter.name"),
            (json!({"name": {"$ne": &too_long}}), "filter.name.$ne"),
            (json!({"name": {"$gt": &too_long}}), "filter.name.$gt"),
            (
                json!({"name": {"$in": ["a", "b", &too_long]}}),
                "filter.name.$in[2]",
            ),
            (json!({"meta": {"a": [&too_long]}}), "filter.meta.a[0]"),
        ];
        for (filter, field) in cases {
            assert_error(filter, field, "4098 bytes");
        }
    }

    #[test]
    fn errors_are_serialized_as_field_and_message() {
        let error = single_error(json!({"a": {"$exists": 1}}));
        let value = serde_json::to_value(&error).expect("serializes");
        assert_eq!(value["field"], "filter.a.$exists");
        assert!(value["message"].is_string());
    }
}

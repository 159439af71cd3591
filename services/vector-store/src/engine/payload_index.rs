//! The payload index of a collection's declared indexed fields, and the planner that narrows a
//! [`Filter`] to candidate ids through it.
//!
//! Data flow: the engine calls [`PayloadIndex::insert`] with every point's internal id and
//! payload as it is written and [`PayloadIndex::remove`] with the same pair when the point is
//! deleted or overwritten (the index keeps no payloads: `remove` must get the payload that was
//! inserted). Before a filtered query, [`Filter::candidates`] answers what it can from the
//! index; the engine then checks [`Filter::matches`] on each candidate only.
//!
//! # What is indexed
//!
//! For each indexed field path (written as in filters, `a.b`), the values the path reaches in a
//! payload (the same walk as the filter's, arrays included) and, for a reached array, its
//! elements, when they are scalars:
//! - booleans, numbers and strings in a hash map from value to the ids holding it; numbers are
//!   keyed by value, so `1` and `1.0` share a key and integers keep their exact value;
//! - numbers also in an ordered map from their nearest `f64` to the ids holding them.
//!
//! Nulls, objects and nested arrays are not indexed.
//!
//! # What the planner answers
//!
//! [`Filter::candidates`] returns `Some(sorted ids)`, a superset of the matching points, or
//! `None` when only a scan can tell:
//! - `{field: v}` / `$eq v` on an indexed field, `v` a boolean, number or string: the ids
//!   holding `v`;
//! - `$in [..]` of such values: the union of theirs (a `null`, array or object in the list:
//!   `None`, since those match values that are not indexed or missing fields);
//! - `$gt $gte $lt $lte` with a number: the ids with a number in the range; the range is taken
//!   inclusive on the `f64` bounds, because integers beyond 2^53 share an `f64` with their
//!   neighbours (rounding is monotone, so no match is lost; `matches` settles the bounds).
//!   Several range operators on one field scan one intersected range;
//! - several operators on one field, and `$and` (or several keys): the intersection of the
//!   parts that have an answer (`None` when none has);
//! - `$or`: the union, if every branch has an answer, else `None`;
//! - anything else (`$eq null`, `$ne`, `$nin`, `$exists`, `$not`, string ranges, fields not
//!   indexed, the empty filter): `None`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound as Limit;

use serde_json::Value;

use super::filter::{
    any_value, Bound, Condition, FieldPath, Filter, Literal, LiteralSet, Node, Num, RangeOp,
};

/// The indexes of one collection's indexed fields.
#[derive(Debug, Clone, Default)]
pub struct PayloadIndex {
    fields: HashMap<String, FieldIndex>,
}

#[derive(Debug, Clone)]
struct FieldIndex {
    path: FieldPath,
    /// Scalar value → the ids holding it.
    equal: HashMap<IndexKey, BTreeSet<u64>>,
    /// Number (nearest `f64`) → the ids holding it.
    numbers: BTreeMap<OrderedF64, BTreeSet<u64>>,
}

/// A scalar as a hash key: numbers by exact value (integral floats as integers).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum IndexKey {
    Bool(bool),
    Int(i128),
    /// A float with a fraction (or beyond `i128`), by its bits.
    Float(u64),
    String(String),
}

/// An `f64` ordered totally (JSON numbers are finite; `-0.0` is stored as `0.0`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedF64(f64);

impl Eq for OrderedF64 {}

impl PartialOrd for OrderedF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl OrderedF64 {
    fn new(value: f64) -> OrderedF64 {
        // `+ 0.0` turns -0.0 into 0.0, which `total_cmp` would otherwise order below it.
        OrderedF64(value + 0.0)
    }
}

impl IndexKey {
    fn number(n: Num) -> IndexKey {
        match n {
            Num::Int(i) => IndexKey::Int(i),
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 2f64.powi(127) => {
                IndexKey::Int(f as i128)
            }
            Num::Float(f) => IndexKey::Float(f.to_bits()),
        }
    }

    fn literal(literal: &Literal) -> Option<IndexKey> {
        match literal {
            Literal::Bool(b) => Some(IndexKey::Bool(*b)),
            Literal::Number(n) => Some(IndexKey::number(*n)),
            Literal::String(s) => Some(IndexKey::String(s.clone())),
            Literal::Null | Literal::Composite(_) => None,
        }
    }
}

impl PayloadIndex {
    /// An empty index of these field paths (dotted, as in filters).
    pub fn new(fields: &[String]) -> PayloadIndex {
        PayloadIndex {
            fields: fields
                .iter()
                .map(|field| {
                    let index = FieldIndex {
                        path: FieldPath::new(field),
                        equal: HashMap::new(),
                        numbers: BTreeMap::new(),
                    };
                    (field.clone(), index)
                })
                .collect(),
        }
    }

    /// Whether a field path is indexed.
    pub fn is_indexed(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// Indexes a point's payload.
    pub fn insert(&mut self, id: u64, payload: &Value) {
        for field in self.fields.values_mut() {
            let (keys, numbers) = field.indexed_values(payload);
            for key in keys {
                field.equal.entry(key).or_default().insert(id);
            }
            for number in numbers {
                field.numbers.entry(number).or_default().insert(id);
            }
        }
    }

    /// Forgets a point; `payload` is the one it was inserted with.
    pub fn remove(&mut self, id: u64, payload: &Value) {
        for field in self.fields.values_mut() {
            let (keys, numbers) = field.indexed_values(payload);
            for key in keys {
                if let Some(ids) = field.equal.get_mut(&key) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        field.equal.remove(&key);
                    }
                }
            }
            for number in numbers {
                if let Some(ids) = field.numbers.get_mut(&number) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        field.numbers.remove(&number);
                    }
                }
            }
        }
    }

    fn node_candidates(&self, node: &Node) -> Option<Vec<u64>> {
        match node {
            Node::And(children) => {
                intersect_answers(children.iter().map(|child| self.node_candidates(child)))
            }
            Node::Or(children) => {
                let mut union = Vec::new();
                for child in children {
                    union = merge_union(&union, &self.node_candidates(child)?);
                }
                Some(union)
            }
            Node::Not(_) => None,
            Node::Field { path, condition } => {
                self.fields.get(&path.text)?.condition_candidates(condition)
            }
        }
    }
}

impl FieldIndex {
    /// The hash keys and the numbers a payload holds at this path.
    fn indexed_values(&self, payload: &Value) -> (Vec<IndexKey>, Vec<OrderedF64>) {
        let mut keys = Vec::new();
        let mut numbers = Vec::new();
        let mut add = |value: &Value| match value {
            Value::Bool(b) => keys.push(IndexKey::Bool(*b)),
            Value::Number(n) => {
                let n = Num::from_json(n);
                keys.push(IndexKey::number(n));
                numbers.push(OrderedF64::new(n.to_f64()));
            }
            Value::String(s) => keys.push(IndexKey::String(s.clone())),
            Value::Null | Value::Array(_) | Value::Object(_) => {}
        };
        any_value(payload, &self.path.segments, &mut |value| {
            add(value);
            if let Value::Array(items) = value {
                items.iter().for_each(&mut add);
            }
            false
        });
        keys.sort_unstable();
        keys.dedup();
        numbers.sort_unstable();
        numbers.dedup();
        (keys, numbers)
    }

    fn condition_candidates(&self, condition: &Condition) -> Option<Vec<u64>> {
        match condition {
            Condition::Eq(literal) => self.equal_ids(literal),
            Condition::In(set) => self.set_ids(set),
            Condition::Range(op, Bound::Number(n)) => {
                let mut range = NumberRange::default();
                range.narrow(*op, *n);
                Some(self.range_ids(range))
            }
            Condition::All(conditions) => {
                let mut range = NumberRange::default();
                let mut ranged = false;
                let mut others = Vec::new();
                for condition in conditions {
                    match condition {
                        Condition::Range(op, Bound::Number(n)) => {
                            range.narrow(*op, *n);
                            ranged = true;
                        }
                        other => others.push(self.condition_candidates(other)),
                    }
                }
                if ranged {
                    others.push(Some(self.range_ids(range)));
                }
                intersect_answers(others.into_iter())
            }
            Condition::Range(_, Bound::String(_))
            | Condition::Ne(_)
            | Condition::Nin(_)
            | Condition::Exists(_)
            | Condition::Not(_) => None,
        }
    }

    fn equal_ids(&self, literal: &Literal) -> Option<Vec<u64>> {
        let key = IndexKey::literal(literal)?;
        Some(
            self.equal
                .get(&key)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
        )
    }

    fn set_ids(&self, set: &LiteralSet) -> Option<Vec<u64>> {
        if set.null || !set.composites.is_empty() {
            return None;
        }
        let bools = [false, true]
            .into_iter()
            .filter(|b| set.bools[usize::from(*b)])
            .map(IndexKey::Bool);
        let numbers = set.numbers.iter().map(|n| IndexKey::number(*n));
        let strings = set.strings.iter().map(|s| IndexKey::String(s.clone()));
        let mut ids: Vec<u64> = bools
            .chain(numbers)
            .chain(strings)
            .filter_map(|key| self.equal.get(&key))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }

    fn range_ids(&self, range: NumberRange) -> Vec<u64> {
        let lower = range
            .lower
            .map_or(Limit::Unbounded, |f| Limit::Included(OrderedF64::new(f)));
        let upper = range
            .upper
            .map_or(Limit::Unbounded, |f| Limit::Included(OrderedF64::new(f)));
        if let (Some(lower), Some(upper)) = (range.lower, range.upper) {
            if lower > upper {
                return Vec::new();
            }
        }
        let mut ids: Vec<u64> = self
            .numbers
            .range((lower, upper))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Inclusive `f64` bounds of the numbers a field's range operators accept.
#[derive(Debug, Clone, Copy, Default)]
struct NumberRange {
    lower: Option<f64>,
    upper: Option<f64>,
}

impl NumberRange {
    fn narrow(&mut self, op: RangeOp, bound: Num) {
        let bound = bound.to_f64();
        match op {
            RangeOp::Gt | RangeOp::Gte => {
                self.lower = Some(self.lower.map_or(bound, |lower| lower.max(bound)));
            }
            RangeOp::Lt | RangeOp::Lte => {
                self.upper = Some(self.upper.map_or(bound, |upper| upper.min(bound)));
            }
        }
    }
}

impl Filter {
    /// The sorted ids that may match (a superset of the matches: check [`Filter::matches`] on
    /// each), when the index answers at least one conjunct of the filter; `None` when a scan
    /// is needed. See the module doc for what is answered.
    pub fn candidates(&self, index: &PayloadIndex) -> Option<Vec<u64>> {
        index.node_candidates(&self.root)
    }
}

/// The intersection of the answered parts of a conjunction (`None`: no part answered).
fn intersect_answers(answers: impl Iterator<Item = Option<Vec<u64>>>) -> Option<Vec<u64>> {
    let mut answered: Vec<Vec<u64>> = answers.flatten().collect();
    answered.sort_by_key(Vec::len);
    let mut parts = answered.into_iter();
    let mut result = parts.next()?;
    for part in parts {
        if result.is_empty() {
            break;
        }
        result = merge_intersection(&result, &part);
    }
    Some(result)
}

fn merge_intersection(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn merge_union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

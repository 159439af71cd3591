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
//!   neighbours (rounding is monotone, so no match is lost; `matches` settles the bounds);
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
    /// (key, id) entries held across the fields' maps, for the memory estimate.
    postings: u64,
    /// Estimated heap bytes of the distinct keys (map nodes, strings).
    key_bytes: u64,
}

/// Rough heap bytes of one id in a key's `BTreeSet<u64>`.
const POSTING_BYTES: u64 = 16;
/// Rough heap bytes of one distinct key beyond its string (map slot, set header).
const KEY_OVERHEAD: u64 = 64;

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
    /// Rough heap bytes of this key as a map entry.
    fn heap_bytes(&self) -> u64 {
        match self {
            IndexKey::String(s) => KEY_OVERHEAD + s.len() as u64,
            _ => KEY_OVERHEAD,
        }
    }

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
            postings: 0,
            key_bytes: 0,
        }
    }

    /// Heap bytes held, estimated from counters kept by `insert` and `remove`.
    pub fn memory_bytes(&self) -> u64 {
        self.postings * POSTING_BYTES + self.key_bytes
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
                let key_bytes = key.heap_bytes();
                let ids = field.equal.entry(key).or_insert_with(|| {
                    self.key_bytes += key_bytes;
                    BTreeSet::new()
                });
                self.postings += u64::from(ids.insert(id));
            }
            for number in numbers {
                let ids = field.numbers.entry(number).or_insert_with(|| {
                    self.key_bytes += KEY_OVERHEAD;
                    BTreeSet::new()
                });
                self.postings += u64::from(ids.insert(id));
            }
        }
    }

    /// Forgets a point; `payload` is the one it was inserted with.
    pub fn remove(&mut self, id: u64, payload: &Value) {
        for field in self.fields.values_mut() {
            let (keys, numbers) = field.indexed_values(payload);
            for key in keys {
                if let Some(ids) = field.equal.get_mut(&key) {
                    self.postings -= u64::from(ids.remove(&id));
                    if ids.is_empty() {
                        self.key_bytes -= key.heap_bytes();
                        field.equal.remove(&key);
                    }
                }
            }
            for number in numbers {
                if let Some(ids) = field.numbers.get_mut(&number) {
                    self.postings -= u64::from(ids.remove(&id));
                    if ids.is_empty() {
                        self.key_bytes -= KEY_OVERHEAD;
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
                Some(self.range_ids(NumberRange::of(*op, *n)))
            }
            // Each operator separately: over an array, different elements may satisfy
            // different operators, so the ranges of `$gt` and `$lt` must not be merged.
            Condition::All(conditions) => intersect_answers(
                conditions
                    .iter()
                    .map(|condition| self.condition_candidates(condition)),
            ),
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
        let mut ids: Vec<u64> = self
            .numbers
            .range((range.lower, range.upper))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The inclusive `f64` bounds of the numbers a range operator accepts (one side unbounded).
#[derive(Debug, Clone, Copy)]
struct NumberRange {
    lower: Limit<OrderedF64>,
    upper: Limit<OrderedF64>,
}

impl NumberRange {
    fn of(op: RangeOp, bound: Num) -> NumberRange {
        let bound = Limit::Included(OrderedF64::new(bound.to_f64()));
        match op {
            RangeOp::Gt | RangeOp::Gte => NumberRange {
                lower: bound,
                upper: Limit::Unbounded,
            },
            RangeOp::Lt | RangeOp::Lte => NumberRange {
                lower: Limit::Unbounded,
                upper: bound,
            },
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Map};

    use super::*;

    fn parsed(filter: Value) -> Filter {
        Filter::parse("filter", &filter).unwrap_or_else(|errors| panic!("{filter}: {errors:?}"))
    }

    fn index_of(fields: &[&str], payloads: &[Value]) -> PayloadIndex {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        let mut index = PayloadIndex::new(&fields);
        for (id, payload) in payloads.iter().enumerate() {
            index.insert(id as u64, payload);
        }
        index
    }

    fn sample() -> (Vec<Value>, PayloadIndex) {
        let payloads = vec![
            json!({"color": "red", "price": 10, "tags": ["a", "b"], "meta": {"rank": 1}}),
            json!({"color": "blue", "price": 10.0, "tags": ["b"], "meta": {"rank": 2.5}}),
            json!({"color": "red", "price": 25.5, "tags": [], "meta": [{"rank": 3}, {"rank": 9}]}),
            json!({"price": "cheap", "tags": "a", "other": 1}),
            json!({"color": null, "price": [1, 30], "flag": true}),
            json!({"color": ["green", "red"], "price": -0.0, "flag": false}),
        ];
        let index = index_of(&["color", "price", "tags", "meta.rank", "flag"], &payloads);
        (payloads, index)
    }

    fn candidates(index: &PayloadIndex, filter: Value) -> Option<Vec<u64>> {
        parsed(filter).candidates(index)
    }

    #[test]
    fn equality_and_sets_from_the_hash_map() {
        let (_, index) = sample();
        assert_eq!(
            candidates(&index, json!({"color": "red"})),
            Some(vec![0, 2, 5])
        );
        assert_eq!(
            candidates(&index, json!({"color": {"$eq": "blue"}})),
            Some(vec![1])
        );
        assert_eq!(candidates(&index, json!({"color": "purple"})), Some(vec![]));
        // 10 and 10.0 share a key; -0.0 is 0.
        assert_eq!(candidates(&index, json!({"price": 10.0})), Some(vec![0, 1]));
        assert_eq!(candidates(&index, json!({"price": 0})), Some(vec![5]));
        assert_eq!(candidates(&index, json!({"price": "cheap"})), Some(vec![3]));
        assert_eq!(candidates(&index, json!({"tags": "a"})), Some(vec![0, 3]));
        assert_eq!(candidates(&index, json!({"meta.rank": 9})), Some(vec![2]));
        assert_eq!(candidates(&index, json!({"flag": false})), Some(vec![5]));
        assert_eq!(
            candidates(&index, json!({"color": {"$in": ["blue", "green", 7]}})),
            Some(vec![1, 5])
        );
        assert_eq!(
            candidates(&index, json!({"flag": {"$in": [true, false]}})),
            Some(vec![4, 5])
        );
    }

    #[test]
    fn numeric_ranges_from_the_ordered_map() {
        let (_, index) = sample();
        assert_eq!(
            candidates(&index, json!({"price": {"$gt": 10}})),
            Some(vec![0, 1, 2, 4])
        );
        assert_eq!(
            candidates(&index, json!({"price": {"$lt": 5}})),
            Some(vec![4, 5])
        );
        assert_eq!(
            candidates(&index, json!({"price": {"$gte": 20, "$lte": 26}})),
            Some(vec![2, 4])
        );
        assert_eq!(
            candidates(&index, json!({"price": {"$gt": 40, "$lt": 2}})),
            Some(vec![])
        );
        // Over an array each operator may hold through another element: [1, 30].
        assert_eq!(
            candidates(&index, json!({"price": {"$gt": 20, "$lt": 5}})),
            Some(vec![4])
        );
        assert_eq!(
            candidates(&index, json!({"meta.rank": {"$gte": 2}})),
            Some(vec![1, 2])
        );
    }

    #[test]
    fn ranges_are_inclusive_on_rounded_bounds() {
        let big = 9_007_199_254_740_993_i64; // its f64 is 2^53
        let payloads = [json!({"n": big}), json!({"n": big - 1})];
        let index = index_of(&["n"], &payloads);
        let filter = parsed(json!({"n": {"$gt": big - 1}}));
        let found = filter.candidates(&index).expect("answered");
        assert!(found.contains(&0));
        assert!(filter.matches(&payloads[0]) && !filter.matches(&payloads[1]));
        assert_eq!(candidates(&index, json!({"n": big})), Some(vec![0]));
    }

    #[test]
    fn conjunctions_intersect_and_disjunctions_unite() {
        let (_, index) = sample();
        assert_eq!(
            candidates(&index, json!({"color": "red", "price": {"$lt": 20}})),
            Some(vec![0, 5])
        );
        // An unindexed conjunct leaves the indexed one to answer.
        assert_eq!(
            candidates(&index, json!({"$and": [{"color": "red"}, {"other": 1}]})),
            Some(vec![0, 2, 5])
        );
        assert_eq!(
            candidates(&index, json!({"$or": [{"color": "blue"}, {"tags": "a"}]})),
            Some(vec![0, 1, 3])
        );
        assert_eq!(
            candidates(&index, json!({"$or": [{"color": "blue"}, {"other": 1}]})),
            None
        );
        assert_eq!(
            candidates(&index, json!({"color": {"$in": ["red"], "$ne": "blue"}})),
            Some(vec![0, 2, 5])
        );
    }

    #[test]
    fn what_needs_a_scan() {
        let (_, index) = sample();
        for filter in [
            json!({}),
            json!({"other": 1}),
            json!({"color": null}),
            json!({"color": {"$ne": "red"}}),
            json!({"color": {"$nin": ["red"]}}),
            json!({"color": {"$exists": true}}),
            json!({"color": {"$not": {"$eq": "red"}}}),
            json!({"$not": {"color": "red"}}),
            json!({"color": {"$in": ["red", null]}}),
            json!({"color": {"$in": [["red"]]}}),
            json!({"tags": ["a", "b"]}),
            json!({"color": {"$gt": "a"}}),
        ] {
            assert_eq!(candidates(&index, filter.clone()), None, "{filter}");
        }
    }

    #[test]
    fn removal_forgets_the_point() {
        let (payloads, mut index) = sample();
        index.remove(0, &payloads[0]);
        index.remove(2, &payloads[2]);
        assert_eq!(candidates(&index, json!({"color": "red"})), Some(vec![5]));
        assert_eq!(
            candidates(&index, json!({"price": {"$gt": 20}})),
            Some(vec![4])
        );
        assert_eq!(
            candidates(&index, json!({"meta.rank": {"$gte": 0}})),
            Some(vec![1])
        );
        index.remove(1, &payloads[1]);
        assert!(index.fields["meta.rank"].equal.is_empty());
        assert!(index.fields["meta.rank"].numbers.is_empty());
        assert!(index.is_indexed("meta.rank") && !index.is_indexed("other"));
    }

    /// splitmix64: a small seeded generator, enough for reproducible random cases.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Clone>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())].clone()
        }
    }

    fn scalar(rng: &mut Rng) -> Value {
        let big = 9_007_199_254_740_992_i64;
        rng.pick(&[
            json!(0),
            json!(1),
            json!(1.0),
            json!(-0.0),
            json!(2.5),
            json!(-3),
            json!(7),
            json!(big),
            json!(big + 1),
            json!(big as f64),
            json!("a"),
            json!("b"),
            json!("ab"),
            json!("1"),
            json!(true),
            json!(false),
            json!(null),
        ])
    }

    fn value(rng: &mut Rng) -> Value {
        match rng.below(6) {
            0 => json!([scalar(rng), scalar(rng)]),
            1 => json!([[scalar(rng)]]),
            _ => scalar(rng),
        }
    }

    fn payload(rng: &mut Rng) -> Value {
        let mut map = Map::new();
        for field in ["n", "s", "u"] {
            if rng.below(5) != 0 {
                map.insert(field.to_owned(), value(rng));
            }
        }
        match rng.below(4) {
            0 => {}
            1 => {
                map.insert("o".to_owned(), json!({"x": value(rng)}));
            }
            2 => {
                map.insert(
                    "o".to_owned(),
                    json!([{"x": value(rng)}, {"x": scalar(rng)}, 4]),
                );
            }
            _ => {
                map.insert("o".to_owned(), value(rng));
            }
        }
        Value::Object(map)
    }

    fn range_operand(rng: &mut Rng) -> Value {
        loop {
            let v = scalar(rng);
            if v.is_number() || v.is_string() {
                return v;
            }
        }
    }

    fn field_filter(rng: &mut Rng) -> Value {
        let field = rng.pick(&["n", "s", "u", "o.x", "o.0.x", "o"]);
        let ops = ["$gt", "$gte", "$lt", "$lte"];
        let condition = match rng.below(11) {
            0 => value(rng),
            1 => json!({"$eq": scalar(rng)}),
            2 => json!({"$ne": scalar(rng)}),
            3 => json!({rng.pick(&ops): range_operand(rng)}),
            4 => json!({"$gt": range_operand(rng), "$lt": range_operand(rng)}),
            5 => json!({"$in": (0..rng.below(4)).map(|_| scalar(rng)).collect::<Vec<_>>()}),
            6 => json!({"$nin": [scalar(rng), scalar(rng)]}),
            7 => json!({"$exists": rng.below(2) == 0}),
            8 => json!({"$not": {rng.pick(&ops): range_operand(rng)}}),
            9 => json!({"$in": [scalar(rng)], rng.pick(&ops): range_operand(rng)}),
            _ => json!({rng.pick(&ops): range_operand(rng), "$eq": scalar(rng)}),
        };
        json!({ field: condition })
    }

    fn filter(rng: &mut Rng, depth: usize) -> Value {
        if depth == 0 {
            return field_filter(rng);
        }
        match rng.below(6) {
            0 => {
                json!({"$and": (0..1 + rng.below(3)).map(|_| filter(rng, depth - 1)).collect::<Vec<_>>()})
            }
            1 => {
                json!({"$or": (0..1 + rng.below(3)).map(|_| filter(rng, depth - 1)).collect::<Vec<_>>()})
            }
            2 => json!({"$not": filter(rng, depth - 1)}),
            3 => {
                let mut both = Map::new();
                for part in [field_filter(rng), field_filter(rng)] {
                    if let Value::Object(part) = part {
                        both.extend(part);
                    }
                }
                Value::Object(both)
            }
            _ => field_filter(rng),
        }
    }

    /// Checks that the candidates are sorted, unique, among `live` and a superset of the
    /// matches; returns whether the index answered.
    fn check(index: &PayloadIndex, filter: &Filter, payloads: &[Value], live: &[bool]) -> bool {
        let Some(found) = filter.candidates(index) else {
            return false;
        };
        assert!(
            found.windows(2).all(|w| w[0] < w[1]),
            "{filter:?}: {found:?}"
        );
        assert!(
            found.iter().all(|id| live[*id as usize]),
            "{filter:?}: {found:?}"
        );
        for (id, payload) in payloads.iter().enumerate() {
            if live[id] && filter.matches(payload) {
                assert!(
                    found.binary_search(&(id as u64)).is_ok(),
                    "{filter:?} matches {payload} (id {id}) but the candidates {found:?} miss it"
                );
            }
        }
        true
    }

    #[test]
    fn candidates_cover_every_match_on_random_payloads() {
        let mut rng = Rng(0x5EED_F11E);
        let payloads: Vec<Value> = (0..300).map(|_| payload(&mut rng)).collect();
        let fields = ["n", "s", "o.x", "o.0.x", "o"].map(String::from);
        let mut index = PayloadIndex::new(&fields);
        for (id, payload) in payloads.iter().enumerate() {
            index.insert(id as u64, payload);
        }
        let mut live = vec![true; payloads.len()];
        let filters: Vec<(Value, Filter)> = (0..400)
            .map(|_| {
                let value = filter(&mut rng, 3);
                let parsed = parsed(value.clone());
                (value, parsed)
            })
            .collect();
        let answered = filters
            .iter()
            .filter(|(_, filter)| check(&index, filter, &payloads, &live))
            .count();
        assert!(
            answered > 100,
            "only {answered} filters were answered by the index"
        );

        for (id, payload) in payloads.iter().enumerate() {
            if rng.below(2) == 0 {
                index.remove(id as u64, payload);
                live[id] = false;
            }
        }
        for (_, filter) in &filters {
            check(&index, filter, &payloads, &live);
        }
        for (id, payload) in payloads.iter().enumerate() {
            if live[id] {
                index.remove(id as u64, payload);
            }
        }
        assert!(index
            .fields
            .values()
            .all(|field| field.equal.is_empty() && field.numbers.is_empty()));
    }
}

//! The payload filter language: a small set of MongoDB query operators over a point's JSON
//! payload (`$eq $ne $in $nin $gt $gte $lt $lte $exists $and $or $not`).
//!
//! SKELETON: being written.

use serde::Serialize;

/// A parsed, validated filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    _private: (),
}

/// Why a filter was refused: the path of the offending part (`filter.$and[1].price.$gt`) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterError {
    pub field: String,
    pub message: String,
}

impl Filter {
    /// Parses and validates a filter; every problem found is reported, each with its path under
    /// `root` (the request field the filter came in, e.g. `filter`).
    pub fn parse(_root: &str, _value: &serde_json::Value) -> Result<Filter, Vec<FilterError>> {
        todo!("filter")
    }
    /// Whether a payload matches.
    pub fn matches(&self, _payload: &serde_json::Value) -> bool {
        todo!("filter")
    }
}

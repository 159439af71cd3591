//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`), field selectors
//! (`=`, `==`, `!=` on any dotted path, e.g. `metadata.name`), and the simple JSONPath of
//! printer columns.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(rest: &str, whole: &str) -> ApiResult<Vec<String>> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: {whole}")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let p = part.as_str();
            if let Some(key) = p.strip_prefix('!') {
                reqs.push(Requirement::NotExists(key.trim().to_string()));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push(Requirement::NotEq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = p.split_once("==") {
                reqs.push(Requirement::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = p.split_once('=') {
                reqs.push(Requirement::Eq(k.trim().into(), v.trim().into()));
            } else if let Some(idx) = p.find(" notin ").or_else(|| p.find(" notin(")) {
                let key = p[..idx].trim().to_string();
                let rest = p[idx..].trim_start().trim_start_matches("notin");
                reqs.push(Requirement::NotIn(key, set_values(rest, p)?));
            } else if let Some(idx) = p.find(" in ").or_else(|| p.find(" in(")) {
                let key = p[..idx].trim().to_string();
                let rest = p[idx..].trim_start().trim_start_matches("in");
                reqs.push(Requirement::In(key, set_values(rest, p)?));
            } else if p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                reqs.push(Requirement::Exists(p.to_string()));
            } else {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: {p}"
                )));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y`.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {part}"
                )));
            };
            reqs.push((k.trim().to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the object matches; a missing field counts as `""`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            for seg in path.split('.') {
                cur = &cur[seg];
            }
            let have = match cur {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (have == *want) == *eq
        })
    }
}

/// Evaluates the JSONPath subset of printer columns: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.k=="v")].b`. Returns every match.
pub fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let mut current: Vec<&Value> = vec![obj];
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            rest = &r[end..];
            if key.is_empty() {
                continue;
            }
            current = current.into_iter().filter_map(|v| v.get(key)).collect();
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = find_close(r) else {
                return vec![];
            };
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            if inner == "*" {
                current = current
                    .into_iter()
                    .flat_map(|v| {
                        v.as_array()
                            .map(|a| a.iter().collect())
                            .unwrap_or_else(Vec::new)
                    })
                    .collect();
            } else if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')'))
            {
                current = current
                    .into_iter()
                    .flat_map(|v| {
                        v.as_array()
                            .map(|a| {
                                a.iter()
                                    .filter(|item| filter_matches(item, filter))
                                    .collect()
                            })
                            .unwrap_or_else(Vec::new)
                    })
                    .collect();
            } else if let Ok(i) = inner.parse::<i64>() {
                current = current
                    .into_iter()
                    .filter_map(|v| {
                        let a = v.as_array()?;
                        let idx = if i < 0 {
                            a.len().checked_sub(i.unsigned_abs() as usize)?
                        } else {
                            i as usize
                        };
                        a.get(idx)
                    })
                    .collect();
            } else {
                let key = inner.trim_matches(|c| c == '\'' || c == '"');
                current = current.into_iter().filter_map(|v| v.get(key)).collect();
            }
        } else {
            return vec![];
        }
    }
    current.into_iter().cloned().collect()
}

fn find_close(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ']') if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// `@.type=="Ready"`, `@.a.b!='x'`, `@.flag`.
fn filter_matches(item: &Value, filter: &str) -> bool {
    let (lhs, op, rhs) = if let Some((l, r)) = filter.split_once("==") {
        (l, Some(true), r)
    } else if let Some((l, r)) = filter.split_once("!=") {
        (l, Some(false), r)
    } else {
        (filter, None, "")
    };
    let lhs = lhs.trim();
    let Some(sub) = lhs.strip_prefix('@') else {
        return false;
    };
    let found = json_path(item, sub);
    let Some(eq) = op else {
        return found
            .first()
            .is_some_and(|v| !v.is_null() && *v != Value::Bool(false));
    };
    let rhs = rhs.trim();
    let want: Value = if let Some(s) = rhs
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| rhs.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
    {
        Value::String(s.to_string())
    } else {
        serde_json::from_str(rhs).unwrap_or_else(|_| Value::String(rhs.to_string()))
    };
    found.first().is_some_and(|v| *v == want) == eq
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"app": "x", "tier": "db"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&obj);
        assert!(m(""));
        assert!(m("app=x"));
        assert!(m("app==x,tier"));
        assert!(!m("app!=x"));
        assert!(m("tier in (db, web)"));
        assert!(!m("tier notin (db)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("app,tier in (db),other notin (a,b)"));
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(FieldSelector::parse("metadata.name=a")
            .unwrap()
            .matches(&obj));
        assert!(
            !FieldSelector::parse("metadata.name=a,metadata.namespace!=ns")
                .unwrap()
                .matches(&obj)
        );
    }

    #[test]
    fn json_paths() {
        let obj = json!({"spec": {"tier": "standard", "n": [1, 2]},
            "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(json_path(&obj, ".spec.tier"), vec![json!("standard")]);
        assert_eq!(json_path(&obj, ".spec.n[1]"), vec![json!(2)]);
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(
            json_path(&obj, ".status.conditions[*].type"),
            vec![json!("Other"), json!("Ready")]
        );
        assert!(json_path(&obj, ".status.missing").is_empty());
    }
}

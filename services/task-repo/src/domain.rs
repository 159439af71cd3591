//! The service's domain: tasks, their status state machine and priorities, and the request
//! bodies, parsed and validated at the edge. A body becomes a validated value or a 422 listing
//! every bad field, before any database work.
//!
//! Status transitions ([`Status::next`]):
//!
//! ```text
//! todo ──▶ in_progress ──▶ done
//!  ▲  ◀──────┘   │          │
//!  │             ▼          │ (reopen: done ─▶ in_progress)
//!  └─ cancelled ◀┘ (todo or in_progress ─▶ cancelled; reopen: cancelled ─▶ todo)
//! ```
//!
//! `todo → done` is refused: work is started (`in_progress`) before it is done, so every
//! completed task passed through `in_progress`.

use chrono::{DateTime, Datelike, Utc};
use prismicx_service_common::attributes;
use prismicx_service_common::error::Problems;
use prismicx_service_common::{ApiError, FieldError};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_ASSIGNEE_CHARS: usize = 200;
pub const MAX_LABELS: usize = 20;
pub const MAX_LABEL_CHARS: usize = 50;

pub use prismicx_service_common::attributes::{
    merge_patch, MAX_ATTRIBUTES_BYTES, MAX_ATTRIBUTE_DEPTH, MAX_ATTRIBUTE_KEYS,
};
/// Due dates are accepted in these years (BSON dates are milliseconds; every server and
/// client library represents this range).
pub const DUE_YEARS: std::ops::RangeInclusive<i32> = 1900..=9999;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Todo,
    InProgress,
    Done,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Todo,
        Status::InProgress,
        Status::Done,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Todo => "todo",
            Status::InProgress => "in_progress",
            Status::Done => "done",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a status; use todo, in_progress, done or cancelled")
            })
    }

    /// The statuses a task in this status may move to.
    pub fn next(self) -> &'static [Status] {
        match self {
            Status::Todo => &[Status::InProgress, Status::Cancelled],
            Status::InProgress => &[Status::Done, Status::Todo, Status::Cancelled],
            Status::Done => &[Status::InProgress],
            Status::Cancelled => &[Status::Todo],
        }
    }

    /// Not finished: `todo` or `in_progress` (what `overdue` looks at).
    pub fn is_open(self) -> bool {
        matches!(self, Status::Todo | Status::InProgress)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a task in `from` may move to `to`; a 409 naming `status` and the allowed targets
/// when not.
pub fn check_transition(from: Status, to: Status) -> Result<(), ApiError> {
    let allowed = from
        .next()
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if from == to {
        return Err(ApiError::conflict(
            "status",
            format!("the task is already {from}; allowed from {from}: {allowed}"),
        ));
    }
    if !from.next().contains(&to) {
        return Err(ApiError::conflict(
            "status",
            format!("a task cannot move from {from} to {to}; allowed from {from}: {allowed}"),
        ));
    }
    Ok(())
}

/// How urgent a task is; sorts `low < normal < high < urgent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// The stored sort key: 0 (low) to 3 (urgent).
    pub fn rank(self) -> i32 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }

    pub fn parse(s: &str) -> Result<Priority, String> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a priority; use low, normal, high or urgent"))
    }
}

/// A task of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Trimmed, 1 to 200 characters.
    pub title: String,
    /// Up to 10 000 characters.
    pub description: Option<String>,
    pub status: Status,
    pub priority: Priority,
    /// An opaque id of whoever the task is assigned to (e.g. a user-data user id).
    pub assignee: Option<String>,
    /// When the task is due (RFC 3339, millisecond precision).
    pub due_at: Option<DateTime<Utc>>,
    /// Lowercase, distinct, sorted; at most 20 of 1 to 50 characters.
    pub labels: Vec<String>,
    /// Extensible attributes (a JSON object).
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// Starts at 1 and grows by one with every change; the `ETag` is `"<revision>"`.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the task last entered `done`; cleared when it is reopened.
    pub completed_at: Option<DateTime<Utc>>,
}

impl Task {
    /// Moves the task to `to` (already checked), keeping `completedAt` in step.
    fn enter(&mut self, to: Status, now: DateTime<Utc>) {
        if to == Status::Done {
            self.completed_at = Some(now);
        } else if self.status == Status::Done {
            self.completed_at = None;
        }
        self.status = to;
    }

    /// The next revision of `self`, changed at `now`.
    fn successor(&self, now: DateTime<Utc>) -> Task {
        let mut next = self.clone();
        next.revision = self.revision + 1;
        next.updated_at = now;
        next
    }

    /// The task after the transition to `to`, or a 409 when the state machine refuses it.
    pub fn transition(&self, to: Status, now: DateTime<Utc>) -> Result<Task, ApiError> {
        check_transition(self.status, to)?;
        let mut next = self.successor(now);
        next.enter(to, now);
        Ok(next)
    }
}

/// Body of `POST /v1/tasks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTask {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `todo` (default) or `in_progress`: a task starts unfinished.
    #[serde(default)]
    pub status: Option<Status>,
    /// Default `normal`.
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub assignee: Option<String>,
    /// RFC 3339 date-time, e.g. `2025-03-01T17:00:00Z`.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub due_at: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `PATCH /v1/tasks/{id}`: every field optional. `null` clears `description`,
/// `assignee` and `dueAt`; `labels` replaces the set; `attributes` is a JSON merge patch
/// (RFC 7396: a `null` value removes the key); `status` moves the task through the state
/// machine (the same status is no change).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTask {
    /// A new title (trimmed, 1 to 200 characters); `null` is refused.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String, required = false)]
    pub title: Option<Option<String>>,
    /// A new description; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Moves the task through the state machine (409 when the move is not allowed); the
    /// current status is no change.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Status, required = false)]
    pub status: Option<Option<Status>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Priority, required = false)]
    pub priority: Option<Option<Priority>>,
    /// A new assignee id; `null` unassigns.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<String>>,
    /// A new due date (RFC 3339); `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Option<Option<String>>,
    /// The new label set (replaces the old one; `[]` clears it).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Vec<String>, required = false)]
    pub labels: Option<Option<Vec<String>>>,
    /// A JSON merge patch applied to the attributes (`null` values remove keys).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Object, required = false)]
    pub attributes: Option<Option<Value>>,
}

/// Body of `POST /v1/tasks/{id}/transitions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransitionRequest {
    /// The status to move the task to.
    pub to: Status,
}

/// A validated `PATCH`: what changes (outer `None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub assignee: Option<Option<String>>,
    pub due_at: Option<Option<DateTime<Utc>>>,
    pub labels: Option<Vec<String>>,
    /// A merge patch (an object).
    pub attributes: Option<Map<String, Value>>,
}

/// Now, at the millisecond precision tasks are stored with.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

pub fn parse_title(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if t.chars().count() > MAX_TITLE_CHARS {
        return Err(format!("must be at most {MAX_TITLE_CHARS} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_string())
}

pub fn parse_description(s: &str) -> Result<String, String> {
    if s.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    if s.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    Ok(s.to_string())
}

pub fn parse_assignee(s: &str) -> Result<String, String> {
    let n = s.chars().count();
    if n == 0 || n > MAX_ASSIGNEE_CHARS {
        return Err(format!("must be 1 to {MAX_ASSIGNEE_CHARS} characters"));
    }
    if s.trim() != s || s.chars().any(char::is_control) {
        return Err("must not contain control characters or start or end with whitespace".into());
    }
    Ok(s.to_string())
}

/// An RFC 3339 date-time in [`DUE_YEARS`], truncated to milliseconds, in UTC.
pub fn parse_date_time(s: &str) -> Result<DateTime<Utc>, String> {
    let dt = DateTime::parse_from_rfc3339(s.trim())
        .map_err(|_| "must be an RFC 3339 date-time such as 2025-03-01T17:00:00Z".to_string())?
        .with_timezone(&Utc);
    if !DUE_YEARS.contains(&dt.year()) {
        return Err(format!(
            "must be in the years {} to {}",
            DUE_YEARS.start(),
            DUE_YEARS.end()
        ));
    }
    DateTime::from_timestamp_millis(dt.timestamp_millis())
        .ok_or_else(|| "is out of range".to_string())
}

/// One label: trimmed, lowercased, 1 to 50 characters, no commas (they separate labels in
/// the `label` filter) or control characters.
pub fn parse_label(s: &str) -> Result<String, String> {
    let l = s.trim().to_lowercase();
    let n = l.chars().count();
    if n == 0 || n > MAX_LABEL_CHARS {
        return Err(format!("must be 1 to {MAX_LABEL_CHARS} characters"));
    }
    if l.contains(',') || l.chars().any(char::is_control) {
        return Err("must not contain commas or control characters".into());
    }
    Ok(l)
}

/// The label set: each normalised, duplicates dropped, sorted.
fn parse_labels(labels: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        match parse_label(l) {
            Ok(l) => out.push(l),
            Err(m) => errors.push(FieldError::new(format!("labels[{i}]"), m)),
        }
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_LABELS {
        errors.push(FieldError::new(
            "labels",
            format!("must have at most {MAX_LABELS} distinct labels"),
        ));
    }
    out
}

/// The first problem with a value nested in attributes: keys MongoDB cannot store as given
/// (`$…`, dots, NUL), numbers outside signed 64 bits, nesting deeper than the limit.
fn nested_problem(v: &Value, depth: usize) -> Option<String> {
    if depth >= MAX_ATTRIBUTE_DEPTH {
        return Some(format!("nests deeper than {MAX_ATTRIBUTE_DEPTH} levels"));
    }
    match v {
        Value::Object(m) => m.iter().find_map(|(k, v)| {
            if k.is_empty() || k.starts_with('$') || k.contains('.') || k.contains('\0') {
                Some(format!(
                    "nested key `{k}` must be non-empty, not start with $ and contain no dots"
                ))
            } else {
                nested_problem(v, depth + 1)
            }
        }),
        Value::Array(a) => a.iter().find_map(|v| nested_problem(v, depth + 1)),
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => {
            Some("numbers must fit in a signed 64-bit integer".into())
        }
        _ => None,
    }
}

/// Validates an attributes object; errors name the offending key (`attributes.<key>`). Nested
/// values follow MongoDB's rules too ([`nested_problem`]).
pub fn validate_attributes(v: &Value, errors: &mut Vec<FieldError>) {
    attributes::validate_attributes_with(v, errors, |k, val, errors| {
        if !attributes::valid_attribute_key(k) {
            errors.push(attributes::invalid_key(k));
        } else if let Some(m) = nested_problem(val, 0) {
            errors.push(FieldError::new(format!("attributes.{k}"), m));
        }
    });
}

impl CreateTask {
    /// The new task (revision 1) of `tenant_id`, created at `now`.
    pub fn into_task(self, tenant_id: Uuid, now: DateTime<Utc>) -> Result<Task, ApiError> {
        let mut p = Problems::default();
        let title = p.check("title", parse_title(&self.title));
        let description = match &self.description {
            Some(d) => p.check("description", parse_description(d)).map(Some),
            None => Some(None),
        };
        let status = self.status.unwrap_or(Status::Todo);
        if !status.is_open() {
            p.0.push(FieldError::new(
                "status",
                "a task starts as todo or in_progress; move it to done or cancelled afterwards",
            ));
        }
        let assignee = match &self.assignee {
            Some(a) => p.check("assignee", parse_assignee(a)).map(Some),
            None => Some(None),
        };
        let due_at = match &self.due_at {
            Some(d) => p.check("dueAt", parse_date_time(d)).map(Some),
            None => Some(None),
        };
        let labels = parse_labels(self.labels.as_deref().unwrap_or_default(), &mut p.0);
        let attributes = self.attributes.unwrap_or_else(|| Value::Object(Map::new()));
        validate_attributes(&attributes, &mut p.0);
        p.finish()?;
        let (Some(title), Some(description), Some(assignee), Some(due_at)) =
            (title, description, assignee, due_at)
        else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "validation lost an error"
            )));
        };
        Ok(Task {
            id: Uuid::new_v4(),
            tenant_id,
            title,
            description,
            status,
            priority: self.priority.unwrap_or_default(),
            assignee,
            due_at,
            labels,
            attributes,
            revision: 1,
            created_at: now,
            updated_at: now,
            completed_at: None,
        })
    }
}

fn not_null<T>(p: &mut Problems, field: &str, v: Option<Option<T>>) -> Option<T> {
    match v {
        Some(None) => {
            p.0.push(FieldError::new(field, "must not be null"));
            None
        }
        Some(Some(v)) => Some(v),
        None => None,
    }
}

impl UpdateTask {
    /// The validated changes, or a 422 naming every bad field (or `body` when nothing changes).
    pub fn validate(self) -> Result<Changes, ApiError> {
        let mut p = Problems::default();
        let mut c = Changes::default();
        if let Some(t) = not_null(&mut p, "title", self.title) {
            c.title = p.check("title", parse_title(&t));
        }
        if let Some(d) = self.description {
            c.description = match d {
                Some(d) => p.check("description", parse_description(&d)).map(Some),
                None => Some(None),
            };
        }
        c.status = not_null(&mut p, "status", self.status);
        c.priority = not_null(&mut p, "priority", self.priority);
        if let Some(a) = self.assignee {
            c.assignee = match a {
                Some(a) => p.check("assignee", parse_assignee(&a)).map(Some),
                None => Some(None),
            };
        }
        if let Some(d) = self.due_at {
            c.due_at = match d {
                Some(d) => p.check("dueAt", parse_date_time(&d)).map(Some),
                None => Some(None),
            };
        }
        if let Some(l) = not_null(&mut p, "labels", self.labels) {
            c.labels = Some(parse_labels(&l, &mut p.0));
        }
        match self.attributes {
            Some(Some(Value::Object(m))) => c.attributes = Some(m),
            Some(_) => p.0.push(FieldError::new(
                "attributes",
                "must be a JSON object (a merge patch)",
            )),
            None => {}
        }
        let any = c.title.is_some()
            || c.description.is_some()
            || c.status.is_some()
            || c.priority.is_some()
            || c.assignee.is_some()
            || c.due_at.is_some()
            || c.labels.is_some()
            || c.attributes.is_some();
        if !any && p.0.is_empty() {
            return Err(ApiError::invalid("body", "names no field to change"));
        }
        p.finish()?;
        Ok(c)
    }
}

impl Changes {
    /// `current` with the changes applied: the next revision, or a 409 when `status` names a
    /// transition the state machine refuses, or a 422 when the merged attributes are invalid.
    pub fn apply(&self, current: &Task, now: DateTime<Utc>) -> Result<Task, ApiError> {
        let mut next = current.successor(now);
        if let Some(to) = self.status {
            if to != current.status {
                check_transition(current.status, to)?;
                next.enter(to, now);
            }
        }
        if let Some(t) = &self.title {
            next.title = t.clone();
        }
        if let Some(d) = &self.description {
            next.description = d.clone();
        }
        if let Some(pr) = self.priority {
            next.priority = pr;
        }
        if let Some(a) = &self.assignee {
            next.assignee = a.clone();
        }
        if let Some(d) = self.due_at {
            next.due_at = d;
        }
        if let Some(l) = &self.labels {
            next.labels = l.clone();
        }
        if let Some(patch) = &self.attributes {
            merge_patch(&mut next.attributes, &Value::Object(patch.clone()));
            let mut errors = Vec::new();
            validate_attributes(&next.attributes, &mut errors);
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(status: Status) -> Task {
        CreateTask {
            title: "t".into(),
            description: None,
            status: None,
            priority: None,
            assignee: None,
            due_at: None,
            labels: None,
            attributes: None,
        }
        .into_task(Uuid::new_v4(), now())
        .map(|mut t| {
            t.status = status;
            t
        })
        .unwrap()
    }

    #[test]
    fn the_state_machine_allows_exactly_the_documented_moves() {
        let allowed = [
            (Status::Todo, Status::InProgress),
            (Status::Todo, Status::Cancelled),
            (Status::InProgress, Status::Done),
            (Status::InProgress, Status::Todo),
            (Status::InProgress, Status::Cancelled),
            (Status::Done, Status::InProgress),
            (Status::Cancelled, Status::Todo),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                let ok = check_transition(from, to).is_ok();
                assert_eq!(ok, allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
        let e = check_transition(Status::Todo, Status::Done).unwrap_err();
        assert_eq!(e.status(), 409);
        let p = e.problem();
        assert_eq!(p.errors[0].field, "status");
        assert!(p.errors[0].message.contains("in_progress, cancelled"));
    }

    #[test]
    fn completed_at_follows_done() {
        let t = task(Status::InProgress);
        let done = t.transition(Status::Done, now()).unwrap();
        assert!(done.completed_at.is_some());
        assert_eq!(done.revision, t.revision + 1);
        let reopened = done.transition(Status::InProgress, now()).unwrap();
        assert_eq!(reopened.completed_at, None);
    }

    #[test]
    fn labels_are_normalised_deduplicated_and_bounded() {
        let mut errors = vec![];
        let l = parse_labels(
            &[
                " Bug".into(),
                "bug".into(),
                "UI".into(),
                "a,b".into(),
                "".into(),
            ],
            &mut errors,
        );
        assert_eq!(l, ["bug", "ui"]);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["labels[3]", "labels[4]"]);
        let mut errors = vec![];
        let many: Vec<String> = (0..21).map(|i| format!("l{i}")).collect();
        parse_labels(&many, &mut errors);
        assert_eq!(errors[0].field, "labels");
        let mut errors = vec![];
        parse_labels(&["x".repeat(51)], &mut errors);
        assert_eq!(errors[0].field, "labels[0]");
    }

    #[test]
    fn create_reports_every_bad_field() {
        let e = CreateTask {
            title: "  ".into(),
            description: Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
            status: Some(Status::Done),
            priority: None,
            assignee: Some(" x".into()),
            due_at: Some("tomorrow".into()),
            labels: Some(vec!["".into()]),
            attributes: Some(json!({"1bad": 1, "deep": {"$x": 1}})),
        }
        .into_task(Uuid::new_v4(), now())
        .unwrap_err();
        let fields: Vec<String> = e.problem().errors.into_iter().map(|f| f.field).collect();
        assert_eq!(
            fields,
            [
                "title",
                "description",
                "status",
                "assignee",
                "dueAt",
                "labels[0]",
                "attributes.1bad",
                "attributes.deep"
            ]
        );
    }

    #[test]
    fn due_dates_are_rfc3339_in_range_and_normalised_to_utc_millis() {
        let d = parse_date_time("2025-03-01T18:00:00.123456+01:00").unwrap();
        assert_eq!(d.to_rfc3339(), "2025-03-01T17:00:00.123+00:00");
        assert!(parse_date_time("2025-03-01").is_err());
        assert!(parse_date_time("0001-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn attributes_limits() {
        let errors_of = |v: Value| {
            let mut errors = vec![];
            validate_attributes(&v, &mut errors);
            errors
        };
        // Beyond a signed 64-bit integer, and nesting past the limit: named by key.
        for (attributes, field) in [
            (json!({"n": 18446744073709551615u64}), "attributes.n"),
            (
                json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}),
                "attributes.a",
            ),
        ] {
            assert_eq!(errors_of(attributes)[0].field, field);
        }
        let big = errors_of(json!({"blob": "x".repeat(MAX_ATTRIBUTES_BYTES)}));
        assert!(big.iter().any(|e| e.message.contains("bytes")));
    }

    #[test]
    fn patch_validation() {
        let e = UpdateTask::default().validate().unwrap_err();
        assert_eq!(e.problem().errors[0].field, "body");
        let u: UpdateTask =
            serde_json::from_value(json!({"title": null, "assignee": null})).unwrap();
        let e = u.validate().unwrap_err();
        assert_eq!(e.problem().errors[0].field, "title");
        let u: UpdateTask =
            serde_json::from_value(json!({"assignee": null, "status": "todo"})).unwrap();
        let c = u.validate().unwrap();
        assert_eq!(c.assignee, Some(None));
        // The same status is no change; another one goes through the state machine.
        let t = task(Status::Todo);
        assert_eq!(c.apply(&t, now()).unwrap().status, Status::Todo);
        let u: UpdateTask = serde_json::from_value(json!({"status": "done"})).unwrap();
        assert_eq!(
            u.validate().unwrap().apply(&t, now()).unwrap_err().status(),
            409
        );
    }
}

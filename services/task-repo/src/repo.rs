//! The `tasks` collection: how a [`Task`] is stored and the queries on it. Every call goes
//! through the tenant's [`TenantCollection`], which adds the tenant filter and `tenant_id`.
//!
//! Stored document (snake_case; `_id` and `tenant_id` are BSON UUIDs, times BSON dates):
//! `_id, tenant_id, title, description, status, priority, priority_rank (0..=3), assignee,
//! due_at, due_sort (due_at in ms, or i64::MAX without one), labels, attributes, revision,
//! created_at, updated_at, completed_at`.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, Bson, DateTime as BsonDate, Document, Uuid as BsonUuid};
use mongodb::options::FindOptions;
use prismicx_service_common::mongo::{retry_transient, TenantCollection, TenantMongoError};
use prismicx_service_common::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Priority, Status, Task};

/// `due_sort` of a task without a due date: after every date.
pub const NO_DUE_DATE: i64 = i64::MAX;

/// A task as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskDoc {
    #[serde(rename = "_id")]
    id: BsonUuid,
    /// Set by [`TenantCollection`] on insert; read back for the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<BsonUuid>,
    title: String,
    description: Option<String>,
    status: Status,
    priority: Priority,
    priority_rank: i32,
    assignee: Option<String>,
    due_at: Option<BsonDate>,
    due_sort: i64,
    labels: Vec<String>,
    attributes: Value,
    revision: i64,
    created_at: BsonDate,
    updated_at: BsonDate,
    completed_at: Option<BsonDate>,
}

pub type Tasks = TenantCollection<TaskDoc>;

use prismicx_service_common::mongo::chrono_time;
pub use prismicx_service_common::mongo::{bson_time, bson_uuid};

/// The `due_sort` value of a due date.
pub fn due_sort(due: Option<DateTime<Utc>>) -> i64 {
    due.map_or(NO_DUE_DATE, |d| d.timestamp_millis())
}

impl TaskDoc {
    fn from_task(t: &Task) -> TaskDoc {
        TaskDoc {
            id: bson_uuid(t.id),
            tenant_id: None,
            title: t.title.clone(),
            description: t.description.clone(),
            status: t.status,
            priority: t.priority,
            priority_rank: t.priority.rank(),
            assignee: t.assignee.clone(),
            due_at: t.due_at.map(bson_time),
            due_sort: due_sort(t.due_at),
            labels: t.labels.clone(),
            attributes: t.attributes.clone(),
            revision: t.revision,
            created_at: bson_time(t.created_at),
            updated_at: bson_time(t.updated_at),
            completed_at: t.completed_at.map(bson_time),
        }
    }

    fn into_task(self, tenant: Uuid) -> Task {
        Task {
            id: Uuid::from_bytes(self.id.bytes()),
            tenant_id: self
                .tenant_id
                .map_or(tenant, |t| Uuid::from_bytes(t.bytes())),
            title: self.title,
            description: self.description,
            status: self.status,
            priority: self.priority,
            assignee: self.assignee,
            due_at: self.due_at.map(chrono_time),
            labels: self.labels,
            attributes: self.attributes,
            revision: self.revision,
            created_at: chrono_time(self.created_at),
            updated_at: chrono_time(self.updated_at),
            completed_at: self.completed_at.map(chrono_time),
        }
    }
}

fn id_filter(id: Uuid) -> Document {
    doc! { "_id": bson_uuid(id) }
}

fn encode_err(e: bson::ser::Error) -> ApiError {
    ApiError::from(TenantMongoError::from(e))
}

/// Stores a new task.
pub async fn insert(tasks: &Tasks, task: &Task) -> Result<(), ApiError> {
    let d = TaskDoc::from_task(task);
    retry_transient(|| tasks.insert_one(&d)).await?;
    Ok(())
}

/// The task `id` of the tenant, if it has one.
pub async fn get(tasks: &Tasks, tenant: Uuid, id: Uuid) -> Result<Option<Task>, ApiError> {
    let found = retry_transient(|| tasks.find_one(id_filter(id))).await?;
    Ok(found.map(|d| d.into_task(tenant)))
}

/// Replaces the mutable fields of `next.id` with `next`'s, if the stored task is still at
/// `expected` revision. Returns whether it was (one atomic conditional update: of two writers
/// holding the same revision, exactly one matches).
pub async fn update_if(tasks: &Tasks, next: &Task, expected: i64) -> Result<bool, ApiError> {
    let mut set = bson::to_document(&TaskDoc::from_task(next)).map_err(encode_err)?;
    for immutable in ["_id", "tenant_id", "created_at"] {
        set.remove(immutable);
    }
    let mut filter = id_filter(next.id);
    filter.insert("revision", expected);
    let update = doc! { "$set": set };
    let matched = retry_transient(|| tasks.update_one(filter.clone(), update.clone())).await?;
    Ok(matched == 1)
}

/// Deletes task `id` if it is still at `expected` revision; returns whether it was.
pub async fn delete_if(tasks: &Tasks, id: Uuid, expected: i64) -> Result<bool, ApiError> {
    let mut filter = id_filter(id);
    filter.insert("revision", expected);
    let deleted = retry_transient(|| tasks.delete_one(filter.clone())).await?;
    Ok(deleted == 1)
}

/// Up to `limit` tasks matching `filter`, ordered by `sort` (`{field: ±1, _id: ±1}`).
pub async fn list(
    tasks: &Tasks,
    tenant: Uuid,
    filter: Document,
    sort: Document,
    limit: i64,
) -> Result<Vec<Task>, ApiError> {
    let options = FindOptions::builder().sort(sort).limit(limit).build();
    let docs = retry_transient(|| tasks.find(filter.clone(), Some(options.clone()))).await?;
    Ok(docs.into_iter().map(|d| d.into_task(tenant)).collect())
}

/// The id as a filter value (for cursors).
pub fn id_bson(id: Uuid) -> Bson {
    bson_uuid(id).into()
}

//! Cursor pagination: opaque cursors (base64url JSON of the last item's sort key) and limits.
//!
//! A list handler reads its page size with [`limit`] (or [`limit_param`] from raw query
//! parameters) and its position with [`cursor`], fetches one item more than the limit, and
//! answers [`Page::from_overfetch`]. [`PageQuery`] is the query of a list without filters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// A validated page size.
pub fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// The page size of a query read as raw parameters (`limit` absent: the default).
pub fn limit_param(params: &std::collections::HashMap<String, String>) -> Result<u32, ApiError> {
    limit_text(params.get("limit").map(String::as_str))
}

/// The validated page size and the decoded cursor of a query read as raw parameters.
pub fn page_params<T: DeserializeOwned>(
    params: &std::collections::HashMap<String, String>,
) -> Result<(u32, Option<T>), ApiError> {
    Ok((
        limit_param(params)?,
        cursor(params.get("cursor").map(String::as_str))?,
    ))
}

/// The page size sent as the text `requested` (absent: the default).
pub fn limit_text(requested: Option<&str>) -> Result<u32, ApiError> {
    limit(
        requested
            .map(|l| {
                l.parse::<u32>()
                    .map_err(|_| ApiError::bad_request("limit", "must be a whole number"))
            })
            .transpose()?,
    )
}

/// The decoded `cursor` parameter, if one was sent.
pub fn cursor<T: DeserializeOwned>(cursor: Option<&str>) -> Result<Option<T>, ApiError> {
    cursor.map(decode_cursor).transpose()
}

/// Query of the paginated lists without filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The validated page size and the decoded cursor.
    pub fn page<T: DeserializeOwned>(&self) -> Result<(u32, Option<T>), ApiError> {
        page(self.limit, self.cursor.as_deref())
    }
}

/// The validated page size and the decoded cursor of a list query.
pub fn page<T: DeserializeOwned>(
    requested: Option<u32>,
    cursor_sent: Option<&str>,
) -> Result<(u32, Option<T>), ApiError> {
    Ok((limit(requested)?, cursor(cursor_sent)?))
}

pub fn encode_cursor<T: Serialize>(key: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, ApiError> {
    let bad = || ApiError::bad_request("cursor", "is not a cursor this API issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items: the extra one only says there is more.
    pub fn from_overfetch<K: Serialize>(
        mut items: Vec<T>,
        limit: u32,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = if more {
            items.last().map(|last| encode_cursor(&key(last)))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(&("2024-01-01T00:00:00Z", 42));
        let back: (String, i32) = decode_cursor(&c).unwrap();
        assert_eq!(back.1, 42);
        assert_eq!(
            decode_cursor::<(String, i32)>("!!!").unwrap_err().status(),
            400
        );
        assert_eq!(
            decode_cursor::<(String, i32)>("e30").unwrap_err().status(),
            400
        );
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
    }

    #[test]
    fn overfetch_sets_the_cursor_only_when_more_remain() {
        let p = Page::from_overfetch(vec![1, 2, 3], 2, |x| *x);
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(
            decode_cursor::<i32>(p.next_cursor.as_deref().unwrap()).unwrap(),
            2
        );
        let p = Page::from_overfetch(vec![1, 2], 2, |x| *x);
        assert!(p.next_cursor.is_none());
    }
}

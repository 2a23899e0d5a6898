//! Cursor pagination (SPEC section 7): `limit` ≤ 500, an opaque `cursor`,
//! answers `{"data": [...], "next_cursor": ...}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// A page of results and the cursor to the next one (`null` at the end).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Checks `limit` (1..=500, default 50).
pub fn limit(raw: Option<i64>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}"))),
    }
}

/// Encodes the sort key of the last row shown.
pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

pub fn decode_cursor<K: DeserializeOwned>(raw: &str) -> Result<K, ApiError> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this list gave out"))
}

/// Builds a page from `rows` fetched with `limit + 1`: the extra row only says
/// that there is more.
pub fn page<R, T, K: Serialize>(mut rows: Vec<R>, limit: i64, key: impl Fn(&R) -> K, view: impl Fn(R) -> T) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| encode_cursor(&key(r))) } else { None };
    Page { data: rows.into_iter().map(view).collect(), next_cursor }
}

/// [`page`] with a view that can fail (a stored value that does not read back).
pub fn try_page<R, T, K: Serialize, E>(
    mut rows: Vec<R>,
    limit: i64,
    key: impl Fn(&R) -> K,
    view: impl Fn(R) -> Result<T, E>,
) -> Result<Page<T>, E> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| encode_cursor(&key(r))) } else { None };
    Ok(Page { data: rows.into_iter().map(view).collect::<Result<_, E>>()?, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor(&("liabilities:x", "KRW"));
        assert_eq!(decode_cursor::<(String, String)>(&c).expect("round trip"), ("liabilities:x".into(), "KRW".into()));
        assert_eq!(
            decode_cursor::<(String, String)>("!!").map_err(|e| e.code.as_str()).err(),
            Some("validation_failed")
        );
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let p = page(vec![1, 2, 3], 2, |r| *r, |r| r * 10);
        assert_eq!(p.data, vec![10, 20]);
        assert_eq!(p.next_cursor, Some(encode_cursor(&2)));
        let p = page(vec![1, 2], 2, |r| *r, |r| r);
        assert_eq!(p.next_cursor, None);
        assert_eq!(limit(Some(501)).map_err(|e| e.code.as_str()).err(), Some("validation_failed"));
        assert_eq!(limit(Some(0)).map_err(|e| e.code.as_str()).err(), Some("validation_failed"));
    }
}

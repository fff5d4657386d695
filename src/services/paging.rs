//! Keyset paging, newest first, shared by every list that pages
//! (`/users/me/events`, the admin's users and events): a page asks for
//! `limit` rows older than the `(timestamp, id)` of the last row of the
//! page before, so a row written meanwhile never shifts another to the next
//! page or shows one twice. The cursor is opaque to clients.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ServiceError;

/// The most rows one page holds, and the default.
pub const MAX_PAGE: u32 = 100;
pub const DEFAULT_PAGE: u32 = 20;

/// Checks `limit` and decodes `cursor`: the position the page starts
/// after, or `None` for the first page.
pub fn check(
    limit: u32,
    cursor: Option<&str>,
) -> Result<Option<(OffsetDateTime, Uuid)>, ServiceError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ServiceError::invalid(
            "limit",
            format!("must be an integer from 1 to {MAX_PAGE}"),
        ));
    }
    cursor
        .map(|text| {
            decode(text)
                .ok_or_else(|| ServiceError::invalid("cursor", "is not a cursor this API gave"))
        })
        .transpose()
}

/// The cursor of the page after the row at `(at, id)`.
pub fn cursor(at: OffsetDateTime, id: Uuid) -> String {
    let micros = at.unix_timestamp_nanos() / 1_000;
    URL_SAFE_NO_PAD.encode(format!("{micros}.{id}"))
}

fn decode(text: &str) -> Option<(OffsetDateTime, Uuid)> {
    if text.len() > 128 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (micros, id) = text.split_once('.')?;
    let micros: i128 = micros.parse().ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1_000)?).ok()?;
    Some((at, id.parse().ok()?))
}

/// Keeps the first `limit` of `rows` (fetched with one more than `limit`)
/// and gives the cursor of the next page, if there is one.
pub fn split<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> (OffsetDateTime, Uuid),
) -> (Vec<T>, Option<String>) {
    if rows.len() <= limit as usize {
        return (rows, None);
    }
    rows.truncate(limit as usize);
    let next = rows.last().map(|row| {
        let (at, id) = key(row);
        cursor(at, id)
    });
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_comes_back_as_it_went_and_garbage_does_not() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_780_000_000_123_456_000).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode(&cursor(at, id)), Some((at, id)));
        for bad in ["", "x", "!!!", &URL_SAFE_NO_PAD.encode("12.not-a-uuid")] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        assert!(check(0, None).is_err());
        assert!(check(101, None).is_err());
        assert!(matches!(check(100, None), Ok(None)));
    }

    #[test]
    fn a_page_keeps_its_limit_and_points_past_its_last_row() {
        let at = OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
        let rows: Vec<(OffsetDateTime, Uuid)> = (0..3).map(|_| (at, Uuid::now_v7())).collect();
        let (page, next) = split(rows.clone(), 2, |row| *row);
        assert_eq!(page, rows[..2]);
        assert_eq!(next, Some(cursor(at, rows[1].1)));
        let (page, next) = split(rows.clone(), 3, |row| *row);
        assert_eq!(page.len(), 3);
        assert_eq!(next, None);
    }
}

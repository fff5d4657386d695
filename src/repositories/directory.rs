//! The admin's view of the accounts: the user with its state, found by an
//! address prefix and filters, paged newest first by keyset.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// A user as an admin sees it.
#[derive(Debug, Clone)]
pub struct DirectoryEntry {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub email_verified: bool,
    pub mfa_enabled: bool,
    pub created_at: OffsetDateTime,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub last_login_at: Option<OffsetDateTime>,
    pub active_sessions: i64,
}

impl From<&Row> for DirectoryEntry {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            email: row.get("email"),
            full_name: row.get("full_name"),
            email_verified: row.get("email_verified"),
            mfa_enabled: row.get("mfa_enabled"),
            created_at: row.get("created_at"),
            disabled: row.get("disabled"),
            disabled_reason: row.get("disabled_reason"),
            last_login_at: row.get("last_login_at"),
            active_sessions: row.get("active_sessions"),
        }
    }
}

/// What to look for; `None` leaves a criterion out.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A prefix of the (lower-cased) address.
    pub email_prefix: Option<String>,
    pub verified: Option<bool>,
    pub mfa: Option<bool>,
    pub disabled: Option<bool>,
}

const COLUMNS: &str = "u.id, u.email, u.full_name, u.email_verified, u.mfa_enabled, u.created_at, \
    u.disabled_at IS NOT NULL AS disabled, u.disabled_reason, u.last_login_at, \
    (SELECT count(*) FROM sessions s \
     WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > now()) AS active_sessions";

/// At most `limit` users matching `filter`, created before `after` (the
/// `(created_at, id)` of the previous page's last), newest first.
///
/// The statement holds only the criteria asked for, so every plan, custom
/// or generic, can use the indexes: the prefix is a byte-wise range
/// (`~>=~`, `~<~`) that the `text_pattern_ops` index serves, where a `LIKE`
/// with a parameter could use it only in a custom plan.
pub async fn search(
    client: &impl GenericClient,
    filter: &Filter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<DirectoryEntry>, tokio_postgres::Error> {
    let mut params = Params::default();
    let mut conditions = vec!["u.is_active".to_owned()];
    if let Some(prefix) = filter.email_prefix.as_deref().filter(|p| !p.is_empty()) {
        if let Some(end) = prefix_end(prefix) {
            conditions.push(format!("u.email ~<~ {}", params.add(end)));
        }
        conditions.push(format!("u.email ~>=~ {}", params.add(prefix.to_owned())));
    }
    if let Some(verified) = filter.verified {
        conditions.push(format!("u.email_verified = {}", params.add(verified)));
    }
    if let Some(mfa) = filter.mfa {
        conditions.push(format!("u.mfa_enabled = {}", params.add(mfa)));
    }
    if let Some(disabled) = filter.disabled {
        conditions.push(format!(
            "(u.disabled_at IS NOT NULL) = {}",
            params.add(disabled)
        ));
    }
    if let Some((at, id)) = after {
        let (at, id) = (params.add(at), params.add(id));
        conditions.push(format!("(u.created_at, u.id) < ({at}, {id})"));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM users u WHERE {} ORDER BY u.created_at DESC, u.id DESC LIMIT {}",
        conditions.join(" AND "),
        params.add(limit),
    );
    // Prepared afresh, not cached: a statement run five times may get a
    // generic plan, and the generic plan of a prefix search cannot know how
    // narrow the range is. At 1M users it walked the newest-first index
    // through every user to find eleven (643 ms, against 0.2 ms for the
    // plan made with the values; bench/ANALYSIS.md). A fresh statement is
    // planned with its values, for one more round trip.
    let statement = client.prepare(&sql).await?;
    let rows = client.query(&statement, &params.refs()).await?;
    Ok(rows.iter().map(DirectoryEntry::from).collect())
}

/// The values of a statement built from the criteria present, each
/// numbered as it is added.
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// Adds `value`; its placeholder (`$n`).
    fn add(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|value| value.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// One user, by id.
pub async fn find(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<DirectoryEntry>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE u.id = $1 AND u.is_active");
    let statement = client.prepare_cached(&sql).await?;
    Ok(client
        .query_opt(&statement, &[&id])
        .await?
        .as_ref()
        .map(DirectoryEntry::from))
}

/// The recovery codes the user has not used yet.
pub async fn recovery_codes_left(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    const SQL: &str =
        "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.query_one(&statement, &[&user_id]).await?.get(0))
}

/// The smallest text greater than every text that starts with `prefix`, in
/// byte (code point) order: `prefix` with its last character moved one on;
/// `None` when no such text exists.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_where_its_last_character_moves_on() {
        assert_eq!(prefix_end("ali").as_deref(), Some("alj"));
        assert_eq!(prefix_end("a@").as_deref(), Some("aA"));
        assert_eq!(prefix_end("\u{d7ff}").as_deref(), Some("\u{e000}"));
        assert_eq!(prefix_end("b\u{10ffff}").as_deref(), Some("c"));
        assert_eq!(prefix_end("\u{10ffff}"), None);
        assert_eq!(prefix_end(""), None);
    }
}

//! What each kind of job does between the ledger and the mail: one file a
//! kind, each a `prepare` step that a test can call on its own database.
//! Every step answers with the email to send, or why nothing is sent.

pub mod email_link;
pub mod notice;
pub mod reset_link;
pub mod webhook;

use deadpool_postgres::{Object, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::emails::EmailText;
use crate::repositories::{links, users};

/// What a job's step decided.
pub enum Prepared {
    /// Send this email.
    Send(EmailText),
    /// Send nothing, for this reason (logged, and the job is done).
    Skip(&'static str),
}

/// Why a link job asked for before the account recovered sends nothing
/// (CONTRACT.md, "Recovery ends what an intruder left behind").
pub const RECOVERED: &str = "the account recovered since the link was asked for";

/// Why a link job whose link was used or superseded sends nothing.
pub const SPENT: &str = "the link was used or superseded";

/// Opens the transaction a link is made in, holding the user's link lock
/// until it ends; `None` when the account recovered since the link was
/// asked for at `requested_at`, so no link may be made.
async fn open_link(
    writer: &mut Object,
    user_id: Uuid,
    requested_at: OffsetDateTime,
) -> anyhow::Result<Option<Transaction<'_>>> {
    let tokens = writer.transaction().await?;
    links::lock_user_links(&tokens, user_id).await?;
    if users::links_revoked_since(&tokens, user_id, requested_at).await? {
        tokens.commit().await?;
        return Ok(None);
    }
    Ok(Some(tokens))
}

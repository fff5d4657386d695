//! What each kind of job does between the ledger and the mail: one file a
//! kind, each a `prepare` step that a test can call on its own database.
//! Every step answers with the email to send, or why nothing is sent.

pub mod email_link;
pub mod notice;
pub mod reset_link;

use super::emails::EmailText;

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

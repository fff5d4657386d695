//! One job, start to end (STYLE.md, habit 9): `handle` takes a message and
//! returns what to do with it; the consumer loop only acks, retries or
//! dead-letters. A job id is handled at most once: a ledger row marks it
//! done, and concurrent deliveries of one job wait for each other on an
//! advisory lock held by the ledger's transaction. Between the ledger and
//! the mail, `run` only routes: what each kind does is in [`super::jobs`].
//!
//! A link's token (reset, verification, new address) is committed (on a
//! second connection) before the email goes out, so a link is never live
//! before its token is; the ledger row is committed after. Tokens are
//! random: a crash between the two makes the redelivery replace the job's
//! token and send the email again under the same message id, so only the
//! newest copy's link works, and the file transport replaces the first.

use std::sync::Arc;

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::jobs::{self, Prepared};
use crate::config::Config;
use crate::mail::{Mailer, OutgoingEmail};
use crate::messaging::jobs::{JobKind, JobMessage};
use crate::messaging::topology::JobQueue;
use crate::repositories::{processed_jobs, users};

/// What the worker needs to handle jobs.
pub struct JobContext {
    pub config: Arc<Config>,
    pub db: Pool,
    pub mailer: Mailer,
    /// Delivers security events; `None` without `WEBHOOK_URL`.
    pub webhooks: Option<super::jobs::webhook::Webhooks>,
}

/// What became of one delivery.
#[derive(Debug)]
pub enum Outcome {
    /// The email was handed off.
    Sent,
    /// Nothing to send (the user is gone).
    Skipped,
    /// Already handled under this job id.
    Duplicate,
    /// Failed for now; try again later.
    Retry(anyhow::Error),
    /// Can never succeed (a malformed message).
    DeadLetter(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Skipped => "skipped",
            Outcome::Duplicate => "duplicate",
            Outcome::Retry(_) => "failed",
            Outcome::DeadLetter(_) => "rejected",
        }
    }
}

/// Parses a delivery's body into its message and kind.
pub fn parse(queue: JobQueue, body: &[u8]) -> Result<(JobMessage, JobKind), String> {
    let message: JobMessage =
        serde_json::from_slice(body).map_err(|_| "the message is not a job".to_owned())?;
    let kind = JobKind::parse(queue, &message.kind).ok_or_else(|| {
        format!(
            "unknown job kind `{}` on {}",
            message.kind,
            queue.base_name()
        )
    })?;
    Ok((message, kind))
}

pub async fn handle(
    ctx: &JobContext,
    message: &JobMessage,
    kind: JobKind,
    correlation_id: &str,
) -> Outcome {
    match run(ctx, message, kind, correlation_id).await {
        Ok(outcome) => outcome,
        Err(error) if is_permanent(&error) => Outcome::DeadLetter(format!("{error:#}")),
        Err(error) => Outcome::Retry(error),
    }
}

/// Failures no retry can mend: the mail server refused for good (5xx), or
/// the address is not one.
fn is_permanent(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<lettre::transport::smtp::Error>()
            .is_some_and(lettre::transport::smtp::Error::is_permanent)
            || cause
                .downcast_ref::<lettre::address::AddressError>()
                .is_some()
    })
}

async fn run(
    ctx: &JobContext,
    message: &JobMessage,
    kind: JobKind,
    correlation_id: &str,
) -> anyhow::Result<Outcome> {
    let queue = kind.queue().base_name();
    let mut client = ctx.db.get().await?;
    let ledger = client.transaction().await?;
    processed_jobs::lock_job(&ledger, message.job_id).await?;
    if processed_jobs::is_processed(&ledger, message.job_id).await? {
        return Ok(Outcome::Duplicate);
    }
    let user = users::find_active_user(&ledger, message.user_id).await?;
    // The notice of a deletion goes to the address the account had; every
    // other job of a user who is gone has nothing left to do.
    let Some(recipient) = (match (&user, kind) {
        (_, JobKind::AccountDeletedNotice) => Some(message.email.clone()),
        (Some(_), kind) if kind.to_message_address() => Some(message.email.clone()),
        (Some(user), _) => Some(user.email.clone()),
        (None, _) => None,
    }) else {
        return skip(ledger, message, queue, "the user is gone; nothing to send").await;
    };
    let prepared = match (kind, &user) {
        (JobKind::PasswordResetLink | JobKind::InvitationLink, Some(user)) => {
            jobs::reset_link::prepare(ctx, user, message, kind).await?
        }
        (JobKind::VerifyEmail | JobKind::ChangeEmail, Some(user)) => {
            jobs::email_link::prepare(ctx, user, message, kind).await?
        }
        (notice, _) => jobs::notice::prepare(ctx, notice),
    };
    let text = match prepared {
        Prepared::Send(text) => text,
        Prepared::Skip(why) => return skip(ledger, message, queue, why).await,
    };
    let email = OutgoingEmail {
        to: recipient,
        subject: text.subject,
        text: text.text,
        html: text.html,
        id: email_id(message.job_id),
        correlation_id: correlation_id.to_owned(),
    };
    ctx.mailer.send(&email).await?;
    processed_jobs::mark_processed(&ledger, message.job_id, queue, "sent").await?;
    ledger.commit().await?;
    tracing::info!(job_id = %message.job_id, kind = kind.as_str(), "email sent");
    Ok(Outcome::Sent)
}

/// Records the job as done with nothing sent.
async fn skip(
    ledger: deadpool_postgres::Transaction<'_>,
    message: &JobMessage,
    queue: &str,
    why: &str,
) -> anyhow::Result<Outcome> {
    processed_jobs::mark_processed(&ledger, message.job_id, queue, "skipped").await?;
    ledger.commit().await?;
    tracing::info!(job_id = %message.job_id, "{why}");
    Ok(Outcome::Skipped)
}

fn email_id(job_id: Uuid) -> String {
    job_id.to_string()
}

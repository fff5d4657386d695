//! `password_reset` and `invitation`: a new set-password token for the
//! user, every earlier one superseded, and the email with its link
//! (CONTRACT.md, "Password reset, end to end" and "Admin API"). An
//! invitation's link lives `INVITE_TTL_SECONDS` and has its own wording.

use super::{Prepared, RECOVERED, SPENT};
use crate::messaging::jobs::{JobKind, JobMessage};
use crate::repositories::password_resets::{self, ResetPurpose};
use crate::repositories::users::UserRecord;
use crate::security::tokens::OpaqueToken;
use crate::worker::JobContext;
use crate::worker::emails::{self, EmailText};

use std::time::Duration;

/// Makes the job's token and the email that carries it. The token is
/// committed before the email goes out, so a link is never live before its
/// token is.
pub async fn prepare(
    ctx: &JobContext,
    user: &UserRecord,
    message: &JobMessage,
    kind: JobKind,
) -> anyhow::Result<Prepared> {
    // Random, stored only as its hash: nothing in logs, messages or the
    // email's headers is enough to rebuild it (CONTRACT.md, "Signing keys
    // and JWKS").
    let token = OpaqueToken::generate();
    let (purpose, ttl, email): (_, _, fn(&str, &str, Duration) -> EmailText) = match kind {
        JobKind::InvitationLink => (
            ResetPurpose::Invite,
            ctx.config.invite_ttl,
            emails::invitation_link,
        ),
        _ => (
            ResetPurpose::Reset,
            ctx.config.password_reset_ttl,
            emails::reset_link,
        ),
    };
    let mut writer = ctx.db.get().await?;
    let Some(tokens) = super::open_link(&mut writer, user.id, message.requested_at).await? else {
        return Ok(Prepared::Skip(RECOVERED));
    };
    let live = password_resets::store_job_token(
        &tokens,
        message.job_id,
        user.id,
        &token.hash,
        ttl.as_secs() as i64,
        purpose,
    )
    .await?;
    if !live {
        // Its link was used or superseded by a newer request: the email went
        // out before, and a new link now would outlive it.
        tokens.commit().await?;
        return Ok(Prepared::Skip(SPENT));
    }
    password_resets::supersede_other_tokens(&tokens, user.id, &token.hash).await?;
    tokens.commit().await?;
    Ok(Prepared::Send(email(
        &ctx.config.public_url,
        &token.text,
        ttl,
    )))
}

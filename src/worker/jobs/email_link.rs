//! `verify_email` and `change_email`: a link that proves an address, the
//! account's own or a new one, every earlier link of that purpose
//! superseded (CONTRACT.md, "Email verification and the account's
//! lifecycle").

use super::{Prepared, RECOVERED, SPENT};
use crate::messaging::jobs::{JobKind, JobMessage};
use crate::repositories::email_tokens::{self, Purpose};
use crate::repositories::users::UserRecord;
use crate::security::tokens::OpaqueToken;
use crate::worker::JobContext;
use crate::worker::emails;

/// Makes the job's token and the email that carries it, or nothing for an
/// address that needs no link any more.
pub async fn prepare(
    ctx: &JobContext,
    user: &UserRecord,
    message: &JobMessage,
    kind: JobKind,
) -> anyhow::Result<Prepared> {
    let purpose = if kind == JobKind::VerifyEmail {
        // Verified meanwhile, or no longer the account's address.
        if user.email_verified || user.email != message.email {
            return Ok(Prepared::Skip("the address needs no link"));
        }
        Purpose::VerifyEmail
    } else {
        Purpose::ChangeEmail
    };
    let token = OpaqueToken::generate();
    let ttl = ctx.config.email_verification_ttl;
    let mut writer = ctx.db.get().await?;
    let Some(tokens) = super::open_link(&mut writer, user.id, message.requested_at).await? else {
        return Ok(Prepared::Skip(RECOVERED));
    };
    let live = email_tokens::store_job_token(
        &tokens,
        message.job_id,
        user.id,
        purpose,
        &message.email,
        &token.hash,
        ttl.as_secs() as i64,
    )
    .await?;
    if !live {
        tokens.commit().await?;
        return Ok(Prepared::Skip(SPENT));
    }
    email_tokens::supersede_others(&tokens, user.id, purpose, &token.hash).await?;
    tokens.commit().await?;
    let public_url = &ctx.config.public_url;
    Ok(Prepared::Send(match purpose {
        Purpose::VerifyEmail => emails::verify_link(public_url, &token.text, ttl),
        Purpose::ChangeEmail => emails::change_link(public_url, &token.text, ttl),
    }))
}

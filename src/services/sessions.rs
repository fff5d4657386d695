//! Sessions: started by a login, issuing their tokens, listed, ended one
//! by one or all at once.

use uuid::Uuid;

use super::events::{self, Event, EventType, FailureReason, Origin};
use super::{AppContext, ServiceError, db};
use crate::repositories::sessions::{
    self, Lifetimes, NewSession, RevokeReason, SessionRecord, TokenOwner,
};
use crate::repositories::users::UserRecord;
use crate::security::claims::{AccessToken, Claims};
use crate::security::tokens::OpaqueToken;

pub async fn list(ctx: &AppContext, user_id: Uuid) -> Result<Vec<SessionRecord>, ServiceError> {
    let client = db(&ctx.db).await?;
    Ok(sessions::list_live_sessions(&client, user_id).await?)
}

/// Ends one of the caller's sessions; its access tokens die at once.
///
/// The sid is denylisted before the row is revoked: if Redis fails, the
/// client gets 503 and nothing has changed, so its retry does the whole job
/// (revoking first left a retry with 404 and the sid never denylisted).
pub async fn delete(
    ctx: &AppContext,
    claims: &Claims,
    session_id: Uuid,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let client = db(&ctx.db).await?;
    if !sessions::is_live_session(&client, claims.sub, session_id).await? {
        return Err(ServiceError::NotFound);
    }
    ctx.denylist
        .deny(claims.sub, None, &[session_id], ctx.jwt.ttl())
        .await?;
    // A concurrent delete may have revoked it meanwhile; the sid is
    // denylisted either way, which is all the caller asked for.
    let mut client = client;
    let transaction = client.transaction().await?;
    if sessions::revoke_session(
        &transaction,
        claims.sub,
        session_id,
        RevokeReason::SessionDeleted,
    )
    .await?
    {
        let event = Event::of(EventType::SessionRevoked, claims.sub).in_session(session_id);
        events::record(ctx, &transaction, Some(origin), event).await?;
    }
    transaction.commit().await?;
    tracing::info!(user_id = %claims.sub, session_id = %session_id, "session deleted");
    Ok(())
}

/// The refusal of a right sign-in to a disabled account, recorded.
pub(crate) async fn refuse_disabled(
    ctx: &AppContext,
    user_id: Uuid,
    origin: &Origin,
) -> Result<ServiceError, ServiceError> {
    metrics::counter!("auth_logins_total", "outcome" => "account_disabled").increment(1);
    let event = Event::login_failed(user_id, FailureReason::Disabled);
    events::record_alone(ctx, origin, event).await?;
    Ok(ServiceError::AccountDisabled)
}

/// Longest user agent kept with a session.
const MAX_USER_AGENT_CHARS: usize = 512;

/// What a login or refresh hands the client.
pub struct IssuedTokens {
    pub access: AccessToken,
    /// The refresh token text, for the cookie.
    pub refresh: String,
}

/// Starts a session for `user` and issues its tokens, if the password is
/// still at `password_version` (the one the login verified); `None`
/// otherwise. The session and its `session.login_succeeded` event commit
/// together.
pub(crate) async fn start(
    ctx: &AppContext,
    user: &UserRecord,
    password_version: i32,
    amr: Vec<String>,
    origin: &Origin,
) -> Result<Option<IssuedTokens>, ServiceError> {
    let session_id = Uuid::new_v4();
    let refresh = OpaqueToken::generate();
    let user_agent = origin.user_agent.as_deref().map(clean_user_agent);
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let started = sessions::create_session(
        &transaction,
        &NewSession {
            session_id,
            user_id: user.id,
            user_agent: user_agent.as_deref(),
            password_version,
            amr: amr.clone(),
        },
        &refresh.hash,
        lifetimes(ctx),
    )
    .await?;
    if !started {
        return Ok(None);
    }
    let event = Event::of(EventType::SessionLoginSucceeded, user.id)
        .in_session(session_id)
        .with_details(serde_json::json!({"amr": amr}));
    events::record(ctx, &transaction, Some(origin), event).await?;
    transaction.commit().await?;
    let access = ctx
        .jwt
        .issue(user.id, session_id, user.email_verified, amr)?;
    tracing::info!(user_id = %user.id, session_id = %session_id, "logged in");
    Ok(Some(IssuedTokens {
        access,
        refresh: refresh.text,
    }))
}

pub(crate) fn issue(
    ctx: &AppContext,
    owner: TokenOwner,
    refresh: OpaqueToken,
) -> Result<IssuedTokens, ServiceError> {
    let access = ctx.jwt.issue(
        owner.user_id,
        owner.session_id,
        owner.email_verified,
        owner.amr,
    )?;
    Ok(IssuedTokens {
        access,
        refresh: refresh.text,
    })
}

/// Sets the user's "not before" mark, then revokes their sessions except
/// `keep`. The mark comes first so no access token outlives a failure.
pub(crate) async fn end_all(
    ctx: &AppContext,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<Vec<Uuid>, ServiceError> {
    let mark = crate::security::claims::unix_micros(time::OffsetDateTime::now_utc());
    ctx.denylist
        .set_not_before(user_id, mark, ctx.jwt.ttl())
        .await?;
    let client = db(&ctx.db).await?;
    let revoked = sessions::revoke_all_sessions(&client, user_id, keep, reason).await?;
    // Tokens a racing refresh issued after the mark die with their session.
    ctx.denylist
        .deny(user_id, None, &revoked, ctx.jwt.ttl())
        .await?;
    Ok(revoked)
}

/// Logs the user out everywhere: every session and access token ends, and
/// every pending emailed link. `session_id` is the one the request came
/// from, if any (an admin's comes from none).
pub(crate) async fn log_out_everywhere(
    ctx: &AppContext,
    user_id: Uuid,
    session_id: Option<Uuid>,
    origin: &Origin,
) -> Result<(), ServiceError> {
    end_all(ctx, user_id, None, RevokeReason::LogoutAll).await?;
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    super::recovery::end_pending_links(&transaction, user_id).await?;
    let mut event = Event::of(EventType::SessionLoggedOutAll, user_id);
    if let Some(session_id) = session_id {
        event = event.in_session(session_id);
    }
    events::record(ctx, &transaction, Some(origin), event).await?;
    transaction.commit().await?;
    tracing::info!(user_id = %user_id, "logged out everywhere");
    Ok(())
}

pub(crate) fn refresh_ttl_seconds(ctx: &AppContext) -> i64 {
    ctx.config.refresh_token_ttl.as_secs() as i64
}

fn lifetimes(ctx: &AppContext) -> Lifetimes {
    Lifetimes {
        refresh_seconds: refresh_ttl_seconds(ctx),
        session_max_seconds: ctx.config.session_max_lifetime.as_secs() as i64,
    }
}

/// Kept for display in the sessions list: no control characters, bounded.
pub(crate) fn clean_user_agent(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT_CHARS)
        .collect()
}

//! The signed-in user's sessions.

use uuid::Uuid;

use super::AppContext;
use super::{ServiceError, db};
use crate::repositories::sessions::{self, RevokeReason, SessionRecord};
use crate::security::jwt::Claims;

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
    sessions::revoke_session(
        &client,
        claims.sub,
        session_id,
        RevokeReason::SessionDeleted,
    )
    .await?;
    tracing::info!(user_id = %claims.sub, session_id = %session_id, "session deleted");
    Ok(())
}

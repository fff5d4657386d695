//! The signed-in user's sessions.

use uuid::Uuid;

use super::{ServiceError, db};
use crate::app::AppContext;
use crate::repositories::sessions::{self, RevokeReason, SessionRecord};
use crate::security::jwt::Claims;

pub async fn list(ctx: &AppContext, user_id: Uuid) -> Result<Vec<SessionRecord>, ServiceError> {
    let client = db(&ctx.db).await?;
    Ok(sessions::list_live_sessions(&client, user_id).await?)
}

/// Ends one of the caller's sessions; its access tokens die at once.
pub async fn delete(
    ctx: &AppContext,
    claims: &Claims,
    session_id: Uuid,
) -> Result<(), ServiceError> {
    let client = db(&ctx.db).await?;
    if !sessions::revoke_session(
        &client,
        claims.sub,
        session_id,
        RevokeReason::SessionDeleted,
    )
    .await?
    {
        return Err(ServiceError::NotFound);
    }
    ctx.denylist
        .deny(None, &[session_id], ctx.jwt.ttl())
        .await?;
    tracing::info!(user_id = %claims.sub, session_id = %session_id, "session deleted");
    Ok(())
}

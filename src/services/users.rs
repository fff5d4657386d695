//! The signed-in user's own account.

use uuid::Uuid;

use super::{ServiceError, db};
use crate::app::AppContext;
use crate::domain::FullName;
use crate::repositories::sessions::RevokeReason;
use crate::repositories::users::{self, UserRecord};
use crate::security::jwt::Claims;

pub async fn me(ctx: &AppContext, user_id: Uuid) -> Result<UserRecord, ServiceError> {
    let client = db(&ctx.db).await?;
    users::find_active_user(&client, user_id)
        .await?
        .ok_or(ServiceError::Unauthenticated)
}

pub async fn update_full_name(
    ctx: &AppContext,
    user_id: Uuid,
    full_name: Option<FullName>,
) -> Result<UserRecord, ServiceError> {
    let client = db(&ctx.db).await?;
    users::update_full_name(&client, user_id, full_name.as_ref().map(FullName::as_str))
        .await?
        .ok_or(ServiceError::Unauthenticated)
}

/// Changes the password: every other session ends, and every access token
/// issued before, the caller's included, stops working; the caller's
/// refresh cookie keeps working (CONTRACT.md, "Endpoints").
pub async fn change_password(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    new_password: String,
) -> Result<(), ServiceError> {
    let user = me(ctx, claims.sub).await?;
    if !ctx
        .hasher
        .verify(current_password, Some(&user.password_hash))
        .await?
    {
        return Err(ServiceError::WrongCurrentPassword);
    }
    let context = [user.email.as_str(), user.full_name.as_deref().unwrap_or("")];
    let new_password = ctx
        .password_policy
        .check(new_password, &context)
        .map_err(|message| ServiceError::invalid("new_password", message))?;
    let hash = ctx.hasher.hash(new_password.expose()).await?;
    {
        let client = db(&ctx.db).await?;
        if !users::update_password_hash(&client, user.id, &hash).await? {
            return Err(ServiceError::Unauthenticated);
        }
    }
    super::auth::end_all_sessions(
        ctx,
        user.id,
        Some(claims.sid),
        RevokeReason::PasswordChanged,
    )
    .await?;
    tracing::info!(user_id = %user.id, "password changed");
    Ok(())
}

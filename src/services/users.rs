//! The signed-in user's own account.

use std::net::IpAddr;

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
/// refresh cookie keeps working (CONTRACT.md, "Endpoints"). Wrong current
/// passwords count against the login limits, so a stolen access token
/// cannot be used to guess the password.
pub async fn change_password(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    new_password: String,
    client_address: IpAddr,
    correlation_id: &str,
) -> Result<(), ServiceError> {
    let user = me(ctx, claims.sub).await?;
    if !super::auth::verify_limited(ctx, &user, current_password, client_address).await? {
        return Err(ServiceError::WrongCurrentPassword);
    }
    let hash = super::auth::hash_new_password(ctx, &user, new_password).await?;
    super::auth::replace_password(
        ctx,
        &user,
        &hash,
        Some(claims.sid),
        RevokeReason::PasswordChanged,
        None,
        correlation_id,
    )
    .await?;
    tracing::info!(user_id = %user.id, "password changed");
    Ok(())
}

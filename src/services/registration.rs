//! Registration (CONTRACT.md, "Endpoints"): checked, limited per client
//! address, hashed without holding a connection, and committed with its
//! verification email.

use uuid::Uuid;

use super::events::{self, Event, EventType, Origin};
use super::{AppContext, ServiceError, credentials, db, jobs, limits};
use crate::domain::{Email, FieldError, FullName};
use crate::messaging::jobs::JobKind;
use crate::repositories::users::{self, UserRecord};

/// What a registration asks for, as sent.
pub struct Registration {
    pub email: String,
    pub password: String,
    pub full_name: Option<String>,
}

/// Creates an account. Every attempt counts against the client address's
/// registration limit first, so a flood is refused before it costs a
/// strength estimate or a hash.
pub async fn register(
    ctx: &AppContext,
    origin: &Origin,
    form: Registration,
) -> Result<UserRecord, ServiceError> {
    limits::reserve_registration(ctx, origin.address).await?;
    let mut errors = Vec::new();
    let email = Email::parse(&form.email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let full_name = match form.full_name.as_deref() {
        None => None,
        Some(raw) => FullName::parse(raw)
            .map_err(|m| errors.push(FieldError::new("full_name", m)))
            .ok(),
    };
    let context = [
        email.as_ref().map_or(form.email.as_str(), Email::as_str),
        full_name.as_ref().map_or("", FullName::as_str),
    ];
    let password = credentials::check_new_password(ctx, form.password, &context)
        .await?
        .map_err(|m| errors.push(FieldError::new("password", m)))
        .ok();
    let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
        return Err(ServiceError::Invalid(errors));
    };
    // Checked first so a taken email costs no Argon2 run; the insert below
    // still settles a race between two registrations. No connection is held
    // while the hash waits for its turn.
    if users::email_exists(&db(&ctx.db).await?, email.as_str()).await? {
        return Err(ServiceError::EmailTaken);
    }
    let hash = ctx.hasher.hash(password.expose()).await?;
    // The account and its verification email commit together.
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let user = users::insert_user(
        &transaction,
        Uuid::new_v4(),
        email.as_str(),
        &hash,
        full_name.as_ref().map(FullName::as_str),
    )
    .await?
    .ok_or(ServiceError::EmailTaken)?;
    events::record(
        ctx,
        &transaction,
        Some(origin),
        Event::of(EventType::AccountRegistered, user.id),
    )
    .await?;
    jobs::enqueue_and_commit(
        ctx,
        transaction,
        JobKind::VerifyEmail,
        user.id,
        &user.email,
        &origin.correlation_id,
    )
    .await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok(user)
}

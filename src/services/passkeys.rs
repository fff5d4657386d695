//! Passkeys (CONTRACT.md, "Passkeys (WebAuthn)"): a signed-in user
//! registers discoverable credentials after a password re-check, and anyone
//! signs in with one without naming an account. A passkey sign-in stands in
//! for the password and the second factor (`amr: ["hwk","user"]`).
//!
//! Ceremony state waits in Redis between start and finish (any api process
//! finishes it, once). Every failed sign-in is the same 401, counted against
//! the client address's login limit; the account is only known once the
//! assertion verified.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::events::{self, Event, EventType, Origin};
use super::sessions::{self as session, IssuedTokens};
use super::{AppContext, ServiceError, credentials, db, jobs, limits};
use crate::config::WebauthnSettings;
use crate::domain::has_control_characters;
use crate::messaging::jobs::JobKind;
use crate::repositories::passkeys::{self, CredentialFacts, NewPasskey, PasskeyRecord};
use crate::repositories::users;
use crate::security::claims::Claims;

/// How a passkey login authenticated (RFC 8176): a hardware-bound key and
/// the user's verification on it.
const AMR: [&str; 2] = ["hwk", "user"];

/// The relying party of the configuration.
pub fn relying_party(settings: &WebauthnSettings) -> anyhow::Result<Webauthn> {
    let (first, rest) = settings
        .origins
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("WEBAUTHN_ORIGINS lists no origin"))?;
    let mut builder = WebauthnBuilder::new(&settings.rp_id, first)?.rp_name(&settings.rp_name);
    for origin in rest {
        builder = builder.append_allowed_origin(origin);
    }
    Ok(builder.build()?)
}

/// A started ceremony: its id, and the options for the browser
/// (`PublicKeyCredentialCreationOptionsJSON` or `...RequestOptionsJSON`).
pub struct Challenge {
    pub challenge_id: Uuid,
    pub options: Value,
}

/// What waits in Redis between a registration's start and finish: the
/// library's state, bound to the account that started it.
#[derive(Serialize, Deserialize)]
struct Registration {
    user_id: Uuid,
    state: PasskeyRegistration,
}

fn webauthn(ctx: &AppContext) -> Result<&Webauthn, ServiceError> {
    ctx.webauthn.as_deref().ok_or(ServiceError::NotFound)
}

/// Starts registering a passkey for the caller, after a password re-check
/// (a guess, counted like any other). Asks for a discoverable credential
/// with user verification, excluding the account's passkeys.
pub async fn start_registration(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    origin: &Origin,
) -> Result<Challenge, ServiceError> {
    let webauthn = webauthn(ctx)?;
    if !super::users::me(ctx, claims.sub).await?.email_verified {
        return Err(ServiceError::EmailNotVerified);
    }
    let user = credentials::me_with_password(ctx, claims, current_password, origin).await?;
    let registered = passkeys::credentials_of(&db(&ctx.db).await?, user.id).await?;
    let exclude = registered
        .into_iter()
        .map(|credential| Ok(parse_passkey(credential)?.cred_id().clone()))
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let display_name = user.full_name.as_deref().unwrap_or(&user.email);
    let (mut creation, state) = webauthn
        .start_passkey_registration(user.id, &user.email, display_name, Some(exclude))
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("starting a registration: {e}")))?;
    // A discoverable credential: it signs in without an email.
    if let Some(selection) = creation.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    let challenge_id = Uuid::new_v4();
    let waiting = Registration {
        user_id: user.id,
        state,
    };
    ctx.ceremonies
        .put("registration", challenge_id, &to_json(&waiting)?)
        .await?;
    Ok(Challenge {
        challenge_id,
        options: serde_json::to_value(&creation.public_key).map_err(internal)?,
    })
}

/// Finishes a registration the caller started: the attestation verified,
/// the passkey is stored under `name`, and the owner gets a notice. No
/// session ends.
pub async fn finish_registration(
    ctx: &AppContext,
    claims: &Claims,
    challenge_id: Uuid,
    name: &str,
    credential: Value,
    origin: &Origin,
) -> Result<PasskeyRecord, ServiceError> {
    let webauthn = webauthn(ctx)?;
    let name = passkey_name(name)?;
    let result = async {
        let waiting = ctx
            .ceremonies
            .take("registration", challenge_id)
            .await?
            .and_then(|text| serde_json::from_str::<Registration>(&text).ok())
            .filter(|waiting| waiting.user_id == claims.sub)
            .ok_or(ServiceError::InvalidPasskeyRegistration)?;
        let response: RegisterPublicKeyCredential = serde_json::from_value(credential)
            .map_err(|_| ServiceError::InvalidPasskeyRegistration)?;
        let mut client = db(&ctx.db).await?;
        // The library refuses a credential it was told to exclude with an
        // error of its own; a registered one is a conflict, said as one.
        if passkeys::credential_exists(&client, response.raw_id.as_ref()).await? {
            return Err(ServiceError::PasskeyTaken);
        }
        let passkey = webauthn
            .finish_passkey_registration(&response, &waiting.state)
            .map_err(|error| {
                tracing::info!(error = %error, "a passkey registration did not verify");
                ServiceError::InvalidPasskeyRegistration
            })?;
        let user = users::find_active_user(&client, claims.sub)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let credential = serde_json::to_value(&passkey).map_err(internal)?;
        let transaction = client.transaction().await?;
        let stored = passkeys::insert(
            &transaction,
            &NewPasskey {
                id: Uuid::new_v4(),
                user_id: user.id,
                credential_id: passkey.cred_id().as_ref(),
                credential: &credential,
                name,
                facts: &facts_of(&credential),
            },
        )
        .await?
        .ok_or(ServiceError::PasskeyTaken)?;
        let event = Event::of(EventType::PasskeyAdded, user.id)
            .in_session(claims.sid)
            .with_details(json!({"passkey_id": stored.id, "name": stored.name}));
        events::record(ctx, &transaction, Some(origin), event).await?;
        jobs::enqueue_and_commit(
            ctx,
            transaction,
            JobKind::PasskeyAddedNotice,
            user.id,
            &user.email,
            &origin.correlation_id,
        )
        .await?;
        tracing::info!(user_id = %user.id, passkey_id = %stored.id, "passkey added");
        Ok(stored)
    }
    .await;
    count("registration", &result);
    result
}

pub async fn list(ctx: &AppContext, user_id: Uuid) -> Result<Vec<PasskeyRecord>, ServiceError> {
    webauthn(ctx)?;
    Ok(passkeys::list(&db(&ctx.db).await?, user_id).await?)
}

/// Removes one of the caller's passkeys after a password re-check, with a
/// notice. The last passkey of an account without a password stays: it is
/// the only way in.
pub async fn remove(
    ctx: &AppContext,
    claims: &Claims,
    passkey_id: Uuid,
    current_password: &str,
    origin: &Origin,
) -> Result<(), ServiceError> {
    webauthn(ctx)?;
    {
        let client = db(&ctx.db).await?;
        let theirs = passkeys::list(&client, claims.sub).await?;
        if !theirs.iter().any(|p| p.id == passkey_id) {
            return Err(ServiceError::NotFound);
        }
        let user = super::users::me(ctx, claims.sub).await?;
        if !user.has_password && theirs.len() == 1 {
            return Err(ServiceError::LastPasskey);
        }
    }
    let user = credentials::me_with_password(ctx, claims, current_password, origin).await?;
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    if !passkeys::delete(&transaction, user.id, passkey_id).await? {
        return Err(ServiceError::NotFound);
    }
    let event = Event::of(EventType::PasskeyRemoved, user.id)
        .in_session(claims.sid)
        .with_details(json!({"passkey_id": passkey_id}));
    events::record(ctx, &transaction, Some(origin), event).await?;
    jobs::enqueue_and_commit(
        ctx,
        transaction,
        JobKind::PasskeyRemovedNotice,
        user.id,
        &user.email,
        &origin.correlation_id,
    )
    .await?;
    tracing::info!(user_id = %user.id, passkey_id = %passkey_id, "passkey removed");
    Ok(())
}

/// Starts a sign-in with a discoverable credential: no account is named.
pub async fn start_sign_in(ctx: &AppContext) -> Result<Challenge, ServiceError> {
    let webauthn = webauthn(ctx)?;
    let (request, state) = webauthn
        .start_discoverable_authentication()
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("starting a sign-in: {e}")))?;
    let challenge_id = Uuid::new_v4();
    ctx.ceremonies
        .put("authentication", challenge_id, &to_json(&state)?)
        .await?;
    Ok(Challenge {
        challenge_id,
        options: serde_json::to_value(&request.public_key).map_err(internal)?,
    })
}

/// Finishes a sign-in: the assertion must verify against the credential
/// of the account its user handle names, with user verification and a
/// sign count that moved on (or stays 0). Then a session starts, as after a
/// login with every factor.
pub async fn finish_sign_in(
    ctx: &AppContext,
    challenge_id: Uuid,
    credential: Value,
    origin: &Origin,
) -> Result<IssuedTokens, ServiceError> {
    let webauthn = webauthn(ctx)?;
    limits::reserve_address_guess(ctx, origin.address).await?;
    let result = sign_in(ctx, webauthn, challenge_id, credential, origin).await;
    count("authentication", &result);
    match &result {
        Ok(_) | Err(ServiceError::AccountDisabled) => {
            // A right passkey gives back the slot it reserved.
            limits::address_guess_right(ctx, origin.address).await?;
            if result.is_ok() {
                metrics::counter!("auth_logins_total", "outcome" => "success").increment(1);
            }
        }
        Err(_) => {}
    }
    result
}

async fn sign_in(
    ctx: &AppContext,
    webauthn: &Webauthn,
    challenge_id: Uuid,
    credential: Value,
    origin: &Origin,
) -> Result<IssuedTokens, ServiceError> {
    let state: DiscoverableAuthentication = ctx
        .ceremonies
        .take("authentication", challenge_id)
        .await?
        .and_then(|text| serde_json::from_str(&text).ok())
        .ok_or(ServiceError::InvalidPasskey)?;
    let assertion: PublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| ServiceError::InvalidPasskey)?;
    let (user_id, credential_id) = webauthn
        .identify_discoverable_authentication(&assertion)
        .map_err(|_| ServiceError::InvalidPasskey)?;
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    // Only the credentials of the account the user handle names: a
    // credential of another account is no way in.
    let stored = passkeys::lock_by_credential(&transaction, credential_id)
        .await?
        .filter(|stored| stored.user_id == user_id)
        .ok_or(ServiceError::InvalidPasskey)?;
    let mut passkey = parse_passkey(stored.credential)?;
    let verified = webauthn
        .finish_discoverable_authentication(&assertion, state, &[DiscoverableKey::from(&passkey)])
        .map_err(|error| {
            tracing::info!(user_id = %user_id, error = %error, "a passkey sign-in did not verify");
            ServiceError::InvalidPasskey
        })?;
    let user = users::find_active_user(&transaction, user_id)
        .await?
        .ok_or(ServiceError::InvalidPasskey)?;
    // The sign count and backup flags are saved only when they changed.
    let changed = if verified.needs_update() && passkey.update_credential(&verified) == Some(true) {
        let credential = serde_json::to_value(&passkey).map_err(internal)?;
        Some(credential)
    } else {
        None
    };
    let facts = changed.as_ref().map(facts_of);
    passkeys::record_use(
        &transaction,
        stored.id,
        changed.as_ref().zip(facts.as_ref()),
    )
    .await?;
    transaction.commit().await?;
    // Back to the pool before the session takes one: holding two at once,
    // a burst of sign-ins would wait on each other for the pool.
    drop(client);
    if user.disabled {
        return Err(session::refuse_disabled(ctx, user.id, origin).await?);
    }
    let amr = AMR.iter().map(|s| (*s).to_owned()).collect();
    session::start(ctx, &user, user.password_version, amr, origin)
        .await?
        // The password changed or the account was disabled meanwhile.
        .ok_or(ServiceError::InvalidPasskey)
}

/// `auth_passkey_total{ceremony, outcome}`.
fn count<T>(ceremony: &'static str, result: &Result<T, ServiceError>) {
    let outcome = match result {
        Ok(_) => "success",
        Err(ServiceError::AccountDisabled) => "disabled",
        Err(ServiceError::PasskeyTaken) => "duplicate",
        Err(ServiceError::InvalidPasskey | ServiceError::InvalidPasskeyRegistration) => "invalid",
        Err(_) => return,
    };
    metrics::counter!("auth_passkey_total", "ceremony" => ceremony, "outcome" => outcome)
        .increment(1);
}

/// The name a passkey is listed under: 1 to 100 characters, trimmed, no
/// control characters.
fn passkey_name(raw: &str) -> Result<&str, ServiceError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || has_control_characters(name) {
        return Err(ServiceError::invalid(
            "name",
            "must be 1 to 100 characters, without control characters",
        ));
    }
    Ok(name)
}

fn parse_passkey(credential: Value) -> Result<Passkey, ServiceError> {
    serde_json::from_value(credential).map_err(|e| internal(e).context("a stored passkey").into())
}

/// The columns kept beside the serialised credential.
fn facts_of(credential: &Value) -> CredentialFacts {
    CredentialFacts {
        sign_count: credential["cred"]["counter"].as_i64().unwrap_or(0),
        backup_eligible: credential["cred"]["backup_eligible"]
            .as_bool()
            .unwrap_or(false),
        backup_state: credential["cred"]["backup_state"]
            .as_bool()
            .unwrap_or(false),
        transports: credential["cred"]["transports"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, ServiceError> {
    serde_json::to_string(value).map_err(|e| internal(e).into())
}

fn internal(error: serde_json::Error) -> anyhow::Error {
    anyhow::Error::new(error).context("serialising WebAuthn data")
}

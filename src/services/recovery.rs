//! What recovery ends (CONTRACT.md, "Recovery ends what an intruder left
//! behind"). A confirmed reset, a password change, a logout everywhere and
//! enabling or disabling a second factor each end every pending emailed
//! link of the account, here, in the transaction of the change; the
//! sessions they end are ended beside the change itself. A confirmed reset
//! (and an admin helping a user who lost a device) also removes every
//! passkey: one an intruder added would sign in on its own.

use deadpool_postgres::GenericClient;
use serde_json::json;
use uuid::Uuid;

use super::events::{self, Event, EventType, Origin};
use super::{AppContext, ServiceError};
use crate::repositories::{email_tokens, links, passkeys, password_resets, users};

/// Supersedes every live link of the user (reset, verification, change of
/// address) and marks the moment, so a link job requested before it and
/// still queued makes no link. Holds the user's token lock, which the
/// worker takes to make a link, until the transaction ends.
pub(crate) async fn end_pending_links(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    links::lock_user_links(client, user_id).await?;
    users::revoke_links(client, user_id).await?;
    password_resets::supersede_live_tokens(client, user_id).await?;
    email_tokens::supersede_all(client, user_id).await?;
    Ok(())
}

/// Removes every passkey of the user, in `client`'s transaction, with one
/// `passkey.removed` event saying why (a reset, an admin). How many.
pub(crate) async fn remove_passkeys(
    ctx: &AppContext,
    client: &impl GenericClient,
    user_id: Uuid,
    why: &str,
    origin: &Origin,
) -> Result<u64, ServiceError> {
    let removed = passkeys::delete_all(client, user_id).await?;
    if removed > 0 {
        let event = Event::of(EventType::PasskeyRemoved, user_id)
            .with_details(json!({"count": removed, "reason": why}));
        events::record(ctx, client, Some(origin), event).await?;
    }
    Ok(removed)
}

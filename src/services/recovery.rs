//! What recovery ends (CONTRACT.md, "Recovery ends what an intruder left
//! behind"). A confirmed reset, a password change, a logout everywhere and
//! enabling or disabling a second factor each end every pending emailed
//! link of the account, here, in the transaction of the change; the
//! sessions they end are ended beside the change itself.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::repositories::{email_tokens, links, password_resets, users};

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

//! Security notices (`email.security_notice`): a fixed text a kind, no
//! token, nothing stored (CONTRACT.md, "Password reset, end to end").

use super::Prepared;
use crate::messaging::jobs::JobKind;
use crate::worker::JobContext;
use crate::worker::emails;

/// The notice's email.
pub fn prepare(ctx: &JobContext, kind: JobKind) -> Prepared {
    Prepared::Send(emails::notice(kind, &ctx.config.public_url))
}

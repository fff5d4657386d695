//! Job messages (CONTRACT.md, "Messaging"): persistent JSON
//! `{job_id, kind, user_id, email, requested_at}`, with the AMQP
//! `message_id` equal to `job_id` and `correlation_id` that of the HTTP
//! request that caused the job.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::topology::JobQueue;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    pub job_id: Uuid,
    pub kind: String,
    pub user_id: Uuid,
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

/// Every job there is: the links (reset, verification, a new address), and
/// the security notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Create a reset token and email the link.
    PasswordResetLink,
    /// Create a longer-lived set-password token for an invited account and
    /// email the invitation.
    InvitationLink,
    /// Create a verification token and email the link to the account's address.
    VerifyEmail,
    /// Create a token for a new address and email the link to it.
    ChangeEmail,
    /// "Someone asked to move your account to another address" (to the old one).
    EmailChangeRequestedNotice,
    /// "Your account's address was changed" (to the old one).
    EmailChangedNotice,
    /// "Your account was deleted" (to the address it had).
    AccountDeletedNotice,
    /// "A second factor was turned on."
    MfaEnabledNotice,
    /// "The second factor was turned off."
    MfaDisabledNotice,
    /// "A passkey was added to your account."
    PasskeyAddedNotice,
    /// "A passkey was removed from your account."
    PasskeyRemovedNotice,
    /// "Your password was changed."
    PasswordChangedNotice,
    /// "Your password was reset."
    PasswordResetNotice,
    /// "An old session token was reused; that session was ended."
    RefreshReuseNotice,
}

impl JobKind {
    pub const ALL: [JobKind; 14] = [
        JobKind::PasswordResetLink,
        JobKind::InvitationLink,
        JobKind::VerifyEmail,
        JobKind::ChangeEmail,
        JobKind::PasswordChangedNotice,
        JobKind::PasswordResetNotice,
        JobKind::RefreshReuseNotice,
        JobKind::EmailChangeRequestedNotice,
        JobKind::EmailChangedNotice,
        JobKind::AccountDeletedNotice,
        JobKind::MfaEnabledNotice,
        JobKind::MfaDisabledNotice,
        JobKind::PasskeyAddedNotice,
        JobKind::PasskeyRemovedNotice,
    ];

    pub fn queue(self) -> JobQueue {
        match self {
            JobKind::PasswordResetLink | JobKind::InvitationLink => JobQueue::PasswordReset,
            JobKind::VerifyEmail | JobKind::ChangeEmail => JobQueue::Verification,
            _ => JobQueue::SecurityNotice,
        }
    }

    /// Whether the email goes to the address in the message rather than the
    /// account's current one: the old address after a change, the new one
    /// before it, the address of an account that is gone.
    pub fn to_message_address(self) -> bool {
        matches!(
            self,
            JobKind::ChangeEmail
                | JobKind::EmailChangeRequestedNotice
                | JobKind::EmailChangedNotice
                | JobKind::AccountDeletedNotice
        )
    }

    /// The `kind` field of the message; unique within its queue.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::PasswordResetLink => "password_reset",
            JobKind::InvitationLink => "invitation",
            JobKind::VerifyEmail => "verify_email",
            JobKind::ChangeEmail => "change_email",
            JobKind::PasswordChangedNotice => "password_changed",
            JobKind::PasswordResetNotice => "password_reset",
            JobKind::RefreshReuseNotice => "refresh_reuse",
            JobKind::EmailChangeRequestedNotice => "email_change_requested",
            JobKind::EmailChangedNotice => "email_changed",
            JobKind::AccountDeletedNotice => "account_deleted",
            JobKind::MfaEnabledNotice => "mfa_enabled",
            JobKind::MfaDisabledNotice => "mfa_disabled",
            JobKind::PasskeyAddedNotice => "passkey_added",
            JobKind::PasskeyRemovedNotice => "passkey_removed",
        }
    }

    /// The kind of a message taken from `queue`.
    pub fn parse(queue: JobQueue, kind: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.queue() == queue && k.as_str() == kind)
    }

    /// The label of `jobs_processed_total{kind}` and `job_duration_seconds{kind}`.
    pub fn metric_label(self) -> &'static str {
        match self {
            JobKind::PasswordResetLink => "password_reset",
            JobKind::InvitationLink => "invitation",
            JobKind::VerifyEmail => "verify_email",
            JobKind::ChangeEmail => "change_email",
            JobKind::PasswordChangedNotice => "notice_password_changed",
            JobKind::PasswordResetNotice => "notice_password_reset",
            JobKind::RefreshReuseNotice => "notice_refresh_reuse",
            JobKind::EmailChangeRequestedNotice => "notice_email_change_requested",
            JobKind::EmailChangedNotice => "notice_email_changed",
            JobKind::AccountDeletedNotice => "notice_account_deleted",
            JobKind::MfaEnabledNotice => "notice_mfa_enabled",
            JobKind::MfaDisabledNotice => "notice_mfa_disabled",
            JobKind::PasskeyAddedNotice => "notice_passkey_added",
            JobKind::PasskeyRemovedNotice => "notice_passkey_removed",
        }
    }
}

impl JobMessage {
    pub fn new(kind: JobKind, user_id: Uuid, email: &str) -> Self {
        Self {
            job_id: Uuid::new_v4(),
            kind: kind.as_str().to_owned(),
            user_id,
            email: email.to_owned(),
            requested_at: OffsetDateTime::now_utc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_queue() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.queue(), kind.as_str()), Some(kind));
        }
        assert_eq!(
            JobKind::parse(JobQueue::PasswordReset, "refresh_reuse"),
            None
        );
    }

    #[test]
    fn a_message_serialises_with_the_contract_fields() {
        let message = JobMessage::new(JobKind::PasswordResetLink, Uuid::new_v4(), "a@example.com");
        let value = serde_json::to_value(&message).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "job_id", "kind", "requested_at", "user_id"]);
        let back: JobMessage = serde_json::from_value(value).unwrap();
        assert_eq!(back, message);
    }
}

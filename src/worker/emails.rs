//! The texts of the emails the worker sends. They name only the account
//! they are sent to, so they say nothing about any other account.

use std::time::Duration;

use crate::mail::{duration_in_words, html_escape};
use crate::messaging::jobs::JobKind;

pub struct EmailText {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The reset link email.
pub fn reset_link(public_url: &str, token: &str, expires_in: Duration) -> EmailText {
    link_email(
        "Reset your password",
        "Someone asked to reset the password of your Portcullis account.",
        "To choose a new password",
        "Choose a new password",
        &format!("{public_url}/reset-password?token={token}"),
        expires_in,
        "If you did not ask for this, ignore this email: your password stays as it is.",
    )
}

/// The invitation: an account was made for this address, and the link
/// sets its first password.
pub fn invitation_link(public_url: &str, token: &str, expires_in: Duration) -> EmailText {
    link_email(
        "You are invited to Portcullis",
        "An administrator made a Portcullis account for this address.",
        "To accept and choose your password",
        "Choose my password",
        &format!("{public_url}/reset-password?token={token}"),
        expires_in,
        "If you were not expecting it, ignore this email: the account stays \
         without a password and nobody can sign in to it.",
    )
}

/// The link that verifies the account's own address.
pub fn verify_link(public_url: &str, token: &str, expires_in: Duration) -> EmailText {
    link_email(
        "Verify your email address",
        "Welcome to Portcullis. Please confirm that this address is yours.",
        "To verify it",
        "Verify my email address",
        &format!("{public_url}/verify-email?token={token}"),
        expires_in,
        "If you did not ask for this, ignore this email: no account will use this address.",
    )
}

/// The link, sent to a new address, that moves the account to it.
pub fn change_link(public_url: &str, token: &str, expires_in: Duration) -> EmailText {
    link_email(
        "Confirm your new email address",
        "Someone asked to move a Portcullis account to this address.",
        "To confirm the change",
        "Use this address",
        &format!("{public_url}/verify-email?token={token}"),
        expires_in,
        "If you did not ask for this, ignore this email: the account keeps its current address.",
    )
}

/// An email whose point is one link that works once, within `expires_in`;
/// `otherwise` ends it: what happens if the reader ignores it.
fn link_email(
    subject: &str,
    opening: &str,
    to_do: &str,
    button: &str,
    link: &str,
    expires_in: Duration,
    otherwise: &str,
) -> EmailText {
    let expiry = duration_in_words(expires_in);
    let text = format!(
        "{opening}\n\n\
         {to_do}, open this link within {expiry}:\n\n\
         {link}\n\n\
         The link works once. {otherwise}\n"
    );
    let html = format!(
        "<p>{opening}</p>\
         <p>{to_do}, open this link within {expiry}:</p>\
         <p><a href=\"{href}\">{button}</a></p>\
         <p>Or copy this address into your browser: {shown}</p>\
         <p>The link works once. {otherwise}</p>",
        opening = html_escape(opening),
        to_do = html_escape(to_do),
        expiry = html_escape(&expiry),
        href = html_escape(link),
        button = html_escape(button),
        shown = html_escape(link),
        otherwise = html_escape(otherwise),
    );
    EmailText {
        subject: subject.into(),
        text,
        html,
    }
}

/// A security notice.
pub fn notice(kind: JobKind, public_url: &str) -> EmailText {
    let (subject, body) = match kind {
        JobKind::PasswordChangedNotice => (
            "Your password was changed",
            "Your password was changed, and your other sessions were signed out.",
        ),
        JobKind::PasswordResetNotice => (
            "Your password was reset",
            "Your password was reset with an emailed link, every session was signed out, \
             and every passkey of the account was removed: add your passkeys again once \
             you are signed in.",
        ),
        JobKind::PasskeyAddedNotice => (
            "A passkey was added to your account",
            "A passkey was added to your Portcullis account. It signs in on its own, \
             without the password.",
        ),
        JobKind::PasskeyRemovedNotice => (
            "A passkey was removed from your account",
            "A passkey was removed from your Portcullis account; it no longer signs in.",
        ),
        JobKind::EmailChangeRequestedNotice => (
            "Someone asked to change your email address",
            "Someone signed in to your Portcullis account asked to move it to another \
             email address. Nothing changes unless that address confirms it.",
        ),
        JobKind::EmailChangedNotice => (
            "Your email address was changed",
            "Your Portcullis account now uses another email address; this one no longer \
             signs in or receives reset links.",
        ),
        JobKind::AccountDeletedNotice => (
            "Your account was deleted",
            "Your Portcullis account and its sessions were deleted. This address can \
             register again.",
        ),
        JobKind::MfaEnabledNotice => (
            "Two-step sign-in was turned on",
            "Your Portcullis account now asks for a code from your authenticator app \
             after the password. Keep your recovery codes somewhere safe.",
        ),
        JobKind::MfaDisabledNotice => (
            "Two-step sign-in was turned off",
            "Your Portcullis account no longer asks for a code after the password.",
        ),
        JobKind::RefreshReuseNotice
        | JobKind::PasswordResetLink
        | JobKind::InvitationLink
        | JobKind::VerifyEmail
        | JobKind::ChangeEmail => (
            "A session of yours was ended",
            "An old session token was reused; that session was ended. \
             If you did not just sign in again on one of your devices, change your password.",
        ),
    };
    let advice = format!(
        "If this was not you, reset your password at {public_url} and review your sessions."
    );
    EmailText {
        subject: subject.into(),
        text: format!("{body}\n\n{advice}\n"),
        html: format!(
            "<p>{}</p><p>{}</p>",
            html_escape(body),
            html_escape(&advice)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_email_has_the_link_and_the_expiry_in_words() {
        let email = reset_link(
            "https://auth.example.com",
            "tok_en-123",
            Duration::from_secs(1800),
        );
        assert!(
            email
                .text
                .contains("https://auth.example.com/reset-password?token=tok_en-123")
        );
        assert!(email.text.contains("30 minutes"));
        assert!(
            email
                .html
                .contains("href=\"https://auth.example.com/reset-password?token=tok_en-123\"")
        );
    }

    #[test]
    fn every_notice_has_its_own_subject() {
        let subjects: std::collections::HashSet<String> = [
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
        ]
        .into_iter()
        .map(|kind| notice(kind, "https://x").subject)
        .collect();
        assert_eq!(subjects.len(), 10);
    }

    #[test]
    fn verification_emails_link_to_the_verify_page() {
        for email in [
            verify_link("https://a.example", "tok", Duration::from_secs(86_400)),
            change_link("https://a.example", "tok", Duration::from_secs(86_400)),
        ] {
            assert!(
                email
                    .text
                    .contains("https://a.example/verify-email?token=tok")
            );
            assert!(
                email.text.contains("24 hours") || email.text.contains("1 day"),
                "{}",
                email.text
            );
            assert!(
                email
                    .html
                    .contains("href=\"https://a.example/verify-email?token=tok\"")
            );
        }
    }
}

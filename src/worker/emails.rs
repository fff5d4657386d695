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
    let link = format!("{public_url}/reset-password?token={token}");
    let expiry = duration_in_words(expires_in);
    let text = format!(
        "Someone asked to reset the password of your Portcullis account.\n\n\
         To choose a new password, open this link within {expiry}:\n\n\
         {link}\n\n\
         The link works once. If you did not ask for this, ignore this email: \
         your password stays as it is.\n"
    );
    let html = format!(
        "<p>Someone asked to reset the password of your Portcullis account.</p>\
         <p>To choose a new password, open this link within {expiry}:</p>\
         <p><a href=\"{href}\">Choose a new password</a></p>\
         <p>Or copy this address into your browser: {shown}</p>\
         <p>The link works once. If you did not ask for this, ignore this email: \
         your password stays as it is.</p>",
        expiry = html_escape(&expiry),
        href = html_escape(&link),
        shown = html_escape(&link),
    );
    EmailText {
        subject: "Reset your password".into(),
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
            "Your password was reset with an emailed link, and every session was signed out.",
        ),
        JobKind::RefreshReuseNotice | JobKind::PasswordResetLink => (
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
        let subjects: Vec<String> = [
            JobKind::PasswordChangedNotice,
            JobKind::PasswordResetNotice,
            JobKind::RefreshReuseNotice,
        ]
        .into_iter()
        .map(|kind| notice(kind, "https://x").subject)
        .collect();
        assert_eq!(subjects.len(), 3);
        assert_ne!(subjects[0], subjects[1]);
        assert_ne!(subjects[1], subjects[2]);
    }
}

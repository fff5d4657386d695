//! Outgoing email behind one type: `file:DIR` writes one RFC 5322 `.eml`
//! file per message, `smtp://host:port` hands it to an SMTP server (plain,
//! as Mailpit in the Compose stack expects).
//!
//! Every message carries a `Message-ID` derived from its job id. The file
//! transport names the file after it too and writes it atomically, so a job
//! that is handled again after a crash replaces its email instead of adding
//! a second one.

use std::path::PathBuf;

use anyhow::Context;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MailTransport;

/// One message to send.
pub struct OutgoingEmail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Unique per job; becomes the file name and the `Message-ID`.
    pub id: String,
    pub correlation_id: String,
}

pub struct Mailer {
    from: Mailbox,
    domain: String,
    transport: Transport,
}

enum Transport {
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Mailer {
    pub fn new(transport: &MailTransport, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from
            .parse()
            .with_context(|| format!("MAIL_FROM `{from}` is not a mailbox"))?;
        let domain = from.email.domain().to_owned();
        let transport = match transport {
            MailTransport::File(dir) => {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the mail directory {}", dir.display())
                })?;
                Transport::File(dir.clone())
            }
            MailTransport::Smtp { host, port } => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(*port)
                    .timeout(Some(std::time::Duration::from_secs(10)))
                    .build(),
            ),
        };
        Ok(Self {
            from,
            domain,
            transport,
        })
    }

    pub async fn send(&self, email: &OutgoingEmail) -> anyhow::Result<()> {
        let to: Mailbox = email
            .to
            .parse()
            .with_context(|| "the recipient is not a valid mailbox")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.as_str())
            .message_id(Some(format!("<{}@{}>", email.id, self.domain)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Correlation-ID"),
                email.correlation_id.clone(),
            ))
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(ContentType::TEXT_PLAIN, &email.text)?)
                    .singlepart(part(ContentType::TEXT_HTML, &email.html)?),
            )
            .context("building the email")?;
        match &self.transport {
            Transport::File(dir) => {
                let path = dir.join(format!("{}.eml", email.id));
                let partial = dir.join(format!(".{}.eml.partial", email.id));
                tokio::fs::write(&partial, message.formatted())
                    .await
                    .with_context(|| format!("writing {}", partial.display()))?;
                tokio::fs::rename(&partial, &path)
                    .await
                    .with_context(|| format!("moving the email to {}", path.display()))?;
            }
            Transport::Smtp(smtp) => {
                smtp.send(message)
                    .await
                    .context("the SMTP server refused the email")?;
            }
        }
        Ok(())
    }
}

/// A body part kept readable as it is: ASCII text with lines within RFC
/// 5322's 998 characters goes out as 7-bit, so the reset link stays on one
/// line of the raw message (lettre would quote-print any line of 76 or
/// more). Anything else is left to lettre's own choice of encoding.
fn part(content_type: ContentType, text: &str) -> anyhow::Result<SinglePart> {
    let plain_ascii = text.is_ascii()
        && !text.contains(['\0', '\r'])
        && text.lines().all(|line| line.len() < 998);
    let body = if plain_ascii {
        Body::dangerous_pre_encoded(
            text.replace('\n', "\r\n").into_bytes(),
            ContentTransferEncoding::SevenBit,
        )
    } else {
        Body::new(text.to_owned())
    };
    Ok(SinglePart::builder().header(content_type).body(body))
}

/// "30 minutes", "1 hour", "1 hour and 30 minutes", "45 seconds".
pub fn duration_in_words(duration: std::time::Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    let unit = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let mut parts = Vec::new();
    if hours > 0 {
        parts.push(unit(hours, "hour"));
    }
    if minutes > 0 {
        parts.push(unit(minutes, "minute"));
    }
    if seconds > 0 || parts.is_empty() {
        parts.push(unit(seconds, "second"));
    }
    match parts.len() {
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!("{} and {last}", parts.join(", "))
        }
    }
}

/// Escapes text for an HTML body.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_in_words(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(duration_in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(
            duration_in_words(Duration::from_secs(5400)),
            "1 hour and 30 minutes"
        );
        assert_eq!(
            duration_in_words(Duration::from_secs(61)),
            "1 minute and 1 second"
        );
        assert_eq!(duration_in_words(Duration::from_secs(45)), "45 seconds");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[tokio::test]
    async fn the_file_transport_writes_one_named_eml_per_message() {
        let dir =
            std::env::temp_dir().join(format!("portcullis-mail-test-{}", uuid::Uuid::new_v4()));
        let mailer = Mailer::new(
            &MailTransport::File(dir.clone()),
            "Portcullis <no-reply@example.com>",
        )
        .unwrap();
        let email = OutgoingEmail {
            to: "ada@example.com".into(),
            subject: "Hello".into(),
            text: "plain body".into(),
            html: "<p>html body</p>".into(),
            id: "job-1".into(),
            correlation_id: "corr-1".into(),
        };

        mailer.send(&email).await.unwrap();
        mailer.send(&email).await.unwrap();

        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1, "sent twice, stored once");
        let text = std::fs::read_to_string(dir.join("job-1.eml")).unwrap();
        assert!(text.contains("Message-ID: <job-1@example.com>"));
        assert!(text.contains("X-Correlation-ID: corr-1"));
        assert!(text.contains("plain body"));
        assert!(text.contains("Content-Transfer-Encoding: 7bit"));
        assert!(text.contains("text/html"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}

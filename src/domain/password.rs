//! The password policy for register, change and reset (CONTRACT.md,
//! "Authentication model"): a length in Unicode characters, never
//! truncated, and a zxcvbn score of at least 3 with the account's own email
//! and name as user inputs.

use super::has_control_characters;

pub const MAX_PASSWORD_CHARS: usize = 128;
const MIN_SCORE: u8 = 3;

/// A password that passed the policy; its text never shows in `Debug`.
pub struct NewPassword(String);

impl NewPassword {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_chars: usize,
}

impl PasswordPolicy {
    /// The cheap rules (characters and length), which also bound what the
    /// strength estimate of [`Self::check`] is given.
    pub fn check_shape(&self, raw: &str) -> Result<(), String> {
        if has_control_characters(raw) {
            return Err("must not contain control characters".into());
        }
        let chars = raw.chars().count();
        if chars < self.min_chars {
            return Err(format!("must be at least {} characters", self.min_chars));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        Ok(())
    }

    /// Checks `raw` against the policy; `context` holds the user's email
    /// and name, which a password must not be built from. The estimate can
    /// take a while on crafted input: run it off the async executor.
    pub fn check(&self, raw: String, context: &[&str]) -> Result<NewPassword, String> {
        self.check_shape(&raw)?;
        // The email, its local part and the name's words are guessable on
        // their own and run together, so each goes in as a user input.
        let mut inputs: Vec<String> = Vec::with_capacity(context.len() * 4);
        for item in context.iter().filter(|item| !item.is_empty()) {
            let item = item.to_lowercase();
            let local = item
                .split_once('@')
                .map_or(item.as_str(), |(local, _)| local);
            let words: Vec<&str> = local
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 1)
                .collect();
            inputs.push(words.concat());
            inputs.extend(words.iter().map(|w| (*w).to_owned()));
            inputs.push(local.to_owned());
            inputs.push(item.clone());
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let estimate = zxcvbn::zxcvbn(&raw, &inputs);
        if u8::from(estimate.score()) < MIN_SCORE {
            let hint = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            return Err(format!(
                "is too easy to guess{hint}; use a longer passphrase of unrelated words"
            ));
        }
        Ok(NewPassword(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_chars: 12 };

    #[test]
    fn a_strong_passphrase_passes() {
        assert!(
            POLICY
                .check("correct horse battery staple".into(), &[])
                .is_ok()
        );
        assert!(
            POLICY
                .check("Tr0ub4dor&3-kettle-Mosaic".into(), &["ada@example.com"])
                .is_ok()
        );
    }

    #[test]
    fn short_and_overlong_passwords_are_refused() {
        assert!(POLICY.check("xK#9p!vQ2".into(), &[]).is_err());
        let long: String = "xK#9p!vQ2mZ7".repeat(11);
        assert!(long.chars().count() > 128);
        assert!(POLICY.check(long, &[]).is_err());
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        // 11 characters but 22 bytes: still too short.
        let eleven = "ñ".repeat(11);
        assert!(POLICY.check(eleven, &[]).unwrap_err().contains("at least"));
        // 128 multi-byte characters are accepted if strong enough, not truncated.
        let mixed: String = "Zebra-ñandú-Quokka-42!".chars().cycle().take(128).collect();
        assert!(POLICY.check(mixed, &[]).is_ok());
    }

    #[test]
    fn common_passwords_and_keyboard_walks_are_refused() {
        for weak in [
            "password1234",
            "1q2w3e4r5t6y",
            "qwertyuiopasdf",
            "123456789012",
            "aaaaaaaaaaaaaaaa",
        ] {
            assert!(POLICY.check(weak.into(), &[]).is_err(), "{weak}");
        }
    }

    #[test]
    fn passwords_built_from_the_email_are_refused() {
        let context = ["margaret.hamilton@example.com", "Margaret Hamilton"];
        assert!(POLICY.check("margaret.hamilton1".into(), &context).is_err());
        assert!(POLICY.check("MargaretHamilton!".into(), &context).is_err());
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(
            POLICY
                .check("correct horse\u{0}battery".into(), &[])
                .is_err()
        );
    }
}

//! Email addresses, trimmed, NFC-normalised and lower-cased before storing
//! and comparing (CONTRACT.md, "HTTP conventions" and "Endpoints").

use unicode_normalization::UnicodeNormalization;

const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address in the common dot-atom form (`local@domain.tld`);
    /// quoted local parts and address literals are refused.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = Self::normalise(raw);
        if email.is_empty() {
            return Err("must not be empty");
        }
        if email.chars().count() > MAX_LEN {
            return Err("must be at most 254 characters");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must be an email address");
        };
        if local.is_empty() || local.chars().count() > MAX_LOCAL_LEN {
            return Err("must have a local part of 1 to 64 characters");
        }
        if !valid_local(local) || !valid_domain(domain) {
            return Err("must be an email address");
        }
        Ok(Self(email))
    }

    /// Trimmed, NFC, lower-case: the form used as a key even for input
    /// that is not a valid address (the login rate limit counts those too).
    pub fn normalise(raw: &str) -> String {
        raw.trim().nfc().collect::<String>().to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_local(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-.";
    !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| {
            c.is_alphanumeric()
                || SPECIALS.contains(c)
                || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
        })
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.chars().count() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Alice.Smith+tag@Example.COM ")
                .unwrap()
                .as_str(),
            "alice.smith+tag@example.com"
        );
    }

    #[test]
    fn non_ascii_addresses_are_stored_nfc() {
        // "e" followed by a combining acute accent becomes one "é".
        let decomposed = "Jose\u{301}@example.com";
        assert_eq!(
            Email::parse(decomposed).unwrap().as_str(),
            "jos\u{e9}@example.com"
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "user@",
            "user@localhost",
            "user@example",
            "user@@example.com",
            "user name@example.com",
            "user@exa mple.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "user@-example.com",
            "user@example..com",
            "user@example.c",
            "user@127.0.0.1",
            "user\u{0}@example.com",
            "user\n@example.com",
            "\"quoted\"@example.com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }

    #[test]
    fn length_limits_follow_the_contract() {
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@example.com")).is_ok());
        assert!(Email::parse(&format!("a{local}@example.com")).is_err());
        let domain = format!(
            "{}.{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
            "e".repeat(40)
        );
        let long = format!("{}@{domain}", "a".repeat(254 - 1 - domain.len()));
        assert_eq!(long.len(), 254);
        assert!(Email::parse(&long).is_ok());
        assert!(Email::parse(&format!("a{long}")).is_err());
    }
}

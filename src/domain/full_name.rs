//! A user's display name: 1 to 200 characters after trimming, no control
//! characters (CONTRACT.md, "HTTP conventions").

use super::has_control_characters;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if has_control_characters(raw) {
            return Err("must not contain control characters");
        }
        let trimmed = raw.trim();
        match trimmed.chars().count() {
            0 => Err("must not be empty"),
            1..=200 => Ok(Self(trimmed.to_owned())),
            _ => Err("must be at most 200 characters"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(
            FullName::parse("  Ada Lovelace ").unwrap().as_str(),
            "Ada Lovelace"
        );
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert!(FullName::parse(&"é".repeat(200)).is_ok());
        assert!(FullName::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn empty_and_control_characters_are_refused() {
        for raw in ["", "   ", "Ada\u{0}", "Ada\tLovelace", "line\nbreak"] {
            assert!(FullName::parse(raw).is_err(), "{raw:?}");
        }
    }
}

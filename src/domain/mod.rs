//! Domain types: request input becomes these at the edge, so services never
//! re-check a raw `String` (STYLE.md, habit 3).

mod email;
mod full_name;
mod password;

pub use email::Email;
pub use full_name::FullName;
pub use password::{NewPassword, PasswordPolicy};

/// One invalid input field, named as in the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The JSON field name, e.g. `email`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// True when `text` holds a control character (NUL included), which no
/// string field may carry (CONTRACT.md, "HTTP conventions").
pub fn has_control_characters(text: &str) -> bool {
    text.chars().any(char::is_control)
}

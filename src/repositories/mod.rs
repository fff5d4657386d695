//! All SQL, and nothing else: one statement per function, named after what
//! it does, taking any client or transaction (STYLE.md, habit 6).

pub mod admin_keys;
pub mod directory;
pub mod email_tokens;
pub mod events;
pub mod links;
pub mod mfa;
pub mod outbox;
pub mod passkeys;
pub mod password_resets;
pub mod processed_jobs;
pub mod retention;
pub mod sessions;
pub mod users;

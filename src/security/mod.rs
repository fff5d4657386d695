//! Cryptography: password hashing, access tokens and their signing keys,
//! opaque random tokens.

pub mod claims;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod tokens;
pub mod totp;
pub mod verified;

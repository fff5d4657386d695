//! Cryptography: password hashing, access tokens, opaque random tokens.

pub mod jwt;
pub mod password;
pub mod tokens;

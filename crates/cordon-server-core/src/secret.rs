//! Random secrets (API and enrollment tokens) and how they are stored: only a SHA-256
//! hash ever reaches the database. The tokens carry 256 bits of randomness, so a fast
//! hash is enough (no password stretching needed).

use sha2::{Digest, Sha256};

/// A new token `PREFIX_<64 hex chars>`.
pub fn new_token(prefix: &str) -> Result<String, getrandom::Error> {
    let mut buf = [0u8; 32];
    getrandom::getrandom(&mut buf)?;
    Ok(format!("{prefix}_{}", hex::encode(buf)))
}

/// What the database stores of a token: SHA-256 (lower-case hex) of the trimmed token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

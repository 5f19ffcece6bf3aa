//! CA certificate fingerprints as the server prints them and the agent checks them at
//! enrollment: SHA-256 of the DER certificate, lowercase hex.

use sha2::{Digest, Sha256};

/// SHA-256 of a DER certificate, lowercase hex.
pub fn fingerprint_der(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Accepts `AB:CD:...`, `sha256:abcd...`, any case; returns bare lowercase hex.
pub fn normalize_fingerprint(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("SHA256:"))
        .unwrap_or(s);
    s.chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_what_operators_paste() {
        let want = "abcdef01";
        assert_eq!(normalize_fingerprint("AB:CD:EF:01"), want);
        assert_eq!(normalize_fingerprint(" sha256:abcdef01 "), want);
        assert_eq!(normalize_fingerprint("SHA256:AB CD EF 01"), want);
        assert_eq!(fingerprint_der(b"").len(), 64);
    }
}

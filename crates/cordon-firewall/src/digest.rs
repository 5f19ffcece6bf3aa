//! Digests of rule listings, used to tell whether the rules in the kernel are still the
//! ones we applied.

use sha2::{Digest, Sha256};

use crate::Inspection;

/// Wraps a normalized listing with its SHA-256.
pub fn inspection(listing: String) -> Inspection {
    let digest = hex::encode(Sha256::digest(listing.as_bytes()));
    Inspection {
        digest,
        listing,
        parts: Vec::new(),
    }
}

/// An inspection of a listing made of named parts (concatenated in order for the digest,
/// so it equals [`inspection`] of the whole text).
pub fn inspection_of_parts(parts: Vec<(String, String)>) -> Inspection {
    let listing: String = parts.iter().map(|(_, text)| text.as_str()).collect();
    Inspection {
        parts,
        ..inspection(listing)
    }
}

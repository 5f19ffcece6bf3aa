//! Digests of rule listings, used to tell whether the rules in the kernel are still the
//! ones we applied.

use sha2::{Digest, Sha256};

use crate::Inspection;

/// Wraps a normalized listing with its SHA-256.
pub fn inspection(listing: String) -> Inspection {
    let digest = hex::encode(Sha256::digest(listing.as_bytes()));
    Inspection { digest, listing }
}

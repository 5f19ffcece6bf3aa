//! Rules and Approvals pages, shown once the automation module has landed.

/// Whether the automation pages are served.
pub fn available() -> bool {
    false
}

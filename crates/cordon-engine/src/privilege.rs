//! Privilege check done before anything is changed, so a non-root run exits 4 cleanly.

use crate::EngineError;

/// Whether this process may change the firewall: effective uid 0 on Unix; always true
/// on Windows, where the firewall APIs report access denied themselves.
pub fn is_admin() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        // On Windows the firewall APIs themselves report access denied.
        true
    }
}

/// [`is_admin`] as a check.
///
/// # Errors
/// [`EngineError::NotPermitted`] (exit code 4) when not root.
pub fn require_admin() -> Result<(), EngineError> {
    if is_admin() {
        Ok(())
    } else {
        Err(EngineError::NotPermitted(
            "changing the firewall needs root (run with sudo); nothing was changed".into(),
        ))
    }
}

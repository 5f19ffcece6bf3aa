//! Privilege check done before anything is changed, so a non-root run exits 4 cleanly.

use crate::EngineError;

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

pub fn require_admin() -> Result<(), EngineError> {
    if is_admin() {
        Ok(())
    } else {
        Err(EngineError::NotPermitted(
            "changing the firewall needs root (run with sudo); nothing was changed".into(),
        ))
    }
}

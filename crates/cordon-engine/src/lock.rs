//! An exclusive lock on the state directory so the agent and a manual `cordon` run never
//! apply at the same time.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::EngineError;

pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire(dir: &Path) -> Result<Self, EngineError> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::state_io("create the state directory", dir, e))?;
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| EngineError::state_io("open", &path, e))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is valid for the lifetime of `file`; flock only locks it.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc != 0 {
                return Err(EngineError::state_io("lock", &path, std::io::Error::last_os_error()));
            }
        }
        // The lock is released when the file is closed on drop.
        Ok(StateLock { _file: file })
    }
}

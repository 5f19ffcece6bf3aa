//! An exclusive lock on the state directory so the agent and a manual `cordon` run never
//! apply at the same time. The holder writes its pid into the lock file, so a process
//! that has to wait can say whom it waits for; waiting is bounded by a timeout.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::EngineError;

/// How often a waiting process retries the lock.
const RETRY: Duration = Duration::from_millis(50);

pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock, waiting at most `timeout`. While waiting, says once on stderr which
    /// process holds it (`waiting for the lock held by pid N…`). Fails with a message
    /// naming the holder when the time is up.
    pub fn acquire(dir: &Path, timeout: Duration) -> Result<Self, EngineError> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::state_io("create the state directory", dir, e))?;
        let path = dir.join(".lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| EngineError::state_io("open", &path, e))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let started = Instant::now();
            let mut announced = false;
            loop {
                // SAFETY: the descriptor is valid for the lifetime of `file`; flock only locks it.
                let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                if rc == 0 {
                    break;
                }
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                    return Err(EngineError::state_io("lock", &path, err));
                }
                let holder = holder_pid(&mut file);
                if started.elapsed() >= timeout {
                    return Err(EngineError::LockTimeout {
                        path,
                        holder,
                        waited: started.elapsed(),
                    });
                }
                if !announced {
                    eprintln!(
                        "cordon: waiting for the lock held by {}… (up to {:.0} s, --lock-timeout)",
                        describe(holder),
                        timeout.as_secs_f64()
                    );
                    announced = true;
                }
                std::thread::sleep(RETRY);
            }
            // Record who holds the lock; only the holder writes, so this cannot race.
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            let _ = file.flush();
        }
        #[cfg(not(unix))]
        let _ = (timeout, &mut file);
        // The lock is released when the file is closed on drop.
        Ok(StateLock { _file: file })
    }
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn describe(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("pid {p}"),
        None => "another process".to_string(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn lock_wait_names_the_holder_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path(), Duration::from_secs(1)).unwrap();
        // A second descriptor on the same file is a separate flock owner.
        let err = StateLock::acquire(dir.path(), Duration::from_millis(200))
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert!(msg.contains("--lock-timeout"), "{msg}");
        drop(held);
        assert!(StateLock::acquire(dir.path(), Duration::from_millis(200)).is_ok());
    }
}

//! A Cordon process holding one of Cordon's lock files, for the lock tests of
//! wazuh_ar.rs and agent_e2e.rs (`#[path = "common/lock_holder.rs"] mod lock_holder;`).
//! Nothing is enforced: the holder is `cordon wazuh-ar` waiting on a stdin that never
//! carries a message (it gives up after 60 s and exits, releasing the lock).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helper: a panic is the failure report

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A Cordon process holding `lock`: this test's own cordon executable (the one the agent
/// and the wazuh-ar wrapper run, so the engine takes it for Cordon), started as `cordon
/// wazuh-ar --log LOG` waiting for a message on its stdin, which it never gets; the lock
/// is taken in the child just before its exec, so the kernel names that process as the
/// holder. Returns once the lock is held.
#[cfg(target_os = "linux")]
pub fn cordon_holding(lock: &Path, log: &Path) -> Child {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let path = std::ffi::CString::new(lock.as_os_str().as_bytes()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cordon"));
    cmd.arg("wazuh-ar")
        .arg("--log")
        .arg(log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (open, flock) between fork and exec; the
    // descriptor is left open (no O_CLOEXEC) so the lock survives the exec.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600);
            if fd < 0 || libc::flock(fd, libc::LOCK_EX) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("cordon wazuh-ar as a lock holder");
    let held = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !Command::new("flock")
            .args(["--nonblock", lock.to_str().unwrap(), "true"])
            .status()
            .unwrap()
            .success()
    });
    assert!(held, "the cordon holder never took the lock");
    child
}

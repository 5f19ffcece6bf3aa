//! Running code inside a named network namespace: a thread that `setns`es into it.
//! Sockets a thread creates belong to the namespace the thread is in, so the lab probes
//! and serves from inside its namespaces without any process per probe.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};

/// Moves the current thread into network namespace `name` (from `ip netns add`).
pub fn enter(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    // SAFETY: the descriptor is valid while `file` lives; setns only changes this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns({path}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a fresh thread inside namespace `name` and returns its result.
pub fn run_in<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    spawn_in(name, f)
        .join()
        .map_err(|_| anyhow::anyhow!("thread in namespace {name} panicked"))?
}

/// Starts `f` on a thread inside namespace `name`.
pub fn spawn_in<T, F>(name: &str, f: F) -> JoinHandle<Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let name = name.to_string();
    std::thread::spawn(move || {
        enter(&name)?;
        f()
    })
}

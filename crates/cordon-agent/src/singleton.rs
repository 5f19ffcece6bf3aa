//! At most one enforcing agent per network namespace (trial15 HIGH-3).
//!
//! Two enforcing agents in one network namespace (typically a re-enrolment into a new
//! `--dir` while the old agent still runs) share the one claim source `agent` and undo
//! each other's work: the host flaps, mostly open, while the server shows it quarantined.
//! So an enforcing agent holds the abstract Unix socket [`SOCKET_NAME`] for as long as it
//! runs, and a second one refuses to start, naming the first.
//!
//! Why an abstract socket and not a lock file: the abstract socket namespace is per network
//! namespace by kernel design (unix(7): "abstract: an abstract socket address is
//! distinguished … by the fact that sun_path\[0\] is a null byte"; network_namespaces(7):
//! a network namespace isolates "the UNIX domain abstract socket namespace"), so the name
//! is exactly "one per network namespace" — the unit a firewall quarantine applies to —
//! whatever the state directory, and it cannot be left stale: the kernel drops it when
//! the holder exits, and nobody can delete it from under a running agent (a lock file in
//! `/run/cordon` can be, trial15 HIGH-1).
//!
//! Who holds it comes from the kernel (`SO_PEERCRED`: pid and uid of the process that
//! bound it), and from the holder itself: it answers every connection with one JSON line
//! ([`HolderInfo`]: its config, state directory, host id). An abstract name has no
//! permissions, so any local user could bind it first; a holder whose uid is not root
//! while this process is root is no Cordon agent ([`Holder::is_foreign`]), and the agent
//! then runs anyway with a warning — refusing would leave the host without its agent.
//!
//! Hand-written over the standard library's abstract-address support (no crate offers
//! this singleton); Linux only. Elsewhere [`claim`] always succeeds and [`holder`] finds
//! nobody.

use serde::{Deserialize, Serialize};

/// The abstract socket name (shown by `ss -xlp` as `@cordon-agent.enforcing`).
pub const SOCKET_NAME: &str = "cordon-agent.enforcing";

/// What the holder says about itself (one JSON line to every connection).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HolderInfo {
    /// Its configuration file as given to `cordon agent run --config`.
    #[serde(default)]
    pub config: String,
    /// Its state directory.
    #[serde(default)]
    pub state_dir: String,
    /// The host id it is enrolled as.
    #[serde(default)]
    pub host_id: String,
    /// The firewall table it enforces.
    #[serde(default)]
    pub table: String,
}

/// The process holding the socket, as the kernel and the holder describe it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holder {
    /// Its pid (`SO_PEERCRED`), `None` if the kernel did not say.
    pub pid: Option<u32>,
    /// Its uid (`SO_PEERCRED`).
    pub uid: Option<u32>,
    /// `/proc/PID/comm`.
    pub comm: Option<String>,
    /// `/proc/PID/exe`.
    pub exe: Option<String>,
    /// What it said about itself; `None` when it said nothing within a second (stopped,
    /// or not a Cordon agent).
    pub info: Option<HolderInfo>,
}

impl Holder {
    /// The holder is not root while this process is: no Cordon agent, just a process
    /// that took the name (any local user can bind an abstract name).
    pub fn is_foreign(&self) -> bool {
        #[cfg(unix)]
        {
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            me == 0 && self.uid.is_some_and(|u| u != 0)
        }
        #[cfg(not(unix))]
        {
            false
        }
    }

    /// One line naming the holder: `pid 123 (cordon, /usr/bin/cordon), config …, state
    /// directory …, host id …`.
    pub fn describe(&self) -> String {
        let mut s = match self.pid {
            Some(p) => format!("pid {p}"),
            None => "a process the kernel did not name".to_string(),
        };
        let what: Vec<&str> = [self.comm.as_deref(), self.exe.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !what.is_empty() {
            s.push_str(&format!(" ({})", what.join(", ")));
        }
        if let Some(u) = self.uid.filter(|u| *u != 0) {
            s.push_str(&format!(", uid {u}"));
        }
        match &self.info {
            Some(i) => {
                for (k, v) in [
                    ("config", &i.config),
                    ("state directory", &i.state_dir),
                    ("host id", &i.host_id),
                    ("table", &i.table),
                ] {
                    if !v.is_empty() {
                        s.push_str(&format!(", {k} {v}"));
                    }
                }
            }
            None => s.push_str(", which did not say what it is (stopped, or no Cordon agent)"),
        }
        s
    }
}

/// Held while this process is the namespace's enforcing agent; the kernel frees the name
/// when the process exits (the serving thread lives as long as the process).
#[derive(Debug)]
pub struct Singleton {
    _private: (),
}

/// Why [`claim`] did not make this process the namespace's enforcing agent.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another process holds the name.
    #[error("another enforcing Cordon agent runs in this network namespace: {}", .0.describe())]
    Held(Box<Holder>),
    /// The socket could not be bound or asked (not for being taken).
    #[error("cannot {what} the agent's abstract socket @{SOCKET_NAME}")]
    Io {
        /// The step (`bind`, `connect to`).
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Makes this process the network namespace's one enforcing agent, answering
/// connections with `me`.
///
/// # Errors
/// [`ClaimError::Held`] naming the process that already holds it; [`ClaimError::Io`] when
/// the socket cannot be bound for another reason.
#[cfg(target_os = "linux")]
pub fn claim(me: &HolderInfo) -> Result<Singleton, ClaimError> {
    claim_named(SOCKET_NAME, me)
}

/// [`claim`] under another abstract name (tests, which must never take the real one in a
/// shared namespace).
#[cfg(target_os = "linux")]
fn claim_named(name: &str, me: &HolderInfo) -> Result<Singleton, ClaimError> {
    use std::io::Write;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};

    let addr =
        SocketAddr::from_abstract_name(name.as_bytes()).map_err(|source| ClaimError::Io { what: "bind", source })?;
    let mut line = serde_json::to_string(me).unwrap_or_default();
    line.push('\n');
    // A holder that exits between our bind and our connect: try again a few times.
    for _ in 0..5 {
        match UnixListener::bind_addr(&addr) {
            Ok(listener) => {
                let spawned = std::thread::Builder::new()
                    .name("cordon-agent-singleton".into())
                    .spawn(move || {
                        for mut conn in listener.incoming().flatten() {
                            let _ = conn.set_write_timeout(Some(std::time::Duration::from_secs(1)));
                            let _ = conn.write_all(line.as_bytes());
                        }
                    });
                return match spawned {
                    Ok(_) => Ok(Singleton { _private: () }),
                    Err(source) => Err(ClaimError::Io { what: "serve", source }),
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match holder_at(&addr) {
                Ok(Some(h)) => return Err(ClaimError::Held(Box::new(h))),
                Ok(None) => continue,
                Err(source) => {
                    return Err(ClaimError::Io {
                        what: "connect to",
                        source,
                    })
                }
            },
            Err(source) => return Err(ClaimError::Io { what: "bind", source }),
        }
    }
    Err(ClaimError::Io {
        what: "bind",
        source: std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "taken and freed again five times in a row",
        ),
    })
}

/// See the Linux version: no namespace singleton elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn claim(_me: &HolderInfo) -> Result<Singleton, ClaimError> {
    Ok(Singleton { _private: () })
}

/// The process holding the namespace's agent socket, if any (`None` also when it cannot
/// be asked).
#[cfg(target_os = "linux")]
pub fn holder() -> Option<Holder> {
    holder_named(SOCKET_NAME)
}

#[cfg(target_os = "linux")]
fn holder_named(name: &str) -> Option<Holder> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    holder_at(&addr).ok().flatten()
}

/// See the Linux version.
#[cfg(not(target_os = "linux"))]
pub fn holder() -> Option<Holder> {
    None
}

/// Connects to `addr`: `Ok(None)` when nobody listens there.
#[cfg(target_os = "linux")]
fn holder_at(addr: &std::os::unix::net::SocketAddr) -> std::io::Result<Option<Holder>> {
    use std::io::{BufRead, BufReader, Read};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    let stream = match UnixStream::connect_addr(addr) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the descriptor
    // belongs to `stream`, alive for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    let (pid, uid) = if rc == 0 && cred.pid > 0 {
        (Some(cred.pid as u32), Some(cred.uid))
    } else {
        (None, None)
    };
    let proc_text = |what: &str| -> Option<String> {
        let p = pid?;
        match what {
            "exe" => std::fs::read_link(format!("/proc/{p}/exe"))
                .ok()
                .map(|x| x.display().to_string()),
            _ => std::fs::read_to_string(format!("/proc/{p}/{what}"))
                .ok()
                .map(|s| s.trim().to_string()),
        }
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(1)));
    let mut line = String::new();
    let info = match BufReader::new((&stream).take(64 * 1024)).read_line(&mut line) {
        Ok(n) if n > 0 => serde_json::from_str::<HolderInfo>(line.trim()).ok(),
        _ => None,
    };
    Ok(Some(Holder {
        pid,
        uid,
        comm: proc_text("comm"),
        exe: proc_text("exe"),
        info,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_described_by_pid_process_and_what_it_said() {
        let h = Holder {
            pid: Some(42),
            uid: Some(0),
            comm: Some("cordon".into()),
            exe: Some("/usr/bin/cordon".into()),
            info: Some(HolderInfo {
                config: "/etc/cordon/agent.toml".into(),
                state_dir: "/var/lib/cordon".into(),
                host_id: "h-1".into(),
                table: "cordon".into(),
            }),
        };
        let d = h.describe();
        assert_eq!(
            d,
            "pid 42 (cordon, /usr/bin/cordon), config /etc/cordon/agent.toml, state directory /var/lib/cordon, host id h-1, table cordon"
        );
        let silent = Holder {
            pid: Some(7),
            uid: Some(1000),
            ..Holder::default()
        };
        assert!(silent.describe().contains("uid 1000"), "{}", silent.describe());
        assert!(silent.describe().contains("did not say"), "{}", silent.describe());
    }

    /// The second claim of one name is refused, naming this process and what it said;
    /// the holder is found by [`holder_named`] (a test name, never the real one).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_second_claim_is_refused_naming_the_first() {
        let name = format!("cordon-agent.test.{}", std::process::id());
        assert!(holder_named(&name).is_none());
        let me = HolderInfo {
            config: "/tmp/a/agent.toml".into(),
            host_id: "h-a".into(),
            ..HolderInfo::default()
        };
        let _held = claim_named(&name, &me).expect("first claim");
        let err = claim_named(&name, &HolderInfo::default()).expect_err("second claim must be refused");
        let ClaimError::Held(h) = err else {
            panic!("not Held: {err}")
        };
        assert_eq!(h.pid, Some(std::process::id()));
        assert_eq!(h.info.as_ref(), Some(&me));
        assert!(!h.is_foreign());
        assert_eq!(holder_named(&name).map(|h| h.info), Some(Some(me)));
    }
}

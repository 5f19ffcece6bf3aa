//! Why a backend failed: [`FirewallError`], whose refusals ([`Refusal`]) keep what caused
//! them ([`Cause`]: the kernel's netlink error, an I/O error, a program's exit) as the
//! error's `source`, and a typed [`FirewallError::HeldByAnotherProcess`] with the
//! holder's pid. Printed as a chain (`message: cause`), the text is the one the operator
//! always read; code asks the variant and the cause, never the text.

use std::fmt;
use std::ops::Deref;

use thiserror::Error;

/// Why a backend could not open, read or change the firewall. The messages are complete
/// sentences for the operator; the engine maps each variant to an exit code.
#[derive(Debug, Error)]
pub enum FirewallError {
    /// The backend cannot work on this host (missing binary, kernel support, OS).
    #[error(transparent)]
    Unsupported(Refusal),
    /// The OS refused for lack of privilege.
    #[error(transparent)]
    NotPermitted(Refusal),
    /// The OS rejected the change; nothing was applied (transactions are atomic).
    #[error(transparent)]
    Rejected(Refusal),
    /// Running a program or talking to the kernel failed at the I/O level (spawn, pipe,
    /// socket); `context` names the step.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `running iptables-save`.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another running cordon process (`cordon isolate --watch`, the agent) holds our
    /// tables (the nftables owner flag), so the kernel refused the change; nothing was
    /// changed. The message names the holder and the next step.
    #[error(
        "table {table:?} is {HELD_BY_ANOTHER}{}: the tamper watcher (`cordon isolate --watch`, systemd unit cordon-watch.service) or the Cordon agent (cordon-agent.service), which puts the quarantine back whenever anything else changes it. Nothing was changed. Stop that process first (sudo systemctl stop cordon-watch.path cordon-watch.service cordon-agent.service, or Ctrl-C a `cordon isolate --watch` in the foreground), then run this command again; an enrolled host can also be released through the Cordon server",
        holder_words(.holder)
    )]
    HeldByAnotherProcess {
        /// The table's name.
        table: String,
        /// The holder, when the kernel names it (the owner's netlink port id, which is
        /// its pid for the first socket of a process; Linux ≥ 6.9).
        holder: Option<Holder>,
        /// The kernel's refusal.
        #[source]
        source: Option<Cause>,
    },
}

/// The process holding our tables, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The owner's netlink port id (its pid for a process's first netlink socket).
    pub pid: u32,
    /// The command name from `/proc/<pid>/comm`; `None` when it cannot be read (then the
    /// id is named as a netlink port, which it may be rather than a pid).
    pub comm: Option<String>,
}

fn holder_words(holder: &Option<Holder>) -> String {
    match holder {
        Some(Holder { pid, comm: Some(comm) }) => format!(" (pid {pid}, {comm})"),
        Some(Holder { pid, comm: None }) => format!(" (netlink port {pid})"),
        None => String::new(),
    }
}

impl FirewallError {
    /// Whether the kernel refused because another running cordon process holds our
    /// tables (the nftables owner flag: `cordon isolate --watch`, the agent).
    pub fn is_held_by_another_process(&self) -> bool {
        matches!(self, FirewallError::HeldByAnotherProcess { .. })
    }

    /// The refusal of an `Unsupported`, `NotPermitted` or `Rejected` error.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            FirewallError::Unsupported(r) | FirewallError::NotPermitted(r) | FirewallError::Rejected(r) => Some(r),
            FirewallError::Io { .. } | FirewallError::HeldByAnotherProcess { .. } => None,
        }
    }

    /// The kernel's errno, when the kernel (netlink) or the OS (I/O) refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            FirewallError::Io { source, .. } => source.raw_os_error(),
            FirewallError::HeldByAnotherProcess { source, .. } => source.as_ref().and_then(Cause::errno),
            other => other.refusal().and_then(Refusal::cause).and_then(Cause::errno),
        }
    }
}

/// `e` and its causes, joined by `": "` (what the CLI prints); a cause whose text the
/// message already ends with (some libraries repeat their source) is printed once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// The words every "held by another running cordon process" refusal carries.
pub const HELD_BY_ANOTHER: &str = "owned by another running cordon process";

/// What a refusal says (a sentence naming the step and, often, the way out) and, when
/// there is one, its cause (the `source` of the error). Reads as the message text
/// (`Deref<Target = str>`), so `refusal.contains(…)` looks at the message only.
#[derive(Debug)]
pub struct Refusal {
    message: String,
    cause: Option<Cause>,
}

impl Refusal {
    /// A refusal with only a message (nothing underneath it: a missing program, an OS
    /// that lacks the mechanism).
    pub fn new(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            cause: None,
        }
    }

    /// A refusal whose cause is `cause`.
    pub fn caused_by(message: impl Into<String>, cause: impl Into<Cause>) -> Refusal {
        Refusal {
            message: message.into(),
            cause: Some(cause.into()),
        }
    }

    /// The message, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What caused it, if known.
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_ref()
    }

    /// The cause, taken out.
    pub fn into_cause(self) -> Option<Cause> {
        self.cause
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl Deref for Refusal {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal::new(message)
    }
}

impl From<&str> for Refusal {
    fn from(message: &str) -> Refusal {
        Refusal::new(message)
    }
}

/// What lies under a [`Refusal`].
#[derive(Debug, Error)]
pub enum Cause {
    /// nf_tables (netlink) answered with an error.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A program (`nft`, `iptables-restore`, `pfctl`, `netsh`) exited unsuccessfully;
    /// the text is the first lines of what it printed.
    #[error("{output}")]
    Exit {
        /// How it ended (exit code or signal); `None` when only the output says it failed
        /// (netsh reports failures on stdout with exit code 0).
        status: Option<std::process::ExitStatus>,
        /// What it printed (stderr, or stdout and stderr), shortened.
        output: String,
    },
    /// The kernel's reply did not parse.
    #[error("malformed netlink data: {0}")]
    Decode(String),
    /// A Windows Filtering Platform call returned this error code.
    #[error("0x{0:08x}")]
    Win32(u32),
}

impl Cause {
    /// The errno of a kernel or I/O error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Cause::Kernel(k) => Some(k.errno),
            Cause::Io(e) => e.raw_os_error(),
            Cause::Exit { .. } | Cause::Decode(_) | Cause::Win32(_) => None,
        }
    }

    /// A program's output, for a failed program.
    pub fn output(&self) -> Option<&str> {
        match self {
            Cause::Exit { output, .. } => Some(output),
            _ => None,
        }
    }
}

/// An error answer of nf_tables: the errno and the kernel's extended-ACK text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{}", std::io::Error::from_raw_os_error(*.errno), .text.as_ref().map(|t| format!(" ({t})")).unwrap_or_default())]
pub struct KernelError {
    /// The (positive) errno, e.g. `libc::EPERM`.
    pub errno: i32,
    /// The extended-ACK text, when the kernel gave one.
    pub text: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault kind: "held by another process" told apart by matching the message
    /// text. The variant says it, carries the holder's pid, and the printed chain ends
    /// with the kernel's refusal.
    #[test]
    fn held_by_another_process_is_a_variant_with_the_holder() {
        let e = FirewallError::HeldByAnotherProcess {
            table: "cordon".into(),
            holder: Some(Holder {
                pid: 4242,
                comm: Some("cordon".into()),
            }),
            source: Some(Cause::Kernel(KernelError { errno: 1, text: None })),
        };
        assert!(e.is_held_by_another_process());
        assert_eq!(e.errno(), Some(1));
        let text = chain(&e);
        for needle in [
            "table \"cordon\" is owned by another running cordon process (pid 4242, cordon)",
            "Nothing was changed",
            "Stop that process first",
            "cordon-watch.service",
        ] {
            assert!(text.contains(needle), "{needle:?} missing: {text}");
        }
        let kernel = std::io::Error::from_raw_os_error(1).to_string();
        assert!(
            text.ends_with(&format!("released through the Cordon server: {kernel}")),
            "{text}"
        );
        let refused = FirewallError::Rejected(Refusal::new(format!("a message saying {HELD_BY_ANOTHER}")));
        assert!(!refused.is_held_by_another_process(), "text alone does not make it so");
    }

    /// A refusal keeps its cause as `source`: the chain prints message then cause; the
    /// message alone (what `Deref` gives) has no cause text in it.
    #[test]
    fn a_refusal_keeps_its_cause_as_source() {
        let e = FirewallError::NotPermitted(Refusal::caused_by(
            "probing: nf_tables refused; nf_tables needs root",
            Cause::Kernel(KernelError {
                errno: 1,
                text: Some("extack words".into()),
            }),
        ));
        let source = std::error::Error::source(&e).expect("a cause");
        assert!(source.to_string().ends_with(" (extack words)"), "{source}");
        let FirewallError::NotPermitted(r) = &e else {
            unreachable!()
        };
        assert!(r.contains("needs root") && !r.contains("extack"), "{}", r.message());
        assert_eq!(e.errno(), Some(1));
        assert_eq!(chain(&e), format!("{}: {source}", r.message()));
    }
}

//! Engine failures. Each variant keeps its cause as `#[source]`; [`EngineError::class`]
//! sorts them into the classes that decide the exit code (design §4) and the `error`
//! field of `--json` output and agent reports ([`EngineError::kind`]). Use
//! [`EngineError::detail`] (the whole cause chain) wherever the error is shown as text.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cordon_firewall::{BackendKind, FirewallError};
use cordon_policy::PolicyError;
use thiserror::Error;

/// Engine failures, each mapped to the exit code of design §4 by [`EngineError::class`].
#[derive(Debug, Error)]
pub enum EngineError {
    /// Bad input (a request the engine cannot turn into a policy); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The request does not make a valid policy; nothing was changed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A host name in the request does not resolve; nothing was changed.
    #[error("host name {name:?} does not resolve")]
    Resolve {
        /// The name as given.
        name: String,
        /// The resolver's error (`getaddrinfo` through `ToSocketAddrs`).
        #[source]
        source: std::io::Error,
    },
    /// The process lacks the privilege to change the firewall (not root/Administrator).
    #[error("{0}")]
    NotPermitted(String),
    /// The firewall backend failed: unsupported on this host, not permitted, or I/O.
    #[error(transparent)]
    Firewall(FirewallError),
    /// The OS rejected the change as a whole; nothing was applied.
    #[error("firewall rejected the change (nothing applied)")]
    Rejected(#[source] FirewallError),
    /// The rules were applied but the verification target was unreachable within the
    /// timeout, so the previous state was restored (or restoring it failed too).
    #[error("verification failed: could not reach {} ({reason}); {}", fmt_targets(.targets), match .rollback_error { None => "rolled back", Some(_) => "ROLLBACK FAILED" })]
    VerificationFailed {
        /// Every address that was tried.
        targets: Vec<SocketAddr>,
        /// Why no target answered: the bound and the last connect error (its source).
        reason: crate::verify::Unreachable,
        /// Why the rollback failed, if it did.
        #[source]
        rollback_error: Option<Box<EngineError>>,
    },
    /// The backend applied the rules but cannot list them back for the digest.
    #[error("rules were applied but cannot be read back from the kernel")]
    ReadBack,
    /// The state directory, state file or lock file could not be used; `what` is the
    /// operation ("read", "create the state directory", "lock", …).
    #[error("cannot {what} {}", path.display())]
    StateIo {
        /// The operation, as a verb phrase.
        what: &'static str,
        /// The file or directory it was done on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not valid JSON of the expected shape. The message names the file
    /// and the way out.
    #[error("state file {} is corrupt; {}", path.display(), recovery(path))]
    StateCorrupt {
        /// The state file.
        path: PathBuf,
        /// The parse error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The state file was written by a Cordon with another state format.
    #[error("state file {} has version {found}, this cordon understands {expected}; {}", path.display(), recovery(path))]
    StateVersion {
        /// The state file.
        path: PathBuf,
        /// The version written in it.
        found: u32,
        /// [`crate::state::STATE_VERSION`].
        expected: u32,
    },
    /// A record (state, claims, backup, management paths) is not a file Cordon could
    /// have written: a FIFO, a symbolic link, a device, a directory, or larger than
    /// [`crate::record::MAX_RECORD_BYTES`] (trial20 HIGH-A). Treated like
    /// [`EngineError::StateCorrupt`]: an ordered quarantine sets it aside and goes on.
    #[error("record {} is unusable; {}", path.display(), recovery(path))]
    StateUnusable {
        /// The file.
        path: PathBuf,
        /// What it is instead of a record.
        #[source]
        source: crate::record::RecordError,
    },
    /// Another process held the state directory's lock for longer than the lock timeout
    /// (`holder`: its pid, as it recorded in the lock file).
    #[error("gave up after {:.0} s waiting for the lock on {} held by {}; retry later or raise --lock-timeout", .waited.as_secs_f64(), .path.display(), .holder_is)]
    LockTimeout {
        /// The lock file, `<state_dir>/.lock`.
        path: PathBuf,
        /// The holder's pid; `None` when the lock file names none.
        holder: Option<u32>,
        /// The holder as it was when this process gave up: pid, `/proc/PID/comm` and
        /// `/proc/PID/exe`, and whether that is a cordon binary (trial15 MED-2: a python3
        /// holding the lock was called "another cordon run or the agent").
        holder_is: String,
        /// How long this process waited.
        waited: Duration,
    },
    /// The rules were applied, but a step after that failed (`what`: removing another
    /// backend's rules, reading the rules back, recording the state), so they were not
    /// kept: the firewall was put back to the previous record (or nothing), unless
    /// `rollback_error` says that failed too; or a step before them failed and nothing
    /// was applied (`back_to` says which).
    #[error("{what}; {}", rollback_words(*.back_to, .rollback_error))]
    NotKept {
        /// The step that failed, as a sentence for the operator.
        what: &'static str,
        /// Why it failed.
        #[source]
        cause: Box<EngineError>,
        /// What the firewall holds afterwards (what the message says).
        back_to: RolledBackTo,
        /// Why putting the firewall back failed too; `None` when the rollback worked.
        rollback_error: Option<Box<FirewallError>>,
    },
    /// `release`: some backends' rules could not be removed; the state file is unchanged.
    #[error("release failed, Cordon rules may still be in force ({}); the state file is unchanged", .failures.iter().map(|(k, e)| format!("{k}: {}", crate::error::chain(e))).collect::<Vec<_>>().join("; "))]
    ReleaseIncomplete {
        /// Each backend whose rules stayed, with its error.
        failures: Vec<(BackendKind, FirewallError)>,
    },
    /// Another running cordon process (`cordon isolate --watch`: cordon-watch.service, or
    /// the agent: cordon-agent.service) holds the quarantine tables (nftables owner flag),
    /// so the kernel refused the change; nothing was changed. The source names the holder
    /// and the next step (stop it first).
    #[error("the quarantine is held by another running cordon process")]
    HeldByAnotherProcess(#[source] FirewallError),
    /// `release --source S` (not forced) found no record of the rules of `table` in force:
    /// no state and no claim in the table's home (`state_dir`, found through the registry
    /// and the tables' own comment). Rules nobody can be seen to claim are never removed by
    /// a source's release (issue #14 trial12 N-2: whoever applied them still holds the
    /// host); nothing was changed. `cordon release --force` removes them.
    #[error("nothing released: {source_name} holds no claim, and Cordon rules of table `{table}` are in force with no record of who applied them in {} (nor in any state directory the table or /run/cordon names){}; the rules stay — whoever applied them still holds this host. `cordon status` shows them; `cordon release --force` removes them", .state_dir.display(), if .kernel_claims.is_empty() { String::new() } else { format!("; the kernel's record of the quarantine (its table comment) names them as claimed by {}, not by {}", .kernel_claims.join(", "), .source_name) })]
    UnclaimedRules {
        /// The claim holders the tables' comment names (`agent:HOSTID`, `wazuh`, …;
        /// [`cordon_policy::Policy::claimed_by`]); empty when it names none.
        kernel_claims: Vec<String>,
        /// The releasing source (`wazuh`, `agent`, `local`, …).
        source_name: String,
        /// The table whose rules are in force.
        table: String,
        /// The state directory that was searched (the table's home or the caller's own).
        state_dir: PathBuf,
    },
    /// The state could not be encoded as JSON.
    #[error("cannot encode the state")]
    StateEncode(#[source] serde_json::Error),
    /// `release --force`: some backends could not be cleaned (the others were).
    #[error("forced release incomplete, the state file is unchanged: {}", .failures.iter().map(|(k, e)| format!("{k}: {}", crate::error::chain(e))).collect::<Vec<_>>().join("; "))]
    ForcedReleaseIncomplete {
        /// Each backend that could not be cleaned, with its error.
        failures: Vec<(BackendKind, FirewallError)>,
    },
}

/// The classes of [`EngineError`] that callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input; nothing changed (exit 2).
    Invalid,
    /// This host or backend cannot do it; nothing changed (exit 2).
    Unsupported,
    /// Not root/Administrator (exit 4).
    NotPermitted,
    /// Verification failed, rolled back (exit 3).
    VerificationFailed,
    /// The OS rejected the change; nothing applied (exit 1).
    Rejected,
    /// Anything else: I/O, state file, read-back (exit 1).
    Other,
}

/// How to get out of a damaged state file at `path`.
fn recovery(path: &Path) -> String {
    let dir = path.parent().unwrap_or(path);
    format!(
        "to recover, run `cordon release --force --state-dir {}` (removes Cordon's rules from every backend and this file) or move the file away and isolate again",
        dir.display()
    )
}

/// Where a failed apply left the firewall ([`EngineError::NotKept`]), so its message says
/// what happened, not "rolled back" for a re-apply whose rules are in force (issue 14
/// LOW: `--reapply` on a full disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolledBackTo {
    /// The step failed before any rule was applied: nothing was changed.
    NotApplied,
    /// The rules were put back to the recorded quarantine (for a re-apply: the same
    /// rules, in force as recorded).
    Recorded,
    /// No quarantine was recorded: this command's rules were removed.
    Nothing,
}

fn rollback_words(back_to: RolledBackTo, rollback_error: &Option<Box<FirewallError>>) -> String {
    match (rollback_error, back_to) {
        (Some(e), _) => format!("ROLLBACK FAILED ({}): check `cordon status`", chain(e)),
        (None, RolledBackTo::NotApplied) => "nothing was changed: the firewall is as it was before this command".into(),
        (None, RolledBackTo::Recorded) => {
            "rolled back to the recorded quarantine: its rules are in force, as recorded".into()
        }
        (None, RolledBackTo::Nothing) => {
            "rolled back: this command's rules were removed (no quarantine was recorded before it)".into()
        }
    }
}

fn fmt_targets(targets: &[SocketAddr]) -> String {
    targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

/// `e` and its causes, joined by `": "` (what the CLI prints): the firewall's
/// [`cordon_firewall::chain`], one implementation for every crate above it.
pub use cordon_firewall::chain;

impl EngineError {
    /// Which class of failure this is.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::Invalid(_) | EngineError::Policy(_) | EngineError::Resolve { .. } => ErrorClass::Invalid,
            EngineError::NotPermitted(_) => ErrorClass::NotPermitted,
            EngineError::Firewall(FirewallError::Unsupported(_)) => ErrorClass::Unsupported,
            EngineError::Firewall(FirewallError::NotPermitted(_)) => ErrorClass::NotPermitted,
            EngineError::Firewall(FirewallError::Rejected(_)) | EngineError::Rejected(_) => ErrorClass::Rejected,
            EngineError::VerificationFailed { .. } => ErrorClass::VerificationFailed,
            EngineError::Firewall(_)
            | EngineError::ReadBack
            | EngineError::StateIo { .. }
            | EngineError::StateCorrupt { .. }
            | EngineError::StateVersion { .. }
            | EngineError::StateUnusable { .. }
            | EngineError::StateEncode(_)
            | EngineError::LockTimeout { .. }
            | EngineError::NotKept { .. }
            | EngineError::ReleaseIncomplete { .. }
            | EngineError::ForcedReleaseIncomplete { .. }
            | EngineError::UnclaimedRules { .. } => ErrorClass::Other,
            EngineError::HeldByAnotherProcess(_) => ErrorClass::Rejected,
        }
    }

    /// Process exit code (design §4): 2 invalid/unsupported, 3 verification failed,
    /// 4 not permitted, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self.class() {
            ErrorClass::Invalid | ErrorClass::Unsupported => 2,
            ErrorClass::VerificationFailed => 3,
            ErrorClass::NotPermitted => 4,
            ErrorClass::Rejected | ErrorClass::Other => 1,
        }
    }

    /// Short machine-readable name for `--json` output and agent reports.
    pub fn kind(&self) -> &'static str {
        match self.class() {
            ErrorClass::Invalid => "invalid_input",
            ErrorClass::Unsupported => "unsupported",
            ErrorClass::NotPermitted => "not_permitted",
            ErrorClass::VerificationFailed => "verification_failed",
            ErrorClass::Rejected => "rejected",
            ErrorClass::Other => "error",
        }
    }

    /// The message with its whole cause chain (`outer: cause: root cause`), for `--json`
    /// `detail` and agent reports.
    pub fn detail(&self) -> String {
        chain(self)
    }

    /// A record at `path` that could not be read ([`crate::record::read`]): an I/O
    /// error is [`EngineError::StateIo`], anything else [`EngineError::StateUnusable`].
    pub(crate) fn record(path: impl Into<PathBuf>, e: crate::record::RecordError) -> EngineError {
        match e {
            crate::record::RecordError::Io(source) => EngineError::state_io("read", path, source),
            other => EngineError::StateUnusable {
                path: path.into(),
                source: other,
            },
        }
    }

    /// Whether this is a record that cannot be used as one (corrupt JSON, another
    /// version, not a regular file, too large) at `path`: what an ordered quarantine sets
    /// aside instead of stopping.
    pub fn is_bad_record_at(&self, path: &Path) -> bool {
        match self {
            EngineError::StateCorrupt { path: p, .. }
            | EngineError::StateVersion { path: p, .. }
            | EngineError::StateUnusable { path: p, .. } => p == path,
            _ => false,
        }
    }

    /// A state-file I/O failure at `path`.
    pub(crate) fn state_io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> EngineError {
        EngineError::StateIo {
            what,
            path: path.into(),
            source,
        }
    }
}

impl From<FirewallError> for EngineError {
    fn from(e: FirewallError) -> Self {
        match e {
            FirewallError::Rejected(_) | FirewallError::HeldByAnotherProcess { .. } => EngineError::Rejected(e),
            other => EngineError::Firewall(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_io_error_keeps_its_cause_chain() {
        let e = EngineError::state_io(
            "read",
            "/var/lib/cordon/cordon.json",
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"),
        );
        assert_eq!(e.to_string(), "cannot read /var/lib/cordon/cordon.json");
        assert_eq!(e.detail(), "cannot read /var/lib/cordon/cordon.json: permission denied");
        assert_eq!(e.kind(), "error");
        assert_eq!(e.exit_code(), 1);
    }

    /// Issue 14 LOW: `--reapply` on a full disk said "rolled back: the firewall is as it
    /// was before this command" while the recorded rules were in force (put back), and a
    /// claim that could not be written said "rolled back" when nothing had been applied.
    #[test]
    fn a_rule_set_not_kept_says_what_the_firewall_holds() {
        let not_kept = |back_to| {
            EngineError::NotKept {
                what: "the quarantine could not be recorded in the state directory, so it was not kept",
                cause: Box::new(EngineError::state_io(
                    "write",
                    "/var/lib/cordon/cordon.json",
                    std::io::Error::from_raw_os_error(28),
                )),
                back_to,
                rollback_error: None,
            }
            .to_string()
        };
        assert!(not_kept(RolledBackTo::Recorded)
            .ends_with("rolled back to the recorded quarantine: its rules are in force, as recorded"));
        assert!(not_kept(RolledBackTo::NotApplied)
            .ends_with("nothing was changed: the firewall is as it was before this command"));
        assert!(not_kept(RolledBackTo::Nothing).contains("this command's rules were removed"));
    }

    #[test]
    fn firewall_error_classes_keep_their_exit_codes() {
        let e = EngineError::from(FirewallError::Rejected("netlink: EINVAL".into()));
        assert_eq!(
            e.detail(),
            "firewall rejected the change (nothing applied): netlink: EINVAL"
        );
        assert_eq!((e.kind(), e.exit_code()), ("rejected", 1));
        let e = EngineError::from(FirewallError::Unsupported("no nft".into()));
        assert_eq!(
            (e.detail().as_str(), e.kind(), e.exit_code()),
            ("no nft", "unsupported", 2)
        );
        let e = EngineError::from(FirewallError::NotPermitted("EPERM".into()));
        assert_eq!((e.kind(), e.exit_code()), ("not_permitted", 4));
    }

    #[test]
    fn rollback_failure_is_a_source_of_verification_failure() {
        let e = EngineError::VerificationFailed {
            targets: vec!["192.0.2.1:8443".parse().unwrap()],
            reason: crate::verify::Unreachable {
                timeout: std::time::Duration::from_secs(2),
                last_target: None,
                last_error: None,
            },
            rollback_error: Some(Box::new(EngineError::ReadBack)),
        };
        assert_eq!(
            e.detail(),
            "verification failed: could not reach 192.0.2.1:8443 (timed out after 2.0s; last error: no target); ROLLBACK FAILED: \
             rules were applied but cannot be read back from the kernel"
        );
        assert_eq!(e.exit_code(), 3);
    }
}

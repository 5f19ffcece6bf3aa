//! The local quarantine engine shared by the standalone CLI and the agent:
//! resolve every name first, apply the whole policy in one transaction, prove the
//! management server is still reachable (or roll back), persist what was applied, and
//! report status including tamper detection.
//!
//! Order matters for safety: nothing touches the firewall until every name resolved and
//! every input validated, so bad input never leaves the host half changed, and a host
//! name is never looked up after DNS is already blocked.
// Public items still to document (65 when [workspace.lints] turned missing_docs on);
// remove this allow once `cargo clippy -p cordon-engine` shows none.
#![allow(missing_docs)]

pub mod claims;
mod error;
pub mod impact;
mod lock;
pub mod notify;
pub mod privilege;
pub mod resolve;
pub mod state;
pub mod verify;
pub mod watch;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use cordon_firewall::{BackendChoice, BackendKind, Coverage, Firewall, FirewallError};
use cordon_policy::{AllowSpec, Policy, TableName};
use serde::{Deserialize, Serialize};

pub use claims::{Claim, ClaimIsolateOutcome, ClaimReleaseOutcome, ClaimSource};
pub use error::{chain as error_chain, EngineError, ErrorClass};
pub use state::StoredState;

/// Default directory for the persisted quarantine state.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cordon";

/// Default time allowed for the post-apply reachability check.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the engine keeps its state and which firewall objects it owns.
#[derive(Debug, Clone)]
pub struct Engine {
    pub table: TableName,
    pub state_dir: PathBuf,
    pub backend: BackendChoice,
}

/// Everything `cordon isolate` was asked for, before resolution. Serializable so the
/// agent and the state file can carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolateRequest {
    #[serde(default)]
    pub allow: Vec<AllowSpec>,
    #[serde(default)]
    pub servers: Vec<AllowSpec>,
    /// Explicit resolvers; `None` discovers them from resolv.conf.
    #[serde(default)]
    pub resolvers: Option<Vec<IpAddr>>,
    pub dns: bool,
    pub dhcp: bool,
    #[serde(default)]
    pub message: Option<String>,
    /// Verification target; `None` uses the first server (if any).
    #[serde(default)]
    pub verify: Option<AllowSpec>,
    #[serde(with = "secs")]
    pub verify_timeout: Duration,
}

impl Default for IsolateRequest {
    fn default() -> Self {
        IsolateRequest {
            allow: vec![],
            servers: vec![],
            resolvers: None,
            dns: true,
            dhcp: true,
            message: None,
            verify: None,
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// A request with every name resolved: what will be applied and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRequest {
    pub policy: Policy,
    /// Addresses the verification connects to (any one answering is success).
    pub verify_targets: Vec<SocketAddr>,
}

/// Result of a successful isolate.
#[derive(Debug, Clone, Serialize)]
pub struct IsolateOutcome {
    pub state: &'static str,
    pub backend: BackendKind,
    pub table: String,
    pub policy: Policy,
    pub digest: String,
    pub applied_at: String,
    /// The address that answered verification, if verification ran.
    pub verified_via: Option<SocketAddr>,
    /// Problem delivering the user message; never fatal.
    pub message_warning: Option<String>,
    pub apply_ms: f64,
    /// The layers in force right after applying, read back from the kernel.
    pub coverage: Coverage,
    /// What the quarantine cuts off besides the host, read before applying.
    pub impact: impact::Impact,
}

/// What `status` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineState {
    Isolated,
    Released,
    Tampered,
}

impl QuarantineState {
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineState::Isolated => "isolated",
            QuarantineState::Released => "released",
            QuarantineState::Tampered => "tampered",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state: QuarantineState,
    pub backend: Option<BackendKind>,
    pub table: String,
    pub policy: Option<Policy>,
    pub applied_at: Option<String>,
    pub expected_digest: Option<String>,
    pub actual_digest: Option<String>,
    /// True when the rules in the kernel match what was applied.
    pub digest_matches: bool,
    /// Why the state is `tampered`.
    pub reason: Option<String>,
    /// The layers our rules are in force in now (`inet`, `netdev-ingress`,
    /// `netdev-egress`, …), read back from the kernel; never more than is in force.
    pub coverage: Coverage,
}

/// See [`Engine::startup_check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum StartupFinding {
    /// No quarantine recorded.
    NothingRecorded,
    /// The recorded rules are in force.
    Intact,
    /// The machine rebooted since the rules were applied: re-apply as usual.
    Rebooted,
    /// Removed or changed in the same boot without us: report (audit) and re-apply.
    Tampered { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseOutcome {
    pub state: &'static str,
    pub backend: BackendKind,
    pub table: String,
    /// False when nothing of ours was present.
    pub was_isolated: bool,
}

impl Engine {
    pub fn new(table: TableName, state_dir: PathBuf, backend: BackendChoice) -> Self {
        Engine {
            table,
            state_dir,
            backend,
        }
    }

    /// Resolves every name in `req` (servers, exceptions, verify target) and discovers
    /// resolvers. Fails with [`EngineError::Invalid`] on any name that does not resolve.
    pub fn resolve(&self, req: &IsolateRequest) -> Result<ResolvedRequest, EngineError> {
        resolve::resolve_request(req)
    }

    /// Opens the firewall backend (recorded one if `prefer` is given and available).
    pub fn firewall(&self, prefer: Option<BackendKind>) -> Result<Box<dyn Firewall>, EngineError> {
        let choice = match (self.backend, prefer) {
            (BackendChoice::Auto, Some(kind)) => BackendChoice::Exactly(kind),
            (choice, _) => choice,
        };
        cordon_firewall::open(choice, &self.table).map_err(EngineError::from)
    }

    /// The preflight impact report for `resolved`: what besides the host the quarantine
    /// cuts off, and how the servers are reached. Reads interfaces and routes only.
    pub fn impact(&self, resolved: &ResolvedRequest) -> impact::Impact {
        impact::report(&resolved.policy.servers, impact::proxy_from_env())
    }

    /// The exact ruleset `isolate` would apply; changes nothing and needs no privilege.
    pub fn dry_run(&self, req: &IsolateRequest) -> Result<(BackendKind, String, ResolvedRequest), EngineError> {
        let resolved = self.resolve(req)?;
        let fw = self.firewall(None)?;
        let text = fw.render(&resolved.policy)?;
        Ok((fw.kind(), text, resolved))
    }

    /// Applies `req` atomically, verifies, persists. On verification failure the previous
    /// state (an earlier quarantine, or nothing) is restored and `VerificationFailed` is
    /// returned.
    pub fn isolate(&self, req: &IsolateRequest) -> Result<IsolateOutcome, EngineError> {
        let resolved = self.resolve(req)?;
        privilege::require_admin()?;
        let _lock = lock::StateLock::acquire(&self.state_dir)?;
        let previous = state::load(&self.state_dir, &self.table)?;
        let fw = self.firewall(None)?;
        let impact = self.impact(&resolved);
        let mut outcome = self.apply_resolved(fw.as_ref(), req, &resolved, previous.as_ref(), true, true)?;
        outcome.impact = impact;
        Ok(outcome)
    }

    /// Like [`Engine::isolate`] but without the reachability probe and without rollback:
    /// resolves `req`, applies it atomically and persists it. The agent uses this: it
    /// resolves each exception on its own first (so one that does not resolve is left out
    /// instead of cancelling the quarantine) and verifies through its own authenticated
    /// connection to the server rather than a TCP probe. `notify_users` sends
    /// `req.message` to logged-in users (a new quarantine, not a re-apply after an address
    /// change).
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when a name in `req` does not resolve (nothing changed),
    /// [`EngineError::NotPermitted`] without privilege, the backend's error when the kernel
    /// refuses the batch (nothing changed), [`EngineError::StateIo`] when the state cannot
    /// be saved.
    pub fn isolate_unverified(&self, req: &IsolateRequest, notify_users: bool) -> Result<IsolateOutcome, EngineError> {
        let resolved = self.resolve(req)?;
        privilege::require_admin()?;
        let _lock = lock::StateLock::acquire(&self.state_dir)?;
        let previous = state::load(&self.state_dir, &self.table)?;
        let fw = self.firewall(None)?;
        self.apply_resolved(fw.as_ref(), req, &resolved, previous.as_ref(), false, notify_users)
    }

    /// Re-applies the stored policy (boot, tamper repair) without resolving names again
    /// and without verification: once quarantined, the host fails closed.
    pub fn reapply(&self) -> Result<IsolateOutcome, EngineError> {
        privilege::require_admin()?;
        let _lock = lock::StateLock::acquire(&self.state_dir)?;
        let Some(stored) = state::load(&self.state_dir, &self.table)? else {
            return Err(EngineError::Invalid(format!(
                "nothing to re-apply: no quarantine recorded in {}",
                self.state_dir.display()
            )));
        };
        let fw = self.firewall(Some(stored.backend))?;
        let resolved = ResolvedRequest {
            policy: stored.policy.clone(),
            verify_targets: vec![],
        };
        self.apply_resolved(fw.as_ref(), &stored.request, &resolved, Some(&stored), false, false)
    }

    fn apply_resolved(
        &self,
        fw: &dyn Firewall,
        req: &IsolateRequest,
        resolved: &ResolvedRequest,
        previous: Option<&StoredState>,
        verify_after: bool,
        notify_users: bool,
    ) -> Result<IsolateOutcome, EngineError> {
        let started = std::time::Instant::now();
        fw.apply(&resolved.policy)?;
        let apply_ms = started.elapsed().as_secs_f64() * 1e3;

        let mut verified_via = None;
        if verify_after && !resolved.verify_targets.is_empty() {
            match verify::reach_any(&resolved.verify_targets, req.verify_timeout) {
                Ok(addr) => verified_via = Some(addr),
                Err(reason) => {
                    let rollback = self.roll_back(fw, previous);
                    return Err(EngineError::VerificationFailed {
                        targets: resolved.verify_targets.clone(),
                        reason,
                        rollback_error: rollback.err().map(|e| Box::new(EngineError::from(e))),
                    });
                }
            }
        }

        let inspection = fw.inspect()?.ok_or(EngineError::ReadBack)?;
        let applied_at = state::now_rfc3339();
        let stored = StoredState {
            version: state::STATE_VERSION,
            table: self.table.clone(),
            backend: fw.kind(),
            request: req.clone(),
            policy: resolved.policy.clone(),
            applied_at: applied_at.clone(),
            digest: inspection.digest.clone(),
            boot_id: state::boot_id(),
        };
        state::save(&self.state_dir, &stored)?;

        let message_warning = match &req.message {
            Some(text) if notify_users => notify::message_users(text).err(),
            _ => None,
        };
        let coverage = fw.coverage()?;
        Ok(IsolateOutcome {
            state: QuarantineState::Isolated.as_str(),
            backend: fw.kind(),
            table: self.table.to_string(),
            policy: resolved.policy.clone(),
            digest: inspection.digest,
            applied_at,
            verified_via,
            message_warning,
            apply_ms,
            coverage,
            impact: impact::Impact::default(),
        })
    }

    fn roll_back(&self, fw: &dyn Firewall, previous: Option<&StoredState>) -> Result<(), FirewallError> {
        match previous {
            Some(prev) if prev.backend == fw.kind() => fw.apply(&prev.policy),
            _ => fw.remove(),
        }
    }

    /// Removes our rules and the stored state. Succeeds (with `was_isolated: false`) when
    /// nothing was in force.
    pub fn release(&self) -> Result<ReleaseOutcome, EngineError> {
        privilege::require_admin()?;
        let _lock = lock::StateLock::acquire(&self.state_dir)?;
        let stored = state::load(&self.state_dir, &self.table)?;
        let fw = self.firewall(stored.as_ref().map(|s| s.backend))?;
        let was_isolated = stored.is_some() || fw.inspect()?.is_some();
        fw.remove()?;
        state::delete(&self.state_dir, &self.table)?;
        Ok(ReleaseOutcome {
            state: QuarantineState::Released.as_str(),
            backend: fw.kind(),
            table: self.table.to_string(),
            was_isolated,
        })
    }

    /// Break-glass release: removes this table's rules from every backend that can be
    /// opened on this host, whatever the state file says (or if it is lost or corrupt),
    /// then deletes the state file. Returns the backends that were cleaned.
    pub fn release_everywhere(&self) -> Result<Vec<BackendKind>, EngineError> {
        privilege::require_admin()?;
        let _lock = lock::StateLock::acquire(&self.state_dir)?;
        let mut cleaned = Vec::new();
        let mut failures = Vec::new();
        for kind in cordon_firewall::platform_backends() {
            match cordon_firewall::open(BackendChoice::Exactly(kind), &self.table) {
                Ok(fw) => match fw.remove() {
                    Ok(()) => cleaned.push(kind),
                    Err(e) => failures.push((kind, e)),
                },
                Err(FirewallError::Unsupported(_)) => {}
                Err(e) => failures.push((kind, e)),
            }
        }
        state::delete(&self.state_dir, &self.table)?;
        if failures.is_empty() {
            Ok(cleaned)
        } else {
            Err(EngineError::ForcedReleaseIncomplete { failures })
        }
    }

    /// What a process starting up (the agent) finds: the kernel compared with the record,
    /// with the boot id telling a reboot (rules gone, as expected) from tampering while no
    /// Cordon process was running (rules gone in the same boot).
    pub fn startup_check(&self) -> Result<StartupFinding, EngineError> {
        let Some(stored) = state::load(&self.state_dir, &self.table)? else {
            return Ok(StartupFinding::NothingRecorded);
        };
        let fw = self.firewall(Some(stored.backend))?;
        let same_boot = match (&stored.boot_id, state::boot_id()) {
            (Some(a), Some(b)) => a == &b,
            // Unknown: treat as same boot, the stricter reading.
            _ => true,
        };
        Ok(match fw.inspect()? {
            Some(i) if i.digest == stored.digest => StartupFinding::Intact,
            Some(_) => StartupFinding::Tampered {
                reason: "quarantine rules in the kernel differ from the ones applied".into(),
            },
            None if same_boot => StartupFinding::Tampered {
                reason: "quarantine rules disappeared while no cordon process was running (same boot)".into(),
            },
            None => StartupFinding::Rebooted,
        })
    }

    /// Compares the kernel's rules with what was recorded at apply time.
    pub fn status(&self) -> Result<StatusReport, EngineError> {
        let stored = state::load(&self.state_dir, &self.table)?;
        let fw = self.firewall(stored.as_ref().map(|s| s.backend))?;
        let live = fw.inspect()?;
        let coverage = fw.coverage()?;
        let mut report = StatusReport {
            state: QuarantineState::Released,
            backend: stored.as_ref().map(|s| s.backend),
            table: self.table.to_string(),
            policy: stored.as_ref().map(|s| s.policy.clone()),
            applied_at: stored.as_ref().map(|s| s.applied_at.clone()),
            expected_digest: stored.as_ref().map(|s| s.digest.clone()),
            actual_digest: live.as_ref().map(|i| i.digest.clone()),
            digest_matches: false,
            reason: None,
            coverage,
        };
        match (&stored, &live) {
            (None, None) => {}
            (None, Some(_)) => {
                report.state = QuarantineState::Tampered;
                report.backend = Some(fw.kind());
                report.reason = Some(format!(
                    "{} rules named {:?} are present but no quarantine is recorded in {}",
                    fw.kind(),
                    self.table.as_str(),
                    self.state_dir.display()
                ));
            }
            (Some(_), None) => {
                report.state = QuarantineState::Tampered;
                report.reason = Some("quarantine rules are missing from the kernel".into());
            }
            (Some(s), Some(i)) if s.digest == i.digest => {
                report.state = QuarantineState::Isolated;
                report.digest_matches = true;
            }
            (Some(_), Some(_)) => {
                report.state = QuarantineState::Tampered;
                report.reason = Some("quarantine rules in the kernel differ from the ones applied".into());
            }
        }
        Ok(report)
    }
}

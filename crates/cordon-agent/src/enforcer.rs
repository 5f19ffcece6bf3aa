//! What the agent enforces with: the real engine, or an in-memory stand-in for tests and
//! benchmarks that must not touch this machine's firewall.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use cordon_engine::watch::{WatchEvent, WatchOptions};

use cordon_engine::{ClaimSource, Engine, EngineError, ManagementPaths, QuarantineState, StartupFinding};
use cordon_firewall::{BackendChoice, BackendKind};
use cordon_policy::TableName;
use cordon_proto::ClaimInfo;

use crate::plan::Plan;

/// Result of applying a quarantine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// SHA-256 (hex) of the rule listing read back; `None` for the in-memory enforcer.
    pub digest: Option<String>,
    /// The backend that applied the rules (`netlink`, ...; `memory` for the in-memory
    /// enforcer).
    pub backend: Option<cordon_proto::Backend>,
    /// The rules are in force but could not be recorded on disk (a full state directory:
    /// the engine's `IsolateOutcome::unrecorded`, trial17 HIGH-1): why. `None`: recorded.
    pub unrecorded: Option<String>,
    /// The rules are in force but were applied without a lock that another process held
    /// past the wait (issue 14 HIGH-E: a foreign `flock` on `.lock`): one sentence per
    /// lock, naming the holder (pid, command, executable). Reported as `degraded` lines.
    pub lock_notes: Vec<String>,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Isolated, released or tampered, as the engine's status says.
    pub state: QuarantineState,
    /// SHA-256 (hex) of the listing now in the kernel, when rules of ours are present.
    pub digest: Option<String>,
    /// The recorded backend.
    pub backend: Option<cordon_proto::Backend>,
    /// Why the state is tampered.
    pub reason: Option<String>,
    /// Cordon rules are in force that nobody's record accounts for (the engine's
    /// `StatusReport::records_lost`): kept, never removed by the agent (fail closed).
    pub records_lost: bool,
    /// Every claim standing on this host's quarantine, the agent's own included (issue
    /// 19 item 9): reported to the server as they are; the agent never undoes another
    /// source's claim.
    pub claims: Vec<ClaimInfo>,
    /// Other Cordon-looking tables in force whose records cannot be found (the engine's
    /// `StatusReport::unrecognised_tables`, one sentence each naming the table): never
    /// trusted to isolate, reported to the server as `degraded` lines while quarantined.
    pub unrecognised: Vec<String>,
    /// What the union of claims in force fails to isolate (the engine's
    /// `StatusReport::not_isolated`: one `NOT ISOLATED: …` sentence per address family
    /// left fully open, naming the claims that widen it, and one for what goes around
    /// Cordon's hooks). While it is not empty the agent never reports its quarantine as in
    /// force (trial15 HIGH-4, trial31 HIGH-H).
    pub not_isolated: Vec<String>,
    /// The agent's management paths the quarantine in force does not keep open (the
    /// engine's `StatusReport::agent_paths_missing`): tampering with the agent's access
    /// to its server, repaired with [`Enforcer::restore_paths`] (trial15 HIGH-1).
    pub agent_paths_missing: Vec<String>,
    /// Cordon's rules are in force exactly as recorded and every interface is covered
    /// (the engine's `digest_matches`, no uncovered or lost interface): a `Tampered`
    /// state then comes only from outside the rules — a path around the hooks, a sighting
    /// kept until acknowledged, a foreign chain, an interface in another namespace — which
    /// no re-apply changes, so the agent reports it once per change and does not re-apply
    /// (fix12g: it re-applied and reported every second).
    pub rules_intact: bool,
}

impl Check {
    /// The sources of the claims held by others than the agent (`wazuh`,
    /// `velociraptor`, `local`).
    pub fn other_claims(&self) -> Vec<String> {
        self.claims
            .iter()
            .filter(|c| c.source != cordon_proto::ClaimSource::Agent)
            .map(|c| c.source.to_string())
            .collect()
    }

    /// The `agent` claims of other enrollments than `host_id` (a previous enrollment of
    /// this machine, trial20 HIGH-C), each as `host id X since T`.
    pub fn previous_enrollment_claims(&self, host_id: &str) -> Vec<String> {
        self.claims
            .iter()
            .filter(|c| c.is_previous_enrollment(host_id))
            .map(|c| {
                let id = c.owner.as_deref().unwrap_or("unknown");
                match &c.since {
                    Some(t) => format!("host id {id} since {t}"),
                    None => format!("host id {id}"),
                }
            })
            .collect()
    }
}

/// The wire name of the engine's backend `kind` (exhaustive: a new backend must be
/// named on the wire before it builds).
pub fn wire_backend(kind: BackendKind) -> cordon_proto::Backend {
    use cordon_proto::Backend;
    match kind {
        BackendKind::Netlink => Backend::Netlink,
        BackendKind::Nftables => Backend::Nftables,
        BackendKind::Iptables => Backend::Iptables,
        BackendKind::Pf => Backend::Pf,
        BackendKind::Wfp => Backend::Wfp,
        BackendKind::NetshIpsec => Backend::NetshIpsec,
    }
}

/// The wire name of the engine's claim source `source` (exhaustive, as
/// [`wire_backend`]).
pub fn wire_source(source: ClaimSource) -> cordon_proto::ClaimSource {
    use cordon_proto::ClaimSource as Wire;
    match source {
        ClaimSource::Agent => Wire::Agent,
        ClaimSource::Wazuh => Wire::Wazuh,
        ClaimSource::Velociraptor => Wire::Velociraptor,
        ClaimSource::Local => Wire::Local,
    }
}

/// An enforcer failure as the agent reports it to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforceError {
    /// `EngineError::kind()` (`verification_failed`, `invalid_input`, ...).
    pub kind: String,
    /// The message with its cause chain.
    pub detail: String,
}

impl std::error::Error for EnforceError {}

impl std::fmt::Display for EnforceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl From<EngineError> for EnforceError {
    fn from(e: EngineError) -> Self {
        EnforceError {
            kind: e.kind().to_string(),
            detail: e.detail(),
        }
    }
}

/// Blocking operations; the agent calls them on a blocking thread.
pub trait Enforcer: Send + Sync + 'static {
    /// Applies `plan` atomically in place of whatever Cordon had in force, without a
    /// reachability probe and without rollback (the agent verifies through its own
    /// connection). `notify_users` shows the plan's message to logged-in users.
    ///
    /// # Errors
    /// [`EnforceError`] (the engine's error: backend unsupported or refused, lock held,
    /// state unwritable); nothing is recorded when applying fails.
    fn isolate(&self, plan: &Plan, notify_users: bool) -> Result<Applied, EnforceError>;
    /// Re-applies the recorded quarantine without resolving or verifying (boot, repair).
    ///
    /// # Errors
    /// [`EnforceError`] when there is no usable record or the backend refuses the rules.
    fn reapply(&self) -> Result<Applied, EnforceError>;
    /// Removes the agent's quarantine (its claim; other sources' claims stay in force).
    /// `Some(note)`: something the report must say besides (e.g. `stopped unresponsive
    /// holder pid N …`: a hung `cordon isolate --watch` was stopped so the release could
    /// proceed).
    ///
    /// # Errors
    /// [`EnforceError`] when a backend cannot remove the rules or the record cannot be
    /// changed; the record then stays as it was.
    fn release(&self) -> Result<Option<String>, EnforceError>;
    /// Releases the `agent` claims of the previous enrollments of this machine named by
    /// their host ids (`owners`: a server's release naming them,
    /// [`cordon_proto::DesiredState::release_previous`]); this enrollment's own claim and
    /// every other source's stay in force. Returns the host ids whose claim was lifted
    /// (an id with no claim standing is not among them). The default holds no claims of
    /// other enrollments and lifts nothing.
    ///
    /// # Errors
    /// As [`Enforcer::release`]; the claims lifted before the failing one stay lifted.
    fn release_previous(&self, owners: &[String]) -> Result<Vec<String>, EnforceError> {
        let _ = owners;
        Ok(vec![])
    }
    /// Compares the kernel with the record (the engine's status), changing nothing.
    ///
    /// # Errors
    /// [`EnforceError`] when the record or the kernel cannot be read.
    fn check(&self) -> Result<Check, EnforceError>;
    /// At agent start: the kernel against the record, telling tampering while no agent
    /// ran (same boot) from a reboot. The default knows no boots: anything but intact
    /// rules reads as a reboot.
    ///
    /// # Errors
    /// As [`Enforcer::check`].
    fn startup_check(&self) -> Result<StartupFinding, EnforceError> {
        let c = self.check()?;
        Ok(match c.state {
            QuarantineState::Isolated => StartupFinding::Intact,
            _ => StartupFinding::Rebooted,
        })
    }
    /// Keeps the recorded quarantine in force until `stop` is set or it is released,
    /// repairing tampering as soon as the kernel reports it (the engine's event-driven
    /// watcher, `cordon isolate --watch`), and tells `on` what it did. Blocking; the agent
    /// runs it on a thread of its own while quarantined. The default has no kernel to
    /// watch and returns at once (the periodic check is all there is).
    ///
    /// # Errors
    /// [`EnforceError`] when the kernel cannot be watched (no netlink socket) or a repair
    /// fails.
    fn watch(&self, stop: &AtomicBool, on: &mut (dyn FnMut(&WatchEvent) + Send)) -> Result<(), EnforceError> {
        let _ = (stop, on);
        Ok(())
    }
    /// Whether [`Enforcer::watch`] watches anything (false: the default).
    fn can_watch(&self) -> bool {
        false
    }
    /// Records the agent's management paths so every claim on this host keeps them open
    /// (`cordon_engine::claims`, "the enrolled agent's management paths"); returns
    /// whether standing claims were re-applied with them. The default records nothing.
    ///
    /// # Errors
    /// [`EnforceError`] when the paths cannot be recorded or the claims cannot be
    /// re-applied with them.
    fn record_paths(&self, paths: &ManagementPaths) -> Result<bool, EnforceError> {
        let _ = paths;
        Ok(false)
    }
    /// The file [`Enforcer::record_paths`] writes, when it writes one (the default: none),
    /// so the agent can write it again at once when it is deleted.
    fn paths_file(&self) -> Option<PathBuf> {
        None
    }
    /// Registers [`Enforcer::paths_file`] again in this network namespace's `/run/cordon`
    /// registry when the entry is gone (root deleted it: trial12 N-3), so every other
    /// source's merge keeps finding the agent's paths. The default has no registry.
    fn refresh_registration(&self) {}
    /// Re-applies the quarantine in force with the agent's management paths when its
    /// record lacks them ([`Check::agent_paths_missing`]); returns whether it re-applied.
    /// The default has no paths to restore.
    ///
    /// # Errors
    /// [`EnforceError`] when the re-apply fails; the quarantine in force stays.
    fn restore_paths(&self) -> Result<bool, EnforceError> {
        Ok(false)
    }
}

/// The real thing: `cordon-engine` on this host's firewall.
pub struct EngineEnforcer {
    engine: Engine,
}

impl EngineEnforcer {
    /// The engine on `table` with `backend`, its state in `state_dir` (nothing is opened
    /// yet).
    pub fn new(table: TableName, state_dir: PathBuf, backend: BackendChoice) -> Self {
        EngineEnforcer {
            // An ordered quarantine stays in force when it cannot be recorded (full disk).
            engine: Engine::new(table, state_dir, backend).keeping_unrecorded(),
        }
    }

    /// The same enforcer making and releasing only the claims of enrollment `host_id`
    /// (trial20 HIGH-C: a claim belongs to one enrollment; [`Engine::owned_by`]).
    pub fn owned_by(mut self, host_id: &str) -> Self {
        self.engine = self.engine.owned_by(host_id);
        self
    }

    /// The same enforcer waiting at most `timeout` for a lock another process holds
    /// (`lock_timeout_secs`; [`Engine::with_lock_timeout`]).
    pub fn with_lock_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.engine = self.engine.with_lock_timeout(timeout);
        self
    }

    /// The engine it enforces with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Enforcer for EngineEnforcer {
    /// The message to logged-in users goes out on its own thread once the rules are in
    /// force and recorded: the apply, its confirmation and the report never wait for it
    /// (trial17 MED-6: a hung `wall` left the quarantine unconfirmed and a later release
    /// unapplied); the program still gets its deadline
    /// ([`cordon_engine::notify::MESSAGE_DEADLINE`]), and a failure is logged.
    fn isolate(&self, plan: &Plan, notify_users: bool) -> Result<Applied, EnforceError> {
        let req = plan.request();
        let out = self
            .engine
            .isolate_unverified_as(ClaimSource::Agent, &req, false)?
            .outcome;
        if let (true, Some(text)) = (notify_users, req.message) {
            std::thread::spawn(move || {
                if let Err(e) = cordon_engine::notify::message_users(&text) {
                    let warning = cordon_engine::error_chain(&e);
                    tracing::warn!(%warning, "the message to logged-in users was not shown");
                }
            });
        }
        Ok(Applied {
            digest: Some(out.digest),
            backend: Some(wire_backend(out.backend)),
            unrecorded: out.unrecorded,
            lock_notes: out.lock_skipped,
        })
    }
    fn reapply(&self) -> Result<Applied, EnforceError> {
        let out = self.engine.reapply()?;
        Ok(Applied {
            digest: Some(out.digest),
            backend: Some(wire_backend(out.backend)),
            unrecorded: out.unrecorded,
            lock_notes: out.lock_skipped,
        })
    }

    /// Releases the agent's own claim; other sources' claims stay in force.
    fn release(&self) -> Result<Option<String>, EnforceError> {
        match self.engine.release_as(ClaimSource::Agent, false) {
            Ok(o) => Ok(o.warning),
            // The agent holds no claim, and the rules in force are someone's whose records
            // are lost: the agent's release is done (nothing of its own is in force), the
            // rules stay (fail closed) and its check reports them as kept. Retrying could
            // never succeed (trial15 MED-6: an endless "cannot apply desired state").
            Err(e @ EngineError::UnclaimedRules { .. }) => Ok(Some(format!(
                "the agent held no claim; {}",
                cordon_engine::error_chain(&e)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Each named enrollment's `agent` claim, released as that enrollment's own would be
    /// (the engine owned by that host id): the rules go only when no claim is left.
    fn release_previous(&self, owners: &[String]) -> Result<Vec<String>, EnforceError> {
        let mut lifted = Vec::new();
        for owner in owners {
            let out = self
                .engine
                .clone()
                .owned_by(owner.as_str())
                .release_as(ClaimSource::Agent, false)?;
            if out.released_claim {
                lifted.push(owner.clone());
            }
        }
        Ok(lifted)
    }

    fn startup_check(&self) -> Result<StartupFinding, EnforceError> {
        Ok(self.engine.startup_check()?)
    }

    /// Without the owner flag: the agent's own applies and releases go through other
    /// sockets of the engine, which owned tables would refuse.
    fn watch(&self, stop: &AtomicBool, on: &mut (dyn FnMut(&WatchEvent) + Send)) -> Result<(), EnforceError> {
        let opts = WatchOptions {
            own: false,
            ..WatchOptions::default()
        };
        self.engine.watch(&opts, stop, |ev| on(ev))?;
        Ok(())
    }

    fn can_watch(&self) -> bool {
        true
    }

    fn record_paths(&self, paths: &ManagementPaths) -> Result<bool, EnforceError> {
        Ok(self.engine.set_management_paths(paths)?)
    }

    fn paths_file(&self) -> Option<PathBuf> {
        Some(cordon_engine::claims::paths_path(&self.engine.state_dir))
    }

    fn refresh_registration(&self) {
        self.engine.register_management_paths();
    }

    fn restore_paths(&self) -> Result<bool, EnforceError> {
        Ok(self.engine.restore_management_paths()?)
    }

    fn check(&self) -> Result<Check, EnforceError> {
        let r = self.engine.status()?;
        // Records lost: the status's reason names the kernel's holders (tampering, kept
        // as found); otherwise they are claims like the recorded ones.
        let claims = claim_infos(&self.engine, !r.records_lost)?;
        Ok(Check {
            // An intact quarantine that does not isolate (the engine's `not_isolated`) is
            // the agent's `Isolated` with `not_isolated` set: reported to the server as
            // failed (`not_isolated`), never `quarantined`, and not re-applied (nothing
            // a re-apply changes; trial31 HIGH-H).
            state: match r.state {
                QuarantineState::NotIsolated => QuarantineState::Isolated,
                s => s,
            },
            digest: r.actual_digest.or(r.expected_digest),
            backend: r.backend.map(wire_backend),
            reason: r.reason,
            records_lost: r.records_lost,
            claims,
            unrecognised: r.unrecognised_tables.into_iter().chain(r.record_problems).collect(),
            not_isolated: r.not_isolated,
            agent_paths_missing: r.agent_paths_missing,
            rules_intact: r.digest_matches && r.coverage.uncovered.is_empty() && r.coverage.lost.is_empty(),
        })
    }
}

/// Every claim standing in `engine`'s state directory, as the agent reports it; with
/// `kernel_holders`, the holders only the kernel's record names too (a quarantine applied
/// while its claim could not be written stays its holder's, issue 14 MED-4).
fn claim_infos(engine: &Engine, kernel_holders: bool) -> Result<Vec<ClaimInfo>, EnforceError> {
    let claims = if kernel_holders {
        engine.claims_in_force()?
    } else {
        engine.claims()?
    };
    Ok(claims
        .into_iter()
        .map(|c| ClaimInfo {
            source: wire_source(c.source),
            // A claims file's time the agent cannot read is sent as not known.
            since: c.claimed_at.parse().ok(),
            allow: c.request.allow.iter().map(|a| a.to_string()).collect(),
            servers: c.request.servers.iter().map(|a| a.to_string()).collect(),
            owner: c.owner,
        })
        .collect())
}

/// Keeps "rules" in memory. `tamper()` simulates someone deleting them.
///
/// An agent running with `enforce = false` uses one built by
/// [`MemoryEnforcer::recording_paths`]: it enforces nothing for the server, but still
/// records its management paths so other sources' claims (Wazuh, Velociraptor, local)
/// never cut it off from its server, and its checks report those claims and the rules
/// they keep in force (never "nothing in force" while another source isolates the host).
#[derive(Debug, Default)]
pub struct MemoryEnforcer {
    inner: Mutex<MemState>,
    paths_engine: Option<Engine>,
    /// The backend its reports name (`memory` unless a test has it stand in for an
    /// enforcing one: the server shows backend `memory` as not enforcing).
    reported: Option<cordon_proto::Backend>,
}

#[derive(Debug, Default)]
struct MemState {
    recorded: Option<Plan>,
    in_force: bool,
    applies: u64,
    /// Times the state went from open to closed or back.
    flips: u64,
}

impl MemoryEnforcer {
    /// Released, with no applies counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stand-in that records the agent's management paths through `engine` (the
    /// host's real claims and state directory).
    pub fn recording_paths(engine: Engine) -> Self {
        MemoryEnforcer {
            paths_engine: Some(engine),
            ..Self::default()
        }
    }

    /// A stand-in whose reports name `backend` instead of `memory`, for tests of the
    /// agent/server exchange that need the host shown as enforcing (`quarantined`,
    /// `tampered`): the server shows backend `memory` as not enforcing.
    pub fn reporting_backend(mut self, backend: cordon_proto::Backend) -> Self {
        self.reported = Some(backend);
        self
    }

    fn backend(&self) -> cordon_proto::Backend {
        self.reported.clone().unwrap_or(cordon_proto::Backend::Memory)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes the "rules" behind the agent's back.
    pub fn tamper(&self) {
        self.lock().in_force = false;
    }

    /// Whether the pretend rules are in force.
    pub fn is_isolated(&self) -> bool {
        self.lock().in_force
    }

    /// How many times rules were (re)applied.
    pub fn applies(&self) -> u64 {
        self.lock().applies
    }

    /// How many times the host went from open to quarantined or back.
    pub fn flips(&self) -> u64 {
        self.lock().flips
    }

    /// The plan last applied.
    pub fn plan(&self) -> Option<Plan> {
        self.lock().recorded.clone()
    }

    fn digest(p: &Plan) -> String {
        use sha2::{Digest, Sha256};
        let text = format!("{:?}|{:?}", p.transport, p.allow);
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

impl Enforcer for MemoryEnforcer {
    /// Records nothing while an enforcing agent runs in this network namespace
    /// ([`crate::singleton`]): the namespace has one management-paths record, and it is
    /// that agent's (a monitoring agent next to it changes nothing, trial15 HIGH-3).
    fn record_paths(&self, paths: &ManagementPaths) -> Result<bool, EnforceError> {
        match &self.paths_engine {
            Some(_) if crate::singleton::holder().is_some_and(|h| !h.is_foreign()) => {
                tracing::debug!(
                    "an enforcing agent runs in this network namespace: its management paths stand, not ours"
                );
                Ok(false)
            }
            Some(e) => Ok(e.set_management_paths(paths)?),
            None => Ok(false),
        }
    }

    fn paths_file(&self) -> Option<PathBuf> {
        self.paths_engine
            .as_ref()
            .map(|e| cordon_engine::claims::paths_path(&e.state_dir))
    }

    /// As [`MemoryEnforcer::record_paths`]: nothing while an enforcing agent runs in this
    /// network namespace (its registration and copies stand, not ours).
    fn refresh_registration(&self) {
        if crate::singleton::holder().is_some_and(|h| !h.is_foreign()) {
            return;
        }
        if let Some(e) = &self.paths_engine {
            e.register_management_paths();
        }
    }

    fn isolate(&self, plan: &Plan, _notify_users: bool) -> Result<Applied, EnforceError> {
        let mut s = self.lock();
        s.recorded = Some(plan.clone());
        if !s.in_force {
            s.flips += 1;
        }
        s.in_force = true;
        s.applies += 1;
        Ok(Applied {
            digest: Some(Self::digest(plan)),
            backend: Some(self.backend()),
            unrecorded: None,
            lock_notes: vec![],
        })
    }

    fn reapply(&self) -> Result<Applied, EnforceError> {
        let mut s = self.lock();
        let Some(d) = s.recorded.clone() else {
            return Err(EnforceError {
                kind: "invalid_input".into(),
                detail: "nothing to re-apply".into(),
            });
        };
        s.in_force = true;
        s.applies += 1;
        Ok(Applied {
            digest: Some(Self::digest(&d)),
            backend: Some(self.backend()),
            unrecorded: None,
            lock_notes: vec![],
        })
    }

    fn release(&self) -> Result<Option<String>, EnforceError> {
        let mut s = self.lock();
        s.recorded = None;
        if s.in_force {
            s.flips += 1;
        }
        s.in_force = false;
        Ok(None)
    }

    fn check(&self) -> Result<Check, EnforceError> {
        let s = self.lock();
        let (state, reason) = match (&s.recorded, s.in_force) {
            (None, false) => (QuarantineState::Released, None),
            (Some(_), true) => (QuarantineState::Isolated, None),
            (Some(_), false) => (
                QuarantineState::Tampered,
                Some("quarantine rules are missing".to_string()),
            ),
            (None, true) => (
                QuarantineState::Tampered,
                Some("rules present but none recorded".to_string()),
            ),
        };
        let mut check = Check {
            state,
            digest: s.recorded.as_ref().map(Self::digest),
            backend: Some(self.backend()),
            reason,
            records_lost: false,
            claims: vec![],
            unrecognised: vec![],
            not_isolated: vec![],
            agent_paths_missing: vec![],
            rules_intact: false,
        };
        drop(s);
        // The host's real claims: what other sources keep in force (recorded in the
        // table's home, whatever this agent's own state directory).
        if let Some(engine) = &self.paths_engine {
            check.claims = claim_infos(engine, false)?;
            // Cordon rules in force with no claim behind them (their records were
            // deleted, or live in a directory nobody registered) are reported as the
            // kernel shows them — never "no rules in force" (trial6 MED 1).
            let unaccounted = || -> Result<Option<cordon_engine::StatusReport>, EnforceError> {
                let r = engine.status()?;
                Ok((r.records_lost || !r.backends_in_force.is_empty()).then_some(r))
            };
            let kernel = if !check.claims.is_empty() && check.state == QuarantineState::Released {
                Some(engine.status()?)
            } else if check.claims.is_empty() {
                unaccounted()?
            } else {
                None
            };
            if let Some(r) = kernel {
                check.state = r.state;
                check.digest = r.actual_digest.or(r.expected_digest);
                check.backend = r.backend.map(wire_backend);
                check.reason = r.reason;
                check.records_lost = r.records_lost;
            }
        }
        Ok(check)
    }
}

#[cfg(test)]
mod wire_name_tests {
    use super::*;

    /// The fault kind: the agent reports a backend or claim source under another name
    /// than the engine prints and the server knows (`netsh-ipsec` vs `netsh`).
    #[test]
    fn engine_names_and_wire_names_agree() {
        for k in [
            BackendKind::Netlink,
            BackendKind::Nftables,
            BackendKind::Iptables,
            BackendKind::Pf,
            BackendKind::Wfp,
            BackendKind::NetshIpsec,
        ] {
            let wire = wire_backend(k);
            assert_eq!(wire.as_str(), k.name());
            assert!(wire.is_known(), "{k}");
        }
        for s in ClaimSource::ALL {
            let wire = wire_source(s);
            assert_eq!(wire.as_str(), s.as_str());
            assert!(wire.is_known(), "{s:?}");
        }
    }
}

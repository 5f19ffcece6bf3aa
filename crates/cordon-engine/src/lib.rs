//! The local quarantine engine shared by the standalone CLI and the agent:
//! resolve every name first, apply the whole policy in one transaction, prove the
//! management server is still reachable (or roll back), persist what was applied, and
//! report status including tamper detection.
//!
//! Order matters for safety: nothing touches the firewall until every name resolved and
//! every input validated, so bad input never leaves the host half changed, and a host
//! name is never looked up after DNS is already blocked.

pub mod claims;
mod error;
pub mod forced;
mod home;
pub use home::registry_dir;
pub use lock::{with_lock_wait_hook, LockWait, FOREIGN_HOLDER_GRACE};
pub mod impact;
mod lock;
pub mod notify;
pub mod paths;
pub mod privilege;
pub mod record;
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

pub use claims::{Claim, ClaimIsolateOutcome, ClaimReleaseOutcome, ClaimSource, ManagementPaths};
pub use error::{chain as error_chain, EngineError, ErrorClass, RolledBackTo};
pub use state::StoredState;

/// Default directory for the persisted quarantine state on Unix (Windows:
/// `%ProgramData%\Cordon\state`; use [`paths::default_state_dir`], which picks per platform).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cordon";

/// Default time allowed for the post-apply reachability check.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time to wait for another Cordon process's lock on the state directory.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the engine keeps its state and which firewall objects it owns.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The name of Cordon's firewall objects (nftables table, iptables chain prefix, pf
    /// anchor) and of the state file `<state_dir>/<table>.json`.
    pub table: TableName,
    /// Where the state, claims and lock files live ([`DEFAULT_STATE_DIR`] unless set).
    pub state_dir: PathBuf,
    /// Which firewall backend to use (`--backend`).
    pub backend: BackendChoice,
    /// How long to wait for another Cordon process's lock ([`DEFAULT_LOCK_TIMEOUT`]).
    pub lock_timeout: Duration,
    /// Keep an ordered quarantine in force when it cannot be recorded on disk (a full or
    /// read-only state directory): the rules stay (fail closed) and the outcome says
    /// [`IsolateOutcome::unrecorded`], instead of rolling back to an open host (trial17
    /// HIGH-1). Set by the agent and `cordon wazuh-ar` ([`Engine::keeping_unrecorded`]);
    /// the standalone CLI keeps "not recorded, rolled back".
    pub keep_unrecorded: bool,
    /// Whose claims of [`Engine::isolate_as`]'s source this engine makes and releases: the
    /// enrolled agent's host id ([`Engine::owned_by`]; trial20 HIGH-C: a claim belongs to
    /// one enrollment). `None`: any owner's (a release on the host naming the source).
    pub owner: Option<String>,
    /// The claim holders the next apply names in the tables' comment
    /// ([`cordon_policy::Policy::claimed_by`]), set by the claim that is being applied;
    /// `None`: those of the claims file.
    pub(crate) claimants: Option<Vec<String>>,
    /// This ordered quarantine already waited its lock timeout for a lock held by a
    /// process that is not Cordon: the next lock held by such a process is not waited for
    /// again ([`lock::StateLock::acquire_as`]).
    pub(crate) foreign_lock_waited: bool,
}

/// Everything `cordon isolate` was asked for, before resolution. Serializable so the
/// agent and the state file can carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolateRequest {
    /// `--allow` specs: destinations kept reachable (see [`cordon_policy::spec`]).
    #[serde(default)]
    pub allow: Vec<AllowSpec>,
    /// `--server` specs: management servers, each one host and one TCP or UDP port.
    #[serde(default)]
    pub servers: Vec<AllowSpec>,
    /// Explicit resolvers; `None` discovers them from resolv.conf.
    #[serde(default)]
    pub resolvers: Option<Vec<IpAddr>>,
    /// Keep DNS to the resolvers open (false with `--no-dns`).
    pub dns: bool,
    /// Keep DHCP working (false with `--no-dhcp`).
    pub dhcp: bool,
    /// Explicit DHCP servers (`--dhcp-server`); `None` discovers them from the host's
    /// lease files at apply time.
    #[serde(default)]
    pub dhcp_servers: Option<Vec<IpAddr>>,
    /// Accept a policy whose `--allow` networks cover a whole address family, i.e. a
    /// quarantine that isolates nothing in that family (`--allow-no-isolation`).
    #[serde(default)]
    pub allow_no_isolation: bool,
    /// `--message` shown to logged-in users, at most
    /// [`cordon_policy::message::MAX_MESSAGE_CHARS`] characters.
    #[serde(default)]
    pub message: Option<String>,
    /// Verification target; `None` uses the first TCP server (if any). A UDP target
    /// cannot be verified by connecting and is refused here.
    #[serde(default)]
    pub verify: Option<AllowSpec>,
    /// How long verification may try ([`DEFAULT_VERIFY_TIMEOUT`]); serialized as
    /// seconds (a JSON number, fractions allowed).
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
            dhcp_servers: None,
            allow_no_isolation: false,
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
    /// The normalized policy to apply.
    pub policy: Policy,
    /// Addresses the verification connects to (any one answering is success).
    pub verify_targets: Vec<SocketAddr>,
    /// True when there is nothing to verify because every server is a UDP server
    /// (`udp://`) and no `--verify` was given: the outcome is then
    /// [`Verification::NotVerifiedUdp`], never verified.
    #[serde(default)]
    pub unverifiable_udp: bool,
    /// Where the DHCP servers came from (lease files read, or `--dhcp-server`).
    #[serde(default)]
    pub dhcp_sources: Vec<String>,
    /// Things the responder must know (e.g. DNS will not work); never fatal.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What the post-apply reachability check proved, shown by `isolate` and `status`
/// (JSON: `"verified"`, `"not verified (UDP)"`, `"not checked"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verification {
    /// A TCP connection to a server (or `--verify` target) succeeded after applying.
    #[serde(rename = "verified")]
    Verified,
    /// Every server is a UDP server (`udp://`, e.g. a Wazuh manager in UDP mode): UDP has
    /// no connection to prove, so the rules were kept without proof that the server
    /// answers. Never reported as verified.
    #[serde(rename = "not verified (UDP)")]
    NotVerifiedUdp,
    /// No check ran: no server or `--verify`, a re-apply, or the agent (which proves
    /// reachability through its own authenticated connection to the server).
    #[serde(rename = "not checked")]
    NotChecked,
}

impl Verification {
    /// The words used in JSON and by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Verified => "verified",
            Verification::NotVerifiedUdp => "not verified (UDP)",
            Verification::NotChecked => "not checked",
        }
    }
}

/// Result of a successful isolate.
#[derive(Debug, Clone, Serialize)]
pub struct IsolateOutcome {
    /// `isolated`, or `not_isolated` when [`IsolateOutcome::not_isolated`] is not empty
    /// ([`QuarantineState::as_str`]).
    pub state: &'static str,
    /// Why the quarantine just applied does not isolate the host, one `NOT ISOLATED: …`
    /// sentence each ([`not_isolated_words`]): the policy allows a whole address family
    /// (`--allow-no-isolation`), or something already there goes around Cordon's hooks
    /// (trial31 HIGH-H: a tc redirect planted before the isolate left the host's own TCP
    /// stack open while the outcome said `isolated`). The rules stay in force (they stop
    /// what they can). Empty when the host is isolated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_isolated: Vec<String>,
    /// The backend that applied the rules.
    pub backend: BackendKind,
    /// The table name.
    pub table: String,
    /// The policy now in force.
    pub policy: Policy,
    /// SHA-256 (hex) of the normalized rule listing read back after applying.
    pub digest: String,
    /// When the rules were applied: RFC 3339 UTC with milliseconds
    /// ([`cordon_proto::timefmt::WIRE_FORMAT`]).
    pub applied_at: String,
    /// The address that answered verification, if verification ran.
    pub verified_via: Option<SocketAddr>,
    /// What verification proved ([`Verification`]); `verified` only with
    /// [`IsolateOutcome::verified_via`] set.
    pub verification: Verification,
    /// Problem delivering the user message; never fatal.
    pub message_warning: Option<String>,
    /// Problems found while resolving (e.g. DNS will not work); never fatal.
    pub warnings: Vec<String>,
    /// Backends whose Cordon rules this isolate replaced (another backend's quarantine,
    /// removed after the new one was applied and verified).
    pub replaced_backends: Vec<BackendKind>,
    /// Wall time of the firewall change itself, in milliseconds (resolution and
    /// verification excluded).
    pub apply_ms: f64,
    /// The layers in force right after applying, read back from the kernel.
    pub coverage: Coverage,
    /// What the quarantine cuts off besides the host, read before applying.
    pub impact: impact::Impact,
    /// Set when the rules are in force but could not be recorded on disk (with
    /// [`Engine::keep_unrecorded`]): why, with the cause chain. Such a quarantine does not
    /// survive a reboot and other cordon processes do not see its record; apply it again
    /// once the state directory is writable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unrecorded: Option<String>,
    /// Locks this quarantine was applied without (with [`Engine::keep_unrecorded`]): one
    /// sentence per lock that a process which is not Cordon held past the wait, naming
    /// the holder by pid, command and executable (issue 14 HIGH-E). Also in
    /// [`IsolateOutcome::warnings`]; the agent reports them as `degraded`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lock_skipped: Vec<String>,
}

/// What `status` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineState {
    /// A quarantine is recorded and its rules are in force as applied.
    Isolated,
    /// No quarantine is recorded and none of our rules are in force.
    Released,
    /// The kernel disagrees with the record: rules missing, changed, or present without
    /// a record ([`StatusReport::reason`] says which).
    Tampered,
    /// The recorded rules are in force as applied, but they do not isolate the host
    /// ([`StatusReport::not_isolated`] says why): the policy allows a whole address
    /// family, or something that was already there when the quarantine was applied goes
    /// around Cordon's hooks (trial31 HIGH-H). Never read as isolated.
    #[serde(rename = "not_isolated")]
    NotIsolated,
}

impl QuarantineState {
    /// The lowercase name used in JSON and by the CLI: `isolated`, `released`,
    /// `tampered`, `not_isolated`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineState::Isolated => "isolated",
            QuarantineState::Released => "released",
            QuarantineState::Tampered => "tampered",
            QuarantineState::NotIsolated => "not_isolated",
        }
    }
}

/// What [`Engine::status`] reports for one table.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The verdict; see [`QuarantineState`].
    pub state: QuarantineState,
    /// The recorded backend; `None` without a record.
    pub backend: Option<BackendKind>,
    /// The table name.
    pub table: String,
    /// The recorded policy; `None` without a record.
    pub policy: Option<Policy>,
    /// What the recorded quarantine's verification proved; `None` without a record or
    /// for records written before this was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// When the recorded rules were applied (RFC 3339 UTC, milliseconds).
    pub applied_at: Option<String>,
    /// SHA-256 (hex) of the listing recorded at apply time.
    pub expected_digest: Option<String>,
    /// SHA-256 (hex) of the listing in the kernel now; `None` when nothing of ours is
    /// there.
    pub actual_digest: Option<String>,
    /// True when the rules in the kernel match what was applied.
    pub digest_matches: bool,
    /// Why the state is `tampered`.
    pub reason: Option<String>,
    /// Cordon rules of this table are in force but no record of them (state or claims)
    /// exists in the table's home state directory: whoever applied them is unknown. Such
    /// rules are kept (fail closed) — no cordon process removes them on its own; `cordon
    /// release --force` does.
    #[serde(default)]
    pub records_lost: bool,
    /// Every backend in which Cordon rules of this table are in force now.
    pub backends_in_force: Vec<BackendKind>,
    /// What the recorded policy does and does not stop, stated plainly (a policy that
    /// allows a whole family, what `--no-dhcp` cannot stop, the DHCP servers kept).
    pub notes: Vec<String>,
    /// The layers our rules are in force in now (`inet`, `netdev-ingress`,
    /// `netdev-egress`, …), read back from the kernel; never more than is in force.
    pub coverage: Coverage,
    /// Other Cordon-looking tables in force in this network namespace whose records
    /// cannot be found (an empty decoy whose comment claims to be Cordon's, a quarantine
    /// whose state directory was deleted), one sentence each naming the table and the
    /// state directory its comment names (trial15 HIGH-2). They are never trusted to
    /// isolate and never stop a quarantine from applying; `cordon release --force`
    /// removes them. Source: the kernel's table list and comments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrecognised_tables: Vec<String>,
    /// What the recorded quarantine (the union of every claim) leaves fully open: one
    /// `NOT ISOLATED: …` sentence per address family whose every destination is allowed,
    /// naming the claims that widen it ([`claims::not_isolated_words`]; trial15 HIGH-4),
    /// and one for what goes around Cordon's hooks ([`around_not_isolated_words`];
    /// trial31 HIGH-H). While it is not empty an intact quarantine reads
    /// [`QuarantineState::NotIsolated`]. The agent reports such a quarantine to its
    /// server as not isolated, never as `quarantined`. Source: the state file's policy,
    /// the claims file and the coverage read from the kernel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_isolated: Vec<String>,
    /// The enrolled agent's management paths (its servers' and proxy's `IP:port`, `DNS`
    /// when it finds them by name) that the recorded quarantine does not keep open
    /// (trial15 HIGH-1: a join by another source after `/run/cordon` was lost re-applied
    /// the union without them, cutting the agent off). Empty when every path is kept, no
    /// quarantine is recorded, or no agent recorded paths. The agent treats a non-empty
    /// list as tampering and re-applies the union with its paths. Source: the state file's
    /// request and the agent's paths files (`claims::paths_path`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_paths_missing: Vec<String>,
    /// What is wrong with the records, one sentence each: a claims file missing or
    /// unreadable whose claims were read from its backup, or one set aside as unreadable
    /// when a quarantine was applied over it (trial15 HIGH-2b/LOW-A), or a state file set
    /// aside as unusable (issue 14 item 4). The agent reports
    /// them as `degraded` lines while quarantined. Source: the table's home state directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_problems: Vec<String>,
    /// The paths around the hooks a watcher saw after the apply, from the record
    /// ([`state::StoredState::around_seen`]; trial31 MED-E), whether or not they are still
    /// there: while one is listed the state is `tampered`, until a release or
    /// [`Engine::acknowledge_seen`] (`cordon status --acknowledge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub around_seen: Vec<state::SeenAround>,
    /// Sightings acknowledged since the apply (`cordon status --acknowledge`): when, by
    /// whom, what ([`state::StoredState::acknowledged`]; trial37 LOW-6). Informational:
    /// no state depends on it. Source: the state file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acknowledged: Vec<state::Acknowledgement>,
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
    Tampered {
        /// What was found, for the audit record.
        reason: String,
    },
}

/// Result of a release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseOutcome {
    /// Always `released` ([`QuarantineState::as_str`]).
    pub state: &'static str,
    /// The recorded backend; without a record, the first backend rules were removed
    /// from, else the one `--backend` selects (netlink when none opens).
    pub backend: BackendKind,
    /// The table name.
    pub table: String,
    /// False when nothing of ours was present.
    pub was_isolated: bool,
    /// Backends whose rules were removed.
    pub removed_from: Vec<BackendKind>,
}

impl Engine {
    /// An engine for `table` with its state in `state_dir`, waiting
    /// [`DEFAULT_LOCK_TIMEOUT`] for the state lock. Touches nothing until a method runs.
    pub fn new(table: TableName, state_dir: PathBuf, backend: BackendChoice) -> Self {
        Engine {
            table,
            state_dir,
            backend,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            keep_unrecorded: false,
            owner: None,
            claimants: None,
            foreign_lock_waited: false,
        }
    }

    /// The same engine keeping a quarantine in force that cannot be recorded on disk
    /// ([`Engine::keep_unrecorded`]).
    pub fn keeping_unrecorded(mut self) -> Self {
        self.keep_unrecorded = true;
        self
    }

    /// The same engine making and releasing only `owner`'s claims of a source (the
    /// enrolled agent passes its host id: [`Engine::owner`]).
    pub fn owned_by(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// The same engine waiting at most `timeout` for another process's lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    fn lock(&self) -> Result<lock::StateLock, EngineError> {
        lock::StateLock::acquire_as(&self.state_dir, self.lock_timeout, self.foreign_wait())
    }

    /// How long this engine waits for a lock a process that is not Cordon holds: an
    /// ordered quarantine ([`Engine::keep_unrecorded`]) [`lock::FOREIGN_HOLDER_GRACE`]
    /// (at most its lock timeout), and not at all once it waited for such a holder on
    /// another lock; everything else its whole lock timeout.
    pub(crate) fn foreign_wait(&self) -> Duration {
        match (self.keep_unrecorded, self.foreign_lock_waited) {
            (false, _) => self.lock_timeout,
            (true, true) => Duration::ZERO,
            (true, false) => lock::FOREIGN_HOLDER_GRACE.min(self.lock_timeout),
        }
    }

    /// The state lock for applying a quarantine: an ordered one ([`Engine::keep_unrecorded`])
    /// goes on without it when it cannot be opened or a process that is not Cordon holds
    /// it past the wait (`lock::proceed_without`), with the sentence saying so.
    fn lock_for_quarantine(&self) -> Result<(Option<lock::StateLock>, Option<String>), EngineError> {
        match self.lock() {
            Ok(l) => Ok((Some(l), None)),
            Err(e) => match lock::proceed_without(&e).filter(|_| self.keep_unrecorded) {
                Some(note) => {
                    tracing::warn!("{note}");
                    Ok((None, Some(note)))
                }
                None => Err(e),
            },
        }
    }

    /// This engine working in the table's registered home state directory, when that is
    /// another directory which records the table (see the `home` module: one record per
    /// table and network namespace, whatever `--state-dir` each process was given).
    /// `None`: this engine's own directory is the home.
    ///
    /// Also the other way round (trial9 H-2, see the `home` module): when this engine's
    /// table has no record and is not in the kernel while another Cordon table is
    /// recorded in this network namespace, this engine works on that table, so there is
    /// one table in force with the union of every claim.
    pub(crate) fn elsewhere(&self) -> Option<Engine> {
        if let Some(home) = home::elsewhere(&self.table, &self.state_dir) {
            tracing::debug!(home = %home.display(), own = %self.state_dir.display(), "table recorded in another state directory; working there");
            return Some(Engine {
                state_dir: home,
                ..self.clone()
            });
        }
        if home::records(&self.state_dir, &self.table) {
            return None;
        }
        let (table, home) = home::other_tables(&self.table, &self.state_dir).into_iter().next()?;
        if self.table_in_kernel() {
            return None;
        }
        tracing::debug!(table = %table, home = %home.display(), own_table = %self.table, "another Cordon table is in force in this network namespace; working on it");
        Some(Engine {
            table,
            state_dir: home,
            ..self.clone()
        })
    }

    /// Whether an nftables table of this engine's name is in the kernel (a stray or an
    /// older version's second table: worked on as itself, never redirected).
    fn table_in_kernel(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            cordon_firewall::netlink::marked_tables().is_ok_and(|t| t.contains(&self.table))
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// Whether there is nothing here for a release or a re-apply to act on: this engine's
    /// state directory does not exist (so it records nothing) and no Cordon rules of
    /// this table are in force. Such a command then creates nothing — no state
    /// directory, no lock file (issue 14 LOW: `release` and `isolate --reapply` with
    /// nothing to do created a missing `--state-dir`).
    pub(crate) fn nothing_here(&self) -> bool {
        std::fs::symlink_metadata(&self.state_dir).is_err() && !self.rules_in_force()
    }

    /// The outcome of a release that found nothing of Cordon's ([`Engine::nothing_here`]).
    pub(crate) fn released_nothing(&self) -> ReleaseOutcome {
        ReleaseOutcome {
            state: QuarantineState::Released.as_str(),
            backend: self.firewall(None).map(|f| f.kind()).unwrap_or(BackendKind::Netlink),
            table: self.table.to_string(),
            was_isolated: false,
            removed_from: vec![],
        }
    }

    /// Whether Cordon rules of this table are in force in any backend (nftables by the
    /// kernel's table list, then each backend's own listing); false when none can be read.
    pub(crate) fn rules_in_force(&self) -> bool {
        if self.table_in_kernel() {
            return true;
        }
        self.backend_groups()
            .iter()
            .filter_map(|g| self.open_group(g, None))
            .any(|fw| fw.inspect().is_ok_and(|i| i.is_some()))
    }

    /// The state directory the table's quarantine is recorded in: the registered home
    /// (another process's `--state-dir`) or this engine's own.
    pub fn home_dir(&self) -> PathBuf {
        self.elsewhere()
            .map(|e| e.state_dir)
            .unwrap_or_else(|| self.state_dir.clone())
    }

    /// One openable backend per set of kernel objects (netlink and `nft` manage the same
    /// nftables table), the recorded one's set first: what release and status must look at.
    fn backend_groups(&self) -> Vec<Vec<BackendKind>> {
        let mut groups: Vec<Vec<BackendKind>> = Vec::new();
        for kind in cordon_firewall::platform_backends() {
            match groups.iter_mut().find(|g| g.iter().any(|k| shares_rules(*k, kind))) {
                Some(g) => g.push(kind),
                None => groups.push(vec![kind]),
            }
        }
        groups
    }

    /// Opens the first backend of `group` that works here; `None` when none does (then
    /// none of them can hold rules of ours either, e.g. `iptables` not installed).
    ///
    /// The iptables group is opened only when the kernel says chains of ours can exist
    /// ([`cordon_firewall::iptables::may_hold_chains`]) or it is the recorded backend, so a
    /// host on the netlink backend never spawns `iptables-save` for an answer that is
    /// "none" (trial17 MED-6: 13 runs per quarantine and release, and a hung one wedged
    /// the agent).
    fn open_group(&self, group: &[BackendKind], prefer: Option<BackendKind>) -> Option<Box<dyn Firewall>> {
        if group.contains(&BackendKind::Iptables)
            && prefer != Some(BackendKind::Iptables)
            && self.backend != BackendChoice::Exactly(BackendKind::Iptables)
            && !cordon_firewall::iptables::may_hold_chains(&self.table)
        {
            return None;
        }
        let order = prefer
            .filter(|p| group.contains(p))
            .into_iter()
            .chain(group.iter().copied());
        for kind in order {
            if let Ok(fw) = cordon_firewall::open(BackendChoice::Exactly(kind), &self.table) {
                return Some(fw);
            }
        }
        None
    }

    /// Resolves every name in `req` (servers, exceptions, verify target) and discovers
    /// resolvers. Fails with [`EngineError::Invalid`] on any name that does not resolve.
    ///
    /// A `message` longer than [`cordon_policy::message::MAX_MESSAGE_CHARS`] characters is
    /// refused first ([`EngineError::Policy`], exit 2), before any name is looked up: the
    /// API refuses it too, so no path cuts what another refuses.
    ///
    /// # Errors
    /// [`EngineError::Policy`] (exit 2) for a message too long or a spec that names
    /// nothing, [`EngineError::Resolve`] when a name does not resolve.
    pub fn resolve(&self, req: &IsolateRequest) -> Result<ResolvedRequest, EngineError> {
        if let Some(m) = &req.message {
            cordon_policy::message::check_message(m)?;
        }
        let resolved = resolve::resolve_request(req)?;
        refuse_no_isolation(req, &resolved.policy)?;
        Ok(resolved)
    }

    /// Opens the firewall backend (recorded one if `prefer` is given and available).
    ///
    /// # Errors
    /// [`EngineError::Firewall`] when no backend can be opened (the message names what to
    /// install).
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
    ///
    /// # Errors
    /// As [`Engine::resolve`] and [`Engine::firewall`].
    pub fn dry_run(&self, req: &IsolateRequest) -> Result<(BackendKind, String, ResolvedRequest), EngineError> {
        let resolved = self.resolve(req)?;
        let fw = self.firewall(None)?;
        let text = fw.render(&resolved.policy)?;
        Ok((fw.kind(), text, resolved))
    }

    /// Applies `req` atomically, verifies, persists. On verification failure the previous
    /// state (an earlier quarantine, or nothing) is restored and `VerificationFailed` is
    /// returned.
    ///
    /// # Errors
    /// [`EngineError`]: as [`Engine::resolve`]; the lock, the backend or the state file
    /// failing; [`EngineError::VerificationFailed`] after the previous state was restored.
    pub fn isolate(&self, req: &IsolateRequest) -> Result<IsolateOutcome, EngineError> {
        self.isolate_durable(req, state::DirSync::Now)
    }

    /// [`Engine::isolate`]; with [`state::DirSync::Deferred`] the state file's rename is
    /// made durable by the caller's next directory fsync (the claims file's, in the same
    /// directory), so one isolate costs one directory fsync, not two.
    pub(crate) fn isolate_durable(
        &self,
        req: &IsolateRequest,
        dir_sync: state::DirSync,
    ) -> Result<IsolateOutcome, EngineError> {
        self.isolate_durable_as(req, dir_sync, None)
    }

    /// [`Engine::isolate_durable`] of a claim merged with the others: `own` (what the
    /// claiming source's own request names, [`resolve::own_proof`]) decides what is
    /// probed. A source that named only UDP servers is [`Verification::NotVerifiedUdp`],
    /// one that named nothing to probe is [`Verification::NotChecked`]: the other claims'
    /// servers and the agent's management paths answering (or not) proves nothing about
    /// this source's request (trial34 H1: a local `--allow` isolate was rolled back because
    /// the agent's server was down). `None`: the request's own `verify` or first TCP
    /// server.
    pub(crate) fn isolate_durable_as(
        &self,
        req: &IsolateRequest,
        dir_sync: state::DirSync,
        own: Option<resolve::OwnProof>,
    ) -> Result<IsolateOutcome, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.isolate_durable_as(req, dir_sync, own);
        }
        let mut resolved = self.resolve(req)?;
        match own {
            None | Some(resolve::OwnProof::Target) => {}
            Some(resolve::OwnProof::Udp) => {
                resolved.verify_targets.clear();
                resolved.unverifiable_udp = true;
            }
            Some(resolve::OwnProof::Nothing) => {
                resolved.verify_targets.clear();
                resolved.unverifiable_udp = false;
            }
        }
        privilege::require_admin()?;
        let (_lock, lock_note) = self.lock_for_quarantine()?;
        let previous = state::load(&self.state_dir, &self.table)?;
        // The recorded quarantine owns its backend: `auto` keeps using it. An explicit
        // other backend is one swap (apply new, verify, remove old) in apply_resolved.
        let fw = self.firewall(previous.as_ref().map(|p| p.backend))?;
        let impact = self.impact(&resolved);
        let mut outcome = self.apply_resolved(
            fw.as_ref(),
            req,
            &resolved,
            previous.as_ref(),
            ApplyHow {
                verify_after: true,
                notify_users: true,
                dir_sync,
            },
        )?;
        outcome.impact = impact;
        outcome.warnings.extend(lock_note.clone());
        outcome.lock_skipped.extend(lock_note);
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
    /// refuses the batch (nothing changed), [`EngineError::NotKept`] when the state cannot
    /// be saved (the firewall is then rolled back to the previous record).
    pub fn isolate_unverified(&self, req: &IsolateRequest, notify_users: bool) -> Result<IsolateOutcome, EngineError> {
        self.isolate_unverified_durable(req, notify_users, state::DirSync::Now)
    }

    /// [`Engine::isolate_unverified`] with the directory fsync of [`Engine::isolate_durable`].
    pub(crate) fn isolate_unverified_durable(
        &self,
        req: &IsolateRequest,
        notify_users: bool,
        dir_sync: state::DirSync,
    ) -> Result<IsolateOutcome, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.isolate_unverified_durable(req, notify_users, dir_sync);
        }
        let resolved = self.resolve(req)?;
        privilege::require_admin()?;
        let (_lock, lock_note) = self.lock_for_quarantine()?;
        let previous = state::load(&self.state_dir, &self.table)?;
        // As in `isolate`: the recorded quarantine owns its backend.
        let fw = self.firewall(previous.as_ref().map(|p| p.backend))?;
        let mut outcome = self.apply_resolved(
            fw.as_ref(),
            req,
            &resolved,
            previous.as_ref(),
            ApplyHow {
                verify_after: false,
                notify_users,
                dir_sync,
            },
        )?;
        outcome.warnings.extend(lock_note.clone());
        outcome.lock_skipped.extend(lock_note);
        Ok(outcome)
    }

    /// Re-applies the stored policy (boot, tamper repair) without resolving names again
    /// and without verification: once quarantined, the host fails closed.
    ///
    /// With the state file lost while claims stand (`<table>.claims.json`), the claims'
    /// merged quarantine is applied again and recorded ([`Engine::rebuild_from_claims`]).
    ///
    /// # Errors
    /// [`EngineError`] when there is no usable record (and no claims), or the lock or the
    /// backend fails.
    pub fn reapply(&self) -> Result<IsolateOutcome, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.reapply();
        }
        privilege::require_admin()?;
        if self.nothing_here() {
            return Err(EngineError::Invalid(format!(
                "nothing to re-apply: no quarantine recorded in {} (it does not exist)",
                self.state_dir.display()
            )));
        }
        if let Some(out) = self.rebuild_from_claims()? {
            return Ok(out);
        }
        // A re-apply is an ordered quarantine kept in force: a lock held by a process
        // that is not Cordon never keeps it out (issue 14 HIGH-E).
        let (_lock, lock_note) = self.lock_for_quarantine()?;
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
            unverifiable_udp: false,
            dhcp_sources: vec![],
            warnings: vec![],
        };
        let mut outcome = self.apply_resolved(
            fw.as_ref(),
            &stored.request,
            &resolved,
            Some(&stored),
            ApplyHow {
                verify_after: false,
                notify_users: false,
                dir_sync: state::DirSync::Now,
            },
        )?;
        outcome.warnings.extend(lock_note.clone());
        outcome.lock_skipped.extend(lock_note);
        Ok(outcome)
    }

    pub(crate) fn apply_resolved(
        &self,
        fw: &dyn Firewall,
        req: &IsolateRequest,
        resolved: &ResolvedRequest,
        previous: Option<&StoredState>,
        how: ApplyHow,
    ) -> Result<IsolateOutcome, EngineError> {
        let ApplyHow {
            verify_after,
            notify_users,
            dir_sync,
        } = how;
        // A table coming into force: under the namespace lock, no other Cordon table may
        // be recorded (it would stack: the kernel enforces the intersection of the two).
        let mut unrecognised: Vec<String> = Vec::new();
        // An ordered quarantine goes on without the namespace lock as without the state
        // lock (`lock::proceed_without`: a foreign process holding it, issue 14 HIGH-E).
        let mut ns_lock_skipped: Option<String> = None;
        let _ns_lock = if previous.is_none() {
            let lock = match home::namespace_lock(self.lock_timeout, self.foreign_wait()) {
                Ok(l) => l,
                Err(e) => match lock::proceed_without(&e).filter(|_| self.keep_unrecorded) {
                    Some(note) => {
                        tracing::warn!("{note}");
                        ns_lock_skipped = Some(note);
                        None
                    }
                    None => return Err(e),
                },
            };
            if let Some((other, dir)) = home::other_tables(&self.table, &self.state_dir).into_iter().next() {
                return Err(EngineError::Invalid(format!(
                    "Cordon table `{other}` (recorded in {}) holds a quarantine in this network namespace and table `{}` would stack on it (the kernel would enforce only what both allow); nothing was changed — run again to add this claim to table `{other}`",
                    dir.display(),
                    self.table
                )));
            }
            // A Cordon-looking table in force whose records cannot be found (trial12 N-1,
            // trial15 HIGH-2): anyone with root can make one with one `nft` command, so it
            // must never veto a quarantine. It is not trusted to isolate: this table is
            // applied anyway, on top of it (the kernel then enforces what both allow, which
            // can only block more: fail closed), and the table is reported by name as
            // unrecognised (the outcome's warnings; `cordon status` lists it as tampered).
            for (other, dir) in home::kernel_tables_other_than(&self.table) {
                unrecognised.push(unrecognised_table_words(&other, dir.as_deref()));
            }
            lock
        } else {
            None
        };
        // The tables name the state directory that records them (their comment, in the
        // same transaction as the rules): the kernel itself says where the records are.
        let mut policy = resolved.policy.clone();
        policy.record_dir = home::record_dir_for(&self.state_dir);
        // … and who holds the claims it serves: the kernel's own record of whose rules
        // these are when the claims file cannot be written (trial20 HIGH-B).
        policy.claimed_by = match &self.claimants {
            Some(c) => c.clone(),
            None => claims::recorded_claimants(&self.state_dir, &self.table),
        };
        let started = std::time::Instant::now();
        fw.apply(&policy)?;
        let apply_ms = started.elapsed().as_secs_f64() * 1e3;

        let mut verified_via = None;
        let mut verification = if verify_after && resolved.unverifiable_udp {
            Verification::NotVerifiedUdp
        } else {
            Verification::NotChecked
        };
        if verify_after && !resolved.verify_targets.is_empty() {
            match verify::reach_any(&resolved.verify_targets, req.verify_timeout) {
                Ok(addr) => {
                    verified_via = Some(addr);
                    verification = Verification::Verified;
                }
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

        // Verified: now the old quarantine of any other backend goes, so exactly one set
        // of Cordon rules is in force. If that fails, put everything back as it was.
        let replaced_backends = match self.remove_other_backends(fw.kind()) {
            Ok(list) => list,
            Err(e) => {
                return Err(EngineError::NotKept {
                    what: "could not remove the previous quarantine's rules from another backend",
                    cause: Box::new(e.into()),
                    back_to: rolled_back_to(previous),
                    rollback_error: self.roll_back(fw, previous).err().map(Box::new),
                })
            }
        };

        let inspection = match fw.inspect() {
            Ok(Some(i)) => i,
            Ok(None) => {
                return Err(EngineError::NotKept {
                    what: "the rules cannot be read back for the record",
                    cause: Box::new(EngineError::ReadBack),
                    back_to: rolled_back_to(previous),
                    rollback_error: self.roll_back(fw, previous).err().map(Box::new),
                })
            }
            Err(e) => {
                return Err(EngineError::NotKept {
                    what: "the rules cannot be read back for the record",
                    cause: Box::new(e.into()),
                    back_to: rolled_back_to(previous),
                    rollback_error: self.roll_back(fw, previous).err().map(Box::new),
                })
            }
        };
        // The devices covered now, by interface index, for the record (read before it is
        // written; a failed reading fails the apply below, as before).
        let coverage = fw.coverage();
        let around_now = coverage
            .as_ref()
            .map(|c| c.bypasses.iter().map(|b| b.what.clone()).collect::<Vec<_>>())
            .unwrap_or_default();
        let applied_at = state::now_rfc3339();
        let stored = StoredState {
            version: state::STATE_VERSION,
            table: self.table.clone(),
            backend: fw.kind(),
            request: req.clone(),
            policy: policy.clone(),
            applied_at: applied_at.clone(),
            digest: inspection.digest.clone(),
            boot_id: state::boot_id(),
            // A re-apply (no check) keeps what the original apply proved.
            verification: match (verification, previous) {
                (Verification::NotChecked, Some(prev)) if !verify_after => prev.verification,
                (v, _) => Some(v),
            },
            // What goes around the hooks now and went around them at the first apply.
            around_at_apply: around_kept(previous, around_now),
            devices: coverage
                .as_ref()
                .map(|c| devices_kept(previous, &c.identities, present_ifindexes().as_ref()))
                .unwrap_or_default(),
            // What the watcher saw stays until release or acknowledgement.
            around_seen: previous.map(|p| p.around_seen.clone()).unwrap_or_default(),
            acknowledged: previous.map(|p| p.acknowledged.clone()).unwrap_or_default(),
        };
        // Durability rule (README, "State"): the rules count as applied only once the
        // record is on disk; otherwise the kernel goes back to the previous record —
        // unless this is an ordered quarantine (the agent, wazuh-ar), which stays in force
        // unrecorded rather than leave the host open (trial17 HIGH-1: a full disk).
        let mut unrecorded = None;
        if let Err(e) = state::save_with(&self.state_dir, &stored, dir_sync) {
            if !self.keep_unrecorded {
                return Err(EngineError::NotKept {
                    what: "the quarantine could not be recorded in the state directory, so it was not kept",
                    cause: Box::new(e),
                    back_to: rolled_back_to(previous),
                    rollback_error: self.roll_back(fw, previous).err().map(Box::new),
                });
            }
            tracing::error!(error = %error::chain(&e), "the quarantine is in force but could not be recorded on disk");
            // Remembered on /run, so `status` tells a record that could not be written
            // from a lost one (issue 14: a full disk was reported as tampering).
            home::note_unrecorded(
                &self.table,
                &home::UnrecordedNote {
                    state_dir: home::absolute(&self.state_dir),
                    digest: inspection.digest.clone(),
                    applied_at: applied_at.clone(),
                    why: error::chain(&e),
                },
            );
            unrecorded = Some(error::chain(&e));
        } else {
            home::clear_unrecorded(&self.table);
            home::register(&self.table, &self.state_dir);
        }
        // The tables' comment was written with these rules: no released holder is left
        // in it to leave out.
        home::clear_released(&self.table);

        let message_warning = match &req.message {
            Some(text) if notify_users => notify::message_users(text).err().map(|e| error::chain(&e)),
            _ => None,
        };
        let coverage = coverage?;
        let not_isolated = not_isolated_words(&policy, &coverage);
        Ok(IsolateOutcome {
            state: if not_isolated.is_empty() {
                QuarantineState::Isolated
            } else {
                QuarantineState::NotIsolated
            }
            .as_str(),
            not_isolated,
            backend: fw.kind(),
            table: self.table.to_string(),
            policy,
            digest: inspection.digest,
            applied_at,
            verified_via,
            verification,
            message_warning,
            warnings: resolved
                .warnings
                .iter()
                .cloned()
                .chain(unrecognised)
                .chain(ns_lock_skipped.clone())
                .collect(),
            replaced_backends,
            apply_ms,
            coverage,
            impact: impact::Impact::default(),
            unrecorded,
            lock_skipped: ns_lock_skipped.into_iter().collect(),
        })
    }

    /// Puts the kernel back to `previous` (re-applied on its own backend) or, without a
    /// previous record, removes what `fw` applied.
    /// Puts the firewall back to `previous` (or removes this table's rules when there is
    /// none): what [`rolled_back_to`] says.
    fn roll_back(&self, fw: &dyn Firewall, previous: Option<&StoredState>) -> Result<(), FirewallError> {
        match previous {
            Some(prev) if shares_rules(prev.backend, fw.kind()) => fw.apply(&prev.policy),
            Some(prev) => {
                fw.remove()?;
                cordon_firewall::open(BackendChoice::Exactly(prev.backend), &self.table)?.apply(&prev.policy)
            }
            None => fw.remove(),
        }
    }

    /// Removes Cordon rules of this table from every backend that does not share kernel
    /// objects with `keep`; returns the backends that had some.
    fn remove_other_backends(&self, keep: BackendKind) -> Result<Vec<BackendKind>, FirewallError> {
        let mut removed = Vec::new();
        for group in self.backend_groups() {
            if group.iter().any(|k| shares_rules(*k, keep)) {
                continue;
            }
            // Ask the kernel first whether iptables chains of ours can exist at all, so
            // the isolate path spawns `iptables-save` only when they can (issue #18).
            if group.contains(&BackendKind::Iptables) && !cordon_firewall::iptables::may_hold_chains(&self.table) {
                continue;
            }
            let Some(other) = self.open_group(&group, None) else {
                continue;
            };
            if other.inspect()?.is_some() {
                other.remove()?;
                removed.push(other.kind());
            }
        }
        Ok(removed)
    }

    /// Removes our rules from every backend Cordon could have used, then the stored state.
    /// Succeeds (with `was_isolated: false`) when nothing was in force. If any removal
    /// fails, the state file is left exactly as it was and the error is returned.
    ///
    /// # Errors
    /// [`EngineError::ReleaseIncomplete`] naming each backend that failed (the state file
    /// is then unchanged), or the lock or the state file failing.
    pub fn release(&self) -> Result<ReleaseOutcome, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.release();
        }
        privilege::require_admin()?;
        if self.nothing_here() {
            return Ok(self.released_nothing());
        }
        let _lock = self.lock()?;
        let stored = state::load(&self.state_dir, &self.table)?;
        let recorded = stored.as_ref().map(|s| s.backend);
        let mut removed_from = Vec::new();
        let mut failures = Vec::new();
        for group in self.backend_groups() {
            let Some(fw) = self.open_group(&group, recorded) else {
                continue;
            };
            match fw.inspect() {
                Ok(None) => {}
                Ok(Some(_)) => match fw.remove() {
                    Ok(()) => removed_from.push(fw.kind()),
                    Err(e) => failures.push((fw.kind(), e)),
                },
                Err(e) => failures.push((fw.kind(), e)),
            }
        }
        if !failures.is_empty() {
            return Err(held_by_another(&mut failures).unwrap_or(EngineError::ReleaseIncomplete { failures }));
        }
        state::delete(&self.state_dir, &self.table)?;
        home::clear_unrecorded(&self.table);
        home::clear_released(&self.table);
        if !home::records(&self.state_dir, &self.table) {
            home::unregister(&self.table, &self.state_dir);
        }
        let backend = recorded
            .or_else(|| removed_from.first().copied())
            .or_else(|| self.firewall(None).ok().map(|f| f.kind()))
            .unwrap_or(BackendKind::Netlink);
        Ok(ReleaseOutcome {
            state: QuarantineState::Released.as_str(),
            backend,
            table: self.table.to_string(),
            was_isolated: stored.is_some() || !removed_from.is_empty(),
            removed_from,
        })
    }

    /// Break-glass release: removes this table's rules from every backend that can be
    /// opened on this host, whatever the state file says (or if it is lost or corrupt),
    /// then deletes the state file. Returns the backends that were cleaned. When any
    /// removal fails, the state file is left exactly as it was.
    ///
    /// # Errors
    /// [`EngineError::ForcedReleaseIncomplete`] naming each backend that failed (the state
    /// file is then unchanged), or the lock failing.
    pub fn release_everywhere(&self) -> Result<Vec<BackendKind>, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.release_everywhere();
        }
        privilege::require_admin()?;
        if self.nothing_here() {
            return Ok(vec![]);
        }
        let _lock = self.lock()?;
        let mut cleaned = Vec::new();
        let mut failures = Vec::new();
        // One backend per set of kernel objects (netlink and `nft` share the nftables
        // tables): a refusal is reported once, not once per tool that manages them.
        for group in self.backend_groups() {
            let mut open_error = None;
            let mut opened = None;
            for kind in group {
                match cordon_firewall::open(BackendChoice::Exactly(kind), &self.table) {
                    Ok(fw) => {
                        opened = Some(fw);
                        break;
                    }
                    Err(FirewallError::Unsupported(_)) => {}
                    Err(e) => {
                        open_error.get_or_insert((kind, e));
                    }
                }
            }
            match (opened, open_error) {
                (Some(fw), _) => match fw.remove() {
                    Ok(()) => cleaned.push(fw.kind()),
                    Err(e) => failures.push((fw.kind(), e)),
                },
                (None, Some(failure)) => failures.push(failure),
                (None, None) => {}
            }
        }
        if !failures.is_empty() {
            return Err(held_by_another(&mut failures).unwrap_or(EngineError::ForcedReleaseIncomplete { failures }));
        }
        state::delete(&self.state_dir, &self.table)?;
        home::clear_unrecorded(&self.table);
        home::clear_released(&self.table);
        if !home::records(&self.state_dir, &self.table) {
            home::unregister(&self.table, &self.state_dir);
        }
        Ok(cleaned)
    }

    /// What a process starting up (the agent) finds: the kernel compared with the record,
    /// with the boot id telling a reboot (rules gone, as expected) from tampering while no
    /// Cordon process was running (rules gone in the same boot).
    ///
    /// # Errors
    /// As [`Engine::status`].
    pub fn startup_check(&self) -> Result<StartupFinding, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.startup_check();
        }
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
            // A newer quarantine applied over the record but not recorded (a full state
            // disk; remembered on /run): no tampering, nothing to put back (issue 14).
            Some(i) if home::unrecorded_note(&self.table).is_some_and(|n| n.digest == i.digest) => {
                StartupFinding::Intact
            }
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
    ///
    /// Claims are written before their rules (`claims::Engine::claim_and_apply`), so
    /// claims without a state file may be a change in progress: the status then lets go
    /// of the state lock, waits for the claims lock (the lock order of every change:
    /// claims, then state) and looks again, never holding the state lock while waiting
    /// for the claims lock (a change holding the claims lock waits for the state lock).
    ///
    /// # Errors
    /// [`EngineError`] when the state lock cannot be taken, the record cannot be read, or
    /// the backend cannot be opened or read.
    pub fn status(&self) -> Result<StatusReport, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.status();
        }
        if let Some(r) = self.status_once(false)? {
            return Ok(r);
        }
        // Not root: no claims lock; judge as found. A holder that is not Cordon is no
        // change in progress: judged at once.
        let _settled = claims::ClaimsLock::settle(&self.state_dir, self.lock_timeout);
        self.status_once(true)?.ok_or(EngineError::ReadBack)
    }

    /// One reading for [`Engine::status`]; `None` when claims stand without a state file
    /// and the claims lock is not held (`claims_settled`): look again under it.
    fn status_once(&self, claims_settled: bool) -> Result<Option<StatusReport>, EngineError> {
        // Never judge while another process (or thread) is half way through a change:
        // wait for its state lock, then read record and kernel together.
        let _settled = lock::SharedHold::wait(&self.state_dir, self.lock_timeout);
        let stored = state::load(&self.state_dir, &self.table)?;
        let fw = self.firewall(stored.as_ref().map(|s| s.backend))?;
        let live = fw.inspect()?;
        // Every other backend too: never say `released` while any Cordon rule is in force.
        let mut elsewhere = Vec::new();
        for group in self.backend_groups() {
            if group.iter().any(|k| shares_rules(*k, fw.kind())) {
                continue;
            }
            if let Some(other) = self.open_group(&group, None) {
                if other.inspect()?.is_some() {
                    elsewhere.push(other.kind());
                }
            }
        }
        let mut backends_in_force: Vec<BackendKind> = live.iter().map(|_| fw.kind()).collect();
        backends_in_force.extend(elsewhere.iter().copied());
        let coverage = fw.coverage_against(stored.as_ref().map(|s| &s.devices[..]).unwrap_or_default())?;
        let mut report = StatusReport {
            state: QuarantineState::Released,
            backend: stored.as_ref().map(|s| s.backend),
            table: self.table.to_string(),
            policy: stored.as_ref().map(|s| s.policy.clone()),
            verification: stored.as_ref().and_then(|s| s.verification),
            applied_at: stored.as_ref().map(|s| s.applied_at.clone()),
            expected_digest: stored.as_ref().map(|s| s.digest.clone()),
            actual_digest: live.as_ref().map(|i| i.digest.clone()),
            digest_matches: false,
            reason: None,
            records_lost: false,
            backends_in_force,
            notes: stored
                .as_ref()
                .map(|s| policy_notes(&s.policy, s.backend))
                .unwrap_or_default(),
            coverage,
            unrecognised_tables: home::kernel_tables_other_than(&self.table)
                .into_iter()
                .filter(|(t, d)| d.as_deref().is_none_or(|d| !home::records(d, t)))
                .map(|(t, d)| unrecognised_table_words(&t, d.as_deref()))
                .collect(),
            not_isolated: vec![],
            agent_paths_missing: vec![],
            record_problems: claims::record_problems(&self.state_dir, &self.table),
            around_seen: stored.as_ref().map(|s| s.around_seen.clone()).unwrap_or_default(),
            acknowledged: stored.as_ref().map(|s| s.acknowledged.clone()).unwrap_or_default(),
        };
        if let Some(s) = &stored {
            // The claims name who widened the union; unreadable claims name nobody.
            let claims = self.claims().unwrap_or_default();
            report.not_isolated = claims::not_isolated_words(&s.policy, &claims);
            report.agent_paths_missing = self.paths_not_in(&s.request);
        }
        // Claims without a state file: a quarantine is wanted but its record is lost — or a
        // change is in progress (see `status`).
        let orphans = if stored.is_none() {
            let found = self.claims_without_state()?;
            if !found.is_empty() && !claims_settled {
                return Ok(None);
            }
            found
        } else {
            vec![]
        };
        let orphan_words = || {
            let names: Vec<&str> = orphans.iter().map(|c| c.source.as_str()).collect();
            format!(
                "claims stand ({}) but the state file {} is missing; `cordon isolate --reapply` (or the agent) rebuilds it from the claims",
                names.join(", "),
                state::path(&self.state_dir, &self.table).display()
            )
        };
        match (&stored, &live) {
            (None, None) if !orphans.is_empty() => {
                report.state = QuarantineState::Tampered;
                report.reason = Some(format!(
                    "quarantine rules are missing from the kernel; {}",
                    orphan_words()
                ));
            }
            (None, None) => {}
            (None, Some(_)) => {
                report.state = QuarantineState::Tampered;
                report.backend = Some(fw.kind());
                report.records_lost = orphans.is_empty();
                report.reason = Some(if orphans.is_empty() {
                    // Where the table's own comment says its records are (trial15: the
                    // reason named the default state directory instead).
                    let named = home::kernel_records()
                        .into_iter()
                        .find(|(t, d)| t == &self.table && d != &home::absolute(&self.state_dir))
                        .map(|(_, d)| format!(" nor in {}, the state directory its comment names", d.display()))
                        .unwrap_or_default();
                    // Whose they are, as the kernel's own record says (the tables'
                    // comment, written with the rules): status named nobody (issue 14
                    // LOW), though a release goes by it.
                    let holders = self
                        .kernel_claimants()
                        .filter(|h| !h.is_empty())
                        .map(|h| {
                            format!(
                                "; the kernel's record of them (the table comment) names the claim holders: {}",
                                h.join(", ")
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        "quarantine records lost; rules kept; `cordon release --force` removes them ({} rules named {:?} are in force but no quarantine or claim of them is recorded in {}{named}){holders}",
                        fw.kind(),
                        self.table.as_str(),
                        self.state_dir.display()
                    )
                } else {
                    format!(
                        "{} rules named {:?} are in force; {}",
                        fw.kind(),
                        self.table.as_str(),
                        orphan_words()
                    )
                });
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
        // A quarantine in force that could not be recorded (a full or read-only state
        // disk; the agent and wazuh-ar keep it, fail closed) is no tampering: the kernel
        // holds exactly the rules that apply put in (their digest), which the registry on
        // /run remembers (issue 14: a full disk was reported `tampered`).
        if report.state == QuarantineState::Tampered && elsewhere.is_empty() {
            if let (Some(i), Some(note)) = (&live, home::unrecorded_note(&self.table)) {
                let holders = self.kernel_claimants().unwrap_or_default();
                if note.digest == i.digest
                    && !holders.is_empty()
                    && stored.as_ref().is_none_or(|s| s.digest != i.digest)
                {
                    let older = stored
                        .as_ref()
                        .map(|s| {
                            format!(
                                "; the state file still records the quarantine applied at {}",
                                s.applied_at
                            )
                        })
                        .unwrap_or_default();
                    report.state = QuarantineState::Isolated;
                    report.records_lost = false;
                    report.backend = Some(fw.kind());
                    report.applied_at = Some(note.applied_at.clone());
                    report.reason = Some(format!(
                        "quarantined; the record could not be written: {}. The rules in force are the ones applied at {} (claimed by {}), kept in force (fail closed) but not recorded in {}{older}: they would not survive a reboot; the next apply records them once that directory can be written",
                        note.why,
                        note.applied_at,
                        holders.join(", "),
                        note.state_dir.display()
                    ));
                }
            }
        }
        // Our rules are intact but something outside them undoes them (trial21 HIGH-3,
        // HIGH-5): a foreign chain on our hooks, a covered interface moved away.
        // And what moves frames around our hooks (tc, XDP, AF_XDP; trial27): tampering
        // when it appeared after the apply, a note when it was there already.
        let known = stored.as_ref().map(|s| s.around_at_apply.clone()).unwrap_or_default();
        for b in report.coverage.bypasses.iter().filter(|b| known.contains(&b.what)) {
            report.coverage.notes.push(format!(
                "already there when the quarantine was applied, goes around Cordon's hooks (the layers it skips are not claimed; Cordon removes nothing foreign): {b}"
            ));
        }
        if let (Some(why), true) = (
            report.coverage.undermined_since(&known),
            stored.is_some() && live.is_some(),
        ) {
            report.state = QuarantineState::Tampered;
            report.reason = Some(match report.reason.take() {
                Some(r) => format!("{r}; {why}"),
                None => why,
            });
        }
        // What a watcher saw and is gone now (trial31 MED-E: a tcx program or an AF_XDP
        // socket living between two checks) stays tampering until acknowledged.
        if let (Some(why), true) = (
            seen_gone_words(&report.around_seen, &report.coverage),
            stored.is_some() && live.is_some(),
        ) {
            report.state = QuarantineState::Tampered;
            report.reason = Some(match report.reason.take() {
                Some(r) => format!("{r}; {why}"),
                None => why,
            });
        }
        // What goes around the hooks does not let the quarantine read as isolated, whether
        // it appeared since (tampering, above) or was there at the apply (trial31 HIGH-H).
        if stored.is_some() && live.is_some() {
            report.not_isolated.extend(around_not_isolated_words(&report.coverage));
        }
        if report.state == QuarantineState::Isolated && !report.not_isolated.is_empty() {
            report.state = QuarantineState::NotIsolated;
        }
        if !elsewhere.is_empty() {
            let what = elsewhere_words(&self.table, &elsewhere, stored.is_some());
            report.state = QuarantineState::Tampered;
            report.digest_matches = false;
            report.backend = report.backend.or(elsewhere.first().copied());
            report.reason = Some(match report.reason.take() {
                Some(r) => format!("{r}; {what}"),
                None => what,
            });
        }
        Ok(Some(report))
    }
}

/// The words for the paths around the hooks a watcher saw (`seen`) that are not there now
/// (not among `coverage`'s bypasses); `None` when there is none. Pure.
pub fn seen_gone_words(seen: &[state::SeenAround], coverage: &Coverage) -> Option<String> {
    let gone: Vec<String> = seen
        .iter()
        .filter(|s| !coverage.bypasses.iter().any(|b| b.what == s.what))
        .map(|s| s.to_string())
        .collect();
    (!gone.is_empty()).then(|| {
        format!(
            "the watcher saw a path around Cordon's hooks after the quarantine was applied, gone since (what it sent then was not filtered; `cordon status --acknowledge` clears this once looked into): {}",
            gone.join("; ")
        )
    })
}

/// The paths around the hooks a new record counts as there at the apply
/// ([`StoredState::around_at_apply`]): all of `now` for a first apply; for a re-apply
/// (`previous` recorded) only those `previous` counted already, so one that appeared
/// after the first apply stays tampering however often the quarantine is re-applied.
fn around_kept(previous: Option<&StoredState>, now: Vec<String>) -> Vec<String> {
    match previous {
        Some(prev) => now.into_iter().filter(|w| prev.around_at_apply.contains(w)).collect(),
        None => now,
    }
}

/// The covered devices a new record keeps ([`StoredState::devices`]): those covered now
/// (`now`), and those `previous` recorded that are gone from this network namespace
/// (`present`: the interface indexes here; `None` when unknown, then none is kept) and
/// not seen deleted by a watcher in this process. A device moved to another namespace is
/// out of reach of the hooks, and a re-apply (as the status reason advised) forgot it and
/// read `isolated` while it carried traffic unfiltered elsewhere (trial31 MED-D); kept, it
/// stays `tampered` (`coverage.lost`) until it comes back or the quarantine is released.
fn devices_kept(
    previous: Option<&StoredState>,
    now: &[cordon_firewall::DeviceId],
    present: Option<&std::collections::BTreeSet<u32>>,
) -> Vec<cordon_firewall::DeviceId> {
    let mut out = now.to_vec();
    let (Some(prev), Some(present)) = (previous, present) else {
        return out;
    };
    let deleted = watch::deleted();
    for d in &prev.devices {
        if !present.contains(&d.ifindex) && !deleted.contains(&d.ifindex) && !out.iter().any(|o| o.ifindex == d.ifindex)
        {
            out.push(d.clone());
        }
    }
    out
}

/// The interface indexes of this network namespace, where they can be listed.
fn present_ifindexes() -> Option<std::collections::BTreeSet<u32>> {
    #[cfg(target_os = "linux")]
    {
        cordon_firewall::netlink::links::list()
            .ok()
            .map(|l| l.into_iter().map(|l| l.index).collect())
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// What [`Engine::roll_back`] puts back for `previous`.
fn rolled_back_to(previous: Option<&StoredState>) -> RolledBackTo {
    if previous.is_some() {
        RolledBackTo::Recorded
    } else {
        RolledBackTo::Nothing
    }
}

/// The words for a Cordon-looking table in force whose records cannot be found (an
/// empty decoy, or a quarantine whose state directory was deleted): its name, and the
/// state directory its comment names (`dir`), if any. Shared by the isolate outcome's
/// warning and `cordon status`'s reason, so both name the same table and directory.
pub(crate) fn unrecognised_table_words(table: &TableName, dir: Option<&std::path::Path>) -> String {
    let whose = match dir {
        Some(d) => format!("its comment names {}, which holds no record of it", d.display()),
        None => "its comment names no state directory".to_string(),
    };
    format!(
        "unrecognised Cordon table `{table}` is in force in this network namespace but its records are not found ({whose}): tampered or foreign, not trusted to isolate; this quarantine was applied on top of it (the kernel enforces only what both allow: never less isolation); `cordon status` shows it, `cordon release --force` removes it"
    )
}

/// A release refused because another cordon process holds the tables is one cause with
/// one next step (stop that process), not a list of per-backend failures: the first such
/// failure, taken out of `failures`.
fn held_by_another(failures: &mut Vec<(BackendKind, FirewallError)>) -> Option<EngineError> {
    let i = failures.iter().position(|(_, e)| e.is_held_by_another_process())?;
    Some(EngineError::HeldByAnotherProcess(failures.remove(i).1))
}

/// Every table name under which Cordon holds something on this host, whatever `--table`
/// it was given: the quarantines and claims recorded in `state_dir` (`<table>.json`,
/// `<table>.claims.json`) and the tables in the kernel that carry Cordon's ownership
/// marks ([`cordon_firewall::discover_tables`]: the nftables table comment, the iptables
/// chain naming rule), so a lost state file still leaves the quarantine findable. Sorted,
/// the default name first, without repeats; empty when Cordon holds nothing here.
///
/// # Errors
/// When the state directory cannot be listed, or the firewall cannot be read (not root).
pub fn discover_tables(state_dir: &std::path::Path) -> Result<Vec<TableName>, EngineError> {
    let mut names = state::recorded_tables(state_dir)?;
    for t in cordon_firewall::discover_tables()? {
        if !names.contains(&t) {
            names.push(t);
        }
    }
    sort_tables(&mut names);
    Ok(names)
}

/// Sorts table names by name with the default name first, and drops repeats.
pub fn sort_tables(names: &mut Vec<TableName>) {
    names.sort_by(|a, b| {
        (a.as_str() != TableName::DEFAULT, a.as_str()).cmp(&(b.as_str() != TableName::DEFAULT, b.as_str()))
    });
    names.dedup();
}

/// How `apply_resolved` goes about an apply: verify reachability afterwards (rolling back
/// on failure), send the message to logged-in users, and when the state's rename is made
/// durable ([`state::DirSync`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApplyHow {
    verify_after: bool,
    notify_users: bool,
    dir_sync: state::DirSync,
}

/// Whether two backends manage the same kernel objects (netlink and the `nft` command both
/// build the nftables table `inet <table>`), so removing through one removes the other's.
pub fn shares_rules(a: BackendKind, b: BackendKind) -> bool {
    let nft = |k: BackendKind| matches!(k, BackendKind::Netlink | BackendKind::Nftables);
    a == b || (nft(a) && nft(b))
}

/// Refuses a policy whose open networks cover a whole family (`--allow 0.0.0.0/0`, `::/0`
/// or pieces adding up to them): such a quarantine isolates nothing there.
fn refuse_no_isolation(req: &IsolateRequest, policy: &Policy) -> Result<(), EngineError> {
    let open = policy.fully_open_families();
    if open.is_empty() || req.allow_no_isolation {
        return Ok(());
    }
    Err(EngineError::Invalid(format!(
        "the --allow exceptions cover every {} address, so the quarantine would isolate nothing there; nothing was changed (give --allow-no-isolation if that is really meant)",
        family_words(&open)
    )))
}

fn family_words(families: &[cordon_policy::model::Family]) -> String {
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    names.join(" and ")
}

/// `status`'s reason for Cordon rules of `table` in force in the `elsewhere` backends, with
/// (`recorded`) or without a recorded quarantine. Without one there is no record to
/// speak of (trial26 L9 said "which the record does not cover" with no record), and only
/// `cordon release --force` removes rules nobody claims.
fn elsewhere_words(table: &TableName, elsewhere: &[BackendKind], recorded: bool) -> String {
    let names: Vec<String> = elsewhere.iter().map(|k| k.to_string()).collect();
    let backends = format!(
        "the {} backend{}",
        names.join(", "),
        if names.len() == 1 { "" } else { "s" }
    );
    if recorded {
        format!(
            "Cordon rules named {:?} are also in force in {backends}, which the record does not cover; `cordon release` removes them",
            table.as_str()
        )
    } else {
        format!(
            "Cordon rules named {:?} are in force in {backends} with no quarantine recorded; `cordon release --force` removes them",
            table.as_str()
        )
    }
}

/// Why a quarantine with `policy` in force, read back as `coverage`, does not isolate the
/// host: the policy's whole open address families ([`policy_notes`]' `NOT ISOLATED`
/// line) and [`around_not_isolated_words`]. Empty when it isolates. Pure.
pub fn not_isolated_words(policy: &Policy, coverage: &Coverage) -> Vec<String> {
    let open = policy.fully_open_families();
    let mut words = Vec::new();
    if !open.is_empty() {
        words.push(format!(
            "NOT ISOLATED: the policy allows every {} destination (--allow-no-isolation)",
            family_words(&open)
        ));
    }
    words.extend(around_not_isolated_words(coverage));
    words
}

/// One `NOT ISOLATED: …` sentence when something moves frames around Cordon's hooks
/// ([`Coverage::bypasses`]: a tc filter that redirects, an XDP program, an AF_XDP socket,
/// …), naming each with the layers it skips; empty when nothing does. Whether it was
/// there when the quarantine was applied or appeared since, the host is not isolated
/// while it exists (trial31 HIGH-H: a tc redirect planted before the isolate let the
/// host's own TCP stack connect anywhere while status said `isolated`). Pure.
pub fn around_not_isolated_words(coverage: &Coverage) -> Vec<String> {
    if coverage.bypasses.is_empty() {
        return vec![];
    }
    let list: Vec<String> = coverage
        .bypasses
        .iter()
        .map(|b| {
            let skips: Vec<&str> = b.skips.iter().map(|l| l.name()).collect();
            format!("{b} (skips {})", skips.join(", "))
        })
        .collect();
    vec![format!(
        "NOT ISOLATED: something goes around Cordon's hooks, so traffic leaves the host past the rules (layers in force: {}; Cordon removes nothing foreign: delete it, then `cordon status` says isolated): {}",
        coverage.summary(),
        list.join("; ")
    )]
}

/// Plain statements of what a recorded policy does and does not stop under `backend`, for
/// `status` and `isolate --dry-run`. The `--no-dhcp` note about packet sockets is Linux's
/// (the IP-layer hooks of nftables, iptables, netlink); the Windows and macOS backends
/// get their own (trial26 L1: WFP and netsh dry runs printed the Linux one).
pub fn policy_notes(policy: &Policy, backend: BackendKind) -> Vec<String> {
    let mut notes = Vec::new();
    let open = policy.fully_open_families();
    if !open.is_empty() {
        notes.push(format!(
            "NOT ISOLATED: the policy allows every {} destination (--allow-no-isolation)",
            family_words(&open)
        ));
    }
    if !policy.udp_servers.is_empty() {
        let servers: Vec<String> = policy.udp_servers.iter().map(|a| a.to_string()).collect();
        notes.push(format!(
            "UDP servers {}: outbound UDP to them is kept open; not verified (UDP): a UDP server cannot be proven reachable by connecting",
            servers.join(", ")
        ));
    }
    if policy.dhcp {
        let servers: Vec<String> = policy.dhcp_servers.iter().map(|a| a.to_string()).collect();
        notes.push(if servers.is_empty() {
            "DHCP: requests to 255.255.255.255 and ff02::1:2 only (no DHCP server known), replies from link-local (v6)".to_string()
        } else {
            format!(
                "DHCP: requests to 255.255.255.255, ff02::1:2 and the servers {}; replies from those servers (v6 also link-local)",
                servers.join(", ")
            )
        });
    } else if matches!(
        backend,
        BackendKind::Nftables | BackendKind::Iptables | BackendKind::Netlink
    ) {
        notes.push(
            "--no-dhcp closes UDP 67/68 and 546/547 in the IP layer (input/output/forward hooks); DHCP clients that use packet sockets (dhclient, udhcpc, dhcpcd, systemd-networkd, NetworkManager) send and receive below that layer, so a client already running can still renew its lease"
                .to_string(),
        );
    } else {
        notes.push(format!(
            "--no-dhcp: the {backend} rules permit no DHCP (UDP 67/68 and 546/547); a lease that runs out during the quarantine is not renewed"
        ));
    }
    if backend == BackendKind::NetshIpsec {
        // trial26 L6: the two Windows backends differ here; say so rather than hide it.
        notes.push(format!(
            "netsh-ipsec permits all ICMPv6 to {} (netsh ipsec filters cannot match ICMP types; IPv6 neighbour discovery needs these networks), so echo and other ICMPv6 to link-local neighbours stay open; the wfp backend permits neighbour discovery only (types 133-136)",
            cordon_policy::render::netsh::ND_NETWORKS.join(" and ")
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// trial31 HIGH-H: what goes around the hooks makes the quarantine not isolated (one
    /// sentence naming each path and what it skips); nothing around it, no sentence.
    #[test]
    fn a_path_around_the_hooks_is_not_isolated() {
        use cordon_firewall::{Bypass, Layer};
        let mut c = Coverage {
            layers: vec![Layer::Inet, Layer::NetdevIngress, Layer::NetdevEgress],
            ..Coverage::default()
        };
        assert!(around_not_isolated_words(&c).is_empty());
        c.layers = vec![];
        c.bypasses = vec![Bypass {
            what: "tc filter u32 on eth0 ingress (pref 1, handle 0x1): actions mirred".into(),
            skips: vec![Layer::Inet, Layer::NetdevIngress],
            holder: None,
        }];
        let w = around_not_isolated_words(&c);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("NOT ISOLATED: something goes around"), "{}", w[0]);
        assert!(w[0].contains("layers in force: none"), "{}", w[0]);
        assert!(
            w[0].ends_with("actions mirred (skips inet, netdev-ingress)"),
            "{}",
            w[0]
        );
    }

    /// trial27: a path around the hooks there at the first apply is known; one that
    /// appeared since never becomes known by a re-apply (it stays tampering), and one
    /// gone is forgotten (if it comes back, it is new).
    #[test]
    fn a_reapply_never_adopts_a_path_around_the_hooks() {
        let mirred = "tc filter u32 on lo egress (pref 1, handle 0x800): actions mirred".to_string();
        let xdp = "XDP program id 7 (generic) on eth0".to_string();
        assert_eq!(around_kept(None, vec![mirred.clone()]), std::slice::from_ref(&mirred));
        let prev = StoredState {
            version: state::STATE_VERSION,
            table: TableName::default(),
            backend: BackendKind::Netlink,
            request: IsolateRequest::default(),
            policy: cordon_policy::Policy::builder()
                .server("192.0.2.1:8443".parse().unwrap())
                .build(),
            applied_at: state::now_rfc3339(),
            digest: "d".into(),
            boot_id: None,
            verification: None,
            around_at_apply: vec![mirred.clone()],
            devices: vec![],
            around_seen: vec![],
            acknowledged: vec![],
        };
        assert_eq!(around_kept(Some(&prev), vec![mirred.clone(), xdp.clone()]), [mirred]);
        assert!(around_kept(Some(&prev), vec![xdp.clone()]).is_empty());
        let cov = Coverage {
            bypasses: vec![cordon_firewall::Bypass {
                what: xdp.clone(),
                skips: vec![cordon_firewall::Layer::NetdevEgress],
                holder: None,
            }],
            ..Coverage::default()
        };
        assert_eq!(cov.undermined_since(std::slice::from_ref(&xdp)), None);
        let why = cov.undermined_since(&prev.around_at_apply).unwrap();
        assert!(
            why.contains("appeared since the quarantine was applied") && why.contains(&xdp),
            "{why}"
        );
    }

    /// trial26 L1: the packet-socket note of `--no-dhcp` is about Linux's IP-layer hooks;
    /// a WFP, netsh or pf quarantine says what it does itself.
    #[test]
    fn the_no_dhcp_note_names_linux_packet_sockets_only_for_linux_backends() {
        let eng = Engine::new(TableName::default(), std::env::temp_dir(), BackendChoice::Auto);
        let req = IsolateRequest {
            allow: vec![AllowSpec::parse("198.51.100.0/24").unwrap()],
            resolvers: Some(vec![]),
            dhcp: false,
            ..Default::default()
        };
        let policy = eng.resolve(&req).unwrap().policy;
        for b in [BackendKind::Nftables, BackendKind::Iptables, BackendKind::Netlink] {
            let notes = policy_notes(&policy, b).join("\n");
            assert!(notes.contains("packet sockets (dhclient"), "{b}: {notes}");
        }
        for b in [BackendKind::Wfp, BackendKind::NetshIpsec, BackendKind::Pf] {
            let notes = policy_notes(&policy, b).join("\n");
            assert!(
                !notes.contains("packet sockets") && !notes.contains("dhclient"),
                "{b}: {notes}"
            );
            assert!(
                notes.contains(&format!("--no-dhcp: the {b} rules permit no DHCP")),
                "{b}: {notes}"
            );
        }
    }

    /// trial26 L6: netsh-ipsec's wider ICMPv6 permit (it cannot match ICMP types) is said
    /// wherever its policy is shown; WFP's is not that wide.
    #[test]
    fn netsh_says_it_permits_all_icmpv6_to_link_local() {
        let policy = Policy::builder().server("192.0.2.1:8443".parse().unwrap()).build();
        let netsh = policy_notes(&policy, BackendKind::NetshIpsec).join("\n");
        assert!(
            netsh.contains("netsh-ipsec permits all ICMPv6 to fe80::/10 and ff02::/16"),
            "{netsh}"
        );
        let wfp = policy_notes(&policy, BackendKind::Wfp).join("\n");
        assert!(!wfp.contains("ICMPv6"), "{wfp}");
    }

    /// trial26 L9: rules in another backend with no record are not said to be outside
    /// "the record"; the way out is `release --force`.
    #[test]
    fn rules_in_another_backend_without_a_record_are_not_called_uncovered_by_it() {
        let t = TableName::default();
        let none = elsewhere_words(&t, &[BackendKind::Iptables], false);
        assert!(
            !none.contains("record does not cover") && !none.contains("also"),
            "{none}"
        );
        assert!(
            none.contains("in force in the iptables backend with no quarantine recorded"),
            "{none}"
        );
        assert!(none.ends_with("`cordon release --force` removes them"), "{none}");
        let some = elsewhere_words(&t, &[BackendKind::Iptables, BackendKind::Nftables], true);
        assert!(
            some.contains("also in force in the iptables, nftables backends, which the record does not cover"),
            "{some}"
        );
    }

    #[test]
    fn a_policy_that_isolates_nothing_is_refused_unless_asked_for() {
        let eng = Engine::new(TableName::default(), std::env::temp_dir(), BackendChoice::Auto);
        for nets in [&["0.0.0.0/0"][..], &["::/0"], &["0.0.0.0/1", "128.0.0.0/1"]] {
            let req = IsolateRequest {
                allow: nets.iter().map(|n| AllowSpec::parse(n).unwrap()).collect(),
                resolvers: Some(vec![]),
                dhcp: false,
                ..Default::default()
            };
            let err = eng.resolve(&req).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains("--allow-no-isolation"), "{err}");
            let ok = IsolateRequest {
                allow_no_isolation: true,
                ..req
            };
            let resolved = eng.resolve(&ok).unwrap();
            assert!(policy_notes(&resolved.policy, BackendKind::Netlink)[0].starts_with("NOT ISOLATED"));
        }
        let fine = IsolateRequest {
            allow: vec![AllowSpec::parse("198.51.100.0/24").unwrap()],
            resolvers: Some(vec![]),
            ..Default::default()
        };
        assert!(eng.resolve(&fine).is_ok());
    }

    #[test]
    fn netlink_and_nft_share_rules_iptables_does_not() {
        assert!(shares_rules(BackendKind::Netlink, BackendKind::Nftables));
        assert!(shares_rules(BackendKind::Iptables, BackendKind::Iptables));
        assert!(!shares_rules(BackendKind::Netlink, BackendKind::Iptables));
    }
}

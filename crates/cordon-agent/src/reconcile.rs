//! The agent's main loop: long-poll for desired state, converge the firewall to it,
//! check for tampering every second and repair, report every change.
//!
//! # The agent's quarantine policy (issue 14; the standalone CLI keeps verify-or-roll-back)
//!
//! * **Fail closed, apply what can be applied.** Each exception is resolved on its own;
//!   one that does not parse or resolve is left out, the quarantine goes in without it,
//!   the report says `degraded` with one line per missing exception, and the agent retries
//!   the names every `retry_secs` (re-applying atomically when they resolve).
//! * **Verify through the real transport, never roll back.** The agent just reached the
//!   server to learn of the quarantine, so after applying it does not probe with a TCP
//!   connect of its own: the status report it sends next — an authenticated request over
//!   its own client, to its own servers, through its own proxy — is the verification.
//!   If that does not get through within `verify_timeout_secs`, the agent logs it,
//!   re-resolves its server names and keeps trying; it never opens the host again for that
//!   revision. The host therefore changes between open and closed at most once per desired
//!   revision, and the server shows `quarantined` only once that report arrived.
//! * **Follow the server, provably.** The server names (every URL in `servers` and the
//!   proxy) are re-resolved whenever a connection fails and every `resolve_interval_secs`;
//!   new addresses are added to the rules in force in one atomic re-apply, keeping the old
//!   ones until a request through a new address succeeded. Whoever answers the name (a
//!   hosts file, a DNS reply) could otherwise open any address (trial17 MED-3), so an
//!   address a server *name* resolved to stays allowed only once the agent reached its
//!   server there over mutual TLS ([`ServerClient::probe`] through the short-lived
//!   pinhole of that re-apply; the address in use is proven by use). An address where a
//!   peer answers that is not the server (TLS, certificate, an HTTP status other than the
//!   server's 401/403 refusal of this agent, a reset) is taken
//!   out again at once and reported in `degraded` (`server address … not allowed: …`)
//!   while the name keeps resolving to it; it is tried again only after the server was
//!   unreachable for `verify_timeout_secs`. An address where nothing answers at all
//!   (refused, timed out, unreachable) is an outage, not an impostor (issue 14 item 3): it
//!   stays in the rules, unproven, and is probed again every `retry_secs` — refused only
//!   when the server answers elsewhere and this address still gives no answer
//!   `verify_timeout_secs` after its first try. A proven address is never dropped
//!   because the server is down. Addresses that no longer resolve
//!   and are not the one in use are dropped at the next refresh. (Not with a proxy: the
//!   agent then reaches its server only through the proxy, and proves nothing directly.)
//!   Every change of the allow set shows in the agent claim's `servers`, which the server
//!   audits (`servers_changed`). A server or proxy name that does
//!   not resolve (a DR site's name not yet in DNS) is reported in `degraded`
//!   (`server dr.example.net unresolved: …`) like an unresolved exception, and retried
//!   every `retry_secs` until it resolves and is added.
//! * **Report at start and every heartbeat,** so `last seen` stays fresh and the server can
//!   call an agent offline after three missed heartbeats.
//! * **Keep its own paths open under every claim.** At start and whenever its server or
//!   proxy addresses change, the agent records its management paths in the state
//!   directory (`cordon_engine::claims`): a Wazuh, Velociraptor or local quarantine then
//!   keeps the agent's servers, proxy and resolvers reachable, so the server still sees
//!   the host and can quarantine and release it.
//! * **Repair every standing claim.** Tampering with a quarantine the agent does not hold
//!   (a Wazuh-only claim, say) is repaired like its own: the recorded merged quarantine is
//!   re-applied (as `cordon isolate --reapply` does, in milliseconds; the event-driven
//!   watcher runs while any claim stands) and reported once, never "released".

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_engine::watch::WatchEvent;
use cordon_engine::{ClaimSource, LockWait, ManagementPaths, QuarantineState, StartupFinding};
use cordon_policy::{AllowSpec, Target, Transport};
use cordon_proto::{AgentState, AgentWait, DesiredState, StatusReport, WaitKind, PROTO_VERSION};
use rustls::ClientConfig;
use tokio::sync::{mpsc, watch, Notify};

use crate::backoff::{Announce, Outcome, Retry};
use crate::client::{Connect, ServerClient, POLL_WAIT_SECS};
use crate::enforcer::{Applied, Check, EnforceError, Enforcer};
use crate::persist::{self, Persisted};
use crate::plan::{self, NameResolver, OwnTransport, Plan, SystemResolver};
use crate::{AgentConfig, AgentError, AGENT_VERSION};

/// At most this often the agent re-resolves after connection failures.
const MIN_RESOLVE_GAP: Duration = Duration::from_millis(500);

/// The running agent: long-polls the server for the desired state, converges the
/// firewall to it through its [`Enforcer`], watches for tampering and reports status.
pub struct Agent {
    cfg: AgentConfig,
    enforcer: Arc<dyn Enforcer>,
    resolver: Arc<dyn NameResolver>,
    transport: OwnTransport,
    client: ServerClient,
    hostname: String,
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1))
}

impl Agent {
    /// An agent for `cfg` enforcing through `enforcer`, talking TLS with `tls`.
    ///
    /// # Errors
    /// [`AgentError::Config`] or [`AgentError::OwnTransport`] for an invalid config,
    /// [`AgentError::Client`] when the HTTP client cannot be built.
    pub fn new(cfg: AgentConfig, enforcer: Arc<dyn Enforcer>, tls: ClientConfig) -> Result<Self, AgentError> {
        cfg.validate()?;
        let urls = cfg.server_urls();
        let connect = Connect {
            proxy: cfg.proxy.clone(),
            timeout: secs(cfg.connect_timeout_secs),
        };
        let client = ServerClient::with_servers(&urls, tls, &connect)?;
        let transport = OwnTransport::new(&urls, cfg.proxy.as_deref())?;
        Ok(Agent {
            cfg,
            enforcer,
            resolver: Arc::new(SystemResolver),
            transport,
            client,
            hostname: hostname(),
        })
    }

    /// Builds the agent described by `cfg`: the engine on this host's firewall (or an
    /// in-memory stand-in when `enforce = false`) and mutual TLS from its files.
    ///
    /// # Errors
    /// As [`Agent::new`], and [`AgentError::TlsConfig`] for the TLS files.
    pub fn from_config(cfg: AgentConfig) -> Result<Self, AgentError> {
        // A claim belongs to one enrollment (trial20 HIGH-C): the agent makes and releases
        // only `agent` claims of its own host id.
        let real = crate::EngineEnforcer::new(cfg.table.clone(), cfg.state_dir.clone(), cfg.backend)
            .owned_by(&cfg.host_id)
            .with_lock_timeout(secs(cfg.lock_timeout_secs));
        let enforcer: Arc<dyn Enforcer> = if cfg.enforce {
            Arc::new(real)
        } else {
            refuse_monitoring_own_claim(real.engine(), &cfg)?;
            Arc::new(crate::MemoryEnforcer::recording_paths(real.engine().clone()))
        };
        let tls = cordon_client::tls::mutual_from_files(&cfg.ca, &cfg.cert, &cfg.key)?;
        Self::new(cfg, enforcer, tls)
    }

    /// Reports `name` as the host name instead of the system's.
    pub fn with_hostname(mut self, name: &str) -> Self {
        self.hostname = name.to_string();
        self
    }

    /// Resolves names (exceptions, servers, proxy) with `r` instead of the system resolver.
    pub fn with_resolver(mut self, r: Arc<dyn NameResolver>) -> Self {
        self.resolver = r;
        self
    }

    /// Runs until the task is dropped. Never releases the host because the server is
    /// unreachable: only a desired state from the server does that.
    ///
    /// # Errors
    /// [`AgentError::Io`] when the persisted state cannot be read.
    pub async fn run(self) -> Result<(), AgentError> {
        let binding = persist::Binding::of(&self.cfg);
        match persist::tighten_private_dir(&self.cfg.state_dir) {
            Ok(changed) if !changed.is_empty() => tracing::warn!(
                changed = %changed.join(", "),
                "state directory was readable by others; tightened (directory 0700, files 0600)"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                dir = %self.cfg.state_dir.display(),
                error = %e,
                "cannot tighten the state directory's permissions"
            ),
        }
        match persist::tighten_key_file(&self.cfg.key) {
            Ok(Some(change)) => {
                tracing::warn!(%change, "the agent's private key was readable by others; tightened (0600)")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                key = %self.cfg.key.display(),
                error = %e,
                "cannot tighten the agent's private key's permissions"
            ),
        }
        // A corrupt or unusable desired-state file (a FIFO hung the agent at start,
        // trial20 HIGH-A) is set aside: the agent starts as on a first start.
        let (mut stored, desired_set_aside) = persist::load_or_set_aside(&self.cfg.state_dir)?;
        if let Some(note) = &desired_set_aside {
            tracing::error!("{note}");
        }
        // A desired state of another enrollment (re-enrolled into the same state
        // directory) says nothing about this host: start from none.
        if let Some(why) = stored
            .as_ref()
            .and_then(|p| p.binding.as_ref())
            .and_then(|b| binding.mismatch(b))
        {
            tracing::warn!(
                file = %persist::path(&self.cfg.state_dir).display(),
                "persisted desired state discarded: {why}"
            );
            stored = None;
        }
        // No desired state of this enrollment on disk: an `agent` claim standing here was
        // made by another enrollment (trial17 HIGH-3), checked at start.
        let unproven = stored.is_none();
        let mut persisted = stored.unwrap_or_default();
        persisted.binding = Some(binding);
        let (desired_tx, mut desired_rx) = watch::channel(persisted.desired.clone());
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let (watch_tx, mut watch_rx) = mpsc::unbounded_channel();
        let heartbeat = secs(self.cfg.heartbeat_secs);
        let reporter = tokio::spawn(crate::report::run(
            self.client.clone(),
            report_rx,
            heartbeat,
            secs(self.cfg.refused_retry_secs),
        ));
        let reset = Arc::new(Notify::new());
        let refused_every = secs(self.cfg.refused_retry_secs);
        let poller = tokio::spawn(poll(self.client.clone(), desired_tx, reset.clone(), refused_every));
        let _guard = AbortOnDrop(vec![reporter, poller]);
        let conn_failed = self.client.failures();

        let now = Instant::now();
        let mut rec = Reconciler {
            enforcer: self.enforcer.clone(),
            resolver: self.resolver.clone(),
            transport: self.transport.clone(),
            client: self.client.clone(),
            dir: self.cfg.state_dir.clone(),
            p: persisted,
            plan: None,
            report_tx,
            last_report: None,
            retry_at: None,
            hostname: self.hostname.clone(),
            host_id: self.cfg.host_id.clone(),
            reset,
            enforcing: self.cfg.enforce,
            heartbeat_ms: heartbeat.as_millis() as u64,
            retry_every: secs(self.cfg.retry_secs),
            resolve_every: secs(self.cfg.resolve_interval_secs),
            verify_timeout: secs(self.cfg.verify_timeout_secs),
            next_resolve: now + secs(self.cfg.resolve_interval_secs),
            last_resolve: None,
            local_claims_reported: None,
            foreign_agent_claim: None,
            desired_went_back: None,
            unproven_claim: unproven,
            lost_reported: None,
            outside_reported: None,
            claims: vec![],
            unrecognised: vec![],
            not_isolated: vec![],
            paths_repair_at: None,
            unrecorded: None,
            record_retry_at: None,
            lock_notes: vec![],
            seen_unenforced: None,
            check_failure: RepeatedWarning::default(),
            transport_failures: vec![],
            named: Default::default(),
            proven: BTreeSet::new(),
            refused: Default::default(),
            unanswered: Default::default(),
            probe: self.cfg.proxy.is_none(),
            paths_recorded: None,
            next_degraded_retry: now,
            desired_set_aside,
            verifying: None,
            watcher: None,
            watch_tx,
        };
        rec.startup().await;
        let mut tick = tokio::time::interval(secs(self.cfg.check_interval_secs).min(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let check_every = secs(self.cfg.check_interval_secs);
        let mut next_check = Instant::now() + check_every;
        loop {
            tokio::select! {
                changed = desired_rx.changed() => {
                    if changed.is_err() {
                        return Err(AgentError::PollerStopped);
                    }
                    let d = desired_rx.borrow_and_update().clone();
                    rec.on_desired(d).await;
                }
                _ = conn_failed.notified() => rec.on_connection_failed().await,
                Some(ev) = watch_rx.recv() => rec.on_watch_event(ev).await,
                _ = tick.tick() => {
                    let now = Instant::now();
                    let check = now >= next_check;
                    if check {
                        next_check = now + check_every;
                    }
                    rec.on_tick(check).await;
                }
            }
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// What the agent says when the server's desired state went back from `before` to
/// `now` (a lower revision, or other content under the same one): both revisions, what
/// each asked for, and that the agent applied the server's (pure, so tested as text).
pub(crate) fn went_back_note(before: &DesiredState, now: &DesiredState) -> String {
    let what = |d: &DesiredState| if d.quarantined { "quarantine" } else { "no quarantine" };
    let change = if now.revision < before.revision {
        format!(
            "the server's desired revision went back from {} ({}) to {} ({})",
            before.revision,
            what(before),
            now.revision,
            what(now)
        )
    } else {
        format!(
            "the server's desired state changed under revision {} (was {}, now {})",
            now.revision,
            what(before),
            what(now)
        )
    };
    format!(
        "{change}: its database was restored from an older backup or replaced; the agent applied the server's \
         revision {} — check the restore, and quarantine again if the host must stay isolated",
        now.revision
    )
}

/// Long-polls forever; passes on every new revision, and the current one again after
/// a reconnect (so the agent re-reports its state to a server that was away).
///
/// `reset` abandons the request in flight and starts a new one. The reconciler fires it
/// after applying a quarantine: a long-poll sent before the rules existed may be on a
/// connection the kernel never tracked (conntrack starts with our rules), so the
/// server's answer would arrive as a "new" inbound packet and be dropped. A fresh
/// request starts with an outbound packet and is tracked as established.
///
/// Retries follow [`Retry`]: exponential backoff on failures, started over as soon as any
/// call on the agent's connection succeeds again (checked every second while waiting);
/// after a refusal (401/403: the host was revoked or deleted on the server) one clear
/// error, then a retry every `refused_every` without further log lines until that changes.
///
/// The first request, and the first after a failure (the server may have been restored
/// from a backup meanwhile), asks for the current state at once (no `since`); a state is
/// passed on when its content differs from the last one passed on, not only its revision
/// (trial9 H-1: a restored database can carry other content under the same revision).
async fn poll(client: ServerClient, tx: watch::Sender<DesiredState>, reset: Arc<Notify>, refused_every: Duration) {
    let mut retry = Retry::new(Duration::from_millis(500), Duration::from_secs(30), refused_every);
    let mut was_failing = false;
    let mut since: Option<i64> = None;
    let mut last: Option<DesiredState> = None;
    loop {
        let answer = tokio::select! {
            a = client.desired(since, POLL_WAIT_SECS) => a,
            _ = reset.notified() => {
                tracing::debug!("firewall changed: restarting the long-poll");
                continue;
            }
        };
        match answer {
            Ok(d) => {
                if retry.after(Outcome::Ok, Instant::now()).1 == Some(Announce::AcceptedAgain) {
                    tracing::warn!(server = %client.base(), "the server accepts this agent again");
                }
                since = Some(d.revision);
                if last.as_ref() != Some(&d) || was_failing {
                    last = Some(d.clone());
                    if tx.send(d).is_err() {
                        return;
                    }
                }
                was_failing = false;
            }
            Err(e) => {
                was_failing = true;
                since = None;
                let outcome = Outcome::of_status(e.status);
                let (delay, announce) = retry.after(outcome, Instant::now());
                match (outcome, announce) {
                    (Outcome::Refused, Some(_)) => tracing::error!(
                        error = %e,
                        retry_every = ?delay,
                        "{}",
                        refused_words(delay, last.as_ref())
                    ),
                    (Outcome::Refused, None) => tracing::debug!(error = %e, "still refused by the server"),
                    _ => tracing::warn!(error = %e, retry_in = ?delay, "desired-state poll failed"),
                }
                wait_to_retry(&client, &mut retry, delay, &reset).await;
            }
        }
    }
}

/// What a refused agent says, once: what happened and what it means for the host, given
/// `last`, the last desired state the server answered (trial32 LOW-3: "stays in force" was
/// logged while the release the server had just sent was being applied). Pure.
pub(crate) fn refused_words(every: Duration, last: Option<&DesiredState>) -> String {
    let host = match last {
        Some(d) if !d.quarantined => format!(
            "the last desired state the server sent (revision {}) is a release: the agent applies it (its claim \
             goes) and reports it while the server takes its reports; claims of other sources stay as they are",
            d.revision
        ),
        _ => "a quarantine in force on this host stays in force (fail closed) until it is released on the host \
              (`cordon release --source agent`) or, when the server no longer knows this host (its database \
              restored from a backup older than this enrollment: `cordon hosts list --unknown` lists it), until \
              the host is enrolled again and released through the server (that release lifts this enrollment's \
              claim too)"
            .to_string(),
    };
    format!(
        "the server refuses this agent (401/403): its host was revoked or deleted, or the server's database does \
         not know it. The agent gets no more orders: {host}. Retrying every {} s without logging each refusal \
         (stop the agent, or uninstall it, if the host is retired)",
        every.as_secs()
    )
}

/// Waits `delay`, or less: a firewall change (new server addresses allowed) retries at
/// once, and so does another call's success on the connection (the server is back:
/// [`Retry::peer_ok_since`]).
async fn wait_to_retry(client: &ServerClient, retry: &mut Retry, delay: Duration, reset: &Notify) {
    let until = tokio::time::Instant::now() + delay;
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return;
        }
        let step = (until - now).min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            _ = reset.notified() => return,
        }
        if retry.peer_ok_since(client.last_ok()) {
            tracing::info!("the server answers again: polling at once");
            return;
        }
    }
}

struct Reconciler {
    enforcer: Arc<dyn Enforcer>,
    resolver: Arc<dyn NameResolver>,
    transport: OwnTransport,
    client: ServerClient,
    dir: PathBuf,
    p: Persisted,
    /// The plan in force (quarantined and applied), if any.
    plan: Option<Plan>,
    report_tx: mpsc::UnboundedSender<StatusReport>,
    /// The report last sent (what is in force): repeated with `waiting` while an apply
    /// waits for a lock ([`Reconciler::report_wait`]).
    last_report: Option<StatusReport>,
    retry_at: Option<Instant>,
    hostname: String,
    /// The host id of this enrollment: the owner of the agent's own claim (an `agent`
    /// claim of another id is a previous enrollment's, [`Reconciler::foreign_agent_claim`]).
    host_id: String,
    reset: Arc<Notify>,
    enforcing: bool,
    heartbeat_ms: u64,
    retry_every: Duration,
    resolve_every: Duration,
    verify_timeout: Duration,
    next_resolve: Instant,
    last_resolve: Option<Instant>,
    /// The other sources' claims last reported ("quarantined by local claims").
    local_claims_reported: Option<Vec<String>>,
    /// An `agent` claim this agent did not make (another enrollment's: a re-enrolment
    /// into the same or a new state directory; trial17 HIGH-3), with its start time. It is
    /// never released by this agent — it stays in force until released on the host (or
    /// this agent's own quarantine takes it over) — and is reported as such.
    foreign_agent_claim: Option<String>,
    /// Whether to look for such a claim at start (no desired state of this enrollment was
    /// persisted).
    unproven_claim: bool,
    /// The server's desired state went back (a lower revision, or other content under the
    /// revision applied: its database restored from an older backup) and the agent applied
    /// it: the sentence saying so, sent as the `detail` of every report that confirms a
    /// state until a newer revision arrives, so the server records and audits why the host
    /// changed (issue 14, trial15 MED-3) — never a silent release.
    desired_went_back: Option<String>,
    /// Rules without a record last reported as kept (reported once per finding).
    lost_reported: Option<String>,
    /// The tampering last reported that no re-apply can repair (our rules intact:
    /// [`crate::enforcer::Check::rules_intact`]), so it is reported once per change and
    /// not re-applied every check; `None` when nothing such stands.
    outside_reported: Option<String>,
    /// The claims standing on the host as the last check found them (sent with every
    /// report).
    claims: Vec<cordon_proto::ClaimInfo>,
    /// Unrecognised Cordon-looking tables in force as the last check found them
    /// ([`crate::enforcer::Check::unrecognised`]): sent as `degraded` lines with every
    /// quarantined report (trial15 HIGH-2: a decoy table never vetoes, but is reported).
    unrecognised: Vec<String>,
    /// What the union of claims in force fails to isolate, as the last check found it
    /// ([`crate::enforcer::Check::not_isolated`]): while not empty, a quarantine the
    /// server ordered is reported `failed` (`not_isolated`, naming the claims that widen
    /// it), never in force (trial15 HIGH-4).
    not_isolated: Vec<String>,
    /// When the agent may next try to put its management paths back into the quarantine
    /// in force (at most once per `retry_every`; see [`Reconciler::check_tamper`]).
    paths_repair_at: Option<Instant>,
    /// The quarantine in force could not be recorded on disk (trial17 HIGH-1: a full
    /// state directory): the digest the kernel showed after the apply, and why. Reported
    /// as a `degraded` line; the agent applies again every `retry_every` until it is
    /// recorded, and does not take the missing record for tampering.
    unrecorded: Option<(Option<String>, String)>,
    /// When the agent next tries to record an unrecorded quarantine.
    record_retry_at: Option<Instant>,
    /// Locks the quarantine in force was applied without, because a process that is not
    /// Cordon held them past `lock_timeout_secs` ([`crate::Applied::lock_notes`], issue 14
    /// HIGH-E): each sentence names the holder, and is a `degraded` line until an apply
    /// takes every lock again.
    lock_notes: Vec<String>,
    /// The server and proxy names that did not resolve at the last resolution, as
    /// `degraded` lines (see [`plan::Resolved::failures`]).
    transport_failures: Vec<String>,
    /// Addresses of server names as last resolved → their server URL
    /// ([`plan::Resolved::named`]).
    named: std::collections::BTreeMap<SocketAddr, String>,
    /// Addresses where the agent reached its server over mutual TLS (the peer of a
    /// successful request, or a passed [`ServerClient::probe`]).
    proven: BTreeSet<SocketAddr>,
    /// Addresses a server name resolved to where the server did not answer over mutual
    /// TLS → the `degraded` line that says so. Never allowed while listed.
    refused: std::collections::BTreeMap<SocketAddr, String>,
    /// Addresses a server name resolved to where nothing answered a probe at all (refused,
    /// timed out, unreachable: [`crate::client::ProbeError::no_answer`]) → when that first
    /// happened and when to probe again. Such an address is neither proven nor refused: it
    /// stays in the rules in force (issue 14 item 3: a server outage made the agent refuse
    /// its server's genuine addresses, re-tried only after `verify_timeout_secs`). It is
    /// refused like an impostor once the server answers elsewhere and this address still
    /// gives no answer `verify_timeout_secs` after the first try.
    unanswered: std::collections::BTreeMap<SocketAddr, (Instant, Instant)>,
    /// Whether addresses are proven before they are kept (no proxy configured).
    probe: bool,
    /// `enforce = false`: the firewall state and claims last reported.
    seen_unenforced: Option<(QuarantineState, Vec<cordon_proto::ClaimInfo>)>,
    /// The periodic check's failure last logged (trial34 L9: the same warning every
    /// second, e.g. WFP unreachable under Wine or with BFE stopped).
    check_failure: RepeatedWarning,
    /// The management paths last recorded for other sources' claims.
    paths_recorded: Option<BTreeSet<SocketAddr>>,
    next_degraded_retry: Instant,
    /// The persisted desired state was corrupt or unusable at start and was set aside
    /// ([`persist::load_or_set_aside`]): the sentence, sent as a `degraded` line while the
    /// host is quarantined (the file stays for the operator).
    desired_set_aside: Option<String>,
    /// Applied at this instant, and not yet confirmed by a request over the agent's own
    /// connection; `bool`: the timeout was already reported.
    verifying: Option<(Instant, bool)>,
    /// The event-driven repair loop, while quarantined (see [`Reconciler::ensure_watcher`]).
    watcher: Option<Watcher>,
    /// Where the watcher thread sends what it did.
    watch_tx: mpsc::UnboundedSender<WatchEvent>,
}

/// The engine's event-driven watcher (`cordon isolate --watch`) on a thread of its own:
/// it repairs tampering as soon as the kernel reports it, and the reconciler reports each
/// repair to the server as `tampered`, as it does for what the periodic check finds.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    started: Instant,
}

impl Reconciler {
    /// Starts the watcher when the desired quarantine is in force and none runs (or the
    /// last one ended more than `retry_every` ago: it may have failed to start).
    /// Other sources' claims count too: their quarantine is repaired as the agent's own.
    fn ensure_watcher(&mut self) {
        let in_force = self.p.desired.quarantined && self.p.desired_applied();
        let others = self.claims.iter().any(|c| c.source != cordon_proto::ClaimSource::Agent);
        if !self.enforcing || !self.enforcer.can_watch() || !(in_force || others) {
            return;
        }
        if let Some(w) = &self.watcher {
            if !w.thread.is_finished() || w.started.elapsed() < self.retry_every {
                return;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (enforcer, flag, tx) = (self.enforcer.clone(), stop.clone(), self.watch_tx.clone());
        let spawned = std::thread::Builder::new().name("cordon-watch".into()).spawn(move || {
            let mut send = |ev: &WatchEvent| {
                let _ = tx.send(ev.clone());
            };
            match enforcer.watch(&flag, &mut send) {
                // Nothing recorded (just released, or records lost): nothing to watch,
                // which is no error (trial6 LOW: log noise after every release).
                Err(e) if e.kind == "invalid_input" => {
                    tracing::debug!(error = %e, "tamper watcher not started");
                }
                Err(e) => {
                    let _ = tx.send(WatchEvent::Failed { error: e.to_string() });
                }
                Ok(()) => {}
            }
        });
        match spawned {
            Ok(thread) => {
                self.watcher = Some(Watcher {
                    stop,
                    thread,
                    started: Instant::now(),
                })
            }
            Err(e) => tracing::error!(error = %e, "cannot start the tamper watcher thread"),
        }
    }

    /// Stops the watcher (before a release: it must not put the rules back).
    fn stop_watcher(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.stop.store(true, Ordering::Relaxed);
        }
    }

    /// What the watcher did: a repair is reported as tampering, then the state in force.
    async fn on_watch_event(&mut self, ev: WatchEvent) {
        match ev {
            WatchEvent::Started { events, .. } => {
                tracing::info!(kernel_notifications = events, "tamper watcher running")
            }
            WatchEvent::Repaired {
                cause,
                check_ms,
                repair_ms,
                ..
            } => {
                tracing::warn!(found = %cause, check_ms, repair_ms, "tampering detected by the watcher; repaired");
                let detail = format!("{cause}; repaired by the watcher in {repair_ms:.1} ms");
                self.report(AgentState::Tampered, None, None, Some(detail));
                self.report_current().await;
            }
            // A foreign chain on our hooks or a covered interface moved away (trial21
            // HIGH-3, HIGH-5): tampering no re-apply repairs; the status says what.
            WatchEvent::Undermined { why, .. } if !why.is_empty() => {
                tracing::warn!(found = %why, "tampering the watcher cannot repair");
                self.report(AgentState::Tampered, None, None, Some(why));
                self.report_current().await;
            }
            WatchEvent::Undermined { .. } => self.report_current().await,
            WatchEvent::Failed { error } => tracing::warn!(error = %error, "tamper watcher"),
            WatchEvent::Released => tracing::info!("tamper watcher ended: no quarantine recorded"),
            // Only a watcher holding the tables reloads; the agent's does not hold them.
            WatchEvent::Reloaded { claims } => tracing::info!(?claims, "claims re-applied"),
        }
    }

    /// Remembers whether the quarantine just applied is recorded on disk (see
    /// [`Reconciler::unrecorded`]) and which locks it went without ([`Reconciler::lock_notes`]).
    fn note_unrecorded(&mut self, a: &Applied) {
        if a.lock_notes != self.lock_notes {
            if a.lock_notes.is_empty() {
                tracing::info!("the quarantine was applied under every lock again");
            }
            self.lock_notes = a.lock_notes.clone();
        }
        match &a.unrecorded {
            Some(why) => {
                if self.unrecorded.is_none() {
                    tracing::error!(why = %why, "the quarantine is in force but not recorded on disk; keeping it (fail closed) and retrying the record");
                }
                self.unrecorded = Some((a.digest.clone(), why.clone()));
            }
            None => {
                if self.unrecorded.take().is_some() {
                    tracing::info!("the quarantine is recorded on disk again");
                }
            }
        }
    }

    /// Runs `f` on the enforcer on a blocking thread. A wait for a lock another process
    /// holds (the engine tells it, [`cordon_engine::with_lock_wait_hook`]) is reported at
    /// once while the desired revision is not applied yet ([`Reconciler::report_wait`]).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Enforcer) -> Result<T, EnforceError> + Send + 'static,
    ) -> Result<T, EnforceError> {
        let e = self.enforcer.clone();
        let (wait_tx, mut wait_rx) = mpsc::unbounded_channel::<LockWait>();
        let mut task = tokio::task::spawn_blocking(move || {
            let hook = move |w: &LockWait| {
                let _ = wait_tx.send(w.clone());
            };
            cordon_engine::with_lock_wait_hook(hook, || f(e.as_ref()))
        });
        let joined = loop {
            tokio::select! {
                j = &mut task => break j,
                Some(w) = wait_rx.recv() => self.report_wait(&w),
            }
        };
        match joined {
            Ok(r) => r,
            Err(j) => Err(EnforceError {
                kind: "error".into(),
                detail: format!("enforcer task failed: {j}"),
            }),
        }
    }

    /// Tells the server what an apply of the desired revision waits for (issue 14 MED-1:
    /// behind another Cordon run's lock the wait lasts up to the lock timeout, and the
    /// host was shown `quarantine_pending` without a reason): the last report (what is in
    /// force meanwhile) again, with [`StatusReport::waiting`]. Nothing while the desired
    /// revision is applied (a periodic check or a repair waiting) or before a first report.
    fn report_wait(&self, w: &LockWait) {
        if self.p.desired_applied() {
            return;
        }
        let Some(mut r) = self.last_report.clone() else { return };
        tracing::info!(holder = %w.holder_is, lock = %w.path.display(), revision = self.p.desired.revision, "the apply waits for a lock; telling the server");
        r.waiting = Some(AgentWait {
            kind: WaitKind::Lock,
            revision: self.p.desired.revision,
            holder_pid: w.holder,
            holder: w.holder_is.clone(),
            holder_is_cordon: w.cordon,
            up_to_secs: w.up_to.as_secs_f64().ceil() as u64,
        });
        let _ = self.report_tx.send(r);
    }

    /// Resolves the agent's own destinations (blocking lookups on a blocking thread).
    async fn resolve_transport(&mut self) -> plan::Resolved {
        self.last_resolve = Some(Instant::now());
        self.next_resolve = Instant::now() + self.resolve_every;
        let (t, r) = (self.transport.clone(), self.resolver.clone());
        match tokio::task::spawn_blocking(move || t.resolve(r.as_ref())).await {
            Ok(mut res) => {
                self.named = res.named.clone();
                // A refused address the name no longer resolves to: its line goes.
                self.refused.retain(|a, _| res.addrs.contains(a));
                res.addrs.retain(|a| !self.refused.contains_key(a));
                if res.failures != self.transport_failures {
                    for f in &res.failures {
                        tracing::warn!(failure = %f, "server or proxy name does not resolve");
                    }
                    self.transport_failures = res.failures.clone();
                }
                res
            }
            Err(e) => {
                tracing::error!(error = %e, "resolver task failed");
                plan::Resolved::default()
            }
        }
    }

    /// Records the agent's management paths (`res` as just resolved, the addresses in
    /// force and the one that last answered) so every claim on the host keeps them open.
    /// A name that did not resolve keeps the addresses recorded before.
    async fn record_paths(&mut self, res: &plan::Resolved) {
        let mut addrs: BTreeSet<SocketAddr> = res.addrs.clone();
        addrs.extend(self.p.transport.iter().copied());
        addrs.extend(self.client.last_peer());
        if !res.failures.is_empty() {
            if let Some(old) = &self.paths_recorded {
                addrs.extend(old.iter().copied());
            }
        }
        // Never an address a server name resolved to where the server did not answer.
        addrs.retain(|a| !self.refused.contains_key(a));
        if addrs.is_empty() || self.paths_recorded.as_ref() == Some(&addrs) {
            return;
        }
        let needs_dns = self
            .transport
            .servers
            .iter()
            .chain(&self.transport.proxy)
            .any(|s| matches!(s.target, Target::Name(_)));
        let paths = ManagementPaths {
            servers: addrs
                .iter()
                .map(|a| AllowSpec {
                    target: Target::Ip(a.ip()),
                    transport: Transport::Tcp(a.port()),
                    tls: false,
                })
                .collect(),
            dns: needs_dns,
            resolvers: None,
        };
        match self.blocking(move |e| e.record_paths(&paths)).await {
            Ok(reapplied) => {
                tracing::info!(paths = ?addrs, reapplied, "management paths recorded for every claim");
                self.paths_recorded = Some(addrs);
                if reapplied {
                    self.reset.notify_one();
                }
            }
            Err(err) => tracing::error!(error = %err, "cannot record the agent's management paths"),
        }
    }

    /// Plans `d` with the agent's transport `transport` (lookups on a blocking thread).
    async fn make_plan(&self, d: &DesiredState, transport: BTreeSet<SocketAddr>) -> Plan {
        let (d2, r) = (d.clone(), self.resolver.clone());
        match tokio::task::spawn_blocking(move || plan::plan(&d2, &transport, r.as_ref())).await {
            Ok(mut p) => {
                // The agent's own names that did not resolve: missing from the allow set.
                p.degraded.extend(self.transport_failures.iter().cloned());
                // Addresses a server name resolved to that are not the server.
                p.degraded.extend(self.refused.values().cloned());
                p
            }
            Err(e) => Plan {
                revision: d.revision,
                transport: BTreeSet::new(),
                allow: vec![],
                message: d.message.clone(),
                degraded: vec![format!("planning failed: {e}")],
            },
        }
    }

    /// Writes the persisted state (fsync) on a blocking thread.
    async fn save(&self) {
        let (dir, p) = (self.dir.clone(), self.p.clone());
        let result = tokio::task::spawn_blocking(move || persist::save(&dir, &p)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot persist desired state"),
            Err(e) => tracing::error!(error = %e, "persist task failed"),
        }
    }

    fn report(
        &mut self,
        state: AgentState,
        applied: Option<&Applied>,
        err: Option<&EnforceError>,
        detail: Option<String>,
    ) {
        // The server's quarantine is in force, but the union of every claim isolates
        // nothing in a whole address family (another source's `--allow 0.0.0.0/0
        // --allow-no-isolation`, a forged claims file): the rules stay (the agent never
        // drops another source's claim), and the server is told the host is NOT
        // isolated, naming the claims — never `quarantined` (trial15 HIGH-4).
        let not_isolated;
        let (state, err, detail) =
            if state == AgentState::Isolated && self.p.desired.quarantined && !self.not_isolated.is_empty() {
                not_isolated = EnforceError {
                    kind: "not_isolated".into(),
                    detail: format!(
                        "the quarantine is applied but does not isolate the host: {}",
                        self.not_isolated.join("; ")
                    ),
                };
                (AgentState::Failed, Some(&not_isolated), None)
            } else {
                (state, err, detail)
            };
        let mut degraded = match (state, &self.plan) {
            (AgentState::Isolated, Some(p)) => p.degraded.clone(),
            _ => vec![],
        };
        if state == AgentState::Isolated {
            degraded.extend(self.unrecognised.iter().cloned());
            degraded.extend(self.desired_set_aside.iter().cloned());
            degraded.extend(self.lock_notes.iter().cloned());
            if let Some((_, why)) = &self.unrecorded {
                degraded.push(format!(
                    "not recorded on disk ({why}): the quarantine is in force in the kernel but would not survive a reboot, and other cordon processes do not see it; the agent records it as soon as the state directory is writable"
                ));
            }
        }
        // A desired state that went back is named with every state it confirms.
        let detail = match (&self.desired_went_back, state) {
            (Some(note), AgentState::Isolated | AgentState::Released) => Some(match detail {
                Some(d) => format!("{note}; {d}"),
                None => note.clone(),
            }),
            _ => detail,
        };
        let r = StatusReport {
            version: PROTO_VERSION,
            applied_revision: self.p.desired.revision,
            state,
            digest: applied.and_then(|a| a.digest.clone()),
            backend: applied.and_then(|a| a.backend.clone()),
            error: err.map(|e| e.kind.clone()),
            detail: detail.or_else(|| err.map(|e| e.detail.clone())),
            hostname: Some(self.hostname.clone()),
            os: Some(std::env::consts::OS.to_string()),
            addresses: crate::addrs::local_addresses(),
            agent_version: Some(AGENT_VERSION.to_string()),
            enforcing: self.enforcing,
            degraded,
            heartbeat_ms: Some(self.heartbeat_ms),
            claims: self.claims.clone(),
            waiting: None,
        };
        self.last_report = Some(r.clone());
        let _ = self.report_tx.send(r);
    }

    /// At start: re-apply a recorded quarantine without the server (boot), then converge,
    /// and report where the host is in any case (a restarted agent with nothing to change
    /// still tells the server it is alive).
    async fn startup(&mut self) {
        let res = self.resolve_transport().await;
        self.record_paths(&res).await;
        if self.enforcing {
            if let Ok(c) = self.blocking(|e| e.check()).await {
                // Another enrollment's claim names its host id; one that names none
                // (written before owners were recorded) is taken as another enrollment's
                // when this enrollment has no desired state of its own on disk.
                let unproven = self.unproven_claim;
                let host_id = self.host_id.clone();
                if let Some(own) = c.claims.iter().find(|x| {
                    x.is_previous_enrollment(&host_id)
                        || (unproven && x.source == cordon_proto::ClaimSource::Agent && x.owner.is_none())
                }) {
                    let since = own
                        .since
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "an unknown time".into());
                    let since = match &own.owner {
                        Some(id) => format!("{since}, host id {id}"),
                        None => since,
                    };
                    tracing::warn!(
                        since = %since,
                        "an `agent` claim stands that this enrollment did not make (a previous enrollment's quarantine): \
                         kept in force; this agent lifts it only when a release ordered through the server names it \
                         (`cordon release` this host), or release it on the host (stop the agent, then \
                         `cordon release --source agent`)"
                    );
                    self.foreign_agent_claim = Some(since);
                }
            }
        }
        let mut reported = false;
        if self.p.desired.quarantined && self.p.applied_revision.is_some() {
            // The rules in force are the persisted ones; plan them again for the report.
            let transport: BTreeSet<SocketAddr> = self.p.transport.iter().copied().collect();
            let d = self.p.desired.clone();
            self.plan = Some(self.make_plan(&d, transport).await);
            // Same boot and rules gone or changed: someone tampered while no agent ran
            // (reported as such); a new boot id: an ordinary re-apply.
            let tampered = match self.blocking(|e| e.startup_check()).await {
                Ok(StartupFinding::Tampered { reason }) => Some(reason),
                _ => None,
            };
            match self.blocking(|e| e.check()).await {
                Ok(c) if c.state == QuarantineState::Isolated && tampered.is_none() => {
                    tracing::info!("quarantine in force since before start");
                    let a = Applied {
                        digest: c.digest,
                        backend: c.backend,
                        unrecorded: None,
                        lock_notes: vec![],
                    };
                    self.report(AgentState::Isolated, Some(&a), None, None);
                }
                _ => self.repair(tampered).await,
            }
            reported = true;
        }
        let before = (self.p.applied_revision, self.p.applied_digest.clone());
        self.converge().await;
        if !reported && (self.p.applied_revision, self.p.applied_digest.clone()) == before {
            self.report_current().await;
        }
    }

    /// A deleted `agent-paths.json` is written again at once (trial6 LOW: it came back
    /// only after a failed report, and a Wazuh isolation in between cut the agent off).
    async fn ensure_paths_file(&mut self) {
        let Some(addrs) = self.paths_recorded.clone() else {
            return;
        };
        match self.enforcer.paths_file() {
            Some(f) if !f.exists() => {}
            Some(_) => {
                // The file is there: make sure the registry still points at it.
                self.enforcer.refresh_registration();
                return;
            }
            None => return,
        }
        tracing::warn!("the agent's management paths file was deleted; writing it again");
        self.paths_recorded = None;
        let res = plan::Resolved {
            addrs,
            failures: vec![],
            named: Default::default(),
        };
        self.record_paths(&res).await;
    }

    /// Reads the claims standing now (after an apply: the agent's own among them), so the
    /// report that follows lists them; the server confirms a quarantine only when the
    /// agent's own claim is in force.
    async fn refresh_claims(&mut self) {
        if let Ok(c) = self.blocking(|e| e.check()).await {
            self.unrecognised = c.unrecognised.clone();
            self.not_isolated = c.not_isolated.clone();
            self.claims = c.claims;
        }
    }

    /// Reports the firewall as it is (no change made).
    async fn report_current(&mut self) {
        match self.blocking(|e| e.check()).await {
            Ok(c) => {
                self.unrecognised = c.unrecognised.clone();
                self.not_isolated = c.not_isolated.clone();
                self.claims = c.claims.clone();
                let a = Applied {
                    digest: c.digest.clone(),
                    backend: c.backend.clone(),
                    unrecorded: None,
                    lock_notes: vec![],
                };
                let unrecorded_in_force = self
                    .unrecorded
                    .as_ref()
                    .is_some_and(|(d, _)| d.is_some() && &c.digest == d);
                let state = match c.state {
                    _ if unrecorded_in_force => AgentState::Isolated,
                    // Not produced by the enforcer's check (it is `Isolated` with
                    // `not_isolated` set, which `report` turns into `failed`).
                    QuarantineState::Isolated | QuarantineState::NotIsolated => AgentState::Isolated,
                    QuarantineState::Released => AgentState::Released,
                    QuarantineState::Tampered => AgentState::Tampered,
                };
                let reason = if unrecorded_in_force { None } else { c.reason };
                self.report(state, Some(&a), None, reason);
            }
            Err(err) => self.report(AgentState::Failed, None, Some(&err), None),
        }
    }

    async fn on_desired(&mut self, d: DesiredState) {
        if d == self.p.desired {
            // Same state after a reconnect: tell the server where we are.
            self.report_current().await;
            return;
        }
        // The server's database was restored from a backup: its desired state is the
        // truth and is applied at once (a host kept quarantined against the server's
        // word could never be released through it), but never silently: every report
        // says what went back until a newer revision arrives (docs/server.md, "Sync").
        if d.revision <= self.p.desired.revision {
            let note = went_back_note(&self.p.desired, &d);
            tracing::warn!(revision = d.revision, previous = self.p.desired.revision, "{note}");
            self.desired_went_back = Some(note);
        } else {
            self.desired_went_back = None;
        }
        tracing::info!(revision = d.revision, quarantined = d.quarantined, "new desired state");
        self.p.desired = d;
        self.retry_at = None;
        self.save().await;
        self.converge().await;
    }

    async fn on_tick(&mut self, check: bool) {
        let now = Instant::now();
        if !self.p.desired_applied() {
            self.converge().await;
            return;
        }
        if check {
            self.ensure_paths_file().await;
            self.check_tamper().await;
        }
        self.ensure_watcher();
        self.check_verified(now).await;
        self.prove_transport().await;
        if self.plan.as_ref().is_some_and(|p| !p.degraded.is_empty()) && now >= self.next_degraded_retry {
            self.next_degraded_retry = now + self.retry_every;
            if !self.transport_failures.is_empty() {
                // Adds the addresses of a server name that now resolves (atomically).
                self.follow_server().await;
            }
            self.replan(false).await;
        }
        if now >= self.next_resolve {
            self.follow_server().await;
        }
    }

    async fn on_connection_failed(&mut self) {
        if self.last_resolve.is_some_and(|t| t.elapsed() < MIN_RESOLVE_GAP) {
            return;
        }
        // The server has been unreachable for a while: an address refused before may be
        // where it is now (a move); it is proven again before it is kept.
        if !self.refused.is_empty() && self.client.last_ok().is_none_or(|t| t.elapsed() >= self.verify_timeout) {
            tracing::info!(refused = ?self.refused.keys().collect::<Vec<_>>(), "the server is unreachable: trying refused addresses again");
            self.refused.clear();
        }
        self.follow_server().await;
    }

    /// Proves the addresses of the plan in force that only a server name's resolution
    /// vouches for: one mutual-TLS request to the server at each ([`ServerClient::probe`]).
    /// An address that fails is taken out of the rules at once (one atomic re-apply) and
    /// reported in `degraded` (trial17 MED-3).
    async fn prove_transport(&mut self) {
        if !self.probe {
            return;
        }
        if let Some(peer) = self.client.last_peer() {
            self.proven.insert(peer);
        }
        // The plan in force (while quarantined) and the management paths recorded for
        // every claim: both open what they list.
        let in_force = self
            .plan
            .clone()
            .filter(|_| self.p.desired.quarantined && self.p.desired_applied());
        let mut candidates: BTreeSet<SocketAddr> = in_force.as_ref().map(|p| p.transport.clone()).unwrap_or_default();
        candidates.extend(self.paths_recorded.iter().flatten().copied());
        let now = Instant::now();
        self.unanswered.retain(|a, _| candidates.contains(a));
        let todo: Vec<(SocketAddr, String)> = candidates
            .iter()
            .filter(|a| !self.proven.contains(a) && !self.refused.contains_key(a))
            .filter(|a| self.unanswered.get(a).is_none_or(|(_, next)| now >= *next))
            .filter_map(|a| self.named.get(a).map(|u| (*a, u.clone())))
            .collect();
        if todo.is_empty() {
            return;
        }
        let mut refused_any = false;
        for (addr, base) in todo {
            match self.client.probe(&base, addr).await {
                Ok(()) => {
                    tracing::info!(%addr, server = %base, "server address proven over mutual TLS: kept allowed");
                    self.proven.insert(addr);
                    self.unanswered.remove(&addr);
                }
                // Nothing answered there: the server may be down (an outage says nothing
                // about whose address this is). Kept as it is, probed again later —
                // unless the server answers elsewhere and this address has given no
                // answer for `verify_timeout` (a stale or bogus DNS answer).
                Err(e)
                    if e.no_answer
                        && !(self.client.last_ok().is_some_and(|t| t.elapsed() < self.verify_timeout)
                            && self
                                .unanswered
                                .get(&addr)
                                .is_some_and(|(first, _)| now.duration_since(*first) >= self.verify_timeout)) =>
                {
                    let first = self.unanswered.get(&addr).map_or(now, |(f, _)| *f);
                    if first == now {
                        tracing::warn!(%addr, server = %base, error = %e, "nothing answered at this server address (is the server down?): kept in the rules, not proven yet; trying again");
                    }
                    self.unanswered.insert(addr, (first, now + self.retry_every));
                }
                Err(e) => {
                    self.unanswered.remove(&addr);
                    tracing::warn!(%addr, server = %base, error = %e, "a DNS answer for the server is not the server: address not allowed");
                    self.refused.insert(
                        addr,
                        format!(
                            "server address {addr} (a DNS answer for {base}) not allowed: the Cordon server did not answer there over mutual TLS ({e})"
                        ),
                    );
                    refused_any = true;
                }
            }
        }
        if !refused_any {
            return;
        }
        if let Some(cur) = in_force {
            let transport: BTreeSet<SocketAddr> = cur
                .transport
                .iter()
                .filter(|a| !self.refused.contains_key(a))
                .copied()
                .collect();
            let d = self.p.desired.clone();
            let plan = self.make_plan(&d, transport).await;
            self.apply(plan, false).await;
        }
        if let Some(recorded) = self.paths_recorded.clone() {
            let res = plan::Resolved {
                addrs: recorded,
                failures: vec![],
                named: Default::default(),
            };
            self.record_paths(&res).await;
        }
    }

    /// Has a request over the agent's own connection succeeded since the last apply?
    async fn check_verified(&mut self, now: Instant) {
        let Some((applied_at, warned)) = self.verifying else {
            return;
        };
        if self.client.last_ok().is_some_and(|t| t >= applied_at) {
            tracing::info!(
                after = ?self.client.last_ok().map(|t| t.duration_since(applied_at)),
                "quarantine verified: the server answered over the agent's own connection"
            );
            self.verifying = None;
            return;
        }
        if !warned && now.duration_since(applied_at) >= self.verify_timeout {
            tracing::error!(
                timeout = ?self.verify_timeout,
                server = %self.client.base(),
                "quarantine in force but the server has not answered over the agent's own connection; \
                 keeping the quarantine (fail closed) and re-resolving the server"
            );
            self.verifying = Some((applied_at, true));
            self.follow_server().await;
        }
    }

    /// Applies the desired state unless already applied.
    async fn converge(&mut self) {
        let d = self.p.desired.clone();
        if self.p.desired_applied() {
            return;
        }
        if d.revision == 0 && !d.quarantined {
            // Never heard from the server: nothing to do yet.
            self.p.mark_applied();
            return;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        if d.quarantined {
            // A new quarantine: the server's current addresses and the one that answered.
            let mut transport = self.resolve_transport().await.addrs;
            transport.extend(self.client.last_peer());
            if transport.is_empty() {
                transport = self.p.transport.iter().copied().collect();
            }
            let plan = self.make_plan(&d, transport).await;
            self.apply(plan, true).await;
        } else if !self.lift_previous(&d).await {
            // Reported as failed; retried after `retry_every`.
        } else if self.foreign_agent_claim.is_some() && !self.holds_own_claim().await {
            // Another enrollment's quarantine, and none of this agent's own: nothing to
            // release (the other enrollment's claim is never released by this agent).
            self.applied(d.revision).await;
            if let Ok(c) = self.blocking(|e| e.check()).await {
                self.report_foreign_agent_claim(&c);
            }
        } else {
            self.stop_watcher();
            match self.blocking(|e| e.release()).await {
                Ok(note) => {
                    self.unrecorded = None;
                    tracing::info!(revision = d.revision, "released");
                    if let Some(n) = &note {
                        tracing::warn!("{n}");
                    }
                    self.plan = None;
                    self.verifying = None;
                    self.p.transport.clear();
                    self.applied(d.revision).await;
                    // The agent's claim is gone; others' claims may keep the host isolated.
                    // Report them for this revision even if they were reported before.
                    self.local_claims_reported = None;
                    match self.blocking(|e| e.check()).await {
                        // A previous enrollment's claim still stands (trial20 HIGH-C):
                        // this agent's release lifted only its own.
                        Ok(c)
                            if !c.previous_enrollment_claims(&self.host_id).is_empty()
                                && c.state == QuarantineState::Isolated =>
                        {
                            if self.foreign_agent_claim.is_none() {
                                self.foreign_agent_claim = Some(c.previous_enrollment_claims(&self.host_id).join("; "));
                            }
                            self.report_foreign_agent_claim(&c)
                        }
                        Ok(c) if !c.other_claims().is_empty() && c.state == QuarantineState::Isolated => {
                            self.report_local_claims(&c)
                        }
                        Ok(c) => {
                            self.unrecognised = c.unrecognised.clone();
                            self.not_isolated = c.not_isolated.clone();
                            self.claims = c.claims;
                            self.report(AgentState::Released, None, None, note)
                        }
                        Err(_) => self.report(AgentState::Released, None, None, note),
                    }
                }
                Err(err) => self.failed(err).await,
            }
        }
    }

    /// A release the server ordered naming previous enrollments of this machine
    /// ([`DesiredState::release_previous`], trial32 HIGH-2): their `agent` claims are
    /// lifted first — exactly the ones named, never this enrollment's own nor another
    /// source's. Those claims were the agent's own on this host under an identity whose
    /// key was replaced by the re-enrollment: no other agent can ever release them, and
    /// the analyst released the host while its report named them. Returns `false` after
    /// a failure (reported as `failed`, retried).
    async fn lift_previous(&mut self, d: &DesiredState) -> bool {
        let own = self.host_id.clone();
        let owners: Vec<String> = d
            .release_previous
            .iter()
            .filter(|o| !o.eq_ignore_ascii_case(&own))
            .cloned()
            .collect();
        if owners.is_empty() || !self.enforcing {
            return true;
        }
        match self.blocking(move |e| e.release_previous(&owners)).await {
            Ok(lifted) => {
                if !lifted.is_empty() {
                    tracing::warn!(
                        revision = d.revision,
                        host_ids = %lifted.join(", "),
                        "released the `agent` claims of previous enrollments of this machine, as the server's release names them"
                    );
                }
                if let Ok(c) = self.blocking(|e| e.check()).await {
                    if c.previous_enrollment_claims(&own).is_empty() {
                        self.foreign_agent_claim = None;
                        self.local_claims_reported = None;
                    }
                }
                true
            }
            Err(err) => {
                self.failed(err).await;
                false
            }
        }
    }

    /// Whether this agent's own claim (one naming its host id) stands, as a check finds
    /// it now.
    async fn holds_own_claim(&mut self) -> bool {
        let host_id = self.host_id.clone();
        match self.blocking(|e| e.check()).await {
            Ok(c) => c.claims.iter().any(|x| {
                x.source == cordon_proto::ClaimSource::Agent
                    && x.owner.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(&host_id))
            }),
            Err(_) => false,
        }
    }

    /// The host is quarantined by an `agent` claim of another enrollment
    /// ([`Reconciler::foreign_agent_claim`]): report it (once per change), never undo it.
    fn report_foreign_agent_claim(&mut self, c: &Check) {
        let since = self.foreign_agent_claim.clone().unwrap_or_default();
        let key = vec![format!("agent (previous enrollment, since {since})")];
        self.unrecognised = c.unrecognised.clone();
        self.claims = c.claims.clone();
        if self.local_claims_reported.as_ref() == Some(&key) {
            return;
        }
        self.local_claims_reported = Some(key);
        self.reset.notify_one();
        let detail = format!(
            "isolated by a previous enrollment's `agent` claim (since {since}), not by this host's quarantine: \
             this agent lifts it only when a release of this host through the Cordon server names it, or release it \
             on the host: stop the agent, then `cordon release --source agent`"
        );
        let applied = Applied {
            digest: c.digest.clone(),
            backend: c.backend.clone(),
            unrecorded: None,
            lock_notes: vec![],
        };
        self.report(AgentState::Isolated, Some(&applied), None, Some(detail));
    }

    /// The host is quarantined by claims the agent does not hold (Wazuh, Velociraptor, a
    /// local operator): report them (once per change), never undo them.
    fn report_local_claims(&mut self, c: &Check) {
        let others = c.other_claims();
        self.unrecognised = c.unrecognised.clone();
        self.not_isolated = c.not_isolated.clone();
        self.claims = c.claims.clone();
        if self.local_claims_reported.as_ref() == Some(&others) {
            return;
        }
        self.local_claims_reported = Some(others.clone());
        // Rules changed under the long-poll in flight: start a tracked one.
        self.reset.notify_one();
        let detail = format!(
            "quarantined by local claims ({}), not by the server; the agent leaves them in force",
            others.join(", ")
        );
        tracing::info!(claims = %others.join(","), "host quarantined by local claims");
        let applied = Applied {
            digest: c.digest.clone(),
            backend: c.backend.clone(),
            unrecorded: None,
            lock_notes: vec![],
        };
        self.report(AgentState::Isolated, Some(&applied), None, Some(detail));
    }

    /// Applies `plan` (atomically replacing what is in force) and reports it.
    async fn apply(&mut self, plan: Plan, notify_users: bool) {
        let p2 = plan.clone();
        match self.blocking(move |e| e.isolate(&p2, notify_users)).await {
            Ok(a) => {
                self.note_unrecorded(&a);
                if plan.degraded.is_empty() {
                    tracing::info!(revision = plan.revision, "quarantine applied");
                } else {
                    tracing::warn!(revision = plan.revision, degraded = ?plan.degraded, "quarantine applied without some exceptions");
                }
                self.reset.notify_one();
                self.p.transport = plan.transport.iter().copied().collect();
                self.plan = Some(plan.clone());
                self.verifying = Some((Instant::now(), false));
                self.next_degraded_retry = Instant::now() + self.retry_every;
                self.applied(plan.revision).await;
                self.refresh_claims().await;
                // A previous enrollment's claim that names its owner stays a claim of its
                // own (trial20 HIGH-C); one that names none was taken over by this apply.
                let host_id = self.host_id.clone();
                if !self.claims.iter().any(|c| c.is_previous_enrollment(&host_id)) {
                    self.foreign_agent_claim = None;
                }
                self.report(AgentState::Isolated, Some(&a), None, None);
                self.ensure_watcher();
            }
            Err(err) => self.failed(err).await,
        }
    }

    /// Re-plans the quarantine in force (exceptions resolved again) with the transport in
    /// force; re-applies only when the rules change, reports when what is missing changed.
    async fn replan(&mut self, force_report: bool) {
        let Some(cur) = self.plan.clone() else { return };
        let plan = self.make_plan(&self.p.desired.clone(), cur.transport.clone()).await;
        if !plan.same_rules(&cur) {
            self.apply(plan, false).await;
        } else if plan.degraded != cur.degraded || force_report {
            self.plan = Some(plan);
            self.report_current().await;
        }
    }

    /// Re-resolves the servers and the proxy; widens the rules in force with new
    /// addresses (atomically; each then proven, [`Reconciler::prove_transport`]), and drops
    /// addresses that no longer resolve and are not the one in use, once the quarantine is
    /// verified (trial17 MED-3 addendum: they stayed for good).
    async fn follow_server(&mut self) {
        let refused_before: Vec<String> = self.refused.values().cloned().collect();
        let res = self.resolve_transport().await;
        self.record_paths(&res).await;
        let fresh = res.addrs;
        let Some(cur) = self.plan.clone() else { return };
        if !self.p.desired.quarantined || !self.p.desired_applied() {
            return;
        }
        let peer = self.client.last_peer();
        let mut transport: BTreeSet<SocketAddr> = cur.transport.union(&fresh).copied().collect();
        transport.retain(|a| !self.refused.contains_key(a));
        if res.failures.is_empty() && self.verifying.is_none() {
            transport.retain(|a| fresh.contains(a) || Some(*a) == peer);
        }
        if transport == cur.transport {
            if self.refused.values().cloned().collect::<Vec<_>>() != refused_before {
                // What is reported changed (a refused address no longer resolves there).
                self.replan(true).await;
            }
            return;
        }
        let added: Vec<SocketAddr> = transport.difference(&cur.transport).copied().collect();
        let removed: Vec<SocketAddr> = cur.transport.difference(&transport).copied().collect();
        tracing::warn!(
            added = ?added,
            removed = ?removed,
            "the server's addresses changed: re-applying (a new address stays only once the server answers there over mutual TLS)"
        );
        let d = self.p.desired.clone();
        let plan = self.make_plan(&d, transport).await;
        self.apply(plan, false).await;
        self.prove_transport().await;
    }

    async fn applied(&mut self, rev: i64) {
        if rev == self.p.desired.revision {
            self.p.mark_applied();
        } else {
            self.p.applied_revision = Some(rev);
        }
        self.retry_at = None;
        self.save().await;
    }

    /// Reports a revision that could not be applied, with the claims standing now
    /// (trial20 LOW: a refused revision is retried without the periodic check, so its
    /// failure reports kept listing the claims of an earlier check — another source's
    /// claim as it was before it changed).
    async fn failed(&mut self, err: EnforceError) {
        tracing::error!(error = %err, revision = self.p.desired.revision, "cannot apply desired state");
        self.retry_at = Some(Instant::now() + self.retry_every);
        self.refresh_claims().await;
        self.report(AgentState::Failed, None, Some(&err), None);
    }

    /// Compares the firewall with the desired state and repairs any difference.
    async fn check_tamper(&mut self) {
        let c = match self.blocking(|e| e.check()).await {
            Ok(c) => {
                if self.check_failure.cleared() {
                    tracing::info!("status check works again");
                }
                c
            }
            Err(err) => {
                if self.check_failure.should_log(&err.to_string(), Instant::now()) {
                    tracing::warn!(error = %err, "status check failed (the same failure is logged again at most every {} s)", RepeatedWarning::EVERY.as_secs());
                } else {
                    tracing::debug!(error = %err, "status check failed");
                }
                return;
            }
        };
        let want = if self.p.desired.quarantined {
            QuarantineState::Isolated
        } else {
            QuarantineState::Released
        };
        if !self.enforcing {
            // Enforcing nothing, the agent repairs nothing; it reports what is in force
            // (other sources' claims) whenever that changes.
            let seen = (c.state, c.claims.clone());
            if self.seen_unenforced.as_ref() != Some(&seen) {
                self.seen_unenforced = Some(seen);
                self.unrecognised = c.unrecognised.clone();
                self.not_isolated = c.not_isolated.clone();
                self.claims = c.claims.clone();
                self.report_current().await;
            }
            return;
        }
        // The agent's quarantine is in force but unrecorded (a full disk): the kernel as
        // the agent applied it is no tampering; apply again now and then to record it.
        if let Some((digest, _)) = &self.unrecorded {
            if self.p.desired.quarantined && digest.is_some() && &c.digest == digest {
                if self.record_retry_at.is_none_or(|t| Instant::now() >= t) {
                    self.record_retry_at = Some(Instant::now() + self.retry_every);
                    if let Some(plan) = self.plan.clone() {
                        self.apply(plan, false).await;
                    }
                }
                return;
            }
        }
        // Cordon rules nobody's record accounts for (another state directory whose records
        // were deleted, a lost claims file): they are someone's quarantine, so they stay
        // (fail closed); reported once, never removed (trial6 HIGH 2).
        if c.records_lost && !self.p.desired.quarantined {
            if self.lost_reported != c.reason {
                tracing::warn!(found = ?c.reason, "Cordon rules without a record are in force: kept (fail closed)");
                self.lost_reported = c.reason.clone();
                self.report(AgentState::Tampered, None, None, c.reason.clone());
            }
            return;
        }
        // Another source's join (or an edit) re-applied the union without the agent's
        // management paths (trial15 HIGH-1: after /run/cordon was lost): the agent is cut
        // off from its server. That is tampering with the agent's access, whoever holds
        // the quarantine: report it and put the paths back (the union re-applied with
        // them), at most once per `retry_every` while it keeps failing.
        if !c.agent_paths_missing.is_empty()
            && c.state == QuarantineState::Isolated
            && self.paths_repair_at.is_none_or(|t| Instant::now() >= t)
        {
            self.paths_repair_at = Some(Instant::now() + self.retry_every);
            let found = format!(
                "the quarantine in force does not keep the agent's management paths open ({}): the union of claims was re-applied without them; repairing",
                c.agent_paths_missing.join(", ")
            );
            tracing::warn!(found = %found, "tampering detected; repairing");
            self.report(AgentState::Tampered, None, None, Some(found));
            match self.blocking(|e| e.restore_paths()).await {
                Ok(_) => {
                    tracing::info!("the agent's management paths are in force again");
                    self.reset.notify_one();
                    self.report_current().await;
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot put the agent's management paths back");
                    self.report(AgentState::Failed, None, Some(&err), None);
                }
            }
            return;
        }
        if self.foreign_agent_claim.is_some() && !self.p.desired.quarantined {
            let host_id = self.host_id.clone();
            let gone = c.previous_enrollment_claims(&host_id).is_empty()
                && !c
                    .claims
                    .iter()
                    .any(|x| x.source == cordon_proto::ClaimSource::Agent && x.owner.is_none());
            if gone {
                // Released on the host: from now on any `agent` claim is this agent's.
                tracing::info!("the previous enrollment's `agent` claim was released");
                self.foreign_agent_claim = None;
                self.local_claims_reported = None;
            } else if c.state == QuarantineState::Isolated {
                self.report_foreign_agent_claim(&c);
                return;
            } else {
                let found = c
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("firewall is {}", c.state.as_str()));
                tracing::warn!(found = %found, "tampering with a previous enrollment's quarantine; restoring it");
                self.restore_others(found).await;
                return;
            }
        }
        if self.lost_reported.take().is_some() {
            // The rules without a record are gone or accounted for again (released by
            // their owner, records found): the server must not keep the old report
            // (trial9 M-2: "tampered … rules kept" stayed through every heartbeat).
            self.report_current().await;
        }
        // Another source claimed or released the host while the agent's state held:
        // tell the server who holds the quarantine now.
        // The record problems and unrecognised tables too: a `degraded: … set aside …`
        // line stayed after the file was deleted (issue 14 LOW).
        let claims_moved =
            c.claims != self.claims || c.not_isolated != self.not_isolated || c.unrecognised != self.unrecognised;
        if claims_moved && c.state == want {
            self.unrecognised = c.unrecognised.clone();
            self.not_isolated = c.not_isolated.clone();
            self.claims = c.claims.clone();
            self.reset.notify_one();
            self.report_current().await;
        }
        if c.state == want && self.outside_reported.take().is_some() {
            // What undermined the quarantine from outside its rules is over (deleted, or
            // its sighting acknowledged): the server hears the state in force again.
            tracing::info!("nothing undermines the quarantine any more");
            self.report_current().await;
        }
        if c.state == want {
            // Local claims that were reported have since been released.
            if want == QuarantineState::Released && self.local_claims_reported.take().is_some() {
                self.report(AgentState::Released, None, None, None);
            }
            return;
        }
        if want == QuarantineState::Released && c.state == QuarantineState::Isolated && !c.other_claims().is_empty() {
            self.report_local_claims(&c);
            return;
        }
        let found = c
            .reason
            .clone()
            .unwrap_or_else(|| format!("firewall is {}", c.state.as_str()));
        if self.p.desired.quarantined && c.state == QuarantineState::Tampered && c.rules_intact {
            // Our rules are as applied: what makes the state tampered is outside them (a
            // path around the hooks, a sighting kept until acknowledged, a foreign chain,
            // an interface in another namespace). A re-apply changes none of it: report
            // it once per change instead of re-applying and reporting every check.
            if self.outside_reported.as_ref() != Some(&found) {
                tracing::warn!(found = %found, "tampering a re-apply cannot repair (Cordon's rules are intact)");
                self.outside_reported = Some(found.clone());
                self.report(AgentState::Tampered, None, None, Some(found));
            }
            return;
        }
        tracing::warn!(found = %found, "tampering detected; repairing");
        if self.p.desired.quarantined {
            self.repair(Some(found)).await;
        } else if !c.other_claims().is_empty() {
            self.restore_others(found).await;
        } else {
            let detail = format!("{found}; removed");
            self.stop_watcher();
            match self.blocking(|e| e.release()).await {
                Ok(note) => {
                    self.report(AgentState::Tampered, None, None, Some(detail));
                    self.report(AgentState::Released, None, None, note);
                }
                Err(err) => self.report(AgentState::Failed, None, Some(&err), None),
            }
        }
    }

    /// Another source's quarantine (the agent holds no claim) was tampered with: put the
    /// recorded merged quarantine of every standing claim back, as `cordon isolate
    /// --reapply` does, and report the tampering once (then the claims, as ever).
    async fn restore_others(&mut self, found: String) {
        self.report(AgentState::Tampered, None, None, Some(found));
        match self.blocking(|e| e.reapply()).await {
            Ok(_) => {
                tracing::info!("other sources' quarantine re-applied");
                self.reset.notify_one();
                match self.blocking(|e| e.check()).await {
                    Ok(c) => {
                        self.local_claims_reported = None;
                        self.report_local_claims(&c);
                    }
                    Err(err) => self.report(AgentState::Failed, None, Some(&err), None),
                }
                self.ensure_watcher();
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot re-apply other sources' quarantine");
                self.report(AgentState::Failed, None, Some(&err), None);
            }
        }
    }

    /// Puts the recorded quarantine back: re-apply (no names, no verification), or a
    /// fresh plan if nothing was recorded.
    async fn repair(&mut self, found: Option<String>) {
        if let Some(found) = &found {
            self.report(AgentState::Tampered, None, None, Some(found.clone()));
        }
        let result = match self.blocking(|e| e.reapply()).await {
            Ok(a) => Ok(a),
            Err(_) => {
                let mut transport: BTreeSet<SocketAddr> = self.p.transport.iter().copied().collect();
                if transport.is_empty() {
                    transport = self.resolve_transport().await.addrs;
                }
                let d = self.p.desired.clone();
                let plan = self.make_plan(&d, transport).await;
                self.plan = Some(plan.clone());
                self.blocking(move |e| e.isolate(&plan, false)).await
            }
        };
        match result {
            Ok(a) => {
                self.note_unrecorded(&a);
                tracing::info!("quarantine re-applied");
                self.reset.notify_one();
                let rev = self.p.desired.revision;
                self.applied(rev).await;
                self.refresh_claims().await;
                self.report(AgentState::Isolated, Some(&a), None, None);
                self.ensure_watcher();
            }
            Err(err) => self.failed(err).await,
        }
    }
}

/// `enforce = false` while the agent's own claim is still recorded in its state
/// directory (quarantined earlier with `enforce = true`): a non-enforcing agent could
/// neither keep nor release those rules, and would tell the server that no rules are in
/// force while the host stays isolated. Refuse to start, naming the cause and the fix.
///
/// # Errors
/// [`AgentError::Config`] when the agent's claim stands or the claims cannot be read.
fn refuse_monitoring_own_claim(engine: &cordon_engine::Engine, cfg: &AgentConfig) -> Result<(), AgentError> {
    // The claims are read from the table's home (another state directory when another
    // process recorded the table first), so a non-enforcing agent given a fresh
    // `state_dir` still finds its own claim (trial6 MED 1).
    let home = engine.home_dir();
    let dir = home.display();
    let claims = engine.claims().map_err(|e| {
        AgentError::Config(format!(
            "enforce = false: cannot read the claims in {dir}: {}",
            cordon_engine::error_chain(&e)
        ))
    })?;
    let Some(own) = claims.iter().find(|c| c.source == ClaimSource::Agent) else {
        return Ok(());
    };
    let table = if cfg.table == cordon_policy::TableName::default() {
        String::new()
    } else {
        format!(" --table {}", cfg.table)
    };
    Err(AgentError::Config(format!(
        "enforce = false, but this agent's own quarantine (claim `agent` since {}) is still in force \
         (recorded in {dir}): a non-enforcing agent can neither keep nor release it, and the server \
         would be told no rules are in force. Release it first with \
         `cordon release --source agent --state-dir {dir}{table}`, or run the agent with \
         enforce = true (the server's release then removes it)",
        own.claimed_at
    )))
}

/// This host's name (for reports).
pub fn hostname() -> String {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let s = s.trim();
        if !s.is_empty() {
            return s.to_string();
        }
    }
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// One warning that may repeat every check (each second): logged when it is new or
/// changed, and again at most every [`RepeatedWarning::EVERY`] while it lasts.
#[derive(Debug, Default)]
struct RepeatedWarning {
    last: Option<(String, Instant)>,
}

impl RepeatedWarning {
    const EVERY: Duration = Duration::from_secs(300);

    /// Whether `text`, failing now, is to be logged at warning level.
    fn should_log(&mut self, text: &str, now: Instant) -> bool {
        match &self.last {
            Some((t, at)) if t == text && now.saturating_duration_since(*at) < Self::EVERY => false,
            _ => {
                self.last = Some((text.to_string(), now));
                true
            }
        }
    }

    /// The check works again: whether a failure was logged before (then say so once).
    fn cleared(&mut self) -> bool {
        self.last.take().is_some()
    }
}

#[cfg(test)]
mod repeated_warning_tests {
    use super::*;

    /// trial34 L9: the same check failure was logged every second.
    #[test]
    fn the_same_failure_is_logged_once_per_period_and_a_change_at_once() {
        let mut w = RepeatedWarning::default();
        let t0 = Instant::now();
        assert!(w.should_log("cannot open WFP", t0));
        for s in 1..300 {
            assert!(!w.should_log("cannot open WFP", t0 + Duration::from_secs(s)), "{s}");
        }
        assert!(w.should_log("cannot open WFP", t0 + Duration::from_secs(300)));
        assert!(w.should_log("another failure", t0 + Duration::from_secs(301)));
        assert!(w.cleared());
        assert!(!w.cleared());
        assert!(w.should_log("another failure", t0 + Duration::from_secs(302)));
    }
}

#[cfg(test)]
mod went_back_tests {
    use super::*;

    fn desired(revision: i64, quarantined: bool) -> DesiredState {
        DesiredState {
            revision,
            quarantined,
            ..Default::default()
        }
    }

    /// Issue 14 (trial15 MED-3): the sentence every report carries after the server's
    /// desired state went back names both revisions and what each asked for.
    #[test]
    fn a_desired_state_that_went_back_is_named() {
        let n = went_back_note(&desired(7, true), &desired(3, false));
        assert!(
            n.starts_with("the server's desired revision went back from 7 (quarantine) to 3 (no quarantine): "),
            "{n}"
        );
        assert!(n.contains("the agent applied the server's revision 3"), "{n}");
        let n = went_back_note(&desired(4, false), &desired(4, true));
        assert!(
            n.starts_with("the server's desired state changed under revision 4 (was no quarantine, now quarantine)"),
            "{n}"
        );
    }

    /// Trial32 HIGH-2 and LOW-3: the refused agent's one log line. It said a quarantine
    /// "stays in force" while the release the server had just sent was being applied, and
    /// that enrolling the host again helps (it did not: the server could not release the
    /// previous enrollment's claim). Now it follows the last desired state, and names the
    /// way out that works.
    #[test]
    fn the_refusal_says_what_stays_in_force_and_how_it_goes() {
        let every = Duration::from_secs(300);
        let w = refused_words(every, None);
        assert!(w.contains("stays in force (fail closed)"), "{w}");
        assert!(w.contains("`cordon release --source agent`"), "{w}");
        assert!(
            w.contains("does not know this host") || w.contains("no longer knows this host"),
            "{w}"
        );
        assert!(w.contains("cordon hosts list --unknown"), "{w}");
        assert!(w.contains("enrolled again and released through the server"), "{w}");
        assert!(w.contains("every 300 s"), "{w}");
        assert_eq!(refused_words(every, Some(&desired(5, true))), w);
        let w = refused_words(every, Some(&desired(6, false)));
        assert!(!w.contains("stays in force"), "a release is being applied: {w}");
        assert!(w.contains("revision 6) is a release"), "{w}");
    }
}

//! The agent's main loop: long-poll for desired state, converge the firewall to it,
//! check for tampering every second and repair, report every change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_engine::QuarantineState;
use cordon_proto::{AgentState, DesiredState, StatusReport, PROTO_VERSION};
use rustls::ClientConfig;
use tokio::sync::{mpsc, watch, Notify};

use crate::backoff::Backoff;
use crate::client::{ServerClient, POLL_WAIT_SECS};
use crate::enforcer::{Applied, EnforceError, Enforcer};
use crate::persist::{self, Persisted};
use crate::{AgentConfig, AgentError, AGENT_VERSION};

/// After a failed apply, wait this long before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

pub struct Agent {
    cfg: AgentConfig,
    enforcer: Arc<dyn Enforcer>,
    client: ServerClient,
    hostname: String,
}

impl Agent {
    pub fn new(cfg: AgentConfig, enforcer: Arc<dyn Enforcer>, tls: ClientConfig) -> Result<Self, AgentError> {
        cfg.validate()?;
        let client = ServerClient::new(&cfg.server, tls)?;
        Ok(Agent {
            cfg,
            enforcer,
            client,
            hostname: hostname(),
        })
    }

    /// Builds the agent described by `cfg`: the engine on this host's firewall (or an
    /// in-memory stand-in when `enforce = false`) and mutual TLS from its files.
    pub fn from_config(cfg: AgentConfig) -> Result<Self, AgentError> {
        let enforcer: Arc<dyn Enforcer> = if cfg.enforce {
            Arc::new(
                crate::EngineEnforcer::new(&cfg.server, &cfg.table, cfg.state_dir.clone(), &cfg.backend)
                    .map_err(AgentError::Enforcer)?,
            )
        } else {
            Arc::new(crate::MemoryEnforcer::new())
        };
        let tls = cordon_client::tls::mutual_from_files(&cfg.ca, &cfg.cert, &cfg.key)?;
        Self::new(cfg, enforcer, tls)
    }

    pub fn with_hostname(mut self, name: &str) -> Self {
        self.hostname = name.to_string();
        self
    }

    /// Runs until the task is dropped. Never releases the host because the server is
    /// unreachable: only a desired state from the server does that.
    pub async fn run(self) -> Result<(), AgentError> {
        let stored = persist::load(&self.cfg.state_dir)?;
        let since = stored.as_ref().map(|p| p.desired.revision);
        let persisted = stored.unwrap_or_default();
        let (desired_tx, mut desired_rx) = watch::channel(persisted.desired.clone());
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let heartbeat = Duration::from_secs_f64(self.cfg.heartbeat_secs);
        let reporter = tokio::spawn(crate::report::run(self.client.clone(), report_rx, heartbeat));
        let reset = Arc::new(Notify::new());
        let poller = tokio::spawn(poll(self.client.clone(), since, desired_tx, reset.clone()));
        let _guard = AbortOnDrop(vec![reporter, poller]);

        let mut rec = Reconciler {
            enforcer: self.enforcer.clone(),
            dir: self.cfg.state_dir.clone(),
            p: persisted,
            report_tx,
            retry_at: None,
            last: None,
            hostname: self.hostname.clone(),
            reset,
        };
        rec.startup().await;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(self.cfg.check_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = desired_rx.changed() => {
                    if changed.is_err() {
                        return Err(AgentError::PollerStopped);
                    }
                    let d = desired_rx.borrow_and_update().clone();
                    rec.on_desired(d).await;
                }
                _ = tick.tick() => rec.on_tick().await,
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

/// Long-polls forever; passes on every new revision, and the current one again after
/// a reconnect (so the agent re-reports its state to a server that was away).
///
/// `reset` abandons the request in flight and starts a new one. The reconciler fires it
/// after applying a quarantine: a long-poll sent before the rules existed may be on a
/// connection the kernel never tracked (conntrack starts with our rules), so the
/// server's answer would arrive as a "new" inbound packet and be dropped. A fresh
/// request starts with an outbound packet and is tracked as established.
async fn poll(client: ServerClient, mut since: Option<i64>, tx: watch::Sender<DesiredState>, reset: Arc<Notify>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut was_failing = false;
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
                backoff.reset();
                if Some(d.revision) != since || was_failing {
                    since = Some(d.revision);
                    if tx.send(d).is_err() {
                        return;
                    }
                }
                was_failing = false;
            }
            Err(e) => {
                was_failing = true;
                let delay = backoff.next_delay();
                if e.status == Some(403) {
                    tracing::error!(error = %e, "server refuses this agent (revoked?)");
                } else {
                    tracing::warn!(error = %e, retry_in = ?delay, "desired-state poll failed");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

struct Reconciler {
    enforcer: Arc<dyn Enforcer>,
    dir: PathBuf,
    p: Persisted,
    report_tx: mpsc::UnboundedSender<StatusReport>,
    retry_at: Option<Instant>,
    last: Option<StatusReport>,
    hostname: String,
    reset: Arc<Notify>,
}

impl Reconciler {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Enforcer) -> Result<T, EnforceError> + Send + 'static,
    ) -> Result<T, EnforceError> {
        let e = self.enforcer.clone();
        match tokio::task::spawn_blocking(move || f(e.as_ref())).await {
            Ok(r) => r,
            Err(j) => Err(EnforceError {
                kind: "error".into(),
                detail: format!("enforcer task failed: {j}"),
            }),
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
        };
        self.last = Some(r.clone());
        let _ = self.report_tx.send(r);
    }

    /// At start: re-apply a recorded quarantine without the server (boot), then converge.
    async fn startup(&mut self) {
        if self.p.desired.quarantined && self.p.applied_revision.is_some() {
            match self.blocking(|e| e.check()).await {
                Ok(c) if c.state == QuarantineState::Isolated => {
                    tracing::info!("quarantine in force since before start");
                    let a = Applied {
                        digest: c.digest,
                        backend: c.backend,
                    };
                    self.report(AgentState::Isolated, Some(&a), None, None);
                }
                _ => self.repair(None).await,
            }
        }
        self.converge().await;
    }

    async fn on_desired(&mut self, d: DesiredState) {
        if d == self.p.desired {
            // Same state after a reconnect: tell the server where we are.
            if let Some(r) = self.last.clone() {
                let _ = self.report_tx.send(r);
            }
            return;
        }
        tracing::info!(revision = d.revision, quarantined = d.quarantined, "new desired state");
        self.p.desired = d;
        self.retry_at = None;
        self.save().await;
        self.converge().await;
    }

    async fn on_tick(&mut self) {
        if self.p.applied_revision != Some(self.p.desired.revision) {
            self.converge().await;
        } else {
            self.check_tamper().await;
        }
    }

    /// Applies the desired state unless already applied.
    async fn converge(&mut self) {
        let d = self.p.desired.clone();
        if self.p.applied_revision == Some(d.revision) {
            return;
        }
        if d.revision == 0 && !d.quarantined {
            // Never heard from the server: nothing to do yet.
            self.p.applied_revision = Some(0);
            return;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        if d.quarantined {
            let req = d.clone();
            match self.blocking(move |e| e.isolate(&req)).await {
                Ok(a) => {
                    tracing::info!(revision = d.revision, "quarantine applied");
                    self.reset.notify_one();
                    self.applied(d.revision).await;
                    self.report(AgentState::Isolated, Some(&a), None, None);
                }
                Err(err) => self.failed(err),
            }
        } else {
            match self.blocking(|e| e.release()).await {
                Ok(()) => {
                    tracing::info!(revision = d.revision, "released");
                    self.applied(d.revision).await;
                    // The agent's claim is gone; others' claims may keep the host isolated.
                    match self.blocking(|e| e.check()).await {
                        Ok(c) if !c.other_claims.is_empty() && c.state == QuarantineState::Isolated => {
                            self.report_local_claims(&c)
                        }
                        _ => self.report(AgentState::Released, None, None, None),
                    }
                }
                Err(err) => self.failed(err),
            }
        }
    }

    /// The host is quarantined by claims the agent does not hold (Wazuh, Velociraptor, a
    /// local operator): report them, never undo them.
    fn report_local_claims(&mut self, c: &crate::enforcer::Check) {
        let detail = format!(
            "quarantined by local claims ({}), not by the server; the agent leaves them in force",
            c.other_claims.join(", ")
        );
        if self.last.as_ref().and_then(|r| r.detail.as_deref()) == Some(detail.as_str()) {
            return;
        }
        tracing::info!(claims = %c.other_claims.join(","), "host quarantined by local claims");
        let applied = crate::enforcer::Applied {
            digest: c.digest.clone(),
            backend: c.backend.clone(),
        };
        self.report(AgentState::Isolated, Some(&applied), None, Some(detail));
    }

    async fn applied(&mut self, rev: i64) {
        self.p.applied_revision = Some(rev);
        self.retry_at = None;
        self.save().await;
    }

    fn failed(&mut self, err: EnforceError) {
        tracing::error!(error = %err, revision = self.p.desired.revision, "cannot apply desired state");
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
        self.report(AgentState::Failed, None, Some(&err), None);
    }

    /// Compares the firewall with the desired state and repairs any difference.
    async fn check_tamper(&mut self) {
        let c = match self.blocking(|e| e.check()).await {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(error = %err, "status check failed");
                return;
            }
        };
        let want = if self.p.desired.quarantined {
            QuarantineState::Isolated
        } else {
            QuarantineState::Released
        };
        if c.state == want {
            // Local claims that were reported have since been released.
            if want == QuarantineState::Released && self.last.as_ref().is_some_and(|r| r.state == AgentState::Isolated) {
                self.report(AgentState::Released, None, None, None);
            }
            return;
        }
        if want == QuarantineState::Released && c.state == QuarantineState::Isolated && !c.other_claims.is_empty() {
            self.report_local_claims(&c);
            return;
        }
        let found = c
            .reason
            .clone()
            .unwrap_or_else(|| format!("firewall is {}", c.state.as_str()));
        tracing::warn!(found = %found, "tampering detected; repairing");
        if self.p.desired.quarantined {
            self.repair(Some(found)).await;
        } else {
            let detail = format!("{found}; removed");
            match self.blocking(|e| e.release()).await {
                Ok(()) => {
                    self.report(AgentState::Tampered, None, None, Some(detail));
                    self.report(AgentState::Released, None, None, None);
                }
                Err(err) => self.report(AgentState::Failed, None, Some(&err), None),
            }
        }
    }

    /// Puts the recorded quarantine back: re-apply (no names, no verification), or a
    /// fresh isolate if nothing was recorded.
    async fn repair(&mut self, found: Option<String>) {
        if let Some(found) = &found {
            self.report(AgentState::Tampered, None, None, Some(found.clone()));
        }
        let result = match self.blocking(|e| e.reapply()).await {
            Ok(a) => Ok(a),
            Err(_) => {
                let d = self.p.desired.clone();
                self.blocking(move |e| e.isolate(&d)).await
            }
        };
        match result {
            Ok(a) => {
                tracing::info!("quarantine re-applied");
                self.reset.notify_one();
                let rev = self.p.desired.revision;
                self.applied(rev).await;
                self.report(AgentState::Isolated, Some(&a), None, None);
            }
            Err(err) => self.failed(err),
        }
    }
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

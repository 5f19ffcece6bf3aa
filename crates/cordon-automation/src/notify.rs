//! Notifications: audit records queued for notification (`notify_pending`, written with
//! each record) are turned into a database outbox (one row per target
//! and audit record, so nothing is lost across a restart and nothing is queued twice), and
//! a worker delivers due rows with retries and exponential backoff. The outbox's
//! storage is the store's ([`cordon_server_core::store::outbox`]); this module decides
//! what a notification says and sends it.

use std::sync::Arc;
use std::time::Duration;

use cordon_proto::automation::{DeliveryStatus, NotifyKind, TargetKind};
use cordon_server_core::store::outbox::{DueDelivery, TailRecord};
use cordon_server_core::store::{Store, StoreError};
use cordon_server_core::timefmt::{now_ms, to_rfc3339};
use serde_json::{json, Value};

/// Most queued audit records turned into notifications per pass.
const TAIL_BATCH: i64 = 500;
/// Outbox rows kept at most; delivered and dead ones go first.
pub const OUTBOX_MAX: i64 = 10_000;

/// The notification kind of an audit action, if it is one targets can subscribe to (the
/// store's, which queues exactly these records for notification).
pub use cordon_server_core::store::outbox::kind_of;

/// What a notification says, built from one audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The audit record's id (the outbox's key with the target).
    pub audit_id: i64,
    /// The audit record's action (`quarantine_confirmed`, `audit_checkpoint`,
    /// `audit_retention_refused`, …): what the record says, where `kind` is only what
    /// targets subscribe to.
    pub action: String,
    /// `quarantined`, `released`, `failed`, `tampered`, `approval_required`, … (what
    /// [`kind_of`] makes of the record's action).
    pub kind: NotifyKind,
    /// When the record was written, RFC 3339.
    pub at: String,
    /// The host, when the record is about one.
    pub host_id: Option<String>,
    /// Its hostname.
    pub hostname: Option<String>,
    /// The host's short id ([`short_id`]) when another enrolled host has the same
    /// hostname (the `duplicate hostname` flag): the text then names it "web1
    /// (c41dcc23)", as the console does.
    pub short_id: Option<String>,
    /// Who acted (token name, `rule:<name>`, `system`, `agent:<id>`).
    pub actor: String,
    /// The API token that acted, when a person (or a script) did: the identity behind
    /// `actor`, which is only a name anyone with admin can choose (trial10). `None` for
    /// the server, agents and rules.
    pub actor_token_id: Option<i64>,
    /// The record's comment.
    pub reason: Option<String>,
    /// The automation rule behind an automatic action.
    pub rule: Option<String>,
    /// The automation event behind an automatic action.
    pub event_id: Option<String>,
    /// A `notify_only` rule's dry run: nothing was enforced.
    pub dry_run: bool,
    /// The record's detail text.
    pub detail: Option<String>,
    /// Link to the host in the console.
    pub url: Option<String>,
    /// For `quarantined`/`released`/`not_enforcing` (the agent's confirmation): who
    /// asked for the state now confirmed. The actor is then the agent (`agent:HOST`).
    pub asked_by: Option<String>,
    /// The API token id behind `asked_by`, when a token asked.
    pub asked_by_token_id: Option<i64>,
    /// The revision a confirmation is about.
    pub revision: Option<i64>,
    /// Exceptions of a confirmed quarantine that are not in force ("degraded").
    pub degraded: Vec<String>,
    /// For `released`: the other managers' claims that keep the host isolated (Cordon's
    /// release is in force, the host is not open).
    pub still_isolated_by: Vec<String>,
}

/// Escapes text for Slack's message format: `&`, `<` and `>` become `&amp;`, `&lt;`,
/// `&gt;` (Slack's own rule, <https://api.slack.com/reference/surfaces/formatting#escaping>),
/// so a hostname, comment or label cannot add a link or a `<!channel>`-style mention.
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

impl Notice {
    /// Plain text (the generic webhook's `text`).
    pub fn text(&self) -> String {
        self.render(false)
    }

    /// Slack text: every value escaped ([`slack_escape`]); the host is a link to its
    /// console page when the console URL is known. Sent with `"mrkdwn": false`
    /// ([`Notice::payload`]), so `*bold*`, `_italic_`, `~strike~` and backticks in a value
    /// stay literal (trial42 MED-1); links and escaping are control sequences Slack parses
    /// either way.
    pub fn slack_text(&self) -> String {
        self.render(true)
    }

    fn render(&self, slack: bool) -> String {
        // Every value first shows its hidden characters (bidi overrides, ESC, zero-width:
        // trial19 LOW-c) as the console and the CLI do, then Slack's own escaping. A
        // notification is one line of Cordon's words: a newline or tab in a value (an
        // event's source, a comment) is written out too (`\u{a}`), so no value can start a
        // line that reads like another Cordon notice (trial42 MED-1).
        let esc = |t: &str| {
            let t = cordon_proto::shown::shown(t, cordon_proto::shown::Form::Line).into_owned();
            if slack {
                slack_escape(&t)
            } else {
                t
            }
        };
        let host = match (&self.hostname, &self.short_id) {
            (Some(name), Some(short)) => format!("{name} ({short})"),
            (Some(name), None) => name.clone(),
            (None, _) => self.host_id.clone().unwrap_or_else(|| "(no host)".into()),
        };
        let host = match (&self.url, slack) {
            // `|` would end the link's address early; escape it like the rest.
            (Some(u), true) => format!("<{}|{}>", esc(u).replace('|', "%7C"), esc(&host)),
            (Some(u), false) => format!("{} ({})", esc(&host), esc(u)),
            (None, _) => esc(&host),
        };
        let what = match (&self.kind, self.dry_run) {
            (NotifyKind::Quarantined, true) => "would be quarantined (dry run, nothing changed)".to_string(),
            (NotifyKind::Quarantined, false) if !self.degraded.is_empty() => {
                format!("quarantined (degraded: {})", self.degraded.join("; "))
            }
            (NotifyKind::Quarantined, false) => "quarantined".into(),
            (NotifyKind::Released, _) if !self.still_isolated_by.is_empty() => format!(
                "released by Cordon, but STILL ISOLATED by other claims: {}",
                self.still_isolated_by.join(", ")
            ),
            (NotifyKind::Released, _) => "released".into(),
            (NotifyKind::QuarantineRequested, _) => "quarantine requested (pending until its agent confirms)".into(),
            (NotifyKind::ReleaseRequested, _) => "release requested (pending until its agent confirms)".into(),
            (NotifyKind::NotEnforcing, _) => {
                "NOT quarantined: its agent runs with enforce = false and enforces nothing".into()
            }
            (NotifyKind::Failed, _) => "failed to apply its quarantine state".into(),
            (NotifyKind::Tampered, _) => "had its quarantine rules tampered with".into(),
            (NotifyKind::ApprovalRequired, _) => {
                "needs approval for an automatic quarantine (fleet cap reached)".into()
            }
            (NotifyKind::AuditCheckpoint | NotifyKind::Other(_), _) => self.kind.to_string(),
        };
        if self.kind == NotifyKind::AuditCheckpoint
            && self.action == cordon_server_core::store::RETENTION_REFUSED_ACTION
        {
            // The reason (the record's comment) names the first bad record.
            return format!(
                "Cordon: AUDIT RETENTION REFUSED (record {}): the audit log does not verify, so nothing was \
                 archived or deleted: {}. Run cordon audit verify",
                self.audit_id,
                esc(self.reason.as_deref().unwrap_or("(no reason recorded)"))
            );
        }
        if self.kind == NotifyKind::AuditCheckpoint {
            // Detail: the signed checkpoint (JSON), to keep as a copy outside the server.
            return format!(
                "Cordon: audit checkpoint (record {}): {}",
                self.audit_id,
                esc(self.detail.as_deref().unwrap_or(""))
            );
        }
        // A name is only a label: who acted is named with the token's id next to it
        // (`alice (token 3)`), as `cordon audit` shows it, so a token named like a rule
        // or the server never reads as one.
        let who = |name: &str, token: Option<i64>| match token {
            Some(id) => format!("{} (token {id})", esc(name)),
            None => esc(name),
        };
        // The host's own agent (`agent:NAME`) of a host whose name another host shares is
        // told apart like the host, by its short id (trial30 LOW-7: "confirmed by
        // agent:web-01" for either twin).
        let actor = match (&self.hostname, &self.short_id) {
            (Some(name), Some(short)) if self.actor == format!("agent:{name}") => format!("{} ({short})", self.actor),
            _ => self.actor.clone(),
        };
        let mut t = match &self.asked_by {
            // A confirmation: the agent confirmed what someone asked for.
            Some(by) => format!(
                "Cordon: host {host} {} (confirmed by {}; asked by {})",
                esc(&what),
                who(&actor, self.actor_token_id),
                who(by, self.asked_by_token_id)
            ),
            None => format!(
                "Cordon: host {host} {} by {}",
                esc(&what),
                who(&actor, self.actor_token_id)
            ),
        };
        if let Some(r) = &self.reason {
            t.push_str(&format!(". Reason: {}", esc(r)));
        }
        if let Some(r) = &self.rule {
            t.push_str(&format!(". Rule: {}", esc(r)));
        }
        if let Some(e) = &self.event_id {
            t.push_str(&format!(". Event: {}", esc(e)));
        }
        if matches!(self.kind, NotifyKind::Failed | NotifyKind::Tampered) {
            if let Some(d) = &self.detail {
                t.push_str(&format!(". Detail: {}", esc(d)));
            }
        }
        t
    }

    /// The body POSTed to a target of `kind`. In a webhook's JSON, identifiers and names
    /// (`host_id`, `hostname`, `actor`, `rule`, `event_id`, `asked_by`) are the data as
    /// stored, raw; the fields written for people to read — `reason`, `detail`,
    /// `degraded` and `text` — show hidden characters written out
    /// ([`cordon_proto::shown::text`]: `\u{202e}`, `\u{1b}`), as `text` always did
    /// (trial24 LOW-2: `reason` carried a raw U+202E next to a written-out `text`).
    pub fn payload(&self, target_kind: TargetKind) -> Value {
        if target_kind == TargetKind::Slack {
            return json!({ "text": self.slack_text(), "mrkdwn": false });
        }
        let shown = |t: &String| cordon_proto::shown::shown(t, cordon_proto::shown::Form::Line).into_owned();
        json!({
            "kind": self.kind,
            "action": self.action,
            "dry_run": self.dry_run,
            "at": self.at,
            "host_id": self.host_id,
            "hostname": self.hostname,
            "short_id": self.short_id,
            "actor": self.actor,
            "actor_token_id": self.actor_token_id,
            "reason": self.reason.as_ref().map(shown),
            "rule": self.rule,
            "event_id": self.event_id,
            "detail": self.detail.as_ref().map(shown),
            "url": self.url,
            "audit_id": self.audit_id,
            "asked_by": self.asked_by,
            "asked_by_token_id": self.asked_by_token_id,
            "revision": self.revision,
            "degraded": self.degraded.iter().map(shown).collect::<Vec<_>>(),
            "still_isolated_by": self.still_isolated_by,
            "text": self.text(),
        })
    }
}

pub use cordon_proto::api::short_id;

/// Link to the host's console page: `<console_url>/console/hosts/<id>` (relative without
/// a console URL; a URL that already ends in `/console` is not doubled). The id is
/// percent-encoded as one path segment.
pub fn host_url(console_url: Option<&str>, host_id: &str) -> String {
    let base = console_url.unwrap_or("").trim_end_matches('/');
    let base = base.strip_suffix("/console").unwrap_or(base);
    let mut id = String::with_capacity(host_id.len());
    for b in host_id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            id.push(b as char);
        } else {
            id.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{base}/console/hosts/{id}")
}

/// The notification an audit record makes, if any: its kind and what it says. The rule
/// and event come from the record's own columns only (never from an actor named
/// `rule:<name>`: a token can carry such a name), and a token's action names its id.
pub fn notice(r: &TailRecord, console_url: Option<&str>) -> Option<(NotifyKind, Notice)> {
    let kind = kind_of(&r.action)?;
    Some((
        kind.clone(),
        Notice {
            audit_id: r.audit_id,
            action: r.action.clone(),
            kind,
            at: to_rfc3339(r.at),
            url: r.host_id.as_deref().map(|h| host_url(console_url, h)),
            host_id: r.host_id.clone(),
            hostname: r.hostname.clone(),
            short_id: r
                .host_id
                .as_deref()
                .filter(|_| r.hostname_shared && r.hostname.is_some())
                .map(|id| short_id(id).to_string()),
            // Only the record's own rule column: an actor's `rule:` prefix is a name anyone
            // could have given a token (trial14 LOW-7).
            rule: r.rule.clone(),
            event_id: r.event_id.clone(),
            actor: r.actor.clone(),
            actor_token_id: r.actor_token_id,
            reason: r.comment.clone(),
            dry_run: r.action == "quarantine_dry_run",
            detail: r.detail.clone(),
            asked_by: r.facts.asked_by.clone(),
            asked_by_token_id: r.facts.asked_by_token_id,
            revision: r.facts.revision,
            degraded: r.facts.degraded.clone(),
            still_isolated_by: r.facts.still_isolated_by.clone(),
        },
    ))
}

/// Turns queued audit records (`notify_pending`, written in the same transaction as
/// each record) into outbox rows for every subscribed, enabled target, and removes them
/// from the queue, in one transaction. Returns how many rows were queued.
///
/// Complete with several writers: nothing depends on the order ids commit in. Exactly
/// once with several notifiers: the outbox's `UNIQUE (target_id, audit_id)` drops a
/// second copy, and the lock on `notify_cursor`'s row makes concurrent passes take turns.
pub async fn enqueue(store: &Store) -> Result<usize, StoreError> {
    store
        .enqueue_notifications(TAIL_BATCH, notice, |n, kind| n.payload(kind).to_string())
        .await
}

/// Delivery tuning (tests shorten it).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Wait before the first retry; doubled after each failure.
    pub backoff_base: Duration,
    /// Longest wait between two attempts.
    pub backoff_max: Duration,
    /// Attempts after which a delivery is marked dead.
    pub max_attempts: i64,
    /// Timeout of one HTTP request to a target.
    pub timeout: Duration,
    /// How long a worker owns a row it is sending (other replicas skip it meanwhile).
    pub lease: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(15 * 60),
            max_attempts: 20,
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
        }
    }
}

/// Delay before attempt `attempts + 1`: base * 2^(attempts-1), capped.
pub fn backoff(cfg: &DeliveryConfig, attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    cfg.backoff_base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(cfg.backoff_max)
}

/// Why the webhook HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// The TLS configuration (protocol versions of the ring provider) was refused.
    #[error("cannot set up TLS for webhooks")]
    Tls(#[source] rustls::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client")]
    Build(#[source] reqwest::Error),
}

/// An HTTP client for webhooks: system root certificates, ring, no client auth.
///
/// # Errors
/// [`HttpClientError`] when the TLS configuration or the client cannot be built (the
/// cause kept as its source).
pub fn http_client(cfg: &DeliveryConfig) -> Result<reqwest::Client, HttpClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: https webhooks will fail");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(HttpClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(HttpClientError::Build)
}

/// One POST of an outbox row's payload to its target's `url` (header
/// `x-cordon-delivery` = the row id, so a receiver can drop repeats). `timeout`
/// overrides the client's own (the shutdown delivery's remaining time). Returns `None`
/// when the target answered 2xx, else why not (`HTTP 503`, `cannot deliver: …`).
async fn post_once(client: &reqwest::Client, url: &str, r: &DueDelivery, timeout: Option<Duration>) -> Option<String> {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-cordon-delivery", r.id.to_string())
        .body(r.payload.clone());
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => Some(format!("HTTP {}", resp.status().as_u16())),
        // reqwest's own text omits why (connection refused, TLS, timeout): keep the chain.
        Err(e) => Some(format!("cannot deliver: {}", cordon_server_core::error::chain(&e))),
    }
}

/// Sends every due outbox row once. Returns (delivered, failed attempts).
pub async fn deliver_due(
    store: &Store,
    client: &reqwest::Client,
    cfg: &DeliveryConfig,
) -> Result<(usize, usize), StoreError> {
    let rows = store.due_deliveries(now_ms(), 50).await?;
    let (mut ok, mut failed) = (0, 0);
    for r in &rows {
        let lease_until = now_ms() + cfg.lease.as_millis() as i64;
        if !store.claim_delivery(r.id, lease_until).await? {
            continue;
        }
        let Some(url) = &r.url else {
            store
                .finish_delivery(r.id, DeliveryStatus::Dead, r.attempts, Some("target removed"), now_ms())
                .await?;
            continue;
        };
        let error = post_once(client, url, r, None).await;
        match error {
            None => {
                store
                    .finish_delivery(r.id, DeliveryStatus::Delivered, r.attempts + 1, None, now_ms())
                    .await?;
                ok += 1;
            }
            Some(e) => {
                let n = r.attempts + 1;
                let status = if n >= cfg.max_attempts {
                    DeliveryStatus::Dead
                } else {
                    DeliveryStatus::Pending
                };
                let next = now_ms() + backoff(cfg, n).as_millis() as i64;
                tracing::warn!(delivery = r.id, attempts = n, error = %e, "notification not delivered");
                store.finish_delivery(r.id, status, n, Some(&e), next).await?;
                failed += 1;
            }
        }
    }
    Ok((ok, failed))
}

/// A notification [`deliver_record_now`] could not hand over in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// The target's id (`cordon notify list`).
    pub target_id: i64,
    /// The target URL's origin (`scheme://host[:port]`: a webhook's path may be its secret).
    pub origin: String,
    /// The last attempt's error, or why none was made (`no attempt in time`).
    pub error: String,
}

/// Pause between two attempts at one target within [`deliver_record_now`].
pub const RETRY_NOW_EVERY: Duration = Duration::from_millis(250);

/// Delivers the notifications of audit record `audit_id` at once — queued first
/// ([`enqueue`]), then sent to every target subscribed to it whatever the outbox's
/// backoff says, retried every [`RETRY_NOW_EVERY`] — until all are delivered or `wait`
/// has passed (each request's timeout is cut to what is left). An orderly stop uses it
/// for its shutdown audit checkpoint, so the copy outside the database exists before
/// the process exits (trial7 MED 2). What it could not deliver stays queued (due at
/// once: sent at the next start, by this or another replica) and is returned. All the
/// tries of one call count as a single attempt against the delivery's budget
/// ([`DeliveryConfig::max_attempts`]): trial14 MED-1 — twenty quick retries during a 5 s
/// stop used the whole budget and the next start marked the copy `dead` unsent.
///
/// # Errors
/// Database errors.
pub async fn deliver_record_now(
    store: &Store,
    client: &reqwest::Client,
    audit_id: i64,
    wait: Duration,
) -> Result<Vec<Undelivered>, StoreError> {
    let deadline = tokio::time::Instant::now() + wait;
    // Queue everything pending up to and including this record (other records queued
    // before it come along: the queue is drained in batches).
    while enqueue(store).await? > 0 && tokio::time::Instant::now() < deadline {}
    let mut errors: std::collections::HashMap<i64, String> = Default::default();
    // Each row's attempts when this call first met it: the call counts as one more.
    let mut before: std::collections::HashMap<i64, i64> = Default::default();
    loop {
        let rows = store.pending_deliveries_of(audit_id).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(rows
                .into_iter()
                .map(|(target_id, r)| Undelivered {
                    target_id,
                    origin: r
                        .url
                        .as_deref()
                        .map(cordon_server_core::store::outbox::url_origin)
                        .unwrap_or_default(),
                    error: errors.remove(&r.id).unwrap_or_else(|| "no attempt in time".into()),
                })
                .collect());
        }
        for (_, r) in rows {
            let Some(url) = &r.url else {
                store
                    .finish_delivery(r.id, DeliveryStatus::Dead, r.attempts, Some("target removed"), now_ms())
                    .await?;
                continue;
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let attempts = *before.entry(r.id).or_insert(r.attempts) + 1;
            let error = post_once(client, url, &r, Some(left)).await;
            match error {
                None => {
                    store
                        .finish_delivery(r.id, DeliveryStatus::Delivered, attempts, None, now_ms())
                        .await?;
                    errors.remove(&r.id);
                }
                Some(e) => {
                    // Stays pending and due at once: the next start (or another
                    // replica) sends it.
                    store
                        .finish_delivery(r.id, DeliveryStatus::Pending, attempts, Some(&e), now_ms())
                        .await?;
                    errors.insert(r.id, e);
                }
            }
        }
        tokio::time::sleep(RETRY_NOW_EVERY.min(deadline.saturating_duration_since(tokio::time::Instant::now()))).await;
    }
}

/// Keeps the outbox bounded: finished rows older than a week go, and beyond
/// [`OUTBOX_MAX`] the oldest finished rows, then the oldest pending ones (marked lost in
/// the log).
pub async fn prune_outbox(store: &Store, now: i64) -> Result<(), StoreError> {
    let dropped = store.prune_outbox(now, OUTBOX_MAX).await?;
    if dropped > 0 {
        tracing::warn!(dropped, "notification outbox full: oldest entries dropped");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delivery that cannot connect says why (reqwest's own text stops at "error
    /// sending request"; the refused connection was dropped). Loopback, a port just
    /// closed.
    #[tokio::test]
    async fn a_failed_delivery_says_why() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = http_client(&DeliveryConfig::default()).unwrap();
        let r = DueDelivery {
            id: 1,
            attempts: 0,
            url: None,
            payload: "{}".into(),
        };
        let why = post_once(&client, &format!("http://127.0.0.1:{port}/hook"), &r, None)
            .await
            .unwrap();
        assert!(why.starts_with("cannot deliver: error sending request"), "{why}");
        assert!(why.to_ascii_lowercase().contains("refused"), "{why}");
    }

    /// The client error keeps what caused it (it was a `String` before).
    #[test]
    fn an_http_client_error_keeps_its_cause() {
        let e = HttpClientError::Tls(rustls::Error::General("no protocol versions".into()));
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("unexpected error: no protocol versions"));
        assert_eq!(
            cordon_server_core::error::chain(&e),
            "cannot set up TLS for webhooks: unexpected error: no protocol versions"
        );
    }

    #[test]
    fn notification_links_point_to_the_console_host_page() {
        assert_eq!(
            host_url(Some("https://c.example:8443"), "h1"),
            "https://c.example:8443/console/hosts/h1"
        );
        assert_eq!(
            host_url(Some("https://c.example/"), "h1"),
            "https://c.example/console/hosts/h1"
        );
        assert_eq!(
            host_url(Some("https://c.example/console/"), "h1"),
            "https://c.example/console/hosts/h1"
        );
        assert_eq!(host_url(None, "a/b|c>"), "/console/hosts/a%2Fb%7Cc%3E");
    }

    #[test]
    fn slack_text_cannot_inject_mentions_or_links() {
        let n = Notice {
            audit_id: 1,
            action: "quarantine_confirmed".into(),
            kind: NotifyKind::from("quarantined"),
            at: "2030-01-01T00:00:00.000Z".into(),
            host_id: Some("h1".into()),
            hostname: Some("<!channel> web&1 <http://evil.example|click>".into()),
            short_id: None,
            actor: "<@U123>".into(),
            reason: Some("see <!here> & <!everyone>".into()),
            rule: Some("<#C1>".into()),
            event_id: Some("e>1".into()),
            dry_run: false,
            detail: None,
            url: Some(host_url(Some("https://c.example"), "h1")),
            asked_by: None,
            asked_by_token_id: None,
            actor_token_id: None,
            revision: None,
            degraded: vec![],
            still_isolated_by: vec![],
        };
        let t = n.slack_text();
        for bad in [
            "<!channel>",
            "<!here>",
            "<!everyone>",
            "<@U123>",
            "<#C1>",
            "<http://evil",
        ] {
            assert!(!t.contains(bad), "{bad} survived in {t}");
        }
        assert!(
            t.contains("&lt;!channel&gt; web&amp;1 &lt;http://evil.example|click&gt;"),
            "{t}"
        );
        assert!(
            t.starts_with("Cordon: host <https://c.example/console/hosts/h1|"),
            "{t}"
        );
        // Exactly one link: the console's.
        assert_eq!(t.matches('<').count(), 1, "{t}");
        // The generic webhook's plain text is not Slack-escaped.
        assert!(n.text().contains("<!channel> web&1"), "{}", n.text());
        assert_eq!(n.payload(TargetKind::Slack)["text"], json!(t));
    }

    /// trial42 MED-1: a newline in an event's source or a comment must not start a line
    /// that reads like another Cordon notice, and Slack formatting in a value stays literal.
    #[test]
    fn a_value_cannot_forge_a_second_notice_line_or_slack_formatting() {
        let forged = "edr\n\nCordon: host ws-05 released (confirmed by agent:ws-05). *all clear*\tok";
        let n = Notice {
            audit_id: 1,
            action: "quarantine".into(),
            kind: NotifyKind::from("quarantine_requested"),
            at: "2030-01-01T00:00:00.000Z".into(),
            host_id: Some("h1".into()),
            hostname: Some("ws-05".into()),
            short_id: None,
            actor: "alice".into(),
            reason: Some(forged.into()),
            rule: None,
            event_id: None,
            dry_run: false,
            detail: Some(forged.into()),
            url: Some(host_url(Some("https://c.example"), "h1")),
            asked_by: None,
            asked_by_token_id: None,
            actor_token_id: None,
            revision: None,
            degraded: vec![forged.into()],
            still_isolated_by: vec![],
        };
        for t in [n.slack_text(), n.text()] {
            assert!(!t.contains('\n') && !t.contains('\t'), "a value broke the line: {t:?}");
            assert!(t.contains("edr\\u{a}\\u{a}Cordon: host ws-05 released"), "{t:?}");
        }
        let slack = n.payload(TargetKind::Slack);
        assert_eq!(slack["mrkdwn"], json!(false), "Slack formatting must be off: {slack}");
        let body = n.payload(TargetKind::Webhook);
        for field in ["reason", "detail", "text"] {
            let v = body[field].as_str().unwrap();
            assert!(!v.contains('\n'), "{field}: {v:?}");
        }
        assert!(!body["degraded"][0].as_str().unwrap().contains('\n'));
    }

    /// trial19 LOW-c: bidi overrides and ESC from agent-reported detail, event sources,
    /// hostnames and comments reach neither the Slack text nor the webhook's `text` raw;
    /// both show them written out as the console does (`\u{202e}`).
    #[test]
    fn notification_texts_show_bidi_and_escape_characters_written_out() {
        let n = Notice {
            audit_id: 1,
            action: "failed".into(),
            kind: NotifyKind::from("failed"),
            at: "2030-01-01T00:00:00.000Z".into(),
            host_id: Some("h1".into()),
            hostname: Some("web\u{202e}1".into()),
            short_id: None,
            actor: "agent:web\u{200b}1".into(),
            reason: Some("from edr \u{202e}desab-enin\u{202c} \u{1b}[2J".into()),
            rule: Some("r\u{2066}x".into()),
            event_id: Some("e1".into()),
            dry_run: false,
            detail: Some("\u{202e}evil\u{202c} \u{1b}[31mRED\r\u{9b}1m".into()),
            url: Some(host_url(Some("https://c.example"), "h1")),
            asked_by: None,
            asked_by_token_id: None,
            actor_token_id: None,
            revision: None,
            degraded: vec![],
            still_isolated_by: vec![],
        };
        for t in [n.slack_text(), n.text()] {
            assert!(
                !t.chars().any(cordon_proto::shown::hidden_char),
                "raw hidden character in {t:?}"
            );
            for want in [
                "web\\u{202e}1",
                "\\u{202e}desab-enin\\u{202c} \\u{1b}[2J",
                "\\u{1b}[31mRED\\u{d}\\u{9b}1m",
                "web\\u{200b}1",
            ] {
                assert!(t.contains(want), "{want} missing from {t:?}");
            }
        }
        // trial24 LOW-2: the webhook's fields for people (reason, detail, degraded) show
        // them written out too; names and ids stay the data as stored.
        let mut n = n;
        n.degraded = vec!["exception \u{202e}x".into()];
        let body = n.payload(TargetKind::Webhook);
        for field in ["reason", "detail"] {
            let v = body[field].as_str().unwrap();
            assert!(!v.chars().any(cordon_proto::shown::hidden_char), "{field}: {v:?}");
            assert!(v.contains("\\u{202e}"), "{field}: {v:?}");
        }
        assert_eq!(body["degraded"][0], "exception \\u{202e}x");
        assert_eq!(body["hostname"], "web\u{202e}1", "names stay raw");
    }

    #[test]
    fn fields_kinds_and_text() {
        assert_eq!(kind_of("quarantine"), Some(NotifyKind::from("quarantine_requested")));
        assert_eq!(kind_of("quarantine_confirmed"), Some(NotifyKind::from("quarantined")));
        assert_eq!(kind_of("quarantine_reconfirmed"), None);
        let n = Notice {
            audit_id: 7,
            action: "quarantine_confirmed".into(),
            kind: NotifyKind::from("quarantined"),
            at: "2030-01-01T00:00:00.000Z".into(),
            host_id: Some("h1".into()),
            hostname: Some("web1".into()),
            short_id: None,
            actor: "rule:wazuh-high".into(),
            reason: Some("automatic".into()),
            rule: Some("wazuh-high".into()),
            event_id: Some("evt-1".into()),
            dry_run: false,
            detail: None,
            url: Some(host_url(Some("https://cordon.example/"), "h1")),
            asked_by: None,
            asked_by_token_id: None,
            actor_token_id: None,
            revision: None,
            degraded: vec![],
            still_isolated_by: vec![],
        };
        let t = n.slack_text();
        assert!(
            t.contains("<https://cordon.example/console/hosts/h1|web1> quarantined by rule:wazuh-high"),
            "{t}"
        );
        assert!(t.contains("Rule: wazuh-high") && t.contains("Event: evt-1") && t.contains("Reason: automatic"));
        assert_eq!(n.payload(TargetKind::Slack), json!({"text": t, "mrkdwn": false}));
        assert_eq!(
            n.payload(TargetKind::Webhook)["url"],
            "https://cordon.example/console/hosts/h1"
        );
        let cfg = DeliveryConfig::default();
        let _ = &cfg;
        assert_eq!(backoff(&cfg, 1), Duration::from_secs(2));
        assert_eq!(backoff(&cfg, 3), Duration::from_secs(8));
        assert_eq!(backoff(&cfg, 25), Duration::from_secs(900));
    }

    /// Notifications take the event and rule from the audit record's own columns; the
    /// detail text is for people and is never parsed back.
    #[test]
    fn notices_read_event_and_rule_from_audit_columns_not_detail_text() {
        let rec = TailRecord {
            audit_id: 3,
            at: 0,
            actor: "rule:edr-critical".into(),
            actor_token_id: None,
            action: "quarantine".into(),
            host_id: Some("h1".into()),
            hostname: Some("web1".into()),
            hostname_shared: false,
            comment: None,
            detail: Some("revision 2; event=evt-from-text; rule=rule-from-text".into()),
            event_id: Some("evt-1".into()),
            rule: Some("edr-critical".into()),
            facts: Default::default(),
        };
        let (kind, n) = notice(&rec, None).unwrap();
        assert_eq!(kind.as_str(), "quarantine_requested");
        assert_eq!(n.event_id.as_deref(), Some("evt-1"));
        assert_eq!(n.rule.as_deref(), Some("edr-critical"));
        let plain = TailRecord {
            detail: Some("event=evt-9; rule=r9".into()),
            event_id: None,
            rule: None,
            actor: "alice".into(),
            ..rec
        };
        let (_, n) = notice(&plain, None).unwrap();
        assert_eq!((n.event_id, n.rule), (None, None), "text in the detail is not a field");
    }

    /// Effect, not dispatch: "quarantined" is the agent's confirmation, says who asked,
    /// and states a degraded quarantine as such (text, Slack and webhook fields).
    #[test]
    fn quarantined_is_the_agents_confirmation_and_says_degraded() {
        let rec = TailRecord {
            audit_id: 9,
            at: 0,
            actor: "agent:web1".into(),
            actor_token_id: None,
            action: "quarantine_confirmed".into(),
            host_id: Some("h1".into()),
            hostname: Some("web1".into()),
            hostname_shared: false,
            comment: Some("IR-42".into()),
            detail: Some("revision 3: degraded: x; asked by alice".into()),
            event_id: None,
            rule: None,
            facts: cordon_server_core::store::outbox::NoticeFacts {
                revision: Some(3),
                asked_by: Some("alice".into()),
                asked_by_token_id: None,
                degraded: vec!["exception https://edr.example.net unresolved".into()],
                still_isolated_by: vec![],
            },
        };
        let (kind, n) = notice(&rec, None).unwrap();
        assert_eq!(kind.as_str(), "quarantined");
        let t = n.text();
        assert!(
            t.starts_with(
                "Cordon: host web1 (/console/hosts/h1) quarantined (degraded: exception https://edr.example.net unresolved) \
                 (confirmed by agent:web1; asked by alice)"
            ),
            "{t}"
        );
        assert!(t.contains("Reason: IR-42"), "{t}");
        let w = n.payload(TargetKind::Webhook);
        assert_eq!(w["kind"], "quarantined");
        assert_eq!(w["degraded"][0], "exception https://edr.example.net unresolved");
        assert_eq!(w["asked_by"], "alice");
        assert_eq!(w["revision"], 3);
        let requested = TailRecord {
            action: "quarantine".into(),
            actor: "alice".into(),
            facts: Default::default(),
            ..rec.clone()
        };
        let (kind, n) = notice(&requested, None).unwrap();
        assert_eq!(kind.as_str(), "quarantine_requested");
        assert!(!n.text().contains(" quarantined "), "{}", n.text());
        // Twins (another host is named web1 too): the confirming agent is told apart by
        // the host's short id, as the host is (trial30 LOW-7).
        let twin = TailRecord {
            host_id: Some("9a3cb9f0-1111-4111-8111-111111111111".into()),
            hostname_shared: true,
            ..rec
        };
        let (_, n) = notice(&twin, None).unwrap();
        let t = n.slack_text();
        assert!(
            t.contains("web1 (9a3cb9f0)") && t.contains("(confirmed by agent:web1 (9a3cb9f0); asked by alice)"),
            "{t}"
        );
    }

    /// A confirmed release that leaves the host isolated by other managers' claims says
    /// so in the headline (text, Slack) and as a field, never a bare "released".
    #[test]
    fn released_with_other_claims_standing_says_still_isolated() {
        let rec = TailRecord {
            audit_id: 11,
            at: 0,
            actor: "agent:web3".into(),
            actor_token_id: None,
            action: "release_confirmed".into(),
            host_id: Some("h3".into()),
            hostname: Some("web3".into()),
            hostname_shared: false,
            comment: Some("IR-7 done".into()),
            detail: Some("revision 5: released by the server; still isolated by other claims: local".into()),
            event_id: None,
            rule: None,
            facts: cordon_server_core::store::outbox::NoticeFacts {
                revision: Some(5),
                asked_by: Some("alice".into()),
                asked_by_token_id: None,
                degraded: vec![],
                still_isolated_by: vec!["local since 2026-11-30T00:00:00Z".into()],
            },
        };
        let (kind, n) = notice(&rec, None).unwrap();
        assert_eq!(kind.as_str(), "released");
        for t in [n.text(), n.slack_text()] {
            assert!(
                t.contains("released by Cordon, but STILL ISOLATED by other claims: local since"),
                "{t}"
            );
        }
        let w = n.payload(TargetKind::Webhook);
        assert_eq!(w["still_isolated_by"][0], "local since 2026-11-30T00:00:00Z");
        let plain = TailRecord {
            facts: cordon_server_core::store::outbox::NoticeFacts {
                still_isolated_by: vec![],
                ..rec.facts.clone()
            },
            ..rec
        };
        let (_, n) = notice(&plain, None).unwrap();
        assert!(!n.text().contains("STILL ISOLATED"), "{}", n.text());
    }

    /// trial10 MED: a manual action by a token named like a rule (`rulе:wz`, Cyrillic е)
    /// read in Slack and webhook text exactly like the rule's automatic action: the
    /// notification named the actor by its name only. A token's action (and a
    /// confirmation of what a token asked for) names the token id next to the name, as
    /// the audit record does; the webhook carries it as a field.
    #[test]
    fn notifications_of_manual_actions_name_the_token_id() {
        let rec = TailRecord {
            audit_id: 5,
            at: 0,
            actor: "rul\u{435}:wz".into(),
            actor_token_id: Some(7),
            action: "quarantine".into(),
            host_id: Some("h1".into()),
            hostname: Some("web1".into()),
            hostname_shared: false,
            comment: Some("automatic".into()),
            detail: None,
            event_id: None,
            rule: None,
            facts: Default::default(),
        };
        let (_, n) = notice(&rec, None).unwrap();
        for t in [n.text(), n.slack_text()] {
            assert!(t.contains("by rul\u{435}:wz (token 7)"), "{t}");
        }
        // trial14 LOW-7: a (legacy) token named exactly `rule:wz` gets no `Rule:` from
        // its name: only the record's rule column names a rule.
        let named_like_a_rule = TailRecord {
            actor: "rule:wz".into(),
            ..rec.clone()
        };
        let (_, n) = notice(&named_like_a_rule, None).unwrap();
        assert_eq!(n.rule, None);
        assert!(
            n.text().contains("by rule:wz (token 7)") && !n.text().contains("Rule:"),
            "{}",
            n.text()
        );
        let w = n.payload(TargetKind::Webhook);
        assert_eq!(w["actor_token_id"], 7);
        // The rule's own action names no token.
        let auto = TailRecord {
            actor: "rule:wz".into(),
            actor_token_id: None,
            rule: Some("wz".into()),
            ..rec.clone()
        };
        let (_, n) = notice(&auto, None).unwrap();
        assert!(
            n.text().contains("by rule:wz.") && !n.text().contains("(token"),
            "{}",
            n.text()
        );
        assert_eq!(n.payload(TargetKind::Webhook)["actor_token_id"], Value::Null);
        // The agent's confirmation of what the token asked for names the token too.
        let confirmed = TailRecord {
            actor: "agent:web1".into(),
            actor_token_id: None,
            action: "quarantine_confirmed".into(),
            facts: cordon_server_core::store::outbox::NoticeFacts {
                revision: Some(2),
                asked_by: Some("rul\u{435}:wz".into()),
                asked_by_token_id: Some(7),
                ..Default::default()
            },
            ..rec
        };
        let (_, n) = notice(&confirmed, None).unwrap();
        assert!(n.text().contains("asked by rul\u{435}:wz (token 7))"), "{}", n.text());
        assert_eq!(n.payload(TargetKind::Webhook)["asked_by_token_id"], 7);
    }
}

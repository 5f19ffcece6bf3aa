//! Notifications: the audit log is tailed into a database outbox (one row per target
//! and audit record, so nothing is lost across a restart and nothing is queued twice),
//! and a worker delivers due rows with retries and exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::model::{Delivery, Target, TargetSpec};
use crate::store::{get_i64, get_opt_i64, get_opt_str, get_str, json_list, to_json_list, Store, StoreError};
use crate::timefmt::{now_ms, to_rfc3339};

/// Most queued audit records turned into notifications per pass.
const TAIL_BATCH: i64 = 500;
/// Outbox rows kept at most; delivered and dead ones go first.
pub const OUTBOX_MAX: i64 = 10_000;

/// The notification kind of an audit action, if it is one targets can subscribe to.
pub fn kind_of(action: &str) -> Option<&'static str> {
    Some(match action {
        "quarantine" | "quarantine_dry_run" => "quarantined",
        "release" => "released",
        "failed" => "failed",
        "tampered" => "tampered",
        "approval_required" => "approval_required",
        _ => return None,
    })
}

/// `key=value` out of an audit detail like `revision 3; event=evt-1; rule=r`.
fn field<'a>(detail: &'a str, key: &str) -> Option<&'a str> {
    detail
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .map(str::trim)
}

/// What a notification says, built from one audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub audit_id: i64,
    pub kind: &'static str,
    pub at: String,
    pub host_id: Option<String>,
    pub hostname: Option<String>,
    pub actor: String,
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub event_id: Option<String>,
    pub dry_run: bool,
    pub detail: Option<String>,
    pub url: Option<String>,
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

    /// Slack `mrkdwn`: every value escaped ([`slack_escape`]); the host is a link to its
    /// console page when the console URL is known.
    pub fn slack_text(&self) -> String {
        self.render(true)
    }

    fn render(&self, slack: bool) -> String {
        let esc = |t: &str| if slack { slack_escape(t) } else { t.to_string() };
        let host = self
            .hostname
            .clone()
            .or_else(|| self.host_id.clone())
            .unwrap_or_else(|| "(no host)".into());
        let host = match (&self.url, slack) {
            // `|` would end the link's address early; escape it like the rest.
            (Some(u), true) => format!("<{}|{}>", esc(u).replace('|', "%7C"), esc(&host)),
            (Some(u), false) => format!("{host} ({u})"),
            (None, _) => esc(&host),
        };
        let what = match (self.kind, self.dry_run) {
            ("quarantined", true) => "would be quarantined (dry run, nothing changed)",
            ("quarantined", false) => "quarantined",
            ("released", _) => "released",
            ("failed", _) => "failed to apply its quarantine state",
            ("tampered", _) => "had its quarantine rules tampered with",
            ("approval_required", _) => "needs approval for an automatic quarantine (fleet cap reached)",
            _ => self.kind,
        };
        let mut t = format!("Cordon: host {host} {what} by {}", esc(&self.actor));
        if let Some(r) = &self.reason {
            t.push_str(&format!(". Reason: {}", esc(r)));
        }
        if let Some(r) = &self.rule {
            t.push_str(&format!(". Rule: {}", esc(r)));
        }
        if let Some(e) = &self.event_id {
            t.push_str(&format!(". Event: {}", esc(e)));
        }
        if matches!(self.kind, "failed" | "tampered") {
            if let Some(d) = &self.detail {
                t.push_str(&format!(". Detail: {}", esc(d)));
            }
        }
        t
    }

    /// The body POSTed to a target of `kind` (`slack` or `webhook`).
    pub fn payload(&self, target_kind: &str) -> Value {
        if target_kind == "slack" {
            return json!({ "text": self.slack_text() });
        }
        json!({
            "kind": self.kind,
            "dry_run": self.dry_run,
            "at": self.at,
            "host_id": self.host_id,
            "hostname": self.hostname,
            "actor": self.actor,
            "reason": self.reason,
            "rule": self.rule,
            "event_id": self.event_id,
            "detail": self.detail,
            "url": self.url,
            "audit_id": self.audit_id,
            "text": self.text(),
        })
    }
}

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

fn target_row(r: &AnyRow) -> Result<Target, StoreError> {
    Ok(Target {
        id: get_i64(r, "id")?,
        spec: TargetSpec {
            name: get_str(r, "name")?,
            kind: get_str(r, "kind")?,
            url: get_str(r, "url")?,
            events: json_list(&get_str(r, "events")?),
            enabled: get_i64(r, "enabled")? != 0,
        },
        created_at: to_rfc3339(get_i64(r, "created_at")?),
    })
}

pub async fn targets(pool: &AnyPool) -> Result<Vec<Target>, StoreError> {
    let rows = sqlx::query("SELECT id, name, kind, url, events, enabled, created_at FROM notify_targets ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter().map(target_row).collect()
}

pub async fn add_target(store: &Store, spec: &TargetSpec) -> Result<Target, StoreError> {
    let (_g, mut tx) = store.write_tx().await?;
    let exists = sqlx::query("SELECT id FROM notify_targets WHERE name = $1")
        .bind(spec.name.clone())
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!("a target named {:?} exists", spec.name)));
    }
    let row = sqlx::query(
        "INSERT INTO notify_targets (name, kind, url, events, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING id, name, kind, url, events, enabled, created_at",
    )
    .bind(spec.name.clone())
    .bind(spec.kind.clone())
    .bind(spec.url.clone())
    .bind(to_json_list(&spec.events))
    .bind(spec.enabled as i64)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await?;
    let t = target_row(&row)?;
    tx.commit().await?;
    Ok(t)
}

pub async fn delete_target(store: &Store, id: i64) -> Result<(), StoreError> {
    let (_g, mut tx) = store.write_tx().await?;
    let n = sqlx::query("DELETE FROM notify_targets WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if n.rows_affected() != 1 {
        return Err(StoreError::NotFound(format!("no notification target {id}")));
    }
    sqlx::query("UPDATE notify_outbox SET status = 'dead', last_error = 'target removed' WHERE target_id = $1 AND status = 'pending'")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Turns queued audit records (`notify_pending`, written in the same transaction as
/// each record) into outbox rows for every subscribed, enabled target, and removes them
/// from the queue, in one transaction. Returns how many rows were queued.
///
/// Complete with several writers: nothing depends on the order ids commit in. Exactly
/// once with several notifiers: the outbox's `UNIQUE (target_id, audit_id)` drops a
/// second copy, and the lock on `notify_cursor`'s row makes concurrent passes take turns.
pub async fn enqueue(store: &Store) -> Result<usize, StoreError> {
    let (_g, mut tx) = store.write_tx().await?;
    // Serialises notifiers on every replica (a row lock on PostgreSQL).
    sqlx::query("UPDATE notify_cursor SET audit_id = audit_id WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT a.id AS id, a.at AS at, a.actor AS actor, a.action AS action, a.host_id AS host_id, a.comment AS comment, \
         a.detail AS detail, h.hostname AS hostname FROM notify_pending p JOIN audit a ON a.id = p.audit_id \
         LEFT JOIN hosts h ON h.id = a.host_id ORDER BY p.audit_id LIMIT $1",
    )
    .bind(TAIL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let trows = sqlx::query(
        "SELECT id, name, kind, url, events, enabled, created_at FROM notify_targets WHERE enabled = 1 ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let targets = trows.iter().map(target_row).collect::<Result<Vec<_>, _>>()?;
    let console = get_opt_str(
        &sqlx::query("SELECT console_url FROM auto_settings WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?,
        "console_url",
    )?;
    let now = now_ms();
    let mut queued = 0;
    for r in &rows {
        sqlx::query("DELETE FROM notify_pending WHERE audit_id = $1")
            .bind(get_i64(r, "id")?)
            .execute(&mut *tx)
            .await?;
        let action = get_str(r, "action")?;
        let Some(kind) = kind_of(&action) else { continue };
        let detail = get_opt_str(r, "detail")?;
        let actor = get_str(r, "actor")?;
        let host_id = get_opt_str(r, "host_id")?;
        let notice = Notice {
            audit_id: get_i64(r, "id")?,
            kind,
            at: to_rfc3339(get_i64(r, "at")?),
            url: host_id.as_deref().map(|h| host_url(console.as_deref(), h)),
            host_id,
            hostname: get_opt_str(r, "hostname")?,
            rule: detail
                .as_deref()
                .and_then(|d| field(d, "rule"))
                .map(str::to_string)
                .or_else(|| actor.strip_prefix("rule:").map(str::to_string)),
            event_id: detail.as_deref().and_then(|d| field(d, "event")).map(str::to_string),
            actor,
            reason: get_opt_str(r, "comment")?,
            dry_run: action == "quarantine_dry_run",
            detail,
        };
        for t in targets.iter().filter(|t| t.spec.events.iter().any(|e| e == kind)) {
            let n = sqlx::query(
                "INSERT INTO notify_outbox (target_id, audit_id, kind, payload, created_at, status, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6) ON CONFLICT (target_id, audit_id) DO NOTHING",
            )
            .bind(t.id)
            .bind(notice.audit_id)
            .bind(kind.to_string())
            .bind(notice.payload(&t.spec.kind).to_string())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            queued += n.rows_affected() as usize;
        }
    }
    tx.commit().await?;
    Ok(queued)
}

/// Delivery tuning (tests shorten it).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_attempts: i64,
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

/// An HTTP client for webhooks: system root certificates, ring, no client auth.
pub fn http_client(cfg: &DeliveryConfig) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: https webhooks will fail");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// Sends every due outbox row once. Returns (delivered, failed attempts).
pub async fn deliver_due(
    store: &Store,
    client: &reqwest::Client,
    cfg: &DeliveryConfig,
) -> Result<(usize, usize), StoreError> {
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT o.id AS id, o.payload AS payload, o.attempts AS attempts, t.url AS url FROM notify_outbox o \
         LEFT JOIN notify_targets t ON t.id = o.target_id \
         WHERE o.status = 'pending' AND o.next_attempt_at <= $1 AND (o.lease_until IS NULL OR o.lease_until < $2) ORDER BY o.id LIMIT 50",
    )
    .bind(now)
    .bind(now)
    .fetch_all(store.pool())
    .await?;
    let (mut ok, mut failed) = (0, 0);
    for r in &rows {
        let id = get_i64(r, "id")?;
        let attempts = get_i64(r, "attempts")?;
        let lease_until = now_ms() + cfg.lease.as_millis() as i64;
        {
            // Claim the row; another worker (replica) that claimed it first wins.
            let (_g, mut tx) = store.write_tx().await?;
            let n = sqlx::query(
                "UPDATE notify_outbox SET lease_until = $1 WHERE id = $2 AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3)",
            )
            .bind(lease_until)
            .bind(id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            if n.rows_affected() != 1 {
                continue;
            }
        }
        let Some(url) = get_opt_str(r, "url")? else {
            finish(store, id, "dead", attempts, Some("target removed"), now_ms()).await?;
            continue;
        };
        let body = get_str(r, "payload")?;
        let result = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-cordon-delivery", id.to_string())
            .body(body)
            .send()
            .await;
        let error = match result {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => Some(format!("HTTP {}", resp.status().as_u16())),
            Err(e) => Some(format!("cannot deliver: {e}")),
        };
        match error {
            None => {
                finish(store, id, "delivered", attempts + 1, None, now_ms()).await?;
                ok += 1;
            }
            Some(e) => {
                let n = attempts + 1;
                let status = if n >= cfg.max_attempts { "dead" } else { "pending" };
                let next = now_ms() + backoff(cfg, n).as_millis() as i64;
                tracing::warn!(delivery = id, attempts = n, error = %e, "notification not delivered");
                finish(store, id, status, n, Some(&e), next).await?;
                failed += 1;
            }
        }
    }
    Ok((ok, failed))
}

async fn finish(
    store: &Store,
    id: i64,
    status: &str,
    attempts: i64,
    error: Option<&str>,
    next: i64,
) -> Result<(), StoreError> {
    let (_g, mut tx) = store.write_tx().await?;
    let delivered = (status == "delivered").then(now_ms);
    sqlx::query(
        "UPDATE notify_outbox SET status = $1, attempts = $2, last_error = $3, next_attempt_at = $4, delivered_at = $5, lease_until = NULL WHERE id = $6",
    )
    .bind(status.to_string())
    .bind(attempts)
    .bind(error.map(str::to_string))
    .bind(next)
    .bind(delivered)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Keeps the outbox bounded: finished rows older than a week go, and beyond
/// [`OUTBOX_MAX`] the oldest finished rows, then the oldest pending ones (marked lost in
/// the log).
pub async fn prune_outbox(store: &Store, now: i64) -> Result<(), StoreError> {
    let (_g, mut tx) = store.write_tx().await?;
    sqlx::query("DELETE FROM notify_outbox WHERE status <> 'pending' AND created_at < $1")
        .bind(now - 7 * 86_400_000)
        .execute(&mut *tx)
        .await?;
    let total = get_i64(
        &sqlx::query("SELECT COUNT(*) AS n FROM notify_outbox")
            .fetch_one(&mut *tx)
            .await?,
        "n",
    )?;
    if total > OUTBOX_MAX {
        let edge = sqlx::query("SELECT id FROM notify_outbox ORDER BY id DESC LIMIT 1 OFFSET $1")
            .bind(OUTBOX_MAX)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = edge {
            let id = get_i64(&row, "id")?;
            let n = sqlx::query("DELETE FROM notify_outbox WHERE id <= $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tracing::warn!(
                dropped = n.rows_affected(),
                "notification outbox full: oldest entries dropped"
            );
        }
    }
    tx.commit().await?;
    Ok(())
}

fn delivery_row(r: &AnyRow) -> Result<Delivery, StoreError> {
    let status = get_str(r, "status")?;
    Ok(Delivery {
        id: get_i64(r, "id")?,
        target_id: get_i64(r, "target_id")?,
        audit_id: get_i64(r, "audit_id")?,
        kind: get_str(r, "kind")?,
        next_attempt_at: (status == "pending")
            .then(|| get_i64(r, "next_attempt_at").map(to_rfc3339))
            .transpose()?,
        status,
        attempts: get_i64(r, "attempts")?,
        last_error: get_opt_str(r, "last_error")?,
        delivered_at: get_opt_i64(r, "delivered_at")?.map(to_rfc3339),
        created_at: to_rfc3339(get_i64(r, "created_at")?),
        payload: serde_json::from_str(&get_str(r, "payload")?).unwrap_or(Value::Null),
    })
}

/// Newest first.
pub async fn deliveries(pool: &AnyPool, status: Option<&str>, limit: i64) -> Result<Vec<Delivery>, StoreError> {
    let cols = "id, target_id, audit_id, kind, payload, created_at, status, attempts, next_attempt_at, last_error, delivered_at";
    let rows = match status {
        Some(s) => {
            sqlx::query(&format!(
                "SELECT {cols} FROM notify_outbox WHERE status = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(s.to_string())
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(&format!("SELECT {cols} FROM notify_outbox ORDER BY id DESC LIMIT $1"))
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(delivery_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            kind: "quarantined",
            at: "2030-01-01T00:00:00.000Z".into(),
            host_id: Some("h1".into()),
            hostname: Some("<!channel> web&1 <http://evil.example|click>".into()),
            actor: "<@U123>".into(),
            reason: Some("see <!here> & <!everyone>".into()),
            rule: Some("<#C1>".into()),
            event_id: Some("e>1".into()),
            dry_run: false,
            detail: None,
            url: Some(host_url(Some("https://c.example"), "h1")),
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
        assert_eq!(n.payload("slack")["text"], json!(t));
    }

    #[test]
    fn fields_kinds_and_text() {
        assert_eq!(
            field("revision 3; event=evt-1; rule=wazuh-high", "event"),
            Some("evt-1")
        );
        assert_eq!(
            field("revision 3; event=evt-1; rule=wazuh-high", "rule"),
            Some("wazuh-high")
        );
        assert_eq!(field("revision 3", "rule"), None);
        assert_eq!(kind_of("quarantine"), Some("quarantined"));
        assert_eq!(kind_of("quarantine_confirmed"), None);
        let n = Notice {
            audit_id: 7,
            kind: "quarantined",
            at: "2030-01-01T00:00:00.000Z".into(),
            host_id: Some("h1".into()),
            hostname: Some("web1".into()),
            actor: "rule:wazuh-high".into(),
            reason: Some("automatic".into()),
            rule: Some("wazuh-high".into()),
            event_id: Some("evt-1".into()),
            dry_run: false,
            detail: None,
            url: Some(host_url(Some("https://cordon.example/"), "h1")),
        };
        let t = n.slack_text();
        assert!(
            t.contains("<https://cordon.example/console/hosts/h1|web1> quarantined by rule:wazuh-high"),
            "{t}"
        );
        assert!(t.contains("Rule: wazuh-high") && t.contains("Event: evt-1") && t.contains("Reason: automatic"));
        assert_eq!(n.payload("slack"), json!({"text": t}));
        assert_eq!(n.payload("webhook")["url"], "https://cordon.example/console/hosts/h1");
        let cfg = DeliveryConfig::default();
        let _ = &cfg;
        assert_eq!(backoff(&cfg, 1), Duration::from_secs(2));
        assert_eq!(backoff(&cfg, 3), Duration::from_secs(8));
        assert_eq!(backoff(&cfg, 25), Duration::from_secs(900));
    }
}

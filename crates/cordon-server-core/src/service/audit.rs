//! The audit log: filtered pages, streamed exports (JSON lines or CSV), and verification
//! of its hash chain.

#![deny(missing_docs)]

use cordon_proto::audit_chain::{ChainReport, Checkpoint, ExportTrailer, SignedCheckpoint};
use cordon_proto::{AuditRecord, Role};

use super::{Caller, ServiceError};
use crate::store::{AuditFilter, AuditOrder, Store, MAX_PAGE};
use crate::{ApiError, AppState};

/// Records per database round trip of a streamed export.
pub const EXPORT_CHUNK: i64 = 1000;

/// A `host_id` that names a hostname is resolved to the host's id
/// ([`Store::host_for_history`]: revoked hosts count, an ambiguous name is refused).
///
/// # Errors
/// 404 for a reference that names no host, 409 listing the hosts' ids for a name more
/// than one host (revoked ones included) has (trial25 F9: both were an empty 200).
///
/// A filter that cannot match what it asks for is refused instead of answering "no
/// records" (trial28 LOW-2): a token id below 1 (400) or that no token has (404, like an
/// unknown host), an `until` not after `since` (400).
async fn resolve_host(st: &AppState, filter: &mut AuditFilter) -> Result<(), ApiError> {
    if let Some(id) = filter.actor_token_id {
        if id < 1 {
            return Err(ApiError::invalid(format!("actor_token_id {id}: token ids start at 1")));
        }
        if !st.store.api_token_exists(id).await? {
            return Err(ApiError::not_found(format!(
                "no API token has id {id} (revoked ones included; `GET /v1/tokens` lists them, admin)"
            )));
        }
    }
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if until <= since {
            return Err(ApiError::invalid(
                "until is not after since: the time range holds nothing (since is inclusive, until exclusive)",
            ));
        }
    }
    if let Some(h) = &filter.host_id {
        filter.host_id = Some(st.store.host_for_history(h).await?);
    }
    Ok(())
}

/// Records matching `filter`, oldest first, at most `filter.limit` (viewer). A `host_id`
/// that names a hostname is resolved to the host's id first.
pub async fn list(st: &AppState, caller: &Caller, mut filter: AuditFilter) -> Result<Vec<AuditRecord>, ApiError> {
    caller.require(Role::Viewer)?;
    resolve_host(st, &mut filter).await?;
    Ok(st.store.audit(&filter).await?)
}

/// Parses the `order` parameter: `oldest` (default, also empty) or `newest`.
///
/// # Errors
/// 400 for anything else.
pub fn order(text: Option<&str>) -> Result<AuditOrder, ApiError> {
    match text.unwrap_or("oldest") {
        "oldest" | "" => Ok(AuditOrder::Oldest),
        "newest" => Ok(AuditOrder::Newest),
        other => Err(ApiError::invalid(format!("unknown order {other:?} (oldest or newest)"))),
    }
}

/// Parses a cursor this server handed out (`next_cursor`: the id of the last record of
/// the previous page); `None` or empty: from the start.
///
/// # Errors
/// 400 for text that is not one.
pub fn cursor(text: Option<&str>) -> Result<Option<i64>, ApiError> {
    match text.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => c
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("cursor {c:?} is not one this server handed out"))),
    }
}

fn check_limit(limit: Option<i64>) -> Result<(), ApiError> {
    if limit.is_some_and(|l| l < 1) {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    Ok(())
}

/// One page of the records matching `filter` (viewer; `filter.limit` is ignored) in
/// `order`, after record `after`, at most `limit` (default and maximum [`MAX_PAGE`]).
/// Returns the records and the cursor of the next page (`None` on the last).
///
/// # Errors
/// 400 for a limit below 1.
pub async fn page(
    st: &AppState,
    caller: &Caller,
    mut filter: AuditFilter,
    after: Option<i64>,
    order: AuditOrder,
    limit: Option<i64>,
) -> Result<(Vec<AuditRecord>, Option<String>), ApiError> {
    caller.require(Role::Viewer)?;
    check_limit(limit)?;
    resolve_host(st, &mut filter).await?;
    let (records, next) = st
        .store
        .audit_page(&filter, after, order, limit.unwrap_or(MAX_PAGE))
        .await?;
    Ok((records, next.map(|n| n.to_string())))
}

/// The alert a page of the audit log carries while the last verification of this
/// process found the chain tampered ([`crate::store::Store::chain_alert`]), for a viewer.
///
/// # Errors
/// 403 below viewer.
pub fn chain_alert(st: &AppState, caller: &Caller) -> Result<Option<cordon_proto::ChainAlert>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.chain_alert())
}

/// How many records match `filter` and come after record `after` in `order` (all
/// matching records without `after`), for a viewer: a filtered list's total, and how
/// many records come before a page.
pub async fn matching_count(
    st: &AppState,
    caller: &Caller,
    mut filter: AuditFilter,
    after: Option<i64>,
    order: AuditOrder,
) -> Result<i64, ApiError> {
    caller.require(Role::Viewer)?;
    resolve_host(st, &mut filter).await?;
    Ok(st.store.audit_matching_count(&filter, after, order).await?)
}

/// Every action the audit log records ([`crate::Store::audit_actions`]), for a viewer:
/// the Action filter's choices.
///
/// # Errors
/// 403 below viewer; 500 when the store fails.
pub async fn actions(st: &AppState, caller: &Caller) -> Result<Vec<String>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.audit_actions().await?)
}

/// The records as CSV ([`crate::audit_csv`]: formula-safe, with each host's name), for a
/// viewer.
pub async fn csv(st: &AppState, caller: &Caller, records: &[AuditRecord]) -> Result<String, ApiError> {
    caller.require(Role::Viewer)?;
    let names = st.store.hostnames().await?;
    Ok(crate::audit_csv::to_csv(records, &names))
}

/// State of one streamed export (JSON lines or CSV), read page by page: memory stays one
/// page whatever the log's size. Made by [`export`]; the front end sends each
/// [`Export::next_chunk`] until it returns `None`.
pub struct Export {
    store: std::sync::Arc<Store>,
    filter: AuditFilter,
    order: AuditOrder,
    after: Option<i64>,
    /// Records still to send (`None`: all).
    left: Option<i64>,
    csv: bool,
    /// Host id to hostname, for the CSV's hostname column.
    hostnames: std::collections::HashMap<String, String>,
    /// The CSV header is still to be sent.
    header: bool,
    /// A full JSON-lines export ends with the signed trailer ([`ExportTrailer`]) naming
    /// its last record; `None` when it gets none (filtered, CSV, no CA key).
    trailer: Option<std::sync::Arc<crate::pki::Ca>>,
    /// The last record sent (id and hash), for the trailer.
    last: Option<(i64, Option<String>)>,
}

/// Starts an export of the records matching `filter` (viewer; `filter.limit` is
/// ignored) in `order` after record `after`, at most `limit` records in all (default:
/// everything), as CSV when `csv`, else JSON lines.
///
/// # Errors
/// 400 for a limit below 1.
pub async fn export(
    st: &AppState,
    caller: &Caller,
    mut filter: AuditFilter,
    after: Option<i64>,
    order: AuditOrder,
    limit: Option<i64>,
    csv: bool,
) -> Result<Export, ApiError> {
    caller.require(Role::Viewer)?;
    check_limit(limit)?;
    resolve_host(st, &mut filter).await?;
    let hostnames = if csv {
        st.store.hostnames().await?
    } else {
        Default::default()
    };
    // Only an export of the whole log, oldest first, can be verified as a chain: that one
    // ends with a signed trailer.
    let full = !csv
        && filter.host_id.is_none()
        && filter.actor.is_none()
        && filter.action.is_none()
        && filter.since.is_none()
        && filter.until.is_none()
        && after.is_none()
        && limit.is_none()
        && order == AuditOrder::Oldest;
    let trailer = if full { st.ca.clone() } else { None };
    if trailer.is_some() {
        // Refused before the first byte, so the client gets the 409 itself (trial14
        // LOW-1: a refusal at the end of a streamed body reads as a transport error);
        // checked again before the trailer is signed.
        let foreign = st.store.foreign_through(i64::MAX).await?;
        unsignable(&st.store, foreign.is_some()).await?;
    }
    Ok(Export {
        store: st.store.clone(),
        trailer,
        last: None,
        hostnames,
        filter,
        order,
        after,
        left: limit,
        csv,
        header: csv,
    })
}

/// Why nothing may be signed over the log now, as the 409 `chain_tampered` that refuses
/// it: a record the server saw or checkpointed is missing or changed
/// ([`Store::known_missing`], trial14 HIGH-3), or — unless the signature itself names
/// records written by no server (`signs_foreign`, so an offline verification says
/// tampered anyway) — the last verification found the chain tampered.
///
/// # Errors
/// 409 `chain_tampered` naming the record; 500 on database errors.
async fn unsignable(store: &Store, signs_foreign: bool) -> Result<(), ApiError> {
    if let Some((id, why)) = store.known_missing().await? {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "chain_tampered",
            format!(
                "the export is not signed: the audit log is shorter than or differs from what this server saw \
                 (record {id}): {why}; run `cordon audit verify`"
            ),
        ));
    }
    if signs_foreign {
        return Ok(());
    }
    if let Some(alert) = store.chain_alert() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "chain_tampered",
            format!(
                "the export is not signed: this server's last verification found the audit chain \
                 tampered ({}{}); run `cordon audit verify`",
                alert.record.map_or(String::new(), |r| format!("record {r}: ")),
                alert.reason
            ),
        ));
    }
    Ok(())
}

impl Export {
    /// The next piece of the export (`None` once everything was sent). After an error
    /// the export is over.
    pub async fn next_chunk(&mut self) -> Result<Option<String>, ApiError> {
        let mut out = String::new();
        if self.header {
            self.header = false;
            out.push_str(crate::audit_csv::HEADER);
            out.push('\n');
        }
        let want = self.left.map_or(EXPORT_CHUNK, |l| l.min(EXPORT_CHUNK));
        if want > 0 {
            let page = self.store.audit_page(&self.filter, self.after, self.order, want).await;
            let (records, next) = match page {
                Ok(p) => p,
                Err(e) => {
                    self.left = Some(0);
                    return Err(e.into());
                }
            };
            self.after = next;
            self.left = match (self.left, next) {
                (_, None) => Some(0),
                (Some(l), _) => Some(l - records.len() as i64),
                (None, _) => None,
            };
            if self.csv {
                let body = crate::audit_csv::to_csv(&records, &self.hostnames);
                // Without its header line: that went out once, first.
                out.push_str(body.split_once('\n').map_or("", |(_, rows)| rows));
            } else {
                for r in &records {
                    let line = serde_json::to_string(r).map_err(|source| ServiceError::Encode {
                        what: "an audit record",
                        source,
                    })?;
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            if let Some(r) = records.last() {
                self.last = Some((r.id, r.hash.clone()));
            }
        } else if let Some(ca) = self.trailer.take() {
            // Everything was sent: sign the last record as the export's end, with the
            // records the server itself finds written by no server (trial10 H-C: the
            // trailer must never vouch for what the server calls forged).
            if let Some((id, Some(hash))) = &self.last {
                let foreign = self.store.foreign_through(*id).await?;
                unsignable(&self.store, foreign.is_some()).await?;
                let checkpoint = ca
                    .sign(cordon_proto::audit_chain::SignedCheckpoint {
                        last_id: *id,
                        hash: hash.clone(),
                        occasion: Some(cordon_proto::audit_chain::EXPORT_OCCASION.into()),
                        foreign,
                        ..Default::default()
                    })
                    .map_err(|source| ServiceError::Sign {
                        what: "the export trailer",
                        source,
                    })?;
                let line =
                    serde_json::to_string(&ExportTrailer { checkpoint }).map_err(|source| ServiceError::Encode {
                        what: "the export trailer",
                        source,
                    })?;
                out.push_str(&line);
                out.push('\n');
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// Checks the whole audit log's hash chain (admin) against the database's chain head
/// and, when given, a checkpoint `ID:HASH` recorded earlier (from the server log's
/// `audit checkpoint` line). The report names the first bad record.
///
/// # Errors
/// 400 for a checkpoint that is not `ID:HASH` or names an id below 1.
pub async fn verify(st: &AppState, caller: &Caller, checkpoint: Option<&str>) -> Result<ChainReport, ApiError> {
    caller.require(Role::Admin)?;
    let extra = match checkpoint.filter(|c| !c.is_empty()) {
        None => Vec::new(),
        Some(c) => vec![(
            cordon_proto::audit_chain::GIVEN_SOURCE.to_string(),
            cordon_proto::audit_chain::given_checkpoint(c).map_err(ApiError::invalid)?,
        )],
    };
    let signature = st.ca.as_ref().map(|ca| ca.checkpoint_checker());
    Ok(st.store.audit_verify(extra, signature).await?)
}

/// Name of the file in the server's data directory that keeps, outside the database,
/// the last checkpoint record this server wrote and the newest chain head it saw (ids
/// and hashes; rewritten within seconds of the log moving). The next start's checkpoint
/// names the newer of the two as its anchor, so a log rewound or rewritten behind it
/// while the server was stopped — after a crash too — fails verification.
pub const ANCHOR_FILE: &str = "audit-anchor.json";

/// Contents of [`ANCHOR_FILE`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AnchorFile {
    /// The last checkpoint record this server wrote: its id and hash.
    #[serde(default)]
    pub record: Option<Checkpoint>,
    /// The newest chain head this server saw in the database.
    #[serde(default)]
    pub seen: Option<Checkpoint>,
    /// The writer id (`audit_writers`) of the server process that wrote the file.
    #[serde(default)]
    pub writer: Option<String>,
    /// Records this server found in the database without a valid mark of a server of
    /// the deployment and no checkpoint of it signed yet: the next start's checkpoint
    /// signs them as `foreign` (kept here at once, so a crash cannot lose the verdict).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign: Vec<i64>,
}

/// What [`load_anchor`] found.
#[derive(Debug, Clone)]
pub enum AnchorStatus {
    /// The file, read.
    Loaded(AnchorFile),
    /// No file: a first start, or the file was deleted (said in the start checkpoint
    /// when the log already has checkpoints).
    Missing,
    /// The file exists but cannot be read or parsed (why).
    Unreadable(String),
}

impl AnchorStatus {
    /// The start checkpoint's facts from it ([`crate::store::StartFacts`]); `previous_over`: nothing
    /// else holds the data directory, so the writer that wrote the file has ended.
    pub fn start_facts(&self, previous_over: bool) -> crate::store::StartFacts {
        match self {
            AnchorStatus::Loaded(a) => {
                let outside = match (&a.record, &a.seen) {
                    (Some(r), Some(s)) => Some(if s.last_id > r.last_id { s.clone() } else { r.clone() }),
                    (r, s) => r.clone().or_else(|| s.clone()),
                };
                crate::store::StartFacts {
                    outside,
                    previous_writer: a.writer.clone().filter(|_| previous_over),
                    no_anchor: None,
                }
            }
            AnchorStatus::Missing => crate::store::StartFacts {
                no_anchor: Some(format!(
                    "no anchor found: {ANCHOR_FILE} is missing from the data directory"
                )),
                ..Default::default()
            },
            AnchorStatus::Unreadable(why) => crate::store::StartFacts {
                no_anchor: Some(format!("the anchor {ANCHOR_FILE} is unreadable: {why}")),
                ..Default::default()
            },
        }
    }
}

/// Reads [`AnchorFile`] from `path` (the data directory's [`ANCHOR_FILE`]) into the
/// store — the last checkpoint this server wrote and the newest head it saw — and says
/// what it found ([`read_anchor`]).
pub fn load_anchor(st: &AppState, path: &std::path::Path) -> AnchorStatus {
    let status = read_anchor(path);
    if let AnchorStatus::Loaded(a) = &status {
        if let Some(r) = &a.record {
            st.store.note_issued_checkpoint(r.clone());
        }
        if let Some(s) = &a.seen {
            st.store.note_seen_outside(s.clone());
        }
        st.store.note_foreign_outside(&a.foreign);
    }
    status
}

/// Reads and parses the anchor file at `path`. An unreadable or unparsable file is
/// logged as a warning. A missing one is not (pkg21 L8: the first `server run` after
/// `server init` warned although nothing was wrong): whether it matters depends on the
/// log, so the start checkpoint decides — it warns, and signs `no_anchor`, only when the
/// log already has checkpoints (the file was deleted); on a first start it is expected.
pub fn read_anchor(path: &std::path::Path) -> AnchorStatus {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<AnchorFile>(&text) {
            Ok(a) => {
                tracing::info!(record = ?a.record, seen = ?a.seen, "audit anchor loaded");
                AnchorStatus::Loaded(a)
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "audit anchor unreadable; ignored");
                AnchorStatus::Unreadable(e.to_string())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(file = %path.display(),
                "no audit anchor file: the start checkpoint tells a first start from a deleted file");
            AnchorStatus::Missing
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the audit anchor; ignored");
            AnchorStatus::Unreadable(e.to_string())
        }
    }
}

/// Writes what the store knows ([`AnchorFile`]) to `st.audit_anchor` (a new file renamed
/// over the old one, synced); nothing without one.
///
/// # Errors
/// [`ServiceError::Io`] `cannot write the audit anchor PATH` with the OS error as its
/// source (503 `storage_full` at the HTTP edge for a full disk, else 500);
/// [`ServiceError::Encode`].
pub fn save_anchor(st: &AppState) -> Result<(), ServiceError> {
    write_anchor(st)
}

/// [`save_anchor`] (the background look at the head logs its failure as a warning, every
/// time).
fn write_anchor(st: &AppState) -> Result<(), ServiceError> {
    use std::io::Write;
    let Some(path) = &st.audit_anchor else {
        return Ok(());
    };
    let a = AnchorFile {
        record: st.store.issued_checkpoint(),
        seen: st.store.seen_audit_head(),
        writer: Some(st.store.writer_id().to_string()),
        foreign: st.store.foreign_ids(),
    };
    let io = |e: std::io::Error| ServiceError::io(format!("write the audit anchor {}", path.display()), e);
    let text = serde_json::to_string(&a).map_err(|source| ServiceError::Encode {
        what: "the audit anchor",
        source,
    })?;
    // Replicas sharing a data directory write it too: each its own temporary file.
    let tmp = path.with_extension(format!("{}.{}.partial", std::process::id(), crate::timefmt::now_ms()));
    let written = create_private(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        // A failed write (a full disk: trial29 H2) leaves no half-written file behind.
        if let Err(e) = std::fs::remove_file(&tmp) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %tmp.display(), error = %e, "cannot remove a partial audit anchor");
            }
        }
    }
    written.map_err(io)
}

/// Creates (or truncates) `path` readable by the owner only (mode 0600 on Unix, like the
/// rest of the data directory): the anchor file and audit archives (trial7).
fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Occasions of a signed checkpoint, as its `occasion` says.
pub mod occasion {
    /// At every server start (always written).
    pub const START: &str = "start";
    /// Every ten minutes, when the log moved.
    pub const INTERVAL: &str = "interval";
    /// At an orderly shutdown (always written).
    pub const SHUTDOWN: &str = "shutdown";
}

/// Writes a signed checkpoint of the audit chain's head (issue 17): an audit record
/// (`audit_checkpoint`, actor `system`, so exports and notification targets that
/// subscribe to `audit_checkpoint` get a copy) whose detail also signs the chain start,
/// the checkpoint record before it and the newest record this server knew from outside
/// the database; a server log line (info level) `audit checkpoint checkpoint=ID:HASH
/// signed=JSON`; and, with `st.audit_anchor`, that file. At `interval` nothing is
/// written when the log is idle (its head already is a checkpoint); `start` and
/// `shutdown` always write one. Without a CA key the head is only logged, unsigned.
///
/// # Errors
/// [`ServiceError`]: the store's (the audit log found tampered is
/// [`ServiceError::is_audit_tampered`]), signing, the anchor file.
pub async fn checkpoint(st: &AppState, occasion: &str) -> Result<Option<SignedCheckpoint>, ServiceError> {
    match occasion {
        occasion::START => start_checkpoint(st, crate::store::StartFacts::default()).await,
        _ => Ok(write_checkpoint(st, occasion, None).await?.map(|(cp, _)| cp)),
    }
}

/// Verifies the whole chain once (a server's start, in the background) and logs the
/// verdict: listings then say when it was found tampered (`AuditList.chain_alert`). The
/// verifier logs a problem itself; this logs "intact", "intact but not every record is
/// vouched for", or that it could not verify.
pub async fn verify_at_start(st: &AppState) {
    let signature = st.ca.as_ref().map(|ca| ca.checkpoint_checker());
    match st.store.audit_verify(Vec::new(), signature).await {
        Ok(r) if r.problem.is_none() && r.warnings.is_empty() => {
            tracing::info!(records = r.chained, "audit chain verified at start: intact")
        }
        Ok(r) if r.problem.is_none() => {
            tracing::warn!(
                warnings = r.warnings.len(),
                "audit chain verified at start: intact, but not every record is vouched for"
            )
        }
        // The verifier logs the problem itself.
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot verify the audit chain at start"),
    }
}

/// What [`watch_head`] last kept in the anchor file.
#[derive(Debug, Default)]
pub struct HeadWatch {
    saved: Option<Checkpoint>,
}

impl HeadWatch {
    /// Starts from what the store saw so far (loaded from the anchor file at start).
    pub fn new(st: &AppState) -> HeadWatch {
        HeadWatch {
            saved: st.store.seen_audit_head(),
        }
    }
}

/// One look at the audit head, every few seconds while the server runs: refreshes this
/// server's `audit_writers` row (other writers see it live), notes the newest head (a
/// tail cut while the server runs is then named by verification even when the head row
/// was rewound), and keeps it in the anchor file when it moved, so a restart after a
/// crash still knows it. Failures are logged; the next look tries again.
pub async fn watch_head(st: &AppState, w: &mut HeadWatch) {
    if let Err(e) = st.store.writer_heartbeat().await {
        tracing::warn!(error = %crate::error::chain(&e), "cannot refresh this server's audit writer row");
    }
    if let Err(e) = st.store.note_audit_head().await {
        tracing::warn!(error = %crate::error::chain(&e), "cannot read the audit chain head");
        return;
    }
    let seen = st.store.seen_audit_head();
    if seen != w.saved {
        match write_anchor(st) {
            Ok(()) => w.saved = seen,
            Err(e) => tracing::warn!(error = %crate::error::chain(&e), "cannot keep the audit anchor"),
        }
    }
}

/// The shutdown checkpoint ([`checkpoint`] with occasion `shutdown`), returning also the
/// id of the checkpoint record itself, whose notifications an orderly stop delivers
/// before the process exits. `None` without a CA key (nothing is signed then).
///
/// # Errors
/// As [`checkpoint`].
pub async fn shutdown_checkpoint(st: &AppState) -> Result<Option<(SignedCheckpoint, i64)>, ServiceError> {
    write_checkpoint(st, occasion::SHUTDOWN, None).await
}

/// The start checkpoint (see [`checkpoint`] and
/// [`crate::store::Store::append_start_checkpoint`]): also registers this server as a
/// writer of the log and signs how the log moved while no server watched it, from what
/// the data directory told it (`facts`, see [`AnchorStatus::start_facts`]).
///
/// # Errors
/// As [`checkpoint`].
pub async fn start_checkpoint(
    st: &AppState,
    facts: crate::store::StartFacts,
) -> Result<Option<SignedCheckpoint>, ServiceError> {
    Ok(write_checkpoint(st, occasion::START, Some(facts))
        .await?
        .map(|(cp, _)| cp))
}

async fn write_checkpoint(
    st: &AppState,
    occasion: &str,
    start: Option<crate::store::StartFacts>,
) -> Result<Option<(SignedCheckpoint, i64)>, ServiceError> {
    let Some(ca) = st.ca.clone() else {
        st.store.log_audit_checkpoint().await?;
        return Ok(None);
    };
    let sign = |cp| ca.sign(cp);
    let out = match (occasion, start) {
        (_, Some(facts)) => st.store.append_start_checkpoint(facts, sign).await,
        (occasion::SHUTDOWN, None) => st.store.append_shutdown_checkpoint(sign).await,
        (_, None) => {
            st.store
                .append_checkpoint(occasion, occasion != occasion::INTERVAL, sign)
                .await
        }
    };
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            // Refused (a record this server saw or wrote is gone, trial35 MED-1): what it
            // knew still goes to the data directory, so the next start signs it (a stop
            // right after a cut left an anchor older than the cut record).
            if let Err(a) = save_anchor(st) {
                tracing::warn!(error = %crate::error::chain(&a), "cannot keep the audit anchor");
            }
            return Err(e.into());
        }
    };
    let Some((cp, own)) = out else {
        return Ok(None);
    };
    let signed = serde_json::to_string(&cp).map_err(|source| ServiceError::Encode {
        what: "the signed checkpoint",
        source,
    })?;
    tracing::info!(checkpoint = %format!("{}:{}", cp.last_id, cp.hash), record = own.last_id, %signed, "audit checkpoint");
    save_anchor(st)?;
    Ok(Some((cp, own.last_id)))
}

/// What one retention run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    /// The last archived and deleted record.
    pub cut: i64,
    /// Records archived (and deleted).
    pub records: u64,
    /// The archive file (JSON lines ending with a signed trailer: `cordon audit verify
    /// --file` checks it).
    pub archive: std::path::PathBuf,
}

/// Audit retention (issue 17): first verifies the whole log (refused — 409
/// `chain_tampered`, logged and recorded, see `retention_refused` — when it does not
/// verify or a record this server saw is missing), then archives the log's leading run of
/// records older than `max_age_ms` (see [`Store::retention_cut`]) to a new file in
/// `dir` — JSON lines ending with a signed trailer, written and synced before anything is
/// deleted — then deletes them, and appends an `audit_retention` record carrying the cut
/// signed (id and hash of the last deleted record), so the chain continues across the
/// cut and verification starts there. `None` when no record is that old, or when
/// another server made the same cut first (its archive is then removed: a cut is made
/// once).
///
/// # Errors
/// [`ServiceError::ChainTampered`] (409 `chain_tampered`) when the log does not verify;
/// [`ServiceError::Unconfigured`] without a CA key (the cut must be signed);
/// [`ServiceError::Io`] when the archive cannot be written (then nothing is deleted; a
/// full disk is 503 `storage_full` at the HTTP edge); the store's and signing errors.
pub async fn retain(st: &AppState, max_age_ms: i64, dir: &std::path::Path) -> Result<Option<Retained>, ServiceError> {
    use std::io::Write;
    let ca = st.ca.clone().ok_or(ServiceError::Unconfigured(
        "audit retention needs the CA key to sign the cut",
    ))?;
    // Old is older than `max_age_ms` when retention starts (what it writes itself is not).
    let before = crate::timefmt::now_ms() - max_age_ms;
    // Never over a log that does not verify (trial14 MED-3: retention archived and
    // deleted a stretch found tampered, and the database verified OK afterwards): what a
    // server saw must still be there, and the whole chain must check, marks included.
    if let Some((id, why)) = st.store.known_missing().await? {
        return Err(retention_refused(st, Some(id), &why).await);
    }
    let report = st.store.audit_verify(Vec::new(), Some(ca.checkpoint_checker())).await?;
    if let Some(p) = &report.problem {
        return Err(retention_refused(st, p.id, &p.reason).await);
    }
    let Some(upto) = report.head.as_ref().map(|h| h.last_id) else {
        return Ok(None);
    };
    let Some((cut, hash)) = st.store.retention_cut(before, upto).await? else {
        return Ok(None);
    };
    // Token rows not yet marked are bound while their creation records are still in the
    // log: without them, such a row could never be told from one added in the database
    // (trial35 MED-4).
    st.store.bind_unmarked_tokens().await?;
    let name = format!("audit-archive-through-{cut}-{}.jsonl", crate::timefmt::now_ms());
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.partial"));
    let io =
        |what: &str, e: std::io::Error| ServiceError::io(format!("{what} the audit archive in {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    let file = create_private(&tmp).map_err(|e| io("create", e))?;
    let mut out = std::io::BufWriter::new(file);
    let records = st.store.archive_audit(cut, &mut out).await?;
    let signed = match &hash {
        Some(h) => {
            let cp = sign_cut(&ca, cut, h)?;
            // The archive file ends like an export, with a trailer of its own occasion,
            // `archive` (the cut's own checkpoint, recorded in the log, cannot serve as
            // one); its signed time is when the archive was made.
            let trailer = ca
                .sign(cordon_proto::audit_chain::SignedCheckpoint {
                    last_id: cut,
                    hash: h.clone(),
                    occasion: Some(cordon_proto::audit_chain::ARCHIVE_OCCASION.into()),
                    ..Default::default()
                })
                .map_err(|source| ServiceError::Sign {
                    what: "the archive's trailer",
                    source,
                })?;
            let line = serde_json::to_string(&ExportTrailer { checkpoint: trailer }).map_err(|source| {
                ServiceError::Encode {
                    what: "the archive's trailer",
                    source,
                }
            })?;
            writeln!(out, "{line}").map_err(|e| io("write", e))?;
            Some(cp)
        }
        None => None,
    };
    let file = out.into_inner().map_err(|e| io("write", e.into_error()))?;
    file.sync_all().map_err(|e| io("sync", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
    let cut_detail = cordon_proto::audit_chain::RetentionCut {
        cut: match signed {
            Some(cp) => cp,
            // The records cut were written before the chain existed: nothing to continue.
            None => sign_cut(&ca, cut, cordon_proto::audit_chain::GENESIS)?,
        },
        records,
        archive: path.display().to_string(),
        // What the verification before the cut could not vouch for stays said after it.
        archived_warnings: report
            .warnings
            .iter()
            .filter(|w| w.checkpoint <= cut)
            .map(|w| w.reason.clone())
            .collect(),
    };
    let done = st
        .store
        .delete_audit_through(cut, hash.as_deref(), &cut_detail, |cp| ca.sign(cp))
        .await;
    let cp = match done {
        Ok(Some((_, cp))) => cp,
        Ok(None) | Err(_) => {
            // Nothing was deleted (another server made this cut first, or an error): the
            // archive is no record of a cut.
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(archive = %path.display(), error = %e, "cannot remove an archive of a cut not made");
            }
            done?;
            return Ok(None);
        }
    };
    if cp.is_some() {
        save_anchor(st)?;
    }
    tracing::info!(cut, records, archive = %path.display(), "audit retention: archived and deleted");
    Ok(Some(Retained {
        cut,
        records,
        archive: path,
    }))
}

/// Retention refused over a log that does not verify: logged as an error, recorded once
/// per reason in the log (`audit_retention_refused`, see
/// [`Store::note_retention_refused`]), and returned as [`ServiceError::ChainTampered`]
/// (409 `chain_tampered`).
async fn retention_refused(st: &AppState, record: Option<i64>, why: &str) -> ServiceError {
    let text = format!(
        "audit retention refused: the audit log does not verify ({}{why}); nothing was archived or deleted; \
         run `cordon audit verify`",
        record.map_or(String::new(), |r| format!("record {r}: "))
    );
    tracing::error!(reason = %text, "audit retention refused");
    if let Err(e) = st.store.note_retention_refused(&text).await {
        tracing::warn!(error = %e, "cannot record the refused audit retention");
    }
    ServiceError::ChainTampered(text)
}

/// The retention cut at record `cut` (hash `hash`), signed for
/// [`cordon_proto::audit_chain::RETENTION_CUT_OCCASION`]: only a cut signed for it vouches
/// for records missing before the log's first record (trial14 HIGH-1/HIGH-2).
fn sign_cut(ca: &crate::pki::Ca, cut: i64, hash: &str) -> Result<SignedCheckpoint, ServiceError> {
    ca.sign(SignedCheckpoint {
        last_id: cut,
        hash: hash.to_string(),
        occasion: Some(cordon_proto::audit_chain::RETENTION_CUT_OCCASION.into()),
        ..Default::default()
    })
    .map_err(|source| ServiceError::Sign {
        what: "the retention cut",
        source,
    })
}

/// Ties the database of `store` to the deployment of `ca` before a server or an offline
/// command writes anything ([`Store::bind_deployment_ca`], trial28 MED-2).
///
/// # Errors
/// [`crate::StoreError::OtherCa`] naming both fingerprints when the database belongs to
/// another CA; database errors.
pub async fn bind_deployment_ca(store: &Store, ca: &crate::pki::Ca) -> Result<(), crate::StoreError> {
    store.bind_deployment_ca(&ca.fingerprint()).await
}

/// What an initialised database already holds — (API tokens, last audit record id) — or
/// `None` when no deployment uses it yet ([`Store::deployment_in_use`]: `cordon server
/// init` refuses an initialised one, trial28 LOW-8).
///
/// # Errors
/// Database errors.
pub async fn deployment_in_use(store: &Store) -> Result<Option<(i64, i64)>, crate::StoreError> {
    store.deployment_in_use().await
}

/// Checks, at start, that `dir` can take retention archives (trial28 LOW-9: a file given
/// as the directory let the server start with retention failing hourly, logged as a bare
/// "File exists"): created when missing, a directory, writable (a probe file is created
/// and removed).
///
/// # Errors
/// What is wrong, in words, with the OS error.
pub fn check_archive_dir(dir: &std::path::Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err("is not a directory (a file of that name exists)".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
    let probe = dir.join(format!(".cordon-write-probe-{}", std::process::id()));
    create_private(&probe).map_err(|e| format!("cannot write in it: {e}"))?;
    std::fs::remove_file(&probe).map_err(|e| format!("cannot remove {}: {e}", probe.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// trial29 H2: an anchor write that failed (a full disk) left its temporary file
    /// `audit-anchor.<pid>.<ms>.partial` in the data directory, one more per retry. The
    /// failure here is the rename (the anchor's name is taken by a directory); the write
    /// fails and the directory holds nothing else.
    #[tokio::test]
    async fn a_failed_anchor_write_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::connect(&format!("sqlite://{}", dir.path().join("db").join("t.db").display()))
            .await
            .unwrap();
        let mut st = AppState::new(std::sync::Arc::new(store), None);
        let anchor = dir.path().join(ANCHOR_FILE);
        std::fs::create_dir_all(anchor.join("in-the-way")).unwrap();
        st.audit_anchor = Some(anchor.clone());
        let e = save_anchor(&st).expect_err("the anchor's name is a directory");
        // Typed (issue 13 MED-2): the OS error is the cause; 500 at the HTTP edge.
        assert!(matches!(e, ServiceError::Io { .. }), "{e:?}");
        assert_eq!(ApiError::from(e).status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["audit-anchor.json", "db"], "left behind: {names:?}");
    }

    /// A log writer for the tests below: every line the subscriber formats, kept.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// pkg21 L8: the first `server run` after `server init` (no anchor file yet, an empty
    /// log) logged the WARN "no audit anchor found"; nothing was wrong. It warns only once
    /// the log has checkpoints and the file is gone (the start checkpoint then signs it).
    #[tokio::test]
    async fn a_first_start_without_an_anchor_warns_of_nothing_a_deleted_anchor_still_warns() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::connect(&format!("sqlite://{}", dir.path().join("db").join("t.db").display()))
            .await
            .unwrap();
        let store = std::sync::Arc::new(store);
        // As `server init` then `server run`: the CA made, bound to the log.
        crate::pki::init(dir.path(), &["cordon.test".to_string()], &[]).unwrap();
        let ca = std::sync::Arc::new(crate::pki::Ca::load(dir.path()).unwrap());
        bind_deployment_ca(&store, &ca).await.unwrap();
        let anchor = dir.path().join(ANCHOR_FILE);
        let start = |lines: Lines| {
            let store = store.clone();
            let anchor = anchor.clone();
            let ca = ca.clone();
            async move {
                let subscriber = tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::INFO)
                    .with_ansi(false)
                    .with_writer(move || lines.clone())
                    .finish();
                let _guard = tracing::subscriber::set_default(subscriber);
                let mut st = AppState::new(store, Some(ca));
                let status = load_anchor(&st, &anchor);
                st.audit_anchor = Some(anchor);
                start_checkpoint(&st, status.start_facts(true)).await.unwrap();
                shutdown_checkpoint(&st).await.unwrap();
            }
        };
        let first = Lines::default();
        start(first.clone()).await;
        let text = first.text();
        assert!(!text.contains("WARN"), "a first start warned: {text}");
        assert!(anchor.is_file(), "the start wrote no anchor");
        std::fs::remove_file(&anchor).unwrap();
        let second = Lines::default();
        start(second.clone()).await;
        let text = second.text();
        assert!(
            text.contains("WARN") && text.contains("no anchor found"),
            "a start with the anchor deleted did not warn: {text}"
        );
    }
}

//! The audit log's hash chain (issue 17): the canonical encoding of a record, the chain
//! hash, and the verifier shared by the server (`GET /v1/audit/verify`) and the CLI
//! (`cordon audit verify --file export.jsonl`), so an export is checked offline by the
//! same code that checks the database.
//!
//! Each chained record carries `prev_hash` (the `hash` of the chained record before it,
//! [`GENESIS`] for the first) and `hash = SHA-256(prev_hash ‖ canonical(record))` in
//! lower-case hex. The canonical encoding is hand-written (not serde JSON) because it
//! must never change with a serializer's formatting: a version tag, then every field
//! as a presence byte and a big-endian u64 length before its UTF-8 bytes.
//!
//! What the chain proves: editing, deleting, inserting or reordering records anywhere
//! before the last one breaks the chain at the first affected record. Removing records
//! from the *end* leaves a shorter valid chain; that is caught only against a
//! [`Checkpoint`] (the head id and hash) recorded elsewhere — the server writes one to
//! its log at start and at every verification. Anyone able to rewrite the database can
//! also recompute every later hash; a checkpoint kept outside the database catches that
//! too, because the recomputed hash of the checkpointed record differs.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditRecord;

/// The smallest id a database gives an audit record (SQLite's and PostgreSQL's
/// sequences start at 1): a record with a smaller id was inserted directly.
pub const FIRST_ID: i64 = 1;

/// Source label of a checkpoint the user gives (`cordon audit verify --checkpoint ID:HASH`,
/// `GET /v1/audit/verify?checkpoint=`): a copy kept outside the database.
pub const GIVEN_SOURCE: &str = "given";

/// A checkpoint the user gives (`ID:HASH`), parsed and checked: its id must be one a
/// database gives a record (at least [`FIRST_ID`]). `Err` says what is wrong (bad input).
pub fn given_checkpoint(text: &str) -> Result<Checkpoint, String> {
    let cp = text.parse::<Checkpoint>()?;
    if cp.last_id < FIRST_ID {
        return Err(format!(
            "checkpoint {text:?}: the record id must be {FIRST_ID} or more (no record has id {}): give a checkpoint \
             copied from the server log or a notification target",
            cp.last_id
        ));
    }
    Ok(cp)
}

/// `prev_hash` of the first chained record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const VERSION_TAG: &[u8] = b"cordon-audit-chain-v1\n";

fn field(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The canonical bytes of every field of `r` except `prev_hash` and `hash`: the version
/// tag, the id (big-endian i64), then `at`, `actor`, `action`, `host_id`, `comment`,
/// `result`, `detail`, and — only when either is set — a tag followed by `event_id` and
/// `rule`.
pub fn canonical(r: &AuditRecord) -> Vec<u8> {
    let mut out = VERSION_TAG.to_vec();
    out.extend_from_slice(&r.id.to_be_bytes());
    field(&mut out, Some(&r.at));
    field(&mut out, Some(&r.actor));
    field(&mut out, Some(&r.action));
    field(&mut out, r.host_id.as_deref());
    field(&mut out, r.comment.as_deref());
    field(&mut out, Some(&r.result));
    field(&mut out, r.detail.as_deref());
    // The structured fields of automatic actions (issue 13) come after a tag, and only
    // when one is set: a record without them encodes exactly as before they existed, so
    // chains written earlier still verify, while setting, changing or removing either
    // one changes the hash.
    if r.event_id.is_some() || r.rule.is_some() {
        out.extend_from_slice(AUTOMATION_TAG);
        field(&mut out, r.event_id.as_deref());
        field(&mut out, r.rule.as_deref());
    }
    // The id of the API token behind the actor (issue 17), the same way: only when set.
    if let Some(id) = r.actor_token_id {
        out.extend_from_slice(ACTOR_TOKEN_TAG);
        out.extend_from_slice(&id.to_be_bytes());
    }
    out
}

/// Starts the optional `actor_token_id` in [`canonical`].
const ACTOR_TOKEN_TAG: &[u8] = b"\nactor-token\n";

/// Starts the optional automation fields (`event_id`, `rule`) in [`canonical`].
const AUTOMATION_TAG: &[u8] = b"\nautomation\n";

/// `SHA-256(prev ‖ canonical(r))`, lower-case hex.
pub fn chain_hash(prev: &str, r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical(r));
    hex::encode(h.finalize())
}

/// A chain head recorded outside the log: the id of the last chained record and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checkpoint {
    /// Id of the last chained record.
    pub last_id: i64,
    /// That record's chain hash (64 lower-case hex digits, SHA-256).
    pub hash: String,
}

impl std::str::FromStr for Checkpoint {
    type Err = String;
    /// Parses `ID:HASH` (as printed by the server's `audit checkpoint` log line).
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, hash) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("checkpoint {s:?} is not ID:HASH"))?;
        let last_id = id
            .parse::<i64>()
            .map_err(|_| format!("checkpoint {s:?}: {id:?} is not a record id"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("checkpoint {s:?}: {hash:?} is not a 64-digit hex SHA-256"));
        }
        Ok(Checkpoint {
            last_id,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

/// Action of the audit records that carry a [`SignedCheckpoint`] (in `detail`, as JSON)
/// of the record just before them: written by the server at start and every ten
/// minutes when the log moved, so exports carry signed checkpoints.
pub const CHECKPOINT_ACTION: &str = "audit_checkpoint";

/// Action of the audit record written when retention archived and deleted old records;
/// its `detail` is a [`RetentionCut`] (JSON).
pub const RETENTION_ACTION: &str = "audit_retention";

/// The `occasion` of the signed cut a [`RETENTION_ACTION`] record carries
/// ([`RetentionCut::cut`]): no checkpoint record is signed for it, so a checkpoint copied
/// from the log (any viewer can read them) cannot pass for a retention cut (trial14
/// HIGH-2). The checkpoint record retention appends after its retention record is signed
/// for `retention`, the occasion of the run.
pub const RETENTION_CUT_OCCASION: &str = "retention-cut";

/// The `occasion` of an export's trailer: only a checkpoint signed with it proves where an
/// export ends. A checkpoint copied from the log (`start`, `interval`, `shutdown`,
/// `retention` — any viewer can read them) cannot: put after a cut-down file, it would
/// vouch for records the file no longer has (trial finding).
pub const EXPORT_OCCASION: &str = "export";

/// The `occasion` of a retention archive's trailer (`audit-archive-through-ID-TIME.jsonl`,
/// written before retention deletes the records it holds): like an export's trailer it
/// proves where the file ends, and says what the file is. Archives written before this
/// occasion existed carry [`EXPORT_OCCASION`] and still verify.
pub const ARCHIVE_OCCASION: &str = "archive";

/// Whether `occasion` is one a file's trailer may carry ([`EXPORT_OCCASION`],
/// [`ARCHIVE_OCCASION`]).
pub fn is_trailer_occasion(occasion: Option<&str>) -> bool {
    matches!(occasion, Some(EXPORT_OCCASION | ARCHIVE_OCCASION))
}

/// A chain head (`last_id`, `hash`) signed with the server's CA key: proof, checkable
/// offline with the CA certificate, that the server's log contained that record with
/// that hash at `at`.
///
/// Checkpoint records written by this version also carry (and sign) where the chain
/// starts, the checkpoint record before them and the last record the server knew it
/// had written (`chain_start`, `prev`, `anchor`, `occasion`: "version 2"). Deleting or
/// rewriting a checkpoint record, moving the chain start, or rewinding the log behind
/// the server's back then breaks a signature or a link the verifier checks. Older
/// checkpoints (without them) still verify as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedCheckpoint {
    /// The record signed (0 with [`GENESIS`]: the start of an empty chain).
    pub last_id: i64,
    /// That record's chain hash (64 lower-case hex digits; [`GENESIS`] with `last_id` 0).
    pub hash: String,
    /// RFC 3339, when the server signed it.
    #[serde(default)]
    pub at: String,
    /// SHA-256 fingerprint (lower-case hex) of the CA certificate whose key signed it.
    #[serde(default)]
    pub key: String,
    /// The signature (lower-case hex; ECDSA in ASN.1 DER for the ECDSA CA keys `cordon
    /// server init` makes) over [`SignedCheckpoint::signed_message`]. Empty when it was
    /// removed (a file missing it still parses, and fails verification as tampered).
    #[serde(default)]
    pub signature: String,
    /// Version 2: the chain-start marker — records with a larger id were written after
    /// the hash chain existed and must carry hashes (0: every record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_start: Option<i64>,
    /// Version 2: the checkpoint (or retention) record before this checkpoint record in
    /// the log — its id and hash — so checkpoint records form a chain of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Checkpoint>,
    /// Version 2: the last record the signing server knew to be in the log (id and hash)
    /// from outside the database: the last record it wrote or saw while running, or at
    /// start the last checkpoint it wrote before (kept in its data directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Checkpoint>,
    /// Version 2: why it was written: `start`, `interval`, `shutdown` or `retention`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occasion: Option<String>,
    /// Version 3, at `shutdown`: `true` when no other server was writing to the log (no
    /// other live writer registered): the log must not move until a server starts again,
    /// so the next record must be that start's checkpoint record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_writer: Option<bool>,
    /// Version 3, at `start`: records found after the last server's orderly stop (a
    /// `shutdown` checkpoint with `last_writer`): written while no server ran, so added
    /// to the database directly. Verification names the first as tampered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_writes: Option<RecordRange>,
    /// Version 3, at `start`: records after the last checkpoint and after the newest head
    /// the previous server kept in its anchor file, with no orderly stop behind them (a
    /// crash, `kill -9`): written in the crash window and not vouched for by anything
    /// outside the database. Verification reports them as a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unproven: Option<RecordRange>,
    /// Version 3, at `start`: why the server had no anchor (the data directory's
    /// `audit-anchor.json` missing or unreadable while the log already had checkpoints):
    /// the start could not compare the log with what the server knew. A warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_anchor: Option<String>,
    /// Version 4: records after the signing server's previous checkpoint that no server
    /// wrote — neither this server (it marks what it appends with a per-process secret)
    /// nor another server whose signed checkpoint vouches for them: added to the
    /// database directly while the server ran. Verification names the first as tampered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign: Option<RecordRange>,
    /// Version 4: rows of the database's writer table (`audit_writers`) that claimed a
    /// live server but carried no valid signature by the CA key (or a time in the
    /// future): ignored for every decision, named here as what they are (a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_writers: Option<String>,
    /// Version 5: `true` when every record from this checkpoint record on carries the
    /// deployment's record mark (an HMAC under a key derived from the CA private key,
    /// checkable by every server of the deployment): a record after it without a valid
    /// mark was written by no server. Records before the first such checkpoint were
    /// written before marks existed and are covered by the checkpoints signed then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked: Option<bool>,
}

/// A run of audit records by id (inclusive), and how many records it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordRange {
    /// The first record's id.
    pub first: i64,
    /// The last record's id.
    pub last: i64,
    /// How many records lie between them (both included).
    pub count: u64,
}

impl std::fmt::Display for RecordRange {
    /// `records 7–9 (3)`, or `record 7` for one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "record {}", self.first)
        } else {
            write!(f, "records {}–{} ({})", self.first, self.last, self.count)
        }
    }
}

impl SignedCheckpoint {
    /// The signed bytes of a version-1 checkpoint: a version tag, then id, hash, time
    /// and key fingerprint, one a line.
    pub fn message(last_id: i64, hash: &str, at: &str, key: &str) -> Vec<u8> {
        format!("cordon-audit-checkpoint-v1\n{last_id}\n{hash}\n{at}\n{key}\n").into_bytes()
    }

    /// Carries any version-2 field (then all of them are signed).
    pub fn is_v2(&self) -> bool {
        self.chain_start.is_some()
            || self.prev.is_some()
            || self.anchor.is_some()
            || self.occasion.is_some()
            || self.is_v3()
    }

    /// Carries any version-3 field (`last_writer`, `stopped_writes`, `unproven`,
    /// `no_anchor`; then the version-3 message is signed).
    pub fn is_v3(&self) -> bool {
        self.last_writer.is_some()
            || self.stopped_writes.is_some()
            || self.unproven.is_some()
            || self.no_anchor.is_some()
            || self.is_v4()
    }

    /// Carries any version-4 field (`foreign`, `ignored_writers`; then the version-4
    /// message is signed).
    pub fn is_v4(&self) -> bool {
        self.foreign.is_some() || self.ignored_writers.is_some() || self.is_v5()
    }

    /// Carries a version-5 field (`marked`; then the version-5 message is signed).
    pub fn is_v5(&self) -> bool {
        self.marked.is_some()
    }

    /// The bytes the signature covers: [`SignedCheckpoint::message`] for version 1;
    /// for version 2 another tag, the same four lines, then `chain_start`, `prev`,
    /// `anchor` (`ID:HASH`) and `occasion`, `-` for an absent one; for version 3 a third
    /// tag, the version-2 lines, then `last_writer` (`true`/`false`), `stopped_writes`
    /// and `unproven` (`FIRST-LAST:COUNT`) and `no_anchor`, `-` for an absent one; for
    /// version 4 a fourth tag, the version-3 lines, then `foreign` (`FIRST-LAST:COUNT`)
    /// and `ignored_writers`; for version 5 a fifth tag, the version-4 lines, then
    /// `marked` (`true`/`false`).
    pub fn signed_message(&self) -> Vec<u8> {
        if !self.is_v2() {
            return Self::message(self.last_id, &self.hash, &self.at, &self.key);
        }
        let opt = |c: &Option<Checkpoint>| {
            c.as_ref()
                .map_or("-".to_string(), |c| format!("{}:{}", c.last_id, c.hash))
        };
        let range = |r: &Option<RecordRange>| {
            r.as_ref()
                .map_or("-".to_string(), |r| format!("{}-{}:{}", r.first, r.last, r.count))
        };
        let tag = if self.is_v5() {
            "cordon-audit-checkpoint-v5"
        } else if self.is_v4() {
            "cordon-audit-checkpoint-v4"
        } else if self.is_v3() {
            "cordon-audit-checkpoint-v3"
        } else {
            "cordon-audit-checkpoint-v2"
        };
        let mut out = format!(
            "{tag}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.last_id,
            self.hash,
            self.at,
            self.key,
            self.chain_start.map_or("-".to_string(), |s| s.to_string()),
            opt(&self.prev),
            opt(&self.anchor),
            self.occasion.as_deref().unwrap_or("-").replace('\n', " "),
        );
        if self.is_v3() {
            out.push_str(&format!(
                "{}\n{}\n{}\n{}\n",
                self.last_writer.map_or("-".to_string(), |w| w.to_string()),
                range(&self.stopped_writes),
                range(&self.unproven),
                self.no_anchor.as_deref().unwrap_or("-").replace('\n', " "),
            ));
        }
        if self.is_v4() {
            out.push_str(&format!(
                "{}\n{}\n",
                range(&self.foreign),
                self.ignored_writers.as_deref().unwrap_or("-").replace('\n', " "),
            ));
        }
        if self.is_v5() {
            out.push_str(&format!("{}\n", self.marked.map_or("-".to_string(), |m| m.to_string())));
        }
        out.into_bytes()
    }

    /// Whether it has the shape of a retention cut: signed for [`RETENTION_CUT_OCCASION`],
    /// or a version-1 checkpoint (no occasion, no version-2 field: what retention signed
    /// before cuts carried their occasion). Any checkpoint a checkpoint record carries has
    /// an occasion other than that one, so it is no cut.
    pub fn is_retention_cut(&self) -> bool {
        match self.occasion.as_deref() {
            Some(o) => o == RETENTION_CUT_OCCASION,
            None => !self.is_v2(),
        }
    }

    /// The unsigned head it names.
    pub fn head(&self) -> Checkpoint {
        Checkpoint {
            last_id: self.last_id,
            hash: self.hash.clone(),
        }
    }
}

/// `detail` of a [`RETENTION_ACTION`] record: where the chain was cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionCut {
    /// The last deleted record, signed: the first record kept has its hash as `prev_hash`.
    pub cut: SignedCheckpoint,
    /// How many records were archived and deleted.
    pub records: u64,
    /// The archive file they were written to (on the server).
    pub archive: String,
    /// The warnings the verification retention ran first found (records not vouched for,
    /// a start without its anchor, …; see [`ChainReport::warnings`]): the part cut away
    /// was not all vouched for. Verification of the log keeps saying so after the cut
    /// (trial25 F8: the live log then read plain OK). Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archived_warnings: Vec<String>,
}

/// The last line of a full JSON-lines export: `{"checkpoint": {...}}`, the export's last
/// record signed, so removing records from the end of the file is detected offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTrailer {
    /// The export's last record, signed for the occasion [`EXPORT_OCCASION`] (a
    /// retention archive's: [`ARCHIVE_OCCASION`]).
    pub checkpoint: SignedCheckpoint,
}

/// Checks a checkpoint's signature (with the CA certificate); `Err` says why it fails.
pub type SignatureCheck = Box<dyn Fn(&SignedCheckpoint) -> Result<(), String> + Send + Sync>;

/// The first record where the chain breaks, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainProblem {
    /// Id of the first bad record (for a truncated tail: the last record present);
    /// `None` when no record can be named — then `subject` says what failed.
    pub id: Option<i64>,
    /// What failed when no record can be named (`the export's trailer`, `the log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// 1-based position of that record in the checked sequence (line number of an export).
    pub position: u64,
    /// What is wrong, in words (e.g. `hash does not match its content`).
    pub reason: String,
}

/// Result of checking a sequence of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainReport {
    /// No problem found *and* every signature was checked: `false` as well when signed
    /// checkpoints could not be checked (no CA certificate), see `unchecked_signatures`.
    pub ok: bool,
    /// Records written before the chain existed (the migration that added it): they
    /// carry no hash and are not protected.
    pub unchained: u64,
    /// Records checked against the chain.
    pub chained: u64,
    /// Id of the first chained record (where the chain starts).
    pub first_chained_id: Option<i64>,
    /// Head of the chain as checked: last chained record and its hash.
    pub head: Option<Checkpoint>,
    /// Checkpoints the log was compared with (where each came from, e.g. `database`).
    #[serde(default)]
    pub checkpoints: Vec<String>,
    /// Signed checkpoints met (checkpoint records, retention cuts, an export trailer)
    /// whose signature was checked.
    #[serde(default)]
    pub signed_checkpoints: u64,
    /// Signed checkpoints whose signature could not be checked (no CA certificate given).
    #[serde(default)]
    pub unchecked_signatures: u64,
    /// The chain does not start at the genesis value but continues a cut made by
    /// retention: the last deleted record (id and hash), vouched for by a signed cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues_after: Option<Checkpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The first problem found; `None` when the chain checked intact.
    pub problem: Option<ChainProblem>,
    /// Facts signed checkpoints state that leave records unproven without proving
    /// tampering (records in a crash window, a start without the anchor file): the chain
    /// is intact but not every record is vouched for. Any of them makes `ok` false.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ChainWarning>,
    /// An export file without a signed trailer (a filtered export, or a full one whose
    /// end was cut off): only what its records show on their own was checked (see
    /// [`PartialExport`]); nothing in it is vouched for. Makes `ok` false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_full_export: Option<PartialExport>,
    /// The export's signed checkpoints are all signed by the key of another CA than the
    /// one given: their signatures were not checked (see [`OtherCa`]). Makes `ok` false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_ca: Option<OtherCa>,
    /// A file's signed trailer the file was found to end at: what it was signed for
    /// ([`EXPORT_OCCASION`] or [`ARCHIVE_OCCASION`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailer_occasion: Option<String>,
    /// When the server signed that trailer (RFC 3339, the trailer's signed `at`): when the
    /// export or archive was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailer_signed_at: Option<String>,
    /// Checkpoints given from outside (`--checkpoint`) that could not be compared: they name
    /// a record before the one a signed retention cut archived the log after (one line
    /// each, saying so; verify the archive with them). Never listed in `checkpoints`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_compared: Vec<String>,
    /// The first verified checkpoint record signed `marked: true`: from it on every record
    /// carries the mark of the server that wrote it (checked by the server; records
    /// before it predate marks and are vouched for by the checkpoints signed then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked_from: Option<i64>,
    /// A checkpoint given from outside (`--checkpoint`, [`GIVEN_SOURCE`]) that the log
    /// does not match: the record it names has another hash, or the log ends before it.
    /// That proves the log or the checkpoint wrong (a typo, another deployment's), so it is
    /// the caller's result, never `problem` (the log's own verdict, which the server keeps
    /// and shows every viewer: trial33 MED-D); the rest of the log is verified all the
    /// same. Makes `ok` false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_mismatch: Option<ChainProblem>,
    /// The file's last line is cut off (not complete JSON: truncated by a full disk, a
    /// killed `cordon audit > FILE`, a partial download): its 1-based line number. The
    /// lines before it were verified; the file is not a full export (trial33 LOW-B).
    /// Makes `ok` false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_off_line: Option<u64>,
}

/// What the records of an export without a signed trailer show on their own
/// ([`ChainReport::not_full_export`]). Such a file proves neither where the log ended
/// nor that no record between two of its records is missing; each record's hash is
/// recomputed (so an edit made without recomputing it is named) and the links between
/// records that follow each other in the chain are counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartialExport {
    /// Records whose `prev_hash` is the hash of the record before them in the file (the
    /// chain links present).
    pub linked: u64,
    /// Places where the record before in the file is not the one the chain names (records
    /// left out by a filter, or removed).
    pub gaps: u64,
}

/// The CA a file's signatures were made with, when it is not the one given
/// ([`ChainReport::other_ca`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OtherCa {
    /// SHA-256 fingerprints of the CA certificates the file's checkpoints name as their
    /// signer (`key`).
    pub signed_by: Vec<String>,
    /// The fingerprint of the CA certificate given (`--ca`).
    pub given: String,
}

/// Something a signed checkpoint states that leaves records unproven (see
/// [`ChainReport::warnings`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainWarning {
    /// The first record concerned, when records are (`None`: the warning is about the
    /// server's start, e.g. a missing anchor file).
    pub id: Option<i64>,
    /// The checkpoint record that signed the fact.
    pub checkpoint: i64,
    /// What the checkpoint states, in words.
    pub reason: String,
}

/// Incremental verifier: feed records in log order with [`Verifier::push`], then
/// [`Verifier::finish`] (a database) or [`Verifier::finish_export`] (a file). Memory
/// grows with the number of checkpoint records (one per start and ten minutes of
/// activity) and the records between two checkpoints, not with the log's size.
#[derive(Default)]
pub struct Verifier {
    /// Checks signatures of signed checkpoints; without it they are counted unchecked.
    signature: Option<SignatureCheck>,
    signed: u64,
    unchecked: u64,
    /// The first chained record's `prev_hash` was not genesis: the id before it is
    /// unknown until a signed retention cut names it.
    resumed_from: Option<String>,
    /// A retention cut in the log vouched for `resumed_from`.
    continues_after: Option<Checkpoint>,
    position: u64,
    unchained: u64,
    chained: u64,
    first_chained_id: Option<i64>,
    head: Option<Checkpoint>,
    problem: Option<ChainProblem>,
    /// Outside checkpoints, and whether each was met in the log.
    checkpoints: Vec<(String, Checkpoint)>,
    matched: Vec<bool>,
    /// Records with a larger id must be chained (set from the database, or from the
    /// signed chain start of the log's last checkpoint).
    started_after: Option<i64>,
    /// The last record without a hash (before the chain started).
    last_unchained: Option<i64>,
    /// The last checkpoint or retention record met (id and hash).
    last_ckpt: Option<Checkpoint>,
    /// Every checkpoint or retention record met: id to hash.
    ckpt_records: std::collections::HashMap<i64, String>,
    /// The records since the last checkpoint record (it included): id to hash and
    /// position.
    window: std::collections::HashMap<i64, (String, u64)>,
    /// The record a failed check named, when it is not the record being checked (id,
    /// position): a checkpoint's anchor naming an earlier record that was rewritten.
    problem_at: Option<(i64, u64)>,
    /// The last record a verified checkpoint record signed.
    vouched_through: Option<i64>,
    /// A verified `shutdown` checkpoint record with `last_writer` (its id): until a
    /// checkpoint record follows, any record was written while no server ran.
    stopped_by: Option<i64>,
    /// Facts of verified checkpoints that leave records unproven.
    warnings: Vec<ChainWarning>,
    /// Every record's position by id (an export trailer's `foreign` names a record).
    positions: std::collections::HashMap<i64, u64>,
    /// The signed trailer the file ends at: its occasion and signing time.
    trailer: Option<(String, String)>,
    /// The first checkpoint record signed `marked: true`.
    marked_from: Option<i64>,
    /// The first given checkpoint the log does not match ([`ChainReport::given_mismatch`]).
    given_mismatch: Option<ChainProblem>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("position", &self.position)
            .field("head", &self.head)
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

/// `r` is a checkpoint or a retention record (a link of the checkpoint chain).
fn is_checkpoint_record(r: &AuditRecord) -> bool {
    r.action == CHECKPOINT_ACTION || r.action == RETENTION_ACTION
}

/// The signed chain start of the last version-2 checkpoint record among `records`.
pub fn signed_chain_start<'a>(records: impl DoubleEndedIterator<Item = &'a AuditRecord>) -> Option<i64> {
    records.rev().filter(|r| r.action == CHECKPOINT_ACTION).find_map(|r| {
        serde_json::from_str::<SignedCheckpoint>(r.detail.as_deref()?)
            .ok()?
            .chain_start
    })
}

impl Verifier {
    /// A verifier that also checks the log against `checkpoints` (source label, head).
    pub fn new(checkpoints: Vec<(String, Checkpoint)>) -> Self {
        let matched = vec![false; checkpoints.len()];
        Verifier {
            checkpoints,
            matched,
            ..Default::default()
        }
    }

    /// Checks the signatures of signed checkpoints with `check` (e.g. the CA certificate).
    pub fn with_signatures(mut self, check: SignatureCheck) -> Self {
        self.signature = Some(check);
        self
    }

    /// The log continues a chain cut by retention: its first chained record's
    /// `prev_hash` is `prev` (known from a source the caller trusts).
    pub fn resumes_after(mut self, cut: Checkpoint) -> Self {
        self.continues_after = Some(cut);
        self
    }

    fn check_signature(&mut self, cp: &SignedCheckpoint) -> Result<(), String> {
        if cp.signature.is_empty() {
            return Err("carries no signature (it was removed)".into());
        }
        match &self.signature {
            Some(check) => {
                check(cp)?;
                self.signed += 1;
            }
            None => self.unchecked += 1,
        }
        Ok(())
    }

    /// Records with an id above `id` were written after the chain existed: one without
    /// a hash is an error (the database knows where its chain starts; an export does not).
    pub fn chain_starts_after(mut self, id: i64) -> Self {
        self.started_after = Some(id);
        self
    }

    /// The chain continues a retention cut (so links to records before the log's first
    /// record cannot be checked here: they were archived).
    fn resumed(&self) -> bool {
        self.resumed_from.is_some() || self.continues_after.is_some()
    }

    /// `id` names a record before this log's first chained record, removed by retention.
    fn archived(&self, id: i64) -> bool {
        self.resumed() && self.first_chained_id.is_none_or(|f| id < f)
    }

    /// Checks the next record; after the first problem, further records are ignored.
    pub fn push(&mut self, r: &AuditRecord) {
        if self.problem.is_some() {
            return;
        }
        self.position += 1;
        let position = self.position;
        self.positions.insert(r.id, position);
        let bad = |reason: String| ChainProblem {
            id: Some(r.id),
            subject: None,
            position,
            reason,
        };
        if r.id < FIRST_ID {
            // No database gives a record an id below 1 (SQLite and PostgreSQL both start
            // at 1): such a record was inserted directly, with an id chosen to sort first
            // (trial10 H-D: taken for one predating the chain).
            self.problem = Some(bad(format!(
                "has id {}, below the first id any database gives a record ({FIRST_ID}): it was inserted \
                 directly, not written by a server",
                r.id
            )));
            return;
        }
        let (prev, hash) = match (&r.prev_hash, &r.hash) {
            // Only records up to a chain start after the first id may predate the chain
            // (a signed chain start of 0: none may).
            (None, None) if self.head.is_none() && self.started_after.is_none_or(|s| r.id <= s) => {
                self.unchained += 1;
                self.last_unchained = Some(r.id);
                return;
            }
            (Some(p), Some(h)) => (p, h),
            _ => {
                self.problem = Some(bad(if r.hash.is_none() {
                    "carries no chain hash but was written after the chain started (hash removed or record inserted)"
                        .into()
                } else {
                    "carries only one of prev_hash and hash".into()
                }));
                return;
            }
        };
        let expected_prev = match (&self.head, &self.continues_after) {
            (Some(h), _) => h.hash.as_str(),
            (None, Some(cut)) => cut.hash.as_str(),
            // An export that starts after a retention cut: the first prev_hash is taken
            // on trust until a signed retention record in the log vouches for it.
            (None, None) if prev != GENESIS => {
                self.resumed_from = Some(prev.clone());
                prev.as_str()
            }
            (None, None) => GENESIS,
        };
        if prev != expected_prev {
            self.problem = Some(bad(match &self.head {
                None => "is the first chained record but its prev_hash is not the genesis value \
                         nor the hash of the last record retention removed (records before it were removed)"
                    .into(),
                Some(h) => format!(
                    "prev_hash does not match the hash of the record before it (id {}): \
                     a record was removed, inserted or moved here",
                    h.last_id
                ),
            }));
            return;
        }
        if chain_hash(prev, r) != *hash {
            self.problem = Some(bad(
                "contents do not match its hash: a field of this record was changed".into(),
            ));
            return;
        }
        if let Some(stop) = self.stopped_by {
            if r.action != CHECKPOINT_ACTION {
                self.problem = Some(bad(format!(
                    "was written after the orderly stop of the last running server (shutdown checkpoint \
                     record {stop}) and before any server started again: it was added to the database while no \
                     server ran (direct database access)"
                )));
                return;
            }
        }
        if let Err(reason) = self.signed_record(r) {
            let mut p = bad(reason);
            if let Some((id, position)) = self.problem_at.take() {
                p.id = Some(id);
                p.position = position;
            }
            self.problem = Some(p);
            return;
        }
        for (i, (src, cp)) in self.checkpoints.iter().enumerate() {
            if cp.last_id == r.id {
                if cp.hash != *hash {
                    if src == GIVEN_SOURCE {
                        // The caller's claim against the log: said, and the log verified on.
                        self.given_mismatch.get_or_insert(bad(given_differs(&cp.hash)));
                        self.matched[i] = true;
                        continue;
                    }
                    self.problem = Some(bad(format!(
                        "hash differs from the {src} checkpoint ({}): the log was rewritten up to here",
                        cp.hash
                    )));
                    return;
                }
                self.matched[i] = true;
            }
        }
        self.first_chained_id.get_or_insert(r.id);
        self.chained += 1;
        let here = Checkpoint {
            last_id: r.id,
            hash: hash.clone(),
        };
        if is_checkpoint_record(r) {
            self.window.clear();
            self.ckpt_records.insert(r.id, hash.clone());
            self.last_ckpt = Some(here.clone());
        }
        self.window.insert(r.id, (hash.clone(), position));
        self.head = Some(here);
    }

    /// Checks the signed checkpoint a checkpoint or retention record carries (the record
    /// itself already chained).
    fn signed_record(&mut self, r: &AuditRecord) -> Result<(), String> {
        let detail = r.detail.as_deref().unwrap_or("");
        if r.action == CHECKPOINT_ACTION {
            let cp: SignedCheckpoint = from_str_unique(detail)
                .map_err(|e| format!("is a checkpoint record whose detail is not a signed checkpoint: {e}"))?;
            match &self.head {
                Some(h) if h.last_id == cp.last_id && h.hash == cp.hash => {}
                Some(h) if h.last_id == cp.last_id => {
                    let from = self
                        .vouched_through
                        .map_or(self.first_chained_id.unwrap_or(h.last_id), |v| v + 1)
                        .min(h.last_id);
                    let before = match self.vouched_through {
                        Some(v) => format!("signed checkpoints vouch for the records up to {v}"),
                        None => "no signed checkpoint before it vouches for any record".into(),
                    };
                    return Err(format!(
                        "is a signed checkpoint of record {} with hash {}, but record {} now hashes to {}: \
                         one of records {from}–{} was changed, removed or inserted and the hashes after it \
                         recomputed ({before})",
                        cp.last_id, cp.hash, h.last_id, h.hash, h.last_id
                    ));
                }
                Some(h) => {
                    return Err(format!(
                        "is a signed checkpoint of record {} but the record before it is {}: records were \
                         removed or inserted here",
                        cp.last_id, h.last_id
                    ))
                }
                // The first record after a retention cut may be a checkpoint of the last
                // record the cut removed: consistent when it names exactly the record this
                // one's prev_hash (already checked against the cut) points at. A checkpoint
                // of an empty chain names the genesis value.
                None if r.prev_hash.as_deref() == Some(cp.hash.as_str())
                    && self.continues_after.as_ref().is_none_or(|c| c.last_id == cp.last_id) => {}
                None => {
                    return Err(format!(
                        "is a signed checkpoint of record {} but no record precedes it",
                        cp.last_id
                    ))
                }
            }
            self.check_signature(&cp)
                .map_err(|e| format!("carries a checkpoint whose signature does not verify: {e}"))?;
            if cp.is_v2() {
                self.checkpoint_links(&cp, r.id)?;
            }
            self.checkpoint_facts(&cp, r.id)?;
            self.vouched_through = Some(cp.last_id);
            Ok(())
        } else if r.action == RETENTION_ACTION {
            let cut: RetentionCut = from_str_unique(detail)
                .map_err(|e| format!("is a retention record whose detail is not a signed cut: {e}"))?;
            self.check_signature(&cut.cut)
                .map_err(|e| format!("carries a retention cut whose signature does not verify: {e}"))?;
            // A link of the checkpoint chain only as what retention writes (trial14 HIGH-2:
            // any signed checkpoint of the log, wrapped into a forged retention record, was
            // taken for one): a cut signed for retention, naming a record retention removed
            // — one before the first record this log still holds.
            if !cut.cut.is_retention_cut() {
                return Err(format!(
                    "is a retention record, but what it carries is a checkpoint signed for {:?}, not a retention \
                     cut: a signed checkpoint copied from the log into a record no retention wrote",
                    cut.cut.occasion.as_deref().unwrap_or("-")
                ));
            }
            let first_kept = self.first_chained_id.unwrap_or(r.id);
            if cut.cut.last_id >= first_kept {
                return Err(format!(
                    "is a retention record whose cut names record {}, but the log still holds the records from {} \
                     on: no retention removed it (a retention cut copied into a record no retention wrote)",
                    cut.cut.last_id, first_kept
                ));
            }
            if self.resumed_from.as_deref() == Some(cut.cut.hash.as_str()) {
                self.resumed_from = None;
                self.continues_after = Some(cut.cut.head());
            }
            for w in &cut.archived_warnings {
                self.warnings.push(ChainWarning {
                    id: None,
                    checkpoint: r.id,
                    reason: format!(
                        "the records retention archived through record {} (retention record {}, archive {}) were not \
                         all vouched for when they were cut: {w}",
                        cut.cut.last_id, r.id, cut.archive
                    ),
                });
            }
            Ok(())
        } else {
            Ok(())
        }
    }

    /// The facts a version-3 checkpoint record `this` signs about how the log moved
    /// while no server watched it: records written after the last server's orderly stop
    /// (tampering, named), records in a crash window and a start without the anchor file
    /// (warnings); and whether it ends the last writer's run (then the next record must
    /// be a checkpoint record).
    fn checkpoint_facts(&mut self, cp: &SignedCheckpoint, this: i64) -> Result<(), String> {
        self.stopped_by = None;
        if cp.marked == Some(true) && self.marked_from.is_none() {
            self.marked_from = Some(this);
        }
        if let Some(w) = &cp.stopped_writes {
            if let Some(pos) = self.positions.get(&w.first) {
                self.problem_at = Some((w.first, *pos));
            }
            return Err(format!(
                "appeared while no server ran: {w} written after the orderly stop of the last running server and \
                 before this start (signed by the start checkpoint record {this}): added to the database directly"
            ));
        }
        if let Some(f) = &cp.foreign {
            // Named by position wherever it stands: a forged link between it and this
            // checkpoint must not hide which record it was (trial14 HIGH-2).
            if let Some(pos) = self.positions.get(&f.first) {
                self.problem_at = Some((f.first, *pos));
            }
            return Err(format!(
                "was written by no server: {f} appeared in the database while a server ran, but neither that \
                 server nor another signed server wrote them (signed by the checkpoint record {this}): added to \
                 the database directly"
            ));
        }
        if let Some(w) = &cp.ignored_writers {
            self.warnings.push(ChainWarning {
                id: None,
                checkpoint: this,
                reason: format!(
                    "the database's writer table held rows claiming a live server without a valid signature \
                     ({w}): ignored, someone with database access wrote them (signed by the checkpoint record {this})"
                ),
            });
        }
        if let Some(u) = &cp.unproven {
            self.warnings.push(ChainWarning {
                id: Some(u.first),
                checkpoint: this,
                reason: format!(
                    "{u} after the last checkpoint and after the last head the previous server kept outside the \
                     database, with no orderly stop behind them (a crash): not vouched for, they may have been \
                     added while no server ran (signed by the start checkpoint record {this})"
                ),
            });
        }
        if let Some(why) = &cp.no_anchor {
            self.warnings.push(ChainWarning {
                id: None,
                checkpoint: this,
                reason: format!(
                    "the server started without its anchor ({why}): that start could not compare the log with \
                     what the server knew before it stopped (signed by the start checkpoint record {this})"
                ),
            });
        }
        // A stop signed `marked` closes nothing: from it on every record carries its
        // writer's mark, checked by the server (and signed into its checkpoints and an
        // export's trailer as `foreign` when missing), and a validly marked record is
        // authentic whoever was running (trial18 HIGH-1: a live replica whose writer row
        // the stopping server did not count — clock skew, a pause, a row deleted from the
        // database — had its genuine records called "written while no server ran").
        if cp.occasion.as_deref() == Some("shutdown") && cp.last_writer == Some(true) && cp.marked != Some(true) {
            self.stopped_by = Some(this);
        }
        Ok(())
    }

    /// The links a version-2 checkpoint signs: the chain start, the checkpoint record
    /// before it, and the record the server last knew to be in the log.
    fn checkpoint_links(&mut self, cp: &SignedCheckpoint, this: i64) -> Result<(), String> {
        if let (Some(start), Some(u)) = (cp.chain_start, self.last_unchained) {
            if u > start {
                return Err(format!(
                    "signs the chain start (every record after {start} carries a hash), but record {u} \
                     carries none: hashes were removed"
                ));
            }
        }
        match (&cp.prev, &self.last_ckpt) {
            (None, None) => {}
            (Some(p), Some(l)) if p == l => {}
            (Some(p), None) if self.archived(p.last_id) => {}
            (Some(p), Some(l)) if p.last_id == l.last_id => {
                return Err(format!(
                    "names checkpoint record {} (hash {}) as the one before it, but that record now hashes \
                     to {}: the checkpoint record was rewritten",
                    p.last_id, p.hash, l.hash
                ))
            }
            (Some(p), Some(l)) => {
                return Err(format!(
                    "names checkpoint record {} as the one before it, but the log's previous checkpoint \
                     record is {}: checkpoint records were removed, inserted or rewritten",
                    p.last_id, l.last_id
                ))
            }
            (Some(p), None) => {
                return Err(format!(
                    "names checkpoint record {} as the one before it, but the log has no checkpoint record \
                     before it: checkpoint records were removed",
                    p.last_id
                ))
            }
            (None, Some(l)) => {
                return Err(format!(
                    "says no checkpoint record precedes it, but record {} is one: the log was rewritten",
                    l.last_id
                ))
            }
        }
        if let Some(a) = &cp.anchor {
            let known = match self.window.get(&a.last_id) {
                Some((h, pos)) => Some((h.clone(), Some(*pos))),
                None => self.ckpt_records.get(&a.last_id).map(|h| (h.clone(), None)),
            };
            match known {
                Some((h, _)) if h == a.hash => {}
                Some((h, pos)) => {
                    if let Some(pos) = pos {
                        self.problem_at = Some((a.last_id, pos));
                    }
                    return Err(format!(
                        "hashes to {h}, but the server knew record {} with hash {} (signed by checkpoint record \
                         {this}): the record was rewritten behind the server's back",
                        a.last_id, a.hash
                    ));
                }
                None if self.archived(a.last_id) => {}
                None => {
                    return Err(format!(
                        "says the server knew record {} (hash {}) in the log, but the log has no such record \
                         since the previous checkpoint: records were removed or rewritten behind the server's \
                         back (or the database was restored from an older copy)",
                        a.last_id, a.hash
                    ))
                }
            }
        }
        Ok(())
    }

    /// The report of a file export: like [`Verifier::finish`], and its end must be the
    /// signed `trailer` (a missing trailer, or one naming a later record, means records
    /// were removed from the end of the file).
    pub fn finish_export(mut self, trailer: Option<&SignedCheckpoint>) -> ChainReport {
        // The exporting server's mark check (signed into the trailer) names a record
        // written by no server before the first problem the chain itself shows: that
        // record is the one named, as the server's own verification names it (trial14
        // HIGH-2: server and export must never disagree).
        if let (Some(p), Some(t)) = (&self.problem, trailer) {
            let earlier = matches!((&t.foreign, p.id), (Some(f), Some(id)) if f.first < id);
            if earlier && is_trailer_occasion(t.occasion.as_deref()) && self.check_signature(t).is_ok() {
                if let Some(f) = &t.foreign {
                    let position = self.position;
                    self.problem = Some(self.foreign_in_trailer(f, position));
                }
            }
            return self.finish();
        }
        if self.problem.is_none() {
            let (id, subject, end) = match &self.head {
                Some(h) => (
                    Some(h.last_id),
                    None,
                    format!("the export ends at record {}", h.last_id),
                ),
                None => (
                    None,
                    Some("the export's trailer".to_string()),
                    "the export has no chained record".to_string(),
                ),
            };
            let position = self.position;
            let bad = |reason: String| {
                Some(ChainProblem {
                    id,
                    subject: subject.clone(),
                    position,
                    reason,
                })
            };
            match trailer {
                None => {
                    self.problem = bad(format!(
                        "{end} without a signed trailer: records may have been removed from the end \
                         (a full `--format jsonl` export ends with one)"
                    ))
                }
                Some(t) => {
                    if let Err(e) = self.check_signature(t) {
                        self.problem = bad(format!("{end}, but its trailer's signature does not verify: {e}"));
                    } else if !is_trailer_occasion(t.occasion.as_deref()) {
                        self.problem = bad(format!(
                            "{end}, but its trailer is not an export trailer (a checkpoint signed for {:?}, \
                             copied from the log): it cannot prove where the export ends — records may have \
                             been removed from the end",
                            t.occasion.as_deref().unwrap_or("a retention cut or an older export")
                        ));
                    } else if self.head.as_ref().is_none_or(|h| h.last_id != t.last_id) {
                        self.problem = bad(format!(
                            "{end} but its signed trailer names record {} (hash {}): records were removed from the end",
                            t.last_id, t.hash
                        ));
                    } else if self.head.as_ref().is_some_and(|h| h.hash != t.hash) {
                        self.problem = bad(format!(
                            "{end} but its hash differs from the signed trailer's ({}): the log was rewritten up to here",
                            t.hash
                        ));
                    } else if let Some(f) = &t.foreign {
                        // The exporting server found records without a valid mark: it
                        // signed that verdict into the trailer (trial10 H-C).
                        self.problem = Some(self.foreign_in_trailer(f, position));
                    } else {
                        let kind = t.occasion.clone().unwrap_or_default();
                        self.checkpoints.push((format!("signed {kind} trailer"), t.head()));
                        self.matched.push(true);
                        self.trailer = Some((kind, t.at.clone()));
                    }
                }
            }
        }
        self.finish()
    }

    /// The problem an export trailer's signed `foreign` states (the first record named;
    /// `position` when the file does not hold it).
    fn foreign_in_trailer(&self, f: &RecordRange, position: u64) -> ChainProblem {
        ChainProblem {
            id: Some(f.first),
            subject: None,
            position: self.positions.get(&f.first).copied().unwrap_or(position),
            reason: format!(
                "was written by no server: {f} carried no valid mark of a server of the deployment when the \
                 server exported the log (signed by the export's trailer): added to the database directly, or \
                 rewritten there"
            ),
        }
    }

    /// The report; checkpoints not met in the log are tail truncations (unless they name
    /// a record archived by a signed retention cut).
    pub fn finish(mut self) -> ChainReport {
        if self.problem.is_none() {
            if let Some(prev) = &self.resumed_from {
                self.problem = Some(ChainProblem {
                    id: self.first_chained_id,
                    subject: Some("the start of the chain".into()),
                    position: 1,
                    reason: format!(
                        "is the first chained record and continues a chain ending in hash {prev}, but no signed \
                         retention record vouches for that cut: records before it were removed"
                    ),
                });
            }
        }
        let mut compared = vec![true; self.checkpoints.len()];
        let mut not_compared = Vec::new();
        if self.problem.is_none() {
            for (i, (src, cp)) in self.checkpoints.iter().enumerate() {
                if self.matched[i] {
                    continue;
                }
                if self.archived(cp.last_id) {
                    // Archived by a signed cut: nothing in the log to compare it with —
                    // except the cut record itself, whose hash the signed cut carries
                    // (trial25 F2: any hash passed as "compared").
                    compared[i] = false;
                    if src != GIVEN_SOURCE {
                        continue;
                    }
                    match &self.continues_after {
                        Some(cut) if cut.last_id == cp.last_id && cut.hash == cp.hash => compared[i] = true,
                        Some(cut) if cut.last_id == cp.last_id => {
                            compared[i] = true;
                            self.given_mismatch.get_or_insert(ChainProblem {
                                id: None,
                                subject: Some(format!("the {src} checkpoint")),
                                position: 0,
                                reason: format!(
                                    "names record {} with hash {}, but the signed retention cut the log continues \
                                     after says record {} had hash {}: the checkpoint is not of this log \
                                     (mistyped, or another deployment's), or the log was rewritten before the cut",
                                    cp.last_id, cp.hash, cut.last_id, cut.hash
                                ),
                            });
                        }
                        cut => not_compared.push(format!(
                            "the {src} checkpoint names record {}, which lies in the part archived by retention{}: \
                             not compared — verify the archive with it (cordon audit verify --file ARCHIVE \
                             --checkpoint {}:{})",
                            cp.last_id,
                            cut.as_ref()
                                .map(|c| format!(" (the log continues after record {})", c.last_id))
                                .unwrap_or_default(),
                            cp.last_id,
                            cp.hash
                        )),
                    }
                    continue;
                }
                let (id, subject, last) = match &self.head {
                    Some(h) => (Some(h.last_id), None, format!("ends at record {}", h.last_id)),
                    None => (None, Some("the log".to_string()), "has no chained record".to_string()),
                };
                if src == GIVEN_SOURCE {
                    self.given_mismatch.get_or_insert(ChainProblem {
                        id,
                        subject,
                        position: self.position,
                        reason: format!(
                            "the log {last} but the checkpoint you gave names record {} (hash {}): the checkpoint \
                             is not of this log (mistyped, or another deployment's), or records were removed from \
                             the end",
                            cp.last_id, cp.hash
                        ),
                    });
                    continue;
                }
                // A record missing before the log's end was removed from the middle
                // (trial35 MED-1: "the log ends at record 8 … names record 7" blamed the
                // genuine record 8 for a cut before it).
                let around = self.head.as_ref().filter(|h| h.last_id > cp.last_id).and_then(|_| {
                    let before = self.positions.keys().filter(|k| **k < cp.last_id).max().copied();
                    let after = self
                        .positions
                        .iter()
                        .filter(|(k, _)| **k > cp.last_id)
                        .min_by_key(|(k, _)| **k)
                        .map(|(k, p)| (*k, *p));
                    after.map(|a| (before, a))
                });
                if let Some((before, (after, position))) = around {
                    self.problem = Some(ChainProblem {
                        id: Some(cp.last_id),
                        subject: None,
                        position,
                        reason: format!(
                            "is missing: the {src} checkpoint names it (hash {}), but the log goes from {} to record \
                             {after}: it was removed in the database (records after it were written without it)",
                            cp.hash,
                            before
                                .map(|b| format!("record {b}"))
                                .unwrap_or_else(|| "its start".into())
                        ),
                    });
                    break;
                }
                self.problem = Some(ChainProblem {
                    id,
                    subject,
                    position: self.position,
                    reason: format!(
                        "the log {last} but the {src} checkpoint names record {} (hash {}): \
                         records were removed from the end (or the checkpointed record is missing)",
                        cp.last_id, cp.hash
                    ),
                });
                break;
            }
        }
        ChainReport {
            ok: self.problem.is_none()
                && self.unchecked == 0
                && self.warnings.is_empty()
                && not_compared.is_empty()
                && self.given_mismatch.is_none(),
            given_mismatch: self.given_mismatch,
            cut_off_line: None,
            warnings: self.warnings,
            unchained: self.unchained,
            chained: self.chained,
            first_chained_id: self.first_chained_id,
            head: self.head,
            checkpoints: self
                .checkpoints
                .into_iter()
                .zip(compared)
                .filter(|(_, c)| *c)
                .map(|((s, _), _)| s)
                .collect(),
            not_compared,
            signed_checkpoints: self.signed,
            unchecked_signatures: self.unchecked,
            continues_after: self.continues_after,
            problem: self.problem,
            not_full_export: None,
            other_ca: None,
            trailer_occasion: self.trailer.as_ref().map(|t| t.0.clone()),
            trailer_signed_at: self.trailer.map(|t| t.1),
            marked_from: self.marked_from,
        }
    }
}

/// Checks `records` (in log order) against the chain and `checkpoints`.
pub fn verify(records: &[AuditRecord], checkpoints: Vec<(String, Checkpoint)>) -> ChainReport {
    let mut v = Verifier::new(checkpoints);
    if let Some(s) = signed_chain_start(records.iter()) {
        v = v.chain_starts_after(s);
    }
    for r in records {
        v.push(r);
    }
    v.finish()
}

/// Parses a JSON-lines export (`GET /v1/audit?format=jsonl`), blank lines skipped; a
/// signed trailer at the end is left out (see [`parse_export`] to get it).
///
/// # Errors
/// The 1-based line number and serde's message for a line that is not an audit record.
pub fn parse_jsonl(text: &str) -> Result<Vec<AuditRecord>, String> {
    parse_export(text).map(|(records, _)| records)
}

/// Parses a JSON-lines export: the records, and the signed trailer if the last line is
/// one (`{"checkpoint": ...}`; one whose signature, time or key was removed still
/// parses, and fails verification). Blank lines are skipped.
///
/// # Errors
/// The message of [`parse_export_checked`]'s error (bad syntax or an edited line).
pub fn parse_export(text: &str) -> Result<(Vec<AuditRecord>, Option<SignedCheckpoint>), String> {
    parse_export_checked(text).map_err(|e| e.to_string())
}

/// Why an export file could not be read as one (see [`parse_export_checked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportError {
    /// Not JSON lines at all (a line that is not JSON): bad input, not evidence of
    /// tampering — `cordon audit verify --file` exits 2.
    Syntax(String),
    /// Well-formed JSON that is not what an export holds: a record missing a field or
    /// with one of the wrong type, a field no record has (not covered by the hash), a
    /// trailer that is not the last line. The file was edited: `cordon audit verify
    /// --file` reports TAMPERED and exits 1.
    Tampered(ChainProblem),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Syntax(m) => f.write_str(m),
            ExportError::Tampered(p) => write!(f, "line {}: {}", p.position, p.reason),
        }
    }
}

impl std::error::Error for ExportError {}

/// The JSON keys `value` (an object serialised from a type) has.
fn keys_of(value: serde_json::Value) -> std::collections::BTreeSet<String> {
    match value {
        serde_json::Value::Object(m) => m.into_iter().map(|(k, _)| k).collect(),
        _ => Default::default(),
    }
}

/// Every field an audit record can have in an export (all covered by its hash, or the
/// hash itself).
fn record_fields() -> std::collections::BTreeSet<String> {
    let full = AuditRecord {
        id: 0,
        at: String::new(),
        actor: String::new(),
        actor_token_id: Some(0),
        action: String::new(),
        host_id: Some(String::new()),
        comment: Some(String::new()),
        result: String::new(),
        detail: Some(String::new()),
        event_id: Some(String::new()),
        rule: Some(String::new()),
        prev_hash: Some(String::new()),
        hash: Some(String::new()),
    };
    serde_json::to_value(full).map(keys_of).unwrap_or_default()
}

/// Every field a signed checkpoint can have (all covered by its signature, or the
/// signature itself).
fn checkpoint_fields() -> std::collections::BTreeSet<String> {
    let range = || {
        Some(RecordRange {
            first: 0,
            last: 0,
            count: 0,
        })
    };
    let full = SignedCheckpoint {
        chain_start: Some(0),
        prev: Some(Checkpoint {
            last_id: 0,
            hash: String::new(),
        }),
        anchor: Some(Checkpoint {
            last_id: 0,
            hash: String::new(),
        }),
        occasion: Some(String::new()),
        last_writer: Some(true),
        stopped_writes: range(),
        unproven: range(),
        no_anchor: Some(String::new()),
        foreign: range(),
        ignored_writers: Some(String::new()),
        marked: Some(true),
        ..Default::default()
    };
    serde_json::to_value(full).map(keys_of).unwrap_or_default()
}

/// Why [`parse_unique`] refused a text.
#[derive(Debug)]
enum Unique {
    /// Not JSON: serde's message.
    Syntax(serde_json::Error),
    /// Well-formed JSON with an object naming this key twice (at any depth).
    Duplicate(String),
}

/// Marks the error [`UniqueValue`] raises for a repeated key (serde's custom error
/// carries only text).
const DUPLICATE_KEY: &str = "cordon: duplicate key ";

/// A JSON value read with every object's keys checked for repeats: serde_json's own
/// `Value` keeps the last of two equal keys silently, which would hide an edit.
struct UniqueValue(serde_json::Value);

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(UniqueValue)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        UniqueValue::deserialize(d).map(|u| u.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(UniqueValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE_KEY}{key}")));
            }
            let UniqueValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// Reads `text` as one JSON value, refusing an object (at any depth) that names a key
/// twice.
fn parse_unique(text: &str) -> Result<serde_json::Value, Unique> {
    match serde_json::from_str::<UniqueValue>(text) {
        Ok(UniqueValue(v)) => Ok(v),
        Err(e) => {
            let msg = e.to_string();
            match msg.strip_prefix(DUPLICATE_KEY) {
                Some(rest) if e.is_data() => {
                    // serde_json appends " at line L column C".
                    let key = rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k);
                    Err(Unique::Duplicate(key.to_string()))
                }
                _ => Err(Unique::Syntax(e)),
            }
        }
    }
}

/// `serde_json::from_str` for signed details (a checkpoint or retention record's): also
/// refuses a key named twice, whose hidden value a reader keeping the other would miss.
///
/// # Errors
/// Serde's message, or `names the key "K" twice`.
pub fn from_str_unique<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let value = parse_unique(text).map_err(|e| match e {
        Unique::Syntax(e) => e.to_string(),
        Unique::Duplicate(k) => format!("names the key {k:?} twice"),
    })?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// [`parse_export`], telling bad input from an edited file: a line that is not JSON is
/// [`ExportError::Syntax`]; a JSON line that is not an audit record (a field missing or
/// of the wrong type), that carries a field no record (or trailer) has — which the hash
/// would not cover, so it cannot be accepted silently — or a trailer that is not the
/// last line is [`ExportError::Tampered`], naming the line and the field.
///
/// # Errors
/// As above.
pub fn parse_export_checked(text: &str) -> Result<(Vec<AuditRecord>, Option<SignedCheckpoint>), ExportError> {
    // The server's other JSON output, `cordon audit --format json` (one object
    // `{"records": […], …}`, on one line or pretty-printed): genuine, but a listing
    // without the chain's trailer, so bad input, never an edited export (trial28 MED-1).
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(text.trim()) {
        if o.get("records").is_some_and(serde_json::Value::is_array) && !o.contains_key("id") {
            return Err(ExportError::Syntax(
                "this is `cordon audit --format json` output (one {\"records\": […]} object), a listing that \
                 cannot be verified: verify a JSON-lines export, `cordon audit --format jsonl > FILE`"
                    .into(),
            ));
        }
    }
    let fields = record_fields();
    let cp_fields = checkpoint_fields();
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut trailer: Option<(usize, SignedCheckpoint)> = None;
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line = i + 1;
        let (value, duplicate) = match parse_unique(l) {
            Ok(v) => (v, None),
            // Well-formed JSON naming a key twice: no export has one; read as a JSON reader
            // keeping the last (or the first) occurrence does, one of the two values would be
            // hidden (trial10 LOW: `"actor":"system","actor":"admin"`).
            Err(Unique::Duplicate(key)) => (
                serde_json::from_str::<serde_json::Value>(l)
                    .map_err(|e| ExportError::Syntax(format!("line {line}: not JSON: {e}")))?,
                Some(key),
            ),
            Err(Unique::Syntax(e)) => return Err(ExportError::Syntax(format!("line {line}: not JSON: {e}"))),
        };
        let id = value.get("id").and_then(serde_json::Value::as_i64);
        let tampered = |reason: String| {
            ExportError::Tampered(ChainProblem {
                id,
                subject: id.is_none().then(|| format!("line {line}")),
                position: line as u64,
                reason,
            })
        };
        if let Some(key) = duplicate {
            return Err(tampered(format!(
                "carries the key {key:?} twice (a reader keeping one of them would hide the other's value): \
                 the line was edited"
            )));
        }
        if let Some((at, _)) = &trailer {
            return Err(tampered(format!(
                "follows the signed trailer (line {}), which must be the last line: lines were added after it",
                at + 1
            )));
        }
        let serde_json::Value::Object(obj) = &value else {
            return Err(tampered(
                "is not an audit record (not a JSON object): the line was edited".into(),
            ));
        };
        if obj.contains_key("checkpoint") {
            if let Some(k) = obj.keys().find(|k| *k != "checkpoint") {
                return Err(tampered(format!(
                    "is the signed trailer but carries a field {k:?} a trailer does not have: the line was edited"
                )));
            }
            if let Some(serde_json::Value::Object(cp)) = obj.get("checkpoint") {
                if let Some(k) = cp.keys().find(|k| !cp_fields.contains(*k)) {
                    return Err(tampered(format!(
                        "is the signed trailer but its checkpoint carries a field {k:?} no checkpoint has (not \
                         covered by the signature): the line was edited"
                    )));
                }
            }
            let t: ExportTrailer = serde_json::from_value(value.clone())
                .map_err(|e| tampered(format!("is not a signed trailer any more ({e}): the line was edited")))?;
            trailer = Some((i, t.checkpoint));
            continue;
        }
        if let Some(k) = obj.keys().find(|k| !fields.contains(*k)) {
            return Err(tampered(format!(
                "carries a field {k:?} no audit record has (not covered by its hash): the line was edited"
            )));
        }
        let r: AuditRecord = serde_json::from_value(value.clone())
            .map_err(|e| tampered(format!("is not an audit record any more ({e}): the line was edited")))?;
        records.push(r);
    }
    Ok((records, trailer.map(|(_, t)| t)))
}

impl ChainReport {
    /// The report of an export that could not be read as one because it was edited
    /// ([`ExportError::Tampered`]): nothing checked, the problem named.
    pub fn tampered(problem: ChainProblem) -> ChainReport {
        ChainReport {
            ok: false,
            unchained: 0,
            chained: 0,
            first_chained_id: None,
            head: None,
            checkpoints: Vec::new(),
            signed_checkpoints: 0,
            unchecked_signatures: 0,
            continues_after: None,
            problem: Some(problem),
            warnings: Vec::new(),
            not_full_export: None,
            other_ca: None,
            trailer_occasion: None,
            trailer_signed_at: None,
            marked_from: None,
            not_compared: Vec::new(),
            given_mismatch: None,
            cut_off_line: None,
        }
    }
}

/// Checks a parsed export (see [`parse_export`]) against the chain, its signed
/// checkpoints and trailer (with `signature`, else they are counted unchecked) and the
/// given `checkpoints`. An export without a trailer is not a full export: it is checked
/// as one ([`verify_partial_export`]), never as a chain with records missing.
pub fn verify_export(
    records: &[AuditRecord],
    trailer: Option<&SignedCheckpoint>,
    checkpoints: Vec<(String, Checkpoint)>,
    signature: Option<SignatureCheck>,
) -> ChainReport {
    let Some(trailer) = trailer else {
        return verify_partial_export(records, checkpoints);
    };
    let trailer = Some(trailer);
    let mut v = Verifier::new(checkpoints);
    if let Some(s) = signature {
        v = v.with_signatures(s);
    }
    if let Some(s) = signed_chain_start(records.iter()) {
        v = v.chain_starts_after(s);
    }
    for r in records {
        v.push(r);
    }
    v.finish_export(trailer)
}

/// The signer fingerprints (`key`) of every signed checkpoint in an export: its
/// checkpoint and retention records' and its trailer's (empty ones left out).
pub fn signing_keys(records: &[AuditRecord], trailer: Option<&SignedCheckpoint>) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let in_log = records.iter().filter_map(|r| {
        let d = r.detail.as_deref()?;
        match r.action.as_str() {
            CHECKPOINT_ACTION => serde_json::from_str::<SignedCheckpoint>(d).ok().map(|c| c.key),
            RETENTION_ACTION => serde_json::from_str::<RetentionCut>(d).ok().map(|c| c.cut.key),
            _ => None,
        }
    });
    for k in in_log.chain(trailer.map(|t| t.key.clone())) {
        if !k.is_empty() && !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// [`verify_export`] with the signatures checked by `check`, the CA certificate whose
/// SHA-256 fingerprint is `key`. When the export holds signed checkpoints and none of
/// them names `key` as its signer, the file was made by another deployment (or the
/// wrong `--ca` was given): the chain is checked without signatures and the report says
/// so ([`ChainReport::other_ca`]) instead of calling each signature forged. A file
/// mixing signers is checked as usual: those by another key fail as tampering.
pub fn verify_export_signed_by(
    records: &[AuditRecord],
    trailer: Option<&SignedCheckpoint>,
    checkpoints: Vec<(String, Checkpoint)>,
    key: &str,
    check: SignatureCheck,
) -> ChainReport {
    let keys = signing_keys(records, trailer);
    if trailer.is_none() || keys.is_empty() || keys.iter().any(|k| k == key) {
        return verify_export(records, trailer, checkpoints, Some(check));
    }
    let mut report = verify_export(records, trailer, checkpoints, None);
    report.ok = false;
    report.other_ca = Some(OtherCa {
        signed_by: keys,
        given: key.to_string(),
    });
    report
}

/// Checks an export without a signed trailer — a filtered export (`--host`, `--since`,
/// …), or a full one whose end was cut off; the file cannot tell which. Such a file is
/// not a chain: records a filter left out are not missing records. Each record is
/// checked on its own: an id below [`FIRST_ID`], an id twice, only one of the two
/// hashes, or contents that do not match the record's own hash are tampering (no server
/// exports such a record). The chain links between records that follow each other are
/// counted, and `checkpoints` naming a record present are compared. Nothing is
/// vouched for (no signature is checked): the report has `ok: false` and
/// [`ChainReport::not_full_export`].
pub fn verify_partial_export(records: &[AuditRecord], checkpoints: Vec<(String, Checkpoint)>) -> ChainReport {
    let mut report = ChainReport {
        ok: false,
        unchained: 0,
        chained: 0,
        first_chained_id: None,
        head: None,
        checkpoints: Vec::new(),
        signed_checkpoints: 0,
        unchecked_signatures: 0,
        continues_after: None,
        problem: None,
        warnings: Vec::new(),
        not_full_export: Some(PartialExport { linked: 0, gaps: 0 }),
        other_ca: None,
        trailer_occasion: None,
        trailer_signed_at: None,
        marked_from: None,
        not_compared: Vec::new(),
        given_mismatch: None,
        cut_off_line: None,
    };
    let mut seen = std::collections::HashSet::new();
    let mut prev: Option<&str> = None;
    let (mut linked, mut gaps) = (0u64, 0u64);
    for (i, r) in records.iter().enumerate() {
        let position = i as u64 + 1;
        let bad = |reason: String| ChainProblem {
            id: Some(r.id),
            subject: None,
            position,
            reason,
        };
        let problem = if r.id < FIRST_ID {
            Some(bad(format!(
                "has id {}, below the first id any database gives a record ({FIRST_ID}): it was inserted                  directly, not written by a server",
                r.id
            )))
        } else if !seen.insert(r.id) {
            Some(bad("appears twice in the file: a line was copied".into()))
        } else {
            match (&r.prev_hash, &r.hash) {
                (None, None) => {
                    report.unchained += 1;
                    prev = None;
                    continue;
                }
                (Some(p), Some(h)) if chain_hash(p, r) == *h => {
                    if prev == Some(p.as_str()) || (report.chained == 0 && p == GENESIS) {
                        linked += 1;
                    } else {
                        gaps += 1;
                    }
                    let mut problem = None;
                    for (src, cp) in &checkpoints {
                        if cp.last_id == r.id {
                            if cp.hash != *h && src == GIVEN_SOURCE {
                                report.given_mismatch.get_or_insert(bad(given_differs(&cp.hash)));
                            } else if cp.hash != *h {
                                problem = Some(bad(format!(
                                    "hash differs from the {src} checkpoint ({}): the log was rewritten up to here",
                                    cp.hash
                                )));
                            } else {
                                report.checkpoints.push(src.clone());
                            }
                        }
                    }
                    if problem.is_none() {
                        report.first_chained_id.get_or_insert(r.id);
                        report.chained += 1;
                        report.head = Some(Checkpoint {
                            last_id: r.id,
                            hash: h.clone(),
                        });
                        prev = Some(h.as_str());
                    }
                    problem
                }
                (Some(_), Some(_)) => Some(bad(
                    "contents do not match its hash: a field of this record was changed".into(),
                )),
                _ => Some(bad("carries only one of prev_hash and hash".into())),
            }
        };
        if problem.is_some() {
            report.problem = problem;
            break;
        }
    }
    report.not_full_export = Some(PartialExport { linked, gaps });
    report
}

/// The last line of [`render`] for an export without a signed trailer.
pub fn not_full_export_line(p: &PartialExport) -> String {
    format!(
        "NOT A FULL EXPORT: the file has no signed trailer: each record matches its own hash and {} of them \
         link to the record before them ({} gap(s)), but nothing proves that no record is missing or where the \
         log ended, and no signature was checked — a filtered export (--host, --since, …) or a full export whose \
         end was cut off. Only a full export (`cordon audit --format jsonl`, no filter) can be verified",
        p.linked, p.gaps
    )
}

/// The last line of [`render`] for an export signed by another CA than the one given.
pub fn other_ca_line(o: &OtherCa) -> String {
    format!(
        "SIGNED BY ANOTHER CA: the file's checkpoints are signed by the key of CA certificate {}, not by the CA \
         given ({}): no signature was checked — give the CA certificate (ca.pem) of the deployment that made the \
         export",
        o.signed_by.join(", "),
        o.given
    )
}

/// The last line of [`render`] for a report without a problem whose signatures were
/// not all checked.
pub const NOT_VERIFIED: &str =
    "NOT VERIFIED: chain intact; checkpoint signatures NOT verified: pass --ca (or set CORDON_CA)";

/// The last line of [`render`] for a report without a problem, every signature
/// checked, but with `n` warnings.
pub fn unproven_line(n: usize) -> String {
    format!(
        "UNPROVEN: the chain is intact, but {n} warning(s) above: not every record is vouched for by a signed \
         checkpoint"
    )
}

/// The line [`render`] gives a cut-off last line ([`ChainReport::cut_off_line`]).
fn cut_off_line_text(n: u64) -> String {
    format!(
        "CUT OFF: line {n}, the file's last, is not complete JSON: the file was truncated (a full disk, a killed \
         `cordon audit > FILE`, a partial download); the lines before it were verified without it"
    )
}

/// A file whose last line is cut off (trial33 LOW-B): the last non-blank line is not
/// complete JSON — the parser ran out of text (`serde_json`'s EOF errors) — as a file
/// truncated in the middle of a line ends. Returns that line's 1-based number and the
/// text before it; `None` when the last line is complete JSON or is not JSON for another
/// reason (bad input as ever).
pub fn cut_off_last_line(text: &str) -> Option<(u64, &str)> {
    let (i, last) = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).last()?;
    let e = serde_json::from_str::<serde_json::Value>(last.trim()).err()?;
    if !e.is_eof() {
        return None;
    }
    let start = last.as_ptr() as usize - text.as_ptr() as usize;
    Some((i as u64 + 1, &text[..start]))
}

/// A file several exports or retention archives were joined into (`cat a.jsonl
/// b.jsonl`): its parts, as (1-based number of the part's first line, the part's text).
/// Parts end at their own signed trailers; besides (trial33 LOW-F: genuine records were
/// called forged):
/// - lines after the last trailer are a part of their own — a later file whose trailer
///   was cut off, verified as not a full export — when that trailer closes a retention
///   archive (an export or archive continuing it was joined after it); after an
///   export's trailer they were added to it, and the file is one part (tampering as
///   ever, see [`parse_export_checked`]);
/// - a part holding a retention record whose cut names a record earlier in the same part
///   (an archive that lost its trailer, joined with the export that continues it) is split
///   after that record.
///
/// A file that splits into fewer than two parts is one part.
pub fn split_joined(text: &str) -> Vec<(usize, &str)> {
    let json = |l: &str| serde_json::from_str::<serde_json::Value>(l.trim()).ok();
    let trailer_of = |v: &serde_json::Value| v.as_object().and_then(|o| o.get("checkpoint")).cloned();
    // (first line, start offset, end offset, the trailer ending it).
    let mut segs: Vec<(usize, usize, usize, Option<serde_json::Value>)> = Vec::new();
    let (mut start, mut first_line, mut offset) = (0usize, 1usize, 0usize);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        offset += line.len();
        if !line.contains("\"checkpoint\"") {
            continue;
        }
        if let Some(t) = json(line).as_ref().and_then(trailer_of) {
            segs.push((first_line, start, offset, Some(t)));
            start = offset;
            first_line = i + 2;
        }
    }
    if !text[start..].trim().is_empty() {
        // After a retention archive's trailer: the export that continues it, cut off.
        let another_file = segs.last().is_some_and(|(_, _, _, t)| {
            t.as_ref()
                .and_then(|t| t.get("occasion"))
                .and_then(serde_json::Value::as_str)
                == Some(ARCHIVE_OCCASION)
        });
        if !another_file {
            return vec![(1, text)];
        }
        segs.push((first_line, start, text.len(), None));
    }
    // Split a part at an archive that lost its trailer: a retention record naming, as its
    // cut, a record the same part holds before it.
    let mut parts = Vec::new();
    for (first_line, start, end, _) in segs {
        let seg = &text[start..end];
        let (mut from, mut from_line, mut at) = (start, first_line, start);
        let mut ids: std::collections::HashMap<i64, (usize, usize)> = std::collections::HashMap::new();
        for (k, line) in seg.split_inclusive('\n').enumerate() {
            at += line.len();
            let Some(v) = (line.contains("\"id\"")).then(|| json(line)).flatten() else {
                continue;
            };
            let Some(id) = v.get("id").and_then(serde_json::Value::as_i64) else {
                continue;
            };
            if v.get("action").and_then(serde_json::Value::as_str) == Some(RETENTION_ACTION) {
                let cut = v
                    .get("detail")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|d| serde_json::from_str::<RetentionCut>(d).ok())
                    .map(|c| c.cut.last_id);
                if let Some((end_at, next_line)) = cut.and_then(|c| ids.get(&c).copied()) {
                    parts.push((from_line, &text[from..end_at]));
                    (from, from_line) = (end_at, next_line);
                    ids.clear();
                }
            }
            ids.insert(id, (at, first_line + k + 1));
        }
        if !text[from..end].trim().is_empty() {
            parts.push((from_line, &text[from..end]));
        }
    }
    if parts.len() < 2 {
        return vec![(1, text)];
    }
    parts
}

/// One part of a joined file ([`split_joined`]) and its own report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedPart {
    /// The part's first line in the joined file (1-based).
    pub first_line: usize,
    /// Its last line (the trailer).
    pub last_line: usize,
    /// The part verified on its own, as the file it was.
    pub report: ChainReport,
}

/// Why a record differs from the checkpoint given for it ([`ChainReport::given_mismatch`]).
fn given_differs(given: &str) -> String {
    format!(
        "hash differs from the checkpoint you gave ({given}): the checkpoint is not of this log (mistyped, or \
         another deployment's), or the log was rewritten up to here"
    )
}

/// The last line of [`render`] for a log whose own check found nothing wrong but that
/// does not match a checkpoint given ([`ChainReport::given_mismatch`]).
pub const GIVEN_MISMATCH_LINE: &str = "DOES NOT MATCH YOUR CHECKPOINT: the log checks intact on its own, but not \
     against the checkpoint you gave (see above): if you copied it from this deployment's server log or \
     notification target, the log was rewritten; otherwise check the checkpoint";

/// The verdict word of a report's last line (`OK`, `TAMPERED`, `NOT VERIFIED`, …).
fn verdict(r: &ChainReport) -> &'static str {
    if r.problem.is_some() {
        "TAMPERED"
    } else if r.given_mismatch.is_some() {
        "DOES NOT MATCH YOUR CHECKPOINT"
    } else if r.other_ca.is_some() {
        "SIGNED BY ANOTHER CA"
    } else if r.not_full_export.is_some() || r.cut_off_line.is_some() {
        "NOT A FULL EXPORT"
    } else if r.unchecked_signatures > 0 {
        "NOT VERIFIED"
    } else if !r.warnings.is_empty() {
        "UNPROVEN"
    } else {
        "OK"
    }
}

/// The closing lines for a joined file: one line per part (its lines, records, what its
/// trailer was signed for and when, its own verdict), how each part follows the one
/// before it (continues it, leaves records out, repeats records), and the verdict — `OK:
/// N files joined in one, each verified on its own …` only when every part is OK on its
/// own; otherwise the worst part's verdict, naming the part. Each part's own report
/// (rendered before it) names its first bad record.
pub fn render_joined(parts: &[JoinedPart]) -> String {
    let mut out = format!(
        "the file joins {} exported or archived files (a part without a signed trailer is one whose trailer was cut off, or lines added after the part before); each was verified on its own:\n",
        parts.len()
    );
    let range = |r: &ChainReport| match (r.first_chained_id, &r.head) {
        (Some(a), Some(h)) => format!("records {a}–{}", h.last_id),
        _ => "no chained record".to_string(),
    };
    for (k, p) in parts.iter().enumerate() {
        let r = &p.report;
        let what = match (r.trailer_occasion.as_deref(), r.trailer_signed_at.as_deref()) {
            (Some(ARCHIVE_OCCASION), Some(at)) => format!(", a retention archive signed at {at}"),
            (Some(_), Some(at)) => format!(", an export signed at {at}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "part {} (lines {}–{}): {}{what}: {}\n",
            k + 1,
            p.first_line,
            p.last_line,
            range(r),
            verdict(r)
        ));
        if k == 0 {
            continue;
        }
        let before = &parts[k - 1].report;
        match (&before.head, r.first_chained_id, &r.continues_after) {
            (Some(h), _, Some(c)) if c == h => out.push_str(&format!(
                "part {} continues part {k}: its chain starts right after record {} with that record's hash\n",
                k + 1,
                h.last_id
            )),
            // A later part wholly before the earlier one: the files were joined out of
            // order (trial28 LOW-3 named it "the same records twice").
            (Some(h), Some(first), _)
                if before.first_chained_id.is_some_and(|b| b > first)
                    && r.head
                        .as_ref()
                        .is_some_and(|rh| rh.last_id < before.first_chained_id.unwrap_or(0)) =>
            {
                out.push_str(&format!(
                    "part {} comes before part {k}: its records {first}–{} precede part {k}'s records {}–{}: \
                     the files were joined out of order (join them oldest first)\n",
                    k + 1,
                    r.head.as_ref().map_or(first, |rh| rh.last_id),
                    before.first_chained_id.unwrap_or(0),
                    h.last_id
                ))
            }
            (Some(h), Some(first), _) if first <= h.last_id => out.push_str(&format!(
                "part {} does not continue part {k}: it starts at record {first}, which part {k} (up to record {}) \
                 already holds (the same records twice)\n",
                k + 1,
                h.last_id
            )),
            (Some(h), Some(first), _) => out.push_str(&format!(
                "part {} does not continue part {k}: records {}–{} between them are not in this file\n",
                k + 1,
                h.last_id + 1,
                first - 1
            )),
            _ => {}
        }
    }
    // The part that decides the exit ([`joined_verdict`]'s order), so the last line and
    // the exit code name the same part.
    let worst = JOINED_ORDER
        .iter()
        .find_map(|v| parts.iter().enumerate().find(|(_, p)| verdict(&p.report) == *v));
    match worst {
        None => out.push_str(&format!(
            "OK: {} files joined in one, each verified on its own ({})\n",
            parts.len(),
            parts.iter().map(|p| range(&p.report)).collect::<Vec<_>>().join(", ")
        )),
        Some((k, p)) => out.push_str(&format!(
            "{}: part {} (lines {}–{}) of the joined file, as shown above\n",
            verdict(&p.report),
            k + 1,
            p.first_line,
            p.last_line
        )),
    }
    out
}

/// The verdicts of a joined file's parts, worst first.
const JOINED_ORDER: [&str; 6] = [
    "TAMPERED",
    "DOES NOT MATCH YOUR CHECKPOINT",
    "SIGNED BY ANOTHER CA",
    "NOT A FULL EXPORT",
    "NOT VERIFIED",
    "UNPROVEN",
];

/// The report that decides a joined file's exit code: the first part that is tampered,
/// else the first signed by another CA, not a full export, with unchecked signatures or
/// with warnings (in that order); else the first part (all OK).
pub fn joined_verdict(parts: &[JoinedPart]) -> Option<&ChainReport> {
    JOINED_ORDER
        .iter()
        .find_map(|v| parts.iter().find(|p| verdict(&p.report) == *v))
        .or(parts.first())
        .map(|p| &p.report)
}

/// Human-readable lines for a report (CLI output).
pub fn render(report: &ChainReport) -> String {
    let mut out = String::new();
    if report.unchained > 0 {
        out.push_str(&format!(
            "{} record(s) predate the chain (written before the migration that added it) and are not protected\n",
            report.unchained
        ));
    }
    match (report.first_chained_id, &report.continues_after) {
        // Not a chain: say where the file starts, not where a chain does.
        (Some(id), _) if report.not_full_export.is_some() => {
            out.push_str(&format!("the file's first record with hashes is record {id}\n"))
        }
        (Some(id), Some(cut)) => out.push_str(&format!(
            "chain starts at record {id}, continuing after record {} (earlier records were archived by retention; signed cut)\n",
            cut.last_id
        )),
        (Some(id), None) => out.push_str(&format!("chain starts at record {id}\n")),
        (None, _) => out.push_str("no chained records\n"),
    }
    out.push_str(&format!("{} chained record(s) checked\n", report.chained));
    if let Some(m) = report.marked_from {
        // What stands before it says where the log starts (trial33 LOW-C: after a
        // retention cut the text said the records before it "predate marks").
        let before = match (&report.continues_after, report.first_chained_id) {
            (Some(cut), _) => format!(
                " (the records from {} before it chain up to it and are vouched for by its signature; the records \
                 up to {} were archived by retention)",
                report
                    .first_chained_id
                    .map_or(String::from("the log's start"), |f| format!("record {f}")),
                cut.last_id
            ),
            (None, Some(f)) if f >= m => String::new(),
            (None, _) => " (the records before it are vouched for by the checkpoints signed then: on a new \
                           deployment `server init`'s own, on an older one records that predate marks)"
                .to_string(),
        };
        out.push_str(&format!(
            "marked from checkpoint record {m} on: every record from it carries the mark of the server that wrote \
             it{before}\n"
        ));
    }
    if report.signed_checkpoints > 0 {
        out.push_str(&format!(
            "{} signed checkpoint(s) verified with the CA certificate\n",
            report.signed_checkpoints
        ));
    }
    if report.unchecked_signatures > 0 {
        out.push_str(&format!(
            "{} signed checkpoint(s) NOT checked: {}\n",
            report.unchecked_signatures,
            if report.other_ca.is_some() {
                "signed by another CA than the one given"
            } else {
                "no CA certificate given (--ca or CORDON_CA)"
            }
        ));
    }
    for c in &report.checkpoints {
        out.push_str(&format!("compared with the {c} checkpoint\n"));
    }
    for n in &report.not_compared {
        out.push_str(&format!("NOT COMPARED: {n}\n"));
    }
    if let Some(n) = report.cut_off_line {
        out.push_str(&format!("{}\n", cut_off_line_text(n)));
    }
    if let Some(g) = &report.given_mismatch {
        match (g.id, &g.subject) {
            (Some(id), _) => out.push_str(&format!(
                "YOUR CHECKPOINT: record {id} (entry {}) {}\n",
                g.position, g.reason
            )),
            (None, subject) => out.push_str(&format!(
                "YOUR CHECKPOINT: {}: {}\n",
                subject.as_deref().unwrap_or("the log"),
                g.reason
            )),
        }
    }
    if let (Some(kind), Some(at)) = (&report.trailer_occasion, &report.trailer_signed_at) {
        let what = if kind == ARCHIVE_OCCASION {
            "retention archive"
        } else {
            "export"
        };
        out.push_str(&format!("{what} signed by the server at {at}\n"));
    }
    if report.problem.is_none() {
        for w in &report.warnings {
            match w.id {
                Some(id) => out.push_str(&format!("WARNING: record {id}: {}\n", w.reason)),
                None => out.push_str(&format!("WARNING: {}\n", w.reason)),
            }
        }
    }
    match &report.problem {
        None => {
            if let Some(h) = &report.head {
                out.push_str(&format!("head: {}:{}\n", h.last_id, h.hash));
            }
            if report.given_mismatch.is_some() {
                out.push_str(GIVEN_MISMATCH_LINE);
                out.push('\n');
            } else if let Some(o) = &report.other_ca {
                out.push_str(&other_ca_line(o));
                out.push('\n');
            } else if let Some(p) = &report.not_full_export {
                out.push_str(&not_full_export_line(p));
                out.push('\n');
            } else if let Some(n) = report.cut_off_line {
                out.push_str(&format!(
                    "NOT A FULL EXPORT: line {n}, the last, is cut off: the lines before it verify, but the file \
                     does not end where the export did; verify a complete copy\n"
                ));
            } else if report.unchecked_signatures > 0 {
                out.push_str(NOT_VERIFIED);
                out.push('\n');
            } else if !report.warnings.is_empty() {
                out.push_str(&format!("{}\n", unproven_line(report.warnings.len())));
            } else if !report.not_compared.is_empty() {
                // Asked for and not made: never `OK` (trial28).
                out.push_str(NOT_COMPARED_LINE);
                out.push('\n');
            } else {
                out.push_str("OK: the audit chain is intact\n");
            }
        }
        Some(p) => match (p.id, &p.subject) {
            (Some(id), _) => out.push_str(&format!("TAMPERED: record {id} (entry {}) {}\n", p.position, p.reason)),
            (None, subject) => out.push_str(&format!(
                "TAMPERED: {}: {}\n",
                subject.as_deref().unwrap_or("the log"),
                p.reason
            )),
        },
    }
    out
}

/// The last line of [`render`] for a log found intact where a checkpoint given to
/// compare with could not be compared (it names an archived record: `not_compared`).
pub const NOT_COMPARED_LINE: &str = "NOT COMPARED: chain intact, but a checkpoint given was not compared with it \
     (see above): verify the retention archive with it";

/// Checking checkpoint signatures with the CA certificate (feature `signatures`).
#[cfg(feature = "signatures")]
pub mod signature {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use webpki::ring::{ECDSA_P256_SHA256, ECDSA_P384_SHA384, ED25519};

    use super::{SignatureCheck, SignedCheckpoint};
    use crate::fingerprint::fingerprint_der;

    /// The CA certificate whose key signs checkpoints.
    #[derive(Debug, Clone)]
    pub struct CaCert {
        der: Vec<u8>,
        fingerprint: String,
    }

    impl CaCert {
        /// From the CA certificate in PEM (`ca.pem`, `CORDON_CA`).
        ///
        /// # Errors
        /// The PEM parser's message when `pem` holds no certificate.
        pub fn from_pem(pem: &[u8]) -> Result<CaCert, String> {
            let der = CertificateDer::from_pem_slice(pem).map_err(|e| format!("no certificate in the PEM: {e}"))?;
            Ok(CaCert::from_der(der.as_ref()))
        }

        /// From the DER certificate.
        pub fn from_der(der: &[u8]) -> CaCert {
            CaCert {
                der: der.to_vec(),
                fingerprint: fingerprint_der(der),
            }
        }

        /// SHA-256 fingerprint of the certificate (lower-case hex).
        pub fn fingerprint(&self) -> &str {
            &self.fingerprint
        }

        /// Checks `cp`'s signature with this certificate's public key.
        ///
        /// # Errors
        /// Why it fails: another key's fingerprint, bad hex, or a signature that does
        /// not verify.
        pub fn check(&self, cp: &SignedCheckpoint) -> Result<(), String> {
            if cp.key != self.fingerprint {
                return Err(format!(
                    "signed by the key of certificate {}, not this CA ({})",
                    cp.key, self.fingerprint
                ));
            }
            let sig = hex::decode(&cp.signature).map_err(|e| format!("signature is not hex: {e}"))?;
            let der = CertificateDer::from(self.der.as_slice());
            let cert = webpki::EndEntityCert::try_from(&der).map_err(|e| format!("CA certificate unreadable: {e}"))?;
            let msg = cp.signed_message();
            for alg in [ECDSA_P256_SHA256, ECDSA_P384_SHA384, ED25519] {
                if cert.verify_signature(alg, &msg, &sig).is_ok() {
                    return Ok(());
                }
            }
            Err("the signature does not match the CA's public key (the checkpoint was altered)".into())
        }

        /// This certificate as a [`SignatureCheck`] for the verifier.
        pub fn checker(self) -> SignatureCheck {
            Box::new(move |cp| self.check(cp))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: i64, actor: &str) -> AuditRecord {
        AuditRecord {
            id,
            at: format!("2030-01-01T00:00:{:02}.000Z", id % 60),
            actor: actor.into(),
            action: "quarantine".into(),
            host_id: Some(format!("h{id}")),
            comment: None,
            result: "ok".into(),
            detail: Some("{}".into()),
            event_id: None,
            rule: None,
            actor_token_id: None,
            prev_hash: None,
            hash: None,
        }
    }

    /// Two unchained records (before the migration), then `n` chained ones.
    fn log(n: i64) -> Vec<AuditRecord> {
        let mut out = vec![rec(1, "old"), rec(2, "old")];
        let mut prev = GENESIS.to_string();
        for id in 3..3 + n {
            let mut r = rec(id, "alice");
            r.prev_hash = Some(prev.clone());
            let h = chain_hash(&prev, &r);
            r.hash = Some(h.clone());
            prev = h;
            out.push(r);
        }
        out
    }

    fn head(l: &[AuditRecord]) -> Vec<(String, Checkpoint)> {
        let last = l.last().unwrap();
        vec![(
            "test".into(),
            Checkpoint {
                last_id: last.id,
                hash: last.hash.clone().unwrap(),
            },
        )]
    }

    #[test]
    fn untouched_log_verifies_and_states_where_the_chain_starts() {
        let l = log(5);
        let r = verify(&l, head(&l));
        assert!(r.ok, "{r:?}");
        assert_eq!((r.unchained, r.chained, r.first_chained_id), (2, 5, Some(3)));
        assert!(render(&r).contains("chain starts at record 3"));
    }

    #[test]
    fn edited_field_is_detected_naming_the_record() {
        for edit in [
            (|r: &mut AuditRecord| r.actor = "system".into()) as fn(&mut AuditRecord),
            |r| r.comment = Some("x".into()),
            |r| r.detail = None,
            |r| r.at = "2031-01-01T00:00:00.000Z".into(),
            |r| r.result = "error".into(),
            |r| r.event_id = Some("ev-1".into()),
            |r| r.rule = Some("edr-critical".into()),
        ] {
            let mut l = log(5);
            edit(&mut l[4]);
            let p = verify(&l, vec![]).problem.unwrap();
            assert_eq!(p.id, Some(5));
            assert!(p.reason.contains("field"), "{}", p.reason);
        }
    }

    #[test]
    fn automation_fields_are_covered_by_the_hash_and_absent_ones_change_nothing() {
        let plain = rec(7, "alice");
        let mut auto = plain.clone();
        auto.event_id = Some("ev-1".into());
        auto.rule = Some("edr-critical".into());
        // A record without them hashes as before the fields existed (old chains verify).
        let mut before = VERSION_TAG.to_vec();
        before.extend_from_slice(&7i64.to_be_bytes());
        for f in [
            Some("2030-01-01T00:00:07.000Z"),
            Some("alice"),
            Some("quarantine"),
            Some("h7"),
            None,
            Some("ok"),
            Some("{}"),
        ] {
            field(&mut before, f);
        }
        assert_eq!(canonical(&plain), before);
        assert_ne!(chain_hash(GENESIS, &plain), chain_hash(GENESIS, &auto));
        let mut rule_only = plain.clone();
        rule_only.rule = Some("edr-critical".into());
        let mut event_only = plain.clone();
        event_only.event_id = Some("edr-critical".into());
        assert_ne!(canonical(&rule_only), canonical(&event_only));
        // Removing them from a chained record is detected.
        let mut l = log(3);
        let last = l.len() - 1;
        l[last].event_id = Some("ev-1".into());
        l[last].rule = Some("edr-critical".into());
        let prev = l[last].prev_hash.clone().unwrap();
        l[last].hash = Some(chain_hash(&prev, &l[last]));
        assert!(verify(&l, vec![]).ok);
        l[last].rule = None;
        assert!(!verify(&l, vec![]).ok);
    }

    #[test]
    fn deleted_record_is_detected_naming_the_next_record() {
        let mut l = log(5);
        l.remove(4);
        let p = verify(&l, vec![]).problem.unwrap();
        assert_eq!(p.id, Some(6));
        assert!(p.reason.contains("removed"), "{}", p.reason);
        // The first chained record removed.
        let mut l = log(5);
        l.remove(2);
        assert_eq!(verify(&l, vec![]).problem.unwrap().id, Some(4));
    }

    #[test]
    fn reordered_records_are_detected() {
        let mut l = log(5);
        l.swap(3, 4);
        assert_eq!(verify(&l, vec![]).problem.unwrap().id, Some(5));
        // Swapping ids in place (a database edit) breaks the hashes.
        let mut l = log(5);
        let (a, b) = (l[3].id, l[4].id);
        l[3].id = b;
        l[4].id = a;
        assert!(verify(&l, vec![]).problem.is_some());
    }

    #[test]
    fn truncated_tail_is_detected_against_a_checkpoint_only() {
        let full = log(5);
        let cp = head(&full);
        let cut = &full[..5];
        assert!(
            verify(cut, vec![]).ok,
            "without a checkpoint a cut tail is a valid chain"
        );
        let p = verify(cut, cp).problem.unwrap();
        assert_eq!(p.id, Some(5), "names the last record present");
        assert!(p.reason.contains("removed from the end"), "{}", p.reason);
    }

    #[test]
    fn rewritten_chain_is_detected_against_a_checkpoint() {
        let full = log(5);
        let cp = head(&full);
        // Edit record 4 and recompute every later hash: a valid chain, but not the one
        // the checkpoint saw.
        let mut l = full.clone();
        l[2].actor = "system".into();
        let mut prev = GENESIS.to_string();
        for r in l.iter_mut().skip(2) {
            r.prev_hash = Some(prev.clone());
            let h = chain_hash(&prev, r);
            r.hash = Some(h.clone());
            prev = h;
        }
        assert!(verify(&l, vec![]).ok);
        let p = verify(&l, cp).problem.unwrap();
        assert_eq!(p.id, Some(7));
    }

    #[test]
    fn removed_hash_after_chain_is_detected() {
        let mut l = log(3);
        l[3].hash = None;
        l[3].prev_hash = None;
        assert_eq!(verify(&l, vec![]).problem.unwrap().id, Some(4));
    }

    #[test]
    fn jsonl_roundtrip_and_checkpoint_parsing() {
        let l = log(3);
        let text: String = l.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        assert_eq!(parse_jsonl(&text).unwrap(), l);
        assert!(parse_jsonl("{}\n").unwrap_err().starts_with("line 1"));
        let cp: Checkpoint = format!("5:{}", "A".repeat(64)).parse().unwrap();
        assert_eq!(cp.last_id, 5);
        assert!("5:zz".parse::<Checkpoint>().is_err());
        assert!("x".parse::<Checkpoint>().is_err());
    }

    /// A signature check for tests: `good` verifies, anything else does not.
    fn fake_check() -> SignatureCheck {
        Box::new(|cp: &SignedCheckpoint| {
            if cp.signature == "good" {
                Ok(())
            } else {
                Err("bad signature".into())
            }
        })
    }

    fn signed(last_id: i64, hash: &str, sig: &str) -> SignedCheckpoint {
        SignedCheckpoint {
            last_id,
            hash: hash.into(),
            at: "2030-01-01T00:00:00.000Z".into(),
            key: "k".into(),
            signature: sig.into(),
            ..Default::default()
        }
    }

    /// Appends a chained record with `action` and `detail` to `l`.
    fn push(l: &mut Vec<AuditRecord>, action: &str, detail: String) {
        let last = l.last().unwrap();
        let prev = last.hash.clone().unwrap_or_else(|| GENESIS.into());
        let mut r = rec(last.id + 1, "system");
        r.action = action.into();
        r.detail = Some(detail);
        r.prev_hash = Some(prev.clone());
        r.hash = Some(chain_hash(&prev, &r));
        l.push(r);
    }

    fn trailer_of(l: &[AuditRecord], sig: &str) -> SignedCheckpoint {
        let last = l.last().unwrap();
        signed(last.id, last.hash.as_deref().unwrap(), sig)
    }

    /// The trailer a full export ends with: a checkpoint signed for `export`.
    fn export_trailer_of(l: &[AuditRecord], sig: &str) -> SignedCheckpoint {
        SignedCheckpoint {
            occasion: Some(EXPORT_OCCASION.into()),
            ..trailer_of(l, sig)
        }
    }

    /// Trial finding, the fault kind: a checkpoint copied from the log (any viewer can
    /// read them) put as the trailer of a cut-down export verified as intact.
    #[test]
    fn only_an_export_trailer_proves_where_an_export_ends() {
        let l = log(5);
        for occasion in [
            None,
            Some("start"),
            Some("shutdown"),
            Some("interval"),
            Some("retention"),
        ] {
            let copied = SignedCheckpoint {
                occasion: occasion.map(str::to_string),
                ..trailer_of(&l[..4], "good")
            };
            let p = verify_export(&l[..4], Some(&copied), vec![], Some(fake_check()))
                .problem
                .unwrap_or_else(|| panic!("{occasion:?} accepted as a trailer"));
            assert!(p.reason.contains("not an export trailer"), "{}", p.reason);
        }
        assert!(verify_export(&l, Some(&export_trailer_of(&l, "good")), vec![], Some(fake_check())).ok);
    }

    #[test]
    fn export_with_its_signed_trailer_verifies_and_a_cut_tail_is_named() {
        let l = log(5);
        let t = export_trailer_of(&l, "good");
        let r = verify_export(&l, Some(&t), vec![], Some(fake_check()));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.signed_checkpoints, 1);
        // Cut the tail: the trailer names a record the file no longer has.
        let p = verify_export(&l[..5], Some(&t), vec![], Some(fake_check()))
            .problem
            .unwrap();
        assert_eq!(p.id, Some(5), "names the last record present");
        assert!(p.reason.contains("removed from the end"), "{}", p.reason);
        // Cut the tail with the trailer: no trailer, nothing proves the end — the file
        // cannot be told from a filtered export: not a full export, never intact.
        let r = verify_export(&l[..5], None, vec![], Some(fake_check()));
        assert!(!r.ok && r.problem.is_none(), "{r:?}");
        assert!(render(&r).contains("NOT A FULL EXPORT"), "{}", render(&r));
        // A forged trailer.
        let p = verify_export(
            &l[..5],
            Some(&export_trailer_of(&l[..5], "forged")),
            vec![],
            Some(fake_check()),
        )
        .problem
        .unwrap();
        assert!(p.reason.contains("does not verify"), "{}", p.reason);
    }

    #[test]
    fn checkpoint_records_are_checked_in_place() {
        let mut l = log(3);
        let cp = trailer_of(&l, "good");
        push(&mut l, CHECKPOINT_ACTION, serde_json::to_string(&cp).unwrap());
        push(&mut l, "quarantine", "{}".into());
        let r = verify(&l, vec![]);
        assert!(r.problem.is_none() && r.unchecked_signatures == 1, "{r:?}");
        assert!(!r.ok, "unchecked signatures are not a pass: {r:?}");
        let mut v = Verifier::new(vec![]).with_signatures(fake_check());
        l.iter().for_each(|x| v.push(x));
        let r = v.finish();
        assert!(r.ok && r.signed_checkpoints == 1, "{r:?}");
        // A checkpoint whose signature was forged (the record re-hashed to fit the chain).
        let mut bad = l.clone();
        let mut forged = cp.clone();
        forged.signature = "forged".into();
        let i = bad.len() - 2;
        bad[i].detail = Some(serde_json::to_string(&forged).unwrap());
        let prev = bad[i].prev_hash.clone().unwrap();
        bad[i].hash = Some(chain_hash(&prev, &bad[i]));
        bad.truncate(i + 1);
        let mut v = Verifier::new(vec![]).with_signatures(fake_check());
        bad.iter().for_each(|x| v.push(x));
        let p = v.finish().problem.unwrap();
        assert_eq!(p.id, Some(bad[i].id));
        assert!(p.reason.contains("signature does not verify"), "{}", p.reason);
    }

    #[test]
    fn export_after_retention_needs_a_signed_cut() {
        // Records 3..=7 chained; retention removed 3..=5 and wrote a signed cut of 5.
        let mut l = log(5);
        let cut = signed(5, l[4].hash.as_deref().unwrap(), "good");
        let rc = RetentionCut {
            cut: cut.clone(),
            records: 3,
            archive: "a.jsonl".into(),
            archived_warnings: Vec::new(),
        };
        push(&mut l, RETENTION_ACTION, serde_json::to_string(&rc).unwrap());
        let kept: Vec<AuditRecord> = l[5..].to_vec();
        let t = export_trailer_of(&kept, "good");
        let r = verify_export(&kept, Some(&t), vec![], Some(fake_check()));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.continues_after, Some(cut.head()));
        assert!(render(&r).contains("continuing after record 5"), "{}", render(&r));
        // Without the retention record, a missing start is a removal.
        let headless: Vec<AuditRecord> = l[6..].to_vec();
        let p = verify_export(
            &headless,
            Some(&export_trailer_of(&headless, "good")),
            vec![],
            Some(fake_check()),
        )
        .problem
        .unwrap();
        assert_eq!(p.id, Some(headless[0].id));
        assert!(p.reason.contains("records before it were removed"), "{}", p.reason);
    }

    /// The fault kind: retention right after a checkpoint leaves that checkpoint as the
    /// first record, naming a record the cut removed; an untouched log must still verify.
    #[test]
    fn a_checkpoint_first_after_a_retention_cut_verifies() {
        // Five chained records; a checkpoint of the fifth; retention removes all five
        // (signed cut of the fifth).
        let mut l = log(5);
        let n = l.len();
        let cp = signed(l[n - 1].id, l[n - 1].hash.as_deref().unwrap(), "good");
        push(&mut l, CHECKPOINT_ACTION, serde_json::to_string(&cp).unwrap());
        let rc = RetentionCut {
            cut: cp.clone(),
            records: 5,
            archive: "a.jsonl".into(),
            archived_warnings: Vec::new(),
        };
        push(&mut l, RETENTION_ACTION, serde_json::to_string(&rc).unwrap());
        let kept: Vec<AuditRecord> = l[n..].to_vec();
        let r = verify_export(
            &kept,
            Some(&export_trailer_of(&kept, "good")),
            vec![],
            Some(fake_check()),
        );
        assert!(r.ok, "{r:?}");
        // A checkpoint naming another record than the one before it is still refused.
        let mut forged = l.clone();
        let wrong = signed(l[n - 2].id, l[n - 2].hash.as_deref().unwrap(), "good");
        forged.truncate(n);
        push(&mut forged, CHECKPOINT_ACTION, serde_json::to_string(&wrong).unwrap());
        let kept: Vec<AuditRecord> = forged[n..].to_vec();
        let p = verify_export(
            &kept,
            Some(&export_trailer_of(&kept, "good")),
            vec![],
            Some(fake_check()),
        )
        .problem
        .unwrap();
        assert!(p.reason.contains("no record precedes it"), "{}", p.reason);
    }

    /// Appends a version-2 checkpoint record of the current head to `l` (signature
    /// "good"), linked to the previous checkpoint record, with `anchor`.
    fn push_v2(l: &mut Vec<AuditRecord>, anchor: Option<Checkpoint>) {
        let last = l.last().unwrap();
        let prev = l.iter().rev().find(|r| is_checkpoint_record(r)).map(|r| Checkpoint {
            last_id: r.id,
            hash: r.hash.clone().unwrap(),
        });
        let cp = SignedCheckpoint {
            chain_start: Some(2),
            prev,
            anchor,
            occasion: Some("start".into()),
            ..signed(last.id, last.hash.as_deref().unwrap(), "good")
        };
        push(l, CHECKPOINT_ACTION, serde_json::to_string(&cp).unwrap());
    }

    /// Re-hashes `l` from index `from` on (what someone with database access does).
    fn rehash(l: &mut [AuditRecord], from: usize) {
        let mut prev = l[from].prev_hash.clone().unwrap();
        for r in l.iter_mut().skip(from) {
            r.prev_hash = Some(prev.clone());
            let h = chain_hash(&prev, r);
            r.hash = Some(h.clone());
            prev = h;
        }
    }

    fn verify_signed(l: &[AuditRecord]) -> ChainReport {
        let mut v = Verifier::new(vec![]).with_signatures(fake_check());
        if let Some(s) = signed_chain_start(l.iter()) {
            v = v.chain_starts_after(s);
        }
        l.iter().for_each(|x| v.push(x));
        v.finish()
    }

    /// A log with checkpoints: records 3-5, checkpoint 6, records 7-9, checkpoint 10,
    /// records 11-12, checkpoint 13.
    fn checkpointed() -> Vec<AuditRecord> {
        let mut l = log(3);
        push_v2(&mut l, None);
        for _ in 0..3 {
            push(&mut l, "quarantine", "{}".into());
        }
        push_v2(&mut l, None);
        for _ in 0..2 {
            push(&mut l, "quarantine", "{}".into());
        }
        let anchor = Some(Checkpoint {
            last_id: 12,
            hash: l[11].hash.clone().unwrap(),
        });
        push_v2(&mut l, anchor);
        l
    }

    /// The fault kind (trial): a record rewritten and every later hash recomputed, so the
    /// chain is self-consistent; the next signed checkpoint names the rewritten range.
    #[test]
    fn rewritten_and_rehashed_chain_is_named_by_the_next_checkpoint() {
        let l = checkpointed();
        assert!(verify_signed(&l).ok, "{:?}", verify_signed(&l));
        let mut bad = l.clone();
        bad[7].comment = Some("routine".into()); // record 8
        rehash(&mut bad, 7);
        let p = verify_signed(&bad).problem.unwrap();
        assert_eq!(p.id, Some(10), "{p:?}");
        // Checkpoint record 6 signed record 5; record 6 itself and 7-9 are covered by 10.
        assert!(p.reason.contains("one of records 6–9 was changed"), "{}", p.reason);
        assert!(p.reason.contains("up to 5"), "{}", p.reason);
    }

    /// Deleting a checkpoint record (and re-hashing) breaks the checkpoint chain.
    #[test]
    fn removed_or_rewritten_checkpoint_record_is_named() {
        let l = checkpointed();
        let mut bad = l.clone();
        bad.remove(9); // checkpoint record 10 (ids stay; chain re-hashed)
        bad[9].prev_hash = bad[8].hash.clone();
        rehash(&mut bad, 9);
        let p = verify_signed(&bad).problem.unwrap();
        assert_eq!(p.id, Some(13), "{p:?}");
        assert!(p.reason.contains("record 12"), "{}", p.reason);
        // The first checkpoint removed: the second one names it.
        let mut bad = l.clone();
        bad.remove(5);
        bad[5].prev_hash = bad[4].hash.clone();
        rehash(&mut bad, 5);
        let p = verify_signed(&bad).problem.unwrap();
        assert_eq!(p.id, Some(10), "{p:?}");
        assert!(p.reason.contains("one of records 3–9"), "{p:?}");
        // A checkpoint whose signed link names another checkpoint record than the one
        // before it in the log (checkpoint 10 moved after a rewrite that kept the head).
        let mut bad = l.clone();
        let mut cp: SignedCheckpoint = serde_json::from_str(bad[12].detail.as_deref().unwrap()).unwrap();
        cp.prev = Some(Checkpoint {
            last_id: 6,
            hash: bad[5].hash.clone().unwrap(),
        });
        bad[12].detail = Some(serde_json::to_string(&cp).unwrap());
        rehash(&mut bad, 12);
        let p = verify_signed(&bad).problem.unwrap();
        assert_eq!(p.id, Some(13), "{p:?}");
        assert!(p.reason.contains("names checkpoint record 6"), "{p:?}");
    }

    /// The chain-start marker is signed: stripping hashes from the first chained records
    /// (moving the start) names the first stripped record.
    #[test]
    fn moved_chain_start_names_the_first_stripped_record() {
        let l = checkpointed();
        let mut bad = l.clone();
        for r in bad.iter_mut().take(4) {
            r.prev_hash = None;
            r.hash = None;
        }
        bad[4].prev_hash = Some(GENESIS.into());
        rehash(&mut bad, 4);
        let p = verify_signed(&bad).problem.unwrap();
        assert_eq!(p.id, Some(3), "{p:?}");
        assert!(p.reason.contains("no chain hash"), "{}", p.reason);
    }

    /// A checkpoint's anchor (the record the server knew) must be in the log unchanged.
    #[test]
    fn anchor_the_log_no_longer_has_is_named() {
        let mut l = log(3);
        push_v2(&mut l, None);
        push(&mut l, "quarantine", "{}".into());
        // The server knew record 7 with another hash (it was rewritten while it was down).
        let anchor = Some(Checkpoint {
            last_id: 7,
            hash: "f".repeat(64),
        });
        push_v2(&mut l, anchor);
        let p = verify_signed(&l).problem.unwrap();
        assert_eq!((p.id, p.position), (Some(7), 7), "names the rewritten record: {p:?}");
        assert!(p.reason.contains("signed by checkpoint record 8"), "{}", p.reason);
        // A record the log no longer has.
        let mut l = log(3);
        push_v2(&mut l, None);
        let anchor = Some(Checkpoint {
            last_id: 9,
            hash: "f".repeat(64),
        });
        push_v2(&mut l, anchor);
        let p = verify_signed(&l).problem.unwrap();
        assert!(p.reason.contains("has no such record"), "{}", p.reason);
    }

    /// Without the CA a forged trailer cannot be told apart: the report does not say
    /// intact; a trailer without a signature is tampering even without the CA; no
    /// message names "record 0".
    #[test]
    fn unchecked_signatures_are_not_intact_and_a_missing_signature_is_tampering() {
        let l = log(3);
        let forged = export_trailer_of(&l, "forged");
        let r = verify_export(&l, Some(&forged), vec![], None);
        assert!(!r.ok && r.problem.is_none(), "{r:?}");
        let text = render(&r);
        assert!(!text.contains("OK"), "{text}");
        assert!(text.contains("checkpoint signatures NOT verified: pass --ca"), "{text}");
        let mut bare = forged.clone();
        bare.signature = String::new();
        let r = verify_export(&l, Some(&bare), vec![], None);
        let p = r.problem.clone().unwrap();
        assert!(p.reason.contains("no signature"), "{p:?}");
        assert!(render(&r).contains("TAMPERED"));
        // Parsed from a file whose trailer lost its signature field.
        let line = serde_json::to_string(&ExportTrailer { checkpoint: bare }).unwrap();
        let line = line.replace(",\"signature\":\"\"", "");
        assert!(!line.contains("signature"), "{line}");
        let (_, t) = parse_export(&line).unwrap();
        assert_eq!(t.unwrap().signature, "");
        // An export with no record and no trailer: not a full export, not "record 0".
        let r = verify_export(&[], None, vec![], None);
        let text = render(&r);
        assert!(text.contains("NOT A FULL EXPORT"), "{text}");
        assert!(!text.contains("record 0"), "{text}");
        let r = verify(
            &[],
            vec![(
                "given".into(),
                Checkpoint {
                    last_id: 4,
                    hash: GENESIS.into(),
                },
            )],
        );
        assert!(!render(&r).contains("record 0"), "{}", render(&r));
    }

    /// Appends a version-2/3 checkpoint record of the head, changed by `f`.
    fn push_cp(l: &mut Vec<AuditRecord>, f: impl FnOnce(&mut SignedCheckpoint)) {
        let last = l.last().unwrap();
        let prev = l.iter().rev().find(|r| is_checkpoint_record(r)).map(|r| Checkpoint {
            last_id: r.id,
            hash: r.hash.clone().unwrap(),
        });
        let mut cp = SignedCheckpoint {
            chain_start: Some(2),
            prev,
            occasion: Some("start".into()),
            ..signed(last.id, last.hash.as_deref().unwrap(), "good")
        };
        f(&mut cp);
        push(l, CHECKPOINT_ACTION, serde_json::to_string(&cp).unwrap());
    }

    /// The fault kind (trial5, HIGH): after the last writer's orderly stop, any record
    /// before the next checkpoint record was written while no server ran — named as
    /// tampering even if the start checkpoint after it did not say so; a start that says
    /// so names the first such record too.
    #[test]
    fn a_record_after_the_last_writers_stop_is_tampering() {
        let mut l = log(2);
        push_cp(&mut l, |_| {});
        push_cp(&mut l, |c| {
            c.occasion = Some("shutdown".into());
            c.last_writer = Some(true);
        });
        let mut ok = l.clone();
        push_cp(&mut ok, |_| {});
        assert!(verify_signed(&ok).ok, "{:?}", verify_signed(&ok));
        let mut bad = l.clone();
        push(&mut bad, "release", "{}".into());
        let forged = bad.last().unwrap().id;
        let (f, n) = (forged, bad.len());
        push_cp(&mut bad, |c| {
            c.stopped_writes = Some(RecordRange {
                first: f,
                last: f,
                count: 1,
            })
        });
        let p = verify_signed(&bad).problem.unwrap();
        assert_eq!((p.id, p.position), (Some(forged), n as u64), "{p:?}");
        assert!(p.reason.contains("while no server ran"), "{p:?}");
        // The start's signed statement alone names it too (a stop by an older server,
        // without last_writer).
        let mut l = log(2);
        push_cp(&mut l, |c| c.occasion = Some("shutdown".into()));
        push(&mut l, "release", "{}".into());
        let (f, n) = (l.last().unwrap().id, l.len());
        push_cp(&mut l, |c| {
            c.stopped_writes = Some(RecordRange {
                first: f,
                last: f,
                count: 1,
            })
        });
        let p = verify_signed(&l).problem.unwrap();
        assert_eq!((p.id, p.position), (Some(f), n as u64), "{p:?}");
        assert!(p.reason.contains("appeared while no server ran: record"), "{p:?}");
        // A stop that was not the last writer's does not close the log.
        let mut l = log(2);
        push_cp(&mut l, |c| {
            c.occasion = Some("shutdown".into());
            c.last_writer = Some(false);
        });
        push(&mut l, "release", "{}".into());
        assert!(verify_signed(&l).ok, "{:?}", verify_signed(&l));
    }

    /// Unproven records (a crash window) and a start without the anchor are warnings:
    /// not a problem, not `ok`, and the last line never says intact without qualification.
    #[test]
    fn unproven_records_and_a_missing_anchor_are_warnings_not_intact() {
        let mut l = log(2);
        push_cp(&mut l, |_| {});
        push(&mut l, "release", "{}".into());
        let f = l.last().unwrap().id;
        push_cp(&mut l, |c| {
            c.unproven = Some(RecordRange {
                first: f,
                last: f,
                count: 1,
            });
            c.no_anchor = Some("no anchor found: gone".into());
        });
        let r = verify_signed(&l);
        assert!(r.problem.is_none() && !r.ok, "{r:?}");
        assert_eq!(r.warnings.len(), 2, "{r:?}");
        assert_eq!(r.warnings[0].id, Some(f));
        let text = render(&r);
        assert!(text.contains(&format!("WARNING: record {f}")), "{text}");
        assert!(text.contains("no anchor found: gone"), "{text}");
        assert!(text.contains("UNPROVEN") && !text.contains("OK:"), "{text}");
    }

    /// The version-3 fields are signed: removing a start's statement breaks the signature.
    #[test]
    fn version_3_facts_are_covered_by_the_signature() {
        let base = signed(9, &"a".repeat(64), "good");
        let with = SignedCheckpoint {
            stopped_writes: Some(RecordRange {
                first: 8,
                last: 8,
                count: 1,
            }),
            ..base.clone()
        };
        assert_ne!(base.signed_message(), with.signed_message());
        let unproven = SignedCheckpoint {
            unproven: with.stopped_writes.clone(),
            ..base.clone()
        };
        assert_ne!(with.signed_message(), unproven.signed_message());
        let last = SignedCheckpoint {
            last_writer: Some(true),
            ..base.clone()
        };
        let not_last = SignedCheckpoint {
            last_writer: Some(false),
            ..base.clone()
        };
        assert_ne!(last.signed_message(), not_last.signed_message());
        let v2 = SignedCheckpoint {
            occasion: Some("start".into()),
            ..base
        };
        assert!(String::from_utf8(v2.signed_message())
            .unwrap()
            .starts_with("cordon-audit-checkpoint-v2\n"));
    }

    /// The fault kind (trial5, LOW): an edited export file exited 2 (bad input) for some
    /// edits and an added field was accepted silently. Only text that is not JSON is bad
    /// input; every other edit is tampering, naming the line and the field.
    #[test]
    fn every_signed_checkpoint_field_is_known_to_the_export_check() {
        // Every field a checkpoint can carry (each Option set) is one the trailer check
        // knows: a genuine trailer is never refused, an unknown field always is.
        let range = Some(RecordRange {
            first: 1,
            last: 1,
            count: 1,
        });
        let cp = Checkpoint {
            last_id: 1,
            hash: "a".into(),
        };
        let full = SignedCheckpoint {
            chain_start: Some(1),
            prev: Some(cp.clone()),
            anchor: Some(cp),
            occasion: Some("x".into()),
            last_writer: Some(true),
            stopped_writes: range.clone(),
            unproven: range.clone(),
            no_anchor: Some("x".into()),
            foreign: range,
            ignored_writers: Some("x".into()),
            ..Default::default()
        };
        let keys = keys_of(serde_json::to_value(full).unwrap());
        let known = checkpoint_fields();
        assert!(
            keys.is_subset(&known),
            "unknown to the check: {:?}",
            keys.difference(&known)
        );
        assert!(!known.contains("note"));
    }

    #[test]
    fn export_edits_are_tampering_and_only_bad_syntax_is_bad_input() {
        let l = log(2);
        let mut text: String = l.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        let t = ExportTrailer {
            checkpoint: export_trailer_of(&l, "good"),
        };
        text.push_str(&(serde_json::to_string(&t).unwrap() + "\n"));
        assert!(parse_export_checked(&text).is_ok());
        let tampered = |edited: &str| match parse_export_checked(edited) {
            Err(ExportError::Tampered(p)) => p,
            other => panic!("expected tampering, got {other:?}"),
        };
        // A field no record has (not covered by the hash).
        let p = tampered(&text.replacen("\"actor\":", "\"approved_by\":\"ceo\",\"actor\":", 1));
        assert_eq!((p.id, p.position), (Some(1), 1), "{p:?}");
        assert!(
            p.reason.contains("\"approved_by\"") && p.reason.contains("not covered by its hash"),
            "{p:?}"
        );
        // A field removed, or of the wrong type.
        let p = tampered(&text.replacen("\"result\":\"ok\",", "", 1));
        assert!(p.reason.contains("not an audit record any more"), "{p:?}");
        let p = tampered(&text.replacen("\"id\":1,", "\"id\":\"1\",", 1));
        assert_eq!(p.position, 1, "{p:?}");
        // Not an object.
        let p = tampered(&format!("[1,2]\n{text}"));
        assert_eq!((p.id, p.subject.as_deref()), (None, Some("line 1")), "{p:?}");
        // The trailer with a field its signature does not cover, or not last.
        let p = tampered(&text.replacen("\"signature\":", "\"note\":\"x\",\"signature\":", 1));
        assert!(p.reason.contains("\"note\""), "{p:?}");
        let p = tampered(&format!("{text}{}\n", serde_json::to_string(&l[0]).unwrap()));
        assert!(p.reason.contains("must be the last line"), "{p:?}");
        // Not JSON: bad input.
        assert!(matches!(
            parse_export_checked(&format!("{text}not json\n")),
            Err(ExportError::Syntax(_))
        ));
        // The report of an edited file says TAMPERED.
        let text = render(&ChainReport::tampered(p));
        assert!(text.contains("TAMPERED: record 1"), "{text}");
    }

    #[test]
    fn trailer_must_be_the_last_line() {
        let l = log(2);
        let mut text: String = l.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        let t = ExportTrailer {
            checkpoint: trailer_of(&l, "good"),
        };
        text.push_str(&(serde_json::to_string(&t).unwrap() + "\n"));
        let (records, trailer) = parse_export(&text).unwrap();
        assert_eq!((records.len(), trailer), (l.len(), Some(t.checkpoint.clone())));
        text.push_str(&serde_json::to_string(&l[0]).unwrap());
        assert!(parse_export(&text).unwrap_err().contains("must be the last line"));
    }

    #[test]
    fn actor_token_id_is_covered_by_the_hash() {
        let plain = rec(7, "alice");
        let mut with = plain.clone();
        with.actor_token_id = Some(3);
        let mut other = plain.clone();
        other.actor_token_id = Some(4);
        assert_ne!(chain_hash(GENESIS, &plain), chain_hash(GENESIS, &with));
        assert_ne!(chain_hash(GENESIS, &with), chain_hash(GENESIS, &other));
    }

    #[cfg(feature = "signatures")]
    #[test]
    fn ca_signature_roundtrip_and_forgery() {
        use ring::rand::SystemRandom;
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let ca = signature::CaCert::from_pem(cert.pem().as_bytes()).unwrap();
        let rng = SystemRandom::new();
        let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der(), &rng).unwrap();
        let mut cp = signed(9, &"a".repeat(64), "");
        cp.key = ca.fingerprint().to_string();
        let sig = signer
            .sign(&rng, &SignedCheckpoint::message(cp.last_id, &cp.hash, &cp.at, &cp.key))
            .unwrap();
        cp.signature = hex::encode(sig.as_ref());
        ca.check(&cp).unwrap();
        let mut moved = cp.clone();
        moved.last_id = 8;
        assert!(ca.check(&moved).unwrap_err().contains("does not match"));
        let mut other = cp.clone();
        other.key = "00".repeat(32);
        assert!(ca.check(&other).unwrap_err().contains("not this CA"));
    }

    /// The fault kind (trial10 H-D): a record with an id of 0 or below, without hashes,
    /// prepended to a log was taken for one predating the chain ("1 record(s) predate
    /// the chain … OK"), with or without a signed chain start. No database gives such an
    /// id; and with a signed chain start of 0 no record predates the chain at all.
    #[test]
    fn records_with_ids_below_one_or_above_the_chain_start_never_predate_the_chain() {
        for id in [0, -3] {
            let mut l = log(3);
            l.insert(0, rec(id, "alice"));
            for start in [None, Some(0), Some(2)] {
                let mut v = Verifier::new(vec![]);
                if let Some(s) = start {
                    v = v.chain_starts_after(s);
                }
                for r in &l {
                    v.push(r);
                }
                let r = v.finish();
                let p = r
                    .problem
                    .clone()
                    .unwrap_or_else(|| panic!("id {id} start {start:?}: {}", render(&r)));
                assert_eq!(p.id, Some(id), "{}", render(&r));
                assert!(p.reason.contains("below the first id"), "{}", render(&r));
            }
        }
        // A signed chain start of 0: records 1 and 2 without hashes do not predate it.
        let l = log(3);
        let mut v = Verifier::new(vec![]).chain_starts_after(0);
        for r in &l {
            v.push(r);
        }
        let r = v.finish();
        assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(1), "{}", render(&r));
        // Up to a chain start of 2 they do.
        let mut v = Verifier::new(vec![]).chain_starts_after(2);
        for r in &l {
            v.push(r);
        }
        let r = v.finish();
        assert!(r.problem.is_none() && r.unchained == 2, "{}", render(&r));
    }

    /// The fault kind (trial10 H-C): an export trailer that signs records as `foreign`
    /// (the exporting server found them without a valid mark) makes offline verification
    /// name the first, even though the chain itself is intact.
    #[test]
    fn export_trailer_naming_foreign_records_is_tampered() {
        let l = log(4);
        let last = l.last().unwrap();
        let mut t = signed(last.id, last.hash.as_deref().unwrap(), "ab");
        t.occasion = Some(EXPORT_OCCASION.into());
        t.foreign = Some(RecordRange {
            first: 4,
            last: 4,
            count: 1,
        });
        let mut v = Verifier::new(vec![]).chain_starts_after(2);
        for r in &l {
            v.push(r);
        }
        let r = v.finish_export(Some(&t));
        let p = r.problem.clone().unwrap_or_else(|| panic!("{}", render(&r)));
        assert_eq!((p.id, p.position), (Some(4), 4), "{}", render(&r));
        assert!(p.reason.contains("written by no server"), "{}", render(&r));
    }

    /// The fault kind (trial14 HIGH-2): a retention record carrying any signed checkpoint
    /// of the log (any viewer can read them) was taken for a link of the checkpoint
    /// chain. Only a cut signed for retention, naming a record no longer in the log, is.
    #[test]
    fn a_checkpoint_wrapped_into_a_retention_record_is_no_link() {
        let l = log(4);
        let last = l.last().unwrap();
        for occasion in ["start", "interval", "shutdown", "retention", "export"] {
            let mut l = l.clone();
            let cp = SignedCheckpoint {
                occasion: Some(occasion.into()),
                chain_start: Some(2),
                ..signed(last.id, last.hash.as_deref().unwrap(), "good")
            };
            push(&mut l, CHECKPOINT_ACTION, serde_json::to_string(&cp).unwrap());
            push(&mut l, "release", "{}".into());
            let rc = RetentionCut {
                cut: cp,
                records: 0,
                archive: "x".into(),
                archived_warnings: Vec::new(),
            };
            push(&mut l, RETENTION_ACTION, serde_json::to_string(&rc).unwrap());
            let wrapped = l.last().unwrap().id;
            let mut v = Verifier::new(vec![]).with_signatures(fake_check());
            l.iter().for_each(|x| v.push(x));
            let r = v.finish();
            let p = r
                .problem
                .clone()
                .unwrap_or_else(|| panic!("{occasion}: {}", render(&r)));
            assert_eq!(p.id, Some(wrapped), "{occasion}: {}", render(&r));
            assert!(p.reason.contains("not a retention cut"), "{occasion}: {}", p.reason);
        }
    }

    /// The same kind: a genuine-looking retention cut (signed for retention) naming a
    /// record the log still holds was removed by no retention.
    #[test]
    fn a_retention_cut_naming_a_record_still_in_the_log_is_no_link() {
        let mut l = log(4);
        let cut = SignedCheckpoint {
            occasion: Some(RETENTION_CUT_OCCASION.into()),
            ..signed(4, l[3].hash.as_deref().unwrap(), "good")
        };
        let rc = RetentionCut {
            cut,
            records: 2,
            archive: "x".into(),
            archived_warnings: Vec::new(),
        };
        push(&mut l, RETENTION_ACTION, serde_json::to_string(&rc).unwrap());
        let mut v = Verifier::new(vec![]).with_signatures(fake_check());
        l.iter().for_each(|x| v.push(x));
        let p = v.finish().problem.unwrap();
        assert_eq!(p.id, l.last().map(|r| r.id));
        assert!(p.reason.contains("still holds"), "{}", p.reason);
        // The same cut after retention removed records 3 and 4 continues the chain.
        let kept: Vec<AuditRecord> = l[4..].to_vec();
        let r = verify_export(
            &kept,
            Some(&export_trailer_of(&kept, "good")),
            vec![],
            Some(fake_check()),
        );
        assert!(r.ok, "{}", render(&r));
    }

    /// The fault kind (trial14 HIGH-2, server and export disagreeing): the export's signed
    /// trailer names a record written by no server before the first problem the chain
    /// shows; that record is named, as the server's verification names it.
    #[test]
    fn an_export_names_the_first_foreign_record_before_a_later_chain_problem() {
        let mut l = log(4);
        // A forged retention record after the foreign record 4 (a problem at 7).
        let cp = SignedCheckpoint {
            occasion: Some("start".into()),
            ..signed(6, l[5].hash.as_deref().unwrap(), "good")
        };
        let rc = RetentionCut {
            cut: cp,
            records: 0,
            archive: "x".into(),
            archived_warnings: Vec::new(),
        };
        push(&mut l, RETENTION_ACTION, serde_json::to_string(&rc).unwrap());
        let last = l.last().unwrap();
        let mut t = signed(last.id, last.hash.as_deref().unwrap(), "good");
        t.occasion = Some(EXPORT_OCCASION.into());
        t.foreign = Some(RecordRange {
            first: 4,
            last: 7,
            count: 2,
        });
        let r = verify_export(&l, Some(&t), vec![], Some(fake_check()));
        let p = r.problem.clone().unwrap();
        assert_eq!((p.id, p.position), (Some(4), 4), "{}", render(&r));
        assert!(p.reason.contains("written by no server"), "{}", p.reason);
        // A trailer whose signature does not verify names nothing earlier.
        t.signature = "forged".into();
        let r = verify_export(&l, Some(&t), vec![], Some(fake_check()));
        assert_eq!(r.problem.and_then(|p| p.id), Some(7));
    }

    /// trial10 LOW: a JSON reader keeping the last of two equal keys hid an edit
    /// (`"actor":"system","actor":"admin"` verified as the record it hashed to). A key
    /// named twice, in a record, the trailer or a signed detail, is tampering.
    #[test]
    fn duplicate_json_keys_in_an_export_are_tampering() {
        let l = log(3);
        let t = export_trailer_of(&l, "good");
        let mut text: String = l.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        text.push_str(&serde_json::to_string(&ExportTrailer { checkpoint: t }).unwrap());
        assert!(parse_export_checked(&text).is_ok());
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert!(lines[3].contains("\"actor\":\"alice\""), "{}", lines[3]);
        lines[3] = lines[3].replacen("\"actor\":", "\"actor\":\"system\",\"actor\":", 1);
        let doubled = lines.join("\n");
        match parse_export_checked(&doubled) {
            Err(ExportError::Tampered(p)) => {
                assert_eq!(p.id, Some(l[3].id));
                assert_eq!(p.position, 4);
                assert!(p.reason.contains("\"actor\" twice"), "{}", p.reason);
            }
            other => panic!("accepted or bad input: {other:?}"),
        }
        // In the trailer's checkpoint (nested object).
        let doubled = text.replacen("\"signature\":", "\"signature\":\"00\",\"signature\":", 1);
        assert!(matches!(parse_export_checked(&doubled), Err(ExportError::Tampered(_))));
        // Still bad input when not JSON at all.
        assert!(matches!(parse_export_checked("{\"id\":"), Err(ExportError::Syntax(_))));
        // A signed detail naming a key twice.
        assert!(
            from_str_unique::<SignedCheckpoint>("{\"last_id\":1,\"last_id\":2,\"hash\":\"x\"}")
                .unwrap_err()
                .contains("\"last_id\" twice")
        );
    }

    /// trial10 LOW: a filtered export (no trailer, records left out) was TAMPERED at
    /// its first gap. Without a trailer the file is not a full export: each record is
    /// checked on its own, the links present are counted, and the verdict is "not a
    /// full export" — never intact, and tampering only for what no server exports.
    #[test]
    fn an_export_without_a_trailer_is_not_a_full_export_and_says_what_it_checked() {
        let l = log(8);
        // The first chained record (genesis), its successor, a gap, one more.
        let subset: Vec<AuditRecord> = [2, 3, 6, 7].iter().map(|i| l[*i].clone()).collect();
        let r = verify_export(&subset, None, vec![], Some(fake_check()));
        assert!(!r.ok && r.problem.is_none(), "{r:?}");
        assert_eq!(r.not_full_export, Some(PartialExport { linked: 3, gaps: 1 }));
        assert_eq!(r.chained, 4);
        let text = render(&r);
        assert!(
            text.contains("NOT A FULL EXPORT") && text.contains("3 of them link"),
            "{text}"
        );
        assert!(!text.contains("chain starts") && !text.contains("OK"), "{text}");
        // An edit without recomputing the hash is still named.
        let mut edited = subset.clone();
        edited[2].comment = Some("routine".into());
        let p = verify_export(&edited, None, vec![], None).problem.unwrap();
        assert_eq!(p.id, Some(l[6].id));
        assert!(p.reason.contains("do not match its hash"), "{}", p.reason);
        // A copied line, an id below 1.
        let mut twice = subset.clone();
        twice.push(subset[0].clone());
        assert!(verify_export(&twice, None, vec![], None)
            .problem
            .unwrap()
            .reason
            .contains("twice"));
        let mut zero = subset.clone();
        zero[0].id = 0;
        assert!(verify_export(&zero, None, vec![], None).problem.is_some());
        // A given checkpoint naming a record present is compared: a mismatch is the
        // caller's result (trial33 MED-D), never the file's `problem`.
        let cp = (
            "given".to_string(),
            Checkpoint {
                last_id: l[6].id,
                hash: "f".repeat(64),
            },
        );
        let r = verify_export(&subset, None, vec![cp.clone()], None);
        assert!(r.problem.is_none() && !r.ok, "{r:?}");
        let g = r.given_mismatch.unwrap();
        assert_eq!(g.id, Some(l[6].id));
        assert!(g.reason.contains("checkpoint you gave"), "{}", g.reason);
        // One of another source is the file's problem.
        let other = ("database chain-head".to_string(), cp.1);
        assert!(verify_export(&subset, None, vec![other], None)
            .problem
            .unwrap()
            .reason
            .contains("database chain-head"));
    }

    /// trial10 LOW: checking an export with the wrong `--ca` read as TAMPERED. When no
    /// signed checkpoint of the file names the given CA as its signer, the outcome is
    /// "signed by another CA" (nothing checked); a file mixing signers is tampering.
    #[test]
    fn an_export_signed_by_another_ca_is_its_own_outcome() {
        let l = log(4);
        let t = export_trailer_of(&l, "good");
        let key = t.key.clone();
        let r = verify_export_signed_by(&l, Some(&t), vec![], "cd".repeat(32).as_str(), fake_check());
        assert!(!r.ok && r.problem.is_none(), "{r:?}");
        let o = r.other_ca.clone().unwrap();
        assert_eq!(o.signed_by, vec![key.clone()]);
        let text = render(&r);
        assert!(
            text.contains("SIGNED BY ANOTHER CA") && !text.contains("TAMPERED"),
            "{text}"
        );
        // The right CA: checked as usual.
        let r = verify_export_signed_by(&l, Some(&t), vec![], &key, fake_check());
        assert!(r.ok && r.other_ca.is_none(), "{r:?}");
        // Edits are still tampering whoever signed.
        let mut edited = l.clone();
        edited[3].comment = Some("routine".into());
        let r = verify_export_signed_by(&edited, Some(&t), vec![], "cd".repeat(32).as_str(), fake_check());
        assert!(render(&r).contains("TAMPERED"), "{}", render(&r));
    }

    /// trial28 LOW-3: an archive of records 1–6 joined after an export of records 7–70
    /// was said to hold "record 1, which part 1 (up to record 70) already holds". It
    /// says the parts are out of order.
    #[test]
    fn a_joined_file_whose_later_part_precedes_the_earlier_is_said_out_of_order() {
        let part = |first: i64, last: i64, first_line: usize| {
            let mut r = ChainReport::tampered(ChainProblem {
                id: None,
                subject: None,
                position: 0,
                reason: String::new(),
            });
            r.problem = None;
            r.ok = true;
            r.first_chained_id = Some(first);
            r.head = Some(Checkpoint {
                last_id: last,
                hash: "ab".repeat(32),
            });
            JoinedPart {
                first_line,
                last_line: first_line + 9,
                report: r,
            }
        };
        let text = render_joined(&[part(7, 70, 1), part(1, 6, 11)]);
        assert!(
            text.contains("part 2 comes before part 1: its records 1–6 precede part 1's records 7–70"),
            "{text}"
        );
        assert!(!text.contains("already holds"), "{text}");
        // Overlapping parts are still "the same records twice".
        let text = render_joined(&[part(1, 70, 1), part(5, 80, 11)]);
        assert!(text.contains("already holds"), "{text}");
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;

    /// trial33 LOW-C: after a retention cut, verification said the records before the
    /// first marked checkpoint "predate marks" — they were archived by retention.
    #[test]
    fn marked_from_after_a_retention_cut_says_the_earlier_records_were_archived() {
        let mut r = ChainReport::tampered(ChainProblem {
            id: None,
            subject: None,
            position: 0,
            reason: String::new(),
        });
        r.problem = None;
        r.ok = true;
        r.first_chained_id = Some(95);
        r.marked_from = Some(97);
        r.continues_after = Some(Checkpoint {
            last_id: 94,
            hash: "a".repeat(64),
        });
        let text = render(&r);
        assert!(!text.contains("predate marks"), "{text}");
        assert!(
            text.contains("the records from record 95 before it chain up to it")
                && text.contains("the records up to 94 were archived by retention"),
            "{text}"
        );
        // A log starting at its first marked checkpoint: nothing stands before it.
        r.continues_after = None;
        r.first_chained_id = Some(97);
        assert!(!render(&r).contains("before it"), "{}", render(&r));
        // A log from the start: the records before it are server init's or predate marks.
        r.first_chained_id = Some(1);
        assert!(render(&r).contains("`server init`'s own"), "{}", render(&r));
    }
}

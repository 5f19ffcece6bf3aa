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
    out
}

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
    pub last_id: i64,
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

/// The first record where the chain breaks, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainProblem {
    /// Id of the first bad record (for a truncated tail: the last record present).
    pub id: i64,
    /// 1-based position of that record in the checked sequence (line number of an export).
    pub position: u64,
    pub reason: String,
}

/// Result of checking a sequence of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainReport {
    /// No problem found.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<ChainProblem>,
}

/// Incremental verifier: feed records in log order with [`Verifier::push`], then
/// [`Verifier::finish`]. Memory stays constant whatever the log's size.
#[derive(Debug, Default)]
pub struct Verifier {
    position: u64,
    unchained: u64,
    chained: u64,
    first_chained_id: Option<i64>,
    head: Option<Checkpoint>,
    /// Checkpoints seen to match so far (`last_id` inside the log).
    problem: Option<ChainProblem>,
    checkpoints: Vec<(String, Checkpoint)>,
    matched: Vec<bool>,
    /// Records with a larger id must be chained (set from the database).
    started_after: Option<i64>,
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

    /// Records with an id above `id` were written after the chain existed: one without
    /// a hash is an error (the database knows where its chain starts; an export does not).
    pub fn chain_starts_after(mut self, id: i64) -> Self {
        self.started_after = Some(id);
        self
    }

    /// Checks the next record; after the first problem, further records are ignored.
    pub fn push(&mut self, r: &AuditRecord) {
        if self.problem.is_some() {
            return;
        }
        self.position += 1;
        let bad = |reason: String| ChainProblem {
            id: r.id,
            position: self.position,
            reason,
        };
        let (prev, hash) = match (&r.prev_hash, &r.hash) {
            (None, None) if self.head.is_none() && self.started_after.is_none_or(|s| r.id <= s) => {
                self.unchained += 1;
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
        let expected_prev = self.head.as_ref().map_or(GENESIS, |h| h.hash.as_str());
        if prev != expected_prev {
            self.problem = Some(bad(match &self.head {
                None => "is the first chained record but its prev_hash is not the genesis value \
                         (records before it were removed)"
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
        for (i, (src, cp)) in self.checkpoints.iter().enumerate() {
            if cp.last_id == r.id {
                if cp.hash != *hash {
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
        self.head = Some(Checkpoint {
            last_id: r.id,
            hash: hash.clone(),
        });
    }

    /// The report; checkpoints not met in the log are tail truncations.
    pub fn finish(mut self) -> ChainReport {
        if self.problem.is_none() {
            for (i, (src, cp)) in self.checkpoints.iter().enumerate() {
                if self.matched[i] {
                    continue;
                }
                let (id, last) = match &self.head {
                    Some(h) => (h.last_id, format!("ends at record {}", h.last_id)),
                    None => (0, "has no chained record".to_string()),
                };
                self.problem = Some(ChainProblem {
                    id,
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
            ok: self.problem.is_none(),
            unchained: self.unchained,
            chained: self.chained,
            first_chained_id: self.first_chained_id,
            head: self.head,
            checkpoints: self.checkpoints.into_iter().map(|(s, _)| s).collect(),
            problem: self.problem,
        }
    }
}

/// Checks `records` (in log order) against the chain and `checkpoints`.
pub fn verify(records: &[AuditRecord], checkpoints: Vec<(String, Checkpoint)>) -> ChainReport {
    let mut v = Verifier::new(checkpoints);
    for r in records {
        v.push(r);
    }
    v.finish()
}

/// Parses a JSON-lines export (`GET /v1/audit?format=jsonl`), blank lines skipped.
///
/// # Errors
/// The 1-based line number and serde's message for a line that is not an audit record.
pub fn parse_jsonl(text: &str) -> Result<Vec<AuditRecord>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: not an audit record: {e}", i + 1)))
        .collect()
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
    match report.first_chained_id {
        Some(id) => out.push_str(&format!("chain starts at record {id}\n")),
        None => out.push_str("no chained records\n"),
    }
    out.push_str(&format!("{} chained record(s) checked\n", report.chained));
    for c in &report.checkpoints {
        out.push_str(&format!("compared with the {c} checkpoint\n"));
    }
    match &report.problem {
        None => {
            if let Some(h) = &report.head {
                out.push_str(&format!("head: {}:{}\n", h.last_id, h.hash));
            }
            out.push_str("OK: the audit chain is intact\n");
        }
        Some(p) => out.push_str(&format!(
            "TAMPERED: record {} (entry {}) {}\n",
            p.id, p.position, p.reason
        )),
    }
    out
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
            assert_eq!(p.id, 5);
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
        assert_eq!(p.id, 6);
        assert!(p.reason.contains("removed"), "{}", p.reason);
        // The first chained record removed.
        let mut l = log(5);
        l.remove(2);
        assert_eq!(verify(&l, vec![]).problem.unwrap().id, 4);
    }

    #[test]
    fn reordered_records_are_detected() {
        let mut l = log(5);
        l.swap(3, 4);
        assert_eq!(verify(&l, vec![]).problem.unwrap().id, 5);
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
        assert_eq!(p.id, 5, "names the last record present");
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
        assert_eq!(p.id, 7);
    }

    #[test]
    fn removed_hash_after_chain_is_detected() {
        let mut l = log(3);
        l[3].hash = None;
        l[3].prev_hash = None;
        assert_eq!(verify(&l, vec![]).problem.unwrap().id, 4);
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
}

//! The audit log as CSV (`GET /v1/audit?format=csv`, the console's CSV export): a pure
//! function over records.
//!
//! Hand-written rather than the `csv` crate: one fixed header and nine string columns,
//! where what matters is the spreadsheet-safety rule below, which no CSV writer applies.
//!
//! Spreadsheet formula injection (OWASP "CSV Injection"): a cell that starts with `=`,
//! `+`, `-`, `@`, a tab or a carriage return is run as a formula by Excel, LibreOffice
//! and Google Sheets. Hostnames, comments, labels and agent-reported text end up in
//! these cells, so every such cell gets a leading `'` (shown as text, the value is still
//! readable) and is quoted.

#![deny(missing_docs)]

use std::collections::HashMap;

use cordon_proto::AuditRecord;

/// The header line (without the newline).
pub const HEADER: &str = "id,at,actor,action,host_id,hostname,comment,result,detail";

/// Whether a spreadsheet would treat a cell starting like `s` as a formula.
fn formula_like(s: &str) -> bool {
    matches!(s.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'))
}

/// One CSV cell: formula-like values neutralised, quoted when needed (RFC 4180).
pub fn cell(s: &str) -> String {
    let s = if formula_like(s) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The records as CSV with a header; `hostnames` maps host ids to hostnames (a host no
/// longer known leaves the hostname cell empty).
pub fn to_csv(records: &[AuditRecord], hostnames: &HashMap<String, String>) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for r in records {
        let hostname = r
            .host_id
            .as_ref()
            .and_then(|id| hostnames.get(id))
            .cloned()
            .unwrap_or_default();
        let fields = [
            r.id.to_string(),
            r.at.clone(),
            r.actor.clone(),
            r.action.clone(),
            r.host_id.clone().unwrap_or_default(),
            hostname,
            r.comment.clone().unwrap_or_default(),
            r.result.clone(),
            r.detail.clone().unwrap_or_default(),
        ];
        out.push_str(&fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(comment: &str) -> AuditRecord {
        AuditRecord {
            id: 1,
            at: "2030-01-01T00:00:00.000Z".into(),
            actor: "@evil".into(),
            action: "quarantine".into(),
            host_id: Some("h1".into()),
            comment: Some(comment.into()),
            result: "ok".into(),
            detail: Some("-2+3".into()),
            event_id: None,
            rule: None,
            actor_token_id: None,
            prev_hash: None,
            hash: None,
        }
    }

    #[test]
    fn csv_formula_injection_is_neutralised() {
        for bad in ["=HYPERLINK(A1)", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            let c = cell(bad);
            assert!(c.starts_with("\"'") || c.starts_with('\''), "{bad:?} -> {c:?}");
            assert!(c.contains(&bad[1..]), "the value stays readable: {c:?}");
        }
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        let mut names = HashMap::new();
        names.insert("h1".to_string(), "=cmd|' /C calc'!A0".to_string());
        let out = to_csv(&[rec("=1+1")], &names);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(HEADER));
        let row = lines.next().unwrap_or_default();
        assert_eq!(
            row,
            "1,2030-01-01T00:00:00.000Z,'@evil,quarantine,h1,'=cmd|' /C calc'!A0,'=1+1,ok,'-2+3"
        );
        // No cell of the row starts with a formula character.
        for c in row.split(',') {
            assert!(!formula_like(c.trim_start_matches('"')), "{c}");
        }
    }
}

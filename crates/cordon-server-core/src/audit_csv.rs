//! The audit log as CSV (`GET /v1/audit?format=csv`, the console's CSV export): a pure
//! function over records.
//!
//! Hand-written rather than the `csv` crate: one fixed header and twelve string columns,
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

/// The header line (without the newline). The identity columns come last, so a sheet
/// reading the first nine by position keeps working: `actor_token_id` (the API token
/// behind the actor; the name alone can be reused or edited, trial33 MED-C), `rule` (the
/// automation rule of an automatic action) and `event_id` (the event it acted on); empty
/// when a record has none.
pub const HEADER: &str = "id,at,actor,action,host_id,hostname,comment,result,detail,actor_token_id,rule,event_id";

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
            r.actor_token_id.map(|id| id.to_string()).unwrap_or_default(),
            r.rule.clone().unwrap_or_default(),
            r.event_id.clone().unwrap_or_default(),
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
            "1,2030-01-01T00:00:00.000Z,'@evil,quarantine,h1,'=cmd|' /C calc'!A0,'=1+1,ok,'-2+3,,,"
        );
        // No cell of the row starts with a formula character.
        for c in row.split(',') {
            assert!(!formula_like(c.trim_start_matches('"')), "{c}");
        }
    }

    /// trial33 MED-C: the CSV export had no token id, rule or event column, so a manual
    /// action under a token renamed `rule:wazuh-critical` read exactly as that rule's.
    #[test]
    fn csv_carries_the_token_id_rule_and_event() {
        assert!(HEADER.ends_with(",detail,actor_token_id,rule,event_id"));
        let mut manual = rec("ir-1");
        manual.actor = "rule:wazuh-critical".into();
        manual.actor_token_id = Some(12);
        let mut auto = rec("ir-1");
        auto.actor = "rule:wazuh-critical".into();
        auto.rule = Some("wazuh-critical".into());
        auto.event_id = Some("=ev-7".into());
        let out = to_csv(&[manual, auto], &HashMap::new());
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert!(rows[0].ends_with(",12,,"), "{}", rows[0]);
        // An event id is text from outside: neutralised like every other cell.
        assert!(rows[1].ends_with(",,wazuh-critical,'=ev-7"), "{}", rows[1]);
        assert_ne!(rows[0], rows[1]);
    }
}

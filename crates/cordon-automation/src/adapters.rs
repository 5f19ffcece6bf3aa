//! Turning other tools' events into [`EventIn`] (pure).
//!
//! - Wazuh: the alert JSON Wazuh hands a custom integration (`rule.level`, `rule.id`,
//!   `rule.groups`, `agent.name`/`agent.ip`). Type `wazuh.alert`, tagged
//!   `wazuh.rule.<id>` and `wazuh.group.<group>`; severity from the level (12 and above
//!   critical by default).
//! - Velociraptor: client event rows as JSON lines, as forwarded by the server artifact
//!   `Server.Cordon.ForwardEvents` (`Fqdn`/`Hostname`/`ClientId`, `Artifact`, optional
//!   `EventType`, `Severity`).

use serde_json::Value;

use cordon_proto::automation::{EventIn, Severity};
use cordon_proto::timefmt::Timestamp;

/// Wazuh rule levels at or above this are `critical` unless the request says otherwise.
pub const WAZUH_CRITICAL_LEVEL: i64 = 12;

/// Severity of a Wazuh rule `level` (0-15): `critical` from `critical_level` up, then
/// high from 10, medium from 7, low from 4, info below.
pub fn wazuh_severity(level: i64, critical_level: i64) -> Severity {
    if level >= critical_level {
        Severity::Critical
    } else if level >= 10 {
        Severity::High
    } else if level >= 7 {
        Severity::Medium
    } else if level >= 4 {
        Severity::Low
    } else {
        Severity::Info
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_i64()
        .or_else(|| cur.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Wazuh's timestamps look like `2024-05-01T10:00:00.123+0000`; RFC 3339 wants `+00:00`.
/// A blank one is none.
///
/// # Errors
/// [`Timestamp::parse`]'s message, for a time that is not RFC 3339 even so.
fn wazuh_time(ts: &str) -> Result<Option<Timestamp>, String> {
    let b = ts.as_bytes();
    let ts = if b.len() > 5
        && (b[b.len() - 5] == b'+' || b[b.len() - 5] == b'-')
        && ts[ts.len() - 4..].chars().all(|c| c.is_ascii_digit())
    {
        format!("{}:{}", &ts[..ts.len() - 2], &ts[ts.len() - 2..])
    } else {
        ts.to_string()
    };
    event_time(&ts)
}

/// An event time as a source sent it: blank is none, anything else must be RFC 3339.
///
/// # Errors
/// [`Timestamp::parse`]'s message.
fn event_time(ts: &str) -> Result<Option<Timestamp>, String> {
    if ts.trim().is_empty() {
        return Ok(None);
    }
    // The adapters' errors are still sentences (review14 LOW-6, not done here).
    Timestamp::parse(ts).map(Some).map_err(|e| e.to_string())
}

/// Converts a Wazuh alert (as a custom integration receives it) into an event of type
/// `wazuh.alert`: the rule id and groups become tags (`wazuh.rule.ID`,
/// `wazuh.group.G`), `rule.level` the severity ([`wazuh_severity`]), the agent's name
/// (else IP, else id) the host.
///
/// # Errors
/// Text naming what is wrong when the alert is not an object, has no `rule.level` or
/// names no agent.
pub fn wazuh(alert: &Value, critical_level: i64) -> Result<EventIn, String> {
    if !alert.is_object() {
        return Err("a Wazuh alert must be a JSON object".into());
    }
    let level = int_at(alert, &["rule", "level"]).ok_or("rule.level is missing")?;
    let host = str_at(alert, &["agent", "name"])
        .or_else(|| str_at(alert, &["agent", "ip"]))
        .or_else(|| str_at(alert, &["agent", "id"]))
        .ok_or("agent.name / agent.ip is missing")?;
    let mut tags = Vec::new();
    if let Some(id) = str_at(alert, &["rule", "id"])
        .map(str::to_string)
        .or_else(|| int_at(alert, &["rule", "id"]).map(|i| i.to_string()))
    {
        tags.push(format!("wazuh.rule.{id}"));
    }
    if let Some(groups) = alert.pointer("/rule/groups").and_then(Value::as_array) {
        for g in groups.iter().filter_map(Value::as_str) {
            tags.push(format!("wazuh.group.{g}"));
        }
    }
    // Prefer the agent's IP when the name is absent; keep the name otherwise (an IP
    // may be NATed). The server falls back from name to IP itself.
    Ok(EventIn {
        host: host.to_string(),
        event_type: "wazuh.alert".into(),
        tags,
        severity: wazuh_severity(level, critical_level),
        source: Some("wazuh".into()),
        occurred_at: str_at(alert, &["timestamp"]).map(wazuh_time).transpose()?.flatten(),
        raw: Some(alert.clone()),
    })
}

/// Alternative host references in a Wazuh alert, tried when the first is unknown.
pub fn wazuh_host_fallbacks(alert: &Value) -> Vec<String> {
    [str_at(alert, &["agent", "ip"]), str_at(alert, &["agent", "id"])]
        .into_iter()
        .flatten()
        .map(str::to_string)
        .collect()
}

/// The keys of a Velociraptor row that name its host, in the order they are tried.
const VELOCIRAPTOR_HOST_KEYS: [&str; 5] = ["Fqdn", "Hostname", "hostname", "ClientId", "client_id"];

/// Alternative host references in a Velociraptor row, tried when the first is unknown:
/// its other names, in `VELOCIRAPTOR_HOST_KEYS` order (a client's `Fqdn` is often
/// `localhost.localdomain` or a name the host was not enrolled under).
pub fn velociraptor_host_fallbacks(row: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in VELOCIRAPTOR_HOST_KEYS.iter().filter_map(|k| str_at(row, &[k])) {
        if !out.iter().any(|o| o == h) {
            out.push(h.to_string());
        }
    }
    // The first is the event's own reference.
    out.into_iter().skip(1).collect()
}

/// Converts one Velociraptor artifact row into an event: the host from `Fqdn`,
/// `Hostname` or `ClientId`, the type from `EventType` or `velociraptor.<Artifact>`, the
/// severity from `Severity` (default medium).
///
/// # Errors
/// Text naming what is wrong when the row is not an object, names no host or type, or
/// has an unknown severity.
pub fn velociraptor_row(row: &Value) -> Result<EventIn, String> {
    if !row.is_object() {
        return Err("a Velociraptor event must be a JSON object".into());
    }
    let host = VELOCIRAPTOR_HOST_KEYS
        .iter()
        .find_map(|k| str_at(row, &[k]))
        .ok_or("none of Fqdn, Hostname, ClientId is present")?;
    let artifact = str_at(row, &["Artifact"]).or_else(|| str_at(row, &["artifact"]));
    let event_type = str_at(row, &["EventType"])
        .map(str::to_string)
        .or_else(|| artifact.map(|a| format!("velociraptor.{a}")))
        .ok_or("neither EventType nor Artifact is present")?;
    let severity = match str_at(row, &["Severity"]).or_else(|| str_at(row, &["severity"])) {
        Some(s) => Severity::parse(s).ok_or_else(|| format!("Severity {s:?} is not info|low|medium|high|critical"))?,
        None => Severity::Medium,
    };
    let mut tags = Vec::new();
    if let Some(a) = artifact {
        let t = format!("velociraptor.{a}");
        if t != event_type {
            tags.push(t);
        }
    }
    if let Some(c) = str_at(row, &["ClientId"]) {
        tags.push(format!("velociraptor.client.{c}"));
    }
    Ok(EventIn {
        host: host.to_string(),
        event_type,
        tags,
        severity,
        source: Some("velociraptor".into()),
        occurred_at: str_at(row, &["Timestamp"]).map(event_time).transpose()?.flatten(),
        raw: Some(row.clone()),
    })
}

/// JSON lines, one event per line (blank lines skipped), as `Server.Cordon.ForwardEvents`
/// sends them. A body that is one JSON document (an object, possibly spread over several
/// lines as Velociraptor's `serialize()` writes it, or an array of rows) is read whole.
pub fn velociraptor_lines(body: &str) -> Vec<Result<EventIn, String>> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        return match serde_json::from_str::<Vec<Value>>(trimmed) {
            Ok(rows) => rows.iter().map(velociraptor_row).collect(),
            Err(e) => vec![Err(format!("not a JSON array: {e}"))],
        };
    }
    if trimmed.starts_with('{') && body.trim_end().contains('\n') {
        if let Ok(row @ Value::Object(_)) = serde_json::from_str::<Value>(trimmed) {
            return vec![velociraptor_row(&row)];
        }
    }
    body.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<Value>(l)
                .map_err(|e| format!("line {}: not JSON: {e}", i + 1))
                .and_then(|v| velociraptor_row(&v).map_err(|e| format!("line {}: {e}", i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wazuh_alert_maps() {
        let a = json!({"timestamp": "2024-05-01T10:00:00.123+0000", "rule": {"level": 12, "id": "100200",
            "groups": ["syscheck", "malware"], "description": "Rootkit"}, "agent": {"id": "003", "name": "web1", "ip": "192.0.2.10"}});
        let e = wazuh(&a, WAZUH_CRITICAL_LEVEL).unwrap();
        assert_eq!(e.host, "web1");
        assert_eq!(e.event_type, "wazuh.alert");
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(
            e.tags,
            vec!["wazuh.rule.100200", "wazuh.group.syscheck", "wazuh.group.malware"]
        );
        assert_eq!(
            e.occurred_at.map(|t| t.to_string()).as_deref(),
            Some("2024-05-01T10:00:00.123Z")
        );
        assert_eq!(wazuh_host_fallbacks(&a), vec!["192.0.2.10", "003"]);
        let a11 = json!({"rule": {"level": 11, "id": 5}, "agent": {"ip": "192.0.2.10"}});
        let e = wazuh(&a11, WAZUH_CRITICAL_LEVEL).unwrap();
        assert_eq!((e.severity.as_str(), e.host.as_str()), ("high", "192.0.2.10"));
        assert_eq!(e.tags, vec!["wazuh.rule.5"]);
        assert!(wazuh(&json!({"agent": {"name": "x"}}), 12)
            .unwrap_err()
            .contains("rule.level"));
        assert!(wazuh(&json!({"rule": {"level": 3}}), 12).unwrap_err().contains("agent"));
    }

    #[test]
    fn velociraptor_body_forms() {
        // What the forwarder sends, recorded from Velociraptor's VQL engine.
        let body = include_str!("../../../integrations/velociraptor/testdata/forward.ndjson");
        let out = velociraptor_lines(body);
        assert_eq!(out.len(), 2);
        for e in &out {
            let e = e.as_ref().unwrap();
            assert_eq!((e.host.as_str(), e.severity.as_str()), ("web1.example.org", "critical"));
            assert!(e.event_type.starts_with("velociraptor."), "{}", e.event_type);
        }
        // One indented document (serialize(format="json")) is one event, not N bad lines.
        let indented = "{\n \"Fqdn\": \"web1\",\n \"Artifact\": \"Custom.Detect\"\n}\n";
        let out = velociraptor_lines(indented);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ref().unwrap().host, "web1");
    }

    #[test]
    fn velociraptor_lines_map() {
        let body =
            "{\"ClientId\":\"C.1\",\"Fqdn\":\"web1\",\"Artifact\":\"Custom.Detect\",\"Severity\":\"critical\"}\n\n\
                    not json\n{\"Fqdn\":\"web2\",\"EventType\":\"ransomware\"}\n{\"Artifact\":\"x\"}\n";
        let out = velociraptor_lines(body);
        assert_eq!(out.len(), 4);
        let e = out[0].as_ref().unwrap();
        assert_eq!(
            (e.host.as_str(), e.event_type.as_str(), e.severity.as_str()),
            ("web1", "velociraptor.Custom.Detect", "critical")
        );
        assert!(out[1].as_ref().unwrap_err().contains("line 3"));
        assert_eq!(out[2].as_ref().unwrap().severity, Severity::Medium);
        assert!(out[3].as_ref().unwrap_err().contains("Fqdn"));
    }
}

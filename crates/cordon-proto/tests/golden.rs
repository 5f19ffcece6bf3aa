//! Wire compatibility of the typed fields (issue 13): JSON goldens written from what the
//! server, agents and clients send *before* the fields were typed (times, addresses,
//! statuses as strings). Each canonical golden must read into today's types and write
//! back byte for byte; the `*_old_agent` / `*_ns` goldens are what older agents send
//! (fields missing, times with nanoseconds or an offset) and must still be read, with
//! the same values. The value checks go through `to_string()` and JSON so they read the
//! same whether a field is a `String` or a typed value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use cordon_proto::automation::{
    ApprovalList, DecisionResponse, DeliveryList, EventIn, EventList, RuleList, TargetList,
};
use cordon_proto::timefmt::parse_rfc3339;
use cordon_proto::{
    ActionRequest, ActionResponse, AuditList, DesiredState, EnrollRequest, EnrollTokenCreated, HostList, StatusReport,
    TokenList,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Reads golden `name` as `T` and checks that writing it back gives the same bytes
/// (pretty-printed goldens) or the same JSON value (compact goldens).
fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let text = golden(name);
    let v: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} no longer reads: {e}"));
    if text.trim_start().starts_with("{\n") {
        let out = serde_json::to_string_pretty(&v).unwrap();
        assert_eq!(out, text.trim_end(), "{name}: the JSON written changed");
    }
    v
}

/// A time field's value as Unix milliseconds, whatever its Rust type.
fn ms<T: ToString>(t: &T) -> i64 {
    parse_rfc3339(&t.to_string()).unwrap()
}

/// A field's JSON string (a `String` or a serde enum alike).
fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v).unwrap() {
        serde_json::Value::String(s) => s,
        other => panic!("not a string: {other}"),
    }
}

fn strings<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

#[test]
fn agent_reports_keep_their_wire_form() {
    let r: StatusReport = round_trip("status_report.json");
    assert_eq!(wire(&r.state), "isolated");
    assert_eq!(r.backend.as_ref().map(wire), Some("netlink".to_string()));
    assert_eq!(strings(&r.addresses), ["192.0.2.10", "2001:db8::10"]);
    assert_eq!(wire(&r.claims[0].source), "agent");
    assert_eq!(
        r.claims[0].since.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-02T03:04:05.250Z").unwrap())
    );
    assert_eq!(strings(&r.claims[0].servers), ["203.0.113.1"]);
    assert_eq!(r.claims[0].allow, ["198.51.100.7:443"]);
    assert!(r.claims[1].since.is_none());

    let r: StatusReport = round_trip("status_report_failed.json");
    assert_eq!(wire(&r.state), "failed");
    assert_eq!(r.backend.as_ref().map(wire), Some("memory".to_string()));
    assert!(!r.enforcing);
}

#[test]
fn older_agents_reports_still_read() {
    // Before `version`, `enforcing`, `degraded`, `heartbeat_ms` and `claims`.
    let r: StatusReport = round_trip("status_report_old_agent.json");
    assert_eq!(r.version, cordon_proto::PROTO_VERSION);
    assert!(r.enforcing && r.claims.is_empty() && r.heartbeat_ms.is_none());
    assert_eq!(r.backend.as_ref().map(wire), Some("nftables".to_string()));
    assert_eq!(strings(&r.addresses), ["198.51.100.20"]);

    // Engines before the one time format wrote claim times with nanoseconds, or with
    // an offset; the server reads them (to the millisecond).
    let r: StatusReport = round_trip("status_report_claims_ns.json");
    assert_eq!(wire(&r.claims[0].source), "velociraptor");
    assert_eq!(
        r.claims[0].since.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-01T00:00:05.123Z").unwrap())
    );
    assert_eq!(
        r.claims[1].since.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-01T00:00:05Z").unwrap())
    );
    assert!(r.claims[1].allow.is_empty() && r.claims[1].servers.is_empty());
}

#[test]
fn desired_state_and_enrollment_keep_their_wire_form() {
    let d: DesiredState = round_trip("desired_state.json");
    assert_eq!(
        d.expires_at.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-02T05:04:05Z").unwrap())
    );
    assert_eq!(d.allow, ["198.51.100.7:443", "https://edr.example.net"]);
    assert_eq!(d.actor_label().as_deref(), Some("alice (token 3)"));
    let e: EnrollRequest = round_trip("enroll_request.json");
    assert_eq!(strings(&e.addresses), ["192.0.2.10", "fe80::1"]);
    let t: EnrollTokenCreated = round_trip("enroll_token_created.json");
    assert_eq!(ms(&t.expires_at), parse_rfc3339("2030-01-03T03:04:05.250Z").unwrap());
}

#[test]
fn host_answers_keep_their_wire_form() {
    let l: HostList = round_trip("host_list.json");
    let h = &l.hosts[0];
    assert_eq!(strings(&h.addresses), ["192.0.2.10", "2001:db8::10"]);
    assert_eq!(h.desired.actor_token_id, Some(3));
    assert_eq!(
        h.last_seen.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-02T03:04:05.250Z").unwrap())
    );
    assert_eq!(ms(&h.enrolled_at), parse_rfc3339("2029-12-31T23:00:00Z").unwrap());
    assert_eq!(ms(&h.state_since), parse_rfc3339("2030-01-02T03:00:00Z").unwrap());
    assert_eq!(h.backend.as_ref().map(wire), Some("netlink".to_string()));
    assert_eq!(wire(&h.flags[0].kind), "duplicate_address");
    assert_eq!(h.flags[0].value, "192.0.2.10");
    assert_eq!(wire(&h.claims[0].source), "agent");
    let old = &l.hosts[1];
    assert!(old.last_seen.is_none() && old.backend.is_none() && old.flags.is_empty());
    assert_eq!(wire(&old.state), "failed");
}

#[test]
fn actions_keep_their_wire_form() {
    let a: ActionRequest = round_trip("action_request.json");
    assert_eq!(
        a.expires_at.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-02T05:04:05Z").unwrap())
    );
    let r: ActionResponse = round_trip("action_response.json");
    assert_eq!(wire(&r.action), "quarantine");
    assert_eq!(r.results[0].fields, ["allow", "expires_at"]);
    assert_eq!(strings(&r.results[0].other_claims), ["wazuh"]);
}

#[test]
fn audit_and_tokens_keep_their_wire_form() {
    let a: AuditList = round_trip("audit_list.json");
    // `at` is hashed into the chain as the text it was written as: it stays text.
    assert_eq!(a.records[0].at, "2030-01-02T03:04:05.250Z");
    let alert = a.chain_alert.as_ref().unwrap();
    assert_eq!(ms(&alert.checked_at), parse_rfc3339("2030-01-02T03:05:00Z").unwrap());
    let t: TokenList = round_trip("token_list.json");
    assert_eq!(
        ms(&t.tokens[0].created_at),
        parse_rfc3339("2030-01-01T00:00:00Z").unwrap()
    );
}

#[test]
fn automation_answers_keep_their_wire_form() {
    let e: EventIn = round_trip("event_in.json");
    assert_eq!(
        e.occurred_at.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-02T03:04:05Z").unwrap())
    );
    let l: EventList = round_trip("event_list.json");
    assert_eq!(wire(&l.events[0].status), "approval_required");
    assert_eq!(wire(&l.events[0].outcomes[1].outcome), "blocked");
    assert_eq!(
        ms(&l.events[0].received_at),
        parse_rfc3339("2030-01-02T03:04:06Z").unwrap()
    );
    assert_eq!(wire(&l.events[1].status), "unknown_host");
    assert!(l.events[1].occurred_at.is_none());
    let r: RuleList = round_trip("rule_list.json");
    assert_eq!(
        ms(&r.rules[0].updated_at),
        parse_rfc3339("2030-01-01T00:00:00Z").unwrap()
    );
    let a: ApprovalList = round_trip("approval_list.json");
    assert_eq!(wire(&a.approvals[0].status), "approved");
    assert_eq!(a.approvals[0].decided_by_label().as_deref(), Some("alice (token 3)"));
    assert_eq!(
        a.approvals[0].decided_at.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-02T03:10:00Z").unwrap())
    );
    assert_eq!(wire(&a.approvals[1].status), "pending");
    let d: DecisionResponse = round_trip("decision_response.json");
    assert_eq!(wire(&d.results[0].status), "superseded");
    assert_eq!(wire(&d.results[1].status), "not_pending");
    let t: TargetList = round_trip("target_list.json");
    assert_eq!(
        ms(&t.targets[0].created_at),
        parse_rfc3339("2030-01-01T00:00:00Z").unwrap()
    );
    let d: DeliveryList = round_trip("delivery_list.json");
    assert_eq!(wire(&d.deliveries[0].status), "pending");
    assert_eq!(wire(&d.deliveries[0].kind), "quarantined");
    assert_eq!(
        d.deliveries[0].next_attempt_at.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-02T03:06:00Z").unwrap())
    );
    assert_eq!(wire(&d.deliveries[1].status), "delivered");
    assert_eq!(
        d.deliveries[1].delivered_at.as_ref().map(ms),
        Some(parse_rfc3339("2030-01-02T03:00:01Z").unwrap())
    );
}

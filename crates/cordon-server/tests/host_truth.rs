//! What the server says about a host is what its agent confirmed (issue 14): effect, not
//! dispatch; degraded, not-enforcing, offline and the claims standing on the host are
//! stored and shown; re-quarantining never silently replaces what is in force; a
//! "quarantined" notification is the agent's confirmation, once per revision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::Ctx;
use cordon_proto::automation::{NotifyKind, TargetSpec};
use cordon_proto::{AgentState, ClaimInfo, StatusReport};
use cordon_server::automation::notify;
use serde_json::{json, Value};

fn report(rev: i64, state: AgentState) -> StatusReport {
    common::status_report(rev, state, "d1", "nftables")
}

async fn get(c: &Ctx, h: &str) -> Value {
    let (st, v) = c.call("GET", &format!("/v1/hosts/{h}"), Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

async fn quarantine(c: &Ctx, path: &str, body: Value) -> Value {
    let (st, v) = c.call("POST", path, Some(&c.responder), Some(&body.to_string())).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

/// A webhook target "soc" (never reached: deliveries stay queued in the outbox) for
/// notification kinds `events`.
async fn soc_webhook(c: &Ctx, events: &[&str]) {
    c.store()
        .add_notify_target(
            "admin",
            &TargetSpec {
                name: "soc".into(),
                kind: cordon_proto::automation::TargetKind::Webhook,
                url: "http://127.0.0.1:9/hook".into(),
                events: events.iter().map(|k| NotifyKind::from(*k)).collect(),
                enabled: true,
            },
        )
        .await
        .unwrap();
}

/// Outbox rows of `kind` so far (after turning the queued audit records into rows).
async fn outbox(c: &Ctx, kind: &str) -> Vec<Value> {
    notify::enqueue(c.store()).await.unwrap();
    c.store()
        .deliveries(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.kind.as_str() == kind)
        .map(|d| d.payload)
        .collect()
}

/// Re-quarantine semantics (docs/server.md): one host, a selection or a label that
/// includes already-quarantined hosts keeps their exceptions, message and expiry unless
/// the request says `replace`; the answer says per host what changed. The fault kind:
/// a second quarantine silently replacing what is in force.
#[tokio::test]
async fn requarantine_never_silently_replaces_and_says_per_host_what_changed() {
    let c = Ctx::new().await;
    let kept = c.enroll("kept", &["web"]).await;
    let same = c.enroll("same", &["web"]).await;
    let fresh = c.enroll("fresh", &["web"]).await;
    // Within the expiry limit (366 days, issue 14; it was 2099-01-01, now refused).
    let expires = cordon_proto::timefmt::to_rfc3339(cordon_proto::timefmt::now_ms() / 1000 * 1000 + 30 * 86_400_000);
    let expires = expires.as_str();
    let first =
        json!({"comment": "IR-1", "allow": ["tcp://192.0.2.9:443"], "message": "call 555", "expires_at": expires});
    quarantine(&c, &format!("/v1/hosts/{kept}/quarantine"), first).await;
    let asked = json!({"comment": "IR-2 outbreak", "allow": ["udp://198.51.100.20:514"]});
    quarantine(&c, &format!("/v1/hosts/{same}/quarantine"), asked.clone()).await;
    let before_kept = get(&c, &kept).await;

    // The whole label, without `replace`.
    let mut body = asked.clone();
    body["label"] = json!("web");
    let v = quarantine(&c, "/v1/quarantine", body.clone()).await;
    let by_host = |v: &Value, id: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["host_id"] == id)
            .cloned()
            .unwrap()
    };
    let r = by_host(&v, &kept);
    assert_eq!(r["change"], "already_quarantined", "{v}");
    assert_eq!(r["fields"], json!(["allow", "message", "expires_at"]), "{v}");
    assert_eq!(by_host(&v, &same)["change"], "unchanged", "{v}");
    assert_eq!(by_host(&v, &fresh)["change"], "new", "{v}");
    let after = get(&c, &kept).await;
    assert_eq!(
        after["desired"], before_kept["desired"],
        "kept host's quarantine must not move"
    );
    assert_eq!(after["desired"]["allow"], json!(["tcp://192.0.2.9:443"]));
    assert_eq!(after["desired"]["expires_at"], expires);
    let audit = c.audit_for(&kept).await;
    let last = audit.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.result.as_str()),
        ("quarantine_unchanged", "already_quarantined")
    );

    // One host by path: the same rule.
    let one = quarantine(&c, &format!("/v1/hosts/{kept}/quarantine"), asked.clone()).await;
    assert_eq!(one["results"][0]["change"], "already_quarantined", "{one}");
    // Adding the Quarantine label to a quarantined host keeps its exceptions too.
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{kept}/labels"),
            Some(&c.responder),
            Some(r#"{"add":["Quarantine"],"comment":"again"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["desired"]["allow"], json!(["tcp://192.0.2.9:443"]), "{v}");
    assert_eq!(v["desired"]["revision"], before_kept["desired"]["revision"]);

    // Preview: the answer, and nothing changed.
    let snap = c.snapshot().await;
    let mut preview = body.clone();
    preview["replace"] = json!(true);
    preview["preview"] = json!(true);
    let v = quarantine(&c, "/v1/quarantine", preview).await;
    assert_eq!(v["preview"], true);
    assert_eq!(by_host(&v, &kept)["change"], "replaced", "{v}");
    assert_eq!(c.snapshot().await, snap, "a preview changed something");

    // `replace`: replaced, naming what; the unchanged one stays unchanged.
    body["replace"] = json!(true);
    let v = quarantine(&c, "/v1/quarantine", body).await;
    let r = by_host(&v, &kept);
    assert_eq!(r["change"], "replaced", "{v}");
    assert_eq!(r["fields"], json!(["allow", "message", "expires_at"]));
    assert_eq!(by_host(&v, &same)["change"], "unchanged");
    assert_eq!(by_host(&v, &fresh)["change"], "unchanged");
    let after = get(&c, &kept).await;
    assert_eq!(after["desired"]["allow"], json!(["udp://198.51.100.20:514"]));
    assert!(after["desired"]["expires_at"].is_null());
    assert_eq!(after["state"], "quarantine_pending");

    // Release: released once, then already released (no new revision).
    let rel = json!({"comment": "done", "hosts": [kept.clone()]});
    let v = quarantine(&c, "/v1/release", rel.clone()).await;
    assert_eq!(v["results"][0]["change"], "released");
    let rev = v["results"][0]["revision"].clone();
    let v = quarantine(&c, "/v1/release", rel).await;
    assert_eq!(v["results"][0]["change"], "already_released");
    assert_eq!(v["results"][0]["revision"], rev);
}

/// Exceptions that together open a whole address family (`0.0.0.0/0`, halves that merge
/// into it, the IPv4-mapped `::ffff:0.0.0.0/96`, `::/1` + `8000::/1`) are refused at request
/// time, for one host, a selection and a label, and nothing changes. The fault kind: the
/// server accepted a request the agent then refused ("isolates nothing"), so the host
/// stayed fully open while the request read as accepted (trial17 HIGH-2).
#[tokio::test]
async fn whole_family_exceptions_are_refused_at_request_time_and_nothing_changes() {
    let c = Ctx::new().await;
    let h = c.enroll("wide", &["web"]).await;
    let snap = c.snapshot().await;
    for (allow, family) in [
        (json!(["0.0.0.0/0"]), "IPv4"),
        (json!(["0.0.0.0/1", "128.0.0.0/1", "tcp://192.0.2.9:443"]), "IPv4"),
        (json!(["::ffff:0.0.0.0/96"]), "IPv4"),
        (json!(["::/1", "8000::/1"]), "IPv6"),
        (json!(["0.0.0.0/0", "::/0"]), "IPv4 and IPv6"),
    ] {
        for (path, extra) in [
            (format!("/v1/hosts/{h}/quarantine"), json!({})),
            ("/v1/quarantine".to_string(), json!({"hosts": [h.clone()]})),
            ("/v1/quarantine".to_string(), json!({"label": "web"})),
        ] {
            let mut body = json!({"comment": "IR-wide", "allow": allow.clone()});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (st, v) = c.call("POST", &path, Some(&c.responder), Some(&body.to_string())).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{path} {allow}: {v}");
            let msg = v.to_string();
            assert!(
                msg.contains(&format!("cover every {family} address")) && msg.contains("nothing was changed"),
                "{path} {allow}: {v}"
            );
        }
    }
    assert_eq!(c.snapshot().await, snap, "a refused request changed something");
    // A wide exception that still leaves the family isolated is accepted.
    let v = quarantine(
        &c,
        &format!("/v1/hosts/{h}/quarantine"),
        json!({"comment": "IR-half", "allow": ["0.0.0.0/1"]}),
    )
    .await;
    assert_eq!(v["results"][0]["change"], "new", "{v}");
}

/// Effect, not dispatch: the request is `quarantine_pending` and notifies
/// `quarantine_requested`; `quarantined` (state, `applied_revision`, notification) comes
/// with the agent's confirmation, once per revision, degraded when exceptions are
/// missing. Before the fix the request itself notified "quarantined".
#[tokio::test]
async fn quarantined_is_notified_on_confirmation_once_per_revision_and_degraded() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &[]).await;
    let all: Vec<&str> = cordon_proto::automation::NOTIFY_KINDS
        .iter()
        .map(NotifyKind::as_str)
        .collect();
    soc_webhook(&c, &all).await;
    // The agent's first report confirms the enrollment's own revision: nobody asked for
    // a release, so nothing is announced (trial finding: one "released" per new agent).
    c.agent_status(&h, &report(1, AgentState::Released)).await;
    assert_eq!(get(&c, &h).await["state"], "normal");
    assert!(outbox(&c, "released").await.is_empty(), "enrollment is not a release");
    let v = quarantine(
        &c,
        &format!("/v1/hosts/{h}/quarantine"),
        json!({"comment": "IR-42", "allow": ["https://edr.example.net"]}),
    )
    .await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    assert_eq!(v["results"][0]["state"], "quarantine_pending");
    assert!(
        outbox(&c, "quarantined").await.is_empty(),
        "a request is not a quarantine"
    );
    let requested = outbox(&c, "quarantine_requested").await;
    assert_eq!(requested.len(), 1);
    // trial10: the person is named by token id as well as by name (a name alone can
    // read like a rule or the server).
    let token = requested[0]["actor_token_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the request names its token: {}", requested[0]));
    assert!(
        requested[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("by rita-responder (token {token})")),
        "{}",
        requested[0]["text"]
    );
    let host = get(&c, &h).await;
    assert_eq!(host["state"], "quarantine_pending");
    assert!(host["applied_revision"].as_i64().unwrap() < rev);

    // The agent has not applied it yet (old revision), or failed: still not quarantined.
    c.agent_status(&h, &report(rev - 1, AgentState::Released)).await;
    c.agent_status(&h, &report(rev, AgentState::Failed)).await;
    assert!(outbox(&c, "quarantined").await.is_empty());
    assert!(get(&c, &h).await["applied_revision"].as_i64().unwrap() < rev);

    // Confirmed in force without the exception that does not resolve.
    let mut r = report(rev, AgentState::Isolated);
    r.degraded = vec!["exception https://edr.example.net unresolved: no such name".into()];
    let (_, st) = c.agent_status(&h, &r).await;
    assert_eq!(st["state"], "quarantined");
    let host = get(&c, &h).await;
    assert_eq!(host["applied_revision"], rev);
    assert_eq!(host["degraded"], json!(r.degraded));
    let sent = outbox(&c, "quarantined").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["degraded"], json!(r.degraded));
    assert_eq!(sent[0]["asked_by"], "rita-responder");
    assert_eq!(sent[0]["asked_by_token_id"], token, "{}", sent[0]);
    assert!(
        sent[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("asked by rita-responder (token {token})")),
        "{}",
        sent[0]["text"]
    );
    assert_eq!(sent[0]["reason"], "IR-42");
    assert!(
        sent[0]["text"]
            .as_str()
            .unwrap()
            .contains("quarantined (degraded: exception https://edr.example.net unresolved"),
        "{}",
        sent[0]["text"]
    );

    // Tampered and repaired, the exception resolves, the report repeats: same revision,
    // no second "quarantined".
    c.agent_status(&h, &report(rev, AgentState::Tampered)).await;
    c.agent_status(&h, &r).await;
    c.agent_status(&h, &report(rev, AgentState::Isolated)).await;
    c.agent_status(&h, &report(rev, AgentState::Isolated)).await;
    assert_eq!(outbox(&c, "quarantined").await.len(), 1);
    assert!(get(&c, &h).await["degraded"].as_array().unwrap().is_empty());
    let confirmed: Vec<_> = c
        .audit_for(&h)
        .await
        .into_iter()
        .filter(|a| a.action == "quarantine_confirmed")
        .collect();
    assert_eq!(confirmed.len(), 1);

    // A release is "released" only when confirmed too.
    let v = quarantine(&c, &format!("/v1/hosts/{h}/release"), json!({"comment": "done"})).await;
    let rel = v["results"][0]["revision"].as_i64().unwrap();
    assert!(outbox(&c, "released").await.is_empty());
    assert_eq!(outbox(&c, "release_requested").await.len(), 1);
    c.agent_status(&h, &report(rel, AgentState::Released)).await;
    assert_eq!(outbox(&c, "released").await.len(), 1);
    // A new revision is a new confirmation.
    let v = quarantine(&c, &format!("/v1/hosts/{h}/quarantine"), json!({"comment": "again"})).await;
    let rev2 = v["results"][0]["revision"].as_i64().unwrap();
    c.agent_status(&h, &report(rev2, AgentState::Isolated)).await;
    assert_eq!(outbox(&c, "quarantined").await.len(), 2);
}

/// trial36 MED-B: a quarantine that first came into force when the agent switched from
/// `enforce = false` to `true` was audited `quarantine_reconfirmed` and never announced:
/// the not-enforcing report had used up the revision's first confirmation, so the channel
/// told "NOT quarantined" never learnt the host was cut off. The first *enforcing*
/// confirmation of a revision is `quarantine_confirmed` and announced `quarantined`,
/// whatever not-enforcing or failed reports came before it; once, as always.
#[tokio::test]
async fn a_quarantine_first_in_force_when_the_agent_starts_enforcing_is_announced() {
    let c = Ctx::new().await;
    let all: Vec<&str> = cordon_proto::automation::NOTIFY_KINDS
        .iter()
        .map(NotifyKind::as_str)
        .collect();
    soc_webhook(&c, &all).await;
    let flip = c.enroll("web-01", &[]).await;
    let app = c.enroll("app-07", &[]).await;
    let mut revs = Vec::new();
    for h in [&flip, &app] {
        let v = quarantine(&c, &format!("/v1/hosts/{h}/quarantine"), json!({"comment": "t36 flip"})).await;
        revs.push(v["results"][0]["revision"].as_i64().unwrap());
    }
    let dry = |rev: i64| {
        let mut r = common::status_report(rev, AgentState::Isolated, "d", "memory");
        r.enforcing = false;
        r
    };
    for (h, rev) in [(&flip, revs[0]), (&app, revs[1])] {
        c.agent_status(h, &dry(rev)).await;
        c.agent_status(h, &dry(rev)).await;
        assert_eq!(get(&c, h).await["state"], "not_enforcing");
    }
    assert_eq!(
        outbox(&c, "not_enforcing").await.len(),
        2,
        "one NOT quarantined per host"
    );
    assert!(outbox(&c, "quarantined").await.is_empty());
    // web-01: enforce = true, restarted: the same revision is now in force.
    let (_, st) = c.agent_status(&flip, &report(revs[0], AgentState::Isolated)).await;
    assert_eq!(st["state"], "quarantined");
    let announced = outbox(&c, "quarantined").await;
    assert_eq!(announced.len(), 1, "the quarantine first in force is announced");
    assert!(announced[0].to_string().contains("web-01"), "{}", announced[0]);
    // app-07: enforcing, fails first, then applies it degraded.
    let mut failed = report(revs[1], AgentState::Failed);
    failed.error = Some("apply_failed".into());
    failed.detail = Some("nft: Operation not permitted".into());
    c.agent_status(&app, &failed).await;
    let mut degraded = report(revs[1], AgentState::Isolated);
    degraded.degraded = vec!["https://edr.example.net: no address".into()];
    c.agent_status(&app, &degraded).await;
    assert_eq!(outbox(&c, "quarantined").await.len(), 2, "app-07 in force: announced");
    for (h, result) in [(&flip, "ok"), (&app, "degraded")] {
        let actions: Vec<(String, String)> = c
            .audit_for(h)
            .await
            .into_iter()
            .filter(|a| a.action.starts_with("quarantine_") || a.action.starts_with("not_enforcing"))
            .map(|a| (a.action, a.result))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("not_enforcing".to_string(), "not_enforcing".to_string()),
                ("quarantine_confirmed".to_string(), result.to_string()),
            ],
            "{h}"
        );
    }
    // Reports after that confirm again: nothing new is announced.
    c.agent_status(&flip, &report(revs[0], AgentState::Isolated)).await;
    c.agent_status(&app, &degraded).await;
    assert_eq!(outbox(&c, "quarantined").await.len(), 2);
    // trial42 MED-3: web-01 released on the host and run with enforce = false again
    // (announced NOT quarantined), then enforcing again on the same revision: cut off
    // again, so announced again.
    c.agent_status(&flip, &dry(revs[0])).await;
    assert_eq!(outbox(&c, "not_enforcing").await.len(), 3);
    c.agent_status(&flip, &report(revs[0], AgentState::Isolated)).await;
    c.agent_status(&flip, &report(revs[0], AgentState::Isolated)).await;
    assert_eq!(
        outbox(&c, "quarantined").await.len(),
        3,
        "back in force after NOT quarantined: announced once"
    );
}

/// An agent with `enforce = false` is `not_enforcing`, never `quarantined`, and its
/// report never makes a revision applied.
#[tokio::test]
async fn non_enforcing_agent_is_not_enforcing_never_quarantined() {
    let c = Ctx::new().await;
    let h = c.enroll("lab1", &[]).await;
    let v = quarantine(&c, &format!("/v1/hosts/{h}/quarantine"), json!({"comment": "try"})).await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    let mut r = common::status_report(rev, AgentState::Isolated, "d", "memory");
    r.enforcing = false;
    let (_, st) = c.agent_status(&h, &r).await;
    assert_eq!(st["state"], "not_enforcing");
    let host = get(&c, &h).await;
    assert_eq!(host["state"], "not_enforcing");
    assert_eq!(host["enforcing"], false);
    assert!(host["applied_revision"].as_i64().unwrap() < rev);
    let (_, list) = c
        .call("GET", "/v1/hosts?state=not_enforcing", Some(&c.viewer), None)
        .await;
    assert_eq!(list["hosts"].as_array().unwrap().len(), 1, "{list}");
    let (_, list) = c
        .call("GET", "/v1/hosts?state=quarantined", Some(&c.viewer), None)
        .await;
    assert!(list["hosts"].as_array().unwrap().is_empty(), "{list}");
    assert!(outbox(&c, "quarantined").await.is_empty());
}

/// trial30 MED-2: `cordon quarantine --label windows --preview` said "already
/// quarantined (kept message, expires_at)" for hosts whose agent runs with enforce =
/// false, and nothing of a protected label, where the console's review says both. Each
/// action result says `not_enforcing` and names the host's `protected` labels (preview
/// and action alike), and the review's sentences (`cordon_proto::review`, the CLI's and
/// the console's one wording) follow from them.
#[tokio::test]
async fn action_results_name_agents_that_enforce_nothing_and_protected_labels() {
    let c = Ctx::new().await;
    let ws05 = c.enroll("ws-05", &["windows"]).await;
    let ws10 = c.enroll("ws-10", &["windows", "cordon-protected"]).await;
    let web = c.enroll("web-01", &["windows"]).await;
    let v = quarantine(&c, &format!("/v1/hosts/{ws05}/quarantine"), json!({"comment": "first"})).await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    let mut r = common::status_report(rev, AgentState::Isolated, "d", "memory");
    r.enforcing = false;
    c.agent_status(&ws05, &r).await;
    let v = quarantine(&c, &format!("/v1/hosts/{web}/quarantine"), json!({"comment": "first"})).await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    c.agent_status(&web, &report(rev, AgentState::Isolated)).await;
    for preview in [true, false] {
        let v = quarantine(
            &c,
            "/v1/quarantine",
            json!({"label": "windows", "comment": "x", "message": "call IT", "preview": preview}),
        )
        .await;
        let by = |id: &str| {
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["host_id"] == json!(id))
                .cloned()
                .unwrap()
        };
        let (a, b, w) = (by(&ws05), by(&ws10), by(&web));
        assert_eq!(
            (a["change"].clone(), a["not_enforcing"].clone()),
            (json!("already_quarantined"), json!(true)),
            "{a}"
        );
        assert_eq!(b["protected"], json!(["cordon-protected"]), "{b}");
        assert!(
            b["not_enforcing"].is_null() && w["not_enforcing"].is_null() && w["protected"].is_null(),
            "{v}"
        );
        let out: cordon_proto::ActionResponse = serde_json::from_value(v.clone()).unwrap();
        let words: Vec<String> = out.results.iter().map(cordon_proto::review::change_words).collect();
        assert!(
            words.contains(&"already requested — NOT ENFORCING (enforce = false); kept message".to_string()),
            "{words:?}"
        );
        assert!(
            words.contains(&"new; protected: cordon-protected".to_string()),
            "{words:?}"
        );
        assert!(
            words.contains(&"already quarantined (kept message)".to_string()),
            "{words:?}"
        );
        let notes = cordon_proto::review::notes("quarantine", &out.results, &|r| r.hostname.clone());
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("Not enforcing: quarantine already requested for 1 host (ws-05)"),
            "{notes:?}"
        );
        assert_eq!(
            notes[1],
            "Protected: 1 host carries a protected label (cordon-protected): ws-10."
        );
    }
}

/// trial30 LOW-1: `cordon hosts list --state normal` listed a host whose agent never
/// reported (shown "never reported"), and `--state never_reported` was 400 "unknown
/// state" without the valid values. The filter follows the state lists show.
#[tokio::test]
async fn the_state_filter_follows_the_state_lists_show() {
    let c = Ctx::new().await;
    let seen = c.enroll("seen", &[]).await;
    let never = c.enroll("never", &[]).await;
    c.agent_status(&seen, &report(1, AgentState::Released)).await;
    let ids = |v: &Value| -> Vec<String> {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    };
    for (state, want) in [("normal", &seen), ("never_reported", &never)] {
        for extra in ["", "&sort=host", "&limit=1"] {
            let (st, v) = c
                .call("GET", &format!("/v1/hosts?state={state}{extra}"), Some(&c.viewer), None)
                .await;
            assert_eq!(st, StatusCode::OK, "{state}{extra}: {v}");
            assert_eq!(ids(&v), vec![want.clone()], "{state}{extra}: {v}");
        }
    }
    let (st, v) = c.call("GET", "/v1/hosts?state=quarantine", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("unknown state \"quarantine\"")
            && detail.contains("quarantined")
            && detail.contains("never_reported"),
        "{detail}"
    );
}

/// trial30 LOW-4: an agent's error sent without a detail was written twice in the failed
/// record's detail (and so in the timeline, the webhook and Slack): "revision 2: nft: …
/// Operation not permitted: nft: … Operation not permitted".
#[tokio::test]
async fn an_agents_error_is_said_once_in_the_failed_record() {
    let c = Ctx::new().await;
    let h = c.enroll("app-07", &[]).await;
    let v = quarantine(&c, &format!("/v1/hosts/{h}/quarantine"), json!({"comment": "IR"})).await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    let err = "nft: <script>alert(1)</script> Operation not permitted";
    let mut r = report(rev, AgentState::Failed);
    r.error = Some(err.into());
    r.detail = None;
    c.agent_status(&h, &r).await;
    let failed = c
        .audit_for(&h)
        .await
        .into_iter()
        .find(|a| a.action == "failed")
        .expect("a failed record");
    let detail = failed.detail.unwrap_or_default();
    assert_eq!(detail.matches(err).count(), 1, "{detail}");
    assert!(detail.starts_with(&format!("revision {rev}: {err}")), "{detail}");
    // An error kind with a detail of its own keeps both.
    let h = c.enroll("app-08", &[]).await;
    let v = quarantine(&c, &format!("/v1/hosts/{h}/quarantine"), json!({"comment": "IR"})).await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    let mut r = report(rev, AgentState::Failed);
    r.error = Some("not_permitted".into());
    r.detail = Some("nft: Operation not permitted".into());
    c.agent_status(&h, &r).await;
    let failed = c
        .audit_for(&h)
        .await
        .into_iter()
        .find(|a| a.action == "failed")
        .unwrap();
    let detail = failed.detail.unwrap_or_default();
    assert!(
        detail.starts_with(&format!("revision {rev}: not_permitted: nft: Operation not permitted")),
        "{detail}"
    );
}

/// `offline` is derived by the server from the heartbeat the agent reported: silent for
/// more than three heartbeats (or never seen).
#[tokio::test]
async fn offline_is_derived_from_the_reported_heartbeat() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &[]).await;
    // Enrolled just now (enrollment counts as seen), no heartbeat reported yet.
    let quiet = c.enroll("quiet", &[]).await;
    let mut r = report(0, AgentState::Released);
    r.heartbeat_ms = Some(100);
    c.agent_status(&h, &r).await;
    let host = get(&c, &h).await;
    assert_eq!(host["heartbeat_ms"], 100);
    assert_eq!(host["offline"], false, "{host}");
    let (_, list) = c.call("GET", "/v1/hosts?offline=false", Some(&c.viewer), None).await;
    assert_eq!(list["hosts"].as_array().unwrap().len(), 2, "{list}");
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    assert_eq!(get(&c, &h).await["offline"], true);
    let (_, list) = c.call("GET", "/v1/hosts?offline=true", Some(&c.viewer), None).await;
    assert_eq!(list["hosts"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["hosts"][0]["id"], h.as_str());
    // An agent that does not say is held to the default heartbeat (15 s).
    let q = get(&c, &quiet).await;
    assert!(q["heartbeat_ms"].is_null());
    assert_eq!(q["offline"], false);
    // The rule itself: never seen is offline; three heartbeats, not one.
    use cordon_server::store::offline;
    assert!(offline(None, Some(1000), 0));
    assert!(!offline(Some(10_000), Some(1000), 12_900));
    assert!(offline(Some(10_000), Some(1000), 13_001));
    assert!(!offline(Some(0), None, 45_000));
    assert!(offline(Some(0), None, 45_001));
}

/// trial17 MED-4, the fault kind: an interval the agent reports is trusted as is, so one
/// config line (`heartbeat_secs = 1e12`) hides a dead agent for ever. The server clamps a
/// reported `heartbeat_ms` to its own maximum ([`cordon_proto::MAX_HEARTBEAT_MS`], 10
/// minutes) when it derives `offline` — in the single-host view, the list filter and the
/// pure rule alike.
#[tokio::test]
async fn a_reported_heartbeat_is_clamped_to_the_servers_maximum_when_deriving_offline() {
    let c = Ctx::new().await;
    let h = c.enroll("hb-huge", &[]).await;
    let mut r = report(0, AgentState::Released);
    r.heartbeat_ms = Some(1_000_000_000_000_000);
    c.agent_status(&h, &r).await;
    assert_eq!(get(&c, &h).await["offline"], false);
    // Last seen 31 minutes ago: more than 3 × the server's 10-minute maximum.
    let long_ago = cordon_proto::timefmt::now_ms() - 31 * 60 * 1000;
    sqlx::query(&format!("UPDATE hosts SET last_seen = {long_ago} WHERE id = '{h}'"))
        .execute(c.store().pool())
        .await
        .unwrap();
    let host = get(&c, &h).await;
    assert_eq!(
        host["offline"], true,
        "a huge reported heartbeat hid a silent agent: {host}"
    );
    let (_, list) = c.call("GET", "/v1/hosts?offline=true", Some(&c.viewer), None).await;
    let ids: Vec<&str> = list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert!(ids.contains(&h.as_str()), "{list}");
    use cordon_server::store::offline;
    let max = cordon_proto::MAX_HEARTBEAT_MS as i64;
    assert!(!offline(Some(0), Some(i64::MAX), 3 * max));
    assert!(offline(Some(0), Some(i64::MAX), 3 * max + 1));
}

/// trial17 MED-5, the fault kind: a host that may still be isolated hidden from every
/// list. A host revoked (with --force) while quarantined stays in the default list and
/// its state filter, marked `revoked`; a revoked host that is `normal` is left out by
/// default; `revoked=only` lists every revoked host, `revoked=all` every host; a bad
/// value is a 400 naming it.
#[tokio::test]
async fn a_revoked_host_that_may_still_be_isolated_is_listed_and_marked() {
    let c = Ctx::new().await;
    let stuck = c.enroll("stuck", &[]).await;
    let gone = c.enroll("gone", &[]).await;
    let kept = c.enroll("kept", &[]).await;
    c.agent_status(&stuck, &report(1, AgentState::Released)).await;
    let v = quarantine(&c, &format!("/v1/hosts/{stuck}/quarantine"), json!({"comment": "IR-5"})).await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    c.agent_status(&stuck, &report(rev, AgentState::Isolated)).await;
    assert_eq!(get(&c, &stuck).await["state"], "quarantined");
    for (h, force) in [(&stuck, true), (&gone, false)] {
        let body = json!({"comment": "rv", "force": force}).to_string();
        let (st, v) = c
            .call("POST", &format!("/v1/hosts/{h}/revoke"), Some(&c.admin), Some(&body))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let ids = |list: &Value| -> Vec<String> {
        list["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, list) = c.call("GET", "/v1/hosts", Some(&c.viewer), None).await;
    let listed = ids(&list);
    assert!(listed.contains(&stuck), "a revoked quarantined host is hidden: {list}");
    assert!(listed.contains(&kept) && !listed.contains(&gone), "{list}");
    let row = list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == stuck.as_str())
        .unwrap();
    assert_eq!(row["revoked"], true);
    assert_eq!(row["state"], "quarantined");
    // Also through the sorted path and the state filter.
    let (_, list) = c
        .call("GET", "/v1/hosts?state=quarantined", Some(&c.viewer), None)
        .await;
    assert_eq!(ids(&list), vec![stuck.clone()], "{list}");
    let (_, list) = c.call("GET", "/v1/hosts?sort=state", Some(&c.viewer), None).await;
    assert!(ids(&list).contains(&stuck), "{list}");
    let (_, list) = c.call("GET", "/v1/hosts?revoked=only", Some(&c.viewer), None).await;
    let mut only = ids(&list);
    only.sort();
    let mut want = vec![stuck.clone(), gone.clone()];
    want.sort();
    assert_eq!(only, want, "{list}");
    let (_, list) = c.call("GET", "/v1/hosts?revoked=all", Some(&c.viewer), None).await;
    assert_eq!(ids(&list).len(), 3, "{list}");
    let (st, v) = c.call("GET", "/v1/hosts?revoked=maybe", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("maybe"), "{v}");
}

/// trial17 MED-3, the fault kind: the servers a quarantined host's agent keeps allowed
/// changed (a DNS answer for the server name) and nothing on the server said so. Every
/// change of the agent claim's `servers` is audited (`servers_changed`, naming what was
/// added and removed); the same set again writes nothing.
#[tokio::test]
async fn a_change_of_the_allowed_servers_is_audited() {
    let c = Ctx::new().await;
    let h = c.enroll("dnsw", &[]).await;
    c.agent_status(&h, &report(1, AgentState::Released)).await;
    let v = quarantine(&c, &format!("/v1/hosts/{h}/quarantine"), json!({"comment": "IR-3"})).await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    let with = |servers: &[&str]| {
        let mut r = report(rev, AgentState::Isolated);
        r.claims = vec![ClaimInfo {
            source: cordon_proto::ClaimSource::Agent,
            since: None,
            allow: vec![],
            servers: servers.iter().map(|s| s.to_string()).collect(),
            owner: Some(h.clone()),
        }];
        r
    };
    c.agent_status(&h, &with(&["tcp://192.0.2.1:8443"])).await;
    assert_eq!(get(&c, &h).await["state"], "quarantined");
    let changed = |records: Vec<cordon_proto::AuditRecord>| -> Vec<String> {
        records
            .into_iter()
            .filter(|r| r.action == "servers_changed")
            .map(|r| r.detail.unwrap_or_default())
            .collect()
    };
    assert!(changed(c.audit_for(&h).await).is_empty());
    c.agent_status(&h, &with(&["tcp://192.0.2.1:8443", "tcp://192.0.2.99:8443"]))
        .await;
    c.agent_status(&h, &with(&["tcp://192.0.2.1:8443", "tcp://192.0.2.99:8443"]))
        .await;
    c.agent_status(&h, &with(&["tcp://192.0.2.1:8443"])).await;
    let found = changed(c.audit_for(&h).await);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().any(|d| d.contains("added tcp://192.0.2.99:8443")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|d| d.contains("removed tcp://192.0.2.99:8443")),
        "{found:?}"
    );
}

/// The claims the agent reports (issue 19 item 9) are stored and shown as structured
/// data; a server release while other sources hold the host is confirmed and says who
/// still isolates it.
#[tokio::test]
async fn claims_are_stored_and_a_release_leaves_others_claims_visible() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &[]).await;
    soc_webhook(&c, &["released"]).await;
    let v = quarantine(&c, &format!("/v1/hosts/{h}/quarantine"), json!({"comment": "IR"})).await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    let claim = |source: &str| ClaimInfo {
        source: source.into(),
        since: "2030-01-01T00:00:00Z".parse().ok(),
        allow: vec!["udp://198.51.100.20:514".into()],
        servers: vec![],
        owner: None,
    };
    let mut r = report(rev, AgentState::Isolated);
    r.claims = vec![claim("agent"), claim("wazuh"), claim("local")];
    c.agent_status(&h, &r).await;
    let host = get(&c, &h).await;
    assert_eq!(host["state"], "quarantined");
    assert_eq!(host["claims"].as_array().unwrap().len(), 3);
    assert_eq!(host["claims"][1]["source"], "wazuh");
    // Claim times are typed (issue 13): the server writes them in its one time format.
    assert_eq!(host["claims"][1]["since"], "2030-01-01T00:00:00.000Z");
    assert_eq!(host["claims"][1]["allow"], json!(["udp://198.51.100.20:514"]));

    let v = quarantine(&c, &format!("/v1/hosts/{h}/release"), json!({"comment": "done"})).await;
    let rel = v["results"][0]["revision"].as_i64().unwrap();
    // The release's answer names the other claims that keep the host isolated
    // (trial6: the CLI printed a bare `released release_pending`).
    assert_eq!(v["results"][0]["other_claims"], json!(["wazuh", "local"]), "{v}");
    let mut r = report(rel, AgentState::Isolated);
    r.claims = vec![claim("wazuh"), claim("local")];
    c.agent_status(&h, &r).await;
    let host = get(&c, &h).await;
    assert_eq!(host["state"], "normal", "{host}");
    assert_eq!(host["applied_revision"], rel);
    assert!(
        host["state_reason"]
            .as_str()
            .is_some_and(|t| t.contains("still isolated by other claims: wazuh since")),
        "{host}"
    );
    assert_eq!(host["claims"].as_array().unwrap().len(), 2);
    // The notification says the host is still isolated, in the headline and as a field.
    let sent = outbox(&c, "released").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["still_isolated_by"].as_array().map(Vec::len),
        Some(2),
        "{}",
        sent[0]
    );
    assert!(
        sent[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("released by Cordon, but STILL ISOLATED by other claims: wazuh since")),
        "{}",
        sent[0]
    );
}

/// Trial32 HIGH-2, the fault kind "a quarantined host the server cannot see or release":
/// an agent whose certificate names a host id the database does not know (restored from
/// before its enrollment) was refused with nothing on the server — no log, no audit, no
/// listing — and after the host enrolled again a release answered "already released"
/// while the previous enrollment's claim kept it isolated. Now the refused agent is
/// audited once and listed with its attempts and address; a release of the re-enrolled
/// host is a new revision naming the previous enrollments this server does not want
/// quarantined (unknown here, or released), never one it still wants quarantined.
#[tokio::test]
async fn an_unknown_agent_is_listed_and_a_release_names_the_previous_enrollments_it_may_lift() {
    let c = Ctx::new().await;
    let gone = "0b7c1e52-1111-4000-8000-00000000dead";
    for _ in 0..2 {
        let (st, v) = c.agent_status(gone, &report(1, AgentState::Isolated)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert!(v.to_string().contains("unknown host"), "{v}");
    }
    let (st, v) = c.call("GET", "/v1/unknown-agents", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["agents"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["agents"][0]["host_id"], gone, "{v}");
    assert_eq!(v["agents"][0]["attempts"], 2, "{v}");
    let audited: Vec<_> = c
        .audit_for(gone)
        .await
        .into_iter()
        .filter(|r| r.action == "agent_unknown")
        .collect();
    assert_eq!(audited.len(), 1, "audited once: {audited:?}");
    assert!(
        audited[0].detail.as_deref().is_some_and(|d| d.contains(gone)),
        "{audited:?}"
    );

    // The machine enrolled again; another previous enrollment is still a host here,
    // desired quarantined.
    let h = c.enroll("web2", &[]).await;
    let old = c.enroll("web1", &[]).await;
    quarantine(&c, &format!("/v1/hosts/{old}/quarantine"), json!({"comment": "IR"})).await;
    let claim = |owner: &str| ClaimInfo {
        source: "agent".into(),
        since: "2030-01-01T00:00:00Z".parse().ok(),
        allow: vec![],
        servers: vec![],
        owner: Some(owner.into()),
    };
    let host = get(&c, &h).await;
    let rev = host["desired"]["revision"].as_i64().unwrap();
    let mut r = report(rev, AgentState::Isolated);
    r.claims = vec![claim(gone), claim(&old)];
    c.agent_status(&h, &r).await;
    let host = get(&c, &h).await;
    assert_eq!(host["state"], "normal", "{host}");
    assert!(
        host["state_reason"]
            .as_str()
            .is_some_and(|t| t.contains("lifted by a release of this host through the Cordon server")),
        "{host}"
    );

    let v = quarantine(
        &c,
        &format!("/v1/hosts/{h}/release"),
        json!({"comment": "after the restore"}),
    )
    .await;
    assert_eq!(v["results"][0]["change"], "released", "a new revision: {v}");
    assert_eq!(v["results"][0]["revision"], rev + 1, "{v}");
    // The one still wanted quarantined here is kept, and said to keep the host isolated.
    assert_eq!(v["results"][0]["other_claims"], json!(["agent"]), "{v}");
    let host = get(&c, &h).await;
    assert_eq!(host["desired"]["release_previous"], json!([gone]), "{host}");
    assert!(
        c.audit_for(&h).await.iter().any(|r| r.action == "release"
            && r.detail
                .as_deref()
                .is_some_and(|d| d.contains(&format!("previous enrollments of this machine (host id {gone})")))),
        "the release's audit record names what it lifts"
    );

    // Released as its own host first, the other previous enrollment is lifted too.
    quarantine(&c, &format!("/v1/hosts/{old}/release"), json!({"comment": "IR done"})).await;
    let v = quarantine(&c, &format!("/v1/hosts/{h}/release"), json!({"comment": "again"})).await;
    assert!(
        v["results"][0]["other_claims"].as_array().is_none_or(|a| a.is_empty()),
        "{v}"
    );
    let mut both = vec![gone.to_string(), old.clone()];
    both.sort();
    assert_eq!(get(&c, &h).await["desired"]["release_previous"], json!(both));

    // Any other desired state names none.
    quarantine(&c, &format!("/v1/hosts/{h}/quarantine"), json!({"comment": "IR-2"})).await;
    assert!(get(&c, &h).await["desired"].get("release_previous").is_none());
}

//! Automation end to end (issue 7), in the namespace lab: a real server in the server
//! namespace, a real agent enforcing in the endpoint namespace, a webhook receiver on the
//! server namespace's loopback. An event posted through `cordon events send` quarantines
//! the endpoint (leak matrix 0/0), the webhook receives the notification, and the audit
//! names the rule and the event. Nothing runs in this machine's own network namespace.
//! Needs root, iproute2 and nftables; without them the test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use cordon_lab::lab::{matrix, Host};
use cordon_lab::server_lab::ServerLab;
use cordon_lab::webhook::WebhookReceiver;
use serde_json::Value;

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn event_quarantines_endpoint_notifies_and_audits() {
    let bin = env!("CARGO_BIN_EXE_cordon");
    let sl = ServerLab::start(Path::new(bin)).expect("server lab (needs root, ip, nft)");
    let api = |args: &[&str]| -> Value {
        let server = format!("CORDON_SERVER={}", sl.api_url());
        let token = format!("CORDON_TOKEN={}", sl.admin_token);
        let ca = format!("CORDON_CA={}", sl.data.join("ca.pem").display());
        let mut argv: Vec<&str> = vec!["/usr/bin/env", &server, &token, &ca, bin];
        argv.extend_from_slice(args);
        let out = sl.lab.exec(Host::Server, &argv).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "cordon {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("cordon {args:?}: {e}: {stdout}"))
    };
    let endpoint_state = || {
        let out = sl
            .lab
            .cordon(&["status", "--json", "--state-dir", &sl.state_dir.to_string_lossy()])
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)["state"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    };

    let hook = WebhookReceiver::start(&sl.lab.ns(Host::Server)).unwrap();
    let url = hook.url();
    api(&[
        "notify",
        "add",
        "e2e-hook",
        "--kind",
        "webhook",
        "--url",
        &url,
        "--event",
        "quarantined",
        "--json",
    ]);
    let rule = api(&[
        "rules",
        "put",
        "e2e-critical",
        "--type",
        "malware",
        "--only-critical",
        "--label",
        "lab",
        "--json",
    ]);
    assert_eq!(rule["active"], true, "{rule}");

    // Not critical: nothing happens.
    let v = api(&[
        "events",
        "send",
        "--host",
        "endpoint",
        "--type",
        "malware",
        "--severity",
        "high",
        "--json",
    ]);
    assert_eq!(v["events"][0]["status"], "no_match", "{v}");
    assert_eq!(endpoint_state(), "released");

    let v = api(&[
        "events",
        "send",
        "--host",
        "endpoint",
        "--type",
        "malware",
        "--severity",
        "critical",
        "--json",
    ]);
    let ev = &v["events"][0];
    assert_eq!(ev["status"], "quarantined", "{v}");
    let event_id = ev["id"].as_str().unwrap().to_string();
    wait_until("enforced in the endpoint namespace", Duration::from_secs(5), || {
        endpoint_state() == "isolated"
    });
    let during = sl.lab.matrix().unwrap();
    let table = matrix::render_table(&[matrix::Phase {
        name: "auto-quarantined",
        quarantined: true,
        outcomes: &during,
    }]);
    assert_eq!(matrix::score(&during), (0, 0), "leaks/over-blocks:\n{table}");

    wait_until("webhook delivery", Duration::from_secs(10), || {
        !hook.bodies().is_empty()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let got = hook.bodies();
    assert_eq!(got.len(), 1, "exactly one notification: {got:?}");
    let n: Value = serde_json::from_str(&got[0]).unwrap();
    // Effect, not dispatch: "quarantined" comes from the agent's confirmation and names
    // who asked (the rule) and the rule and event it answers.
    assert_eq!(
        (
            n["kind"].as_str(),
            n["actor"].as_str(),
            n["asked_by"].as_str(),
            n["rule"].as_str()
        ),
        (
            Some("quarantined"),
            Some("agent:endpoint"),
            Some("rule:e2e-critical"),
            Some("e2e-critical")
        )
    );
    assert_eq!(n["event_id"].as_str(), Some(event_id.as_str()));
    assert_eq!(n["hostname"], "endpoint");
    assert!(n["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/hosts/{}", ev["host_id"].as_str().unwrap())));

    let audit = api(&["audit", "--host", "endpoint", "--action", "quarantine", "--json"]);
    let recs = audit["records"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{audit}");
    assert_eq!(recs[0]["actor"], "rule:e2e-critical");
    assert!(recs[0]["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("event={event_id}")));
}

//! Automation end to end (issue 7), in the namespace lab: a real server in the server
//! namespace, a real agent enforcing in the endpoint namespace, a webhook receiver on the
//! server namespace's loopback. An event posted through `cordon events send` quarantines
//! the endpoint (leak matrix 0/0), the webhook receives the notification, and the audit
//! names the rule and the event. Nothing runs in this machine's own network namespace.
//! Needs root, iproute2 and nftables; without them the test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cordon_lab::lab::{matrix, netns, Host};
use cordon_lab::server_lab::ServerLab;
use serde_json::Value;

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP receiver on 127.0.0.1 inside namespace `ns`: stores request bodies,
/// answers 200.
fn webhook_receiver(ns: &str, stop: Arc<AtomicBool>, bodies: Arc<Mutex<Vec<String>>>) -> u16 {
    let (tx, rx) = mpsc::channel();
    netns::spawn_in(ns, move || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let _ = tx.send(listener.local_addr()?.port());
        while !stop.load(Ordering::SeqCst) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            conn.set_nonblocking(false)?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        bodies
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
                        break;
                    }
                }
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
        Ok(())
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("webhook receiver did not start")
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

    let stop = Arc::new(AtomicBool::new(false));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let port = webhook_receiver(&sl.lab.ns(Host::Server), stop.clone(), bodies.clone());
    let url = format!("http://127.0.0.1:{port}/hook");
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
        !bodies.lock().unwrap().is_empty()
    });
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let got = bodies.lock().unwrap().clone();
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

//! Server and agent end to end (issue 4), in the namespace lab: a real `cordon server`
//! in the server namespace, a real enrolled `cordon agent` enforcing in the endpoint
//! namespace (state in a temp dir), driven through the real CLI API client. Nothing runs
//! in this machine's own network namespace. Needs root, iproute2 and nftables; without
//! them the test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use cordon_lab::lab::{addr::*, matrix, Host, Lab};
use cordon_lab::server_lab;
use serde_json::Value;

fn bin() -> String {
    env!("CARGO_BIN_EXE_cordon").to_string()
}

fn s(p: &Path) -> String {
    p.to_string_lossy().to_string()
}

/// Kills the processes it holds when dropped (also on panic).
struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Env {
    lab: Lab,
    data: PathBuf,
    agent_cfg: PathBuf,
    state: PathBuf,
    admin: String,
    _tmp: tempfile::TempDir,
}

impl Env {
    /// `cordon ARGS` in the server namespace, configured for the API.
    fn api(&self, args: &[&str]) -> (i32, String, String) {
        let server = format!("CORDON_SERVER=https://{SERVER4}:{SERVER_PORT}");
        let token = format!("CORDON_TOKEN={}", self.admin);
        let ca = format!("CORDON_CA={}", s(&self.data.join("ca.pem")));
        let b = bin();
        let mut argv: Vec<&str> = vec!["/usr/bin/env", &server, &token, &ca, &b];
        argv.extend_from_slice(args);
        let out = self.lab.exec(Host::Server, &argv).unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn api_json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.api(args);
        assert_eq!(code, 0, "cordon {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("cordon {args:?}: {e}: {out}"))
    }

    fn host(&self) -> Value {
        self.api_json(&["hosts", "show", "endpoint", "--json"])
    }

    fn endpoint_state(&self) -> String {
        let out = self
            .lab
            .cordon(&["status", "--json", "--state-dir", &s(&self.state)])
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["state"].as_str().unwrap_or("?").to_string()
    }

    fn start_server(&self) -> Child {
        server_lab::spawn_server(&self.lab, Path::new(&bin()), &self.data).expect("server did not start listening")
    }

    fn start_agent(&self) -> Child {
        server_lab::spawn_agent(&self.lab, Path::new(&bin()), &self.agent_cfg).unwrap()
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn setup() -> Env {
    let b = PathBuf::from(bin());
    let p = server_lab::prepare(&b, "linux,lab")
        .expect("building the namespace lab and initialising the server (needs root, iproute2, nftables)");
    let agent_dir = p.tmp.path().join("agent");
    let state = p.tmp.path().join("state");
    // Enrollment happens from the endpoint, pinned to the CA fingerprint.
    let mut server = server_lab::spawn_server(&p.lab, &b, &p.data).expect("server did not start listening");
    let enrolled = server_lab::enroll_agent(&p.lab, &b, &p.init, &p.enroll_token, &agent_dir, &state);
    let _ = server.kill();
    let _ = server.wait();
    if let Err(e) = enrolled {
        panic!("enroll: {e:#}");
    }
    let env = Env {
        agent_cfg: agent_dir.join("agent.toml"),
        state,
        admin: p.init["admin_token"].as_str().unwrap().to_string(),
        lab: p.lab,
        data: p.data,
        _tmp: p.tmp,
    };
    // Quicker heartbeats so "reported again" is seen fast.
    let cfg = std::fs::read_to_string(&env.agent_cfg)
        .unwrap()
        .replace("heartbeat_secs = 15.0", "heartbeat_secs = 1.0");
    std::fs::write(&env.agent_cfg, cfg).unwrap();
    env
}

#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn enroll_quarantine_tamper_outage_restart_release() {
    let env = setup();
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    wait_until("agent reports", Duration::from_secs(10), || {
        env.host()["last_seen"].is_string()
    });
    assert_eq!(env.host()["state"], "normal");
    // The agent reports the endpoint's own addresses (not loopback, not link-local).
    let addrs = env.host()["addresses"].clone();
    assert!(
        addrs
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "192.0.2.10") && a.iter().any(|x| x == "2001:db8:c0::10")),
        "addresses not reported: {addrs}"
    );
    assert!(!addrs.to_string().contains("127.0.0.1"), "{addrs}");
    let before = env.lab.matrix().unwrap();
    assert_eq!(env.endpoint_state(), "released");

    // Quarantine through the API; time from the CLI returning to rules in force.
    let v = env.api_json(&["quarantine", "endpoint", "--comment", "e2e: beaconing", "--json"]);
    let t0 = Instant::now();
    assert_eq!(v["results"][0]["state"], "quarantine_pending");
    wait_until("enforced", Duration::from_secs(2), || {
        env.endpoint_state() == "isolated"
    });
    let enforced_after = t0.elapsed();
    eprintln!("API call returned -> enforced in the endpoint namespace: {enforced_after:?}");
    wait_until("confirmed", Duration::from_secs(5), || {
        env.host()["state"] == "quarantined"
    });
    let during = env.lab.matrix().unwrap();
    let table = matrix::render_table(&[
        matrix::Phase {
            name: "before",
            quarantined: false,
            outcomes: &before,
        },
        matrix::Phase {
            name: "quarantined",
            quarantined: true,
            outcomes: &during,
        },
    ]);
    eprintln!("{table}");
    assert_eq!(matrix::score(&during), (0, 0), "leaks/over-blocks:\n{table}");

    // Table deleted: repaired within 2 s, audited as tampered.
    let out = env
        .lab
        .exec(Host::Endpoint, &["nft", "delete", "table", "inet", "cordon"])
        .unwrap();
    assert!(
        out.status.success(),
        "nft delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Instant::now();
    wait_until("tamper repair", Duration::from_secs(2), || {
        env.endpoint_state() == "isolated"
    });
    eprintln!("tampering repaired after {:?}", t.elapsed());
    wait_until("tampered in audit", Duration::from_secs(5), || {
        let v = env.api_json(&["audit", "--host", "endpoint", "--action", "tampered", "--json"]);
        !v["records"].as_array().unwrap().is_empty()
    });

    // Server killed: the endpoint stays quarantined.
    let mut server = procs.0.remove(0);
    server.kill().unwrap();
    server.wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.endpoint_state(), "isolated");
    assert!(!matrix::rows()
        .iter()
        .filter(|r| r.name == "other host v4 tcp/80")
        .all(|r| r.probe.run(&env.lab).unwrap()));

    // Agent killed and our table flushed (a reboot), server still down: the agent
    // re-applies on start from its own state.
    let mut agent = procs.0.remove(0);
    agent.kill().unwrap();
    agent.wait().unwrap();
    let out = env
        .lab
        .exec(Host::Endpoint, &["nft", "delete", "table", "inet", "cordon"])
        .unwrap();
    assert!(out.status.success());
    assert_ne!(env.endpoint_state(), "isolated");
    procs.0.push(env.start_agent());
    wait_until("re-apply at start without server", Duration::from_secs(5), || {
        env.endpoint_state() == "isolated"
    });

    // Server back: the agent reports again.
    procs.0.push(env.start_server());
    let restarted = env.host()["last_seen"].as_str().unwrap_or("").to_string();
    wait_until("reported after the outage", Duration::from_secs(10), || {
        let h = env.host();
        h["last_seen"].as_str().unwrap_or("") > restarted.as_str() && h["state"] == "quarantined"
    });

    // Release through the API: rules gone, paths back.
    let v = env.api_json(&["release", "endpoint", "--comment", "e2e: clean", "--json"]);
    assert_eq!(v["results"][0]["state"], "release_pending");
    wait_until("released", Duration::from_secs(3), || {
        env.endpoint_state() == "released"
    });
    wait_until("release confirmed", Duration::from_secs(5), || {
        env.host()["state"] == "normal"
    });
    let after = env.lab.matrix().unwrap();
    let opened: Vec<_> = after.iter().filter(|o| o.reached).map(|o| o.name).collect();
    let was_open: Vec<_> = before.iter().filter(|o| o.reached).map(|o| o.name).collect();
    assert_eq!(opened, was_open, "paths after release differ from before");

    // Exactly one record per analyst action.
    let audit = env.api_json(&["audit", "--host", "endpoint", "--json"]);
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "quarantine").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "release").count(), 1, "{actions:?}");
    assert!(actions.contains(&"tampered"), "{actions:?}");
}

/// The flow behind `cordon lab --server`: quarantine and release through the API with the
/// leak matrix probed in each phase.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn lab_server_demo_scores_zero_and_zero() {
    let ok = cordon_lab::server_lab::demo(Path::new(&bin()), false).expect("lab --server demo");
    assert!(ok, "the demo reported leaks, over-blocks or an unconfirmed quarantine");
}

/// Issue #11 item 5: an API-client command whose stdout is closed (`cordon hosts list |
/// head`) ends quietly (0 or 141), never with a panic.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn api_client_with_closed_stdout_is_quiet() {
    let env = setup();
    let _procs = Procs(vec![env.start_server()]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = std::process::Stdio::from(writer);
    let server = format!("CORDON_SERVER=https://{SERVER4}:{SERVER_PORT}");
    let token = format!("CORDON_TOKEN={}", env.admin);
    let ca = format!("CORDON_CA={}", s(&env.data.join("ca.pem")));
    let b = bin();
    let out = env
        .lab
        .command(
            Host::Server,
            &["/usr/bin/env", &server, &token, &ca, &b, "hosts", "list"],
        )
        .stdout(closed)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "{:?} {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{err}");
}

//! The agent never fails open and never strands (issue 14), in the namespace lab: a real
//! `cordon server` in the server namespace, a real enrolled `cordon agent` enforcing in
//! the endpoint namespace (state in a temp dir), driven through the real CLI. Agent timers
//! are shortened in its config so each test takes seconds. Nothing runs in this machine's
//! own network namespace. Needs root, iproute2 and nftables, so the tests are `#[ignore]`d
//! for a plain `cargo test`; scripts/test runs them (as root) and a missing tool fails them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use cordon_agent::AgentConfig;
use cordon_lab::lab::{addr::*, Host, Lab};
use cordon_lab::server_lab;
use cordon_lab::webhook::WebhookReceiver;
use serde_json::Value;

#[path = "common/lock_holder.rs"]
mod lock_holder;

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
        for c in self.0.iter_mut().rev() {
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
    /// Where the CLI reaches the API (changes when the server moves).
    api_at: RefCell<IpAddr>,
    /// `server init --json` output (CA fingerprint), to enroll again.
    init: Value,
    /// A copy of the server's database made before the agent enrolled (a backup older
    /// than the enrollment, to restore).
    before_enroll: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Agent timers short enough for a test (seconds instead of minutes).
fn quick(c: &mut AgentConfig) {
    c.heartbeat_secs = 1.0;
    c.check_interval_secs = 0.5;
    c.connect_timeout_secs = 1.0;
    c.resolve_interval_secs = 2.0;
    c.retry_secs = 1.0;
    c.verify_timeout_secs = 3.0;
}

impl Env {
    /// `cordon ARGS` in the server namespace, configured for the API.
    fn api(&self, args: &[&str]) -> (i32, String, String) {
        let at = match *self.api_at.borrow() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let server = format!("CORDON_SERVER=https://{at}:{SERVER_PORT}");
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

    fn ruleset(&self) -> String {
        let out = self
            .lab
            .exec(Host::Endpoint, &["nft", "list", "table", "inet", "cordon"])
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start_server(&self) -> Child {
        server_lab::spawn_server(&self.lab, Path::new(&bin()), &self.data).expect("server did not start listening")
    }

    /// The server, checked from the other host (the endpoint may be quarantined).
    fn start_server_at(&self, ip: IpAddr) -> Child {
        server_lab::spawn_server_checked(
            &self.lab,
            Path::new(&bin()),
            &self.data,
            Host::Other,
            SocketAddr::new(ip, SERVER_PORT),
        )
        .expect("server did not start listening")
    }

    /// The agent, with environment proxies it must ignore.
    fn start_agent(&self) -> Child {
        server_lab::spawn_agent_env(
            &self.lab,
            Path::new(&bin()),
            &self.agent_cfg,
            &[
                "HTTPS_PROXY=http://192.0.2.99:3999",
                "https_proxy=http://192.0.2.99:3999",
                "ALL_PROXY=http://192.0.2.99:3999",
            ],
        )
        .unwrap()
    }

    fn quarantine(&self, extra: &[&str]) -> Value {
        let mut args = vec!["quarantine", "endpoint", "--comment", "e2e", "--json"];
        args.extend_from_slice(extra);
        self.api_json(&args)
    }

    fn wait_reported(&self) {
        wait_until("agent reports", Duration::from_secs(15), || {
            self.host()["last_seen"].is_string()
        });
    }

    /// [`Env::wait_reported`], and the agent has confirmed its enrollment's revision and
    /// recorded its management paths (so a later claim keeps them).
    fn wait_settled(&self) {
        self.wait_reported();
        wait_until("the agent settles", Duration::from_secs(15), || {
            let h = self.host();
            h["applied_revision"] == h["desired"]["revision"] && h["state"] == "normal"
        });
        wait_until("the agent's paths are recorded", Duration::from_secs(10), || {
            self.state.join("agent-paths.json").exists()
        });
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// A lab with a server initialised and an agent enrolled (server stopped again);
/// `tweak` edits the agent's config. With `dns_only` the endpoint finds the server by
/// DNS (the lab's resolver), not /etc/hosts.
fn setup(dns_only: bool, tweak: impl FnOnce(&mut AgentConfig)) -> Env {
    setup_in(None, dns_only, tweak)
}

/// [`setup`] with the lab's namespaces named `PREFIX-…` (at most 12 characters).
fn setup_named(prefix: &str, tweak: impl FnOnce(&mut AgentConfig)) -> Env {
    setup_in(Some(prefix), false, tweak)
}

fn setup_in(prefix: Option<&str>, dns_only: bool, tweak: impl FnOnce(&mut AgentConfig)) -> Env {
    let b = PathBuf::from(bin());
    let prefix = prefix.map(cordon_lab::lab::test_prefix);
    let p = server_lab::prepare_named(&b, "linux,lab", prefix.as_deref())
        .expect("building the namespace lab and initialising the server (needs root, iproute2, nftables)");
    if dns_only {
        p.lab.server_name_by_dns_only().unwrap();
    }
    let agent_dir = p.tmp.path().join("agent");
    let state = p.tmp.path().join("state");
    let before_enroll = p.tmp.path().join("db-before-enroll");
    copy_db(&p.data, &before_enroll);
    let mut server = server_lab::spawn_server(&p.lab, &b, &p.data).expect("server did not start listening");
    let enrolled = server_lab::enroll_agent(&p.lab, &b, &p.init, &p.enroll_token, &agent_dir, &state);
    let _ = server.kill();
    let _ = server.wait();
    if let Err(e) = enrolled {
        panic!("enroll: {e:#}");
    }
    let agent_cfg = agent_dir.join("agent.toml");
    let mut cfg = AgentConfig::load(&agent_cfg).unwrap();
    quick(&mut cfg);
    tweak(&mut cfg);
    cfg.save(&agent_cfg).unwrap();
    Env {
        agent_cfg,
        state,
        admin: p.init["admin_token"].as_str().unwrap().to_string(),
        api_at: RefCell::new(SERVER4.into()),
        init: p.init.clone(),
        before_enroll,
        lab: p.lab,
        data: p.data,
        _tmp: p.tmp,
    }
}

fn reachable(env: &Env, to: SocketAddr) -> bool {
    env.lab.connect(Host::Endpoint, to).is_ok()
}

/// An exception whose name does not resolve on the endpoint no longer cancels the whole
/// quarantine: the rest is enforced at once, the exception follows when its name resolves.
/// The agent also ignores the proxy in its environment (none is configured).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn unresolvable_exception_degrades_instead_of_failing_open() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let edr = SocketAddr::new(OTHER4.into(), OTHER_TCP_PORT);
    assert!(reachable(&env, edr), "the other host should be reachable before");

    let v = env.quarantine(&[
        "--allow",
        "tcp://edr.cordon.lab:80",
        "--allow",
        "udp://198.51.100.20:514",
    ]);
    assert_eq!(v["results"][0]["state"], "quarantine_pending", "{v}");
    wait_until(
        "quarantine enforced without the exception",
        Duration::from_secs(5),
        || env.endpoint_state() == "isolated",
    );
    assert!(!reachable(&env, edr), "unresolved exception must not open anything");
    assert!(env.ruleset().contains("198.51.100.20"), "{}", env.ruleset());
    wait_until("server sees the quarantine, degraded", Duration::from_secs(5), || {
        let h = env.host();
        h["state"] == "quarantined"
            && h["state_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("degraded: exception tcp://edr.cordon.lab:80 unresolved"))
    });
    let (_, text, _) = env.api(&["hosts", "show", "endpoint"]);
    assert!(text.contains("degraded: exception tcp://edr.cordon.lab:80"), "{text}");

    // The name starts to resolve: the agent, retrying, adds it atomically.
    env.lab.set_dns("edr.cordon.lab", &[OTHER4.into(), OTHER6.into()]);
    let took = wait_until("exception applied once it resolves", Duration::from_secs(10), || {
        reachable(&env, edr)
    });
    eprintln!("exception applied {took:?} after its name started to resolve");
    assert_eq!(env.endpoint_state(), "isolated");
    wait_until("degraded cleared on the server", Duration::from_secs(5), || {
        let h = env.host();
        h["state"] == "quarantined" && h["state_reason"].is_null()
    });
}

/// DR failover: the server moves to a new address and DNS answer while the host is
/// quarantined; a release through the moved server is enforced (within 60 s).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn server_moves_while_quarantined_and_the_release_still_arrives() {
    let env = setup(true, |_| {});
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });

    // Failover: old addresses gone, new ones answer, DNS says so.
    let mut server = procs.0.remove(0);
    server.kill().unwrap();
    server.wait().unwrap();
    for ip in [IpAddr::from(SERVER4), SERVER6.into()] {
        env.lab.host_address(Host::Server, ip, false).unwrap();
    }
    for ip in [IpAddr::from(MOVED_SERVER4), MOVED_SERVER6.into()] {
        env.lab.host_address(Host::Server, ip, true).unwrap();
    }
    env.lab
        .set_dns(SERVER_NAME, &[MOVED_SERVER4.into(), MOVED_SERVER6.into()]);
    procs.0.insert(0, env.start_server_at(MOVED_SERVER4.into()));
    *env.api_at.borrow_mut() = MOVED_SERVER4.into();

    let v = env.api_json(&["release", "endpoint", "--comment", "e2e: moved", "--json"]);
    assert_eq!(v["results"][0]["state"], "release_pending", "{v}");
    let took = wait_until("release through the moved server", Duration::from_secs(60), || {
        env.endpoint_state() == "released"
    });
    eprintln!("release enforced {took:?} after it was ordered through the moved server");
    wait_until("release confirmed", Duration::from_secs(10), || {
        env.host()["state"] == "normal"
    });
}

/// `servers = [...]`: every server address is allowed while quarantined, and the agent
/// fails over to the next one when the first goes away.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn several_server_urls_are_all_allowed_and_failed_over() {
    let env = setup(false, |c| {
        c.server = format!("https://{SERVER4}:{SERVER_PORT}");
        c.servers = vec![format!("https://{MOVED_SERVER4}:{SERVER_PORT}")];
    });
    env.lab.host_address(Host::Server, MOVED_SERVER4.into(), true).unwrap();
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    let rules = env.ruleset();
    assert!(
        rules.contains(&SERVER4.to_string()) && rules.contains(&MOVED_SERVER4.to_string()),
        "both servers must be allowed:\n{rules}"
    );

    // The first replica goes away.
    let mut server = procs.0.remove(0);
    server.kill().unwrap();
    server.wait().unwrap();
    env.lab.host_address(Host::Server, SERVER4.into(), false).unwrap();
    procs.0.insert(0, env.start_server_at(MOVED_SERVER4.into()));
    *env.api_at.borrow_mut() = MOVED_SERVER4.into();
    env.api_json(&["release", "endpoint", "--comment", "e2e: failover", "--json"]);
    wait_until("release through the second server", Duration::from_secs(30), || {
        env.endpoint_state() == "released"
    });
}

/// `proxy = "http://…"`: the agent reaches the server only through the proxy (the
/// direct path is blocked at the server); the quarantine allows the proxy, is verified
/// through it, and does not flap; a release arrives through it.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn explicit_proxy_is_allowed_verified_through_and_never_flaps() {
    let mut env = setup(false, |c| {
        c.proxy = Some(format!("http://{OTHER4}:{PROXY_PORT}"));
    });
    let tunnels = env.lab.start_proxy().unwrap();
    let block = format!(
        "table inet e2e_block {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  \
         ip saddr {ENDPOINT4} tcp dport {SERVER_PORT} drop\n  ip6 saddr {ENDPOINT6} tcp dport {SERVER_PORT} drop\n }}\n}}\n"
    );
    let file = env._tmp.path().join("block.nft");
    std::fs::write(&file, block).unwrap();
    let out = env.lab.exec(Host::Server, &["nft", "-f", &s(&file)]).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _procs = Procs(vec![env.start_server_at(SERVER4.into()), env.start_agent()]);
    env.wait_reported();
    assert!(!reachable(&env, SocketAddr::new(SERVER4.into(), SERVER_PORT)));

    env.quarantine(&[]);
    wait_until("quarantined through the proxy", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    assert!(
        env.ruleset().contains(&format!("{OTHER4} . {PROXY_PORT}")),
        "{}",
        env.ruleset()
    );
    let before = tunnels.load(std::sync::atomic::Ordering::SeqCst);
    assert!(before > 0, "nothing went through the proxy");

    // No flapping: it stays closed (a TCP probe to the server would fail here).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        assert_eq!(env.endpoint_state(), "isolated", "the quarantine flapped");
        std::thread::sleep(Duration::from_millis(200));
    }
    let audit = env.api_json(&["audit", "--host", "endpoint", "--json"]);
    let failed = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "failed")
        .count();
    assert_eq!(failed, 0, "{audit}");

    env.api_json(&["release", "endpoint", "--comment", "e2e: via proxy", "--json"]);
    wait_until("release through the proxy", Duration::from_secs(10), || {
        env.endpoint_state() == "released"
    });
}

/// How many `tampered` records the server's audit holds for the endpoint.
fn tampered_records(env: &Env) -> usize {
    let v = env.api_json(&["audit", "--host", "endpoint", "--action", "tampered", "--json"]);
    v["records"].as_array().map_or(0, Vec::len)
}

fn delete_tables(env: &Env) {
    for family in ["inet", "netdev"] {
        let out = env
            .lab
            .exec(Host::Endpoint, &["nft", "delete", "table", family, "cordon"])
            .unwrap();
        assert!(
            out.status.success(),
            "nft delete table {family}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The agent runs the engine's event-driven watcher (#12), as `cordon isolate --watch`
/// does: with the periodic check set to a minute, a deleted table is back within seconds
/// (only the watcher can have done that), and the server hears `tampered`.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn agent_repairs_tampering_as_the_kernel_reports_it() {
    let env = setup(false, |c| c.check_interval_secs = 60.0);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    // The watcher starts right after the apply; give its thread a moment.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tampered_records(&env), 0);
    let out = env
        .lab
        .exec(Host::Endpoint, &["nft", "delete", "table", "inet", "cordon"])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let took = wait_until("repaired by the watcher", Duration::from_secs(5), || {
        env.endpoint_state() == "isolated"
    });
    eprintln!("the agent's watcher repaired a deleted table within {took:?} (periodic check: 60 s)");
    wait_until("tampered reported to the server", Duration::from_secs(5), || {
        tampered_records(&env) == 1
    });
    wait_until("confirmed quarantined again", Duration::from_secs(5), || {
        env.host()["state"] == "quarantined"
    });
}

/// `tc ARGS` in the endpoint; the test fails when it fails.
fn endpoint_tc(env: &Env, args: &[&str]) {
    let mut argv = vec!["tc"];
    argv.extend_from_slice(args);
    let out = env.lab.exec(Host::Endpoint, &argv).unwrap();
    assert!(
        out.status.success(),
        "tc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// fix12g's open item: a quarantine `tampered` only because something goes around the
/// hooks (Cordon's rules intact) made the agent re-apply and report `tampered` at every
/// check (here every 0.5 s) until the operator acknowledged or released. Now it is
/// reported once per change and nothing is re-applied; once the filter is gone and the
/// sighting acknowledged, the server hears `quarantined` again.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_path_around_the_hooks_is_reported_once_not_reapplied_every_check() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tampered_records(&env), 0);
    endpoint_tc(&env, &["qdisc", "add", "dev", "lo", "clsact"]);
    endpoint_tc(
        &env,
        &[
            "filter", "add", "dev", "lo", "egress", "protocol", "all", "u32", "match", "u32", "0", "0", "action",
            "mirred", "egress", "redirect", "dev", "eth0",
        ],
    );
    wait_until("tampered reported", Duration::from_secs(5), || {
        tampered_records(&env) >= 1
    });
    std::thread::sleep(Duration::from_secs(4)); // eight checks
    let n = tampered_records(&env);
    eprintln!("{n} tampered report(s) in 4 s for one standing path around the hooks");
    assert!(
        n <= 2,
        "{n} tampered reports for one standing path around the hooks (re-applied and reported at every check)"
    );
    assert_eq!(env.endpoint_state(), "tampered");
    endpoint_tc(&env, &["qdisc", "del", "dev", "lo", "clsact"]);
    let out = env
        .lab
        .cordon(&["status", "--acknowledge", "--state-dir", &s(&env.state)])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("quarantined again", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
}

/// At start the agent compares the kernel with its record (#12): rules that disappeared
/// while it was down in the same boot are reported `tampered`; after a reboot (a record
/// made under another boot id) they are re-applied as usual, without a tamper report.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn agent_start_tells_tampering_while_down_from_a_reboot() {
    let env = setup(false, |c| c.check_interval_secs = 60.0);
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    let stop_agent = |procs: &mut Procs| {
        let mut agent = procs.0.remove(1);
        agent.kill().unwrap();
        agent.wait().unwrap();
    };

    // Same boot: rules deleted while no agent ran.
    stop_agent(&mut procs);
    delete_tables(&env);
    assert_eq!(env.endpoint_state(), "tampered");
    procs.0.push(env.start_agent());
    wait_until("re-applied at start", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated"
    });
    wait_until(
        "same-boot disappearance reported as tampered",
        Duration::from_secs(5),
        || tampered_records(&env) == 1,
    );

    // A reboot: the record was made under another boot id.
    stop_agent(&mut procs);
    delete_tables(&env);
    let record = env.state.join("cordon.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert!(v["boot_id"].is_string(), "the record carries no boot id: {v}");
    v["boot_id"] = Value::from("00000000-0000-4000-8000-000000000000");
    std::fs::write(&record, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    procs.0.push(env.start_agent());
    wait_until("re-applied after the reboot", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated"
    });
    wait_until("confirmed quarantined", Duration::from_secs(5), || {
        env.host()["state"] == "quarantined"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tampered_records(&env), 1, "a reboot was reported as tampering");
}

/// The `kind` of every notification the receiver got, in order.
fn kinds(hook: &WebhookReceiver) -> Vec<String> {
    hook.json()
        .iter()
        .map(|n| n["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Issue 14, effect not dispatch, with a real enforcing agent: while no agent can confirm
/// it, a quarantine is `quarantine_pending` ("requested, not confirmed in force"), the
/// webhook gets `quarantine_requested` and never `quarantined`; once the agent enforces
/// it, exactly one `quarantined` (from the agent, naming who asked), also after the agent
/// restarts. A restarted agent reports at once (not at its next heartbeat), a stopped one
/// turns `offline` after three heartbeats, and the files holding the analyst's comment
/// are private (0600 in 0700).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn quarantine_is_requested_until_the_agent_confirms_and_announced_once() {
    // A long heartbeat: a report right after the restart can only be the start report.
    let env = setup(false, |c| c.heartbeat_secs = 60.0);
    let mut procs = Procs(vec![env.start_server()]);
    let hook = WebhookReceiver::start(&env.lab.ns(Host::Server)).unwrap();
    // No `--event`: a target gets every kind, requests included.
    env.api_json(&[
        "notify",
        "add",
        "truth-hook",
        "--kind",
        "webhook",
        "--url",
        &hook.url(),
        "--json",
    ]);
    procs.0.push(env.start_agent());
    env.wait_reported();
    let stop_agent = |procs: &mut Procs| {
        let mut a = procs.0.pop().unwrap();
        a.kill().unwrap();
        a.wait().unwrap();
    };

    // The agent is down: the request stands, nothing claims it is in force.
    stop_agent(&mut procs);
    let v = env.quarantine(&[]);
    assert_eq!(v["results"][0]["state"], "quarantine_pending", "{v}");
    wait_until("quarantine_requested notified", Duration::from_secs(10), || {
        count(&kinds(&hook), "quarantine_requested") == 1
    });
    let h = env.host();
    assert_eq!(h["state"], "quarantine_pending", "{h}");
    let (_, text, _) = env.api(&["hosts", "show", "endpoint"]);
    assert!(
        text.contains("requested, not confirmed in force") && !text.contains("state:     quarantined"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&kinds(&hook), "quarantined"), 0, "{:?}", kinds(&hook));
    assert_ne!(env.endpoint_state(), "isolated");

    // The agent comes back and enforces: one `quarantined`, from the agent.
    procs.0.push(env.start_agent());
    wait_until("enforced on the endpoint", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated"
    });
    wait_until("server says quarantined", Duration::from_secs(10), || {
        env.host()["state"] == "quarantined"
    });
    wait_until("quarantined notified", Duration::from_secs(10), || {
        count(&kinds(&hook), "quarantined") == 1
    });
    let h = env.host();
    let n = hook.json().into_iter().find(|n| n["kind"] == "quarantined").unwrap();
    assert_eq!(n["actor"], "agent:endpoint", "{n}");
    assert_eq!(n["asked_by"], h["desired"]["actor"], "{n} vs {h}");
    let (_, text, _) = env.api(&["hosts", "show", "endpoint"]);
    assert!(
        text.contains("(revision 2, in force)") || text.contains(", in force)"),
        "{text}"
    );

    // Restart with nothing to change: it reports at start, and nothing is announced again.
    let seen = env.host()["last_seen"].as_str().unwrap().to_string();
    stop_agent(&mut procs);
    std::thread::sleep(Duration::from_millis(20));
    procs.0.push(env.start_agent());
    let took = wait_until("the restarted agent reports", Duration::from_secs(10), || {
        env.host()["last_seen"].as_str() != Some(seen.as_str())
    });
    eprintln!("restarted agent reported after {took:?} (heartbeat 60 s)");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&kinds(&hook), "quarantined"), 1, "{:?}", kinds(&hook));

    // A 1 s heartbeat, then the agent stops: offline after three heartbeats.
    stop_agent(&mut procs);
    let mut cfg = AgentConfig::load(&env.agent_cfg).unwrap();
    cfg.heartbeat_secs = 1.0;
    cfg.save(&env.agent_cfg).unwrap();
    procs.0.push(env.start_agent());
    wait_until("the agent reports its 1 s heartbeat", Duration::from_secs(10), || {
        env.host()["heartbeat_ms"] == 1000
    });
    assert_eq!(env.host()["offline"], false);
    stop_agent(&mut procs);
    let took = wait_until("offline", Duration::from_secs(10), || env.host()["offline"] == true);
    eprintln!("offline {took:?} after the agent stopped (heartbeat 1 s)");
    let (_, text, _) = env.api(&["hosts", "show", "endpoint"]);
    assert!(text.contains("OFFLINE"), "{text}");
    let (_, list, _) = env.api(&["hosts", "list"]);
    assert!(list.contains("(offline)"), "{list}");
    assert_eq!(count(&kinds(&hook), "quarantined"), 1, "{:?}", kinds(&hook));

    // The analyst's comment is on disk in private files only.
    assert_eq!(mode(&env.data), 0o700, "server data directory");
    assert_eq!(mode(&env.data.join("cordon.db")), 0o600, "server database");
    let persisted = cordon_agent::persist::path(&env.state);
    assert_eq!(mode(&persisted), 0o600, "{}", persisted.display());
    assert_eq!(mode(persisted.parent().unwrap()), 0o700, "agent state directory");
}

/// `cordon wazuh-ar` on the endpoint (an on-demand AR message; no execd here, so no
/// `check_keys` exchange) with the agent's state directory, Wazuh's manager being the
/// Cordon server; returns its result line.
fn wazuh_ar(env: &Env, action: &str) -> Value {
    wazuh_ar_via(env, action, &format!("tcp://{SERVER_NAME}:{SERVER_PORT}"))
}

/// A Wazuh manager of its own on the other host (`wazuh-ar` verifies it can reach it),
/// as on a real network: the one destination Wazuh's claim allows.
fn wazuh_manager() -> String {
    format!("tcp://{OTHER4}:{OTHER_TCP_PORT}")
}

/// A destination no claim allows: the server host's other port (the agent's paths open
/// the server's port only).
fn closed_dest() -> SocketAddr {
    SocketAddr::new(SERVER4.into(), SERVER_OTHER_PORT)
}

/// As [`wazuh_ar`], with `url` as Wazuh's only `--server`.
fn wazuh_ar_via(env: &Env, action: &str, url: &str) -> Value {
    let message = format!(
        r#"{{"version":1,"origin":{{"name":null,"module":"wazuh-execd"}},"command":"add","parameters":{{"extra_args":["--server","{url}","198.51.100.0/24"],"alert":{{"data":{{"action":"{action}","user":"analyst@example.org"}}}},"program":"active-response/bin/cordon-ar"}}}}"#
    );
    let script = r#"printf '%s\n' "$1" | "$0" wazuh-ar --no-handshake --log - --state-dir "$2""#;
    let out = env
        .lab
        .exec(Host::Endpoint, &["sh", "-c", script, &bin(), &message, &s(&env.state)])
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "wazuh-ar {action}: {e}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn sorted_sources(claims: &Value) -> Vec<String> {
    let mut v: Vec<String> = claims
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["source"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Issue 19 item 9 with a real enrolled agent: Wazuh's active response, the server (through
/// the agent) and a local operator each hold a claim on one host. The agent reports the
/// others' claims instead of "repairing" them; the server shows every claim; each release
/// removes only its own claim, and the host stays isolated while any claim stands.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn wazuh_agent_and_local_claims_share_one_quarantine() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let sd = s(&env.state);
    let other = SocketAddr::new(OTHER4.into(), OTHER_TCP_PORT);
    assert!(reachable(&env, other), "the other host should be reachable before");
    let local_sources = || sorted_sources(&local_status(&env)["claims"]);
    let server_sources = || sorted_sources(&env.host()["claims"]);

    // Wazuh isolates: the agent reports the claim and leaves the rules alone.
    let line = wazuh_ar(&env, "isolate");
    assert_eq!(
        (line["result"].as_str(), line["state"].as_str()),
        (Some("ok"), Some("isolated")),
        "{line}"
    );
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        server_sources() == ["wazuh"]
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        env.endpoint_state(),
        "isolated",
        "the agent must not undo Wazuh's quarantine"
    );
    assert_eq!(local_sources(), ["wazuh"]);
    assert!(!reachable(&env, other));

    // The server quarantines too (the agent's claim), then a local operator.
    env.quarantine(&["--allow", "udp://198.51.100.20:514"]);
    wait_until(
        "server: quarantined, agent + wazuh claims",
        Duration::from_secs(10),
        || {
            let h = env.host();
            h["state"] == "quarantined" && sorted_sources(&h["claims"]) == ["agent", "wazuh"]
        },
    );
    let url = format!("tcp://{SERVER_NAME}:{SERVER_PORT}");
    let out = env
        .lab
        .cordon(&["isolate", "--server", &url, "--state-dir", &sd])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("server shows three claims", Duration::from_secs(10), || {
        server_sources() == ["agent", "local", "wazuh"]
    });
    let (_, text, _) = env.api(&["hosts", "show", "endpoint"]);
    assert!(
        text.contains("claim:     wazuh") && text.contains("claim:     local"),
        "{text}"
    );

    // The server releases: only the agent's claim goes; the others keep the host isolated.
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("release confirmed, two claims left", Duration::from_secs(10), || {
        let h = env.host();
        h["state"] == "normal" && sorted_sources(&h["claims"]) == ["local", "wazuh"]
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(env.endpoint_state(), "isolated", "others' claims stand");
    assert_eq!(local_sources(), ["local", "wazuh"]);
    assert!(!reachable(&env, other));

    // Wazuh releases its own; then the operator releases the last claim.
    let line = wazuh_ar(&env, "release");
    assert_eq!(
        (line["result"].as_str(), line["state"].as_str()),
        (Some("ok"), Some("isolated")),
        "{line}"
    );
    assert_eq!(local_sources(), ["local"]);
    let out = env.lab.cordon(&["release", "--state-dir", &sd]).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.endpoint_state(), "released");
    assert!(reachable(&env, other), "no claim left: the host is open again");
    wait_until("the server sees no claim", Duration::from_secs(10), || {
        server_sources().is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.endpoint_state(), "released", "the agent must not re-isolate");
}

fn local_status(env: &Env) -> Value {
    let out = env
        .lab
        .cordon(&["status", "--json", "--state-dir", &s(&env.state)])
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Issue 14 with other managers' claims (trial 4, H1): a Wazuh quarantine that names only
/// Wazuh's own manager as `--server` must not cut the enrolled agent off from the Cordon
/// server. The agent records its management paths and every claim's merge keeps them open:
/// it keeps reporting, the server shows Wazuh's claim, and a server quarantine and
/// release still work while Wazuh's claim keeps the host isolated.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn other_managers_claims_keep_the_agent_management_paths_open() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let paths_file = env.state.join("agent-paths.json");
    wait_until(
        "the agent records its management paths at start",
        Duration::from_secs(5),
        || std::fs::read_to_string(&paths_file).is_ok_and(|p| p.contains(&SERVER4.to_string())),
    );
    let other = closed_dest();
    assert!(reachable(&env, other));

    let line = wazuh_ar_via(&env, "isolate", &wazuh_manager());
    assert_eq!(line["state"], "isolated", "{line}");
    assert!(!reachable(&env, other), "Wazuh's quarantine is in force");
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["wazuh"]
    });
    // Still reporting (1 s heartbeat): last seen moves on.
    let seen = env.host()["last_seen"].as_str().unwrap().to_string();
    wait_until("the agent keeps reporting", Duration::from_secs(10), || {
        env.host()["last_seen"].as_str() != Some(seen.as_str())
    });

    // The server can still quarantine and release the host.
    env.quarantine(&[]);
    wait_until("quarantined, agent + wazuh claims", Duration::from_secs(15), || {
        let h = env.host();
        h["state"] == "quarantined" && sorted_sources(&h["claims"]) == ["agent", "wazuh"]
    });
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let last = RefCell::new(Value::Null);
    let start = Instant::now();
    loop {
        let h = env.host();
        if h["state"] == "normal" && sorted_sources(&h["claims"]) == ["wazuh"] {
            break;
        }
        *last.borrow_mut() = h;
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "released by the server, Wazuh's claim left: {}",
            last.borrow()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.endpoint_state(), "isolated", "Wazuh's claim stands");
    assert!(!reachable(&env, other));
    let line = wazuh_ar_via(&env, "release", &wazuh_manager());
    assert_eq!(line["state"], "released", "{line}");
    assert!(reachable(&env, other));
    wait_until("the server sees no claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]).is_empty()
    });
}

/// Trial 4, H4: tampering with a quarantine only Wazuh holds (the agent holds no claim)
/// is repaired by the agent — the merged quarantine of every standing claim goes back,
/// the host is closed again — and reported a bounded number of times, never "released".
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn tampering_with_another_sources_claim_is_repaired() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let other = closed_dest();
    let line = wazuh_ar_via(&env, "isolate", &wazuh_manager());
    assert_eq!(line["state"], "isolated", "{line}");
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["wazuh"]
    });
    // The watcher starts at the agent's next check.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(tampered_records(&env), 0);
    let out = env
        .lab
        .exec(
            Host::Endpoint,
            &["nft", "delete table inet cordon; delete table netdev cordon"],
        )
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let took = wait_until("Wazuh's quarantine restored", Duration::from_secs(5), || {
        env.endpoint_state() == "isolated"
    });
    eprintln!("the agent restored another source's deleted quarantine within {took:?}");
    assert!(!reachable(&env, other), "the host is closed again");
    wait_until("tampered reported", Duration::from_secs(5), || {
        tampered_records(&env) >= 1
    });
    std::thread::sleep(Duration::from_secs(3));
    let n = tampered_records(&env);
    assert!(n <= 2, "{n} tampered reports for one tampering");
    assert_eq!(env.endpoint_state(), "isolated", "stays restored");
    assert_eq!(local_status(&env)["claims"][0]["source"], "wazuh");
    assert_eq!(sorted_sources(&env.host()["claims"]), ["wazuh"]);
}

/// Trial 4, H3: an agent restarted with `enforce = false` while its own claim is in force
/// would say "no rules are in force" while the host stays isolated. It refuses to start
/// (exit 2) naming the cause and the fix; after `cordon release --source agent` it runs.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn non_enforcing_agent_refuses_to_start_over_its_own_claim() {
    let env = setup(false, |_| {});
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.host()["state"] == "quarantined"
    });
    let mut a = procs.0.pop().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();
    let mut cfg = AgentConfig::load(&env.agent_cfg).unwrap();
    cfg.enforce = false;
    cfg.save(&env.agent_cfg).unwrap();

    let sd = s(&env.state);
    let out = env
        .lab
        .exec(
            Host::Endpoint,
            &["timeout", "20", &bin(), "agent", "run", "--config", &s(&env.agent_cfg)],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("enforce = false") && err.contains("cordon release --source agent"),
        "{err}"
    );
    assert_eq!(env.endpoint_state(), "isolated", "nothing changed");

    let out = env
        .lab
        .cordon(&["release", "--source", "agent", "--state-dir", &sd])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    procs.0.push(env.start_agent());
    wait_until("the non-enforcing agent reports", Duration::from_secs(10), || {
        env.host()["enforcing"] == false
    });
    assert_ne!(env.host()["state"], "quarantined");
    assert_eq!(env.endpoint_state(), "released");
}

/// The agent with its log (stderr) written to `log`.
fn start_agent_logged(env: &Env, log: &Path) -> Child {
    let script = r#"exec "$0" agent run --config "$1" 2>"$2""#;
    env.lab
        .spawn(
            Host::Endpoint,
            &["sh", "-c", script, &bin(), &s(&env.agent_cfg), &s(log)],
        )
        .unwrap()
}

fn lines_with(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Fix14c item 1, the fault kind: a revoked agent retried every few seconds and logged
/// an error each time. A release ordered before the (forced) revocation is still
/// delivered and confirmed; then the agent says once, clearly, that the server refuses
/// it and what that means, and stays quiet (retrying every `refused_retry_secs`).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn revoked_agent_says_so_once_and_still_gets_the_release_ordered_before() {
    let env = setup(false, |_| {});
    let log = env._tmp.path().join("agent.log");
    let mut procs = Procs(vec![env.start_server(), start_agent_logged(&env, &log)]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    // The agent is down while the release is ordered and the host revoked (forced: the
    // release is not confirmed yet).
    let mut a = procs.0.pop().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();
    env.api_json(&["release", "endpoint", "--comment", "e2e: retire", "--json"]);
    let (code, out, err) = env.api(&["hosts", "revoke", "endpoint", "--comment", "retired", "--force"]);
    assert_eq!(code, 0, "{out}{err}");

    procs.0.push(start_agent_logged(&env, &log));
    wait_until(
        "the release ordered before revocation is enforced",
        Duration::from_secs(15),
        || env.endpoint_state() == "released",
    );
    wait_until("and confirmed", Duration::from_secs(10), || {
        env.host()["state"] == "normal"
    });
    wait_until("the refusal is announced", Duration::from_secs(15), || {
        lines_with(&log, "the server refuses this agent") == 1
    });
    // Quick timers (1 s heartbeat, 0.5 s checks): before, a refusal was logged every
    // few seconds.
    std::thread::sleep(Duration::from_secs(8));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(lines_with(&log, "the server refuses this agent"), 1, "{text}");
    assert!(lines_with(&log, "ERROR") <= 1, "{text}");
    assert!(lines_with(&log, "403") <= 2, "one line per loop at most:\n{text}");
    assert_eq!(env.endpoint_state(), "released");
}

/// Fix14c item 4, the fault kind: a server in `servers = [...]` whose name did not
/// resolve (a DR site not yet in DNS) was silently left out of the allow set. It is
/// reported `degraded` ("server dr.cordon.lab unresolved"), retried, and added
/// atomically once it resolves.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn unresolvable_server_url_is_reported_degraded_and_added_when_it_resolves() {
    let dr = "dr.cordon.lab";
    let env = setup(false, |c| c.servers = vec![format!("https://{dr}:{SERVER_PORT}")]);
    env.lab.host_address(Host::Server, MOVED_SERVER4.into(), true).unwrap();
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until(
        "quarantined, degraded by the DR server",
        Duration::from_secs(10),
        || {
            let h = env.host();
            h["state"] == "quarantined"
                && h["state_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(&format!("server {dr} unresolved")))
        },
    );
    assert!(!env.ruleset().contains(&MOVED_SERVER4.to_string()), "{}", env.ruleset());
    env.lab.set_dns(dr, &[MOVED_SERVER4.into()]);
    wait_until(
        "the DR server is allowed once it resolves",
        Duration::from_secs(10),
        || env.ruleset().contains(&MOVED_SERVER4.to_string()),
    );
    assert_eq!(env.endpoint_state(), "isolated");
    wait_until("degraded cleared", Duration::from_secs(10), || {
        let h = env.host();
        h["state"] == "quarantined" && h["state_reason"].is_null()
    });
}

/// Fix14c item 8, the fault kind: an `enforce = false` agent on a host where another
/// source's claim stands reported "no rules in force" — less than is true. It reports the
/// other claims (the server shows them), never repairs or undoes them, and the server's
/// `not_enforcing` names them.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn non_enforcing_agent_reports_the_other_claims_in_force() {
    let env = setup(false, |c| c.enforce = false);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let line = wazuh_ar_via(&env, "isolate", &wazuh_manager());
    assert_eq!(line["state"], "isolated", "{line}");
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["wazuh"]
    });
    let h = env.host();
    assert!(
        h["state_reason"]
            .as_str()
            .is_some_and(|r| r.contains("other claims: wazuh")),
        "{h}"
    );
    env.quarantine(&[]);
    wait_until("not enforcing, naming Wazuh's claim", Duration::from_secs(10), || {
        let h = env.host();
        h["state"] == "not_enforcing"
            && h["state_reason"]
                .as_str()
                .is_some_and(|r| r.contains("isolated by other claims: wazuh") && !r.contains("no rules are in force"))
    });
    assert_eq!(env.endpoint_state(), "isolated", "Wazuh's quarantine stands");
    assert_eq!(
        sorted_sources(&local_status(&env)["claims"]),
        ["wazuh"],
        "the agent adds no claim"
    );
    let line = wazuh_ar_via(&env, "release", &wazuh_manager());
    assert_eq!(line["state"], "released", "{line}");
    wait_until("the server sees no claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]).is_empty()
    });
    assert_eq!(env.host()["state"], "not_enforcing");
}

/// Trial6 MED 1, the fault kind "a non-enforcing agent in another state directory says
/// less than is true": started with its own `state_dir` while Cordon tables recorded
/// elsewhere (or not recorded at all) were in force, it reported "no rules are in force"
/// and, over its own claim recorded elsewhere, started at all. Now (the table's home
/// registry) it refuses to start over its own claim wherever it is recorded, reports the
/// claims recorded in another directory, and reports rules with no record as the kernel
/// shows them ("records lost; rules kept"), never "no rules in force".
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn non_enforcing_agent_in_another_state_dir_never_says_no_rules_are_in_force() {
    let env = setup(false, |_| {});
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.host()["state"] == "quarantined"
    });
    let mut a = procs.0.pop().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();
    // The same agent, enforce = false, with a fresh state directory of its own.
    let alt = env.state.parent().unwrap().join("state-alt");
    let mut cfg = AgentConfig::load(&env.agent_cfg).unwrap();
    cfg.enforce = false;
    cfg.state_dir = alt.clone();
    cfg.save(&env.agent_cfg).unwrap();

    // 1. Its own claim, recorded in the other directory: refused, naming where.
    let out = env
        .lab
        .exec(
            Host::Endpoint,
            &["timeout", "20", &bin(), "agent", "run", "--config", &s(&env.agent_cfg)],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("enforce = false") && err.contains(&s(&env.state)),
        "must name the directory the claim is recorded in: {err}"
    );
    let out = env
        .lab
        .cordon(&["release", "--source", "agent", "--state-dir", &s(&env.state)])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // 2. Wazuh's claim recorded in the first directory: the agent reports it.
    let line = wazuh_ar_via(&env, "isolate", &wazuh_manager());
    assert_eq!(line["state"], "isolated", "{line}");
    procs.0.push(env.start_agent());
    wait_until(
        "the non-enforcing agent shows Wazuh's claim",
        Duration::from_secs(15),
        || {
            let h = env.host();
            h["enforcing"] == false && sorted_sources(&h["claims"]) == ["wazuh"]
        },
    );
    env.quarantine(&[]);
    wait_until("not enforcing, naming Wazuh's claim", Duration::from_secs(10), || {
        let h = env.host();
        h["state"] == "not_enforcing"
            && h["state_reason"]
                .as_str()
                .is_some_and(|r| r.contains("isolated by other claims: wazuh"))
    });

    // 3. The records deleted, the rules left: rules in force without a record.
    // Every record: the state, the claims and their backup.
    for f in ["cordon.json", "cordon.claims.json", "cordon.claims.backup"] {
        std::fs::remove_file(env.state.join(f)).unwrap();
    }
    wait_until(
        "the rules without a record are reported",
        Duration::from_secs(10),
        || {
            let h = env.host();
            h["state_reason"]
                .as_str()
                .is_some_and(|r| r.contains("records lost") && !r.contains("no rules are in force"))
        },
    );
    let closed = closed_dest();
    assert!(!reachable(&env, closed), "the rules stay (nobody removes them)");
    std::thread::sleep(Duration::from_secs(2));
    let h = env.host();
    assert!(
        !h["state_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no rules are in force"),
        "{h}"
    );
    let out = env
        .lab
        .cordon(&["release", "--force", "--state-dir", &s(&alt)])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(reachable(&env, closed));
}

/// Fix14c item 10: the Velociraptor artifact's command line (`Custom.Cordon.Quarantine`:
/// `cordon isolate --json --source=velociraptor --server=wss://…`) on a host with an
/// enrolled agent. The agent keeps reporting, the server shows Velociraptor's claim next
/// to its own, and `release --source velociraptor` (the artifact's RemovePolicy) removes
/// only Velociraptor's claim.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn velociraptor_artifact_claim_with_an_enrolled_agent() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let sd = s(&env.state);
    // The Velociraptor frontend: websocket comms on the other host.
    let frontend = format!("--server=wss://{OTHER4}:{OTHER_TCP_PORT}/");
    let closed = closed_dest();
    assert!(reachable(&env, closed));
    let out = env
        .lab
        .cordon(&[
            "isolate",
            "--json",
            "--source=velociraptor",
            &frontend,
            "--state-dir",
            &sd,
        ])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["source"], "velociraptor", "{v}");
    assert!(!reachable(&env, closed), "Velociraptor's quarantine is in force");
    assert!(
        reachable(&env, SocketAddr::new(OTHER4.into(), OTHER_TCP_PORT)),
        "the Velociraptor frontend stays reachable"
    );
    wait_until("the server shows Velociraptor's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["velociraptor"]
    });
    let seen = env.host()["last_seen"].as_str().unwrap().to_string();
    wait_until("the agent keeps reporting", Duration::from_secs(10), || {
        env.host()["last_seen"].as_str() != Some(seen.as_str())
    });

    env.quarantine(&[]);
    wait_until(
        "quarantined, agent + velociraptor claims",
        Duration::from_secs(15),
        || {
            let h = env.host();
            h["state"] == "quarantined" && sorted_sources(&h["claims"]) == ["agent", "velociraptor"]
        },
    );
    // The artifact's RemovePolicy: only Velociraptor's claim goes.
    let out = env
        .lab
        .cordon(&["release", "--json", "--source=velociraptor", "--state-dir", &sd])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["state"], "isolated", "the agent's claim stands: {v}");
    assert_eq!(sorted_sources(&local_status(&env)["claims"]), ["agent"]);
    wait_until(
        "the server shows only the agent's claim",
        Duration::from_secs(10),
        || {
            let h = env.host();
            h["state"] == "quarantined" && sorted_sources(&h["claims"]) == ["agent"]
        },
    );
    assert!(!reachable(&env, closed));
    env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
    wait_until("released", Duration::from_secs(10), || {
        env.endpoint_state() == "released" && env.host()["state"] == "normal"
    });
    assert!(reachable(&env, closed));
}

/// As [`wazuh_ar_via`], with Wazuh's call given its own `--state-dir` `dir` (the
/// `cordon-ar` wrapper passes none, so an agent with another `state_dir` sees this).
fn wazuh_ar_in(env: &Env, action: &str, url: &str, dir: &Path) -> Value {
    let message = format!(
        r#"{{"version":1,"origin":{{"name":null,"module":"wazuh-execd"}},"command":"add","parameters":{{"extra_args":["--server","{url}","198.51.100.0/24"],"alert":{{"data":{{"action":"{action}","user":"analyst@example.org"}}}},"program":"active-response/bin/cordon-ar"}}}}"#
    );
    let script = r#"printf '%s\n' "$1" | "$0" wazuh-ar --no-handshake --log - --state-dir "$2""#;
    let out = env
        .lab
        .exec(Host::Endpoint, &["sh", "-c", script, &bin(), &message, &s(dir)])
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "wazuh-ar {action}: {e}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Trial6 HIGH 2, the fault kind "an agent removes rules Cordon cannot attribute": a
/// Wazuh quarantine recorded in another state directory, and one whose records were
/// deleted, were removed by the enrolled agent within a second as "tampering". Now a
/// table's claims have one home per network namespace (every process finds them,
/// whatever its `--state-dir`), and rules without any record are kept (fail closed),
/// reported once as tampered "quarantine records lost; rules kept", and removed only by
/// `cordon release --force`.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn rules_cordon_cannot_attribute_are_never_removed() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let closed = closed_dest();
    let wazuh_dir = env.state.parent().unwrap().join("wazuh-state");

    // 1. Wazuh's call with another state directory.
    let line = wazuh_ar_in(&env, "isolate", &wazuh_manager(), &wazuh_dir);
    assert_eq!(line["state"], "isolated", "{line}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!reachable(&env, closed), "the agent removed Wazuh's quarantine");
    assert_eq!(env.endpoint_state(), "isolated", "found from the agent's state dir too");
    assert_eq!(sorted_sources(&local_status(&env)["claims"]), ["wazuh"]);
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["wazuh"]
    });
    assert_eq!(tampered_records(&env), 0, "another state dir's claim is no tampering");
    let seen = env.host()["last_seen"].as_str().unwrap().to_string();
    wait_until(
        "the agent keeps reporting through Wazuh's quarantine",
        Duration::from_secs(10),
        || env.host()["last_seen"].as_str() != Some(seen.as_str()),
    );
    let line = wazuh_ar_in(&env, "release", &wazuh_manager(), &wazuh_dir);
    assert_eq!(line["state"], "released", "{line}");
    assert!(reachable(&env, closed));
    wait_until("the server sees no claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]).is_empty()
    });

    // 2. Wazuh's claim with its records deleted.
    let line = wazuh_ar(&env, "isolate");
    assert_eq!(line["state"], "isolated", "{line}");
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["wazuh"]
    });
    // Every record: the state, the claims and their backup.
    for f in ["cordon.json", "cordon.claims.json", "cordon.claims.backup"] {
        std::fs::remove_file(env.state.join(f)).unwrap();
    }
    wait_until("tampered reported", Duration::from_secs(10), || {
        tampered_records(&env) >= 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(!reachable(&env, closed), "rules without records must be kept");
    let st = local_status(&env);
    assert_eq!(st["state"], "tampered", "{st}");
    assert!(
        st["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("quarantine records lost; rules kept"),
        "{st}"
    );
    assert_eq!(tampered_records(&env), 1, "reported once");
    let out = env
        .lab
        .cordon(&["release", "--force", "--state-dir", &s(&env.state)])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(reachable(&env, closed), "release --force removes them");
    std::thread::sleep(Duration::from_secs(2));
    assert!(reachable(&env, closed), "and nothing puts them back");
}

/// `cordon isolate --reapply --watch` (cordon-watch.service) on the endpoint: the tables
/// are held by it (nftables owner flag). Returns it once it says it holds them.
fn start_holding_watcher(env: &Env) -> Child {
    use std::io::BufRead;
    let mut w = env
        .lab
        .command(
            Host::Endpoint,
            &[&bin(), "isolate", "--reapply", "--watch", "--state-dir", &s(&env.state)],
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(w.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the watcher ended before watching").unwrap();
        if line.starts_with("watching") {
            assert!(line.contains("owned by this process"), "{line}");
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    w
}

/// Trial6 HIGH 4, the fault kind "a process holding the tables makes other sources'
/// isolate/release impossible": with the watcher holding Wazuh's quarantine, a server
/// quarantine through the agent is confirmed (not `failed`) and released, a Velociraptor
/// claim is added and released, and Wazuh's on-demand release removes the quarantine —
/// each handed to the holder, which applies the new merge.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_process_holding_the_tables_never_blocks_other_sources() {
    assert!(
        cordon_firewall::netlink::kernel_at_least(6, 9),
        "this test needs the nftables owner+persist flags (Linux >= 6.9)"
    );
    let env = setup(false, |_| {});
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let closed = closed_dest();
    let line = wazuh_ar_via(&env, "isolate", &wazuh_manager());
    assert_eq!(line["state"], "isolated", "{line}");
    procs.0.push(start_holding_watcher(&env));
    assert_eq!(local_status(&env)["coverage"]["owned"], true);

    env.quarantine(&[]);
    wait_until(
        "quarantine confirmed while the watcher holds",
        Duration::from_secs(15),
        || {
            let h = env.host();
            assert_ne!(h["state"], "failed", "{h}");
            h["state"] == "quarantined" && sorted_sources(&h["claims"]) == ["agent", "wazuh"]
        },
    );
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until(
        "released by the server, Wazuh's claim left",
        Duration::from_secs(15),
        || {
            let h = env.host();
            h["state"] == "normal" && sorted_sources(&h["claims"]) == ["wazuh"]
        },
    );

    let sd = s(&env.state);
    let url = wazuh_manager();
    let out = env
        .lab
        .cordon(&[
            "isolate",
            "--source",
            "velociraptor",
            "--server",
            &url,
            "--state-dir",
            &sd,
        ])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sorted_sources(&local_status(&env)["claims"]), ["velociraptor", "wazuh"]);
    let out = env
        .lab
        .cordon(&["release", "--source", "velociraptor", "--state-dir", &sd])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sorted_sources(&local_status(&env)["claims"]), ["wazuh"]);
    assert!(!reachable(&env, closed));

    let line = wazuh_ar_via(&env, "release", &wazuh_manager());
    assert_eq!(line["state"], "released", "{line}");
    assert!(reachable(&env, closed), "Wazuh's release went through the holder");
    assert_eq!(env.endpoint_state(), "released");
}

/// Clears the immutable attribute it set when dropped (also on panic).
struct Immutable(PathBuf);
impl Immutable {
    fn set(p: &Path) -> Self {
        let out = std::process::Command::new("chattr").arg("+i").arg(p).output().unwrap();
        assert!(
            out.status.success(),
            "chattr +i: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Immutable(p.to_path_buf())
    }
}
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).output();
    }
}

/// Fix14d's hand-off, the fault kind "a holder's failure reaches the requester only as a
/// timeout": when the process holding the tables cannot apply another source's change
/// (here its state file cannot be replaced: immutable), the requester used to wait the
/// whole 10 s and then say only that the holder "did not" apply it. Now the holder
/// records its error and the requester fails at once with it; nothing changed (rules,
/// claims).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_holder_that_cannot_apply_a_change_tells_the_requester_at_once() {
    assert!(
        cordon_firewall::netlink::kernel_at_least(6, 9),
        "this test needs the nftables owner+persist flags (Linux >= 6.9)"
    );
    let env = setup(false, |_| {});
    let closed = closed_dest();
    let line = wazuh_ar_via(&env, "isolate", &wazuh_manager());
    assert_eq!(line["state"], "isolated", "{line}");
    let _procs = Procs(vec![start_holding_watcher(&env)]);
    let before = env.ruleset();
    let sd = s(&env.state);
    let url = format!("tcp://{OTHER4}:{}", OTHER_TCP_PORT);
    let started = Instant::now();
    let out = {
        let _frozen = Immutable::set(&env.state.join("cordon.json"));
        env.lab
            .cordon(&[
                "isolate",
                "--source",
                "velociraptor",
                "--server",
                &url,
                "--state-dir",
                &sd,
            ])
            .unwrap()
    };
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("could not:") && err.contains("could not be recorded") && !err.contains("did not within"),
        "the holder's own error, not a timeout: {err}"
    );
    assert!(
        took < cordon_engine::claims::HAND_OFF_TIMEOUT,
        "answered after {took:?}, i.e. only when the hand-off wait ran out"
    );
    assert_eq!(
        sorted_sources(&local_status(&env)["claims"]),
        ["wazuh"],
        "claims put back"
    );
    assert_eq!(env.ruleset(), before, "rules unchanged");
    assert!(!reachable(&env, closed));
    // The holder applies the next change as usual.
    let line = wazuh_ar_via(&env, "release", &wazuh_manager());
    assert_eq!(line["state"], "released", "{line}");
    assert!(reachable(&env, closed));
}

/// Trial6 MED 5, the fault kind "another process's isolate in progress is judged as
/// tampering": a local isolate whose verification takes seconds (here: never answered,
/// rolled back after 3 s) holds the state lock while its rules are in force without a
/// record yet. The agent's check waits for that lock instead of judging, so no
/// `tampered` is reported and nothing is removed under the isolating process.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn another_process_isolating_is_not_tampering() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let nobody = format!("tcp://{OTHER4}:9");
    let out = env
        .lab
        .cordon(&[
            "isolate",
            "--source",
            "local",
            "--server",
            &nobody,
            "--verify-timeout",
            "3",
            "--state-dir",
            &s(&env.state),
        ])
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tampered_records(&env), 0, "a slow isolate was reported as tampering");
    assert_eq!(env.endpoint_state(), "released", "rolled back, nothing left");
}

/// Copies the server's SQLite database files (`cordon.db` and its journal files) from
/// `from` to `to` (the server is stopped).
fn copy_db(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["cordon.db", "cordon.db-wal", "cordon.db-shm"] {
        let _ = std::fs::remove_file(to.join(f));
        if from.join(f).exists() {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }
}

/// Waits until the server says `quarantined`; at that moment the agent's own claim must
/// be in force on the endpoint (the server confirms effect, never other claims' tables).
fn wait_confirmed_with_own_claim(env: &Env, limit: Duration) -> Duration {
    wait_until("quarantine confirmed", limit, || {
        let h = env.host();
        if h["state"] != "quarantined" {
            return false;
        }
        let local = sorted_sources(&local_status(env)["claims"]);
        assert!(
            local.iter().any(|c| c == "agent"),
            "the server confirmed a quarantine whose claim is not in force: host {h}, claims on the endpoint {local:?}"
        );
        true
    })
}

/// Trial6 HIGH 1 (restore), the fault kind "a stale revision confirms a quarantine not in
/// force": after the server's database is restored to a lower revision, with another
/// source's claim keeping the tables present, a new server quarantine was confirmed at
/// once while only the other claim was in force, and the agent applied it only after its
/// long-poll timed out. Now the long-poll answers any other revision at once, the agent
/// applies a lower revision (with a warning), and only a report of exactly the desired
/// revision with the agent's own claim confirms.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_restored_server_database_never_confirms_a_quarantine_not_in_force() {
    let env = setup(false, |_| {});
    let backup = env.data.parent().unwrap().join("db-backup");
    copy_db(&env.data, &backup);
    let mut server = env.start_server();
    let _agent = Procs(vec![env.start_agent()]);
    env.wait_reported();
    for _ in 0..2 {
        env.quarantine(&[]);
        wait_until("quarantined", Duration::from_secs(15), || {
            env.host()["state"] == "quarantined"
        });
        let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        wait_until("released", Duration::from_secs(15), || env.host()["state"] == "normal");
    }
    let before = env.host()["desired"]["revision"].as_i64().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    copy_db(&backup, &env.data);
    let _ = std::fs::remove_file(env.data.join("audit-anchor.json"));
    let _server = Procs(vec![env.start_server()]);
    let restored = env.host()["desired"]["revision"].as_i64().unwrap();
    assert!(restored < before, "the restore went back ({before} → {restored})");

    let out = env
        .lab
        .cordon(&[
            "isolate",
            "--source",
            "velociraptor",
            "--server",
            &wazuh_manager(),
            "--state-dir",
            &s(&env.state),
        ])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_secs(2));
    env.quarantine(&[]);
    let took = wait_confirmed_with_own_claim(&env, Duration::from_secs(10));
    eprintln!("quarantine after the restore confirmed in {took:?}");
    assert!(sorted_sources(&env.host()["claims"]).contains(&"agent".to_string()));
}

/// Issue 14 (trial15 MED-3): the server's database restored from a backup older than a
/// quarantine made the agent release the host silently (only a warning in the agent's
/// log; the server said `normal`, no audit record said why). The agent still applies the
/// server's word (docs/server.md, "A desired state that goes back"), but every report
/// says what went back: the host's state reason and the audit record name both
/// revisions.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_restored_database_that_releases_a_host_says_so() {
    let env = setup_named("f14p-rst", |_| {});
    let backup = env.data.parent().unwrap().join("db-backup");
    let mut server = env.start_server();
    let _agent = Procs(vec![env.start_agent()]);
    env.wait_settled();
    // The backup: enrolled, nothing asked.
    let _ = server.kill();
    let _ = server.wait();
    copy_db(&env.data, &backup);
    let mut server = env.start_server();
    let closed = closed_dest();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(20), || {
        env.host()["state"] == "quarantined"
    });
    assert!(!reachable(&env, closed));
    let quarantined_rev = env.host()["desired"]["revision"].as_i64().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    copy_db(&backup, &env.data);
    let _ = std::fs::remove_file(env.data.join("audit-anchor.json"));
    let _server = Procs(vec![env.start_server()]);
    let restored = env.host()["desired"]["revision"].as_i64().unwrap();
    assert!(restored < quarantined_rev, "the restore went back");
    let said = format!(
        "the server's desired revision went back from {quarantined_rev} (quarantine) to {restored} (no quarantine)"
    );
    wait_until("released, saying why", Duration::from_secs(20), || {
        let h = env.host();
        h["state"] == "normal" && h["state_reason"].as_str().is_some_and(|r| r.contains(&said))
    });
    assert!(reachable(&env, closed), "the server's word is applied");
    let (code, out, err) = env.api(&["hosts", "show", "endpoint"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&said), "hosts show: {out}");
    let audit = env.api_json(&["audit", "--host", "endpoint", "--json"]);
    assert!(
        audit.to_string().contains(&said),
        "an audit record says why the host was released: {audit}"
    );
}

/// Trial32 HIGH-2, the fault kind "a quarantined host the server cannot see or release":
/// the server's database restored from a backup older than the host's enrollment — the
/// agent was refused (403 "unknown host") and kept its quarantine (right: fail closed),
/// but nothing on the server said so (no log line, no audit record, no listing), and
/// after the host was enrolled again a release through the server answered "already
/// released" while the previous enrollment's claim kept the host isolated: only a release
/// on the host helped. Now the refused agent is audited and listed (`hosts list
/// --unknown`, and a note under `hosts list`), and a release of the re-enrolled host
/// names the previous enrollment's claim, which its agent lifts.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_database_restored_from_before_an_enrollment_shows_the_agent_and_releases_it_after_re_enrolling() {
    let env = setup_named("f14r-unk", |_| {});
    let old_id = AgentConfig::load(&env.agent_cfg).unwrap().host_id;
    let mut server = env.start_server();
    let mut agent = Procs(vec![env.start_agent()]);
    env.wait_settled();
    let closed = closed_dest();
    assert!(reachable(&env, closed));
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(20), || {
        env.host()["state"] == "quarantined"
    });
    assert!(!reachable(&env, closed));

    // The restore: a backup from before the enrollment.
    let _ = server.kill();
    let _ = server.wait();
    copy_db(&env.before_enroll, &env.data);
    let _ = std::fs::remove_file(env.data.join("audit-anchor.json"));
    let _server = Procs(vec![env.start_server()]);
    let (code, _, err) = env.api(&["hosts", "show", &old_id, "--json"]);
    assert_ne!(code, 0, "the restored database does not know the host: {err}");

    // The server sees the refused agent: listed, audited, noted under the host list.
    let unknown = || env.api_json(&["hosts", "list", "--unknown", "--json"]);
    wait_until("the refused agent is listed", Duration::from_secs(20), || {
        unknown()["agents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u["host_id"] == old_id.as_str()))
    });
    let listed = unknown();
    let u = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["host_id"] == old_id.as_str())
        .unwrap()
        .clone();
    assert!(u["attempts"].as_i64().unwrap() >= 1, "{u}");
    assert!(
        u["address"].as_str().is_some_and(|a| {
            a.parse::<SocketAddr>()
                .is_ok_and(|a| a.ip() == IpAddr::from(ENDPOINT4) || a.ip() == IpAddr::from(ENDPOINT6))
        }),
        "the endpoint's address: {u}"
    );
    let audit = env.api_json(&["audit", "--json"]);
    let recorded = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "agent_unknown" && r["host_id"] == old_id.as_str())
        .count();
    assert_eq!(recorded, 1, "one audit record for the unknown agent: {audit}");
    let (code, _, err) = env.api(&["hosts", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("hosts list --unknown"),
        "a note under the host list: {err}"
    );
    let (code, text, err) = env.api(&["hosts", "list", "--unknown"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains(&old_id) && text.contains("cordon release HOST"), "{text}");
    // Fail closed: the refused agent keeps the quarantine.
    assert_eq!(env.endpoint_state(), "isolated");
    assert!(!reachable(&env, closed), "the host was opened");

    // Enrolled again (new host id, new config and state directory).
    drop(agent.0.pop().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "token",
            "create",
            "--json",
            "--data",
            &s(&env.data),
            "--labels",
            "linux,lab",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir2 = env.state.parent().unwrap().join("agent2");
    let state2 = env.state.parent().unwrap().join("state2");
    server_lab::enroll_agent(&env.lab, Path::new(&bin()), &env.init, &token, &dir2, &state2).expect("enrolling again");
    let cfg2 = dir2.join("agent.toml");
    let mut cfg = AgentConfig::load(&cfg2).unwrap();
    quick(&mut cfg);
    let new_id = cfg.host_id.clone();
    cfg.save(&cfg2).unwrap();
    let _second = Procs(vec![server_lab::spawn_agent_env(
        &env.lab,
        Path::new(&bin()),
        &cfg2,
        &[],
    )
    .unwrap()]);
    let show_new = || env.api_json(&["hosts", "show", &new_id, "--json"]);
    wait_until(
        "the new host shown isolated by the previous enrollment",
        Duration::from_secs(20),
        || {
            let h = show_new();
            h["state"] == "normal" && h["state_reason"].as_str().is_some_and(|r| r.contains(&old_id))
        },
    );
    assert!(!reachable(&env, closed), "re-enrolling opened the host");

    // A release of the new host names the previous enrollment's claim: its agent lifts it.
    let v = env.api_json(&["release", &new_id, "--comment", "e2e: after the restore", "--json"]);
    assert_eq!(
        v["results"][0]["change"], "released",
        "a new revision, not already released: {v}"
    );
    assert_eq!(
        show_new()["desired"]["release_previous"],
        serde_json::json!([old_id.clone()]),
        "the release names the previous enrollment"
    );
    wait_until("the host open, the new host normal", Duration::from_secs(20), || {
        let h = show_new();
        h["state"] == "normal" && h["state_reason"].is_null() && reachable(&env, closed)
    });
    assert_eq!(env.endpoint_state(), "released");
    let audit = env.api_json(&["audit", "--host", &new_id, "--json"]);
    assert!(
        audit
            .to_string()
            .contains(&format!("previous enrollments of this machine (host id {old_id})")),
        "the release's audit record names the lifted enrollment: {audit}"
    );
}

/// Trial32 MED-1, the fault kind "an ordered quarantine kept out by a process that is not
/// Cordon": a foreign `flock` on the agent's `.lock` kept a server quarantine out for the
/// agent's whole lock timeout (60 s) — the host open, the server showing a reasonless
/// `quarantine_pending`, the agent saying nothing — and `cordon status` waited as long.
/// Now the agent waits such a holder only `FOREIGN_HOLDER_GRACE` (3 s), logs the wait at
/// once naming it, applies without the lock and reports that as `degraded`; a status
/// does not wait behind it.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_foreign_lock_holder_keeps_an_ordered_quarantine_out_for_seconds_not_a_minute() {
    let env = setup_named("f14r-flk", |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    let closed = closed_dest();
    assert!(reachable(&env, closed));
    // `-o`: flock(1) itself holds the lock (killed on drop).
    let holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(env.state.join(".lock"))
        .args(["sleep", "90"])
        .spawn()
        .expect("running flock (util-linux)");
    let holder_pid = holder.id();
    let _holder = Procs(vec![holder]);
    std::thread::sleep(Duration::from_millis(300));
    env.quarantine(&[]);
    let took = wait_until(
        "quarantined although a process that is not Cordon holds the lock",
        Duration::from_secs(20),
        || !reachable(&env, closed) && env.host()["state"] == "quarantined",
    );
    eprintln!("quarantine in force after {took:?} behind a foreign lock holder");
    let h = env.host();
    let why = h["state_reason"].as_str().unwrap_or_default().to_string();
    assert!(
        why.contains("applied without the lock")
            && why.contains(&format!("pid {holder_pid} (flock"))
            && why.contains("not a Cordon process")
            && why.contains("held it for 3 s"),
        "the server shows why, naming the holder: {h}"
    );
    // A read-only look does not wait behind the holder either.
    let started = Instant::now();
    assert_eq!(env.endpoint_state(), "isolated");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cordon status waited {:?}",
        started.elapsed()
    );
}

/// Issue 14 MED-1, the rest (fix14r "Open"): an ordered quarantine waiting behind
/// another Cordon run holding the state lock waits up to the lock timeout (60 s) — rightly,
/// that run is applying — but the server showed a `quarantine_pending` without any reason
/// all that time (only the agent's log said why). The agent now reports the wait
/// (`StatusReport::waiting`) and `hosts show` (API and CLI) names the holder.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_quarantine_waiting_behind_a_cordon_lock_holder_shows_whom_it_waits_for() {
    let env = setup_named("s19-lkw", |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    let closed = closed_dest();
    let holder = lock_holder::cordon_holding(
        &env.state.join(".lock"),
        &env.state.parent().unwrap().join("holder.log"),
    );
    let holder_pid = holder.id();
    let mut holder = Procs(vec![holder]);
    env.quarantine(&[]);
    wait_until(
        "the pending host names the lock holder",
        Duration::from_secs(20),
        || {
            let h = env.host();
            h["state"] == "quarantine_pending"
                && h["state_reason"].as_str().is_some_and(|r| {
                    r.contains(&format!("waiting for pid {holder_pid} (cordon")) && r.contains("(lock)")
                })
        },
    );
    let (code, out, err) = env.api(&["hosts", "show", "endpoint"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("waiting for pid {holder_pid} (cordon"))
            && out.contains("another cordon run or the agent"),
        "hosts show says whom the agent waits for: {out}"
    );
    assert!(
        reachable(&env, closed),
        "nothing applied while the holder holds the lock"
    );
    drop(holder.0.pop().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));
    wait_until("quarantined once the holder is gone", Duration::from_secs(20), || {
        env.host()["state"] == "quarantined" && !reachable(&env, closed)
    });
    let h = env.host();
    assert!(h["state_reason"].is_null(), "the wait's reason goes with it: {h}");
}

/// Trial6 HIGH 1 (re-enrollment), the same fault kind: a host revoked and enrolled again
/// into the same state directory kept the old host's desired revision; a quarantine of
/// the new host was confirmed while only a local claim was in force. The persisted desired
/// state is bound to the host id and CA it came from and discarded on a mismatch.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn re_enrolling_into_the_same_state_dir_never_confirms_a_stale_quarantine() {
    let env = setup(false, |_| {});
    let _server = Procs(vec![env.start_server()]);
    let mut agent = Procs(vec![env.start_agent()]);
    env.wait_reported();
    for _ in 0..2 {
        env.quarantine(&[]);
        wait_until("quarantined", Duration::from_secs(15), || {
            env.host()["state"] == "quarantined"
        });
        let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        wait_until("released", Duration::from_secs(15), || env.host()["state"] == "normal");
    }
    drop(agent.0.pop().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));
    let (code, out, err) = env.api(&["hosts", "revoke", "endpoint", "--comment", "re-enrolled", "--force"]);
    assert_eq!(code, 0, "{out}{err}");
    let agent_dir = env.state.parent().unwrap().join("agent-again");
    // A fresh token (the first was used): `server token create` writes the database.
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "token",
            "create",
            "--json",
            "--data",
            &s(&env.data),
            "--labels",
            "linux,lab",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    server_lab::enroll_agent(&env.lab, Path::new(&bin()), &env.init, &token, &agent_dir, &env.state)
        .expect("enrolling again into the same state directory");
    let cfg_path = agent_dir.join("agent.toml");
    let mut cfg = AgentConfig::load(&cfg_path).unwrap();
    quick(&mut cfg);
    cfg.save(&cfg_path).unwrap();
    let _again = Procs(vec![server_lab::spawn_agent_env(
        &env.lab,
        Path::new(&bin()),
        &cfg_path,
        &[],
    )
    .unwrap()]);
    env.wait_reported();
    let out = env
        .lab
        .cordon(&[
            "isolate",
            "--source",
            "local",
            "--server",
            &wazuh_manager(),
            "--state-dir",
            &s(&env.state),
        ])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_secs(2));
    env.quarantine(&[]);
    let took = wait_confirmed_with_own_claim(&env, Duration::from_secs(10));
    eprintln!("quarantine after re-enrolling confirmed in {took:?}");
}

/// Trial6 HIGH 3, the fault kind "the agent's management paths miss a merge": with the
/// agent's `table = "corp"` (a documented key) a Wazuh isolate on the default table found
/// no paths and cut the agent off. The paths are one file per state directory, read by
/// every merge whatever the table; a deleted paths file is written again at once.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn agent_paths_reach_every_table_and_come_back_when_deleted() {
    let env = setup(false, |c| c.table = cordon_policy::TableName::new("corp").unwrap());
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let paths_file = env.state.join("agent-paths.json");
    wait_until("the agent records its paths", Duration::from_secs(5), || {
        paths_file.exists()
    });
    std::fs::remove_file(&paths_file).unwrap();
    wait_until("the paths file is written again", Duration::from_secs(3), || {
        paths_file.exists()
    });

    let line = wazuh_ar_via(&env, "isolate", &wazuh_manager());
    assert_eq!(line["state"], "isolated", "{line}");
    assert!(!reachable(&env, closed_dest()), "Wazuh's quarantine is in force");
    let seen = env.host()["last_seen"].as_str().unwrap().to_string();
    wait_until(
        "the agent (table corp) keeps reporting through Wazuh's quarantine (table cordon)",
        Duration::from_secs(10),
        || env.host()["last_seen"].as_str() != Some(seen.as_str()),
    );
    let line = wazuh_ar_via(&env, "release", &wazuh_manager());
    assert_eq!(line["state"], "released", "{line}");
}

/// The endpoint's nftables tables (`nft list tables`).
fn nft_tables(env: &Env) -> String {
    let out = env.lab.exec(Host::Endpoint, &["nft", "list", "tables"]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Trial9 H-2, the fault kind "Cordon quarantines under different table names stack":
/// with the agent on `table = "corp"`, a Wazuh quarantine (table `cordon`, another state
/// directory) and the server's quarantine were two tables, so the kernel enforced only
/// what both allowed (Wazuh's manager and the server's exception shut), the agent neither
/// saw Wazuh's claim nor repaired its table, and in the other order Wazuh's verified
/// isolate rolled back. Now the second joins the table in force, in both orders: one
/// table, every claim's paths open, the agent reports and repairs every claim.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn quarantines_under_different_table_names_merge_and_the_agent_repairs_them() {
    let env = setup(false, |c| c.table = cordon_policy::TableName::new("corp").unwrap());
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let wazuh_dir = env.state.parent().unwrap().join("wazuh-state");
    let manager = SocketAddr::new(OTHER4.into(), OTHER_TCP_PORT);
    let closed = closed_dest();

    // Order 1: Wazuh first (table cordon), then the server's quarantine (agent, corp).
    let line = wazuh_ar_in(&env, "isolate", &wazuh_manager(), &wazuh_dir);
    assert_eq!(line["state"], "isolated", "{line}");
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["wazuh"]
    });
    env.quarantine(&["--allow", "udp://198.51.100.20:514"]);
    wait_until("quarantined with both claims", Duration::from_secs(10), || {
        let h = env.host();
        h["state"] == "quarantined" && sorted_sources(&h["claims"]) == ["agent", "wazuh"]
    });
    let tables = nft_tables(&env);
    assert!(
        tables.contains("inet cordon") && !tables.contains("corp"),
        "stacked tables: {tables}"
    );
    assert!(reachable(&env, manager), "Wazuh's manager must stay reachable");
    assert!(!reachable(&env, closed));
    // Tampering with the table the agent did not create: repaired, reported.
    std::thread::sleep(Duration::from_secs(1));
    let out = env
        .lab
        .exec(
            Host::Endpoint,
            &["nft", "delete table inet cordon; delete table netdev cordon"],
        )
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("the agent restores the other table", Duration::from_secs(5), || {
        nft_tables(&env).contains("inet cordon")
    });
    assert!(!reachable(&env, closed), "closed again");
    assert!(reachable(&env, manager), "with Wazuh's path");
    wait_until("tampered reported", Duration::from_secs(10), || {
        tampered_records(&env) >= 1
    });
    // The server releases its claim; Wazuh's stands; then Wazuh releases.
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("release confirmed, Wazuh's claim left", Duration::from_secs(10), || {
        let h = env.host();
        h["state"] == "normal" && sorted_sources(&h["claims"]) == ["wazuh"]
    });
    assert!(!reachable(&env, closed));
    let line = wazuh_ar_in(&env, "release", &wazuh_manager(), &wazuh_dir);
    assert_eq!(line["state"], "released", "{line}");
    assert!(reachable(&env, closed));
    assert!(!nft_tables(&env).contains("cordon"), "{}", nft_tables(&env));

    // Order 2: the server's quarantine first (table corp), then Wazuh (verified).
    env.quarantine(&["--allow", "udp://198.51.100.20:514"]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.host()["state"] == "quarantined"
    });
    let line = wazuh_ar_in(&env, "isolate", &wazuh_manager(), &wazuh_dir);
    assert_eq!(line["state"], "isolated", "Wazuh's isolate joins table corp: {line}");
    let tables = nft_tables(&env);
    assert!(
        tables.contains("inet corp") && !tables.contains("cordon"),
        "stacked tables: {tables}"
    );
    assert!(reachable(&env, manager));
    wait_until("the server shows both claims", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["agent", "wazuh"]
    });
    let line = wazuh_ar_in(&env, "release", &wazuh_manager(), &wazuh_dir);
    assert_eq!(line["state"], "isolated", "{line}");
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("released", Duration::from_secs(10), || {
        env.host()["state"] == "normal" && reachable(&env, closed)
    });
}

/// Trial9 H-1, the fault kind "the agent decides what is new by the revision number
/// only": after the server's database was restored from a backup, a quarantine landing on
/// the revision number the agent had last applied (a release) was never applied — the
/// host stayed open while the server said pending. Now the agent asks for the current
/// state at start and after every failure, and compares the content it applied
/// (`applied_digest`), not only the number: applied at once, and the server confirms.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_restored_database_reusing_the_applied_revision_number_is_applied() {
    let env = setup(false, |_| {});
    let backup = env.data.parent().unwrap().join("db-backup");
    copy_db(&env.data, &backup);
    let mut server = env.start_server();
    let agent = Procs(vec![env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(15), || {
        env.host()["state"] == "quarantined"
    });
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("released", Duration::from_secs(15), || {
        env.host()["state"] == "normal" && env.endpoint_state() == "released"
    });
    let applied = env.host()["desired"]["revision"].as_i64().unwrap();
    drop(agent);
    let _ = server.kill();
    let _ = server.wait();
    copy_db(&backup, &env.data);
    let _ = std::fs::remove_file(env.data.join("audit-anchor.json"));
    let _server = Procs(vec![env.start_server()]);
    // Quarantines until the restored server's revision is the one the agent applied.
    let allows = [vec![], vec!["--allow", "udp://198.51.100.20:514", "--replace"]];
    for extra in allows.iter().cycle().take(6) {
        if env.host()["desired"]["revision"].as_i64().unwrap() >= applied {
            break;
        }
        env.quarantine(extra);
    }
    assert_eq!(
        env.host()["desired"]["revision"].as_i64().unwrap(),
        applied,
        "the restored server reached the agent's applied revision number"
    );
    assert_eq!(env.endpoint_state(), "released");
    let _agent = Procs(vec![env.start_agent()]);
    let took = wait_confirmed_with_own_claim(&env, Duration::from_secs(10));
    eprintln!("the quarantine under the reused revision number was confirmed in {took:?}");
    assert_eq!(env.endpoint_state(), "isolated");
    assert!(!reachable(&env, closed_dest()), "the host is closed");
}

/// Trial9 M-1, the fault kind "another manager's rollback is reported as tampering": with
/// a Wazuh claim standing (the agent's watcher running), a local isolate whose
/// verification failed rolled the rules back exactly; the watcher, which had seen the
/// change and waited for the lock, then "repaired" the restored rules and the server got
/// `tampered`. The watcher now looks again under the lock: rules back at the record are
/// no tampering.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_rolled_back_isolate_over_standing_claims_is_not_tampering() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let line = wazuh_ar_via(&env, "isolate", &wazuh_manager());
    assert_eq!(line["state"], "isolated", "{line}");
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["wazuh"]
    });
    // The watcher starts at the agent's next check.
    std::thread::sleep(Duration::from_secs(2));
    let nobody = format!("tcp://{OTHER4}:9");
    let out = env
        .lab
        .cordon(&[
            "isolate",
            "--source",
            "local",
            "--server",
            &nobody,
            "--verify-timeout",
            "2",
            "--state-dir",
            &s(&env.state),
        ])
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        tampered_records(&env),
        0,
        "a rolled-back isolate was reported as tampering"
    );
    let st = local_status(&env);
    assert_eq!(
        (st["state"].as_str(), st["digest_matches"].as_bool()),
        (Some("isolated"), Some(true)),
        "{st}"
    );
    assert_eq!(sorted_sources(&st["claims"]), ["wazuh"]);
    let line = wazuh_ar_via(&env, "release", &wazuh_manager());
    assert_eq!(line["state"], "released", "{line}");
}

/// The endpoint's registry directory (`/run/cordon/net-<inode>`).
fn endpoint_registry(env: &Env) -> PathBuf {
    let out = env
        .lab
        .exec(Host::Endpoint, &["stat", "-L", "-c", "%i", "/proc/self/ns/net"])
        .unwrap();
    let ino: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    cordon_engine::registry_dir(ino)
}

/// Trial9 M-2, two faults of one kind ("a tampered state that outlives its cause"): a
/// deleted `cordon.home` made the agent report a Wazuh quarantine recorded in another
/// state directory as "records lost" (the records exist), and once such a report was
/// made, the server kept `tampered … rules kept` after the rules were gone. Now the
/// registry's known state directories find the records again, and the agent re-reports
/// as soon as rules without a record are gone, so the server's state follows.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_tampered_state_ends_with_its_cause_and_known_records_are_found_again() {
    let env = setup(false, |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let wazuh_dir = env.state.parent().unwrap().join("wazuh-state");
    let registry = endpoint_registry(&env);
    let line = wazuh_ar_in(&env, "isolate", &wazuh_manager(), &wazuh_dir);
    assert_eq!(line["state"], "isolated", "{line}");
    wait_until("the server shows Wazuh's claim", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["wazuh"]
    });
    std::fs::remove_file(registry.join("cordon.home")).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        tampered_records(&env),
        0,
        "records in a known state directory are not lost"
    );
    assert_eq!(local_status(&env)["state"], "isolated");

    // Trial12 N-3: the whole registry gone — the table's comment names Wazuh's state
    // directory, so its records are still found (and the registry rebuilt).
    std::fs::remove_dir_all(&registry).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        tampered_records(&env),
        0,
        "records named by the table in force are not lost"
    );
    assert_eq!(local_status(&env)["state"], "isolated");
    assert!(registry.join("cordon.home").exists(), "the registry is rebuilt");

    // Records really out of reach (Wazuh's directory moved away): reported, kept.
    let moved = wazuh_dir.with_extension("moved");
    std::fs::rename(&wazuh_dir, &moved).unwrap();
    wait_until("tampered reported", Duration::from_secs(10), || {
        tampered_records(&env) >= 1
    });
    wait_until("the server says tampered", Duration::from_secs(10), || {
        env.host()["state"] == "tampered"
    });
    std::fs::rename(&moved, &wazuh_dir).unwrap();
    // Wazuh releases from its own directory: the rules are gone, and so is `tampered`.
    let line = wazuh_ar_in(&env, "release", &wazuh_manager(), &wazuh_dir);
    assert_eq!(line["state"], "released", "{line}");
    let took = wait_until("the server's state follows", Duration::from_secs(10), || {
        env.host()["state"] == "normal"
    });
    eprintln!("tampered ended {took:?} after the rules were gone");
}

/// Trial12 N-1/N-2, case (c): the registry deleted while the agent holds the quarantine
/// (its own table name `corp`, its own state directory). A local isolate under another
/// table name and state directory joins the agent's table (one table, the union); a
/// release by a source with no claim removes nothing and says so; every claim is seen
/// and reported; the registry (the table's home and the agent's paths) is rebuilt.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_deleted_registry_under_an_agent_quarantine_stacks_and_releases_nothing_unseen() {
    let env = setup(false, |c| c.table = cordon_policy::TableName::new("corp").unwrap());
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let closed = closed_dest();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.host()["state"] == "quarantined"
    });
    let registry = endpoint_registry(&env);
    std::fs::remove_dir_all(&registry).unwrap();
    let local_dir = env.state.parent().unwrap().join("local-state");
    let out = env
        .lab
        .cordon(&[
            "isolate",
            "--source",
            "local",
            "--server",
            &wazuh_manager(),
            "--allow",
            "203.0.113.0/24",
            "--table",
            "side",
            "--state-dir",
            &s(&local_dir),
        ])
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let tables = nft_tables(&env);
    assert!(
        tables.contains("inet corp") && !tables.contains("side"),
        "stacked tables: {tables}"
    );
    assert!(
        registry.join("corp.home").exists(),
        "the table's home is registered again"
    );
    wait_until("the agent's paths are registered again", Duration::from_secs(5), || {
        registry.join("agent-paths").exists()
    });

    std::fs::remove_dir_all(&registry).unwrap();
    let out = env
        .lab
        .cordon(&["release", "--source", "wazuh", "--state-dir", &s(&local_dir)])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("holds no claim") && text.contains("nothing was changed"),
        "{text}"
    );
    assert!(!reachable(&env, closed), "nothing was released");
    let st = env
        .lab
        .cordon(&["status", "--json", "--state-dir", &s(&local_dir)])
        .unwrap();
    let st: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["state"], "isolated", "{st}");
    assert_eq!(sorted_sources(&st["claims"]), ["agent", "local"], "{st}");
    wait_until("the server shows both claims", Duration::from_secs(10), || {
        sorted_sources(&env.host()["claims"]) == ["agent", "local"]
    });

    let out = env
        .lab
        .cordon(&["release", "--source", "local", "--state-dir", &s(&local_dir)])
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("released", Duration::from_secs(10), || {
        env.host()["state"] == "normal" && reachable(&env, closed)
    });
}

/// Trial12 M-3 through the server: the agent's quarantine held by `cordon isolate
/// --reapply --watch` (owner flag), and that holder stopped (SIGSTOP). The server's
/// release used to fail until the holder resumed; now the agent stops the unresponsive
/// holder (a cordon process) after the bounded wait, releases, and its report (the
/// host's state reason and the audit record) says so.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_stopped_holder_never_blocks_a_release_through_the_server() {
    assert!(
        cordon_firewall::netlink::kernel_at_least(6, 9),
        "this test needs the nftables owner+persist flags (Linux >= 6.9)"
    );
    let env = setup(false, |_| {});
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    let closed = closed_dest();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(10), || {
        env.host()["state"] == "quarantined"
    });
    let watcher = start_holding_watcher(&env);
    let pid = watcher.id();
    procs.0.push(watcher);
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("released despite the stopped holder", Duration::from_secs(30), || {
        env.host()["state"] == "normal"
    });
    assert!(reachable(&env, closed), "the rules are gone");
    let h = env.host();
    let note = format!("stopped unresponsive holder pid {pid}");
    assert!(h["state_reason"].as_str().unwrap_or_default().contains(&note), "{h}");
    let audit = env.api_json(&["audit", "--host", "endpoint", "--json"]);
    assert!(audit.to_string().contains(&note), "the audit records it: {audit}");
}

/// Trial15 HIGH-4, the fault kind "the server reports a quarantine the union of claims
/// does not deliver": another source's claim with `--allow 0.0.0.0/0
/// --allow-no-isolation` (or a forged claims file) is merged into the agent's quarantine,
/// so every IPv4 destination stays open, yet the server said `quarantined`, revision in
/// force, nothing degraded. The agent keeps that claim (it never drops another source's
/// claim) but reports the server's quarantine as `failed` (`not_isolated`), naming the
/// claim and the network, until the union isolates again.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_union_of_claims_that_isolates_nothing_is_never_reported_quarantined() {
    let env = setup_named("fix14i-h4", |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    let wide_dir = env.state.parent().unwrap().join("wide-state");
    let out = env
        .lab
        .cordon(&[
            "isolate",
            "--source",
            "velociraptor",
            "--allow",
            "0.0.0.0/0",
            "--allow-no-isolation",
            "--server",
            &wazuh_manager(),
            "--state-dir",
            &s(&wide_dir),
        ])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let open4 = closed_dest();
    assert!(reachable(&env, open4), "the claim isolates nothing in IPv4");

    env.quarantine(&[]);
    let mut states: Vec<String> = vec![];
    wait_until(
        "the server says the host is not isolated",
        Duration::from_secs(20),
        || {
            let h = env.host();
            states.push(h["state"].as_str().unwrap_or("?").to_string());
            h["state"] == "failed"
                && h["state_reason"].as_str().is_some_and(|r| {
                    r.contains("NOT ISOLATED") && r.contains("velociraptor") && r.contains("0.0.0.0/0")
                })
        },
    );
    assert!(reachable(&env, open4), "the union still opens IPv4");
    // It stays so through heartbeats, and never reads as in force.
    std::thread::sleep(Duration::from_secs(3));
    let h = env.host();
    states.push(h["state"].as_str().unwrap_or("?").to_string());
    assert_eq!(h["state"], "failed", "{h}");
    assert_eq!(sorted_sources(&h["claims"]), ["agent", "velociraptor"], "{h}");
    assert!(
        !states.iter().any(|s| s == "quarantined"),
        "said quarantined: {states:?}"
    );
    let (code, text, err) = env.api(&["hosts", "show", "endpoint"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("NOT ISOLATED") && !text.contains(", in force)"), "{text}");

    // The widening claim goes: the agent's quarantine isolates, and says so.
    let out = env
        .lab
        .cordon(&["release", "--source", "velociraptor", "--state-dir", &s(&wide_dir)])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("quarantined once the union isolates", Duration::from_secs(15), || {
        env.host()["state"] == "quarantined"
    });
    assert!(!reachable(&env, open4));
    env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
    wait_until("released", Duration::from_secs(10), || {
        env.host()["state"] == "normal" && reachable(&env, open4)
    });
}

/// `cordon ARGS` on the endpoint; panics unless it exits 0.
fn endpoint_ok(env: &Env, args: &[&str]) -> String {
    let out = env.lab.cordon(args).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cordon {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Both of the agent's paths to its server (IPv4 and IPv6) answer from the endpoint.
fn agent_paths_open(env: &Env) -> bool {
    [IpAddr::from(SERVER4), SERVER6.into()]
        .into_iter()
        .all(|ip| reachable(env, SocketAddr::new(ip, SERVER_PORT)))
}

/// Trial15 HIGH-1, the fault kind "the agent's management paths are found only through
/// the /run/cordon registry": after the registry was lost, a join by another source
/// (`isolate --table side --source wazuh`) re-applied the union without the agent's
/// paths, and the agent never put them back — cut off from its server for good. Now (a)
/// the agent copies its paths into the home state directory of the table in force (which
/// the table's comment names), so the join keeps them at once, and (b) an agent that was
/// down during such a join finds its paths missing from the quarantine in force, reports
/// tampering and re-applies the union with them.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn the_agent_paths_survive_a_lost_registry_and_a_join_by_another_source() {
    let env = setup_named("fix14i-h1", |_| {});
    let _procs = Procs(vec![env.start_server()]);
    let mut agents = Procs(vec![env.start_agent()]);
    env.wait_settled();
    let local_dir = env.state.parent().unwrap().join("local-state");
    let side_dir = env.state.parent().unwrap().join("side-state");
    let manager = wazuh_manager();
    endpoint_ok(&env, &["isolate", "--server", &manager, "--state-dir", &s(&local_dir)]);
    assert!(agent_paths_open(&env), "a local claim keeps the agent's paths");
    // The agent checks every 0.5 s: time to copy its paths to the table's home.
    std::thread::sleep(Duration::from_secs(2));
    let registry = endpoint_registry(&env);

    // (a) Registry lost, then another source joins: the agent's paths stay open at once.
    std::fs::remove_dir_all(&registry).unwrap();
    endpoint_ok(
        &env,
        &[
            "isolate",
            "--table",
            "side",
            "--source",
            "wazuh",
            "--server",
            &manager,
            "--state-dir",
            &s(&side_dir),
        ],
    );
    assert!(agent_paths_open(&env), "the join cut the agent off");
    let seen = env.host()["last_seen"].as_str().unwrap().to_string();
    wait_until("the agent keeps reporting", Duration::from_secs(10), || {
        env.host()["last_seen"].as_str() != Some(seen.as_str())
    });

    // (b) The agent is down while the registry and the copy are lost and a source joins:
    // the union goes in without its paths. Back up, the agent repairs that.
    assert!(
        local_dir.join("agent-paths.json").exists(),
        "copied to the table's home"
    );
    for mut a in agents.0.drain(..) {
        let _ = a.kill();
        let _ = a.wait();
    }
    endpoint_ok(&env, &["release", "--source", "wazuh", "--state-dir", &s(&side_dir)]);
    std::fs::remove_dir_all(&registry).unwrap();
    std::fs::remove_file(local_dir.join("agent-paths.json")).unwrap();
    endpoint_ok(
        &env,
        &[
            "isolate",
            "--table",
            "side",
            "--source",
            "wazuh",
            "--server",
            &manager,
            "--state-dir",
            &s(&side_dir),
        ],
    );
    assert!(!agent_paths_open(&env), "the join had no way to know the agent's paths");
    agents.0.push(env.start_agent());
    let took = wait_until("the agent puts its paths back", Duration::from_secs(15), || {
        agent_paths_open(&env)
    });
    eprintln!("paths back {took:?} after the agent started");
    wait_until("the server hears the tampering", Duration::from_secs(10), || {
        tampered_records(&env) >= 1
    });
    assert!(!reachable(&env, closed_dest()), "still quarantined by both claims");
    let st = local_status(&env);
    assert_eq!(sorted_sources(&st["claims"]), ["local", "wazuh"], "{st}");
    endpoint_ok(&env, &["release", "--source", "wazuh", "--state-dir", &s(&side_dir)]);
    endpoint_ok(&env, &["release", "--source", "local", "--state-dir", &s(&local_dir)]);
    wait_until("released", Duration::from_secs(10), || reachable(&env, closed_dest()));
}

/// Trial15 HIGH-2b and LOW-A, trial17 MED-1, the fault kind "the agent's quarantine
/// depends on local records being readable and present": a corrupt `cordon.claims.json`
/// in the agent's own state directory vetoed the server's quarantine (host open, server
/// `failed`), and a deleted (or never written: killed between the state and the claims)
/// claims file turned the agent's claim into a `local` one the server's release could
/// not remove. Now the claims are written with a backup, before the rules; an unreadable
/// file without a readable backup is set aside and the agent's claim applied alone (fail
/// closed), reported degraded naming the file; a lost file is read from its backup.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn unreadable_or_lost_claims_records_never_stop_nor_relabel_the_agents_quarantine() {
    let env = setup_named("fix14i-cl", |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    let closed = closed_dest();
    let claims_file = env.state.join("cordon.claims.json");
    std::fs::write(&claims_file, "{garbage").unwrap();
    assert!(reachable(&env, closed));

    env.quarantine(&[]);
    wait_until(
        "quarantined over a corrupt claims file",
        Duration::from_secs(20),
        || env.host()["state"] == "quarantined",
    );
    assert!(!reachable(&env, closed), "the host is isolated");
    assert!(
        env.state.join("cordon.claims.json.corrupt").exists(),
        "the corrupt file is kept"
    );
    wait_until("the set-aside file is reported", Duration::from_secs(10), || {
        env.host()["degraded"]
            .as_array()
            .is_some_and(|d| d.iter().any(|l| l.as_str().is_some_and(|l| l.contains("set aside"))))
    });
    assert_eq!(sorted_sources(&local_status(&env)["claims"]), ["agent"]);
    // Issue 14 LOW: the set-aside file deleted, the report follows (the `degraded: … set
    // aside …` line stayed: the tamper check compared claims, not record problems).
    std::fs::remove_file(env.state.join("cordon.claims.json.corrupt")).unwrap();
    wait_until(
        "the deleted set-aside file is no longer reported",
        Duration::from_secs(15),
        || {
            let h = env.host();
            h["state"] == "quarantined"
                && !h["degraded"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|l| l.as_str().is_some_and(|l| l.contains("set aside"))))
        },
    );

    // The claims file deleted: still the agent's claim (read from its backup).
    std::fs::remove_file(&claims_file).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let st = local_status(&env);
    assert_eq!(sorted_sources(&st["claims"]), ["agent"], "{st}");
    let h = env.host();
    assert_eq!(h["state"], "quarantined", "{h}");
    assert_eq!(sorted_sources(&h["claims"]), ["agent"], "{h}");

    // The server's release opens the host.
    env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
    wait_until("released", Duration::from_secs(10), || {
        env.host()["state"] == "normal" && reachable(&env, closed)
    });
    assert_eq!(env.endpoint_state(), "released");
}

/// The comment of the endpoint's `inet` table `table`.
fn table_comment(env: &Env, table: &str) -> String {
    let out = env
        .lab
        .exec(Host::Endpoint, &["nft", "list", "table", "inet", table])
        .unwrap();
    // `nft -j` leaves table comments out (nft 1.0.6): read the text listing.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("comment \"")
                .and_then(|c| c.strip_suffix('"'))
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// Trial15 MED-6, the fault kind "a repair that never converges": a quarantine whose
/// state directory cannot be named in the table comment (bare `cordon quarantine`), the
/// registry lost, then a server quarantine: the agent looped "tampering detected;
/// repairing" every few seconds and the server flipped tampered/quarantined. Expected:
/// one apply adopts the table (its comment names the agent's state directory) and the
/// quarantine holds without repairs. (A guard: this lab sequence, the trial's commands,
/// did not loop on main 13ef190 either; see
/// [`a_release_over_rules_nobody_can_attribute_converges_instead_of_failing_forever`] for
/// the loop that did.)
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_table_with_the_bare_comment_is_adopted_once_and_never_repaired_in_a_loop() {
    let env = setup_named("fix14i-m6", |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    let quoted = env.state.parent().unwrap().join("q\"x");
    std::fs::create_dir(&quoted).unwrap();
    endpoint_ok(
        &env,
        &[
            "isolate",
            "--backend",
            "nftables",
            "--server",
            &wazuh_manager(),
            "--state-dir",
            &s(&quoted),
        ],
    );
    // The bare comment: no state directory can be named (the claim holders still are).
    let bare = table_comment(&env, "cordon");
    assert!(
        bare.starts_with("cordon quarantine") && !bare.contains("recorded in"),
        "the bare comment: {bare:?}"
    );
    std::fs::remove_dir_all(endpoint_registry(&env)).unwrap();
    let before = tampered_records(&env);
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(20), || {
        env.host()["state"] == "quarantined"
    });
    std::thread::sleep(Duration::from_secs(10));
    let repairs = tampered_records(&env) - before;
    let h = env.host();
    assert_eq!(h["state"], "quarantined", "{h}");
    assert!(repairs <= 1, "{repairs} tampering repairs in 10 s: {h}");
    let comment = table_comment(&env, "cordon");
    assert!(comment.contains("recorded in"), "the table is adopted: {comment:?}");
    assert!(!reachable(&env, closed_dest()));
}

/// The fault kind of trial15 MED-6 ("the agent retries something that can never
/// succeed, forever"), as this lab showed it: rules whose records are lost are in force
/// (a local quarantine whose state directory was deleted, the registry gone) and the
/// server orders a release while the agent holds no claim. The agent's release refused
/// ("nothing released: … whoever applied them still holds this host"), and the agent
/// retried it every `retry_secs` forever, the server showing `failed`. Now the agent's
/// release is done (it holds nothing), the rules are kept (fail closed) and reported once
/// as `tampered … records lost; rules kept`.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_release_over_rules_nobody_can_attribute_converges_instead_of_failing_forever() {
    let env = setup_named("fix14i-m6r", |_| {});
    let _procs = Procs(vec![env.start_server()]);
    let mut agents = Procs(vec![env.start_agent()]);
    env.wait_settled();
    for mut a in agents.0.drain(..) {
        let _ = a.kill();
        let _ = a.wait();
    }
    let lost = env.state.parent().unwrap().join("lost-state");
    endpoint_ok(
        &env,
        &["isolate", "--server", &wazuh_manager(), "--state-dir", &s(&lost)],
    );
    std::fs::remove_dir_all(&lost).unwrap();
    std::fs::remove_dir_all(endpoint_registry(&env)).unwrap();
    env.quarantine(&[]);
    env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
    agents.0.push(env.start_agent());
    wait_until("the kept rules are reported", Duration::from_secs(15), || {
        let h = env.host();
        h["state"] == "tampered" && h["state_reason"].as_str().is_some_and(|r| r.contains("records lost"))
    });
    std::thread::sleep(Duration::from_secs(3));
    let h = env.host();
    assert_eq!(h["state"], "tampered", "{h}");
    assert_eq!(
        h["applied_revision"], h["desired"]["revision"],
        "the release is done: {h}"
    );
    let failed = env.api_json(&["audit", "--host", "endpoint", "--action", "failed", "--json"]);
    assert_eq!(failed["records"].as_array().map_or(0, Vec::len), 0, "{failed}");
    assert!(
        !reachable(&env, closed_dest()),
        "the rules nobody can attribute are kept"
    );
}

/// Trial15 HIGH-3, the fault kind "two enforcing agents in one network namespace": a
/// re-enrolment into another `--dir` while the old agent ran left two agents sharing the
/// claim `agent`; the host flapped, mostly open, while the server said quarantined. Now
/// the running agent holds the namespace: `agent enroll` into another directory refuses
/// (exit 2, naming the running agent, the token unused), and a second `agent run` refuses
/// (exit 2, naming it) and changes nothing — the quarantine stays in force throughout.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_second_enforcing_agent_in_one_network_namespace_is_refused_naming_the_first() {
    let env = setup(false, |_| {});
    let mut procs = Procs(vec![env.start_server()]);
    let first = env.start_agent();
    let first_pid = first.id();
    procs.0.push(first);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(15), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    let other = SocketAddr::new(OTHER4.into(), OTHER_TCP_PORT);
    assert!(!reachable(&env, other));

    // Re-enrolment into another directory while the agent runs.
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "token",
            "create",
            "--json",
            "--data",
            &s(&env.data),
            "--labels",
            "linux,lab",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir2 = env.state.parent().unwrap().join("agent2");
    let state2 = env.state.parent().unwrap().join("state2");
    let url = format!("https://{SERVER_NAME}:{SERVER_PORT}");
    let out = env
        .lab
        .exec(
            Host::Endpoint,
            &[
                &bin(),
                "agent",
                "enroll",
                "--server",
                &url,
                "--token",
                token["token"].as_str().unwrap(),
                "--ca-fingerprint",
                env.init["ca_fingerprint"].as_str().unwrap(),
                "--dir",
                &s(&dir2),
                "--state-dir",
                &s(&state2),
                "--hostname",
                "endpoint2",
            ],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "enroll beside a running agent: {err}");
    assert!(
        err.contains(&format!("pid {first_pid}")) && err.contains(&s(&env.agent_cfg)) && err.contains("already runs"),
        "{err}"
    );
    assert!(!dir2.join("agent.toml").exists(), "nothing written");
    let (_, hosts, _) = env.api(&["hosts", "list"]);
    assert!(!hosts.contains("endpoint2"), "the server enrolled nothing: {hosts}");

    // A second agent (another state directory) refuses to start, naming the first.
    let out = env
        .lab
        .exec(
            Host::Endpoint,
            &[
                "timeout",
                "20",
                &bin(),
                "agent",
                "run",
                "--config",
                &s(&env.agent_cfg),
                "--state-dir",
                &s(&state2),
            ],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "second agent run: {err}");
    assert!(
        err.contains(&format!("pid {first_pid}")) && err.contains(&s(&env.state)) && err.contains("does not start"),
        "{err}"
    );
    assert_eq!(env.endpoint_state(), "isolated", "nothing changed");
    assert!(!reachable(&env, other), "the host stayed closed");
    assert_eq!(env.host()["state"], "quarantined");

    // Trial17 MED-2: a local `release --source agent` while the agent runs would be undone
    // within a second; it refuses, naming the agent (nothing changed).
    let (code, out, err) = {
        let o = env
            .lab
            .cordon(&["release", "--source", "agent", "--state-dir", &s(&env.state)])
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains(&format!("pid {first_pid}")) && err.contains("stop it first"),
        "{err}"
    );
    assert_eq!(env.endpoint_state(), "isolated", "nothing changed");

    // The first agent gone, its own configuration starts again (the name is free).
    let mut a = procs.0.pop().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();
    procs.0.push(env.start_agent());
    let (code, out, err) = env.api(&["release", "endpoint", "--comment", "e2e", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("released by the restarted agent", Duration::from_secs(15), || {
        env.endpoint_state() == "released" && env.host()["state"] == "normal"
    });
}

/// A tmpfs mounted for one test, unmounted (and its mount point removed) when dropped.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Trial17 HIGH-1, the fault kind "local records that cannot be written stop an ordered
/// quarantine": with the agent's state directory on a full filesystem, every server
/// quarantine was refused and rolled back ("could not be recorded … so it was not kept")
/// and retried every few seconds — the host fully open, the server `failed`. Now the
/// agent keeps the rules in force unrecorded (fail closed), reports `quarantined` with a
/// `degraded` line "not recorded on disk", does not take the missing record for
/// tampering, and records it once the filesystem has room again.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_full_state_directory_never_stops_an_ordered_quarantine() {
    let mnt = std::env::temp_dir().join(format!("fix14i-tfs-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k,mode=0700", "fix14i-tfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs");
    let _tfs = Tmpfs(mnt.clone());
    let state = mnt.join("state");
    let st = state.clone();
    let env = setup_named("fix14i-df", move |c| c.state_dir = st);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    wait_until("the agent settles", Duration::from_secs(15), || {
        let h = env.host();
        h["applied_revision"] == h["desired"]["revision"] && state.join("agent-paths.json").exists()
    });
    let fill = mnt.join("fill");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", fill.display()), "bs=1k", "count=4096"])
        .stderr(std::process::Stdio::null())
        .status();
    let closed = closed_dest();
    assert!(reachable(&env, closed));

    env.quarantine(&[]);
    let not_recorded = |h: &Value| {
        h["degraded"].as_array().is_some_and(|d| {
            d.iter()
                .any(|l| l.as_str().is_some_and(|l| l.contains("not recorded on disk")))
        })
    };
    wait_until("quarantined, not recorded on disk", Duration::from_secs(20), || {
        let h = env.host();
        h["state"] == "quarantined" && not_recorded(&h)
    });
    assert!(!reachable(&env, closed), "the host is isolated");
    std::thread::sleep(Duration::from_secs(3));
    let h = env.host();
    assert_eq!(h["state"], "quarantined", "no tampering, no failure: {h}");
    assert!(!reachable(&env, closed));

    std::fs::remove_file(&fill).unwrap();
    wait_until("recorded once there is room", Duration::from_secs(15), || {
        let h = env.host();
        h["state"] == "quarantined" && !not_recorded(&h) && state.join("cordon.json").exists()
    });
    env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
    wait_until("released", Duration::from_secs(10), || {
        env.host()["state"] == "normal" && reachable(&env, closed)
    });
}

/// Trial20 HIGH-B, the fault kind "Cordon disowns rules it applied": a quarantine applied
/// while its claim could not be written (a full state disk; the agent and `wazuh-ar`
/// keep it in force, fail closed) was afterwards nobody's — the server's release left the
/// host isolated while `hosts show` said `normal`, `release --source wazuh` refused, and
/// only `release --force` opened it. Now the tables' comment carries every claim's holder
/// (`claimed by agent:HOSTID`, written with the rules): the kernel's own record of whose
/// quarantine this is. The agent's release through the server lifts its unrecorded
/// quarantine (disk still full, or just freed), Wazuh's own release lifts Wazuh's, and
/// another source's release still removes nothing of it.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_quarantine_applied_unrecorded_is_never_disowned() {
    let mnt = std::env::temp_dir().join(format!("fix14m-tfs-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k,mode=0700", "fix14m-tfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs");
    let _tfs = Tmpfs(mnt.clone());
    let state = mnt.join("state");
    let wdir = mnt.join("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let st = state.clone();
    let env = setup_named("fix14m-ud", move |c| c.state_dir = st);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    wait_until("the agent settles", Duration::from_secs(15), || {
        let h = env.host();
        h["applied_revision"] == h["desired"]["revision"] && state.join("agent-paths.json").exists()
    });
    let fill = mnt.join("fill");
    let fill_up = || {
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", &format!("of={}", fill.display()), "bs=1k", "count=4096"])
            .stderr(std::process::Stdio::null())
            .status();
    };
    fill_up();
    let closed = closed_dest();
    assert!(reachable(&env, closed));
    let not_recorded = |h: &Value| {
        h["degraded"].as_array().is_some_and(|d| {
            d.iter()
                .any(|l| l.as_str().is_some_and(|l| l.contains("not recorded on disk")))
        })
    };
    let quarantined_unrecorded = || {
        env.quarantine(&[]);
        wait_until("quarantined, not recorded on disk", Duration::from_secs(20), || {
            let h = env.host();
            h["state"] == "quarantined" && not_recorded(&h)
        });
        assert!(!reachable(&env, closed), "the host is isolated");
        assert!(!state.join("cordon.claims.json").exists(), "the claim is not recorded");
    };
    let released = |what: &str| {
        env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
        wait_until(what, Duration::from_secs(15), || {
            env.host()["state"] == "normal" && reachable(&env, closed)
        });
        // And it stays so: the rules are gone, not merely unseen.
        std::thread::sleep(Duration::from_secs(2));
        let h = env.host();
        assert_eq!(h["state"], "normal", "{h}");
        assert!(reachable(&env, closed), "the host is open again");
        assert_eq!(env.endpoint_state(), "released");
    };

    // (a) Released through the server while the disk is still full.
    quarantined_unrecorded();
    released("the unrecorded quarantine released with the disk full");
    // (b) Quarantined on a full disk, room comes back, released at once.
    quarantined_unrecorded();
    std::fs::remove_file(&fill).unwrap();
    released("the unrecorded quarantine released once the disk has room");

    // (c) Wazuh on a full disk: applied unrecorded (fail closed) …
    fill_up();
    let line = wazuh_ar_in(&env, "isolate", &wazuh_manager(), &wdir);
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    assert!(!reachable(&env, closed), "Wazuh's quarantine is in force");
    assert!(
        !wdir.join("cordon.claims.json").exists(),
        "Wazuh's claim is not recorded"
    );
    // Issue 14 LOW: `status` names the holders the kernel's record (the table comment)
    // lists, as the release goes by them (it named nobody). Since fix14q it says the
    // record could not be written (no longer "records lost", `tampered`): updated on
    // purpose.
    let out = env.lab.cordon(&["status", "--json", "--state-dir", &s(&wdir)]).unwrap();
    let st: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        st["reason"]
            .as_str()
            .is_some_and(|r| r.contains("claimed by wazuh") && r.contains("could not be written")),
        "{st}"
    );
    std::fs::remove_file(&fill).unwrap();
    // … another source's release removes nothing of it (never widened) …
    let out = env
        .lab
        .cordon(&["release", "--source", "velociraptor", "--state-dir", &s(&wdir)])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "velociraptor released Wazuh's quarantine: {err}");
    assert!(err.contains("claimed by wazuh"), "the kernel's record is named: {err}");
    assert!(!reachable(&env, closed), "the host stays isolated");
    // … and Wazuh's own release lifts it.
    let text = endpoint_ok(&env, &["release", "--source", "wazuh", "--state-dir", &s(&wdir)]);
    assert!(text.contains("released"), "{text}");
    wait_until("Wazuh's unrecorded quarantine released", Duration::from_secs(5), || {
        reachable(&env, closed)
    });
}

/// Trial20 LOW, the fault kind "a report names claims as they were, not as they are": a
/// revision the agent cannot apply (here the union with Velociraptor's claim would allow
/// every IPv4 destination) is retried without the periodic check, and every `failed`
/// report kept the claims list of the last check — `hosts show` listed another source's
/// claim as it was before it changed. Now each failure report carries the claims in force.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_refused_revision_reports_the_claims_in_force_now() {
    let env = setup_named("fix14m-st", |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    let vdir = env.state.parent().unwrap().join("velo-state");
    let velociraptor = |allow: &[&str]| {
        let mut args = vec!["isolate", "--source", "velociraptor"];
        for a in allow {
            args.extend(["--allow", a]);
        }
        let (m, d) = (wazuh_manager(), s(&vdir));
        args.extend(["--server", &m, "--state-dir", &d]);
        let out = env.lab.cordon(&args).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    velociraptor(&["128.0.0.0/1"]);
    let velo_allow = || -> Vec<String> {
        env.host()["claims"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["source"] == "velociraptor")
            .flat_map(|c| c["allow"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect()
    };
    wait_until("the server shows Velociraptor's claim", Duration::from_secs(10), || {
        velo_allow() == ["128.0.0.0/1"]
    });
    // The agent's share would complete a cover of IPv4: refused, retried.
    env.quarantine(&["--allow", "0.0.0.0/1"]);
    wait_until("the revision refused", Duration::from_secs(15), || {
        env.host()["state"] == "failed"
    });
    // Velociraptor's claim changes while the revision keeps failing.
    velociraptor(&["128.0.0.0/1", "198.51.100.7"]);
    wait_until(
        "the failure reports the claim as it is now",
        Duration::from_secs(10),
        || {
            let h = env.host();
            h["state"] == "failed" && velo_allow().iter().any(|a| a == "198.51.100.7")
        },
    );
}

/// Trial17 HIGH-3, the fault kind "an agent releases a claim it did not make": a host
/// quarantined through the server, its agent stopped and the host enrolled again (new
/// host id, new config and state directory) — the new agent, told `normal` by the server,
/// released the previous enrollment's `agent` claim within seconds: the host fully open
/// while the console still showed the old host quarantined. Now that claim is kept and
/// reported.
///
/// Trial20 HIGH-C, the fault kind "a claim belongs to one enrollment": the new host's
/// quarantine took the previous enrollment's `agent` claim over, so its release lifted
/// the old host's quarantine (the old host still shown quarantined). Now each agent claim
/// names its enrollment's host id: the new quarantine is a claim of its own, its release
/// leaves the previous enrollment's in force, and the new host is shown `normal` but
/// still isolated by a previous enrollment's claim — never `release_pending` (nothing was
/// ordered, trial20 LOW) — with the hint that only the host can release it (so is a local
/// release refused while the agent runs: not "through the Cordon server").
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_re_enrolled_agent_never_releases_the_previous_enrollments_quarantine() {
    let env = setup(false, |_| {});
    let _server = Procs(vec![env.start_server()]);
    let mut first = Procs(vec![env.start_agent()]);
    env.wait_reported();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(15), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    let other = SocketAddr::new(OTHER4.into(), OTHER_TCP_PORT);
    drop(first.0.pop().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));

    let out = std::process::Command::new(bin())
        .args([
            "server",
            "token",
            "create",
            "--json",
            "--data",
            &s(&env.data),
            "--labels",
            "linux,lab",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir2 = env.state.parent().unwrap().join("agent2");
    let state2 = env.state.parent().unwrap().join("state2");
    server_lab::enroll_agent(&env.lab, Path::new(&bin()), &env.init, &token, &dir2, &state2).expect("enrolling again");
    let cfg2 = dir2.join("agent.toml");
    let mut cfg = AgentConfig::load(&cfg2).unwrap();
    quick(&mut cfg);
    let new_id = cfg.host_id.clone();
    cfg.save(&cfg2).unwrap();
    let _second = Procs(vec![server_lab::spawn_agent_env(
        &env.lab,
        Path::new(&bin()),
        &cfg2,
        &[],
    )
    .unwrap()]);
    wait_until("the new agent reports", Duration::from_secs(15), || {
        env.api_json(&["hosts", "show", &new_id, "--json"])["last_seen"].is_string()
    });
    // Several check intervals: the old code had released it by now.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        env.endpoint_state(),
        "isolated",
        "the previous enrollment's quarantine was released"
    );
    assert!(!reachable(&env, other), "the host was opened");

    let show_new = || env.api_json(&["hosts", "show", &new_id, "--json"]);
    let previous_named = |h: &Value| {
        let why = h["state_reason"].as_str().unwrap_or_default();
        why.contains("previous enrollment") && why.contains("release --source agent")
    };
    wait_until(
        "the new host shown isolated by a previous enrollment",
        Duration::from_secs(10),
        || {
            let h = show_new();
            h["state"] == "normal" && previous_named(&h)
        },
    );
    assert_ne!(show_new()["state"], "release_pending", "nothing was ordered");

    // The new host's own quarantine is a claim of its own beside the previous one …
    env.api_json(&["quarantine", &new_id, "--comment", "e2e: new", "--json"]);
    wait_until("the new host quarantined", Duration::from_secs(15), || {
        show_new()["state"] == "quarantined"
    });
    let owners: Vec<String> = local_status(&env)["claims"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "agent")
        .filter_map(|c| c["owner"].as_str().map(str::to_string))
        .collect();
    assert_eq!(owners.len(), 2, "one agent claim per enrollment: {owners:?}");
    assert!(owners.contains(&new_id), "{owners:?}");
    // … so its release leaves the previous enrollment's quarantine in force.
    env.api_json(&["release", &new_id, "--comment", "e2e: new", "--json"]);
    wait_until("the new host released, still isolated", Duration::from_secs(15), || {
        let h = show_new();
        h["state"] == "normal" && previous_named(&h)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        env.endpoint_state(),
        "isolated",
        "the previous enrollment's claim was lifted"
    );
    assert!(!reachable(&env, other), "the host was opened");

    // Only the host can release it: refused while the agent runs, naming the enrollment …
    let state2s = s(&state2);
    let out = env
        .lab
        .cordon(&["release", "--source", "agent", "--state-dir", &state2s])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("previous enrollment") && !err.contains("release the host through the Cordon server"),
        "{err}"
    );
    // … and released once the agent is stopped.
    drop(_second);
    endpoint_ok(&env, &["release", "--source", "agent", "--state-dir", &state2s]);
    wait_until("released on the host", Duration::from_secs(5), || {
        reachable(&env, other)
    });
}

/// Trial12/trial15 LOW (the note had no test): `agent enroll` on a host quarantined
/// locally says so, naming the claim, and what the agent does with it.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn enroll_on_a_locally_quarantined_host_names_the_claims() {
    let env = setup(false, |_| {});
    let _server = Procs(vec![env.start_server()]);
    // The local quarantine keeps the Cordon server reachable (enrollment needs it).
    let cordon_server = format!("tcp://{SERVER_NAME}:{SERVER_PORT}");
    let out = env
        .lab
        .cordon(&["isolate", "--server", &cordon_server, "--state-dir", &s(&env.state)])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "token",
            "create",
            "--json",
            "--data",
            &s(&env.data),
            "--labels",
            "linux,lab",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = format!("https://{SERVER_NAME}:{SERVER_PORT}");
    let dir2 = env.state.parent().unwrap().join("agent2");
    let out = env
        .lab
        .exec(
            Host::Endpoint,
            &[
                &bin(),
                "agent",
                "enroll",
                "--server",
                &url,
                "--token",
                token["token"].as_str().unwrap(),
                "--ca-fingerprint",
                env.init["ca_fingerprint"].as_str().unwrap(),
                "--dir",
                &s(&dir2),
                "--state-dir",
                &s(&env.state),
                "--hostname",
                "endpoint2",
            ],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("already quarantined locally (claims: local)") && err.contains("cordon release --source"),
        "{err}"
    );
}

/// A directory of fake programs that never return (`sleep 60`), for the PATH of a test's
/// process: `wall` stuck on a terminal, `iptables-save` stuck on a lock.
fn hung_programs(dir: &Path, names: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin_dir = dir.join("hungbin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    for name in names {
        let p = bin_dir.join(name);
        std::fs::write(&p, "#!/bin/sh\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin_dir
}

/// Trial17 MED-6, the fault kind: an external program Cordon spawns that never returns
/// wedged the agent — a hung `wall` left a quarantine unconfirmed (`quarantine_pending`
/// for good) and the next release unapplied; a hung `iptables-save` (run 13 times per
/// quarantine and release on the netlink backend) wedged it before it applied anything
/// (host open); a standalone `isolate --message` never exited although in force. Now the
/// message goes out after the rules are in force, off the agent's path, every program has
/// a deadline, and the netlink backend runs no iptables tool.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_hung_external_program_never_wedges_the_agent_or_isolate() {
    let env = setup(false, |_| {});
    let hung = hung_programs(env._tmp.path(), &["wall", "iptables-save", "ip6tables-save"]);
    let path = format!("PATH={}:{}", s(&hung), std::env::var("PATH").unwrap_or_default());
    let log = env._tmp.path().join("agent.log");
    let script = r#"exec env "$3" "$0" agent run --config "$1" 2>"$2""#;
    let agent = env
        .lab
        .spawn(
            Host::Endpoint,
            &["sh", "-c", script, &bin(), &s(&env.agent_cfg), &s(&log), &path],
        )
        .unwrap();
    let _procs = Procs(vec![env.start_server(), agent]);
    env.wait_reported();
    let other = SocketAddr::new(OTHER4.into(), 80);
    env.quarantine(&["--message", "e2e: hung wall"]);
    wait_until(
        "quarantine confirmed despite a hung wall",
        Duration::from_secs(10),
        || env.host()["state"] == "quarantined",
    );
    assert!(!reachable(&env, other));
    env.api_json(&["release", "endpoint", "--comment", "e2e: release", "--json"]);
    wait_until("release applied and confirmed", Duration::from_secs(10), || {
        env.host()["state"] == "normal" && env.endpoint_state() == "released"
    });
    // The refused message is reported, not waited for.
    wait_until("the hung wall is reported", Duration::from_secs(10), || {
        lines_with(&log, "did not finish within 5 s") == 1
    });

    // Standalone, another namespace: `isolate --message` exits once the rules are in
    // force, reporting the hung message program as a warning.
    let sd = s(&env._tmp.path().join("other-state"));
    let url = format!("tcp://{SERVER4}:{SERVER_PORT}");
    let started = Instant::now();
    let out = env
        .lab
        .exec(
            Host::Other,
            &[
                "timeout",
                "30",
                "env",
                &path,
                &bin(),
                "isolate",
                "--server",
                &url,
                "--message",
                "hi",
                "--state-dir",
                &sd,
            ],
        )
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(stderr.contains("did not finish within 5 s"), "{stderr}");
    let out = env
        .lab
        .exec(
            Host::Other,
            &["timeout", "30", "env", &path, &bin(), "release", "--state-dir", &sd],
        )
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The endpoint's hosts file (`/etc/netns/<ns>/hosts`, bind-mounted over /etc/hosts in
/// the endpoint), written in place so a running agent sees it: localhost and
/// [`SERVER_NAME`] at each of `server`.
fn set_endpoint_hosts(env: &Env, server: &[IpAddr]) {
    let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for ip in server {
        text.push_str(&format!("{ip} {SERVER_NAME}\n"));
    }
    let path = PathBuf::from("/etc/netns")
        .join(env.lab.ns(Host::Endpoint))
        .join("hosts");
    std::fs::write(&path, text).unwrap();
}

fn servers_changed(env: &Env) -> Vec<String> {
    let v = env.api_json(&["audit", "--host", "endpoint", "--json"]);
    let records = v["records"]
        .as_array()
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default();
    records
        .iter()
        .filter(|r| r["action"] == "servers_changed")
        .map(|r| r["detail"].as_str().unwrap_or("").to_string())
        .collect()
}

/// trial17 MED-3, the fault kind: whoever controls the server name's resolution on the
/// endpoint (its hosts file, a DNS answer) widened a quarantined host's allow set
/// silently, for good. An address a name resolves to stays allowed only once the agent
/// reached its server there over mutual TLS: a rogue listener at 192.0.2.99:8443 is
/// taken out again at once and reported `degraded` (audited) while the name resolves to
/// it; a real second address of the server is proven and kept (audited
/// `servers_changed`), and dropped at the next refresh once the name no longer resolves
/// to it.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn fix14n_a_dns_answer_never_widens_the_allow_set_without_proof() {
    let env = setup_named("fix14n-dns", |_| {});
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rogue = SocketAddr::new(OTHER4.into(), SERVER_PORT);
    let _echo = cordon_lab::lab::services::start(
        &env.lab.ns(Host::Other),
        cordon_lab::lab::services::Service::TcpEcho,
        rogue,
        stop.clone(),
    )
    .unwrap();
    struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let _stop = Stop(stop);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    assert!(
        reachable(&env, rogue),
        "the rogue listener answers before the quarantine"
    );
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(15), || {
        env.endpoint_state() == "isolated" && env.host()["state"] == "quarantined"
    });
    assert!(!reachable(&env, rogue));

    // The name now also resolves to the rogue address.
    set_endpoint_hosts(&env, &[SERVER4.into(), SERVER6.into(), OTHER4.into()]);
    let line = "server address 192.0.2.99:8443";
    wait_until(
        "the rogue address is refused and reported",
        Duration::from_secs(20),
        || {
            let h = env.host();
            h["state"] == "quarantined" && h["state_reason"].as_str().is_some_and(|r| r.contains(line))
        },
    );
    let reason = env.host()["state_reason"].as_str().unwrap_or("").to_string();
    assert!(
        reason.contains("not allowed") && reason.contains("mutual TLS"),
        "{reason}"
    );
    for _ in 0..10 {
        assert!(
            !reachable(&env, rogue),
            "a DNS answer opened the rogue address: {}",
            env.ruleset()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(!env.ruleset().contains(&OTHER4.to_string()), "{}", env.ruleset());
    let audit = env.api_json(&["audit", "--host", "endpoint", "--json"]).to_string();
    assert!(audit.contains(line), "the refusal is not audited: {audit}");

    // The name stops resolving there: the line goes.
    set_endpoint_hosts(&env, &[SERVER4.into(), SERVER6.into()]);
    wait_until("the refused line cleared", Duration::from_secs(20), || {
        let h = env.host();
        h["state"] == "quarantined" && h["state_reason"].is_null()
    });

    // A real second address of the server: proven over mutual TLS, kept, audited …
    env.lab.host_address(Host::Server, MOVED_SERVER4.into(), true).unwrap();
    set_endpoint_hosts(&env, &[SERVER4.into(), SERVER6.into(), MOVED_SERVER4.into()]);
    wait_until("the proven address is kept", Duration::from_secs(20), || {
        env.ruleset().contains(&MOVED_SERVER4.to_string())
            && servers_changed(&env)
                .iter()
                .any(|d| d.contains("added") && d.contains("192.0.2.2:"))
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(env.ruleset().contains(&MOVED_SERVER4.to_string()), "{}", env.ruleset());
    assert!(env.host()["state_reason"].is_null(), "{}", env.host());
    // … and dropped once the name no longer resolves to it (it is not the one in use).
    set_endpoint_hosts(&env, &[SERVER4.into(), SERVER6.into()]);
    wait_until("the stale address is dropped", Duration::from_secs(20), || {
        !env.ruleset().contains(&MOVED_SERVER4.to_string())
            && servers_changed(&env)
                .iter()
                .any(|d| d.contains("removed") && d.contains("192.0.2.2:"))
    });
    assert_eq!(env.endpoint_state(), "isolated");
    assert!(!reachable(&env, rogue));
}

/// `mkfifo PATH`.
fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo").arg(p).status().unwrap();
    assert!(ok.success(), "mkfifo {}", p.display());
}

/// Whether the host shows `quarantined` with a `degraded` line containing `needle`.
fn quarantined_degraded(env: &Env, needle: &str) -> bool {
    let h = env.host();
    h["state"] == "quarantined"
        && h["degraded"]
            .as_array()
            .is_some_and(|d| d.iter().any(|l| l.as_str().is_some_and(|l| l.contains(needle))))
}

/// Releases through the server and waits for the host to be open again.
fn release_and_wait_open(env: &Env) {
    env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
    wait_until("released", Duration::from_secs(15), || {
        env.host()["state"] == "normal" && reachable(env, closed_dest())
    });
}

/// Trial20 HIGH-A, the fault kind "a local record that is no regular file stops or hangs
/// an ordered quarantine": a FIFO named `cordon.claims.json` (in the agent's own state
/// directory or in any state directory /run/cordon names) wedged the agent in `open()`
/// before it applied — host fully open, `quarantine_pending`, heartbeats fresh; a link to
/// `/dev/zero` as a record was read until memory ran out; a FIFO as `agent-desired.json`
/// hung the agent at start. Now every record is read without following links or waiting
/// on FIFOs, and anything that is no regular file is set aside like a corrupt record: the
/// quarantine goes in within seconds each time. Every wait is bounded (a hang fails the
/// test by timeout).
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn records_that_are_no_regular_files_never_hang_nor_stop_the_agents_quarantine() {
    let env = setup_named("fix14l-rec", |_| {});
    let _server = Procs(vec![env.start_server()]);
    let mut agent = Procs(vec![env.start_agent()]);
    env.wait_settled();
    let closed = closed_dest();
    assert!(reachable(&env, closed));

    // A FIFO as the agent's own claims file.
    let claims = env.state.join("cordon.claims.json");
    mkfifo(&claims);
    env.quarantine(&[]);
    wait_until("quarantined over a FIFO claims file", Duration::from_secs(20), || {
        quarantined_degraded(&env, "set aside")
    });
    assert!(!reachable(&env, closed), "the host is isolated");
    let aside = env.state.join("cordon.claims.json.corrupt");
    assert!(
        std::fs::symlink_metadata(&aside).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        }),
        "the FIFO is kept aside"
    );
    release_and_wait_open(&env);
    std::fs::remove_file(&aside).unwrap();

    // A link to /dev/zero as the state file.
    let state_file = env.state.join("cordon.json");
    let _ = std::fs::remove_file(&state_file);
    std::os::unix::fs::symlink("/dev/zero", &state_file).unwrap();
    env.quarantine(&[]);
    wait_until(
        "quarantined over a /dev/zero state file",
        Duration::from_secs(20),
        || env.host()["state"] == "quarantined",
    );
    assert!(!reachable(&env, closed), "the host is isolated");
    assert!(
        std::fs::symlink_metadata(env.state.join("cordon.json.corrupt")).is_ok_and(|m| m.file_type().is_symlink()),
        "the link is kept aside"
    );
    assert!(
        std::fs::symlink_metadata(&state_file).unwrap().is_file(),
        "recorded again"
    );
    release_and_wait_open(&env);

    // A FIFO in another state directory the registry names (left by a released isolate).
    let other = env.state.parent().unwrap().join("other-state");
    let manager = wazuh_manager();
    endpoint_ok(&env, &["isolate", "--server", &manager, "--state-dir", &s(&other)]);
    endpoint_ok(&env, &["release", "--state-dir", &s(&other)]);
    wait_until("open again", Duration::from_secs(10), || reachable(&env, closed));
    mkfifo(&other.join("cordon.claims.json"));
    env.quarantine(&[]);
    wait_until(
        "quarantined with a FIFO in another registered state directory",
        Duration::from_secs(20),
        || env.host()["state"] == "quarantined",
    );
    assert!(!reachable(&env, closed), "the host is isolated");
    release_and_wait_open(&env);

    // A FIFO as the agent's desired state at start: set aside, the agent comes up.
    for mut a in agent.0.drain(..) {
        let _ = a.kill();
        let _ = a.wait();
    }
    let desired = env.state.join("agent-desired.json");
    std::fs::remove_file(&desired).unwrap();
    mkfifo(&desired);
    agent.0.push(env.start_agent());
    let seen = env.host()["last_seen"].as_str().unwrap_or_default().to_string();
    wait_until("the restarted agent reports", Duration::from_secs(15), || {
        env.host()["last_seen"].as_str().is_some_and(|t| t != seen)
    });
    env.quarantine(&[]);
    wait_until(
        "quarantined after a FIFO desired state",
        Duration::from_secs(20),
        || env.host()["state"] == "quarantined",
    );
    assert!(!reachable(&env, closed), "the host is isolated");
    assert!(env.state.join("agent-desired.json.corrupt").exists(), "kept aside");
    assert!(std::fs::symlink_metadata(&desired).unwrap().is_file(), "written again");
    release_and_wait_open(&env);
}

/// Trial20 MED (trial17 HIGH-1 variant), the fault kind "local records that cannot be
/// written stop an ordered quarantine": with the agent's state directory on a file system
/// remounted read-only, `.claims.lock` could not be opened (EROFS) and the server's
/// quarantine `failed` — host open. Now the agent applies anyway (the lock is opened
/// read-only, or done without), reports `quarantined` with `degraded: not recorded on
/// disk (… Read-only file system …)`, never flaps, and records it once the file system is
/// writable again. The read-only mount is a tmpfs this test mounts (and remounts) itself.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_read_only_state_directory_never_stops_an_ordered_quarantine() {
    let mnt = std::env::temp_dir().join(format!("fix14l-ro-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "fix14l-ro"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs");
    let _tfs = Tmpfs(mnt.clone());
    let state = mnt.join("state");
    let st = state.clone();
    let env = setup_named("fix14l-ro", move |c| c.state_dir = st);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    wait_until("the agent settles", Duration::from_secs(15), || {
        let h = env.host();
        h["applied_revision"] == h["desired"]["revision"] && state.join("agent-paths.json").exists()
    });
    let remount = |opt: &str| {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(ok.success(), "remount {opt} {}", mnt.display());
    };
    let closed = closed_dest();
    assert!(reachable(&env, closed));
    remount("ro");

    env.quarantine(&[]);
    wait_until(
        "quarantined on a read-only state directory, not recorded",
        Duration::from_secs(20),
        || quarantined_degraded(&env, "not recorded on disk"),
    );
    assert!(!reachable(&env, closed), "the host is isolated");
    let h = env.host();
    assert!(
        h.to_string().contains("Read-only file system"),
        "the cause is named: {h}"
    );
    // No flapping: closed and quarantined on every look for 3 s.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(!reachable(&env, closed), "the host opened again");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(env.host()["state"], "quarantined");

    remount("rw");
    wait_until("recorded once writable", Duration::from_secs(15), || {
        let h = env.host();
        h["state"] == "quarantined" && !quarantined_degraded(&env, "not recorded") && state.join("cordon.json").exists()
    });
    release_and_wait_open(&env);
}

/// A `flock(1)` holding a lock, with its `sleep` child; both killed when dropped (the
/// process group: killing flock alone left the sleep running with the test's stdout).
struct LockHolder(Child);
impl LockHolder {
    fn id(&self) -> u32 {
        self.0.id()
    }
}
impl Drop for LockHolder {
    fn drop(&mut self) {
        // SAFETY: signals the process group this test created for the holder.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Holds `lock` exclusively with `flock(1)` run from `exe` (the system's flock, or a copy
/// of it named like Cordon's binaries) until dropped; returns once the lock is taken.
fn hold_lock(exe: &Path, lock: &Path) -> LockHolder {
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(exe)
        .args(["-x", "-o"])
        .arg(lock)
        .args(["sleep", "300"])
        .process_group(0)
        .spawn()
        .unwrap();
    let holder = LockHolder(child);
    wait_until("the foreign process holds the lock", Duration::from_secs(10), || {
        let free = std::process::Command::new("flock")
            .args(["-n", "-x"])
            .arg(lock)
            .arg("true")
            .status()
            .unwrap();
        !free.success()
    });
    holder
}

/// Issue 14 HIGH-E and item 2, the fault kind "a process that is not Cordon holding a lock
/// of the agent's keeps a server-ordered quarantine out": `flock STATE/.lock sleep 1000`
/// (or any process holding `.lock`, `.claims.lock` or the namespace registry's lock) left
/// the host open behind a normal-looking `quarantine_pending` as long as it lived; a copy
/// of a foreign program named `cordon-…` was taken for Cordon by its name and vetoed too.
/// Now the quarantine is in force within the lock timeout and a few seconds, reported
/// `degraded` naming the holder (pid and executable), whichever lock it holds and
/// whatever it is named; tampering while such a process holds `.lock` is repaired.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_foreign_lock_holder_never_keeps_an_ordered_quarantine_out() {
    let env = setup_named("f14o-lk", |c| c.lock_timeout_secs = 2.0);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    let closed = closed_dest();
    assert!(reachable(&env, closed));
    let flock = PathBuf::from("/usr/bin/flock");
    let named = env.state.parent().unwrap().join("bin").join("cordon-helper");
    std::fs::create_dir_all(named.parent().unwrap()).unwrap();
    std::fs::copy(&flock, &named).unwrap();
    let registry = endpoint_registry(&env);
    std::fs::create_dir_all(&registry).unwrap();
    let cases = [
        (env.state.join(".lock"), &flock),
        (env.state.join(".lock"), &named),
        (env.state.join(".claims.lock"), &named),
        (registry.join(".lock"), &named),
    ];
    for (lock, exe) in cases {
        let holder = hold_lock(exe, &lock);
        let pid = holder.id();
        let what = format!("{} held by {} (pid {pid})", lock.display(), exe.display());
        env.quarantine(&[]);
        let took = wait_until(&format!("quarantined with {what}"), Duration::from_secs(20), || {
            quarantined_degraded(&env, &format!("pid {pid}"))
        });
        assert!(!reachable(&env, closed), "the host is isolated ({what})");
        let h = env.host();
        assert!(
            h["degraded"].to_string().contains(&exe.display().to_string()),
            "the holder's executable is named ({what}): {h}"
        );
        eprintln!("{what}: quarantined in {took:?}");
        if lock.ends_with("state/.lock") {
            // A repair is an ordered quarantine too: tables deleted while the foreign
            // process still holds the lock are put back.
            delete_tables(&env);
            wait_until(&format!("repaired with {what}"), Duration::from_secs(20), || {
                env.ruleset().contains("cordon") && !reachable(&env, closed)
            });
        }
        drop(holder);
        release_and_wait_open(&env);
    }
}

/// The server's addresses (`SERVER4`, `SERVER6`) the endpoint's ruleset allows now.
fn server_addresses_allowed(env: &Env) -> Vec<String> {
    let rs = env.ruleset();
    // The address itself, not a longer one it begins (192.0.2.1 in 192.0.2.10).
    let whole = |a: &str| {
        let addr_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
        rs.match_indices(a)
            .any(|(i, _)| !rs[..i].ends_with(addr_char) && !rs[i + a.len()..].starts_with(addr_char))
    };
    [SERVER4.to_string(), SERVER6.to_string()]
        .into_iter()
        .filter(|a| whole(a))
        .collect()
}

/// Issue 14 item 3, the fault kind "a server outage strands the agent": the agent proves
/// each address a DNS answer gives for its server with a mutual-TLS request before
/// keeping it allowed, and during a server outage that proof failed for the genuine
/// addresses too — they were taken out of the rules ("a DNS answer for the server is not
/// the server: address not allowed 192.0.2.1:8443") and tried again only after
/// `verify_timeout_secs`. Now nothing answering at all (refused, timed out) is an outage,
/// not an impostor: the addresses stay in the kernel's rules throughout an outage longer
/// than `verify_timeout_secs` — for a running agent and for one restarted while the
/// server is down — and the agent is back in sync within seconds of the server's return.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_server_outage_never_takes_the_servers_addresses_out_of_the_rules() {
    let env = setup_named("f14o-out", |_| {});
    let mut server = Procs(vec![env.start_server()]);
    let mut agent = Procs(vec![env.start_agent()]);
    env.wait_settled();
    env.quarantine(&[]);
    wait_until("quarantined", Duration::from_secs(20), || {
        env.host()["state"] == "quarantined"
    });
    let closed = closed_dest();
    assert!(!reachable(&env, closed), "the host is isolated");
    let genuine = server_addresses_allowed(&env);
    assert!(
        !genuine.is_empty(),
        "the server's addresses are allowed: {}",
        env.ruleset()
    );

    for restart_agent in [false, true] {
        let seen = env.host()["last_seen"].as_str().unwrap_or_default().to_string();
        drop(std::mem::replace(&mut server, Procs(vec![])));
        if restart_agent {
            // Restarted while the server is down: nothing is proven yet.
            drop(std::mem::replace(&mut agent, Procs(vec![])));
            agent = Procs(vec![env.start_agent()]);
        }
        // Longer than verify_timeout_secs (3 s in these tests) and the retries after it.
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            assert_eq!(
                server_addresses_allowed(&env),
                genuine,
                "the server's addresses left the rules during the outage (agent restarted: {restart_agent})"
            );
            assert!(!reachable(&env, closed), "the host opened during the outage");
            std::thread::sleep(Duration::from_millis(300));
        }
        server = Procs(vec![env.start_server()]);
        let took = wait_until(
            &format!("back in sync after the outage (agent restarted: {restart_agent})"),
            Duration::from_secs(20),
            || {
                let h = env.host();
                h["state"] == "quarantined"
                    && h["last_seen"].as_str().is_some_and(|t| t != seen)
                    && !h["degraded"].to_string().contains("not allowed")
            },
        );
        eprintln!("back in sync {took:?} after the server's return (agent restarted: {restart_agent})");
        assert_eq!(server_addresses_allowed(&env), genuine);
    }
    release_and_wait_open(&env);
}

/// A tmpfs of `size` mounted for one test under the temp dir, named `name`.
fn f14q_tmpfs(name: &str, size: &str) -> Tmpfs {
    let mnt = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), name])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs");
    Tmpfs(mnt)
}

/// Fills the filesystem holding `file` (a few MiB at most: the test's own tmpfs).
fn f14q_fill(file: &Path) {
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", file.display()), "bs=1k", "count=4096"])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Issue 14 MED-4 (trial15), the fault kind "an apply overwrites the kernel's list of
/// holders": `wazuh-ar isolate` on a full state disk is applied unrecorded, the tables'
/// comment alone saying `claimed by wazuh`; once the disk had room, the agent's
/// quarantine rewrote the comment to `claimed by agent:ID`, and the server's release
/// opened the host though Wazuh never released. Now the kernel's holders are merged into
/// the records: the server shows Wazuh's claim, its release keeps the host isolated and
/// says by whom, and Wazuh's own release opens it.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_holder_only_the_kernel_names_keeps_its_quarantine() {
    let tfs = f14q_tmpfs("f14q-tfs", "512k");
    let state = tfs.0.join("state");
    let wdir = tfs.0.join("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let st = state.clone();
    let env = setup_named("f14q-kh", move |c| c.state_dir = st);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    wait_until("the agent settles", Duration::from_secs(15), || {
        let h = env.host();
        h["applied_revision"] == h["desired"]["revision"] && state.join("agent-paths.json").exists()
    });
    let closed = closed_dest();
    assert!(reachable(&env, closed));
    let fill = tfs.0.join("fill");
    f14q_fill(&fill);
    let line = wazuh_ar_in(&env, "isolate", &wazuh_manager(), &wdir);
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    assert!(!reachable(&env, closed), "Wazuh's quarantine is in force");
    assert!(
        !wdir.join("cordon.claims.json").exists(),
        "Wazuh's claim is not recorded"
    );
    std::fs::remove_file(&fill).unwrap();

    env.quarantine(&[]);
    let sources = || sorted_sources(&env.host()["claims"]);
    wait_until("quarantined by the server", Duration::from_secs(20), || {
        env.host()["state"] == "quarantined"
    });
    env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
    wait_until("the server's release confirmed", Duration::from_secs(15), || {
        env.host()["state"] == "normal"
    });
    std::thread::sleep(Duration::from_secs(2));
    let h = env.host();
    assert!(
        !reachable(&env, closed),
        "Wazuh never released: the host stays isolated ({h})"
    );
    assert_eq!(sources(), ["wazuh"], "{h}");
    assert!(
        h["state_reason"].to_string().contains("wazuh")
            || h.to_string().contains("still isolated by other claims: wazuh"),
        "the server says who keeps it isolated: {h}"
    );
    // And Wazuh's own release opens it.
    let line = wazuh_ar_in(&env, "release", &wazuh_manager(), &wdir);
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    wait_until("Wazuh's release opens the host", Duration::from_secs(10), || {
        reachable(&env, closed)
    });
}

/// Issue 14 LOW, the fault kind "a record that could not be written is called tampering":
/// `wazuh-ar isolate` on a full state disk keeps its quarantine unrecorded (fail closed),
/// and the endpoint's `status` said `tampered` ("quarantine records lost"), the agent
/// reported `tampered` to the server and the audit held a `tampered` record — though the
/// rules in force were exactly those applied and nobody touched anything. Now `status`
/// says `isolated`, that the record could not be written and why (no space left), and
/// whose claim it is; the agent reports Wazuh's claim as what keeps the host isolated.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_record_that_could_not_be_written_is_not_tampering() {
    let tfs = f14q_tmpfs("f14q-tfs2", "512k");
    let state = tfs.0.join("state");
    let wdir = tfs.0.join("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let st = state.clone();
    let env = setup_named("f14q-nw", move |c| c.state_dir = st);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    wait_until("the agent settles", Duration::from_secs(15), || {
        let h = env.host();
        h["applied_revision"] == h["desired"]["revision"] && state.join("agent-paths.json").exists()
    });
    let closed = closed_dest();
    let fill = tfs.0.join("fill");
    f14q_fill(&fill);
    let line = wazuh_ar_in(&env, "isolate", &wazuh_manager(), &wdir);
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    assert!(!reachable(&env, closed), "Wazuh's quarantine is in force");
    assert!(!wdir.join("cordon.json").exists(), "not recorded");

    for dir in [&wdir, &state] {
        let out = env.lab.cordon(&["status", "--json", "--state-dir", &s(dir)]).unwrap();
        let st: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(st["state"], "isolated", "status in {}: {st}", dir.display());
        let reason = st["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("the record could not be written") && reason.contains("No space left on device"),
            "{reason}"
        );
        assert!(reason.contains("claimed by wazuh"), "{reason}");
        assert!(
            st["claims"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["source"] == "wazuh" && c["from_kernel"] == true)),
            "{st}"
        );
    }
    let text = endpoint_ok(&env, &["status", "--state-dir", &s(&wdir)]);
    assert!(text.starts_with("isolated"), "{text}");
    wait_until(
        "the server hears Wazuh's claim keeps the host isolated",
        Duration::from_secs(10),
        || {
            let h = env.host();
            h["state"] == "normal"
                && h["state_reason"]
                    .to_string()
                    .contains("still isolated by other claims: wazuh")
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(tampered_records(&env), 0, "a full disk is no tampering");
    assert!(!reachable(&env, closed), "kept in force");
    // Room again: Wazuh's release lifts it.
    std::fs::remove_file(&fill).unwrap();
    let line = wazuh_ar_in(&env, "release", &wazuh_manager(), &wdir);
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    wait_until("released", Duration::from_secs(10), || reachable(&env, closed));
}

/// Issue 14 MED-4 through the tamper watcher: with the agent's quarantine recorded, the
/// state disk full and `wazuh-ar isolate` joining it (applied, not recorded: the comment
/// says `claimed by agent:ID,wazuh`), the kernel no longer matched the record and the
/// agent's watcher put the recorded (agent-only) rules back — Wazuh's claim gone from
/// the kernel too — so the server's release opened a host Wazuh never released. A newer
/// apply that could not be recorded is no tampering: it stays, and so does Wazuh's claim.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn an_unrecorded_join_is_never_repaired_away() {
    let tfs = f14q_tmpfs("f14q-tfs3", "512k");
    let state = tfs.0.join("state");
    let wdir = tfs.0.join("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let st = state.clone();
    let env = setup_named("f14q-wr", move |c| c.state_dir = st);
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    wait_until("the agent settles", Duration::from_secs(15), || {
        let h = env.host();
        h["applied_revision"] == h["desired"]["revision"] && state.join("agent-paths.json").exists()
    });
    let closed = closed_dest();
    env.quarantine(&[]);
    wait_until("quarantined, recorded", Duration::from_secs(20), || {
        env.host()["state"] == "quarantined" && state.join("cordon.json").exists()
    });
    let fill = tfs.0.join("fill");
    f14q_fill(&fill);
    let line = wazuh_ar_in(&env, "isolate", &wazuh_manager(), &wdir);
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    // The table's comment: the kernel's record of whose quarantine is in force.
    let comment = || {
        let out = env
            .lab
            .exec(Host::Endpoint, &["nft", "list", "table", "inet", "cordon"])
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter(|l| l.contains("comment"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(comment().contains("wazuh"), "{}", comment());
    // Longer than the watcher takes to repair (it reacts to kernel events at once).
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        comment().contains("wazuh"),
        "Wazuh's join was repaired away: {}",
        comment()
    );
    std::fs::remove_file(&fill).unwrap();
    env.api_json(&["release", "endpoint", "--comment", "e2e", "--json"]);
    wait_until("the server's release confirmed", Duration::from_secs(15), || {
        env.host()["state"] == "normal"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !reachable(&env, closed),
        "Wazuh never released: the host stays isolated ({})",
        env.host()
    );
    let line = wazuh_ar_in(&env, "release", &wazuh_manager(), &wdir);
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    wait_until("Wazuh's release opens the host", Duration::from_secs(10), || {
        reachable(&env, closed)
    });
}

/// Fix14q's fresh look (issue 14, as a SOC runs it): a quarantine with an expiry, through
/// the real server and an enforcing agent. At expiry the server releases and the host
/// opens; with Wazuh's claim standing, the expiry lifts only the server's quarantine and
/// the server says what keeps the host isolated — never `normal` over an open host nor an
/// open host under `quarantined`.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn an_expired_quarantine_is_lifted_and_another_holder_keeps_the_host_isolated() {
    let env = setup_named("f14q-ex", |_| {});
    let _procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_settled();
    let closed = closed_dest();
    assert!(reachable(&env, closed));

    env.quarantine(&["--expires", "6s"]);
    wait_until("quarantined", Duration::from_secs(15), || {
        env.host()["state"] == "quarantined"
    });
    assert!(!reachable(&env, closed), "isolated until the expiry");
    wait_until("expired: released and open", Duration::from_secs(30), || {
        env.host()["state"] == "normal" && reachable(&env, closed)
    });

    let line = wazuh_ar(&env, "isolate");
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    env.quarantine(&["--expires", "6s"]);
    wait_until("quarantined with Wazuh's claim", Duration::from_secs(15), || {
        let h = env.host();
        h["state"] == "quarantined" && sorted_sources(&h["claims"]) == ["agent", "wazuh"]
    });
    wait_until(
        "expired: the server's quarantine lifted, Wazuh's kept",
        Duration::from_secs(30),
        || {
            let h = env.host();
            h["state"] == "normal"
                && h["state_reason"]
                    .to_string()
                    .contains("still isolated by other claims: wazuh")
        },
    );
    assert!(!reachable(&env, closed), "Wazuh's claim keeps the host isolated");
    let line = wazuh_ar(&env, "release");
    assert_eq!(line["result"].as_str(), Some("ok"), "{line}");
    wait_until("Wazuh's release opens the host", Duration::from_secs(10), || {
        reachable(&env, closed)
    });
}

/// Issue 14, full disk and restart (fix14q's fresh look): a new revision (another
/// exception) applied while the state disk is full is in force but not recorded; the
/// agent restarted then found the kernel differing from the (older) record, reported
/// `tampered` and put the older rules back before applying the new ones again. A newer
/// apply the registry on /run remembers as unrecorded is no tampering: nothing is put back.
#[test]
#[ignore = "needs root: network namespaces (scripts/test runs it)"]
fn a_restart_over_an_unrecorded_revision_is_not_tampering() {
    let tfs = f14q_tmpfs("f14q-tfs4", "512k");
    let state = tfs.0.join("state");
    let st = state.clone();
    let env = setup_named("f14q-rs", move |c| c.state_dir = st);
    let mut procs = Procs(vec![env.start_server(), env.start_agent()]);
    env.wait_reported();
    wait_until("the agent settles", Duration::from_secs(15), || {
        let h = env.host();
        h["applied_revision"] == h["desired"]["revision"] && state.join("agent-paths.json").exists()
    });
    env.quarantine(&[]);
    wait_until("quarantined, recorded", Duration::from_secs(20), || {
        env.host()["state"] == "quarantined" && state.join("cordon.json").exists()
    });
    f14q_fill(&tfs.0.join("fill"));
    env.quarantine(&["--replace", "--allow", "198.51.100.7"]);
    wait_until(
        "the new revision in force, not recorded",
        Duration::from_secs(20),
        || {
            let h = env.host();
            h["state"] == "quarantined"
                && h["applied_revision"] == h["desired"]["revision"]
                && h["degraded"].to_string().contains("not recorded on disk")
        },
    );
    assert!(env.ruleset().contains("198.51.100.7"), "{}", env.ruleset());
    let before = tampered_records(&env);
    let mut agent = procs.0.pop().unwrap();
    agent.kill().unwrap();
    agent.wait().unwrap();
    procs.0.push(env.start_agent());
    // The new exception never leaves the kernel while the agent starts.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert!(env.ruleset().contains("198.51.100.7"), "the older record was put back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        tampered_records(&env),
        before,
        "a restart over an unrecorded revision is no tampering"
    );
    assert_eq!(env.host()["state"], "quarantined");
}

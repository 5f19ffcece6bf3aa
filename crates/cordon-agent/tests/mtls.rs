//! Real TLS on 127.0.0.1: enrollment, mutual-TLS sync with an in-memory firewall (this
//! test never touches the machine's firewall), tamper repair, server outage, agent
//! restart without the server, revocation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_agent::enroll::{enroll, EnrollOptions};
use cordon_agent::{Agent, MemoryEnforcer};
use cordon_server::run::{self, RunConfig, Running};
use serde_json::{json, Value};

struct Server {
    dir: tempfile::TempDir,
    cfg: RunConfig,
    admin: String,
    fingerprint: String,
}

impl Server {
    async fn new() -> (Server, Running) {
        let dir = tempfile::tempdir().unwrap();
        let db = run::db_url(dir.path(), None);
        let init = run::init(dir.path(), &db, &["localhost".into()], &["127.0.0.1".parse().unwrap()])
            .await
            .unwrap();
        let cfg = RunConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            db,
            data_dir: dir.path().to_path_buf(),
            expiry_every: Duration::from_millis(200),
            max_wait: Duration::from_secs(25),
        };
        let running = run::start(&cfg).await.unwrap();
        let mut cfg = cfg;
        cfg.listen = running.addr;
        (
            Server {
                dir,
                cfg,
                admin: init.admin.token,
                fingerprint: init.ca_fingerprint,
            },
            running,
        )
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.cfg.listen.port())
    }

    fn api(&self) -> reqwest::Client {
        let ca = std::fs::read(self.dir.path().join("ca.pem")).unwrap();
        cordon_client::http_client(
            cordon_client::tls::server_auth_only(&ca).unwrap(),
            Some(Duration::from_secs(10)),
        )
        .unwrap()
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .api()
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

async fn host_state(s: &Server, id: &str) -> String {
    let (_, v) = s.call(reqwest::Method::GET, &format!("/v1/hosts/{id}"), None).await;
    v["state"].as_str().unwrap_or("?").to_string()
}

async fn wait_state(s: &Server, id: &str, want: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let st = host_state(s, id).await;
        if st == want {
            return;
        }
        assert!(start.elapsed() < limit, "host state {st}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_sync_tamper_outage_restart_revoke() {
    let (s, running) = Server::new().await;
    let token = running
        .state
        .store
        .create_enroll_token("t", &["linux".into()], 3600)
        .await
        .unwrap()
        .token;
    let agent_dir = tempfile::tempdir().unwrap();

    // A wrong pinned fingerprint refuses to enroll (and does not use up the token).
    let bad = EnrollOptions {
        server: s.url(),
        token: token.clone(),
        ca_fingerprint: Some("00".repeat(32)),
        dir: agent_dir.path().to_path_buf(),
        hostname: "endpoint".into(),
        proxy: None,
    };
    let err = enroll(&bad).await.unwrap_err().to_string();
    assert!(err.contains("fingerprint mismatch"), "{err}");

    let opts = EnrollOptions {
        ca_fingerprint: Some(s.fingerprint.clone()),
        ..bad
    };
    let enrolled = enroll(&opts).await.unwrap();
    let host_id = enrolled.config.host_id.clone();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&enrolled.config.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The token is one-time.
    let again = enroll(&EnrollOptions {
        dir: agent_dir.path().join("x"),
        ..opts.clone()
    })
    .await;
    assert!(again.is_err());

    let mut cfg = enrolled.config.clone();
    cfg.state_dir = agent_dir.path().join("state");
    // The in-memory firewall stands in for an enforcing one (`enforce = false`, or its
    // own backend name `memory`, would be reported, and shown, as not enforcing).
    cfg.enforce = true;
    cfg.check_interval_secs = 0.2;
    cfg.heartbeat_secs = 0.5;
    let fw = Arc::new(MemoryEnforcer::new().reporting_backend(cordon_proto::Backend::Nftables));
    let tls = cordon_client::tls::mutual_from_files(&cfg.ca, &cfg.cert, &cfg.key).unwrap();
    let agent = Agent::new(cfg.clone(), fw.clone(), tls).unwrap();
    let agent_task = tokio::spawn(agent.run());
    wait_state(&s, &host_id, "normal", Duration::from_secs(5)).await;

    // Quarantine through the API: enforced well under a second after the call returns.
    let (st, v) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/hosts/{host_id}/quarantine"),
            Some(json!({"comment": "IR-7"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let took = wait_for("quarantine", Duration::from_secs(1), || fw.is_isolated()).await;
    eprintln!("API call returned -> enforced: {took:?}");
    wait_state(&s, &host_id, "quarantined", Duration::from_secs(3)).await;

    // Tampering: repaired within 2 s and audited.
    let applies = fw.applies();
    fw.tamper();
    wait_for("repair", Duration::from_secs(2), || {
        fw.is_isolated() && fw.applies() > applies
    })
    .await;
    let start = Instant::now();
    loop {
        let (_, a) = s
            .call(
                reqwest::Method::GET,
                &format!("/v1/audit?host={host_id}&action=tampered"),
                None,
            )
            .await;
        if !a["records"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "no tampered audit record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_state(&s, &host_id, "quarantined", Duration::from_secs(3)).await;

    // Server down: the host stays quarantined.
    running.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fw.is_isolated(), "released while the server was away");

    // Agent restart ("reboot": rules gone) without the server: re-applied from disk.
    agent_task.abort();
    let _ = agent_task.await;
    let fw2 = Arc::new(MemoryEnforcer::new().reporting_backend(cordon_proto::Backend::Nftables));
    let tls = cordon_client::tls::mutual_from_files(&cfg.ca, &cfg.cert, &cfg.key).unwrap();
    let agent_task = tokio::spawn(Agent::new(cfg.clone(), fw2.clone(), tls).unwrap().run());
    wait_for("re-apply at start without server", Duration::from_secs(2), || {
        fw2.is_isolated()
    })
    .await;

    // Server back on the same address: the agent reports again, release works.
    let running = run::start(&s.cfg).await.unwrap();
    assert_eq!(running.addr, s.cfg.listen);
    wait_state(&s, &host_id, "quarantined", Duration::from_secs(10)).await;
    let (st, _) = s
        .call(
            reqwest::Method::POST,
            "/v1/release",
            Some(json!({"hosts": [host_id], "comment": "all clear"})),
        )
        .await;
    assert_eq!(st, 200);
    wait_for("release", Duration::from_secs(3), || !fw2.is_isolated()).await;
    wait_state(&s, &host_id, "normal", Duration::from_secs(3)).await;

    // Revocation: the agent's certificate is refused at once.
    let (st, _) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/hosts/{host_id}/revoke"),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 200);
    let mtls = cordon_agent::client::ServerClient::new(
        &s.url(),
        cordon_client::tls::mutual_from_files(&cfg.ca, &cfg.cert, &cfg.key).unwrap(),
    )
    .unwrap();
    let err = mtls.desired(None, 1).await.unwrap_err();
    assert_eq!(err.status, Some(403), "{err}");

    // No client certificate: 401 on agent endpoints.
    let resp = s
        .api()
        .get(format!("{}/v1/agent/desired", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    agent_task.abort();
    running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_rejected_in_the_handshake() {
    let (s, running) = Server::new().await;
    // Another CA and a client certificate from it, naming a real host id.
    let other = tempfile::tempdir().unwrap();
    cordon_server::pki::init(other.path(), &["evil".into()], &[]).unwrap();
    let other_ca = cordon_server::pki::Ca::load(other.path()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let cert = other_ca.sign_client(&csr, "some-host").unwrap();
    let ca = std::fs::read(s.dir.path().join("ca.pem")).unwrap();
    let tls = cordon_client::tls::mutual(&ca, cert.as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let client = cordon_agent::client::ServerClient::new(&s.url(), tls).unwrap();
    let err = client.desired(None, 1).await.unwrap_err();
    assert_eq!(err.status, None, "expected a TLS failure, got {err}");
    let _: SocketAddr = running.addr;
    running.stop();
}

/// A restarted agent with nothing to change reports at once and on every heartbeat (it
/// used to resend only a report it had made itself, so a fresh process stayed silent
/// while its long-poll was open and `last seen` went stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_with_nothing_to_change_reports_at_start_and_every_heartbeat() {
    let (s, running) = Server::new().await;
    let token = running
        .state
        .store
        .create_enroll_token("t", &[], 3600)
        .await
        .unwrap()
        .token;
    let agent_dir = tempfile::tempdir().unwrap();
    let enrolled = enroll(&EnrollOptions {
        server: s.url(),
        token,
        ca_fingerprint: Some(s.fingerprint.clone()),
        dir: agent_dir.path().join("etc"),
        hostname: "quiet".into(),
        proxy: None,
    })
    .await
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(agent_dir.path().join("etc"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "agent directory must be private");
    }
    let host_id = enrolled.config.host_id.clone();
    let mut cfg = enrolled.config.clone();
    cfg.state_dir = agent_dir.path().join("state");
    cfg.enforce = false;
    cfg.heartbeat_secs = 0.5;
    let start = |cfg: cordon_agent::AgentConfig| {
        let tls = cordon_client::tls::mutual_from_files(&cfg.ca, &cfg.cert, &cfg.key).unwrap();
        tokio::spawn(Agent::new(cfg, Arc::new(MemoryEnforcer::new()), tls).unwrap().run())
    };
    let last_seen = |s: &Server| {
        let s_url = s.url();
        let api = s.api();
        let admin = s.admin.clone();
        let id = host_id.clone();
        async move {
            let v: Value = api
                .get(format!("{s_url}/v1/hosts/{id}"))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["last_seen"].as_str().map(str::to_string)
        }
    };
    let agent = start(cfg.clone());
    wait_state(&s, &host_id, "normal", Duration::from_secs(5)).await;
    agent.abort();
    let _ = agent.await;

    // Restarted with nothing to change: seen again at once, then on every heartbeat.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = last_seen(&s).await.unwrap();
    let agent = start(cfg.clone());
    let t = Instant::now();
    loop {
        let now = last_seen(&s).await.unwrap();
        if now > before {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(2), "restarted agent did not report");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = last_seen(&s).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let later = last_seen(&s).await.unwrap();
    assert!(later > first, "no heartbeat: last seen stayed {first}");
    agent.abort();
    running.stop();
}

/// Issue 15, 10,000 agents: the fault kind "every agent holds two connections". Over
/// HTTP/1.1 an agent's long-poll and its reporter each held a connection, and at start
/// both opened theirs at once, so 10,000 agents needed 20,000 descriptors on the server
/// (this machine's whole per-process limit). Now the agent offers HTTP/2, the server
/// takes it, and the first calls of a fresh client (the immediate long-poll and the
/// first report, sent at the same moment as the agent sends them at start) go over one
/// TCP connection, counted here by a forwarding proxy in front of the server; the
/// long-poll that follows and the next report share it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_and_reports_share_one_http2_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cordon_agent::client::{Connect, ServerClient};
    use cordon_proto::{AgentState, StatusReport};

    let (s, running) = Server::new().await;
    let token = running
        .state
        .store
        .create_enroll_token("t", &[], 3600)
        .await
        .unwrap()
        .token;
    let agent_dir = tempfile::tempdir().unwrap();
    let enrolled = enroll(&EnrollOptions {
        server: s.url(),
        token,
        ca_fingerprint: Some(s.fingerprint.clone()),
        dir: agent_dir.path().to_path_buf(),
        hostname: "endpoint".into(),
        proxy: None,
    })
    .await
    .unwrap();
    let cfg = enrolled.config;

    // A TCP forwarder to the server that counts the connections it is asked for.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = proxy.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let server_addr = s.cfg.listen;
    let forwarder = tokio::spawn(async move {
        loop {
            let (mut client, _) = proxy.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(server_addr).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });

    let tls = cordon_client::tls::mutual_from_files(&cfg.ca, &cfg.cert, &cfg.key).unwrap();
    let client =
        ServerClient::with_servers(&[format!("https://127.0.0.1:{proxy_port}")], tls, &Connect::default()).unwrap();
    let report: StatusReport = serde_json::from_value(json!({
        "applied_revision": 0,
        "state": AgentState::Released,
    }))
    .unwrap();
    let (desired, reported) = tokio::join!(client.desired(None, 0), client.report(&report));
    let desired = desired.unwrap();
    reported.unwrap();
    // A long-poll waiting on the server while a report goes out.
    let (polled, reported) = tokio::join!(client.desired(Some(desired.revision), 1), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.report(&report).await
    });
    polled.unwrap();
    reported.unwrap();
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "the long-poll and the reports should share one connection"
    );
    forwarder.abort();
    running.stop();
}

//! The web console in a real browser: Debian's Chromium driven by chromedriver over
//! WebDriver, against a real `cordon server` (TLS, SQLite in a temp dir) on 127.0.0.1.
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`);
//! without them this test FAILS with a message saying so. Screenshots go to
//! `target/console-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_proto::{AgentState, HostState, Role};
use cordon_server::run::{self, RunConfig, Running};
use cordon_server::store::NewHost;
use cordon_server::Store;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMEDRIVER: &[&str] = &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];
const CHROMIUM: &[&str] = &[
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/lib/chromium/chromium",
];

fn find(cands: &[&str], env: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    cands.iter().map(PathBuf::from).find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Kills chromedriver (and with it the browser) when the test ends, even on panic.
struct Driver(Child);
impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver(profile: &Path) -> (Driver, u16, PathBuf) {
    let driver = find(CHROMEDRIVER, "CHROMEDRIVER").unwrap_or_else(|| {
        panic!(
            "chromedriver not found (looked for {CHROMEDRIVER:?} and $CHROMEDRIVER): \
             install Debian's browser and driver with `apt-get install -y chromium chromium-driver`"
        )
    });
    let chromium = find(CHROMIUM, "CHROMIUM").unwrap_or_else(|| {
        panic!(
            "chromium not found (looked for {CHROMIUM:?} and $CHROMIUM): \
             install it with `apt-get install -y chromium chromium-driver`"
        )
    });
    let port = free_port();
    let log = profile.join("chromedriver.log");
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
    let d = Driver(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {addr} within 20 s (log: {})",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (d, port, chromium)
}

async fn browser(port: u16, chromium: &Path, profile: &Path) -> Client {
    let user_data = profile.join("profile");
    std::fs::create_dir_all(&user_data).unwrap();
    let caps = json!({
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800", "--ignore-certificate-errors",
                format!("--user-data-dir={}", user_data.display()),
            ]
        }
    });
    let Value::Object(caps) = caps else { unreachable!() };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot start a Chromium session through chromedriver: {e}"))
}

/// Polls `f` until it returns `Some` or `secs` pass.
async fn until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resizes the window so the page itself is `w` x `h` CSS pixels.
async fn viewport(c: &Client, w: u32, h: u32) {
    c.set_window_size(w, h).await.unwrap();
    let v = c
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let (iw, ih) = (
        v[0].as_u64().unwrap_or(w as u64) as u32,
        v[1].as_u64().unwrap_or(h as u64) as u32,
    );
    if (iw, ih) != (w, h) {
        c.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
            .await
            .unwrap();
    }
}

async fn row_state(c: &Client, host_id: &str) -> Option<String> {
    let row = c.find(Locator::Css(&format!("tr#host-{host_id}"))).await.ok()?;
    row.attr("data-state").await.ok()?
}

async fn wait_state(c: &Client, host_id: &str, want: HostState) {
    let what = format!("host {host_id} shown as {}", want.as_str());
    until(&what, 15, || async {
        (row_state(c, host_id).await.as_deref() == Some(want.as_str())).then_some(())
    })
    .await;
}

async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    until(&format!("{css} to contain {needle:?}"), 10, || async {
        let t = text_of(c, css).await;
        t.contains(needle).then_some(t)
    })
    .await
}

async fn save_png(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).unwrap();
    path
}

async fn seed_host(store: &Store, id: &str, name: &str, os: &str, addrs: &[&str], labels: &[&str], backend: &str) {
    let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    let t = store.create_enroll_token("test", &labels, 600).await.unwrap();
    let host = NewHost {
        id: id.into(),
        hostname: name.into(),
        os: Some(os.into()),
        addresses: addrs.iter().map(|s| s.to_string()).collect(),
        agent_version: Some("0.1.0".into()),
    };
    store.enroll(&t.token, &host).await.unwrap();
    report(store, id, AgentState::Released, backend).await;
}

/// What the agent would POST to /v1/agent/status after applying the current desired state.
async fn report(store: &Store, id: &str, state: AgentState, backend: &str) -> HostState {
    let host = store.host(id).await.unwrap();
    let digest = format!("sha256:{:0>16}", host.desired.revision * 7919);
    let r = common::status_report(host.desired.revision, state, &digest, backend);
    store.record_report(id, &r).await.unwrap()
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    let input = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    input.send_keys(token).await.unwrap();
    c.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#hosts-table"))
        .await
        .unwrap();
}

async fn open_dialog(c: &Client, button_css: &str) {
    click(c, button_css).await;
    until("the dialog to open", 5, || async {
        let d = c.find(Locator::Css("#action-dialog")).await.ok()?;
        d.attr("open").await.ok()?.map(|_| ())
    })
    .await;
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// Finds and clicks, retrying if a live update replaced the element in between.
async fn click(c: &Client, css: &str) {
    let mut last = None;
    for _ in 0..5 {
        match c.find(Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return,
                Err(err) => last = Some(err.to_string()),
            },
            Err(err) => last = Some(err.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot click {css}: {}", last.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    cordon_server::pki::init(dir.path(), &["localhost".into()], &["127.0.0.1".parse().unwrap()]).unwrap();
    let cfg = RunConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: format!("sqlite://{}", dir.path().join("cordon.db").display()),
        data_dir: dir.path().to_path_buf(),
        expiry_every: Duration::from_secs(60),
        max_wait: Duration::from_secs(5),
    };
    let server: Running = run::start(&cfg).await.unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let store: Arc<Store> = server.state.store.clone();

    let responder = common::api_token(&store, "rita-responder", Role::Responder).await;
    let viewer = common::api_token(&store, "victor-viewer", Role::Viewer).await;
    seed_host(
        &store,
        "h-web01",
        "web-01",
        "Debian 12",
        &["192.0.2.11", "2001:db8::11"],
        &["prod", "web"],
        "nftables",
    )
    .await;
    seed_host(
        &store,
        "h-web02",
        "web-02",
        "Debian 12",
        &["192.0.2.12"],
        &["prod", "web"],
        "netlink",
    )
    .await;
    seed_host(
        &store,
        "h-db01",
        "db-01",
        "Ubuntu 24.04",
        &["198.51.100.21"],
        &["prod", "db"],
        "iptables",
    )
    .await;
    seed_host(
        &store,
        "h-fin07",
        "fin-laptop-07",
        "Windows 11",
        &["192.0.2.57"],
        &["finance"],
        "wfp",
    )
    .await;
    seed_host(
        &store,
        "h-mac03",
        "design-mac-03",
        "macOS 15",
        &["198.51.100.33"],
        &["design"],
        "pf",
    )
    .await;
    // One host already quarantined and one stuck pending (offline agent), for the picture.
    let p = cordon_server::store::ActionParams {
        comment: "IR-1207 ransomware note found".into(),
        ..Default::default()
    };
    store
        .act(
            "rita-responder",
            cordon_server::store::Action::Quarantine,
            &cordon_server::store::Targets::Hosts(vec!["h-fin07".into()]),
            &p,
        )
        .await
        .unwrap();
    report(&store, "h-fin07", AgentState::Isolated, "wfp").await;
    let p = cordon_server::store::ActionParams {
        comment: "IR-1209 suspicious login".into(),
        ..Default::default()
    };
    store
        .act(
            "rita-responder",
            cordon_server::store::Action::Quarantine,
            &cordon_server::store::Targets::Hosts(vec!["h-mac03".into()]),
            &p,
        )
        .await
        .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let (_driver, port, chromium) = start_chromedriver(profile.path());
    let c = browser(port, &chromium, profile.path()).await;
    let task = tokio::spawn({
        let c = c.clone();
        async move { scenario(&c, &base, &store, &responder, &viewer).await }
    });
    let result = tokio::time::timeout(Duration::from_secs(240), task).await;
    let failed = !matches!(result, Ok(Ok(())));
    if failed {
        let shot = save_png(&c, "failure.png").await;
        eprintln!("failure screenshot: {}", shot.display());
    }
    let _ = c.close().await;
    server.stop();
    match result {
        Err(_) => panic!("browser scenario took longer than 240 s"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("browser scenario failed: {e}"),
        Ok(Ok(())) => {}
    }
}

async fn scenario(c: &Client, base: &str, store: &Store, responder: &str, viewer: &str) {
    // Not signed in: the console sends us to sign-in; a wrong token is refused.
    c.goto(&format!("{base}/console/hosts")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    fill(c, "#token", "cordon_wrong").await;
    click(c, "#sign-in").await;
    wait_text(c, "#login-error", "Unknown or revoked").await;

    // Sign in as a responder and see the seeded hosts.
    sign_in(c, base, responder).await;
    viewport(c, 1280, 800).await;
    for name in ["web-01", "web-02", "db-01", "fin-laptop-07", "design-mac-03"] {
        wait_text(c, "#host-rows", name).await;
    }
    assert_eq!(row_state(c, "h-fin07").await.as_deref(), Some("quarantined"));
    assert_eq!(row_state(c, "h-mac03").await.as_deref(), Some("quarantine_pending"));
    let pending = text_of(c, "tr#host-h-mac03 .state").await;
    assert!(
        pending.contains("Quarantine pending") && pending.contains("for "),
        "pending shows how long: {pending:?}"
    );
    wait_text(c, "#live-status", "Live updates: on").await;
    // Mark the page: if anything reloads it, the marker is gone.
    c.execute("window.__cordonNoReload = 42; return true;", vec![])
        .await
        .unwrap();
    let shot = save_png(c, "hosts.png").await;
    eprintln!("screenshot: {}", shot.display());

    // Quarantine web-01: first without a comment (error shown), then with one.
    open_dialog(c, "tr#host-h-web01 button.act.quarantine").await;
    assert!(text_of(c, "#dlg-targets").await.contains("web-01"));
    click(c, "#dlg-review").await;
    wait_text(c, "#err-comment", "comment is required").await;
    assert_eq!(
        text_of(c, "#dlg-confirm-text").await,
        "",
        "no confirmation without a comment"
    );
    let _ = save_png(c, "quarantine-missing-comment.png").await;
    // The server says the same if the script's check is bypassed.
    let server_says = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/console/actions/check', {method: 'POST', headers: {'Content-Type': 'application/json',
               'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
               body: JSON.stringify({action: 'quarantine', hosts: ['h-web01'], comment: '  '})})
             .then(r => r.json()).then(j => done(j.errors.comment || ''));",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        server_says.as_str().unwrap_or("").contains("comment is required"),
        "{server_says:?}"
    );
    // A bad exception is refused too.
    fill(c, "#dlg-comment", "INC-4711 beaconing to known C2").await;
    fill(c, "#dlg-allow", "not a spec!").await;
    click(c, "#dlg-review").await;
    until("the allow error", 10, || async {
        (!text_of(c, "#err-allow").await.is_empty()).then_some(())
    })
    .await;
    fill(c, "#dlg-allow", "https://edr.example.com\n203.0.113.0/24").await;
    fill(
        c,
        "#dlg-message",
        "IT Security has isolated this computer. Call 555-0100.",
    )
    .await;
    wait_text(c, "#dlg-message-count", "54 / 256").await;
    fill(c, "#dlg-expires", "8h").await;
    let shot = save_png(c, "quarantine-dialog.png").await;
    eprintln!("screenshot: {}", shot.display());
    click(c, "#dlg-review").await;
    wait_text(c, "#dlg-confirm-text", "Quarantine 1 host?").await;
    let _ = save_png(c, "quarantine-confirm.png").await;
    click(c, "#dlg-confirm").await;
    wait_state(c, "h-web01", HostState::QuarantinePending).await;
    wait_text(c, "#flash", "Quarantine requested for 1 host").await;

    // The agent applies and reports: the row turns quarantined without a reload.
    assert_eq!(
        report(store, "h-web01", AgentState::Isolated, "nftables").await,
        HostState::Quarantined
    );
    wait_state(c, "h-web01", HostState::Quarantined).await;
    let marker = c.execute("return window.__cordonNoReload || 0;", vec![]).await.unwrap();
    assert_eq!(marker, json!(42), "the page was reloaded instead of updated live");
    let host = store.host("h-web01").await.unwrap();
    assert_eq!(
        host.desired.allow,
        vec!["https://edr.example.com".to_string(), "203.0.113.0/24".to_string()]
    );
    assert_eq!(
        host.desired.message.as_deref(),
        Some("IT Security has isolated this computer. Call 555-0100.")
    );
    assert!(host.desired.expires_at.is_some());

    // By label: the confirmation states how many hosts; cancel.
    open_dialog(c, "#quarantine-label").await;
    fill(c, "#dlg-label", "web").await;
    fill(c, "#dlg-comment", "whole web tier").await;
    click(c, "#dlg-review").await;
    wait_text(
        c,
        "#dlg-confirm-text",
        "Quarantine 2 hosts (every host with label \"web\")?",
    )
    .await;
    click(c, "#dlg-back").await;
    click(c, "#dlg-cancel").await;

    // A selection: tick two rows, the confirmation says 2 hosts; cancel.
    click(c, "#sel-h-web02").await;
    click(c, "#sel-h-db01").await;
    wait_text(c, "#selection-count", "2 selected").await;
    open_dialog(c, "#quarantine-selected").await;
    fill(c, "#dlg-comment", "selection test").await;
    click(c, "#dlg-review").await;
    wait_text(c, "#dlg-confirm-text", "Quarantine 2 hosts?").await;
    click(c, "#dlg-back").await;
    click(c, "#dlg-cancel").await;

    // Host page: desired state, policy in force, digest, timeline.
    c.goto(&format!("{base}/console/hosts/h-web01")).await.unwrap();
    wait_text(c, "#policy", "edr.example.com").await;
    wait_text(c, "#policy", "203.0.113.0/24").await;
    wait_text(c, "#digest-status", "In force").await;
    wait_text(c, "#timeline", "INC-4711").await;
    let _ = save_png(c, "host.png").await;

    // Release web-01 from the hosts page, and the agent confirms live.
    c.goto(&format!("{base}/console/hosts")).await.unwrap();
    wait_text(c, "#live-status", "Live updates: on").await;
    open_dialog(c, "tr#host-h-web01 button.act.release").await;
    assert!(
        !c.find(Locator::Css("#dlg-allow"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "no exceptions on release"
    );
    click(c, "#dlg-review").await;
    wait_text(c, "#err-comment", "comment is required").await;
    fill(c, "#dlg-comment", "INC-4711 cleaned, reimaged").await;
    click(c, "#dlg-review").await;
    wait_text(c, "#dlg-confirm-text", "Release 1 host?").await;
    click(c, "#dlg-confirm").await;
    wait_state(c, "h-web01", HostState::ReleasePending).await;
    assert_eq!(
        report(store, "h-web01", AgentState::Released, "nftables").await,
        HostState::Normal
    );
    wait_state(c, "h-web01", HostState::Normal).await;

    // Both are in the audit page, and the export links work.
    c.goto(&format!("{base}/console/audit?host=web-01")).await.unwrap();
    let audit = wait_text(c, "#audit-table", "INC-4711 beaconing to known C2").await;
    assert!(audit.contains("INC-4711 cleaned, reimaged"), "{audit}");
    assert!(
        c.find_all(Locator::Css("tr[data-action=quarantine]"))
            .await
            .unwrap()
            .len()
            == 1
    );
    assert!(c.find_all(Locator::Css("tr[data-action=release]")).await.unwrap().len() == 1);
    assert!(
        c.find_all(Locator::Css("tr[data-action=quarantine_confirmed]"))
            .await
            .unwrap()
            .len()
            == 1
    );
    let csv = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.getElementById('export-csv').href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap_or("").to_string();
    assert!(
        csv.starts_with("id,at,actor,action,host_id,hostname,comment,result,detail"),
        "{csv}"
    );
    assert!(
        csv.contains("INC-4711 cleaned, reimaged") && csv.contains(",release,"),
        "{csv}"
    );
    let _ = save_png(c, "audit.png").await;

    // Rules and approvals (automation) render.
    c.goto(&format!("{base}/console/rules")).await.unwrap();
    wait_text(c, "#guardrails", "Fleet cap").await;
    c.goto(&format!("{base}/console/approvals")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#approvals-table"))
        .await
        .unwrap();

    // Phone width: still readable.
    c.goto(&format!("{base}/console/hosts")).await.unwrap();
    viewport(c, 390, 844).await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#hosts-table"))
        .await
        .unwrap();
    let _ = save_png(c, "hosts-phone.png").await;
    viewport(c, 1280, 800).await;

    // Sign out; a viewer sees no action buttons and the server refuses its actions.
    click(c, "header form[action='/console/logout'] button").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    sign_in(c, base, viewer).await;
    wait_text(c, "#host-rows", "web-01").await;
    assert!(
        c.find_all(Locator::Css("button.act")).await.unwrap().is_empty(),
        "a viewer sees action buttons"
    );
    assert!(c.find_all(Locator::Css(".host-select")).await.unwrap().is_empty());
    assert!(c.find_all(Locator::Css("#action-dialog")).await.unwrap().is_empty());
    let refused = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/console/actions/run', {method: 'POST', headers: {'Content-Type': 'application/json',
               'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
               body: JSON.stringify({action: 'quarantine', hosts: ['h-web02'], comment: 'viewer tries'})})
             .then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, json!(403));
    // Without the CSRF token even a responder's session would be refused; check as viewer too.
    let no_csrf = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/console/actions/check', {method: 'POST', headers: {'Content-Type': 'application/json'},
               body: JSON.stringify({action: 'quarantine', hosts: ['h-web02'], comment: 'x'})})
             .then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(no_csrf, json!(403));
    assert_eq!(store.host("h-web02").await.unwrap().state, HostState::Normal);
}

//! A real `cordon server` on loopback for CLI tests: 127.0.0.1, a free port, its own data
//! directory in a temporary directory; nothing is enforced. Shared by hosts_ambiguous.rs,
//! hosts_retry.rs and label_reviewed_set.rs (`#[path = "common/loopback.rs"] mod loopback;`).
#![allow(dead_code)]

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Runs the `cordon` binary with `args`, with none of the CLI's environment settings.
pub fn cordon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(args)
        .env_remove("CORDON_TOKEN")
        .env_remove("CORDON_SERVER")
        .env_remove("CORDON_CA")
        .env_remove("CORDON_DATA")
        .env_remove("CORDON_DB")
        .output()
        .unwrap()
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Kills the server when dropped (also on panic).
pub struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running server: its data directory, admin token, CA fingerprint and URL.
pub struct Loopback {
    /// Kills the server when dropped.
    pub server: Server,
    /// The data directory (`TMP/server`).
    pub data: String,
    /// The bootstrap admin token.
    pub admin: String,
    /// The CA certificate's fingerprint (for `agent enroll --ca-fingerprint`).
    pub fp: String,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
}

impl Loopback {
    /// `cordon agent enroll` of `hostname` with a new one-time token (`cordon server token
    /// create`), its config in `agent_dir` and state in `state_dir`; asserts it succeeded
    /// and returns its output (stdout names the host id, stderr any warning).
    pub fn enroll(&self, agent_dir: &std::path::Path, state_dir: &std::path::Path, hostname: &str) -> Output {
        let t = cordon(&["server", "token", "create", "--data", &self.data, "--json"]);
        assert!(t.status.success(), "{}", text(&t));
        let t: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
        let e = cordon(&[
            "agent",
            "enroll",
            "--server",
            &self.url,
            "--token",
            t["token"].as_str().unwrap(),
            "--ca-fingerprint",
            &self.fp,
            "--dir",
            &agent_dir.to_string_lossy(),
            "--state-dir",
            &state_dir.to_string_lossy(),
            "--hostname",
            hostname,
        ]);
        assert!(e.status.success(), "{}", text(&e));
        e
    }

    /// The analyst's CLI: `cordon ARGS --server URL --token ADMIN --ca DATA/ca.pem`.
    pub fn api(&self, args: &[&str]) -> Output {
        let ca = std::path::Path::new(&self.data)
            .join("ca.pem")
            .to_string_lossy()
            .to_string();
        let mut v: Vec<&str> = args.to_vec();
        v.extend_from_slice(&["--server", &self.url, "--token", &self.admin, "--ca", &ca]);
        cordon(&v)
    }
}

/// `cordon server init` in `tmp/server`, then `cordon server run` on a free loopback
/// port, waiting (bounded, 20 s) until it listens.
pub fn start(tmp: &std::path::Path) -> Loopback {
    let data = tmp.join("server");
    let d = data.to_string_lossy().to_string();
    let init = cordon(&["server", "init", "--data", &d, "--ip", "127.0.0.1", "--json"]);
    assert!(init.status.success(), "{}", text(&init));
    let init: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let admin = init["admin_token"].as_str().unwrap().to_string();
    let fp = init["ca_fingerprint"].as_str().unwrap().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_cordon"))
            .args(["server", "run", "--data", &d, "--listen", &listen])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Loopback {
        server,
        data: d,
        admin,
        fp,
        url: format!("https://{listen}"),
    }
}

//! A real Cordon server in the lab's server namespace and an enrolled agent enforcing in
//! the endpoint namespace (state in a temp dir), for `cordon bench e2e` and for showing
//! the server flow in the lab. Processes are killed and namespaces removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::lab::addr::*;
use crate::lab::{Host, Lab, LabOptions};

/// A lab with a real Cordon server running in the server namespace and an enrolled
/// agent in the endpoint namespace; both processes are killed on drop.
pub struct ServerLab {
    /// The namespaces.
    pub lab: Lab,
    /// The server's data directory (CA, database).
    pub data: PathBuf,
    /// The agent's configuration file.
    pub agent_config: PathBuf,
    /// The agent's state directory (its own, not `/var/lib/cordon`).
    pub state_dir: PathBuf,
    /// The admin API token from `cordon server init`.
    pub admin_token: String,
    procs: Vec<Child>,
    _tmp: tempfile::TempDir,
}

fn s(p: &Path) -> String {
    p.to_string_lossy().to_string()
}

fn json_of(out: std::process::Output, what: &str) -> Result<Value> {
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{what}: unexpected output"))
}

/// A namespace lab with a server data directory initialised (the server not running yet)
/// and an enrollment token: what [`ServerLab`] and the server end-to-end test start from.
pub struct Prepared {
    /// The namespaces.
    pub lab: Lab,
    /// The server's data directory (CA, database).
    pub data: PathBuf,
    /// `cordon server init --json` output (`admin_token`, `ca_fingerprint`).
    pub init: Value,
    /// `cordon server token create --json` output (`token`).
    pub enroll_token: Value,
    /// The temp directory holding `data`; deleted on drop.
    pub tmp: tempfile::TempDir,
}

/// Builds the lab and initialises a server in a temp dir, with an enrollment token whose
/// hosts get `labels` (comma-separated).
pub fn prepare(bin: &Path, labels: &str) -> Result<Prepared> {
    prepare_named(bin, labels, None)
}

/// The lab options for a real Cordon server on the server host (no echo on its port, no
/// user firewall rules on the endpoint).
pub fn server_lab_options() -> LabOptions {
    LabOptions {
        server_echo: false,
        user_rules: false,
        ..LabOptions::default()
    }
}

/// Like [`prepare`], with the namespaces named after `prefix` (see [`Lab::build_named`]).
pub fn prepare_named(bin: &Path, labels: &str, prefix: Option<&str>) -> Result<Prepared> {
    let lab = Lab::build_named(bin, server_lab_options(), prefix)?;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("server");
    let init = json_of(
        Command::new(bin)
            .args(["server", "init", "--json", "--data", &s(&data), "--name", SERVER_NAME])
            // A DR name of the same server (agent_e2e): the agent keeps an address its name
            // resolves to only once the server answers there over mutual TLS.
            .args(["--name", "dr.cordon.lab"])
            .args(["--ip", &SERVER4.to_string(), "--ip", &SERVER6.to_string()])
            .args(["--ip", &MOVED_SERVER4.to_string(), "--ip", &MOVED_SERVER6.to_string()])
            .output()?,
        "server init",
    )?;
    let enroll_token = json_of(
        Command::new(bin)
            .args([
                "server",
                "token",
                "create",
                "--json",
                "--data",
                &s(&data),
                "--labels",
                labels,
            ])
            .output()?,
        "token create",
    )?;
    Ok(Prepared {
        lab,
        data,
        init,
        enroll_token,
        tmp,
    })
}

/// Starts `cordon server run` on `data` in the server namespace and waits until the
/// endpoint namespace can connect to it (10 s at most).
pub fn spawn_server(lab: &Lab, bin: &Path, data: &Path) -> Result<Child> {
    spawn_server_checked(
        lab,
        bin,
        data,
        Host::Endpoint,
        std::net::SocketAddr::new(SERVER4.into(), SERVER_PORT),
    )
}

/// Starts `cordon server run` on `data` in the server namespace (listening on every
/// address) and waits until `from` can connect to `at` (10 s at most).
pub fn spawn_server_checked(lab: &Lab, bin: &Path, data: &Path, from: Host, at: std::net::SocketAddr) -> Result<Child> {
    let mut child = lab.spawn(
        Host::Server,
        &[
            &s(bin),
            "server",
            "run",
            "--listen",
            &format!("[::]:{SERVER_PORT}"),
            "--data",
            &s(data),
            "--expiry-interval",
            "1s",
        ],
    )?;
    let start = Instant::now();
    while lab.connect(from, at).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the server did not start listening within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// `cordon agent enroll` from the endpoint namespace, pinned to the CA fingerprint, with
/// the agent's config in `agent_dir` and its state in `state_dir`.
pub fn enroll_agent(
    lab: &Lab,
    bin: &Path,
    init: &Value,
    enroll_token: &Value,
    agent_dir: &Path,
    state_dir: &Path,
) -> Result<Value> {
    let url = format!("https://{SERVER_NAME}:{SERVER_PORT}");
    let out = lab.exec(
        Host::Endpoint,
        &[
            &s(bin),
            "agent",
            "enroll",
            "--json",
            "--server",
            &url,
            "--token",
            enroll_token["token"].as_str().unwrap_or_default(),
            "--ca-fingerprint",
            init["ca_fingerprint"].as_str().unwrap_or_default(),
            "--dir",
            &s(agent_dir),
            "--state-dir",
            &s(state_dir),
            "--hostname",
            "endpoint",
        ],
    )?;
    json_of(out, "agent enroll")
}

/// Starts `cordon agent run` with `config` in the endpoint namespace.
pub fn spawn_agent(lab: &Lab, bin: &Path, config: &Path) -> Result<Child> {
    spawn_agent_env(lab, bin, config, &[])
}

/// Like [`spawn_agent`] with extra environment variables (`NAME=value`), e.g. a proxy
/// in `HTTPS_PROXY` that the agent must ignore.
pub fn spawn_agent_env(lab: &Lab, bin: &Path, config: &Path, env: &[&str]) -> Result<Child> {
    let bin = s(bin);
    let config = s(config);
    let mut argv: Vec<&str> = vec!["/usr/bin/env"];
    argv.extend_from_slice(env);
    argv.extend_from_slice(&[&bin, "agent", "run", "--config", &config]);
    lab.spawn(Host::Endpoint, &argv)
}

impl ServerLab {
    /// Builds the lab, initialises a server, starts it, enrolls and starts the agent, and
    /// waits until the agent has reported.
    pub fn start(bin: &Path) -> Result<ServerLab> {
        Self::start_named(bin, None, false)
    }

    /// Like [`ServerLab::start`], with the namespaces named after `prefix`, and with
    /// `logs` the server's and agent's output in `srv.log` and `ep.log` next to the data
    /// ([`Lab::log_path`]) instead of this terminal.
    pub fn start_named(bin: &Path, prefix: Option<&str>, logs: bool) -> Result<ServerLab> {
        let Prepared {
            mut lab,
            data,
            init,
            enroll_token,
            tmp,
        } = prepare_named(bin, "lab", prefix)?;
        if logs {
            lab.set_log_dir(tmp.path());
        }
        let agent_dir = tmp.path().join("agent");
        let server = spawn_server(&lab, bin, &data)?;
        let mut me = ServerLab {
            lab,
            agent_config: agent_dir.join("agent.toml"),
            state_dir: tmp.path().join("state"),
            data,
            admin_token: init["admin_token"].as_str().unwrap_or_default().to_string(),
            procs: vec![server],
            _tmp: tmp,
        };
        enroll_agent(&me.lab, bin, &init, &enroll_token, &agent_dir, &me.state_dir)?;
        let agent = spawn_agent(&me.lab, bin, &me.agent_config)?;
        me.procs.push(agent);
        let start = Instant::now();
        while me.applied_revision().is_none() {
            if start.elapsed() > Duration::from_secs(15) {
                bail!("the agent did not sync with the server within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(me)
    }

    /// Base URL of the API as seen from the server namespace.
    pub fn api_url(&self) -> String {
        format!("https://{SERVER4}:{SERVER_PORT}")
    }

    /// The server's CA certificate (`<data>/ca.pem`), PEM bytes.
    pub fn ca_pem(&self) -> Result<Vec<u8>> {
        Ok(std::fs::read(self.data.join("ca.pem"))?)
    }

    /// The revision the agent last applied (from its persisted state), if any.
    pub fn applied_revision(&self) -> Option<i64> {
        let text = std::fs::read_to_string(cordon_agent::persist::path(&self.state_dir)).ok()?;
        let p: cordon_agent::persist::Persisted = serde_json::from_str(&text).ok()?;
        p.applied_revision.filter(|r| *r >= 1)
    }
}

impl Drop for ServerLab {
    fn drop(&mut self) {
        // Agents first, so they do not log the server going away.
        for c in self.procs.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl ServerLab {
    /// One API call from inside the server namespace (bearer: the admin token).
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.api_url());
        let token = self.admin_token.clone();
        let ca = self.ca_pem()?;
        let method: reqwest::Method = method.parse().map_err(|_| anyhow::anyhow!("bad method {method}"))?;
        crate::lab::netns::run_in(&self.lab.ns(Host::Server), move || -> Result<Value> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let http = cordon_client::http_client(
                    cordon_client::tls::server_auth_only(&ca)?,
                    Some(Duration::from_secs(10)),
                )?;
                let mut req = http.request(method, &url).bearer_auth(&token);
                if let Some(b) = body {
                    req = req.json(&b);
                }
                let resp = req.send().await?;
                let status = resp.status();
                let text = resp.text().await?;
                if !status.is_success() {
                    bail!("{url}: {status}: {text}");
                }
                Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
            })
        })
    }

    /// Waits until the agent has applied at least `revision`.
    pub fn wait_applied(&self, revision: i64, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        while self.applied_revision().is_none_or(|r| r < revision) {
            if start.elapsed() > limit {
                bail!("the agent did not apply revision {revision} within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(start.elapsed())
    }
}

/// `cordon lab --server --keep`: the server and an enrolled agent stay up until Ctrl-C
/// (`stop` set), for trying the CLI, API and console by hand.
///
/// # Errors
/// When the lab cannot be built or the server or agent does not start.
pub fn keep(bin: &Path, prefix: Option<&str>, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
    let lab = ServerLab::start_named(bin, prefix, true)?;
    lab.lab.serve_name(crate::lab::KEEP_NAME)?;
    let (srv, ep) = (lab.lab.ns(Host::Server), lab.lab.ns(Host::Endpoint));
    let data = s(&lab.data);
    let log = |h: Host| lab.lab.log_path(h).map(|p| s(&p)).unwrap_or_default();
    println!(
        "Cordon lab up (until Ctrl-C, which removes it): a server in {srv}, an agent enrolled as `endpoint` in {ep}."
    );
    println!(
        "The server's data is {data} (admin token below); its log {}, the agent's {}.",
        log(Host::Server),
        log(Host::Endpoint)
    );
    println!(
        "{} and {SERVER_NAME} resolve to the server ({SERVER4}, {SERVER6}) in the lab.",
        crate::lab::KEEP_NAME
    );
    println!();
    println!("As an analyst (docs/server.md step 5), in the server's namespace:");
    println!("  sudo ip netns exec {srv} env CORDON_SERVER=https://{SERVER_NAME}:{SERVER_PORT} \\");
    println!(
        "    CORDON_TOKEN={} CORDON_CA={data}/ca.pem cordon hosts",
        lab.admin_token
    );
    println!("  … cordon quarantine endpoint --comment test   /   cordon release endpoint --comment done");
    println!("On the endpoint:");
    println!(
        "  sudo ip netns exec {ep} cordon status --state-dir {}",
        s(&lab.state_dir)
    );
    println!("  (the other host, {OTHER4} / {OTHER6} tcp/{OTHER_TCP_PORT}, is what a quarantine cuts off)");
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("removing the lab");
    Ok(())
}

/// Result of [`demo`]: the leak matrix open, quarantined through the API, released.
#[derive(Debug, serde::Serialize)]
pub struct ServerDemo {
    /// The leak matrix before the quarantine.
    pub before: Vec<crate::lab::matrix::Outcome>,
    /// The leak matrix while quarantined.
    pub during: Vec<crate::lab::matrix::Outcome>,
    /// The leak matrix after the release.
    pub after: Vec<crate::lab::matrix::Outcome>,
    /// Rows of `during` that reached a destination the quarantine must block.
    pub leaks: usize,
    /// Rows of `during` that did not reach a destination the quarantine must keep open.
    pub over_blocks: usize,
    /// API call returned -> rules in force on the agent.
    pub quarantine_ms: f64,
    /// API call returned -> rules gone on the agent, in milliseconds.
    pub release_ms: f64,
    /// The host's state as the server's API reported it while quarantined.
    pub host_state_during: String,
}

/// `cordon lab --server`: a real server and enrolled agent in the lab; quarantine and
/// release through the API while probing the leak matrix. Prints a table (or JSON).
pub fn demo(bin: &Path, json: bool) -> Result<bool> {
    use crate::lab::matrix::{self, Phase};
    let lab = ServerLab::start(bin)?;
    let before = lab.lab.matrix()?;
    let out = lab.api(
        "POST",
        "/v1/hosts/endpoint/quarantine",
        Some(serde_json::json!({"comment": "cordon lab --server"})),
    )?;
    let rev = out["results"][0]["revision"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no revision in {out}"))?;
    let quarantine = lab.wait_applied(rev, Duration::from_secs(10))?;
    let during = lab.lab.matrix()?;
    let start = Instant::now();
    let state = loop {
        let h = lab.api("GET", "/v1/hosts/endpoint", None)?;
        let st = h["state"].as_str().unwrap_or("?").to_string();
        if is_quarantined(&st) || start.elapsed() > Duration::from_secs(5) {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = lab.api(
        "POST",
        "/v1/hosts/endpoint/release",
        Some(serde_json::json!({"comment": "cordon lab --server done"})),
    )?;
    let rev = out["results"][0]["revision"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no revision in {out}"))?;
    let release = lab.wait_applied(rev, Duration::from_secs(10))?;
    let after = lab.lab.matrix()?;
    let (leaks, over_blocks) = matrix::score(&during);
    let ok = leaks == 0 && over_blocks == 0 && is_quarantined(&state);
    let result = ServerDemo {
        leaks,
        over_blocks,
        quarantine_ms: quarantine.as_secs_f64() * 1e3,
        release_ms: release.as_secs_f64() * 1e3,
        host_state_during: state,
        before,
        during,
        after,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "Cordon server in {}, agent enrolled in {} (mutual TLS)",
            lab.lab.ns(Host::Server),
            lab.lab.ns(Host::Endpoint)
        );
        println!(
            "{}",
            matrix::render_table(&[
                Phase {
                    name: "before",
                    quarantined: false,
                    outcomes: &result.before
                },
                Phase {
                    name: "quarantined (API)",
                    quarantined: true,
                    outcomes: &result.during
                },
                Phase {
                    name: "released (API)",
                    quarantined: false,
                    outcomes: &result.after
                },
            ])
        );
        println!(
            "API call -> enforced {:.1} ms, release -> removed {:.1} ms; server saw `{}`; leaks {}, over-blocks {}",
            result.quarantine_ms, result.release_ms, result.host_state_during, leaks, over_blocks
        );
    }
    Ok(ok)
}

/// Whether a host's `state` as the API wrote it is `quarantined`.
fn is_quarantined(state: &str) -> bool {
    cordon_proto::HostState::parse(state) == Some(cordon_proto::HostState::Quarantined)
}

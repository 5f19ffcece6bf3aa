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

pub struct ServerLab {
    pub lab: Lab,
    pub data: PathBuf,
    pub agent_config: PathBuf,
    pub state_dir: PathBuf,
    pub admin_token: String,
    procs: Vec<Child>,
    bin: PathBuf,
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

impl ServerLab {
    /// Builds the lab, initialises a server, starts it, enrolls and starts the agent, and
    /// waits until the agent has reported.
    pub fn start(bin: &Path) -> Result<ServerLab> {
        let lab = Lab::build(bin, LabOptions { server_echo: false, user_rules: false })?;
        let tmp = tempfile::tempdir()?;
        let data = tmp.path().join("server");
        let init = json_of(
            Command::new(bin)
                .args(["server", "init", "--json", "--data", &s(&data), "--name", SERVER_NAME])
                .args(["--ip", &SERVER4.to_string(), "--ip", &SERVER6.to_string()])
                .output()?,
            "server init",
        )?;
        let tok = json_of(
            Command::new(bin).args(["server", "token", "create", "--json", "--data", &s(&data), "--labels", "lab"]).output()?,
            "token create",
        )?;
        let mut me = ServerLab {
            lab,
            agent_config: tmp.path().join("agent").join("agent.toml"),
            state_dir: tmp.path().join("state"),
            data,
            admin_token: init["admin_token"].as_str().unwrap_or_default().to_string(),
            procs: Vec::new(),
            bin: bin.to_path_buf(),
            _tmp: tmp,
        };
        me.start_server()?;
        let b = s(bin);
        let url = format!("https://{SERVER_NAME}:{SERVER_PORT}");
        let agent_dir = s(me.agent_config.parent().unwrap_or(Path::new(".")));
        let out = me.lab.exec(
            Host::Endpoint,
            &[&b, "agent", "enroll", "--json", "--server", &url, "--token", tok["token"].as_str().unwrap_or_default(),
              "--ca-fingerprint", init["ca_fingerprint"].as_str().unwrap_or_default(), "--dir", &agent_dir,
              "--state-dir", &s(&me.state_dir), "--hostname", "endpoint"],
        )?;
        json_of(out, "agent enroll")?;
        let child = me.lab.spawn(Host::Endpoint, &[&b, "agent", "run", "--config", &s(&me.agent_config)])?;
        me.procs.push(child);
        let start = Instant::now();
        while me.applied_revision().is_none() {
            if start.elapsed() > Duration::from_secs(15) {
                bail!("the agent did not sync with the server within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(me)
    }

    fn start_server(&mut self) -> Result<()> {
        let b = s(&self.bin);
        let child = self.lab.spawn(
            Host::Server,
            &[&b, "server", "run", "--listen", &format!("[::]:{SERVER_PORT}"), "--data", &s(&self.data), "--expiry-interval", "1s"],
        )?;
        self.procs.push(child);
        let start = Instant::now();
        while self.lab.connect(Host::Endpoint, std::net::SocketAddr::new(SERVER4.into(), SERVER_PORT)).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("the server did not start listening within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Base URL of the API as seen from the server namespace.
    pub fn api_url(&self) -> String {
        format!("https://{SERVER4}:{SERVER_PORT}")
    }

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

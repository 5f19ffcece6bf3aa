//! `cordon agent enroll | run`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use cordon_agent::enroll::{enroll, EnrollOptions};
use cordon_agent::{Agent, AgentConfig};

use crate::exit::{report, Code, Failure};
use serde_json::json;

#[derive(Args, Debug)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub what: AgentWhat,
}

#[derive(Subcommand, Debug)]
pub enum AgentWhat {
    /// Enroll this host: get a client certificate with a one-time token.
    Enroll(EnrollArgs),
    /// Run the agent (keep the host converged to the server's desired state).
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Server URL, https://HOST:PORT.
    #[arg(long, env = "CORDON_SERVER")]
    pub server: String,
    /// One-time enrollment token from `cordon server token create`.
    #[arg(long)]
    pub token: String,
    /// SHA-256 of the server's CA certificate, as printed by `cordon server init`.
    /// Without it the CA is trusted on first use (its fingerprint is printed).
    #[arg(long)]
    pub ca_fingerprint: Option<String>,
    /// Directory for the certificate, key (0600) and CA.
    #[arg(long, default_value = "/etc/cordon")]
    pub dir: PathBuf,
    /// Config file to write (default DIR/agent.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Agent state directory (applied policy, last desired state).
    #[arg(long, default_value = cordon_engine::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Name to enroll under (default: this host's name). Analysts address the host by
    /// it (`cordon quarantine NAME`).
    #[arg(long)]
    pub hostname: Option<String>,
    /// HTTP proxy to the server (`http://HOST:PORT`), used for enrollment and written to
    /// the agent's config. Without it the agent connects directly and ignores
    /// `HTTPS_PROXY`/`ALL_PROXY` in its environment.
    #[arg(long)]
    pub proxy: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, default_value = "/etc/cordon/agent.toml")]
    pub config: PathBuf,
    /// Override the config's state directory.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

pub fn run(a: AgentArgs) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Err(e.into())),
    };
    report(match a.what {
        AgentWhat::Enroll(a) => rt.block_on(do_enroll(a)),
        AgentWhat::Run(a) => rt.block_on(do_run(a)),
    })
}

async fn do_enroll(a: EnrollArgs) -> Result<(), Failure> {
    let opts = EnrollOptions {
        server: a.server.clone(),
        token: a.token.clone(),
        ca_fingerprint: a.ca_fingerprint.clone(),
        dir: a.dir.clone(),
        hostname: a.hostname.clone().unwrap_or_else(cordon_agent::reconcile::hostname),
        proxy: a.proxy.clone(),
    };
    let out = enroll(&opts).await?;
    let mut cfg = out.config.clone();
    cfg.state_dir = a.state_dir.clone();
    let path = a.config.clone().unwrap_or_else(|| a.dir.join("agent.toml"));
    cfg.save(&path)?;
    if a.json {
        println!(
            "{}",
            json!({"host_id": cfg.host_id, "config": path.display().to_string(), "ca_fingerprint": out.ca_fingerprint,
                   "trusted_on_first_use": out.trusted_on_first_use, "flags": out.flags})
        );
    } else {
        println!("enrolled as host {}", cfg.host_id);
        println!("  config: {}", path.display());
        if out.trusted_on_first_use {
            println!(
                "  WARNING: CA trusted on first use; check its fingerprint: {}",
                out.ca_fingerprint
            );
        }
        for line in flag_warnings(&cfg.host_id, &out.flags) {
            eprintln!("{line}");
        }
        if let Some(hint) = local_quarantine_hint(&cfg.state_dir) {
            eprintln!("{hint}");
        }
        println!("start it with: cordon agent run --config {}", path.display());
    }
    Ok(())
}

/// Trial12 LOW: enrolling a host that is already quarantined locally (Wazuh, an operator,
/// …) says what happens to that quarantine. `None` when no claim stands here or the
/// claims cannot be read (not root).
fn local_quarantine_hint(state_dir: &std::path::Path) -> Option<String> {
    let mut sources: Vec<String> = Vec::new();
    for t in cordon_engine::discover_tables(state_dir).ok()? {
        let eng = cordon_engine::Engine::new(t, state_dir.to_path_buf(), cordon_firewall::BackendChoice::Auto);
        for c in eng.claims().unwrap_or_default() {
            let name = c.source.to_string();
            if !sources.contains(&name) {
                sources.push(name);
            }
        }
    }
    if sources.is_empty() {
        return None;
    }
    Some(format!(
        "note: this host is already quarantined locally (claims: {}). The agent keeps those claims — it never undoes another source's claim, and keeps its own server reachable through them — and reports the host as isolated by them; a release through the server removes only the server's quarantine. Release them here with `cordon release --source SOURCE`.",
        sources.join(", ")
    ))
}

async fn do_run(a: RunArgs) -> Result<(), Failure> {
    // A configuration that cannot be loaded or does not make an agent is bad input (2).
    let mut cfg = AgentConfig::load(&a.config).map_err(|e| Failure::new(Code::Usage, e))?;
    if let Some(d) = a.state_dir {
        cfg.state_dir = d;
    }
    let agent = Agent::from_config(cfg).map_err(|e| Failure::new(Code::Usage, e))?;
    tokio::select! {
        r = agent.run() => Ok(r?),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Warnings for what the server flagged on a new host: the other host(s) sharing its
/// hostname or an address, and that only the host id addresses it unambiguously.
fn flag_warnings(host_id: &str, flags: &[cordon_proto::HostFlag]) -> Vec<String> {
    flags
        .iter()
        .map(|f| {
            format!(
                "WARNING: {}: commands and automation naming it refuse to act; use the host id {host_id}",
                crate::term::safe(&f.text())
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enroll_warns_naming_the_other_host() {
        let flags = vec![cordon_proto::HostFlag {
            kind: cordon_proto::HostFlagKind::DuplicateHostname,
            value: "web1".into(),
            other_hosts: vec!["1c2d-other".into()],
        }];
        let w = flag_warnings("9f9f-new", &flags);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("duplicate hostname \"web1\""), "{}", w[0]);
        assert!(w[0].contains("1c2d-other"), "{}", w[0]);
        assert!(w[0].contains("9f9f-new"), "{}", w[0]);
        assert!(flag_warnings("x", &[]).is_empty());
    }
}

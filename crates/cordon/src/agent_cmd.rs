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
    /// Directory for the certificate, key and CA (Unix: 0700, key 0600; Windows:
    /// %ProgramData%\Cordon by default).
    #[arg(long, default_value_os_t = cordon_engine::paths::default_config_dir())]
    pub dir: PathBuf,
    /// Config file to write (default DIR/agent.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Agent state directory (applied policy, last desired state).
    #[arg(long, default_value_os_t = cordon_engine::paths::default_state_dir())]
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
    /// The agent's config file (written by `agent enroll`).
    #[arg(long, default_value_os_t = cordon_engine::paths::default_agent_config())]
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
    let config_path = a.config.clone().unwrap_or_else(|| a.dir.join("agent.toml"));
    // Trial15 HIGH-3: a second agent in this network namespace would fight the running
    // one over the firewall. Refuse before the server is asked (the token stays unused).
    let holder = cordon_agent::singleton::holder();
    if let Some(h) = &holder {
        if let Some(why) = enroll_refusal(h, &config_path) {
            return Err(Failure::usage(why));
        }
    }
    // trial39 LOW-9: an agent of this configuration runs; it keeps its loaded enrollment
    // until it restarts, so the words below say "restart", not "start".
    let running = holder.as_ref().is_some_and(|h| !h.is_foreign());
    cordon_agent::enroll::check_input(&a.server, a.ca_fingerprint.as_deref()).map_err(Failure::usage)?;
    let hostname = a.hostname.clone().unwrap_or_else(cordon_agent::reconcile::hostname);
    // The server's hostname rule, checked before it is asked (the token stays unused):
    // no address, host id or `NAME (shortid)` form (trial18 MED-1, trial19 MED-B).
    if let Err(problem) = cordon_proto::hostname::check(hostname.trim_matches(' ')) {
        let given = if a.hostname.is_some() {
            "--hostname"
        } else {
            "this machine's hostname (give --hostname)"
        };
        // Escaped once, as the server's refusal shows it (trial28 LOW-11: `{:?}` of the
        // escaped text doubled every backslash).
        return Err(Failure::usage(format!(
            "hostname \"{}\" ({given}) is refused: {problem}",
            hostname.escape_default()
        )));
    }
    let opts = EnrollOptions {
        server: a.server.clone(),
        token: a.token.clone(),
        ca_fingerprint: a.ca_fingerprint.clone(),
        dir: a.dir.clone(),
        hostname,
        proxy: a.proxy.clone(),
    };
    // trial39 MED-2: everything local first. Without root the token was redeemed (a host
    // left on the server that never reports) before /etc/cordon could not be created.
    let config_dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    for dir in [a.dir.as_path(), config_dir] {
        if let Err(e) = cordon_agent::enroll::check_writable(dir) {
            return Err(Failure::usage(format!(
                "cannot write the enrollment to {}: {e}{}; nothing was changed and the token is still unused",
                dir.display(),
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    " (enrolling needs root: run it with sudo, or as Administrator on Windows)"
                } else {
                    ""
                }
            )));
        }
    }
    // trial34 L4: an enrollment written over another replaces it; said below.
    let previous = AgentConfig::load(&config_path).ok().map(|c| c.host_id);
    let out = enroll(&opts).await?;
    let mut cfg = out.config.clone();
    cfg.state_dir = a.state_dir.clone();
    let path = config_path;
    cfg.save(&path)?;
    if a.json {
        println!(
            "{}",
            json!({"host_id": cfg.host_id, "config": path.display().to_string(), "ca_fingerprint": out.ca_fingerprint,
                   "trusted_on_first_use": out.trusted_on_first_use, "flags": out.flags,
                   "replaced_host_id": previous.as_deref().filter(|p| *p != cfg.host_id)})
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
        if let Some(note) = replaced_words(previous.as_deref(), &cfg.host_id, &path, running) {
            eprintln!("{note}");
        }
        if let Some(hint) = local_quarantine_hint(&cfg.state_dir) {
            eprintln!("{hint}");
        }
        println!("{}", start_hint(&path, starter_here(&path), running));
    }
    Ok(())
}

/// trial34 L4: `agent enroll` over an existing enrollment replaced it without a word.
/// The note for an enrollment as `new` that replaced `previous` (the host id the config
/// at `config` named before); `None` for a first enrollment or the same host. `running`:
/// an agent of this configuration runs and goes on reporting as `previous` until it
/// restarts (trial39 LOW-9: the note called that host offline, and revoking it then cut
/// the running agent off while the new enrollment never reported).
fn replaced_words(previous: Option<&str>, new: &str, config: &std::path::Path, running: bool) -> Option<String> {
    let old = previous.filter(|p| *p != new)?;
    let revoke = format!("`cordon hosts revoke {old} --comment \"re-enrolled as {new}\"`");
    Some(if running {
        format!(
            "note: this replaced the enrollment as host {old} ({}), but the running agent keeps reporting as {old} until it restarts: restart it (below) first; {old} then stays on the server, offline — revoke it there ({revoke})",
            config.display()
        )
    } else {
        format!(
            "note: this replaced the enrollment as host {old} ({}): that host stays on the server and is offline from now on; revoke it there ({revoke})",
            config.display()
        )
    })
}

/// What starts the agent for the configuration `agent enroll` wrote (trial34 L2: a
/// package install was told to run `cordon agent run` in the foreground, outside its
/// service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Starter {
    /// The cordon-agent package's systemd unit (`cordon-agent.service`).
    Systemd,
    /// The Windows zip's service wrapper (`CordonAgent`, cordon-service.exe).
    WindowsService,
    /// The macOS tarball's launchd job, which starts once the config exists.
    Launchd,
    /// None of them for this configuration: run it by hand.
    ByHand,
}

/// [`Starter`] for `config`: a service only for the default configuration it reads,
/// found by its installed files (the unit, the wrapper next to this program, the plist).
fn starter_here(config: &std::path::Path) -> Starter {
    if config != cordon_engine::paths::default_agent_config() {
        return Starter::ByHand;
    }
    let exists = |p: &std::path::Path| p.exists();
    if cfg!(windows) {
        let wrapper = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("cordon-service.exe")));
        if wrapper.is_some_and(|w| exists(&w)) {
            return Starter::WindowsService;
        }
    } else if cfg!(target_os = "macos") {
        if exists(std::path::Path::new("/Library/LaunchDaemons/com.cordon.agent.plist")) {
            return Starter::Launchd;
        }
    } else if ["/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system"]
        .iter()
        .any(|d| exists(&std::path::Path::new(d).join("cordon-agent.service")))
    {
        return Starter::Systemd;
    }
    Starter::ByHand
}

/// The last line of `agent enroll`: how to start the agent, or, when an agent of this
/// configuration runs (`running`; trial39 LOW-9: starting an active unit does nothing),
/// how to restart it so it takes the new enrollment.
fn start_hint(config: &std::path::Path, how: Starter, running: bool) -> String {
    if running {
        return match how {
            Starter::Systemd => {
                "restart the agent so it takes the new enrollment: sudo systemctl restart cordon-agent".to_string()
            }
            Starter::WindowsService => {
                "restart the agent so it takes the new enrollment: sc.exe stop CordonAgent, then sc.exe start CordonAgent"
                    .to_string()
            }
            Starter::Launchd => {
                "restart the agent so it takes the new enrollment: sudo launchctl kickstart -k system/com.cordon.agent"
                    .to_string()
            }
            Starter::ByHand => format!(
                "restart the agent so it takes the new enrollment: stop the running `cordon agent run`, then cordon agent run --config {}",
                config.display()
            ),
        };
    }
    match how {
        Starter::Systemd => {
            "start the agent: sudo systemctl start cordon-agent (the package's unit; it also starts at every boot)"
                .to_string()
        }
        Starter::WindowsService => {
            "start the agent: sc.exe start CordonAgent (create the service first if not done yet: README.md next to cordon.exe)"
                .to_string()
        }
        Starter::Launchd => format!(
            "launchd starts the agent (com.cordon.agent) now that {} exists",
            config.display()
        ),
        Starter::ByHand => format!("start it with: cordon agent run --config {}", config.display()),
    }
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

/// Why `agent enroll` writing `config` must not go on while the agent `h` runs in this
/// network namespace: another configuration means a second agent that would fight it.
/// Re-enrolling the running agent's own configuration is fine (it takes effect when that
/// agent restarts). `None` when the name is held by a process that is no Cordon agent.
fn enroll_refusal(h: &cordon_agent::singleton::Holder, config: &std::path::Path) -> Option<String> {
    if h.is_foreign() {
        return None;
    }
    let ours = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let same = h.info.as_ref().is_some_and(|i| {
        let theirs = std::path::Path::new(&i.config);
        theirs == ours
            || matches!((std::fs::canonicalize(theirs), std::fs::canonicalize(&ours)), (Ok(a), Ok(b)) if a == b)
    });
    if same {
        return None;
    }
    Some(format!(
        "an enforcing Cordon agent already runs in this network namespace: {}. A second agent here \
         (config {}) would fight it over the firewall (the host flaps, mostly open). Stop that agent \
         first (and revoke its host on the server if it is replaced), or re-enroll into its own \
         directory; nothing was changed and the token was not used",
        h.describe(),
        config.display()
    ))
}

/// Trial15 HIGH-3: at most one enforcing agent per network namespace. `Ok(None)` for a
/// non-enforcing agent (it takes nothing, and records its management paths only while no
/// enforcing agent runs here) and when the name is squatted by a process that is no
/// Cordon agent (warned: refusing would leave the host without its agent).
fn take_namespace(
    cfg: &AgentConfig,
    config: &std::path::Path,
) -> Result<Option<cordon_agent::singleton::Singleton>, Failure> {
    use cordon_agent::singleton::{claim, ClaimError, HolderInfo};
    if !cfg.enforce {
        return Ok(None);
    }
    let me = HolderInfo {
        config: std::path::absolute(config)
            .unwrap_or_else(|_| config.to_path_buf())
            .display()
            .to_string(),
        state_dir: cfg.state_dir.display().to_string(),
        host_id: cfg.host_id.clone(),
        table: cfg.table.to_string(),
    };
    match claim(&me) {
        Ok(g) => Ok(Some(g)),
        Err(ClaimError::Held(h)) if h.is_foreign() => {
            tracing::warn!(
                holder = %h.describe(),
                "the agent's abstract socket @{} is held by a process that is no Cordon agent; \
                 running anyway, without the one-agent-per-namespace guard",
                cordon_agent::singleton::SOCKET_NAME
            );
            Ok(None)
        }
        Err(ClaimError::Held(h)) => Err(Failure::usage(format!(
            "another enforcing Cordon agent already runs in this network namespace: {}. Two agents \
             would fight over the firewall (the host flaps, mostly open); this one does not start. \
             Stop that agent first (or run this one with enforce = false, which changes nothing here)",
            h.describe()
        ))),
        Err(e) => Err(Failure::new(Code::Failed, e)),
    }
}

async fn do_run(a: RunArgs) -> Result<(), Failure> {
    // A configuration that cannot be loaded or does not make an agent is bad input (2).
    let mut cfg = AgentConfig::load(&a.config).map_err(|e| Failure::new(Code::Usage, e))?;
    if let Some(d) = a.state_dir {
        cfg.state_dir = d;
    }
    let _namespace = take_namespace(&cfg, &a.config)?;
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

    /// trial34 L2: a package install was told to run the agent in the foreground.
    #[test]
    fn enroll_says_how_this_install_starts_the_agent() {
        let cfg = std::path::Path::new("/etc/cordon/agent.toml");
        assert!(start_hint(cfg, Starter::Systemd, false).contains("systemctl start cordon-agent"));
        assert!(start_hint(cfg, Starter::WindowsService, false).contains("sc.exe start CordonAgent"));
        assert!(start_hint(cfg, Starter::Launchd, false).contains("launchd starts the agent"));
        assert_eq!(
            start_hint(cfg, Starter::ByHand, false),
            "start it with: cordon agent run --config /etc/cordon/agent.toml"
        );
        // A configuration elsewhere is never the package's service's.
        assert_eq!(starter_here(std::path::Path::new("/tmp/x/agent.toml")), Starter::ByHand);
    }

    /// trial39 LOW-9: re-enrolling while the agent runs said "start the agent" (a no-op
    /// on an active unit): the running agent kept the old enrollment. It says restart.
    #[test]
    fn enroll_while_the_agent_runs_says_restart() {
        let cfg = std::path::Path::new("/etc/cordon/agent.toml");
        for (how, want) in [
            (Starter::Systemd, "sudo systemctl restart cordon-agent"),
            (
                Starter::WindowsService,
                "sc.exe stop CordonAgent, then sc.exe start CordonAgent",
            ),
            (Starter::Launchd, "launchctl kickstart -k system/com.cordon.agent"),
            (Starter::ByHand, "stop the running `cordon agent run`"),
        ] {
            let h = start_hint(cfg, how, true);
            assert!(
                h.starts_with("restart the agent so it takes the new enrollment") && h.contains(want),
                "{h}"
            );
        }
    }

    /// trial34 L4: a second enrollment replaced the first without a word. trial39 LOW-9:
    /// with the agent running, the old host is not "offline from now on" — it reports
    /// until the agent restarts, and revoking it first would cut that agent off.
    #[test]
    fn a_replaced_enrollment_is_said() {
        let cfg = std::path::Path::new("/etc/cordon/agent.toml");
        let w = replaced_words(Some("01a6a4b5"), "d2c03ce2", cfg, false).unwrap();
        assert!(w.contains("replaced the enrollment as host 01a6a4b5"), "{w}");
        assert!(w.contains("offline from now on"), "{w}");
        assert!(w.contains("cordon hosts revoke 01a6a4b5"), "{w}");
        let w = replaced_words(Some("01a6a4b5"), "d2c03ce2", cfg, true).unwrap();
        assert!(
            w.contains("the running agent keeps reporting as 01a6a4b5 until it restarts")
                && w.contains("restart it (below) first"),
            "{w}"
        );
        assert!(!w.contains("offline from now on"), "{w}");
        assert!(w.contains("cordon hosts revoke 01a6a4b5"), "{w}");
        assert_eq!(replaced_words(None, "d2c03ce2", cfg, true), None);
        assert_eq!(replaced_words(Some("d2c03ce2"), "d2c03ce2", cfg, false), None);
    }

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

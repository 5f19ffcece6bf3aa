//! `cordon lab`: build a throwaway lab, probe the leak matrix with the host open,
//! quarantined and released again, for each Linux backend, and print the result.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::matrix::{self, Outcome, Phase};
use super::{addr, Host, Lab, LabOptions};

/// `cordon lab` arguments.
#[derive(Args, Debug)]
pub struct LabArgs {
    /// Backends to demonstrate (repeatable): nftables, iptables, netlink. Default: netlink, nftables and iptables.
    #[arg(long = "backend")]
    pub backends: Vec<String>,
    /// Also score a baseline quarantine script run with `SCRIPT 192.0.2.1 8443`
    /// (e.g. ../shared/baselines/velociraptor-linux-quarantine.sh) and `SCRIPT --remove`.
    #[arg(long, value_name = "SCRIPT")]
    pub baseline: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run a real Cordon server in the server namespace and an enrolled agent in the
    /// endpoint namespace, then quarantine and release through the REST API.
    #[arg(long, conflicts_with_all = ["backends", "baseline"])]
    pub server: bool,
    /// Keep the lab up until Ctrl-C for trying things by hand: the namespaces only (run
    /// docs/server.md's quick start in them, `cordon.example.net` resolves to the lab's
    /// server), or with `--server` a running server and enrolled agent. Prints how to use it.
    #[arg(long, conflicts_with_all = ["backends", "baseline", "json"])]
    pub keep: bool,
    /// With `--keep`: name the namespaces PREFIX-ep, PREFIX-srv, … (1 to 12 lowercase
    /// letters, digits or '-') instead of `cordon<pid>x0-…`.
    #[arg(long, requires = "keep")]
    pub prefix: Option<String>,
}

/// Result of one quarantine mechanism in the lab.
#[derive(Debug, serde::Serialize)]
pub struct Demo {
    /// `cordon (BACKEND)`, or `baseline SCRIPT` with the script's file name.
    pub mechanism: String,
    /// The leak matrix before isolating (everything should be reachable).
    pub before: Vec<Outcome>,
    /// The leak matrix while isolated.
    pub during: Vec<Outcome>,
    /// The leak matrix after releasing.
    pub after: Vec<Outcome>,
    /// Rows of `during` that reached a destination the quarantine must block.
    pub leaks: usize,
    /// Rows of `during` that did not reach a destination the quarantine must keep open.
    pub over_blocks: usize,
    /// Firewall state after release equals the state before isolate.
    pub restored: bool,
}

/// Runs the lab demonstration and returns the process exit code: 0 when every mechanism
/// had no leak and no over-block and restored the firewall, 1 otherwise or on error.
pub fn run(args: LabArgs) -> u8 {
    if args.keep {
        return keep(&args);
    }
    // Ctrl-C must not leave namespaces behind.
    let _ = ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: removing lab namespaces");
        super::teardown_all_live();
        std::process::exit(130);
    });
    match run_inner(&args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("cordon lab: {e:#}");
            1
        }
    }
}

/// `--keep`: up until Ctrl-C or SIGTERM, then everything is removed (processes first).
fn keep(args: &LabArgs) -> u8 {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("cordon lab: cannot handle Ctrl-C ({e}); not keeping a lab up that could not be removed");
        return 1;
    }
    let result = std::env::current_exe()
        .context("locating the cordon binary")
        .and_then(|exe| {
            if args.server {
                crate::server_lab::keep(&exe, args.prefix.as_deref(), &stop)
            } else {
                keep_bare(&exe, args.prefix.as_deref(), &stop)
            }
        });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon lab: {e:#}");
            1
        }
    }
}

/// The namespaces alone, for following docs/server.md's quick start by hand.
fn keep_bare(exe: &std::path::Path, prefix: Option<&str>, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
    let lab = Lab::build_named(exe, crate::server_lab::server_lab_options(), prefix)?;
    lab.serve_name(super::KEEP_NAME)?;
    let (srv, ep, oth) = (lab.ns(Host::Server), lab.ns(Host::Endpoint), lab.ns(Host::Other));
    println!("Cordon lab up (until Ctrl-C, which removes it):");
    println!("  server   {srv}  {} {}", addr::SERVER4, addr::SERVER6);
    println!("  endpoint {ep}  {} {}", addr::ENDPOINT4, addr::ENDPOINT6);
    println!(
        "  other    {oth}  {} {} (tcp/{}: what a quarantine cuts off)",
        addr::OTHER4,
        addr::OTHER6,
        addr::OTHER_TCP_PORT
    );
    println!(
        "  resolver {} {} answers {} (and {}) with the server's addresses",
        addr::RESOLVER4,
        addr::RESOLVER6,
        super::KEEP_NAME,
        addr::SERVER_NAME
    );
    println!();
    println!("Follow docs/server.md's quick start as written, prefixing each command with the");
    println!("namespace it runs in: steps 1-3 and 5 `sudo ip netns exec {srv} …`, step 4");
    println!("`sudo ip netns exec {ep} …`. The namespaces share this machine's files: give the");
    println!("endpoint's commands --dir/--state-dir of a scratch directory if this machine has a");
    println!("Cordon agent of its own (/etc/cordon, /var/lib/cordon).");
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    println!("removing the lab");
    Ok(())
}

fn run_inner(args: &LabArgs) -> Result<bool> {
    let exe = std::env::current_exe().context("locating the cordon binary")?;
    if args.server {
        return crate::server_lab::demo(&exe, args.json);
    }
    let backends = if args.backends.is_empty() {
        vec!["netlink".to_string(), "nftables".to_string(), "iptables".to_string()]
    } else {
        args.backends.clone()
    };
    let started = Instant::now();
    let lab = Lab::build(&exe, LabOptions::default())?;
    if !args.json {
        println!(
            "lab up in {} ms: endpoint {}/{} | server {}/{} tcp/{} | resolver {}/{} | other host {}/{} | DHCP server {}",
            started.elapsed().as_millis(),
            addr::ENDPOINT4, addr::ENDPOINT6, addr::SERVER4, addr::SERVER6, addr::SERVER_PORT,
            addr::RESOLVER4, addr::RESOLVER6, addr::OTHER4, addr::OTHER6, addr::DHCP4
        );
    }
    let mut demos = Vec::new();
    for backend in &backends {
        demos.push(demo_cordon(&lab, backend)?);
    }
    if let Some(script) = &args.baseline {
        demos.push(demo_baseline(&lab, script)?);
    }
    let mut all_good = true;
    for d in &demos {
        let is_cordon = d.mechanism.starts_with("cordon");
        if is_cordon {
            all_good &= d.leaks == 0 && d.over_blocks == 0 && d.restored;
        }
        if !args.json {
            println!("\n== {} ==", d.mechanism);
            print!(
                "{}",
                matrix::render_table(&[
                    Phase {
                        name: "before",
                        quarantined: false,
                        outcomes: &d.before
                    },
                    Phase {
                        name: "isolated",
                        quarantined: true,
                        outcomes: &d.during
                    },
                    Phase {
                        name: "released",
                        quarantined: false,
                        outcomes: &d.after
                    },
                ])
            );
            println!(
                "{}: {} leaks, {} over-blocks while isolated; after release: {}",
                d.mechanism,
                d.leaks,
                d.over_blocks,
                if d.restored {
                    "firewall exactly as before"
                } else {
                    "FIREWALL DIFFERS from before"
                }
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&demos)?);
    }
    Ok(all_good)
}

fn demo_cordon(lab: &Lab, backend: &str) -> Result<Demo> {
    let state_dir = std::env::temp_dir().join(format!("cordon-lab-{}-{backend}", std::process::id()));
    let state = state_dir.to_string_lossy().to_string();
    let server = format!("tcp://{}:{}", addr::SERVER_NAME, addr::SERVER_PORT);
    let before_fw = lab.firewall_snapshot()?;
    let before = lab.matrix()?;
    let out = lab.cordon(&[
        "isolate",
        "--server",
        &server,
        "--backend",
        backend,
        "--state-dir",
        &state,
    ])?;
    if !out.status.success() {
        bail!(
            "cordon isolate --backend {backend} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let during = lab.matrix()?;
    let out = lab.cordon(&["release", "--state-dir", &state])?;
    if !out.status.success() {
        bail!("cordon release failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let after = lab.matrix()?;
    let restored = lab.firewall_snapshot()? == before_fw;
    let _ = std::fs::remove_dir_all(&state_dir);
    let (leaks, over_blocks) = matrix::score(&during);
    Ok(Demo {
        mechanism: format!("cordon ({backend})"),
        before,
        during,
        after,
        leaks,
        over_blocks,
        restored,
    })
}

fn demo_baseline(lab: &Lab, script: &std::path::Path) -> Result<Demo> {
    let script = script
        .canonicalize()
        .with_context(|| format!("baseline script {}", script.display()))?;
    let s = script.to_string_lossy().to_string();
    let before_fw = lab.firewall_snapshot()?;
    let before = lab.matrix()?;
    let port = addr::SERVER_PORT.to_string();
    let srv = addr::SERVER4.to_string();
    let out = lab.exec(Host::Endpoint, &["sh", &s, &srv, &port])?;
    if !out.status.success() {
        bail!(
            "baseline script failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let during = lab.matrix()?;
    lab.exec(Host::Endpoint, &["sh", &s, "--remove"])?;
    let after = lab.matrix()?;
    let restored = lab.firewall_snapshot()? == before_fw;
    let (leaks, over_blocks) = matrix::score(&during);
    Ok(Demo {
        mechanism: format!(
            "baseline {}",
            script
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default()
        ),
        before,
        during,
        after,
        leaks,
        over_blocks,
        restored,
    })
}

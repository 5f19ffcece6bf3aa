//! Apply benchmark: in a throwaway lab, time N applies of each Cordon backend (through
//! the real binary, as a user runs it) and of a baseline script, and print median / p95
//! and the ratio.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::lab::{addr, Host, Lab, LabOptions};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Applies per mechanism.
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Backends to time (repeatable). Default: nftables and iptables.
    #[arg(long = "backend")]
    pub backends: Vec<String>,
    /// Baseline script to compare with, run as `SCRIPT 192.0.2.1 8443`.
    #[arg(long, default_value = "../shared/baselines/velociraptor-linux-quarantine.sh")]
    pub baseline: PathBuf,
}

#[derive(Debug)]
pub struct Stats {
    pub name: String,
    pub median: Duration,
    pub p95: Duration,
}

pub fn stats(name: &str, mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let pick = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
    Stats { name: name.to_string(), median: pick(0.5), p95: pick(0.95) }
}

pub fn run(a: ApplyArgs) -> u8 {
    match run_inner(&a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon bench apply: {e:#}");
            1
        }
    }
}

fn time_command(lab: &Lab, argv: &[&str]) -> Result<Duration> {
    let start = Instant::now();
    let out = lab.exec(Host::Endpoint, argv)?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!("{argv:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(took)
}

fn run_inner(a: &ApplyArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let exe = std::env::current_exe()?;
    let lab = Lab::build(&exe, LabOptions::default())?;
    let bin = exe.to_string_lossy().to_string();
    let backends = if a.backends.is_empty() { vec!["nftables".into(), "iptables".into()] } else { a.backends.clone() };
    let state = std::env::temp_dir().join(format!("cordon-bench-{}", std::process::id()));
    let state_s = state.to_string_lossy().to_string();
    let server = format!("tcp://{}:{}", addr::SERVER4, addr::SERVER_PORT);
    let mut results = Vec::new();

    let script = a.baseline.canonicalize().with_context(|| format!("baseline script {}", a.baseline.display()))?;
    let script_s = script.to_string_lossy().to_string();
    let srv = addr::SERVER4.to_string();
    let port = addr::SERVER_PORT.to_string();
    let mut samples = Vec::new();
    for _ in 0..a.runs {
        samples.push(time_command(&lab, &["sh", &script_s, &srv, &port])?);
        time_command(&lab, &["sh", &script_s, "--remove"])?;
    }
    let baseline = stats("velociraptor baseline (11 nft commands)", samples);

    for backend in &backends {
        let mut samples = Vec::new();
        let mut internal = Vec::new();
        for _ in 0..a.runs {
            // No verification: this times the rule change, like the baseline.
            let start = Instant::now();
            let out = lab.exec(
                Host::Endpoint,
                &[&bin, "isolate", "--backend", backend, "--state-dir", &state_s, "--allow", &server, "--no-dns", "--json"],
            )?;
            let took = start.elapsed();
            if !out.status.success() {
                bail!("cordon isolate --backend {backend} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            samples.push(took);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                if let Some(ms) = v.get("apply_ms").and_then(|m| m.as_f64()) {
                    internal.push(Duration::from_secs_f64(ms / 1e3));
                }
            }
            time_command(&lab, &[&bin, "release", "--state-dir", &state_s])?;
        }
        results.push(stats(&format!("cordon isolate --backend {backend} (whole process)"), samples));
        if !internal.is_empty() {
            results.push(stats(&format!("cordon {backend}: kernel transaction only"), internal));
        }
    }
    let _ = std::fs::remove_dir_all(&state);

    println!("apply latency in a lab namespace, {} runs each", a.runs);
    println!("{:<58} {:>10} {:>10} {:>16}", "mechanism", "median", "p95", "median ratio");
    let row = |s: &Stats| {
        println!(
            "{:<58} {:>8.2}ms {:>8.2}ms {:>16.3}",
            s.name,
            s.median.as_secs_f64() * 1e3,
            s.p95.as_secs_f64() * 1e3,
            s.median.as_secs_f64() / baseline.median.as_secs_f64()
        )
    };
    row(&baseline);
    for r in &results {
        row(r);
    }
    Ok(())
}

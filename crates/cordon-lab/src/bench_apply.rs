//! Apply benchmark (issues 3 and 6): in a throwaway lab namespace, time applies of each
//! Cordon backend and of a baseline script in the same run, and print median / p95 and
//! the ratio to the baseline.
//!
//! Two views per backend: the kernel change alone (the backend's `apply`, in-process, one
//! backend value kept for the whole loop), and the whole `cordon isolate` process as a
//! user runs it (start-up, validation, apply, read-back digest, state file).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use cordon_firewall::{BackendChoice, Firewall};
use cordon_policy::TableName;

use crate::lab::{addr, netns, Host, Lab};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Applies per mechanism.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Backends to time (repeatable). Default: netlink, nftables and iptables.
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

pub fn stats(name: &str, samples: Vec<Duration>) -> Stats {
    Stats {
        name: name.to_string(),
        median: crate::bench::quantile(&samples, 0.5),
        p95: crate::bench::quantile(&samples, 0.95),
    }
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

/// Times `runs` applies of one backend inside the endpoint namespace, removing the table
/// (untimed) between them so every apply is a fresh quarantine, as the baseline's is.
fn time_backend_in_process(lab: &Lab, backend: &str, runs: usize) -> Result<Vec<Duration>> {
    let choice: BackendChoice = backend.parse().map_err(anyhow::Error::msg)?;
    netns::run_in(&lab.ns(Host::Endpoint), move || {
        let fw: Box<dyn Firewall> = cordon_firewall::open(choice, &TableName::default())?;
        let policy = crate::bench::bench_policy();
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            fw.apply(&policy)?;
            samples.push(start.elapsed());
            fw.remove()?;
        }
        Ok(samples)
    })
}

/// Times `runs` re-applies of one backend over its own quarantine in force (the agent's
/// re-apply, a repair after tampering, a new policy): one untimed apply first, the table
/// removed after the last.
fn time_backend_reapply(lab: &Lab, backend: &str, runs: usize) -> Result<Vec<Duration>> {
    let choice: BackendChoice = backend.parse().map_err(anyhow::Error::msg)?;
    netns::run_in(&lab.ns(Host::Endpoint), move || {
        let fw: Box<dyn Firewall> = cordon_firewall::open(choice, &TableName::default())?;
        let policy = crate::bench::bench_policy();
        fw.apply(&policy)?;
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            fw.apply(&policy)?;
            samples.push(start.elapsed());
        }
        fw.remove()?;
        Ok(samples)
    })
}

fn run_inner(a: &ApplyArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let exe = std::env::current_exe()?;
    let lab = crate::bench::bench_lab()?;
    let bin = exe.to_string_lossy().to_string();
    let backends = if a.backends.is_empty() {
        vec!["netlink".into(), "nftables".into(), "iptables".into()]
    } else {
        a.backends.clone()
    };
    let state = std::env::temp_dir().join(format!("cordon-bench-{}", std::process::id()));
    let state_s = state.to_string_lossy().to_string();
    let server = format!("tcp://{}:{}", addr::SERVER4, addr::SERVER_PORT);
    let server6 = format!("tcp://[{}]:{}", addr::SERVER6, addr::SERVER_PORT);
    let resolvers = [addr::RESOLVER4.to_string(), addr::RESOLVER6.to_string()];

    let script = a
        .baseline
        .canonicalize()
        .with_context(|| format!("baseline script {}", a.baseline.display()))?;
    let script_s = script.to_string_lossy().to_string();
    let srv = addr::SERVER4.to_string();
    let port = addr::SERVER_PORT.to_string();
    eprintln!("timing {} applies of the baseline ...", a.runs);
    let mut samples = Vec::new();
    for _ in 0..a.runs {
        samples.push(time_command(&lab, &["sh", &script_s, &srv, &port])?);
        time_command(&lab, &["sh", &script_s, "--remove"])?;
    }
    let baseline = stats("velociraptor baseline (11 nft commands)", samples);

    let mut results = Vec::new();
    for backend in &backends {
        eprintln!("timing {} applies of {backend} ...", a.runs);
        results.push(stats(
            &format!("{backend}: kernel change only (in-process)"),
            time_backend_in_process(&lab, backend, a.runs)?,
        ));
        results.push(stats(
            &format!("{backend}: re-apply over it (in-process)"),
            time_backend_reapply(&lab, backend, a.runs)?,
        ));
        let mut samples = Vec::new();
        for _ in 0..a.runs {
            // Same policy as the lab; no verification (the baseline has none either).
            let start = Instant::now();
            let out = lab.exec(
                Host::Endpoint,
                &[
                    &bin,
                    "isolate",
                    "--backend",
                    backend,
                    "--state-dir",
                    &state_s,
                    "--allow",
                    &server,
                    "--allow",
                    &server6,
                    "--resolver",
                    &resolvers[0],
                    "--resolver",
                    &resolvers[1],
                ],
            )?;
            let took = start.elapsed();
            if !out.status.success() {
                bail!(
                    "cordon isolate --backend {backend} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            samples.push(took);
            time_command(&lab, &[&bin, "release", "--state-dir", &state_s])?;
        }
        results.push(stats(&format!("{backend}: whole `cordon isolate` process"), samples));
    }
    let _ = std::fs::remove_dir_all(&state);

    println!(
        "apply latency in a lab namespace, {} runs each (lower is better)",
        a.runs
    );
    println!(
        "{:<52} {:>10} {:>10} {:>14}",
        "mechanism", "median", "p95", "ratio (median)"
    );
    let row = |s: &Stats| {
        println!(
            "{:<52} {:>8.2}ms {:>8.2}ms {:>14.3}",
            s.name,
            s.median.as_secs_f64() * 1e3,
            s.p95.as_secs_f64() * 1e3,
            s.median.as_secs_f64() / baseline.median.as_secs_f64().max(f64::MIN_POSITIVE)
        )
    };
    row(&baseline);
    for r in &results {
        row(r);
    }
    Ok(())
}

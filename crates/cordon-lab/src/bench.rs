//! `cordon bench`: speed comparisons printed side by side (targets live here, not in tests).

use clap::{Args, Subcommand};
use cordon_policy::Policy;

use crate::lab::{addr, Lab, LabOptions};

/// `cordon bench` arguments: which benchmark to run.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The benchmark.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The benchmarks; each prints Cordon's figures beside its baseline.
#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Apply latency of `cordon isolate` per backend vs the Velociraptor command sequence.
    Apply(crate::bench_apply::ApplyArgs),
    /// N simulated agents on real mTLS connections, one bulk quarantine, time to acknowledge.
    #[cfg(feature = "server")]
    Server(crate::bench_server::ServerBenchArgs),
    /// The agent processes of `bench server` (started by it).
    #[cfg(feature = "server")]
    #[command(hide = true)]
    ServerAgents(crate::bench_server::AgentsArgs),
    /// API call -> rules in force on a lab agent, p50/p99 over many cycles (needs root).
    E2e(crate::bench_e2e::E2eArgs),
    /// Exposure window after each kind of tampering: event-driven repair vs the 1 s poll
    /// (needs root; runs in a throwaway lab).
    Tamper(crate::bench_tamper::TamperArgs),
    /// The endpoint binary: size, start-up vs /bin/true, whole `cordon isolate` process
    /// in a namespace without `ip netns exec`, vs the Velociraptor sequence (needs root).
    Startup(crate::bench_startup::StartupArgs),
}

/// Runs one benchmark and returns the process exit code (0 on success; a failure is
/// printed on stderr).
pub fn run(args: BenchArgs) -> u8 {
    match args.what {
        BenchWhat::Apply(a) => crate::bench_apply::run(a),
        #[cfg(feature = "server")]
        BenchWhat::Server(a) => crate::bench_server::run(a),
        #[cfg(feature = "server")]
        BenchWhat::ServerAgents(a) => crate::bench_server::run_agents(a),
        BenchWhat::E2e(a) => crate::bench_e2e::run(a),
        BenchWhat::Tamper(a) => crate::bench_tamper::run(a),
        BenchWhat::Startup(a) => crate::bench_startup::run(a),
    }
}

/// The throwaway lab the Linux benches run in (`apply`, `tamper`): the standard lab
/// without user rules of its own, so only Cordon's tables are timed.
pub(crate) fn bench_lab() -> anyhow::Result<Lab> {
    let exe = std::env::current_exe()?;
    Lab::build(
        &exe,
        LabOptions {
            user_rules: false,
            ..LabOptions::default()
        },
    )
}

/// The policy the Linux benches apply: the lab's server (v4 and v6) and resolvers, and
/// DHCP, as `cordon lab` applies it.
pub(crate) fn bench_policy() -> Policy {
    Policy::builder()
        .server(std::net::SocketAddr::new(addr::SERVER4.into(), addr::SERVER_PORT))
        .server(std::net::SocketAddr::new(addr::SERVER6.into(), addr::SERVER_PORT))
        .resolver(addr::RESOLVER4.into())
        .resolver(addr::RESOLVER6.into())
        .dhcp(true)
        .build()
}

/// The `p`-quantile (0..=1) of `samples`, nearest rank; zero for no samples.
pub(crate) fn quantile(samples: &[std::time::Duration], p: f64) -> std::time::Duration {
    let mut v = samples.to_vec();
    v.sort();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

//! `cordon bench`: speed comparisons printed side by side (targets live here, not in tests).

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

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

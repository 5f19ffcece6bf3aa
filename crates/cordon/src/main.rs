//! `cordon`: one binary for every role (design §4).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod local;

#[derive(Parser)]
#[command(name = "cordon", version, about = "Network quarantine for incident response")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Quarantine this host: drop all traffic except the paths responders need.
    Isolate(local::IsolateArgs),
    /// Remove Cordon's quarantine rules (and nothing else).
    Release(local::ReleaseArgs),
    /// Report whether this host is isolated, released, or tampered with.
    Status(local::StatusArgs),
    /// Throwaway network-namespace lab showing the leak matrix before, during and after.
    #[cfg(target_os = "linux")]
    Lab(cordon::lab::cli::LabArgs),
    /// Benchmarks (apply latency against the Velociraptor command sequence).
    #[cfg(target_os = "linux")]
    Bench(cordon::bench::BenchArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORDON_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version with exit 0 and usage errors with 2 (design §4).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let code = match cli.command {
        Command::Isolate(a) => local::isolate(a),
        Command::Release(a) => local::release(a),
        Command::Status(a) => local::status(a),
        #[cfg(target_os = "linux")]
        Command::Lab(a) => cordon::lab::cli::run(a),
        #[cfg(target_os = "linux")]
        Command::Bench(a) => cordon::bench::run(a),
    };
    ExitCode::from(code)
}

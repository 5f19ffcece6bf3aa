//! `cordon`: one binary for every role (design §4). This crate is argument parsing and
//! printing only: the engine (`cordon-engine`), the API client (`cordon-client`), the agent
//! and the server live in their crates; `cordon lab` and `cordon bench` come from
//! `cordon-lab` behind the default `lab` feature. Failures are [`exit::Failure`]: an exit
//! code and an error whose cause chain is printed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent_cmd;
mod automation_cmd;
mod exit;
mod local;
mod remote;
#[cfg(feature = "server")]
mod server_cmd;
mod term;
mod wazuh_ar;

#[derive(Parser)]
#[command(name = "cordon", version, about = "Network quarantine for incident response")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The local verbs alone, parsed without building the command tree of every other verb
/// (issue #18: clap builds every subcommand's arguments before it looks at one, most of
/// the start-up work of `cordon isolate` that is not the kernel's). Same name, version and
/// about as [`Cli`], so help and errors read the same (test
/// `the_local_verbs_parse_and_fail_alike_without_the_other_verbs`).
#[derive(Parser)]
#[command(name = "cordon", version, about = "Network quarantine for incident response")]
struct LocalCli {
    #[command(subcommand)]
    command: LocalCommand,
}

/// The verbs that act on this host alone; the first subcommands of [`Command`].
#[derive(Subcommand)]
enum LocalCommand {
    /// Quarantine this host: drop all traffic except the paths responders need.
    Isolate(local::IsolateArgs),
    /// Remove Cordon's quarantine rules (and nothing else).
    Release(local::ReleaseArgs),
    /// Report whether this host is isolated, released, or tampered with.
    Status(local::StatusArgs),
}

impl LocalCommand {
    /// Whether `verb` (the first argument) is one of these verbs.
    fn is_local_verb(verb: Option<&std::ffi::OsString>) -> bool {
        matches!(verb.and_then(|v| v.to_str()), Some("isolate" | "release" | "status"))
    }
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Local(LocalCommand),
    #[cfg(feature = "server")]
    /// Management server: init (CA, certificates, admin token), enrollment tokens, run.
    Server(server_cmd::ServerArgs),
    /// Agent: enroll with a server, run the reconcile loop.
    Agent(agent_cmd::AgentArgs),
    /// Hosts known to the server: list, show, label, revoke.
    Hosts(remote::HostsArgs),
    /// Quarantine hosts through the server (by host or label).
    Quarantine(remote::QuarantineArgs),
    /// The server's audit log (filter; table, JSON, JSON lines or CSV).
    Audit(remote::AuditArgs),
    /// Automation rules (Halo semantics) and guardrails, incl. the kill switch.
    Rules(automation_cmd::RulesArgs),
    /// Security events received by the server and what automation did with them.
    Events(automation_cmd::EventsArgs),
    /// Automatic quarantines waiting for an admin (fleet cap reached): list, approve, deny.
    Approvals(automation_cmd::ApprovalsArgs),
    /// Notification targets (Slack, webhook) and delivery status.
    Notify(automation_cmd::NotifyArgs),
    /// Wazuh active-response program: JSON on stdin, isolate/release this host.
    #[command(name = "wazuh-ar")]
    WazuhAr(wazuh_ar::WazuhArArgs),
    /// Throwaway network-namespace lab showing the leak matrix before, during and after.
    #[cfg(all(target_os = "linux", feature = "lab"))]
    Lab(cordon_lab::lab::cli::LabArgs),
    /// Benchmarks (apply latency against the Velociraptor command sequence).
    #[cfg(all(target_os = "linux", feature = "lab"))]
    Bench(cordon_lab::bench::BenchArgs),
}

/// Help of every `--message` option, with the one limit
/// ([`cordon_policy::message::MAX_MESSAGE_CHARS`]) so the help cannot drift from it.
fn message_help(how: &str) -> String {
    format!(
        "Message shown to logged-in users ({how} {} characters)",
        cordon_policy::message::MAX_MESSAGE_CHARS
    )
}

/// A closed stdout (`cordon … | head`) ends the process quietly with 141, the status a
/// shell reports for SIGPIPE, instead of a panic with exit 101. Rust ignores SIGPIPE, so
/// `println!` panics on EPIPE; catching that one panic here covers every command, local
/// and API client, wherever it prints. Commands print only after their work is done and
/// recorded, so stopping at that point loses nothing but the output. (Restoring SIGPIPE's
/// default action instead would also kill the server and agent on a closed socket.)
fn exit_quietly_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.starts_with("failed printing to stdout") && payload.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
}

/// For a subcommand this build was compiled without (`server`, `lab`, `bench`): a message
/// saying so and where the verb lives; `None` for every other parse error.
fn left_out_verb_hint(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(verb)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let (present, home) = match verb.as_str() {
        "server" => (
            cfg!(feature = "server"),
            "the server binary (`cordon-server`, package cordon-server)",
        ),
        "lab" | "bench" => (
            cfg!(all(target_os = "linux", feature = "lab")),
            "a full build from source (`cargo build -p cordon`, default features)",
        ),
        _ => return None,
    };
    (!present).then(|| {
        format!(
            "error: `cordon {verb}` is not part of this build (the lean endpoint build has isolate, release, status, agent, wazuh-ar and the API client); use {home}"
        )
    })
}

/// The name this program was installed under, for `--version`, help and usage: the
/// server package installs the same program as `cordon-server` (so both packages fit on
/// one machine), and `cordon-server --version` must not call itself `cordon`. Any other
/// file name is `cordon`.
fn program_name(argv0: Option<&std::ffi::OsStr>) -> &'static str {
    let stem = argv0
        .map(std::path::Path::new)
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str());
    match stem {
        Some("cordon-server") => "cordon-server",
        _ => "cordon",
    }
}

/// Parses the command line under [`program_name`].
fn parse_cli<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let name = program_name(args.first().map(|a| a.as_os_str()));
    if LocalCommand::is_local_verb(args.get(1)) {
        let mut cmd = LocalCli::command().name(name);
        let mut matches = cmd.try_get_matches_from_mut(args)?;
        let local = LocalCli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))?;
        return Ok(Cli {
            command: Command::Local(local.command),
        });
    }
    let mut cmd = Cli::command().name(name);
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))
}

/// `NAME VERSION`, exactly as clap prints it for `--version`.
fn version_line(name: &str) -> String {
    format!("{name} {}", env!("CARGO_PKG_VERSION"))
}

/// `cordon --version` (or `-V`) and nothing else: answered before clap builds the command
/// tree of every subcommand (~270 KB of heap, most of the start-up page faults) and
/// before logging is set up, so the commonest liveness probe of an installed binary costs
/// little more than starting a process (issue #18). Any other command line goes to clap,
/// which prints the same line for `--version` in other positions.
fn version_fast_path(args: &[std::ffi::OsString]) -> Option<String> {
    match args {
        [argv0, flag] if flag == "--version" || flag == "-V" => {
            Some(version_line(program_name(Some(argv0.as_os_str()))))
        }
        _ => None,
    }
}

/// The musl endpoint build's allocator (see crates/cordon/Cargo.toml): musl's own mapped
/// and unmapped pages for every group of small blocks (issue #18).
#[cfg(all(target_os = "linux", target_env = "musl"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(line) = version_fast_path(&args) {
        use std::io::Write;
        // A closed stdout is not an error worth a message here either.
        let _ = writeln!(std::io::stdout(), "{line}");
        return ExitCode::SUCCESS;
    }
    exit_quietly_on_closed_stdout();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CORDON_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log written to a file or the journal keeps the
        // documented `checkpoint=ID:HASH` greppable (trial28 LOW-7, trial26 L3).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = match parse_cli(args) {
        Ok(cli) => cli,
        Err(e) => {
            // A verb this build leaves out (the lean endpoint build has no server, lab or
            // bench) is named as such, not as a typo.
            if let Some(hint) = left_out_verb_hint(&e) {
                eprintln!("{hint}");
                return ExitCode::from(2);
            }
            // clap prints help/version with exit 0 and usage errors with 2 (design §4).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let code = match cli.command {
        Command::Local(LocalCommand::Isolate(a)) => exit::report(local::isolate(a)),
        Command::Local(LocalCommand::Release(a)) => exit::report(local::release(a)),
        Command::Local(LocalCommand::Status(a)) => exit::report(local::status(a)),
        #[cfg(feature = "server")]
        Command::Server(a) => exit::report(server_cmd::run(a)),
        Command::Agent(a) => agent_cmd::run(a),
        Command::Hosts(a) => remote::hosts(a),
        Command::Quarantine(a) => remote::quarantine(a),
        Command::Audit(a) => remote::audit(a),
        Command::Rules(a) => automation_cmd::rules(a),
        Command::Events(a) => automation_cmd::events(a),
        Command::Approvals(a) => automation_cmd::approvals(a),
        Command::Notify(a) => automation_cmd::notify(a),
        Command::WazuhAr(a) => exit::report(wazuh_ar::run(a)),
        #[cfg(all(target_os = "linux", feature = "lab"))]
        Command::Lab(a) => cordon_lab::lab::cli::run(a),
        #[cfg(all(target_os = "linux", feature = "lab"))]
        Command::Bench(a) => cordon_lab::bench::run(a),
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The fault kind: a verb left out of this build reported as if it were a typo.
    #[test]
    fn a_verb_left_out_of_the_build_is_named_as_such() {
        let Err(e) = <super::Cli as clap::Parser>::try_parse_from(["cordon", "nosuchverb"]) else {
            panic!("a bogus verb parsed");
        };
        assert_eq!(super::left_out_verb_hint(&e), None, "a typo stays clap's error");
        // `lab`/`bench` exist in this (default-feature, Linux) test build, so parse fine;
        // `server` is checked against the build's features.
        let server = <super::Cli as clap::Parser>::try_parse_from(["cordon", "server", "--help"]);
        if cfg!(feature = "server") {
            assert!(server.is_err_and(|e| e.kind() == clap::error::ErrorKind::DisplayHelp));
        } else {
            let e = server.err().unwrap();
            let hint = super::left_out_verb_hint(&e).unwrap();
            assert!(hint.contains("cordon-server"), "{hint}");
        }
    }

    /// The fault kind: one program installed under two names reporting the wrong one
    /// (`cordon-server --version` printed "cordon").
    #[test]
    fn the_program_names_itself_by_the_name_it_was_installed_under() {
        let version = |argv0: &str| match super::parse_cli([argv0, "--version"]) {
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => e.to_string(),
            other => panic!("--version did not print the version: {:?}", other.err()),
        };
        assert!(version("/usr/bin/cordon-server").starts_with("cordon-server "));
        assert!(version("cordon-server.exe").starts_with("cordon-server "));
        assert!(version("/usr/bin/cordon").starts_with("cordon "));
        assert!(version("cordon.exe").starts_with("cordon "));
    }

    /// The `--version` fast path prints exactly what clap prints, under either name, and
    /// takes only the bare `--version` / `-V`.
    #[test]
    fn the_version_fast_path_says_what_clap_says() {
        use clap::CommandFactory;
        let os = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        for name in ["cordon", "cordon-server"] {
            let clap_line = super::Cli::command().name(name).render_version();
            for flag in ["--version", "-V"] {
                let fast = super::version_fast_path(&os(&[&format!("/usr/bin/{name}"), flag])).unwrap();
                assert_eq!(format!("{fast}\n"), clap_line, "{name} {flag}");
            }
        }
        assert_eq!(super::version_fast_path(&os(&["cordon", "status", "--version"])), None);
        assert_eq!(super::version_fast_path(&os(&["cordon"])), None);
        assert_eq!(super::version_fast_path(&os(&["cordon", "--versions"])), None);
    }

    /// The fault kind: a shortcut parser that answers differently from the full one.
    /// The local verbs are parsed without the other verbs' command tree; every command
    /// line below (help, errors, good ones) must give the same result, byte for byte,
    /// through the full [`super::Cli`].
    #[test]
    fn the_local_verbs_parse_and_fail_alike_without_the_other_verbs() {
        use clap::FromArgMatches;
        let full = |argv: &[&str]| -> String {
            let mut cmd = super::Cli::command().name("cordon");
            match cmd.try_get_matches_from_mut(argv) {
                Ok(mut m) => match super::Cli::from_arg_matches_mut(&mut m) {
                    Ok(cli) => match cli.command {
                        super::Command::Local(l) => format!("ok {}", debug_local(&l)),
                        _ => "ok, not a local verb".into(),
                    },
                    Err(e) => {
                        let e = e.format(&mut cmd);
                        format!("err {:?} {e}", e.kind())
                    }
                },
                Err(e) => format!("err {:?} {e}", e.kind()),
            }
        };
        let fast = |argv: &[&str]| -> String {
            match super::parse_cli(argv) {
                Ok(cli) => match cli.command {
                    super::Command::Local(l) => format!("ok {}", debug_local(&l)),
                    _ => "ok, not a local verb".into(),
                },
                Err(e) => format!("err {:?} {e}", e.kind()),
            }
        };
        let cases: &[&[&str]] = &[
            &["cordon", "isolate", "--help"],
            &["cordon", "isolate", "-h"],
            &["cordon", "release", "--help"],
            &["cordon", "status", "--help"],
            &[
                "cordon",
                "isolate",
                "--allow",
                "tcp://192.0.2.1:443",
                "--resolver",
                "192.0.2.53",
                "--dry-run",
            ],
            &[
                "cordon",
                "isolate",
                "--server",
                "https://198.51.100.7",
                "--json",
                "--table",
                "t1",
            ],
            &["cordon", "isolate", "--reapply", "--allow", "192.0.2.1"],
            &["cordon", "isolate", "--verify-timeout", "0"],
            &["cordon", "isolate", "--verify-timeout", "1e-9"],
            &["cordon", "isolate", "--no-dns", "--resolver", "192.0.2.53"],
            &["cordon", "isolate", "--allow", "nonsense://x"],
            &["cordon", "isolate", "--bogus"],
            &["cordon", "isolate", "--version"],
            &["cordon", "release", "--force", "--source", "wazuh"],
            &["cordon", "release", "--source", "nobody"],
            &["cordon", "release", "host-1", "--comment", "done"],
            &["cordon", "status", "--json", "--state-dir", "/var/tmp/x"],
            &["cordon", "status", "extra"],
        ];
        for argv in cases {
            assert_eq!(fast(argv), full(argv), "{argv:?}");
        }
        // The shortcut is taken for the local verbs only.
        assert!(super::LocalCommand::is_local_verb(Some(&"isolate".into())));
        assert!(!super::LocalCommand::is_local_verb(Some(&"hosts".into())));
        assert!(!super::LocalCommand::is_local_verb(Some(&"--help".into())));
        assert!(!super::LocalCommand::is_local_verb(None));
    }

    fn debug_local(l: &super::LocalCommand) -> String {
        match l {
            super::LocalCommand::Isolate(a) => format!("isolate {a:?}"),
            super::LocalCommand::Release(a) => format!("release {a:?}"),
            super::LocalCommand::Status(a) => format!("status {a:?}"),
        }
    }

    /// The fault kind: a message limit written as a number in one place and changed in
    /// another. Every `--message` help names the one constant's value.
    #[test]
    fn every_message_option_states_the_one_message_limit() {
        let want = format!("{} characters", cordon_policy::message::MAX_MESSAGE_CHARS);
        let mut seen = 0;
        let mut stack = vec![super::Cli::command()];
        while let Some(cmd) = stack.pop() {
            for arg in cmd.get_arguments().filter(|a| a.get_long() == Some("message")) {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(help.contains(&want), "{}: {help:?}", cmd.get_name());
                seen += 1;
            }
            stack.extend(cmd.get_subcommands().cloned());
        }
        assert!(seen >= 2, "found only {seen} --message options");
    }
}

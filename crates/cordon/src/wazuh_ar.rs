//! `cordon wazuh-ar`: Cordon as a Wazuh (4.2+) active-response program. The protocol
//! (execd's messages, `check_keys`, `continue`/`abort`) and the ossec.conf reading are
//! pure functions in `cordon-wazuh`, whose module documentation describes the exchange;
//! this program reads the lines (each wait bounded), acts through the engine and appends
//! one JSON line to the active-response log FIRST, then prints it on stdout once stdout no
//! longer carries the protocol. Invalid input changes nothing and exits 2.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;
use cordon_engine::{ClaimSource, Engine, EngineError, IsolateRequest};
use cordon_policy::AllowSpec;
use cordon_wazuh::{
    check_keys_message, managers_from_ossec_conf, parse, parse_answer, Answer, ArAction, ArInputError, ArRequest,
};

use crate::exit::{self, Code, Failure};
use serde_json::{json, Value};

/// Where Wazuh keeps the active-response log on this platform's agents
/// (`LOG_FILE` of `active_responses.h`, relative to the Wazuh home).
#[cfg(target_os = "macos")]
pub const DEFAULT_LOG: &str = "/Library/Ossec/logs/active-responses.log";
#[cfg(windows)]
pub const DEFAULT_LOG: &str = r"C:\Program Files (x86)\ossec-agent\active-response\active-responses.log";
#[cfg(not(any(target_os = "macos", windows)))]
pub const DEFAULT_LOG: &str = "/var/ossec/logs/active-responses.log";

/// Longest line accepted from execd (bytes); execd's own messages are at most
/// `OS_MAXSTR` (65536).
const MAX_LINE: u64 = 1 << 20;
/// How long to wait for execd's first line and for its `continue`/`abort` answer. Execd
/// writes both without delay; the bound only keeps a broken caller from holding this
/// process forever.
const PROTOCOL_WAIT: Duration = Duration::from_secs(60);
/// How long `wazuh-ar` waits for the state lock unless `--lock-timeout` says otherwise
/// (seconds; trial15 MED-2). `wazuh-execd` runs one active response at a time and waits
/// for it without any timeout (execd.c `ExecdRun` blocks in `fgets` on the program's
/// stdout, then in `wpclose`; `execd.request_timeout`, 60 s in internal_options.conf,
/// bounds WPK upgrades only), so every second waited here holds back every other active
/// response of that agent — and the host stays open. The longest legitimate hold is
/// another Cordon run applying and verifying (its verification waits at most 10 s), so 15 s
/// covers it; a holder that keeps the lock longer is reported, naming the process.
pub const LOCK_WAIT: f64 = 15.0;
#[derive(Args, Debug)]
pub struct WazuhArArgs {
    /// Append the JSON result line here (before stdout); `-` for stdout only.
    #[arg(long, default_value = DEFAULT_LOG, value_name = "FILE")]
    pub log: PathBuf,
    /// Management server(s) that must stay reachable (e.g. the Wazuh manager
    /// `tcp://wazuh.example:1514`); also allowed as `--server` in extra_args.
    #[arg(long = "server", value_name = "URL", value_parser = parse_server)]
    pub servers: Vec<AllowSpec>,
    /// Show what would be applied, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not perform execd's `check_keys` exchange (for trying a payload by hand, e.g.
    /// `< payload.json`); execd itself always expects it on `add`.
    #[arg(long)]
    pub no_handshake: bool,
    /// Also act on alerts raised by the Wazuh manager itself (`agent.id` 000).
    #[arg(long)]
    pub allow_manager: bool,
    /// The Wazuh agent's ossec.conf: when neither this command line nor the message
    /// names a `--server`, an isolation keeps the managers of its `<client><server>`
    /// blocks reachable (the shipped wrapper passes WAZUH_HOME/etc/ossec.conf).
    #[arg(long, value_name = "FILE")]
    pub ossec_conf: Option<PathBuf>,
    #[command(flatten)]
    pub common: crate::local::Common,
}

fn parse_server(s: &str) -> Result<AllowSpec, String> {
    AllowSpec::parse_server(s).map_err(|e| e.to_string())
}

fn now() -> String {
    cordon_engine::state::now_rfc3339()
}

fn base_line(req: Option<&ArRequest>) -> Value {
    match req {
        None => json!({"timestamp": now(), "program": "cordon-wazuh-ar"}),
        Some(r) => json!({
            "timestamp": now(),
            "program": "cordon-wazuh-ar",
            "command": r.command.as_str(),
            "trigger": r.trigger.as_str(),
            "action": r.action.as_str(),
            "requested_by": r.requested_by,
            "rule_id": r.rule_id,
            "alert_id": r.alert_id,
            "agent": r.agent,
            "allow": r.allow.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        }),
    }
}

/// Where the result line goes besides the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Stdout,
    /// Stdout still belongs to execd's protocol (an `add` before the exchange): stderr.
    Stderr,
}

/// Appends the line to the log, then prints it. A closed stdout/stderr (execd closes its
/// end right after answering) is normal and ignored.
fn emit(log: &Path, line: &Value, out: Out) {
    let text = line.to_string();
    if log.as_os_str() != "-" {
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        // Created 0640 like Wazuh's own logs (root:wazuh): the lines carry the analyst's
        // message and allowed addresses, so no world read; group read for Wazuh's readers.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o640);
        }
        let res = opts.open(log).and_then(|mut f| writeln!(f, "{text}"));
        if let Err(e) = res {
            let _ = writeln!(std::io::stderr(), "cordon: cannot append to {}: {e}", log.display());
        }
    }
    let _ = match out {
        Out::Stdout => writeln!(std::io::stdout(), "{text}").and_then(|_| std::io::stdout().flush()),
        Out::Stderr => writeln!(std::io::stderr(), "{text}"),
    };
}

/// Why a run of `wazuh-ar` did not act. `kind()` is the log line's `error` key (a
/// stable name Wazuh rules and scripts match), `Display` its `detail`, and [`code`](Self::code)
/// the exit status README documents.
#[derive(Debug, thiserror::Error)]
enum ArError {
    /// execd's line did not arrive (stdin closed, unreadable, or silent for
    /// [`PROTOCOL_WAIT`]): `invalid_input`, exit 2, nothing changed.
    #[error("{0}")]
    NoInput(String),
    /// execd's message is not one Cordon accepts: `invalid_input`, exit 2.
    #[error(transparent)]
    Input(#[from] ArInputError),
    /// An alert raised by the manager itself without `--allow-manager`: `manager_alert`
    /// (result `refused`), exit 2.
    #[error("{0}")]
    ManagerAlert(&'static str),
    /// An isolation that names no manager to keep reachable: `no_server`, exit 2.
    #[error("{0}")]
    NoServer(String),
    /// The `check_keys` exchange with execd failed after the request was accepted:
    /// `protocol`, exit 1.
    #[error("{0}")]
    Protocol(String),
    /// The engine refused or failed: its own kind and the exit code of its class
    /// ([`exit::engine_code`]).
    #[error("{}", .0.detail())]
    Engine(#[from] EngineError),
}

impl ArError {
    /// The log line's `error` key.
    fn kind(&self) -> &'static str {
        match self {
            ArError::NoInput(_) | ArError::Input(_) => "invalid_input",
            ArError::ManagerAlert(_) => "manager_alert",
            ArError::NoServer(_) => "no_server",
            ArError::Protocol(_) => "protocol",
            ArError::Engine(e) => e.kind(),
        }
    }

    /// The exit status (README, "Exit codes").
    fn code(&self) -> Code {
        match self {
            ArError::NoInput(_) | ArError::Input(_) | ArError::ManagerAlert(_) | ArError::NoServer(_) => Code::Usage,
            ArError::Protocol(_) => Code::Failed,
            ArError::Engine(e) => exit::engine_code(e),
        }
    }
}

/// Completes the log line with the result and emits it ([`emit`]). The line is the
/// whole report, so a failure comes back [`Failure::reported`]: only its exit code is left.
fn finish(log: &Path, line: Value, result: Result<Value, ArError>, out: Out) -> Result<(), Failure> {
    let (line, outcome) = complete(line, result);
    emit(log, &line, out);
    outcome
}

/// The log line with the result's keys (`result`, `error`, `detail`, `exit_code`, or the
/// success's own), and the run's outcome. Pure.
fn complete(mut line: Value, result: Result<Value, ArError>) -> (Value, Result<(), Failure>) {
    let outcome = match result {
        Ok(extra) => {
            if line.get("result").is_none() {
                line["result"] = json!("ok");
            }
            if let (Some(l), Some(e)) = (line.as_object_mut(), extra.as_object()) {
                l.extend(e.clone());
            }
            line["exit_code"] = json!(0);
            Ok(())
        }
        Err(err) => {
            let refused = matches!(err, ArError::ManagerAlert(_));
            line["result"] = json!(if refused { "refused" } else { "error" });
            line["error"] = json!(err.kind());
            line["detail"] = json!(err.to_string());
            line["exit_code"] = json!(err.code().as_u8());
            Err(Failure::new(err.code(), err).reported())
        }
    };
    (line, outcome)
}

/// Reads stdin line by line on a thread, so every wait has a bound.
struct Lines(mpsc::Receiver<std::io::Result<Option<String>>>);

impl Lines {
    fn stdin() -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            loop {
                let mut buf = String::new();
                let res = (&mut lock).take(MAX_LINE).read_line(&mut buf);
                let done = !matches!(res, Ok(n) if n > 0);
                let msg = res.map(|n| (n > 0).then_some(buf));
                if tx.send(msg).is_err() || done {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// The next line; `what` names it in errors.
    fn next(&self, what: &str) -> Result<String, String> {
        match self.0.recv_timeout(PROTOCOL_WAIT) {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err(format!("stdin closed before {what}")),
            Ok(Err(e)) => Err(format!("cannot read {what} from stdin: {e}")),
            Err(_) => Err(format!("no {what} within {} s", PROTOCOL_WAIT.as_secs())),
        }
    }
}

/// Runs one active response: reads execd's message, acts, and writes the one log line.
///
/// # Errors
/// The run's failure, already reported as the log line ([`Failure::reported`]): only
/// its exit code is left for [`exit::report`].
pub fn run(a: WazuhArArgs) -> Result<(), Failure> {
    let lines = Lines::stdin();
    let input = match lines.next("execd's message") {
        Ok(l) => l,
        Err(why) => return finish(&a.log, base_line(None), Err(ArError::NoInput(why)), Out::Stderr),
    };
    let req = match parse(&input) {
        Ok(r) => r,
        Err(why) => return finish(&a.log, base_line(None), Err(why.into()), Out::Stderr),
    };
    let mut line = base_line(Some(&req));
    if req.action == ArAction::IgnoreDelete {
        line["result"] = json!("ignored");
        let why = "execd sends delete when a <timeout> ends and for every pending response whenever it stops \
                   (agent restart, shared-configuration push); Cordon releases only on an explicit release";
        return finish(&a.log, line, Ok(json!({"detail": why})), Out::Stdout);
    }
    if req.raised_by_manager() && !a.allow_manager {
        let why = "the alert was raised by the Wazuh manager itself (agent.id 000); \
                   not isolating the manager (use --allow-manager to allow it)";
        return finish(&a.log, line, Err(ArError::ManagerAlert(why)), Out::Stderr);
    }
    // `--lock-timeout` (trial15 MED-2: it was ignored here, so execd — single-threaded —
    // waited the default 60 s on any process holding the state lock), by default
    // [`LOCK_WAIT`].
    let eng = Engine::new(
        a.common.table_or_default(),
        a.common.state_dir.clone(),
        a.common.backend,
    )
    .with_lock_timeout(a.common.lock_wait(LOCK_WAIT))
    // A Wazuh-ordered isolation stays in force when the state directory cannot record
    // it (a full disk, trial17 HIGH-1): `unrecorded` in the result says so.
    .keeping_unrecorded();
    // An isolation is checked before the exchange (bad input changes nothing and execd
    // stops waiting on a silent stdout): it must keep a manager reachable — without one
    // the host is cut off from Wazuh and its release could never arrive (an on-demand
    // API call carries only its `arguments`, not the command's <extra_args>) — and its
    // names must resolve.
    let mut servers = [a.servers.clone(), req.servers.clone()].concat();
    let mut allow = req.allow.clone();
    if req.action == ArAction::Isolate && servers.is_empty() {
        match managers_of(a.ossec_conf.as_deref()) {
            Ok((found, enrollment)) => {
                servers = found;
                for e in enrollment {
                    if !allow.contains(&e) {
                        allow.push(e);
                    }
                }
            }
            Err(why) => return finish(&a.log, line, Err(ArError::NoServer(why)), Out::Stderr),
        }
    }
    let ir = IsolateRequest {
        allow,
        servers,
        dns: !req.no_dns,
        dhcp: !req.no_dhcp,
        message: req.message.clone(),
        verify_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    if req.action == ArAction::Isolate {
        if let Err(e) = eng.resolve(&ir) {
            return finish(&a.log, line, Err(e.into()), Out::Stderr);
        }
    }
    if !a.no_handshake {
        // Stdout carries only this line until execd has answered.
        let keys = check_keys_message(&req.keys());
        let sent = writeln!(std::io::stdout(), "{keys}").and_then(|_| std::io::stdout().flush());
        if let Err(e) = sent {
            let why = format!("cannot send check_keys to execd: {e}");
            return finish(&a.log, line, Err(ArError::Protocol(why)), Out::Stderr);
        }
        let answer = lines
            .next("execd's continue/abort answer")
            .and_then(|l| parse_answer(&l).map_err(|e| e.to_string()));
        match answer {
            Ok(Answer::Continue) => {}
            Ok(Answer::Abort) => {
                line["result"] = json!("aborted");
                let why = "execd answered abort: the same response is already in its timeout list \
                           (it only refreshed that timeout); nothing changed";
                return finish(&a.log, line, Ok(json!({"detail": why})), Out::Stdout);
            }
            Err(why) => return finish(&a.log, line, Err(ArError::Protocol(why)), Out::Stderr),
        }
    }
    let result = match req.action {
        ArAction::Isolate => {
            if a.dry_run {
                eng.dry_run(&ir)
                    .map(|(backend, text, _)| json!({"dry_run": true, "backend": backend, "ruleset": text}))
                    .map_err(ArError::from)
            } else {
                eng.isolate_as(ClaimSource::Wazuh, &ir)
                    .map(|c| json!({"state": c.outcome.state, "not_isolated": c.outcome.not_isolated, "backend": c.outcome.backend, "digest": c.outcome.digest,
                        "verified_via": c.outcome.verified_via, "verification": c.outcome.verification, "claims": c.claims,
                        "unrecorded": c.outcome.unrecorded, "warnings": c.outcome.warnings}))
                    .map_err(ArError::from)
            }
        }
        ArAction::Release if a.dry_run => Ok(json!({"dry_run": true})),
        ArAction::Release => eng
            .release_as(ClaimSource::Wazuh, false)
            .map(|o| json!({"state": o.state, "released_claim": o.released_claim, "claims": o.claims, "warning": o.warning}))
            .map_err(ArError::from),
        ArAction::IgnoreDelete => Ok(json!({})),
    };
    finish(&a.log, line, result, Out::Stdout)
}

/// The managers an isolation keeps reachable when no `--server` was given: those of the
/// Wazuh agent's ossec.conf (`ossec_conf`), as servers, and their enrollment ports
/// (authd), as extra allowed destinations.
///
/// # Errors
/// A sentence for the log when there is no file, it cannot be read, or it names no
/// manager: the isolation is refused (exit 2) rather than cutting the host off from Wazuh.
fn managers_of(ossec_conf: Option<&Path>) -> Result<(Vec<AllowSpec>, Vec<AllowSpec>), String> {
    let refuse = |why: String| {
        format!(
            "{why}; an isolation without a management server would cut this host off from the Wazuh \
             manager, so its release could never arrive: give --server tcp://MANAGER:1514 (udp://MANAGER:1514 \
             for an agent in UDP mode; in the command's <extra_args>, or in an on-demand call's \"arguments\"); \
             nothing was changed"
        )
    };
    let Some(path) = ossec_conf else {
        return Err(refuse(
            "no --server given and no --ossec-conf to read the manager from".into(),
        ));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| refuse(format!("no --server given and {} cannot be read ({e})", path.display())))?;
    let found = managers_from_ossec_conf(&text);
    if found.servers.is_empty() {
        return Err(refuse(format!(
            "no --server given and {} names no manager (<client><server><address>)",
            path.display()
        )));
    }
    let parse = |list: &[String], server: bool| -> Result<Vec<AllowSpec>, String> {
        list.iter()
            .map(|s| {
                let spec = if server {
                    AllowSpec::parse_server(s)
                } else {
                    AllowSpec::parse(s)
                };
                spec.map_err(|e| refuse(format!("{}: manager {s}: {e}", path.display())))
            })
            .collect()
    };
    Ok((parse(&found.servers, true)?, parse(&found.enrollment, false)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// review14 MED-B: the log line's `error`, `result` and `exit_code` come from one
    /// typed error; the names and codes Wazuh rules match stay what they were.
    #[test]
    fn each_failure_keeps_its_log_kind_and_exit_code() {
        let input = parse("not json").unwrap_err();
        let cases: Vec<(ArError, &str, &str, u8)> = vec![
            (ArError::NoInput("stdin closed".into()), "invalid_input", "error", 2),
            (ArError::Input(input), "invalid_input", "error", 2),
            (ArError::ManagerAlert("manager"), "manager_alert", "refused", 2),
            (ArError::NoServer("none".into()), "no_server", "error", 2),
            (ArError::Protocol("closed".into()), "protocol", "error", 1),
            (EngineError::Invalid("bad".into()).into(), "invalid_input", "error", 2),
        ];
        for (err, kind, result, code) in cases {
            let detail = err.to_string();
            let (line, outcome) = complete(json!({"program": "cordon-wazuh-ar"}), Err(err));
            assert_eq!(
                line,
                json!({"program": "cordon-wazuh-ar", "result": result, "error": kind, "detail": detail, "exit_code": code})
            );
            let f = outcome.unwrap_err();
            assert_eq!(f.code.as_u8(), code, "{kind}");
            assert_eq!(exit::report(Err(f)), code, "{kind}: printed only as the log line");
        }
        let (line, outcome) = complete(json!({}), Ok(json!({"state": "isolated"})));
        assert_eq!(line, json!({"result": "ok", "state": "isolated", "exit_code": 0}));
        assert!(outcome.is_ok());
    }
}

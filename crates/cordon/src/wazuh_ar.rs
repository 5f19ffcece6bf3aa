//! `cordon wazuh-ar`: Cordon as a Wazuh (4.2+) active-response program.
//!
//! The protocol is `wazuh-execd`'s (Wazuh 4.2–4.14 `src/os_execd/execd.c`, `ExecdRun`,
//! and the helpers every stock program uses, `src/active-response/active_responses.c`):
//!
//! * **`add`** (execd.c `ExecdRun`): execd writes ONE JSON line on stdin and keeps stdin
//!   open, then blocks (no timeout) in `fgets` on the program's stdout for the
//!   `check_keys` message. It writes a second line, `"command":"continue"` (act) or
//!   `"command":"abort"` (the same keys are already in its timeout list: it only refreshed
//!   that timeout), closes both pipes and waits for the program to exit. So this program
//!   reads exactly one line, answers
//!   `{"version":1,"origin":{"name":"cordon-ar","module":"active-response"},"command":"check_keys","parameters":{"keys":["isolate"]}}`
//!   and acts only on `continue`.
//! * **`delete`** (execd.c `ExecdTimeoutRun` and `ExecdShutdown`): one line, stdin only,
//!   no exchange. Execd sends it when a `<timeout>` runs out, but also for every pending
//!   timed response whenever it stops (agent restart, and agents restart on every
//!   shared-configuration push), and never after a crash. A `delete` therefore says
//!   nothing about whether the host should be released: it is logged and **ignored**.
//!   Isolation ends only by an explicit release (the on-demand `release` payload below,
//!   `cordon release`, or the Cordon server).
//!
//! Which command: a rule-triggered message carries the full alert (it always has
//! `alert.rule`); `add` isolates. Many stock decoders fill `data.action`, so that field is
//! NOT read from such alerts. An on-demand message (C-LR style, sent with
//! `PUT /active-response`, whose `alert` is the caller's object without `rule`) may say
//! `alert.data.action` = `isolate` | `release` (default `isolate`). Execd rewrites every
//! message's `command` to `add` and `origin.module` to `wazuh-execd` (execd.c, after
//! `GetCommandbyName`), so neither can tell the two kinds apart.
//!
//! Alerts raised by the manager itself (`agent.id` `000`) run `<location>local</location>`
//! responses on the manager (analysisd `alerts/exec.c`, `OS_Exec`); they are refused
//! unless `--allow-manager` is given.
//!
//! Every run appends one JSON line to the active-response log FIRST, then prints it on
//! stdout once stdout no longer carries the protocol; a stdout that execd has already
//! closed is normal. Parsing is [`parse`], a pure function; invalid input changes nothing
//! and exits 2. The line is read and the answer awaited by hand (no library speaks this
//! protocol); both waits are bounded.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;
use cordon_engine::{ClaimSource, Engine, IsolateRequest};
use cordon_policy::AllowSpec;
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
/// The name this program gives itself in `check_keys` (`origin.name`), as execd would
/// see it (`basename` of the program).
const AR_NAME: &str = "cordon-ar";

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

/// The two commands execd sends (it rewrites every `add` message's `command` to `add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArCommand {
    Add,
    Delete,
}

impl ArCommand {
    fn as_str(self) -> &'static str {
        match self {
            ArCommand::Add => "add",
            ArCommand::Delete => "delete",
        }
    }
}

/// Who asked: an alert matched a rule, or someone called the API on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The alert has `rule` (analysisd always sends the full alert).
    Rule,
    /// The alert has no `rule` (`PUT /active-response` with the caller's own object).
    OnDemand,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Rule => "rule",
            Trigger::OnDemand => "on_demand",
        }
    }
}

/// What this run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArAction {
    Isolate,
    Release,
    /// A `delete`: logged, nothing changed (see the module documentation).
    IgnoreDelete,
}

impl ArAction {
    fn as_str(self) -> &'static str {
        match self {
            ArAction::Isolate => "isolate",
            ArAction::Release => "release",
            ArAction::IgnoreDelete => "none",
        }
    }
}

/// A parsed active-response request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArRequest {
    pub command: ArCommand,
    pub trigger: Trigger,
    pub action: ArAction,
    pub allow: Vec<AllowSpec>,
    pub servers: Vec<AllowSpec>,
    pub message: Option<String>,
    pub no_dns: bool,
    pub no_dhcp: bool,
    /// Who asked (on-demand `alert.data.user`).
    pub requested_by: Option<String>,
    pub rule_id: Option<String>,
    pub alert_id: Option<String>,
    pub agent: Option<String>,
    /// `alert.agent.id`: `000` is the manager itself.
    pub agent_id: Option<String>,
}

impl ArRequest {
    /// The keys sent in `check_keys`; execd appends them to the program name to find a
    /// repeated response in its timeout list (execd.c, `rkey`).
    pub fn keys(&self) -> Vec<&'static str> {
        vec![self.action.as_str()]
    }

    /// True when the alert was raised by the Wazuh manager itself.
    pub fn raised_by_manager(&self) -> bool {
        self.trigger == Trigger::Rule && self.agent_id.as_deref() == Some("000")
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Decodes `%XX` escapes, the encoding for `--message` text in `<extra_args>` (which
/// analysisd splits on every space, `ar_json.c`).
pub fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape in {s:?} (write %20 for a space, %25 for %)"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8 text"))
}

/// Parses the line execd writes (the shape `get_json_from_input` of
/// `active_responses.c` accepts: `version` number, `origin` object, `command` string,
/// `parameters` object).
pub fn parse(input: &str) -> Result<ArRequest, String> {
    let v: Value = serde_json::from_str(input.trim()).map_err(|e| format!("active-response input is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("active-response input must be a JSON object")?;
    if !obj.get("version").is_some_and(Value::is_number) {
        return Err("version is missing or not a number (expected execd's message, Wazuh 4.2+)".into());
    }
    if !obj.get("origin").is_some_and(Value::is_object) {
        return Err("origin is missing or not an object".into());
    }
    let params = match obj.get("parameters") {
        Some(Value::Object(p)) => p,
        _ => return Err("parameters is missing or not an object".into()),
    };
    let command = match obj.get("command").and_then(Value::as_str) {
        Some("add") => ArCommand::Add,
        Some("delete") => ArCommand::Delete,
        Some(other) => return Err(format!("command {other:?} must be \"add\" or \"delete\"")),
        None => return Err("command is missing (expected \"add\" or \"delete\")".into()),
    };
    let alert = match params.get("alert") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(a @ Value::Object(_)) => a.clone(),
        Some(_) => return Err("parameters.alert must be an object".into()),
    };
    let trigger = if alert.get("rule").is_some_and(Value::is_object) {
        Trigger::Rule
    } else {
        Trigger::OnDemand
    };
    let action = match (command, trigger) {
        (ArCommand::Delete, _) => ArAction::IgnoreDelete,
        (ArCommand::Add, Trigger::Rule) => ArAction::Isolate,
        (ArCommand::Add, Trigger::OnDemand) => match alert.pointer("/data/action") {
            None | Some(Value::Null) => ArAction::Isolate,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("isolate") => ArAction::Isolate,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("release") => ArAction::Release,
            Some(other) => {
                return Err(format!(
                    "on-demand alert.data.action {other} must be \"isolate\" or \"release\""
                ))
            }
        },
    };
    let args: Vec<String> = match params.get("extra_args") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or("every extra_args item must be a string")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("parameters.extra_args must be a list of strings".into()),
    };
    let mut req = ArRequest {
        command,
        trigger,
        action,
        allow: vec![],
        servers: vec![],
        message: None,
        no_dns: false,
        no_dhcp: false,
        requested_by: match trigger {
            Trigger::OnDemand => text(alert.pointer("/data/user")),
            Trigger::Rule => None,
        },
        rule_id: text(alert.pointer("/rule/id")),
        alert_id: text(alert.get("id")),
        agent: text(alert.pointer("/agent/name")),
        agent_id: text(alert.pointer("/agent/id")),
    };
    let mut it = args.into_iter().filter(|a| !a.is_empty());
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--server" => {
                let s = value("--server")?;
                req.servers
                    .push(AllowSpec::parse_server(&s).map_err(|e| e.to_string())?);
            }
            "--allow" => {
                let s = value("--allow")?;
                req.allow.push(AllowSpec::parse(&s).map_err(|e| e.to_string())?);
            }
            "--message" => req.message = Some(percent_decode(&value("--message")?)?),
            "--no-dns" => req.no_dns = true,
            "--no-dhcp" => req.no_dhcp = true,
            f if f.starts_with("--") => return Err(format!("unknown option {f:?} in extra_args")),
            spec => req
                .allow
                .push(AllowSpec::parse(spec).map_err(|e| format!("allowed address: {e}"))?),
        }
    }
    if req.action == ArAction::Isolate && req.message.is_none() {
        let why = match (&req.rule_id, text(alert.pointer("/rule/description"))) {
            (Some(id), Some(d)) => format!(" (Wazuh rule {id}: {d})"),
            (Some(id), None) => format!(" (Wazuh rule {id})"),
            _ => String::new(),
        };
        let m = format!("This computer was isolated from the network by the security team{why}.");
        req.message = Some(cordon_policy::message::sanitize_message(&m));
    }
    Ok(req)
}

/// The `check_keys` line (`build_json_keys_message` of `active_responses.c`).
pub fn check_keys_message(keys: &[&str]) -> String {
    json!({
        "version": 1,
        "origin": {"name": AR_NAME, "module": "active-response"},
        "command": "check_keys",
        "parameters": {"keys": keys},
    })
    .to_string()
}

/// Execd's answer to `check_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Continue,
    Abort,
}

/// Parses execd's second line (`send_keys_and_check_message` of `active_responses.c`).
pub fn parse_answer(line: &str) -> Result<Answer, String> {
    let v: Value = serde_json::from_str(line.trim()).map_err(|e| format!("execd's answer is not JSON: {e}"))?;
    match v.get("command").and_then(Value::as_str) {
        Some("continue") => Ok(Answer::Continue),
        Some("abort") => Ok(Answer::Abort),
        Some(other) => Err(format!("execd answered {other:?}, expected \"continue\" or \"abort\"")),
        None => Err("execd's answer has no command".into()),
    }
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

type Failure = (String, String, u8);

fn finish(log: &Path, mut line: Value, result: Result<Value, Failure>, out: Out) -> u8 {
    let code = match result {
        Ok(extra) => {
            if line.get("result").is_none() {
                line["result"] = json!("ok");
            }
            if let (Some(l), Some(e)) = (line.as_object_mut(), extra.as_object()) {
                l.extend(e.clone());
            }
            0
        }
        Err((kind, detail, code)) => {
            line["result"] = json!(if kind == "manager_alert" { "refused" } else { "error" });
            line["error"] = json!(kind);
            line["detail"] = json!(detail);
            code
        }
    };
    line["exit_code"] = json!(code);
    emit(log, &line, out);
    code
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

pub fn run(a: WazuhArArgs) -> u8 {
    let lines = Lines::stdin();
    let input = match lines.next("execd's message") {
        Ok(l) => l,
        Err(why) => {
            return finish(
                &a.log,
                base_line(None),
                Err(("invalid_input".into(), why, 2)),
                Out::Stderr,
            )
        }
    };
    let req = match parse(&input) {
        Ok(r) => r,
        Err(why) => {
            return finish(
                &a.log,
                base_line(None),
                Err(("invalid_input".into(), why, 2)),
                Out::Stderr,
            )
        }
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
        return finish(&a.log, line, Err(("manager_alert".into(), why.into(), 2)), Out::Stderr);
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
    let err = |e: cordon_engine::EngineError| (e.kind().to_string(), e.detail(), crate::local::exit_code(&e).as_u8());
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
            Err(why) => return finish(&a.log, line, Err(("no_server".into(), why, 2)), Out::Stderr),
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
            return finish(&a.log, line, Err(err(e)), Out::Stderr);
        }
    }
    if !a.no_handshake {
        // Stdout carries only this line until execd has answered.
        let keys = check_keys_message(&req.keys());
        let sent = writeln!(std::io::stdout(), "{keys}").and_then(|_| std::io::stdout().flush());
        if let Err(e) = sent {
            let why = format!("cannot send check_keys to execd: {e}");
            return finish(&a.log, line, Err(("protocol".into(), why, 1)), Out::Stderr);
        }
        let answer = lines
            .next("execd's continue/abort answer")
            .and_then(|l| parse_answer(&l));
        match answer {
            Ok(Answer::Continue) => {}
            Ok(Answer::Abort) => {
                line["result"] = json!("aborted");
                let why = "execd answered abort: the same response is already in its timeout list \
                           (it only refreshed that timeout); nothing changed";
                return finish(&a.log, line, Ok(json!({"detail": why})), Out::Stdout);
            }
            Err(why) => return finish(&a.log, line, Err(("protocol".into(), why, 1)), Out::Stderr),
        }
    }
    let result = match req.action {
        ArAction::Isolate => {
            if a.dry_run {
                eng.dry_run(&ir)
                    .map(|(backend, text, _)| json!({"dry_run": true, "backend": backend, "ruleset": text}))
                    .map_err(err)
            } else {
                eng.isolate_as(ClaimSource::Wazuh, &ir)
                    .map(|c| json!({"state": "isolated", "backend": c.outcome.backend, "digest": c.outcome.digest,
                        "verified_via": c.outcome.verified_via, "verification": c.outcome.verification, "claims": c.claims,
                        "unrecorded": c.outcome.unrecorded, "warnings": c.outcome.warnings}))
                    .map_err(err)
            }
        }
        ArAction::Release if a.dry_run => Ok(json!({"dry_run": true})),
        ArAction::Release => eng
            .release_as(ClaimSource::Wazuh, false)
            .map(|o| json!({"state": o.state, "released_claim": o.released_claim, "claims": o.claims, "warning": o.warning}))
            .map_err(err),
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

/// What a Wazuh agent's ossec.conf says about its managers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OssecManagers {
    /// The connection to each manager (wazuh-remoted): `tcp://ADDRESS:PORT`, or
    /// `udp://ADDRESS:PORT` for `<protocol>udp</protocol>` (a Wazuh 4.x agent in UDP
    /// mode talks UDP to port 1514). IPv6 literals in brackets.
    pub servers: Vec<String>,
    /// The enrollment service (wazuh-authd, always TCP): `tcp://ADDRESS:PORT` for each
    /// `<enrollment><manager_address>` (default: every server address) and
    /// `<enrollment><port>` (default 1515); empty with `<enrollment><enabled>no`.
    pub enrollment: Vec<String>,
}

/// The managers of a Wazuh agent's ossec.conf: every `<server>` inside a `<client>` block,
/// its `<address>`, `<port>` (default 1514, Wazuh's agent connection port) and
/// `<protocol>` (`tcp` default, `udp`), and the `<enrollment>` block's address and port
/// (wazuh-authd, 1515/tcp by default), comments skipped. Wazuh's own reading:
/// `src/config/client-config.c` (`Read_Client_Server`, `Read_Client_Enrollment`).
///
/// Hand-written rather than an XML parser: a real ossec.conf is several top-level
/// `<ossec_config>` blocks (not one XML document), which XML parsers refuse; only these
/// simple elements are read.
pub fn managers_from_ossec_conf(text: &str) -> OssecManagers {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("<!--") {
        plain.push_str(&rest[..i]);
        rest = rest[i..].find("-->").map_or("", |j| &rest[i + j + 3..]);
    }
    plain.push_str(rest);
    let blocks = |s: &str, tag: &str| -> Vec<String> {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut out = Vec::new();
        let mut r = s;
        while let Some(i) = r.find(&open) {
            let after = &r[i + open.len()..];
            let Some(j) = after.find(&close) else { break };
            out.push(after[..j].to_string());
            r = &after[j + close.len()..];
        }
        out
    };
    let first = |s: &str, tag: &str| blocks(s, tag).into_iter().next().map(|v| v.trim().to_string());
    let url = |scheme: &str, address: &str, port: u16| {
        if address.contains(':') {
            format!("{scheme}://[{address}]:{port}")
        } else {
            format!("{scheme}://{address}:{port}")
        }
    };
    let mut out = OssecManagers::default();
    for client in blocks(&plain, "client") {
        let mut addresses = Vec::new();
        for server in blocks(&client, "server") {
            let Some(address) = first(&server, "address").filter(|a| !a.is_empty()) else {
                continue;
            };
            let port = first(&server, "port")
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or(1514);
            let scheme = match first(&server, "protocol").map(|p| p.to_ascii_lowercase()) {
                Some(p) if p == "udp" => "udp",
                _ => "tcp",
            };
            out.servers.push(url(scheme, &address, port));
            addresses.push(address);
        }
        let enrollment = first(&client, "enrollment").unwrap_or_default();
        if first(&enrollment, "enabled").is_some_and(|e| e.eq_ignore_ascii_case("no")) {
            continue;
        }
        let port = first(&enrollment, "port")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(1515);
        let targets = match first(&enrollment, "manager_address").filter(|a| !a.is_empty()) {
            Some(a) => vec![a],
            None => addresses,
        };
        for a in targets {
            let spec = url("tcp", &a, port);
            if !out.enrollment.contains(&spec) {
                out.enrollment.push(spec);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real agent ossec.conf has several top-level blocks and comments; a server
    /// without `<port>` uses 1514.
    #[test]
    fn managers_are_read_from_every_client_server_block() {
        let conf = r#"<!-- Wazuh agent -->
<ossec_config>
  <client>
    <server>
      <address>wazuh.example.net</address>
      <port>1514</port>
      <protocol>tcp</protocol>
    </server>
    <!-- <server><address>192.0.2.99</address></server> -->
    <server>
      <address>2001:db8::14</address>
    </server>
  </client>
</ossec_config>
<ossec_config>
  <localfile><location>/var/log/auth.log</location></localfile>
  <client><server><address> 192.0.2.14 </address><port>1515</port></server></client>
</ossec_config>
"#;
        assert_eq!(
            managers_from_ossec_conf(conf).servers,
            [
                "tcp://wazuh.example.net:1514",
                "tcp://[2001:db8::14]:1514",
                "tcp://192.0.2.14:1515"
            ]
        );
        assert!(managers_from_ossec_conf("<ossec_config></ossec_config>")
            .servers
            .is_empty());
    }

    /// A Wazuh 4.x agent with `<protocol>udp</protocol>` talks UDP 1514 to its manager: the
    /// manager is a UDP server (it used to become tcp://…:1514, which the agent never
    /// uses). The enrollment port (authd, 1515/tcp) is kept for every manager unless
    /// `<enrollment>` says otherwise.
    #[test]
    fn udp_mode_managers_are_udp_servers_and_enrollment_stays_reachable() {
        let conf = r#"<ossec_config>
  <client>
    <server><address>192.0.2.30</address><port>1514</port><protocol>UDP</protocol></server>
    <server><address>2001:db8::30</address><protocol>tcp</protocol></server>
  </client>
</ossec_config>"#;
        let m = managers_from_ossec_conf(conf);
        assert_eq!(m.servers, ["udp://192.0.2.30:1514", "tcp://[2001:db8::30]:1514"]);
        assert_eq!(m.enrollment, ["tcp://192.0.2.30:1515", "tcp://[2001:db8::30]:1515"]);
        let conf = r#"<ossec_config><client>
    <server><address>192.0.2.30</address><protocol>udp</protocol></server>
    <enrollment><enabled>yes</enabled><manager_address>192.0.2.31</manager_address><port>1600</port></enrollment>
  </client></ossec_config>"#;
        let m = managers_from_ossec_conf(conf);
        assert_eq!(m.servers, ["udp://192.0.2.30:1514"]);
        assert_eq!(m.enrollment, ["tcp://192.0.2.31:1600"]);
        let off = conf.replace("<enabled>yes", "<enabled>no");
        assert!(managers_from_ossec_conf(&off).enrollment.is_empty());
    }

    /// A recorded manager-side message (what analysisd or the API send), rewritten the way
    /// execd.c `ExecdRun` does before handing it to the program.
    fn execd(name: &str, command: &str) -> String {
        let p = format!("{}/tests/fixtures/wazuh/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let Ok(mut v) = serde_json::from_str::<Value>(&text) else {
            return text;
        };
        v["command"] = json!(command);
        v["origin"]["module"] = json!("wazuh-execd");
        v["parameters"]["program"] = json!("active-response/bin/cordon-ar");
        v.to_string()
    }

    fn fixture(name: &str) -> String {
        execd(name, "add")
    }

    fn strings(v: &[AllowSpec]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rule_triggered_add_isolates_with_extra_args() {
        let r = parse(&fixture("add.json")).unwrap();
        assert_eq!(
            (r.command, r.trigger, r.action),
            (ArCommand::Add, Trigger::Rule, ArAction::Isolate)
        );
        assert_eq!(
            strings(&r.servers),
            vec!["tcp://192.0.2.1:1514", "tcp://192.0.2.1:1515"]
        );
        assert_eq!(strings(&r.allow), vec!["198.51.100.0/24"]);
        assert_eq!(r.rule_id.as_deref(), Some("100910"));
        assert_eq!(r.agent.as_deref(), Some("web1"));
        assert!(r.message.as_deref().unwrap().contains("Wazuh rule 100910"));
        assert_eq!(r.keys(), vec!["isolate"]);
    }

    #[test]
    fn delete_is_never_a_release() {
        for name in ["add.json", "clr-isolate.json", "clr-release.json"] {
            let r = parse(&execd(name, "delete")).unwrap();
            assert_eq!(
                (r.command, r.action),
                (ArCommand::Delete, ArAction::IgnoreDelete),
                "{name}"
            );
        }
    }

    #[test]
    fn on_demand_payloads_carry_the_command() {
        let r = parse(&fixture("clr-isolate.json")).unwrap();
        assert_eq!((r.trigger, r.action), (Trigger::OnDemand, ArAction::Isolate));
        assert_eq!(r.requested_by.as_deref(), Some("analyst@example.org"));
        assert_eq!(strings(&r.allow), vec!["192.0.2.50", "2001:db8::50"]);
        assert_eq!(r.message.as_deref(), Some("Isolated by the SOC, call +1 555 0100"));
        let r = parse(&fixture("clr-release.json")).unwrap();
        assert_eq!((r.trigger, r.action), (Trigger::OnDemand, ArAction::Release));
        assert_eq!(r.keys(), vec!["release"]);
    }

    #[test]
    fn stock_data_action_in_a_rule_alert_is_not_a_command() {
        // Firewall / audit decoders set data.action ("blocked", "DROP", ...).
        let r = parse(&fixture("add-data-action.json")).unwrap();
        assert_eq!((r.trigger, r.action), (Trigger::Rule, ArAction::Isolate));
        assert_eq!(r.requested_by, None);
    }

    #[test]
    fn manager_alerts_are_marked() {
        let m = fixture("add.json").replace("\"id\":\"003\"", "\"id\":\"000\"");
        assert!(parse(&m).unwrap().raised_by_manager());
        assert!(!parse(&fixture("add.json")).unwrap().raised_by_manager());
        assert!(!parse(&fixture("clr-isolate.json")).unwrap().raised_by_manager());
    }

    #[test]
    fn extra_args_message_is_percent_encoded() {
        let input = r#"{"version":1,"origin":{},"command":"add","parameters":{"extra_args":["--message=Call%20the%20SOC%20%2B1%20555"],"alert":{}}}"#;
        assert_eq!(parse(input).unwrap().message.as_deref(), Some("Call the SOC +1 555"));
        assert!(percent_decode("50%").unwrap_err().contains("%-escape"));
        assert!(percent_decode("%zz").is_err());
        assert_eq!(percent_decode("a%25b").unwrap(), "a%b");
    }

    #[test]
    fn check_keys_matches_active_responses_c() {
        let v: Value = serde_json::from_str(&check_keys_message(&["isolate"])).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["origin"]["module"], "active-response");
        assert_eq!(v["command"], "check_keys");
        assert_eq!(v["parameters"]["keys"], json!(["isolate"]));
        assert_eq!(
            parse_answer(r#"{"version":1,"origin":{},"command":"continue","parameters":{}}"#),
            Ok(Answer::Continue)
        );
        assert_eq!(parse_answer(r#"{"command":"abort"}"#), Ok(Answer::Abort));
        assert!(parse_answer(r#"{"command":"add"}"#).is_err());
        assert!(parse_answer("").is_err());
    }

    #[test]
    fn malformed_inputs_are_clear_errors() {
        let env = |body: &str| format!(r#"{{"version":1,"origin":{{}},{body}}}"#);
        let cases = [
            ("".to_string(), "not JSON"),
            ("[1]".into(), "JSON object"),
            (r#"{"command":"add","parameters":{}}"#.into(), "version"),
            (r#"{"version":1,"command":"add","parameters":{}}"#.into(), "origin"),
            (env(r#""parameters":{}"#), "command is missing"),
            (env(r#""command":"restart","parameters":{}"#), "\"add\" or \"delete\""),
            (env(r#""command":"add""#), "parameters"),
            (env(r#""command":"add","parameters":[]"#), "parameters"),
            (
                env(r#""command":"add","parameters":{"extra_args":"1.2.3.4"}"#),
                "list of strings",
            ),
            (
                env(r#""command":"add","parameters":{"extra_args":["not an ip"]}"#),
                "allowed address",
            ),
            (
                env(r#""command":"add","parameters":{"extra_args":["--server"]}"#),
                "needs a value",
            ),
            (
                env(r#""command":"add","parameters":{"extra_args":["--rm-rf"]}"#),
                "unknown option",
            ),
            (
                env(r#""command":"add","parameters":{"alert":{"data":{"action":"wipe"}}}"#),
                "isolate",
            ),
            (
                env(r#""command":"add","parameters":{"alert":[]}"#),
                "alert must be an object",
            ),
        ];
        for (input, want) in cases {
            let e = parse(&input).unwrap_err();
            assert!(e.contains(want), "{input:?}: {e:?} lacks {want:?}");
        }
        assert!(parse(&fixture("malformed.json")).is_err());
    }
}

//! The standalone commands `isolate`, `release`, `status` (design §4): no server needed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cordon_engine::{ClaimSource, Engine, EngineError, IsolateRequest, QuarantineState};
use cordon_firewall::BackendChoice;
use cordon_policy::{AllowSpec, TableName};
use serde_json::json;

use crate::exit::{Code, Failure};

/// Options every local command shares.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Name of Cordon's firewall table / chain prefix / anchor (default: cordon). Without
    /// it, status, release and isolate --reapply find Cordon's quarantines under any name
    /// (the state directory's records, the tables' ownership marks).
    #[arg(long, value_parser = parse_table)]
    pub table: Option<TableName>,
    /// Where the applied policy and its digest are recorded.
    #[arg(long, default_value_os_t = cordon_engine::paths::default_state_dir(), env = "CORDON_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Firewall mechanism: auto, netlink, nftables, iptables, pf, windows, netsh-ipsec.
    /// `auto` keeps the backend of a recorded quarantine.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pub backend: BackendChoice,
    /// Seconds to wait for another process (e.g. the agent) holding the state lock
    /// (default 60; `wazuh-ar`: 15, see its `--help`).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub lock_timeout: Option<f64>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// How long `isolate`/`release`/`status` wait for the state lock by default (seconds).
pub const LOCK_WAIT_DEFAULT: f64 = 60.0;

impl Common {
    /// `--lock-timeout`, or `default` seconds.
    pub fn lock_wait(&self, default: f64) -> Duration {
        Duration::from_secs_f64(self.lock_timeout.unwrap_or(default))
    }

    /// `--table`, or the default name.
    pub fn table_or_default(&self) -> TableName {
        self.table.clone().unwrap_or_default()
    }
}

#[derive(Args, Debug)]
pub struct IsolateArgs {
    /// Extra allowed destination: tcp://HOST:PORT, udp://HOST:PORT, http(s)://HOST[:PORT], ws(s)://HOST[:PORT], IP or CIDR.
    #[arg(long = "allow", value_name = "SPEC", value_parser = parse_spec)]
    pub allow: Vec<AllowSpec>,
    /// Management server: https://HOST[:PORT], wss://, http://, tcp://HOST:PORT (allowed; the first TCP one is the default verification target) or udp://HOST:PORT (allowed over UDP; cannot be verified, reported "not verified (UDP)").
    #[arg(long = "server", value_name = "URL", value_parser = parse_server)]
    pub servers: Vec<AllowSpec>,
    /// DNS resolver to keep (default: nameservers from /etc/resolv.conf).
    #[arg(long = "resolver", value_name = "IP", value_parser = parse_ip)]
    pub resolvers: Vec<IpAddr>,
    /// Block DNS too (cannot be combined with --resolver, which keeps one open).
    #[arg(long, conflicts_with = "resolvers")]
    pub no_dns: bool,
    /// Block DHCP too.
    #[arg(long)]
    pub no_dhcp: bool,
    /// DHCP server the host uses (repeatable); replaces discovery from the lease files.
    #[arg(long = "dhcp-server", value_name = "IP", value_parser = parse_ip, conflicts_with = "no_dhcp")]
    pub dhcp_servers: Vec<IpAddr>,
    /// Accept --allow exceptions that cover a whole address family (the quarantine then
    /// isolates nothing there); without it such a policy is refused with exit 2.
    #[arg(long)]
    pub allow_no_isolation: bool,
    // Message shown to logged-in users, at most MAX_MESSAGE_CHARS (help text below); a
    // longer one is refused with exit 2, as the API refuses it.
    #[arg(long, help = crate::message_help("at most"))]
    pub message: Option<String>,
    /// Verify reachability of this target after applying (default: the first --server).
    #[arg(long, value_name = "SPEC", value_parser = parse_spec)]
    pub verify: Option<AllowSpec>,
    /// Seconds allowed for verification before rolling back.
    /// Must be above 0: verification is what keeps an isolate from stranding the host
    /// (to allow a server without verifying it, give it as --allow instead of --server).
    #[arg(long, default_value_t = 10.0, value_parser = parse_verify_timeout)]
    pub verify_timeout: f64,
    /// Print the exact ruleset that would be applied; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Whose quarantine this is: wazuh, velociraptor, agent or local. The host stays
    /// quarantined while any source's claim stands (`cordon status` lists them).
    #[arg(long, default_value = "local", value_parser = parse_source)]
    pub source: ClaimSource,
    /// Re-apply the recorded quarantine (at boot, or after tampering).
    #[arg(long, conflicts_with_all = ["allow", "servers", "resolvers", "no_dns", "no_dhcp", "dhcp_servers", "allow_no_isolation", "message", "verify", "dry_run"])]
    pub reapply: bool,
    /// With `--reapply`: when no quarantine is recorded (no `<table>.json`, no
    /// `<table>.claims.json` under a valid table name), say so and exit 0 instead of 2.
    /// For the boot and watch units: an enrolled agent's own files in the state directory
    /// (`agent-desired.json`, `agent-paths.json`) are not a quarantine.
    #[arg(long)]
    pub if_recorded: bool,
    /// After applying, stay in the foreground and repair tampering as soon as the kernel
    /// reports it (nftables and interface change notifications, plus a check every
    /// second); new interfaces get the device-layer hooks. Stop with Ctrl-C / SIGTERM: the
    /// quarantine stays in force. While it runs, the tables are owned by it (Linux ≥ 6.9):
    /// another source's isolate or release is handed to it (SIGHUP, at most 10 s) and
    /// applied by it.
    #[arg(long, conflicts_with = "dry_run")]
    pub watch: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// Release these hosts through the server instead of this host (ids or hostnames).
    pub hosts: Vec<String>,
    /// Release every host with this label through the server.
    #[arg(long)]
    pub label: Option<String>,
    /// Why (required when releasing through the server).
    #[arg(long)]
    pub comment: Option<String>,
    /// With HOST(s) or `--label`: show what would change per host (and, for a label, the
    /// revoked hosts it leaves quarantined), and change nothing.
    #[arg(long, conflicts_with = "force")]
    pub preview: bool,
    #[command(flatten)]
    pub remote: crate::remote::Conn,
    /// Break glass: remove Cordon's rules from every firewall backend on this host, even
    /// when the state file is missing or damaged, and drop every source's claim (so it
    /// cannot be combined with --source, which releases one source's claim only).
    #[arg(long, conflicts_with = "source")]
    pub force: bool,
    /// Whose claim to release (wazuh, velociraptor, agent, local); the rules go when no
    /// claim is left.
    #[arg(long, default_value = "local", value_parser = parse_source)]
    pub source: ClaimSource,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// First forget the paths around Cordon's hooks that a watcher saw and recorded
    /// (`around_seen`; kept, and the state `tampered`, until release or this), once you
    /// have looked into them; one still there stays reported.
    #[arg(long)]
    pub acknowledge: bool,
    #[command(flatten)]
    pub common: Common,
}

fn parse_spec(s: &str) -> Result<AllowSpec, String> {
    AllowSpec::parse(s).map_err(|e| e.to_string())
}
fn parse_server(s: &str) -> Result<AllowSpec, String> {
    AllowSpec::parse_server(s).map_err(|e| e.to_string())
}
fn parse_source(s: &str) -> Result<ClaimSource, String> {
    s.parse()
}
fn parse_table(s: &str) -> Result<TableName, String> {
    TableName::new(s).map_err(|e| e.to_string())
}
fn parse_backend(s: &str) -> Result<BackendChoice, String> {
    s.parse()
}
fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| format!("{s:?} is not an IP address"))
}
fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds above 0 and at most 3600")),
    }
}

/// `--verify-timeout`: like [`parse_timeout`], and 0 is refused by name. Verification is
/// the safety net of design §2 ("never strand the host by accident"); a zero wait would
/// always fail and roll back, and skipping it silently would drop the net. Isolating
/// without verification is spelled by giving no `--server`/`--verify` (allow the server
/// with `--allow`).
fn parse_verify_timeout(s: &str) -> Result<f64, String> {
    if s.trim().parse::<f64>().is_ok_and(|v| v == 0.0) {
        return Err(
            "0 would verify nothing: verification is what proves the host can still reach its server (else the quarantine is rolled back); give a time above 0 (default 10), or to isolate without verification allow the server with --allow instead of --server"
                .into(),
        );
    }
    let v = parse_timeout(s)?;
    if v < MIN_VERIFY_TIMEOUT {
        return Err(format!(
            "{s:?} seconds is too short to verify anything (a connection to the server takes longer; \
             the quarantine would always be rolled back): give at least {MIN_VERIFY_TIMEOUT} (default 10)"
        ));
    }
    Ok(v)
}

/// The shortest `--verify-timeout` accepted, in seconds: below it even a connection on the
/// same link could not complete, so verification would always fail and roll back.
const MIN_VERIFY_TIMEOUT: f64 = 0.1;

/// trial34 L6: a `--state-dir` naming something that is not a directory (a file) is bad
/// input, refused before anything is read or changed (exit 2; it was exit 1 from the
/// first file operation, "cannot create the state directory … File exists").
fn check_state_dir(c: &Common) -> Result<(), Failure> {
    match std::fs::metadata(&c.state_dir) {
        Ok(m) if !m.is_dir() => Err(fail(
            EngineError::Invalid(format!(
                "--state-dir {} is not a directory; nothing was changed",
                c.state_dir.display()
            )),
            c.json,
        )),
        _ => Ok(()),
    }
}

/// trial34 L6: `release --table NAME` where nothing of Cordon's stands under NAME but
/// another table is in force releases in that table (a quarantine made with `--table
/// NAME` while another table was in force joined it, and is released through its own
/// name) — it did so without a word, so a mistyped name released `cordon` silently. The
/// note said first: `None` when NAME is in force or nothing is.
fn named_table_note(c: &Common) -> Option<String> {
    let t = c.table.as_ref()?;
    let found = cordon_engine::discover_tables(&c.state_dir).unwrap_or_default();
    if found.is_empty() || found.contains(t) {
        return None;
    }
    let names: Vec<&str> = found.iter().map(|t| t.as_str()).collect();
    Some(format!(
        "nothing of Cordon's stands under table {t} here; Cordon holds this host under table(s) {}: a quarantine made with --table {t} joined it, so this release acts there",
        names.join(", ")
    ))
}

fn engine_for(c: &Common, table: TableName) -> Engine {
    Engine::new(table, c.state_dir.clone(), c.backend).with_lock_timeout(c.lock_wait(LOCK_WAIT_DEFAULT))
}

/// The tables a command without `--table` acts on (issue #18: a quarantine made with
/// `--table NAME` was invisible to status, release and the package's removal check):
/// every name Cordon holds something under here ([`cordon_engine::discover_tables`]:
/// the state directory's records, the kernel's ownership marks), or the default name when
/// there is none. With `--table`, that one name.
fn tables_here(c: &Common) -> Result<Vec<TableName>, EngineError> {
    if let Some(t) = &c.table {
        return Ok(vec![t.clone()]);
    }
    let found = cordon_engine::discover_tables(&c.state_dir)?;
    Ok(if found.is_empty() {
        vec![TableName::default()]
    } else {
        found
    })
}

/// The one table `release` (without `--force`) and `isolate --reapply --watch` act on when
/// `--table` is not given; several found is exit 2 naming them.
fn one_table(c: &Common, found: Vec<TableName>, what: &str) -> Result<TableName, Failure> {
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ if c.table.is_some() => Ok(c.table_or_default()),
        [] => Ok(TableName::default()),
        many => {
            let names: Vec<&str> = many.iter().map(|t| t.as_str()).collect();
            let msg = format!(
                "Cordon holds quarantines under several table names on this host ({}); {what}: name one with --table NAME (`cordon status` shows each); nothing was changed",
                names.join(", ")
            );
            Err(fail(EngineError::Invalid(msg), c.json))
        }
    }
}

/// An engine error of a local command: printed by [`crate::exit::report`] as one line,
/// or JSON with `--json`, with the exit code of its class.
fn fail(err: EngineError, json: bool) -> Failure {
    Failure::engine(err, json)
}

fn print_json(value: &impl serde::Serialize) {
    match crate::term::json(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("cordon: cannot encode output: {e}"),
    }
}

pub fn isolate(a: IsolateArgs) -> Result<(), Failure> {
    let watch = a.watch;
    let json = a.common.json;
    check_state_dir(&a.common)?;
    // clap's `requires` is met by `--reapply`'s default value (false), so it is checked here.
    if a.if_recorded && !a.reapply {
        let msg =
            "--if-recorded goes with --reapply (re-apply the recorded quarantine if there is one); nothing was changed";
        return Err(fail(EngineError::Invalid(msg.into()), json));
    }
    // A new quarantine goes into --table (default `cordon`); a re-apply without --table
    // re-applies what is recorded, under whatever name it was recorded.
    let table = if a.reapply && a.common.table.is_none() {
        let mut unreadable = None;
        let recorded: Vec<TableName> = match cordon_engine::state::recorded_tables(&a.common.state_dir) {
            Ok(r) => r
                .into_iter()
                .filter(|t| match record_under(&a.common, t) {
                    Record::Yes => true,
                    Record::No => false,
                    Record::Unreadable(e) => {
                        unreadable.get_or_insert((t.clone(), e));
                        false
                    }
                })
                .collect(),
            Err(e) => return Err(fail(e, json)),
        };
        if recorded.is_empty() && a.if_recorded {
            if let Some((t, e)) = unreadable {
                return unreadable_record(a, &t, e);
            }
            return nothing_recorded(&a.common.state_dir, json);
        }
        if recorded.len() > 1 && !watch {
            // Each table's failure is printed as it comes; the worst exit code is kept.
            let mut worst: Option<Failure> = None;
            for t in recorded {
                if let Err(f) = reapply(&engine_for(&a.common, t), json) {
                    let code = f.code;
                    crate::exit::report(Err(f));
                    if worst.as_ref().is_none_or(|w| w.code.as_u8() < code.as_u8()) {
                        worst = Some(Failure::msg(code, "re-applying a recorded quarantine failed").reported());
                    }
                }
            }
            return worst.map_or(Ok(()), Err);
        }
        one_table(&a.common, recorded, "--watch keeps one quarantine in force")?
    } else {
        a.common.table_or_default()
    };
    if a.if_recorded {
        match record_under(&a.common, &table) {
            Record::Yes => {}
            Record::No => return nothing_recorded(&a.common.state_dir, json),
            Record::Unreadable(e) => return unreadable_record(a, &table, e),
        }
    }
    let eng = engine_for(&a.common, table.clone());
    let (if_recorded, common) = (a.if_recorded, a.common.clone());
    match isolate_once(a, &eng) {
        // Not isolated, but the rules are in force: `--watch` keeps them so, and says why
        // it is not isolated first (trial31 HIGH-H).
        Err(f) if watch && f.code == Code::NotIsolated => {
            crate::exit::report(Err(f));
        }
        // trial34 L13: the record can vanish while the re-apply waits for the lock (an
        // isolate that failed its verification rolls back and removes its claims): with
        // nothing recorded any more, --if-recorded keeps its promise (exit 0).
        Err(_) if if_recorded && matches!(record_under(&common, &table), Record::No) => {
            return nothing_recorded(&common.state_dir, json);
        }
        r => r?,
    }
    if !watch {
        return Ok(());
    }
    watch_forever(&eng, json)
}

/// An isolate or re-apply whose rules are in force but that something already there goes
/// around (trial31 HIGH-H: it exited 0 and said `isolated`): exit 11, the output having
/// said what. A policy that allows a whole family was asked for (`--allow-no-isolation`)
/// and stays a success.
fn not_isolated_failure(out: &cordon_engine::IsolateOutcome) -> Result<(), Failure> {
    if out.coverage.bypasses.is_empty() {
        return Ok(());
    }
    Err(Failure::msg(
        Code::NotIsolated,
        "the quarantine is applied and stays in force, but the host is NOT isolated: something goes around Cordon's hooks (named above); delete it, then `cordon status` says isolated",
    ))
}

/// Whether a quarantine is recorded under a table (for `--reapply --if-recorded`).
#[derive(Debug)]
enum Record {
    /// Its state file, or claims whose state file was lost (the re-apply rebuilds it).
    Yes,
    /// Neither.
    No,
    /// A claims file that cannot be read, itself or from its backup, and no state file:
    /// a record (`cordon status` names it and the way out), not "nothing recorded".
    Unreadable(EngineError),
}

fn record_under(c: &Common, t: &TableName) -> Record {
    if cordon_engine::state::path(&c.state_dir, t).exists() {
        return Record::Yes;
    }
    match engine_for(c, t.clone()).claims_without_state() {
        Ok(claims) if claims.is_empty() => Record::No,
        Ok(_) => Record::Yes,
        Err(e) => Record::Unreadable(e),
    }
}

/// `--reapply --if-recorded` finding only a record that cannot be read (trial34 L10: it
/// said "no quarantine recorded" and exited 0 while the claims file stayed, so
/// cordon-watch.path started the watcher again and again until systemd's start limit
/// failed both units for good — the next real quarantine got no watcher). Without
/// `--watch` (the boot unit): the error naming the file and the way out, exit non-zero.
/// With `--watch` (the watcher unit): it says so once and waits, checking every 2 s,
/// until the file is gone (exit 0: nothing recorded) or is a record again (a new
/// quarantine set it aside and wrote its own): then it re-applies and watches as usual.
fn unreadable_record(a: IsolateArgs, table: &TableName, e: EngineError) -> Result<(), Failure> {
    let json = a.common.json;
    if !a.watch {
        return Err(fail(e, json));
    }
    let why = e.detail();
    if json {
        println!(
            "{}",
            json!({"event": "waiting", "table": table.as_str(), "detail": why})
        );
    } else {
        println!(
            "waiting: the record of table {table} cannot be read ({why}); `cordon status` says how to recover. Watching resumes once it is readable again or gone"
        );
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    while matches!(record_under(&a.common, table), Record::Unreadable(_)) {
        std::thread::sleep(Duration::from_secs(2));
    }
    isolate(a)
}

/// `isolate --reapply --if-recorded` with nothing recorded: not an error (exit 0).
fn nothing_recorded(dir: &std::path::Path, json: bool) -> Result<(), Failure> {
    let detail = format!(
        "nothing to re-apply: no quarantine recorded in {}; nothing was changed",
        dir.display()
    );
    if json {
        println!("{}", json!({"ok": true, "reapplied": false, "detail": detail}));
    } else {
        println!("{detail}");
    }
    Ok(())
}

fn reapply(eng: &Engine, json: bool) -> Result<(), Failure> {
    match eng.reapply() {
        Ok(out) => {
            if json {
                print_json(&out);
            } else {
                println!(
                    "{}: re-applied recorded quarantine ({} backend, table {})",
                    if out.not_isolated.is_empty() {
                        "isolated"
                    } else {
                        "NOT ISOLATED"
                    },
                    out.backend,
                    out.table
                );
                for w in &out.not_isolated {
                    println!("  {w}");
                }
            }
            not_isolated_failure(&out)
        }
        Err(e) => Err(fail(e, json)),
    }
}

/// `--watch`: the repair loop in the foreground until SIGINT/SIGTERM.
fn watch_forever(eng: &Engine, json: bool) -> Result<(), Failure> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed)) {
        return Err(Failure::new(
            Code::Failed,
            anyhow::Error::new(e).context("cannot install the signal handler"),
        ));
    }
    let opts = cordon_engine::watch::WatchOptions::default();
    let released = std::cell::Cell::new(false);
    let result = eng.watch(&opts, &stop, |ev| {
        if matches!(ev, cordon_engine::watch::WatchEvent::Released) {
            released.set(true);
        }
        if json {
            if let Ok(line) = serde_json::to_string(ev) {
                println!("{line}");
            }
        } else {
            use cordon_engine::watch::WatchEvent;
            match ev {
                WatchEvent::Started {
                    events,
                    owned,
                    coverage,
                } => println!(
                    "watching: {}, tables {}; coverage: {}",
                    if *events {
                        "kernel notifications + 1 s check"
                    } else {
                        "1 s check"
                    },
                    if *owned { "owned by this process" } else { "not owned" },
                    coverage.summary()
                ),
                WatchEvent::Repaired {
                    cause,
                    tampering,
                    rebuilt,
                    check_ms,
                    repair_ms,
                    coverage,
                } => println!(
                    "{}repaired ({cause}; rebuilt {}) in {repair_ms:.1} ms after a {check_ms:.1} ms check; coverage: {}",
                    if *tampering { "TAMPERED, " } else { "" },
                    rebuilt.join(", "),
                    coverage.summary()
                ),
                WatchEvent::Failed { error } => eprintln!("cordon: watch: {error}"),
                WatchEvent::Undermined { why, coverage } if why.is_empty() => {
                    println!("no longer undermined; coverage: {}", coverage.summary())
                }
                WatchEvent::Undermined { why, coverage } => println!(
                    "TAMPERED: {why}; coverage: {}",
                    coverage.summary()
                ),
                WatchEvent::Released => println!("released: no quarantine recorded any more; watch ends"),
                WatchEvent::Reloaded { claims } => println!(
                    "claims changed by another cordon process; now in force for: {}",
                    claims.join(", ")
                ),
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    });
    match result {
        Ok(()) => {
            // Stopped by SIGINT/SIGTERM (not by a release): the rules stay, nobody repairs
            // them now (trial26 L12: a foreground user got no line at all).
            if !released.get() && stop.load(std::sync::atomic::Ordering::Relaxed) {
                if json {
                    println!("{}", serde_json::json!({"event": "stopped", "quarantine": "in_force"}));
                } else {
                    println!("{WATCH_STOPPED}");
                }
            }
            Ok(())
        }
        Err(e) => Err(fail(e, json)),
    }
}

/// What `isolate --watch` prints when a signal stops it: the quarantine is not released.
pub(crate) const WATCH_STOPPED: &str = "stopped (signal): the quarantine stays in force, as recorded; tampering is no \
     longer repaired. `cordon release` removes it";

fn isolate_once(a: IsolateArgs, eng: &Engine) -> Result<(), Failure> {
    let json = a.common.json;
    if a.reapply {
        return reapply(eng, json);
    }
    let req = IsolateRequest {
        allow: a.allow,
        servers: a.servers,
        resolvers: (!a.resolvers.is_empty()).then_some(a.resolvers),
        dns: !a.no_dns,
        dhcp: !a.no_dhcp,
        dhcp_servers: (!a.dhcp_servers.is_empty()).then_some(a.dhcp_servers),
        allow_no_isolation: a.allow_no_isolation,
        message: a.message,
        verify: a.verify,
        verify_timeout: Duration::from_secs_f64(a.verify_timeout),
    };
    if a.dry_run {
        return match eng.dry_run(&req) {
            Ok((backend, text, resolved)) => {
                let impact = eng.impact(&resolved);
                if json {
                    print_json(
                        &json!({"ok": true, "dry_run": true, "backend": backend, "ruleset": text,
                        "policy": resolved.policy, "verify_targets": resolved.verify_targets,
                        "dhcp_servers": resolved.policy.dhcp_servers, "dhcp_sources": resolved.dhcp_sources,
                        "warnings": resolved.warnings, "notes": cordon_engine::policy_notes(&resolved.policy, backend), "impact": impact}),
                    );
                } else {
                    // The ruleset alone on stdout (it is the exact input of the backend);
                    // what it means for DHCP and DNS on stderr.
                    print!("{text}");
                    eprintln!("cordon: dry run, nothing changed ({backend} backend)");
                    if resolved.policy.dhcp {
                        eprintln!(
                            "cordon: DHCP servers: {}",
                            dhcp_words(&resolved.policy.dhcp_servers, &resolved.dhcp_sources)
                        );
                    }
                    for note in cordon_engine::policy_notes(&resolved.policy, backend) {
                        eprintln!("cordon: {note}");
                    }
                    for w in &resolved.warnings {
                        eprintln!("cordon: warning: {w}");
                    }
                    for line in impact.lines() {
                        println!("# impact: {line}");
                    }
                }
                for w in &impact.warnings {
                    eprintln!("cordon: warning: {w}");
                }
                Ok(())
            }
            Err(e) => Err(fail(e, json)),
        };
    }
    match eng.isolate_as(a.source, &req) {
        Ok(claimed) => {
            let out = &claimed.outcome;
            if json {
                print_json(&claimed);
            } else {
                println!(
                    "{} ({} backend, table {}, applied in {:.1} ms)",
                    if out.not_isolated.is_empty() {
                        "isolated"
                    } else {
                        "NOT ISOLATED"
                    },
                    out.backend,
                    out.table,
                    out.apply_ms
                );
                for w in &out.not_isolated {
                    println!("  {w}");
                }
                if out.table != eng.table.as_str() {
                    // Trial12 LOW: say that the claim joined the table in force.
                    println!(
                        "  joined: Cordon table {} was already in force here, so this claim was added to it instead of a second table {} (the kernel would enforce only what both allow); release with --source {}",
                        out.table, eng.table, claimed.source
                    );
                }
                for e in out.policy.exceptions() {
                    println!("  allowed: {e}");
                }
                if out.policy.dhcp {
                    println!(
                        "  allowed: DHCP to 255.255.255.255 / ff02::1:2 and servers: {}",
                        dhcp_words(&out.policy.dhcp_servers, &[])
                    );
                }
                for k in &out.replaced_backends {
                    println!("  replaced: the quarantine of the {k} backend (removed after this one was verified)");
                }
                match (out.verified_via, out.verification) {
                    (Some(addr), _) => println!("  verified: {addr} reachable"),
                    (None, cordon_engine::Verification::NotVerifiedUdp) => println!(
                        "  not verified (UDP): every --server is a UDP server, which cannot be proven reachable by connecting; the rules are kept"
                    ),
                    (None, _) => println!("  verified: no --server or --verify given, reachability not checked"),
                }
                print_coverage(&out.coverage);
                for line in out.impact.lines() {
                    println!("  impact: {line}");
                }
                println!("  claims: {}", names(&claimed.claims));
            }
            if let Some(w) = &out.message_warning {
                eprintln!("cordon: warning: {w}");
            }
            for w in out.warnings.iter().chain(out.impact.warnings.iter()) {
                eprintln!("cordon: warning: {w}");
            }
            not_isolated_failure(out)
        }
        Err(e) => Err(fail(e, json)),
    }
}

pub fn release(a: ReleaseArgs) -> Result<(), Failure> {
    if !a.hosts.is_empty() || a.label.is_some() {
        return crate::remote::release(a.hosts, a.label, a.comment, a.preview, &a.remote, a.common.json);
    }
    if a.preview {
        return Err(Failure::usage(
            "--preview is for releasing hosts through the server: name the HOST(s) or --label; nothing was changed",
        ));
    }
    // The local command never takes the API client's options: `--comment` (or `--token`)
    // without a HOST or `--label` is an analyst who meant the server, not this machine.
    if a.comment.is_some() || a.remote.token_given_on_command_line() {
        return Err(Failure::usage(
            "--comment and --token are for releasing hosts through the server: name the HOST(s) or \
             --label. `cordon release` without them removes the quarantine of THIS machine; nothing was changed",
        ));
    }
    check_state_dir(&a.common)?;
    if a.force {
        return release_forced(&a.common);
    }
    if let Some(note) = named_table_note(&a.common) {
        eprintln!("cordon: note: {note}");
    }
    // Trial17 MED-2: the running agent puts its claim back within a second, so "released"
    // would say more than is true. Refuse, naming it (nothing changed).
    if a.source == ClaimSource::Agent {
        if let Some(h) = cordon_agent::singleton::holder().filter(|h| !h.is_foreign()) {
            // The server releases only the running enrollment's own claim: a previous
            // enrollment's (trial20 LOW) is released on the host alone.
            let running = h.info.as_ref().map(|i| i.host_id.clone()).unwrap_or_default();
            let previous: Vec<String> = engine_for(&a.common, a.common.table_or_default())
                .claims()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.source == ClaimSource::Agent)
                .filter_map(|c| {
                    c.owner
                        .filter(|o| !running.is_empty() && !o.eq_ignore_ascii_case(&running))
                })
                .collect();
            let msg = if previous.is_empty() {
                format!(
                    "the enrolled agent is running here ({}) and puts its quarantine back within a second: \
                     stop it first (sudo systemctl stop cordon-agent.service), then run this again — or release \
                     the host through the Cordon server; nothing was changed",
                    h.describe()
                )
            } else {
                format!(
                    "the enrolled agent is running here ({}): stop it first (sudo systemctl stop \
                     cordon-agent.service), then run this again. The `agent` claim of a previous enrollment \
                     (host id {}) is released only here, on the host — the Cordon server cannot release it; \
                     nothing was changed",
                    h.describe(),
                    previous.join(", ")
                )
            };
            return Err(fail(EngineError::Invalid(msg), a.common.json));
        }
    }
    let all_found = match tables_here(&a.common) {
        Ok(f) => f,
        Err(e) => return Err(fail(e, a.common.json)),
    };
    // A plain release acts on the tables whose records are found: an unrecognised table
    // in force (a decoy, or records deleted) never makes it refuse; it is named and left
    // to `--force` (trial15 LOW).
    let (found, unrecognised) = split_unrecorded(&a.common, all_found);
    if !unrecognised.is_empty() {
        let names: Vec<&str> = unrecognised.iter().map(|t| t.as_str()).collect();
        eprintln!(
            "cordon: note: Cordon-looking table(s) {} in force here have no records found: not released \
             (`cordon status` shows them; `cordon release --force` removes them)",
            names.join(", ")
        );
    }
    let table = one_table(&a.common, found, "release one at a time, or all at once with --force")?;
    match engine_for(&a.common, table).release_as(a.source, false) {
        Ok(out) => {
            if a.common.json {
                print_json(&out);
            } else {
                match (&out.release, out.released_claim) {
                    (Some(r), _) if r.was_isolated => println!("released ({} backend, table {})", r.backend, r.table),
                    (Some(_), _) => println!("released (nothing of Cordon's was in force)"),
                    (None, true) => println!(
                        "{} claim released; still isolated, claimed by: {}",
                        out.source,
                        names(&out.claims)
                    ),
                    (None, false) => println!(
                        "{} holds no claim: nothing was changed; still isolated, claimed by: {} (release with their --source, or --force)",
                        out.source,
                        names(&out.claims)
                    ),
                }
            }
            if let Some(w) = &out.warning {
                eprintln!("cordon: warning: {w}");
            }
            for p in &out.record_problems {
                eprintln!("cordon: note: {p}");
            }
            Ok(())
        }
        Err(e) => Err(fail(e, a.common.json)),
    }
}

/// Without `--table`, splits the tables found into those with records (a state file or a
/// claim, wherever the engine finds them) and those without; when none has records, all
/// stay in the first list (the plain release then says what it finds, as before).
fn split_unrecorded(c: &Common, found: Vec<TableName>) -> (Vec<TableName>, Vec<TableName>) {
    if c.table.is_some() || found.len() < 2 {
        return (found, Vec::new());
    }
    let recorded = cordon_engine::state::recorded_tables(&c.state_dir).unwrap_or_default();
    let (with, without): (Vec<TableName>, Vec<TableName>) = found.into_iter().partition(|t| {
        recorded.contains(t) || {
            let eng = engine_for(c, t.clone());
            eng.claims().is_ok_and(|cl| !cl.is_empty()) || eng.status().is_ok_and(|r| r.applied_at.is_some())
        }
    });
    if with.is_empty() {
        return (without, Vec::new());
    }
    (with, without)
}

/// Break glass ([`cordon_engine::forced::release_all`]): every table Cordon holds
/// anything under (recorded, or marked in the kernel), plus `--table` or the default name,
/// is removed from every backend and its claims dropped; this prints what it did.
fn release_forced(c: &Common) -> Result<(), Failure> {
    let done = match cordon_engine::forced::release_all(&c.state_dir, c.table_or_default(), |t| engine_for(c, t)) {
        Ok(done) => done,
        Err(e) => return Err(fail(e, c.json)),
    };
    if let Some(e) = &done.search_failed {
        eprintln!(
            "cordon: warning: could not search this host for Cordon tables under other names ({}); released the recorded ones and {:?}",
            e.detail(),
            c.table_or_default().as_str()
        );
    }
    let released: Vec<&str> = done.released.iter().map(|t| t.as_str()).collect();
    let cleaned: Vec<String> = done.cleaned.iter().map(ToString::to_string).collect();
    let agent_claim = done.agent_claim;
    let tables = &done.checked;
    let names: Vec<&str> = tables.iter().map(|t| t.as_str()).collect();
    let lookalikes = lookalike_chains(c);
    if !lookalikes.is_empty() {
        eprintln!("cordon: note: {}", lookalike_words(&lookalikes));
    }
    if c.json {
        print_json(&json!({
            "state": "released",
            "forced": true,
            "backends": cleaned,
            "tables": released,
            "checked_tables": names,
        }));
    } else {
        println!("{}", forced_release_text(&released, &cleaned, &names));
    }
    let running = cordon_agent::singleton::holder()
        .filter(|h| !h.is_foreign())
        .map(|h| h.describe());
    if let Some(w) = forced_release_agent_warning(running.as_deref(), agent_claim) {
        eprintln!("cordon: warning: {w}");
    }
    Ok(())
}

/// What `release --force` warns about the enrolled agent: a `running` one (its
/// description) puts its claim back (trial17 MED-2); with none running, a dropped agent
/// claim comes back only if the agent starts again while the server still orders the
/// quarantine (trial12 LOW). Never "a running agent … stop it first" when none runs
/// (trial34 L7: the package's forced removal had just stopped it).
fn forced_release_agent_warning(running: Option<&str>, agent_claim: bool) -> Option<String> {
    match running {
        Some(agent) => Some(format!(
            "the enrolled agent is running here ({agent}): it puts its quarantine back at its next check while the server orders one; stop it (sudo systemctl stop cordon-agent.service) to keep this host released"
        )),
        None if agent_claim => Some(
            "the enrolled agent's claim was dropped too (no agent runs here now); the Cordon server may still order this host quarantined: if the agent starts again it puts the quarantine back. Release the host through the server too (`cordon release HOST --comment …`)"
                .to_string(),
        ),
        None => None,
    }
}

/// What `release --force` says: the tables it released something of (rules, a record or
/// claims) and the backends it cleaned — or, when nothing stood, that, with the tables it
/// looked at (issue 14 LOW: it named `tables: cordon` for a host with nothing in force).
fn forced_release_text(released: &[&str], cleaned: &[String], checked: &[&str]) -> String {
    if released.is_empty() {
        return format!(
            "nothing to release: no Cordon rules were in force and no claim was recorded (forced; looked at tables: {})",
            checked.join(", ")
        );
    }
    format!(
        "released (forced; tables: {}; cleaned: {})",
        if released.is_empty() {
            "-".to_string()
        } else {
            released.join(", ")
        },
        if cleaned.is_empty() {
            "-".to_string()
        } else {
            cleaned.join(", ")
        }
    )
}

/// Trial15 MED-5: iptables chain triples named like Cordon's (`P-IN/-OUT/-FWD`, each
/// jumped to from its built-in chain) whose jumps carry no Cordon mark and of which no
/// quarantine is recorded here: a site's own firewall (or Cordon's from before the mark
/// with its records lost). Never taken for Cordon's, never removed; `status` and
/// `release --force` name them. Empty when iptables cannot be read.
fn lookalike_chains(c: &Common) -> Vec<TableName> {
    let recorded = cordon_engine::state::recorded_tables(&c.state_dir).unwrap_or_default();
    cordon_firewall::iptables::discover_lookalike_chain_tables()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !recorded.contains(t) && c.table.as_ref() != Some(t) && t.as_str() != TableName::DEFAULT)
        .collect()
}

/// One sentence naming [`lookalike_chains`].
fn lookalike_words(tables: &[TableName]) -> String {
    let chains: Vec<String> = tables
        .iter()
        .flat_map(|t| {
            cordon_policy::render::iptables::HOOKS
                .iter()
                .map(move |(_, suffix)| cordon_policy::render::iptables::chain_name(t, suffix))
        })
        .collect();
    format!(
        "iptables chains {} are named like Cordon's but their jumps carry no Cordon mark and no quarantine of them is recorded here: not Cordon's (a site's own firewall?); left alone",
        chains.join(", ")
    )
}

fn names(claims: &[ClaimSource]) -> String {
    claims.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

pub fn status(a: StatusArgs) -> Result<(), Failure> {
    let json = a.common.json;
    check_state_dir(&a.common)?;
    let tables = match tables_here(&a.common) {
        Ok(t) => t,
        Err(e) => return Err(fail(e, json)),
    };
    let mut found = Vec::new();
    for t in tables {
        let eng = engine_for(&a.common, t);
        if a.acknowledge {
            match eng.acknowledge_seen() {
                Ok(gone) => {
                    for s in gone {
                        eprintln!("acknowledged (table {}): {s}", eng.table);
                    }
                }
                Err(e) => return Err(fail(e, json)),
            }
        }
        match eng.status().and_then(|r| eng.claims_in_force().map(|c| (r, c))) {
            Ok((r, c)) => {
                // trial34 H1: the agent's paths are opened with every claim; the text
                // says so (the JSON has them in policy.servers / resolvers). A paths file
                // that cannot be read is named by `status` elsewhere, not here.
                let paths = if r.state != QuarantineState::Released {
                    eng.management_paths()
                        .ok()
                        .flatten()
                        .as_ref()
                        .and_then(cordon_engine::claims::paths_words)
                } else {
                    None
                };
                found.push((r, c, paths))
            }
            Err(e) => return Err(fail(e, json)),
        }
    }
    // The first table that holds anything speaks for the host (its state is the first
    // line, which the package's removal check reads); the others follow.
    let held = |(r, c, _): &(cordon_engine::StatusReport, Vec<cordon_engine::Claim>, Option<String>)| {
        r.state != QuarantineState::Released || !c.is_empty()
    };
    if let Some(i) = found.iter().position(held) {
        found.swap(0, i);
    }
    let mut found = found.into_iter();
    let Some((report, claims, paths)) = found.next() else {
        return Ok(());
    };
    let others: Vec<_> = found.collect();
    let lookalikes = lookalike_chains(&a.common);
    if json {
        let mut v = status_json(&report, &claims);
        v["other_tables"] = json!(others.iter().map(|(r, c, _)| status_json(r, c)).collect::<Vec<_>>());
        if !lookalikes.is_empty() {
            v["lookalike_chains"] = json!(lookalikes.iter().map(|t| t.as_str()).collect::<Vec<_>>());
            v["lookalike_note"] = json!(lookalike_words(&lookalikes));
        }
        print_json(&v);
    } else {
        print_status(&report, &claims, paths.as_deref());
        for (r, c, p) in &others {
            println!("also table {}:", r.table);
            print_status(r, c, p.as_deref());
        }
        if !lookalikes.is_empty() {
            println!("  note: {}", lookalike_words(&lookalikes));
        }
    }
    Ok(())
}

fn status_json(report: &cordon_engine::StatusReport, claims: &[cordon_engine::Claim]) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    v["claims"] = json!(claims.iter().map(claim_json).collect::<Vec<_>>());
    v
}

/// One claim as `status --json` lists it: the server's `ClaimInfo` shape (`source`,
/// `since`, `allow`, `servers` as the source gave them), plus `claimed_at` (the same
/// time as `since`, the name earlier versions printed).
fn claim_json(c: &cordon_engine::Claim) -> serde_json::Value {
    let info = cordon_proto::ClaimInfo {
        source: cordon_agent::enforcer::wire_source(c.source),
        // A claims-file time that does not read is printed as not known (`null`).
        since: c.claimed_at.parse().ok(),
        allow: c.request.allow.iter().map(|a| a.to_string()).collect(),
        servers: c.request.servers.iter().map(|a| a.to_string()).collect(),
        owner: c.owner.clone(),
    };
    let mut v = serde_json::to_value(info).unwrap_or_default();
    v["claimed_at"] = json!(c.claimed_at);
    // A claim only the kernel's record named (issue 14 MED-4): its start and exceptions
    // are not known.
    if c.from_kernel {
        v["from_kernel"] = json!(true);
    }
    v
}

fn print_status(report: &cordon_engine::StatusReport, claims: &[cordon_engine::Claim], agent_paths: Option<&str>) {
    let backend = report.backend.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
    println!("{}", report.state.as_str());
    // Why it does not isolate (the policy's own NOT ISOLATED line is among the notes).
    for w in report.not_isolated.iter().filter(|w| !report.notes.contains(w)) {
        println!("  {w}");
    }
    if report.state != QuarantineState::Released {
        println!("  backend: {backend}, table {}", report.table);
    }
    if let Some(at) = &report.applied_at {
        println!("  applied at: {at}");
    }
    if let Some(reason) = &report.reason {
        println!("  reason: {reason}");
    }
    if report.state != QuarantineState::Released {
        let names: Vec<String> = report.backends_in_force.iter().map(|k| k.to_string()).collect();
        println!(
            "  rules in force in: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    for note in &report.notes {
        println!("  {note}");
    }
    // Records set aside or read from a backup, named until the operator deletes them.
    for p in &report.record_problems {
        println!("  note: {p}");
    }
    for s in &report.around_seen {
        let skips: Vec<&str> = s.skips.iter().map(|l| l.name()).collect();
        println!(
            "  seen around the hooks by the watcher: {s} (skips {}; `cordon status --acknowledge` forgets it)",
            skips.join(", ")
        );
    }
    for a in &report.acknowledged {
        println!("  {a}");
    }
    if report.state != QuarantineState::Released || !report.coverage.layers.is_empty() {
        print_coverage(&report.coverage);
    }
    for c in claims {
        if c.from_kernel {
            println!(
                "  claimed by {} (named only by the kernel's record of the quarantine, the table comment: applied while the state directory could not be written; since and exceptions not known)",
                c.holder_token()
            );
        } else {
            println!("  claimed by {} since {}", c.source, c.claimed_at);
        }
        let specs = |v: &[cordon_policy::AllowSpec]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
        if !c.request.allow.is_empty() {
            println!("    allow: {}", specs(&c.request.allow));
        }
        if !c.request.servers.is_empty() {
            println!("    servers: {}", specs(&c.request.servers));
        }
    }
    if let Some(p) = agent_paths {
        println!("  also kept open for the enrolled agent (its management paths, agent-paths.json; not a claim): {p}");
    }
}

/// "192.0.2.67 (from FILE)" or "none known (broadcast/multicast only)".
fn dhcp_words(servers: &[IpAddr], sources: &[String]) -> String {
    if servers.is_empty() {
        return "none known (broadcast / multicast only)".to_string();
    }
    let list: Vec<String> = servers.iter().map(|a| a.to_string()).collect();
    if sources.is_empty() {
        list.join(", ")
    } else {
        format!("{} (from {})", list.join(", "), sources.join(", "))
    }
}

/// `coverage: inet, netdev-ingress, netdev-egress` and what is not covered, exactly as
/// read back from the kernel.
fn print_coverage(c: &cordon_firewall::Coverage) {
    println!("  coverage: {}", c.summary());
    if !c.devices.is_empty() {
        println!("  devices: {}", c.devices.join(", "));
    }
    if !c.uncovered.is_empty() {
        println!("  not covered: {}", c.uncovered.join(", "));
    }
    if let Some(owned) = c.owned {
        println!("  ownership: {}", ownership_words(owned, c.holder.as_ref()));
    }
    for b in &c.bypasses {
        let skips: Vec<&str> = b.skips.iter().map(|l| l.name()).collect();
        println!("  around the hooks: {b} (not claimed: {})", skips.join(", "));
    }
    for t in &c.taps {
        println!("  reads every inbound frame: {t}");
    }
    for n in &c.notes {
        println!("  note: {n}");
    }
}

/// The `ownership:` line: who holds the tables, and whether it runs (trial27 LOW-1: a
/// SIGSTOPped holder was shown as running).
fn ownership_words(owned: bool, holder: Option<&cordon_firewall::TableHolder>) -> String {
    match (owned, holder) {
        (false, _) => "none (no cordon process holds the tables)".into(),
        (true, Some(h)) if h.stopped => format!(
            "held by a stopped cordon (pid {}; other processes cannot change the tables, and it repairs nothing until it continues)",
            h.pid
        ),
        (true, Some(h)) => format!(
            "held by a running cordon (pid {}; other processes cannot change the tables)",
            h.pid
        ),
        (true, None) => "held by a cordon process (other processes cannot change the tables)".into(),
    }
}

#[cfg(test)]
mod tests {
    /// trial34 L7: the package's forced removal (agent already stopped) was told "a
    /// running agent … puts its quarantine back … or stop the agent first".
    #[test]
    fn a_forced_release_speaks_of_a_running_agent_only_when_one_runs() {
        let none = super::forced_release_agent_warning(None, true).unwrap();
        assert!(
            !none.contains("a running agent") && !none.contains("stop the agent first"),
            "{none}"
        );
        assert!(
            none.contains("no agent runs here now") && none.contains("cordon release HOST"),
            "{none}"
        );
        let running = super::forced_release_agent_warning(Some("pid 7, host h1"), true).unwrap();
        assert!(running.contains("is running here (pid 7, host h1)"), "{running}");
        assert_eq!(super::forced_release_agent_warning(None, false), None);
    }

    /// trial27 LOW-1: a stopped holder is not called running.
    #[test]
    fn a_stopped_holder_is_said_to_be_stopped() {
        use cordon_firewall::TableHolder;
        let stopped = TableHolder { pid: 42, stopped: true };
        assert!(super::ownership_words(true, Some(&stopped)).starts_with("held by a stopped cordon (pid 42"));
        let running = TableHolder {
            pid: 42,
            stopped: false,
        };
        assert!(super::ownership_words(true, Some(&running)).starts_with("held by a running cordon (pid 42"));
        assert!(super::ownership_words(false, None).starts_with("none"));
    }

    /// Issue 14 LOW: `release --force` with nothing in force said `released (forced;
    /// tables: cordon; cleaned: )`, naming a table nothing was released from.
    #[test]
    fn a_forced_release_names_only_what_it_released() {
        assert_eq!(
            super::forced_release_text(&[], &[], &["cordon"]),
            "nothing to release: no Cordon rules were in force and no claim was recorded (forced; looked at tables: cordon)"
        );
        assert_eq!(
            super::forced_release_text(&["cordon"], &["netlink".to_string()], &["cordon", "other"]),
            "released (forced; tables: cordon; cleaned: netlink)"
        );
        assert_eq!(
            super::forced_release_text(&["cordon"], &[], &["cordon"]),
            "released (forced; tables: cordon; cleaned: -)"
        );
    }
}

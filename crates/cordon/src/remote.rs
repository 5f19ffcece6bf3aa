//! API client commands: `cordon hosts`, `cordon quarantine`, `cordon release HOST|--label`,
//! `cordon audit`. Tables for people, `--json` for scripts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use cordon_client::{Action, ApiClient, AuditFilter, AuditFormat, ClientError, HostFilter, Target};
use cordon_proto::timefmt::{Span, Timestamp};
use cordon_proto::{ActionRequest, ActionResponse, Host, LabelsRequest, RetryRequest, RevokeRequest};

use crate::exit::{block_on, Code, Failure};

use crate::term;

/// How to reach the API.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Server URL, https://HOST:PORT.
    #[arg(long = "server", env = "CORDON_SERVER", value_name = "URL", global = true)]
    pub server_url: Option<String>,
    /// API bearer token.
    #[arg(long, env = "CORDON_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The server's CA certificate (PEM), e.g. DATA/ca.pem or /etc/cordon/ca.pem.
    #[arg(long, env = "CORDON_CA", value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
}

impl Conn {
    /// True when `--token` was given as an option (not only through `CORDON_TOKEN`).
    pub fn token_given_on_command_line(&self) -> bool {
        self.token.is_some() && std::env::args().any(|a| a == "--token" || a.starts_with("--token="))
    }
}

#[derive(Args, Debug)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub what: Option<HostsWhat>,
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum HostsWhat {
    /// List hosts (filters: label, state, text).
    List {
        #[arg(long)]
        label: Option<String>,
        /// The state as the STATE column shows it: normal (confirmed by the agent),
        /// quarantine_pending, quarantined, release_pending, failed, tampered,
        /// not_enforcing, or never_reported.
        #[arg(long, value_parser = state_filter)]
        state: Option<String>,
        /// Substring of id, hostname or address.
        #[arg(long)]
        q: Option<String>,
        /// Only hosts whose agent is offline (no report for three heartbeats, or never).
        #[arg(long)]
        offline: bool,
        /// Only revoked hosts (by default a revoked host is listed, marked `revoked`,
        /// only while it may still be isolated).
        #[arg(long)]
        revoked: bool,
        /// Instead of hosts: agents the server refused because their certificate names a
        /// host id its database does not know (restored from a backup older than their
        /// enrollment). Each keeps any quarantine in force on its host.
        #[arg(long, conflicts_with_all = ["label", "state", "q", "offline", "revoked"])]
        unknown: bool,
    },
    /// One host in detail.
    Show {
        /// Host id, its start of 8 characters or more (the short id the tables print), or
        /// hostname.
        host: String,
    },
    /// Add or remove labels (adding/removing `Quarantine` quarantines/releases).
    Label {
        host: String,
        #[arg(long)]
        add: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Re-send a failed, tampered, degraded or pending host's desired state to its agent
    /// as a new revision (nothing of it changes; audited). Refused (409) when there is
    /// nothing to retry.
    Retry {
        host: String,
        /// Why (required).
        #[arg(long)]
        comment: String,
        /// Only if the host's desired-state revision is still this one (409 otherwise).
        #[arg(long, value_name = "REVISION")]
        if_revision: Option<i64>,
    },
    /// Revoke a host: its certificate is refused from now on.
    Revoke {
        host: String,
        #[arg(long)]
        comment: Option<String>,
        /// Revoke even though the host is quarantined (it stays quarantined with no way to
        /// release it remotely) or its release is not confirmed yet.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct QuarantineArgs {
    /// Host ids, id starts of 8 characters or more (the short ids the tables print), or
    /// hostnames.
    pub hosts: Vec<String>,
    /// Every host with this label.
    #[arg(long, conflicts_with = "hosts")]
    pub label: Option<String>,
    /// Why (required).
    #[arg(long)]
    pub comment: String,
    /// Extra allowed destination (same syntax as `cordon isolate --allow`).
    #[arg(long = "allow", value_name = "SPEC")]
    pub allow: Vec<String>,
    // Message shown to logged-in users, at most MAX_MESSAGE_CHARS (help text below).
    #[arg(long, help = crate::message_help("at most"))]
    pub message: Option<String>,
    /// Release automatically after this long (30m, 2h, 7d) or at this RFC 3339 time.
    #[arg(long)]
    pub expires: Option<String>,
    /// For hosts already quarantined: replace their exceptions, message and expiry with
    /// these (without it they keep their own, and the answer says so per host).
    #[arg(long)]
    pub replace: bool,
    /// Show what would change per host, and change nothing. With `--label --json` the
    /// answer's `if_revisions` is the reviewed set `--reviewed` takes.
    #[arg(long)]
    pub preview: bool,
    /// With `--label`: act on exactly the hosts of this earlier `--preview --json`
    /// answer (a file, `-` for stdin), at the revisions it showed; refused (nothing
    /// changed) if the label's hosts or any of them changed since. Without it,
    /// `--label` previews and then acts on exactly the hosts that preview found.
    #[arg(long, value_name = "FILE", requires = "label", conflicts_with = "preview")]
    pub reviewed: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub what: Option<AuditWhat>,
    /// Host id, its start of 8 characters or more (the short id), hostname or address. A
    /// name (or id start) several hosts have (revoked ones included) exits 2 listing their
    /// ids; a name no host has exits 2.
    #[arg(long)]
    pub host: Option<String>,
    /// The name the records carry (`alice`, `rule:edr`, `system`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Records by the API token with this id (the `(token N)` the table prints): the
    /// identity, which holds across renames.
    #[arg(long, value_name = "ID")]
    pub actor_token: Option<i64>,
    #[arg(long)]
    pub action: Option<String>,
    /// RFC 3339 time, or a duration back from now (2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    /// table (default), json, jsonl or csv.
    #[arg(long, default_value = "table")]
    pub format: String,
    #[command(flatten)]
    pub conn: Conn,
    /// Same as --format json.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditWhat {
    /// Check the audit log's hash chain and name the first bad record: on the server
    /// (admin token), or offline in a JSON-lines export with --file (and --ca to check
    /// its signatures). Exit 0 intact and every signature checked, 1 tampered (any edit
    /// of an export, also a line that is no longer a record or a field added), 2 bad
    /// input (unreadable, not JSON lines), 4 the server refused the token, 5 chain
    /// intact but signatures not checked (no --ca), 6 chain intact but a signed
    /// checkpoint says some records are unproven (a crash window, a start without the
    /// anchor file), 7 could not verify (server unreachable or failing: nothing checked),
    /// 8 not a full export (--file without a signed trailer: a filtered export or a cut
    /// one; records checked on their own, nothing vouched for), 9 signed by another CA
    /// (--file: no checkpoint is signed by the --ca given; nothing checked).
    Verify(AuditVerifyArgs),
}

#[derive(Args, Debug)]
pub struct AuditVerifyArgs {
    /// Verify this export (`cordon audit --format jsonl > FILE`) offline instead of the server.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A checkpoint `ID:HASH` recorded earlier (the server log's `audit checkpoint`
    /// line, or the `head:` of an earlier verification): catches a cut tail.
    #[arg(long, value_name = "ID:HASH")]
    pub checkpoint: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long)]
    pub json: bool,
}

/// `cordon audit verify`: server-side or offline (`--file`) chain verification.
fn audit_verify(a: AuditVerifyArgs) -> u8 {
    use cordon_proto::audit_chain::signature::CaCert;
    use cordon_proto::audit_chain::{
        joined_verdict, parse_export_checked, render, render_joined, split_joined, verify_export,
        verify_export_signed_by, ChainReport, ExportError, JoinedPart,
    };
    block_on(async move {
        let cp = a
            .checkpoint
            .as_deref()
            .map(|c| cordon_proto::audit_chain::given_checkpoint(c).map_err(Failure::usage))
            .transpose()?;
        let report = match &a.file {
            Some(path) => {
                // Unreadable or not JSON lines: bad input (exit 2). Well-formed JSON that
                // is not what an export holds was edited: TAMPERED (exit 1), like any
                // other change the chain catches.
                let text = read_export_file(path)?;
                // Nothing to call a partial export (trial28 LOW-4: an empty file left by
                // a refused `cordon audit … > FILE` read as "NOT A FULL EXPORT", exit 8).
                if text.trim().is_empty() {
                    return Err(Failure::usage(format!(
                        "{}: holds no records (the file is empty): nothing to verify; an export that failed \
                         (`cordon audit --format jsonl > FILE` exiting non-zero) leaves such a file",
                        path.display()
                    )));
                }
                // The signed checkpoints (in the log and the trailer) are checked with the
                // CA certificate (--ca / CORDON_CA); without one they are counted unchecked.
                let ca = match &a.conn.ca {
                    None => None,
                    Some(p) => {
                        let pem = std::fs::read(p)
                            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", p.display())))?;
                        Some(CaCert::from_pem(&pem).map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?)
                    }
                };
                let one = |text: &str| -> Result<ChainReport, Failure> {
                    Ok(match parse_export_checked(text) {
                        Ok((records, trailer)) => {
                            let given = cp
                                .clone()
                                .map(|c| (cordon_proto::audit_chain::GIVEN_SOURCE.to_string(), c))
                                .into_iter()
                                .collect();
                            match &ca {
                                // A file none of whose signatures names this CA is "signed by
                                // another CA" (exit 9), not a forgery of this one's.
                                Some(ca) => {
                                    let key = ca.fingerprint().to_string();
                                    verify_export_signed_by(
                                        &records,
                                        trailer.as_ref(),
                                        given,
                                        &key,
                                        ca.clone().checker(),
                                    )
                                }
                                None => verify_export(&records, trailer.as_ref(), given, None),
                            }
                        }
                        Err(ExportError::Syntax(e)) => return Err(Failure::usage(format!("{}: {e}", path.display()))),
                        Err(ExportError::Tampered(p)) => ChainReport::tampered(p),
                    })
                };
                // A last line cut off (trial33 LOW-B: a truncated export was "line N: not
                // JSON", exit 2): the lines before it are verified, and the file is said to
                // be cut off (exit 8), never intact.
                let (text, cut_off) = match cordon_proto::audit_chain::cut_off_last_line(&text) {
                    Some((line, before)) if !before.trim().is_empty() => (before.to_string(), Some(line)),
                    Some((line, _)) => {
                        return Err(Failure::usage(format!(
                            "{}: holds no complete record: line {line}, its only line, is cut off (not complete JSON)",
                            path.display()
                        )))
                    }
                    None => (text, None),
                };
                let split = split_joined(&text);
                if split.len() < 2 {
                    let mut report = one(&text)?;
                    report.cut_off_line = cut_off;
                    if cut_off.is_some() {
                        report.ok = false;
                    }
                    report
                } else {
                    // Several exports or archives joined into one file (`cat a b`, trial
                    // LOW-3): each part is verified as the file it was, and the verdict
                    // names the parts instead of calling the join tampering.
                    let mut parts = Vec::with_capacity(split.len());
                    let last = split.len() - 1;
                    for (k, (first_line, part)) in split.iter().enumerate() {
                        let mut report = one(part)?;
                        if k == last && cut_off.is_some() {
                            report.cut_off_line = cut_off;
                            report.ok = false;
                        }
                        // Line numbers of the joined file, not of the part.
                        if let Some(p) = report.problem.as_mut() {
                            p.position += (*first_line as u64).saturating_sub(1);
                        }
                        parts.push(JoinedPart {
                            first_line: *first_line,
                            last_line: first_line + part.lines().count().saturating_sub(1),
                            report,
                        });
                    }
                    if a.json {
                        let ok = parts.iter().all(|p| p.report.ok);
                        let v = serde_json::json!({ "ok": ok, "parts": parts });
                        println!("{}", crate::term::json(&v).map_err(anyhow::Error::from)?);
                    } else {
                        for (k, p) in parts.iter().enumerate() {
                            println!(
                                "== part {} of {} (lines {}–{}) ==",
                                k + 1,
                                parts.len(),
                                p.first_line,
                                p.last_line
                            );
                            print!("{}", render(&p.report));
                        }
                        println!("==");
                        print!("{}", render_joined(&parts));
                    }
                    let Some(decisive) = joined_verdict(&parts) else {
                        return Ok(());
                    };
                    let k = parts
                        .iter()
                        .position(|p| std::ptr::eq(&p.report, decisive))
                        .unwrap_or(0);
                    return exit_of_part(decisive, Some((k + 1, parts.len())));
                }
            }
            None => {
                // No verdict is not a verdict: a server that cannot be reached or fails to
                // answer exits 7, never 1 (TAMPERED); 2 and 4 keep their meaning.
                let no_verdict = |f: Failure| match f.code {
                    Code::Failed => Failure::new(
                        Code::CannotVerify,
                        f.error.context("could not verify the audit chain: nothing was checked"),
                    ),
                    _ => f,
                };
                let api = connect(&a.conn, Code::CannotVerify).map_err(no_verdict)?;
                api.audit_verify(a.checkpoint.as_deref())
                    .await
                    .map_err(|e| no_verdict(client_failure(e, &[400])))?
            }
        };
        if a.json {
            println!("{}", crate::term::json(&report).map_err(anyhow::Error::from)?);
        } else {
            print!("{}", render(&report));
        }
        exit_of(&report)
    })
}

/// Largest file `cordon audit verify --file` reads (bytes): it is read whole, and a full
/// export of a million records is well under this.
const MAX_EXPORT_FILE: u64 = 4 << 30;

/// The text of an export file for `cordon audit verify --file`: a regular file (a FIFO,
/// a device like `/dev/zero` or a directory is refused, never read: trial25 F6 read
/// `/dev/zero` until the kernel killed the process), at most [`MAX_EXPORT_FILE`] bytes,
/// UTF-8 without a byte-order mark. Anything else is bad input (exit 2) naming the file
/// and the problem.
fn read_export_file(path: &std::path::Path) -> Result<String, Failure> {
    use std::io::Read;
    let bad = |what: String| Failure::usage(format!("{}: {what}", path.display()));
    let not_regular =
        || bad("is not a regular file (a directory, device, FIFO or socket): give the export file itself".into());
    // The path is looked at before it is opened: opening a FIFO blocks until a writer
    // appears (trial28 LOW-1).
    if !std::fs::metadata(path)
        .map_err(|e| bad(format!("cannot read it: {e}")))?
        .is_file()
    {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let meta = file.metadata().map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > MAX_EXPORT_FILE {
        return Err(bad(format!(
            "is {} bytes, more than the {MAX_EXPORT_FILE} this command reads: not an audit export",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // Bounded even if the file grows while it is read.
    file.take(MAX_EXPORT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_EXPORT_FILE {
        return Err(bad(format!("grew past {MAX_EXPORT_FILE} bytes while it was read")));
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(bad(
            "starts with a UTF-8 byte-order mark (an editor added it): not the export the server wrote; \
             remove it, or verify the original file"
                .into(),
        ));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(bad(
            "is UTF-16 (PowerShell 5 `>` writes it): not the export the server wrote; re-save it as UTF-8 \
             without a byte-order mark"
                .into(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| bad(format!("is not UTF-8 text: {e}")))
}

/// The exit of `cordon audit verify` for `report` (see docs/server.md: 0 intact, 1
/// tampered, 5 signatures not checked, 6 unproven, 8 not a full export, 9 another CA,
/// 10 the log does not match the checkpoint given).
fn exit_of(report: &cordon_proto::audit_chain::ChainReport) -> Result<(), Failure> {
    exit_of_part(report, None)
}

/// [`exit_of`] for part `part` (its number, of how many) of a joined file: the last line
/// names the part that sets the exit code, never "nothing was verified" for the whole
/// file (trial35: part 1 verified, part 2 of another CA, and the last line said nothing
/// was verified).
fn exit_of_part(report: &cordon_proto::audit_chain::ChainReport, part: Option<(usize, usize)>) -> Result<(), Failure> {
    if let (None, None, Some(_), Some((k, n))) = (&report.problem, &report.given_mismatch, &report.other_ca, part) {
        return Err(Failure::msg(
            Code::OtherCa,
            format!(
                "part {k} of {n} of the joined file is signed by another CA than the one given: its records were not \
                 verified (each part's verdict is above); verify it with the CA certificate of the deployment that \
                 made it"
            ),
        ));
    }
    match &report.problem {
        // The caller's checkpoint against a log that checks on its own (trial33 MED-D).
        None if report.given_mismatch.is_some() => Err(Failure::msg(
            Code::CheckpointMismatch,
            "the audit log does not match the checkpoint you gave: it was rewritten, or the checkpoint is not this \
                 log's (mistyped, or another deployment's)",
        )),
        None if report.other_ca.is_some() => Err(Failure::msg(
            Code::OtherCa,
            "the export is signed by another CA than the one given: nothing was verified; pass the CA \
                 certificate of the deployment that made it",
        )),
        None if report.cut_off_line.is_some() && report.not_full_export.is_none() => Err(Failure::msg(
            Code::NotFullExport,
            "the file's last line is cut off: the lines before it were verified, but it is not a full export; verify \
                 a complete copy",
        )),
        None if report.not_full_export.is_some() => Err(Failure::msg(
            Code::NotFullExport,
            "not a full export (no signed trailer): its records were checked on their own and nothing in it is \
                 vouched for; verify a full export (`cordon audit --format jsonl`, no filter)",
        )),
        None if report.unchecked_signatures > 0 => Err(Failure::msg(
            Code::Unverified,
            "the checkpoint signatures were not verified: pass --ca CA.pem (or set CORDON_CA)",
        )),
        None if !report.warnings.is_empty() => Err(Failure::msg(
            Code::Unproven,
            format!(
                "the chain is intact, but {} warning(s): not every record is vouched for",
                report.warnings.len()
            ),
        )),
        // A checkpoint given and not compared (it names an archived record): a check
        // passed only in part, never plain OK (trial28).
        None if !report.not_compared.is_empty() => Err(Failure::msg(
            Code::Unverified,
            "the chain is intact, but the checkpoint given was not compared: it names a record retention \
                 archived; verify the archive with it (cordon audit verify --file ARCHIVE --checkpoint ID:HASH)",
        )),
        None => Ok(()),
        Some(p) => Err(Failure::msg(
            Code::Failed,
            match p.id {
                Some(id) => format!("audit chain broken at record {id}"),
                None => format!("audit chain broken at {}", p.subject.as_deref().unwrap_or("the log")),
            },
        )),
    }
}

/// `--state`: a value [`cordon_proto::parse_state_filter`] takes, else clap's usage
/// error (exit 2) naming `--state` and listing the valid values (trial30 LOW-1).
fn state_filter(s: &str) -> Result<String, String> {
    cordon_proto::parse_state_filter(s).map(|_| s.to_string())
}

/// Exit code for a call the server refused: 2 for the `usage` statuses (the request was
/// wrong), 4 for 401/403, 1 for anything else and for failures without an answer.
pub(crate) fn client_failure(e: ClientError, usage: &[u16]) -> Failure {
    let code = match e.status().map(|s| s.as_u16()) {
        Some(s) if usage.contains(&s) => Code::Usage,
        Some(401 | 403) => Code::NotPermitted,
        _ => Code::Failed,
    };
    Failure::new(code, e)
}

/// The statuses that mean "your request was wrong" for the host commands.
const HOST_USAGE: &[u16] = &[400, 404];

/// The statuses that mean "your request was wrong" for `cordon audit`: a bad filter
/// (400), no host by that name (404), a name several hosts have (409, listing them).
const AUDIT_USAGE: &[u16] = &[400, 404, 409];

/// A refused host command. A hostname two hosts share (the server answers 409: it will
/// not guess) is the caller's to fix: exit 2, listing each such name's hosts — id,
/// addresses, last seen — so the id can be given instead. Anything else as
/// [`client_failure`] with [`HOST_USAGE`].
async fn host_failure(api: &ApiClient, names: &[String], e: ClientError) -> Failure {
    if e.status().map(|s| s.as_u16()) != Some(409) {
        return client_failure(e, HOST_USAGE);
    }
    let mut lists = Vec::new();
    for n in names {
        let filter = HostFilter {
            q: Some(n.clone()),
            ..Default::default()
        };
        let Ok(list) = api.hosts(&filter).await else { continue };
        // The start of an id (a short id) several hosts' ids begin with (trial30 MED-1).
        if n.is_ascii() && cordon_proto::hostname::looks_like_host_id(n) {
            let start = n.to_ascii_lowercase();
            let same: Vec<&Host> = list
                .hosts
                .iter()
                .filter(|h| !h.revoked && h.id.starts_with(&start))
                .collect();
            if same.len() > 1 {
                lists.push(listed_hosts(
                    &format!(
                        "{} hosts have an id starting with {:?}: give more of the id, one of:",
                        same.len(),
                        term::safe(n)
                    ),
                    &same,
                ));
            }
            continue;
        }
        let mut same: Vec<Host> = list
            .hosts
            .into_iter()
            .filter(|h| !h.revoked && h.hostname.eq_ignore_ascii_case(n))
            .collect();
        // Look-alike names (full-width, a trailing dot, ß/ss) the server counts as the
        // same name: the hosts its duplicate flag names.
        let others: Vec<String> = same
            .iter()
            .flat_map(|h| &h.flags)
            .filter(|f| f.kind == cordon_proto::HostFlagKind::DuplicateHostname)
            .flat_map(|f| f.other_hosts.clone())
            .collect();
        for id in others {
            if !same.iter().any(|h| h.id == id) {
                if let Ok(h) = api.host(&id).await {
                    same.push(h);
                }
            }
        }
        if same.len() > 1 {
            let refs: Vec<&Host> = same.iter().collect();
            lists.push(ambiguous_hosts(n, &refs));
        }
    }
    if lists.is_empty() {
        return client_failure(e, HOST_USAGE);
    }
    Failure::usage(lists.join("\n"))
}

/// The hosts sharing hostname `name` (or a look-alike of it), one line each (id, hostname, addresses, last seen, state),
/// under a line saying to give an id.
fn ambiguous_hosts(name: &str, hosts: &[&Host]) -> String {
    listed_hosts(
        &format!(
            "{} hosts are named {:?}: give the host id instead, one of:",
            hosts.len(),
            term::safe(name)
        ),
        hosts,
    )
}

/// `hosts` one line each (id, hostname, addresses, last seen, state) under `title`.
fn listed_hosts(title: &str, hosts: &[&Host]) -> String {
    let mut out = title.to_string();
    for h in hosts {
        out.push_str(&format!(
            "\n  {}  name {:?}  addresses {}  last seen {}  state {}",
            term::safe(&h.id),
            term::safe(&h.hostname),
            if h.addresses.is_empty() {
                "-".to_string()
            } else {
                h.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            h.last_seen.map_or_else(|| "never".to_string(), |t| t.to_string()),
            h.state.as_str()
        ));
    }
    out
}

/// Checks `c` and builds the API client (60 s per request); `tls_code` is the exit code
/// when the CA file does not make a TLS configuration.
pub(crate) fn connect(c: &Conn, tls_code: Code) -> Result<ApiClient, Failure> {
    let base = c
        .server_url
        .as_deref()
        .ok_or_else(|| Failure::usage("give --server URL (or CORDON_SERVER)"))?;
    let token = c
        .token
        .as_deref()
        .ok_or_else(|| Failure::usage("give --token TOKEN (or CORDON_TOKEN)"))?;
    let ca_path =
        c.ca.as_deref()
            .ok_or_else(|| Failure::usage("give --ca FILE with the server's CA certificate (or CORDON_CA)"))?;
    let ca = std::fs::read(ca_path)
        .with_context(|| format!("cannot read {}", ca_path.display()))
        .map_err(|e| Failure::new(Code::Usage, e))?;
    ApiClient::new(base, token, &ca, Some(Duration::from_secs(60))).map_err(|e| match e {
        ClientError::Tls(_) => Failure::new(tls_code, e),
        ClientError::BadUrl { .. } | ClientError::NotABase(_) => Failure::new(Code::Usage, e),
        other => Failure::new(Code::Failed, other),
    })
}

fn print_json(v: &impl serde::Serialize) {
    match term::json(v) {
        Ok(t) => println!("{t}"),
        Err(e) => eprintln!("cordon: {e}"),
    }
}

/// Left-aligned columns.
/// Every cell goes through [`crate::term::safe`]: hostnames, labels, comments and agent
/// text cannot reach the terminal as control sequences.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| term::s(c)).collect()).collect();
    let rows = &rows;
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// The state in one phrase: `quarantined`, `quarantined (degraded: exception … unresolved)`,
/// `not_enforcing`, … — never more than the agent confirmed.
pub(crate) fn state_text(h: &Host) -> String {
    // A revoked host is listed while it may still be isolated: the server can no longer
    // release it (trial17 MED-5), nor know what is in force now, so its state is what it
    // last reported, said as such (issue 14).
    match h.revoked_note() {
        Some(note) => format!("{} ({note})", state_words(h)),
        None => state_words(h),
    }
}

fn state_words(h: &Host) -> String {
    // Other managers' claims (Wazuh, Velociraptor, a local `cordon isolate`) isolate the
    // host whatever Cordon's state says: the list never shows a bare state for such a
    // host (issue 16).
    // A previous enrollment's `agent` claim (trial20 HIGH-C) isolates it too.
    let others: Vec<&str> = h
        .claims
        .iter()
        .filter(|c| !c.is_own_agent_claim(&h.id))
        .map(|c| {
            if c.is_previous_enrollment(&h.id) {
                "a previous enrollment's agent claim"
            } else {
                c.source.as_str()
            }
        })
        .collect();
    let base = match h.state {
        // No report since it enrolled: nothing says what is in force, so never `normal`
        // (the console's "? Never reported"; trial24 LOW-4: listed `normal`).
        cordon_proto::HostState::Normal if h.never_reported() => "never reported".to_string(),
        cordon_proto::HostState::Quarantined if !h.degraded.is_empty() => {
            format!("quarantined (degraded: {})", h.degraded.join("; "))
        }
        // Cordon's release is in force, other managers' claims are not: never a bare
        // "normal" for a host that is isolated (trial finding).
        cordon_proto::HostState::Normal if !others.is_empty() => {
            return format!("normal (still isolated by {})", others.join(", "));
        }
        s => s.as_str().to_string(),
    };
    if others.is_empty() {
        base
    } else {
        format!("{base} · also: {}", others.join(", "))
    }
}

/// A host as CLI tables name it: `web01 (820cb233)` — the hostname and the console's short
/// id ([`cordon_proto::api::short_id`]), so two hosts of one name are told apart and the
/// short id addresses either; `name` alone when no host is known (an event's reference as
/// sent that matched none). Pure.
pub(crate) fn host_cell(name: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{name} ({})", cordon_proto::api::short_id(id)),
        None => name.to_string(),
    }
}

/// The hostnames of `ids` (each asked once, `GET /v1/hosts/{id}`), for tables that hold
/// only ids (approvals, events). A host the server no longer answers for is left out: its
/// cell then shows the short id alone.
pub(crate) async fn hostnames<'a>(
    api: &ApiClient,
    ids: impl IntoIterator<Item = &'a str>,
) -> std::collections::HashMap<String, String> {
    let mut names = std::collections::HashMap::new();
    for id in ids {
        if names.contains_key(id) {
            continue;
        }
        if let Ok(h) = api.host(id).await {
            names.insert(id.to_string(), h.hostname);
        }
    }
    names
}

/// The cell of host `id` with its name from [`hostnames`] (the short id alone when unknown).
pub(crate) fn named_host_cell(names: &std::collections::HashMap<String, String>, id: &str) -> String {
    match names.get(id) {
        Some(name) => host_cell(name, Some(id)),
        None => cordon_proto::api::short_id(id).to_string(),
    }
}

/// `hosts show` for people (pure, so it is tested as text). Says `in force` only for a
/// revision the agent confirmed in force.
pub(crate) fn show_host(h: &Host) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "{} ({})", term::safe(&h.hostname), term::safe(&h.id));
    for f in &h.flags {
        let _ = writeln!(o, "  FLAG:      {}", term::safe(&f.text()));
    }
    let reason = match (h.state, &h.state_reason) {
        // The degraded lines are part of the state text already; anything the agent said
        // besides (a desired state that went back) is not.
        (cordon_proto::HostState::Quarantined, Some(r)) if r.starts_with("degraded: ") => None,
        (_, r) => r.as_deref(),
    };
    // The time is the state's, so it follows the state's words; a revoked host's note
    // comes after it (trial24 LOW-4: "normal · revoked since T" read as the time of the
    // revocation, T being when the state began).
    let _ = writeln!(
        o,
        "  state:     {} since {}{}{}",
        term::safe(&state_words(h)),
        h.state_since,
        reason.map(|r| format!(" ({})", term::safe(r))).unwrap_or_default(),
        h.revoked_note().map(|n| format!(" ({n})")).unwrap_or_default()
    );
    let in_force = h.applied_revision >= h.desired.revision
        && match h.state {
            cordon_proto::HostState::Quarantined => h.desired.quarantined,
            cordon_proto::HostState::Normal => !h.desired.quarantined,
            _ => false,
        };
    let _ = writeln!(
        o,
        "  desired:   {} (revision {}, {})",
        if h.desired.quarantined { "quarantine" } else { "normal" },
        h.desired.revision,
        if in_force {
            "in force".to_string()
        } else if h.applied_revision > 0 && h.applied_revision < h.desired.revision {
            format!(
                "requested, not confirmed in force; last confirmed: revision {}",
                h.applied_revision
            )
        } else {
            "requested, not confirmed in force".to_string()
        }
    );
    if h.desired.quarantined {
        let _ = writeln!(
            o,
            "  by:        {} — {}",
            term::safe(&h.desired.actor_label().unwrap_or_else(|| "-".into())),
            term::safe(h.desired.comment.as_deref().unwrap_or("-"))
        );
        if !h.desired.allow.is_empty() {
            let _ = writeln!(o, "  allow:     {}", term::safe(&h.desired.allow.join(", ")));
        }
        if let Some(m) = &h.desired.message {
            let _ = writeln!(o, "  message:   {}", term::safe(m));
        }
        for d in &h.degraded {
            let _ = writeln!(o, "  missing:   {}", term::safe(d));
        }
        if let Some(e) = &h.desired.expires_at {
            let _ = writeln!(o, "  expires:   {e}");
        }
    }
    if !h.enforcing {
        let _ = writeln!(
            o,
            "  agent:     NOT ENFORCING (enforce = false: no rules are applied on this host)"
        );
    }
    for c in &h.claims {
        let mut line = format!("  claim:     {}", term::safe(c.source.as_str()));
        if let Some(t) = &c.since {
            line.push_str(&format!(" since {t}"));
        }
        if !c.allow.is_empty() {
            line.push_str(&format!(", allow {}", term::safe(&c.allow.join(", "))));
        }
        let _ = writeln!(o, "{line}");
    }
    let _ = writeln!(o, "  labels:    {}", term::safe(&h.labels.join(", ")));
    let _ = writeln!(
        o,
        "  os:        {}  agent {}",
        term::safe(h.os.as_deref().unwrap_or("-")),
        term::safe(h.agent_version.as_deref().unwrap_or("-"))
    );
    let beat = h.heartbeat_ms.unwrap_or(cordon_proto::DEFAULT_HEARTBEAT_MS);
    let _ = writeln!(
        o,
        "  last seen: {}{}",
        h.last_seen.map_or_else(|| "never".to_string(), |t| t.to_string()),
        if h.offline {
            format!(
                " — OFFLINE (no report for {} heartbeats of {} s)",
                cordon_proto::OFFLINE_AFTER_HEARTBEATS,
                beat as f64 / 1000.0
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        o,
        "  firewall:  {} digest {}",
        term::safe(h.backend.as_ref().map_or("-", |b| b.as_str())),
        term::safe(h.digest.as_deref().unwrap_or("-"))
    );
    if h.revoked {
        let _ = writeln!(o, "  REVOKED");
    }
    o
}

fn host_rows(hosts: &[Host]) {
    // A FLAGS column (duplicate hostname, shared address) only when a host has one.
    let flagged = hosts.iter().any(|h| !h.flags.is_empty());
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let mut row = vec![
                h.id.clone(),
                h.hostname.clone(),
                state_text(h),
                h.state_since.to_string(),
                h.labels.join(","),
                match (&h.last_seen, h.offline) {
                    (Some(t), true) => format!("{t} (offline)"),
                    (Some(t), false) => t.to_string(),
                    (None, _) => "never (offline)".into(),
                },
            ];
            if flagged {
                let kinds: Vec<String> = h.flags.iter().map(cordon_proto::HostFlag::short).collect();
                row.push(if kinds.is_empty() { "-".into() } else { kinds.join(", ") });
            }
            row
        })
        .collect();
    if flagged {
        table(
            &["ID", "HOSTNAME", "STATE", "SINCE", "LABELS", "LAST SEEN", "FLAGS"],
            &rows,
        );
    } else {
        table(&["ID", "HOSTNAME", "STATE", "SINCE", "LABELS", "LAST SEEN"], &rows);
    }
}

/// Prints the `hosts list --unknown` table and what it means, or a line saying there is
/// none.
fn unknown_agent_rows(agents: &[cordon_proto::UnknownAgent]) {
    if agents.is_empty() {
        println!("no unknown agents: every agent certificate the server saw names a known host");
        return;
    }
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|u| {
            vec![
                u.host_id.clone(),
                u.first_seen.to_string(),
                u.last_seen.to_string(),
                u.attempts.to_string(),
                u.address.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["HOST ID", "FIRST SEEN", "LAST SEEN", "REFUSED", "ADDRESS"], &rows);
    println!(
        "These agents' certificates name hosts this server's database does not know (restored from a backup older \
         than their enrollment, or deleted). Each keeps any quarantine in force on its host: enrol the host again \
         (`cordon agent enroll` on the host), then `cordon release HOST` lifts the old enrollment's quarantine; or \
         release it on the host (stop the agent, then `cordon release --source agent`)."
    );
}

pub fn hosts(a: HostsArgs) -> u8 {
    block_on(async move {
        let api = connect(&a.conn, Code::Failed)?;
        let fail = |e| client_failure(e, HOST_USAGE);
        match a.what.unwrap_or(HostsWhat::List {
            label: None,
            state: None,
            q: None,
            offline: false,
            revoked: false,
            unknown: false,
        }) {
            HostsWhat::List { unknown: true, .. } => {
                let list = api.unknown_agents().await.map_err(fail)?;
                if a.json {
                    print_json(&list);
                } else {
                    unknown_agent_rows(&list.agents);
                }
            }
            HostsWhat::List {
                label,
                state,
                q,
                offline,
                revoked,
                unknown: false,
            } => {
                let list = api
                    .hosts(&HostFilter {
                        label,
                        state,
                        q,
                        offline: offline.then_some(true),
                        revoked: revoked.then(|| "only".to_string()),
                    })
                    .await
                    .map_err(fail)?;
                if a.json {
                    print_json(&list);
                } else {
                    host_rows(&list.hosts);
                    // Agents the database does not know are no rows above, yet each may keep
                    // its host quarantined (trial32 HIGH-2): said under every listing. A
                    // server without the call (404) or a refusal says nothing.
                    if let Ok(u) = api.unknown_agents().await {
                        if !u.agents.is_empty() {
                            eprintln!(
                                "note: {} agent(s) whose certificate names a host this server's database does not know \
                                 were refused (a restore older than their enrollment?); each keeps any quarantine on \
                                 its host: `cordon hosts list --unknown`",
                                u.agents.len()
                            );
                        }
                    }
                }
            }
            HostsWhat::Show { host } => {
                let h: Host = match api.host(&host).await {
                    Ok(h) => h,
                    Err(e) => return Err(host_failure(&api, std::slice::from_ref(&host), e).await),
                };
                if a.json {
                    print_json(&h);
                } else {
                    print!("{}", show_host(&h));
                }
            }
            HostsWhat::Label {
                host,
                add,
                remove,
                comment,
            } => {
                let h = match api.labels(&host, &LabelsRequest { add, remove, comment }).await {
                    Ok(h) => h,
                    Err(e) => return Err(host_failure(&api, std::slice::from_ref(&host), e).await),
                };
                if a.json {
                    print_json(&h);
                } else {
                    println!(
                        "{}: labels {}; state {}",
                        term::safe(&h.hostname),
                        term::safe(&h.labels.join(", ")),
                        h.state.as_str()
                    );
                }
            }
            HostsWhat::Retry {
                host,
                comment,
                if_revision,
            } => {
                let req = RetryRequest {
                    comment: Some(comment),
                    if_revision,
                    preview: false,
                };
                match api.retry(&host, &req).await {
                    Ok(out) => print_action(&out, a.json),
                    Err(e) => return Err(host_failure(&api, std::slice::from_ref(&host), e).await),
                }
            }
            HostsWhat::Revoke { host, comment, force } => {
                let h = match api.revoke(&host, &RevokeRequest { comment, force }).await {
                    Ok(h) => h,
                    Err(e) => return Err(host_failure(&api, std::slice::from_ref(&host), e).await),
                };
                if a.json {
                    print_json(&h);
                } else {
                    println!("revoked {} ({})", term::safe(&h.hostname), term::safe(&h.id));
                }
            }
        }
        Ok(())
    })
}

/// `--expires 2h` or an RFC 3339 time.
fn expires_at(s: &str) -> Result<Timestamp, Failure> {
    match Span::parse(s) {
        Ok(span) => {
            cordon_proto::check_expiry_secs(&format!("--expires {}", s.trim()), span.secs()).map_err(Failure::usage)?;
            return Ok(Timestamp::from_unix_ms_clamped(
                cordon_proto::timefmt::now_ms().saturating_add(span.millis()),
            ));
        }
        // `0h`, `99999999999d`: a duration, so say what is wrong with it, not that it is
        // not an RFC 3339 time (trial finding).
        Err(why) if looks_like_duration(s) => return Err(Failure::usage(why.field("--expires"))),
        Err(_) => {}
    }
    let t = Timestamp::parse(s).map_err(Failure::usage)?;
    let ahead_ms = t.unix_ms().saturating_sub(cordon_proto::timefmt::now_ms());
    cordon_proto::check_expiry_secs(&format!("--expires {}", s.trim()), ahead_ms / 1000).map_err(Failure::usage)?;
    Ok(t)
}

/// Digits then letters only (`2h`, `0h`, `30x`): meant as a duration, never an RFC 3339
/// time (which has `-` and `:`).
fn looks_like_duration(s: &str) -> bool {
    let t = s.trim();
    t.starts_with(|c: char| c.is_ascii_digit()) && t.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `--since 2h` (back from now) or an RFC 3339 time, for `option` (`--since`, `--until`).
///
/// # Errors
/// Exit 2 naming `option` and both accepted forms (review14 LOW-12: `--since 2w` said only
/// that it was no RFC 3339 time, naming neither the option nor the durations).
fn time_arg(option: &str, s: &str) -> Result<String, Failure> {
    match Span::parse(s) {
        Ok(span) => {
            return Ok(cordon_proto::timefmt::to_rfc3339(
                cordon_proto::timefmt::now_ms().saturating_sub(span.millis()),
            ))
        }
        Err(why) if looks_like_duration(s) => {
            return Err(Failure::usage(format!(
                "{}; or an RFC 3339 time (e.g. 2030-01-02T03:04:05Z)",
                why.field(option)
            )))
        }
        Err(_) => {}
    }
    cordon_proto::timefmt::parse_rfc3339(s).map_err(|why| {
        Failure::usage(format!(
            "{option}: {why}; or a duration back from now like 30m, 2h or 7d"
        ))
    })?;
    Ok(s.to_string())
}

/// A selection that matched no host is the caller's mistake (a mistyped label in a SOAR
/// step must not exit 0): exit 2 naming the selector. The server refuses such an action
/// itself (404); this also covers a preview, which it answers with an empty set.
fn nothing_matched(out: &ActionResponse, label: Option<&str>) -> Result<(), Failure> {
    if !out.results.is_empty() {
        return Ok(());
    }
    Err(Failure::usage(match label {
        Some(l) => format!(
            "{}: no host carries label {:?}; nothing was done",
            out.action,
            term::safe(l)
        ),
        None => format!("{}: no matching hosts; nothing was done", out.action),
    }))
}

fn print_action(out: &ActionResponse, json: bool) {
    if json {
        print_json(out);
        return;
    }
    let rows: Vec<Vec<String>> = out
        .results
        .iter()
        .map(|r| {
            vec![
                r.host_id.clone(),
                r.hostname.clone(),
                change_text(r),
                r.state.as_str().to_string(),
                r.revision.to_string(),
            ]
        })
        .collect();
    table(&["ID", "HOSTNAME", "CHANGE", "STATE", "REVISION"], &rows);
    if out.preview {
        println!("preview: nothing was changed");
    }
    if out
        .results
        .iter()
        .any(|r| r.change == cordon_proto::ActionChange::AlreadyQuarantined)
    {
        println!(
            "hosts already asked to be quarantined kept their own exceptions/message/expiry; --replace replaces them"
        );
    }
    for line in review_lines(out) {
        println!("{line}");
    }
    for line in still_isolated_lines(out) {
        println!("{line}");
    }
}

/// For a release: one warning per host that other managers' claims keep isolated after
/// Cordon's release (the agent never undoes another source's claim), so a release is
/// never read as "the host is open" when it is not.
pub(crate) fn still_isolated_lines(out: &ActionResponse) -> Vec<String> {
    if out.action != cordon_proto::HostAction::Release {
        return Vec::new();
    }
    out.results
        .iter()
        .filter(|r| !r.other_claims.is_empty())
        .map(|r| {
            format!(
                "{} ({}): STILL ISOLATED by other claims: {} — Cordon's release removes only its own; \
                 release those with their own tool (or `cordon release --source SOURCE` on the host)",
                term::safe(&r.hostname),
                term::safe(&r.host_id),
                term::safe(&r.other_claims.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "))
            )
        })
        .collect()
}

/// Per host, what the action changed, in the console's words
/// ([`cordon_proto::review::change_words`]): `new`, `replaced allow, expires_at`,
/// `already quarantined (kept allow)` only once confirmed, `already requested — NOT
/// ENFORCING (enforce = false)`, `…; protected: cordon-protected`.
pub(crate) fn change_text(r: &cordon_proto::ActionResult) -> String {
    cordon_proto::review::change_words(r)
}

/// The review's notes about an action's hosts — agents that enforce nothing, protected
/// labels — in the console review's sentences ([`cordon_proto::review::notes`]), each
/// host named `hostname (short id)` and escaped for the terminal.
pub(crate) fn review_lines(out: &ActionResponse) -> Vec<String> {
    let what = out.action.as_str();
    cordon_proto::review::notes(what, &out.results, &|r| host_cell(&r.hostname, Some(&r.host_id)))
        .iter()
        .map(|l| term::s(l))
        .collect()
}

/// One host (by path), several hosts, or a label.
fn target(mut hosts: Vec<String>, label: Option<String>) -> Result<Target, Failure> {
    match (hosts.len(), label) {
        (1, None) => Ok(Target::Host(hosts.remove(0))),
        (0, None) => Err(Failure::usage("give HOST... or --label LABEL")),
        (_, label) => Ok(Target::Selection { hosts, label }),
    }
}

/// The reviewed set in an earlier `--preview --json` answer (`path`, `-` for stdin):
/// its `if_revisions` (host id → revision).
fn reviewed_set(path: &std::path::Path) -> Result<std::collections::BTreeMap<String, i64>, Failure> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read --reviewed {}: {e}", path.display())))?
    };
    let preview: ActionResponse = serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "--reviewed {}: not the JSON answer of a --preview ({e})",
            path.display()
        ))
    })?;
    if !preview.preview || preview.if_revisions.is_empty() {
        return Err(Failure::usage(format!(
            "--reviewed {}: not a preview naming hosts (run the same command with --preview --json); nothing was changed",
            path.display()
        )));
    }
    Ok(preview.if_revisions)
}

/// A label action acts on a reviewed set, never on whatever carries the label when the
/// request lands: `reviewed` (from `--reviewed`), or else a preview made now, whose
/// hosts are printed before the action. The server refuses (409, nothing changed) if
/// the label's hosts or any of their revisions changed since.
async fn act_on_label(
    api: &ApiClient,
    action: Action,
    label: &str,
    mut req: ActionRequest,
    reviewed: Option<std::collections::BTreeMap<String, i64>>,
    json: bool,
) -> Result<ActionResponse, ClientError> {
    let target = || Target::Selection {
        hosts: vec![],
        label: Some(label.to_string()),
    };
    let set = match reviewed {
        Some(set) => set,
        None => {
            let preview = api
                .act(
                    action,
                    target(),
                    ActionRequest {
                        preview: true,
                        ..req.clone()
                    },
                )
                .await?;
            if preview.if_revisions.is_empty() {
                // No host carries the label: nothing to act on, and nothing is sent.
                return Ok(preview);
            }
            if !json {
                let mut names: Vec<String> = preview
                    .results
                    .iter()
                    .map(|r| term::safe(&r.hostname).into_owned())
                    .collect();
                // By name, not in the server's order (host ids are random UUIDs): the
                // same set always reads the same (the final CI saw "db-b, db-a" once).
                names.sort();
                println!(
                    "label {}: {} host{} reviewed ({}); acting on exactly these",
                    term::safe(label),
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                );
            }
            preview.if_revisions
        }
    };
    req.if_revisions = Some(set);
    api.act(action, target(), req).await
}

pub fn quarantine(a: QuarantineArgs) -> u8 {
    block_on(async move {
        let api = connect(&a.conn, Code::Failed)?;
        let req = ActionRequest {
            comment: Some(a.comment.clone()),
            allow: a.allow.clone(),
            message: a.message.clone(),
            expires_at: a.expires.as_deref().map(expires_at).transpose()?,
            replace: a.replace,
            preview: a.preview,
            ..Default::default()
        };
        let reviewed = a.reviewed.as_deref().map(reviewed_set).transpose()?;
        let answer = match (&a.label, a.preview) {
            (Some(l), false) if a.hosts.is_empty() => {
                act_on_label(&api, Action::Quarantine, l, req, reviewed, a.json).await
            }
            _ => {
                api.act(Action::Quarantine, target(a.hosts.clone(), a.label.clone())?, req)
                    .await
            }
        };
        let out = match answer {
            Ok(o) => o,
            Err(e) => return Err(host_failure(&api, &a.hosts, e).await),
        };
        nothing_matched(&out, a.label.as_deref())?;
        print_action(&out, a.json);
        Ok(())
    })
}

/// `cordon release HOST...|--label L --comment TEXT [--preview]` (called from the local
/// command). A label release also names the revoked hosts with the label that stay
/// quarantined (the server acts on no revoked host; trial36 LOW-C).
pub fn release(
    hosts: Vec<String>,
    label: Option<String>,
    comment: Option<String>,
    preview: bool,
    conn: &Conn,
    json: bool,
) -> Result<(), Failure> {
    let conn = conn.clone();
    crate::exit::run_async(async move {
        let comment = comment.ok_or_else(|| Failure::usage("releasing through the server needs --comment TEXT"))?;
        let api = connect(&conn, Code::Failed)?;
        let req = ActionRequest {
            comment: Some(comment),
            preview,
            ..Default::default()
        };
        let answer = match &label {
            Some(l) if hosts.is_empty() && !preview => act_on_label(&api, Action::Release, l, req, None, json).await,
            _ => {
                api.act(Action::Release, target(hosts.clone(), label.clone())?, req)
                    .await
            }
        };
        let revoked = match &label {
            Some(l) if hosts.is_empty() => revoked_quarantined(&api, l).await,
            _ => Vec::new(),
        };
        let out = match answer {
            Ok(o) if !o.results.is_empty() => o,
            // No host the server can act on carries the label (404, or an empty preview).
            Ok(_)
            | Err(ClientError::Refused {
                status: cordon_client::reqwest::StatusCode::NOT_FOUND,
                ..
            }) if !revoked.is_empty() => {
                return Err(Failure::usage(format!(
                    "release: every host with label {:?} is revoked; nothing was done. {}",
                    term::safe(label.as_deref().unwrap_or_default()),
                    term::s(&cordon_proto::review::revoked_left_out("release", &revoked))
                )));
            }
            Ok(o) => o,
            Err(e) => return Err(host_failure(&api, &hosts, e).await),
        };
        nothing_matched(&out, label.as_deref())?;
        print_action(&out, json);
        if !revoked.is_empty() && !json {
            println!(
                "{}",
                term::s(&cordon_proto::review::revoked_left_out("release", &revoked))
            );
        }
        Ok(())
    })
}

/// The revoked hosts carrying `label` that are still desired quarantined, named
/// `hostname (short id)` for the terminal: no action reaches them. Empty when the list
/// cannot be read (the action's own answer stands; this only adds a note).
async fn revoked_quarantined(api: &ApiClient, label: &str) -> Vec<String> {
    let filter = HostFilter {
        label: Some(label.to_string()),
        revoked: Some("only".into()),
        ..Default::default()
    };
    match api.hosts(&filter).await {
        Ok(list) => list
            .hosts
            .iter()
            .filter(|h| h.desired.quarantined)
            .map(|h| host_cell(&h.hostname, Some(&h.id)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub fn audit(a: AuditArgs) -> u8 {
    if let Some(AuditWhat::Verify(v)) = a.what {
        return audit_verify(v);
    }
    block_on(async move {
        let api = connect(&a.conn, Code::Failed)?;
        let format = if a.json { "json".to_string() } else { a.format.clone() };
        let wire = match format.as_str() {
            "table" | "json" => AuditFormat::Json,
            "jsonl" => AuditFormat::Jsonl,
            "csv" => AuditFormat::Csv,
            other => {
                return Err(Failure::usage(format!(
                    "unknown --format {other:?} (table, json, jsonl, csv)"
                )))
            }
        };
        let filter = AuditFilter {
            host: a.host.clone(),
            actor: a.actor.clone(),
            action: a.action.clone(),
            actor_token_id: a.actor_token,
            since: a.since.as_deref().map(|s| time_arg("--since", s)).transpose()?,
            until: a.until.as_deref().map(|s| time_arg("--until", s)).transpose()?,
        };
        // 409: a hostname several hosts have (the server lists their ids) is the caller's
        // to fix, as 404 (no such host) is (trial25 F9).
        let fail = |e| client_failure(e, AUDIT_USAGE);
        // The server's last verification found the chain tampered: said first (on stdout
        // above a table, on stderr for the machine formats, which stay parseable).
        let alert = api.audit_alert().await.map_err(fail)?;
        if let Some(a) = &alert {
            if format == "table" {
                println!("{}", a.banner());
            } else {
                eprintln!("{}", a.banner());
            }
        }
        match format.as_str() {
            "table" => {
                let list = api.audit(&filter).await.map_err(fail)?;
                let rows: Vec<Vec<String>> = list
                    .records
                    .iter()
                    .map(|r| {
                        vec![
                            r.at.clone(),
                            r.actor_label(),
                            r.action.clone(),
                            r.host_id.clone().unwrap_or_else(|| "-".into()),
                            r.result.clone(),
                            r.comment.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&["AT", "ACTOR", "ACTION", "HOST", "RESULT", "COMMENT"], &rows);
            }
            _ => print!("{}", api.audit_text(&filter, wire).await.map_err(fail)?),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// review14 LOW-12: a bad `--since`/`--until` names the option and both forms it
    /// takes, whichever form it was meant as (`--since 2w` said only "not an RFC 3339 time").
    #[test]
    fn a_bad_time_option_names_itself_and_both_forms() {
        for (option, value) in [("--since", "2w"), ("--since", "0h"), ("--until", "yesterday")] {
            let f = time_arg(option, value).unwrap_err();
            let text = format!("{:#}", f.error);
            assert_eq!(f.code, crate::exit::Code::Usage);
            assert!(
                text.starts_with(&format!("{option}: \"{value}\""))
                    && text.contains("RFC 3339")
                    && (text.contains("2h") || text.contains("out of range")),
                "{text}"
            );
        }
        assert!(time_arg("--since", "2h").is_ok());
        assert_eq!(
            time_arg("--until", "2030-01-02T03:04:05Z").unwrap(),
            "2030-01-02T03:04:05Z"
        );
    }

    fn host(state: &str, claims: &[&str]) -> Host {
        let claims: Vec<serde_json::Value> = claims.iter().map(|s| serde_json::json!({"source": s})).collect();
        serde_json::from_value(serde_json::json!({
            "id": "h1", "hostname": "web3", "os": null, "addresses": [], "labels": [],
            "agent_version": null, "last_seen": null, "enrolled_at": "2026-11-30T00:00:00Z",
            "desired": {"revision": 5, "quarantined": false},
            "state": state, "state_reason": null, "state_since": "2026-11-30T00:00:00Z",
            "applied_revision": 5, "digest": null, "backend": null, "revoked": false,
            "claims": claims,
        }))
        .unwrap()
    }

    /// Trial finding: `--expires 0h` said it was not an RFC 3339 time.
    #[test]
    fn a_bad_duration_is_named_as_a_duration() {
        let e = expires_at("0h").unwrap_err();
        assert!(format!("{e:?}").contains("\"0h\" is out of range"), "{e:?}");
        let e = expires_at("3x").unwrap_err();
        assert!(format!("{e:?}").contains("not a duration like 30m, 2h or 7d"), "{e:?}");
        // Issue 13: the one duration type names the option, and refuses what every other
        // place refuses (`2w`).
        let e = expires_at("2w").unwrap_err();
        assert!(
            format!("{e:?}").contains("--expires: \"2w\" is not a duration"),
            "{e:?}"
        );
        assert!(expires_at("2h").is_ok());
        let e = expires_at("2030-13-01T00:00:00Z").unwrap_err();
        assert!(format!("{e:?}").contains("RFC 3339"), "{e:?}");
    }

    /// Trial finding, the fault kind: a host Cordon released but other managers still
    /// isolate was listed as a bare "normal".
    #[test]
    fn a_host_other_claims_isolate_never_shows_a_bare_state() {
        let h = host("normal", &["wazuh", "local"]);
        assert_eq!(state_text(&h), "normal (still isolated by wazuh, local)");
        assert!(show_host(&h).contains("state:     normal (still isolated by wazuh, local)"));
        assert_eq!(state_text(&host("normal", &[])), "normal");
        assert_eq!(state_text(&host("normal", &["agent"])), "normal");
        // Quarantined by Cordon and another manager: the list names the other claim too.
        assert_eq!(
            state_text(&host("quarantined", &["agent", "wazuh"])),
            "quarantined · also: wazuh"
        );
        assert_eq!(state_text(&host("quarantined", &["agent"])), "quarantined");
        assert_eq!(
            state_text(&host("quarantine_pending", &["local"])),
            "quarantine_pending · also: local"
        );
    }

    /// trial17 MED-5: a revoked host listed because it may still be isolated says so in
    /// the STATE column (`hosts list`), so nobody takes it for one the server can release.
    /// Issue 14: and its state is only its last report (the machine may be open by now),
    /// said as such — never a present-tense `quarantined`.
    #[test]
    fn a_revoked_host_is_marked_revoked_in_the_list() {
        let mut h = host("quarantined", &["agent", "wazuh"]);
        h.revoked = true;
        h.last_seen = Some("2026-11-30T18:00:00Z".parse().unwrap());
        assert_eq!(
            state_text(&h),
            "quarantined · also: wazuh (last reported 2026-11-30T18:00:00.000Z, revoked: no longer reporting)"
        );
        assert!(
            show_host(&h).contains("(last reported 2026-11-30T18:00:00.000Z, revoked: no longer reporting)"),
            "{}",
            show_host(&h)
        );
        let mut h = host("normal", &["local"]);
        h.revoked = true;
        assert_eq!(
            state_text(&h),
            "normal (still isolated by local) (last reported never, revoked: no longer reporting)"
        );
    }

    /// trial24 LOW-4: a host whose agent never reported was listed `normal` (the console
    /// says "Never reported"); `hosts show` of a revoked host printed "normal · revoked
    /// since T", T being when the state began, not the revocation.
    #[test]
    fn never_reported_is_not_normal_and_the_state_time_follows_the_state() {
        let mut fresh = host("normal", &[]);
        fresh.applied_revision = 0;
        assert_eq!(state_text(&fresh), "never reported");
        assert!(show_host(&fresh).contains("state:     never reported since 2026-11-30T00:00:00.000Z"));
        // Asked to quarantine before its first report: the request is what it is.
        let mut asked = host("quarantine_pending", &[]);
        asked.applied_revision = 0;
        assert_eq!(state_text(&asked), "quarantine_pending");
        let mut h = host("normal", &[]);
        h.revoked = true;
        let shown = show_host(&h);
        assert!(
            shown.contains(
                "state:     normal since 2026-11-30T00:00:00.000Z (last reported never, revoked: no longer reporting)"
            ),
            "{shown}"
        );
        assert!(!shown.contains("revoked since"), "{shown}");
        assert!(!shown.contains("reporting) since"), "{shown}");
        // Revoked before it ever reported: no "last reported" (trial30 LOW-5: "never
        // reported since T (last reported T, …)", T being the enrollment).
        fresh.revoked = true;
        fresh.last_seen = Some(fresh.state_since);
        let shown = show_host(&fresh);
        assert!(
            shown.contains(
                "state:     never reported since 2026-11-30T00:00:00.000Z (revoked before its agent ever reported)"
            ),
            "{shown}"
        );
        assert!(!shown.contains("last reported"), "{shown}");
    }

    /// CLI tables name hosts by the console's short id, so two `web01`s are told apart
    /// and addressed.
    #[test]
    fn host_cells_carry_the_short_id() {
        assert_eq!(
            host_cell("web01", Some("820cb233-1c2d-4e5f-8a9b-0c1d2e3f4a5b")),
            "web01 (820cb233)"
        );
        // An event whose reference matched no host: the reference as sent.
        assert_eq!(host_cell("10.0.0.9", None), "10.0.0.9");
    }

    /// Trial6 finding: `cordon release web1` printed `released release_pending` and nothing
    /// more while Wazuh's claim kept the host isolated (only the webhook said so).
    #[test]
    fn a_release_other_claims_keep_isolated_says_still_isolated() {
        let result = |claims: &[&str]| cordon_proto::ActionResult {
            host_id: "h1".into(),
            hostname: "web1".into(),
            state: cordon_proto::HostState::ReleasePending,
            revision: 6,
            change: cordon_proto::ActionChange::Released,
            fields: vec![],
            other_claims: claims.iter().map(|c| cordon_proto::ClaimSource::from_wire(c)).collect(),
            not_enforcing: false,
            protected: vec![],
        };
        let out = ActionResponse {
            action: cordon_proto::HostAction::Release,
            results: vec![result(&["wazuh", "local"]), result(&[])],
            preview: false,
            if_revisions: Default::default(),
        };
        let lines = still_isolated_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("web1 (h1): STILL ISOLATED by other claims: wazuh, local"),
            "{lines:?}"
        );
        // A quarantine never says it (the claims are no news there).
        let q = ActionResponse {
            action: cordon_proto::HostAction::Quarantine,
            ..out
        };
        assert!(still_isolated_lines(&q).is_empty());
    }

    /// Trial6 finding: `hosts show` left out the message users see on the host.
    #[test]
    fn hosts_show_prints_the_quarantine_message() {
        let mut h = host("quarantined", &["agent"]);
        h.desired.quarantined = true;
        h.desired.message = Some("Isolated by the SOC. Call 555-0100.\x1b[2J".into());
        let text = show_host(&h);
        assert!(
            text.contains("  message:   Isolated by the SOC. Call 555-0100."),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "terminal controls are escaped: {text}");
    }
}

#[cfg(test)]
mod who_acted_tests {
    use super::show_host;

    /// Trial18 MED-2: `hosts show` named who acted by token name only, so two tokens
    /// sharing a name, or a token renamed in the database to `rule:…`, could not be told
    /// apart from each other or from automation.
    #[test]
    fn hosts_show_names_who_acted_by_token_id_and_a_renamed_token_as_such() {
        let mut h: cordon_proto::Host = serde_json::from_value(serde_json::json!({
            "id": "h1", "hostname": "web1", "os": null, "addresses": [], "labels": [],
            "agent_version": null, "last_seen": null, "enrolled_at": "2030-01-01T00:00:00.000Z",
            "desired": {"revision": 1, "quarantined": true, "comment": "ir-1", "actor": "ops1",
                        "actor_token_id": 94, "actor_token_name": "ops1"},
            "state": "quarantine_pending", "state_reason": null, "state_since": "2030-01-01T00:00:00.000Z",
            "applied_revision": 0, "digest": null, "backend": null, "revoked": false
        }))
        .unwrap();
        assert!(
            show_host(&h).contains("  by:        ops1 (token 94) — ir-1"),
            "{}",
            show_host(&h)
        );
        h.desired.actor_token_name = Some("rule:edr-mal".into());
        assert!(
            show_host(&h).contains("  by:        ops1 (token 94, now named \"rule:edr-mal\") — ir-1"),
            "{}",
            show_host(&h)
        );
        // A rule's action carries no token: the name alone.
        h.desired.actor = Some("rule:edr-mal".into());
        h.desired.actor_token_id = None;
        h.desired.actor_token_name = None;
        assert!(
            show_host(&h).contains("  by:        rule:edr-mal — ir-1"),
            "{}",
            show_host(&h)
        );
    }
}

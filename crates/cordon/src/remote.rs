//! API client commands: `cordon hosts`, `cordon quarantine`, `cordon release HOST|--label`,
//! `cordon audit`. Tables for people, `--json` for scripts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use cordon_proto::{ActionRequest, ActionResponse, AuditList, Host, HostList, LabelsRequest};
use serde_json::{json, Value};

use crate::term;

/// How to reach the API.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Server URL, https://HOST:PORT.
    #[arg(long = "server", env = "CORDON_SERVER", value_name = "URL")]
    pub server_url: Option<String>,
    /// API bearer token.
    #[arg(long, env = "CORDON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's CA certificate (PEM), e.g. DATA/ca.pem or /etc/cordon/ca.pem.
    #[arg(long, env = "CORDON_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
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
        #[arg(long)]
        state: Option<String>,
        /// Substring of id, hostname or address.
        #[arg(long)]
        q: Option<String>,
    },
    /// One host in detail.
    Show { host: String },
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
    /// Revoke a host: its certificate is refused from now on.
    Revoke {
        host: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct QuarantineArgs {
    /// Host ids or hostnames.
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
    /// Message shown to logged-in users (at most 256 characters).
    #[arg(long)]
    pub message: Option<String>,
    /// Release automatically after this long (30m, 2h, 7d) or at this RFC 3339 time.
    #[arg(long)]
    pub expires: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Host id or hostname.
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
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

/// Why a command failed: its exit code and the message printed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) msg: String,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            msg: e.to_string(),
        }
    }
}

pub(crate) fn fail(code: u8, msg: impl Into<String>) -> Failure {
    Failure { code, msg: msg.into() }
}

fn usage(msg: impl Into<String>) -> Failure {
    fail(2, msg)
}

/// An API client for the CLI's commands (`cordon hosts …` here, `cordon rules …` and the
/// other automation commands in `automation_cmd`).
pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(c: &Conn) -> Result<Api, Failure> {
        Api::connect(c, 1)
    }

    /// Checks `c` and builds the client; `tls_code` is the exit code when the CA file
    /// does not make a TLS configuration.
    pub(crate) fn connect(c: &Conn, tls_code: u8) -> Result<Api, Failure> {
        let base = c
            .server_url
            .clone()
            .ok_or_else(|| usage("give --server URL (or CORDON_SERVER)"))?;
        let token = c
            .token
            .clone()
            .ok_or_else(|| usage("give --token TOKEN (or CORDON_TOKEN)"))?;
        let ca_path =
            c.ca.clone()
                .ok_or_else(|| usage("give --ca FILE with the server's CA certificate (or CORDON_CA)"))?;
        let ca = std::fs::read(&ca_path).map_err(|e| usage(format!("cannot read {}: {e}", ca_path.display())))?;
        let tls = cordon_agent::tls::server_auth_only(&ca).map_err(|e| fail(tls_code, e.to_string()))?;
        let http = cordon_agent::client::http_client(tls, Some(Duration::from_secs(60)))?;
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// One request with the bearer token; the answer's status and body, whatever the status.
    pub(crate) async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(reqwest::StatusCode, String), Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| fail(1, format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status();
        let text = resp.text().await?;
        Ok((status, text))
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<String, Failure> {
        let (status, text) = self.request(method, path, body).await?;
        if status.is_success() {
            return Ok(text);
        }
        let msg = match serde_json::from_str::<cordon_proto::ErrorBody>(&text) {
            Ok(b) => format!("{} ({}): {}", b.error, status.as_u16(), b.detail),
            Err(_) => format!("server answered {status}: {text}"),
        };
        Err(fail(refusal_code(status, &[400, 404]), msg))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Failure> {
        let text = self.send(method, path, body).await?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// Exit code for a request the server refused: 2 for the `usage` statuses (the request
/// was wrong), 4 for 401/403, 1 for anything else.
pub(crate) fn refusal_code(status: reqwest::StatusCode, usage: &[u16]) -> u8 {
    if usage.contains(&status.as_u16()) {
        2
    } else if matches!(status.as_u16(), 401 | 403) {
        4
    } else {
        1
    }
}

/// Runs a command's future on a fresh runtime; prints its failure and returns the exit code.
pub(crate) fn block_on(f: impl std::future::Future<Output = Result<(), Failure>>) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cordon: {e}");
            return 1;
        }
    };
    match rt.block_on(f) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("cordon: {}", f.msg);
            f.code
        }
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
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

fn host_rows(hosts: &[Host]) {
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.id.clone(),
                h.hostname.clone(),
                h.state.as_str().to_string(),
                h.state_since.clone(),
                h.labels.join(","),
                h.last_seen.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["ID", "HOSTNAME", "STATE", "SINCE", "LABELS", "LAST SEEN"], &rows);
}

pub fn hosts(a: HostsArgs) -> u8 {
    block_on(async move {
        let api = Api::new(&a.conn)?;
        match a.what.unwrap_or(HostsWhat::List {
            label: None,
            state: None,
            q: None,
        }) {
            HostsWhat::List { label, state, q } => {
                let mut qs = vec![];
                for (k, v) in [("label", label), ("state", state), ("q", q)] {
                    if let Some(v) = v {
                        qs.push(format!("{k}={}", enc(&v)));
                    }
                }
                let list: HostList = api
                    .json(reqwest::Method::GET, &format!("/v1/hosts?{}", qs.join("&")), None)
                    .await?;
                if a.json {
                    print_json(&list);
                } else {
                    host_rows(&list.hosts);
                }
            }
            HostsWhat::Show { host } => {
                let h: Host = api
                    .json(reqwest::Method::GET, &format!("/v1/hosts/{}", enc(&host)), None)
                    .await?;
                if a.json {
                    print_json(&h);
                } else {
                    println!("{} ({})", term::safe(&h.hostname), term::safe(&h.id));
                    println!(
                        "  state:     {} since {}{}",
                        h.state.as_str(),
                        h.state_since,
                        h.state_reason
                            .as_deref()
                            .map(|r| format!(" ({})", term::safe(r)))
                            .unwrap_or_default()
                    );
                    println!(
                        "  desired:   {} (revision {}, applied {})",
                        if h.desired.quarantined { "quarantined" } else { "normal" },
                        h.desired.revision,
                        h.applied_revision
                    );
                    if h.desired.quarantined {
                        println!(
                            "  by:        {} — {}",
                            term::safe(h.desired.actor.as_deref().unwrap_or("-")),
                            term::safe(h.desired.comment.as_deref().unwrap_or("-"))
                        );
                        if !h.desired.allow.is_empty() {
                            println!("  allow:     {}", term::safe(&h.desired.allow.join(", ")));
                        }
                        if let Some(e) = &h.desired.expires_at {
                            println!("  expires:   {}", term::safe(e));
                        }
                    }
                    println!("  labels:    {}", term::safe(&h.labels.join(", ")));
                    println!(
                        "  os:        {}  agent {}",
                        term::safe(h.os.as_deref().unwrap_or("-")),
                        term::safe(h.agent_version.as_deref().unwrap_or("-"))
                    );
                    println!("  last seen: {}", term::safe(h.last_seen.as_deref().unwrap_or("never")));
                    println!(
                        "  firewall:  {} digest {}",
                        term::safe(h.backend.as_deref().unwrap_or("-")),
                        term::safe(h.digest.as_deref().unwrap_or("-"))
                    );
                    if h.revoked {
                        println!("  REVOKED");
                    }
                }
            }
            HostsWhat::Label {
                host,
                add,
                remove,
                comment,
            } => {
                let body = serde_json::to_value(LabelsRequest { add, remove, comment })?;
                let h: Host = api
                    .json(
                        reqwest::Method::POST,
                        &format!("/v1/hosts/{}/labels", enc(&host)),
                        Some(body),
                    )
                    .await?;
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
            HostsWhat::Revoke { host, comment } => {
                let h: Host = api
                    .json(
                        reqwest::Method::POST,
                        &format!("/v1/hosts/{}/revoke", enc(&host)),
                        Some(json!({"comment": comment})),
                    )
                    .await?;
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
fn expires_at(s: &str) -> Result<String, Failure> {
    if let Ok(secs) = cordon_proto::timefmt::parse_duration_secs(s) {
        return Ok(cordon_proto::timefmt::to_rfc3339(
            cordon_proto::timefmt::now_ms() + secs * 1000,
        ));
    }
    cordon_proto::timefmt::parse_rfc3339(s).map_err(usage)?;
    Ok(s.to_string())
}

/// `--since 2h` (back from now) or an RFC 3339 time.
fn time_arg(s: &str) -> Result<String, Failure> {
    if let Ok(secs) = cordon_proto::timefmt::parse_duration_secs(s) {
        return Ok(cordon_proto::timefmt::to_rfc3339(
            cordon_proto::timefmt::now_ms() - secs * 1000,
        ));
    }
    cordon_proto::timefmt::parse_rfc3339(s).map_err(usage)?;
    Ok(s.to_string())
}

fn print_action(out: &ActionResponse, json: bool) {
    if json {
        print_json(out);
        return;
    }
    if out.results.is_empty() {
        println!("{}: no matching hosts", out.action);
        return;
    }
    let rows: Vec<Vec<String>> = out
        .results
        .iter()
        .map(|r| {
            vec![
                r.host_id.clone(),
                r.hostname.clone(),
                r.state.as_str().to_string(),
                r.revision.to_string(),
            ]
        })
        .collect();
    table(&["ID", "HOSTNAME", "STATE", "REVISION"], &rows);
}

async fn action(
    api: &Api,
    path: &str,
    hosts: Vec<String>,
    label: Option<String>,
    req: ActionRequest,
) -> Result<ActionResponse, Failure> {
    let (path, req) = match (hosts.len(), label) {
        (1, None) => (format!("/v1/hosts/{}/{path}", enc(&hosts[0])), req),
        (0, None) => return Err(usage("give HOST... or --label LABEL")),
        (_, label) => (format!("/v1/{path}"), ActionRequest { hosts, label, ..req }),
    };
    api.json(reqwest::Method::POST, &path, Some(serde_json::to_value(req)?))
        .await
}

pub fn quarantine(a: QuarantineArgs) -> u8 {
    block_on(async move {
        let api = Api::new(&a.conn)?;
        let req = ActionRequest {
            comment: Some(a.comment.clone()),
            allow: a.allow.clone(),
            message: a.message.clone(),
            expires_at: a.expires.as_deref().map(expires_at).transpose()?,
            ..Default::default()
        };
        let out = action(&api, "quarantine", a.hosts.clone(), a.label.clone(), req).await?;
        print_action(&out, a.json);
        Ok(())
    })
}

/// `cordon release HOST...|--label L --comment TEXT` (called from the local command).
pub fn release(hosts: Vec<String>, label: Option<String>, comment: Option<String>, conn: &Conn, json: bool) -> u8 {
    let conn = conn.clone();
    block_on(async move {
        let comment = comment.ok_or_else(|| usage("releasing through the server needs --comment TEXT"))?;
        let api = Api::new(&conn)?;
        let req = ActionRequest {
            comment: Some(comment),
            ..Default::default()
        };
        let out = action(&api, "release", hosts, label, req).await?;
        print_action(&out, json);
        Ok(())
    })
}

pub fn audit(a: AuditArgs) -> u8 {
    block_on(async move {
        let api = Api::new(&a.conn)?;
        let format = if a.json { "json".to_string() } else { a.format.clone() };
        let wire = match format.as_str() {
            "table" | "json" => "json",
            "jsonl" => "jsonl",
            "csv" => "csv",
            other => return Err(usage(format!("unknown --format {other:?} (table, json, jsonl, csv)"))),
        };
        let mut qs = vec![format!("format={wire}")];
        for (k, v) in [
            ("host", a.host.clone()),
            ("actor", a.actor.clone()),
            ("action", a.action.clone()),
        ] {
            if let Some(v) = v {
                qs.push(format!("{k}={}", enc(&v)));
            }
        }
        for (k, v) in [("since", &a.since), ("until", &a.until)] {
            if let Some(v) = v {
                qs.push(format!("{k}={}", enc(&time_arg(v)?)));
            }
        }
        let path = format!("/v1/audit?{}", qs.join("&"));
        match format.as_str() {
            "table" => {
                let list: AuditList = api.json(reqwest::Method::GET, &path, None).await?;
                let rows: Vec<Vec<String>> = list
                    .records
                    .iter()
                    .map(|r| {
                        vec![
                            r.at.clone(),
                            r.actor.clone(),
                            r.action.clone(),
                            r.host_id.clone().unwrap_or_else(|| "-".into()),
                            r.result.clone(),
                            r.comment.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&["AT", "ACTOR", "ACTION", "HOST", "RESULT", "COMMENT"], &rows);
            }
            _ => print!("{}", api.send(reqwest::Method::GET, &path, None).await?),
        }
        Ok(())
    })
}

//! `cordon wazuh-ar`: Cordon as a Wazuh (4.2+) active-response program.
//!
//! Wazuh's execd writes one JSON message on stdin:
//! `{"version":1,"origin":{..},"command":"add"|"delete","parameters":{"extra_args":[..],"alert":{..}}}`.
//! `add` isolates this host, `delete` (the timeout of a stateful response) releases it.
//! The C-LR payload shape is accepted too: `alert.data.action` = `isolate` | `release`
//! decides, `arguments` (or `extra_args`) are the allowed IPs, `alert.data.user` is
//! recorded. Every run appends one JSON line to the active-response log and prints it.
//! Parsing is [`parse`], a pure function; invalid input changes nothing and exits 2.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cordon_engine::{Engine, IsolateRequest};
use cordon_policy::AllowSpec;
use serde_json::{json, Value};

/// Where Wazuh keeps active-response logs on agents.
pub const DEFAULT_LOG: &str = "/var/ossec/logs/active-responses.log";
const MAX_STDIN: u64 = 1 << 20;

#[derive(Args, Debug)]
pub struct WazuhArArgs {
    /// Append the JSON result line here (besides stdout); `-` for stdout only.
    #[arg(long, default_value = DEFAULT_LOG, value_name = "FILE")]
    pub log: PathBuf,
    /// Management server(s) that must stay reachable (e.g. the Wazuh manager
    /// `tcp://wazuh.example:1514`); also allowed as `--server` in extra_args.
    #[arg(long = "server", value_name = "URL", value_parser = parse_server)]
    pub servers: Vec<AllowSpec>,
    /// Show what would be applied, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub common: crate::local::Common,
}

fn parse_server(s: &str) -> Result<AllowSpec, String> {
    AllowSpec::parse_server(s).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArAction {
    Isolate,
    Release,
}

impl ArAction {
    fn as_str(self) -> &'static str {
        match self {
            ArAction::Isolate => "isolate",
            ArAction::Release => "release",
        }
    }
}

/// A parsed active-response request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArRequest {
    /// `add` or `delete` (or the C-LR command name).
    pub command: String,
    pub action: ArAction,
    pub allow: Vec<AllowSpec>,
    pub servers: Vec<AllowSpec>,
    pub message: Option<String>,
    pub no_dns: bool,
    pub no_dhcp: bool,
    /// Who asked (C-LR `alert.data.user`).
    pub user: Option<String>,
    pub rule_id: Option<String>,
    pub alert_id: Option<String>,
    pub agent: Option<String>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses the message Wazuh's execd (or a C-LR style caller) sends.
pub fn parse(input: &str) -> Result<ArRequest, String> {
    let v: Value = serde_json::from_str(input.trim()).map_err(|e| format!("active-response input is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("active-response input must be a JSON object")?;
    let params = obj.get("parameters");
    if params.is_some_and(|p| !p.is_object()) {
        return Err("parameters must be an object".into());
    }
    let alert = params
        .and_then(|p| p.get("alert"))
        .or_else(|| obj.get("alert"))
        .cloned()
        .unwrap_or(Value::Null);
    if !(alert.is_object() || alert.is_null()) {
        return Err("alert must be an object".into());
    }
    let command = text(obj.get("command")).ok_or("command is missing (expected \"add\" or \"delete\")")?;
    let data_action = text(alert.pointer("/data/action")).map(|a| a.to_ascii_lowercase());
    let action = match (command.as_str(), data_action.as_deref()) {
        ("delete", Some("release") | Some("isolate") | None) => ArAction::Release,
        (_, Some("isolate")) => ArAction::Isolate,
        (_, Some("release")) => ArAction::Release,
        (_, Some(other)) => {
            return Err(format!(
                "alert.data.action {other:?} must be \"isolate\" or \"release\""
            ))
        }
        ("add", None) => ArAction::Isolate,
        (other, None) => {
            return Err(format!(
                "command {other:?} must be \"add\" or \"delete\" (or give alert.data.action)"
            ))
        }
    };
    let args_value = params
        .and_then(|p| p.get("extra_args"))
        .or_else(|| obj.get("arguments"));
    let args: Vec<String> = match args_value {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or("every argument must be a string")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("extra_args / arguments must be a list of strings".into()),
    };
    let mut req = ArRequest {
        command,
        action,
        allow: vec![],
        servers: vec![],
        message: None,
        no_dns: false,
        no_dhcp: false,
        user: text(alert.pointer("/data/user")),
        rule_id: text(alert.pointer("/rule/id")),
        alert_id: text(alert.get("id")),
        agent: text(alert.pointer("/agent/name")),
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
            "--message" => req.message = Some(value("--message")?),
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
        req.message = Some(m.chars().take(256).collect());
    }
    Ok(req)
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
            "command": r.command,
            "action": r.action.as_str(),
            "user": r.user,
            "rule_id": r.rule_id,
            "alert_id": r.alert_id,
            "agent": r.agent,
            "allow": r.allow.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        }),
    }
}

fn emit(log: &std::path::Path, line: &Value) {
    let text = line.to_string();
    println!("{text}");
    if log.as_os_str() == "-" {
        return;
    }
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| writeln!(f, "{text}"));
    if let Err(e) = res {
        eprintln!("cordon: cannot append to {}: {e}", log.display());
    }
}

fn finish(log: &std::path::Path, mut line: Value, result: Result<Value, (String, String, u8)>) -> u8 {
    let code = match result {
        Ok(extra) => {
            line["result"] = json!("ok");
            if let (Some(l), Some(e)) = (line.as_object_mut(), extra.as_object()) {
                l.extend(e.clone());
            }
            0
        }
        Err((kind, detail, code)) => {
            line["result"] = json!("error");
            line["error"] = json!(kind);
            line["detail"] = json!(detail);
            code
        }
    };
    line["exit_code"] = json!(code);
    emit(log, &line);
    code
}

pub fn run(a: WazuhArArgs) -> u8 {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().take(MAX_STDIN).read_to_string(&mut input) {
        return finish(
            &a.log,
            base_line(None),
            Err(("invalid_input".into(), format!("cannot read stdin: {e}"), 2)),
        );
    }
    let req = match parse(&input) {
        Ok(r) => r,
        Err(why) => return finish(&a.log, base_line(None), Err(("invalid_input".into(), why, 2))),
    };
    let line = base_line(Some(&req));
    let eng = Engine::new(a.common.table.clone(), a.common.state_dir.clone(), a.common.backend);
    let err =
        |e: cordon_engine::EngineError| (e.kind().to_string(), e.to_string(), crate::local::exit_code(&e).as_u8());
    let result = match req.action {
        ArAction::Isolate => {
            let ir = IsolateRequest {
                allow: req.allow.clone(),
                servers: [a.servers.clone(), req.servers.clone()].concat(),
                dns: !req.no_dns,
                dhcp: !req.no_dhcp,
                message: req.message.clone(),
                verify_timeout: Duration::from_secs(10),
                ..Default::default()
            };
            if a.dry_run {
                eng.dry_run(&ir)
                    .map(|(backend, text, _)| json!({"dry_run": true, "backend": backend, "ruleset": text}))
                    .map_err(err)
            } else {
                eng.isolate(&ir)
                    .map(|o| json!({"state": "isolated", "backend": o.backend, "digest": o.digest, "verified_via": o.verified_via}))
                    .map_err(err)
            }
        }
        ArAction::Release if a.dry_run => Ok(json!({"dry_run": true})),
        ArAction::Release => eng
            .release()
            .map(|o| json!({"state": "released", "was_isolated": o.was_isolated}))
            .map_err(err),
    };
    finish(&a.log, line, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = format!("{}/tests/fixtures/wazuh/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn wazuh_add_isolates_with_extra_args() {
        let r = parse(&fixture("add.json")).unwrap();
        assert_eq!(r.action, ArAction::Isolate);
        assert_eq!(r.command, "add");
        assert_eq!(
            r.servers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            vec!["tcp://192.0.2.1:1514"]
        );
        assert_eq!(
            r.allow.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            vec!["198.51.100.0/24"]
        );
        assert_eq!(r.rule_id.as_deref(), Some("100200"));
        assert_eq!(r.agent.as_deref(), Some("web1"));
        assert!(r.message.as_deref().unwrap().contains("Wazuh rule 100200"));
    }

    #[test]
    fn wazuh_delete_releases() {
        let r = parse(&fixture("delete.json")).unwrap();
        assert_eq!((r.action, r.command.as_str()), (ArAction::Release, "delete"));
    }

    #[test]
    fn clr_isolate_and_release() {
        let r = parse(&fixture("clr-isolate.json")).unwrap();
        assert_eq!(r.action, ArAction::Isolate);
        assert_eq!(r.user.as_deref(), Some("analyst@example.org"));
        assert_eq!(
            r.allow.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            vec!["192.0.2.50", "2001:db8::50"]
        );
        let r = parse(&fixture("clr-release.json")).unwrap();
        assert_eq!(r.action, ArAction::Release);
        assert_eq!(r.user.as_deref(), Some("analyst@example.org"));
        let r = parse(&fixture("clr-api.json")).unwrap();
        assert_eq!(r.action, ArAction::Isolate);
        assert_eq!(r.allow.len(), 1);
    }

    #[test]
    fn malformed_inputs_are_clear_errors() {
        let cases = [
            ("", "not JSON"),
            ("[1]", "JSON object"),
            ("{\"parameters\":{}}", "command is missing"),
            ("{\"command\":\"restart\"}", "\"add\" or \"delete\""),
            (
                "{\"command\":\"add\",\"parameters\":{\"extra_args\":\"1.2.3.4\"}}",
                "list of strings",
            ),
            (
                "{\"command\":\"add\",\"parameters\":{\"extra_args\":[\"not an ip\"]}}",
                "allowed address",
            ),
            (
                "{\"command\":\"add\",\"parameters\":{\"extra_args\":[\"--server\"]}}",
                "needs a value",
            ),
            (
                "{\"command\":\"add\",\"parameters\":{\"extra_args\":[\"--rm-rf\"]}}",
                "unknown option",
            ),
            (
                "{\"command\":\"add\",\"parameters\":{\"alert\":{\"data\":{\"action\":\"wipe\"}}}}",
                "isolate",
            ),
            ("{\"command\":\"add\",\"parameters\":[]}", "parameters"),
        ];
        for (input, want) in cases {
            let e = parse(input).unwrap_err();
            assert!(e.contains(want), "{input:?}: {e:?} lacks {want:?}");
        }
        assert!(parse(&fixture("malformed.json")).is_err());
    }
}

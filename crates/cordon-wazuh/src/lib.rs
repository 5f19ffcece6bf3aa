//! Cordon as a Wazuh (4.2+) active-response program: the protocol and the ossec.conf
//! reading, pure (no I/O). The program itself, `cordon wazuh-ar`, is in the `cordon`
//! binary (`wazuh_ar.rs`): it reads the lines, acts through the engine and logs.
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

use cordon_policy::{AllowSpec, PolicyError};
use serde_json::{json, Value};

/// The name this program gives itself in `check_keys` (`origin.name`), as execd would
/// see it (`basename` of the program).
pub const AR_NAME: &str = "cordon-ar";

/// Why a line from execd is refused. `Display` is one sentence for the active-response
/// log, the cause included (the program logs and exits 2: nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum ArInputError {
    /// Not JSON at all (`what`: execd's message, or its answer).
    #[error("{what} is not JSON: {source}")]
    NotJson {
        /// Which line.
        what: &'static str,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not what execd writes: a field missing or of the wrong kind, an unknown
    /// command, action or option, an option without its value.
    #[error("{0}")]
    Shape(String),
    /// An allowed address or server in `extra_args` that Cordon's spec refuses.
    #[error("{prefix}{source}")]
    Spec {
        /// `allowed address: ` for a bare address, empty for `--allow`/`--server`.
        prefix: &'static str,
        /// The spec's refusal.
        #[source]
        source: PolicyError,
    },
    /// A `--message` whose `%XX` escapes are malformed or do not decode to UTF-8.
    #[error("{0}")]
    Escape(String),
}

fn shape(why: impl Into<String>) -> ArInputError {
    ArInputError::Shape(why.into())
}

/// The two commands execd sends (it rewrites every `add` message's `command` to `add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArCommand {
    /// Act (execd rewrites every message's command to `add`).
    Add,
    /// A `<timeout>` ran out or execd stops: logged, ignored.
    Delete,
}

impl ArCommand {
    /// The name written in the active-response log.
    pub fn as_str(self) -> &'static str {
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
    /// The name written in the active-response log.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Rule => "rule",
            Trigger::OnDemand => "on_demand",
        }
    }
}

/// What this run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArAction {
    /// Quarantine this host (claim source `wazuh`).
    Isolate,
    /// Release the `wazuh` claim (an on-demand `alert.data.action` = `release`).
    Release,
    /// A `delete`: logged, nothing changed (see the module documentation).
    IgnoreDelete,
}

impl ArAction {
    /// The name written in the active-response log.
    pub fn as_str(self) -> &'static str {
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
    /// execd's `command`.
    pub command: ArCommand,
    /// A rule's alert, or an on-demand call.
    pub trigger: Trigger,
    /// What this run does.
    pub action: ArAction,
    /// Extra allowed destinations (`--allow`, bare addresses in `extra_args`).
    pub allow: Vec<AllowSpec>,
    /// Management servers kept reachable (`--server` in `extra_args`).
    pub servers: Vec<AllowSpec>,
    /// The message shown to logged-in users (`--message`, percent-decoded; for a rule's
    /// isolation without one, a sentence naming the rule).
    pub message: Option<String>,
    /// `--no-dns`: block DNS too.
    pub no_dns: bool,
    /// `--no-dhcp`: block DHCP too.
    pub no_dhcp: bool,
    /// Who asked (on-demand `alert.data.user`).
    pub requested_by: Option<String>,
    /// `alert.rule.id`.
    pub rule_id: Option<String>,
    /// `alert.id`.
    pub alert_id: Option<String>,
    /// `alert.agent.name`.
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
///
/// Hand-written rather than `percent_encoding::percent_decode_str` (already a dependency
/// through `url`): that one passes a malformed escape through as text (`50%` stays
/// `50%`, `%zz` stays `%zz`), where a message the analyst mistyped must be refused so
/// that what users read is what was meant.
///
/// # Errors
/// [`ArInputError::Escape`] for a `%` not followed by two hex digits, or bytes that are
/// not UTF-8.
pub fn percent_decode(s: &str) -> Result<String, ArInputError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ArInputError::Escape(format!("bad %-escape in {s:?} (write %20 for a space, %25 for %)"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ArInputError::Escape(format!("{s:?} does not decode to UTF-8 text")))
}

/// Parses the line execd writes (the shape `get_json_from_input` of
/// `active_responses.c` accepts: `version` number, `origin` object, `command` string,
/// `parameters` object). Pure.
///
/// # Errors
/// [`ArInputError`] naming what is wrong: not JSON, not execd's shape, an address or
/// server the spec refuses, a malformed `--message` escape.
pub fn parse(input: &str) -> Result<ArRequest, ArInputError> {
    let v: Value = serde_json::from_str(input.trim()).map_err(|source| ArInputError::NotJson {
        what: "active-response input",
        source,
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| shape("active-response input must be a JSON object"))?;
    if !obj.get("version").is_some_and(Value::is_number) {
        return Err(shape(
            "version is missing or not a number (expected execd's message, Wazuh 4.2+)",
        ));
    }
    if !obj.get("origin").is_some_and(Value::is_object) {
        return Err(shape("origin is missing or not an object"));
    }
    let params = match obj.get("parameters") {
        Some(Value::Object(p)) => p,
        _ => return Err(shape("parameters is missing or not an object")),
    };
    let command = match obj.get("command").and_then(Value::as_str) {
        Some("add") => ArCommand::Add,
        Some("delete") => ArCommand::Delete,
        Some(other) => return Err(shape(format!("command {other:?} must be \"add\" or \"delete\""))),
        None => return Err(shape("command is missing (expected \"add\" or \"delete\")")),
    };
    let alert = match params.get("alert") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(a @ Value::Object(_)) => a.clone(),
        Some(_) => return Err(shape("parameters.alert must be an object")),
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
                return Err(shape(format!(
                    "on-demand alert.data.action {other} must be \"isolate\" or \"release\""
                )))
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
                    .ok_or_else(|| shape("every extra_args item must be a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(shape("parameters.extra_args must be a list of strings")),
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
                .ok_or_else(|| shape(format!("{name} needs a value")))
        };
        match flag.as_str() {
            "--server" => {
                let s = value("--server")?;
                req.servers
                    .push(AllowSpec::parse_server(&s).map_err(|source| ArInputError::Spec { prefix: "", source })?);
            }
            "--allow" => {
                let s = value("--allow")?;
                req.allow
                    .push(AllowSpec::parse(&s).map_err(|source| ArInputError::Spec { prefix: "", source })?);
            }
            "--message" => req.message = Some(percent_decode(&value("--message")?)?),
            "--no-dns" => req.no_dns = true,
            "--no-dhcp" => req.no_dhcp = true,
            f if f.starts_with("--") => return Err(shape(format!("unknown option {f:?} in extra_args"))),
            spec => req
                .allow
                .push(AllowSpec::parse(spec).map_err(|source| ArInputError::Spec {
                    prefix: "allowed address: ",
                    source,
                })?),
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
    /// Act.
    Continue,
    /// The same keys are in execd's timeout list already (it only refreshed that
    /// timeout): change nothing.
    Abort,
}

/// Parses execd's second line (`send_keys_and_check_message` of `active_responses.c`).
/// Pure.
///
/// # Errors
/// [`ArInputError::NotJson`], or [`ArInputError::Shape`] for a command other than
/// `continue`/`abort` or none.
pub fn parse_answer(line: &str) -> Result<Answer, ArInputError> {
    let v: Value = serde_json::from_str(line.trim()).map_err(|source| ArInputError::NotJson {
        what: "execd's answer",
        source,
    })?;
    match v.get("command").and_then(Value::as_str) {
        Some("continue") => Ok(Answer::Continue),
        Some("abort") => Ok(Answer::Abort),
        Some(other) => Err(shape(format!(
            "execd answered {other:?}, expected \"continue\" or \"abort\""
        ))),
        None => Err(shape("execd's answer has no command")),
    }
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
    #![allow(clippy::unwrap_used, clippy::expect_used)]
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
        // The recorded messages live with the binary's integration tests, which use them too.
        let p = format!("{}/../cordon/tests/fixtures/wazuh/{name}", env!("CARGO_MANIFEST_DIR"));
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
        assert!(percent_decode("50%").unwrap_err().to_string().contains("%-escape"));
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
            parse_answer(r#"{"version":1,"origin":{},"command":"continue","parameters":{}}"#).unwrap(),
            Answer::Continue
        );
        assert_eq!(parse_answer(r#"{"command":"abort"}"#).unwrap(), Answer::Abort);
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
            let e = parse(&input).unwrap_err().to_string();
            assert!(e.contains(want), "{input:?}: {e:?} lacks {want:?}");
        }
        assert!(parse(&fixture("malformed.json")).is_err());
    }
}

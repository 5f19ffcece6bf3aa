//! The shipped Wazuh files (`integrations/wazuh/`) checked against the rules Wazuh's own
//! loaders apply (Wazuh 4.2–4.14 sources; line numbers are v4.14.0's):
//!
//! * `src/analysisd/rules.c`: the rule options it knows (`xml_*` names, lines 113–200),
//!   `<options>` values (lines 1328–1360), and `w_check_attr_field_name` (lines
//!   3176–3206), which refuses `<field name="X">` for the static fields
//!   srcip, dstip, srcgeoip, dstgeoip, srcport, dstport, user, srcuser, dstuser, url, id,
//!   data, extra_data, status, protocol, system_name, action ("Field 'X' is static").
//! * `src/analysisd/decoders/plugins/json_decoder.c` `fillData` (lines 20–200): which JSON
//!   keys become static fields, and `src/analysisd/eventinfo.c` `ParseRuleComment` (lines
//!   904–1000): how `$(name)` in a description is expanded.
//! * `src/config/active-response.c` `ReadActiveResponses` (elements, lines 39–140) and
//!   `src/analysisd/rules.c` `Rule_AddAR` (lines 2356–2440: `<level>` alone selects every
//!   rule at or above it).
//! * `src/analysisd/ar_json.c` (lines 57–67): `<extra_args>` is split on every space.
//!
//! The log keys the rules use are taken from real `cordon wazuh-ar` runs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn wazuh_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations/wazuh")
}

/// Wazuh's XML files may have several top-level elements; wrap them.
fn read_xml(name: &str) -> String {
    let text = std::fs::read_to_string(wazuh_dir().join(name)).unwrap();
    format!("<root>{text}</root>")
}

const STATIC_FIELDS: [&str; 17] = [
    "srcip",
    "dstip",
    "srcgeoip",
    "dstgeoip",
    "srcport",
    "dstport",
    "user",
    "srcuser",
    "dstuser",
    "url",
    "id",
    "data",
    "extra_data",
    "status",
    "protocol",
    "system_name",
    "action",
];

/// Rule options analysisd knows (rules.c `xml_*`), those a Cordon rule may use.
const RULE_OPTIONS: [&str; 16] = [
    "decoded_as",
    "field",
    "if_sid",
    "if_group",
    "if_level",
    "match",
    "regex",
    "description",
    "options",
    "group",
    "action",
    "status",
    "program_name",
    "hostname",
    "location",
    "mitre",
];

const RULE_OPTION_VALUES: [&str; 6] = [
    "alert_by_email",
    "no_email_alert",
    "no_log",
    "no_full_log",
    "no_counter",
    "no_ar",
];

/// `$(name)` → the JSON key that fills it (json_decoder.c `fillData` +
/// eventinfo.c `ParseRuleComment`); `None` when a JSON log line cannot fill it.
fn json_key_for_var(var: &str) -> Option<&str> {
    match var {
        "srcgeoip" | "dstgeoip" => None,
        // `command` becomes a static field in json_decoder.c `fillData`, which
        // ParseRuleComment does not expand, and FindField searches dynamic fields only:
        // `$(command)` stays empty.
        "command" => None,
        "system_name" => Some("systemname"),
        // `user` is a static rule option but not a JSON static key: a dynamic field.
        other => Some(other),
    }
}

struct Rule {
    id: u32,
    level: u32,
    groups: String,
    if_sid: Option<u32>,
    fields: Vec<(String, String)>,
    action: Option<String>,
    description: String,
    options: Vec<String>,
}

fn rules() -> Vec<Rule> {
    let text = read_xml("local_rules.xml");
    let doc = roxmltree::Document::parse(&text).expect("local_rules.xml is well-formed XML");
    let mut out = vec![];
    for group in doc.root_element().children().filter(|n| n.is_element()) {
        assert_eq!(group.tag_name().name(), "group");
        let gname = group.attribute("name").expect("group name").to_string();
        for rule in group.children().filter(|n| n.is_element()) {
            assert_eq!(rule.tag_name().name(), "rule");
            let id: u32 = rule.attribute("id").unwrap().parse().unwrap();
            let level: u32 = rule.attribute("level").unwrap().parse().unwrap();
            assert!(level <= 16, "rule {id}: level {level}");
            assert!(
                (100000..=120000).contains(&id),
                "rule {id}: custom rules use 100000-120000"
            );
            let mut r = Rule {
                id,
                level,
                groups: gname.clone(),
                if_sid: None,
                fields: vec![],
                action: None,
                description: String::new(),
                options: vec![],
            };
            for opt in rule.children().filter(|n| n.is_element()) {
                let name = opt.tag_name().name();
                assert!(RULE_OPTIONS.contains(&name), "rule {id}: unknown option <{name}>");
                let content = opt.text().unwrap_or("").trim().to_string();
                match name {
                    "field" => {
                        let fname = opt.attribute("name").expect("field name");
                        r.fields.push((fname.to_string(), content));
                    }
                    "if_sid" => r.if_sid = Some(content.parse().unwrap()),
                    "action" => r.action = Some(content),
                    "description" => r.description = content,
                    "options" => r.options.push(content),
                    "group" => r.groups.push_str(&content),
                    _ => {}
                }
            }
            out.push(r);
        }
    }
    out
}

/// One `cordon wazuh-ar` run without execd; every JSON line it printed (stdout or stderr).
fn ar_lines(input: &str, extra: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["wazuh-ar", "--no-handshake", "--log", "-", "--state-dir"])
        .arg(dir.path().join("state"))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
    let out = child.wait_with_output().unwrap();
    [out.stdout, out.stderr]
        .iter()
        .flat_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

fn execd_msg(fixture: &str, command: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wazuh")
            .join(fixture),
    )
    .unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["command"] = command.into();
    v["origin"]["module"] = "wazuh-execd".into();
    v.to_string()
}

/// Every key and every value of `action`/`result`/`program` that wazuh-ar logs.
fn logged() -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let mut lines = vec![];
    lines.extend(ar_lines(&execd_msg("add.json", "add"), &["--dry-run"]));
    lines.extend(ar_lines(&execd_msg("clr-release.json", "add"), &["--dry-run"]));
    lines.extend(ar_lines(&execd_msg("add.json", "delete"), &[]));
    lines.extend(ar_lines(
        &execd_msg("add.json", "add").replace("\"003\"", "\"000\""),
        &[],
    ));
    lines.extend(ar_lines("not json", &[]));
    assert_eq!(lines.len(), 5, "{lines:?}");
    let mut keys = BTreeSet::new();
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in &lines {
        for (k, v) in l.as_object().unwrap() {
            keys.insert(k.clone());
            if let Some(s) = v.as_str() {
                values.entry(k.clone()).or_default().insert(s.to_string());
            }
        }
    }
    (keys, values)
}

fn vars(description: &str) -> Vec<&str> {
    description
        .split("$(")
        .skip(1)
        .filter_map(|s| s.split_once(')').map(|(v, _)| v))
        .collect()
}

#[test]
fn rules_never_use_a_static_field_in_field() {
    for r in rules() {
        for (name, _) in &r.fields {
            assert!(
                !STATIC_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(name)),
                "rule {}: <field name=\"{name}\"> — analysisd: \"Field '{name}' is static\"",
                r.id
            );
        }
        for o in &r.options {
            assert!(RULE_OPTION_VALUES.contains(&o.as_str()), "rule {}: option {o}", r.id);
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn cordon_rules_match_what_wazuh_ar_logs() {
    let (keys, values) = logged();
    let all = rules();
    let ids: BTreeSet<u32> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), all.len(), "duplicate rule ids");
    for r in all.iter().filter(|r| r.groups.starts_with("cordon,")) {
        // The root rule matches the program name, children chain to it.
        match r.if_sid {
            None => {
                let (_, re) = r.fields.iter().find(|(n, _)| n == "program").expect("program field");
                assert_eq!(re, "^cordon-wazuh-ar$");
                assert!(values["program"].contains("cordon-wazuh-ar"));
            }
            Some(parent) => assert!(ids.contains(&parent), "rule {}: if_sid {parent} unknown", r.id),
        }
        for (name, _) in &r.fields {
            assert!(keys.contains(name), "rule {}: field {name} is never logged", r.id);
        }
        if let Some(a) = &r.action {
            assert!(
                values["action"].contains(a),
                "rule {}: action {a} is never logged",
                r.id
            );
        }
        for (name, re) in &r.fields {
            if name == "result" {
                for alt in re.split('|') {
                    let v = alt.trim_start_matches('^').trim_end_matches('$');
                    assert!(
                        values["result"].contains(v),
                        "rule {}: result {v} is never logged",
                        r.id
                    );
                }
            }
        }
        for var in vars(&r.description) {
            let key = json_key_for_var(var).unwrap_or_else(|| panic!("rule {}: $({var}) never expands", r.id));
            assert!(
                keys.contains(key),
                "rule {}: $({var}) is never logged (keys: {keys:?})",
                r.id
            );
        }
    }
}

/// The `<command>` and `<active-response>` blocks.
struct ArConfig {
    commands: BTreeMap<String, BTreeMap<String, String>>,
    responses: Vec<BTreeMap<String, String>>,
    integration_level: u32,
}

fn manager_config() -> ArConfig {
    let text = read_xml("ossec.conf.manager.xml");
    let doc = roxmltree::Document::parse(&text).expect("ossec.conf.manager.xml is well-formed XML");
    let mut cfg = ArConfig {
        commands: BTreeMap::new(),
        responses: vec![],
        integration_level: 0,
    };
    for block in doc.root_element().children().filter(|n| n.is_element()) {
        let kv: BTreeMap<String, String> = block
            .children()
            .filter(|n| n.is_element())
            .map(|n| {
                (
                    n.tag_name().name().to_string(),
                    n.text().unwrap_or("").trim().to_string(),
                )
            })
            .collect();
        match block.tag_name().name() {
            "command" => {
                cfg.commands.insert(kv["name"].clone(), kv);
            }
            "active-response" => {
                const KNOWN: [&str; 10] = [
                    "command",
                    "location",
                    "agent_id",
                    "rules_id",
                    "rules_group",
                    "level",
                    "timeout",
                    "disabled",
                    "repeated_offenders",
                    "ca_store",
                ];
                for k in kv.keys() {
                    assert!(KNOWN.contains(&k.as_str()), "<active-response> has no <{k}>");
                }
                cfg.responses.push(kv);
            }
            "integration" => cfg.integration_level = kv["level"].parse().unwrap(),
            other => panic!("unexpected <{other}>"),
        }
    }
    cfg
}

#[test]
fn active_response_defaults_are_safe() {
    let cfg = manager_config();
    let all = rules();
    assert!(!cfg.responses.is_empty());
    for ar in &cfg.responses {
        let cmd = &cfg.commands[&ar["command"]];
        assert!(
            wazuh_dir().join(&cmd["executable"]).is_file(),
            "{} is shipped",
            cmd["executable"]
        );
        assert_eq!(ar["location"], "local", "only the alerting agent isolates itself");
        assert!(
            !ar.contains_key("level"),
            "a <level> selects every stock rule at or above it"
        );
        assert!(
            !ar.contains_key("timeout"),
            "no execd timeouts: delete also comes on restart"
        );
        assert_eq!(cmd.get("timeout_allowed").map(String::as_str), Some("no"));
        let ids: Vec<u32> = ar["rules_id"].split(',').map(|s| s.trim().parse().unwrap()).collect();
        assert!(!ids.is_empty());
        for id in ids {
            let r = all
                .iter()
                .find(|r| r.id == id)
                .unwrap_or_else(|| panic!("rules_id {id} not shipped"));
            assert!(r.groups.starts_with("cordon_isolate,"), "rule {id} is a trigger");
            assert!(!r.options.iter().any(|o| o == "no_ar"), "trigger {id} must allow AR");
        }
        // extra_args as analysisd splits them (strtok on " "): every token is valid.
        let tokens: Vec<&str> = cmd["extra_args"].split(' ').filter(|t| !t.is_empty()).collect();
        let mut it = tokens.iter();
        while let Some(t) = it.next() {
            match *t {
                "--server" => {
                    let spec = it.next().expect("--server value");
                    cordon_policy::AllowSpec::parse_server(spec).unwrap();
                }
                other => panic!("unexpected extra_args token {other}"),
            }
        }
    }
    // Cordon's own result rules cannot trigger anything or be forwarded as critical.
    let trigger_ids: BTreeSet<String> = cfg.responses.iter().map(|r| r["rules_id"].clone()).collect();
    for r in all.iter().filter(|r| r.groups.starts_with("cordon,")) {
        assert!(
            r.level < cfg.integration_level,
            "rule {} level {} is forwarded",
            r.id,
            r.level
        );
        assert!(r.options.iter().any(|o| o == "no_ar"), "rule {} must carry no_ar", r.id);
        assert!(!trigger_ids.iter().any(|t| t.contains(&r.id.to_string())));
    }
}

#[test]
fn wrappers_pass_the_log_next_to_the_wazuh_home() {
    let sh = std::fs::read_to_string(wazuh_dir().join("cordon-ar")).unwrap();
    assert!(sh.contains("wazuh-ar") && sh.contains("/logs/active-responses.log"));
    let exec = sh.lines().find(|l| l.starts_with("exec ")).unwrap();
    assert!(
        !exec.contains("/var/ossec"),
        "the home is derived, not hard-coded (macOS: /Library/Ossec)"
    );
    let cmd = std::fs::read_to_string(wazuh_dir().join("cordon-ar.cmd")).unwrap();
    assert!(cmd.contains("wazuh-ar") && cmd.contains(r"%~dp0..\active-responses.log"));
    assert!(cmd.contains("\r\n"), "a .cmd file has CRLF line ends");
    // Both pass the agent's ossec.conf, whose managers an isolation without --server keeps.
    assert!(sh.contains(r#"--ossec-conf "$home/etc/ossec.conf""#), "{sh}");
    assert!(cmd.contains(r#"--ossec-conf "%~dp0..\..\ossec.conf""#), "{cmd}");
}

/// trial29 M1: the cordon-agent package installs /usr/bin/cordon, the wrapper used only
/// /usr/local/bin/cordon (exit 127 from execd, host NOT isolated). It takes CORDON_BIN,
/// else the package's path when present, else the hand install's.
#[test]
fn the_linux_wrapper_finds_the_packaged_binary_first() {
    let sh = std::fs::read_to_string(wazuh_dir().join("cordon-ar")).unwrap();
    let pos = |needle: &str| sh.find(needle).unwrap_or_else(|| panic!("{needle:?} missing:\n{sh}"));
    let env = pos("bin=${CORDON_BIN:-}");
    let local = pos("bin=/usr/local/bin/cordon");
    let package = pos("[ -x /usr/bin/cordon ] && bin=/usr/bin/cordon");
    assert!(
        env < local && local < package,
        "CORDON_BIN, then /usr/bin over /usr/local/bin:\n{sh}"
    );
    let exec = sh.lines().find(|l| l.starts_with("exec ")).unwrap();
    assert!(exec.starts_with(r#"exec "$bin" wazuh-ar"#), "{exec}");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/package");
    let package_script = std::fs::read_to_string(script).unwrap();
    assert!(
        package_script.contains(r#"strip_copy "$ep_bin" "$d/usr/bin/cordon""#),
        "the package's path"
    );
}

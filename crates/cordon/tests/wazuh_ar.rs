//! `cordon wazuh-ar` as Wazuh's execd runs it: recorded payloads on stdin, one JSON log
//! line appended and printed. Only `--dry-run` and refused input here: nothing is ever
//! applied to this machine's firewall.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wazuh")
            .join(name),
    )
    .unwrap()
}

/// Runs `cordon wazuh-ar` with `input` on stdin; returns exit code, stdout line, log lines.
fn run(dir: &Path, input: &str, extra: &[&str]) -> (i32, Value, Vec<Value>) {
    let log = dir.join("active-responses.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["wazuh-ar", "--log"])
        .arg(&log)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let line: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("stdout {stdout:?}: {e}"));
    let logs = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code().unwrap_or(-1), line, logs)
}

#[test]
fn malformed_payloads_exit_2_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        fixture("malformed.json"),
        String::new(),
        "{\"command\":\"restart\"}".into(),
        "{\"command\":\"add\",\"parameters\":{\"extra_args\":[\"not-an-ip\"]}}".into(),
        "{\"command\":\"add\",\"parameters\":{\"alert\":{\"data\":{\"action\":\"wipe\"}}}}".into(),
    ];
    for (i, input) in inputs.iter().enumerate() {
        let (code, line, logs) = run(dir.path(), input, &[]);
        assert_eq!(code, 2, "{input:?}: {line}");
        assert_eq!(line["result"], "error");
        assert_eq!(line["error"], "invalid_input");
        assert!(!line["detail"].as_str().unwrap().is_empty());
        assert_eq!(logs.len(), i + 1, "one log line per run");
        assert_eq!(logs[i], line);
    }
    assert!(
        !dir.path().join("state").exists(),
        "nothing may be changed on invalid input"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn recorded_payloads_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let (code, line, _) = run(dir.path(), &fixture("add.json"), &["--dry-run"]);
    assert_eq!(code, 0, "{line}");
    assert_eq!(
        (
            line["action"].as_str(),
            line["command"].as_str(),
            line["rule_id"].as_str()
        ),
        (Some("isolate"), Some("add"), Some("100200"))
    );
    let ruleset = line["ruleset"].as_str().unwrap();
    assert!(
        ruleset.contains("192.0.2.1") && ruleset.contains("198.51.100.0/24"),
        "{ruleset}"
    );
    let (code, line, _) = run(dir.path(), &fixture("delete.json"), &["--dry-run"]);
    assert_eq!((code, line["action"].as_str()), (0, Some("release")));
    let (code, line, _) = run(dir.path(), &fixture("clr-isolate.json"), &["--dry-run"]);
    assert_eq!(
        (code, line["action"].as_str(), line["user"].as_str()),
        (0, Some("isolate"), Some("analyst@example.org"))
    );
    assert_eq!(line["allow"], serde_json::json!(["192.0.2.50", "2001:db8::50"]));
    let (code, line, logs) = run(dir.path(), &fixture("clr-release.json"), &["--dry-run"]);
    assert_eq!((code, line["action"].as_str()), (0, Some("release")));
    assert_eq!(logs.len(), 4);
    assert!(!dir.path().join("state").exists(), "dry run changes nothing");
}

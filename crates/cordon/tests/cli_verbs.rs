//! The local and API-client forms of a verb stay apart (issue 14): `cordon release
//! --comment` without a host refuses instead of releasing this machine, and the API
//! client's options are accepted after the subcommand. Touches no firewall: the refused
//! command stops before the engine, the API calls fail before any request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

fn cordon(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("CORDON_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn local_release_refuses_api_only_options() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, err) = cordon(
        &[
            "release",
            "--comment",
            "IR-42 done",
            "--state-dir",
            &state.to_string_lossy(),
        ],
        &[("CORDON_SERVER", "https://192.0.2.1:8443")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("name the HOST(s) or --label"), "{err}");
    assert!(!state.exists(), "the refused command touched the state directory");
}

#[test]
fn api_options_are_accepted_after_the_subcommand() {
    let (code, err) = cordon(
        &[
            "hosts",
            "show",
            "web1",
            "--json",
            "--server",
            "https://192.0.2.1:8443",
            "--token",
            "cordon_x",
            "--ca",
            "/nonexistent/agent-server-ca.pem",
        ],
        &[],
    );
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(err.contains("/nonexistent/agent-server-ca.pem"), "exit {code}: {err}");
}

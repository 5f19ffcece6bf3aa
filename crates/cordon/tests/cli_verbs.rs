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

/// The fault kind: one limit, refused by the API (400) but cut silently by the local
/// command. A `--message` over MAX_MESSAGE_CHARS is exit 2 with the limit named, before
/// anything is resolved or changed (`--dry-run`: no privilege, no firewall needed).
#[test]
fn a_message_over_the_limit_is_refused_locally_as_by_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sd = state.to_string_lossy().to_string();
    let long = "x".repeat(cordon_policy::message::MAX_MESSAGE_CHARS + 1);
    let base = [
        "isolate",
        "--dry-run",
        "--allow",
        "198.51.100.7",
        "--resolver",
        "192.0.2.53",
        "--state-dir",
        &sd,
    ];
    let (code, err) = cordon(&[&base[..], &["--message", &long]].concat(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("257 characters") && err.contains("at most 256"), "{err}");
    assert!(!state.exists(), "the refused command touched the state directory");
    let fits = "x".repeat(cordon_policy::message::MAX_MESSAGE_CHARS);
    let (code, err) = cordon(&[&base[..], &["--message", &fits]].concat(), &[]);
    assert_eq!(code, 0, "a message of exactly the limit is refused: {err}");
}

/// Errors keep their cause (issue 13): the CLI prints the chain, `cordon: what failed:
/// why`, with the OS error last — here a PKI file error (`PkiError::Io`, whose cause is
/// the `io::Error`), exit code 1.
#[test]
#[cfg(feature = "server")]
fn a_failure_prints_its_cause_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    let (code, err) = cordon(&["server", "token", "create", "--data", &data], &[]);
    assert_eq!(code, 1, "{err}");
    let missing = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
    let ca = dir.path().join("ca.pem");
    assert!(
        err.contains(&format!("cordon: cannot read {}: ", ca.display())),
        "the failing step is not named: {err}"
    );
    assert!(
        err.to_lowercase().contains(&missing.to_lowercase()) || err.contains("No such file or directory"),
        "the OS error (the cause) is not printed: {err}"
    );
}

/// The offline `cordon server token create` gets the API's label check (trial16 HIGH-1:
/// it saved `quarantine`, a Cyrillic `Quаrantine` and look-alikes of existing labels,
/// which every later check then took for "the same label again"): a refused label is
/// exit 2 naming the problem, and nothing is written — not even the audit checkpoints a
/// run writes (the anchor file is unchanged).
#[test]
#[cfg(feature = "server")]
fn offline_token_create_refuses_look_alike_labels_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    let (code, err) = cordon(&["server", "init", "--data", &data, "--ip", "127.0.0.1"], &[]);
    assert_eq!(code, 0, "{err}");
    let anchor = dir.path().join("audit-anchor.json");
    let create = |labels: &str| cordon(&["server", "token", "create", "--data", &data, "--labels", labels], &[]);
    let (code, err) = create("web");
    assert_eq!(code, 0, "a plain new label is refused: {err}");
    let before = std::fs::read(&anchor).unwrap();
    for bad in [
        "quarantine",
        "Quarantine",
        "Qu\u{0430}rantine",
        "WEB",
        "w\u{0435}b",
        "w\u{200b}eb",
        "\u{202e}web",
    ] {
        let (code, err) = create(bad);
        assert_eq!(code, 2, "label {bad:?} was accepted: {err}");
        assert!(err.starts_with("cordon: "), "{bad:?}: {err}");
        assert_eq!(
            std::fs::read(&anchor).unwrap(),
            before,
            "the refused label {bad:?} still wrote to the audit log"
        );
    }
    let (code, err) = create("web");
    assert_eq!(code, 0, "the same label again is refused: {err}");
}

/// trial25 F7: `cordon server run --audit-retention 365` read 365 as seconds and
/// archived away every record older than six minutes. A bare number is refused (exit 2,
/// naming the unit to write) before the server starts: the data directory is not made.
#[test]
fn server_run_refuses_a_retention_without_a_unit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let archive = dir.path().join("archive");
    let (code, err) = cordon(
        &[
            "server",
            "run",
            "--data",
            &data.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
            "--audit-retention",
            "365",
            "--audit-archive-dir",
            &archive.to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--audit-retention") && err.contains("365d"), "{err}");
    assert!(!data.exists() && !archive.exists(), "nothing was made");
}

/// trial28 LOW-7: the server log carried ANSI colour codes when written to a file or the
/// journal, so the documented `audit checkpoint checkpoint=ID:HASH` line could not be
/// grepped. Colours only on a terminal. And LOW-8: `server init` on a database a
/// deployment uses exits 2 and leaves no CA behind.
#[test]
#[cfg(feature = "server")]
fn server_log_to_a_file_has_no_colour_codes_and_init_refuses_a_used_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("first").to_string_lossy().to_string();
    let (code, err) = cordon(&["server", "init", "--data", &data, "--ip", "127.0.0.1"], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = cordon(
        &["server", "token", "create", "--data", &data],
        &[("CORDON_LOG", "info")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a log written to a pipe: {err:?}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("audit checkpoint") && l.contains(" checkpoint=")),
        "{err}"
    );
    let other = dir.path().join("second");
    let db = format!("sqlite://{data}/cordon.db");
    let (code, err) = cordon(
        &[
            "server",
            "init",
            "--data",
            &other.to_string_lossy(),
            "--ip",
            "127.0.0.1",
            "--db",
            &db,
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already holds a deployment"), "{err}");
    assert!(!other.join("ca.key").exists(), "a CA was left behind");
}

/// trial28 LOW-9: a file given as `--audit-archive-dir` let the server start with
/// retention failing every hour ("File exists", no path named). Refused at start, exit 2,
/// naming it; nothing made.
#[test]
#[cfg(feature = "server")]
fn server_run_refuses_an_archive_dir_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let archive = dir.path().join("notadir");
    std::fs::write(&archive, "").unwrap();
    let (code, err) = cordon(
        &[
            "server",
            "run",
            "--data",
            &data.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
            "--audit-retention",
            "1d",
            "--audit-archive-dir",
            &archive.to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--audit-archive-dir") && err.contains("notadir") && err.contains("is not a directory"),
        "{err}"
    );
    assert!(!data.exists(), "nothing was made");
}

/// Issue 13 MED-2 (review13): an offline `server token create` whose audit checkpoint
/// cannot be written printed `cannot write the audit checkpoint: internal (500): internal
/// error; the server log has the cause` — an HTTP status and a "server log" to a CLI user
/// who has no server running. It prints the cause (the anchor file and the OS error).
#[test]
#[cfg(feature = "server")]
fn offline_token_create_says_why_the_checkpoint_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    let (code, err) = cordon(&["server", "init", "--data", &data, "--ip", "127.0.0.1"], &[]);
    assert_eq!(code, 0, "{err}");
    // The anchor's name taken by a directory: the rename over it fails.
    let anchor = dir.path().join("audit-anchor.json");
    let _ = std::fs::remove_file(&anchor);
    std::fs::create_dir_all(anchor.join("in-the-way")).unwrap();
    let (code, err) = cordon(&["server", "token", "create", "--data", &data], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot write the audit checkpoint: cannot write the audit anchor ")
            && err.contains("audit-anchor.json: "),
        "{err}"
    );
    assert!(!err.contains("(500)") && !err.contains("server log"), "{err}");
}

/// trial39 MED-2: `agent enroll` without root redeemed the one-time token (the server
/// then kept a host that never reports) and only then failed to create /etc/cordon.
/// Whether the enrollment can be written is checked first: here its directory lies under
/// a regular file (root cannot create it either), and the server URL answers nothing —
/// the refusal names the directory, exit 2, and no connection was tried (it used to fail
/// "cannot reach …" first, exit 1).
#[test]
fn enroll_checks_its_directory_before_the_server_is_asked() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let dir = file.join("cordon");
    let (code, err) = cordon(
        &[
            "agent",
            "enroll",
            "--server",
            "https://127.0.0.1:9",
            "--token",
            "enroll_00",
            "--hostname",
            "web1",
            "--dir",
            &dir.to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("cannot write the enrollment to {}", dir.display()))
            && err.contains("nothing was changed and the token is still unused"),
        "{err}"
    );
    assert!(!err.contains("cannot reach"), "the server was asked first: {err}");
}

/// trial39 LOW-7: a CA key the server cannot read (here: a directory in its place, which
/// root cannot read either) exited 1, and the unit (Restart=always) restarted it for
/// ever. It is the operator's to fix: exit 2, which the unit does not restart
/// (RestartPreventExitStatus=2, checked by scripts/package-test's unit checks).
#[test]
#[cfg(feature = "server")]
fn server_run_with_an_unreadable_ca_key_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let d = data.to_string_lossy().to_string();
    let (code, err) = cordon(&["server", "init", "--data", &d, "--ip", "127.0.0.1"], &[]);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_file(data.join("ca.key")).unwrap();
    std::fs::create_dir(data.join("ca.key")).unwrap();
    let (code, err) = cordon(&["server", "run", "--data", &d, "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ca.key"), "{err}");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/linux/cordon-server.service"
    ))
    .unwrap();
    assert!(unit.lines().any(|l| l == "RestartPreventExitStatus=2"), "{unit}");
}

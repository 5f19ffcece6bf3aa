//! `cordon audit verify --file` says exactly what it checked (issue 17 trial): without
//! the CA certificate a chain whose trailer signature is forged is not reported intact
//! (exit 5, "signatures NOT verified"); a trailer whose signature was removed is
//! tampering (exit 1), not bad input; no message names "record 0". Offline: no server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

use cordon_proto::audit_chain::{chain_hash, ExportTrailer, SignedCheckpoint, GENESIS};
use cordon_proto::AuditRecord;

fn verify(file: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["audit", "verify", "--file", &file.to_string_lossy()])
        .env_remove("CORDON_CA")
        .env_remove("CORDON_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Three chained records and a trailer signed "by" `signature` (not a real one).
fn export(signature: &str) -> String {
    let mut prev = GENESIS.to_string();
    let mut out = String::new();
    let mut last = None;
    for id in 1..=3 {
        let mut r = AuditRecord {
            id,
            at: format!("2030-01-01T00:00:0{id}.000Z"),
            actor: "alice".into(),
            action: "quarantine".into(),
            host_id: Some("h1".into()),
            comment: Some("ir-1".into()),
            result: "ok".into(),
            detail: None,
            event_id: None,
            rule: None,
            actor_token_id: Some(2),
            prev_hash: Some(prev.clone()),
            hash: None,
        };
        let h = chain_hash(&prev, &r);
        r.hash = Some(h.clone());
        prev = h;
        out.push_str(&serde_json::to_string(&r).unwrap());
        out.push('\n');
        last = Some(r);
    }
    let last = last.unwrap();
    let t = ExportTrailer {
        checkpoint: SignedCheckpoint {
            last_id: last.id,
            hash: last.hash.unwrap(),
            at: "2030-01-01T00:00:04.000Z".into(),
            key: "ab".repeat(32),
            signature: signature.into(),
            occasion: Some(cordon_proto::audit_chain::EXPORT_OCCASION.into()),
            ..Default::default()
        },
    };
    let mut line = serde_json::to_string(&t).unwrap();
    if signature.is_empty() {
        line = line.replace(",\"signature\":\"\"", "");
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[test]
fn audit_verify_without_ca_does_not_say_intact() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("forged.jsonl");
    std::fs::write(&f, export(&"00".repeat(70))).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 5, "{out}{err}");
    assert!(!out.contains("OK"), "{out}");
    assert!(!out.contains("intact\n"), "{out}");
    assert!(
        out.contains("chain intact; checkpoint signatures NOT verified: pass --ca"),
        "{out}"
    );
}

#[test]
fn audit_verify_trailer_without_signature_is_tampered_not_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("stripped.jsonl");
    let text = export("");
    assert!(!text.contains("signature"));
    std::fs::write(&f, text).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("TAMPERED: record 3"), "{out}");
    assert!(out.contains("no signature"), "{out}");
}

#[test]
fn audit_verify_never_names_record_zero() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("empty.jsonl");
    // Only a trailer: every record was removed.
    let text = export(&"00".repeat(70));
    std::fs::write(&f, text.lines().last().unwrap()).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("record 0") && !err.contains("record 0"), "{out}{err}");
    assert!(out.contains("TAMPERED: the export's trailer"), "{out}");
}

/// The fault kind (trial5, LOW): every edit of an export exits 1 (TAMPERED, naming the
/// line or record and the field), only input that is not JSON lines exits 2.
#[test]
fn audit_verify_every_export_edit_exits_1_and_only_bad_syntax_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = export(&"00".repeat(70));
    for (name, edited, says) in [
        (
            "added-field",
            text.replacen("\"actor\":", "\"approved_by\":\"ceo\",\"actor\":", 1),
            "\"approved_by\"",
        ),
        (
            "removed-field",
            text.replacen("\"result\":\"ok\",", "", 1),
            "not an audit record any more",
        ),
        (
            "wrong-type",
            text.replacen("\"id\":2,", "\"id\":\"2\",", 1),
            "not an audit record any more",
        ),
        (
            "after-trailer",
            format!("{text}{}\n", text.lines().next().unwrap()),
            "must be the last line",
        ),
    ] {
        let f = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&f, &edited).unwrap();
        let (code, out, err) = verify(&f);
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(out.contains("TAMPERED: "), "{name}: {out}");
        assert!(out.contains(says), "{name}: {out}");
    }
    let f = dir.path().join("garbage.jsonl");
    std::fs::write(&f, format!("{text}this is not json\n")).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("not JSON"), "{err}");
    let (code, _, err) = verify(&dir.path().join("missing.jsonl"));
    assert_eq!(code, 2, "{err}");
}

/// trial7 LOW: `cordon audit verify` against a server it cannot reach exited 1, the code
/// of TAMPERED, though nothing was checked. No verdict is exit 7 ("could not verify"),
/// distinct from every verdict (0, 1, 5, 6) and from bad input (2) and a refused token (4).
#[test]
fn audit_verify_against_an_unreachable_server_is_not_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    // A loopback port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["audit", "verify", "--server", &format!("https://127.0.0.1:{port}")])
        .args(["--token", "cordon_x", "--ca", &ca_path.to_string_lossy()])
        .env_remove("CORDON_CA")
        .env_remove("CORDON_TOKEN")
        .env_remove("CORDON_SERVER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("could not verify the audit chain: nothing was checked"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("TAMPERED"));
}

fn verify_with(file: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["audit", "verify", "--file", &file.to_string_lossy()])
        .args(extra)
        .env_remove("CORDON_CA")
        .env_remove("CORDON_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// trial10 LOW: a key named twice in an export line (`"actor":"system","actor":"alice"`)
/// was read as its last value and verified. It is an edit: exit 1 naming the key.
#[test]
fn audit_verify_duplicate_json_keys_are_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let text = export(&"00".repeat(70));
    let f = dir.path().join("dup.jsonl");
    std::fs::write(&f, text.replacen("\"actor\":", "\"actor\":\"system\",\"actor\":", 1)).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("TAMPERED: record 1") && out.contains("\"actor\" twice"),
        "{out}"
    );
}

/// trial10 LOW: a filtered export verified offline read as TAMPERED (its first gap).
/// Without a signed trailer the file is not a full export: exit 8, saying what was
/// checked and that nothing is vouched for — neither 0, nor 1, nor bad input (2).
#[test]
fn audit_verify_filtered_export_is_not_a_full_export() {
    let dir = tempfile::tempdir().unwrap();
    let text = export(&"00".repeat(70));
    let lines: Vec<&str> = text.lines().collect();
    // Records 1 and 3 (a filter left 2 out), no trailer.
    let f = dir.path().join("filtered.jsonl");
    std::fs::write(&f, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 8, "{out}{err}");
    assert!(out.contains("NOT A FULL EXPORT") && out.contains("1 gap(s)"), "{out}");
    assert!(!out.contains("TAMPERED") && !out.contains("OK"), "{out}");
    // An edited record in it is still tampering.
    let f = dir.path().join("filtered-edited.jsonl");
    std::fs::write(&f, format!("{}\n{}\n", lines[0], lines[2].replace("ir-1", "routine"))).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("TAMPERED: record 3"), "{out}");
}

/// trial10 LOW: `--ca` of another deployment read as TAMPERED. When no checkpoint of the
/// file is signed by the CA given, the outcome is its own: exit 9, "SIGNED BY ANOTHER
/// CA", naming both fingerprints.
#[test]
fn audit_verify_with_another_ca_is_its_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("export.jsonl");
    std::fs::write(&f, export(&"00".repeat(70))).unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca_path = dir.path().join("other-ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    let (code, out, err) = verify_with(&f, &["--ca", &ca_path.to_string_lossy()]);
    assert_eq!(code, 9, "{out}{err}");
    assert!(
        out.contains("SIGNED BY ANOTHER CA") && out.contains(&"ab".repeat(32)),
        "{out}"
    );
    assert!(!out.contains("TAMPERED"), "{out}");
}

/// The fault kind (issue 17 LOW-3): two files joined into one (`cat a.jsonl b.jsonl`)
/// read `TAMPERED` ("follows the signed trailer"). Each part is verified as the file it
/// was and the verdict names the parts; here neither signature can be checked (no `--ca`),
/// so the joined file is NOT VERIFIED (exit 5), never TAMPERED.
#[test]
fn audit_verify_joined_files_are_verified_part_by_part() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("joined.jsonl");
    let one = export(&"00".repeat(70));
    std::fs::write(&f, format!("{one}{one}")).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 5, "{out}{err}");
    assert!(out.contains("== part 1 of 2 (lines 1–4) =="), "{out}");
    assert!(out.contains("== part 2 of 2 (lines 5–8) =="), "{out}");
    assert!(
        out.contains(
            "part 2 does not continue part 1: it starts at record 1, which part 1 (up to record 3) already holds"
        ),
        "{out}"
    );
    assert!(out.contains("NOT VERIFIED: part 1 (lines 1–4)"), "{out}");
    assert!(!out.contains("TAMPERED"), "{out}");
}

/// The fault kind (trial25 F6): `--file /dev/zero` was read whole until the kernel killed
/// the process (21 GB); a FIFO would hang. Only a regular file is read: a device, a
/// directory or a FIFO is bad input (exit 2) naming it, and so is a byte-order mark.
#[test]
fn audit_verify_file_refuses_what_is_not_a_regular_utf8_file() {
    let dir = tempfile::tempdir().unwrap();
    for p in [std::path::PathBuf::from("/dev/zero"), dir.path().to_path_buf()] {
        let (code, out, err) = verify(&p);
        assert_eq!(code, 2, "{}: {out}{err}", p.display());
        assert!(err.contains("not a regular file"), "{}: {err}", p.display());
    }
    let bom = dir.path().join("bom.jsonl");
    std::fs::write(&bom, format!("\u{feff}{}", export(&"00".repeat(70)))).unwrap();
    let (code, out, err) = verify(&bom);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("byte-order mark"), "{err}");
}

/// trial28 LOW-1: `--file FIFO` blocked until a writer appeared (the regular-file check
/// came after `open`). Refused at once, exit 2.
#[test]
fn audit_verify_file_refuses_a_fifo_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ff");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["audit", "verify", "--file", &fifo.to_string_lossy()])
        .env_remove("CORDON_CA")
        .env_remove("CORDON_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("cordon audit verify --file FIFO still waits after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

/// trial28 MED-1: the server's own `cordon audit --format json` output (one
/// `{"records": […]}` object) was called TAMPERED, exit 1 ("the line was edited"). It is
/// a genuine file in a format that cannot be verified: exit 2, naming the format and
/// how to take a verifiable export — on one line or pretty-printed.
#[test]
fn audit_verify_file_in_the_json_listing_format_is_bad_input_not_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<serde_json::Value> = export(&"00".repeat(70))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("id").is_some())
        .collect();
    let listing = serde_json::json!({"records": records, "next_cursor": null});
    for (name, text) in [
        ("compact.json", serde_json::to_string(&listing).unwrap()),
        ("pretty.json", serde_json::to_string_pretty(&listing).unwrap()),
    ] {
        let f = dir.path().join(name);
        std::fs::write(&f, format!("{text}\n")).unwrap();
        let (code, out, err) = verify(&f);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(err.contains("--format json"), "{name}: {err}");
        assert!(err.contains("--format jsonl"), "{name}: {err}");
        assert!(!out.contains("TAMPERED"), "{name}: {out}");
    }
}

/// trial28 LOW-4: an empty file (left by an export the server refused) was verified as
/// "NOT A FULL EXPORT … 0 of them link", exit 8. It holds nothing: bad input, exit 2.
#[test]
fn audit_verify_an_empty_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n \n")] {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        let (code, out, err) = verify(&f);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(err.contains("holds no records"), "{name}: {err}");
    }
}

/// trial33 MED-D: a `--checkpoint` the log does not match (a typo, another deployment's)
/// was exit 1 TAMPERED, the same as a rewritten log. It is the caller's result: exit 10,
/// last line "DOES NOT MATCH YOUR CHECKPOINT", the record named; a matching one changes
/// nothing (exit 5 here: no --ca), an edited file is still TAMPERED (exit 1).
#[test]
fn audit_verify_a_checkpoint_the_log_does_not_match_is_its_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let text = export(&"00".repeat(70));
    let f = dir.path().join("export.jsonl");
    std::fs::write(&f, &text).unwrap();
    let rec2: AuditRecord = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let zeros = "0".repeat(64);
    for (cp, named) in [(format!("2:{zeros}"), "record 2"), (format!("9:{zeros}"), "record 3")] {
        let (code, out, err) = verify_with(&f, &["--checkpoint", &cp]);
        assert_eq!(code, 10, "{cp}: {out}{err}");
        assert!(out.contains(&format!("YOUR CHECKPOINT: {named}")), "{cp}: {out}");
        assert!(
            out.trim_end().ends_with(cordon_proto::audit_chain::GIVEN_MISMATCH_LINE),
            "{cp}: {out}"
        );
        assert!(!out.contains("TAMPERED"), "{cp}: {out}");
    }
    let good = format!("2:{}", rec2.hash.unwrap());
    let (code, out, err) = verify_with(&f, &["--checkpoint", &good]);
    assert_eq!(code, 5, "{out}{err}");
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, text.replacen("ir-1", "routine", 1)).unwrap();
    let (code, out, err) = verify_with(&edited, &["--checkpoint", &format!("2:{zeros}")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("TAMPERED: record 1"), "{out}");
}

/// trial33 LOW-B: an export cut in the middle of its last line (a full disk, a killed
/// `cordon audit > FILE`) was bad input, exit 2 "line 4: not JSON: EOF while parsing".
/// The lines before it are verified and the file is not a full export: exit 8, the cut
/// line named. A line that is not JSON for another reason stays bad input.
#[test]
fn audit_verify_a_file_cut_in_its_last_line_is_not_a_full_export() {
    let dir = tempfile::tempdir().unwrap();
    let text = export(&"00".repeat(70));
    let f = dir.path().join("cut.jsonl");
    std::fs::write(&f, &text[..text.len() - 40]).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 8, "{out}{err}");
    assert!(out.contains("CUT OFF: line 4"), "{out}");
    assert!(out.contains("NOT A FULL EXPORT"), "{out}");
    assert!(!out.contains("TAMPERED") && !out.contains("OK"), "{out}");
    // Cut inside a record: the same, the records before it checked.
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&f, format!("{}\n{}", lines[0], &lines[1][..30])).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 8, "{out}{err}");
    assert!(out.contains("CUT OFF: line 2"), "{out}");
    // Not JSON at all: bad input.
    std::fs::write(&f, format!("{}\nnot json\n", lines[0])).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 2, "{out}{err}");
}

/// trial33 LOW-F: a retention archive joined with a file whose trailer was cut off read
/// TAMPERED ("follows the signed trailer", exit 1). The lines after an archive's trailer
/// are a part of their own, not a full export (exit 8), named; after an export's trailer
/// they stay tampering (`audit_verify_every_export_edit_exits_1_and_only_bad_syntax_exits_2`).
#[test]
fn audit_verify_joined_files_one_without_its_trailer_name_that_part() {
    let dir = tempfile::tempdir().unwrap();
    let one = export(&"00".repeat(70)).replace(
        &format!("\"occasion\":\"{}\"", cordon_proto::audit_chain::EXPORT_OCCASION),
        &format!("\"occasion\":\"{}\"", cordon_proto::audit_chain::ARCHIVE_OCCASION),
    );
    assert!(one.contains("\"archive\""), "{one}");
    let no_trailer: String = one.lines().take(3).map(|l| format!("{l}\n")).collect();
    let f = dir.path().join("joined.jsonl");
    std::fs::write(&f, format!("{one}{no_trailer}")).unwrap();
    let (code, out, err) = verify(&f);
    assert_eq!(code, 8, "{out}{err}");
    assert!(out.contains("== part 2 of 2 (lines 5–7) =="), "{out}");
    assert!(out.contains("NOT A FULL EXPORT: part 2 (lines 5–7)"), "{out}");
    assert!(!out.contains("TAMPERED"), "{out}");
}

/// trial35 (trial33 LOW-3 re-check): in a joined file whose part 2 is signed by another
/// CA, the last line said "the export is signed by another CA …: nothing was verified"
/// although part 1 was verified. It names the part that sets the exit code.
#[test]
fn audit_verify_joined_files_of_another_ca_name_the_part() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("joined.jsonl");
    let one = export(&"00".repeat(70));
    std::fs::write(&f, format!("{one}{one}")).unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca_path = dir.path().join("other-ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    let (code, out, err) = verify_with(&f, &["--ca", &ca_path.to_string_lossy()]);
    assert_eq!(code, 9, "{out}{err}");
    assert!(
        err.contains("part 1 of 2 of the joined file is signed by another CA") && !err.contains("nothing was verified"),
        "{err}"
    );
}

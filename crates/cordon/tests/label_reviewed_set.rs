//! `cordon quarantine --label` / `cordon release --label` act on a reviewed set (trial8
//! HIGH 1 for the CLI path): against a real server on loopback (127.0.0.1, a free port,
//! its own data directory) with enrolled hosts whose agents never run. Nothing is
//! enforced.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "common/loopback.rs"]
mod loopback;

use loopback::text;

#[test]
fn label_quarantine_acts_on_the_reviewed_set_or_on_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = loopback::start(tmp.path());
    for name in ["db-a", "db-b"] {
        let dir = tmp.path().join(name);
        lb.enroll(&dir.join("agent"), &dir.join("state"), name);
    }
    let api = |args: &[&str]| lb.api(args);
    let quarantined = |host: &str| {
        let o = api(&["hosts", "show", host, "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        h["desired"]["quarantined"].as_bool().unwrap()
    };
    let o = api(&["hosts", "label", "db-a", "--add", "db"]);
    assert!(o.status.success(), "{}", text(&o));

    // The analyst previews, and keeps the answer as the reviewed set.
    let o = api(&[
        "quarantine",
        "--label",
        "db",
        "--comment",
        "IR-70",
        "--preview",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let review = tmp.path().join("review.json");
    std::fs::write(&review, &o.stdout).unwrap();
    // Meanwhile db-b gets the label: the reviewed run is refused, naming it.
    let o = api(&["hosts", "label", "db-b", "--add", "db"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = api(&[
        "quarantine",
        "--label",
        "db",
        "--comment",
        "IR-70",
        "--reviewed",
        &review.to_string_lossy(),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("changed since your review: +db-b"),
        "{}",
        text(&o)
    );
    assert!(
        !quarantined("db-a") && !quarantined("db-b"),
        "a refused run changed something"
    );
    // A file that is not a preview: a usage error, nothing sent.
    std::fs::write(&review, "{}").unwrap();
    let o = api(&[
        "quarantine",
        "--label",
        "db",
        "--comment",
        "IR-70",
        "--reviewed",
        &review.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Without --reviewed: the CLI previews, prints the set, and acts on exactly it.
    let o = api(&["quarantine", "--label", "db", "--comment", "IR-71"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("label db: 2 hosts reviewed (db-a, db-b); acting on exactly these"),
        "{out}"
    );
    assert!(quarantined("db-a") && quarantined("db-b"));
    let o = api(&["release", "--label", "db", "--comment", "IR-71 done"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2 hosts reviewed"),
        "{}",
        text(&o)
    );
    assert!(!quarantined("db-a") && !quarantined("db-b"));
}

/// Issue 14: `cordon quarantine --label nosuch` (and release, preview, --json) exited 0
/// with "no matching hosts": a SOAR step with a mistyped label reported success. Now
/// exit 2 naming the label, nothing changed. `--expires` beyond the documented limit
/// (366 days) was cut to 9999-12-31 without a word: now exit 2 naming the limit.
#[test]
fn a_selection_matching_no_host_and_an_expiry_beyond_the_limit_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = loopback::start(tmp.path());
    let dir = tmp.path().join("web-a");
    lb.enroll(&dir.join("agent"), &dir.join("state"), "web-a");
    let api = |args: &[&str]| lb.api(args);
    let o = api(&["hosts", "label", "web-a", "--add", "web"]);
    assert!(o.status.success(), "{}", text(&o));
    let quarantined = || {
        let o = api(&["hosts", "show", "web-a", "--json"]);
        let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        h["desired"]["quarantined"].as_bool().unwrap()
    };
    for args in [
        &["quarantine", "--label", "wbe", "--comment", "IR-80"][..],
        &["quarantine", "--label", "wbe", "--comment", "IR-80", "--json"],
        &["quarantine", "--label", "wbe", "--comment", "IR-80", "--preview"],
        &["release", "--label", "wbe", "--comment", "IR-80"],
    ] {
        let o = api(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("no host carries label \"wbe\""),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert!(!quarantined(), "a selection matching nothing changed something");
    for expires in ["999999999d", "367d", "9999-12-31T00:00:00Z"] {
        let o = api(&["quarantine", "web-a", "--comment", "IR-81", "--expires", expires]);
        assert_eq!(o.status.code(), Some(2), "{expires}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("more than 366 days ahead"),
            "{expires}: {}",
            text(&o)
        );
    }
    assert!(!quarantined(), "a refused expiry changed something");
    let o = api(&["quarantine", "web-a", "--comment", "IR-81", "--expires", "366d"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(quarantined());
}

/// trial36 LOW-C: `cordon release --label` left a revoked-but-quarantined host out without
/// a word, `cordon release <that host>` said only "is revoked" (exit 1), and `release` had
/// no `--preview`. The preview and the release name it with the way forward; nothing is
/// changed by the preview.
#[test]
fn label_release_names_revoked_quarantined_hosts_and_previews() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = loopback::start(tmp.path());
    for name in ["web-a", "web-b"] {
        let dir = tmp.path().join(name);
        lb.enroll(&dir.join("agent"), &dir.join("state"), name);
        let o = lb.api(&["hosts", "label", name, "--add", "lab"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let api = |args: &[&str]| lb.api(args);
    let desired = |host: &str| {
        let o = api(&["hosts", "show", host, "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        h["desired"]["quarantined"].as_bool().unwrap()
    };
    let o = api(&["quarantine", "--label", "lab", "--comment", "IR-36"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = api(&["hosts", "revoke", "web-b", "--force", "--comment", "t36"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = api(&["release", "--label", "lab", "--comment", "IR-36 done", "--preview"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("preview: nothing was changed"), "{out}");
    assert!(
        out.contains("Revoked: 1 host with this label is revoked and stays quarantined: web-b (")
            && out.contains("release it on the host (cordon release --force)"),
        "{out}"
    );
    assert!(desired("web-a"), "the preview changed nothing");
    let o = api(&["release", "web-b", "--comment", "IR-36 done"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is lifted only on the host (cordon release --force)"),
        "{}",
        text(&o)
    );
    let o = api(&["release", "--label", "lab", "--comment", "IR-36 done"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("web-a") && out.contains("Revoked: 1 host"), "{out}");
    assert!(!desired("web-a"));
    // Without HOST or --label, --preview is for the server: refused, nothing changed.
    let o = api(&["release", "--preview"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

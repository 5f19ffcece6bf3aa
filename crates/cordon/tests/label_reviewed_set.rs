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

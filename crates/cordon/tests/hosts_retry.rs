//! `cordon hosts retry` (issue 16's Retry from the CLI): against a real server on
//! loopback (127.0.0.1, a free port, its own data directory) with one enrolled host
//! whose agent never runs, so its quarantine stays pending. Nothing is enforced.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "common/loopback.rs"]
mod loopback;

use loopback::text;

#[test]
fn hosts_retry_resends_a_pending_quarantine_and_refuses_when_nothing_to_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = loopback::start(tmp.path());
    lb.enroll(&tmp.path().join("agent"), &tmp.path().join("state"), "web-retry");
    let api = |args: &[&str]| lb.api(args);
    let revision = || {
        let o = api(&["hosts", "show", "web-retry", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        h["desired"]["revision"].as_i64().unwrap()
    };

    // The state filter follows the STATE column (trial30 LOW-1): the agent never
    // reported, so the host is listed under never_reported, not normal; a bad value is
    // a usage error naming --state and the valid values.
    let o = api(&["hosts", "list", "--state", "never_reported"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("web-retry") && text(&o).contains("never reported"),
        "{}",
        text(&o)
    );
    let o = api(&["hosts", "list", "--state", "normal"]);
    assert!(o.status.success() && !text(&o).contains("web-retry"), "{}", text(&o));
    let o = api(&["hosts", "list", "--state", "quarantine"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--state") && text(&o).contains("quarantined") && text(&o).contains("never_reported"),
        "{}",
        text(&o)
    );

    // Nothing to retry on a host that is not quarantined: refused, saying so.
    let o = api(&["hosts", "retry", "web-retry", "--comment", "just in case"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nothing to retry"),
        "{}",
        text(&o)
    );
    // Without a comment: a usage error before anything is sent.
    let o = api(&["hosts", "retry", "web-retry"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A quarantine its (absent) agent never confirms: retry sends it again.
    let o = api(&["quarantine", "web-retry", "--comment", "IR-60"]);
    assert!(o.status.success(), "{}", text(&o));
    let rev = revision();
    let o = api(&[
        "hosts",
        "retry",
        "web-retry",
        "--comment",
        "agent was down",
        "--if-revision",
        &rev.to_string(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        table.contains("CHANGE") && table.contains("retried") && table.contains("quarantine_pending"),
        "{table}"
    );
    assert_eq!(revision(), rev + 1, "a new revision of the same state");
    // The revision this caller saw is gone: refused.
    let o = api(&[
        "hosts",
        "retry",
        "web-retry",
        "--comment",
        "again",
        "--if-revision",
        &rev.to_string(),
        "--json",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("changed since your view"),
        "{}",
        text(&o)
    );
    assert_eq!(revision(), rev + 1, "a refused retry changed nothing");
}

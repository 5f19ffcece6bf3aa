//! Hosts stay addressable from the CLI (issue 17 trial): a second agent enrolled under a
//! hostname another host has is warned naming that host; `cordon hosts show NAME` for
//! the shared name exits 2 listing both hosts' ids, addresses and last-seen times; the
//! FLAGS column says which address is shared. A server on loopback (127.0.0.1, a free
//! port) with its own data directory; agents only enroll (nothing is enforced).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "common/loopback.rs"]
mod loopback;

use loopback::text;

#[test]
fn duplicate_hostname_is_warned_at_enroll_and_listed_by_hosts_show() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = loopback::start(tmp.path());
    let mut ids = Vec::new();
    let mut warnings = Vec::new();
    for n in 0..2 {
        let e = lb.enroll(
            &tmp.path().join(format!("agent{n}")),
            &tmp.path().join(format!("state{n}")),
            // A look-alike (full-width capitals, trial5): the same name once normalised.
            if n == 0 {
                "web1"
            } else {
                "\u{FF37}\u{FF25}\u{FF22}\u{FF11}"
            },
        );
        let out = String::from_utf8_lossy(&e.stdout).to_string();
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("enrolled as host "))
            .unwrap()
            .trim()
            .to_string();
        ids.push(id);
        warnings.push(String::from_utf8_lossy(&e.stderr).to_string());
    }
    assert!(!warnings[0].contains("duplicate hostname"), "{}", warnings[0]);
    assert!(
        warnings[1].contains("WARNING: duplicate hostname") && warnings[1].contains(&ids[0]),
        "the second enrollment names the other host: {}",
        warnings[1]
    );
    let api = |args: &[&str]| lb.api(args);
    let show = api(&["hosts", "show", "web1"]);
    let err = String::from_utf8_lossy(&show.stderr).to_string();
    assert_eq!(show.status.code(), Some(2), "{}", text(&show));
    for id in &ids {
        assert!(err.contains(id.as_str()), "lists {id}: {err}");
    }
    assert!(err.contains("give the host id"), "{err}");
    assert!(err.contains("last seen"), "{err}");
    // By id it works.
    let show = api(&["hosts", "show", &ids[0]]);
    assert!(show.status.success(), "{}", text(&show));
    // The FLAGS column: a shared address is named.
    let list = api(&["hosts"]);
    assert!(list.status.success(), "{}", text(&list));
    let table = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        table.contains("FLAGS") && table.contains("duplicate hostname"),
        "{table}"
    );
    for line in table.lines().filter(|l| l.contains("duplicate address")) {
        let after = line.split("duplicate address").nth(1).unwrap().trim_start();
        assert!(
            after
                .split([',', ' '])
                .next()
                .unwrap()
                .parse::<std::net::IpAddr>()
                .is_ok(),
            "the shared address is named: {line}"
        );
    }
}

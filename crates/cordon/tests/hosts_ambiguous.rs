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
    // By id it works, and by the short id the tables print next to the name (trial30
    // MED-1: it was 404 "no host").
    let show = api(&["hosts", "show", &ids[0]]);
    assert!(show.status.success(), "{}", text(&show));
    let show = api(&["hosts", "show", &ids[0][..8]]);
    assert!(show.status.success(), "{}", text(&show));
    assert!(text(&show).contains(ids[0].as_str()), "{}", text(&show));
    // The audit by the shared name: exit 2 listing both ids, never an empty table
    // (trial25 F9); by a name no host has: exit 2; by id: the host's records.
    let audit = api(&["audit", "--host", "web1"]);
    let err = String::from_utf8_lossy(&audit.stderr).to_string();
    assert_eq!(audit.status.code(), Some(2), "{}", text(&audit));
    for id in &ids {
        assert!(err.contains(id.as_str()), "lists {id}: {err}");
    }
    let audit = api(&["audit", "--host", "nosuchhost", "--format", "jsonl"]);
    assert_eq!(audit.status.code(), Some(2), "{}", text(&audit));
    assert!(text(&audit).contains("nosuchhost"), "{}", text(&audit));
    let audit = api(&["audit", "--host", &ids[0], "--json"]);
    assert!(audit.status.success(), "{}", text(&audit));
    assert!(text(&audit).contains("\"enroll\""), "{}", text(&audit));
    // The FLAGS column: a shared address is named.
    let list = api(&["hosts"]);
    assert!(list.status.success(), "{}", text(&list));
    let table = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        table.contains("FLAGS") && table.contains("duplicate hostname"),
        "{table}"
    );
    // The FLAGS cell names the other host by the console's short id (the start of its ID).
    for (i, id) in ids.iter().enumerate() {
        let other = &ids[1 - i][..8];
        let line = table
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("a row starts with {id}: {table}"));
        assert!(line.contains(&format!("duplicate hostname (also {other})")), "{line}");
    }
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

/// The fault kind (trial18 MED-1, trial19 MED-B): `cordon agent enroll --hostname` under
/// another host's address, a short id or the console's `NAME (shortid)` form enrolled.
/// Each is refused before the server is asked: exit 2 naming the problem, the token
/// still unused (the same token then enrolls a real name).
#[test]
fn enroll_refuses_hostnames_that_read_as_an_address_an_id_or_the_twin_naming() {
    let tmp = tempfile::tempdir().unwrap();
    let lb = loopback::start(tmp.path());
    let t = loopback::cordon(&["server", "token", "create", "--data", &lb.data, "--json"]);
    assert!(t.status.success(), "{}", text(&t));
    let t: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
    let token = t["token"].as_str().unwrap();
    let agent_dir = tmp.path().join("agent").to_string_lossy().to_string();
    let state_dir = tmp.path().join("state").to_string_lossy().to_string();
    let enroll = |hostname: &str| {
        loopback::cordon(&[
            "agent",
            "enroll",
            "--server",
            &lb.url,
            "--token",
            token,
            "--ca-fingerprint",
            &lb.fp,
            "--dir",
            &agent_dir,
            "--state-dir",
            &state_dir,
            "--hostname",
            hostname,
        ])
    };
    for (name, says) in [
        ("10.9.9.9", "IP address 10.9.9.9"),
        ("[2001:db8::5]", "IP address 2001:db8::5"),
        ("820cb233", "reads as a host id"),
        ("web1 (820cb233)", "U+0020"),
        // trial28 LOW-11: escaped once (`\u{ff44}`), not twice (`\\u{ff44}`).
        (
            "\u{ff44}\u{ff45}\u{ff13}\u{ff10}\u{ff44}\u{ff43}\u{ff16}\u{ff42}",
            "hostname \"\\u{ff44}\\u{ff45}",
        ),
    ] {
        let out = enroll(name);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is refused") && err.contains(says), "{name}: {err}");
    }
    let out = enroll("web1");
    assert!(out.status.success(), "the token was not used: {}", text(&out));
}

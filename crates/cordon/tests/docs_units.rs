//! The docs and the unit files say the same thing (fix14c item 5): the server listens on
//! `[::]:8443` (IPv6 and IPv4) everywhere — units, docs, examples and the CLI default —
//! and docs/install.md names exactly the command each unit in packaging/linux runs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every text file of the docs, examples and packaging.
fn shipped_texts() -> Vec<(String, String)> {
    let mut out = vec![("README.md".to_string(), read("README.md"))];
    for dir in [
        "docs",
        "packaging/linux",
        "packaging/macos",
        "packaging/windows",
        "integrations/wazuh",
        "integrations/velociraptor",
    ] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((p.display().to_string(), text));
                }
            }
        }
    }
    out
}

#[test]
fn the_server_listens_dual_stack_everywhere() {
    for (file, text) in shipped_texts() {
        for (n, line) in text.lines().enumerate() {
            if let Some(rest) = line.split("--listen").nth(1) {
                let addr = rest
                    .trim_start_matches(['=', ' '])
                    .split([' ', '`', '"'])
                    .next()
                    .unwrap_or_default();
                assert!(
                    !addr.starts_with("0.0.0.0"),
                    "{file}:{}: IPv4-only listen address {addr:?}; use [::]:PORT (dual stack)",
                    n + 1
                );
            }
        }
    }
    let unit = read("packaging/linux/cordon-server.service");
    assert!(unit.contains("--listen [::]:8443"), "{unit}");
}

/// Each unit's `ExecStart` command (without `/usr/local/bin/`) appears in docs/install.md
/// as it is.
#[test]
fn install_doc_names_the_command_each_unit_runs() {
    let doc = read("docs/install.md");
    let mut seen = 0;
    for e in std::fs::read_dir(root().join("packaging/linux")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("service") {
            continue;
        }
        let unit = std::fs::read_to_string(&p).unwrap();
        for line in unit.lines().filter_map(|l| l.strip_prefix("ExecStart=")) {
            let cmd = line.trim_start_matches("/usr/local/bin/");
            assert!(
                doc.contains(&format!("`{cmd}`")),
                "docs/install.md does not name `{cmd}` ({})",
                p.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 4, "expected the four units, found {seen} ExecStart lines");
    assert!(
        doc.contains("/usr/bin/cordon-server server run --listen [::]:8443"),
        "the package's server unit command"
    );
}

#[cfg(feature = "server")]
#[test]
fn server_run_defaults_to_dual_stack() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["server", "run", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[default: [::]:8443]"), "{text}");
}

/// trial26 M3: cordon-watch.service's condition (a recorded quarantine) is checked only
/// when it starts, so `systemctl enable --now cordon-watch` on a host quarantined later
/// gave no watcher. cordon-watch.path starts it when the condition's glob matches (also
/// later), enabling the service enables the .path unit (`Also=`), and docs/install.md
/// gives the command that starts it now.
#[test]
fn the_watcher_is_started_by_a_path_unit_on_its_own_condition() {
    let service = read("packaging/linux/cordon-watch.service");
    let path = read("packaging/linux/cordon-watch.path");
    let value = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(str::to_string))
            .unwrap_or_else(|| panic!("no {key}"))
    };
    // The claims file every quarantine writes, under the service's state directory; never
    // an enrolled agent's agent-desired.json / agent-paths.json (trial29 H1: those would
    // start a watcher that exits at once, and the .path unit would start it again).
    let glob = value(&path, "PathExistsGlob=");
    assert_eq!(glob, "/var/lib/cordon/*.claims.json");
    assert!(value(&service, "ConditionPathExistsGlob=").starts_with("/var/lib/cordon/"));
    for agent_file in ["agent-desired.json", "agent-paths.json"] {
        assert!(!agent_file.ends_with(".claims.json"), "{agent_file}");
    }
    assert_eq!(value(&path, "Unit="), "cordon-watch.service");
    assert_eq!(value(&path, "WantedBy="), "paths.target");
    assert_eq!(value(&service, "Also="), "cordon-watch.path");
    let doc = read("docs/install.md");
    assert!(
        doc.contains("systemctl enable --now cordon-watch.service cordon-watch.path"),
        "docs/install.md"
    );
    // The package's removal refusal names it among what to stop before a release.
    let prerm = read("packaging/linux/maint/agent-preremove.sh");
    assert!(
        prerm.contains("systemctl stop cordon-watch.path cordon-watch.service"),
        "preremove"
    );
}

/// trial34 L12: install.md's uninstall step "revoke it, refused while it is quarantined:
/// release it first" dead-ended for a host whose package is already gone (removed with
/// CORDON_FORCE_REMOVE=1): its release stays `release_pending` (no agent confirms it) and
/// revoke answers 409 "… or revoke with --force". The doc names `--force` for that host.
#[test]
fn install_doc_says_how_to_revoke_a_host_whose_package_is_gone() {
    let doc = read("docs/install.md");
    assert!(
        doc.contains("cordon hosts revoke NAME --force --comment"),
        "docs/install.md gives no revoke --force"
    );
    assert!(doc.contains("release_pending"), "docs/install.md");
}

/// review14 LOW-4: the workspace's `rust-version` said 1.80 while the code needed 1.83 and
/// the locked dependencies 1.89, and no crate inherited it, so nothing checked it. Every
/// crate inherits it now (cargo refuses an older toolchain, clippy's `incompatible_msrv`
/// a newer std API), and it is at least what the code itself needs.
#[test]
fn every_crate_inherits_the_workspace_rust_version() {
    let workspace = read("Cargo.toml");
    let line = workspace
        .lines()
        .find(|l| l.starts_with("rust-version = "))
        .expect("[workspace.package] rust-version");
    let version = line.trim_start_matches("rust-version = ").trim_matches('"');
    let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
    assert!(
        version.starts_with("1.") && minor >= 83,
        "{line}: io::ErrorKind::StorageFull needs 1.83"
    );
    for e in std::fs::read_dir(root().join("crates")).unwrap() {
        let manifest = e.unwrap().path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(
            text.contains("\nrust-version.workspace = true\n"),
            "{}: add rust-version.workspace = true",
            manifest.display()
        );
    }
}

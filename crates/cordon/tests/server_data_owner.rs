//! trial26 M2: the packaged server's data directory belongs to its system user
//! (`cordon-server`); `sudo cordon-server server token create` (root) used to create
//! root-owned 0600 files there (`audit-anchor.json`, `audit-writer.lock`; with `init`, the
//! CA key and the database) that the server, running as that user, then could not read.
//! Root on another user's data directory is refused (exit 2), naming the owner and the
//! `sudo -u OWNER …` form, with nothing written. Needs root (it chowns a temp directory).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

fn cordon(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(args)
        .env_remove("CORDON_DATA")
        .env_remove("CORDON_DB")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
#[ignore = "needs root: chowns a temp directory (scripts/test runs it)"]
fn root_is_refused_on_a_data_dir_of_another_user_and_writes_nothing() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let d = data.to_str().unwrap();
    for args in [
        vec!["server", "init", "--data", d, "--name", "cordon.example.net"],
        vec!["server", "token", "create", "--data", d],
        vec!["server", "run", "--listen", "127.0.0.1:0", "--data", d],
    ] {
        let (code, err) = cordon(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(&format!("refusing to run as root on {d}, which belongs to")),
            "{args:?}: {err}"
        );
        assert!(err.contains("(uid 65534)") || err.contains("uid 65534"), "{err}");
        let again = format!(" {} {}", env!("CARGO_BIN_EXE_cordon"), args.join(" "));
        assert!(
            err.contains("\n  sudo -u ") && err.trim_end().ends_with(&again),
            "{args:?}: {err}"
        );
        assert!(entries(&data).is_empty(), "{args:?} wrote {:?}", entries(&data));
    }
    // Root on its own directory (a hand install running the server as root) goes on.
    let own = tmp.path().join("own");
    let o = own.to_str().unwrap();
    let (code, err) = cordon(&["server", "init", "--data", o, "--name", "cordon.example.net"]);
    assert_eq!(code, 0, "{err}");
    assert!(own.join("ca.pem").exists());
}

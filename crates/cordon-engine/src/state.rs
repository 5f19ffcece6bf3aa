//! The persisted record of what was applied, written atomically (temp file, fsync,
//! rename, fsync directory) so a crash never leaves a torn state file.
//!
//! Durability rule (issue #11): the recorded state and the kernel never disagree. The
//! engine counts rules as applied only once this record is durably written; when it
//! cannot be written (disk full, read-only directory), the engine rolls the kernel back
//! to the previous record (or to nothing) and fails, and a failed write leaves the
//! previous file untouched (the temp file is removed).

use crate::record::ReplaceStep;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use cordon_firewall::BackendKind;
use cordon_policy::{Policy, TableName};
use serde::{Deserialize, Serialize};

use crate::{EngineError, IsolateRequest};

/// Version of the state file format; [`load`] refuses any other.
pub const STATE_VERSION: u32 = 1;

/// The state file `<dir>/<table>.json`: what was applied, by which backend, and the
/// digest to compare the kernel with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The table the rules live in.
    pub table: TableName,
    /// The backend that applied them.
    pub backend: BackendKind,
    /// The request as given (names unresolved), re-resolved on re-apply.
    pub request: IsolateRequest,
    /// The resolved policy that was applied.
    pub policy: Policy,
    /// When: RFC 3339 UTC with milliseconds ([`now_rfc3339`]).
    pub applied_at: String,
    /// SHA-256 (hex) of the normalized listing read back right after applying.
    pub digest: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`) when the rules were
    /// applied: rules missing at start-up with the same boot id were removed behind our
    /// back (tampering); with a new boot id the machine rebooted and they are re-applied
    /// as usual. `None` off Linux and in records written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// What the apply's verification proved ([`crate::Verification`]); kept by a
    /// re-apply. `None` in records written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::Verification>,
    /// The paths around the hooks that were already there when the quarantine was first
    /// applied ([`cordon_firewall::Bypass::what`]; trial27): reported, but no tampering.
    /// One that is not in this list appeared since: the quarantine is `tampered`. A
    /// re-apply keeps only those still in this list (an attacker's filter never becomes
    /// known by a re-apply); a release and a new isolate start afresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub around_at_apply: Vec<String>,
    /// The devices the device layer covered after the apply (or the watcher's last
    /// repair), by name and interface index ([`cordon_firewall::Coverage::identities`]):
    /// `status` tells them from other devices given their name later, and reports those
    /// the hooks no longer follow ([`cordon_firewall::Coverage::lost`]; trial27 HIGH-5,
    /// MED-2). Empty for backends without a device layer and in older records (then no
    /// such check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<cordon_firewall::DeviceId>,
    /// The paths around the hooks the watcher saw after the apply (not in
    /// [`StoredState::around_at_apply`]), each kept until the quarantine is released or
    /// the sightings are acknowledged ([`crate::Engine::acknowledge_seen`]), also when the
    /// path is gone by the next look (trial31 MED-E: a tcx program or an AF_XDP socket
    /// living less than a second between two checks left no trace). While one is listed,
    /// `status` says `tampered`. A re-apply keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub around_seen: Vec<SeenAround>,
    /// The sightings acknowledged so far (`cordon status --acknowledge`), newest last, at
    /// most [`ACKNOWLEDGEMENTS_KEPT`]: what was forgotten, when and by whom, so an
    /// acknowledgement leaves a trace in `status` (trial37 LOW-6: root on the host could
    /// clear the record with nothing left to show it). Kept until release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acknowledged: Vec<Acknowledgement>,
}

/// How many acknowledgements the record keeps ([`StoredState::acknowledged`]); the oldest
/// go first.
pub const ACKNOWLEDGEMENTS_KEPT: usize = 16;

/// One `cordon status --acknowledge` ([`StoredState::acknowledged`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// When: RFC 3339 UTC with milliseconds ([`now_rfc3339`]).
    pub at: String,
    /// Who, as the acknowledging process saw itself: `uid 0, pid 812 (cordon), parent
    /// pid 800 (bash)`.
    pub by: String,
    /// The sightings forgotten ([`SeenAround::what`] with its time), one line each.
    pub forgot: Vec<String>,
}

impl std::fmt::Display for Acknowledgement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sighting(s) acknowledged at {} by {}: {}",
            self.forgot.len(),
            self.at,
            self.by,
            self.forgot.join("; ")
        )
    }
}

/// A path around the hooks the watcher saw ([`StoredState::around_seen`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenAround {
    /// [`cordon_firewall::Bypass::what`].
    pub what: String,
    /// [`cordon_firewall::Bypass::holder`], when known at the sighting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The layers it goes around.
    pub skips: Vec<cordon_firewall::Layer>,
    /// When the watcher first saw it: RFC 3339 UTC with milliseconds ([`now_rfc3339`]).
    pub seen_at: String,
}

impl std::fmt::Display for SeenAround {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)?;
        if let Some(h) = &self.holder {
            write!(f, ", held by {h}")?;
        }
        write!(f, " (seen at {})", self.seen_at)
    }
}

/// The state file of `table` in `dir`: `<dir>/<table>.json`.
pub fn path(dir: &Path, table: &TableName) -> PathBuf {
    dir.join(format!("{}.json", table.as_str()))
}

/// The table names with a record in `dir`: a state file `<table>.json` or a claims file
/// `<table>.claims.json` (temporary files, which start with a dot, and names that are not
/// table names are skipped). Sorted, default name first; empty when `dir` is missing.
///
/// # Errors
/// When `dir` exists but cannot be listed.
pub fn recorded_tables(dir: &Path) -> Result<Vec<TableName>, EngineError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::state_io("list the state directory", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::state_io("list the state directory", dir, e))?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(stem) = file.strip_suffix(".json") else {
            continue;
        };
        let stem = stem.strip_suffix(".claims").unwrap_or(stem);
        if let Ok(name) = TableName::new(stem) {
            names.push(name);
        }
    }
    crate::sort_tables(&mut names);
    Ok(names)
}

/// Reads the state file of `table`; `None` when there is none.
///
/// # Errors
/// [`EngineError::StateCorrupt`] when it is not valid JSON of this shape,
/// [`EngineError::StateVersion`] when its version is not [`STATE_VERSION`],
/// [`EngineError::StateUnusable`] when it is not a regular file or too large (see
/// [`crate::record`]: it is never waited on nor read whole), and an I/O error
/// ([`EngineError::StateIo`]) naming the path when it cannot be read.
pub fn load(dir: &Path, table: &TableName) -> Result<Option<StoredState>, EngineError> {
    let p = path(dir, table);
    let text = match crate::record::read(&p) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err(EngineError::record(&p, e)),
    };
    let state: StoredState = serde_json::from_slice(&text).map_err(|source| EngineError::StateCorrupt {
        path: p.clone(),
        source,
    })?;
    if state.version != STATE_VERSION {
        return Err(EngineError::StateVersion {
            path: p,
            found: state.version,
            expected: STATE_VERSION,
        });
    }
    Ok(Some(state))
}

/// Whether [`save_with`] makes the rename durable itself (fsync of the directory) or
/// leaves that to the caller's next directory fsync in the same operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSync {
    /// Fsync the directory after the rename (the record is durable on return).
    Now,
    /// The file's data is durable on return, its rename once the caller syncs the
    /// directory (the claims file, written next in the same directory, does): one
    /// directory fsync per isolate instead of two (issue #18). A crash before that
    /// leaves the previous record or the new one, never a torn file.
    Deferred,
}

/// Writes `state` durably: temp file, fsync, rename, fsync of the directory.
///
/// # Errors
/// As [`save_with`].
pub fn save(dir: &Path, state: &StoredState) -> Result<(), EngineError> {
    save_with(dir, state, DirSync::Now)
}

/// [`save`], with the directory fsync as `dir_sync` says. The write itself is
/// [`crate::record::replace`]'s.
///
/// # Errors
/// [`EngineError::StateEncode`] when the state cannot be encoded;
/// [`EngineError::StateIo`] naming the state directory and the step that failed (create
/// the directory, write, sync or rename the state file); the previous state file is then
/// untouched.
pub fn save_with(dir: &Path, state: &StoredState, dir_sync: DirSync) -> Result<(), EngineError> {
    let io = |what: &'static str, e: std::io::Error| EngineError::state_io(what, dir, e);
    fs::create_dir_all(dir).map_err(|e| io("create the state directory in", e))?;
    let final_path = path(dir, &state.table);
    let tmp = dir.join(format!(".{}.json.tmp", state.table.as_str()));
    let json = serde_json::to_vec_pretty(state).map_err(EngineError::StateEncode)?;
    crate::record::replace(&tmp, &final_path, &json).map_err(|e| {
        let what = match e.step {
            ReplaceStep::Create | ReplaceStep::Write => "write the state file in",
            ReplaceStep::Sync => "sync the state file in",
            ReplaceStep::Rename => "rename the state file in",
        };
        io(what, e.source)
    })?;
    if dir_sync == DirSync::Now {
        sync_dir(dir);
    }
    Ok(())
}

/// Removes the state file of `table` and syncs the directory; succeeds when there is
/// none.
///
/// # Errors
/// [`EngineError::StateIo`] naming the path when the file exists but cannot be removed.
pub fn delete(dir: &Path, table: &TableName) -> Result<(), EngineError> {
    match remove_if_present(&path(dir, table)) {
        Ok(true) => {
            sync_dir(dir);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(EngineError::state_io("remove the state file", path(dir, table), e)),
    }
}

/// Removes the file `p`: `Ok(true)` when it was removed, `Ok(false)` when there was none.
/// Removing a file that is not there succeeds even where the directory cannot be written:
/// Linux answers `unlink` on a read-only file system with EROFS before it looks the name
/// up, so such an error stands only when the name still exists (a release that worked
/// on a read-only state directory was reported `failed (cannot remove the state file …:
/// Read-only file system)`, issue 14).
///
/// # Errors
/// The `unlink` error when `p` exists (or cannot be looked up) and was not removed.
pub(crate) fn remove_if_present(p: &Path) -> std::io::Result<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => match fs::symlink_metadata(p) {
            Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => Ok(false),
            _ => Err(e),
        },
    }
}

/// Makes the rename durable; best effort because some filesystems refuse directory fsync.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The running kernel's boot id (Linux), which changes at every boot.
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Now, in the one wire format of [`cordon_proto::timefmt::Timestamp`].
pub fn now_rfc3339() -> String {
    cordon_proto::timefmt::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let table = TableName::default();
        assert!(load(dir.path(), &table).unwrap().is_none());
        let s = StoredState {
            version: STATE_VERSION,
            table: table.clone(),
            backend: BackendKind::Nftables,
            request: IsolateRequest::default(),
            policy: Policy::builder().server("192.0.2.1:8443".parse().unwrap()).build(),
            applied_at: now_rfc3339(),
            digest: "abc".into(),
            boot_id: boot_id(),
            verification: None,
            around_at_apply: vec!["tc filter u32 on eth0 ingress (pref 1, handle 0x800): actions mirred".into()],
            devices: vec![cordon_firewall::DeviceId {
                name: "eth0".into(),
                ifindex: 2,
            }],
            around_seen: vec![],
            acknowledged: vec![],
        };
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path(), &table).unwrap(), Some(s));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path(dir.path(), &table)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        delete(dir.path(), &table).unwrap();
        assert!(load(dir.path(), &table).unwrap().is_none());
    }

    /// The fault kind: a quarantine recorded under a non-default `--table` was invisible
    /// to everything that looked only for `cordon.json`.
    #[test]
    fn every_recorded_table_is_found_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(recorded_tables(&dir.path().join("missing")).unwrap().is_empty());
        for f in [
            "zeta.json",
            "cordon.claims.json",
            "alpha.claims.json",
            "alpha.json",
            ".beta.json.tmp",
            "lock",
            "bad;name.json",
        ] {
            fs::write(dir.path().join(f), "{}").unwrap();
        }
        let names: Vec<String> = recorded_tables(dir.path())
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(names, ["cordon", "alpha", "zeta"]);
    }

    /// Trial20 HIGH-A: a FIFO or a link to /dev/zero as the state file hung `load` (or
    /// read until out of memory); now it is `StateUnusable`, at once, naming the file.
    #[cfg(unix)]
    #[test]
    fn a_state_file_that_is_no_regular_file_is_unusable_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cordon.json");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let d = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(load(&d, &TableName::default()).map(|_| ()).map_err(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("load blocked on a FIFO");
        let msg = got.unwrap_err();
        assert!(msg.contains("unusable") && msg.contains("cordon.json"), "{msg}");
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let e = load(dir.path(), &TableName::default()).unwrap_err();
        assert!(e.is_bad_record_at(&p), "{e}");
    }

    /// Issue 14 LOW: on a read-only state directory a release that worked was reported
    /// `failed (cannot remove the state file …: Read-only file system)` although there
    /// was no file to remove (Linux answers EROFS before it looks the name up). A file
    /// that is there still fails naming the cause. The read-only file system is a tmpfs
    /// this test mounts itself (root).
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root: mounts a read-only tmpfs (scripts/test runs it)"]
    fn removing_an_absent_record_on_a_read_only_file_system_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("ro");
        fs::create_dir(&mnt).unwrap();
        let mount = |args: &[&str]| {
            let ok = std::process::Command::new("mount")
                .args(args)
                .arg(&mnt)
                .status()
                .unwrap();
            assert!(ok.success(), "mount {args:?}");
        };
        mount(&["-t", "tmpfs", "-o", "size=64k", "f14p-ro"]);
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let _u = Unmount(mnt.clone());
        fs::write(mnt.join("other.json"), "{}").unwrap();
        mount(&["-o", "remount,ro"]);
        let table = TableName::default();
        delete(&mnt, &table).expect("no state file to remove: nothing failed");
        assert!(!remove_if_present(&mnt.join("cordon.json")).unwrap());
        let e = remove_if_present(&mnt.join("other.json")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file_and_the_recovery() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cordon.json"), "{not json").unwrap();
        let msg = load(dir.path(), &TableName::default()).unwrap_err().to_string();
        assert!(
            msg.contains(&dir.path().join("cordon.json").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("cordon release --force --state-dir"), "{msg}");
    }
}

//! The one way Cordon opens its own local records (issue 14 §1 "never fail open", trial20
//! HIGH-A): the state file, the claims file and its backup, the management paths, the
//! agent's desired state, the lock files and the `/run/cordon` registry entries.
//!
//! Anyone with root on the host can put something else in place of a record: a FIFO
//! (`open()` waits for a writer for ever: the agent hung before applying, the host stayed
//! open with fresh heartbeats), a symbolic link to `/dev/zero` (read until the memory is
//! gone), a directory, or a file of gigabytes. So every record is opened with
//! `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC` (a symbolic link is refused, opening a FIFO or a
//! device never waits), checked with `fstat` to be a regular file, and read up to
//! [`MAX_RECORD_BYTES`]. Anything else is a [`RecordError`], which every caller treats
//! exactly like a corrupt record: an ordered quarantine sets it aside and goes on.
//!
//! Writes go through [`create_tmp`]: the temporary file is created afresh with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, so a symbolic link planted at the temporary name is
//! never followed (it is removed, not written through).
//!
//! Hand-written over a crate: the few `open(2)` flags and an `fstat` are all it takes, and
//! no well-kept crate bounds a read of a path that may be a FIFO.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The largest record Cordon reads: 16 MiB. A real record is a few kilobytes (a claims
/// file with thousands of exceptions stays under 1 MiB), so anything larger was not
/// written by Cordon and is treated like a corrupt record rather than read into memory.
pub const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// Why a local record cannot be used.
#[derive(Debug, Error)]
pub enum RecordError {
    /// It exists but cannot be opened or read (permissions, I/O error).
    #[error("cannot read it")]
    Io(#[source] std::io::Error),
    /// It is not a regular file (`what`: `a FIFO`, `a symbolic link`, `a directory`, …):
    /// never a record Cordon wrote.
    #[error("it is {what}, not a regular file, so it is not a record Cordon wrote")]
    NotRegular {
        /// What it is, with its article.
        what: &'static str,
    },
    /// It is larger than [`MAX_RECORD_BYTES`].
    #[error("it is {size} bytes, more than the {max} bytes any Cordon record can be")]
    TooLarge {
        /// Its size in bytes (`fstat`, or at least `max + 1` when it grew while read).
        size: u64,
        /// [`MAX_RECORD_BYTES`].
        max: u64,
    },
}

impl RecordError {
    /// Whether the file is not a usable record (not a regular file, too large), as
    /// opposed to an I/O error reading one: such a file is set aside like a corrupt one.
    pub fn is_unusable(&self) -> bool {
        !matches!(self, RecordError::Io(_))
    }
}

/// Opens `path` for reading as a record: without following a symbolic link, without
/// waiting on a FIFO, and only when it is a regular file. `Ok(None)` when it does not
/// exist.
///
/// # Errors
/// [`RecordError::NotRegular`] for anything but a regular file (a symbolic link
/// included), [`RecordError::Io`] when it cannot be opened.
pub fn open(path: &Path) -> Result<Option<File>, RecordError> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY);
    }
    #[cfg(not(unix))]
    {
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(RecordError::NotRegular {
                what: "a symbolic link",
            });
        }
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(RecordError::NotRegular {
                what: "a symbolic link",
            })
        }
        // Windows opens a directory only with backup semantics: refused as what it is.
        Err(e) if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) => {
            let _ = e;
            return Err(RecordError::NotRegular { what: "a directory" });
        }
        Err(e) => return Err(RecordError::Io(e)),
    };
    let meta = file.metadata().map_err(RecordError::Io)?;
    if !meta.is_file() {
        return Err(RecordError::NotRegular {
            what: kind_of(&meta.file_type()),
        });
    }
    Ok(Some(file))
}

/// Reads the record at `path` (see the module comment): `Ok(None)` when it does not
/// exist.
///
/// # Errors
/// As [`open`], and [`RecordError::TooLarge`] when it holds more than
/// [`MAX_RECORD_BYTES`].
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, RecordError> {
    let Some(file) = open(path)? else {
        return Ok(None);
    };
    let size = file.metadata().map_err(RecordError::Io)?.len();
    if size > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge {
            size,
            max: MAX_RECORD_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // Bounded even if the file grows while it is read.
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(RecordError::Io)?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge {
            size: bytes.len() as u64,
            max: MAX_RECORD_BYTES,
        });
    }
    Ok(Some(bytes))
}

/// [`read`] as UTF-8 text (the registry entries, pid files).
///
/// # Errors
/// As [`read`]; text that is not UTF-8 is a [`RecordError::Io`] of kind `InvalidData`.
pub fn read_text(path: &Path) -> Result<Option<String>, RecordError> {
    match read(path)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|e| RecordError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

/// `what` a non-regular file is, with its article.
fn kind_of(t: &fs::FileType) -> &'static str {
    if t.is_dir() {
        return "a directory";
    }
    if t.is_symlink() {
        return "a symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Where an unusable file at `path` is moved: `<path>.corrupt`, or `<path>.corrupt.N`
/// when that name is taken.
pub fn aside_name(path: &Path) -> PathBuf {
    let base = format!("{}.corrupt", path.display());
    let first = PathBuf::from(&base);
    if fs::symlink_metadata(&first).is_err() {
        return first;
    }
    (1..1000)
        .map(|n| PathBuf::from(format!("{base}.{n}")))
        .find(|p| fs::symlink_metadata(p).is_err())
        .unwrap_or(first)
}

/// Moves a directory standing at a record's name out of the way ([`aside_name`]), so the
/// record can be written there again (a rename over a FIFO, a symbolic link or a device
/// replaces it; over a directory it fails). Returns where it went; `None` when nothing
/// had to move or it could not be moved (the write then fails and says why).
pub fn clear_dir_at(path: &Path) -> Option<PathBuf> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return None;
    }
    let aside = aside_name(path);
    fs::rename(path, &aside).ok()?;
    tracing::warn!(path = %path.display(), set_aside = %aside.display(), "a directory stood at a record's name; moved aside");
    Some(aside)
}

/// Creates the temporary file `tmp` for an atomic write, 0600, afresh: whatever stands
/// at that name (an earlier temp file, a symbolic link, a FIFO) is removed first (a
/// directory is moved aside), and the file is created with `O_EXCL | O_NOFOLLOW`, so a
/// link planted there is never written through.
///
/// # Errors
/// The name cannot be cleared or the file cannot be created.
pub fn create_tmp(tmp: &Path) -> std::io::Result<File> {
    if clear_dir_at(tmp).is_none() {
        match fs::remove_file(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY);
    }
    opts.open(tmp)
}

/// The step of [`replace`] that failed, so a caller can say which (`cannot sync the state
/// file in /var/lib/cordon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceStep {
    /// Clearing the temporary name or creating the temporary file ([`create_tmp`]).
    Create,
    /// Writing the data to the temporary file.
    Write,
    /// Syncing the temporary file's data to disk (`fsync`).
    Sync,
    /// Renaming the temporary file over the record.
    Rename,
}

impl ReplaceStep {
    /// The step as a verb (`create`, `write`, `sync`, `rename`).
    pub fn verb(self) -> &'static str {
        match self {
            ReplaceStep::Create => "create",
            ReplaceStep::Write => "write",
            ReplaceStep::Sync => "sync",
            ReplaceStep::Rename => "rename",
        }
    }
}

/// [`replace`] failed at `step`; the previous record is untouched.
#[derive(Debug, Error)]
#[error("cannot {} the record's temporary file", step.verb())]
pub struct ReplaceError {
    /// The step that failed.
    pub step: ReplaceStep,
    /// The OS error of that step.
    #[source]
    pub source: std::io::Error,
}

/// Replaces the record `path` with `data` atomically: a directory standing at `path` is
/// moved aside ([`clear_dir_at`]), `data` goes to the fresh temporary file `tmp`
/// ([`create_tmp`]) and is synced, then renamed over `path`. On failure only the temporary
/// file goes; the previous record stays exactly as it was. The directory's own fsync is
/// the caller's (some batch several renames under one). The one copy of this sequence:
/// the state file, the claims file and the agent's private records all go through it.
///
/// # Errors
/// [`ReplaceError`] naming the step that failed (create, write, sync or rename).
pub fn replace(tmp: &Path, path: &Path, data: &[u8]) -> Result<(), ReplaceError> {
    use std::io::Write;
    let at = |step: ReplaceStep| move |source: std::io::Error| ReplaceError { step, source };
    clear_dir_at(path);
    let written = (|| {
        let mut f = create_tmp(tmp).map_err(at(ReplaceStep::Create))?;
        f.write_all(data).map_err(at(ReplaceStep::Write))?;
        f.sync_all().map_err(at(ReplaceStep::Sync))?;
        drop(f);
        fs::rename(tmp, path).map_err(at(ReplaceStep::Rename))
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    /// Runs `f` on another thread and fails the test when it does not return within 5 s:
    /// a read that blocks (the fault kind) fails instead of hanging the test run.
    fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("reading a record blocked for more than 5 s")
    }

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// A failed replace names its step and keeps the OS error as its cause.
    #[test]
    fn a_failed_replace_names_its_step_and_keeps_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let e = replace(&missing.join(".r.tmp"), &missing.join("r.json"), b"{}").unwrap_err();
        assert_eq!(e.step, ReplaceStep::Create);
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        assert!(std::error::Error::source(&e).is_some());
        let p = dir.path().join("r.json");
        replace(&dir.path().join(".r.tmp"), &p, b"{}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{}");
        assert!(!dir.path().join(".r.tmp").exists());
    }

    #[test]
    fn a_good_record_is_read_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cordon.claims.json");
        assert!(read(&p).unwrap().is_none());
        fs::write(&p, b"{\"version\":1}").unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), b"{\"version\":1}");
        assert_eq!(read_text(&p).unwrap().unwrap(), "{\"version\":1}");
    }

    /// The fault kind (trial20 HIGH-A): a FIFO in place of a record blocked `open()` for
    /// ever. It is refused at once, named.
    #[test]
    fn a_fifo_in_place_of_a_record_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cordon.claims.json");
        mkfifo(&p);
        let started = Instant::now();
        let e = bounded(move || read(&p)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(e.is_unusable());
        assert!(e.to_string().contains("a FIFO"), "{e}");
    }

    /// A symbolic link to `/dev/zero` was read until memory ran out; any link is refused.
    #[test]
    fn a_symlink_to_a_device_or_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cordon.json");
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let e = bounded(move || read(&p)).unwrap_err();
        assert!(e.to_string().contains("a symbolic link"), "{e}");
        let real = dir.path().join("real.json");
        fs::write(&real, "{}").unwrap();
        let q = dir.path().join("agent-paths.json");
        std::os::unix::fs::symlink(&real, &q).unwrap();
        assert!(read(&q).unwrap_err().is_unusable());
    }

    #[test]
    fn a_device_node_is_refused() {
        // /dev/zero itself (not through a link): fstat says character device.
        let e = bounded(|| read(Path::new("/dev/zero"))).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent-desired.json");
        fs::create_dir(&p).unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[test]
    fn an_oversized_record_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cordon.claims.backup");
        let f = File::create(&p).unwrap();
        // Sparse: no disk used.
        f.set_len(MAX_RECORD_BYTES + 1).unwrap();
        let e = read(&p).unwrap_err();
        assert!(matches!(e, RecordError::TooLarge { .. }), "{e}");
        f.set_len(MAX_RECORD_BYTES).unwrap();
        assert_eq!(read(&p).unwrap().unwrap().len() as u64, MAX_RECORD_BYTES);
    }

    /// A symbolic link planted at the temporary name is removed, never written through.
    #[test]
    fn a_link_at_the_temp_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let tmp = dir.path().join(".cordon.json.tmp");
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let mut f = create_tmp(&tmp).unwrap();
        f.write_all(b"new").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(fs::symlink_metadata(&tmp).unwrap().is_file());
        // A directory there is moved aside.
        fs::remove_file(&tmp).unwrap();
        fs::create_dir(&tmp).unwrap();
        create_tmp(&tmp).unwrap();
        assert!(fs::symlink_metadata(&tmp).unwrap().is_file());
        assert!(dir.path().join(".cordon.json.tmp.corrupt").is_dir());
    }
}

//! The last desired state received from the server, kept on disk so the agent enforces
//! it at boot without the server and stays quarantined while the server is unreachable.
//!
//! It holds the analyst's comment and message, so it is private: the file is 0600 and a
//! directory the agent creates is 0700 (issue 14).

use std::fs;
use std::path::{Path, PathBuf};

use cordon_proto::DesiredState;
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// SHA-256 (hex) of a desired state's JSON (every field: revision, quarantine, exceptions,
/// message, comment, actor, expiry): two states with one revision number and different
/// content differ here.
pub fn desired_digest(d: &DesiredState) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(serde_json::to_vec(d).unwrap_or_default()))
}

impl Persisted {
    /// Whether the desired state is the one last applied: the same revision and (when
    /// recorded) the same content ([`desired_digest`]).
    pub fn desired_applied(&self) -> bool {
        self.applied_revision == Some(self.desired.revision)
            && self
                .applied_digest
                .as_deref()
                .is_none_or(|x| x == desired_digest(&self.desired))
    }

    /// Marks the desired state as applied (its revision and content).
    pub fn mark_applied(&mut self) {
        self.applied_revision = Some(self.desired.revision);
        self.applied_digest = Some(desired_digest(&self.desired));
    }
}

/// The file in the state directory that holds [`Persisted`].
pub const FILE_NAME: &str = "agent-desired.json";

/// What the agent keeps across restarts, so it re-applies at boot and stays quarantined
/// while the server is unreachable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    /// The last desired state received from the server.
    pub desired: DesiredState,
    /// The revision last applied successfully (`None`: not yet).
    pub applied_revision: Option<i64>,
    /// [`desired_digest`] of the desired state last applied (trial9 H-1: after a server
    /// database restore the same revision number can carry other content, so the
    /// revision alone does not say it was applied). `None` in files written before it
    /// was recorded: then the revision decides, as it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_digest: Option<String>,
    /// The agent's own destinations (server and proxy addresses) allowed by the rules in
    /// force, so that after a restart it keeps the ones that worked.
    #[serde(default)]
    pub transport: Vec<std::net::SocketAddr>,
    /// Which enrollment this state came from (host id, CA fingerprint, server); `None` in
    /// files written before it was recorded. A state of another enrollment (the host was
    /// enrolled again into the same state directory) is discarded at start ([`Binding`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
}

/// The enrollment a persisted desired state belongs to (trial6 HIGH 1: after re-enrolling
/// into the same state directory the agent kept the old host's revision, long-polled
/// for revisions newer than it and ignored the new host's quarantine).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The host id the server assigned at enrollment.
    pub host_id: String,
    /// SHA-256 (hex) of the server's CA certificate file (PEM bytes) the agent trusts.
    pub ca_sha256: String,
    /// The server URL(s) of the agent's configuration, in order.
    pub servers: Vec<String>,
}

impl Binding {
    /// The binding of the configuration `cfg` (reads the CA file; an unreadable one gives
    /// an empty fingerprint, which matches nothing recorded with one).
    pub fn of(cfg: &crate::AgentConfig) -> Self {
        use sha2::Digest;
        let ca_sha256 = fs::read(&cfg.ca)
            .map(|b| hex::encode(sha2::Sha256::digest(&b)))
            .unwrap_or_default();
        let mut servers = vec![cfg.server.clone()];
        servers.extend(cfg.servers.iter().cloned());
        servers.retain(|s| !s.is_empty());
        Binding {
            host_id: cfg.host_id.clone(),
            ca_sha256,
            servers,
        }
    }

    /// Why `recorded` belongs to another enrollment than `self` (the host id or the CA
    /// differ; a changed server list alone is a server move, not another enrollment);
    /// `None` when it is the same.
    pub fn mismatch(&self, recorded: &Binding) -> Option<String> {
        if recorded.host_id != self.host_id {
            return Some(format!(
                "it belongs to host id {} and this agent is enrolled as {}",
                recorded.host_id, self.host_id
            ));
        }
        if recorded.ca_sha256 != self.ca_sha256 {
            return Some("it came from a server with another CA certificate".into());
        }
        None
    }
}

/// `<state_dir>/agent-desired.json`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Reads the persisted state; `None` when there is none yet. Read as every Cordon record
/// is ([`cordon_engine::record`]): a FIFO, a link or a huge file there is never waited on
/// nor read whole (trial20 HIGH-A: the agent hung at start in `open()` of a FIFO).
///
/// # Errors
/// [`AgentError::Corrupt`] when the file is not JSON of this shape,
/// [`AgentError::Unusable`] when it is not a regular file or too large, [`AgentError::Io`]
/// when it cannot be read.
pub fn load(state_dir: &Path) -> Result<Option<Persisted>, AgentError> {
    let p = path(state_dir);
    match cordon_engine::record::read(&p) {
        Ok(Some(t)) => serde_json::from_slice(&t)
            .map(Some)
            .map_err(|source| AgentError::Corrupt {
                path: p.clone(),
                source,
            }),
        Ok(None) => Ok(None),
        Err(cordon_engine::record::RecordError::Io(e)) => Err(AgentError::io("read", &p, e)),
        Err(source) => Err(AgentError::Unusable { path: p, source }),
    }
}

/// [`load`], except that a corrupt or unusable file (not JSON of this shape, a FIFO, a
/// link, a directory, a huge file) never stops the agent: it is moved aside as
/// `agent-desired.json.corrupt` (or `.corrupt.N`) and the agent starts from no desired
/// state, as on a first start (the server sends the desired state again; the kernel's
/// rules and the claims stay as they are). Returns the state and, when a file was set
/// aside, the sentence saying so.
///
/// # Errors
/// [`AgentError::Io`] when the file cannot be read at all (permissions, I/O error).
pub fn load_or_set_aside(state_dir: &Path) -> Result<(Option<Persisted>, Option<String>), AgentError> {
    match load(state_dir) {
        Ok(p) => Ok((p, None)),
        Err(e @ (AgentError::Corrupt { .. } | AgentError::Unusable { .. })) => {
            let p = path(state_dir);
            let why = cordon_engine::error_chain(&e);
            let aside = cordon_engine::record::aside_name(&p);
            let note = match fs::rename(&p, &aside) {
                Ok(()) => format!(
                    "persisted desired state {why}: set aside as {}; the agent started without it and takes the server's desired state",
                    aside.display()
                ),
                Err(err) => format!(
                    "persisted desired state {why}, and it could not be set aside ({err}); the agent started without it"
                ),
            };
            Ok((None, Some(note)))
        }
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and its parents) if missing; the directories created here are 0700 on
/// Unix. On Windows `dir` (new or not) gets a protected DACL, SYSTEM and Administrators
/// only ([`cordon_engine::paths::protect_dir`]), inherited by the key and files in it.
///
/// # Errors
/// The OS error of creating a directory or setting its mode / DACL.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    cordon_engine::paths::protect_dir(dir)
}

/// Tightens an existing state directory made with wider permissions (trial6 LOW: a
/// pre-existing `/var/lib/cordon` at 0755 stayed so): the directory to 0700 and every
/// regular file in it readable by others to 0600 — they hold the analyst's comment and
/// the quarantine records. Returns one line per change, for the log (empty: nothing
/// was wider). Symbolic links are not followed. No-op off Unix (ACLs there).
///
/// # Errors
/// The directory cannot be read or a mode cannot be set.
pub fn tighten_private_dir(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut changed = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(changed),
            Err(e) => return Err(e),
        };
        if !meta.is_dir() {
            return Ok(changed);
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            changed.push(format!("{} {mode:o} -> 700", dir.display()));
        }
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let m = entry.metadata()?;
            let mode = m.permissions().mode() & 0o777;
            if m.is_file() && mode & 0o077 != 0 {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode & 0o700))?;
                changed.push(format!("{} {mode:o} -> {:o}", entry.path().display(), mode & 0o700));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(changed)
}

/// Tightens the agent's private key file `key` to 0600 when others or its group may read
/// it (trial29 L-g: with agent.key 0644 the agent started and said nothing, while the state
/// directory was tightened). Only the file: its directory may be shared (a config can
/// point the key anywhere). Returns the change, for the log; `None` when nothing was wider,
/// the file is missing or not a regular file (links are not followed). No-op off Unix.
///
/// # Errors
/// The file's metadata cannot be read or its mode cannot be set.
pub fn tighten_key_file(key: &Path) -> std::io::Result<Option<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match fs::symlink_metadata(key) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mode = meta.permissions().mode() & 0o777;
        if !meta.is_file() || mode & 0o077 == 0 {
            return Ok(None);
        }
        fs::set_permissions(key, fs::Permissions::from_mode(mode & 0o700))?;
        Ok(Some(format!("{} {mode:o} -> {:o}", key.display(), mode & 0o700)))
    }
    #[cfg(not(unix))]
    {
        let _ = key;
        Ok(None)
    }
}

/// Atomic replace of `path` with `content`, mode 0600 from the first byte: temp file in
/// the same directory (created 0700 if missing) created with `O_EXCL | O_NOFOLLOW`, fsync,
/// rename. A directory standing at `path` is moved aside first.
///
/// # Errors
/// [`AgentError::Io`] naming `path` when the directory, the temporary file or the rename
/// fails; the previous file is then unchanged.
pub fn write_private(path: &Path, content: &[u8]) -> Result<(), AgentError> {
    let io = |e: std::io::Error| AgentError::io("write", path, e);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    // Created afresh 0600 (an older temp file, or a link planted at that name, is removed
    // first and never written through) — `cordon_engine::record::replace`.
    cordon_engine::record::replace(&tmp, path, content).map_err(|e| io(e.source))
}

/// Saves the desired state atomically (see [`write_private`]).
///
/// # Errors
/// As [`write_private`], and [`AgentError::Encode`] when the state cannot be encoded.
pub fn save(state_dir: &Path, p: &Persisted) -> Result<(), AgentError> {
    let json = serde_json::to_vec_pretty(p).map_err(AgentError::Encode)?;
    write_private(&path(state_dir), &json)
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// Trial6 HIGH 1: a persisted state of another enrollment (host id or CA) is told
    /// apart; a moved server alone is the same enrollment.
    #[test]
    fn binding_tells_another_enrollment_apart() {
        let b = Binding {
            host_id: "h1".into(),
            ca_sha256: "aa".into(),
            servers: vec!["https://cordon.example.net:8443".into()],
        };
        assert_eq!(b.mismatch(&b), None);
        let moved = Binding {
            servers: vec!["https://dr.example.net:8443".into()],
            ..b.clone()
        };
        assert_eq!(b.mismatch(&moved), None);
        let other_host = Binding {
            host_id: "h2".into(),
            ..b.clone()
        };
        assert!(b.mismatch(&other_host).unwrap().contains("host id h2"));
        let other_ca = Binding {
            ca_sha256: "bb".into(),
            ..b.clone()
        };
        assert!(b.mismatch(&other_ca).unwrap().contains("CA"));
    }

    /// The persisted desired state holds the analyst's comment: private file, private dir.
    #[test]
    fn private_state_is_0600_in_a_0700_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("var/lib/cordon");
        let p = Persisted {
            desired: DesiredState {
                revision: 3,
                quarantined: true,
                comment: Some("IR-42: beaconing".into()),
                ..Default::default()
            },
            applied_revision: Some(3),
            applied_digest: None,
            transport: vec!["192.0.2.1:8443".parse().unwrap()],
            binding: None,
        };
        save(&dir, &p).unwrap();
        assert_eq!(mode(&path(&dir)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("var")), 0o700);
        assert_eq!(load(&dir).unwrap(), Some(p));
        // A file left with wider permissions is replaced by a private one.
        fs::set_permissions(path(&dir), fs::Permissions::from_mode(0o644)).unwrap();
        save(&dir, &Persisted::default()).unwrap();
        assert_eq!(mode(&path(&dir)), 0o600);
    }

    /// trial29 L-g: the private key is tightened too (the state directory already was).
    #[test]
    fn a_key_readable_by_others_is_tightened_and_only_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etc-cordon");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.join("agent.key");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let change = tighten_key_file(&key).unwrap().unwrap();
        assert!(change.ends_with("644 -> 600"), "{change}");
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o755,
            "the directory is left alone"
        );
        assert_eq!(tighten_key_file(&key).unwrap(), None, "nothing left to tighten");
        assert_eq!(tighten_key_file(&dir.join("missing")).unwrap(), None);
    }

    /// Trial6 LOW, the fault kind "a pre-existing state directory keeps wider
    /// permissions": it is tightened to 0700 and its files to 0600, each change named.
    #[test]
    fn pre_existing_state_dir_is_tightened_with_its_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("cordon.json"), "{}").unwrap();
        fs::set_permissions(dir.join("cordon.json"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(dir.join("private"), "x").unwrap();
        fs::set_permissions(dir.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
        let changed = tighten_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("cordon.json")), 0o600);
        assert_eq!(mode(&dir.join("private")), 0o600);
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert!(changed[0].contains("755 -> 700"), "{changed:?}");
        assert!(tighten_private_dir(&dir).unwrap().is_empty(), "nothing left to tighten");
        assert!(tighten_private_dir(&root.path().join("missing")).unwrap().is_empty());
    }

    /// Trial9 H-1: the same revision number with other content (a restored server
    /// database) is not "applied"; files without a digest fall back to the revision.
    #[test]
    fn same_revision_with_other_content_is_not_applied() {
        let mut p = Persisted {
            desired: DesiredState {
                revision: 3,
                quarantined: false,
                ..Default::default()
            },
            ..Default::default()
        };
        p.mark_applied();
        assert!(p.desired_applied());
        p.desired = DesiredState {
            revision: 3,
            quarantined: true,
            allow: vec!["https://edr.example.net".into()],
            ..Default::default()
        };
        assert!(!p.desired_applied(), "same number, other content");
        p.applied_digest = None;
        assert!(p.desired_applied(), "an older file: the revision decides");
    }
}

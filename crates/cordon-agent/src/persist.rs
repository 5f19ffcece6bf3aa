//! The last desired state received from the server, kept on disk so the agent enforces
//! it at boot without the server and stays quarantined while the server is unreachable.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cordon_proto::DesiredState;
use serde::{Deserialize, Serialize};

use crate::AgentError;

pub const FILE_NAME: &str = "agent-desired.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    pub desired: DesiredState,
    /// The revision last applied successfully (`None`: not yet).
    pub applied_revision: Option<i64>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

pub fn load(state_dir: &Path) -> Result<Option<Persisted>, AgentError> {
    let p = path(state_dir);
    match fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|source| AgentError::Corrupt {
                path: p.clone(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io("read", &p, e)),
    }
}

/// Atomic replace: temp file, fsync, rename.
pub fn save(state_dir: &Path, p: &Persisted) -> Result<(), AgentError> {
    let io = |e: std::io::Error| AgentError::io("save desired state in", state_dir, e);
    fs::create_dir_all(state_dir).map_err(io)?;
    let tmp = state_dir.join(format!(".{FILE_NAME}.tmp"));
    let json = serde_json::to_vec_pretty(p).map_err(AgentError::Encode)?;
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(&json).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path(state_dir)).map_err(io)?;
    Ok(())
}

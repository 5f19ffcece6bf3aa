//! `agent.toml`, written by `cordon agent enroll` and read by `cordon agent run`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::AgentError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// `https://HOST:PORT` of the server; always allowed while quarantined and used as
    /// the verification target.
    pub server: String,
    pub host_id: String,
    /// Client certificate, key (0600) and CA, PEM.
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Engine state (applied policy) and the agent's persisted desired state.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_table")]
    pub table: String,
    #[serde(default = "default_backend")]
    pub backend: String,
    /// `false` keeps the desired state in memory only and never touches the firewall
    /// (tests and benchmarks).
    #[serde(default = "default_true")]
    pub enforce: bool,
    /// Seconds between tamper checks.
    #[serde(default = "default_check")]
    pub check_interval_secs: f64,
    /// Seconds between status heartbeats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: f64,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(cordon_engine::DEFAULT_STATE_DIR)
}
fn default_table() -> String {
    cordon_policy::TableName::DEFAULT.to_string()
}
fn default_backend() -> String {
    "auto".into()
}
fn default_true() -> bool {
    true
}
fn default_check() -> f64 {
    1.0
}
fn default_heartbeat() -> f64 {
    15.0
}

impl AgentConfig {
    pub fn new(server: &str, host_id: &str, dir: &Path) -> Self {
        AgentConfig {
            server: server.trim_end_matches('/').to_string(),
            host_id: host_id.to_string(),
            cert: dir.join("agent.pem"),
            key: dir.join("agent.key"),
            ca: dir.join("ca.pem"),
            state_dir: default_state_dir(),
            table: default_table(),
            backend: default_backend(),
            enforce: true,
            check_interval_secs: default_check(),
            heartbeat_secs: default_heartbeat(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::io("read", path, e))?;
        let cfg: AgentConfig = toml::from_str(&text).map_err(|source| AgentError::ConfigParse {
            path: path.to_path_buf(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), AgentError> {
        cordon_policy::AllowSpec::parse_server(&self.server).map_err(|source| AgentError::ConfigServer {
            server: self.server.clone(),
            source,
        })?;
        if !self.server.starts_with("https://") {
            return Err(AgentError::Config(format!(
                "server {:?} must be an https:// URL",
                self.server
            )));
        }
        cordon_policy::TableName::new(&self.table).map_err(|e| AgentError::Config(e.to_string()))?;
        self.backend
            .parse::<cordon_firewall::BackendChoice>()
            .map_err(AgentError::Config)?;
        if !(self.check_interval_secs > 0.0 && self.heartbeat_secs > 0.0) {
            return Err(AgentError::Config("intervals must be positive".into()));
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        let text = toml::to_string_pretty(self).map_err(AgentError::ConfigEncode)?;
        std::fs::write(path, text).map_err(|e| AgentError::io("write", path, e))
    }
}

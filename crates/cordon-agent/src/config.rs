//! `agent.toml`, written by `cordon agent enroll` and read by `cordon agent run`.

use std::path::{Path, PathBuf};

use cordon_firewall::BackendChoice;
use cordon_policy::TableName;
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The agent's configuration file (TOML, written by `cordon agent enroll`, mode 0600).
/// Times are in seconds as floating-point numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// `https://HOST:PORT` of the server. With [`AgentConfig::servers`] it is the first of
    /// the list; it may be left empty when `servers` is given.
    #[serde(default)]
    pub server: String,
    /// More server URLs (replicas behind different addresses, a DR site), like
    /// Velociraptor's `server_urls`: every one is allowed while quarantined, and the agent
    /// fails over between them in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Explicit HTTP proxy for the agent's connection to the server (`http://HOST:PORT`).
    /// Without it the agent connects directly and ignores `HTTPS_PROXY`/`ALL_PROXY` in its
    /// environment. With it, the proxy's address and port are allowed while quarantined —
    /// and the proxy becomes a path to wherever the proxy lets the host go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// The host id the server assigned at enrollment.
    pub host_id: String,
    /// Client certificate, PEM.
    pub cert: PathBuf,
    /// Client private key, PEM, mode 0600.
    pub key: PathBuf,
    /// The server's CA certificate, PEM (pinned by fingerprint at enrollment).
    pub ca: PathBuf,
    /// Engine state (applied policy) and the agent's persisted desired state.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Firewall table name ([`TableName`]: a letter, then letters, digits or `_`, 24
    /// characters at most); `cordon` by default. Another name is refused when the file is
    /// read, the error naming the line and the rule.
    #[serde(default)]
    pub table: TableName,
    /// Firewall backend as `--backend` spells it ([`BackendChoice`]: `auto`, `netlink`,
    /// `nftables`, `iptables`, `pf`, `windows`/`wfp`, `netsh-ipsec`); `auto` by default.
    /// Another name is refused when the file is read, the error naming the line and the
    /// accepted names.
    #[serde(default)]
    pub backend: BackendChoice,
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
    /// Seconds allowed for a TCP connection to a server (or the proxy) before failing over.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: f64,
    /// Seconds between re-resolutions of the server names (also done at once whenever a
    /// connection to the server fails).
    #[serde(default = "default_resolve_interval")]
    pub resolve_interval_secs: f64,
    /// Seconds between retries of exceptions that did not resolve or apply, and of a
    /// desired state that could not be applied at all.
    #[serde(default = "default_retry")]
    pub retry_secs: f64,
    /// Seconds after applying within which the agent expects its own authenticated
    /// connection to the server to work; past that it warns and re-resolves (it never
    /// rolls the quarantine back).
    #[serde(default = "default_verify_timeout")]
    pub verify_timeout_secs: f64,
    /// Seconds between retries once the server refuses this agent (401/403: its host was
    /// revoked or deleted). The refusal is logged once, clearly; the agent keeps any
    /// quarantine in force and tries again this rarely (default 300).
    #[serde(default = "default_refused_retry")]
    pub refused_retry_secs: f64,
    /// Seconds the agent waits for a lock in its state directory (`.lock`,
    /// `.claims.lock`, the namespace registry's) held by another Cordon process (default
    /// 60, as `--lock-timeout`). A holder that is not a Cordon process is waited for only
    /// [`cordon_engine::FOREIGN_HOLDER_GRACE`] (3 s, at most this): then an ordered
    /// quarantine is applied without the lock and reported degraded naming the holder.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout_secs: f64,
}

fn default_state_dir() -> PathBuf {
    cordon_engine::paths::default_state_dir()
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
fn default_connect_timeout() -> f64 {
    5.0
}
fn default_resolve_interval() -> f64 {
    60.0
}
fn default_retry() -> f64 {
    5.0
}
fn default_verify_timeout() -> f64 {
    10.0
}
fn default_refused_retry() -> f64 {
    300.0
}
fn default_lock_timeout() -> f64 {
    cordon_engine::DEFAULT_LOCK_TIMEOUT.as_secs_f64()
}

impl AgentConfig {
    /// A configuration for `server` and `host_id` with the certificate, key and CA in
    /// `dir` (`agent.pem`, `agent.key`, `ca.pem`) and every other field at its default.
    pub fn new(server: &str, host_id: &str, dir: &Path) -> Self {
        AgentConfig {
            server: server.trim_end_matches('/').to_string(),
            servers: Vec::new(),
            proxy: None,
            host_id: host_id.to_string(),
            cert: dir.join("agent.pem"),
            key: dir.join("agent.key"),
            ca: dir.join("ca.pem"),
            state_dir: default_state_dir(),
            table: TableName::default(),
            backend: BackendChoice::Auto,
            enforce: true,
            check_interval_secs: default_check(),
            heartbeat_secs: default_heartbeat(),
            connect_timeout_secs: default_connect_timeout(),
            resolve_interval_secs: default_resolve_interval(),
            retry_secs: default_retry(),
            verify_timeout_secs: default_verify_timeout(),
            refused_retry_secs: default_refused_retry(),
            lock_timeout_secs: default_lock_timeout(),
        }
    }

    /// Every server URL in failover order: `server` first (if set), then `servers`,
    /// without duplicates or trailing slashes.
    pub fn server_urls(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in std::iter::once(&self.server).chain(&self.servers) {
            let u = u.trim().trim_end_matches('/').to_string();
            if !u.is_empty() && !out.contains(&u) {
                out.push(u);
            }
        }
        out
    }

    /// Reads and validates the configuration file at `path`.
    ///
    /// # Errors
    /// [`AgentError::Io`] when it cannot be read, [`AgentError::ConfigParse`] when it is
    /// not TOML of this shape, and what [`AgentConfig::validate`] returns.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::io("read", path, e))?;
        let cfg: AgentConfig = toml::from_str(&text).map_err(|source| AgentError::ConfigParse {
            path: path.to_path_buf(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values without touching the network or the firewall.
    ///
    /// # Errors
    /// [`AgentError::Config`] when there is no server, a server is not `https://`, or a
    /// time is out of its range ([`AgentConfig::timers`]: the message names the field and
    /// the range); [`AgentError::OwnTransport`] when the proxy is not `http://HOST:PORT`;
    /// [`AgentError::ConfigServer`] when a server URL does not parse. (The table and the
    /// backend are typed: a bad one does not read at all, [`AgentConfig::load`].)
    pub fn validate(&self) -> Result<(), AgentError> {
        let urls = self.server_urls();
        if urls.is_empty() {
            return Err(AgentError::Config(
                "no server: set `server = \"https://HOST:PORT\"` or `servers = [...]`".into(),
            ));
        }
        for url in &urls {
            cordon_policy::AllowSpec::parse_server(url).map_err(|source| AgentError::ConfigServer {
                server: url.clone(),
                source,
            })?;
            if !url.starts_with("https://") {
                return Err(AgentError::Config(format!("server {url:?} must be an https:// URL")));
            }
        }
        if let Some(p) = &self.proxy {
            crate::plan::parse_proxy(p)?;
        }
        for (field, value, (min, max)) in self.timers() {
            if !(value.is_finite() && value >= min && value <= max) {
                return Err(AgentError::Config(format!(
                    "{field} = {value} is out of range: give seconds from {min} to {max}"
                )));
            }
        }
        Ok(())
    }

    /// Every interval and timeout of the file with its value and its allowed range in
    /// seconds (inclusive). The upper bounds keep any timer the agent reports or waits on
    /// meaningful: a `heartbeat_secs` of 1e12 would make "offline after 3 heartbeats" mean
    /// never ([`cordon_proto::MAX_HEARTBEAT_MS`] is the server's own maximum); the lower
    /// bounds keep the agent from spinning.
    pub fn timers(&self) -> [(&'static str, f64, (f64, f64)); 8] {
        let max_heartbeat = cordon_proto::MAX_HEARTBEAT_MS as f64 / 1000.0;
        [
            ("check_interval_secs", self.check_interval_secs, (0.05, 3600.0)),
            ("heartbeat_secs", self.heartbeat_secs, (0.1, max_heartbeat)),
            ("connect_timeout_secs", self.connect_timeout_secs, (0.1, 300.0)),
            ("resolve_interval_secs", self.resolve_interval_secs, (0.5, 3600.0)),
            ("retry_secs", self.retry_secs, (0.1, 3600.0)),
            ("verify_timeout_secs", self.verify_timeout_secs, (0.1, 3600.0)),
            ("refused_retry_secs", self.refused_retry_secs, (1.0, 86400.0)),
            ("lock_timeout_secs", self.lock_timeout_secs, (0.1, 3600.0)),
        ]
    }

    /// Writes the config (0600: it names the key and the proxy).
    ///
    /// # Errors
    /// [`AgentError::ConfigEncode`] when the config cannot be encoded as TOML,
    /// [`AgentError::Io`] naming the file when it cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        let text = toml::to_string_pretty(self).map_err(AgentError::ConfigEncode)?;
        crate::persist::write_private(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

    use super::*;

    /// `agent.toml` as `cordon agent enroll` writes it, with `extra` lines appended.
    fn load_with(extra: &str) -> Result<AgentConfig, AgentError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let text = format!(
            "server = \"https://cordon.example:8443\"\nhost_id = \"h1\"\ncert = \"a.pem\"\nkey = \"a.key\"\nca = \"ca.pem\"\n{extra}"
        );
        std::fs::write(&path, text).unwrap();
        AgentConfig::load(&path)
    }

    /// The whole error as the CLI prints it (every cause).
    fn chain(e: &AgentError) -> String {
        let mut out = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            out.push_str(&format!(": {c}"));
            cause = c.source();
        }
        out
    }

    /// trial17 MED-4, the fault kind: an interval the agent reports or waits on accepted
    /// whatever its size (`heartbeat_secs = 1e12` hid a dead agent from the server). Every
    /// interval has a range; out of it the file is refused naming the field and the range.
    #[test]
    fn every_interval_is_bounded_and_a_bad_one_names_the_field_and_the_range() {
        for (line, field) in [
            ("heartbeat_secs = 1e12", "heartbeat_secs"),
            ("heartbeat_secs = 601", "heartbeat_secs"),
            ("check_interval_secs = 1e9", "check_interval_secs"),
            ("connect_timeout_secs = 1e6", "connect_timeout_secs"),
            ("resolve_interval_secs = 1e7", "resolve_interval_secs"),
            ("retry_secs = 0.0", "retry_secs"),
            ("verify_timeout_secs = -1.0", "verify_timeout_secs"),
            ("refused_retry_secs = inf", "refused_retry_secs"),
            ("heartbeat_secs = nan", "heartbeat_secs"),
        ] {
            let e = load_with(&format!("{line}\n")).unwrap_err();
            assert!(matches!(e, AgentError::Config(_)), "{line}: {e:?}");
            let text = chain(&e);
            assert!(
                text.contains(field) && text.contains("from") && text.contains(" to "),
                "{line}: {text}"
            );
        }
        let e = load_with("heartbeat_secs = 1e12\n").unwrap_err();
        assert!(chain(&e).contains("from 0.1 to 600"), "{}", chain(&e));
        let ok = load_with("heartbeat_secs = 600\nrefused_retry_secs = 86400\n").unwrap();
        assert_eq!(ok.heartbeat_secs, 600.0);
        // The defaults are inside every range.
        let d = AgentConfig::new("https://cordon.example:8443", "h1", Path::new("/d"));
        for (field, value, (min, max)) in d.timers() {
            assert!(value >= min && value <= max, "{field}");
        }
    }

    /// The fault kind: a typed config field that reads a bad value without naming the
    /// field and what it accepts (the agent then fails later, far from the file).
    #[test]
    fn a_bad_table_or_backend_names_the_field_and_what_it_accepts() {
        let e = load_with("backend = \"ebpf\"\n").unwrap_err();
        assert!(matches!(e, AgentError::ConfigParse { .. }), "{e:?}");
        let text = chain(&e);
        assert!(text.contains("backend") && text.contains("ebpf"), "{text}");
        assert!(
            text.contains("auto") && text.contains("netlink") && text.contains("netsh-ipsec"),
            "{text}"
        );
        let e = load_with("table = \"9tables\"\n").unwrap_err();
        let text = chain(&e);
        assert!(
            text.contains("table") && text.contains("9tables") && text.contains("letter"),
            "{text}"
        );
    }

    /// Typed fields read and write the names the file always had; absent means the
    /// defaults.
    #[test]
    fn table_and_backend_read_and_write_their_names() {
        let c = load_with("").unwrap();
        assert_eq!((c.table.as_str(), c.backend), ("cordon", BackendChoice::Auto));
        let c = load_with("table = \"corp\"\nbackend = \"nft\"\n").unwrap();
        assert_eq!(c.table.as_str(), "corp");
        assert_eq!(
            c.backend,
            BackendChoice::Exactly(cordon_firewall::BackendKind::Nftables)
        );
        let text = toml::to_string_pretty(&c).unwrap();
        assert!(
            text.contains("table = \"corp\"") && text.contains("backend = \"nftables\""),
            "{text}"
        );
        let back: AgentConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}

//! `cordon server init|token create|run`: the operations behind the CLI, usable from tests.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cordon_proto::{EnrollTokenCreated, TokenCreated};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::pki::{self, Ca, PkiError};
use crate::store::{Store, StoreError};
use crate::{router, AppState};
use cordon_server_core::service::{audit, tokens};

/// Failures of `cordon server init|token create|run`.
#[derive(Debug, Error)]
pub enum RunError {
    /// The CA or server certificate could not be made or read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The database could not be opened, migrated or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request itself is refused (a bad or look-alike label, a lifetime out of
    /// range): nothing was written.
    #[error(transparent)]
    Invalid(cordon_server_core::ApiError),
    /// `cordon server init` on a database a deployment already uses (trial28 LOW-8):
    /// nothing was written, no CA made.
    #[error(
        "the database already holds a deployment ({tokens} API token(s), audit log up to record {last}): \
         `server init` makes a new deployment and wrote nothing; for a replica of it, copy ca.pem, ca.key, \
         server.pem and server.key from the first server's data directory and run `cordon server run` with \
         the same --db"
    )]
    Initialised {
        /// API tokens the database holds.
        tokens: i64,
        /// The last audit record's id.
        last: i64,
    },
    /// A signed audit checkpoint could not be written (an offline command's); the
    /// cause, not an HTTP answer (review13 MED-2: it printed "internal (500): internal
    /// error; the server log has the cause" to a CLI user).
    #[error("cannot write the audit checkpoint")]
    Audit(#[source] cordon_server_core::service::ServiceError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Pause between two periodic signed audit checkpoints (written only when the log moved).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(600);

/// Pause between two readings of the audit chain head (see
/// [`cordon_server_core::Store::note_audit_head`]).
pub const AUDIT_HEAD_EVERY: Duration = Duration::from_secs(2);

/// `sqlite://DATA/cordon.db` unless a URL is given.
pub fn db_url(data_dir: &Path, db: Option<&str>) -> String {
    match db {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", data_dir.join("cordon.db").display()),
    }
}

/// What `cordon server init` made.
#[derive(Debug, Clone)]
pub struct InitResult {
    /// SHA-256 fingerprint of the new CA (agents pin it).
    pub ca_fingerprint: String,
    /// The bootstrap admin token (its secret is shown once).
    pub admin: TokenCreated,
    /// The files written.
    pub files: Vec<PathBuf>,
}

/// Creates the CA, the server certificate, the database and a bootstrap admin token.
///
/// # Errors
/// [`RunError::Initialised`] when the database already holds a deployment (checked
/// before anything is written: no CA is left behind); the CA's and the store's errors.
pub async fn init(data_dir: &Path, db: &str, names: &[String], ips: &[IpAddr]) -> Result<InitResult, RunError> {
    // A database a deployment uses is refused before the CA is made (trial28 LOW-8: a
    // fresh CA left behind was the first step to a server of another CA on it). A SQLite
    // file that does not exist yet is new.
    let sqlite_path = db.strip_prefix("sqlite://").or_else(|| db.strip_prefix("sqlite:"));
    let existing = sqlite_path.is_none_or(|p| Path::new(p.split('?').next().unwrap_or(p)).exists());
    if existing {
        let store = Store::connect(db).await?;
        if let Some((tokens, last)) = audit::deployment_in_use(&store).await? {
            return Err(RunError::Initialised { tokens, last });
        }
    }
    let out = pki::init(data_dir, names, ips)?;
    // With the CA just made, so the admin token's record carries the deployment's mark
    // (`m1:`, as every server writes), not the legacy per-process one (trial14 LOW).
    let ca = Arc::new(Ca::load(data_dir)?);
    let store = Arc::new(Store::connect(db).await?);
    audit::bind_deployment_ca(&store, &ca).await?;
    let state = AppState::new(store, Some(ca));
    let admin = tokens::bootstrap_admin(&state, "cordon server init", "admin").await?;
    Ok(InitResult {
        ca_fingerprint: out.ca_fingerprint,
        admin,
        files: out.files,
    })
}

/// Creates a one-time enrollment token straight in the database at `db`
/// (`cordon server token create`), valid `ttl_secs`, giving the host `labels`. It writes
/// to the audit log like a short server run (the CA key in `data_dir` signs): a start
/// checkpoint, the token's record, a shutdown checkpoint — so a record it adds while no
/// server runs is not taken for one added behind the servers' back. The labels and
/// lifetime get the API's own check first
/// ([`cordon_server_core::service::tokens::enroll_request`]).
///
/// # Errors
/// [`RunError::Invalid`] for a refused label or lifetime (nothing written); the store's,
/// the CA's or the audit checkpoint's errors otherwise.
pub async fn create_enroll_token(
    data_dir: &Path,
    db: &str,
    labels: &[String],
    ttl_secs: i64,
) -> Result<EnrollTokenCreated, RunError> {
    let store = Arc::new(Store::connect(db).await?);
    let known = tokens::known_labels(&AppState::new(store.clone(), None)).await?;
    let (labels, ttl_secs) = tokens::enroll_request(labels, &known, Some(ttl_secs)).map_err(RunError::Invalid)?;
    let labels = labels.as_slice();
    let ca = Arc::new(Ca::load(data_dir)?);
    audit::bind_deployment_ca(&store, &ca).await?;
    let mut state = AppState::new(store.clone(), Some(ca));
    let lock = WriterLock::take(data_dir);
    let anchor = data_dir.join(audit::ANCHOR_FILE);
    let status = audit::load_anchor(&state, &anchor);
    state.audit_anchor = Some(anchor);
    audit::start_checkpoint(&state, status.start_facts(lock.sole()))
        .await
        .map_err(RunError::Audit)?;
    let created = tokens::create_enroll_offline(&state, "cordon server token create", labels, ttl_secs).await;
    let closed = audit::shutdown_checkpoint(&state).await;
    if let Ok(Some((_, record))) = &closed {
        deliver_shutdown_checkpoint(&state, *record).await;
    }
    drop(lock);
    let created = created?;
    closed.map_err(RunError::Audit)?;
    Ok(created)
}

/// Longest wait, at an orderly stop, for the shutdown audit checkpoint to reach the
/// notification targets subscribed to `audit_checkpoint`.
pub const SHUTDOWN_DELIVERY_WAIT: Duration = Duration::from_secs(5);

/// Sends the shutdown checkpoint (audit record `record`) to the notification targets
/// before the process exits (trial7 MED 2: it used to leave the database only at the
/// next start), waiting at most [`SHUTDOWN_DELIVERY_WAIT`]; logs a warning naming each
/// target (id and URL origin) it could not reach — the copy then stays queued and is
/// sent at the next start.
pub async fn deliver_shutdown_checkpoint(state: &AppState, record: i64) {
    crate::automation::service::deliver_now(state, record, SHUTDOWN_DELIVERY_WAIT).await
}

/// Name of the lock file in the data directory that every process writing the audit log
/// from it holds shared while it runs (see [`WriterLock`]).
pub const WRITER_LOCK_FILE: &str = "audit-writer.lock";

/// A shared lock on the data directory's [`WRITER_LOCK_FILE`], held while this process
/// writes the audit log. Taken exclusively first: when that succeeds no other process
/// uses the data directory, so the writer named in its anchor file (the previous run)
/// has ended even if its `audit_writers` row still looks live (a crash), and the start
/// drops that row. Hand-written with `flock(2)` (as `cordon-engine`'s state lock): no
/// locking crate is in the tree for the server.
pub struct WriterLock {
    #[cfg(unix)]
    _file: Option<std::fs::File>,
    sole: bool,
}

impl WriterLock {
    /// Takes the lock (never fails: without it the previous run's row is kept, which
    /// only makes the start more careful — it then treats that run as live).
    pub fn take(data_dir: &Path) -> WriterLock {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(data_dir.join(WRITER_LOCK_FILE));
            let Ok(file) = file else {
                return WriterLock {
                    _file: None,
                    sole: false,
                };
            };
            // SAFETY: the descriptor is valid for the lifetime of `file`; flock only locks it.
            let sole = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            // SAFETY: as above; converting to (or waiting for) a shared lock.
            let shared = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) } == 0;
            WriterLock {
                _file: shared.then_some(file),
                sole,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = data_dir;
            WriterLock { sole: false }
        }
    }

    /// No other process held the data directory when the lock was taken.
    pub fn sole(&self) -> bool {
        self.sole
    }
}

/// How `cordon server run` serves.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Address to listen on (TLS).
    pub listen: SocketAddr,
    /// Database URL (`sqlite://…` or `postgres://…`).
    pub db: String,
    /// Directory of the CA and the server certificate.
    pub data_dir: PathBuf,
    /// Pause between two sweeps for expired quarantines.
    pub expiry_every: Duration,
    /// Longest agent long-poll.
    pub max_wait: Duration,
}

/// A started server: its address, state, and tasks (dropping aborts nothing; call
/// [`Running::stop`]).
pub struct Running {
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
    /// The shared state (tests reach the store through it).
    pub state: AppState,
    tasks: Vec<JoinHandle<()>>,
    /// Tasks that end on their own when `shutdown` turns true, between two steps (the
    /// listener once its connections closed, the audit head watcher, the checkpoint
    /// timer): never aborted in the middle of a write.
    graceful: Vec<JoinHandle<()>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Held while the server runs (see [`WriterLock`]).
    _writer_lock: WriterLock,
}

impl Running {
    /// Stops accepting, closes every open connection, stops the expiry task.
    pub fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.into_iter().chain(self.graceful) {
            t.abort();
        }
    }

    /// An orderly stop: [`Running::stop`], then a signed audit checkpoint (occasion
    /// `shutdown`) of everything written, kept in the data directory too, so the log
    /// cannot be rewritten or cut while the server is down without verification
    /// noticing, and delivered to the notification targets subscribed to
    /// `audit_checkpoint` before this returns ([`deliver_shutdown_checkpoint`], at most
    /// [`SHUTDOWN_DELIVERY_WAIT`]). A failure to write or deliver it is logged.
    pub async fn shutdown(mut self) {
        let state = self.state.clone();
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        // Wait until every task has ended — the aborted ones dropped at their next await
        // point (a transaction not committed rolls back), the graceful ones (connections,
        // the head watcher's writer row, the checkpoint timer) after the step they were
        // in: the shutdown checkpoint must be the last record this server writes, and no
        // heartbeat may put its writer row back after it (a fixed pause did not ensure
        // that under load).
        for t in tasks.into_iter().chain(std::mem::take(&mut self.graceful)) {
            let _ = t.await;
        }
        match audit::shutdown_checkpoint(&state).await {
            Ok(Some((_, record))) => deliver_shutdown_checkpoint(&state, record).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %cordon_server_core::error::chain(&e), "cannot write the shutdown audit checkpoint")
            }
        }
        drop(self);
    }
}

/// The owner of a data directory that root must not write to (trial26 M2): its uid and,
/// when `/etc/passwd` names it, its user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignOwner {
    /// The directory's owner (`st_uid`).
    pub uid: u32,
    /// Its name in `/etc/passwd`, if listed there (a system user such as
    /// `cordon-server` is).
    pub name: Option<String>,
}

/// `Some(dir_uid)` when a process with effective uid `euid` is root (0) and the data
/// directory belongs to another user (`dir_uid` ≠ 0): root would create files there
/// (the audit anchor, the writer lock, the database, keys) with mode 0600 that the owner
/// — the user the server runs as — then cannot read. `None` otherwise (not root, or a
/// root-owned directory: a hand install that runs the server as root).
pub fn root_on_foreign_dir(euid: u32, dir_uid: u32) -> Option<u32> {
    (euid == 0 && dir_uid != 0).then_some(dir_uid)
}

/// The user name of `uid` in the text of an `/etc/passwd` file (`name:x:uid:…` lines);
/// `None` when no line names it.
pub fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (id.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// The owner of `data_dir` when this process runs as root and the directory exists and
/// belongs to another user ([`root_on_foreign_dir`]); `None` otherwise (also when the
/// directory does not exist yet: `server init` creates it as the caller).
#[cfg(unix)]
pub fn foreign_data_dir_owner(data_dir: &Path) -> Option<ForeignOwner> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let uid = root_on_foreign_dir(euid, std::fs::metadata(data_dir).ok()?.uid())?;
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| passwd_name(&p, uid));
    Some(ForeignOwner { uid, name })
}

/// Not Unix: no owner check.
#[cfg(not(unix))]
pub fn foreign_data_dir_owner(_data_dir: &Path) -> Option<ForeignOwner> {
    None
}

/// Raises this process's soft limit of open files to its hard limit (every connected
/// agent holds a socket; the systemd unit sets the hard limit with `LimitNOFILE=`).
/// Returns the soft limit now in force.
///
/// # Errors
/// `getrlimit`/`setrlimit` failing (the OS error).
#[cfg(unix)]
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid local struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the valid local struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
    Ok(lim.rlim_cur as u64)
}

/// Audit retention (issue 17): every hour, archives the records older than `max_age` to a
/// file in `dir` and deletes them ([`cordon_server_core::service::audit::retain`]).
pub fn spawn_audit_retention(state: AppState, max_age: Duration, dir: PathBuf) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        let age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        loop {
            tick.tick().await;
            if let Err(e) = cordon_server_core::service::audit::retain(&state, age_ms, &dir).await {
                tracing::warn!(error = %cordon_server_core::error::chain(&e), "audit retention failed; nothing was deleted");
            }
        }
    })
}

/// Binds, starts serving and the expiry task, and returns at once.
///
/// # Errors
/// [`RunError`]: the database, the CA or TLS files, another deployment's CA, the
/// listening socket.
pub async fn start(cfg: &RunConfig) -> Result<Running, RunError> {
    start_with_limits(cfg, crate::tls::ConnLimits::default()).await
}

/// [`start`] with explicit connection limits.
///
/// # Errors
/// As [`start`].
pub async fn start_with_limits(cfg: &RunConfig, limits: crate::tls::ConnLimits) -> Result<Running, RunError> {
    #[cfg(unix)]
    match raise_nofile_limit() {
        Ok(n) => tracing::debug!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    // The port first (trial33 LOW-D: a start that could not bind wrote its start
    // checkpoint, then exited without a shutdown one, so the log read as the crash of a
    // server that never served) — bound, not yet listening: a TCP connection is accepted
    // by the kernel only once the server serves (a listening socket here made clients'
    // TLS handshakes time out during the start's database and audit work).
    let reserved = reserve(cfg.listen).map_err(|source| RunError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let store = Arc::new(Store::connect(&cfg.db).await?);
    let ca = Arc::new(Ca::load(&cfg.data_dir)?);
    // A server of another deployment's CA writes nothing here (trial28 MED-2: it signed
    // its checkpoints into this log, which then never verified again).
    audit::bind_deployment_ca(&store, &ca).await?;
    let tls = crate::tls::server_config(&cfg.data_dir)?;
    let mut state = AppState::new(store, Some(ca));
    state.max_wait = cfg.max_wait;
    // Tokens whose names predate the uniqueness check (issue 17): kept, flagged, said.
    tokens::warn_flagged_names(&state).await;
    // Token rows made before this version's marks are bound now, while their creation
    // records are in the log (trial35 MED-4); a row that does not fit is refused at use.
    tokens::bind_unmarked(&state).await;
    // Signed audit checkpoints (issue 17): a record in the log, a line in the server log
    // and the data directory's anchor file, at start (before serving), every ten minutes
    // while the log moves, and at an orderly shutdown. The start checkpoint names the
    // previous run's last checkpoint (from the anchor file).
    // The start checkpoint also registers this process as a writer of the log and signs
    // how the log moved while no server watched it (records after the last server's
    // orderly stop, the crash window, a missing anchor file).
    let writer_lock = WriterLock::take(&cfg.data_dir);
    let anchor = cfg.data_dir.join(audit::ANCHOR_FILE);
    let status = audit::load_anchor(&state, &anchor);
    state.audit_anchor = Some(anchor);
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    match audit::start_checkpoint(&state, status.start_facts(writer_lock.sole())).await {
        Ok(_) => {}
        // The log cannot be written (trial28 MED-3/MED-4): the server serves reads and
        // verification, and refuses every change until the log is repaired.
        Err(e) if e.is_audit_tampered() => tracing::error!(reason = %cordon_server_core::error::chain(&e),
            "audit log TAMPERED: the start checkpoint cannot be written; this server serves reads and `cordon audit verify`, but refuses every change (503 audit_tampered) until the audit log is repaired (docs/server.md, \"Recovering the audit chain head\")"),
        Err(e) => tracing::error!(error = %cordon_server_core::error::chain(&e),
            "cannot write the start audit checkpoint: this start is not vouched for in the audit log"),
    }
    // Verify the whole chain once, in the background: listings then say when it was
    // found tampered (AuditList.chain_alert), and the server log has the verdict.
    let first_verify = {
        let state = state.clone();
        tokio::spawn(async move { audit::verify_at_start(&state).await })
    };
    let checkpoints = {
        let state = state.clone();
        let mut stop = rx.clone();
        tokio::spawn(async move {
            let every = CHECKPOINT_EVERY;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|v| *v) => return,
                }
                if let Err(e) = audit::checkpoint(&state, audit::occasion::INTERVAL).await {
                    tracing::warn!(error = %cordon_server_core::error::chain(&e), "cannot write an audit checkpoint");
                }
            }
        })
    };
    // The newest audit head this process saw, every few seconds: a tail cut while the
    // server runs is then named by verification even when the head row was rewound.
    let head_watch = {
        let state = state.clone();
        let mut stop = rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(AUDIT_HEAD_EVERY);
            let mut watch = audit::HeadWatch::new(&state);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|v| *v) => return,
                }
                audit::watch_head(&state, &mut watch).await;
            }
        })
    };
    let listener = listen_on(reserved).map_err(|source| RunError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| RunError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let app = router(state.clone());
    let serve = tokio::spawn(crate::tls::serve_with(listener, tls, app, rx, limits));
    let automation = crate::automation::spawn(&state, Default::default());
    let expiry = tokio::spawn(crate::expiry::run(state.clone(), cfg.expiry_every));
    let mut tasks = vec![expiry, first_verify];
    if cfg.db.starts_with("postgres") {
        // Wake-ups from the other replicas (changes made there reach agents here).
        tasks.push(crate::wake::start(&cfg.db, state.hub.clone()).await?);
    }
    tracing::info!(%addr, "cordon server listening");
    Ok(Running {
        addr,
        state,
        tasks: tasks.into_iter().chain(automation).collect(),
        graceful: vec![serve, checkpoints, head_watch],
        shutdown,
        _writer_lock: writer_lock,
    })
}
/// Binds the listening socket. An unspecified IPv6 address (`[::]`) is bound dual-stack
/// (`IPV6_V6ONLY` off), so `--listen [::]:8443` accepts IPv4 too whatever the host's
/// `net.ipv6.bindv6only` default; otherwise as `tokio::net::TcpListener::bind` does
/// (`SO_REUSEADDR` on Unix), with a listen backlog of
/// [`LISTEN_BACKLOG`](crate::tls::LISTEN_BACKLOG) (16,384; Linux caps it at
/// `net.core.somaxconn`): the connections that wait while every unauthenticated slot is
/// taken (a fleet reconnecting at once) wait there.
///
/// # Errors
/// The socket calls' errors (address in use, IPv6 unavailable, not permitted).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    listen_on(reserve(addr)?)
}

/// The socket of [`bind`], bound to `addr` but not listening: the address is taken (a
/// second server fails here with "address in use") while no connection is accepted yet.
///
/// # Errors
/// As [`bind`].
pub fn reserve(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        sock.set_only_v6(false)?;
    }
    #[cfg(unix)]
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock)
}

/// Starts listening on a [`reserve`]d socket (backlog as [`bind`]).
///
/// # Errors
/// `listen(2)`'s error, or registering the socket with the runtime.
pub fn listen_on(sock: socket2::Socket) -> std::io::Result<TcpListener> {
    sock.listen(crate::tls::LISTEN_BACKLOG)?;
    TcpListener::from_std(sock.into())
}

#[cfg(test)]
mod bind_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Fix14c item 5: `--listen [::]:8443` (the default and the units') must accept IPv4
    /// as well, also where `net.ipv6.bindv6only` is 1. Loopback only.
    #[tokio::test]
    async fn unspecified_ipv6_listens_dual_stack() {
        let Ok(l) = bind("[::]:0".parse().unwrap()) else {
            panic!("cannot bind [::]:0: IPv6 unavailable on this machine");
        };
        let port = l.local_addr().unwrap().port();
        let v4 = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(v4.is_ok(), "IPv4 to [::]:{port}: {v4:?}");
        let v6 = tokio::net::TcpStream::connect(("::1", port)).await;
        assert!(v6.is_ok(), "IPv6 to [::]:{port}: {v6:?}");
    }
}

#[cfg(test)]
mod owner_tests {
    use super::*;

    /// trial26 M2: root on a data directory of another user is what is refused; root on
    /// its own directory, and any other user, are not.
    #[test]
    fn root_is_refused_only_on_another_users_directory() {
        assert_eq!(root_on_foreign_dir(0, 999), Some(999));
        assert_eq!(root_on_foreign_dir(0, 0), None);
        assert_eq!(root_on_foreign_dir(999, 999), None);
        assert_eq!(root_on_foreign_dir(1000, 0), None);
    }

    #[test]
    fn the_owner_is_named_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      cordon-server:x:999:999:Cordon management server:/var/lib/cordon-server:/usr/sbin/nologin\n\
                      broken\n";
        assert_eq!(passwd_name(passwd, 999).as_deref(), Some("cordon-server"));
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 998), None);
        assert_eq!(passwd_name("", 0), None);
    }
}

#[cfg(test)]
mod layering_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// The store calls in `code` (Rust source): a `store` field read (`state.store`) or a
    /// method called on a store (`store.x(…)`), cloning the handle aside
    /// ([`cordon_server_core::layering::store_uses`]).
    fn store_calls(code: &str) -> Vec<String> {
        cordon_server_core::layering::store_uses(code)
            .into_iter()
            .filter(|u| u.field || u.method.as_deref() != Some("clone"))
            .map(|u| format!("run.rs:{}: {}", u.line, u.text))
            .collect()
    }

    /// Issue 13: the server's background tasks (expiry, notifications, checkpoints, the
    /// audit head, the start verification) and offline commands go through the service
    /// layer as the REST handlers do; `run.rs` opens the store and hands it on, and holds
    /// no store call of its own (as `wake::tests::sql_lives_only_behind_the_store` keeps
    /// SQL behind the store).
    #[test]
    fn run_holds_no_store_calls() {
        let text = include_str!("run.rs");
        let code = text.split("#[cfg(test)]").next().unwrap();
        assert!(
            code.contains("pub async fn start_with_limits"),
            "the check reads run.rs"
        );
        let found = store_calls(code);
        assert!(
            found.is_empty(),
            "store calls in run.rs (use cordon_server_core::service): {found:#?}"
        );
        // The check itself finds what it is for.
        let old = "let admin = store\n    .create_api_token(\"x\", \"admin\", Role::Admin)\n";
        assert_eq!(store_calls(old).len(), 1);
        assert_eq!(
            store_calls("if let Err(e) = state.store.writer_heartbeat().await {").len(),
            1
        );
        assert_eq!(store_calls("deliver(&state.store, record)").len(), 1);
        assert!(store_calls("let s = AppState::new(store.clone(), None);").is_empty());
        assert!(store_calls("let st = Store::connect(db); restore.x(); store_dir.y()").is_empty());
    }
}

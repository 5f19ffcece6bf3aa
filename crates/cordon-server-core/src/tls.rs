//! Serving the router over rustls. Client certificates are optional at the TLS layer
//! (enrollment and the API use none) but, when presented, must chain to our CA; the
//! host id from a verified certificate is attached to every request on that connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify, Semaphore};
use tokio_rustls::LazyConfigAcceptor;
use tower::ServiceExt;

use crate::auth::{PeerAddr, PeerIdentity};
use crate::pki::{common_name, PkiError, CA_CERT, SERVER_CERT, SERVER_KEY};

/// The rustls crypto provider every server TLS config uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, PkiError> {
    let pem = std::fs::read(path).map_err(|source| PkiError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PkiError::Pem {
            path: path.to_path_buf(),
            source,
        })
}

fn load_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, PkiError> {
    let pem = std::fs::read(path).map_err(|source| PkiError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    <rustls_pki_types::PrivateKeyDer as rustls_pki_types::pem::PemObject>::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            PkiError::Cert(format!("{} holds no private key", path.display()))
        }
        source => PkiError::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// TLS configuration from the files `cordon server init` wrote into `data_dir`.
pub fn server_config(data_dir: &Path) -> Result<Arc<ServerConfig>, PkiError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(&data_dir.join(CA_CERT))? {
        roots.add(c).map_err(PkiError::Tls)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(PkiError::Verifier)?;
    let chain = load_certs(&data_dir.join(SERVER_CERT))?;
    let key = load_key(&data_dir.join(SERVER_KEY))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(PkiError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(PkiError::Tls)?;
    // HTTP/2 first: an agent's long-poll and its reports share one connection (with
    // HTTP/1.1 each agent held two, and 10,000 agents alone reached a 20,000-descriptor
    // limit). Clients that offer no ALPN (the CLI, automation) get HTTP/1.1.
    cfg.alpn_protocols = vec![H2.to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The ALPN name of HTTP/2.
const H2: &[u8] = b"h2";

/// Most concurrent requests (streams) on one HTTP/2 connection. An agent needs two (its
/// long-poll and a report); a browser on the console a few more.
const MAX_STREAMS: u32 = 64;

/// How long an HTTP/2 connection closed for idleness may take to say goodbye.
const H2_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connection limits: what keeps slow, idle or half-open clients from holding the
/// server's sockets (and file descriptors) forever.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest wait for a complete request header on a connection without a client
    /// certificate, counted from when the server starts reading it: it bounds a
    /// half-sent header and an idle keep-alive connection alike.
    pub header_read_timeout: Duration,
    /// The same for agents (client certificate): long enough that an agent's idle
    /// reporting connection survives between heartbeats. On HTTP/2, where hyper has no
    /// header-read timeout, both are idle timeouts: a connection with no request in
    /// flight for this long is closed (GOAWAY).
    pub agent_header_read_timeout: Duration,
    /// Most connections without a client certificate at once (handshaking ones
    /// included). A new one beyond it evicts the oldest that is not serving a request
    /// and not protected (see `handshake_protect`), so slow clients cannot lock out a
    /// legitimate caller; agents are not counted, so the rest of the descriptor limit
    /// stays theirs. With none to evict, the server stops accepting: the new connection
    /// waits until one leaves or its protection ends, and the ones after it wait in the
    /// kernel's listen backlog ([`LISTEN_BACKLOG`]). Before, it was closed at once and
    /// its client backed off: 10,000 agents connecting at once were refused 87,961 times
    /// and took 90 s (issue 15).
    pub max_unauthenticated: usize,
    /// How long a connection whose TLS handshake is under way (its ClientHello arrived)
    /// cannot be evicted. Without it, a reconnect storm of more agents than
    /// `max_unauthenticated` (every agent after a server restart) evicted handshakes
    /// before they could finish, over and over, and almost no agent got through
    /// (issue 15: 1 of 10,000 in 120 s). The time counts from when the handshake gets
    /// one of the `max_handshakes` slots, not from its ClientHello: waiting for a slot
    /// costs the server nothing, and such a connection is not evicted either. A client
    /// that sends nothing is protected for as long from when it was accepted (a busy
    /// client may be slow to send its ClientHello); after that it goes first.
    pub handshake_protect: Duration,
    /// Most TLS handshakes computed at once; the others wait (ClientHello read, nothing
    /// computed) for a slot. Without it a reconnect storm ran up to `max_unauthenticated`
    /// handshakes at once, each took longer than `handshake_protect` on 2 cores, and
    /// newcomers evicted them when their protection ran out: work thrown away over and over
    /// (issue 15, 10,000 agents: 97,424 evictions and 11,631 failed handshakes in 100 s).
    pub max_handshakes: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            agent_header_read_timeout: Duration::from_secs(120),
            max_unauthenticated: 1024,
            handshake_protect: Duration::from_secs(3),
            max_handshakes: 64,
        }
    }
}

/// The listen backlog the server asks for: connections the kernel completes and holds
/// while the server does not accept (every unauthenticated slot protected, see
/// [`ConnLimits::max_unauthenticated`]), enough for a fleet of 16,384 agents
/// reconnecting at once. Linux caps it at `net.core.somaxconn` (4,096 by default since
/// Linux 5.4); beyond the backlog the kernel drops SYNs and the clients retransmit them
/// (after 1 s, then 3 s, …), which only delays them.
pub const LISTEN_BACKLOG: i32 = 16_384;

/// Longest wait of a connection held at the cap before the registry is looked at again:
/// a request ending or a queued handshake getting its slot is not announced, a
/// connection leaving is ([`Unauthenticated::room`]).
const RECHECK: Duration = Duration::from_millis(50);

/// The connections without a client certificate, oldest first.
struct Unauthenticated {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Slot>>,
    /// Origin of the [`Slot::phase`] times.
    epoch: Instant,
    /// Signalled when a connection leaves (room for one held at the cap).
    room: Notify,
}

impl Default for Unauthenticated {
    fn default() -> Self {
        Unauthenticated {
            next: AtomicU64::new(0),
            live: Mutex::new(BTreeMap::new()),
            epoch: Instant::now(),
            room: Notify::new(),
        }
    }
}

/// [`Slot::phase`]: no ClientHello yet.
const SILENT: u64 = 0;
/// [`Slot::phase`]: the ClientHello arrived and the handshake waits for one of the
/// [`ConnLimits::max_handshakes`] slots (nothing computed yet).
const QUEUED: u64 = 1;
/// [`Slot::phase`]: the handshake is over (HTTP from then on).
const DONE: u64 = 2;

struct Slot {
    /// Requests in flight on this connection.
    activity: Arc<Activity>,
    /// Where its TLS handshake is: [`SILENT`], [`QUEUED`], [`DONE`], or (any larger
    /// value) the [`Unauthenticated::stamp`] at which it got a handshake slot.
    phase: Arc<AtomicU64>,
    /// The [`Unauthenticated::stamp`] at which it was accepted.
    accepted: u64,
    evict: Option<oneshot::Sender<()>>,
}

/// A connection admitted to [`Unauthenticated`]: its id, its activity, its handshake
/// phase and the eviction signal.
type Admission = (u64, Arc<Activity>, Arc<AtomicU64>, oneshot::Receiver<()>);

impl Unauthenticated {
    /// Now, as a [`Slot::phase`] value (always above [`DONE`]).
    fn stamp(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 3) + 3
    }

    /// Registers a new connection; when `max` are registered, evicts the oldest one
    /// first that is serving no request and is either past its handshake (idle HTTP),
    /// silent (no ClientHello) for `protect` since it was accepted, or in a TLS handshake
    /// that got its slot at least `protect` ago; one waiting for a handshake slot is
    /// never evicted. `Err(wait)` when there is no such one: handshakes under way or
    /// queued finish instead of being cut, and the new connection is held (not
    /// refused) and admitted again after `wait` (the soonest end of a protection, at
    /// most [`RECHECK`]) or when a connection leaves ([`Unauthenticated::room`]).
    fn admit(&self, max: usize, protect: Duration) -> Result<Admission, Duration> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.stamp();
        if live.len() >= max {
            let protect = u64::try_from(protect.as_millis()).unwrap_or(u64::MAX);
            // Milliseconds until the soonest protection ends.
            let mut soonest = u64::try_from(RECHECK.as_millis()).unwrap_or(u64::MAX);
            let victim = live
                .iter()
                .find(|(_, s)| {
                    let left = match s.phase.load(Ordering::Relaxed) {
                        DONE => 0,
                        QUEUED => u64::MAX,
                        // Not even a ClientHello: under a storm on a busy machine the
                        // client (or this connection's task) may simply not have run
                        // yet; evicting it at once was most of the 103,828 evictions
                        // of a 10,000-agent run.
                        SILENT => protect.saturating_sub(now.saturating_sub(s.accepted)),
                        began => protect.saturating_sub(now.saturating_sub(began)),
                    };
                    if s.activity.in_flight() > 0 {
                        return false;
                    }
                    soonest = soonest.min(left);
                    left == 0
                })
                .map(|(id, _)| *id)
                .ok_or(Duration::from_millis(soonest.max(1)))?;
            if let Some(mut slot) = live.remove(&victim) {
                if let Some(tx) = slot.evict.take() {
                    let _ = tx.send(());
                }
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::default());
        let phase = Arc::new(AtomicU64::new(SILENT));
        let (tx, rx) = oneshot::channel();
        live.insert(
            id,
            Slot {
                activity: activity.clone(),
                phase: phase.clone(),
                accepted: now,
                evict: Some(tx),
            },
        );
        Ok((id, activity, phase, rx))
    }

    fn leave(&self, id: u64) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        // A connection held at the cap may take its place (a stored permit if none
        // waits yet, so the wake-up is never lost).
        self.room.notify_one();
    }
}

/// Removes the connection from [`Unauthenticated`] however its task ends.
struct Admitted {
    id: u64,
    registry: Arc<Unauthenticated>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.leave(self.id);
    }
}

/// Accepts connections on `listener` until `shutdown` turns true (or the task is
/// dropped); open connections are closed at shutdown too, and it returns once they are. Default [`ConnLimits`].
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, app: Router, shutdown: watch::Receiver<bool>) {
    serve_with(listener, tls, app, shutdown, ConnLimits::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: watch::Receiver<bool>,
    limits: ConnLimits,
) {
    let limits = Arc::new(limits);
    let unauthenticated = Arc::new(Unauthenticated::default());
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
    let mut stop = shutdown.clone();
    // The connections' tasks: at shutdown each ends (the watch) and this returns only
    // once all have, so whoever awaits this task knows no request is still running.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|v| *v) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // At the cap with nothing evictable, this connection waits (held here, the ones
        // after it in the kernel's listen backlog) instead of being closed: closed, its
        // client backed off for seconds, and 10,000 agents connecting at once took 90 s.
        let mut held = false;
        let admitted = loop {
            match unauthenticated.admit(limits.max_unauthenticated, limits.handshake_protect) {
                Ok(a) => break Some(a),
                Err(wait) => {
                    if !held {
                        held = true;
                        tracing::debug!(%peer, "held: every unauthenticated slot is serving a request or handshaking");
                    }
                    tokio::select! {
                        _ = unauthenticated.room.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.wait_for(|v| *v) => break None,
                    }
                }
            }
        };
        let Some((id, activity, phase, evicted)) = admitted else {
            break;
        };
        let admitted = Admitted {
            id,
            registry: unauthenticated.clone(),
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        let limits = limits.clone();
        let handshakes = handshakes.clone();
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            let conn = Conn {
                admitted,
                activity,
                phase,
                handshakes,
            };
            tokio::select! {
                _ = connection(tls, tcp, peer, app, &limits, conn) => {}
                _ = stop.wait_for(|v| *v) => {}
                // A dropped sender means the connection left the registry (an agent, or
                // closed): only a sent value is an eviction.
                _ = async {
                    if evicted.await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => tracing::debug!(%peer, "evicted: too many unauthenticated connections"),
            }
        });
    }
    while conns.join_next().await.is_some() {}
}

/// One connection's share of the server's bookkeeping.
struct Conn {
    /// Its place among the unauthenticated connections (left once a client certificate
    /// is verified).
    admitted: Admitted,
    /// Its requests in flight and when the last one ended.
    activity: Arc<Activity>,
    /// Its handshake phase ([`Slot::phase`]).
    phase: Arc<AtomicU64>,
    /// The server's handshake slots ([`ConnLimits::max_handshakes`]).
    handshakes: Arc<Semaphore>,
}

async fn connection(
    config: Arc<ServerConfig>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: &ConnLimits,
    conn: Conn,
) {
    let Conn {
        admitted,
        activity,
        phase,
        handshakes,
    } = conn;
    // The ClientHello first (cheap), then a handshake slot: only `max_handshakes`
    // handshakes are computed at once, so each finishes quickly even in a reconnect
    // storm, and its protection from eviction (ConnLimits::handshake_protect) counts
    // from when it got its slot.
    let handshake = async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
        phase.store(QUEUED, Ordering::Relaxed);
        let _slot = handshakes
            .acquire()
            .await
            .map_err(|_| std::io::Error::other("the server is stopping"))?;
        phase.store(admitted.registry.stamp(), Ordering::Relaxed);
        start.into_stream(config).await
    };
    let outcome = tokio::time::timeout(limits.handshake_timeout, handshake).await;
    phase.store(DONE, Ordering::Relaxed);
    let tls = match outcome {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(H2);
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|c| common_name(c.as_ref()))
        .map(PeerIdentity);
    let header_timeout = if identity.is_some() {
        // An agent: verified by its certificate, no longer counted as unauthenticated.
        drop(admitted);
        limits.agent_header_read_timeout
    } else {
        limits.header_read_timeout
    };
    let serving = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Always set by us: a client cannot inject an identity through HTTP.
        req.extensions_mut().remove::<PeerIdentity>();
        req.extensions_mut().insert(PeerAddr(peer));
        if let Some(id) = &identity {
            req.extensions_mut().insert(id.clone());
        }
        let request = Request::start(serving.clone());
        let response = app.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let r = response.await;
            drop(request);
            r
        }
    });
    let io = TokioIo::new(tls);
    let ended = if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new()).max_concurrent_streams(MAX_STREAMS);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        // hyper's HTTP/2 server has no header-read timeout: a connection with no request
        // in flight for `header_timeout` is closed instead (a half-sent request header is
        // no request in flight).
        tokio::select! {
            r = conn.as_mut() => r,
            _ = activity.idle_for(header_timeout) => {
                // GOAWAY; a client that does not answer its PING is cut after a grace.
                conn.as_mut().graceful_shutdown();
                tokio::time::timeout(H2_SHUTDOWN_GRACE, conn).await.unwrap_or(Ok(()))
            }
        }
    } else {
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true)
            .serve_connection(io, service)
            .await
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, h2, error = %e, "connection ended with an error");
    }
}

/// A connection's requests: how many are in flight and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    /// Origin of `last`.
    born: Instant,
    /// Milliseconds after `born` at which the last request ended (0: none yet).
    last: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            born: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How long the connection has had no request in flight (`None`: one is).
    fn idle(&self) -> Option<Duration> {
        if self.in_flight() > 0 {
            return None;
        }
        let last = self.last.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(last)))
    }

    /// Returns once the connection has had no request in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let wait = match self.idle() {
                Some(idle) if idle >= limit => return,
                Some(idle) => limit - idle,
                None => limit,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One request in flight on a connection ([`Activity`]), from its start to its response.
struct Request(Arc<Activity>);

impl Request {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Request(activity)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.0.last.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod storm_tests {
    use super::*;

    /// Issue 15, the fault kind "a reconnect storm evicts handshakes under way": with
    /// the unauthenticated cap full of connections whose TLS handshake has begun, a new
    /// connection is refused instead of cutting one of them (before, the oldest was
    /// evicted, so with 10,000 agents reconnecting at once almost none finished); a
    /// connection that sent nothing yet, or whose handshake began longer ago than the
    /// protection, is still evicted first (the slow-client defence).
    #[test]
    fn a_reconnect_storm_never_cuts_a_handshake_under_way() {
        let reg = Unauthenticated::default();
        let protect = Duration::from_secs(60);
        let mut handshaking = Vec::new();
        for _ in 0..3 {
            let (_, _, phase, rx) = reg.admit(3, protect).unwrap();
            phase.store(reg.stamp(), Ordering::Relaxed);
            handshaking.push(rx);
        }
        assert!(
            reg.admit(3, protect).is_err(),
            "a newcomer must not cut a handshake under way"
        );
        for rx in &mut handshaking {
            assert!(rx.try_recv().is_err(), "a handshake under way was evicted");
        }
        // One handshake over (an API client idle on HTTP now): that one makes room.
        let first = reg.live.lock().unwrap().values().next().unwrap().phase.clone();
        first.store(DONE, Ordering::Relaxed);
        let (_, _, _, mut silent) = reg.admit(3, protect).unwrap();
        assert!(handshaking[0].try_recv().is_ok(), "the idle one is evicted");
        assert!(handshaking[1].try_recv().is_err() && handshaking[2].try_recv().is_err());
        // A silent connection (no ClientHello) is protected for a while too…
        assert!(reg.admit(3, protect).is_err(), "a client just accepted was evicted");
        assert!(silent.try_recv().is_err());
        // …and after that evicted before protected handshakes (theirs began later).
        let protect = Duration::from_secs(1);
        std::thread::sleep(protect + Duration::from_millis(100));
        for slot in reg.live.lock().unwrap().values() {
            if slot.phase.load(Ordering::Relaxed) != SILENT {
                slot.phase.store(reg.stamp(), Ordering::Relaxed);
            }
        }
        let _ = reg.admit(3, protect).unwrap();
        assert!(
            silent.try_recv().is_ok(),
            "a client that sent nothing for long is not protected"
        );
        assert!(handshaking[1].try_recv().is_err() && handshaking[2].try_recv().is_err());
        // Protection ends: a handshake older than it counts as stalled.
        std::thread::sleep(Duration::from_millis(2));
        assert!(reg.admit(3, Duration::from_millis(1)).is_ok());
        assert!(
            handshaking[1].try_recv().is_ok(),
            "a stalled handshake is evicted after the protection"
        );
    }

    /// Issue 15 (session 11): at the cap with nothing evictable, `admit` says how long
    /// the held connection should wait before asking again — the soonest end of a
    /// protection, never longer than `RECHECK` (a request ending or a queued handshake
    /// getting its slot is not announced), never zero (no busy loop).
    #[test]
    fn a_held_connection_asks_again_when_a_protection_ends() {
        let reg = Unauthenticated::default();
        let protect = Duration::from_millis(30);
        let _ = reg.admit(1, protect).unwrap();
        let wait = reg.admit(1, protect).err().unwrap();
        assert!(
            wait > Duration::ZERO && wait <= protect,
            "silent for less than {protect:?}: ask again within it, not {wait:?}"
        );
        std::thread::sleep(wait + Duration::from_millis(2));
        assert!(reg.admit(1, protect).is_ok(), "the protection has ended");
        let wait = reg.admit(1, Duration::from_secs(60)).err().unwrap();
        assert_eq!(wait, RECHECK, "a long protection is looked at again every RECHECK");
    }

    /// Issue 15, 10,000 agents (session 10): the fault kind "a handshake's protection runs
    /// out while it waits for the CPU". Before, the protection counted from the ClientHello
    /// and up to `max_unauthenticated` (1,024) handshakes were computed at once, so under
    /// a storm on 2 cores each outlasted its 3 s and newcomers evicted them (97,424
    /// evictions in 100 s). Now a handshake waiting for a slot is never evicted, however
    /// long ago its ClientHello came, and its protection starts with its slot; a request
    /// in flight (one of several on an HTTP/2 connection) also keeps its connection.
    #[test]
    fn a_handshake_waiting_for_a_slot_is_not_evicted() {
        let reg = Unauthenticated::default();
        let (_, _, queued, mut queued_rx) = reg.admit(2, Duration::ZERO).unwrap();
        queued.store(QUEUED, Ordering::Relaxed);
        let (_, activity, _, mut serving_rx) = reg.admit(2, Duration::ZERO).unwrap();
        let one = Request::start(activity.clone());
        let two = Request::start(activity.clone());
        drop(one);
        // Protection zero: an active handshake would be evictable at once; a queued
        // one and a connection with a request still in flight are not.
        assert!(
            reg.admit(2, Duration::ZERO).is_err(),
            "a queued handshake or a request in flight was evicted"
        );
        assert!(queued_rx.try_recv().is_err() && serving_rx.try_recv().is_err());
        // The handshake gets its slot: from then on the protection counts.
        queued.store(reg.stamp(), Ordering::Relaxed);
        assert!(reg.admit(2, Duration::ZERO).is_ok());
        assert!(
            queued_rx.try_recv().is_ok(),
            "a handshake past its protection is evicted"
        );
        // The last request ends: idle, evictable.
        drop(two);
        assert_eq!(activity.in_flight(), 0);
        assert!(activity.idle().is_some());
        assert!(reg.admit(2, Duration::ZERO).is_ok());
        assert!(serving_rx.try_recv().is_ok(), "an idle connection is evicted");
    }
}

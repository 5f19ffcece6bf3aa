//! Shared helpers: an in-process server (router + temp SQLite + temp CA) and requests.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use cordon_proto::{AgentState, EnrollResponse, Role, StatusReport};
use cordon_server::auth::PeerIdentity;
use cordon_server::pki::{self, Ca};
use cordon_server::{router, AppState, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A new key pair and a PEM certificate signing request for it (what an agent sends).
pub fn csr() -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    (key, csr)
}

/// Creates an API token named `name` with `role` and returns its secret.
pub async fn api_token(store: &Store, name: &str, role: Role) -> String {
    store.create_api_token("test", name, role).await.unwrap().token
}

/// A status report of an agent that applied `revision` and is in `state`.
pub fn status_report(revision: i64, state: AgentState, digest: &str, backend: &str) -> StatusReport {
    StatusReport {
        version: cordon_proto::PROTO_VERSION,
        applied_revision: revision,
        state,
        digest: Some(digest.into()),
        backend: Some(backend.into()),
        error: None,
        detail: None,
        hostname: None,
        os: None,
        addresses: vec![],
        agent_version: None,
        enforcing: true,
        degraded: vec![],
        heartbeat_ms: None,
        claims: vec![],
        waiting: None,
    }
}

pub struct Ctx {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub app: Router,
    pub admin: String,
    pub responder: String,
    pub viewer: String,
    /// Hosts enrolled so far: each gets its own address (192.0.2.10, .11, …).
    enrolled: std::sync::atomic::AtomicU8,
}

/// Creates an empty database next to `base` (postgres://user@host:port/db) and returns its URL.
async fn fresh_postgres(base: &str) -> String {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("cordon_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

impl Ctx {
    pub async fn new() -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        pki::init(dir.path(), &["cordon.test".into()], &["127.0.0.1".parse().unwrap()]).unwrap();
        let ca = Arc::new(Ca::load(dir.path()).unwrap());
        let url = match std::env::var("CORDON_TEST_POSTGRES") {
            // Opt-in second run against PostgreSQL: a fresh database per test.
            Ok(base) if !base.is_empty() => fresh_postgres(&base).await,
            _ => format!("sqlite://{}", dir.path().join("t.db").display()),
        };
        let store = Arc::new(Store::connect(&url).await.unwrap());
        let admin = api_token(&store, "alice-admin", Role::Admin).await;
        let responder = api_token(&store, "rita-responder", Role::Responder).await;
        let viewer = api_token(&store, "victor-viewer", Role::Viewer).await;
        let mut state = AppState::new(store, Some(ca));
        // The tokens were made before the store had the CA's keys: bound to their names
        // at their first use, as a server does (trial33 MED-B) — here, before a test
        // edits the log (a deleted `token_create` record would leave them unbound).
        for t in [&admin, &responder, &viewer] {
            state.store.authenticate(t).await.unwrap();
        }
        state.max_wait = std::time::Duration::from_secs(3);
        let app = router(state.clone());
        Ctx {
            dir,
            state,
            app,
            admin,
            responder,
            viewer,
            enrolled: std::sync::atomic::AtomicU8::new(0),
        }
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value) {
        self.call_as(method, path, token, body, None).await
    }

    pub async fn call_as(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        peer: Option<&str>,
    ) -> (StatusCode, Value) {
        let (status, text) = self.raw(method, path, token, body, peer).await;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        peer: Option<&str>,
    ) -> (StatusCode, String) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let mut req = b.body(Body::from(body.unwrap_or("").to_string())).unwrap();
        if let Some(p) = peer {
            req.extensions_mut().insert(PeerIdentity(p.to_string()));
        }
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).to_string())
    }

    /// An agent's status report for host `host` (as its mTLS identity).
    /// A report is a [`StatusReport`], or JSON (to send what the typed report cannot
    /// carry, e.g. addresses as text: [`with_addresses`]).
    pub async fn agent_status<R: serde::Serialize>(&self, host: &str, report: &R) -> (StatusCode, Value) {
        let body = serde_json::to_string(report).unwrap();
        self.call_as("POST", "/v1/agent/status", None, Some(&body), Some(host))
            .await
    }

    /// Enrolls a host through the API and returns its id. Each host of a context gets its
    /// own address, 192.0.2.10 for the first.
    pub async fn enroll(&self, hostname: &str, labels: &[&str]) -> String {
        let n = self.enrolled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addr = format!("192.0.2.{}", 10 + u32::from(n) % 200);
        self.enroll_with(hostname, labels, &[addr.as_str()]).await
    }

    /// Enrolls a host reporting `addresses` and returns its id.
    pub async fn enroll_with(&self, hostname: &str, labels: &[&str], addresses: &[&str]) -> String {
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let tok = self
            .store()
            .create_enroll_token("test", &labels, 3600)
            .await
            .unwrap()
            .token;
        let (_key, csr) = csr();
        // As text, as an agent sends it: a test may enroll with an address the server
        // must refuse (the typed EnrollRequest cannot carry one).
        let req = serde_json::json!({
            "token": tok,
            "csr_pem": csr,
            "hostname": hostname,
            "os": "linux",
            "addresses": addresses,
            "agent_version": "test",
        });
        let (st, v) = self
            .call("POST", "/v1/enroll", None, Some(&serde_json::to_string(&req).unwrap()))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let resp: EnrollResponse = serde_json::from_value(v).unwrap();
        resp.host_id
    }

    /// A fingerprint of the database: every host row and the audit count.
    pub async fn snapshot(&self) -> String {
        let hosts = self
            .store()
            .hosts(&cordon_server::store::HostFilter {
                include_revoked: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let n = self.store().audit_count().await.unwrap();
        format!("{}|{n}", serde_json::to_string(&hosts).unwrap())
    }

    pub async fn audit_for(&self, host: &str) -> Vec<cordon_proto::AuditRecord> {
        self.store()
            .audit(&cordon_server::store::AuditFilter {
                host_id: Some(host.into()),
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

/// `report` as JSON with `addresses` as the given text, as an agent may send them (in
/// any spelling, or not addresses at all).
#[allow(dead_code)]
pub fn with_addresses<A: serde::Serialize>(report: &StatusReport, addresses: &[A]) -> Value {
    let mut v = serde_json::to_value(report).unwrap();
    v["addresses"] = serde_json::json!(addresses);
    v
}

//! A minimal webhook receiver for notification tests: HTTP/1.1 on 127.0.0.1 inside one of
//! the lab's namespaces, keeping each request body and answering `200 ok`.
//!
//! Hand-written over `std::net::TcpListener` rather than an HTTP server crate: it must run
//! on a thread that entered the lab namespace (a tokio/axum server would need its own
//! runtime per namespace), it reads one `Content-Length` body per connection
//! (`Connection: close`; the server's notifier sends nothing else) and it is test support,
//! never shipped in the endpoint binary.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::lab::netns;

/// A receiver running until dropped.
pub struct WebhookReceiver {
    /// The loopback port it listens on, inside its namespace.
    pub port: u16,
    stop: Arc<AtomicBool>,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl WebhookReceiver {
    /// Starts a receiver on `127.0.0.1:0` inside namespace `ns`.
    ///
    /// # Errors
    /// The namespace cannot be entered or the socket cannot be bound (within 5 s).
    pub fn start(ns: &str) -> Result<WebhookReceiver> {
        let stop = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let (stop2, bodies2) = (stop.clone(), bodies.clone());
        netns::spawn_in(ns, move || serve(tx, &stop2, &bodies2));
        let port = rx
            .recv_timeout(Duration::from_secs(5))
            .with_context(|| format!("webhook receiver in namespace {ns} did not start"))?;
        Ok(WebhookReceiver { port, stop, bodies })
    }

    /// `http://127.0.0.1:PORT/hook`, as a notification target's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The request bodies received so far, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// The bodies received so far, parsed as JSON (a body that is not JSON becomes a
    /// JSON string).
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.bodies()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or_else(|_| serde_json::Value::String(b.clone())))
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(tx: mpsc::Sender<u16>, stop: &AtomicBool, bodies: &Mutex<Vec<String>>) -> Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let _ = tx.send(listener.local_addr()?.port());
    while !stop.load(Ordering::SeqCst) {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        if let Some(body) = read_body(&mut conn) {
            if let Ok(mut b) = bodies.lock() {
                b.push(body);
            }
        }
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    }
    Ok(())
}

/// One request's body (by its `Content-Length`), `None` if the peer stopped early.
fn read_body(conn: &mut std::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
            }
        }
    }
}

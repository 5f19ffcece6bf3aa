//! Responders the lab runs inside its namespaces: TCP echo, UDP echo, and a DNS server
//! that answers every query with NXDOMAIN (a well-formed reply is all a probe needs).
//! Each runs on its own thread until the lab's stop flag is set.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use super::netns;

const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Echoes every byte back.
    TcpEcho,
    UdpEcho,
    /// Answers DNS over UDP with NXDOMAIN.
    DnsUdp,
    /// Answers DNS over TCP (length-prefixed) with NXDOMAIN.
    DnsTcp,
}

/// Starts `service` on `addr` inside namespace `ns`; returns once the socket is bound.
pub fn start(ns: &str, service: Service, addr: SocketAddr, stop: Arc<AtomicBool>) -> Result<JoinHandle<Result<()>>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handle = netns::spawn_in(ns, move || {
        let bound = match service {
            Service::TcpEcho | Service::DnsTcp => bind_tcp(addr).map(Either::Tcp),
            Service::UdpEcho | Service::DnsUdp => bind_udp(addr).map(Either::Udp),
        };
        let socket = match bound {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready_tx.send(Err(format!("{e:#}")));
                return Err(e);
            }
        };
        match socket {
            Either::Tcp(l) => serve_tcp(l, service == Service::DnsTcp, stop),
            Either::Udp(s) => serve_udp(s, service == Service::DnsUdp, stop),
        }
    });
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => anyhow::bail!("starting {service:?} on {addr} in {ns}: {e}"),
        Err(_) => anyhow::bail!("starting {service:?} on {addr} in {ns}: no answer"),
    }
}

enum Either {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

fn bind_tcp(addr: SocketAddr) -> Result<TcpListener> {
    let l = TcpListener::bind(addr).with_context(|| format!("binding tcp {addr}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn bind_udp(addr: SocketAddr) -> Result<UdpSocket> {
    let s = UdpSocket::bind(addr).with_context(|| format!("binding udp {addr}"))?;
    s.set_read_timeout(Some(POLL))?;
    Ok(s)
}

fn serve_tcp(listener: TcpListener, dns: bool, stop: Arc<AtomicBool>) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        // Wait for a connection without sleeping past it: a late accept makes clients
        // time out, which the lab would report as a blocked path.
        wait_readable(&listener);
        while let Ok((conn, _)) = listener.accept() {
            let stop = stop.clone();
            std::thread::spawn(move || handle_tcp(conn, dns, stop));
        }
    }
    Ok(())
}

fn wait_readable(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let mut fds = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fds, 1, POLL.as_millis() as libc::c_int) };
}

fn handle_tcp(mut conn: TcpStream, dns: bool, stop: Arc<AtomicBool>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) if !dns => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                while pending.len() >= 2 {
                    let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
                    if pending.len() < 2 + len {
                        break;
                    }
                    let reply = nxdomain(&pending[2..2 + len]);
                    pending.drain(..2 + len);
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if conn.write_all(&framed).is_err() {
                        return;
                    }
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn serve_udp(sock: UdpSocket, dns: bool, stop: Arc<AtomicBool>) -> Result<()> {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let reply = if dns { nxdomain(&buf[..n]) } else { buf[..n].to_vec() };
            let _ = sock.send_to(&reply, peer);
        }
    }
    Ok(())
}

/// Turns a DNS query into an NXDOMAIN response: same id and question, QR set, RCODE 3.
pub fn nxdomain(query: &[u8]) -> Vec<u8> {
    let mut reply = query.to_vec();
    if reply.len() >= 4 {
        reply[2] |= 0x80; // QR: response
        reply[3] = (reply[3] & 0xF0) | 0x80 | 0x03; // RA + NXDOMAIN
    }
    reply
}

/// A minimal DNS query for `cordon.lab. A`, used by the probes.
pub fn dns_query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["cordon", "lab"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

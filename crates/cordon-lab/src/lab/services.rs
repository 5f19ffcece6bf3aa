//! Responders the lab runs inside its namespaces: TCP echo, UDP echo, a DNS server that
//! answers A/AAAA queries for the names of a [`Zone`] the test can change (the server
//! "moving" to a new address) and NXDOMAIN for everything else, and an HTTP CONNECT
//! proxy. Each runs on its own thread until the lab's stop flag is set.
//!
//! The DNS answers and the proxy are written by hand: a few dozen lines for a test lab
//! whose only clients are glibc's resolver and reqwest, against a DNS or proxy crate
//! with a server stack far larger than the lab itself.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use super::netns;

const POLL: Duration = Duration::from_millis(20);

/// A service a lab host runs on a thread of the test process, inside its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Echoes every byte back.
    TcpEcho,
    /// Sends every datagram back to its sender.
    UdpEcho,
    /// Answers DNS over UDP with NXDOMAIN.
    DnsUdp,
    /// Answers DNS over TCP (length-prefixed) with NXDOMAIN.
    DnsTcp,
    /// Counts the bytes of a TCP connection until the peer half-closes it, then answers
    /// with the count as a decimal line (an evidence-upload stand-in).
    Sink,
}

/// Names the lab's resolver answers (lower case, no trailing dot) and their addresses.
pub type Zone = Arc<Mutex<HashMap<String, Vec<IpAddr>>>>;

/// Starts `service` on `addr` inside namespace `ns`; returns once the socket is bound.
/// DNS services answer NXDOMAIN to everything.
pub fn start(ns: &str, service: Service, addr: SocketAddr, stop: Arc<AtomicBool>) -> Result<JoinHandle<Result<()>>> {
    start_zone(ns, service, addr, stop, Zone::default())
}

/// Like [`start`]; DNS services answer A/AAAA queries for the names in `zone`.
pub fn start_zone(
    ns: &str,
    service: Service,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    zone: Zone,
) -> Result<JoinHandle<Result<()>>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handle = netns::spawn_in(ns, move || {
        let bound = match service {
            Service::TcpEcho | Service::DnsTcp | Service::Sink => bind_tcp(addr).map(Either::Tcp),
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
        let dns = matches!(service, Service::DnsTcp | Service::DnsUdp).then_some(zone);
        match socket {
            Either::Tcp(l) if service == Service::Sink => serve_sink(l, stop),
            Either::Tcp(l) => serve_tcp(l, dns, stop),
            Either::Udp(s) => serve_udp(s, dns, stop),
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

fn serve_tcp(listener: TcpListener, dns: Option<Zone>, stop: Arc<AtomicBool>) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        // Wait for a connection without sleeping past it: a late accept makes clients
        // time out, which the lab would report as a blocked path.
        wait_readable(&listener);
        while let Ok((conn, _)) = listener.accept() {
            let (stop, dns) = (stop.clone(), dns.clone());
            std::thread::spawn(move || handle_tcp(conn, dns, stop));
        }
    }
    Ok(())
}

fn serve_sink(listener: TcpListener, stop: Arc<AtomicBool>) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        wait_readable(&listener);
        while let Ok((conn, _)) = listener.accept() {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
                let mut buf = vec![0u8; 64 * 1024];
                let mut total: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    match conn.read(&mut buf) {
                        Ok(0) => {
                            let _ = conn.write_all(format!("{total}\n").as_bytes());
                            return;
                        }
                        Ok(n) => total += n as u64,
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        }
                        Err(_) => return,
                    }
                }
            });
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

fn handle_tcp(mut conn: TcpStream, dns: Option<Zone>, stop: Arc<AtomicBool>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) if dns.is_none() => {
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
                    let reply = answer(&pending[2..2 + len], dns.as_ref());
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

fn serve_udp(sock: UdpSocket, dns: Option<Zone>, stop: Arc<AtomicBool>) -> Result<()> {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let reply = match &dns {
                Some(zone) => answer(&buf[..n], Some(zone)),
                None => buf[..n].to_vec(),
            };
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

/// The question of a query: (lower-case name, qtype, offset just past the question).
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *query.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

/// Answers a query from `zone`: the A (type 1) or AAAA (type 28) records of a known name
/// (TTL 0, so nothing caches a moved server), no records for the other type of a known
/// name, NXDOMAIN for unknown names.
pub fn answer(query: &[u8], zone: Option<&Zone>) -> Vec<u8> {
    let Some((name, qtype, end)) = question(query) else {
        return nxdomain(query);
    };
    let known = zone.and_then(|z| z.lock().ok().and_then(|z| z.get(&name).cloned()));
    let Some(addrs) = known else {
        return nxdomain(query);
    };
    let records: Vec<Vec<u8>> = addrs
        .iter()
        .filter_map(|ip| match (ip, qtype) {
            (IpAddr::V4(v4), 1) => Some(v4.octets().to_vec()),
            (IpAddr::V6(v6), 28) => Some(v6.octets().to_vec()),
            _ => None,
        })
        .collect();
    let mut reply = query[..end].to_vec();
    reply[2] = (reply[2] | 0x84) & !0x02; // QR, AA; not truncated
    reply[3] = 0x80; // RA, NOERROR
    reply[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    reply[8..12].fill(0); // no authority or additional records
    for rdata in records {
        reply.extend_from_slice(&[0xC0, 12]); // the name in the question
        reply.extend_from_slice(&qtype.to_be_bytes());
        reply.extend_from_slice(&[0, 1, 0, 0, 0, 0]); // class IN, TTL 0
        reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply.extend_from_slice(&rdata);
    }
    reply
}

/// Starts an HTTP CONNECT proxy on `addr` in namespace `ns`: it tunnels to `HOST:PORT`
/// (an IP literal, or a name from `zone`) and counts the tunnels it opened in `tunnels`.
pub fn start_proxy(
    ns: &str,
    addr: SocketAddr,
    zone: Zone,
    tunnels: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<()>>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handle = netns::spawn_in(ns, move || {
        let listener = match bind_tcp(addr) {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(format!("{e:#}")));
                return Err(e);
            }
        };
        while !stop.load(Ordering::Relaxed) {
            wait_readable(&listener);
            while let Ok((conn, _)) = listener.accept() {
                let (zone, tunnels, stop) = (zone.clone(), tunnels.clone(), stop.clone());
                std::thread::spawn(move || proxy_one(conn, &zone, &tunnels, &stop));
            }
        }
        Ok(())
    });
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => anyhow::bail!("starting the proxy on {addr} in {ns}: {e}"),
        Err(_) => anyhow::bail!("starting the proxy on {addr} in {ns}: no answer"),
    }
}

fn proxy_one(mut client: TcpStream, zone: &Zone, tunnels: &AtomicUsize, stop: &Arc<AtomicBool>) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) if head.len() < 8192 => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    let Some((host, port)) = target.rsplit_once(':') else {
        return;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let Ok(port) = port.parse::<u16>() else { return };
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => zone.lock().ok().and_then(|z| z.get(&host).cloned()).unwrap_or_default(),
    };
    let upstream = addrs
        .iter()
        .find_map(|ip| TcpStream::connect_timeout(&SocketAddr::new(*ip, port), Duration::from_secs(2)).ok());
    let Some(upstream) = upstream else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    tunnels.fetch_add(1, Ordering::SeqCst);
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = upstream.set_read_timeout(Some(Duration::from_millis(200)));
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let stop2 = stop.clone();
    let up = std::thread::spawn(move || pipe(c2, u2, &stop2));
    pipe(upstream, client, stop);
    let _ = up.join();
}

/// Copies `from` to `to` until either side closes or the lab stops.
fn pipe(mut from: TcpStream, mut to: TcpStream, stop: &AtomicBool) {
    let mut buf = [0u8; 16384];
    while !stop.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_answers_a_and_aaaa_and_nxdomain_otherwise() {
        let zone = Zone::default();
        zone.lock().unwrap().insert(
            "cordon.lab".into(),
            vec!["192.0.2.1".parse().unwrap(), "2001:db8:c0::1".parse().unwrap()],
        );
        let q = dns_query(7);
        let a = answer(&q, Some(&zone));
        assert_eq!(&a[..2], &7u16.to_be_bytes());
        assert_eq!(a[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert_eq!(&a[a.len() - 4..], &[192, 0, 2, 1]);
        let nx = answer(&q, None);
        assert_eq!(nx[3] & 0x0f, 3, "NXDOMAIN");
    }
}

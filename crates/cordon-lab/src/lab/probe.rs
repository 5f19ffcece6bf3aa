//! Probes: each answers "did this traffic get through?" from inside a lab namespace.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Result;
use socket2::{Domain, Protocol, Socket, Type};

use super::services::dns_query;
use super::{netns, Host, Lab};

/// How long a probe waits before calling the path blocked.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(600);

/// One way of trying a path through the lab; every probe gives up after
/// [`PROBE_TIMEOUT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// TCP handshake from a host to an address.
    Tcp {
        /// The sending host.
        from: Host,
        /// The destination address and port.
        to: SocketAddr,
    },
    /// UDP datagram to an echo service, reply expected.
    Udp {
        /// The sending host.
        from: Host,
        /// The destination address and port.
        to: SocketAddr,
    },
    /// DNS query over UDP, reply expected.
    DnsUdp {
        /// The sending host.
        from: Host,
        /// The destination address and port.
        to: SocketAddr,
    },
    /// DNS query over TCP, reply expected.
    DnsTcp {
        /// The sending host.
        from: Host,
        /// The destination address and port.
        to: SocketAddr,
    },
    /// ICMP / ICMPv6 echo request, reply expected.
    Ping {
        /// The sending host.
        from: Host,
        /// The destination address.
        to: IpAddr,
    },
    /// A DHCP server reply (udp 67->68, or 547->546 for v6) reaching the endpoint. The
    /// v4 reply comes from the lab's DHCP server address (which the endpoint's lease
    /// names), the v6 reply from its link-local address, as DHCPv6 servers answer.
    DhcpReply {
        /// DHCPv6 (547 -> 546) instead of DHCPv4 (67 -> 68).
        v6: bool,
    },
    /// UDP from a fixed source port to an echo service, reply expected (the DHCP client
    /// port used as a tunnel to an arbitrary host).
    UdpFromPort {
        /// The sending host.
        from: Host,
        /// The UDP source port.
        src_port: u16,
        /// The destination address and port.
        to: SocketAddr,
    },
}

impl Probe {
    /// Probes that bind a fixed port on the endpoint and so cannot run alongside each
    /// other; the matrix runs them one after another.
    pub fn needs_fixed_port(&self) -> bool {
        matches!(self, Probe::DhcpReply { .. } | Probe::UdpFromPort { .. })
    }
}

impl Probe {
    /// Runs the probe; `Ok(true)` when the traffic got through.
    pub fn run(&self, lab: &Lab) -> Result<bool> {
        match self.clone() {
            Probe::Tcp { from, to } => netns::run_in(&lab.ns(from), move || Ok(tcp(to))),
            Probe::Udp { from, to } => netns::run_in(&lab.ns(from), move || Ok(udp(to, b"cordon-probe"))),
            Probe::DnsUdp { from, to } => netns::run_in(&lab.ns(from), move || Ok(udp(to, &dns_query(0x4242)))),
            Probe::DnsTcp { from, to } => netns::run_in(&lab.ns(from), move || Ok(dns_tcp(to))),
            Probe::Ping { from, to } => netns::run_in(&lab.ns(from), move || ping(to)),
            Probe::DhcpReply { v6 } => dhcp_reply(lab, v6),
            Probe::UdpFromPort { from, src_port, to } => netns::run_in(&lab.ns(from), move || {
                let bind: SocketAddr = if to.is_ipv4() {
                    SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), src_port)
                } else {
                    SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), src_port)
                };
                Ok(udp_from(bind, to, b"cordon-probe"))
            }),
        }
    }
}

fn tcp(to: SocketAddr) -> bool {
    TcpStream::connect_timeout(&to, PROBE_TIMEOUT).is_ok()
}

fn udp(to: SocketAddr, payload: &[u8]) -> bool {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap_or(to);
    udp_from(bind, to, payload)
}

fn udp_from(bind: SocketAddr, to: SocketAddr, payload: &[u8]) -> bool {
    let Ok(sock) = UdpSocket::bind(bind) else { return false };
    if sock.set_read_timeout(Some(PROBE_TIMEOUT)).is_err() || sock.send_to(payload, to).is_err() {
        return false;
    }
    let mut buf = [0u8; 2048];
    matches!(sock.recv_from(&mut buf), Ok((n, peer)) if peer == to && n == payload.len())
}

fn dns_tcp(to: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect_timeout(&to, PROBE_TIMEOUT) else {
        return false;
    };
    let q = dns_query(0x4343);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    if conn.set_read_timeout(Some(PROBE_TIMEOUT)).is_err() || conn.write_all(&framed).is_err() {
        return false;
    }
    let mut buf = [0u8; 2];
    conn.read_exact(&mut buf).is_ok() && u16::from_be_bytes(buf) as usize == q.len()
}

/// ICMP echo over a raw socket, matching the reply by identifier.
fn ping(to: IpAddr) -> Result<bool> {
    let id: u16 = (std::process::id() as u16) ^ (Instant::now().elapsed().subsec_nanos() as u16) ^ 0x5a5a;
    let (domain, proto, req_type, reply_type) = match to {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8u8, 0u8),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128u8, 129u8),
    };
    let socket = Socket::new(domain, Type::RAW, Some(proto))?;
    let sock: UdpSocket = socket.into();
    let mut packet = vec![req_type, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(b"cordon-lab-ping");
    if to.is_ipv4() {
        // The kernel fills in the ICMPv6 checksum itself, but not the ICMPv4 one.
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    // A local firewall drop makes sendto fail with EPERM: the path is blocked.
    if sock.send_to(&packet, SocketAddr::new(to, 0)).is_err() {
        return Ok(false);
    }
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        sock.set_read_timeout(Some(left))?;
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            return Ok(false);
        };
        if peer.ip() != to {
            continue;
        }
        // IPv4 raw sockets deliver the IP header too; skip it.
        let icmp = match to {
            IpAddr::V4(_) => &buf[((buf[0] & 0x0f) as usize * 4).min(n)..n],
            IpAddr::V6(_) => &buf[..n],
        };
        if icmp.len() >= 8 && icmp[0] == reply_type && icmp[4..6] == id.to_be_bytes() {
            return Ok(true);
        }
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += word as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The DHCP server host sends a server->client datagram to the endpoint, which listens
/// on the client port.
fn dhcp_reply(lab: &Lab, v6: bool) -> Result<bool> {
    use super::addr::*;
    let (listen, from, to): (SocketAddr, SocketAddr, SocketAddr) = if v6 {
        (
            "[::]:546".parse()?,
            SocketAddr::V6(std::net::SocketAddrV6::new(DHCP6_LINK_LOCAL, 547, 0, 0)),
            SocketAddr::new(ENDPOINT6.into(), 546),
        )
    } else {
        (
            "0.0.0.0:68".parse()?,
            SocketAddr::new(DHCP4.into(), 67),
            SocketAddr::new(ENDPOINT4.into(), 68),
        )
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = netns::spawn_in(&lab.ns(Host::Endpoint), move || {
        let sock = UdpSocket::bind(listen)?;
        sock.set_read_timeout(Some(PROBE_TIMEOUT))?;
        let _ = ready_tx.send(());
        let mut buf = [0u8; 512];
        Ok(matches!(sock.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == b"cordon-dhcp-offer"))
    });
    if ready_rx.recv_timeout(Duration::from_secs(2)).is_err() {
        return listener.join().map_err(|_| anyhow::anyhow!("dhcp listener panicked"))?;
    }
    netns::run_in(&lab.ns(Host::Dhcp), move || {
        let from = match from {
            // A link-local source needs its interface.
            SocketAddr::V6(mut a) if a.ip().is_unicast_link_local() => {
                // SAFETY: the name is a NUL-terminated C string literal.
                let index = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
                a.set_scope_id(index);
                SocketAddr::V6(a)
            }
            other => other,
        };
        let sock = UdpSocket::bind(from)?;
        // A few copies, as a real server would retransmit.
        for _ in 0..3 {
            sock.send_to(b"cordon-dhcp-offer", to)?;
            std::thread::sleep(Duration::from_millis(30));
        }
        Ok(())
    })?;
    listener.join().map_err(|_| anyhow::anyhow!("dhcp listener panicked"))?
}

//! The leak matrix of design §3: every path that must stay open and every path that must
//! close, probed in parallel.

use std::net::{IpAddr, SocketAddr};

use anyhow::Result;
use serde::Serialize;

use super::addr::*;
use super::probe::Probe;
use super::{Host, Lab};

/// One row of the leak matrix: a path from one lab host to another.
#[derive(Debug, Clone)]
pub struct Row {
    /// The row's label in the printed table and JSON.
    pub name: &'static str,
    /// How the path is tried.
    pub probe: Probe,
    /// Must this path stay open while quarantined?
    pub allowed: bool,
}

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// Every row of the matrix.
pub fn rows() -> Vec<Row> {
    use Host::*;
    let r = |name, probe, allowed| Row { name, probe, allowed };
    vec![
        r(
            "server v4 tcp/8443",
            Probe::Tcp {
                from: Endpoint,
                to: sa(SERVER4, SERVER_PORT),
            },
            true,
        ),
        r(
            "server v6 tcp/8443",
            Probe::Tcp {
                from: Endpoint,
                to: sa(SERVER6, SERVER_PORT),
            },
            true,
        ),
        r(
            "resolver v4 udp/53",
            Probe::DnsUdp {
                from: Endpoint,
                to: sa(RESOLVER4, 53),
            },
            true,
        ),
        r(
            "resolver v4 tcp/53",
            Probe::DnsTcp {
                from: Endpoint,
                to: sa(RESOLVER4, 53),
            },
            true,
        ),
        r(
            "resolver v6 udp/53",
            Probe::DnsUdp {
                from: Endpoint,
                to: sa(RESOLVER6, 53),
            },
            true,
        ),
        r(
            "resolver v6 tcp/53",
            Probe::DnsTcp {
                from: Endpoint,
                to: sa(RESOLVER6, 53),
            },
            true,
        ),
        r(
            "loopback v4",
            Probe::Tcp {
                from: Endpoint,
                to: sa(std::net::Ipv4Addr::LOCALHOST, ENDPOINT_PORT),
            },
            true,
        ),
        r(
            "loopback v6",
            Probe::Tcp {
                from: Endpoint,
                to: sa(std::net::Ipv6Addr::LOCALHOST, ENDPOINT_PORT),
            },
            true,
        ),
        r("DHCPv4 reply in", Probe::DhcpReply { v6: false }, true),
        r("DHCPv6 reply in", Probe::DhcpReply { v6: true }, true),
        r(
            "DHCP port to other host v4 68->67",
            Probe::UdpFromPort {
                from: Endpoint,
                src_port: 68,
                to: sa(OTHER4, 67),
            },
            false,
        ),
        r(
            "DHCP port to other host v6 546->547",
            Probe::UdpFromPort {
                from: Endpoint,
                src_port: 546,
                to: sa(OTHER6, 547),
            },
            false,
        ),
        r(
            "server v4 other port tcp/9000",
            Probe::Tcp {
                from: Endpoint,
                to: sa(SERVER4, SERVER_OTHER_PORT),
            },
            false,
        ),
        r(
            "server v6 other port tcp/9000",
            Probe::Tcp {
                from: Endpoint,
                to: sa(SERVER6, SERVER_OTHER_PORT),
            },
            false,
        ),
        r(
            "server v4 icmp",
            Probe::Ping {
                from: Endpoint,
                to: SERVER4.into(),
            },
            false,
        ),
        r(
            "other host v4 tcp/80",
            Probe::Tcp {
                from: Endpoint,
                to: sa(OTHER4, OTHER_TCP_PORT),
            },
            false,
        ),
        r(
            "other host v6 tcp/80",
            Probe::Tcp {
                from: Endpoint,
                to: sa(OTHER6, OTHER_TCP_PORT),
            },
            false,
        ),
        r(
            "other host v4 udp/7777",
            Probe::Udp {
                from: Endpoint,
                to: sa(OTHER4, OTHER_UDP_PORT),
            },
            false,
        ),
        r(
            "other host v6 udp/7777",
            Probe::Udp {
                from: Endpoint,
                to: sa(OTHER6, OTHER_UDP_PORT),
            },
            false,
        ),
        r(
            "other host v4 icmp",
            Probe::Ping {
                from: Endpoint,
                to: OTHER4.into(),
            },
            false,
        ),
        r(
            "other host v6 icmp",
            Probe::Ping {
                from: Endpoint,
                to: OTHER6.into(),
            },
            false,
        ),
        r(
            "DNS to other host v4 udp/53",
            Probe::DnsUdp {
                from: Endpoint,
                to: sa(OTHER4, 53),
            },
            false,
        ),
        r(
            "DNS to other host v6 udp/53",
            Probe::DnsUdp {
                from: Endpoint,
                to: sa(OTHER6, 53),
            },
            false,
        ),
        r(
            "DNS to other host v4 tcp/53",
            Probe::DnsTcp {
                from: Endpoint,
                to: sa(OTHER4, 53),
            },
            false,
        ),
        r(
            "inbound from other host v4",
            Probe::Tcp {
                from: Other,
                to: sa(ENDPOINT4, ENDPOINT_PORT),
            },
            false,
        ),
        r(
            "inbound from other host v6",
            Probe::Tcp {
                from: Other,
                to: sa(ENDPOINT6, ENDPOINT_PORT),
            },
            false,
        ),
        r(
            "inbound from server v4",
            Probe::Tcp {
                from: Server,
                to: sa(ENDPOINT4, ENDPOINT_PORT),
            },
            false,
        ),
        r(
            "inbound from server v6",
            Probe::Tcp {
                from: Server,
                to: sa(ENDPOINT6, ENDPOINT_PORT),
            },
            false,
        ),
    ]
}

/// One probed row.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The row's label ([`Row::name`]).
    pub name: &'static str,
    /// The path must stay open while quarantined ([`Row::allowed`]).
    pub allowed: bool,
    /// The probe got through.
    pub reached: bool,
}

impl Outcome {
    /// Traffic that quarantine must stop got through.
    pub fn is_leak(&self) -> bool {
        !self.allowed && self.reached
    }
    /// Traffic that quarantine must keep was stopped.
    pub fn is_over_block(&self) -> bool {
        self.allowed && !self.reached
    }
}

/// Probes every row: in parallel, except the probes that bind a fixed endpoint port
/// (DHCP), which run one after another while the others are in flight.
pub fn probe_all(lab: &Lab) -> Result<Vec<Outcome>> {
    let rows = rows();
    let fixed: Vec<usize> = (0..rows.len()).filter(|i| rows[*i].probe.needs_fixed_port()).collect();
    let results: Vec<Result<bool>> = std::thread::scope(|s| {
        let serial = s.spawn(|| fixed.iter().map(|i| (*i, rows[*i].probe.run(lab))).collect::<Vec<_>>());
        let handles: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                (
                    i,
                    (!row.probe.needs_fixed_port()).then(|| s.spawn(|| row.probe.run(lab))),
                )
            })
            .collect();
        let mut out: Vec<Option<Result<bool>>> = handles
            .into_iter()
            .map(|(_, h)| h.map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("probe panicked")))))
            .collect();
        match serial.join() {
            Ok(list) => {
                for (i, r) in list {
                    out[i] = Some(r);
                }
            }
            Err(_) => {
                for &i in &fixed {
                    out[i] = Some(Err(anyhow::anyhow!("probe panicked")));
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("probe did not run"))))
            .collect()
    });
    rows.iter()
        .zip(results)
        .map(|(row, reached)| {
            Ok(Outcome {
                name: row.name,
                allowed: row.allowed,
                reached: reached?,
            })
        })
        .collect()
}

/// Counts (leaks, over-blocks).
pub fn score(outcomes: &[Outcome]) -> (usize, usize) {
    (
        outcomes.iter().filter(|o| o.is_leak()).count(),
        outcomes.iter().filter(|o| o.is_over_block()).count(),
    )
}

/// One column of the printed matrix.
pub struct Phase<'a> {
    /// The column header.
    pub name: &'a str,
    /// Leaks and over-blocks are marked only in phases where quarantine is in force.
    pub quarantined: bool,
    /// The probed rows, in matrix order.
    pub outcomes: &'a [Outcome],
}

/// A table with one column per phase (e.g. before / during / after).
pub fn render_table(phases: &[Phase<'_>]) -> String {
    let mut out = String::new();
    let width = rows().iter().map(|r| r.name.len()).max().unwrap_or(10);
    out.push_str(&format!("{:<width$}  {:<9}", "path", "policy"));
    let col = |p: &Phase<'_>| p.name.len().max(10);
    for phase in phases {
        out.push_str(&format!("  {:<w$}", phase.name, w = col(phase)));
    }
    out.push('\n');
    let Some(first) = phases.first() else { return out };
    for (i, row) in first.outcomes.iter().enumerate() {
        out.push_str(&format!(
            "{:<width$}  {:<9}",
            row.name,
            if row.allowed { "keep" } else { "block" }
        ));
        for phase in phases {
            let o = &phase.outcomes[i];
            let q = phase.quarantined;
            let cell = match (o.reached, q && o.is_leak(), q && o.is_over_block()) {
                (true, true, _) => "open LEAK",
                (false, _, true) => "shut OVER",
                (true, _, _) => "open",
                (false, _, _) => "shut",
            };
            out.push_str(&format!("  {:<w$}", cell, w = col(phase)));
        }
        out.push('\n');
    }
    out
}

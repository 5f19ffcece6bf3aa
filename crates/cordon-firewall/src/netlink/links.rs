//! The network interfaces of the caller's network namespace, read over rtnetlink
//! (`RTM_GETLINK` dump): which devices the device-layer (netdev) hooks must cover, and
//! what the preflight impact report lists.
//!
//! Hand-written on the socket and decoder the nf_tables side already has (a dozen
//! attributes of one message type); `netlink-packet-route` would add an async-oriented
//! stack for this one dump.

use super::decode::{self, attrs, DecodeError};
use super::socket::{NlError, Socket};

// linux/if_link.h (`libc` has these only for Android).
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_NEW_NETNSID: u16 = 45;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;

/// One network interface, as rtnetlink describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (namespace-local).
    pub index: u32,
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// `IFLA_INFO_KIND` for virtual devices: `bridge`, `veth`, `macvlan`, `ipvlan`, `vlan`,
    /// `bond`, `tun`, `wireguard`, …; `None` for physical NICs.
    pub kind: Option<String>,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `IFLA_LINK`: the lower device (a macvlan's, ipvlan's or VLAN's parent; a veth's
    /// peer), by index in the namespace named by `link_netnsid` (this one when `None`).
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the lower device or peer lives in another namespace.
    pub link_netnsid: Option<i32>,
    /// `IFLA_MASTER`: the bridge or bond this device is a port of.
    pub master: Option<u32>,
    /// `IFLA_NEW_NETNSID`, only in the RTM_DELLINK the kernel sends when the device moves
    /// to another network namespace (`ip link set DEV netns X`): that namespace's id as
    /// seen from this one.
    pub new_netnsid: Option<i32>,
    /// An XDP program attached to the device (`IFLA_XDP`), if any: it sees every frame
    /// before packet taps, tc and the netdev ingress hook, and what it sends back
    /// (`XDP_TX`) or redirects never meets the netdev egress hook (trial27 HIGH-2).
    pub xdp: Option<Xdp>,
}

/// An XDP attachment, as `IFLA_XDP` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xdp {
    /// `generic` (skb mode), `native` (driver), `offload` (NIC) or `multi` (several).
    pub mode: &'static str,
    /// The program's id (`IFLA_XDP_PROG_ID`; 0 when not given, e.g. `multi`).
    pub prog_id: u32,
}

/// Reads `IFLA_XDP`'s nest: `None` when nothing is attached (`XDP_ATTACHED_NONE`).
fn xdp_of(nest: &[u8]) -> Result<Option<Xdp>, DecodeError> {
    let mut mode = None;
    let mut prog_id = 0;
    for (t, d) in attrs(nest)? {
        match (t, d.first()) {
            (IFLA_XDP_ATTACHED, Some(m)) => {
                mode = match m {
                    0 => None,
                    1 => Some("native"),
                    2 => Some("generic"),
                    3 => Some("offload"),
                    _ => Some("multi"),
                }
            }
            (IFLA_XDP_PROG_ID, _) => {
                if let Some(b) = d.get(..4) {
                    prog_id = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            _ => {}
        }
    }
    Ok(mode.map(|mode| Xdp { mode, prog_id }))
}

impl Link {
    /// The loopback device, which never carries traffic off the machine.
    pub fn is_loopback(&self) -> bool {
        self.flags & libc::IFF_LOOPBACK as u32 != 0
    }
}

/// Every interface of the caller's network namespace, in index order.
///
/// # Errors
/// `NlError` (I/O, a kernel error, or a reply that does not parse) when the link dump
/// fails.
pub fn list() -> Result<Vec<Link>, NlError> {
    let mut s = Socket::open_protocol(libc::NETLINK_ROUTE)?;
    // struct ifinfomsg, all zero: every family, every interface.
    let reply = s.raw_request(libc::RTM_GETLINK, libc::NLM_F_DUMP as u16, &[0u8; 16])?;
    let mut out = Vec::new();
    for m in decode::data_msgs(&reply)? {
        if m.ty == libc::RTM_NEWLINK {
            out.push(parse(m.payload)?);
        }
    }
    out.sort_by_key(|l| l.index);
    Ok(out)
}

/// Parses the payload of one RTM_NEWLINK message (ifinfomsg + attributes).
///
/// # Errors
/// `DecodeError` when the payload is shorter than an `ifinfomsg` or an attribute is
/// malformed.
pub fn parse(payload: &[u8]) -> Result<Link, DecodeError> {
    let short = || DecodeError("short ifinfomsg".into());
    let header = payload.get(..16).ok_or_else(short)?;
    let u32_at = |at: usize| -> Result<u32, DecodeError> {
        let b = header.get(at..at + 4).ok_or_else(short)?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let index = u32_at(4)?;
    let flags = u32_at(8)?;
    let ne32 = |d: &[u8]| d.get(..4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let mut link = Link {
        index,
        name: String::new(),
        kind: None,
        flags,
        link: None,
        link_netnsid: None,
        master: None,
        new_netnsid: None,
        xdp: None,
    };
    for (ty, data) in attrs(payload.get(16..).unwrap_or_default())? {
        match ty {
            IFLA_IFNAME => link.name = cstr(data),
            IFLA_LINK => link.link = ne32(data).filter(|i| *i != 0 && *i != index),
            IFLA_MASTER => link.master = ne32(data).filter(|i| *i != 0),
            IFLA_LINK_NETNSID => link.link_netnsid = ne32(data).map(|v| v as i32),
            IFLA_NEW_NETNSID => link.new_netnsid = ne32(data).map(|v| v as i32),
            IFLA_XDP => link.xdp = xdp_of(data)?,
            IFLA_LINKINFO => {
                for (t, d) in attrs(data)? {
                    if t == IFLA_INFO_KIND {
                        link.kind = Some(cstr(d));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(link)
}

fn cstr(d: &[u8]) -> String {
    let end = d.iter().position(|b| *b == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

/// The devices whose traffic can leave the machine and so get device-layer hooks: every
/// interface but loopback. Physical NICs, bonds, VLANs, macvlan/ipvlan (parents and
/// children), veths and bridges alike: a device that only links local workloads is cut
/// off too, which the preflight impact report says before applying.
pub fn enforced(links: &[Link]) -> Vec<String> {
    links
        .iter()
        .filter(|l| !l.is_loopback() && !l.name.is_empty())
        .map(|l| l.name.clone())
        .collect()
}

/// Whether moving `link` to another network namespace takes a way off the machine out of
/// reach of this namespace's hooks (trial21 HIGH-5): true for a device whose traffic
/// does not pass a lower device here — a physical NIC, a veth whose peer is in another
/// namespace (a lab's or container's uplink) — and false for stacked devices whose
/// frames still cross a device here (a veth with its peer here, macvlan/ipvlan/VLAN
/// children of a device here) and for devices whose underlay socket stays where they were
/// made (WireGuard, VXLAN, Geneve, tun) or that carry nothing (dummy).
pub fn moving_escapes(link: &Link) -> bool {
    const STAY_HOME: [&str; 5] = ["wireguard", "vxlan", "geneve", "tun", "dummy"];
    if link.kind.as_deref().is_some_and(|k| STAY_HOME.contains(&k)) {
        return false;
    }
    link.link.is_none() || link.link_netnsid.is_some()
}

/// The interface index the kernel would send traffic to `dst` through (`RTM_GETROUTE`),
/// or `None` when there is no route.
///
/// # Errors
/// `NlError` (I/O, a kernel error, or a reply that does not parse) when the route
/// request fails for another reason than no route.
pub fn route_dev(dst: std::net::IpAddr) -> Result<Option<u32>, NlError> {
    use libc::{RTA_DST, RTA_OIF};
    let (family, bytes) = match dst {
        std::net::IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        std::net::IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
    let mut body = vec![family, (bytes.len() * 8) as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let len = (4 + bytes.len()) as u16;
    body.extend_from_slice(&len.to_ne_bytes());
    body.extend_from_slice(&RTA_DST.to_ne_bytes());
    body.extend_from_slice(&bytes);
    let mut s = Socket::open_protocol(libc::NETLINK_ROUTE)?;
    let reply = match s.raw_request(libc::RTM_GETROUTE, 0, &body) {
        Ok(r) => r,
        Err(NlError::Kernel(e)) if e.errno == libc::ENETUNREACH || e.errno == libc::EHOSTUNREACH => return Ok(None),
        Err(e) => return Err(e),
    };
    for m in decode::data_msgs(&reply)? {
        if m.ty != libc::RTM_NEWROUTE {
            continue;
        }
        for (ty, data) in attrs(m.payload.get(12..).unwrap_or_default())? {
            if ty == RTA_OIF {
                if let Some(b) = data.get(..4) {
                    return Ok(Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: Option<&str>, lower: Option<u32>, lower_ns: Option<i32>) -> Link {
        Link {
            index: 7,
            name: "x".into(),
            kind: kind.map(String::from),
            flags: 0,
            link: lower,
            link_netnsid: lower_ns,
            master: None,
            new_netnsid: Some(3),
            xdp: None,
        }
    }

    /// Which moves take a way off the machine out of reach (trial21 HIGH-5).
    #[test]
    fn moving_a_device_escapes_only_without_a_lower_device_here() {
        assert!(moving_escapes(&link(None, None, None)), "a physical NIC");
        assert!(
            moving_escapes(&link(Some("veth"), Some(4), Some(0))),
            "an uplink veth (peer elsewhere)"
        );
        assert!(
            !moving_escapes(&link(Some("veth"), Some(4), None)),
            "a veth whose peer stays here"
        );
        assert!(
            !moving_escapes(&link(Some("macvlan"), Some(2), None)),
            "a child of a device here"
        );
        assert!(
            !moving_escapes(&link(Some("wireguard"), None, None)),
            "its socket stays here"
        );
    }
}

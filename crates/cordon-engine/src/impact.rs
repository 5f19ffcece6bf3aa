//! The preflight impact report: what a quarantine cuts off besides the host itself, read
//! from the interfaces of this network namespace before anything changes.
//!
//! The device layer drops every frame on every interface but loopback that the policy does
//! not allow, so whatever reaches the network through this host loses its connectivity
//! too: containers and namespaces behind veth pairs, bridges and their ports, macvlan and
//! ipvlan children, VMs on tap devices. Tunnels stop working unless their outer endpoint is
//! allowed; when the management server is reached through one (or through an HTTP proxy),
//! the report warns — it never refuses.

use std::net::SocketAddr;

use serde::Serialize;

/// What will be cut off besides the host, and how the server is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    /// veth pairs whose other end is in another network namespace (containers, sandboxes).
    pub namespaces: Vec<String>,
    /// Bridges, with their ports.
    pub bridges: Vec<String>,
    /// macvlan/ipvlan/macvtap devices (children of an uplink) in this namespace.
    pub macvlan_ipvlan: Vec<String>,
    /// tun/tap devices (VMs, VPN clients).
    pub taps: Vec<String>,
    /// Tunnel devices (WireGuard, OpenVPN tun, IPsec vti/xfrm, GRE, IPIP, …).
    pub tunnels: Vec<String>,
    /// For each server address: the interface the route to it leaves through.
    pub server_routes: Vec<ServerRoute>,
    /// An HTTP(S) proxy from the environment, through which a client may reach the server.
    pub proxy: Option<String>,
    /// What already moves frames around the hooks (tc filters that redirect, mirror or
    /// rewrite; XDP programs; AF_XDP sockets; trial27): Cordon removes nothing foreign, so
    /// the layers each skips will not be claimed ([`cordon_firewall::Bypass`] words).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub around: Vec<String>,
    /// Problems worth a look before applying (never a refusal).
    pub warnings: Vec<String>,
}

/// The route to one server address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerRoute {
    /// The server's address and port.
    pub server: SocketAddr,
    /// Interface name, or `None` without a route.
    pub via: Option<String>,
    /// The interface is a tunnel.
    pub tunnel: bool,
}

impl Impact {
    /// One line per non-empty item, for the human output.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut item = |what: &str, list: &[String]| {
            if !list.is_empty() {
                out.push(format!("cut off too: {what}: {}", list.join(", ")));
            }
        };
        item("other namespaces (veth peers)", &self.namespaces);
        item("bridges", &self.bridges);
        item("macvlan/ipvlan children", &self.macvlan_ipvlan);
        item("tap/tun devices (VMs, VPNs)", &self.taps);
        item("tunnels", &self.tunnels);
        for a in &self.around {
            out.push(format!(
                "goes around the hooks (left in place; its layers will not be claimed): {a}"
            ));
        }
        for r in &self.server_routes {
            out.push(format!(
                "server {} via {}{}",
                r.server,
                r.via.as_deref().unwrap_or("no route"),
                if r.tunnel { " (a tunnel)" } else { "" }
            ));
        }
        if let Some(p) = &self.proxy {
            out.push(format!("proxy in the environment: {p}"));
        }
        out
    }
}

/// Link kinds that are tunnels (rtnetlink `IFLA_INFO_KIND`); read only on Linux.
#[cfg(target_os = "linux")]
const TUNNEL_KINDS: &[&str] = &[
    "wireguard",
    "ipip",
    "gre",
    "gretap",
    "ip6gre",
    "ip6gretap",
    "sit",
    "ip6tnl",
    "vti",
    "vti6",
    "xfrm",
    "geneve",
    "vxlan",
    "ipsec",
];

/// The report for the management `servers` (resolved addresses) and the proxy found in
/// the environment.
#[cfg(target_os = "linux")]
pub fn report(servers: &[SocketAddr], proxy_env: Option<String>) -> Impact {
    use cordon_firewall::netlink::links;
    let mut imp = Impact {
        proxy: proxy_env,
        ..Impact::default()
    };
    let list = match links::list() {
        Ok(l) => l,
        Err(e) => {
            imp.warnings.push(format!("cannot list network interfaces: {e:?}"));
            return imp;
        }
    };
    let name_of = |idx: u32| list.iter().find(|l| l.index == idx).map(|l| l.name.clone());
    for l in &list {
        let kind = l.kind.as_deref().unwrap_or("");
        match kind {
            "veth" if l.link_netnsid.is_some() && l.master.is_none() => imp.namespaces.push(format!(
                "{} (peer in namespace id {})",
                l.name,
                l.link_netnsid.unwrap_or(-1)
            )),
            "veth" if l.link_netnsid.is_some() => imp.namespaces.push(format!(
                "{} (peer in namespace id {}, port of {})",
                l.name,
                l.link_netnsid.unwrap_or(-1),
                l.master.and_then(name_of).unwrap_or_default()
            )),
            "bridge" => {
                let ports: Vec<String> = list
                    .iter()
                    .filter(|p| p.master == Some(l.index))
                    .map(|p| p.name.clone())
                    .collect();
                imp.bridges.push(format!("{} (ports: {})", l.name, ports.join(" ")));
            }
            "macvlan" | "macvtap" | "ipvlan" | "ipvtap" => imp.macvlan_ipvlan.push(format!(
                "{} ({kind} on {})",
                l.name,
                l.link
                    .and_then(name_of)
                    .unwrap_or_else(|| "another namespace's device".into())
            )),
            "tun" => imp.taps.push(l.name.clone()),
            k if TUNNEL_KINDS.contains(&k) => imp.tunnels.push(format!("{} ({k})", l.name)),
            _ => {}
        }
    }
    {
        use cordon_firewall::netlink::around;
        let found = around::all(&list);
        imp.around = found.iter().map(|b| b.to_string()).collect();
        if !imp.around.is_empty() {
            imp.warnings.push(format!(
                "{} path(s) around Cordon's hooks are in place (tc filters, XDP programs, AF_XDP sockets): Cordon removes nothing foreign, so the quarantine will not claim the layers they skip; delete them first for full coverage",
                imp.around.len()
            ));
        }
    }
    for s in servers {
        let dev = links::route_dev(s.ip()).ok().flatten();
        let link = dev.and_then(|i| list.iter().find(|l| l.index == i));
        let tunnel = link.is_some_and(|l| {
            let k = l.kind.as_deref().unwrap_or("");
            k == "tun" || TUNNEL_KINDS.contains(&k)
        });
        if tunnel {
            imp.warnings.push(format!(
                "the server {s} is reached through tunnel {}: unless the tunnel's outer endpoint is allowed (--allow), the quarantine cuts the host off from its server",
                link.map(|l| l.name.as_str()).unwrap_or("?")
            ));
        }
        imp.server_routes.push(ServerRoute {
            server: *s,
            via: link.map(|l| l.name.clone()),
            tunnel,
        });
    }
    if let Some(p) = &imp.proxy {
        imp.warnings.push(format!(
            "an HTTP proxy is configured in the environment ({p}): a client that reaches the server through it needs the proxy allowed (--allow)"
        ));
    }
    imp
}

/// Off Linux: only the proxy; interfaces are not inspected.
#[cfg(not(target_os = "linux"))]
pub fn report(servers: &[SocketAddr], proxy_env: Option<String>) -> Impact {
    let _ = servers;
    Impact {
        proxy: proxy_env,
        ..Impact::default()
    }
}

/// The proxy a client would use from the environment (`https_proxy`, `HTTPS_PROXY`,
/// `all_proxy`, `ALL_PROXY`), if any.
pub fn proxy_from_env() -> Option<String> {
    ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_every_kind_and_the_server_route() {
        let imp = Impact {
            bridges: vec!["br0 (ports: eth1 vnet0)".into()],
            taps: vec!["vnet0".into()],
            server_routes: vec![ServerRoute {
                server: "192.0.2.1:8443".parse().unwrap(),
                via: Some("wg0".into()),
                tunnel: true,
            }],
            ..Impact::default()
        };
        let lines = imp.lines();
        assert_eq!(lines[0], "cut off too: bridges: br0 (ports: eth1 vnet0)");
        assert_eq!(lines[1], "cut off too: tap/tun devices (VMs, VPNs): vnet0");
        assert_eq!(lines[2], "server 192.0.2.1:8443 via wg0 (a tunnel)");
        assert!(Impact::default().lines().is_empty());
    }
}

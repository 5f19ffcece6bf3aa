//! The test lab of design §7: throwaway network namespaces on a private bridge, using
//! only documentation addresses, with a server, a resolver, another host and a DHCP
//! server around the endpoint. Used by `cordon lab` and by the integration tests.
//!
//! Everything lives in namespaces the lab creates (the bridge too, in its own "switch"
//! namespace), so nothing here can touch the machine's own network. Dropping a [`Lab`]
//! deletes every namespace it made, also when a test panics.

pub mod cli;
pub mod matrix;
pub mod netns;
pub mod probe;
pub mod services;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};

use services::Service;

/// Lab addresses (documentation ranges only, design §3/§7).
pub mod addr {
    use std::net::{Ipv4Addr, Ipv6Addr};
    // The bridge network: 192.0.2.0/24 (RFC 5737 TEST-NET-1) and 2001:db8:c0::/64
    // (RFC 3849).
    /// The management server's IPv4 address.
    pub const SERVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// The management server's IPv6 address.
    pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc0, 0, 0, 0, 0, 1);
    /// The DNS resolver's IPv4 address.
    pub const RESOLVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
    /// The DNS resolver's IPv6 address.
    pub const RESOLVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc0, 0, 0, 0, 0, 0x53);
    /// The quarantined endpoint's IPv4 address.
    pub const ENDPOINT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    /// The quarantined endpoint's IPv6 address.
    pub const ENDPOINT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc0, 0, 0, 0, 0, 0x10);
    /// The other host (must become unreachable), IPv4.
    pub const OTHER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
    /// The other host, IPv6.
    pub const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc0, 0, 0, 0, 0, 0x99);
    /// The DHCP server's IPv4 address (named in the endpoint's lease).
    pub const DHCP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 67);
    /// The DHCP server's IPv6 address.
    pub const DHCP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc0, 0, 0, 0, 0, 0x67);
    /// The DHCP host's link-local address: DHCPv6 servers answer from there.
    pub const DHCP6_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x67);
    /// Routed part of the lab (optional, [`super::LabOptions::routed`]): the endpoint
    /// reaches a far network through router 1 (on the bridge) and router 2, and the link
    /// between the routers has an MTU of 1280 bytes, as on many real paths.
    pub const ROUTER1_4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
    /// Router 1 on the bridge, IPv6.
    pub const ROUTER1_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc0, 0, 0, 0, 0, 0xfe);
    /// The router-to-router link (MTU [`SMALL_MTU`]).
    pub const HOP_R1_4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    /// Router 2 on the router-to-router link, IPv4.
    pub const HOP_R2_4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
    /// Router 1 on the router-to-router link, IPv6.
    pub const HOP_R1_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, 0, 1);
    /// Router 2 on the router-to-router link, IPv6.
    pub const HOP_R2_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, 0, 2);
    /// The far network behind router 2: 203.0.113.128/25 and 2001:db8:2::/64.
    pub const FAR_NET4: &str = "203.0.113.128/25";
    /// The far network, IPv6 (CIDR).
    pub const FAR_NET6: &str = "2001:db8:2::/64";
    /// Router 2 on the far network, IPv4.
    pub const ROUTER2_FAR4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 129);
    /// Router 2 on the far network, IPv6.
    pub const ROUTER2_FAR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0, 0, 0, 0, 1);
    /// A far server (allowed in the tests) and a far host that is not.
    pub const FAR_SERVER4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 130);
    /// The far server, IPv6.
    pub const FAR_SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0, 0, 0, 0, 0x130);
    /// The far host that is not allowed, IPv4.
    pub const FAR_OTHER4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 131);
    /// The far host that is not allowed, IPv6.
    pub const FAR_OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0, 0, 0, 0, 0x131);
    /// The MTU of the router-to-router hop (the IPv6 minimum).
    pub const SMALL_MTU: u32 = 1280;
    /// Port of the far hosts' byte counter ([`super::services::Service::Sink`]).
    pub const SINK_PORT: u16 = 8443;
    /// The management server's TCP port (the lab's echo, or a real Cordon server).
    pub const SERVER_PORT: u16 = 8443;
    /// A second TCP port on the server that is not allowed.
    pub const SERVER_OTHER_PORT: u16 = 9000;
    /// TCP echo port on the other host.
    pub const OTHER_TCP_PORT: u16 = 80;
    /// UDP echo port on the other host.
    pub const OTHER_UDP_PORT: u16 = 7777;
    /// A TCP listener on the endpoint, for inbound and loopback probes.
    pub const ENDPOINT_PORT: u16 = 2222;
    /// Name under which the endpoint's /etc/hosts knows the server (v4 and v6); the lab's
    /// resolver answers it too (see [`super::Lab::set_dns`]).
    pub const SERVER_NAME: &str = "server.cordon.lab";
    /// Where the server goes when a test moves it (DR failover, re-IP) or adds a replica
    /// address; the server certificate made by the lab covers these too.
    pub const MOVED_SERVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    /// The moved server's IPv6 address.
    pub const MOVED_SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc0, 0, 0, 0, 0, 2);
    /// HTTP CONNECT proxy on the other host, when a test starts one.
    pub const PROXY_PORT: u16 = 3128;
}
use addr::*;

/// The hosts of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// The host that gets quarantined (runs `cordon` / the agent).
    Endpoint,
    /// The management server.
    Server,
    /// The DNS resolver.
    Resolver,
    /// Another host on the same network, which the quarantine must cut off.
    Other,
    /// The DHCP server.
    Dhcp,
}

impl Host {
    /// Every host on the bridge, endpoint first.
    pub const ALL: [Host; 5] = [Host::Endpoint, Host::Server, Host::Resolver, Host::Other, Host::Dhcp];

    fn short(self) -> &'static str {
        match self {
            Host::Endpoint => "ep",
            Host::Server => "srv",
            Host::Resolver => "dns",
            Host::Other => "oth",
            Host::Dhcp => "dhcp",
        }
    }

    fn addrs(self) -> (std::net::Ipv4Addr, std::net::Ipv6Addr) {
        match self {
            Host::Endpoint => (ENDPOINT4, ENDPOINT6),
            Host::Server => (SERVER4, SERVER6),
            Host::Resolver => (RESOLVER4, RESOLVER6),
            Host::Other => (OTHER4, OTHER6),
            Host::Dhcp => (DHCP4, DHCP6),
        }
    }
}

/// What the lab runs besides the network itself.
#[derive(Debug, Clone, Copy)]
pub struct LabOptions {
    /// Run the lab's own TCP echo on the server's port 8443. Off when a test runs a real
    /// Cordon server there instead.
    pub server_echo: bool,
    /// Give the endpoint firewall rules of its own (an nftables table and iptables rules)
    /// so that tests can prove release leaves them untouched.
    pub user_rules: bool,
    /// Add two routers and a far network behind a 1280-byte-MTU hop (path MTU tests).
    pub routed: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            server_echo: true,
            user_rules: true,
            routed: false,
        }
    }
}

/// The name `cordon lab --keep` makes resolve to the server everywhere in the lab, so
/// docs/server.md's quick start runs there as written.
pub const KEEP_NAME: &str = "cordon.example.net";

/// The extra namespaces of the routed lab (suffixes of the lab prefix).
const ROUTED_NS: [&str; 3] = ["r1", "r2", "far"];

/// The endpoint owner's own nftables table: harmless (it matches an address that never
/// appears in the lab) and without counters, so its listing is stable.
pub const USER_NFT_RULES: &str = "table inet user_fw {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tip saddr 198.51.100.9 accept\n\t}\n}\n";

/// Prefixes of labs alive in this process, so Ctrl-C can tear them down.
static LIVE_LABS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static LAB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running lab: its namespaces, bridge and services. Dropping it stops the services
/// and deletes every namespace it made.
pub struct Lab {
    prefix: String,
    /// Where [`Lab::spawn`] writes the output of the processes it starts (`srv.log`,
    /// `ep.log`, …); `None`: inherited.
    log_dir: Option<PathBuf>,
    cordon_bin: PathBuf,
    stop: Arc<AtomicBool>,
    services: Vec<JoinHandle<Result<()>>>,
    /// What the lab's resolver answers.
    zone: services::Zone,
}

/// The namespace prefix for a lab test that names its namespaces `name` (`fix14i-df`):
/// `name` itself, or, with `CORDON_TEST_NS_PREFIX` set (1 to 8 lowercase letters or
/// digits, as for generated names), that prefix and `name`'s part after its first `-`
/// (`f14q-df`), so a run on a shared machine creates only namespaces named after it. The
/// parts after the first `-` of the names tests give must therefore differ.
pub fn test_prefix(name: &str) -> String {
    match std::env::var("CORDON_TEST_NS_PREFIX") {
        Ok(base)
            if (1..=8).contains(&base.len()) && base.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            format!("{base}-{}", name.split_once('-').map_or(name, |(_, rest)| rest))
        }
        _ => name.to_string(),
    }
}

impl Lab {
    /// Builds the lab, failing with a clear message when not root or `ip` is missing.
    pub fn build(cordon_bin: &Path, options: LabOptions) -> Result<Lab> {
        Self::build_named(cordon_bin, options, None)
    }

    /// Like [`Lab::build`], with namespaces named `PREFIX-ep`, `PREFIX-srv`, … instead of
    /// the generated `cordon<pid>x<n>-…` (`cordon lab --keep --prefix`).
    ///
    /// # Errors
    /// A prefix that is not 1 to 12 lowercase letters, digits or `-`, or namespaces of
    /// that name that exist already; and what [`Lab::build`] fails on.
    pub fn build_named(cordon_bin: &Path, options: LabOptions, prefix: Option<&str>) -> Result<Lab> {
        preflight()?;
        let prefix = match prefix {
            Some(p) => {
                let ok = (1..=12).contains(&p.len())
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    bail!("lab prefix {p:?}: use 1 to 12 lowercase letters, digits or '-'");
                }
                let taken = Command::new("ip")
                    .args(["netns", "list"])
                    .output()
                    .map(|out| {
                        String::from_utf8_lossy(&out.stdout)
                            .lines()
                            .any(|l| l.starts_with(&format!("{p}-")))
                    })
                    .unwrap_or(false);
                if taken {
                    bail!("namespaces named {p}-… exist already (another lab?); pick another prefix");
                }
                p.to_string()
            }
            None => {
                let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
                // CORDON_TEST_NS_PREFIX: namespaces named after the caller (concurrent
                // runs on one machine keep to their own names).
                let base = std::env::var("CORDON_TEST_NS_PREFIX")
                    .ok()
                    .filter(|p| {
                        (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    })
                    .unwrap_or_else(|| "cordon".into());
                format!("{base}{}x{n}", std::process::id())
            }
        };
        if let Ok(mut live) = LIVE_LABS.lock() {
            live.push(prefix.clone());
        }
        let mut lab = Lab {
            prefix,
            log_dir: None,
            cordon_bin: cordon_bin.to_path_buf(),
            stop: Arc::new(AtomicBool::new(false)),
            services: Vec::new(),
            zone: services::Zone::default(),
        };
        lab.set_dns(SERVER_NAME, &[SERVER4.into(), SERVER6.into()]);
        // If building fails halfway, Drop removes whatever was created.
        lab.create_network()?;
        if options.routed {
            lab.create_routed()?;
        }
        if options.user_rules {
            lab.add_user_rules()?;
        }
        lab.start_services(options)?;
        Ok(lab)
    }

    /// Namespace name of `host`.
    pub fn ns(&self, host: Host) -> String {
        format!("{}-{}", self.prefix, host.short())
    }

    fn switch_ns(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    fn etc_dir(&self, host: Host) -> PathBuf {
        PathBuf::from("/etc/netns").join(self.ns(host))
    }

    /// Namespace of a routed-lab node (`r1`, `r2`, `far`).
    pub fn routed_ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// The endpoint's DHCP lease directory: a dhclient lease from the lab's DHCP server,
    /// as a host that got its address by DHCP has. `cordon` run in the endpoint finds it
    /// through `CORDON_DHCP_LEASES`.
    pub fn lease_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("{}-leases", self.prefix))
    }

    /// Router 1 on the bridge, router 2 behind a 1280-byte link, the far network behind
    /// router 2 with a far server and a far other host (one namespace, two addresses).
    fn create_routed(&mut self) -> Result<()> {
        let sw = self.switch_ns();
        let [r1, r2, far] = ROUTED_NS.map(|n| self.routed_ns(n));
        for ns in [&r1, &r2, &far] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // Router 1: on the bridge, like any lab host.
        ip(&[
            "-n", &sw, "link", "add", "p-r1", "type", "veth", "peer", "name", "eth0", "netns", &r1,
        ])?;
        ip(&["-n", &sw, "link", "set", "p-r1", "master", "br0", "up"])?;
        ip(&["-n", &r1, "addr", "add", &format!("{ROUTER1_4}/24"), "dev", "eth0"])?;
        ip(&[
            "-n",
            &r1,
            "addr",
            "add",
            &format!("{ROUTER1_6}/64"),
            "dev",
            "eth0",
            "nodad",
        ])?;
        // Router 1 <-> router 2: the small-MTU hop.
        ip(&[
            "-n", &r1, "link", "add", "hop", "type", "veth", "peer", "name", "hop", "netns", &r2,
        ])?;
        let mtu = SMALL_MTU.to_string();
        for (ns, v4, v6) in [(&r1, HOP_R1_4, HOP_R1_6), (&r2, HOP_R2_4, HOP_R2_6)] {
            ip(&["-n", ns, "link", "set", "hop", "mtu", &mtu])?;
            ip(&["-n", ns, "addr", "add", &format!("{v4}/30"), "dev", "hop"])?;
            ip(&["-n", ns, "addr", "add", &format!("{v6}/64"), "dev", "hop", "nodad"])?;
        }
        // Router 2 <-> far network.
        ip(&[
            "-n", &r2, "link", "add", "far", "type", "veth", "peer", "name", "eth0", "netns", &far,
        ])?;
        ip(&["-n", &r2, "addr", "add", &format!("{ROUTER2_FAR4}/25"), "dev", "far"])?;
        ip(&[
            "-n",
            &r2,
            "addr",
            "add",
            &format!("{ROUTER2_FAR6}/64"),
            "dev",
            "far",
            "nodad",
        ])?;
        for a in [FAR_SERVER4.to_string() + "/25", FAR_OTHER4.to_string() + "/25"] {
            ip(&["-n", &far, "addr", "add", &a, "dev", "eth0"])?;
        }
        for a in [FAR_SERVER6.to_string() + "/64", FAR_OTHER6.to_string() + "/64"] {
            ip(&["-n", &far, "addr", "add", &a, "dev", "eth0", "nodad"])?;
        }
        for (ns, dev) in [(&r1, "eth0"), (&r1, "hop"), (&r2, "hop"), (&r2, "far"), (&far, "eth0")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        // Forwarding on in the routers' own namespaces (never on this machine).
        for ns in [&r1, &r2] {
            for key in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
                let out = Command::new("ip")
                    .args(["netns", "exec", ns, "sysctl", "-qw", key])
                    .output()
                    .context("running sysctl")?;
                if !out.status.success() {
                    bail!("sysctl {key} in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim());
                }
            }
        }
        // Routes: endpoint -> far via r1; r1 -> far via r2; r2 -> lab via r1; far -> r2.
        let ep = self.ns(Host::Endpoint);
        let routes: [(&str, &str, String); 8] = [
            (&ep, FAR_NET4, ROUTER1_4.to_string()),
            (&ep, FAR_NET6, ROUTER1_6.to_string()),
            (&r1, FAR_NET4, HOP_R2_4.to_string()),
            (&r1, FAR_NET6, HOP_R2_6.to_string()),
            (&r2, "192.0.2.0/24", HOP_R1_4.to_string()),
            (&r2, "2001:db8:c0::/64", HOP_R1_6.to_string()),
            (&far, "default", ROUTER2_FAR4.to_string()),
            (&far, "default", ROUTER2_FAR6.to_string()),
        ];
        for (ns, to, via) in routes {
            let fam = if via.contains(':') { "-6" } else { "-4" };
            ip(&["-n", ns, fam, "route", "add", to, "via", &via])?;
        }
        Ok(())
    }

    fn create_network(&mut self) -> Result<()> {
        let sw = self.switch_ns();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for host in Host::ALL {
            let ns = self.ns(host);
            ip(&["netns", "add", &ns])?;
            let port = format!("p-{}", host.short());
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            let (v4, v6) = host.addrs();
            ip(&["-n", &ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        let dhcp = self.ns(Host::Dhcp);
        ip(&[
            "-n",
            &dhcp,
            "addr",
            "add",
            &format!("{DHCP6_LINK_LOCAL}/64"),
            "dev",
            "eth0",
            "nodad",
        ])?;
        // The lease the endpoint's DHCP client would have from the lab's DHCP server.
        let leases = self.lease_dir();
        std::fs::create_dir_all(&leases).with_context(|| format!("creating {}", leases.display()))?;
        std::fs::write(
            leases.join("dhclient.eth0.leases"),
            format!(
                "lease {{\n  interface \"eth0\";\n  fixed-address {ENDPOINT4};\n  option subnet-mask 255.255.255.0;\n  option dhcp-server-identifier {DHCP4};\n}}\n"
            ),
        )?;
        // The endpoint resolves through the lab resolver and knows the server by name.
        let etc = self.etc_dir(Host::Endpoint);
        std::fs::create_dir_all(&etc).with_context(|| format!("creating {}", etc.display()))?;
        std::fs::write(
            etc.join("resolv.conf"),
            format!("nameserver {RESOLVER4}\nnameserver {RESOLVER6}\noptions timeout:1 attempts:1\n"),
        )?;
        std::fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n::1 localhost\n{SERVER4} {SERVER_NAME}\n{SERVER6} {SERVER_NAME}\n"),
        )?;
        Ok(())
    }

    fn add_user_rules(&self) -> Result<()> {
        let ns = self.ns(Host::Endpoint);
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .context("the lab needs `nft` (apt-get install nftables)")?;
        if let Some(mut stdin) = nft.stdin.take() {
            use std::io::Write;
            stdin.write_all(USER_NFT_RULES.as_bytes())?;
        }
        if !nft.wait()?.success() {
            bail!("loading the endpoint's own nftables rules failed");
        }
        // One rule in each built-in chain, as on a host with a firewall of its own.
        // (iptables-nft registers a built-in chain on first use and never removes it;
        // with all three in use, "exactly as before" is a byte-for-byte comparison.)
        for (prog, net) in [("iptables", "198.51.100.9/32"), ("ip6tables", "2001:db8:ffff::9/128")] {
            for (chain, flag) in [("INPUT", "-s"), ("OUTPUT", "-d"), ("FORWARD", "-s")] {
                let out = self
                    .exec(Host::Endpoint, &[prog, "-A", chain, flag, net, "-j", "ACCEPT"])
                    .with_context(|| format!("the lab needs `{prog}` (apt-get install iptables)"))?;
                if !out.status.success() {
                    bail!(
                        "{prog} -A {chain} failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
        Ok(())
    }

    fn start_services(&mut self, options: LabOptions) -> Result<()> {
        let mut list: Vec<(Host, Service, SocketAddr)> = vec![
            (
                Host::Server,
                Service::TcpEcho,
                SocketAddr::new(SERVER4.into(), SERVER_OTHER_PORT),
            ),
            (
                Host::Server,
                Service::TcpEcho,
                SocketAddr::new(SERVER6.into(), SERVER_OTHER_PORT),
            ),
            (Host::Resolver, Service::DnsUdp, SocketAddr::new(RESOLVER4.into(), 53)),
            (Host::Resolver, Service::DnsUdp, SocketAddr::new(RESOLVER6.into(), 53)),
            (Host::Resolver, Service::DnsTcp, SocketAddr::new(RESOLVER4.into(), 53)),
            (Host::Resolver, Service::DnsTcp, SocketAddr::new(RESOLVER6.into(), 53)),
            (
                Host::Other,
                Service::TcpEcho,
                SocketAddr::new(OTHER4.into(), OTHER_TCP_PORT),
            ),
            (
                Host::Other,
                Service::TcpEcho,
                SocketAddr::new(OTHER6.into(), OTHER_TCP_PORT),
            ),
            (
                Host::Other,
                Service::UdpEcho,
                SocketAddr::new(OTHER4.into(), OTHER_UDP_PORT),
            ),
            (
                Host::Other,
                Service::UdpEcho,
                SocketAddr::new(OTHER6.into(), OTHER_UDP_PORT),
            ),
            (Host::Other, Service::DnsUdp, SocketAddr::new(OTHER4.into(), 53)),
            (Host::Other, Service::DnsUdp, SocketAddr::new(OTHER6.into(), 53)),
            (Host::Other, Service::DnsTcp, SocketAddr::new(OTHER4.into(), 53)),
            // An "attacker" answering on the DHCP server ports (DHCP as a tunnel).
            (Host::Other, Service::UdpEcho, SocketAddr::new(OTHER4.into(), 67)),
            (Host::Other, Service::UdpEcho, SocketAddr::new(OTHER6.into(), 547)),
            // Dual-stack: also accepts IPv4.
            (Host::Endpoint, Service::TcpEcho, "[::]:2222".parse()?),
        ];
        if options.server_echo {
            list.push((
                Host::Server,
                Service::TcpEcho,
                SocketAddr::new(SERVER4.into(), SERVER_PORT),
            ));
            list.push((
                Host::Server,
                Service::TcpEcho,
                SocketAddr::new(SERVER6.into(), SERVER_PORT),
            ));
        }
        for (host, service, addr) in list {
            // Only the lab's resolver knows names; DNS elsewhere is a leak probe target.
            let zone = if host == Host::Resolver {
                self.zone.clone()
            } else {
                services::Zone::default()
            };
            let handle = services::start_zone(&self.ns(host), service, addr, self.stop.clone(), zone)?;
            self.services.push(handle);
        }
        if options.routed {
            let far = self.routed_ns("far");
            for ip in [
                IpAddr::from(FAR_SERVER4),
                FAR_SERVER6.into(),
                FAR_OTHER4.into(),
                FAR_OTHER6.into(),
            ] {
                let handle = services::start(&far, Service::Sink, SocketAddr::new(ip, SINK_PORT), self.stop.clone())?;
                self.services.push(handle);
            }
        }
        Ok(())
    }

    /// Makes the lab's resolver answer `name` with `addrs` (A and AAAA, TTL 0).
    pub fn set_dns(&self, name: &str, addrs: &[std::net::IpAddr]) {
        if let Ok(mut z) = self.zone.lock() {
            z.insert(name.to_ascii_lowercase(), addrs.to_vec());
        }
    }

    /// Drops [`SERVER_NAME`] from the endpoint's /etc/hosts, so the endpoint finds the
    /// server through the lab's resolver (DNS) only. Affects processes started later.
    pub fn server_name_by_dns_only(&self) -> Result<()> {
        let path = self.etc_dir(Host::Endpoint).join("hosts");
        std::fs::write(&path, "127.0.0.1 localhost\n::1 localhost\n")
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Adds (`add`) or removes an address on a host's interface (`ip addr add|del`).
    pub fn host_address(&self, host: Host, addr: std::net::IpAddr, add: bool) -> Result<()> {
        let ns = self.ns(host);
        let (cidr, flags): (String, &[&str]) = match addr {
            std::net::IpAddr::V4(v4) => (format!("{v4}/24"), &[]),
            std::net::IpAddr::V6(v6) => (format!("{v6}/64"), &["nodad"]),
        };
        if add {
            // Keep added addresses when the first one of the subnet is deleted (the kernel
            // otherwise deletes every secondary address along with the primary).
            let out = self.exec(host, &["sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1"])?;
            if !out.status.success() {
                bail!(
                    "sysctl promote_secondaries in {ns}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        let mut args = vec!["-n", &ns, "addr", if add { "add" } else { "del" }, &cidr, "dev", "eth0"];
        if add {
            args.extend_from_slice(flags);
        }
        ip(&args)
    }

    /// Starts an HTTP CONNECT proxy on the other host ([`OTHER4`]/[`OTHER6`] port
    /// [`PROXY_PORT`]); names are looked up in the lab's zone. Returns the count of
    /// tunnels it opened.
    pub fn start_proxy(&mut self) -> Result<Arc<AtomicUsize>> {
        let tunnels = Arc::new(AtomicUsize::new(0));
        for addr in [
            SocketAddr::new(OTHER4.into(), PROXY_PORT),
            SocketAddr::new(OTHER6.into(), PROXY_PORT),
        ] {
            let h = services::start_proxy(
                &self.ns(Host::Other),
                addr,
                self.zone.clone(),
                tunnels.clone(),
                self.stop.clone(),
            )?;
            self.services.push(h);
        }
        Ok(tunnels)
    }

    /// Runs `cordon ARGS` inside the endpoint namespace (through `ip netns exec`, which
    /// also applies the endpoint's own resolv.conf and hosts files).
    pub fn cordon(&self, args: &[&str]) -> Result<Output> {
        self.cordon_env(args, &[])
    }

    /// Like [`Lab::cordon`] with extra environment variables (e.g. a PATH without `nft`).
    /// They are set by `env` inside the namespace, so `ip` itself is still found.
    pub fn cordon_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        let bin = self.cordon_bin.to_string_lossy().to_string();
        let assignments: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut argv: Vec<&str> = Vec::new();
        if !assignments.is_empty() {
            argv.push("/usr/bin/env");
            argv.extend(assignments.iter().map(String::as_str));
        }
        argv.push(&bin);
        argv.extend_from_slice(args);
        self.exec(Host::Endpoint, &argv)
    }

    /// Runs a command inside a host's namespace and waits for it.
    pub fn exec(&self, host: Host, argv: &[&str]) -> Result<Output> {
        let ns = self.ns(host);
        self.command(host, argv)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {argv:?} in {ns}"))
    }

    /// Starts a long-running command inside a host's namespace.
    pub fn spawn(&self, host: Host, argv: &[&str]) -> Result<std::process::Child> {
        let ns = self.ns(host);
        let mut cmd = self.command(host, argv);
        cmd.stdin(Stdio::null());
        if let Some(dir) = &self.log_dir {
            let path = dir.join(format!("{}.log", host.short()));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            cmd.stdout(file.try_clone()?).stderr(file);
        }
        cmd.spawn().with_context(|| format!("starting {argv:?} in {ns}"))
    }

    /// Writes the output of processes started from now on by [`Lab::spawn`] to
    /// `dir/<host>.log` (`srv.log`, `ep.log`, …).
    pub fn set_log_dir(&mut self, dir: &Path) {
        self.log_dir = Some(dir.to_path_buf());
    }

    /// The log file of processes [`Lab::spawn`] starts on `host`, if logs are kept.
    pub fn log_path(&self, host: Host) -> Option<PathBuf> {
        self.log_dir.as_ref().map(|d| d.join(format!("{}.log", host.short())))
    }

    /// Makes `name` resolve to the server's addresses everywhere in the lab: the lab's
    /// resolver answers it, and the server and other hosts resolve through that resolver
    /// (the endpoint always does). Lets docs' examples (`cordon.example.net`) run as
    /// written in the lab.
    ///
    /// # Errors
    /// When `/etc/netns/<ns>/resolv.conf` cannot be written.
    pub fn serve_name(&self, name: &str) -> Result<()> {
        self.set_dns(name, &[SERVER4.into(), SERVER6.into()]);
        for host in [Host::Server, Host::Other] {
            let etc = self.etc_dir(host);
            std::fs::create_dir_all(&etc).with_context(|| format!("creating {}", etc.display()))?;
            std::fs::write(
                etc.join("resolv.conf"),
                format!("nameserver {RESOLVER4}\nnameserver {RESOLVER6}\noptions timeout:1 attempts:1\n"),
            )?;
            std::fs::write(etc.join("hosts"), "127.0.0.1 localhost\n::1 localhost\n")?;
        }
        Ok(())
    }

    /// `ip netns exec NS ARGV…`; in the endpoint with `CORDON_DHCP_LEASES` pointing at
    /// its lease directory, so Cordon finds the lab's DHCP server as on a real host.
    pub fn command(&self, host: Host, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)]).args(argv);
        if host == Host::Endpoint {
            cmd.env("CORDON_DHCP_LEASES", self.lease_dir());
        }
        cmd
    }

    /// Opens a TCP connection from a host that stays open (an "established session").
    pub fn connect(&self, from: Host, to: SocketAddr) -> Result<TcpStream> {
        netns::run_in(&self.ns(from), move || {
            let s =
                TcpStream::connect_timeout(&to, probe::PROBE_TIMEOUT).with_context(|| format!("connecting to {to}"))?;
            Ok(s)
        })
    }

    /// The endpoint's whole firewall as nftables and iptables show it, for "exactly as
    /// before" comparisons (iptables-save's time-stamp comments dropped).
    pub fn firewall_snapshot(&self) -> Result<String> {
        let mut snap = String::new();
        for argv in [
            &["nft", "list", "ruleset"][..],
            &["iptables-save"][..],
            &["ip6tables-save"][..],
        ] {
            let out = self.exec(Host::Endpoint, argv)?;
            if !out.status.success() {
                bail!("{argv:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            let text = String::from_utf8_lossy(&out.stdout);
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                snap.push_str(&strip_counters(line));
                snap.push('\n');
            }
        }
        Ok(snap)
    }

    /// Probes the whole leak matrix.
    pub fn matrix(&self) -> Result<Vec<matrix::Outcome>> {
        matrix::probe_all(self)
    }

    /// Deletes every namespace of the lab. Safe to call more than once.
    pub fn teardown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.services.drain(..) {
            let _ = handle.join();
        }
        teardown_prefix(&self.prefix);
        let _ = std::fs::remove_dir_all(self.lease_dir());
        if let Ok(mut live) = LIVE_LABS.lock() {
            live.retain(|p| p != &self.prefix);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Deletes the namespaces and /etc/netns entries of a lab by prefix, and what Cordon
/// registered for each namespace under `/run/cordon/net-<netns inode>` (tables' home state
/// directories, the agent's paths file): the kernel reuses inode numbers, so a later
/// namespace would otherwise inherit the entries of a deleted one.
pub fn teardown_prefix(prefix: &str) {
    let sw = format!("{prefix}-sw");
    forget_registry(&sw);
    let _ = quiet_ip(&["netns", "del", &sw]);
    for host in Host::ALL {
        let ns = format!("{prefix}-{}", host.short());
        forget_registry(&ns);
        let _ = quiet_ip(&["netns", "del", &ns]);
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&ns));
    }
    for node in ROUTED_NS {
        let ns = format!("{prefix}-{node}");
        forget_registry(&ns);
        let _ = quiet_ip(&["netns", "del", &ns]);
    }
}

/// Removes Cordon's per-namespace registry of the named namespace (`/run/netns/NAME` is
/// the namespace's bind mount, so its inode is the namespace's: see
/// [`cordon_engine::registry_dir`]). Never the
/// registry of this process's own namespace.
fn forget_registry(ns: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(PathBuf::from("/run/netns").join(ns)) else {
        return;
    };
    let own = std::fs::metadata("/proc/self/ns/net").map(|o| o.ino()).ok();
    if own == Some(m.ino()) {
        return;
    }
    let _ = std::fs::remove_dir_all(cordon_engine::registry_dir(m.ino()));
}

/// Tears down every lab of this process (for the Ctrl-C handler).
pub fn teardown_all_live() {
    let prefixes = LIVE_LABS.lock().map(|l| l.clone()).unwrap_or_default();
    for p in prefixes {
        teardown_prefix(&p);
    }
}

/// Drops packet counters (`counter packets 3 bytes 224`, `[3:224]`) that traffic changes.
fn strip_counters(line: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    let mut iter = line.split(' ').peekable();
    while let Some(w) = iter.next() {
        if (w == "packets" || w == "bytes") && iter.peek().is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())) {
            iter.next();
            continue;
        }
        if w.starts_with('[') && w.ends_with(']') && w.contains(':') {
            continue;
        }
        words.push(w);
    }
    words.join(" ")
}

fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the lab needs root to create network namespaces (run as root, e.g. sudo)");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        bail!("the lab needs the `ip` command (apt-get install iproute2)");
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn quiet_ip(args: &[&str]) -> std::io::Result<()> {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(drop)
}

//! The resolved quarantine policy: only addresses, no names. Every renderer takes a
//! [`Policy`]; building one normalizes it (sorted, de-duplicated, overlapping networks
//! merged) so the same intent always renders to the same bytes.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::spec::{AllowSpec, Target, Transport};
use crate::PolicyError;

/// DNS port, allowed over UDP and TCP to each resolver.
pub const DNS_PORT: u16 = 53;

/// Which IP family a rule belongs to; renderers emit one block per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (nftables `ip`, pf `inet`, iptables).
    V4,
    /// IPv6 (nftables `ip6`, pf `inet6`, ip6tables).
    V6,
}

impl Family {
    /// Both families in render order: IPv4 first, then IPv6.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The family's usual name, `IPv4` or `IPv6`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The family of an address as written: an IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is [`Family::V6`] here; spec parsing turns those into IPv4
    /// before they get this far.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// One allowed destination with its transport, as resolved from an `--allow` spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Exception {
    /// Destination network; a single host is a `/32` or `/128`.
    pub net: IpNet,
    /// What is allowed to it: every protocol, or one TCP or UDP destination port.
    pub transport: Transport,
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.net, self.transport)
    }
}

/// The complete quarantine policy of design §3, resolved to addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Policy {
    /// Management servers: outbound TCP to each, replies in.
    pub servers: Vec<SocketAddr>,
    /// Management servers reached over UDP (`udp://HOST:PORT` server specs, e.g. a Wazuh
    /// manager with `<protocol>udp</protocol>`): outbound UDP to each, replies in. A UDP
    /// server cannot be proven reachable by connecting, so a quarantine keeping only UDP
    /// servers is reported "not verified (UDP)", never verified. Omitted from JSON when
    /// empty, so TCP-only records keep their bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub udp_servers: Vec<SocketAddr>,
    /// DNS resolvers (UDP and TCP 53). Empty with `--no-dns`.
    pub resolvers: Vec<IpAddr>,
    /// DHCPv4 68->67 / 67->68 and DHCPv6 546->547 / 547->546, limited to the broadcast /
    /// multicast addresses and [`Policy::dhcp_servers`] (design §3 point 4).
    pub dhcp: bool,
    /// The DHCP servers the host uses (from its lease files, or `--dhcp-server`): the only
    /// unicast peers of the DHCP ports. Empty: broadcast (v4) / `ff02::1:2` (v6) out only,
    /// and DHCPv6 replies from link-local addresses only.
    #[serde(default)]
    pub dhcp_servers: Vec<IpAddr>,
    /// Networks to which every protocol is allowed (bare IP/CIDR specs).
    pub allow_nets: Vec<IpNet>,
    /// Single address + TCP port exceptions.
    pub allow_tcp: Vec<SocketAddr>,
    /// Single address + UDP port exceptions.
    pub allow_udp: Vec<SocketAddr>,
    /// The state directory (absolute path) that records this quarantine and its claims.
    /// Not a rule: it changes no packet's fate. The nftables renderers carry it in the
    /// tables' comment ([`crate::render::table_comment`]), set in the same transaction as
    /// the rules, so every Cordon process finds a quarantine's records from the kernel
    /// itself, whatever `--state-dir` it was given and even when the `/run/cordon`
    /// registry is gone (issue #14, trial12 N-1..N-3). `None`: the bare ownership marker
    /// (a dry run, or a record written before this existed). Omitted from JSON when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_dir: Option<String>,
    /// Who holds the claims this quarantine serves, one token each (`wazuh`, `agent`,
    /// `agent:HOSTID` for an enrolled agent's claim, see `cordon_engine::claims`). Not a
    /// rule: like [`Policy::record_dir`] it rides in the tables' comment
    /// ([`crate::render::table_comment`]), in the same transaction as the rules, so the
    /// kernel itself says whose quarantine is in force when the claims file could not be
    /// written (issue #14 trial20 HIGH-B: a full state disk). Tokens are lowercase ASCII
    /// letters, digits, `-`, `_`, `.` and one `:`; the comment drops them when they do not
    /// fit. Empty: not known (the bare comment). Omitted from JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claimed_by: Vec<String>,
}

impl Policy {
    /// An empty builder; add the resolved pieces, then [`PolicyBuilder::build`].
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// Every TCP destination (servers, TCP exceptions, resolvers on 53) of one family.
    pub fn tcp_destinations(&self, family: Family) -> Vec<SocketAddr> {
        self.port_destinations(self.servers.iter().chain(self.allow_tcp.iter()), family)
    }

    /// Every UDP destination (UDP servers, UDP exceptions, resolvers on 53) of one family.
    pub fn udp_destinations(&self, family: Family) -> Vec<SocketAddr> {
        self.port_destinations(self.udp_servers.iter().chain(self.allow_udp.iter()), family)
    }

    /// `explicit` plus every resolver on the DNS port, of one family, sorted and unique.
    fn port_destinations<'a>(&self, explicit: impl Iterator<Item = &'a SocketAddr>, family: Family) -> Vec<SocketAddr> {
        let mut all: Vec<SocketAddr> = explicit
            .copied()
            .chain(self.resolvers.iter().map(|r| SocketAddr::new(*r, DNS_PORT)))
            .filter(|s| Family::of(&s.ip()) == family)
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// DHCP servers of one family, sorted (see [`Policy::dhcp_servers`]).
    pub fn dhcp_servers_of(&self, family: Family) -> Vec<IpAddr> {
        self.dhcp_servers
            .iter()
            .filter(|a| Family::of(a) == family)
            .copied()
            .collect()
    }

    /// The families in which the open networks cover every address (`0.0.0.0/0`, `::/0`,
    /// or pieces that merge into them): there the quarantine isolates nothing, so the
    /// engine refuses such a policy unless told otherwise, and `status` says so.
    pub fn fully_open_families(&self) -> Vec<Family> {
        Family::BOTH
            .into_iter()
            .filter(|f| self.open_networks(*f).iter().any(|n| n.prefix_len() == 0))
            .collect()
    }

    /// Networks open to every protocol, of one family.
    pub fn open_networks(&self, family: Family) -> Vec<IpNet> {
        self.allow_nets
            .iter()
            .filter(|n| Family::of(&n.addr()) == family)
            .copied()
            .collect()
    }

    /// Every exception as a flat list, for display and for renderers that have no sets.
    pub fn exceptions(&self) -> Vec<Exception> {
        let mut out = Vec::new();
        for family in Family::BOTH {
            for d in self.tcp_destinations(family) {
                out.push(Exception {
                    net: IpNet::from(d.ip()),
                    transport: Transport::Tcp(d.port()),
                });
            }
            for d in self.udp_destinations(family) {
                out.push(Exception {
                    net: IpNet::from(d.ip()),
                    transport: Transport::Udp(d.port()),
                });
            }
            for n in self.open_networks(family) {
                out.push(Exception {
                    net: n,
                    transport: Transport::Any,
                });
            }
        }
        out
    }
}

/// Collects resolved pieces of a policy and normalizes them in [`PolicyBuilder::build`].
#[derive(Debug, Default, Clone)]
pub struct PolicyBuilder {
    policy: Policy,
}

impl PolicyBuilder {
    /// Adds a management server: outbound TCP to `addr` (address and port) is allowed,
    /// with its replies.
    pub fn server(mut self, addr: SocketAddr) -> Self {
        self.policy.servers.push(addr);
        self
    }

    /// Adds a management server reached over UDP: outbound UDP to `addr` is allowed, with
    /// its replies (see [`Policy::udp_servers`]).
    pub fn udp_server(mut self, addr: SocketAddr) -> Self {
        self.policy.udp_servers.push(addr);
        self
    }

    /// Adds a DNS resolver: UDP and TCP to port [`DNS_PORT`] (53) of `addr`.
    pub fn resolver(mut self, addr: IpAddr) -> Self {
        self.policy.resolvers.push(addr);
        self
    }

    /// Keeps DHCP (v4 and v6) working while quarantined; see [`Policy::dhcp`].
    pub fn dhcp(mut self, on: bool) -> Self {
        self.policy.dhcp = on;
        self
    }

    /// Adds a DHCP server the host uses: a unicast peer of the DHCP ports (see
    /// [`Policy::dhcp_servers`]). Has no effect on the rules unless [`Self::dhcp`] is on.
    pub fn dhcp_server(mut self, addr: IpAddr) -> Self {
        self.policy.dhcp_servers.push(addr);
        self
    }

    /// Allows every protocol to `net`. Host bits are cleared (`192.0.2.7/24` becomes
    /// `192.0.2.0/24`); overlapping networks are merged by [`Self::build`].
    pub fn allow_net(mut self, net: IpNet) -> Self {
        self.policy.allow_nets.push(net.trunc());
        self
    }

    /// Allows outbound TCP to one address and port (with replies).
    pub fn allow_tcp(mut self, addr: SocketAddr) -> Self {
        self.policy.allow_tcp.push(addr);
        self
    }

    /// Allows outbound UDP to one address and port (with replies).
    pub fn allow_udp(mut self, addr: SocketAddr) -> Self {
        self.policy.allow_udp.push(addr);
        self
    }

    /// Adds a parsed spec given the addresses its host resolved to (for IP and CIDR
    /// targets, `addrs` is ignored: the spec already holds the address).
    pub fn allow_spec(mut self, spec: &AllowSpec, addrs: &[IpAddr]) -> Self {
        let ips: Vec<IpAddr> = match &spec.target {
            Target::Ip(ip) => vec![*ip],
            Target::Net(net) => {
                if spec.transport == Transport::Any {
                    return self.allow_net(*net);
                }
                // Parsing never yields a network with a port; treat it as its address.
                vec![net.addr()]
            }
            Target::Name(_) => addrs.to_vec(),
        };
        for ip in ips {
            self = match spec.transport {
                Transport::Any => self.allow_net(IpNet::from(ip)),
                Transport::Tcp(p) => self.allow_tcp(SocketAddr::new(ip, p)),
                Transport::Udp(p) => self.allow_udp(SocketAddr::new(ip, p)),
            };
        }
        self
    }

    /// Sorts, de-duplicates and merges; writes IPv4-mapped IPv6 addresses
    /// (`::ffff:192.0.2.1`) as the IPv4 address they stand for, because the kernel sees
    /// such a peer as IPv4 and a v6 rule for it would never match; drops loopback
    /// resolvers (loopback traffic is always allowed, so a local stub needs no rule).
    pub fn build(self) -> Policy {
        let mut p = self.policy;
        for s in p
            .servers
            .iter_mut()
            .chain(p.udp_servers.iter_mut())
            .chain(p.allow_tcp.iter_mut())
            .chain(p.allow_udp.iter_mut())
        {
            s.set_ip(s.ip().to_canonical());
        }
        for a in p.resolvers.iter_mut().chain(p.dhcp_servers.iter_mut()) {
            *a = a.to_canonical();
        }
        for n in p.allow_nets.iter_mut() {
            *n = canonical_net(*n);
        }
        sort_dedup(&mut p.servers);
        sort_dedup(&mut p.udp_servers);
        p.resolvers.retain(|r| !r.is_loopback());
        sort_dedup(&mut p.resolvers);
        p.dhcp_servers.retain(|r| !r.is_loopback() && !r.is_unspecified());
        sort_dedup(&mut p.dhcp_servers);
        p.allow_nets = IpNet::aggregate(&p.allow_nets);
        sort_dedup(&mut p.allow_tcp);
        sort_dedup(&mut p.allow_udp);
        p
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:192.0.2.0/120`) as the IPv4 network it stands
/// for (`192.0.2.0/24`); every other network unchanged (RFC 4291 §2.5.5.2).
pub fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(|n| IpNet::V4(n.trunc()))
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

fn sort_dedup<T: Ord>(v: &mut Vec<T>) {
    v.sort();
    v.dedup();
}

/// Name of Cordon's own firewall object (nftables table, iptables chain prefix, pf
/// anchor). Restricted so that it is valid in every backend: a letter, then letters,
/// digits or `_`, 24 characters at most (iptables chain names are short).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TableName(String);

impl TableName {
    /// The name used when `--table` is not given.
    pub const DEFAULT: &'static str = "cordon";

    /// Validates `name`.
    ///
    /// # Errors
    /// [`PolicyError::InvalidTableName`] when it is empty or longer than 24 bytes, does not
    /// start with an ASCII letter, or holds anything but ASCII letters, digits and `_`.
    pub fn new(name: &str) -> Result<Self, PolicyError> {
        let invalid = |reason: &str| PolicyError::InvalidTableName {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if name.is_empty() || name.len() > 24 {
            return Err(invalid("must be 1 to 24 characters"));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(invalid("must start with a letter"));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid("only letters, digits and '_' are allowed"));
        }
        Ok(TableName(name.to_string()))
    }

    /// The name as given (case kept; nftables and pf use it verbatim).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Prefix for iptables chains: `cordon` -> `CORDON` (chains `CORDON-IN` ...).
    pub fn chain_prefix(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

impl Default for TableName {
    fn default() -> Self {
        TableName(Self::DEFAULT.to_string())
    }
}

impl TryFrom<String> for TableName {
    type Error = PolicyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TableName::new(&s)
    }
}

impl From<TableName> for String {
    fn from(t: TableName) -> String {
        t.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The families in which `specs` (literal addresses and networks; names count as nothing,
/// since they resolve to single addresses) leave every address open to every protocol —
/// `0.0.0.0/0`, `::/0`, `::ffff:0.0.0.0/96`, or pieces that merge into them. A quarantine
/// with such exceptions isolates nothing in that family: the engine refuses it unless
/// `--allow-no-isolation` is given, the server refuses it at request time, and the agent
/// leaves those exceptions out (see [`whole_family_exceptions`]).
pub fn no_isolation_families(specs: &[AllowSpec]) -> Vec<Family> {
    specs
        .iter()
        .fold(Policy::builder(), |b, s| b.allow_spec(s, &[]))
        .build()
        .fully_open_families()
}

/// The specs among `specs` that open a network to every protocol in one of
/// `families` (so leaving them all out closes that family again), in their order.
pub fn whole_family_exceptions<'a>(specs: &'a [AllowSpec], families: &[Family]) -> Vec<&'a AllowSpec> {
    specs
        .iter()
        .filter(|s| {
            s.transport == Transport::Any && {
                let alone = Policy::builder().allow_spec(s, &[]).build();
                families.iter().any(|f| !alone.open_networks(*f).is_empty())
            }
        })
        .collect()
}

impl std::str::FromStr for TableName {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TableName::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_normalizes() {
        let p = Policy::builder()
            .server("192.0.2.1:8443".parse().unwrap())
            .server("192.0.2.1:8443".parse().unwrap())
            .resolver("127.0.0.53".parse().unwrap())
            .resolver("192.0.2.53".parse().unwrap())
            .allow_net("198.51.100.0/25".parse().unwrap())
            .allow_net("198.51.100.128/25".parse().unwrap())
            .allow_net("198.51.100.7/32".parse().unwrap())
            .build();
        assert_eq!(p.servers.len(), 1);
        assert_eq!(p.resolvers, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.allow_nets, vec!["198.51.100.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(
            p.tcp_destinations(Family::V4),
            vec!["192.0.2.1:8443".parse().unwrap(), "192.0.2.53:53".parse().unwrap()]
        );
        assert_eq!(p.udp_destinations(Family::V4), vec!["192.0.2.53:53".parse().unwrap()]);
        assert!(p.tcp_destinations(Family::V6).is_empty());
    }

    #[test]
    fn whole_family_exceptions_are_found_also_in_pieces_and_mapped_forms() {
        let specs = |v: &[&str]| v.iter().map(|s| AllowSpec::parse(s).unwrap()).collect::<Vec<_>>();
        for (given, families) in [
            (vec!["0.0.0.0/0"], vec![Family::V4]),
            (vec!["0.0.0.0/1", "128.0.0.0/1"], vec![Family::V4]),
            (vec!["::ffff:0.0.0.0/96"], vec![Family::V4]),
            (vec!["::/1", "8000::/1"], vec![Family::V6]),
            (vec!["0.0.0.0/0", "::/0"], vec![Family::V4, Family::V6]),
            (vec!["0.0.0.0/1", "tcp://128.0.0.0:22", "https://h.example"], vec![]),
            (vec!["198.51.100.0/24", "2001:db8::/32"], vec![]),
        ] {
            let s = specs(&given);
            assert_eq!(no_isolation_families(&s), families, "{given:?}");
            let out = whole_family_exceptions(&s, &families);
            let rest: Vec<AllowSpec> = s.iter().filter(|x| !out.contains(x)).cloned().collect();
            assert!(no_isolation_families(&rest).is_empty(), "{given:?} minus {out:?}");
            if families.is_empty() {
                assert!(out.is_empty(), "{given:?}");
            }
        }
    }

    #[test]
    fn allow_spec_uses_resolved_addresses_for_names_only() {
        let spec = AllowSpec::parse("tcp://h.example:22").unwrap();
        let p = Policy::builder()
            .allow_spec(&spec, &["192.0.2.5".parse().unwrap(), "2001:db8::5".parse().unwrap()])
            .build();
        assert_eq!(p.allow_tcp.len(), 2);
        let spec = AllowSpec::parse("198.51.100.0/24").unwrap();
        let p = Policy::builder().allow_spec(&spec, &[]).build();
        assert_eq!(p.allow_nets, vec!["198.51.100.0/24".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn ipv4_mapped_addresses_become_ipv4_everywhere() {
        let p = Policy::builder()
            .server("[::ffff:192.0.2.1]:8443".parse().unwrap())
            .allow_tcp("[::ffff:198.51.100.5]:22".parse().unwrap())
            .allow_udp("[::ffff:198.51.100.6]:514".parse().unwrap())
            .resolver("::ffff:192.0.2.53".parse().unwrap())
            .dhcp_server("::ffff:192.0.2.67".parse().unwrap())
            .allow_net("::ffff:203.0.113.0/120".parse().unwrap())
            .build();
        assert_eq!(p.servers, vec!["192.0.2.1:8443".parse().unwrap()]);
        assert_eq!(p.allow_tcp, vec!["198.51.100.5:22".parse().unwrap()]);
        assert_eq!(p.allow_udp, vec!["198.51.100.6:514".parse().unwrap()]);
        assert_eq!(p.resolvers, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.dhcp_servers, vec!["192.0.2.67".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.allow_nets, vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]);
        assert!(p.tcp_destinations(Family::V6).is_empty());
        assert!(p.open_networks(Family::V6).is_empty());
    }

    #[test]
    fn allow_sets_covering_everything_are_detected() {
        let open = |nets: &[&str]| {
            let mut b = Policy::builder();
            for n in nets {
                b = b.allow_net(n.parse().unwrap());
            }
            b.build().fully_open_families()
        };
        assert_eq!(open(&["0.0.0.0/0"]), vec![Family::V4]);
        assert_eq!(open(&["::/0"]), vec![Family::V6]);
        assert_eq!(
            open(&["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]),
            Family::BOTH.to_vec()
        );
        assert!(open(&["0.0.0.0/1", "198.51.100.0/24"]).is_empty());
        assert!(open(&[]).is_empty());
    }

    #[test]
    fn table_names_are_checked() {
        assert!(TableName::new("cordon").is_ok());
        assert!(TableName::new("cordon_test2").is_ok());
        assert!(TableName::new("").is_err());
        assert!(TableName::new("1abc").is_err());
        assert!(TableName::new("a;drop").is_err());
        assert!(TableName::new(&"a".repeat(25)).is_err());
        assert_eq!(TableName::new("cordon").unwrap().chain_prefix(), "CORDON");
    }
}

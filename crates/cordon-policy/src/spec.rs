//! Parsing of destination specs (`--allow`, `--server`, `--verify`), design §4:
//!
//! * `tcp://HOST:PORT`, `udp://HOST:PORT`
//! * `https://HOST[:PORT][/path]` (tcp, default 443), `http://HOST[:PORT][/path]` (tcp, 80)
//! * `wss://HOST[:PORT][/path]` (tcp, default 443) and `ws://HOST[:PORT][/path]` (tcp, 80):
//!   Velociraptor frontends speak WebSocket since 0.72, and `config.server_urls` then
//!   holds `wss://` URLs. The port is the URL's, else the scheme's default, which is what
//!   Velociraptor's `Windows.Remediation.Quarantine` `get_port` does (it assumes 443 for
//!   every TLS URL). `wss` is TLS like `https` and displays as `https://HOST:PORT`.
//! * IPv6 literals in brackets: `tcp://[2001:db8::1]:8443`
//! * a bare IP or CIDR: every protocol and port to that network.
//!
//! HOST may be a DNS name; resolving it is the caller's job (this crate does no I/O).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::PolicyError;

/// Which traffic to a destination is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "proto", content = "port", rename_all = "lowercase")]
pub enum Transport {
    /// Every protocol and port.
    Any,
    /// TCP to this destination port (1..=65535).
    Tcp(u16),
    /// UDP to this destination port (1..=65535).
    Udp(u16),
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Any => f.write_str("any"),
            Transport::Tcp(p) => write!(f, "tcp/{p}"),
            Transport::Udp(p) => write!(f, "udp/{p}"),
        }
    }
}

/// Where a spec points before resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// One address literal (IPv6 in brackets in URLs); an IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`) is stored as the IPv4 address.
    Ip(IpAddr),
    /// A network in CIDR form (`198.51.100.0/24`, `2001:db8::/32`). Host bits must be
    /// zero (`192.0.2.1/24` is refused, not truncated); a `/32` or `/128` is a
    /// [`Target::Ip`], and IPv4-mapped networks become IPv4.
    Net(IpNet),
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(ip) => write!(f, "{ip}"),
            Target::Net(net) => write!(f, "{net}"),
            Target::Name(n) => f.write_str(n),
        }
    }
}

/// One parsed destination spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AllowSpec {
    /// Where the traffic may go.
    pub target: Target,
    /// Which traffic: a bare IP or CIDR is [`Transport::Any`], URLs are TCP.
    pub transport: Transport,
    /// True for `https://` specs: verification may speak TLS to it.
    #[serde(default)]
    pub tls: bool,
}

impl AllowSpec {
    /// Parses a `--allow` spec (all forms above).
    ///
    /// # Errors
    /// [`PolicyError::InvalidSpec`] naming the input and what is wrong with it.
    pub fn parse(input: &str) -> Result<Self, PolicyError> {
        parse(input).map_err(|reason| PolicyError::InvalidSpec {
            spec: input.to_string(),
            reason,
        })
    }

    /// Parses a `--server` URL: like [`AllowSpec::parse`], but it must name one port on
    /// one host. A TCP server (`tcp://`, `https://`, `wss://`, `http://`, `ws://`) is also
    /// the default verification target; a UDP server (`udp://HOST:PORT`, e.g. a Wazuh
    /// manager in UDP mode) is allowed over UDP but cannot be verified by connecting, so
    /// a quarantine keeping only UDP servers is reported "not verified (UDP)".
    ///
    /// # Errors
    /// [`PolicyError::InvalidServer`] naming the input and what is wrong with it.
    pub fn parse_server(input: &str) -> Result<Self, PolicyError> {
        let invalid = |reason: String| PolicyError::InvalidServer {
            spec: input.to_string(),
            reason,
        };
        let spec = parse(input).map_err(invalid)?;
        match (&spec.target, spec.transport) {
            (Target::Net(_), _) => Err(invalid("a server must be one host, not a network".into())),
            (_, Transport::Tcp(_) | Transport::Udp(_)) => Ok(spec),
            _ => Err(invalid(
                "a server needs a port: use https://HOST[:PORT], wss://HOST[:PORT], http://HOST[:PORT], tcp://HOST:PORT or udp://HOST:PORT"
                    .into(),
            )),
        }
    }
}

impl FromStr for AllowSpec {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AllowSpec::parse(s)
    }
}

impl fmt::Display for AllowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.target {
            Target::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            other => other.to_string(),
        };
        match self.transport {
            Transport::Any => write!(f, "{}", self.target),
            Transport::Tcp(p) if self.tls => write!(f, "https://{host}:{p}"),
            Transport::Tcp(p) => write!(f, "tcp://{host}:{p}"),
            Transport::Udp(p) => write!(f, "udp://{host}:{p}"),
        }
    }
}

fn parse(input: &str) -> Result<AllowSpec, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("empty".into());
    }
    let Some((scheme, rest)) = input.split_once("://") else {
        return parse_bare(input);
    };
    let scheme = scheme.to_ascii_lowercase();
    let (default_port, is_url) = match scheme.as_str() {
        "tcp" | "udp" => (None, false),
        "https" | "wss" => (Some(443), true),
        "http" | "ws" => (Some(80), true),
        other => {
            return Err(format!(
                "unknown scheme {other:?} (expected tcp, udp, http, https, ws or wss)"
            ))
        }
    };
    // URLs may carry a path (`https://velo.example:8000/`); tcp/udp specs may not.
    let authority = match rest.find(['/', '?', '#']) {
        Some(i) if is_url => &rest[..i],
        Some(_) => return Err("unexpected path after HOST:PORT".into()),
        None => rest,
    };
    if authority.contains('@') {
        return Err("user names and passwords are not allowed in specs".into());
    }
    let (host, port) = split_host_port(authority)?;
    let port = match (port, default_port) {
        (Some(p), _) => parse_port(p)?,
        (None, Some(d)) => d,
        (None, None) => return Err(format!("missing port (write {scheme}://HOST:PORT)")),
    };
    let target = parse_host(host)?;
    let transport = if scheme == "udp" {
        Transport::Udp(port)
    } else {
        Transport::Tcp(port)
    };
    Ok(AllowSpec {
        target,
        transport,
        tls: scheme == "https" || scheme == "wss",
    })
}

fn parse_bare(input: &str) -> Result<AllowSpec, String> {
    let target = if input.contains('/') {
        let net: IpNet = input.parse().map_err(|_| "not a valid CIDR network".to_string())?;
        // Host bits set (`10.0.0.0/1`, `192.0.2.1/24`): the network that would be allowed
        // (`0.0.0.0/1`) is not the one written, and for a quarantine that difference is a
        // hole; refuse and name both readings instead of guessing.
        if net.trunc() != net {
            return Err(format!(
                "{input} has host bits set: as a network it is {} (the address alone is {}); write the one you mean",
                net.trunc(),
                net.addr()
            ));
        }
        let net = crate::model::canonical_net(net);
        if net.prefix_len() == net.max_prefix_len() {
            Target::Ip(net.addr())
        } else {
            Target::Net(net)
        }
    } else if let Ok(ip) = input.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        // `::ffff:192.0.2.1` is how IPv6 APIs write an IPv4 peer; the kernel sees IPv4.
        Target::Ip(ip.to_canonical())
    } else {
        return Err(
            "expected tcp://HOST:PORT, udp://HOST:PORT, http(s)://HOST[:PORT], ws(s)://HOST[:PORT], an IP address or a CIDR network"
                .into(),
        );
    };
    Ok(AllowSpec {
        target,
        transport: Transport::Any,
        tls: false,
    })
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing ']' after IPv6 address".to_string())?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected {after:?} after ']'")),
            },
        };
    }
    match authority.matches(':').count() {
        0 => Ok((authority, None)),
        1 => {
            let (h, p) = authority.split_at(authority.find(':').unwrap_or(0));
            Ok((h, Some(&p[1..])))
        }
        _ => Err("IPv6 addresses must be written in brackets, e.g. tcp://[2001:db8::1]:443".into()),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 5 {
        return Err(format!("port {text:?} is not a number from 1 to 65535"));
    }
    match text.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!("port {text} is out of range (1-65535)")),
    }
}

fn parse_host(host: &str) -> Result<Target, String> {
    if host.is_empty() {
        return Err("missing host".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Target::Ip(ip.to_canonical()));
    }
    if host.contains('/') {
        return Err("a network (CIDR) cannot have a port; give a bare CIDR instead".into());
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    validate_hostname(&name)?;
    Ok(Target::Name(name))
}

/// RFC 1123 host names: labels of 1-63 letters, digits and hyphens, not starting or
/// ending with a hyphen; 253 characters at most.
fn validate_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} is not a valid host name"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{name:?} is not a valid host name"));
        }
    }
    // A name made only of digits and dots is a mistyped IPv4 address, not a name.
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{name:?} is not a valid IPv4 address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> AllowSpec {
        AllowSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn err(s: &str) -> String {
        AllowSpec::parse(s).expect_err(s).to_string()
    }

    #[test]
    fn parses_every_documented_form() {
        let cases = [
            (
                "tcp://192.0.2.1:8443",
                Target::Ip("192.0.2.1".parse().unwrap()),
                Transport::Tcp(8443),
            ),
            (
                "udp://192.0.2.1:514",
                Target::Ip("192.0.2.1".parse().unwrap()),
                Transport::Udp(514),
            ),
            (
                "https://velo.example.com",
                Target::Name("velo.example.com".into()),
                Transport::Tcp(443),
            ),
            (
                "https://velo.example.com:8000/",
                Target::Name("velo.example.com".into()),
                Transport::Tcp(8000),
            ),
            (
                "http://Velo.Example.com.",
                Target::Name("velo.example.com".into()),
                Transport::Tcp(80),
            ),
            (
                "tcp://[2001:db8::1]:8443",
                Target::Ip("2001:db8::1".parse().unwrap()),
                Transport::Tcp(8443),
            ),
            (
                "https://[2001:db8::1]",
                Target::Ip("2001:db8::1".parse().unwrap()),
                Transport::Tcp(443),
            ),
            (
                "198.51.100.7",
                Target::Ip("198.51.100.7".parse().unwrap()),
                Transport::Any,
            ),
            (
                "198.51.100.0/24",
                Target::Net("198.51.100.0/24".parse().unwrap()),
                Transport::Any,
            ),
            (
                "2001:db8:1::/48",
                Target::Net("2001:db8:1::/48".parse().unwrap()),
                Transport::Any,
            ),
            (
                "2001:db8::5",
                Target::Ip("2001:db8::5".parse().unwrap()),
                Transport::Any,
            ),
            ("192.0.2.7/32", Target::Ip("192.0.2.7".parse().unwrap()), Transport::Any),
        ];
        for (input, target, transport) in cases {
            let spec = ok(input);
            assert_eq!(spec.target, target, "{input}");
            assert_eq!(spec.transport, transport, "{input}");
        }
        assert!(ok("https://x.example").tls);
        assert!(!ok("tcp://x.example:1").tls);
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        assert!(err("tcp://192.0.2.1:0").contains("out of range"));
        assert!(err("tcp://192.0.2.1:65536").contains("out of range"));
        assert!(err("tcp://192.0.2.1:99999999").contains("not a number"));
        assert!(err("tcp://192.0.2.1").contains("missing port"));
        assert!(err("tcp://2001:db8::1:80").contains("brackets"));
        assert!(err("ftp://192.0.2.1:21").contains("unknown scheme"));
        assert!(err("tcp://:80").contains("missing host"));
        assert!(err("tcp://bad_-.name-:80").contains("host name"));
        assert!(err("tcp://192.0.2.1:80/x").contains("path"));
        assert!(err("https://user:pw@h.example").contains("passwords"));
        assert!(err("server.example").contains("expected"));
        assert!(err("192.0.2.0/33").contains("CIDR"));
        assert!(err("tcp://999.1.1.1:80").contains("IPv4"));
        assert!(err("").contains("empty"));
        assert!(err("tcp://[2001:db8::1:80").contains("']'"));
    }

    /// `--allow 10.0.0.0/1` used to become `0.0.0.0/1` without a word: a network with host
    /// bits set is refused, naming both readings (exit 2 at the CLI).
    #[test]
    fn networks_with_host_bits_set_are_refused_not_truncated() {
        for (input, net, addr) in [
            ("10.0.0.0/1", "0.0.0.0/1", "10.0.0.0"),
            ("198.51.100.9/24", "198.51.100.0/24", "198.51.100.9"),
            ("2001:db8::1/32", "2001:db8::/32", "2001:db8::1"),
            (
                "::ffff:198.51.100.1/120",
                "::ffff:198.51.100.0/120",
                "::ffff:198.51.100.1",
            ),
        ] {
            let e = err(input);
            assert!(e.contains("host bits"), "{input}: {e}");
            assert!(e.contains(net) && e.contains(addr), "{input}: {e}");
        }
        // Exact networks and host routes still parse.
        assert_eq!(ok("0.0.0.0/1").target, Target::Net("0.0.0.0/1".parse().unwrap()));
        assert_eq!(ok("192.0.2.7/32").target, Target::Ip("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn ipv4_mapped_ipv6_literals_mean_ipv4() {
        let v4 = |s: &str| Target::Ip(s.parse().unwrap());
        assert_eq!(ok("https://[::ffff:192.0.2.1]:8443").target, v4("192.0.2.1"));
        assert_eq!(ok("tcp://[::ffff:c000:201]:22").target, v4("192.0.2.1"));
        assert_eq!(ok("::ffff:192.0.2.9").target, v4("192.0.2.9"));
        assert_eq!(
            ok("::ffff:198.51.100.0/120").target,
            Target::Net("198.51.100.0/24".parse().unwrap())
        );
        assert_eq!(
            AllowSpec::parse_server("https://[::ffff:192.0.2.1]:8443")
                .unwrap()
                .to_string(),
            "https://192.0.2.1:8443"
        );
    }

    #[test]
    fn websocket_urls_are_tcp_with_url_ports() {
        // What Velociraptor 0.72+ clients have in config.server_urls.
        let cases = [
            ("wss://velo.example.com/", "velo.example.com", 443, true),
            ("wss://velo.example.com:8000/", "velo.example.com", 8000, true),
            ("WSS://[2001:db8::5]:8443/path", "2001:db8::5", 8443, true),
            ("ws://velo.example.com", "velo.example.com", 80, false),
        ];
        for (input, host, port, tls) in cases {
            for spec in [
                AllowSpec::parse(input).unwrap(),
                AllowSpec::parse_server(input).unwrap(),
            ] {
                assert_eq!(spec.target.to_string(), host, "{input}");
                assert_eq!(spec.transport, Transport::Tcp(port), "{input}");
                assert_eq!(spec.tls, tls, "{input}");
            }
        }
        assert!(err("wss://user@velo.example.com").contains("passwords"));
        assert!(err("wss://velo.example.com:0/").contains("out of range"));
        assert!(err("wsx://velo.example.com").contains("wss"));
    }

    #[test]
    fn server_must_be_one_host_and_port() {
        assert!(AllowSpec::parse_server("https://192.0.2.1:8443").is_ok());
        assert!(AllowSpec::parse_server("192.0.2.1").is_err());
        assert!(AllowSpec::parse_server("198.51.100.0/24").is_err());
        assert!(AllowSpec::parse_server("udp://192.0.2.1").is_err());
    }

    /// A Wazuh agent in UDP mode talks to its manager over UDP 1514: `udp://` is a server
    /// spec (it used to be refused with "a server needs a TCP port").
    #[test]
    fn udp_server_specs_are_accepted() {
        let s = AllowSpec::parse_server("udp://192.0.2.30:1514").unwrap();
        assert_eq!(s.transport, Transport::Udp(1514));
        assert_eq!(s.to_string(), "udp://192.0.2.30:1514");
        let s = AllowSpec::parse_server("UDP://Wazuh.Example.net:1514").unwrap();
        assert_eq!(s.target, Target::Name("wazuh.example.net".into()));
        assert_eq!(
            AllowSpec::parse_server("udp://[2001:db8::30]:1514").unwrap().transport,
            Transport::Udp(1514)
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "tcp://192.0.2.1:8443",
            "udp://[2001:db8::1]:53",
            "https://h.example:443",
            "198.51.100.0/24",
            "192.0.2.9",
        ] {
            assert_eq!(ok(s).to_string(), s);
            assert_eq!(ok(&ok(s).to_string()), ok(s));
        }
    }
}

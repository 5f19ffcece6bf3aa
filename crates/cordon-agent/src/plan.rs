//! What the agent asks the engine to enforce for a desired quarantine (issue 14):
//!
//! * its own transport — every configured server URL and the proxy, resolved to all their
//!   addresses (plus addresses that worked before, see [`crate::reconcile`]) — so a
//!   quarantined host can always be released;
//! * each exception resolved on its own: one that does not parse or resolve is left out
//!   and named in [`Plan::degraded`]. The quarantine goes in without it (fail closed) and
//!   the agent keeps retrying the name, instead of refusing the whole quarantine and
//!   leaving the host open.
//!
//! Pure apart from the [`NameResolver`] seam, so the rules are unit-tested here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use cordon_engine::{EngineError, IsolateRequest};
use cordon_policy::{AllowSpec, PolicyError, Target, Transport};
use cordon_proto::DesiredState;

/// Looks names up (all A and AAAA addresses).
pub trait NameResolver: Send + Sync {
    /// # Errors
    /// [`EngineError::Resolve`] (name and the resolver's OS error as its source) when the
    /// name does not resolve.
    fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, EngineError>;
}

/// A server URL or the proxy of the agent configuration that is not a usable destination.
/// The policy parser's error stays the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The proxy is not an `http://` or `https://` URL.
    #[error("proxy {url:?} must be an http://HOST:PORT URL")]
    ProxyScheme {
        /// The proxy as configured.
        url: String,
    },
    /// The proxy URL does not parse as `http(s)://HOST:PORT`.
    #[error("proxy {url:?}")]
    Proxy {
        /// The proxy as configured.
        url: String,
        /// Why it does not parse.
        #[source]
        source: PolicyError,
    },
    /// A server URL does not parse as `https://HOST[:PORT]`.
    #[error("server {url:?}")]
    Server {
        /// The server URL as configured.
        url: String,
        /// Why it does not parse.
        #[source]
        source: PolicyError,
    },
}

/// The system resolver (`getaddrinfo`: /etc/hosts, then the configured DNS resolvers,
/// which stay allowed while quarantined).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl NameResolver for SystemResolver {
    fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, EngineError> {
        cordon_engine::resolve::resolve_name(name)
    }
}

/// Parses `proxy = "http://HOST:PORT"` (or `https://`).
///
/// # Errors
/// [`TransportError::ProxyScheme`] for another scheme, [`TransportError::Proxy`] (the
/// parser's error as source) when the rest is not `HOST:PORT`.
pub fn parse_proxy(url: &str) -> Result<AllowSpec, TransportError> {
    let lower = url.trim().to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(TransportError::ProxyScheme { url: url.to_string() });
    }
    AllowSpec::parse_server(url.trim()).map_err(|source| TransportError::Proxy {
        url: url.to_string(),
        source,
    })
}

/// The agent's own destinations as configured: server URLs and the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnTransport {
    /// The server URLs, in failover order.
    pub servers: Vec<AllowSpec>,
    /// The same server URLs as configured (`https://HOST:PORT`), in the same order.
    pub urls: Vec<String>,
    /// The explicit proxy, if configured.
    pub proxy: Option<AllowSpec>,
}

/// The result of resolving the agent's own destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Every address and port the servers and the proxy resolved to.
    pub addrs: BTreeSet<SocketAddr>,
    /// One line per server or proxy name that did not resolve, as the agent reports it
    /// in `degraded`: `server NAME unresolved: REASON` (or `proxy NAME …`).
    pub failures: Vec<String>,
    /// The addresses that only a DNS answer (or hosts file) says are a server's: address
    /// → the server URL whose name resolved to it. Whoever answers the name can put any
    /// address here, so the agent keeps such an address in a quarantine's allow set only
    /// once its server answered there over mutual TLS (trial17 MED-3).
    pub named: BTreeMap<SocketAddr, String>,
}

impl OwnTransport {
    /// From validated config values.
    ///
    /// # Errors
    /// [`TransportError`] naming the server URL or proxy that does not parse.
    pub fn new(server_urls: &[String], proxy: Option<&str>) -> Result<Self, TransportError> {
        let mut servers = Vec::new();
        for u in server_urls {
            servers
                .push(AllowSpec::parse_server(u).map_err(|source| TransportError::Server { url: u.clone(), source })?);
        }
        let proxy = proxy.map(parse_proxy).transpose()?;
        Ok(OwnTransport {
            servers,
            urls: server_urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            proxy,
        })
    }

    /// Resolves every server and the proxy to all their addresses.
    pub fn resolve(&self, r: &dyn NameResolver) -> Resolved {
        let mut out = Resolved::default();
        let kinds = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| ("server", s, self.urls.get(i)));
        for (kind, spec, url) in kinds.chain(self.proxy.iter().map(|p| ("proxy", p, None))) {
            let Transport::Tcp(port) = spec.transport else { continue };
            match &spec.target {
                Target::Ip(ip) => {
                    out.addrs.insert(SocketAddr::new(*ip, port));
                }
                Target::Net(net) => {
                    out.addrs.insert(SocketAddr::new(net.addr(), port));
                }
                Target::Name(name) => match r.lookup(name) {
                    Ok(ips) if !ips.is_empty() => {
                        for ip in ips {
                            let a = SocketAddr::new(ip, port);
                            out.addrs.insert(a);
                            if let Some(u) = url {
                                out.named.entry(a).or_insert_with(|| u.clone());
                            }
                        }
                    }
                    Ok(_) => out.failures.push(format!("{kind} {name} unresolved: no address")),
                    Err(e) => out
                        .failures
                        .push(format!("{kind} {name} unresolved: {}", cordon_engine::error_chain(&e))),
                },
            }
        }
        out
    }
}

/// One quarantine as the agent will apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The revision of the desired state this plan implements.
    pub revision: i64,
    /// The agent's own destinations (servers and proxy), always allowed.
    pub transport: BTreeSet<SocketAddr>,
    /// Exceptions that will be in force, names replaced by the addresses they resolved to.
    pub allow: Vec<AllowSpec>,
    /// Message for logged-in users.
    pub message: Option<String>,
    /// One line per exception that is *not* in force, and why.
    pub degraded: Vec<String>,
}

fn with_ip(spec: &AllowSpec, ip: IpAddr) -> AllowSpec {
    AllowSpec {
        target: Target::Ip(ip),
        transport: spec.transport,
        tls: spec.tls,
    }
}

/// Plans the quarantine `d` with the agent's own destinations `transport`: every
/// exception that parses and resolves is in, each other one is listed in `degraded`.
pub fn plan(d: &DesiredState, transport: &BTreeSet<SocketAddr>, r: &dyn NameResolver) -> Plan {
    let mut allow = Vec::new();
    let mut degraded = Vec::new();
    for raw in &d.allow {
        let spec = match AllowSpec::parse(raw) {
            Ok(s) => s,
            Err(e) => {
                degraded.push(format!(
                    "exception {raw} not applied: {}",
                    cordon_engine::error_chain(&e)
                ));
                continue;
            }
        };
        match &spec.target {
            Target::Name(name) => match r.lookup(name) {
                Ok(ips) if !ips.is_empty() => allow.extend(ips.into_iter().map(|ip| with_ip(&spec, ip))),
                Ok(_) => degraded.push(format!("exception {raw} unresolved: {name} has no address")),
                Err(e) => degraded.push(format!(
                    "exception {raw} unresolved: {}",
                    cordon_engine::error_chain(&e)
                )),
            },
            _ => allow.push(spec),
        }
    }
    // Exceptions that together open a whole family would make the engine refuse the
    // quarantine (it isolates nothing there), leaving the host open: leave them out and
    // say so (fail closed). The server refuses such requests; this covers older
    // servers and databases.
    let open = cordon_policy::model::no_isolation_families(&allow);
    if !open.is_empty() {
        let words: Vec<&str> = open.iter().map(|f| f.name()).collect();
        let out: Vec<AllowSpec> = cordon_policy::model::whole_family_exceptions(&allow, &open)
            .into_iter()
            .cloned()
            .collect();
        for spec in &out {
            degraded.push(format!(
                "exception {spec} not applied: the exceptions together open every {} address, so the \
                 quarantine would isolate nothing there; every network exception of that family is left out",
                words.join(" and ")
            ));
        }
        allow.retain(|s| !out.contains(s));
    }
    Plan {
        revision: d.revision,
        transport: transport.clone(),
        allow,
        message: d.message.clone(),
        degraded,
    }
}

impl Plan {
    /// The engine request: no names left to resolve, no engine-side verification (the
    /// agent verifies through its own connection), resolvers discovered by the engine.
    pub fn request(&self) -> IsolateRequest {
        IsolateRequest {
            allow: self.allow.clone(),
            servers: self
                .transport
                .iter()
                .map(|a| AllowSpec {
                    target: Target::Ip(a.ip()),
                    transport: Transport::Tcp(a.port()),
                    tls: false,
                })
                .collect(),
            message: self.message.clone(),
            ..IsolateRequest::default()
        }
    }

    /// True when `other` would put the same rules in force (message aside).
    pub fn same_rules(&self, other: &Plan) -> bool {
        self.transport == other.transport && self.allow == other.allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake(HashMap<&'static str, Vec<IpAddr>>);
    impl NameResolver for Fake {
        fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, EngineError> {
            self.0.get(name).cloned().ok_or_else(|| EngineError::Resolve {
                name: name.to_string(),
                source: std::io::Error::other("Name or service not known"),
            })
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fake() -> Fake {
        Fake(HashMap::from([
            ("server.cordon.lab", vec![ip("192.0.2.1"), ip("2001:db8:c0::1")]),
            ("syslog.example.net", vec![ip("198.51.100.20")]),
            ("proxy.example.net", vec![ip("203.0.113.8")]),
        ]))
    }

    /// Exceptions that together open a whole family (stored by an older server) no longer
    /// make the engine refuse the quarantine — which left the host open — they are left
    /// out and named; the rest goes in.
    #[test]
    fn whole_family_exceptions_are_left_out_instead_of_failing_open() {
        let d = DesiredState {
            revision: 5,
            quarantined: true,
            allow: vec![
                "0.0.0.0/1".into(),
                "128.0.0.0/1".into(),
                "198.51.100.7".into(),
                "tcp://198.51.100.9:22".into(),
                "::/0".into(),
            ],
            ..Default::default()
        };
        let transport = BTreeSet::from(["192.0.2.1:8443".parse().unwrap()]);
        let p = plan(&d, &transport, &fake());
        assert_eq!(p.allow, vec![AllowSpec::parse("tcp://198.51.100.9:22").unwrap()]);
        assert_eq!(p.degraded.len(), 4, "{:?}", p.degraded);
        for (line, spec) in p
            .degraded
            .iter()
            .zip(["0.0.0.0/1", "128.0.0.0/1", "198.51.100.7", "::/0"])
        {
            assert!(
                line.starts_with(&format!(
                    "exception {spec} not applied: the exceptions together open every IPv4 and IPv6 address"
                )),
                "{line}"
            );
        }
        let req = p.request();
        let policy = req
            .allow
            .iter()
            .fold(cordon_policy::Policy::builder(), |b, s| b.allow_spec(s, &[]))
            .build();
        assert!(policy.fully_open_families().is_empty());
    }

    /// An exception that does not resolve no longer cancels the whole quarantine: the
    /// rest goes in and the missing one is named.
    #[test]
    fn unresolvable_exception_degrades_instead_of_failing_open() {
        let d = DesiredState {
            revision: 4,
            quarantined: true,
            allow: vec![
                "https://edr.example.net".into(),
                "udp://syslog.example.net:514".into(),
                "198.51.100.0/24".into(),
                "tcp://nonsense".into(),
            ],
            ..Default::default()
        };
        let transport = BTreeSet::from(["192.0.2.1:8443".parse().unwrap()]);
        let p = plan(&d, &transport, &fake());
        assert_eq!(
            p.allow,
            vec![
                AllowSpec::parse("udp://198.51.100.20:514").unwrap(),
                AllowSpec::parse("198.51.100.0/24").unwrap(),
            ]
        );
        assert_eq!(p.degraded.len(), 2, "{:?}", p.degraded);
        assert!(
            p.degraded[0].starts_with("exception https://edr.example.net unresolved:"),
            "{:?}",
            p.degraded
        );
        assert!(
            p.degraded[1].starts_with("exception tcp://nonsense not applied:"),
            "{:?}",
            p.degraded
        );
        let req = p.request();
        assert_eq!(
            req.servers,
            vec![AllowSpec::parse_server("tcp://192.0.2.1:8443").unwrap()]
        );
        assert!(req.verify.is_none());
    }

    #[test]
    fn own_transport_resolves_every_server_and_the_proxy() {
        let t = OwnTransport::new(
            &[
                "https://server.cordon.lab:8443".into(),
                "https://[2001:db8:c1::1]:443".into(),
                "https://gone.example.net:8443".into(),
            ],
            Some("http://proxy.example.net:3128"),
        )
        .unwrap();
        let r = t.resolve(&fake());
        let want: BTreeSet<SocketAddr> = [
            "192.0.2.1:8443",
            "[2001:db8:c0::1]:8443",
            "[2001:db8:c1::1]:443",
            "203.0.113.8:3128",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(r.addrs, want);
        assert_eq!(r.failures.len(), 1);
        assert!(
            r.failures[0].starts_with("server gone.example.net unresolved: "),
            "{:?}",
            r.failures
        );
        // The resolver's own error is kept, not only the engine's sentence (shape17).
        assert_eq!(
            r.failures[0],
            "server gone.example.net unresolved: host name \"gone.example.net\" does not resolve: Name or service not known"
        );
        let t = OwnTransport::new(
            &["https://server.cordon.lab:8443".into()],
            Some("http://noproxy.example.net:3128"),
        )
        .unwrap();
        assert!(t.resolve(&fake()).failures[0].starts_with("proxy noproxy.example.net unresolved: "));
    }

    #[test]
    fn proxy_must_be_an_http_url_with_a_host() {
        assert!(parse_proxy("http://192.0.2.99:3128").is_ok());
        assert!(parse_proxy("socks5://192.0.2.99:1080").is_err());
        assert!(parse_proxy("192.0.2.99:3128").is_err());
        assert!(parse_proxy("http://proxy.example.net:port").is_err());
    }

    /// Error kind: a cause flattened into a string. The policy parser's error stays
    /// reachable as the source of a bad proxy or server URL.
    #[test]
    fn bad_transport_url_keeps_the_parser_error_as_source() {
        use std::error::Error as _;
        let e = parse_proxy("http://proxy.example.net:port").unwrap_err();
        assert!(matches!(e, TransportError::Proxy { .. }), "{e:?}");
        assert!(e.source().is_some(), "{e:?}");
        let e = OwnTransport::new(&["https://server.example.net:port".into()], None).unwrap_err();
        assert!(matches!(e, TransportError::Server { .. }), "{e:?}");
        assert!(e.source().is_some(), "{e:?}");
        assert!(parse_proxy("socks5://192.0.2.99:1080").unwrap_err().source().is_none());
    }
}

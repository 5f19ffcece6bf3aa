//! Name resolution and resolver discovery, done completely before any rule changes
//! (Velociraptor's issue #4922: resolving after the drop chains exist strands the host).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use cordon_policy::{dhcplease, resolvconf};
use cordon_policy::{AllowSpec, Policy, Target, Transport};

use crate::{EngineError, IsolateRequest, ResolvedRequest};

/// The system resolver configuration, resolv.conf(5).
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of the upstream servers it uses, in resolv.conf format
/// (systemd-resolved.service(8)).
pub const SYSTEMD_UPSTREAM_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// All A and AAAA addresses of `name`, de-duplicated, in resolver order.
///
/// # Errors
/// [`EngineError::Resolve`] naming `name` (the resolver's OS error as its source) when it
/// does not resolve, [`EngineError::Invalid`] when it resolves to no address.
pub fn resolve_name(name: &str) -> Result<Vec<IpAddr>, EngineError> {
    let addrs = (name, 0u16).to_socket_addrs().map_err(|source| EngineError::Resolve {
        name: name.to_string(),
        source,
    })?;
    let mut out: Vec<IpAddr> = Vec::new();
    for a in addrs {
        if !out.contains(&a.ip()) {
            out.push(a.ip());
        }
    }
    if out.is_empty() {
        return Err(EngineError::Invalid(format!(
            "host name {name:?} resolved to no address"
        )));
    }
    Ok(out)
}

/// The addresses a spec stands for.
///
/// # Errors
/// As [`resolve_name`] for a spec that names a host.
pub fn spec_addresses(spec: &AllowSpec) -> Result<Vec<IpAddr>, EngineError> {
    match &spec.target {
        Target::Ip(ip) => Ok(vec![*ip]),
        Target::Net(net) => Ok(vec![net.addr()]),
        Target::Name(name) => resolve_name(name),
    }
}

/// The host's DNS resolvers: on Linux from resolv.conf (following a local stub —
/// systemd-resolved, NetworkManager, dnsmasq — to the upstream servers it publishes), on
/// macOS from `scutil --dns`, on Windows from the adapters' DNS server settings
/// (`GetAdaptersAddresses`). The warning says when DNS will not work while isolated.
pub fn discover_resolvers() -> resolvconf::Discovery {
    #[cfg(windows)]
    {
        resolvconf::Discovery {
            resolvers: cordon_policy::windns::resolvers(&cordon_firewall::windows::dns::adapter_dns()),
            warning: None,
        }
    }
    #[cfg(not(windows))]
    {
        if cfg!(target_os = "macos") {
            if let Some(text) = command_output("scutil", &["--dns"]) {
                let found = cordon_policy::scutil::nameservers(&text);
                if !found.is_empty() {
                    return resolvconf::Discovery {
                        resolvers: found,
                        warning: None,
                    };
                }
            }
        }
        let mut stub_files: Vec<&str> = resolvconf::STUB_UPSTREAM_FILES.to_vec();
        stub_files.push(resolvconf::DNSMASQ_CONF);
        discover_resolvers_in(Path::new(RESOLV_CONF), &stub_files)
    }
}

/// Resolver discovery from `main` (a resolv.conf) and the stub upstream files that exist
/// among `stub_files` (see [`resolvconf::discover`]).
pub fn discover_resolvers_in(main: &Path, stub_files: &[&str]) -> resolvconf::Discovery {
    let servers = std::fs::read_to_string(main)
        .map(|t| resolvconf::nameservers(&t))
        .unwrap_or_default();
    let texts: Vec<(String, String)> = if servers.iter().any(|a| a.is_loopback()) {
        stub_files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok().map(|t| (p.to_string(), t)))
            .collect()
    } else {
        vec![]
    };
    resolvconf::discover(&servers, &texts)
}

/// Directories and files where DHCP clients keep their leases (dhclient on Debian and
/// Red Hat, NetworkManager, systemd-networkd, dhcpcd). `CORDON_DHCP_LEASES`
/// (colon-separated files or directories) replaces the list, for clients configured to
/// keep leases elsewhere.
pub const DHCP_LEASE_LOCATIONS: [&str; 7] = [
    "/var/lib/dhcp",
    "/var/lib/dhclient",
    "/var/lib/NetworkManager",
    "/run/systemd/netif/leases",
    "/var/lib/dhcpcd",
    "/var/lib/dhcpcd5",
    "/var/db/dhcpcd",
];

/// The DHCP servers named in the host's lease files, and the files they came from.
pub fn discover_dhcp_servers() -> (Vec<IpAddr>, Vec<String>) {
    let locations: Vec<String> = match std::env::var("CORDON_DHCP_LEASES") {
        Ok(list) if !list.trim().is_empty() => list.split(':').map(str::to_string).collect(),
        _ => DHCP_LEASE_LOCATIONS.iter().map(|s| s.to_string()).collect(),
    };
    let mut servers = Vec::new();
    let mut sources = Vec::new();
    for loc in locations {
        let path = Path::new(&loc);
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            let Ok(entries) = std::fs::read_dir(path) else { continue };
            let mut v: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && looks_like_lease(p))
                .collect();
            v.sort();
            v
        } else if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            continue;
        };
        for f in files {
            // Lease files are small; anything huge is not one.
            let Ok(meta) = std::fs::metadata(&f) else { continue };
            if meta.len() > 1 << 20 {
                continue;
            }
            let Ok(bytes) = std::fs::read(&f) else { continue };
            let found = dhcplease::servers(&bytes);
            if !found.is_empty() {
                sources.push(f.display().to_string());
            }
            for ip in found {
                if !servers.contains(&ip) {
                    servers.push(ip);
                }
            }
        }
    }
    (servers, sources)
}

/// File names DHCP clients use for leases (`*.leases`, `*.lease`, networkd's numeric
/// interface index files).
fn looks_like_lease(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.ends_with(".leases")
        || name.ends_with(".lease")
        || name.ends_with(".lease6")
        || (!name.is_empty() && name.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(not(windows))]
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    // A helper that never returns is killed at its deadline and treated as absent
    // (trial17 MED-6): discovery never blocks an apply.
    let out = cordon_firewall::cmd::output_within(
        std::process::Command::new(program).args(args),
        program,
        None,
        std::time::Duration::from_secs(5),
    )
    .map_err(|e| tracing::warn!(error = %e, "resolver discovery helper skipped"))
    .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The resolvers [`discover_resolvers`] would find with `main` in place of
/// `/etc/resolv.conf` and `systemd_upstream` as the only stub upstream file, without the
/// warning.
pub fn discover_resolvers_from(main: &Path, systemd_upstream: &Path) -> Vec<IpAddr> {
    let upstream = systemd_upstream.to_string_lossy().to_string();
    discover_resolvers_in(main, &[upstream.as_str()]).resolvers
}

/// True when `req` names servers, all of them UDP (`udp://`), and no `--verify`: there is
/// nothing a connection could prove, so its quarantine is "not verified (UDP)".
pub fn udp_servers_only(req: &IsolateRequest) -> bool {
    req.verify.is_none()
        && !req.servers.is_empty()
        && req.servers.iter().all(|s| matches!(s.transport, Transport::Udp(_)))
}

/// What a claim's own request lets its merged quarantine prove (pkg21, trial34 H1): a
/// source's quarantine is verified against the target THIS source named, never against
/// servers only another claim or the agent's management paths (`agent-paths.json`) bring
/// into the merged request, whose answer (or silence) proves nothing about what this
/// source asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnProof {
    /// The request names a target ([`own_verify_target`]): the merged request carries it
    /// as its `verify` and it is probed.
    Target,
    /// The request names servers, all of them UDP ([`udp_servers_only`]): "not verified
    /// (UDP)".
    Udp,
    /// The request names nothing to probe (`--allow` only): "not checked".
    Nothing,
}

/// [`OwnProof`] of `req`.
pub(crate) fn own_proof(req: &IsolateRequest) -> OwnProof {
    if udp_servers_only(req) {
        OwnProof::Udp
    } else if own_verify_target(req).is_some() {
        OwnProof::Target
    } else {
        OwnProof::Nothing
    }
}

/// The verification target `req` itself names: `--verify`, else its first TCP server.
pub fn own_verify_target(req: &IsolateRequest) -> Option<AllowSpec> {
    req.verify.clone().or_else(|| {
        req.servers
            .iter()
            .find(|s| matches!(s.transport, Transport::Tcp(_)))
            .cloned()
    })
}

/// Resolves every part of `req` into a [`Policy`] and the verification targets.
///
/// # Errors
/// As [`resolve_name`] for each name in `req`, and [`EngineError::Policy`] for a request
/// the policy refuses.
pub fn resolve_request(req: &IsolateRequest) -> Result<ResolvedRequest, EngineError> {
    let mut builder = Policy::builder().dhcp(req.dhcp);
    for server in &req.servers {
        match server.transport {
            Transport::Tcp(port) => {
                for ip in spec_addresses(server)? {
                    builder = builder.server(SocketAddr::new(ip, port));
                }
            }
            Transport::Udp(port) => {
                for ip in spec_addresses(server)? {
                    builder = builder.udp_server(SocketAddr::new(ip, port));
                }
            }
            Transport::Any => {
                return Err(EngineError::Invalid(format!("server {server} has no port")));
            }
        }
    }
    for spec in &req.allow {
        let addrs = match spec.target {
            Target::Name(_) => spec_addresses(spec)?,
            _ => vec![],
        };
        builder = builder.allow_spec(spec, &addrs);
    }
    let mut warnings = Vec::new();
    if req.dns {
        let resolvers = match &req.resolvers {
            Some(list) => list.clone(),
            None => {
                let found = discover_resolvers();
                warnings.extend(found.warning);
                found.resolvers
            }
        };
        for r in resolvers {
            builder = builder.resolver(r);
        }
    }
    let mut dhcp_sources = Vec::new();
    if req.dhcp {
        let servers = match &req.dhcp_servers {
            Some(list) => {
                dhcp_sources.push("--dhcp-server".to_string());
                list.clone()
            }
            None => {
                let (found, sources) = discover_dhcp_servers();
                dhcp_sources = sources;
                found
            }
        };
        for s in servers {
            builder = builder.dhcp_server(s);
        }
    }
    // `--verify`, else the first TCP server: a UDP server cannot be proven reachable by
    // connecting (see `ResolvedRequest::unverifiable_udp`).
    let verify_spec = own_verify_target(req);
    let unverifiable_udp = udp_servers_only(req);
    let verify_targets = match &verify_spec {
        None => vec![],
        Some(spec) => {
            let port = match spec.transport {
                Transport::Tcp(p) => p,
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "verify target {spec} needs a TCP port (tcp://HOST:PORT or https://HOST[:PORT])"
                    )))
                }
            };
            spec_addresses(spec)?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()
        }
    };
    Ok(ResolvedRequest {
        policy: builder.build(),
        verify_targets,
        unverifiable_udp,
        dhcp_sources,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// trial34 H1: a source's claim is verified only against what that source named.
    #[test]
    fn own_proof_is_what_the_request_itself_names() {
        let allow_only = IsolateRequest {
            allow: vec![AllowSpec::parse("tcp://192.0.2.1:1514").unwrap()],
            ..Default::default()
        };
        assert_eq!(own_proof(&allow_only), OwnProof::Nothing);
        let verify = IsolateRequest {
            verify: Some(AllowSpec::parse_server("tcp://192.0.2.1:1514").unwrap()),
            ..allow_only.clone()
        };
        assert_eq!(own_proof(&verify), OwnProof::Target);
        let tcp = IsolateRequest {
            servers: vec![AllowSpec::parse_server("tcp://192.0.2.1:8443").unwrap()],
            ..Default::default()
        };
        assert_eq!(own_proof(&tcp), OwnProof::Target);
        let udp = IsolateRequest {
            servers: vec![AllowSpec::parse_server("udp://192.0.2.1:1514").unwrap()],
            ..Default::default()
        };
        assert_eq!(own_proof(&udp), OwnProof::Udp);
    }

    #[test]
    fn follows_systemd_stub_to_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("resolv.conf");
        let up = dir.path().join("upstream.conf");
        std::fs::write(&main, "nameserver 127.0.0.53\noptions edns0\n").unwrap();
        std::fs::write(&up, "nameserver 192.0.2.53\nnameserver 2001:db8:c0::53\n").unwrap();
        let got = discover_resolvers_from(&main, &up);
        assert_eq!(
            got,
            vec![
                "192.0.2.53".parse::<IpAddr>().unwrap(),
                "2001:db8:c0::53".parse().unwrap()
            ]
        );
        std::fs::write(&main, "nameserver 198.51.100.53\n").unwrap();
        assert_eq!(
            discover_resolvers_from(&main, &up),
            vec!["198.51.100.53".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn dhcp_servers_come_from_lease_files_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dhclient.eth0.leases"),
            "lease {\n  interface \"eth0\";\n  option dhcp-server-identifier 192.0.2.67;\n}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("7"), "SERVER_ADDRESS=198.51.100.67\n").unwrap();
        std::fs::write(dir.path().join("unrelated.txt"), "SERVER_ADDRESS=203.0.113.1\n").unwrap();
        std::env::set_var("CORDON_DHCP_LEASES", dir.path());
        let req = IsolateRequest {
            resolvers: Some(vec![]),
            ..Default::default()
        };
        let r = resolve_request(&req).unwrap();
        assert_eq!(
            r.policy.dhcp_servers,
            vec![
                "192.0.2.67".parse::<IpAddr>().unwrap(),
                "198.51.100.67".parse().unwrap()
            ]
        );
        assert_eq!(r.dhcp_sources.len(), 2, "{:?}", r.dhcp_sources);
        // --dhcp-server overrides discovery; --no-dhcp needs none.
        let flag = IsolateRequest {
            dhcp_servers: Some(vec!["203.0.113.67".parse().unwrap()]),
            ..req.clone()
        };
        assert_eq!(
            resolve_request(&flag).unwrap().policy.dhcp_servers,
            vec!["203.0.113.67".parse::<IpAddr>().unwrap()]
        );
        let off = IsolateRequest { dhcp: false, ..req };
        assert!(resolve_request(&off).unwrap().policy.dhcp_servers.is_empty());
        std::env::remove_var("CORDON_DHCP_LEASES");
    }

    #[test]
    fn ip_only_request_resolves_without_dns() {
        let req = IsolateRequest {
            servers: vec![AllowSpec::parse_server("tcp://192.0.2.1:8443").unwrap()],
            allow: vec![AllowSpec::parse("198.51.100.0/24").unwrap()],
            resolvers: Some(vec!["192.0.2.53".parse().unwrap()]),
            ..Default::default()
        };
        let r = resolve_request(&req).unwrap();
        assert_eq!(r.verify_targets, vec!["192.0.2.1:8443".parse().unwrap()]);
        assert_eq!(r.policy.servers, vec!["192.0.2.1:8443".parse().unwrap()]);
        assert_eq!(r.policy.resolvers, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
        let no_dns = IsolateRequest { dns: false, ..req };
        assert!(resolve_request(&no_dns).unwrap().policy.resolvers.is_empty());
    }

    /// A `udp://` server (a Wazuh agent in UDP mode) is UDP in the policy and never a TCP
    /// verification target: alone it is "not verified (UDP)"; next to a TCP server, the
    /// TCP one is verified.
    #[test]
    fn udp_servers_are_allowed_over_udp_and_never_probed_over_tcp() {
        let udp = AllowSpec::parse_server("udp://192.0.2.30:1514").unwrap();
        let req = IsolateRequest {
            servers: vec![udp.clone()],
            resolvers: Some(vec![]),
            dhcp: false,
            ..Default::default()
        };
        let r = resolve_request(&req).unwrap();
        assert_eq!(r.policy.udp_servers, vec!["192.0.2.30:1514".parse().unwrap()]);
        assert!(r.policy.servers.is_empty() && r.verify_targets.is_empty());
        assert!(r.unverifiable_udp);
        let both = IsolateRequest {
            servers: vec![udp, AllowSpec::parse_server("tcp://192.0.2.1:8443").unwrap()],
            ..req.clone()
        };
        let r = resolve_request(&both).unwrap();
        assert_eq!(r.verify_targets, vec!["192.0.2.1:8443".parse().unwrap()]);
        assert!(!r.unverifiable_udp);
        // An explicit UDP --verify is refused: there is nothing to connect to.
        let verify_udp = IsolateRequest {
            verify: Some(AllowSpec::parse("udp://192.0.2.30:1514").unwrap()),
            ..req
        };
        assert!(resolve_request(&verify_udp).is_err());
    }

    #[test]
    fn localhost_resolves_and_invalid_tld_does_not() {
        assert!(resolve_name("localhost").unwrap().iter().all(|a| a.is_loopback()));
        let err = resolve_name("no-such-host.invalid").unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}

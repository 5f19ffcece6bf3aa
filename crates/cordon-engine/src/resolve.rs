//! Name resolution and resolver discovery, done completely before any rule changes
//! (Velociraptor's issue #4922: resolving after the drop chains exist strands the host).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use cordon_policy::resolvconf;
use cordon_policy::{AllowSpec, Policy, Target, Transport};

use crate::{EngineError, IsolateRequest, ResolvedRequest};

pub const RESOLV_CONF: &str = "/etc/resolv.conf";
pub const SYSTEMD_UPSTREAM_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// All A and AAAA addresses of `name`, de-duplicated, in resolver order.
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
pub fn spec_addresses(spec: &AllowSpec) -> Result<Vec<IpAddr>, EngineError> {
    match &spec.target {
        Target::Ip(ip) => Ok(vec![*ip]),
        Target::Net(net) => Ok(vec![net.addr()]),
        Target::Name(name) => resolve_name(name),
    }
}

/// The host's DNS resolvers: on Linux from resolv.conf (following systemd-resolved's stub
/// to its upstream list), on macOS from `scutil --dns`, on Windows from the adapters' DNS
/// server settings (`GetAdaptersAddresses`).
pub fn discover_resolvers() -> Vec<IpAddr> {
    #[cfg(windows)]
    {
        cordon_policy::windns::resolvers(&cordon_firewall::windows::dns::adapter_dns())
    }
    #[cfg(not(windows))]
    {
        if cfg!(target_os = "macos") {
            if let Some(text) = command_output("scutil", &["--dns"]) {
                let found = cordon_policy::scutil::nameservers(&text);
                if !found.is_empty() {
                    return found;
                }
            }
        }
        discover_resolvers_from(Path::new(RESOLV_CONF), Path::new(SYSTEMD_UPSTREAM_RESOLV_CONF))
    }
}

#[cfg(not(windows))]
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn discover_resolvers_from(main: &Path, systemd_upstream: &Path) -> Vec<IpAddr> {
    let servers = std::fs::read_to_string(main)
        .map(|t| resolvconf::nameservers(&t))
        .unwrap_or_default();
    if resolvconf::uses_systemd_stub(&servers) {
        if let Ok(text) = std::fs::read_to_string(systemd_upstream) {
            return resolvconf::nameservers(&text);
        }
    }
    servers
}

/// Resolves every part of `req` into a [`Policy`] and the verification targets.
pub fn resolve_request(req: &IsolateRequest) -> Result<ResolvedRequest, EngineError> {
    let mut builder = Policy::builder().dhcp(req.dhcp);
    for server in &req.servers {
        let Transport::Tcp(port) = server.transport else {
            return Err(EngineError::Invalid(format!("server {server} has no TCP port")));
        };
        for ip in spec_addresses(server)? {
            builder = builder.server(SocketAddr::new(ip, port));
        }
    }
    for spec in &req.allow {
        let addrs = match spec.target {
            Target::Name(_) => spec_addresses(spec)?,
            _ => vec![],
        };
        builder = builder.allow_spec(spec, &addrs);
    }
    if req.dns {
        let resolvers = match &req.resolvers {
            Some(list) => list.clone(),
            None => discover_resolvers(),
        };
        for r in resolvers {
            builder = builder.resolver(r);
        }
    }
    let verify_spec = req.verify.as_ref().or(req.servers.first());
    let verify_targets = match verify_spec {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn localhost_resolves_and_invalid_tld_does_not() {
        assert!(resolve_name("localhost").unwrap().iter().all(|a| a.is_loopback()));
        let err = resolve_name("no-such-host.invalid").unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}

//! `cordon agent enroll`: fetch and pin the CA, send a CSR with the one-time token, store
//! the client certificate and key (0600) and write the agent's config.

use std::path::{Path, PathBuf};

use cordon_proto::{EnrollRequest, EnrollResponse};

use crate::{AgentConfig, AgentError, AGENT_VERSION};
use cordon_client::tls::{fingerprint, normalize_fingerprint, parse_certs};

/// What `cordon agent enroll` was given.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The server's base URL, `https://HOST[:PORT]`.
    pub server: String,
    /// The one-time enrollment token.
    pub token: String,
    /// Expected SHA-256 of the CA certificate; `None` trusts on first use.
    pub ca_fingerprint: Option<String>,
    /// Where certificate, key and CA go.
    pub dir: PathBuf,
    /// The name the host enrolls under.
    pub hostname: String,
    /// Explicit HTTP proxy (`http://HOST:PORT`) for enrollment and, written into the
    /// config, for the agent; `None` connects directly (environment proxies are ignored).
    pub proxy: Option<String>,
}

/// The result of a successful enrollment; its files are written.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The agent configuration pointing at the written files (not saved itself: the
    /// caller writes it where it wants).
    pub config: AgentConfig,
    /// SHA-256 fingerprint of the server's CA certificate, in the normalized form of
    /// `cordon_client::tls::normalize_fingerprint`.
    pub ca_fingerprint: String,
    /// True when no fingerprint was given and the CA was trusted on first use.
    pub trusted_on_first_use: bool,
    /// What the server flagged on the new host (duplicate hostname or address).
    pub flags: Vec<cordon_proto::HostFlag>,
}

/// Checks `agent enroll`'s `--server` and `--ca-fingerprint` before anything is asked of
/// the network (trial29 L-j: `http://…`, a bare host name or a 66-digit fingerprint went
/// to the network and failed with the HTTP library's words, exit 1).
///
/// # Errors
/// The sentence naming the option and what it must be.
pub fn check_input(server: &str, ca_fingerprint: Option<&str>) -> Result<(), String> {
    let shape = "the server URL must be https://HOST[:PORT], e.g. https://cordon.example.net:8443";
    match reqwest::Url::parse(server) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {}
        Ok(u) => return Err(format!("--server {server:?}: {shape} (got scheme {:?})", u.scheme())),
        Err(e) => return Err(format!("--server {server:?}: {shape} ({e})")),
    }
    if let Some(fp) = ca_fingerprint {
        let hex = cordon_proto::fingerprint::normalize_fingerprint(fp);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "--ca-fingerprint {fp:?}: a SHA-256 fingerprint is 64 hex digits (colons and a sha256: prefix allowed), got {} characters{}",
                hex.len(),
                if hex.bytes().all(|b| b.is_ascii_hexdigit()) { "" } else { " with non-hex ones" }
            ));
        }
    }
    Ok(())
}

/// Where this build looks a host name up, for the error that a name did not resolve
/// (trial26 L8: after musl's resolver timed out, enrollment said only "dns error: failed
/// to lookup address information: Try again"). `musl`: the static Linux endpoint build,
/// whose resolver reads /etc/hosts and the nameservers of `resolv_conf` (the text of
/// /etc/resolv.conf, `None` when unreadable) and no NSS module; otherwise the system's
/// resolver.
pub fn lookup_words(musl: bool, resolv_conf: Option<&str>) -> String {
    if musl {
        let servers: Vec<String> = resolv_conf
            .map(cordon_policy::resolvconf::nameservers)
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_string())
            .collect();
        format!(
            "looked up in /etc/hosts, then with the nameservers of /etc/resolv.conf: {}; this build (static, musl) does not use NSS (/etc/nsswitch.conf: LDAP, mDNS, nss-resolve), so give the server as an address or add its name to /etc/hosts",
            if servers.is_empty() {
                "none listed".to_string()
            } else {
                servers.join(", ")
            }
        )
    } else if cfg!(windows) {
        "looked up by the Windows resolver".to_string()
    } else {
        "looked up by the system resolver (getaddrinfo, as /etc/nsswitch.conf says)".to_string()
    }
}

/// The host name and port of `server` (`https://NAME[:PORT]`) when it names a host by
/// name; `None` for an address (nothing to resolve) or a URL that does not parse (the
/// call itself reports that).
pub fn server_name(server: &str) -> Option<(String, u16)> {
    let url = reqwest::Url::parse(server).ok()?;
    let host = url.host_str()?;
    if host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
    {
        return None;
    }
    Some((host.to_string(), url.port_or_known_default().unwrap_or(443)))
}

/// Resolves the server's name before the first call (without a proxy, which resolves it
/// itself), so a name that does not resolve is reported with where it was looked up
/// ([`AgentError::Resolve`]) instead of the HTTP client's bare "dns error".
async fn check_resolves(server: &str) -> Result<(), AgentError> {
    use std::net::ToSocketAddrs;
    let Some((host, port)) = server_name(server) else {
        return Ok(());
    };
    let name = host.clone();
    let looked = tokio::task::spawn_blocking(move || (name.as_str(), port).to_socket_addrs().map(|_| ())).await;
    match looked {
        Ok(Err(source)) => Err(AgentError::Resolve {
            host,
            how: lookup_words(
                cfg!(target_env = "musl"),
                std::fs::read_to_string("/etc/resolv.conf").ok().as_deref(),
            ),
            source,
        }),
        // Resolved, or the lookup task failed: the call itself says what happens.
        _ => Ok(()),
    }
}

/// Downloads the CA over unverified TLS and checks its fingerprint.
///
/// # Errors
/// [`AgentError::Transport`] when the server cannot be reached, [`AgentError::Enroll`] when
/// it refuses or its CA does not match `expected`.
pub async fn fetch_ca(
    server: &str,
    expected: Option<&str>,
    proxy: Option<&str>,
) -> Result<(String, String), AgentError> {
    let connect = crate::client::Connect {
        proxy: proxy.map(str::to_string),
        ..Default::default()
    };
    let http = crate::client::http_client_with(
        cordon_client::tls::unverified()?,
        Some(std::time::Duration::from_secs(15)),
        &connect,
    )?;
    let url = server_url(server, &["v1", "ca"])?;
    let resp = http
        .get(url.clone())
        .send()
        .await
        .map_err(|source| AgentError::Transport {
            url: url.to_string(),
            source,
        })?;
    if !resp.status().is_success() {
        return Err(AgentError::Enroll(format!("{url} answered {}", resp.status())));
    }
    let pem = resp.text().await.map_err(|source| AgentError::Transport {
        url: url.to_string(),
        source,
    })?;
    let certs = parse_certs(pem.as_bytes())?;
    let fp = fingerprint(certs[0].as_ref());
    if let Some(want) = expected {
        if normalize_fingerprint(want) != fp {
            return Err(AgentError::Enroll(format!(
                "CA fingerprint mismatch: server sent {fp}, expected {}; not enrolling",
                normalize_fingerprint(want)
            )));
        }
    }
    Ok((pem, fp))
}

/// Whether the enrollment can be written to directory `dir` (key, certificate, CA, or
/// the config file), checked before the server is asked (trial39 MED-2: run without root,
/// `agent enroll` redeemed the one-time token, left a host on the server that never
/// reports, and only then failed to create /etc/cordon). Creates nothing that stays: an
/// existing directory gets a probe file, created 0600 and removed at once; a missing one
/// needs its nearest existing ancestor to be a directory this process may write
/// (`access(2)`, which also says so for a read-only file system).
///
/// # Errors
/// The OS error of the probe, or `NotADirectory` when `dir` or an ancestor is no
/// directory.
pub fn check_writable(dir: &Path) -> std::io::Result<()> {
    let not_a_dir = |p: &Path| {
        std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is not a directory", p.display()),
        )
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let probe = dir.join(format!(".cordon-enroll-check.{}", std::process::id()));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
            }
            opts.open(&probe)?;
            std::fs::remove_file(&probe)
        }
        Ok(_) => Err(not_a_dir(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) else {
                return Ok(());
            };
            match std::fs::metadata(parent) {
                Ok(m) if !m.is_dir() => Err(not_a_dir(parent)),
                Ok(_) => parent_writable(parent),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => check_writable(parent),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Whether this process may create entries in existing directory `dir`.
fn parent_writable(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// `server`'s URL with path `segments`, built by the typed client (review14 LOW-5: the
/// enrollment formatted its URLs by hand).
///
/// # Errors
/// [`AgentError::Client`] when `server` is no URL that can carry a path.
fn server_url(server: &str, segments: &[&str]) -> Result<reqwest::Url, AgentError> {
    Ok(cordon_client::build_url(
        &cordon_client::parse_base(server)?,
        segments,
        &[],
    ))
}

/// The enrollment refused with `status` and `body`: the server's `ErrorBody` read as its
/// code and detail (review14 LOW-5: the JSON was printed raw), else the body as sent.
/// Pure.
fn refusal(status: reqwest::StatusCode, body: &str) -> AgentError {
    match serde_json::from_str::<cordon_proto::ErrorBody>(body) {
        Ok(b) => AgentError::EnrollRefused {
            status,
            said: format!("{}: {}", b.error, b.detail),
            error: Some(b.error),
        },
        Err(_) => AgentError::EnrollRefused {
            status,
            error: None,
            said: body.trim().to_string(),
        },
    }
}

fn write_private(path: &Path, content: &str) -> Result<(), AgentError> {
    crate::persist::write_private(path, content.as_bytes())
}

/// Enrolls this host: fetches and checks the server's CA, generates a key pair and a
/// certificate signing request, redeems the token for a client certificate, and writes
/// certificate, key (0600) and CA into `opts.dir`.
///
/// # Errors
/// [`AgentError::OwnTransport`] for a bad proxy, [`AgentError::Transport`] when the server
/// cannot be reached, [`AgentError::Enroll`] when it refuses the token or its CA does not
/// match `ca_fingerprint`, [`AgentError::Key`] and [`AgentError::Io`] for local failures.
pub async fn enroll(opts: &EnrollOptions) -> Result<Enrolled, AgentError> {
    let server = opts.server.trim_end_matches('/').to_string();
    if let Some(p) = &opts.proxy {
        crate::plan::parse_proxy(p)?;
    } else {
        check_resolves(&server).await?;
    }
    let (ca_pem, fp) = fetch_ca(&server, opts.ca_fingerprint.as_deref(), opts.proxy.as_deref()).await?;
    let key = rcgen::KeyPair::generate().map_err(|source| AgentError::Key {
        what: "generate the agent key",
        source,
    })?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .map_err(|source| AgentError::Key {
            what: "build CSR",
            source,
        })?;
    let connect = crate::client::Connect {
        proxy: opts.proxy.clone(),
        ..Default::default()
    };
    let http = crate::client::http_client_with(
        cordon_client::tls::server_auth_only(ca_pem.as_bytes())?,
        Some(std::time::Duration::from_secs(30)),
        &connect,
    )?;
    let req = EnrollRequest {
        token: opts.token.trim().to_string(),
        csr_pem: csr,
        hostname: opts.hostname.clone(),
        os: Some(std::env::consts::OS.to_string()),
        addresses: crate::addrs::local_addresses(),
        agent_version: Some(AGENT_VERSION.to_string()),
    };
    let url = server_url(&server, &["v1", "enroll"])?;
    let resp = http
        .post(url.clone())
        .json(&req)
        .send()
        .await
        .map_err(|source| AgentError::Transport {
            url: url.to_string(),
            source,
        })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(refusal(status, &body));
    }
    let out: EnrollResponse = resp.json().await.map_err(AgentError::EnrollAnswer)?;
    crate::persist::create_private_dir(&opts.dir).map_err(|e| AgentError::io("create", &opts.dir, e))?;
    let mut config = AgentConfig::new(&server, &out.host_id, &opts.dir);
    config.proxy = opts.proxy.clone();
    write_private(&config.key, &key.serialize_pem())?;
    write_private(&config.cert, &out.cert_pem)?;
    std::fs::write(&config.ca, &ca_pem).map_err(|e| AgentError::io("write", &config.ca, e))?;
    Ok(Enrolled {
        config,
        ca_fingerprint: fp,
        trusted_on_first_use: opts.ca_fingerprint.is_none(),
        flags: out.flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// review14 LOW-5: the enrollment's URLs come from the typed client (a trailing `/`
    /// or a path prefix kept, a bad URL refused by name), and a refusal is the server's
    /// `ErrorBody` read as code and detail, with the status kept as a status.
    #[test]
    fn enrollment_urls_are_built_and_refusals_read_by_the_client_types() {
        assert_eq!(
            server_url("https://cordon.example.net:8443/", &["v1", "enroll"])
                .unwrap()
                .as_str(),
            "https://cordon.example.net:8443/v1/enroll"
        );
        assert_eq!(
            server_url("https://proxy.example.net/cordon", &["v1", "ca"])
                .unwrap()
                .as_str(),
            "https://proxy.example.net/cordon/v1/ca"
        );
        assert!(matches!(
            server_url("not a url", &["v1", "ca"]),
            Err(AgentError::Client(_))
        ));
        let e = refusal(
            reqwest::StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_token","detail":"the enrollment token is unknown"}"#,
        );
        assert_eq!(
            e.to_string(),
            "server refused enrollment (401 Unauthorized): invalid_token: the enrollment token is unknown"
        );
        assert!(matches!(
            &e,
            AgentError::EnrollRefused { status, error: Some(code), .. }
                if *status == reqwest::StatusCode::UNAUTHORIZED && code == "invalid_token"
        ));
        let e = refusal(reqwest::StatusCode::BAD_GATEWAY, "<html>bad gateway</html>\n");
        assert_eq!(
            e.to_string(),
            "server refused enrollment (502 Bad Gateway): <html>bad gateway</html>"
        );
    }

    /// trial26 L8: a name that does not resolve is said with where it was looked up: the
    /// musl build names /etc/hosts, the resolv.conf nameservers and that NSS is not used.
    #[test]
    fn an_unresolvable_name_says_where_it_was_looked_up() {
        let conf = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.net\n";
        let musl = lookup_words(true, Some(conf));
        assert!(
            musl.contains("/etc/hosts") && musl.contains("nameservers of /etc/resolv.conf: 127.0.0.53"),
            "{musl}"
        );
        assert!(musl.contains("does not use NSS"), "{musl}");
        assert!(lookup_words(true, None).contains("resolv.conf: none listed"));
        assert!(!lookup_words(false, Some(conf)).contains("does not use NSS"));
    }

    /// trial39 MED-2: whether the enrollment can be written is known before the server is
    /// asked; the check leaves nothing behind.
    #[test]
    fn the_enrollment_directory_is_checked_without_leaving_anything() {
        let t = tempfile::tempdir().unwrap();
        assert!(check_writable(t.path()).is_ok());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0, "the probe stayed");
        // Missing directories: their nearest existing ancestor decides; nothing is created.
        let deep = t.path().join("etc").join("cordon");
        assert!(check_writable(&deep).is_ok());
        assert!(!t.path().join("etc").exists());
        // Under a regular file nothing can be made, not even by root.
        let file = t.path().join("file");
        std::fs::write(&file, "x").unwrap();
        for d in [file.clone(), file.join("cordon"), file.join("a").join("b")] {
            let e = check_writable(&d).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotADirectory, "{d:?}: {e}");
        }
    }

    /// trial29 L-j: the URL and fingerprint shapes are checked before the network.
    #[test]
    fn bad_enroll_input_is_named_before_the_network() {
        let fp = "3f".repeat(32);
        assert!(check_input("https://cordon.example.net:8443", Some(&fp)).is_ok());
        assert!(check_input("https://192.0.2.1:8443", Some(&format!("sha256:{fp}"))).is_ok());
        let e = check_input("http://cordon.example.net:8443", None).unwrap_err();
        assert!(
            e.contains("must be https://HOST[:PORT]") && e.contains("\"http\""),
            "{e}"
        );
        let e = check_input("cordon.example.net", None).unwrap_err();
        assert!(
            e.starts_with("--server \"cordon.example.net\": the server URL must be"),
            "{e}"
        );
        let e = check_input("https://cordon.example.net:8443", Some(&"3f".repeat(33))).unwrap_err();
        assert!(e.contains("64 hex digits") && e.contains("got 66 characters"), "{e}");
        let e = check_input("https://cordon.example.net:8443", Some(&"zz".repeat(32))).unwrap_err();
        assert!(e.contains("non-hex"), "{e}");
    }

    #[test]
    fn only_a_name_is_resolved_first() {
        assert_eq!(
            server_name("https://cordon.example.net:8443"),
            Some(("cordon.example.net".to_string(), 8443))
        );
        assert_eq!(
            server_name("https://cordon.example.net"),
            Some(("cordon.example.net".to_string(), 443))
        );
        assert_eq!(server_name("https://192.0.2.1:8443"), None);
        assert_eq!(server_name("https://[2001:db8::1]:8443"), None);
        assert_eq!(server_name("not a url"), None);
    }

    /// The error as the CLI prints it (its cause chain): the name, where it was looked
    /// up, then the resolver's own words.
    #[test]
    fn the_resolve_error_names_the_host_and_keeps_the_cause() {
        let e = AgentError::Resolve {
            host: "cordon.example.net".into(),
            how: lookup_words(true, Some("nameserver 192.0.2.53\n")),
            source: std::io::Error::other("failed to lookup address information: Try again"),
        };
        let text = cordon_engine::error_chain(&e);
        assert!(
            text.starts_with("cannot resolve the server name \"cordon.example.net\" (looked up in /etc/hosts"),
            "{text}"
        );
        assert!(
            text.ends_with(": failed to lookup address information: Try again"),
            "{text}"
        );
    }
}

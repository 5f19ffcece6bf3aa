//! macOS packet filter: Cordon's rules live in their own anchor, loaded with
//! `pfctl -a <anchor> -f -`, which swaps the anchor's ruleset atomically.
//!
//! Three more things make the anchor effective without disturbing anyone else:
//! * the main ruleset must reference the anchor; when it does not, we reload the main
//!   filter rules (`pfctl -R -f -`, filter rules only, so NAT, tables and options stay)
//!   from a copy of the current ones with `anchor "<name>" all` put first, keeping
//!   Apple's `com.apple/*` anchors;
//! * pf must be enabled: `pfctl -E` takes a reference, whose token we keep in a file
//!   and hand back with `pfctl -X <token>` on release, so pf stays on if someone else
//!   (e.g. the macOS firewall) had enabled it too;
//! * pf keeps state entries made before our rules loaded: after loading, states with
//!   peers that are not allowed are killed (`pfctl -k src -k dst`), which cuts e.g. a
//!   reverse shell at once (design §3 point 7).
//!
//! The process-running parts compile everywhere but are only selected on macOS; the
//! text handling is pure and tested on any OS.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use cordon_policy::model::Family;
use cordon_policy::render::{pf, DHCP4_PORTS, DHCP6_PORTS};
use cordon_policy::{Policy, TableName};

use crate::{cmd, digest, BackendKind, Cause, Firewall, FirewallError, Inspection, Refusal};

/// The pf backend for one table name: the anchor of that name (see the module comment).
pub struct Pf {
    table: TableName,
    /// Where the `pfctl -E` reference token is kept. Under /var/run, so it disappears at
    /// reboot together with the reference it stands for.
    token_path: PathBuf,
}

impl Pf {
    /// Succeeds when `pfctl` is present.
    ///
    /// # Errors
    /// [`FirewallError::Unsupported`] when `pfctl` is not installed.
    pub fn probe(table: TableName) -> Result<Self, FirewallError> {
        if !cmd::exists("pfctl") && !std::path::Path::new("/sbin/pfctl").exists() {
            return Err(FirewallError::Unsupported(
                "`pfctl` is not available (macOS packet filter)".into(),
            ));
        }
        let token_path = PathBuf::from(format!("/var/run/cordon-{}.pftoken", table.as_str()));
        Ok(Pf { table, token_path })
    }

    fn anchor(&self) -> &str {
        self.table.as_str()
    }

    /// Makes sure the main ruleset calls our anchor.
    fn ensure_referenced(&self) -> Result<(), FirewallError> {
        let main = cmd::run("pfctl", &["-sr"], None)?;
        if let Some(new_main) = with_anchor_reference(&main, self.anchor()) {
            cmd::run("pfctl", &["-R", "-f", "-"], Some(&new_main))?;
        }
        Ok(())
    }

    /// Takes a pf enable reference unless we already hold one.
    fn ensure_enabled(&self) -> Result<(), FirewallError> {
        if self.token_path.exists() {
            return Ok(());
        }
        let out = run_all("pfctl", &["-E"])?;
        match parse_token(&out) {
            Some(token) => std::fs::write(&self.token_path, token).map_err(|e| FirewallError::Io {
                context: format!("writing {}", self.token_path.display()),
                source: e,
            }),
            // Old pfctl without tokens: pf is enabled, there is just nothing to hand back.
            None => Ok(()),
        }
    }

    fn release_token(&self) -> Result<(), FirewallError> {
        let Ok(token) = std::fs::read_to_string(&self.token_path) else {
            return Ok(());
        };
        let token = token.trim();
        if !token.is_empty() {
            // A stale token (after pf was reset by hand) is refused; that is fine to ignore.
            if let Err(e) = cmd::run("pfctl", &["-X", token], None) {
                tracing::warn!("pfctl -X failed, pf may stay enabled: {e}");
            }
        }
        std::fs::remove_file(&self.token_path).map_err(|e| FirewallError::Io {
            context: format!("removing {}", self.token_path.display()),
            source: e,
        })
    }

    fn kill_disallowed_states(&self, policy: &Policy) -> Result<(), FirewallError> {
        let states = cmd::run("pfctl", &["-ss"], None)?;
        for (src, dst) in states_to_kill(&states, policy) {
            let (s, d) = (src.to_string(), dst.to_string());
            // A state may already be gone; failing to kill one must not fail the apply.
            if let Err(e) = cmd::run("pfctl", &["-k", &s, "-k", &d], None) {
                tracing::warn!("could not kill pf states {s} -> {d}: {e}");
            }
        }
        Ok(())
    }
}

impl Firewall for Pf {
    fn kind(&self) -> BackendKind {
        BackendKind::Pf
    }

    fn render(&self, policy: &Policy) -> Result<String, FirewallError> {
        Ok(pf::render_anchor(&self.table, policy))
    }

    fn apply(&self, policy: &Policy) -> Result<(), FirewallError> {
        // Anchor first: loading it changes nothing until it is referenced and pf is on,
        // and a syntax error leaves the host untouched.
        cmd::run(
            "pfctl",
            &["-a", self.anchor(), "-f", "-"],
            Some(&pf::render_anchor(&self.table, policy)),
        )?;
        let rest = self.ensure_referenced().and_then(|_| self.ensure_enabled());
        if let Err(e) = rest {
            // No half state: empty our anchor again before reporting.
            let _ = cmd::run("pfctl", &["-a", self.anchor(), "-F", "all"], None);
            return Err(e);
        }
        self.kill_disallowed_states(policy)
    }

    fn remove(&self) -> Result<(), FirewallError> {
        // The anchor reference stays in the main ruleset: an empty anchor matches nothing,
        // and reloading the main rules again would be a needless risk.
        cmd::run("pfctl", &["-a", self.anchor(), "-F", "all"], None)?;
        self.release_token()
    }

    fn inspect(&self) -> Result<Option<Inspection>, FirewallError> {
        let rules = cmd::run("pfctl", &["-a", self.anchor(), "-sr"], None)?;
        if rules.trim().is_empty() {
            return Ok(None);
        }
        let info = cmd::run("pfctl", &["-si"], None)?;
        let main = cmd::run("pfctl", &["-sr"], None)?;
        Ok(Some(digest::inspection(listing(&rules, &info, &main, self.anchor()))))
    }
}

/// The normalized listing whose digest tells whether our anchor is intact and in force:
/// pf's status, whether the main ruleset references us, and our anchor's rules.
pub fn listing(anchor_rules: &str, info: &str, main_rules: &str, anchor: &str) -> String {
    let enabled = info.lines().any(|l| l.trim_start().starts_with("Status: Enabled"));
    let referenced = with_anchor_reference(main_rules, anchor).is_none();
    let mut out = format!("pf enabled: {enabled}\nanchor referenced: {referenced}\n");
    for line in anchor_rules.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The main filter ruleset with `anchor "<name>" all` inserted as the first filter rule
/// (after scrub rules, which pf.conf requires to come first), or `None` when the ruleset
/// already references the anchor. Every other line, Apple's anchors included, is kept.
pub fn with_anchor_reference(main_rules: &str, anchor: &str) -> Option<String> {
    let quoted = format!("anchor \"{anchor}\"");
    let already = main_rules.lines().any(|l| {
        let l = l.trim();
        l == quoted || l.strip_prefix(&quoted).is_some_and(|rest| rest.starts_with(' '))
    });
    if already {
        return None;
    }
    let mut out = String::new();
    let mut inserted = false;
    for line in main_rules.lines() {
        let t = line.trim_start();
        let is_scrub = t.starts_with("scrub");
        if !inserted && !t.is_empty() && !is_scrub {
            out.push_str(&quoted);
            out.push_str(" all\n");
            inserted = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !inserted {
        out.push_str(&quoted);
        out.push_str(" all\n");
    }
    Some(out)
}

/// The reference token from `pfctl -E` output (`Token : 1234...`).
pub fn parse_token(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        let value = value.trim();
        (key.trim() == "Token" && !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()))
            .then(|| value.to_string())
    })
}

/// One line of `pfctl -ss`: protocol, the host's own side, the peer, and whether the
/// peer opened it. IPv4 endpoints are `a.b.c.d:port`, IPv6 ones `addr[port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfState {
    /// The protocol word as pfctl prints it (`tcp`, `udp`, `icmp`, ...).
    pub proto: String,
    /// The host's own address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// True when the peer opened the state (pfctl prints `<-`), false for `->`.
    pub inbound: bool,
}

/// Parses `pfctl -ss` output, skipping lines it does not understand.
pub fn parse_states(text: &str) -> Vec<PfState> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // `ALL tcp A -> B STATE` or with a translated address in parentheses after A.
        let Some(arrow) = words.iter().position(|w| *w == "->" || *w == "<-") else {
            continue;
        };
        if arrow < 3 || arrow + 1 >= words.len() {
            continue;
        }
        let (Some(local), Some(remote)) = (parse_endpoint(words[2]), parse_endpoint(words[arrow + 1])) else {
            continue;
        };
        out.push(PfState {
            proto: words[1].to_string(),
            local,
            remote,
            inbound: words[arrow] == "<-",
        });
    }
    out
}

fn parse_endpoint(word: &str) -> Option<SocketAddr> {
    if let Some((addr, port)) = word.strip_suffix(']').and_then(|w| w.split_once('[')) {
        return Some(SocketAddr::new(addr.parse().ok()?, port.parse().ok()?));
    }
    let (addr, port) = word.rsplit_once(':')?;
    Some(SocketAddr::new(
        addr.parse::<std::net::Ipv4Addr>().ok()?.into(),
        port.parse().ok()?,
    ))
}

/// Host pairs (originator, responder) whose states must be killed: every state whose
/// peer the policy does not allow. Loopback and DHCP are always kept.
pub fn states_to_kill(states_text: &str, policy: &Policy) -> Vec<(IpAddr, IpAddr)> {
    let mut out = Vec::new();
    for s in parse_states(states_text) {
        if allowed(&s, policy) {
            continue;
        }
        let pair = if s.inbound {
            (s.remote.ip(), s.local.ip())
        } else {
            (s.local.ip(), s.remote.ip())
        };
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

fn allowed(s: &PfState, policy: &Policy) -> bool {
    let ip = s.remote.ip();
    if ip.is_loopback() || s.local.ip().is_loopback() {
        return true;
    }
    let family = Family::of(&ip);
    if policy.open_networks(family).iter().any(|n| n.contains(&ip)) {
        return true;
    }
    match s.proto.as_str() {
        "tcp" => !s.inbound && policy.tcp_destinations(family).contains(&s.remote),
        "udp" => {
            let dhcp = [DHCP4_PORTS, DHCP6_PORTS].contains(&(s.local.port(), s.remote.port()));
            (policy.dhcp && dhcp) || (!s.inbound && policy.udp_destinations(family).contains(&s.remote))
        }
        _ => false,
    }
}

/// Runs a command and returns stdout and stderr together (`pfctl -E` prints its token
/// on stderr).
fn run_all(program: &str, args: &[&str]) -> Result<String, FirewallError> {
    let (success, text) = cmd::run_combined(Command::new(program).args(args), program)?;
    if success {
        Ok(text)
    } else {
        Err(FirewallError::Rejected(Refusal::caused_by(
            format!("{program} {} failed", args.join(" ")),
            Cause::Exit {
                status: None,
                output: text.trim().to_string(),
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pfctl -sr` on a stock macOS 14 (captured shape).
    const APPLE_MAIN: &str = "scrub-anchor \"com.apple/*\" all fragment reassemble\nanchor \"com.apple/*\" all\n";

    #[test]
    fn adds_anchor_after_scrub_and_keeps_apple_anchors() {
        let new = with_anchor_reference(APPLE_MAIN, "cordon").unwrap();
        assert_eq!(
            new,
            "scrub-anchor \"com.apple/*\" all fragment reassemble\nanchor \"cordon\" all\nanchor \"com.apple/*\" all\n"
        );
        assert_eq!(with_anchor_reference(&new, "cordon"), None);
        // A different anchor whose name starts with ours is not a reference to ours.
        assert!(with_anchor_reference("anchor \"cordon2\" all\n", "cordon").is_some());
    }

    #[test]
    fn empty_main_ruleset_gets_just_the_anchor() {
        assert_eq!(with_anchor_reference("", "cordon").unwrap(), "anchor \"cordon\" all\n");
    }

    #[test]
    fn reads_token() {
        let out =
            "No ALTQ support in kernel\nALTQ related functions disabled\npf enabled\nToken : 7046148290066173101\n";
        assert_eq!(parse_token(out).as_deref(), Some("7046148290066173101"));
        assert_eq!(parse_token("pf already enabled\n"), None);
    }

    #[test]
    fn listing_reflects_status_and_reference() {
        let info = "Status: Enabled for 0 days 00:01:02           Debug: Urgent\n";
        let l = listing("block drop quick all\n", info, "anchor \"cordon\" all\n", "cordon");
        assert_eq!(l, "pf enabled: true\nanchor referenced: true\nblock drop quick all\n");
        let l = listing("block drop quick all\n", "Status: Disabled\n", APPLE_MAIN, "cordon");
        assert!(l.starts_with("pf enabled: false\nanchor referenced: false\n"));
    }

    #[test]
    fn kills_only_disallowed_states() {
        let policy = Policy::builder()
            .server("192.0.2.1:8443".parse().unwrap())
            .server("[2001:db8:c0::1]:8443".parse().unwrap())
            .resolver("192.0.2.53".parse().unwrap())
            .dhcp(true)
            .build();
        let states = "\
ALL tcp 192.0.2.10:50100 -> 192.0.2.1:8443       ESTABLISHED:ESTABLISHED
ALL tcp 192.0.2.10:50101 -> 203.0.113.66:4444       ESTABLISHED:ESTABLISHED
ALL tcp 192.0.2.10:22 <- 203.0.113.7:51515       ESTABLISHED:ESTABLISHED
ALL udp 192.0.2.10:53000 -> 192.0.2.53:53       MULTIPLE:SINGLE
ALL udp 192.0.2.10:68 -> 255.255.255.255:67       SINGLE:NO_TRAFFIC
ALL tcp 2001:db8:c0::10[50200] -> 2001:db8:c0::1[8443]       ESTABLISHED:ESTABLISHED
ALL tcp 2001:db8:c0::10[50201] -> 2001:db8:ff::1[443]       ESTABLISHED:ESTABLISHED
ALL tcp 127.0.0.1:5000 -> 127.0.0.1:6000       ESTABLISHED:ESTABLISHED
garbage line
";
        let kill = states_to_kill(states, &policy);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            kill,
            vec![
                (ip("192.0.2.10"), ip("203.0.113.66")),
                (ip("203.0.113.7"), ip("192.0.2.10")),
                (ip("2001:db8:c0::10"), ip("2001:db8:ff::1")),
            ]
        );
    }

    #[test]
    fn parses_translated_state_lines() {
        let s =
            parse_states("ALL tcp 192.0.2.10:50100 (198.51.100.1:6000) -> 192.0.2.1:8443  ESTABLISHED:ESTABLISHED\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].remote, "192.0.2.1:8443".parse().unwrap());
    }
}

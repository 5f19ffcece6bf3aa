//! Size and rate limits on what clients and agents can make the server store (issue 15):
//! a compromised agent or a low-privilege token must not be able to grow the database or
//! the audit log without bound. Pure functions; the handlers and the store apply them.

use cordon_proto::StatusReport;

/// Largest request body the API parses, in bytes; larger ones get 413 before parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most labels one host can carry (the `Quarantine` label included).
pub const MAX_LABELS_PER_HOST: usize = 64;
/// Most exceptions (`allow` entries) in one quarantine.
pub const MAX_ALLOW_PER_HOST: usize = 64;
/// Most addresses an agent or an enrolling host can report (the wire contract's).
pub use cordon_proto::MAX_ADDRESSES;
/// Longest reported address text, in characters (an IPv6 address with a zone fits).
pub const MAX_ADDRESS_CHARS: usize = 64;
/// Longest agent-reported `detail` (what tampering was found, the error message).
pub const MAX_DETAIL_CHARS: usize = 1024;
/// Longest agent-reported `error` kind.
pub const MAX_ERROR_CHARS: usize = 128;
/// Longest `os`, `agent_version`, `backend`, `digest` text.
pub const MAX_SHORT_CHARS: usize = 128;
/// Longest hostname (DNS: 253 characters).
pub const MAX_HOSTNAME_CHARS: usize = 253;
/// Most `degraded` lines kept from one agent report (one per exception not in force).
pub const MAX_DEGRADED_LINES: usize = 16;
/// Longest `degraded` line kept, in characters.
pub const MAX_DEGRADED_CHARS: usize = 200;

/// Most claims kept from one agent report (there are four sources).
pub const MAX_CLAIMS: usize = 4;
/// Most exceptions, and most servers, kept per reported claim.
pub const MAX_CLAIM_ITEMS: usize = 8;
/// Longest exception or server text kept per reported claim, in characters.
pub const MAX_CLAIM_ITEM_CHARS: usize = 64;

/// Agent-originated audit records (confirmations, tampering, failures) written per host
/// in one [`AGENT_AUDIT_WINDOW_MS`]; beyond that they are counted, and the count is
/// written as one `reports_collapsed` record when the next window opens.
pub const AGENT_AUDIT_PER_WINDOW: i64 = 10;
/// The rate-limit window, in milliseconds.
pub const AGENT_AUDIT_WINDOW_MS: i64 = 60_000;

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn bound_opt(v: &mut Option<String>, max: usize) {
    if let Some(s) = v {
        if s.chars().count() > max {
            *s = truncate(s, max);
        }
    }
}

/// Bounds every free-text field of an agent's report (longer texts are cut and marked,
/// addresses beyond [`MAX_ADDRESSES`] dropped), so what is stored per report is small
/// whatever the agent sends. The state and revision are kept: they are what the report
/// is for.
pub fn bound_report(r: &mut StatusReport) {
    bound_opt(&mut r.detail, MAX_DETAIL_CHARS);
    bound_opt(&mut r.error, MAX_ERROR_CHARS);
    bound_opt(&mut r.os, MAX_SHORT_CHARS);
    bound_opt(&mut r.agent_version, MAX_SHORT_CHARS);
    bound_opt(&mut r.backend, MAX_SHORT_CHARS);
    bound_opt(&mut r.digest, MAX_SHORT_CHARS);
    bound_opt(&mut r.hostname, MAX_HOSTNAME_CHARS);
    bound_addresses(&mut r.addresses);
    r.degraded.truncate(MAX_DEGRADED_LINES);
    for line in r.degraded.iter_mut() {
        if line.chars().count() > MAX_DEGRADED_CHARS {
            *line = truncate(line, MAX_DEGRADED_CHARS);
        }
    }
    r.claims.truncate(MAX_CLAIMS);
    for c in r.claims.iter_mut() {
        c.source = truncate(&c.source, MAX_SHORT_CHARS);
        bound_opt(&mut c.since, MAX_SHORT_CHARS);
        for list in [&mut c.allow, &mut c.servers] {
            list.truncate(MAX_CLAIM_ITEMS);
            for s in list.iter_mut() {
                if s.chars().count() > MAX_CLAIM_ITEM_CHARS {
                    *s = truncate(s, MAX_CLAIM_ITEM_CHARS);
                }
            }
        }
    }
}

/// The address `ip` stands for: an IPv4-mapped IPv6 address (`::ffff:192.0.2.2`, RFC
/// 4291 §2.5.5.2) or an IPv4-compatible one (`::192.0.2.2`, §2.5.5.1, deprecated) is
/// the IPv4 address — stored, flagged and looked up as such, so a dual-stack log naming
/// either form finds the host that reports the plain one (trial7, trial10). `::` and
/// `::1` (unspecified and loopback) are not IPv4-compatible addresses and stay IPv6.
pub fn ipv4_of(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.into();
            }
            let s = v6.segments();
            if s[..6].iter().all(|x| *x == 0) && !v6.is_unspecified() && !v6.is_loopback() {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return std::net::Ipv4Addr::new(a, b, c, d).into();
            }
            ip
        }
        v4 => v4,
    }
}

/// Checks addresses a host reports (at enrollment and in status reports): each must be
/// an IPv4 or IPv6 address (a `/prefix` length is accepted and dropped), at most
/// [`MAX_ADDRESSES`] distinct ones. Returns them in canonical text (`2001:db8::1`, not
/// `2001:0db8:0:0::1`; `192.0.2.2`, not `::ffff:192.0.2.2`), de-duplicated, in the order given, so the same address from two
/// hosts compares equal.
///
/// # Errors
/// A message naming the first address that is not one, or the count.
pub fn check_addresses(a: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(a.len().min(MAX_ADDRESSES));
    for text in a {
        let t = text.trim();
        let bare = t.split_once('/').map_or(t, |(ip, _)| ip);
        let ip: std::net::IpAddr = bare.parse().map_err(|_| {
            format!(
                "address {:?} is not an IPv4 or IPv6 address",
                truncate(text, MAX_ADDRESS_CHARS)
            )
        })?;
        let canon = ipv4_of(ip).to_string();
        if !out.contains(&canon) {
            out.push(canon);
        }
    }
    if out.len() > MAX_ADDRESSES {
        return Err(format!(
            "{} addresses reported; at most {MAX_ADDRESSES} per host",
            out.len()
        ));
    }
    Ok(out)
}

/// Keeps at most [`MAX_ADDRESSES`] addresses, each cut to [`MAX_ADDRESS_CHARS`].
pub fn bound_addresses(a: &mut Vec<String>) {
    a.truncate(MAX_ADDRESSES);
    for s in a.iter_mut() {
        if s.chars().count() > MAX_ADDRESS_CHARS {
            *s = truncate(s, MAX_ADDRESS_CHARS);
        }
    }
}

/// A host's agent-audit counters as stored on its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentAuditWindow {
    /// Start of the current window, Unix ms.
    pub start: i64,
    /// Records written in it.
    pub written: i64,
    /// Records collapsed (not written) since `start`.
    pub collapsed: i64,
}

/// What to do with one agent-originated audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentAuditDecision {
    /// Write the record.
    pub write: bool,
    /// Before it, write one record saying this many were collapsed since `since`.
    pub flush_collapsed: Option<(i64, i64)>,
    /// The counters to store.
    pub next: AgentAuditWindow,
}

/// Rate limit of agent-originated audit records for one host at time `now` (Unix ms).
pub fn agent_audit(w: AgentAuditWindow, now: i64) -> AgentAuditDecision {
    if now - w.start >= AGENT_AUDIT_WINDOW_MS || now < w.start {
        return AgentAuditDecision {
            write: true,
            flush_collapsed: (w.collapsed > 0).then_some((w.collapsed, w.start)),
            next: AgentAuditWindow {
                start: now,
                written: 1,
                collapsed: 0,
            },
        };
    }
    if w.written < AGENT_AUDIT_PER_WINDOW {
        return AgentAuditDecision {
            write: true,
            flush_collapsed: None,
            next: AgentAuditWindow {
                written: w.written + 1,
                ..w
            },
        };
    }
    AgentAuditDecision {
        write: false,
        flush_collapsed: None,
        next: AgentAuditWindow {
            collapsed: w.collapsed + 1,
            ..w
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_proto::AgentState;

    /// trial7: `::ffff:192.0.2.2` (in any spelling) was stored as is, so it was neither
    /// flagged as the address another host reports nor found by an event naming it.
    #[test]
    fn ipv4_mapped_addresses_are_the_ipv4_address() {
        let got = check_addresses(&[
            "::ffff:192.0.2.2".into(),
            "::ffff:c000:202".into(),
            "0:0:0:0:0:ffff:192.0.2.2".into(),
            "192.0.2.2".into(),
            "2001:db8::1".into(),
        ])
        .unwrap();
        assert_eq!(got, vec!["192.0.2.2".to_string(), "2001:db8::1".to_string()]);
    }

    /// trial10 LOW: `::198.51.100.12` (IPv4-compatible, RFC 4291 §2.5.5.1) was stored as
    /// an IPv6 address, so it was not flagged as the address another host reports. It is
    /// the IPv4 address, as mapped ones are; `::` and `::1` are not IPv4 addresses.
    #[test]
    fn ipv4_compatible_addresses_are_the_ipv4_address() {
        let got = check_addresses(&[
            "::198.51.100.12".into(),
            "::c633:640c".into(),
            "0:0:0:0:0:0:198.51.100.12".into(),
            "198.51.100.12".into(),
            "::1".into(),
            "::".into(),
            "::1:0:0:1".into(),
        ])
        .unwrap();
        assert_eq!(got, vec!["198.51.100.12", "::1", "::", "::1:0:0:1"]);
    }

    fn report() -> StatusReport {
        StatusReport {
            version: cordon_proto::PROTO_VERSION,
            applied_revision: 3,
            state: AgentState::Tampered,
            digest: Some("d".repeat(10_000)),
            backend: Some("b".repeat(10_000)),
            error: Some("e".repeat(10_000)),
            detail: Some("x".repeat(1_000_000)),
            hostname: Some("h".repeat(10_000)),
            os: Some("o".repeat(10_000)),
            addresses: vec!["192.0.2.1".repeat(100); 10_000],
            agent_version: Some("v".repeat(10_000)),
            enforcing: true,
            degraded: vec!["d".repeat(10_000); 10_000],
            heartbeat_ms: None,
            claims: vec![
                cordon_proto::ClaimInfo {
                    source: "s".repeat(10_000),
                    since: Some("t".repeat(10_000)),
                    allow: vec!["a".repeat(1_000); 100],
                    servers: vec!["v".repeat(1_000); 100],
                };
                20
            ],
        }
    }

    #[test]
    fn oversized_agent_fields_are_bounded() {
        let mut r = report();
        bound_report(&mut r);
        let size = serde_json::to_string(&r).map(|s| s.len()).unwrap_or(usize::MAX);
        assert!(size < 16 * 1024, "bounded report is {size} bytes");
        assert_eq!(r.detail.as_deref().map(|d| d.chars().count()), Some(MAX_DETAIL_CHARS));
        assert!(r.detail.as_deref().is_some_and(|d| d.ends_with('…')));
        assert_eq!(r.addresses.len(), MAX_ADDRESSES);
        assert_eq!(r.degraded.len(), MAX_DEGRADED_LINES);
        assert!(r.degraded.iter().all(|l| l.chars().count() <= MAX_DEGRADED_CHARS));
        assert_eq!(r.claims.len(), MAX_CLAIMS);
        assert!(r
            .claims
            .iter()
            .all(|c| c.allow.len() == MAX_CLAIM_ITEMS && c.servers.len() == MAX_CLAIM_ITEMS));
        assert_eq!(r.state, AgentState::Tampered);
        assert_eq!(r.applied_revision, 3);
        let mut small = StatusReport {
            detail: Some("rules deleted".into()),
            ..report()
        };
        small.addresses = vec!["192.0.2.1".into()];
        bound_report(&mut small);
        assert_eq!(small.detail.as_deref(), Some("rules deleted"));
        assert_eq!(small.addresses, vec!["192.0.2.1".to_string()]);
        assert_eq!(truncate("ab", 2), "ab");
        assert_eq!(truncate("abc", 2), "a…");
    }

    #[test]
    fn repeated_agent_audit_records_collapse_into_a_count() {
        let mut w = AgentAuditWindow::default();
        let t0 = 1_000_000;
        let mut written = 0;
        for i in 0..1000 {
            let d = agent_audit(w, t0 + i);
            written += d.write as i64;
            assert_eq!(d.flush_collapsed, None);
            w = d.next;
        }
        assert_eq!(written, AGENT_AUDIT_PER_WINDOW);
        assert_eq!(w.collapsed, 1000 - AGENT_AUDIT_PER_WINDOW);
        let d = agent_audit(w, t0 + AGENT_AUDIT_WINDOW_MS + 5);
        assert!(d.write);
        assert_eq!(d.flush_collapsed, Some((1000 - AGENT_AUDIT_PER_WINDOW, t0)));
        assert_eq!(d.next.collapsed, 0);
        assert_eq!(d.next.written, 1);
    }
}

//! Size and rate limits on what clients and agents can make the server store (issue 15):
//! a compromised agent or a low-privilege token must not be able to grow the database or
//! the audit log without bound. Pure functions; the handlers and the store apply them.

use std::net::IpAddr;

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
/// Longest `degraded` line kept, in characters: room for the agent's longest usual
/// lines (a set-aside claims file named with both paths, a write that failed with its
/// cause); a longer one is cut at a word with `…` ([`truncate_words`]), keeping its
/// start, which names the object (issue 14 LOW: lines were cut at 200 mid-word).
pub const MAX_DEGRADED_CHARS: usize = 280;

/// Most claims kept from one agent report (four sources, plus two `agent` claims of
/// previous enrollments of the same machine: each names its host id).
pub const MAX_CLAIMS: usize = 6;
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

/// [`truncate`] at a word: cut after the last space in the final fifth of the `max`
/// characters kept (where there is one), then `…`, so a cut line ends on a whole word.
pub fn truncate_words(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let kept: Vec<char> = s.chars().take(max.saturating_sub(1)).collect();
    let floor = kept.len() - kept.len() / 5;
    let end = kept
        .iter()
        .rposition(|c| *c == ' ')
        .filter(|&i| i >= floor)
        .unwrap_or(kept.len());
    let mut out: String = kept[..end].iter().collect();
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
    // Only a name this server does not know is free text (kept as sent).
    if let Some(cordon_proto::Backend::Other(name)) = &mut r.backend {
        *name = truncate(name, MAX_SHORT_CHARS);
    }
    bound_opt(&mut r.digest, MAX_SHORT_CHARS);
    bound_opt(&mut r.hostname, MAX_HOSTNAME_CHARS);
    bound_addresses(&mut r.addresses);
    r.degraded.truncate(MAX_DEGRADED_LINES);
    for line in r.degraded.iter_mut() {
        if line.chars().count() > MAX_DEGRADED_CHARS {
            *line = truncate_words(line, MAX_DEGRADED_CHARS);
        }
    }
    if let Some(w) = &mut r.waiting {
        if let cordon_proto::WaitKind::Other(name) = &mut w.kind {
            *name = truncate(name, MAX_SHORT_CHARS);
        }
        w.holder = truncate(&w.holder, MAX_SHORT_CHARS);
    }
    r.claims.truncate(MAX_CLAIMS);
    for c in r.claims.iter_mut() {
        if let cordon_proto::ClaimSource::Other(name) = &mut c.source {
            *name = truncate(name, MAX_SHORT_CHARS);
        }
        if let Some(owner) = &mut c.owner {
            *owner = truncate(owner, MAX_SHORT_CHARS);
        }
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

/// The address an IPv4-mapped or IPv4-compatible IPv6 address stands for (trial7,
/// trial10): [`cordon_proto::addr::ipv4_of`], where the wire reader applies it.
pub use cordon_proto::addr::ipv4_of;

/// Checks addresses a host reports (at enrollment and in status reports): at most
/// [`MAX_ADDRESSES`] distinct ones. Each was read by
/// [`cordon_proto::addr::parse_host_address`] (a `/prefix` length dropped,
/// `::ffff:192.0.2.2` and `::192.0.2.2` as `192.0.2.2`), so equal addresses compare
/// equal; returns them de-duplicated, in the order given, without the addresses that
/// cannot name one host ([`cordon_proto::addr::names_a_host`]: unspecified, loopback,
/// multicast, broadcast, link-local — dropped, not refused, so an agent that reports its
/// loopback too still reports; trial25 F12).
///
/// # Errors
/// A message naming the count.
pub fn check_addresses(a: &[IpAddr]) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::with_capacity(a.len().min(MAX_ADDRESSES));
    for ip in a {
        // [`ipv4_of`] again for a caller that built the list itself (the wire reader
        // already did).
        let canon = ipv4_of(*ip);
        if !cordon_proto::addr::names_a_host(canon) {
            continue;
        }
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

/// Keeps at most [`MAX_ADDRESSES`] addresses (each is a fixed-size value).
pub fn bound_addresses(a: &mut Vec<IpAddr>) {
    a.truncate(MAX_ADDRESSES);
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
        let read = |t: &str| cordon_proto::addr::parse_host_address(t).unwrap();
        let got = check_addresses(&[
            read("::ffff:192.0.2.2"),
            read("::ffff:c000:202"),
            read("0:0:0:0:0:ffff:192.0.2.2"),
            read("192.0.2.2"),
            read("2001:db8::1"),
            // Built by hand (not read from the wire): still the IPv4 address.
            "::ffff:192.0.2.2".parse().unwrap(),
        ])
        .unwrap();
        let text: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["192.0.2.2", "2001:db8::1"]);
    }

    /// trial10 LOW: `::198.51.100.12` (IPv4-compatible, RFC 4291 §2.5.5.1) was stored as
    /// an IPv6 address, so it was not flagged as the address another host reports. It is
    /// the IPv4 address, as mapped ones are; `::` and `::1` are not IPv4 addresses (and
    /// no host's own: dropped, trial25 F12 — this test kept them before).
    #[test]
    fn ipv4_compatible_addresses_are_the_ipv4_address() {
        let read = |t: &str| cordon_proto::addr::parse_host_address(t).unwrap();
        let got = check_addresses(&[
            read("::198.51.100.12"),
            read("::c633:640c"),
            read("0:0:0:0:0:0:198.51.100.12"),
            read("198.51.100.12"),
            read("::1"),
            read("::"),
            read("::1:0:0:1"),
            // Built by hand (not read from the wire): still the IPv4 address.
            "::198.51.100.12".parse().unwrap(),
        ])
        .unwrap();
        let text: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["198.51.100.12", "::1:0:0:1"]);
    }

    fn report() -> StatusReport {
        StatusReport {
            version: cordon_proto::PROTO_VERSION,
            applied_revision: 3,
            state: AgentState::Tampered,
            digest: Some("d".repeat(10_000)),
            backend: Some(cordon_proto::Backend::from_wire(&"b".repeat(10_000))),
            error: Some("e".repeat(10_000)),
            detail: Some("x".repeat(1_000_000)),
            hostname: Some("h".repeat(10_000)),
            os: Some("o".repeat(10_000)),
            addresses: vec!["192.0.2.1".parse().unwrap(); 10_000],
            agent_version: Some("v".repeat(10_000)),
            enforcing: true,
            degraded: vec!["d".repeat(10_000); 10_000],
            heartbeat_ms: None,
            claims: vec![
                cordon_proto::ClaimInfo {
                    source: cordon_proto::ClaimSource::from_wire(&"s".repeat(10_000)),
                    // A time is bounded by its type (a fixed-width value).
                    since: crate::timefmt::Timestamp::parse("2030-01-01T00:00:00Z").ok(),
                    allow: vec!["a".repeat(1_000); 100],
                    servers: vec!["v".repeat(1_000); 100],
                    owner: Some("o".repeat(10_000)),
                };
                20
            ],
            waiting: Some(cordon_proto::AgentWait {
                kind: cordon_proto::WaitKind::from_wire(&"k".repeat(10_000)),
                revision: 4,
                holder_pid: Some(1),
                holder: "p".repeat(10_000),
                holder_is_cordon: true,
                up_to_secs: 60,
            }),
        }
    }

    #[test]
    fn oversized_agent_fields_are_bounded() {
        let mut r = report();
        bound_report(&mut r);
        let size = serde_json::to_string(&r).map(|s| s.len()).unwrap_or(usize::MAX);
        // 17 KiB: the sum of the bounds, `waiting` (kind and holder, issue 14 MED-1) included.
        assert!(size < 17 * 1024, "bounded report is {size} bytes");
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
        assert!(r
            .claims
            .iter()
            .all(|c| c.owner.as_ref().is_some_and(|o| o.chars().count() <= MAX_SHORT_CHARS)));
        assert!(r.waiting.as_ref().is_some_and(
            |w| w.holder.chars().count() <= MAX_SHORT_CHARS && w.kind.as_str().chars().count() <= MAX_SHORT_CHARS
        ));
        assert_eq!(r.state, AgentState::Tampered);
        assert_eq!(r.applied_revision, 3);
        let mut small = StatusReport {
            detail: Some("rules deleted".into()),
            ..report()
        };
        small.addresses = vec!["192.0.2.1".parse().unwrap()];
        bound_report(&mut small);
        assert_eq!(small.detail.as_deref(), Some("rules deleted"));
        assert_eq!(small.addresses, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        // Issue 14 LOW: a degraded line is cut at a word, its start (the named object)
        // kept, the cut marked.
        let line = format!(
            "exception https://edr.example.net unresolved: {}",
            "the resolver 192.0.2.53 did not answer in time ".repeat(20)
        );
        let cut = truncate_words(&line, MAX_DEGRADED_CHARS);
        assert!(cut.chars().count() <= MAX_DEGRADED_CHARS, "{cut}");
        assert!(
            cut.starts_with("exception https://edr.example.net unresolved: the resolver"),
            "{cut}"
        );
        assert!(cut.ends_with('…') && !cut.ends_with(" …"), "{cut}");
        let before_mark = cut.trim_end_matches('…');
        assert!(
            line.starts_with(before_mark) && line[before_mark.len()..].starts_with(' '),
            "cut mid-word: {cut}"
        );
        let set_aside = "claims file /var/lib/cordon/cordon.claims.json was unreadable and was set aside as \
             /var/lib/cordon/cordon.claims.json.corrupt.1 when a quarantine was applied over it: claims recorded \
             only there are neither in force nor known to a release; inspect it, then delete it";
        assert_eq!(
            truncate_words(set_aside, MAX_DEGRADED_CHARS),
            set_aside,
            "a usual line is kept whole"
        );
        assert_eq!(truncate_words("abcdef", 4), "abc…", "no space: cut as truncate");
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

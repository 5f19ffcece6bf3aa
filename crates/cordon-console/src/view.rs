//! Page layout and small rendering helpers. All HTML goes through `maud`, which escapes
//! every interpolated value; nothing here builds markup by string concatenation.

use cordon_proto::{Host, HostState};
use maud::{html, Markup, DOCTYPE};

use super::session::Session;
use super::status::{offline, Shown};
use cordon_server_core::timefmt::{now_ms, parse_rfc3339, Timestamp};

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The hosts list and host pages.
    Hosts,
    /// The audit log.
    Audit,
    /// Automation rules and settings.
    Rules,
    /// Approvals.
    Approvals,
    /// Automation events.
    Events,
    /// No entry (sign-in, errors).
    None,
}

/// The whole page around `body`.
pub fn layout(title: &str, session: Option<&Session>, nav: Nav, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = session {
                    meta name="csrf-token" content=(s.csrf);
                }
                title { (title) " · Cordon" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/console/hosts" { span class="brand-mark" aria-hidden="true" { "◼" } " Cordon" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            ul {
                                (item(Nav::Hosts, "/console/hosts", "Hosts"))
                                (item(Nav::Audit, "/console/audit", "Audit"))
                                @if super::automation::available() {
                                    (item(Nav::Events, "/console/events-log", "Events"))
                                    (item(Nav::Rules, "/console/rules", "Rules"))
                                    li {
                                        a href="/console/approvals" aria-current=[(nav == Nav::Approvals).then_some("page")] {
                                            "Approvals"
                                            " "
                                            span id="nav-approvals" data-live="" class={"badge" @if s.pending_approvals > 0 { " badge-hot" }}
                                                aria-label={(s.pending_approvals) " pending"} {
                                                (s.pending_approvals)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        div class="who" {
                            span class="who-name" { (s.caller.name) }
                            " "
                            span class={"role role-" (s.caller.role.as_str())} { (s.caller.role.as_str()) }
                            form method="post" action="/console/logout" class="inline" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" class="link" { "Sign out" }
                            }
                        }
                    }
                }
                @if session.is_some() {
                    div id="conn-banner" class="conn-banner" role="alert" hidden {
                        strong { "Connection to the Cordon server lost." }
                        " Reconnecting… Actions are disabled until it is back, and what this page shows may be out of date."
                    }
                }
                @if let Some(a) = session.and_then(|s| s.chain_alert.as_ref()) {
                    div class="chain-banner" role="alert" {
                        strong { (a.banner()) }
                        " — " (super::visible::shown(&a.reason, false)) " (verified " (a.checked_at) "). "
                        "Records from there on may have been changed outside Cordon: this console, the "
                        "API and exports show them as stored. "
                        a href="/console/audit" { "Audit log" }
                    }
                }
                div id="flash" class="flash" role="status" aria-live="polite" hidden {}
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// Human text of a state.
pub fn state_text(s: HostState) -> &'static str {
    match s {
        HostState::Normal => "Normal",
        HostState::QuarantinePending => "Quarantine requested",
        HostState::Quarantined => "Quarantined",
        HostState::ReleasePending => "Release requested",
        HostState::Failed => "Failed",
        HostState::Tampered => "Tampered",
        HostState::NotEnforcing => "Not enforcing",
    }
}

fn state_icon(s: HostState) -> &'static str {
    match s {
        HostState::Normal => "✓",
        HostState::QuarantinePending | HostState::ReleasePending => "◔",
        HostState::Quarantined => "■",
        HostState::Failed => "✕",
        HostState::Tampered => "⚠",
        HostState::NotEnforcing => "○",
    }
}

/// The badge of a host as the console shows it ([`Shown`]): a quarantine the agent does
/// not enforce is "Not enforcing"; an offline agent gets an "offline" tag. Other
/// managers' claims (Wazuh, Velociraptor, a local `cordon isolate`) are always named: a
/// host Cordon released while another claim stands is "Normal — still isolated by
/// wazuh" in the warning colour, never a bare green "Normal"; any other state gets an
/// "also: wazuh" tag.
pub fn host_badge(h: &Host) -> Markup {
    let tag = offline(h).then_some(());
    let others: Vec<&str> = super::status::other_claims(h)
        .iter()
        .map(|c| c.source.as_str())
        .collect();
    let others_text = others.join(", ");
    html! {
        @match Shown::of(h) {
            Shown::State(HostState::Normal) if !others.is_empty() => {
                span class="state state-normal state-held" data-state="normal" data-claims=(others_text)
                    title={"Cordon released this host, but other managers' claims keep it isolated: " (others_text)} {
                    span class="state-icon" aria-hidden="true" { "◧" }
                    " "
                    span class="state-text" { "Normal — still isolated by " (others_text) }
                }
            }
            // Nobody confirmed anything: no state claim, only the fact.
            Shown::State(HostState::Normal) if super::status::never_reported(h) => {
                span class="state state-never" data-state="never_reported"
                    title="The agent has not sent a status report since it enrolled: Cordon cannot say what is in force on this host" {
                    span class="state-icon" aria-hidden="true" { "?" }
                    " "
                    span class="state-text" { "Never reported" }
                }
            }
            Shown::State(s) => (state_badge(s, &h.state_since, h.state_reason.as_deref())),
            Shown::NotEnforcing => {
                span class="state state-not_enforcing" data-state="not_enforcing"
                    title="The agent runs with enforce = false: no rules are in force on this host" {
                    span class="state-icon" aria-hidden="true" { "○" }
                    " "
                    span class="state-text" { "Not enforcing" }
                }
            }
            Shown::Degraded => {
                span class="state state-degraded" data-state="degraded"
                    title={"Quarantine in force, but not all of its exceptions: " (super::status::degraded(h).join("; "))} {
                    span class="state-icon" aria-hidden="true" { "◧" }
                    " "
                    span class="state-text" { "Quarantined — degraded" }
                }
            }
        }
        @if !others.is_empty() && Shown::of(h) != Shown::State(HostState::Normal) {
            " " span class="tag tag-claims" data-claims=(others_text)
                title={"Other managers also hold a quarantine on this host: " (others_text)} { "also: " (others_text) }
        }
        // Not enforcing in any other state too (a "Normal" host whose agent runs with
        // enforce = false: a quarantine would block nothing there; trial19 LOW-n).
        @if super::status::not_enforcing(h) && Shown::of(h) != Shown::NotEnforcing {
            " " span class="tag tag-warn tag-not-enforcing" data-not-enforcing=""
                title="The agent runs with enforce = false: it applies no rules, a quarantine would block nothing" { "not enforcing" }
        }
        @if tag.is_some() {
            " " span class="tag tag-offline" title="The agent has not reported for three of its heartbeat intervals: actions stay pending until it returns" { "offline" }
        }
    }
}

/// Colour, icon and words; pending states say for how long (kept current by the script).
pub fn state_badge(s: HostState, since: &Timestamp, reason: Option<&str>) -> Markup {
    let pending = matches!(s, HostState::QuarantinePending | HostState::ReleasePending);
    html! {
        span class={"state state-" (s.as_str())} data-state=(s.as_str()) title=[reason] {
            span class="state-icon" aria-hidden="true" { (state_icon(s)) }
            " "
            span class="state-text" { (state_text(s)) }
            @if pending {
                " "
                span class="since" data-since=(since) { "for " (ago_text(since)) }
            }
        }
    }
}

/// "3m 20s" for a duration in milliseconds.
pub fn duration_text(ms: i64) -> String {
    let s = (ms.max(0)) / 1000;
    let (d, h, m, sec) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// How long ago a time was: a [`Timestamp`] or
/// RFC 3339 text such as an audit record's `at` ("?" if unreadable).
pub fn ago_text<T: ToString + ?Sized>(t: &T) -> String {
    match parse_rfc3339(&t.to_string()) {
        Ok(ms) => duration_text(now_ms() - ms),
        Err(_) => "?".into(),
    }
}

/// A time shown relative ("4m 2s ago") with the exact time on hover (the script adds the
/// reader's local time zone; UTC stays in the title).
pub fn time_ago<T: ToString + ?Sized>(t: Option<&T>) -> Markup {
    match t.map(ToString::to_string) {
        None => html! { span class="muted" { "never" } },
        Some(t) => html! { time datetime=(t) title={(short_time(&t)) " UTC"} data-ago=(t) { (ago_text(&t)) " ago" } },
    }
}

/// An absolute time: UTC in the markup and the title; the script shows it in the
/// reader's local time zone.
pub fn time_at<T: ToString + ?Sized>(t: &T) -> Markup {
    let t = t.to_string();
    html! { time datetime=(t) title={(short_time(&t)) " UTC"} data-local="" { (short_time(&t)) } }
}

/// "in 3h 10m" until an RFC 3339 time ("?" if unreadable; "now" if passed).
pub fn until_text<T: ToString + ?Sized>(t: &T) -> String {
    match parse_rfc3339(&t.to_string()) {
        Ok(ms) if ms > now_ms() => format!("in {}", duration_text(ms - now_ms())),
        Ok(_) => "now".into(),
        Err(_) => "?".into(),
    }
}

/// "in 3h 10m" until `t` ([`until_text`]), kept current by the script every second like
/// the other relative times (trial19 LOW-m: "auto-release in 57s" stood still for 30 s).
pub fn time_until<T: ToString + ?Sized>(t: &T) -> Markup {
    let t = t.to_string();
    html! { span class="until" data-until=(t) title={(short_time(&t)) " UTC"} { (until_text(&t)) } }
}

/// `2030-01-02 03:04:05Z` from RFC 3339 (compact, still unambiguous).
pub fn short_time<T: ToString + ?Sized>(t: &T) -> String {
    let t = t.to_string().replacen('T', " ", 1);
    match (t.find('.'), t.ends_with('Z')) {
        (Some(dot), true) => format!("{}Z", &t[..dot]),
        _ => t,
    }
}

pub use cordon_proto::api::short_id;

/// `h` as sentences (review headers, confirmations) name it: the hostname, with the short
/// id when the host carries any flag (a duplicate or invalid hostname, a shared address,
/// named after by another host), so a flagged name never stands alone for one of two
/// look-alike hosts, whichever of them is selected (trial19 MED-B). Hostnames themselves
/// cannot hold the `NAME (shortid)` form (the hostname rule refuses spaces and
/// parentheses).
pub fn sentence_name(h: &Host) -> String {
    if h.flags.is_empty() {
        h.hostname.clone()
    } else {
        format!("{} ({})", h.hostname, short_id(&h.id))
    }
}

/// One line per flag of `h` ([`Host::flags`], computed by the server), naming the other
/// hosts by short id: `duplicate hostname: also 1c2d3e4f`, `duplicate address
/// 192.0.2.5: also 1c2d3e4f, 5a6b7c8d`.
pub fn flag_texts(h: &Host) -> Vec<String> {
    h.flags
        .iter()
        .map(|f| {
            let others: Vec<&str> = f.other_hosts.iter().map(|o| short_id(o)).collect();
            let others = cordon_proto::api::capped_list(&others);
            match &f.kind {
                cordon_proto::HostFlagKind::DuplicateHostname => format!("duplicate hostname: also {others}"),
                cordon_proto::HostFlagKind::DuplicateAddress => format!("duplicate address {}: also {others}", f.value),
                cordon_proto::HostFlagKind::InvalidHostname if others.is_empty() => {
                    "invalid hostname: use the id".to_string()
                }
                cordon_proto::HostFlagKind::InvalidHostname => format!("invalid hostname: reads as {others}"),
                cordon_proto::HostFlagKind::NamedAfter => {
                    format!("named after: host {others} is named {:?}", f.value)
                }
                cordon_proto::HostFlagKind::Other(other) => format!("{other} {}: also {others}", f.value),
            }
        })
        .collect()
}

/// `h`'s flags as warning badges (the reason in words, the server's full sentence with
/// full ids on hover); nothing for a host without flags.
pub fn flag_badges(h: &Host) -> Markup {
    html! {
        @for (f, text) in h.flags.iter().zip(flag_texts(h)) {
            " " span class="tag tag-dup" data-flag=(f.kind) title=(f.text()) { "⚠ " (text) }
        }
    }
}

/// A hostname that may break after each dot (`<wbr>`), so a long FQDN wraps in a table
/// cell at its dots rather than anywhere (escaped).
pub fn breakable_name(name: &str) -> Markup {
    html! { @for part in name.split_inclusive('.') { (part) wbr; } }
}

/// An audit action (`quarantine_reconfirmed`) that may break after each underscore
/// (`<wbr>`), so a narrow column wraps it between its words, never inside one (escaped).
pub fn breakable_action(action: &str) -> Markup {
    html! { @for part in action.split_inclusive('_') { (part) wbr; } }
}

/// The short id of `h` as a small monospace tag, the full id on hover.
pub fn short_id_tag(id: &str) -> Markup {
    html! { code class="short-id" title={"host id " (id)} { (short_id(id)) } }
}

/// A host's labels as badges (escaped).
pub fn labels(list: &[String]) -> Markup {
    html! {
        @for l in list {
            span class={"label" @if l == cordon_proto::QUARANTINE_LABEL { " label-q" }} { (l) }
            " "
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_interpolated() {
        let evil = "<script>alert(1)</script>\"'&";
        let m = html! { td title=(evil) { (evil) } (labels(&[evil.to_string()])) };
        let out = m.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{out}");
        assert!(out.contains("&quot;"), "{out}");
        assert!(out.contains("&amp;"), "{out}");
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(duration_text(5_000), "5s");
        assert_eq!(duration_text(125_000), "2m 5s");
        assert_eq!(duration_text(3_660_000), "1h 1m");
        assert_eq!(duration_text(90_000_000), "1d 1h");
        assert_eq!(short_time("2030-01-02T03:04:05.250Z"), "2030-01-02 03:04:05Z");
        let b = state_badge(
            HostState::QuarantinePending,
            &"2030-01-02T03:04:05.250Z".parse().unwrap(),
            None,
        )
        .into_string();
        assert!(b.contains("Quarantine requested") && b.contains("data-since"), "{b}");
    }

    fn claimed(state: HostState, quarantined: bool, sources: &[&str]) -> Host {
        Host {
            id: "h".into(),
            hostname: "web".into(),
            os: None,
            addresses: vec![],
            labels: vec![],
            agent_version: None,
            last_seen: None,
            enrolled_at: "2030-01-01T00:00:00Z".parse().unwrap(),
            desired: cordon_proto::DesiredState {
                revision: 2,
                quarantined,
                ..Default::default()
            },
            state,
            state_reason: None,
            state_since: "2030-01-01T00:00:00Z".parse().unwrap(),
            applied_revision: 2,
            digest: None,
            backend: None,
            revoked: false,
            degraded: vec![],
            enforcing: true,
            heartbeat_ms: None,
            offline: false,
            claims: sources
                .iter()
                .map(|s| cordon_proto::ClaimInfo {
                    source: cordon_proto::ClaimSource::from_wire(s),
                    since: None,
                    allow: vec![],
                    servers: vec![],
                    owner: None,
                })
                .collect(),
            flags: vec![],
        }
    }

    /// The fault kind: a list row that shows a bare state ("✓ Normal" in green) while
    /// another manager's claim isolates the host.
    #[test]
    fn badges_name_other_managers_claims_never_a_bare_normal() {
        let b = host_badge(&claimed(HostState::Normal, false, &["wazuh"])).into_string();
        assert!(
            b.contains("Normal — still isolated by wazuh") && b.contains("state-held"),
            "{b}"
        );
        assert!(!b.contains(">Normal<"), "{b}");
        let b = host_badge(&claimed(HostState::Quarantined, true, &["agent", "wazuh", "local"])).into_string();
        assert!(b.contains(">Quarantined<") && b.contains("also: wazuh, local"), "{b}");
        let b = host_badge(&claimed(HostState::Quarantined, true, &["agent"])).into_string();
        assert!(!b.contains("also:"), "Cordon's own claim is not another manager's: {b}");
        let b = host_badge(&claimed(HostState::Normal, false, &[])).into_string();
        assert!(b.contains(">Normal<") && !b.contains("still isolated"), "{b}");
    }
}

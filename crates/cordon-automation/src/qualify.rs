//! Rule qualification, a pure function (Halo semantics plus Cordon's guardrails).
//!
//! Halo fires when the event type is one of the rule's, the event is critical if the rule
//! asks for that, and the workload is in one of the trigger groups, where every group name
//! must match exactly one group. Cordon's labels are the groups. On top come the
//! guardrails: protected labels, one pending action per host, the kill switch, the
//! per-host cooldown and the fleet-wide cap (beyond which the action waits for approval).

use super::validate::Rule;
use cordon_proto::automation::{OutcomeKind, Severity};

/// What is known about the event.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    /// The event's type (matched against a rule's `trigger_event_types`).
    pub event_type: &'a str,
    /// The event's tags (also matched against `trigger_event_types`).
    pub tags: &'a [String],
    /// The event's severity (`only_critical` rules need `critical`).
    pub severity: Severity,
}

/// What is known about the host the event is about.
#[derive(Debug, Clone)]
pub struct HostFacts<'a> {
    /// The host's labels.
    pub labels: &'a [String],
    /// Desired quarantined already (by anyone).
    pub quarantined: bool,
    /// An approval for this host is already waiting.
    pub approval_pending: bool,
    /// Unix ms of the last automatic action on this host, if any.
    pub last_auto_action_ms: Option<i64>,
}

/// Fleet-wide state at evaluation time.
#[derive(Debug, Clone)]
pub struct Fleet<'a> {
    /// Every distinct label that exists (on non-revoked hosts).
    pub labels: &'a [String],
    /// Kill switch: `false` stops automation.
    pub enabled: bool,
    /// Hosts with one of these labels are never quarantined automatically.
    pub protected_labels: &'a [String],
    /// Fleet cooldown: seconds after an automatic action before the next on that host.
    pub cooldown_secs: i64,
    /// Automatic quarantines allowed per cap window before approvals are needed.
    pub cap_count: i64,
    /// Automatic quarantines within the cap window so far.
    pub recent_quarantines: i64,
    /// The evaluation time, Unix ms.
    pub now_ms: i64,
}

/// What one rule decides for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Quarantine now.
    Quarantine,
    /// Dry-run rule: notify that it would quarantine.
    NotifyOnly,
    /// Cap reached: queue for an admin.
    ApprovalRequired(String),
    /// The rule does not apply to this event.
    NoMatch(String),
    /// The rule applies, a guardrail stops it.
    Blocked(String),
    /// The rule cannot be evaluated (a label does not resolve).
    RuleError(String),
}

impl Decision {
    /// The decision's name as recorded in an event's outcomes (`quarantine`, `no_match`, ...).
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Decision::Quarantine => OutcomeKind::Quarantine,
            Decision::NotifyOnly => OutcomeKind::NotifyOnly,
            Decision::ApprovalRequired(_) => OutcomeKind::ApprovalRequired,
            Decision::NoMatch(_) => OutcomeKind::NoMatch,
            Decision::Blocked(_) => OutcomeKind::Blocked,
            Decision::RuleError(_) => OutcomeKind::RuleError,
        }
    }

    /// Why, in words, for the event's outcomes.
    pub fn reason(&self) -> String {
        match self {
            Decision::Quarantine => "qualifies: quarantine".into(),
            Decision::NotifyOnly => "qualifies: notify_only rule (dry run), nothing changed".into(),
            Decision::ApprovalRequired(r) | Decision::NoMatch(r) | Decision::Blocked(r) | Decision::RuleError(r) => {
                r.clone()
            }
        }
    }

    /// Whether this rule claims the event (later rules are not consulted).
    pub fn acts(&self) -> bool {
        matches!(
            self,
            Decision::Quarantine | Decision::NotifyOnly | Decision::ApprovalRequired(_)
        )
    }
}

fn near(a: &str) -> String {
    cordon_server_core::service::validate::label_key(a)
}

/// Resolves one trigger label against the existing labels: exactly one label of that
/// name (case-sensitive), and no other label that looks like it (differs only in case,
/// whitespace, width or look-alike characters: the same
/// [`label_key`](cordon_server_core::service::validate::label_key) new labels are
/// checked with).
pub fn resolve_label(name: &str, existing: &[String]) -> Result<(), String> {
    let exact = existing.iter().filter(|l| l.as_str() == name).count();
    let similar: Vec<&String> = existing
        .iter()
        .filter(|l| l.as_str() != name && near(l) == near(name))
        .collect();
    match (exact, similar.is_empty()) {
        (1, true) => Ok(()),
        (0, true) => Err(format!("trigger label {name:?} does not exist")),
        (0, false) => Err(format!(
            "trigger label {name:?} does not exist (similar: {similar:?}); labels are case-sensitive"
        )),
        (1, false) => Err(format!(
            "trigger label {name:?} is ambiguous: near-duplicates {similar:?} look alike (case, whitespace, width or look-alike characters)"
        )),
        (n, _) => Err(format!("trigger label {name:?} is ambiguous: {n} labels of that name")),
    }
}

/// Why an event is blocked while the kill switch is on (also a rule's [`cannot_fire`] reason).
pub const KILL_SWITCH: &str = "automation is stopped (kill switch)";

/// Every trigger label of `rule` resolves ([`resolve_label`]) against `fleet_labels`, or
/// the first that does not, with `: rule does not fire` appended. Evaluation
/// ([`qualify`]) and a rule's standing state ([`cannot_fire`]) both call this, so the
/// Rules page cannot say a rule fires when evaluation would refuse it.
pub fn trigger_labels_resolve(rule: &Rule, fleet_labels: &[String]) -> Result<(), String> {
    for l in &rule.trigger_labels {
        resolve_label(l, fleet_labels).map_err(|why| format!("{why}: rule does not fire"))?;
    }
    Ok(())
}

/// The first of `host_labels` that is protected, if any (such a host is never
/// quarantined automatically): one of `protected` or a look-alike of one
/// ([`protected_label`](cordon_server_core::service::validate::protected_label)).
pub fn protected_label<'a>(host_labels: &'a [String], protected: &[String]) -> Option<&'a String> {
    cordon_server_core::service::validate::protected_label(host_labels, protected)
}

/// What a rule's standing state is computed from: the fleet as it is now.
#[derive(Debug, Clone)]
pub struct FleetNow<'a> {
    /// Every distinct label on a non-revoked host (what trigger labels resolve against).
    pub labels: &'a [String],
    /// The labels of each non-revoked host, one entry per host.
    pub host_labels: &'a [Vec<String>],
    /// Kill switch: `false` stops automation.
    pub enabled: bool,
    /// Protected labels (hosts carrying one are never quarantined automatically).
    pub protected_labels: &'a [String],
}

/// Why a rule cannot quarantine any host right now, whatever event arrives; empty when it
/// can. Computed with the same functions as evaluation ([`trigger_labels_resolve`],
/// [`protected_label`], [`KILL_SWITCH`]): disabled or invalid (`rule` is the validation
/// result of the stored spec, `disabled_reason` the stored reason), a trigger label that
/// does not resolve (missing, or ambiguous with near-duplicates), the kill switch, or
/// every host carrying a trigger label being protected. A `notify_only` rule "fires" by
/// notifying, so the same reasons apply to it.
pub fn cannot_fire(
    rule: Result<&Rule, &str>,
    active: bool,
    disabled_reason: Option<&str>,
    fleet: &FleetNow<'_>,
) -> Vec<String> {
    let mut why = Vec::new();
    if !active {
        why.push(disabled_reason.unwrap_or("disabled").to_string());
    }
    let rule = match rule {
        Ok(r) => r,
        Err(e) => {
            if active {
                why.push(format!("invalid: {e}"));
            }
            return why;
        }
    };
    if let Err(e) = trigger_labels_resolve(rule, fleet.labels) {
        why.push(e);
    } else {
        let targets: Vec<&Vec<String>> = fleet
            .host_labels
            .iter()
            .filter(|h| rule.trigger_labels.iter().any(|l| h.contains(l)))
            .collect();
        if !targets.is_empty()
            && targets
                .iter()
                .all(|h| protected_label(h, fleet.protected_labels).is_some())
        {
            why.push(format!(
                "every host with a trigger label ({}) carries a protected label: none is quarantined automatically",
                targets.len()
            ));
        }
    }
    if !fleet.enabled {
        why.push(KILL_SWITCH.into());
    }
    why
}

/// The pure qualification function. Disabled rules are never passed here (the caller
/// reports them), but an explicit `active = false` is honoured for completeness.
pub fn qualify(rule: &Rule, active: bool, ev: &EventFacts<'_>, host: &HostFacts<'_>, fleet: &Fleet<'_>) -> Decision {
    if !active {
        return Decision::NoMatch("rule is disabled".into());
    }
    let type_match = rule
        .trigger_event_types
        .iter()
        .any(|t| t == ev.event_type || ev.tags.iter().any(|g| g == t));
    if !type_match {
        return Decision::NoMatch(format!("event type {:?} is not a trigger type", ev.event_type));
    }
    if rule.only_critical && ev.severity != Severity::Critical {
        return Decision::NoMatch(format!(
            "rule is only_critical and the event is {}",
            ev.severity.as_str()
        ));
    }
    if let Err(why) = trigger_labels_resolve(rule, fleet.labels) {
        return Decision::RuleError(why);
    }
    let Some(label) = rule.trigger_labels.iter().find(|l| host.labels.contains(l)) else {
        return Decision::NoMatch(format!(
            "host carries none of the trigger labels {:?}",
            rule.trigger_labels
        ));
    };
    if let Some(p) = protected_label(host.labels, fleet.protected_labels) {
        return Decision::Blocked(format!("host carries protected label {p:?}"));
    }
    if host.quarantined {
        return Decision::Blocked("host is already quarantined".into());
    }
    if host.approval_pending {
        return Decision::Blocked("an approval for this host is already pending".into());
    }
    if !fleet.enabled {
        return Decision::Blocked(KILL_SWITCH.into());
    }
    let cooldown = rule.cooldown_secs.unwrap_or(fleet.cooldown_secs);
    if let Some(last) = host.last_auto_action_ms {
        let until = last.saturating_add(cooldown.saturating_mul(1000));
        if fleet.now_ms < until {
            return Decision::Blocked(format!(
                "host is in cooldown for {} more s",
                (until - fleet.now_ms + 999) / 1000
            ));
        }
    }
    if rule.notify_only {
        return Decision::NotifyOnly;
    }
    if fleet.recent_quarantines >= fleet.cap_count {
        return Decision::ApprovalRequired(format!(
            "fleet cap reached ({} automatic quarantines in the window); label {label:?} matched",
            fleet.recent_quarantines
        ));
    }
    Decision::Quarantine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            name: "r".into(),
            trigger_event_types: vec!["wazuh.alert".into(), "malware".into()],
            only_critical: true,
            trigger_labels: vec!["servers".into()],
            allow: vec![],
            message: None,
            expires_after_secs: None,
            notify_only: false,
            cooldown_secs: None,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// One row: a change from the baseline and the expected decision kind (and a word of
    /// its reason).
    struct Case {
        name: &'static str,
        rule: fn(&mut Rule),
        active: bool,
        event_type: &'static str,
        tags: &'static [&'static str],
        severity: Severity,
        host_labels: &'static [&'static str],
        fleet_labels: &'static [&'static str],
        quarantined: bool,
        pending: bool,
        last_action_secs_ago: Option<i64>,
        enabled: bool,
        recent: i64,
        want: &'static str,
        why: &'static str,
    }

    const BASE: Case = Case {
        name: "baseline",
        rule: |_| {},
        active: true,
        event_type: "wazuh.alert",
        tags: &[],
        severity: Severity::Critical,
        host_labels: &["servers"],
        fleet_labels: &["servers", "laptops", "cordon-protected"],
        quarantined: false,
        pending: false,
        last_action_secs_ago: None,
        enabled: true,
        recent: 0,
        want: "quarantine",
        why: "",
    };

    #[test]
    fn qualification_table() {
        let cases = [
            BASE,
            Case {
                name: "type mismatch",
                event_type: "login",
                want: "no_match",
                why: "not a trigger type",
                ..BASE
            },
            Case {
                name: "type via tag",
                event_type: "other",
                tags: &["malware"],
                ..BASE
            },
            Case {
                name: "not critical",
                severity: Severity::High,
                want: "no_match",
                why: "only_critical",
                ..BASE
            },
            Case {
                name: "critical not required",
                rule: |r| r.only_critical = false,
                severity: Severity::Low,
                ..BASE
            },
            Case {
                name: "not in group",
                host_labels: &["laptops"],
                want: "no_match",
                why: "none of the trigger labels",
                ..BASE
            },
            Case {
                name: "host without labels",
                host_labels: &[],
                want: "no_match",
                why: "none of the trigger",
                ..BASE
            },
            Case {
                name: "one of several labels",
                rule: |r| r.trigger_labels = vec!["laptops".into(), "servers".into()],
                ..BASE
            },
            Case {
                name: "missing label",
                fleet_labels: &["laptops"],
                host_labels: &["laptops"],
                want: "rule_error",
                why: "does not exist",
                ..BASE
            },
            Case {
                name: "case differs only",
                fleet_labels: &["Servers"],
                host_labels: &["Servers"],
                want: "rule_error",
                why: "case-sensitive",
                ..BASE
            },
            Case {
                name: "near duplicate case",
                fleet_labels: &["servers", "Servers"],
                want: "rule_error",
                why: "ambiguous",
                ..BASE
            },
            Case {
                name: "near duplicate space",
                fleet_labels: &["servers", "servers "],
                want: "rule_error",
                why: "ambiguous",
                ..BASE
            },
            Case {
                name: "one of two labels missing",
                rule: |r| r.trigger_labels = vec!["servers".into(), "dbs".into()],
                want: "rule_error",
                why: "\"dbs\" does not exist",
                ..BASE
            },
            Case {
                name: "disabled rule",
                active: false,
                want: "no_match",
                why: "disabled",
                ..BASE
            },
            Case {
                name: "protected",
                host_labels: &["servers", "cordon-protected"],
                want: "blocked",
                why: "protected",
                ..BASE
            },
            Case {
                name: "already quarantined",
                quarantined: true,
                want: "blocked",
                why: "already quarantined",
                ..BASE
            },
            Case {
                name: "approval pending",
                pending: true,
                want: "blocked",
                why: "pending",
                ..BASE
            },
            Case {
                name: "kill switch",
                enabled: false,
                want: "blocked",
                why: "kill switch",
                ..BASE
            },
            Case {
                name: "cooldown",
                last_action_secs_ago: Some(60),
                want: "blocked",
                why: "cooldown",
                ..BASE
            },
            Case {
                name: "cooldown over",
                last_action_secs_ago: Some(7200),
                ..BASE
            },
            Case {
                name: "rule cooldown shorter",
                rule: |r| r.cooldown_secs = Some(30),
                last_action_secs_ago: Some(60),
                ..BASE
            },
            Case {
                name: "cap reached",
                recent: 5,
                want: "approval_required",
                why: "cap",
                ..BASE
            },
            Case {
                name: "cap almost",
                recent: 4,
                ..BASE
            },
            Case {
                name: "notify only",
                rule: |r| r.notify_only = true,
                want: "notify_only",
                ..BASE
            },
            Case {
                name: "notify only ignores cap",
                rule: |r| r.notify_only = true,
                recent: 9,
                want: "notify_only",
                ..BASE
            },
            Case {
                name: "protected beats cap",
                host_labels: &["servers", "cordon-protected"],
                recent: 9,
                want: "blocked",
                why: "protected",
                ..BASE
            },
            Case {
                name: "no match beats kill switch",
                event_type: "login",
                enabled: false,
                want: "no_match",
                ..BASE
            },
            Case {
                name: "missing label beats cap",
                fleet_labels: &[],
                recent: 9,
                want: "rule_error",
                ..BASE
            },
        ];
        let now = 10_000_000_000i64;
        for c in &cases {
            let mut r = rule();
            (c.rule)(&mut r);
            let tags = s(c.tags);
            let host_labels = s(c.host_labels);
            let fleet_labels = s(c.fleet_labels);
            let protected = s(&["cordon-protected"]);
            let ev = EventFacts {
                event_type: c.event_type,
                tags: &tags,
                severity: c.severity,
            };
            let host = HostFacts {
                labels: &host_labels,
                quarantined: c.quarantined,
                approval_pending: c.pending,
                last_auto_action_ms: c.last_action_secs_ago.map(|s| now - s * 1000),
            };
            let fleet = Fleet {
                labels: &fleet_labels,
                enabled: c.enabled,
                protected_labels: &protected,
                cooldown_secs: 3600,
                cap_count: 5,
                recent_quarantines: c.recent,
                now_ms: now,
            };
            let d = qualify(&r, c.active, &ev, &host, &fleet);
            assert_eq!(d.kind().as_str(), c.want, "case {:?}: {d:?}", c.name);
            assert!(
                d.reason().contains(c.why),
                "case {:?}: reason {:?} lacks {:?}",
                c.name,
                d.reason(),
                c.why
            );
        }
    }

    /// trial11 HIGH 1 / LOW 10: a rule whose evaluation would refuse every event (an
    /// ambiguous trigger label, the kill switch, disabled, only protected targets) never
    /// reads as firing; the reason is the evaluation's own.
    #[test]
    fn a_rule_that_cannot_fire_says_why_in_the_words_evaluation_uses() {
        let r = rule();
        let labels = s(&["servers", "laptops", "cordon-protected"]);
        let hosts = vec![s(&["servers"]), s(&["laptops"])];
        let prot = s(&["cordon-protected"]);
        let fleet = FleetNow {
            labels: &labels,
            host_labels: &hosts,
            enabled: true,
            protected_labels: &prot,
        };
        assert!(cannot_fire(Ok(&r), true, None, &fleet).is_empty());
        // Ambiguous: the same text as the no_match/rule_error reason of an event.
        let amb = s(&["servers", "Servers"]);
        let f = FleetNow {
            labels: &amb,
            ..fleet.clone()
        };
        let why = cannot_fire(Ok(&r), true, None, &f);
        let ev_reason = trigger_labels_resolve(&r, &amb).unwrap_err();
        assert_eq!(why, vec![ev_reason.clone()]);
        assert!(ev_reason.contains("ambiguous"), "{ev_reason}");
        // Kill switch.
        let f = FleetNow {
            enabled: false,
            ..fleet.clone()
        };
        assert_eq!(cannot_fire(Ok(&r), true, None, &f), vec![KILL_SWITCH.to_string()]);
        // Disabled, with its stored reason.
        assert_eq!(
            cannot_fire(Ok(&r), false, Some("disabled by request"), &fleet),
            vec!["disabled by request".to_string()]
        );
        assert!(cannot_fire(Err("bad"), true, None, &fleet)[0].contains("invalid: bad"));
        // Every host with the trigger label is protected.
        let hp = vec![s(&["servers", "cordon-protected"]), s(&["laptops"])];
        let f = FleetNow {
            host_labels: &hp,
            ..fleet.clone()
        };
        let why = cannot_fire(Ok(&r), true, None, &f);
        assert!(why.len() == 1 && why[0].contains("protected"), "{why:?}");
        // One unprotected target is enough to fire.
        let hp = vec![s(&["servers", "cordon-protected"]), s(&["servers"])];
        let f = FleetNow {
            host_labels: &hp,
            ..fleet
        };
        assert!(cannot_fire(Ok(&r), true, None, &f).is_empty());
    }

    #[test]
    fn label_resolution() {
        let l = s(&["servers", "web", "Web ", "dc", "lab", "l\u{0430}b"]);
        // Cyrillic look-alike (trial11 MED 2): ambiguous like a case variant.
        assert!(resolve_label("lab", &l).unwrap_err().contains("ambiguous"));
        assert!(resolve_label("servers", &l).is_ok());
        assert!(resolve_label("web", &l).unwrap_err().contains("ambiguous"));
        assert!(resolve_label("Servers", &l).unwrap_err().contains("similar"));
        assert!(resolve_label("dbs", &l).unwrap_err().contains("does not exist"));
        assert!(resolve_label("servers", &s(&["servers", "servers"]))
            .unwrap_err()
            .contains("2 labels"));
    }
}

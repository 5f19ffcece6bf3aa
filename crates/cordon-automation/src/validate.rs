//! Rule and target validation (pure). A rule that fails here is stored disabled with
//! the returned reason; it is never half-enabled.

use cordon_policy::AllowSpec;
use cordon_proto::{MAX_MESSAGE_CHARS, QUARANTINE_LABEL};

use cordon_proto::automation::{
    NotifyKind, RuleMode, RuleSpec, Settings, SettingsPatch, TargetSpec, NOTIFY_KINDS, OPT_IN_NOTIFY_KINDS,
};
use cordon_server_core::timefmt::Span;

/// A rule ready to evaluate: the validated form of a [`RuleSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable name; the actor of its actions is `rule:<name>`.
    pub name: String,
    /// Event types (or tags) that trigger it.
    pub trigger_event_types: Vec<String>,
    /// Only `critical` events trigger it.
    pub only_critical: bool,
    /// The host must carry one of these labels.
    pub trigger_labels: Vec<String>,
    /// Extra allowed destinations (`--allow` specs, checked) while quarantined.
    pub allow: Vec<String>,
    /// Message shown to logged-in users (at most `MAX_MESSAGE_CHARS`).
    pub message: Option<String>,
    /// Automatic release after this many seconds.
    pub expires_after_secs: Option<i64>,
    /// Dry run: record and notify, enforce nothing.
    pub notify_only: bool,
    /// This rule's own cooldown, seconds (default: the fleet's).
    pub cooldown_secs: Option<i64>,
}

/// Names are stable identifiers used in the actor `rule:<name>`.
pub fn rule_name(name: &str) -> Result<String, String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 64 || !n.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(format!("rule name {n:?} must be 1-64 characters of A-Z a-z 0-9 . _ -"));
    }
    Ok(n.to_string())
}

/// Checks everything but the name; `Err` is the reason the rule is stored disabled.
pub fn rule(spec: &RuleSpec) -> Result<Rule, String> {
    let name = rule_name(&spec.name)?;
    if spec.trigger_event_types.is_empty() {
        return Err("trigger_event_types is empty: the rule would never fire".into());
    }
    let mut types = Vec::new();
    for t in &spec.trigger_event_types {
        let t = t.trim();
        if t.is_empty() || t.len() > 200 {
            return Err(format!("event type {t:?} must be 1-200 characters"));
        }
        types.push(t.to_string());
    }
    if spec.trigger_labels.is_empty() {
        return Err("trigger_labels is empty: name at least one label (Halo's trigger groups)".into());
    }
    for l in &spec.trigger_labels {
        // Labels are compared exactly: surrounding spaces would never match.
        if l.is_empty() || l.trim() != l || l.chars().count() > 64 || l.chars().any(|c| c.is_control() || c == ',') {
            return Err(format!(
                "trigger label {l:?} is not a valid label (1-64 characters, no commas, no surrounding spaces)"
            ));
        }
        if l == QUARANTINE_LABEL {
            return Err(format!("trigger label {QUARANTINE_LABEL:?} is managed by the server"));
        }
    }
    // `spec.action` is a `RuleAction`: an unsupported action is refused where the rule
    // comes in (deserialization), so there is nothing left to check here.
    for a in &spec.allow {
        AllowSpec::parse(a).map_err(|e| format!("allow {a:?}: {e}"))?;
    }
    let message = match spec.message.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => {
            return Err(format!("message is longer than {MAX_MESSAGE_CHARS} characters"))
        }
        Some(m) => Some(m.to_string()),
    };
    // One duration type (issue 13): the error names the field.
    let span = |field: &str, text: Option<&str>| {
        text.map(|t| Span::parse(t).map(Span::secs).map_err(|e| e.field(field).to_string()))
            .transpose()
    };
    let expires_after_secs = span("expires_after", spec.expires_after.as_deref())?;
    if let (Some(secs), Some(given)) = (expires_after_secs, spec.expires_after.as_deref()) {
        cordon_proto::check_expiry_secs(&format!("expires_after {}", given.trim()), secs)?;
    }
    let cooldown_secs = span("cooldown", spec.cooldown.as_deref())?;
    let notify_only = match &spec.mode {
        RuleMode::Enforce => false,
        RuleMode::NotifyOnly => true,
        RuleMode::Other(other) => return Err(format!("mode {other:?} must be \"enforce\" or \"notify_only\"")),
    };
    Ok(Rule {
        name,
        trigger_event_types: types,
        only_critical: spec.only_critical,
        trigger_labels: spec.trigger_labels.clone(),
        allow: spec.allow.iter().map(|a| a.trim().to_string()).collect(),
        message,
        expires_after_secs,
        notify_only,
        cooldown_secs,
    })
}

/// Notification targets must be complete; these are refused (400), not stored.
pub fn target(spec: &TargetSpec) -> Result<TargetSpec, String> {
    let name = spec.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err("target name must be 1-64 characters".into());
    }
    let url = spec.url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
        return Err(format!("url {url:?} must be an http(s) URL"));
    }
    let mut events = Vec::new();
    for e in &spec.events {
        if !NOTIFY_KINDS.contains(e) && !OPT_IN_NOTIFY_KINDS.contains(e) {
            let names = |kinds: &[NotifyKind]| kinds.iter().map(NotifyKind::as_str).collect::<Vec<_>>().join(", ");
            return Err(format!(
                "event filter {:?} must be one of {}, {}",
                e.as_str(),
                names(&NOTIFY_KINDS),
                names(&OPT_IN_NOTIFY_KINDS)
            ));
        }
        if !events.contains(e) {
            events.push(e.clone());
        }
    }
    if events.is_empty() {
        events = NOTIFY_KINDS.to_vec();
    }
    Ok(TargetSpec {
        name: name.to_string(),
        kind: spec.kind,
        url: url.to_string(),
        events,
        enabled: spec.enabled,
    })
}

/// The settings after `p` (fields left out unchanged); `Err` names what is out of range.
pub fn apply_patch(mut s: Settings, p: &SettingsPatch) -> Result<Settings, String> {
    if let Some(v) = p.enabled {
        s.enabled = v;
    }
    if let Some(v) = p.cap_count {
        s.cap_count = v;
    }
    if let Some(v) = p.cap_window_secs {
        s.cap_window_secs = v;
    }
    if let Some(v) = p.cooldown_secs {
        s.cooldown_secs = v;
    }
    if let Some(v) = &p.protected_labels {
        s.protected_labels = v
            .iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
    }
    if let Some(v) = p.event_retention_days {
        s.event_retention_days = v;
    }
    if let Some(v) = p.event_retention_max {
        s.event_retention_max = v;
    }
    if let Some(v) = &p.console_url {
        let v = v.trim().trim_end_matches('/');
        s.console_url = (!v.is_empty()).then(|| v.to_string());
    }
    if s.cap_count < 0 || s.cap_window_secs <= 0 || s.cooldown_secs < 0 {
        return Err("cap_count must be >= 0, cap_window_secs > 0, cooldown_secs >= 0".into());
    }
    if s.event_retention_days <= 0 || s.event_retention_max <= 0 {
        return Err("event retention (days, max) must be positive".into());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_proto::automation::RuleAction;

    /// An unsupported action is refused where the rule comes in, naming the field (it was
    /// a string stored disabled before); `quarantine` and the default still read.
    #[test]
    fn an_unknown_rule_action_is_refused_naming_the_field() {
        let base = serde_json::json!({"name": "r", "trigger_event_types": ["t"], "trigger_labels": ["l"]});
        let read = |action: Option<&str>| {
            let mut v = base.clone();
            if let Some(a) = action {
                v["action"] = a.into();
            }
            serde_json::from_value::<RuleSpec>(v).map(|s| s.action)
        };
        assert_eq!(read(None).unwrap(), RuleAction::Quarantine);
        assert_eq!(read(Some("quarantine")).unwrap(), RuleAction::Quarantine);
        let e = read(Some("delete")).unwrap_err();
        assert!(e.to_string().contains("unknown variant `delete`"), "{e}");
        let wire = serde_json::to_value(RuleAction::Quarantine).unwrap();
        assert_eq!(wire, "quarantine");
    }

    fn spec() -> RuleSpec {
        RuleSpec {
            name: "wazuh-high".into(),
            enabled: true,
            trigger_event_types: vec!["wazuh.alert".into()],
            only_critical: true,
            trigger_labels: vec!["servers".into()],
            action: RuleAction::Quarantine,
            allow: vec!["tcp://192.0.2.7:1514".into()],
            message: Some("isolated".into()),
            expires_after: Some("4h".into()),
            mode: RuleMode::Enforce,
            cooldown: None,
        }
    }

    #[test]
    fn valid_and_invalid_rules() {
        let r = rule(&spec()).unwrap();
        assert_eq!(r.expires_after_secs, Some(4 * 3600));
        assert!(!r.notify_only);
        type Case = (fn(&mut RuleSpec), &'static str);
        let cases: Vec<Case> = vec![
            (|s| s.trigger_event_types.clear(), "trigger_event_types"),
            (|s| s.trigger_labels.clear(), "trigger_labels"),
            (|s| s.trigger_labels = vec![" servers".into()], "not a valid label"),
            (|s| s.trigger_labels = vec!["Quarantine".into()], "managed"),
            (|s| s.allow = vec!["tcp://nope".into()], "allow"),
            (
                |s| s.expires_after = Some("2w".into()),
                "expires_after: \"2w\" is not a duration",
            ),
            (
                |s| s.cooldown = Some("1h 30m".into()),
                "cooldown: \"1h 30m\" is not a duration",
            ),
            // Issue 14: beyond the documented limit, refused naming it.
            (
                |s| s.expires_after = Some("999999999d".into()),
                "more than 366 days ahead",
            ),
            (|s| s.mode = "yolo".into(), "mode"),
            (|s| s.message = Some("m".repeat(300)), "message"),
            (|s| s.name = "a b".into(), "rule name"),
        ];
        for (mutate, want) in cases {
            let mut s = spec();
            mutate(&mut s);
            let err = rule(&s).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}

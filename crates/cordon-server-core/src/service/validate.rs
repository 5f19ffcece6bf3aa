//! Input checks done before anything is written: a request that fails here changes nothing.

use cordon_policy::AllowSpec;
use cordon_proto::{ActionRequest, MAX_MESSAGE_CHARS};

use crate::limits::MAX_ALLOW_PER_HOST;
use crate::store::{ActionParams, Targets};
use crate::timefmt::{now_ms, parse_rfc3339};
use crate::ApiError;

pub const MAX_COMMENT_CHARS: usize = 2000;
pub const MAX_LABEL_CHARS: usize = 64;

pub fn comment(c: Option<&str>) -> Result<String, ApiError> {
    let c = c.map(str::trim).unwrap_or("");
    if c.is_empty() {
        return Err(ApiError::invalid("comment is required: say why"));
    }
    if c.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::invalid(format!(
            "comment is longer than {MAX_COMMENT_CHARS} characters"
        )));
    }
    Ok(c.to_string())
}

pub fn label(l: &str) -> Result<String, ApiError> {
    let l = l.trim();
    if l.is_empty() || l.chars().count() > MAX_LABEL_CHARS || l.chars().any(|c| c.is_control() || c == ',') {
        return Err(ApiError::invalid(format!(
            "label {l:?} must be 1 to {MAX_LABEL_CHARS} characters without commas or control characters"
        )));
    }
    Ok(l.to_string())
}

/// Longest API token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 128;

/// Name prefixes the server's own actors use in the audit log (compared case-insensitively
/// after trimming): a token named like them would make a person's action read as the
/// server's, an agent's, a rule's or enrollment's.
pub const RESERVED_TOKEN_PREFIXES: [&str; 4] = ["system", "agent:", "rule:", "enrollment"];

/// The form token names are compared in for uniqueness: trimmed, lower-case.
pub fn token_name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Checks an API token's name: trimmed, 1-128 printable characters, not under a reserved
/// prefix. Returns the trimmed name.
///
/// # Errors
/// 400 naming the problem.
pub fn token_name(name: &str) -> Result<String, ApiError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_TOKEN_NAME_CHARS || n.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "token name must be 1 to {MAX_TOKEN_NAME_CHARS} printable characters"
        )));
    }
    let key = token_name_key(n);
    if let Some(p) = RESERVED_TOKEN_PREFIXES.iter().find(|p| key.starts_with(*p)) {
        return Err(ApiError::invalid(format!(
            "token name {n:?} is reserved: names starting with {p:?} (any case) are the server's own actors \
             in the audit log (system, agent:HOST, rule:NAME, enrollment); choose another name"
        )));
    }
    Ok(n.to_string())
}

/// Checks a quarantine request's parameters.
pub fn quarantine_params(req: &ActionRequest) -> Result<ActionParams, ApiError> {
    let comment = comment(req.comment.as_deref())?;
    if req.allow.len() > MAX_ALLOW_PER_HOST {
        return Err(ApiError::invalid(format!(
            "{} exceptions given; at most {MAX_ALLOW_PER_HOST} per host",
            req.allow.len()
        )));
    }
    let mut allow = Vec::with_capacity(req.allow.len());
    for spec in &req.allow {
        AllowSpec::parse(spec).map_err(|e| ApiError::invalid(e.to_string()))?;
        allow.push(spec.trim().to_string());
    }
    let message = match req.message.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => {
            return Err(ApiError::invalid(format!(
                "message is longer than {MAX_MESSAGE_CHARS} characters"
            )))
        }
        Some(m) => Some(m.to_string()),
    };
    let expires_at = match req.expires_at.as_deref() {
        None | Some("") => None,
        Some(t) => {
            let ms = parse_rfc3339(t).map_err(ApiError::invalid)?;
            if ms <= now_ms() {
                return Err(ApiError::invalid(format!("expires_at {t} is in the past")));
            }
            Some(ms)
        }
    };
    Ok(ActionParams {
        comment,
        allow,
        message,
        expires_at,
        if_revisions: req.if_revisions.clone(),
        replace: req.replace,
        preview: req.preview,
    })
}

pub fn release_params(req: &ActionRequest) -> Result<ActionParams, ApiError> {
    Ok(ActionParams {
        comment: comment(req.comment.as_deref())?,
        if_revisions: req.if_revisions.clone(),
        preview: req.preview,
        ..Default::default()
    })
}

/// Targets from the body (`hosts` or `label`, exactly one of them).
pub fn targets(req: &ActionRequest) -> Result<Targets, ApiError> {
    match (req.hosts.is_empty(), &req.label) {
        (false, None) => Ok(Targets::Hosts(req.hosts.clone())),
        (true, Some(l)) => Ok(Targets::Label(label(l)?)),
        (true, None) => Err(ApiError::invalid("give hosts [...] or label")),
        (false, Some(_)) => Err(ApiError::invalid("give either hosts or label, not both")),
    }
}

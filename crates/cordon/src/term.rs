//! Text from the server shown on a terminal (hostnames, comments, labels, agent-reported
//! detail, SIEM event fields): a compromised agent or a careless comment must not be able
//! to move the cursor, rewrite earlier lines, set the window title, reorder text or hide
//! itself.
//!
//! The escaping is [`cordon_proto::shown`]'s, the one the console and the notification
//! texts use (issue 16 §4): every control character (C0 incl. ESC, CR, BS, BEL, newline
//! and tab; DEL; C1, e.g. the 8-bit CSI U+009B) and every Unicode format character (bidi
//! overrides and isolates — "Trojan Source" —, zero-width characters) is written out as
//! `\u{…}`. JSON output ([`json`]) writes the same characters as JSON escapes (`\u202e`),
//! so it stays valid JSON with the same values and still cannot reach the terminal raw.

use std::borrow::Cow;

use cordon_proto::shown::{hidden_char, shown, Form};

/// `s` with every terminal-unsafe character written out; borrowed when nothing needed it.
pub fn safe(s: &str) -> Cow<'_, str> {
    shown(s, Form::Line)
}

/// [`safe`] into an owned `String`.
pub fn s(text: &str) -> String {
    safe(text).into_owned()
}

/// `v` as pretty JSON for a terminal: every character [`hidden_char`] names (serde leaves
/// bidi overrides, zero-width characters, DEL and C1 controls raw) becomes a JSON `\uXXXX`
/// escape (trial19 LOW-o: `cordon events show` printed a SIEM's U+202E raw). The decoded
/// values are unchanged.
///
/// # Errors
/// When `v` cannot be serialized (serde_json's error).
pub fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, serde_json::Error> {
    let text = serde_json::to_string_pretty(v)?;
    if !text.chars().any(hidden_char) {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden_char(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_sequences_are_shown_escaped() {
        assert!(matches!(safe("web-01 ünïcode"), Cow::Borrowed(_)));
        let evil = "web\u{1b}[2J\u{1b}]0;pwned\u{7}\rok\u{9b}31m\u{202e}txt.exe\u{2066}\u{7f}\u{8}\n\u{200b}";
        let out = safe(evil);
        for c in out.chars() {
            assert!(!hidden_char(c) && c != '\n', "{c:?} reached the terminal in {out:?}");
        }
        assert_eq!(
            out,
            "web\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{d}ok\\u{9b}31m\\u{202e}txt.exe\\u{2066}\\u{7f}\\u{8}\\u{a}\\u{200b}"
        );
    }

    /// trial19 LOW-o: JSON output (`events show`, `--json`) never carries a bidi override,
    /// zero-width character or control raw, and decodes to the same value.
    #[test]
    fn json_output_writes_hidden_characters_as_json_escapes() {
        let v = serde_json::json!({"source": "edr \u{202e}desab-enin\u{202c} \u{1b}[2J\u{9b}\u{7f}", "k\u{200b}": "\u{E0041}"});
        let out = json(&v).unwrap();
        assert!(!out.chars().any(hidden_char), "{out:?}");
        assert!(
            out.contains("edr \\u202edesab-enin\\u202c \\u001b[2J\\u009b\\u007f"),
            "{out}"
        );
        assert!(out.contains("\\udb40\\udc41"), "{out}");
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, v);
    }
}

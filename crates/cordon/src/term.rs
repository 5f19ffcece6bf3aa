//! Text from the server shown on a terminal (hostnames, comments, labels, agent-reported
//! detail): a compromised agent or a careless comment must not be able to move the
//! cursor, rewrite earlier lines, set the window title, reorder text or hide itself.
//!
//! Hand-written: a dozen lines over `char` classes; the crates that strip ANSI sequences
//! drop them silently, and here the reader should *see* that something was there.
//!
//! Escaped (shown as `\x1b`, `\r`, `\u{202e}`, …): every C0 control character (ESC starts
//! CSI/OSC sequences; CR returns to the line start; BS, BEL, tab, newline), DEL, every C1
//! control (U+0080–U+009F, e.g. the 8-bit CSI U+009B), and the Unicode bidirectional
//! formatting characters (U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069), which
//! reorder what follows them ("Trojan Source").

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as is.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every terminal-unsafe character escaped; borrowed when nothing needed it.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`safe`] into an owned `String`.
pub fn s(text: &str) -> String {
    safe(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_sequences_are_shown_escaped() {
        assert!(matches!(safe("web-01 ünïcode"), Cow::Borrowed(_)));
        let evil = "web\u{1b}[2J\u{1b}]0;pwned\u{7}\rok\u{9b}31m\u{202e}txt.exe\u{2066}\u{7f}\u{8}\n";
        let out = safe(evil);
        for c in out.chars() {
            assert!(!unsafe_char(c), "{c:?} reached the terminal in {out:?}");
        }
        assert_eq!(
            out,
            "web\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\rok\\u{9b}31m\\u{202e}txt.exe\\u{2066}\\u{7f}\\u{8}\\n"
        );
    }
}

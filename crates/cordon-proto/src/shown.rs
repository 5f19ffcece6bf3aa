//! Text that Cordon did not write (hostnames, comments, labels, agent-reported detail,
//! event fields from a SIEM) shown to a person: the one escaping the console, the
//! notification texts (Slack, webhook `text`) and the CLI share (issue 16 §4, trial19
//! LOW-c/g/o). A U+202E RIGHT-TO-LEFT OVERRIDE must not visually rewrite the text after
//! it, an ESC must not start a terminal sequence, a zero-width space must not make two
//! different names look alike: each such character is written out as its code point,
//! `\u{202e}`, so the reader *sees* that something was there.
//!
//! Hand-written: one `char` class ([`hidden_char`]) and a loop; crates that strip ANSI
//! sequences drop them silently, and none writes Unicode format characters out.

use std::borrow::Cow;

/// Whether `c` is shown as its code point: a control character (C0, DEL, C1) other than
/// newline and tab, a Unicode format character (category Cf: bidi embeddings, overrides,
/// isolates and marks, zero-width space/joiners, word joiner, invisible operators, BOM,
/// soft hyphen, tags), or a line/paragraph separator.
pub fn hidden_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// How [`shown`] writes a hidden character out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Plain text (a page, a notification text): `\u{202e}`; newline and tab kept.
    Text,
    /// One line of a terminal table: `\u{202e}`, and newline and tab too (`\u{a}`,
    /// `\u{9}`), so a cell cannot break the table.
    Line,
    /// Inside a JSON document (a string's characters as serialized): `\\u{202e}`, so the
    /// decoded string reads `\u{202e}`.
    Json,
}

/// `text` with every [`hidden_char`] (in [`Form::Line`] also newline and tab) written out
/// as `\u{…}` (lower-case hex, no leading zeros). Borrowed when nothing needed it. Pure.
pub fn shown(text: &str, form: Form) -> Cow<'_, str> {
    let hide = |c: char| hidden_char(c) || (form == Form::Line && (c == '\n' || c == '\t'));
    if !text.chars().any(hide) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hide(c) {
            if form == Form::Json {
                out.push('\\');
            }
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`shown`] in [`Form::Text`], owned.
pub fn text(t: &str) -> String {
    shown(t, Form::Text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_escape_and_invisible_characters_are_written_out_in_one_form() {
        let evil = "db1 \u{202e}txt.exe\u{2066} z\u{200b}q\u{1b}[2J\u{9b}1m\rok\nx\ty";
        assert_eq!(
            shown(evil, Form::Text),
            "db1 \\u{202e}txt.exe\\u{2066} z\\u{200b}q\\u{1b}[2J\\u{9b}1m\\u{d}ok\nx\ty"
        );
        assert_eq!(
            shown(evil, Form::Line),
            "db1 \\u{202e}txt.exe\\u{2066} z\\u{200b}q\\u{1b}[2J\\u{9b}1m\\u{d}ok\\u{a}x\\u{9}y"
        );
        assert_eq!(shown("\"a\u{202e}b\"", Form::Json), "\"a\\\\u{202e}b\"");
        let v: String = serde_json::from_str(&shown("\"a\u{202e}b\"", Form::Json)).unwrap();
        assert_eq!(v, "a\\u{202e}b");
        assert!(matches!(shown("plain — text ✓ ü", Form::Line), Cow::Borrowed(_)));
        for out in [shown(evil, Form::Text), shown(evil, Form::Line)] {
            assert!(!out.chars().any(hidden_char), "{out:?}");
        }
    }
}

//! Text the console did not write (hostnames, comments, labels, agent-reported failure
//! messages, event fields) reaches the analyst's screen with its invisible characters
//! shown (trial8): a U+202E RIGHT-TO-LEFT OVERRIDE in a comment must not visually
//! rewrite the console's own text after it, and a zero-width space must not make two
//! different names look alike.
//!
//! Applied to every HTML page and JSON reply the console sends (a response layer, so no
//! template can forget it; the console's own templates hold none of these characters):
//! each such character is replaced by its code point written out, `\u{202e}`. Exports
//! (`Content-Disposition`) and the event stream pass unchanged.
//!
//! Hand-written: one `char` class (control characters other than newline and tab,
//! Unicode format characters — bidi controls, zero-width spaces and joiners, soft hyphen
//! —, line and paragraph separators), the same the CLI's terminal escaping and the
//! server's hostname/label checks refuse; no crate offers "escape for display".

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether `c` is shown as its code point: a control character other than newline and
/// tab, a Unicode format character (category Cf: bidi embeddings, overrides, isolates
/// and marks, zero-width space/joiners, word joiner, invisible operators, BOM, soft
/// hyphen, tags), or a line/paragraph separator.
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

/// `text` with every [`hidden_char`] written out as `\u{…}`; in JSON (`json`) the
/// backslash is escaped so the decoded string reads `\u{202e}`. Borrowed when nothing
/// needed it (pure).
pub fn shown(text: &str, json: bool) -> Cow<'_, str> {
    if !text.chars().any(hidden_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden_char(c) {
            if json {
                out.push('\\');
            }
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The response layer: HTML pages and JSON replies go through [`shown`]; anything else
/// (assets, the event stream, exports) passes unchanged.
pub async fn layer(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let ctype = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let json = ctype.starts_with("application/json");
    if !(json || ctype.starts_with("text/html")) || r.headers().contains_key(CONTENT_DISPOSITION) {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "console reply could not be read to show its invisible characters");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    match shown(text, json) {
        Cow::Borrowed(_) => Response::from_parts(parts, Body::from(bytes)),
        Cow::Owned(o) => {
            parts.headers.remove(CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_and_invisible_characters_are_written_out() {
        let evil = "db1 \u{202e}txt.exe\u{2066} z\u{200b}q\u{1b}[2J\nok\tx";
        assert_eq!(
            shown(evil, false),
            "db1 \\u{202e}txt.exe\\u{2066} z\\u{200b}q\\u{1b}[2J\nok\tx"
        );
        assert_eq!(shown("\"a\u{202e}b\"", true), "\"a\\\\u{202e}b\"");
        let v: String = serde_json::from_str(&shown("\"a\u{202e}b\"", true)).unwrap();
        assert_eq!(v, "a\\u{202e}b");
        assert!(matches!(shown("plain — text ✓ ü", false), Cow::Borrowed(_)));
    }
}

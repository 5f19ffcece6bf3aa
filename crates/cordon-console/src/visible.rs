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
//! The character class and the written-out form are [`cordon_proto::shown`]'s, the one
//! escaping the console, the notification texts and the CLI share.

use std::borrow::Cow;

use cordon_proto::shown::Form;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use cordon_proto::shown::hidden_char;

/// `text` with every [`hidden_char`] written out as `\u{…}`; in JSON (`json`) the
/// backslash is escaped so the decoded string reads `\u{202e}` ([`cordon_proto::shown`]).
pub fn shown(text: &str, json: bool) -> Cow<'_, str> {
    let form = if json { Form::Json } else { Form::Text };
    cordon_proto::shown::shown(text, form)
}

/// A reply's text with every hidden character written out. A JSON reply is read as JSON
/// and every string (and key) is [`shown`] as decoded: serde writes C0 controls as
/// JSON escapes (`\u001b`, `\r`), which a pass over the raw text would miss (trial19
/// LOW-g: the Retry review printed the agent's raw ESC). Text that is not JSON is
/// treated as text.
pub fn reply_shown(text: &str, json: bool) -> Cow<'_, str> {
    if !json {
        return shown(text, false);
    }
    fn walk(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => match shown(s, false) {
                Cow::Owned(o) => {
                    *s = o;
                    true
                }
                Cow::Borrowed(_) => false,
            },
            serde_json::Value::Array(a) => {
                // Every element, never stopping at the first change.
                let mut changed = false;
                for x in a.iter_mut() {
                    changed |= walk(x);
                }
                changed
            }
            serde_json::Value::Object(m) => {
                let old = std::mem::take(m);
                let mut changed = false;
                for (k, mut x) in old {
                    changed |= walk(&mut x);
                    let key = shown(&k, false);
                    changed |= matches!(key, Cow::Owned(_));
                    m.insert(key.into_owned(), x);
                }
                changed
            }
            _ => false,
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) => {
            if !walk(&mut v) {
                return Cow::Borrowed(text);
            }
            match serde_json::to_string(&v) {
                Ok(o) => Cow::Owned(o),
                Err(_) => shown(text, true),
            }
        }
        Err(_) => shown(text, true),
    }
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
    match reply_shown(text, json) {
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

    /// trial19 LOW-g: serde writes ESC as the JSON escape `\u001b`, so the raw text of a
    /// JSON reply holds no ESC character; the reply must still decode to the written-out
    /// form, never to a raw control.
    #[test]
    fn json_replies_show_controls_that_serde_escaped() {
        let reply =
            serde_json::json!({"detail": "\u{1b}[31mRED\u{1b}[0m\r", "k\u{202e}": ["\u{202e}x", 1]}).to_string();
        assert!(!reply.contains('\u{1b}'), "serde escapes ESC: {reply}");
        let v: serde_json::Value = serde_json::from_str(&reply_shown(&reply, true)).unwrap();
        assert_eq!(v["detail"], "\\u{1b}[31mRED\\u{1b}[0m\\u{d}");
        assert_eq!(v["k\\u{202e}"][0], "\\u{202e}x");
        assert!(matches!(reply_shown("{\"a\":\"plain\"}", true), Cow::Borrowed(_)));
    }
}

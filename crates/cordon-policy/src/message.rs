//! The pop-up message shown to logged-in users.

/// Longest message, in characters, that Cordon sends to users (design §4).
pub const MAX_MESSAGE_CHARS: usize = 256;

/// Refuses a message longer than [`MAX_MESSAGE_CHARS`] characters (not bytes), the same
/// limit the server's API enforces (400), so a local `cordon isolate --message` and the
/// API agree instead of one cutting what the other refuses.
///
/// # Errors
/// [`crate::PolicyError::MessageTooLong`] with the length found and the limit.
pub fn check_message(text: &str) -> Result<(), crate::PolicyError> {
    let chars = text.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(crate::PolicyError::MessageTooLong {
            chars,
            max: MAX_MESSAGE_CHARS,
        });
    }
    Ok(())
}

/// Cuts `text` to at most [`MAX_MESSAGE_CHARS`] characters (never inside a UTF-8
/// sequence) and strips control characters other than newline, so a message cannot
/// drive the user's terminal.
pub fn sanitize_message(text: &str) -> String {
    text.chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_to_256_characters_not_bytes() {
        let long = "é".repeat(300);
        let cut = sanitize_message(&long);
        assert_eq!(cut.chars().count(), 256);
        assert_eq!(cut.len(), 512);
    }

    /// The fault kind: one limit enforced by the API and only cut by the CLI.
    #[test]
    fn a_message_over_the_limit_is_refused_not_cut() {
        assert!(check_message(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        let err = check_message(&"x".repeat(MAX_MESSAGE_CHARS + 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("257 characters") && err.contains("at most 256"), "{err}");
    }

    #[test]
    fn strips_escape_sequences() {
        assert_eq!(sanitize_message("a\x1b[2Jb\nc"), "a[2Jb\nc");
    }
}

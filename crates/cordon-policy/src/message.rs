//! The pop-up message shown to logged-in users.

/// Longest message, in characters, that Cordon sends to users (design §4).
pub const MAX_MESSAGE_CHARS: usize = 256;

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

    #[test]
    fn strips_escape_sequences() {
        assert_eq!(sanitize_message("a\x1b[2Jb\nc"), "a[2Jb\nc");
    }
}

//! The message to logged-in users (design §4): `wall` on Linux, cut to
//! [`cordon_policy::message::MAX_MESSAGE_CHARS`] characters.
//! A failure is reported to the caller, never fatal, and the program gets
//! [`MESSAGE_DEADLINE`]: one that never returns (a `wall` stuck on a terminal) is killed
//! and reported, never waited for (trial17 MED-6). It runs only after the rules are in
//! force and recorded.

use std::process::Command;
use std::time::Duration;

use cordon_policy::message::sanitize_message;

/// How long the program that messages users may run before it is killed.
pub const MESSAGE_DEADLINE: Duration = Duration::from_secs(5);

/// Shows `text` (sanitized and cut by [`sanitize_message`]) to logged-in users: `wall`
/// on Linux, a notification through `osascript` on macOS, `msg *` on Windows. An empty
/// message does nothing.
///
/// # Errors
/// A sentence naming the program when it cannot be started, fails, or runs past
/// [`MESSAGE_DEADLINE`] (then it has been killed).
pub fn message_users(text: &str) -> Result<(), String> {
    message_users_within(text, MESSAGE_DEADLINE)
}

/// [`message_users`] with the deadline given.
///
/// # Errors
/// As [`message_users`].
pub fn message_users_within(text: &str, deadline: Duration) -> Result<(), String> {
    let text = sanitize_message(text);
    if text.trim().is_empty() {
        return Ok(());
    }
    let (program, args): (&str, Vec<String>) = if cfg!(target_os = "macos") {
        let script = format!("display notification {:?} with title \"Cordon\"", text);
        ("osascript", vec!["-e".into(), script])
    } else if cfg!(windows) {
        ("msg", vec!["*".into(), text.clone()])
    } else {
        ("wall", vec![])
    };
    let stdin = (program == "wall").then_some(text.as_bytes());
    let out = cordon_firewall::cmd::output_within(Command::new(program).args(&args), program, stdin, deadline)
        .map_err(|e| match e {
            e @ cordon_firewall::cmd::RunError::TimedOut { .. } => format!("could not message users: {e}"),
            e => format!("could not message users with {program}: {}", e.into_io()),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

//! The message to logged-in users (design §4): `wall` on Linux, cut to
//! [`cordon_policy::message::MAX_MESSAGE_CHARS`] characters.
//! A failure is reported to the caller, never fatal, and the program gets
//! [`MESSAGE_DEADLINE`]: one that never returns (a `wall` stuck on a terminal) is killed
//! and reported, never waited for (trial17 MED-6). It runs only after the rules are in
//! force and recorded.

use std::process::Command;
use std::time::Duration;

use cordon_firewall::cmd::RunError;
use cordon_policy::message::sanitize_message;
use thiserror::Error;

/// How long the program that messages users may run before it is killed.
pub const MESSAGE_DEADLINE: Duration = Duration::from_secs(5);

/// Why the message to logged-in users was not shown; the warning the caller reports is
/// [`crate::error_chain`] of it (`could not message users with wall: No such file or
/// directory (os error 2)`).
#[derive(Debug, Error)]
pub enum MessageError {
    /// The program ran past its deadline and was killed.
    #[error("could not message users")]
    TimedOut(#[source] RunError),
    /// The program could not be started or waited for.
    #[error("could not message users with {program}")]
    Run {
        /// `wall`, `osascript` or `msg`.
        program: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The program exited with a failure status.
    #[error("{program} failed: {stderr}")]
    Failed {
        /// `wall`, `osascript` or `msg`.
        program: &'static str,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

/// Shows `text` (sanitized and cut by [`sanitize_message`]) to logged-in users: `wall`
/// on Linux, a notification through `osascript` on macOS, `msg *` on Windows. An empty
/// message does nothing.
///
/// # Errors
/// [`MessageError`] naming the program when it cannot be started, fails, or runs past
/// [`MESSAGE_DEADLINE`] (then it has been killed).
pub fn message_users(text: &str) -> Result<(), MessageError> {
    message_users_within(text, MESSAGE_DEADLINE)
}

/// [`message_users`] with the deadline given.
///
/// # Errors
/// As [`message_users`].
pub fn message_users_within(text: &str, deadline: Duration) -> Result<(), MessageError> {
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
            e @ RunError::TimedOut { .. } => MessageError::TimedOut(e),
            e => MessageError::Run {
                program,
                source: e.into_io(),
            },
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(MessageError::Failed {
            program,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
mod tests {
    use super::*;

    /// The warning keeps its cause: the OS error is the source, and the text the caller
    /// reports is the same sentence as before the error was typed.
    #[test]
    fn a_message_error_keeps_its_cause() {
        let e = MessageError::Run {
            program: "wall",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(std::error::Error::source(&e).is_some());
        assert!(
            crate::error_chain(&e).starts_with("could not message users with wall: "),
            "{}",
            crate::error_chain(&e)
        );
        let t = MessageError::TimedOut(RunError::TimedOut {
            program: "wall".into(),
            pid: 7,
            deadline: Duration::from_secs(5),
        });
        assert_eq!(
            crate::error_chain(&t),
            "could not message users: wall did not finish within 5 s; stopped it (pid 7)"
        );
    }
}

//! The message to logged-in users (design §4): `wall` on Linux, cut to
//! [`cordon_policy::message::MAX_MESSAGE_CHARS`] characters.
//! A failure is reported to the caller, never fatal.

use std::io::Write;
use std::process::{Command, Stdio};

use cordon_policy::message::sanitize_message;

/// Shows `text` (sanitized and cut by [`sanitize_message`]) to logged-in users: `wall`
/// on Linux, a notification through `osascript` on macOS, `msg *` on Windows. An empty
/// message does nothing.
///
/// # Errors
/// A sentence naming the program when it cannot be started or fails.
pub fn message_users(text: &str) -> Result<(), String> {
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
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not message users with {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        if program == "wall" {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("writing to wall: {e}"))?;
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

//! Running the firewall tools with input on stdin, mapping failures to [`FirewallError`].

use std::io::{ErrorKind, Write};
use std::process::{Command, Stdio};

use crate::{Cause, FirewallError, Refusal};

/// Runs `program args` with `stdin` piped in; returns stdout on success.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, FirewallError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => {
                FirewallError::Unsupported(Refusal::caused_by(format!("`{program}` is not installed"), e))
            }
            _ => FirewallError::Io {
                context: format!("starting {program}"),
                source: e,
            },
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| FirewallError::Io {
            context: format!("writing to {program}"),
            source: e,
        })?;
        // Dropping the pipe closes it so the tool sees end of input.
    }
    let out = child.wait_with_output().map_err(|e| FirewallError::Io {
        context: format!("waiting for {program}"),
        source: e,
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // The tools report only text: the words of EPERM/EACCES are the one way to tell a
    // missing privilege from a refused change.
    let lower = stderr.to_ascii_lowercase();
    let denied = lower.contains("operation not permitted") || lower.contains("permission denied");
    let refusal = Refusal::caused_by(
        format!("{program} {} failed", args.join(" ")),
        Cause::Exit {
            status: Some(out.status),
            output: first_lines(&stderr, 6),
        },
    );
    if denied {
        Err(FirewallError::NotPermitted(refusal))
    } else {
        Err(FirewallError::Rejected(refusal))
    }
}

/// Runs a prepared command with no input; returns whether it exited successfully and its
/// stdout followed by its stderr (pfctl and netsh report results on either).
pub fn run_combined(command: &mut Command, program: &str) -> Result<(bool, String), FirewallError> {
    let out = command.stdin(Stdio::null()).output().map_err(|e| FirewallError::Io {
        context: format!("running {program}"),
        source: e,
    })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// True when `program` can be started (it is on PATH and executable).
pub fn exists(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false)
}

fn is_executable(path: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join(" | ")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The fault kind: a failed program's exit and output flattened into the message.
    /// The exit status and output are the cause; the chain reads as before
    /// (`PROGRAM ARGS failed: OUTPUT`).
    #[test]
    fn a_failed_program_is_the_cause_with_its_exit_status() {
        let e = run("sh", &["-c", "echo boom >&2; exit 3"], None).unwrap_err();
        let FirewallError::Rejected(r) = &e else {
            panic!("{e:?}");
        };
        let Some(Cause::Exit {
            status: Some(status),
            output,
        }) = r.cause()
        else {
            panic!("{r:?}");
        };
        assert_eq!((status.code(), output.as_str()), (Some(3), "boom"));
        assert_eq!(crate::error::chain(&e), "sh -c echo boom >&2; exit 3 failed: boom");
        let e = run("cordon-no-such-program", &[], None).unwrap_err();
        assert!(
            matches!(&e, FirewallError::Unsupported(r) if r.message() == "`cordon-no-such-program` is not installed"),
            "{e:?}"
        );
    }
}

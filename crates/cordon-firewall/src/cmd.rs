//! Running external programs with a deadline, and the firewall tools with input on stdin,
//! mapping failures to [`FirewallError`].
//!
//! Every program Cordon spawns (the firewall tools here, `wall`/`msg`/`osascript` and the
//! resolver helpers in `cordon-engine`) goes through [`output_within`]: a program that
//! never returns (a `wall` stuck on a terminal, an `iptables-save` waiting on a lock, a
//! replaced binary) is killed by its process id once its deadline passes and reported as
//! timed out, so it can never wedge an apply, a release or the agent (trial17 MED-6).
//! Hand-written over `wait-timeout`: a polling `try_wait` loop plus two reader threads is a
//! few lines, and the process-group kill (children of a hung shell script too) is ours.

use std::io::{ErrorKind, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Cause, FirewallError, Refusal};

/// How long one firewall tool (`nft`, `iptables-save`, `iptables-restore`, `pfctl`,
/// `netsh`) may run before it is killed: they take milliseconds on a working host.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(10);

/// What a program that finished within its deadline left: exit status, stdout, stderr.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Why [`output_within`] has no [`Finished`] program to show.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started (not installed: [`ErrorKind::NotFound`]).
    #[error("could not start {program}")]
    Start {
        /// The program's name.
        program: String,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the program failed.
    #[error("waiting for {program}")]
    Wait {
        /// The program's name.
        program: String,
        /// The wait error.
        #[source]
        source: std::io::Error,
    },
    /// The program did not exit within its deadline; it (and its process group) was killed.
    #[error("{program} did not finish within {} s; stopped it (pid {pid})", deadline.as_secs_f64())]
    TimedOut {
        /// The program's name.
        program: String,
        /// Its process id (killed with its process group on Unix).
        pid: u32,
        /// The deadline it was given.
        deadline: Duration,
    },
}

impl RunError {
    /// This error as an [`std::io::Error`] of the matching kind (`TimedOut` for a timeout),
    /// for callers that keep an io error as the cause.
    pub fn into_io(self) -> std::io::Error {
        match self {
            RunError::Start { source, .. } | RunError::Wait { source, .. } => source,
            e @ RunError::TimedOut { .. } => std::io::Error::new(ErrorKind::TimedOut, e.to_string()),
        }
    }
}

/// Runs `command` (`program` names it in errors) with `stdin` written to it, and waits at
/// most `deadline` for it to exit. On Unix it runs in its own process group, so a timeout
/// kills what it started too. Output pipes still held open by an escaped grandchild are
/// given up after one more second.
///
/// # Errors
/// [`RunError::Start`] when it cannot be started, [`RunError::Wait`] when waiting fails,
/// [`RunError::TimedOut`] when it ran past `deadline` (it has been killed).
pub fn output_within(
    command: &mut Command,
    program: &str,
    stdin: Option<&[u8]>,
    deadline: Duration,
) -> Result<Finished, RunError> {
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().map_err(|source| RunError::Start {
        program: program.to_string(),
        source,
    })?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    // Written from a thread: a program that never reads cannot hold us past the deadline.
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            // Dropping the pipe closes it so the program sees end of input. A write error
            // (it exited without reading) shows in its exit status.
            let _ = pipe.write_all(&data);
        });
    }
    let started = Instant::now();
    let mut step = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                kill(&mut child);
                return Err(RunError::Wait {
                    program: program.to_string(),
                    source,
                });
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= deadline {
            let pid = child.id();
            kill(&mut child);
            return Err(RunError::TimedOut {
                program: program.to_string(),
                pid,
                deadline,
            });
        }
        std::thread::sleep(step.min(deadline - elapsed));
        step = (step * 2).min(Duration::from_millis(20));
    };
    let grace = Duration::from_secs(1);
    Ok(Finished {
        status,
        stdout: stdout.recv_timeout(grace).unwrap_or_default(),
        stderr: stderr.recv_timeout(grace).unwrap_or_default(),
    })
}

/// Reads `pipe` to its end on a thread; the receiver gets what was read.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    } else {
        let _ = tx.send(Vec::new());
    }
    rx
}

/// Kills `child` by its pid (its whole process group on Unix) and reaps it.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group we created for
        // this child (process_group(0) makes its pgid its pid); no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn run_error(program: &str, args: &[&str], e: RunError) -> FirewallError {
    match e {
        RunError::Start { source, .. } if source.kind() == ErrorKind::NotFound => {
            FirewallError::Unsupported(Refusal::caused_by(format!("`{program}` is not installed"), source))
        }
        RunError::Start { source, .. } => FirewallError::Io {
            context: format!("starting {program}"),
            source,
        },
        e => FirewallError::Io {
            context: format!("running {program} {}", args.join(" ")).trim_end().to_string(),
            source: e.into_io(),
        },
    }
}

/// Runs `program args` with `stdin` piped in, killed after [`TOOL_DEADLINE`]; returns
/// stdout on success.
///
/// # Errors
/// [`FirewallError::Unsupported`] when it is not installed, [`FirewallError::Io`] when it
/// cannot be run or ran past its deadline (cause of kind `TimedOut`),
/// [`FirewallError::NotPermitted`] / [`FirewallError::Rejected`] when it failed.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, FirewallError> {
    run_within(program, args, stdin, TOOL_DEADLINE)
}

/// [`run`] with the deadline given.
///
/// # Errors
/// As [`run`].
pub fn run_within(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    deadline: Duration,
) -> Result<String, FirewallError> {
    let out = output_within(
        Command::new(program).args(args),
        program,
        stdin.map(str::as_bytes),
        deadline,
    )
    .map_err(|e| run_error(program, args, e))?;
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

/// Runs a prepared command with no input, killed after [`TOOL_DEADLINE`]; returns whether
/// it exited successfully and its stdout followed by its stderr (pfctl and netsh report
/// results on either).
///
/// # Errors
/// [`FirewallError::Io`] when it cannot be run or ran past its deadline.
pub fn run_combined(command: &mut Command, program: &str) -> Result<(bool, String), FirewallError> {
    let out = output_within(command, program, None, TOOL_DEADLINE).map_err(|e| FirewallError::Io {
        context: format!("running {program}"),
        source: e.into_io(),
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

    /// The fault kind (trial17 MED-6): a tool that never returns wedged whoever ran it. A
    /// hung program (a shell whose child sleeps too, holding the pipes) is killed with its
    /// process group at the deadline and reported as timed out, within a bound.
    #[test]
    fn a_hung_program_is_killed_at_its_deadline_and_reported() {
        let started = Instant::now();
        let e = run_within(
            "sh",
            &["-c", "sleep 30 & sleep 30"],
            Some("input nobody reads"),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let FirewallError::Io { source, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(source.kind(), ErrorKind::TimedOut, "{e:?}");
        let text = crate::error::chain(&e);
        assert!(
            text.contains("sh did not finish within 0.3 s; stopped it (pid"),
            "{text}"
        );
        // A quick program is unaffected.
        assert_eq!(
            run_within("sh", &["-c", "cat"], Some("hi"), Duration::from_secs(5)).unwrap(),
            "hi"
        );
    }
}

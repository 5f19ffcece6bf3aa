//! The one error type of the binary: a failure with the exit code README documents
//! (`0` done · `1` anything else · `2` invalid input, nothing changed · `3` verification
//! failed and rolled back · `4` not permitted; `cordon audit verify` adds `5` to `10`;
//! `cordon isolate` `11` applied but not isolated) and the error with its cause chain, printed
//! as `cordon: outer: cause: root cause`.

use std::fmt::Display;

use cordon_engine::{EngineError, ErrorClass};

/// Exit codes other than success (README, "Exit codes"; design §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Anything else (server unreachable, I/O, a refusal that is not the caller's fault).
    Failed = 1,
    /// Invalid input or unsupported host; nothing changed.
    Usage = 2,
    /// Verification failed and the previous state was restored.
    RolledBack = 3,
    /// Not permitted (not root, or the server refused the token: 401/403).
    NotPermitted = 4,
    /// A check passed only in part: `cordon audit verify --file` without the CA
    /// certificate found the chain intact but could not check the signatures, or a
    /// `--checkpoint` given names a record retention archived and was not compared.
    Unverified = 5,
    /// `cordon audit verify`: the chain is intact but a signed checkpoint says some
    /// records are not vouched for (written in a crash window, a start without the
    /// anchor file): a warning, neither intact nor tampered.
    Unproven = 6,
    /// `cordon audit verify`: no verdict — the server could not be reached, or failed
    /// to answer (TLS, timeout, 5xx). Distinct from 1 (TAMPERED): nothing was checked.
    CannotVerify = 7,
    /// `cordon audit verify --file`: the file has no signed trailer — a filtered export
    /// (`--host`, `--since`, …) or a full one whose end was cut off. Its records were
    /// checked on their own; nothing in it is vouched for. Neither intact nor tampered.
    NotFullExport = 8,
    /// `cordon audit verify --file --ca`: the file's checkpoints are all signed by
    /// another CA than the one given (the wrong `ca.pem`, or another deployment's
    /// export): no signature was checked.
    OtherCa = 9,
    /// `cordon audit verify --checkpoint`: the log checks intact on its own but does not
    /// match the checkpoint given (the record it names has another hash, or the log ends
    /// before it): the log was rewritten, or the checkpoint is not this log's (a typo,
    /// another deployment's). The caller's result, not a verdict the server keeps.
    CheckpointMismatch = 10,
    /// `cordon isolate`: the rules were applied and stay in force, but the host is NOT
    /// isolated: something already there goes around Cordon's hooks (a tc redirect, an
    /// XDP program, an AF_XDP socket; `coverage.bypasses`), so traffic leaves past the
    /// rules (trial31 HIGH-H). `status` says `not_isolated` until it is gone.
    NotIsolated = 11,
}

impl Code {
    /// The process exit status.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A failed command: its exit code and the error (with causes) printed on stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub error: anyhow::Error,
    /// How [`report`] prints it.
    shown: Shown,
}

/// How a [`Failure`] is printed.
#[derive(Debug)]
enum Shown {
    /// `cordon: outer: cause: root cause` on stderr.
    Chain,
    /// A local command's engine failure: `cordon: ` and [`EngineError::detail`] on
    /// stderr.
    EngineLine,
    /// A local command's engine failure under `--json`: one line
    /// `{"ok": false, "error": KIND, "detail": …}` on stdout.
    EngineJson,
    /// Printed already (a command acting on several tables reports each failure as it
    /// goes): only the exit code is left.
    Reported,
}

impl Failure {
    /// A failure with `code` whose cause chain is `error`'s.
    pub fn new(code: Code, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
            shown: Shown::Chain,
        }
    }

    /// A failure with `code` and a message (no further cause).
    pub fn msg(code: Code, msg: impl Display + std::fmt::Debug + Send + Sync + 'static) -> Failure {
        Failure::new(code, anyhow::Error::msg(msg))
    }

    /// Invalid input: exit code 2.
    pub fn usage(msg: impl Display + std::fmt::Debug + Send + Sync + 'static) -> Failure {
        Failure::msg(Code::Usage, msg)
    }

    /// A local command's engine failure (`isolate`, `release`, `status`): the exit code
    /// of its class ([`engine_code`]), printed as one line on stderr or, with `json`, as
    /// `{"ok": false, "error": KIND, "detail": …}` on stdout.
    pub fn engine(err: EngineError, json: bool) -> Failure {
        Failure {
            code: engine_code(&err),
            error: err.into(),
            shown: if json { Shown::EngineJson } else { Shown::EngineLine },
        }
    }

    /// The same failure, already printed: [`report`] prints nothing more.
    pub fn reported(self) -> Failure {
        Failure {
            shown: Shown::Reported,
            ..self
        }
    }
}

/// The exit code README documents for an engine failure.
pub fn engine_code(err: &EngineError) -> Code {
    match err.class() {
        ErrorClass::Invalid | ErrorClass::Unsupported => Code::Usage,
        ErrorClass::VerificationFailed => Code::RolledBack,
        ErrorClass::NotPermitted => Code::NotPermitted,
        ErrorClass::Rejected | ErrorClass::Other => Code::Failed,
    }
}

/// Any error is exit code 1 unless the command says otherwise.
impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(Code::Failed, e)
    }
}

/// Prints a failure (`cordon: ` and the cause chain joined by `: `, or a local
/// command's engine failure as [`Failure::engine`] says) and returns the exit status; `0`
/// for success.
pub fn report(r: Result<(), Failure>) -> u8 {
    let Err(f) = r else {
        return 0;
    };
    let engine = f.error.downcast_ref::<EngineError>();
    match (&f.shown, engine) {
        (Shown::Reported, _) => {}
        (Shown::EngineJson, Some(e)) => {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": e.kind(), "detail": e.detail()})
            );
        }
        (Shown::EngineLine, Some(e)) => eprintln!("cordon: {}", e.detail()),
        _ => eprintln!("cordon: {:#}", f.error),
    }
    f.code.as_u8()
}

/// Runs an async command on a fresh single-threaded runtime.
///
/// # Errors
/// The command's failure, or the runtime's when it cannot be built.
pub fn run_async(f: impl std::future::Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(f)
}

/// Runs an async command on a fresh single-threaded runtime; its exit status.
pub fn block_on(f: impl std::future::Future<Output = Result<(), Failure>>) -> u8 {
    report(run_async(f))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn failure_prints_the_whole_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let f = Failure::new(Code::Usage, anyhow::Error::new(io).context("cannot read ca.pem"));
        assert_eq!(format!("{:#}", f.error), "cannot read ca.pem: no such file");
        assert_eq!(f.code.as_u8(), 2);
    }

    #[test]
    fn exit_codes_match_readme() {
        assert_eq!(
            [Code::Failed, Code::Usage, Code::RolledBack, Code::NotPermitted].map(Code::as_u8),
            [1, 2, 3, 4]
        );
        assert_eq!(Code::NotIsolated.as_u8(), 11);
        assert!(include_str!("../../../README.md").contains("`11` (`isolate`,"));
    }

    /// Issue 13: one error type carries the exit code. The fault kind: a command that
    /// prints its own error and returns a literal status (`return 2;`), bypassing the
    /// one printer and the documented codes.
    #[test]
    fn the_local_and_server_commands_return_the_one_failure_type() {
        let sources = [
            ("local.rs", include_str!("local.rs")),
            ("server_cmd.rs", include_str!("server_cmd.rs")),
            ("wazuh_ar.rs", include_str!("wazuh_ar.rs")),
        ];
        for (file, text) in sources {
            let code = text.split("#[cfg(test)]").next().unwrap_or(text);
            for (n, line) in code.lines().enumerate() {
                assert!(
                    !line.contains(") -> u8")
                        && !line.contains("Option<u8>")
                        && !line.trim().starts_with("return 2;")
                        && !line.contains("(String, String, u8)"),
                    "{file}:{}: {line}: return Result<(), Failure>",
                    n + 1
                );
            }
        }
    }

    #[test]
    fn an_engine_failure_keeps_its_class_code_and_its_error() {
        let f = Failure::engine(EngineError::Invalid("bad".into()), true);
        assert_eq!(f.code, Code::Usage);
        assert!(f.error.downcast_ref::<EngineError>().is_some());
        assert_eq!(report(Err(f.reported())), 2);
    }
}

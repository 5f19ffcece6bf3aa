//! The one error type of the binary: a failure with the exit code README documents
//! (`0` done · `1` anything else · `2` invalid input, nothing changed · `3` verification
//! failed and rolled back · `4` not permitted; `cordon audit verify` adds `5` to `9`) and the error with its cause chain, printed
//! as `cordon: outer: cause: root cause`.

use std::fmt::Display;

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
}

impl Failure {
    /// A failure with `code` whose cause chain is `error`'s.
    pub fn new(code: Code, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }

    /// A failure with `code` and a message (no further cause).
    pub fn msg(code: Code, msg: impl Display + std::fmt::Debug + Send + Sync + 'static) -> Failure {
        Failure {
            code,
            error: anyhow::Error::msg(msg),
        }
    }

    /// Invalid input: exit code 2.
    pub fn usage(msg: impl Display + std::fmt::Debug + Send + Sync + 'static) -> Failure {
        Failure::msg(Code::Usage, msg)
    }
}

/// Any error is exit code 1 unless the command says otherwise.
impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(Code::Failed, e)
    }
}

/// Prints a failure (`cordon: ` and the cause chain joined by `: `) and returns the exit
/// status; `0` for success.
pub fn report(r: Result<(), Failure>) -> u8 {
    match r {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("cordon: {:#}", f.error);
            f.code.as_u8()
        }
    }
}

/// Runs an async command on a fresh single-threaded runtime; its exit status.
pub fn block_on(f: impl std::future::Future<Output = Result<(), Failure>>) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(Err(e.into())),
    };
    report(rt.block_on(f))
}

#[cfg(test)]
mod tests {
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
    }
}

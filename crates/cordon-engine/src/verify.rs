//! Post-apply proof that the management server is still reachable.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// No target answered a TCP connect within the timeout. The last connect error is the
/// [`std::error::Error::source`]; the message repeats it, as the verification failure
/// prints it (`timed out after 2.0s; last error: 192.0.2.1:8443: Connection refused`).
#[derive(Debug, thiserror::Error)]
#[error("timed out after {:.1}s; last error: {}", timeout.as_secs_f64(), last_error_text(*last_target, last_error.as_ref()))]
pub struct Unreachable {
    /// The whole bound that passed.
    pub timeout: Duration,
    /// The target of the last failed connect (`None`: no target was tried).
    pub last_target: Option<SocketAddr>,
    /// The OS error of the last failed connect.
    #[source]
    pub last_error: Option<std::io::Error>,
}

fn last_error_text(target: Option<SocketAddr>, error: Option<&std::io::Error>) -> String {
    match (target, error) {
        (Some(t), Some(e)) => format!("{t}: {e}"),
        _ => "no target".to_string(),
    }
}

/// Retries TCP connects to every target until one answers or `timeout` passes
/// (right after a rule change, neighbour discovery may need a moment).
///
/// # Errors
/// [`Unreachable`], with the last connect error as its source, when no target answered.
pub fn reach_any(targets: &[SocketAddr], timeout: Duration) -> Result<SocketAddr, Unreachable> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<(SocketAddr, std::io::Error)> = None;
    // An empty list has nothing to wait for: it fails at once instead of sleeping forever.
    'rounds: loop {
        for target in targets {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break 'rounds;
            }
            match TcpStream::connect_timeout(target, left.min(Duration::from_secs(2))) {
                Ok(_) => return Ok(*target),
                Err(e) => last = Some((*target, e)),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if targets.is_empty() || left.is_zero() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100).min(left));
    }
    let (last_target, last_error) = last.map_or((None, None), |(t, e)| (Some(t), Some(e)));
    Err(Unreachable {
        timeout,
        last_target,
        last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_a_listening_port_and_fails_on_a_closed_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(reach_any(&[open], Duration::from_secs(2)).unwrap(), open);
        drop(listener);
        let err = reach_any(&[open], Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    /// Error kind: a cause flattened into a string. The last connect error stays the
    /// source of the verification failure's reason.
    #[test]
    fn unreachable_keeps_the_connect_error_as_source() {
        use std::error::Error as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = listener.local_addr().unwrap();
        drop(listener);
        let err = reach_any(&[closed], Duration::from_millis(300)).unwrap_err();
        assert_eq!(err.last_target, Some(closed));
        let source = err.source().expect("the connect error is the source");
        assert!(err.to_string().ends_with(&format!("{closed}: {source}")), "{err}");
        // Nothing to try: no source, and the message says so.
        let err = reach_any(&[], Duration::ZERO).unwrap_err();
        assert!(
            err.source().is_none() && err.to_string().ends_with("no target"),
            "{err}"
        );
    }
}

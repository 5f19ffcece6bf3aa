//! Post-apply proof that the management server is still reachable.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Retries TCP connects to every target until one answers or `timeout` passes
/// (right after a rule change, neighbour discovery may need a moment).
pub fn reach_any(targets: &[SocketAddr], timeout: Duration) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + timeout;
    let mut last_error = String::from("no target");
    loop {
        for target in targets {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out after {:.1}s; last error: {last_error}",
                    timeout.as_secs_f64()
                ));
            }
            match TcpStream::connect_timeout(target, left.min(Duration::from_secs(2))) {
                Ok(_) => return Ok(*target),
                Err(e) => last_error = format!("{target}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_a_listening_port_and_fails_on_a_closed_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(reach_any(&[open], Duration::from_secs(2)), Ok(open));
        drop(listener);
        let err = reach_any(&[open], Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
    }
}

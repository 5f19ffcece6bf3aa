//! Exponential backoff with full jitter for reconnects, and the agent's retry policy on
//! top of it ([`Retry`]): what to wait after each outcome of a call to the server, and what
//! to say about it once.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max, attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: uniformly random in [cap/2, cap], cap = min(max, base * 2^attempt).
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        let cap = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = cap / 2;
        half + half.mul_f64(random_unit())
    }
}

/// How a call to the server ended, for [`Retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with success.
    Ok,
    /// The server refused this agent: 401 or 403 (revoked, deleted, or a certificate
    /// it does not know). Retrying quickly cannot help.
    Refused,
    /// Anything else (no answer, 5xx, a bad body): retried with exponential backoff.
    Failed,
}

impl Outcome {
    /// The outcome of a call that answered `status` (`None`: no answer).
    pub fn of_status(status: Option<u16>) -> Outcome {
        match status {
            Some(401 | 403) => Outcome::Refused,
            Some(s) if (200..300).contains(&s) => Outcome::Ok,
            _ => Outcome::Failed,
        }
    }
}

/// What to say about an outcome, at most once per change (never a log line per retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// The first refusal after success or failures: say clearly, once, that the server
    /// refuses this agent and what that means.
    Refused,
    /// The first success after refusals: the server accepts this agent again.
    AcceptedAgain,
}

/// The agent's retry policy for one loop of calls (the long-poll, the reporter).
///
/// * Failures back off exponentially with jitter; a success resets the backoff.
/// * A success of *another* call on the same connection (the reporter's heartbeat while
///   the long-poll waits out its backoff, or the reverse) also resets it: the server is
///   back, so the next attempt starts from the base delay instead of the maximum the
///   outage had grown it to ([`Retry::peer_ok_since`]).
/// * A refusal (401/403: revoked or deleted) waits `refused_every` (long) and is announced
///   once; another refusal is announced again only after a success in between.
#[derive(Debug, Clone)]
pub struct Retry {
    backoff: Backoff,
    refused_every: Duration,
    refused: bool,
    /// When the last failure or refusal happened.
    failed_at: Option<Instant>,
}

impl Retry {
    /// Backs off from `base` to `max` on failures; waits `refused_every` after refusals.
    pub fn new(base: Duration, max: Duration, refused_every: Duration) -> Self {
        Retry {
            backoff: Backoff::new(base, max),
            refused_every,
            refused: false,
            failed_at: None,
        }
    }

    /// Records `outcome` at `now`; returns how long to wait before the next call (zero
    /// after a success) and what to announce.
    pub fn after(&mut self, outcome: Outcome, now: Instant) -> (Duration, Option<Announce>) {
        match outcome {
            Outcome::Ok => {
                self.backoff.reset();
                self.failed_at = None;
                let again = std::mem::replace(&mut self.refused, false);
                (Duration::ZERO, again.then_some(Announce::AcceptedAgain))
            }
            Outcome::Refused => {
                self.failed_at = Some(now);
                let first = !std::mem::replace(&mut self.refused, true);
                (self.refused_every, first.then_some(Announce::Refused))
            }
            Outcome::Failed => {
                self.failed_at = Some(now);
                (self.backoff.next_delay(), None)
            }
        }
    }

    /// Another call on the same connection succeeded at `ok_at`: if that was after this
    /// loop's last failure, the server is reachable again and the backoff starts over.
    /// Returns whether it did (the caller then retries at once). A refusal stands: a
    /// revoked agent's status reports are refused too.
    pub fn peer_ok_since(&mut self, ok_at: Option<Instant>) -> bool {
        match (self.failed_at, ok_at) {
            (Some(f), Some(ok)) if ok > f && !self.refused => {
                self.backoff.reset();
                self.failed_at = None;
                true
            }
            _ => false,
        }
    }
}

fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let d0 = b.next_delay();
        assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(2) && d >= Duration::from_millis(50));
        }
        let d = b.next_delay();
        assert!(d >= Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    fn retry() -> Retry {
        Retry::new(
            Duration::from_millis(500),
            Duration::from_secs(30),
            Duration::from_secs(300),
        )
    }

    /// Grows the backoff to its maximum, as a long outage does.
    fn outage(r: &mut Retry, t0: Instant) -> Duration {
        let mut last = Duration::ZERO;
        for i in 0..12 {
            last = r.after(Outcome::Failed, t0 + Duration::from_secs(i)).0;
        }
        assert!(last >= Duration::from_secs(15), "{last:?}");
        last
    }

    /// The fault kind (issue 14 trial): after an outage the long-poll kept waiting the
    /// maximum backoff although the server was back (the reporter had reconnected).
    /// Any success on the connection resets the backoff of every loop.
    #[test]
    fn backoff_resets_after_a_successful_reconnect() {
        let t0 = Instant::now();
        let mut r = retry();
        outage(&mut r, t0);
        // The reporter got through after this loop's last failure.
        assert!(r.peer_ok_since(Some(t0 + Duration::from_secs(60))));
        let (next, _) = r.after(Outcome::Failed, t0 + Duration::from_secs(61));
        assert!(next <= Duration::from_millis(500), "backoff not reset: {next:?}");
        // A success seen before the last failure says nothing about now.
        let mut r = retry();
        outage(&mut r, t0);
        assert!(!r.peer_ok_since(Some(t0)));
        assert!(!r.peer_ok_since(None));
        // Its own success resets it too.
        let mut r = retry();
        outage(&mut r, t0);
        assert_eq!(r.after(Outcome::Ok, t0 + Duration::from_secs(70)).0, Duration::ZERO);
        assert!(r.after(Outcome::Failed, t0 + Duration::from_secs(71)).0 <= Duration::from_millis(500));
    }

    /// The fault kind: a revoked agent retried every few seconds and logged an error each
    /// time. A refusal waits the long interval and is announced once.
    #[test]
    fn refusal_waits_long_and_is_announced_once() {
        let t0 = Instant::now();
        let mut r = retry();
        assert_eq!(Outcome::of_status(Some(403)), Outcome::Refused);
        assert_eq!(Outcome::of_status(Some(401)), Outcome::Refused);
        assert_eq!(Outcome::of_status(Some(503)), Outcome::Failed);
        assert_eq!(Outcome::of_status(None), Outcome::Failed);
        assert_eq!(
            r.after(Outcome::Refused, t0),
            (Duration::from_secs(300), Some(Announce::Refused))
        );
        for i in 1..5 {
            assert_eq!(
                r.after(Outcome::Refused, t0 + Duration::from_secs(300 * i)),
                (Duration::from_secs(300), None)
            );
        }
        // A peer success does not cut the long wait short (its reports are refused too).
        assert!(!r.peer_ok_since(Some(t0 + Duration::from_secs(5000))));
        assert_eq!(
            r.after(Outcome::Ok, t0),
            (Duration::ZERO, Some(Announce::AcceptedAgain))
        );
        assert_eq!(r.after(Outcome::Refused, t0).1, Some(Announce::Refused));
    }
}

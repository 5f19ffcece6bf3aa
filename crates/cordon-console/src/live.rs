//! Live updates: a server-sent event stream that says "something changed" so open pages
//! re-fetch their live parts. Changes are detected from the database itself (the newest
//! audit record, the number of hosts, agents' last-seen times, the hosts' report
//! revisions and how many hosts are offline right now: [`ChangeFingerprint`]), so every
//! state change — including an agent going silent past its offline deadline —
//! from the API, the console, automation, expiry or an agent's report, on this replica
//! or another one sharing a PostgreSQL database — reaches every open console.
//!
//! The stream also carries a `heartbeat` event every [`HEARTBEAT`] (after a poll of the
//! database that worked), so a page notices *silence* — a hung server, a black-holed
//! network path, a database that no longer answers — and not only a closed connection:
//! the page treats [`HEARTBEAT`] × 2.5 without any event as a lost connection (banner,
//! actions disabled). The `hello` event that opens the stream says the interval
//! (`{"heartbeat_ms":5000}`), so the page's bound follows the server's.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;

use super::session::ApiSession;
use cordon_server_core::service::{host_views, sessions};
use cordon_server_core::store::{Caller, ChangeFingerprint};
use cordon_server_core::{ApiError, AppState};

/// How often the database is looked at for each open stream.
const POLL: Duration = Duration::from_millis(500);
/// How often the stream says it is alive when nothing changed (the page's bound for
/// silence is 2.5 times this).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Last-seen times only count in steps of this (ms, steps aligned to the Unix epoch), so
/// busy agents do not cause constant refreshes: a report that changes nothing else still
/// wakes the pages when it moves the newest last-seen time into the next step, so "last
/// seen" moves on them at least every 30 s.
pub const SEEN_STEP_MS: i64 = 30_000;
/// How often the session is re-checked, in polls (a signed-out session or revoked token
/// closes the stream within 10 s).
const RECHECK_EVERY: u32 = 20;

/// A cheap summary that changes whenever a host's state, labels or desired state do,
/// read through the service as the stream's caller.
///
/// # Errors
/// The service's `ApiError`: 403 when the caller may not
/// read hosts; the store's errors.
pub async fn fingerprint(st: &AppState, caller: &Caller) -> Result<ChangeFingerprint, ApiError> {
    host_views::change_fingerprint(st, caller, SEEN_STEP_MS).await
}

struct Poll {
    st: AppState,
    caller: Caller,
    token_name: String,
    last: Option<ChangeFingerprint>,
    ticks: u32,
    first: bool,
    /// When the stream last sent an event (hello, change or heartbeat).
    sent: Instant,
}

/// `GET /console/events`: server-sent events with the hosts' summary and changes (re-checks the session every tick).
pub async fn events(
    State(st): State<AppState>,
    ApiSession(s): ApiSession,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let token = s.id.clone();
    let init = Poll {
        st,
        caller: s.caller.clone(),
        token_name: s.caller.name.clone(),
        last: None,
        ticks: 0,
        first: true,
        sent: Instant::now(),
    };
    let stream = futures_util::stream::unfold((init, token), |(mut p, token)| async move {
        if p.first {
            p.first = false;
            p.last = fingerprint(&p.st, &p.caller).await.ok();
            p.sent = Instant::now();
            let hello = format!("{{\"heartbeat_ms\":{}}}", HEARTBEAT.as_millis());
            return Some((Ok(Event::default().event("hello").data(hello)), (p, token)));
        }
        loop {
            tokio::time::sleep(POLL).await;
            p.ticks = p.ticks.wrapping_add(1);
            if p.ticks % RECHECK_EVERY == 0 {
                // The stream is not use: it does not keep an idle session alive.
                match sessions::session(
                    &p.st,
                    &token,
                    cordon_server_core::timefmt::now_ms(),
                    super::session::limits(),
                    false,
                )
                .await
                {
                    Ok(Some(_)) => {}
                    _ => {
                        tracing::debug!(token = %p.token_name, "console stream closed: session no longer valid");
                        return None;
                    }
                }
            }
            let Ok(fp) = fingerprint(&p.st, &p.caller).await else {
                continue;
            };
            if p.last != Some(fp) {
                p.last = Some(fp);
                p.sent = Instant::now();
                let ev = Event::default().event("change").data(fp.audit_id.to_string());
                return Some((Ok(ev), (p, token)));
            }
            // Alive, and the database answered: say so, so silence means trouble.
            if p.sent.elapsed() >= HEARTBEAT {
                p.sent = Instant::now();
                let ev = Event::default().event("heartbeat").data(fp.audit_id.to_string());
                return Some((Ok(ev), (p, token)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

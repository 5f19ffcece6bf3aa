//! The repair loop: keeps a recorded quarantine in force while it runs.
//!
//! Event-driven where the kernel tells us about changes (Linux: nf_tables notifications,
//! `NFNLGRP_NFTABLES`, and interface notifications, `RTNLGRP_LINK`): anything touching a
//! table with our name, or any interface appearing, triggers a check (digest of our rules
//! and device-layer coverage) and, when something is off, an immediate re-apply. A periodic
//! check (`poll`, 1 s by default) stays as the backstop, and is all there is where no
//! notifications exist. Used by `cordon isolate --watch` and `cordon bench tamper`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cordon_firewall::{Coverage, Firewall};
use serde::Serialize;

use crate::{state, Engine, EngineError};

/// How the loop watches.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// React to kernel notifications (false: periodic checks only, the old behaviour).
    pub events: bool,
    /// Interval of the periodic check.
    pub poll: Duration,
    /// Create the tables owned by the watcher (nftables owner + persist flags) where the
    /// kernel supports it, so other processes cannot change them while it runs.
    pub own: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            events: true,
            poll: Duration::from_secs(1),
            own: true,
        }
    }
}

/// What the loop reports as it goes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    /// Watching began; `events` says whether kernel notifications are used, `owned`
    /// whether the tables are held by this process.
    Started {
        events: bool,
        owned: bool,
        coverage: Coverage,
    },
    /// Something was off and the recorded quarantine was re-applied.
    Repaired {
        /// `rules changed`, `rules missing`, `interfaces not covered: …`.
        cause: String,
        /// How long the re-apply took, in milliseconds.
        repair_ms: f64,
        coverage: Coverage,
    },
    /// A check or repair failed; the loop goes on.
    Failed { error: String },
    /// No quarantine is recorded any more (released): the loop ends.
    Released,
}

/// One check's verdict.
enum Verdict {
    Fine,
    Repair(String),
    Released,
}

impl Engine {
    /// Watches and repairs the recorded quarantine until `stop` is set or the quarantine
    /// is released. Fails at once when nothing is recorded or the backend cannot open.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when no quarantine is recorded; backend errors when the
    /// firewall cannot be opened or the notifications cannot be subscribed to.
    pub fn watch(
        &self,
        opts: &WatchOptions,
        stop: &AtomicBool,
        mut on: impl FnMut(&WatchEvent),
    ) -> Result<(), EngineError> {
        crate::privilege::require_admin()?;
        let Some(stored) = state::load(&self.state_dir, &self.table)? else {
            return Err(EngineError::Invalid(format!(
                "nothing to watch: no quarantine recorded in {}",
                self.state_dir.display()
            )));
        };
        let fw = self.firewall(Some(stored.backend))?;
        let owned = opts.own && fw.hold_tables();
        let mut notes = Notifications::open(opts.events, self.table.as_str())?;
        if owned {
            // Take the tables over now, so they carry the owner flag from the start.
            let _lock = self.lock()?;
            fw.apply(&stored.policy)?;
        }
        on(&WatchEvent::Started {
            events: notes.active(),
            owned,
            coverage: fw.coverage()?,
        });
        let mut next_poll = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let due = now >= next_poll;
            let changed = if due {
                // Whatever is queued is covered by this check.
                notes.take()?;
                true
            } else {
                // Wake at least every 100 ms to notice `stop`.
                let wait = (next_poll - now).min(Duration::from_millis(100));
                notes.wait(wait)?
            };
            if due {
                next_poll = Instant::now() + opts.poll;
            }
            if !changed {
                continue;
            }
            match self.check_once(fw.as_ref()) {
                Ok(Verdict::Fine) => {}
                Ok(Verdict::Released) => {
                    on(&WatchEvent::Released);
                    return Ok(());
                }
                Ok(Verdict::Repair(cause)) => match self.repair(fw.as_ref()) {
                    Ok(repair_ms) => on(&WatchEvent::Repaired {
                        cause,
                        repair_ms,
                        coverage: fw.coverage().unwrap_or_default(),
                    }),
                    Err(e) => on(&WatchEvent::Failed { error: e.to_string() }),
                },
                Err(e) => on(&WatchEvent::Failed { error: e.to_string() }),
            }
        }
        Ok(())
    }

    /// Compares the kernel with the record: digest of our rules, and every interface
    /// covered by the device layer.
    fn check_once(&self, fw: &dyn Firewall) -> Result<Verdict, EngineError> {
        let Some(stored) = state::load(&self.state_dir, &self.table)? else {
            return Ok(Verdict::Released);
        };
        match fw.inspect()? {
            None => return Ok(Verdict::Repair("rules missing".into())),
            Some(i) if i.digest != stored.digest => return Ok(Verdict::Repair("rules changed".into())),
            Some(_) => {}
        }
        let cov = fw.coverage()?;
        if !cov.uncovered.is_empty() {
            return Ok(Verdict::Repair(format!(
                "interfaces not covered: {}",
                cov.uncovered.join(", ")
            )));
        }
        Ok(Verdict::Fine)
    }

    /// Re-applies the recorded policy (no resolution, no verification: fail closed) and
    /// returns how long that took in milliseconds.
    fn repair(&self, fw: &dyn Firewall) -> Result<f64, EngineError> {
        let _lock = self.lock()?;
        let Some(stored) = state::load(&self.state_dir, &self.table)? else {
            return Ok(0.0);
        };
        let started = Instant::now();
        fw.apply(&stored.policy)?;
        Ok(started.elapsed().as_secs_f64() * 1e3)
    }
}

/// Kernel change notifications where they exist, else nothing (periodic checks only).
struct Notifications {
    #[cfg(target_os = "linux")]
    watch: Option<cordon_firewall::netlink::events::ChangeWatch>,
}

impl Notifications {
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    fn open(events: bool, table: &str) -> Result<Self, EngineError> {
        #[cfg(target_os = "linux")]
        {
            let watch = if events {
                Some(cordon_firewall::netlink::events::ChangeWatch::open(table)?)
            } else {
                None
            };
            Ok(Notifications { watch })
        }
        #[cfg(not(target_os = "linux"))]
        Ok(Notifications {})
    }

    fn active(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.watch.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Waits up to `d`; true when something relevant changed.
    fn wait(&mut self, d: Duration) -> Result<bool, EngineError> {
        #[cfg(target_os = "linux")]
        if let Some(w) = self.watch.as_mut() {
            return Ok(w.wait(d)?.any());
        }
        std::thread::sleep(d);
        Ok(false)
    }

    /// Drops what is queued.
    fn take(&mut self) -> Result<(), EngineError> {
        #[cfg(target_os = "linux")]
        if let Some(w) = self.watch.as_mut() {
            w.take()?;
        }
        Ok(())
    }
}

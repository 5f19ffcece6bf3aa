//! `cordon bench tamper` (issue #12): how long the host stays exposed after each kind of
//! tampering, with the event-driven repair (nf_tables and link notifications) against the
//! old 1 s poll, in one run, printed as a table. With the tables owned by the watcher
//! (nftables owner flag), a third column shows whether the tamper got through at all.
//! The last row is the uplink renamed in a loop with raw frames sent right after each
//! rename ([`crate::rename_race`]): the share of them that reached the other host.
//!
//! Everything happens in a throwaway lab: the quarantine is applied in the endpoint
//! namespace, the watcher runs in a thread there, and the tampering is done over netlink
//! from another socket in the same namespace (exactly the messages `nft` sends). The
//! exposure of one run is the time from the tamper's commit until the kernel again holds
//! exactly the recorded tables, seen by polling the ruleset generation and reading the
//! tables back whenever it moves.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use cordon_engine::watch::WatchOptions;
use cordon_engine::{Engine, IsolateRequest};
use cordon_firewall::netlink::consts::NF_ACCEPT;
use cordon_firewall::netlink::encode::{Batch, Element, Expr};
use cordon_firewall::netlink::Netlink;
use cordon_firewall::{BackendChoice, BackendKind, Firewall};
use cordon_policy::{AllowSpec, TableName};

use crate::lab::{addr, netns, Host, Lab};

#[derive(Args, Debug)]
pub struct TamperArgs {
    /// Runs per tamper kind and repair mode (at least 50 for the p99).
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Seconds of the "delete the table every 20 ms" loop per repair mode.
    #[arg(long, default_value_t = 3)]
    pub loop_secs: u64,
    /// Down/rename/up cycles of the uplink per repair mode, raw frames sent for 30 ms
    /// after each (trial31 HIGH-F).
    #[arg(long, default_value_t = 20)]
    pub rename_cycles: usize,
}

/// One kind of tampering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    FlushRuleset,
    DeleteTable,
    InsertAccept,
    PolicyAccept,
    AddElement,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::FlushRuleset,
        Kind::DeleteTable,
        Kind::InsertAccept,
        Kind::PolicyAccept,
        Kind::AddElement,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::FlushRuleset => "nft flush ruleset",
            Kind::DeleteTable => "nft delete table inet cordon",
            Kind::InsertAccept => "accept rule added to input",
            Kind::PolicyAccept => "input chain policy -> accept",
            Kind::AddElement => "element added to set tcp4",
        }
    }

    /// The batch an attacker's `nft` would send.
    fn batch(self, seq: u32) -> Batch {
        let mut b = Batch::new(seq, true);
        match self {
            Kind::FlushRuleset => b.flush_ruleset(),
            Kind::DeleteTable => b.del_table("cordon"),
            Kind::InsertAccept => b.new_rule("cordon", "input", &[Expr::Verdict { code: NF_ACCEPT }]),
            Kind::PolicyAccept => b.set_chain_policy("cordon", "input", NF_ACCEPT),
            Kind::AddElement => {
                let mut key = addr::OTHER4.octets().to_vec();
                key.extend_from_slice(&443u16.to_be_bytes());
                key.extend_from_slice(&[0, 0]);
                b.new_elements("cordon", "tcp4", 0, &[Element::key(key)]);
            }
        }
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Events,
    Poll,
    Owned,
}

impl Mode {
    fn options(self) -> WatchOptions {
        WatchOptions {
            events: self != Mode::Poll,
            poll: Duration::from_secs(1),
            own: self == Mode::Owned,
        }
    }
}

/// What happened over the runs of one kind in one mode.
#[derive(Debug, Default, Clone)]
struct Sample {
    exposures: Vec<Duration>,
    /// Tamper batches the kernel refused (owner flag).
    refused: usize,
    /// The watcher's own timings of its repairs: (check, re-apply).
    watcher: Vec<(Duration, Duration)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Sample {
    fn cell(&self) -> String {
        if self.exposures.is_empty() {
            return format!("refused {}/{}", self.refused, self.refused);
        }
        let q = |p| ms(crate::bench::quantile(&self.exposures, p));
        let mut s = format!("{:.1} / {:.1}", q(0.5), q(0.99));
        if self.refused > 0 {
            s.push_str(&format!(" ({} refused)", self.refused));
        }
        s
    }
}

pub fn run(a: TamperArgs) -> u8 {
    match run_inner(&a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon bench tamper: {e:#}");
            1
        }
    }
}

fn run_inner(a: &TamperArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let lab = crate::bench::bench_lab()?;
    let mut columns = Vec::new();
    for mode in [Mode::Events, Mode::Poll, Mode::Owned] {
        eprintln!("tamper runs with {mode:?} ...");
        columns.push(run_mode(&lab, mode, a)?);
    }
    println!(
        "exposure window after tampering, ms (p50 / p99 over {} runs each; lab endpoint, netlink backend)",
        a.runs
    );
    println!(
        "{:<34} {:>22} {:>22} {:>26}",
        "tamper", "event-driven repair", "1 s poll (old)", "event-driven + owner flag"
    );
    for (i, kind) in Kind::ALL.iter().enumerate() {
        println!(
            "{:<34} {:>22} {:>22} {:>26}",
            kind.label(),
            columns[0].0[i].cell(),
            columns[1].0[i].cell(),
            columns[2].0[i].cell()
        );
    }
    println!(
        "{:<34} {:>22} {:>22} {:>26}",
        format!("delete table every 20 ms, {} s", a.loop_secs),
        format!("open {:.1}% of the time", columns[0].1 * 100.0),
        format!("open {:.1}% of the time", columns[1].1 * 100.0),
        format!("open {:.1}% of the time", columns[2].1 * 100.0)
    );
    println!(
        "{:<34} {:>22} {:>22} {:>26}",
        format!("uplink down/rename/up x{}", a.rename_cycles),
        columns[0].2.cell(),
        columns[1].2.cell(),
        columns[2].2.cell()
    );
    println!();
    println!("event-driven watcher's own timings, ms (p50 / p99): reading the kernel, re-applying");
    println!("{:<34} {:>22} {:>22}", "tamper", "check", "re-apply");
    for (i, kind) in Kind::ALL.iter().enumerate() {
        let w = &columns[0].0[i].watcher;
        let check: Vec<Duration> = w.iter().map(|(c, _)| *c).collect();
        let apply: Vec<Duration> = w.iter().map(|(_, r)| *r).collect();
        let cell = |v: &[Duration]| {
            format!(
                "{:.2} / {:.2}",
                ms(crate::bench::quantile(v, 0.5)),
                ms(crate::bench::quantile(v, 0.99))
            )
        };
        println!("{:<34} {:>22} {:>22}", kind.label(), cell(&check), cell(&apply));
    }
    Ok(())
}

/// What one repair mode measured: per-kind samples, the fraction of time open in the
/// delete loop, and the rename loop's leak.
type ModeResult = (Vec<Sample>, f64, crate::rename_race::Leak);

/// All kinds in one repair mode.
fn run_mode(lab: &Lab, mode: Mode, a: &TamperArgs) -> Result<ModeResult> {
    let state = tempfile::tempdir()?;
    let engine = Engine::new(
        TableName::default(),
        state.path().to_path_buf(),
        BackendChoice::Exactly(BackendKind::Netlink),
    );
    let ns = lab.ns(Host::Endpoint);
    let req = IsolateRequest {
        servers: vec![AllowSpec::parse_server(&format!(
            "tcp://{}:{}",
            addr::SERVER4,
            addr::SERVER_PORT
        ))?],
        resolvers: Some(vec![addr::RESOLVER4.into(), addr::RESOLVER6.into()]),
        ..IsolateRequest::default()
    };
    let eng = engine.clone();
    let expected = netns::run_in(&ns, move || Ok(eng.isolate(&req)?.digest))?;

    let stop = Arc::new(AtomicBool::new(false));
    // The kind being run (index into Kind::ALL), so the watcher's timings land in its row.
    let current = Arc::new(AtomicUsize::new(usize::MAX));
    let timings: Arc<Mutex<Vec<(usize, Duration, Duration)>>> = Arc::default();
    let (eng, flag, opts) = (engine.clone(), stop.clone(), mode.options());
    let (cur, times) = (current.clone(), timings.clone());
    let watcher = netns::spawn_in(&ns, move || {
        eng.watch(&opts, &flag, |ev| match ev {
            cordon_engine::watch::WatchEvent::Failed { error } => eprintln!("  watcher: {error}"),
            cordon_engine::watch::WatchEvent::Repaired {
                check_ms, repair_ms, ..
            } => {
                let d = |v: f64| Duration::from_secs_f64(v / 1e3);
                if let Ok(mut t) = times.lock() {
                    t.push((cur.load(Ordering::Relaxed), d(*check_ms), d(*repair_ms)));
                }
            }
            _ => {}
        })?;
        Ok(())
    });
    let runs = a.runs;
    let loop_for = Duration::from_secs(a.loop_secs);
    let result = netns::run_in(&ns, move || {
        let nl = Netlink::probe(TableName::default())?;
        // The watcher takes the tables over (owner mode) right after it starts.
        std::thread::sleep(Duration::from_millis(300));
        let mut samples = Vec::new();
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            eprintln!("  {} ...", kind.label());
            wait_intact(&nl, &expected, Duration::from_secs(5))?;
            current.store(i, Ordering::Relaxed);
            let mut s = Sample::default();
            for _ in 0..runs {
                wait_intact(&nl, &expected, Duration::from_secs(5))?;
                let batch = kind.batch(Netlink::next_seq(16)).finish();
                let t0 = Instant::now();
                if nl.send_batch(&batch).is_err() {
                    s.refused += 1;
                    continue;
                }
                s.exposures
                    .push(wait_intact_from(&nl, &expected, t0, Duration::from_secs(5))?);
            }
            samples.push(s);
        }
        // The delete loop: one deletion every 20 ms; time open is the part of each period
        // before the tables are back.
        wait_intact(&nl, &expected, Duration::from_secs(5))?;
        current.store(usize::MAX, Ordering::Relaxed);
        let period = Duration::from_millis(20);
        let (start, mut open) = (Instant::now(), Duration::ZERO);
        while start.elapsed() < loop_for {
            let t0 = Instant::now();
            if !intact(&nl, &expected) {
                // Not repaired since the last deletion: open for this whole period.
                open += period;
            } else if nl
                .send_batch(&Kind::DeleteTable.batch(Netlink::next_seq(4)).finish())
                .is_ok()
            {
                let back = wait_intact_from(&nl, &expected, t0, period).unwrap_or(period);
                open += back.min(period);
            }
            let spent = t0.elapsed();
            if spent < period {
                std::thread::sleep(period - spent);
            }
        }
        let fraction = open.as_secs_f64() / start.elapsed().as_secs_f64();
        Ok((samples, fraction))
    });
    // trial31 HIGH-F: down/rename/up loops of the uplink, raw frames sent right after each.
    let leak = match &result {
        Ok(_) => crate::rename_race::run(lab, a.rename_cycles),
        Err(_) => Ok(crate::rename_race::Leak::default()),
    };
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let leak = leak?;
    let result = result.map(|(mut samples, fraction): (Vec<Sample>, f64)| {
        if let Ok(t) = timings.lock() {
            for (i, check, repair) in t.iter() {
                if let Some(s) = samples.get_mut(*i) {
                    s.watcher.push((*check, *repair));
                }
            }
        }
        (samples, fraction, leak)
    });
    // Leave nothing behind for the next mode (the watcher is gone, so nothing owns them).
    let eng = engine.clone();
    netns::run_in(&ns, move || {
        eng.release()?;
        Ok(())
    })?;
    result
}

fn intact(nl: &Netlink, expected: &str) -> bool {
    matches!(nl.inspect(), Ok(Some(i)) if i.digest == expected)
}

fn wait_intact(nl: &Netlink, expected: &str, limit: Duration) -> Result<()> {
    let t0 = Instant::now();
    wait_intact_from(nl, expected, t0, limit).map(drop)
}

/// Waits until the kernel holds the recorded tables again and returns when that was
/// first seen, measured from `t0`. The ruleset generation is polled every 200 µs and each
/// new generation is read back; the window ends when the generation whose tables are
/// intact was first seen (not when reading them back finished), or, if the ruleset moved
/// again during that read, when the read finished. The tables are also read again every
/// 20 ms when the generation did not move, so a failed read is never waited out (it used
/// to be: a read that failed at the repaired generation left the bench waiting for a
/// generation change that never came, "not repaired within 5s").
fn wait_intact_from(nl: &Netlink, expected: &str, t0: Instant, limit: Duration) -> Result<Duration> {
    let mut last_gen = None;
    let mut last_read: Option<Instant> = None;
    loop {
        let gen = nl.generation().ok();
        let seen = t0.elapsed();
        let stale = last_read.is_none_or(|t| t.elapsed() >= Duration::from_millis(20));
        if gen.is_some() && (gen != last_gen || stale) {
            last_read = Some(Instant::now());
            if intact(nl, expected) {
                let after = nl.generation().ok();
                return Ok(if after == gen && gen != last_gen {
                    seen
                } else {
                    t0.elapsed()
                });
            }
            last_gen = gen;
        }
        if t0.elapsed() > limit {
            return Err(anyhow!("the tables were not repaired within {limit:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

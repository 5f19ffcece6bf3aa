//! `cordon bench tamper` (issue #12): how long the host stays exposed after each kind of
//! tampering, with the event-driven repair (nf_tables and link notifications) against the
//! old 1 s poll, in one run, printed as a table. With the tables owned by the watcher
//! (nftables owner flag), a third column shows whether the tamper got through at all.
//!
//! Everything happens in a throwaway lab: the quarantine is applied in the endpoint
//! namespace, the watcher runs in a thread there, and the tampering is done over netlink
//! from another socket in the same namespace (exactly the messages `nft` sends). The
//! exposure of one run is the time from the tamper's commit until the kernel again holds
//! exactly the recorded tables, seen by polling the ruleset generation and reading the
//! tables back whenever it moves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

use crate::lab::{addr, netns, Host, Lab, LabOptions};

#[derive(Args, Debug)]
pub struct TamperArgs {
    /// Runs per tamper kind and repair mode (at least 50 for the p99).
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Seconds of the "delete the table every 20 ms" loop per repair mode.
    #[arg(long, default_value_t = 3)]
    pub loop_secs: u64,
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
}

impl Sample {
    fn cell(&self) -> String {
        if self.exposures.is_empty() {
            return format!("refused {}/{}", self.refused, self.refused);
        }
        let mut v = self.exposures.clone();
        v.sort();
        let pick = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        let mut s = format!(
            "{:.1} / {:.1}",
            pick(0.5).as_secs_f64() * 1e3,
            pick(0.99).as_secs_f64() * 1e3
        );
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
    let exe = std::env::current_exe()?;
    let lab = Lab::build(
        &exe,
        LabOptions {
            user_rules: false,
            ..LabOptions::default()
        },
    )?;
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
    Ok(())
}

/// All kinds in one repair mode: (per-kind samples, fraction of time open in the loop).
fn run_mode(lab: &Lab, mode: Mode, a: &TamperArgs) -> Result<(Vec<Sample>, f64)> {
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
    let (eng, flag, opts) = (engine.clone(), stop.clone(), mode.options());
    let watcher = netns::spawn_in(&ns, move || {
        eng.watch(&opts, &flag, |ev| {
            if let cordon_engine::watch::WatchEvent::Failed { error } = ev {
                eprintln!("  watcher: {error}");
            }
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
        for kind in Kind::ALL {
            eprintln!("  {} ...", kind.label());
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
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
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

/// Waits until the kernel holds the recorded tables again; the time since `t0`. Reads the
/// tables back only when the ruleset generation moved.
fn wait_intact_from(nl: &Netlink, expected: &str, t0: Instant, limit: Duration) -> Result<Duration> {
    let mut last_gen = None;
    loop {
        let gen = nl.generation().ok();
        if gen != last_gen {
            last_gen = gen;
            if intact(nl, expected) {
                return Ok(t0.elapsed());
            }
        }
        if t0.elapsed() > limit {
            return Err(anyhow!("the tables were not repaired within {limit:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

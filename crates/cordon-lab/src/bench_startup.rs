//! Start-up benchmark of the endpoint binary (issue 18): what a process pays before and
//! around its work, measured on the binary that is installed on endpoints (the
//! `release-endpoint` profile built with `--no-default-features`), in one run:
//!
//! * its file size and whether it carries a symbol table (target: stripped, < 8 MB);
//! * `cordon --version` against `/bin/true`, both spawned the same way (target: within
//!   0.5 ms);
//! * the whole `cordon isolate` (netlink) process inside a lab namespace, spawned from a
//!   thread that has `setns`ed into the namespace, so `ip netns exec` is not in the
//!   timing (target: median < 2 ms), with its state directory on disk and on tmpfs; and
//!   the floors inside it, each timed alone: the durable writes (claims, their backup and
//!   state: temp file, fsync, rename; directory fsync) and the kernel check with which isolate looks
//!   for rules of the iptables backend (it spawns `iptables-save` only when they can
//!   exist);
//! * the Velociraptor command sequence spawned the same way, and each median's ratio to it.
//!
//! Timings are wall-clock around `fork`+`exec`+`wait` of the child; runs of the different
//! commands are interleaved so that load on the machine hits them alike. The parts of the
//! isolate process are timed alone, in-process from the namespace thread: process start-up
//! (`cordon --version`), the kernel transaction (the netlink batch, encoded beforehand),
//! the read-back of the tables for the record (dumps and digest; in this debug driver the
//! decoding is slower than in the endpoint build), the durable writes and the iptables
//! check. What is left of the median is the command's own work. The verdict line for each
//! isolate median ([`target_line`]) names these floors beside it — start-up, kernel
//! transaction, read-back and, on disk, the fsyncs — with their sum, so a "NOT met" says
//! what stands in the way.
//!
//! # Finding where the time goes (issue #18), repeatably on a loaded machine
//! Wall-clock on a shared 2-core machine swings with load; these figures do not:
//! * CPU time, page faults and context switches of one process, children included, in a
//!   namespace of your own (`ip netns add NAME`, a veth pair, documentation addresses):
//!   `ip netns exec NAME perf stat -e task-clock,page-faults,context-switches -r 30 cordon
//!   isolate --backend netlink --state-dir /dev/shm/DIR …` (with `release` between runs);
//!   compare with `/bin/true`, `cordon --version`, `cordon status --help` (start-up plus
//!   argument parsing) and `cordon isolate --dry-run` (plus resolving and rendering) to
//!   split the process into stages;
//! * where the CPU goes: `perf record -F 20000 -g` over a loop of isolates (release under a
//!   copy of the binary with another name, so `perf report --comm` separates them), on a
//!   build with symbols (`--config 'profile.X.inherits="release-endpoint"' --config
//!   'profile.X.strip=false' --profile X`); group samples by the outermost system call or
//!   page fault of each call chain;
//! * what the process asks the kernel: `strace -f -tt -T` (forks and execs, sleeps, polls
//!   with timeouts, fsyncs, netlink round trips, sockets opened, files and /proc read);
//!   `strace -c` for counts; `LD_DEBUG=statistics cordon --version` for the dynamic
//!   loader's relocation work.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use cordon_firewall::Firewall;

use crate::bench_apply::{stats, Stats};
use crate::lab::{addr, netns, Host, Lab, LabOptions};

/// How the endpoint binary is built (printed when it is missing).
pub const ENDPOINT_BUILD: &str =
    "cargo build --target x86_64-unknown-linux-musl --profile release-endpoint -p cordon --no-default-features";

/// The target the endpoint binary is built for (scripts/package): a static PIE on musl.
pub const ENDPOINT_TARGET: &str = "x86_64-unknown-linux-musl";

#[derive(Args, Debug)]
pub struct StartupArgs {
    /// The endpoint binary to measure. Default: the musl endpoint build in the running
    /// binary's target directory (target/x86_64-unknown-linux-musl/release-endpoint/cordon).
    #[arg(long)]
    pub endpoint: Option<PathBuf>,
    /// Runs per measured command.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Another build to compare start-up with (e.g. target/release/cordon, the full
    /// binary with server and lab).
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Baseline script to compare with, run as `SCRIPT 192.0.2.1 8443`.
    #[arg(long, default_value = "../shared/baselines/velociraptor-linux-quarantine.sh")]
    pub baseline: PathBuf,
}

pub fn run(a: StartupArgs) -> u8 {
    match run_inner(&a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon bench startup: {e:#}");
            1
        }
    }
}

/// `x86_64-unknown-linux-musl/release-endpoint/cordon` in the running binary's target
/// directory (`target/`).
fn default_endpoint() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().context("the running binary has no directory")?;
    let target = profile_dir
        .parent()
        .context("the running binary's directory has no parent")?;
    Ok(target.join(ENDPOINT_TARGET).join("release-endpoint").join("cordon"))
}

/// Whether an ELF file has a `.symtab` section (i.e. is not stripped). Reads the section
/// headers directly (64-bit little-endian ELF only, the only kind this bench runs on): a
/// few lines instead of an ELF crate for one yes/no answer.
pub fn elf_has_symtab(bytes: &[u8]) -> Result<bool> {
    let u16_at = |o: usize| -> Result<u16> {
        Ok(u16::from_le_bytes(
            bytes.get(o..o + 2).context("ELF truncated")?.try_into()?,
        ))
    };
    let u32_at = |o: usize| -> Result<u32> {
        Ok(u32::from_le_bytes(
            bytes.get(o..o + 4).context("ELF truncated")?.try_into()?,
        ))
    };
    let u64_at = |o: usize| -> Result<u64> {
        Ok(u64::from_le_bytes(
            bytes.get(o..o + 8).context("ELF truncated")?.try_into()?,
        ))
    };
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let shoff = usize::try_from(u64_at(0x28)?)?;
    let shentsize = usize::from(u16_at(0x3A)?);
    let shnum = usize::from(u16_at(0x3C)?);
    for i in 0..shnum {
        // sh_type 2 = SHT_SYMTAB
        if u32_at(shoff + i * shentsize + 4)? == 2 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Spawns `argv` (stdio to /dev/null) from the calling thread and times it to its exit.
fn time_spawn(argv: &[&str], env: &[(&str, &str)]) -> Result<Duration> {
    let (prog, args) = argv.split_first().context("empty command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("running {argv:?}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{argv:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

/// What `cordon isolate` does to make its records durable (design: the rules count as
/// applied once they are written): for the claims file's backup copy, the claims file
/// (both before the rules) and the state file, temp file, write, fsync, rename; then one
/// fsync of the directory for the renames (trial39 LOW-6: the row named two files while
/// isolate writes three since the claims backup of issue 14).
fn durable_writes(dir: &Path, payload: &[u8]) -> Result<Duration> {
    let start = Instant::now();
    for name in ["bench.claims.backup", "bench.claims.json", "bench.json"] {
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(payload)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    File::open(dir)?.sync_all()?;
    Ok(start.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run_inner(a: &StartupArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let endpoint = match &a.endpoint {
        Some(p) => p.clone(),
        None => default_endpoint()?,
    };
    if !endpoint.is_file() {
        bail!(
            "endpoint binary {} not found; build it with `{ENDPOINT_BUILD}` or name it with --endpoint",
            endpoint.display()
        );
    }
    let endpoint = endpoint.canonicalize()?;
    let script = a
        .baseline
        .canonicalize()
        .with_context(|| format!("baseline script {}", a.baseline.display()))?;
    let bytes = std::fs::read(&endpoint).with_context(|| format!("reading {}", endpoint.display()))?;
    let stripped = !elf_has_symtab(&bytes)?;
    let full = a
        .compare
        .as_ref()
        .map(|p| p.canonicalize())
        .transpose()
        .context("--compare")?;
    let full_len = match &full {
        Some(f) => Some((std::fs::metadata(f)?.len(), !elf_has_symtab(&std::fs::read(f)?)?)),
        None => None,
    };

    let ep = endpoint.to_string_lossy().to_string();
    let full_s = full.as_ref().map(|f| f.to_string_lossy().to_string());

    // Start-up, in this (root) namespace: nothing here changes any network state.
    eprintln!("timing {} start-ups of /bin/true and the endpoint binary ...", a.runs);
    let (mut t_true, mut t_ep, mut t_full) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..a.runs {
        t_true.push(time_spawn(&["/bin/true"], &[])?);
        t_ep.push(time_spawn(&[&ep, "--version"], &[])?);
        if let Some(f) = &full_s {
            t_full.push(time_spawn(&[f, "--version"], &[])?);
        }
    }
    let s_true = stats("/bin/true", t_true);
    let s_ep = stats("endpoint `cordon --version`", t_ep);
    let s_full = (!t_full.is_empty()).then(|| stats("--compare build `cordon --version`", t_full));

    // Whole isolate process, in the lab's endpoint namespace (entered by a thread; the
    // children inherit it), and the baseline spawned the same way.
    let lab = Lab::build(
        &endpoint,
        LabOptions {
            user_rules: false,
            ..LabOptions::default()
        },
    )?;
    let ns = lab.ns(Host::Endpoint);
    let leases = lab.lease_dir().to_string_lossy().to_string();
    let runs = a.runs;
    let script_s = script.to_string_lossy().to_string();
    let disk = tempfile::Builder::new()
        .prefix("cordon-bench-startup-")
        .tempdir_in("/var/tmp")?;
    let tmpfs_root = Path::new("/dev/shm");
    let shm = if tmpfs_root.is_dir() {
        Some(
            tempfile::Builder::new()
                .prefix("cordon-bench-startup-")
                .tempdir_in(tmpfs_root)?,
        )
    } else {
        None
    };
    let disk_s = disk.path().to_string_lossy().to_string();
    let shm_s = shm.as_ref().map(|d| d.path().to_string_lossy().to_string());
    eprintln!("timing {runs} whole `cordon isolate` processes and baseline runs in {ns} ...");
    let (s_kernel, s_read, s_probe, s_base, s_iso_disk, s_iso_shm) = netns::run_in(&ns, move || {
        let env = [("CORDON_DHCP_LEASES", leases.as_str())];
        let server = format!("tcp://{}:{}", addr::SERVER4, addr::SERVER_PORT);
        let server6 = format!("tcp://[{}]:{}", addr::SERVER6, addr::SERVER_PORT);
        let (r4, r6) = (addr::RESOLVER4.to_string(), addr::RESOLVER6.to_string());
        let (srv, port) = (addr::SERVER4.to_string(), addr::SERVER_PORT.to_string());
        let isolate = |state: &str| -> Result<Duration> {
            let took = time_spawn(
                &[
                    &ep,
                    "isolate",
                    "--backend",
                    "netlink",
                    "--state-dir",
                    state,
                    "--allow",
                    &server,
                    "--allow",
                    &server6,
                    "--resolver",
                    &r4,
                    "--resolver",
                    &r6,
                ],
                &env,
            )?;
            time_spawn(&[&ep, "release", "--state-dir", state], &env)?;
            Ok(took)
        };
        let (mut base, mut disk_t, mut shm_t, mut probe_t) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut kernel_t, mut read_t) = (Vec::new(), Vec::new());
        // The kernel's part alone, with isolate's policy: one backend value (its socket
        // kept), the batch encoded untimed, then the transaction and the read-back for
        // the record each timed on their own; the tables removed (untimed) afterwards.
        let nl = cordon_firewall::netlink::Netlink::probe(cordon_policy::TableName::default())?;
        let policy = crate::bench::bench_policy();
        for _ in 0..runs {
            let batch = nl.encode_enforce(&policy, cordon_firewall::netlink::Netlink::next_seq(1 << 16))?;
            let t0 = Instant::now();
            nl.send_batch(&batch)?;
            kernel_t.push(t0.elapsed());
            let t0 = Instant::now();
            let read = nl.inspect()?;
            read_t.push(t0.elapsed());
            if read.is_none() {
                bail!("the tables just applied cannot be read back");
            }
            nl.remove()?;
        }
        drop(nl);
        for _ in 0..runs {
            // How isolate looks for Cordon rules of the iptables backend besides the
            // netlink transaction: it asks the kernel (x_tables names, iptables-nft's
            // chains over netlink) and runs `iptables-save` / `ip6tables-save` only when
            // such rules can exist, which in this lab they cannot (issue #18: it used to
            // run both programs on every isolate).
            let t0 = Instant::now();
            let may = cordon_firewall::iptables::may_hold_chains(&cordon_policy::TableName::default());
            probe_t.push(t0.elapsed());
            if may {
                bail!("the lab endpoint has no iptables rules, yet the iptables check says Cordon's chains may exist");
            }
            base.push(time_spawn(&["sh", &script_s, &srv, &port], &[])?);
            time_spawn(&["sh", &script_s, "--remove"], &[])?;
            disk_t.push(isolate(&disk_s)?);
            if let Some(shm_s) = &shm_s {
                shm_t.push(isolate(shm_s)?);
            }
        }
        Ok((
            stats("kernel transaction: the netlink batch alone, in-process", kernel_t),
            stats("read-back for the record (netlink dumps + digest), in-process", read_t),
            stats("iptables check over netlink, in-process (isolate's probe)", probe_t),
            stats("velociraptor baseline (11 nft commands)", base),
            stats("endpoint `cordon isolate` (netlink), state on disk", disk_t),
            (!shm_t.is_empty()).then(|| stats("endpoint `cordon isolate` (netlink), state on tmpfs", shm_t)),
        ))
    })?;
    drop(lab);

    // The durable writes alone, on the same file system as the on-disk runs, exactly as
    // isolate makes its records durable (the claims, their backup and the state).
    let payload = vec![b'x'; 2048];
    let mut t_fsync = Vec::new();
    for _ in 0..runs {
        t_fsync.push(durable_writes(disk.path(), &payload)?);
    }
    let s_fsync = stats("records (claims, backup, state): 3+1 fsyncs, 3 renames", t_fsync);

    println!("endpoint binary: {}", endpoint.display());
    println!(
        "  size {:.2} MB ({} bytes), {}   target: stripped, < 8 MB: {}",
        bytes.len() as f64 / 1e6,
        bytes.len(),
        if stripped {
            "stripped"
        } else {
            "NOT stripped (has .symtab)"
        },
        if stripped && bytes.len() < 8_000_000 {
            "met"
        } else {
            "NOT met"
        }
    );
    if let (Some(f), Some((len, stripped))) = (&full, full_len) {
        println!(
            "--compare build {}: {:.2} MB ({len} bytes), {}",
            f.display(),
            len as f64 / 1e6,
            if stripped { "stripped" } else { "not stripped" }
        );
    }
    println!("{runs} runs each, interleaved (lower is better)");
    println!("{:<62} {:>10} {:>10} {:>10}", "process", "median", "p95", "ratio");
    let row = |s: &Stats, base: &Stats| {
        println!(
            "{:<62} {:>8.3}ms {:>8.3}ms {:>10.3}",
            s.name,
            ms(s.median),
            ms(s.p95),
            s.median.as_secs_f64() / base.median.as_secs_f64().max(f64::MIN_POSITIVE)
        )
    };
    println!("-- start-up (ratio to /bin/true)");
    row(&s_true, &s_true);
    row(&s_ep, &s_true);
    if let Some(s) = &s_full {
        row(s, &s_true);
    }
    let over = ms(s_ep.median) - ms(s_true.median);
    println!(
        "  endpoint --version over /bin/true: {over:+.3} ms   target: within 0.5 ms: {}",
        if over <= 0.5 { "met" } else { "NOT met" }
    );
    println!("-- whole process in the lab namespace, no `ip netns exec` (ratio to the baseline)");
    row(&s_base, &s_base);
    row(&s_iso_disk, &s_base);
    if let Some(s) = &s_iso_shm {
        row(s, &s_base);
    }
    println!("-- parts of the isolate process, each timed alone (floors; ratio to the baseline)");
    row(&s_ep, &s_base);
    row(&s_kernel, &s_base);
    row(&s_read, &s_base);
    row(&s_fsync, &s_base);
    row(&s_probe, &s_base);
    let floors = [&s_ep, &s_kernel, &s_read, &s_fsync, &s_probe]
        .iter()
        .map(|s| ms(s.median))
        .sum::<f64>();
    println!(
        "  these parts sum to {floors:.3} ms; the rest of the isolate median, {:.3} ms, is the command's own work (argument parsing, name resolution, locks and registry, encoding, output)",
        ms(s_iso_disk.median) - floors
    );
    let parts = Floors {
        startup: ms(s_ep.median),
        kernel: ms(s_kernel.median),
        read_back: ms(s_read.median),
        fsync: ms(s_fsync.median),
    };
    println!("{}", target_line("state on disk", ms(s_iso_disk.median), &parts, true));
    if let Some(s) = &s_iso_shm {
        println!("{}", target_line("state on tmpfs", ms(s.median), &parts, false));
    }
    Ok(())
}

/// Medians (ms) of the parts of the isolate process that set its floor, each timed alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floors {
    /// Process start-up (`cordon --version`).
    pub startup: f64,
    /// The kernel transaction (the netlink batch, encoded beforehand).
    pub kernel: f64,
    /// The read-back of the tables for the record (dumps and digest).
    pub read_back: f64,
    /// The durable writes of the records on disk (fsyncs, renames).
    pub fsync: f64,
}

/// The verdict line of `cordon bench startup` (issue #18): the isolate median against the
/// 2 ms target and, beside it, each floor part in it and their sum, e.g. `isolate median
/// (state on disk): 9.100 ms   target: < 2 ms: NOT met (floors: start-up 0.420 ms, kernel
/// transaction 1.100 ms, read-back 0.600 ms, fsync 2.300 ms; sum 4.420 ms)`. `disk`: the
/// records' fsyncs count (on tmpfs they cost nothing and are left out).
pub fn target_line(what: &str, median: f64, f: &Floors, disk: bool) -> String {
    let mut parts = vec![
        ("start-up", f.startup),
        ("kernel transaction", f.kernel),
        ("read-back", f.read_back),
    ];
    if disk {
        parts.push(("fsync", f.fsync));
    }
    let sum: f64 = parts.iter().map(|(_, v)| v).sum();
    let named: Vec<String> = parts.iter().map(|(n, v)| format!("{n} {v:.3} ms")).collect();
    format!(
        "  isolate median ({what}): {median:.3} ms   target: < 2 ms: {} (floors: {}; sum {sum:.3} ms{})",
        if median < 2.0 { "met" } else { "NOT met" },
        named.join(", "),
        if sum >= 2.0 {
            ": the floors alone exceed the target"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Issue #18 item 2: the verdict names each floor part beside the median.
    #[test]
    fn the_target_line_names_every_floor_beside_the_median() {
        let f = Floors {
            startup: 0.4,
            kernel: 1.1,
            read_back: 0.6,
            fsync: 2.3,
        };
        let disk = target_line("state on disk", 9.1, &f, true);
        assert_eq!(
            disk,
            "  isolate median (state on disk): 9.100 ms   target: < 2 ms: NOT met (floors: start-up 0.400 ms, kernel transaction 1.100 ms, read-back 0.600 ms, fsync 2.300 ms; sum 4.400 ms: the floors alone exceed the target)"
        );
        let shm = target_line("state on tmpfs", 1.9, &Floors { kernel: 0.5, ..f }, false);
        assert_eq!(
            shm,
            "  isolate median (state on tmpfs): 1.900 ms   target: < 2 ms: met (floors: start-up 0.400 ms, kernel transaction 0.500 ms, read-back 0.600 ms; sum 1.500 ms)"
        );
    }

    #[test]
    fn elf_symtab_is_detected_on_this_test_binary_and_refused_on_non_elf() {
        // Test binaries carry a symbol table (the dev profile does not strip).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(elf_has_symtab(&me).unwrap());
        assert!(elf_has_symtab(b"#!/bin/sh\n").is_err());
        // A header claiming sections past the end of the file is an error, not a panic.
        let mut fake = me[..64].to_vec();
        fake[0x3C] = 200;
        assert!(elf_has_symtab(&fake).is_err());
    }
}

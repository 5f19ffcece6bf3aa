//! `cordon bench server --agents N [--db postgres://…] [--replicas 2]`: a real server
//! in its own process (`cordon server run`, one per replica), N simulated agents in
//! other processes (`cordon bench server-agents`, at most `--agents-per-process` each,
//! so every process stays within its file-descriptor limit), each agent with its own
//! client certificate on real mutual-TLS connections over 127.0.0.1 and an in-memory
//! firewall (nothing on this machine's firewall is touched). Then one bulk quarantine
//! of all of them through the HTTPS API (sent to the last replica), and:
//!
//! * the API call's duration, the time until every agent enforces and until every one is
//!   acknowledged in the database;
//! * the **server** process's RSS per connected agent (RSS with every agent connected
//!   minus RSS before any, divided by N) and its CPU time;
//! * the wake-up latency from an API response to an agent's long-poll answering, p50
//!   and p99 over `--wake-cycles` single-host changes; with `--replicas 2` the change is
//!   made on replica B while the long-poll waits on replica A (PostgreSQL only).
//!
//! Bounded: every phase gives up after `--timeout` seconds; every process it started is
//! killed at the end, and a PostgreSQL database it created is dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use cordon_agent::{Agent, MemoryEnforcer};
use cordon_proto::HostState;
use cordon_server::pki::Ca;
use cordon_server::run;
use cordon_server::store::NewHost;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Args, Debug)]
pub struct ServerBenchArgs {
    /// Number of simulated agents.
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Agents per agent process (each process holds about two sockets per agent).
    #[arg(long, default_value_t = 2500)]
    pub agents_per_process: usize,
    /// Database: SQLite in a temporary directory by default; `postgres://…` makes (and
    /// afterwards drops) a fresh database on that server.
    #[arg(long)]
    pub db: Option<String>,
    /// Server replicas (more than one needs PostgreSQL). Agents connect to the first,
    /// the API calls go to the last.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Single-host changes timed from the API response to the long-poll answering.
    #[arg(long, default_value_t = 100)]
    pub wake_cycles: usize,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
    /// Keep the run's files in this directory (created; must be empty or absent)
    /// instead of a temporary one deleted at the end: server and agent logs (the
    /// server's connection events at debug level), credentials, the SQLite database.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

/// `cordon bench server-agents` (started by `cordon bench server`, not for people).
#[derive(Args, Debug)]
pub struct AgentsArgs {
    /// `https://127.0.0.1:PORT` of the server.
    #[arg(long)]
    pub url: String,
    /// The CA certificate (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// JSON lines of `{id, cert, key}`.
    #[arg(long)]
    pub creds: PathBuf,
    /// Directory for the agents' (unused) state.
    #[arg(long)]
    pub state: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Cred {
    id: String,
    cert: String,
    key: String,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

pub fn run(a: ServerBenchArgs) -> u8 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cordon: {e}");
            return 1;
        }
    };
    if a.agents == 0 || a.agents_per_process == 0 || a.replicas == 0 {
        eprintln!("cordon bench server: --agents, --agents-per-process and --replicas must be at least 1");
        return 2;
    }
    if a.replicas > 1 && !a.db.as_deref().is_some_and(|d| d.starts_with("postgres")) {
        eprintln!("cordon bench server: --replicas above 1 needs --db postgres://…");
        return 2;
    }
    match rt.block_on(bench(&a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon bench server: {e:#}");
            1
        }
    }
}

/// The agent side: runs every agent in `--creds` until killed; prints `enforcing` on
/// stdout each time all of them have gone from released to isolated.
pub fn run_agents(a: AgentsArgs) -> u8 {
    let _ = cordon_server::run::raise_nofile_limit();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cordon: {e}");
            return 1;
        }
    };
    match rt.block_on(agents(&a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon bench server-agents: {e:#}");
            1
        }
    }
}

async fn agents(a: &AgentsArgs) -> anyhow::Result<()> {
    let ca_pem = std::fs::read(&a.ca)?;
    let text = std::fs::read_to_string(&a.creds)?;
    let mut firewalls = Vec::new();
    let mut tasks = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let c: Cred = serde_json::from_str(line)?;
        let mut cfg = cordon_agent::AgentConfig::new(&a.url, &c.id, &a.state);
        cfg.enforce = false;
        cfg.state_dir = a.state.join(&c.id);
        cfg.heartbeat_secs = 300.0;
        let tls = cordon_client::tls::mutual(&ca_pem, c.cert.as_bytes(), c.key.as_bytes())?;
        let fw = Arc::new(MemoryEnforcer::new());
        let agent = Agent::new(cfg, fw.clone(), tls)?.with_hostname(&c.id);
        firewalls.push(fw);
        tasks.push(tokio::spawn(agent.run()));
    }
    let mut out = std::io::stdout();
    // Agents before `next` were isolated when last looked at: each pass resumes there, so
    // the watch costs little beside the agents themselves (a full scan of 2,500 locked
    // firewalls every 2 ms took a tenth of the agent processes' CPU, issue 15).
    let mut next = 0;
    loop {
        while firewalls.get(next).is_some_and(|f| f.is_isolated()) {
            next += 1;
        }
        if next == firewalls.len() {
            writeln!(out, "enforcing")?;
            out.flush()?;
            // The next transition starts when one of them is released again.
            while firewalls.iter().all(|f| f.is_isolated()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            next = 0;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Processes this bench started; killed (by their own handle) when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Resident set size of process `pid` in bytes (Linux `/proc`).
fn rss_bytes(pid: u32) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// User plus system CPU time of process `pid`, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|i| f.get(*i)?.parse::<u64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_listening(port: u16, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if start.elapsed() > limit {
            bail!("the server on port {port} did not start within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn wait_count(
    store: &cordon_server::Store,
    state: HostState,
    min_applied: i64,
    n: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let done = store.count_hosts(state, min_applied).await? as usize;
        if done >= n {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("only {done} of {n} agents reached {} within {limit:?}", state.as_str());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Db {
    url: String,
    /// Base URL and name of a PostgreSQL database to drop at the end.
    drop: Option<(String, String)>,
}

async fn database(a: &ServerBenchArgs, data: &Path) -> anyhow::Result<Db> {
    match a.db.as_deref() {
        None => Ok(Db {
            url: run::db_url(data, None),
            drop: None,
        }),
        Some(base) if base.starts_with("postgres") => {
            let name = format!("cordon_bench_{}", std::process::id());
            let url = cordon_server::store::create_postgres_database(base, &name).await?;
            Ok(Db {
                url,
                drop: Some((base.to_string(), name)),
            })
        }
        Some(other) => Ok(Db {
            url: other.to_string(),
            drop: None,
        }),
    }
}

async fn bench(a: &ServerBenchArgs) -> anyhow::Result<()> {
    let temp;
    let dir: &Path = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            if std::fs::read_dir(d)?.next().is_some() {
                bail!("--keep {}: the directory is not empty", d.display());
            }
            d
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path()
        }
    };
    let data = dir.join("server");
    let db = database(a, &data).await?;
    let result = bench_on(a, dir, &data, &db.url).await;
    if let Some(d) = &a.keep {
        eprintln!("cordon bench server: logs and data kept in {}", d.display());
    }
    if let Some((base, name)) = &db.drop {
        if let Err(e) = cordon_server::store::drop_postgres_database(base, name).await {
            eprintln!("cordon bench server: cannot drop database {name}: {e}");
        }
    }
    result
}

async fn bench_on(a: &ServerBenchArgs, dir: &Path, data: &Path, db: &str) -> anyhow::Result<()> {
    let n = a.agents;
    let limit = Duration::from_secs(a.timeout);
    let exe = std::env::current_exe()?;
    let init = run::init(data, db, &["localhost".into()], &["127.0.0.1".parse()?]).await?;
    let store = cordon_server::Store::connect(db).await?;
    let ca = Ca::load(data)?;
    let ca_path = data.join("ca.pem");
    let ca_pem = std::fs::read(&ca_path)?;

    // Enroll N hosts (directly in the database: this measures sync, not enrollment),
    // plus one more whose long-poll the wake-up cycles time.
    let t = Instant::now();
    let mut creds = Vec::with_capacity(n + 1);
    for i in 0..=n {
        let label = if i == n { "probe" } else { "bench" };
        let token = store.create_enroll_token("bench", &[label.into()], 3600).await?.token;
        let key = rcgen::KeyPair::generate()?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())?
            .serialize_request(&key)?
            .pem()?;
        let id = if i == n {
            "bench-probe".to_string()
        } else {
            format!("bench-{i:05}")
        };
        let cert = ca.sign_client(&csr, &id)?;
        store
            .enroll(
                &token,
                &NewHost {
                    id: id.clone(),
                    hostname: id.clone(),
                    ..Default::default()
                },
            )
            .await?;
        creds.push(Cred {
            id,
            cert,
            key: key.serialize_pem(),
        });
    }
    let probe = creds.pop().ok_or_else(|| anyhow!("no probe credentials"))?;
    let enroll_time = t.elapsed();

    // The server replicas, each in its own process.
    let mut children = Children(Vec::new());
    let mut ports = Vec::new();
    for r in 0..a.replicas {
        let port = free_port()?;
        let log = std::fs::File::create(dir.join(format!("server-{r}.log")))?;
        let child = Command::new(&exe)
            .args(["server", "run", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(["--db", db])
            .env(
                "CORDON_LOG",
                if a.keep.is_some() {
                    // Every connection's fate (handshake failed or timed out, evicted).
                    "warn,cordon_server_core::tls=debug"
                } else {
                    "warn"
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the server process")?;
        children.0.push(child);
        wait_listening(port, limit).await?;
        ports.push(port);
    }
    let server_pid = children.0[0].id();
    let agent_url = format!("https://127.0.0.1:{}", ports[0]);
    let api_url = format!("https://127.0.0.1:{}", ports[ports.len() - 1]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_bytes(server_pid);
    let cpu_start = cpu_secs(server_pid);

    let load_start = load_average();
    // Agent processes.
    let t = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let procs = creds.chunks(a.agents_per_process).count();
    for (p, chunk) in creds.chunks(a.agents_per_process).enumerate() {
        let file = dir.join(format!("creds-{p}.jsonl"));
        let mut text = String::new();
        for c in chunk {
            text.push_str(&serde_json::to_string(c)?);
            text.push('\n');
        }
        std::fs::write(&file, text)?;
        let log = std::fs::File::create(dir.join(format!("agents-{p}.log")))?;
        let mut child = Command::new(&exe)
            .args(["bench", "server-agents", "--url", &agent_url, "--ca"])
            .arg(&ca_path)
            .arg("--creds")
            .arg(&file)
            .arg("--state")
            .arg(dir.join("agents"))
            .env("CORDON_LOG", if a.keep.is_some() { "warn" } else { "error" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting an agent process")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout of agent process"))?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) if l == "enforcing" => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        children.0.push(child);
    }
    if let Err(e) = wait_count(&store, HostState::Normal, 1, n, limit).await {
        eprintln!("{}", diagnose(dir, server_pid));
        return Err(e.context("agents connecting"));
    }
    let connect_total = t.elapsed();
    let connected_diag = diagnose(dir, server_pid);
    // Let the long-polls settle before measuring memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = rss_bytes(server_pid);
    let cpu_connected = cpu_secs(server_pid);

    // Wake-up latency: API response (on the last replica) -> long-poll answered (on the
    // first), one host at a time.
    let api_tls = cordon_client::tls::server_auth_only(&ca_pem)?;
    let http = cordon_client::http_client(api_tls, Some(limit))?;
    let probe_tls = cordon_client::tls::mutual(&ca_pem, probe.cert.as_bytes(), probe.key.as_bytes())?;
    let probe_http = cordon_client::http_client(probe_tls, Some(limit))?;
    let mut wake_ms = Vec::with_capacity(a.wake_cycles);
    let desired: cordon_proto::DesiredState = probe_http
        .get(format!("{agent_url}/v1/agent/desired"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut rev = desired.revision;
    for cycle in 0..a.wake_cycles {
        let poll = {
            let probe_http = probe_http.clone();
            let url = format!("{agent_url}/v1/agent/desired?since={rev}&wait=20");
            tokio::spawn(async move {
                let r = probe_http.get(url).send().await?.error_for_status()?;
                let d: cordon_proto::DesiredState = r.json().await?;
                Ok::<_, reqwest::Error>((d, Instant::now()))
            })
        };
        // The long-poll must be waiting before the change.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let action = if cycle % 2 == 0 { "quarantine" } else { "release" };
        let resp = http
            .post(format!("{api_url}/v1/hosts/bench-probe/{action}"))
            .bearer_auth(&init.admin.token)
            .json(&json!({"comment": "bench wake-up"}))
            .send()
            .await?;
        let answered = Instant::now();
        if !resp.status().is_success() {
            bail!("{action} failed: {}", resp.status());
        }
        let (d, woke) = poll.await??;
        if d.revision <= rev {
            bail!("the long-poll answered without the change (revision {})", d.revision);
        }
        rev = d.revision;
        wake_ms.push(woke.saturating_duration_since(answered).as_secs_f64() * 1e3);
    }
    wake_ms.sort_by(|x, y| x.total_cmp(y));

    // One bulk quarantine through the HTTPS API.
    let cpu_bulk_start = cpu_secs(server_pid);
    while rx.try_recv().is_ok() {}
    let t = Instant::now();
    let resp = http
        .post(format!("{api_url}/v1/quarantine"))
        .bearer_auth(&init.admin.token)
        .json(&json!({"label": "bench", "comment": "bench server"}))
        .send()
        .await?;
    let api_time = t.elapsed();
    if !resp.status().is_success() {
        bail!(
            "bulk quarantine failed: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let enforced_time = {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < procs {
            match tokio::time::timeout(limit, rx.recv()).await {
                Ok(Some(p)) => {
                    seen.insert(p);
                }
                _ => bail!(
                    "only {} of {procs} agent processes enforcing within {limit:?}",
                    seen.len()
                ),
            }
        }
        t.elapsed()
    };
    // The simulated agents run with `enforce = false`: the server records their
    // acknowledgement of the quarantine (revision 2, the only one in that state) as
    // `not_enforcing` and, truthfully, never as an applied revision.
    wait_count(&store, HostState::NotEnforcing, 0, n, limit)
        .await
        .context("acknowledgements")?;
    let ack_time = t.elapsed();
    let cpu_bulk = cpu_secs(server_pid) - cpu_bulk_start;
    let rss_end = rss_bytes(server_pid);
    let load_end = load_average();
    let end_diag = diagnose(dir, server_pid);
    drop(children);

    let per_agent = rss_connected.saturating_sub(rss_before) as f64 / n as f64;
    let backend = if db.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let (p50, p99) = (percentile(&wake_ms, 0.5), percentile(&wake_ms, 0.99));
    if a.json {
        println!(
            "{}",
            json!({
                "agents": n,
                "db": backend,
                "replicas": a.replicas,
                "agent_processes": procs,
                "enroll_s": enroll_time.as_secs_f64(),
                "connect_s": connect_total.as_secs_f64(),
                "bulk_api_call_ms": api_time.as_secs_f64() * 1e3,
                "all_enforcing_s": enforced_time.as_secs_f64(),
                "all_acknowledged_s": ack_time.as_secs_f64(),
                "server_rss_idle_mib": rss_before as f64 / 1048576.0,
                "server_rss_connected_mib": rss_connected as f64 / 1048576.0,
                "server_rss_end_mib": rss_end as f64 / 1048576.0,
                "server_rss_per_connected_agent_kib": per_agent / 1024.0,
                "server_cpu_connect_s": cpu_connected - cpu_start,
                "server_cpu_bulk_s": cpu_bulk,
                "wake_cycles": wake_ms.len(),
                "wake_p50_ms": p50,
                "wake_p99_ms": p99,
                "load_1min_start": load_start,
                "load_1min_end": load_end,
            })
        );
    } else {
        let wake_where = if a.replicas > 1 {
            "change on replica B, long-poll on replica A"
        } else {
            "one server"
        };
        println!(
            "cordon bench server: {n} simulated agents in {procs} processes, server in its own process \
             ({} replica(s)), real mTLS on 127.0.0.1, {backend}",
            a.replicas
        );
        println!(
            "  enroll (direct to the database)    {:>9.2} s",
            enroll_time.as_secs_f64()
        );
        println!(
            "  all connected and reported         {:>9.2} s",
            connect_total.as_secs_f64()
        );
        println!(
            "  bulk quarantine API call           {:>9.1} ms",
            api_time.as_secs_f64() * 1e3
        );
        println!(
            "  all agents enforcing               {:>9.3} s",
            enforced_time.as_secs_f64()
        );
        println!(
            "  all acknowledged (server DB)       {:>9.3} s   (goal < 10 s for 10,000)",
            ack_time.as_secs_f64()
        );
        println!(
            "  server RSS per connected agent     {:>9.1} KiB (goal < 100 KB; idle {:.0} MiB, connected {:.0} MiB)",
            per_agent / 1024.0,
            rss_before as f64 / 1048576.0,
            rss_connected as f64 / 1048576.0
        );
        println!(
            "  server CPU: connect {:.2} s, bulk quarantine to all acknowledged {:.2} s",
            cpu_connected - cpu_start,
            cpu_bulk
        );
        println!(
            "  wake-up, API response -> long-poll answered ({wake_where}): p50 {p50:.1} ms, p99 {p99:.1} ms over {} changes (goal p99 < 200 ms)",
            wake_ms.len()
        );
        println!("  machine load (1-min average)       {load_start:.2} at the start, {load_end:.2} at the end");
        if a.keep.is_some() {
            println!("  when all were connected: {connected_diag}");
            println!("  when all had acknowledged: {end_diag}");
        }
    }
    Ok(())
}

/// The 1-minute load average (Linux `/proc/loadavg`; `NaN` when unreadable).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Open file descriptors of process `pid` (Linux `/proc`).
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Lines of `path` containing `needle`.
fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().filter(|l| l.contains(needle)).count())
}

/// What the server's and agents' logs say about connections so far, and the server's
/// open descriptors: the evidence when agents do not get through.
fn diagnose(dir: &Path, server_pid: u32) -> String {
    let server = dir.join("server-0.log");
    let mut agents_lines = 0;
    let mut agents_timeouts = 0;
    let mut agents_closed = 0;
    for p in 0.. {
        let f = dir.join(format!("agents-{p}.log"));
        if !f.exists() {
            break;
        }
        agents_lines += count_lines(&f, "");
        agents_timeouts += count_lines(&f, "timed out");
        agents_closed += count_lines(&f, "connection closed") + count_lines(&f, "reset");
    }
    format!(
        "server: {} open descriptors, log: {} accept failures, {} handshakes failed, {} handshakes timed out, \
         {} connections evicted (unauthenticated cap), {} held at the cap; agents' logs: {} lines, {} timeouts, {} closed/reset",
        fd_count(server_pid),
        count_lines(&server, "accept failed"),
        count_lines(&server, "TLS handshake failed"),
        count_lines(&server, "TLS handshake timed out"),
        count_lines(&server, "evicted"),
        count_lines(&server, "held: every unauthenticated slot"),
        agents_lines,
        agents_timeouts,
        agents_closed
    )
}

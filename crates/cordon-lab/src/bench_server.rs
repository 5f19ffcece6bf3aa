//! `cordon bench server --agents N`: N in-process agents, each holding real mutual-TLS
//! connections to a real server on 127.0.0.1, then one bulk quarantine of all of them
//! (by label, through the HTTPS API): time until every agent has acknowledged, and the
//! memory the connected agents cost. Agents use an in-memory firewall: nothing on this
//! machine's firewall is touched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Args;
use cordon_agent::{Agent, MemoryEnforcer};
use cordon_proto::HostState;
use cordon_server::pki::Ca;
use cordon_server::run::{self, RunConfig};
use cordon_server::store::{HostFilter, NewHost};
use serde_json::json;

#[derive(Args, Debug)]
pub struct ServerBenchArgs {
    /// Number of simulated agents.
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ServerBenchArgs) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cordon: {e}");
            return 1;
        }
    };
    match rt.block_on(bench(&a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon bench server: {e:#}");
            1
        }
    }
}

/// Resident set size of this process in bytes (Linux).
fn rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

/// Each agent needs a few descriptors on both sides of its connections.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
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
        let hosts = store
            .hosts(&HostFilter {
                state: Some(state),
                ..Default::default()
            })
            .await?;
        let done = hosts.iter().filter(|h| h.applied_revision >= min_applied).count();
        if done >= n {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(anyhow!(
                "only {done} of {n} agents reached {} within {limit:?}",
                state.as_str()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bench(a: &ServerBenchArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let n = a.agents;
    let limit = Duration::from_secs(a.timeout);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let db = run::db_url(&data, None);
    let init = run::init(&data, &db, &["localhost".into()], &["127.0.0.1".parse()?]).await?;
    let cfg = RunConfig {
        listen: "127.0.0.1:0".parse()?,
        db,
        data_dir: data.clone(),
        expiry_every: Duration::from_secs(5),
        max_wait: Duration::from_secs(25),
    };
    let server = run::start(&cfg).await?;
    let store = server.state.store.clone();
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let ca_pem = std::fs::read(data.join("ca.pem"))?;
    let ca = Ca::load(&data)?;

    // Enroll N hosts (in-process: this benchmark measures sync, not enrollment).
    let t = Instant::now();
    let mut creds = Vec::with_capacity(n);
    for i in 0..n {
        let token = store.create_enroll_token("bench", &["bench".into()], 3600).await?.token;
        let key = rcgen::KeyPair::generate()?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())?
            .serialize_request(&key)?
            .pem()?;
        let id = format!("bench-{i:05}");
        let cert = ca.sign_client(&csr, &id)?;
        store
            .enroll(
                &token,
                &NewHost {
                    id: id.clone(),
                    hostname: format!("sim{i:05}"),
                    ..Default::default()
                },
            )
            .await?;
        creds.push((id, cert, key.serialize_pem()));
    }
    let enroll_time = t.elapsed();
    let rss_before = rss_bytes();

    // Start the agents.
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let mut firewalls = Vec::with_capacity(n);
    for (id, cert, key) in &creds {
        let mut c = cordon_agent::AgentConfig::new(&url, id, dir.path());
        c.enforce = false;
        c.state_dir = dir.path().join("agents").join(id);
        c.heartbeat_secs = 60.0;
        let tls = cordon_client::tls::mutual(&ca_pem, cert.as_bytes(), key.as_bytes())?;
        let fw = Arc::new(MemoryEnforcer::new());
        let agent = Agent::new(c, fw.clone(), tls)?.with_hostname(id);
        firewalls.push(fw);
        tasks.push(tokio::spawn(agent.run()));
    }
    wait_count(&store, HostState::Normal, 1, n, limit)
        .await
        .context("agents connecting")?;
    let connect_total = t.elapsed();
    // Let the long-polls settle before measuring memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = rss_bytes();

    // One bulk quarantine through the HTTPS API.
    let http = cordon_client::http_client(cordon_client::tls::server_auth_only(&ca_pem)?, Some(limit))?;
    let t = Instant::now();
    let resp = http
        .post(format!("{url}/v1/quarantine"))
        .bearer_auth(&init.admin.token)
        .json(&json!({"label": "bench", "comment": "bench server"}))
        .send()
        .await?;
    let api_time = t.elapsed();
    if !resp.status().is_success() {
        return Err(anyhow!(
            "bulk quarantine failed: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        ));
    }
    let enforced_time = {
        let start = Instant::now();
        while firewalls.iter().filter(|f| f.is_isolated()).count() < n {
            if start.elapsed() > limit {
                return Err(anyhow!("not every agent enforced within {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        t.elapsed()
    };
    wait_count(&store, HostState::Quarantined, 2, n, limit)
        .await
        .context("acknowledgements")?;
    let ack_time = t.elapsed();

    let per_agent = rss_connected.saturating_sub(rss_before) as f64 / n as f64;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    server.stop();
    if a.json {
        println!(
            "{}",
            json!({
                "agents": n,
                "enroll_s": enroll_time.as_secs_f64(),
                "connect_s": connect_total.as_secs_f64(),
                "bulk_api_call_ms": api_time.as_secs_f64() * 1e3,
                "all_enforced_s": enforced_time.as_secs_f64(),
                "all_acknowledged_s": ack_time.as_secs_f64(),
                "rss_before_mib": rss_before as f64 / 1048576.0,
                "rss_connected_mib": rss_connected as f64 / 1048576.0,
                "rss_per_connected_agent_kib": per_agent / 1024.0,
            })
        );
    } else {
        println!("cordon bench server: {n} simulated agents, real mTLS on 127.0.0.1, SQLite");
        println!("  enroll (in-process)            {:>9.2} s", enroll_time.as_secs_f64());
        println!("  all connected and reported    {:>9.2} s", connect_total.as_secs_f64());
        println!(
            "  bulk quarantine API call      {:>9.1} ms",
            api_time.as_secs_f64() * 1e3
        );
        println!("  all agents enforcing          {:>9.3} s", enforced_time.as_secs_f64());
        println!(
            "  all acknowledged (server DB)  {:>9.3} s   (goal < 10 s for 10,000)",
            ack_time.as_secs_f64()
        );
        println!(
            "  RSS per connected agent       {:>9.1} KiB (server and agent sides, one process; goal < 100 KB server side)",
            per_agent / 1024.0
        );
    }
    Ok(())
}

//! `cordon bench e2e`: time from the quarantine (or release) API call returning to the
//! agent in the lab's endpoint namespace having the rules in force (applied, verified and
//! recorded), over many cycles. Needs root (it builds the namespace lab).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::lab::{netns, Host};
use crate::server_lab::ServerLab;

#[derive(Args, Debug)]
pub struct E2eArgs {
    /// Quarantine + release cycles.
    #[arg(long, default_value_t = 100)]
    pub cycles: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: E2eArgs) -> u8 {
    match bench(&a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon bench e2e: {e:#}");
            1
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn bench(a: &E2eArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the cordon binary")?;
    let lab = ServerLab::start(&exe)?;
    let url = lab.api_url();
    let token = lab.admin_token.clone();
    let ca = lab.ca_pem()?;
    let state_dir = lab.state_dir.clone();
    let cycles = a.cycles;
    let applied = move || -> Option<i64> {
        let text = std::fs::read_to_string(cordon_agent::persist::path(&state_dir)).ok()?;
        serde_json::from_str::<cordon_agent::persist::Persisted>(&text)
            .ok()?
            .applied_revision
    };
    // The API client runs on a thread inside the server namespace.
    let (q, r) = netns::run_in(&lab.lab.ns(Host::Server), move || -> Result<(Vec<f64>, Vec<f64>)> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async move {
            let tls = cordon_client::tls::server_auth_only(&ca)?;
            let http = cordon_client::http_client(tls, Some(Duration::from_secs(10)))?;
            let mut q = Vec::with_capacity(cycles);
            let mut r = Vec::with_capacity(cycles);
            for i in 0..cycles {
                for (action, out) in [("quarantine", &mut q), ("release", &mut r)] {
                    let resp = http
                        .post(format!("{url}/v1/hosts/endpoint/{action}"))
                        .bearer_auth(&token)
                        .json(&json!({"comment": format!("bench e2e cycle {i}")}))
                        .send()
                        .await?;
                    if !resp.status().is_success() {
                        bail!("{action}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
                    }
                    let body: serde_json::Value = resp.json().await?;
                    let t0 = Instant::now();
                    let rev = body["results"][0]["revision"]
                        .as_i64()
                        .ok_or_else(|| anyhow!("no revision in {body}"))?;
                    while applied().is_none_or(|a| a < rev) {
                        if t0.elapsed() > Duration::from_secs(10) {
                            bail!("{action} (revision {rev}) not applied within 10 s");
                        }
                        tokio::time::sleep(Duration::from_micros(500)).await;
                    }
                    out.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok((q, r))
        })
    })?;
    let mut qs = q.clone();
    let mut rs = r.clone();
    qs.sort_by(f64::total_cmp);
    rs.sort_by(f64::total_cmp);
    if a.json {
        println!(
            "{}",
            json!({"cycles": cycles,
                   "quarantine_ms": {"p50": pct(&qs, 50.0), "p99": pct(&qs, 99.0), "max": qs.last()},
                   "release_ms": {"p50": pct(&rs, 50.0), "p99": pct(&rs, 99.0), "max": rs.last()}})
        );
    } else {
        println!("cordon bench e2e: API call returned -> rules in force in the endpoint namespace, {cycles} cycles");
        println!(
            "  quarantine   p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms   (goal p99 < 200 ms)",
            pct(&qs, 50.0),
            pct(&qs, 99.0),
            qs.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "  release      p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
            pct(&rs, 50.0),
            pct(&rs, 99.0),
            rs.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

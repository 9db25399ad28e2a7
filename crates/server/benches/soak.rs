//! Memory under a long mixed load that nobody scrapes: a real `steward serve` (SQLite) answers
//! `/me`, consumes, user lists and SCIM reads from 16 clients for `STEWARD_SOAK_SECS` (default
//! 600) while no one reads `/metrics`; the process's anonymous memory (`RssAnon`) is recorded
//! every ten seconds. The verdict compares the last minute with the minute after warm-up (the
//! second): flat means it grew by less than 10 % or 8 MiB, whichever is more.
//!
//! `cargo bench -p steward --bench soak` (or `scripts/bench`). Prints Markdown tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;

use common::{ADMIN, Serve};

const CLIENTS: usize = 16;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("STEWARD_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("soak.db").display());
    let (serve, _) = Serve::start(&url, &[]).await;
    let client = reqwest::Client::new();
    let base = serve.base.clone();
    let admin = common::login(&client, &base, ADMIN).await;
    let scim = common::scim_token(&client, &base, &admin).await;
    let owner = common::me_id(&client, &base, &admin).await;
    let org = common::post(&client, format!("{base}/api/v1/orgs"), &admin, json!({"name": "Soak", "owner_id": owner}));
    let org = org.await["id"].as_str().unwrap().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for i in 0..CLIENTS {
        let (client, base, admin, scim, org) = (client.clone(), base.clone(), admin.clone(), scim.clone(), org.clone());
        let (stop, requests) = (stop.clone(), requests.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let request = match (n + i as u64) % 4 {
                    0 => client.get(format!("{base}/api/v1/me")).bearer_auth(&admin),
                    1 => client
                        .post(format!("{base}/api/v1/orgs/{org}/usage"))
                        .bearer_auth(&admin)
                        .json(&json!({"operations": 1})),
                    2 => client.get(format!("{base}/api/v1/users?limit=20")).bearer_auth(&admin),
                    _ => client.get(format!("{base}/scim/v2/Users?count=10")).bearer_auth(&scim),
                };
                if request.send().await.is_ok_and(|r| r.status().is_success()) {
                    requests.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }

    println!("### Anonymous memory of `steward serve` over {seconds} s of mixed requests, /metrics never read\n");
    println!("| after | requests answered | RssAnon |");
    println!("| --- | --- | --- |");
    let started = Instant::now();
    let mut samples: Vec<(u64, f64)> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let at = started.elapsed().as_secs();
        let anon = serve.status_mib("RssAnon");
        samples.push((at, anon));
        println!("| {at} s | {} | {anon:.1} MiB |", requests.load(Ordering::Relaxed));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let window = |from: u64, to: u64| {
        let v: Vec<f64> = samples.iter().filter(|(t, _)| *t > from && *t <= to).map(|(_, m)| *m).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let warm = window(60, 120);
    let last = window(seconds.saturating_sub(60), seconds);
    let allowed = (warm * 0.10).max(8.0);
    let flat = last - warm <= allowed;
    println!();
    println!("| second minute | last minute | growth | allowed | verdict |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| {warm:.1} MiB | {last:.1} MiB | {:.1} MiB | {allowed:.1} MiB | {} |",
        last - warm,
        if flat { "flat" } else { "GROWS" }
    );
}

//! Login storms and revocation against a real `steward serve` process (SQLite), each figure with
//! the ceiling it is judged by, measured in the same run:
//! - password logins with 8 concurrent clients, against the argon2id hashing rate of this machine
//!   (the same parameters, one hash per core at once, buffers reused);
//! - failed logins of other accounts at the same time, from another address (an attacker's, on
//!   loopback 127.0.0.2), must not slow the successful ones;
//! - peak RSS under 500 concurrent logins, each answered 200, 401 or 429;
//! - revocation: 32 connections hammer a user's token while the user is deactivated; no request
//!   that started after the deactivation returned may succeed.
//!
//! `cargo bench -p steward --bench load` (or `scripts/bench`). Prints Markdown tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{ADMIN, PASSWORD, Serve};

const ROUNDS: usize = 3;

fn median(v: &[f64]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

async fn login(client: &reqwest::Client, base: &str, email: &str, password: &str) -> reqwest::StatusCode {
    client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(reqwest::StatusCode::SERVICE_UNAVAILABLE)
}

/// argon2id with Steward's parameters, one hash per core at once, buffers reused.
fn argon2_rate(seconds: f64) -> f64 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let argon = argon2::Argon2::default();
                let mut memory = vec![argon2::Block::default(); argon.params().block_count()];
                let mut out = [0u8; 32];
                while started.elapsed().as_secs_f64() < seconds {
                    argon
                        .hash_password_into_with_memory(
                            PASSWORD.as_bytes(),
                            b"sixteen byte salt",
                            &mut out,
                            &mut memory,
                        )
                        .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Successful logins per second of `clients` clients, and with failures on, how the failed
/// logins were answered meanwhile (401, 429).
async fn login_rate(base: &str, clients: usize, seconds: f64, with_failures: bool) -> (f64, u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let answered = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (ok, base) = (ok.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let started = Instant::now();
            while started.elapsed().as_secs_f64() < seconds {
                if login(&client, &base, &format!("user{i}@bench.test"), PASSWORD).await == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    if with_failures {
        for i in 0..4 {
            let (stop, base, answered) = (stop.clone(), base.to_owned(), answered.clone());
            tasks.push(tokio::spawn(async move {
                let attacker = std::net::IpAddr::from([127, 0, 0, 2]);
                let client = reqwest::Client::builder().local_address(attacker).build().unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let status =
                        login(&client, &base, &format!("victim{}@bench.test", (n + i) % 50), "wrong password!!").await;
                    match status.as_u16() {
                        401 => answered[0].fetch_add(1, Ordering::Relaxed),
                        429 => answered[1].fetch_add(1, Ordering::Relaxed),
                        other => panic!("a failed login answered {other}"),
                    };
                    n += 4;
                }
            }));
        }
    }
    let started = Instant::now();
    for t in tasks.drain(..clients) {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let rate = ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    (rate, answered[0].load(Ordering::Relaxed), answered[1].load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    // The storm is one client address; per-address throttling would answer most with 429.
    let (node, _) = Serve::start(&db, &[("STEWARD_LOGIN_FAILURES_PER_ADDRESS", "1000000")]).await;
    let base = node.base.clone();
    let client = reqwest::Client::new();
    let admin = common::login(&client, &base, ADMIN).await;
    let mut ids = Vec::new();
    for i in 0..500 {
        let email = if i < 450 { format!("user{i}@bench.test") } else { format!("victim{}@bench.test", i - 450) };
        let u: Value = client
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"email": email, "name": "Bench", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(u["id"].as_str().unwrap().to_owned());
    }

    // Three rounds, each of the ceiling, the logins alone and the logins under attack, so that a
    // noisy neighbour shows as spread instead of moving one figure; the medians are reported.
    let (mut hashing, mut logins, mut attacked, mut alone_ratio, mut attacked_ratio, mut kept) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut failed, mut refused) = (0, 0);
    for _ in 0..ROUNDS {
        let ceiling = tokio::task::spawn_blocking(|| argon2_rate(3.0)).await.unwrap();
        let (alone, ..) = login_rate(&base, 8, 5.0, false).await;
        let (under_attack, f, r) = login_rate(&base, 8, 5.0, true).await;
        (failed, refused) = (failed + f, refused + r);
        hashing.push(ceiling);
        logins.push(alone);
        attacked.push(under_attack);
        alone_ratio.push(alone / ceiling);
        attacked_ratio.push(under_attack / ceiling);
        kept.push(under_attack / alone);
    }
    let spread = |v: &[f64]| {
        format!("{:.2}–{:.2}", v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(0.0, f64::max))
    };
    let hashing = median(&hashing);
    println!("Medians of {ROUNDS} rounds (the range of the ratio in brackets).\n");
    println!("| what | per second | ceiling (argon2id hashes/s, same run) | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| password logins, 8 clients | {:.0} | {hashing:.0} | {:.2} ({}) |",
        median(&logins),
        median(&alone_ratio),
        spread(&alone_ratio)
    );
    println!(
        "| the same while 4 clients fail logins of other accounts from another address | {:.0} | {hashing:.0} | {:.2} ({}) |",
        median(&attacked),
        median(&attacked_ratio),
        spread(&attacked_ratio)
    );
    println!(
        "\nThe successful logins under attack ran at {:.2} ({}) of their rate alone in the same round; \
         the other address's failed logins meanwhile were answered {failed} × 401 and {refused} × 429.\n",
        median(&kept),
        spread(&kept)
    );

    // A storm: 500 logins at once, every one answered.
    let before = node.status_mib("VmHWM");
    let storm: Vec<_> = (0..500)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
                let password = if i % 5 == 0 { "wrong password!!" } else { PASSWORD };
                login(&client, &base, &format!("user{}@bench.test", i % 450), password).await
            })
        })
        .collect();
    let mut answers = std::collections::BTreeMap::new();
    for t in storm {
        *answers.entry(t.await.unwrap().as_u16()).or_insert(0) += 1;
    }
    let lost: u32 = answers.iter().filter(|(s, _)| ![200, 401, 429].contains(*s)).map(|(_, n)| *n).sum();
    println!("\n| storm of 500 concurrent logins | figure |\n| --- | ---: |");
    println!("| peak RSS before | {before:.1} MiB |\n| peak RSS after | {:.1} MiB |", node.status_mib("VmHWM"));
    println!("| answers | {answers:?} |\n| lost (not 200, 401 or 429) | {lost} |");

    // Revocation under fire.
    let victim = ids[0].clone();
    let token = common::login(&client, &base, "user0@bench.test").await;
    let deactivated_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let late_successes = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let hammers: Vec<_> = (0..32)
        .map(|_| {
            let (base, token, at, late, total, stop) = (
                base.clone(),
                token.clone(),
                deactivated_at.clone(),
                late_successes.clone(),
                total.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let status =
                        client.get(format!("{base}/api/v1/me")).bearer_auth(&token).send().await.map(|r| r.status());
                    total.fetch_add(1, Ordering::Relaxed);
                    let after_deactivation = at.lock().unwrap().is_some_and(|t| sent > t);
                    if after_deactivation && status.is_ok_and(|s| s.is_success()) {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = client
        .post(format!("{base}/api/v1/users/{victim}/deactivate"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    *deactivated_at.lock().unwrap() = Some(Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for h in hammers {
        h.await.unwrap();
    }
    println!(
        "\n| revocation, 32 connections on the token | figure |\n| --- | ---: |\n| requests | {} |\n| started after deactivate returned and succeeded | {} |",
        total.load(Ordering::Relaxed),
        late_successes.load(Ordering::Relaxed)
    );
}

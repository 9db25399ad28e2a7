//! Login storms and revocation against a real `steward serve` process (SQLite), each figure with
//! the ceiling it is judged by, measured in the same run:
//! - password logins with 8 concurrent clients, against the argon2id hashing rate of this machine
//!   (the same parameters, one hash per core at once, buffers reused);
//! - failed logins of other accounts at the same time, from another address (an attacker's, on
//!   loopback 127.0.0.2), must not slow the successful ones, nor when the clients sign in from
//!   that same address, each from its known device (its device cookie);
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

const ROUNDS: usize = 4;
/// Seconds of logins in each window.
const WINDOW: f64 = 3.0;

fn median(v: &[f64]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

async fn login(client: &reqwest::Client, base: &str, email: &str, password: &str) -> reqwest::StatusCode {
    login_from(client, base, email, password, &mut None).await
}

/// A login that sends the device cookie in `device` if any, and keeps the one the answer sets.
async fn login_from(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
    device: &mut Option<String>,
) -> reqwest::StatusCode {
    let mut request =
        client.post(format!("{base}/api/v1/auth/login")).json(&json!({"email": email, "password": password}));
    if let Some(cookie) = device.as_deref() {
        request = request.header("cookie", cookie);
    }
    let Ok(response) = request.send().await else { return reqwest::StatusCode::SERVICE_UNAVAILABLE };
    let set = response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok());
    if let Some(cookie) = set.filter(|c| c.starts_with("steward_device=")).find_map(|c| c.split(';').next()) {
        *device = Some(cookie.to_owned());
    }
    response.status()
}

/// Whom the 8 clients of a window share the server with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Nobody.
    Alone,
    /// 4 clients failing logins of other accounts from another address.
    Attacked,
    /// The same attackers, with the clients behind the attackers' address, each signing in from
    /// its known device.
    BehindAttackers,
}

/// The attackers' address on loopback.
const ATTACKERS: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

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

/// Successful logins per second of the clients (one per device in `devices`, each keeping its
/// device cookie), and with attackers, how their failed logins were answered meanwhile (401, 429).
async fn login_rate(base: &str, devices: &mut [Option<String>], seconds: f64, window: Window) -> (f64, u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let answered = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let (mut tasks, mut attackers) = (Vec::new(), Vec::new());
    for (i, device) in devices.iter().enumerate() {
        let (ok, base, mut device) = (ok.clone(), base.to_owned(), device.clone());
        tasks.push(tokio::spawn(async move {
            let client = match window {
                Window::BehindAttackers => reqwest::Client::builder().local_address(ATTACKERS).build().unwrap(),
                _ => reqwest::Client::new(),
            };
            let started = Instant::now();
            while started.elapsed().as_secs_f64() < seconds {
                if login_from(&client, &base, &format!("user{i}@bench.test"), PASSWORD, &mut device).await == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
            device
        }));
    }
    if window != Window::Alone {
        for i in 0..4 {
            let (stop, base, answered) = (stop.clone(), base.to_owned(), answered.clone());
            attackers.push(tokio::spawn(async move {
                let client = reqwest::Client::builder().local_address(ATTACKERS).build().unwrap();
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
    for (t, device) in tasks.into_iter().zip(devices.iter_mut()) {
        *device = t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for t in attackers {
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

    // Each client signs in once first, so that it is a known device from then on.
    let mut devices = vec![None; 8];
    for (i, device) in devices.iter_mut().enumerate() {
        assert_eq!(login_from(&client, &base, &format!("user{i}@bench.test"), PASSWORD, device).await, 200);
        assert!(device.is_some(), "a login sets the device cookie");
    }

    // Rounds of the ceiling and two sets of windows, one of each kind, the second set in the other
    // order (ABC CBA), so that the machine drifting during a round moves every side of a set
    // alike; a noisy neighbour shows as spread instead of moving one figure.
    const KINDS: [Window; 3] = [Window::Alone, Window::Attacked, Window::BehindAttackers];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let (mut ratios, mut kept): ([Vec<f64>; 3], [Vec<f64>; 3]) = Default::default();
    let (mut hashing, mut ok_attacked, mut failed, mut refused) = (vec![], 0.0, 0, 0);
    for _ in 0..ROUNDS {
        let ceiling = tokio::task::spawn_blocking(|| argon2_rate(2.0)).await.unwrap();
        hashing.push(ceiling);
        for order in [KINDS, [KINDS[2], KINDS[1], KINDS[0]]] {
            let mut set = [0.0; 3];
            for window in order {
                let (rate, f, r) = login_rate(&base, &mut devices, WINDOW, window).await;
                let k = KINDS.iter().position(|w| *w == window).unwrap();
                set[k] = rate;
                if window != Window::Alone {
                    (ok_attacked, failed, refused) = (ok_attacked + rate * WINDOW, failed + f, refused + r);
                }
            }
            for k in 0..3 {
                rates[k].push(set[k]);
                ratios[k].push(set[k] / ceiling);
                kept[k].push(set[k] / set[0]);
            }
        }
    }
    let spread = |v: &[f64]| {
        format!("{:.2}–{:.2}", v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(0.0, f64::max))
    };
    let hashing = median(&hashing);
    let sets = kept[0].len();
    println!(
        "Medians of {sets} sets of {WINDOW} s windows in {ROUNDS} rounds (the range in brackets). \
         Each of the 8 clients signs in from its known device.\n"
    );
    println!("| what | per second | ceiling (argon2id hashes/s, same run) | ratio | ratio to alone, same set |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let names = [
        "password logins, 8 clients",
        "the same while 4 clients fail logins of other accounts from another address",
        "the same with the 8 clients behind the failing clients' address",
    ];
    for k in 0..3 {
        let to_alone = if k == 0 { "1".to_owned() } else { format!("{:.2} ({})", median(&kept[k]), spread(&kept[k])) };
        println!(
            "| {} | {:.0} | {hashing:.0} | {:.2} ({}) | {to_alone} |",
            names[k],
            median(&rates[k]),
            median(&ratios[k]),
            spread(&ratios[k]),
        );
    }
    // Every failed login answered 401 cost one hash, one answered 429 none: the share of the
    // hashing the attack took while it ran bounds what it can have taken from the successful
    // logins, whatever the machine's noise.
    let share = failed as f64 / (failed as f64 + ok_attacked);
    println!(
        "\nThe failing clients' logins were answered {failed} × 401 and {refused} × 429, \
         so the attack took {:.1} % of the hashes done while it ran.\n",
        share * 100.0
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

//! One tenant's heavy traffic against another tenant's logins, on a real `steward serve`
//! (SQLite): 8 clients sign in as fast as they can, alone, and then while org B's SCIM token
//! sends the heaviest `/Bulk` it is allowed (20 password changes on B's own people, back to
//! back, from 2 clients) and bogus password-reset links arrive from another address (127.0.0.2,
//! 2 clients). The figure is the login rate with that traffic over the rate alone, measured in
//! the same run, alternating, in rounds; the target is at least 0.8. `STEWARD_FAIRNESS_NOISE=bulk`
//! or `resets` sends only that part of the other traffic.
//!
//! `cargo bench -p steward --bench fairness` (or `scripts/bench`). Prints Markdown tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{ADMIN, PASSWORD, Serve, me_id, post};

const ROUNDS: usize = 3;
const WINDOW: Duration = Duration::from_secs(4);
const OTHERS: &std::net::IpAddr = &std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Logins per second of 8 clients over one window, with or without the other tenant's traffic.
async fn window(base: &str, scim: &str, b_people: &[String], noisy: bool) -> (f64, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let bulks = Arc::new(AtomicU64::new(0));
    let resets = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (stop, logins, base) = (stop.clone(), logins.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": format!("a{i}@a.bench.test"), "password": PASSWORD}))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == 200) {
                    logins.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let noise = std::env::var("STEWARD_FAIRNESS_NOISE").unwrap_or_else(|_| "both".into());
    if noisy && noise != "resets" {
        for _ in 0..2 {
            let (stop, bulks, base, scim) = (stop.clone(), bulks.clone(), base.to_owned(), scim.to_owned());
            let people = b_people.to_vec();
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ops: Vec<Value> = people
                        .iter()
                        .take(20)
                        .map(|id| {
                            json!({"method": "PATCH", "path": format!("/Users/{id}"), "data": {
                                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                "Operations": [{"op": "replace", "path": "password", "value": format!("bulk password {n:08}")}]}})
                        })
                        .collect();
                    n += 1;
                    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops});
                    let r = client
                        .post(format!("{base}/scim/v2/Bulk"))
                        .bearer_auth(&scim)
                        .header("content-type", "application/scim+json")
                        .body(body.to_string())
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == 200) {
                        bulks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    if noisy && noise != "bulk" {
        for _ in 0..2 {
            let (stop, resets, base) = (stop.clone(), resets.clone(), base.to_owned());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder().local_address(*OTHERS).build().unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(format!("{base}/api/v1/auth/password-reset/stw_setup_bogus-link"))
                        .json(&json!({"password": "a password nobody needs"}))
                        .send()
                        .await;
                    if r.is_ok() {
                        resets.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    // Let the noise start before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from = logins.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let rate = (logins.load(Ordering::Relaxed) - from) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (rate, bulks.load(Ordering::Relaxed), resets.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (node, _) = Serve::start(&db, &[]).await;
    let base = node.base.clone();
    let client = reqwest::Client::new();
    let admin = common::login(&client, &base, ADMIN).await;
    let root = me_id(&client, &base, &admin).await;
    for i in 0..8 {
        post(
            &client,
            format!("{base}/api/v1/users"),
            &admin,
            json!({"email": format!("a{i}@a.bench.test"), "name": "A", "password": PASSWORD}),
        )
        .await;
    }
    let org_b = post(&client, format!("{base}/api/v1/orgs"), &admin, json!({"name": "B", "owner_id": root})).await;
    let org_b = org_b["id"].as_str().unwrap().to_owned();
    let scim = post(&client, format!("{base}/api/v1/scim-tokens"), &admin, json!({"name": "b", "org_id": org_b})).await;
    let scim = scim["token"].as_str().unwrap().to_owned();
    let mut b_people = Vec::new();
    for i in 0..20 {
        let email = format!("b{i}@b.bench.test");
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email,
            "emails": [{"value": email, "primary": true}]});
        let created = post(&client, format!("{base}/scim/v2/Users"), &scim, user).await;
        b_people.push(created["id"].as_str().unwrap().to_owned());
    }

    println!("### Logins of org A while org B's directory sends its heaviest /Bulk and bogus reset links arrive\n");
    println!(
        "| round | logins/s alone | logins/s with B's traffic | ratio | B's bulk requests answered | bogus resets answered |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        let (alone, _, _) = window(&base, &scim, &b_people, false).await;
        let (noisy, bulks, resets) = window(&base, &scim, &b_people, true).await;
        let ratio = noisy / alone;
        ratios.push(ratio);
        println!("| {round} | {alone:.1} | {noisy:.1} | {ratio:.2} | {bulks} | {resets} |");
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!("\nmedian ratio {median:.2} (target at least 0.8): {}", if median >= 0.8 { "met" } else { "MISSED" });
}

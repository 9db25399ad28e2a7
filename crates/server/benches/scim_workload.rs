//! The SCIM workload an identity provider drives — create a user, read it, find it by
//! `userName`, list a page, deactivate it with `PATCH active` — against a real `steward serve`
//! (SQLite, durable: every write is on disk when it is answered) and, as the ceiling to beat by
//! ten times, against the Python reference server `scim2-server` (PyPI; it keeps everything in
//! memory) on the same machine in the same run, with the same clients and requests, in rounds
//! that alternate between the two; the median ratio is the figure.
//!
//! `cargo bench -p steward --bench scim_workload` (or `scripts/bench`, which installs
//! scim2-server in `target/scim2-server-venv`); `STEWARD_SCIM2_SERVER` names another
//! scim2-server executable. Prints a Markdown table, a row per round.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

const CLIENTS: usize = 8;
/// Cycles per client; `STEWARD_BENCH_CYCLES` sets another number (a longer run to profile).
fn cycles() -> usize {
    std::env::var("STEWARD_BENCH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(100)
}
const SCIM: &str = "application/scim+json";

mod common;

use common::{ADMIN, Serve, free_port, wait_until_ok};

/// The reference server's process, stopped when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the workload against `users` (the URL of `/Users`) and returns requests per second.
async fn workload(users: &str, token: &str, tag: &str) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (users, token, tag) = (users.to_owned(), token.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let send = |request: reqwest::RequestBuilder| {
                let token = token.clone();
                async move {
                    let reply = request.bearer_auth(token).header("Accept", SCIM).send().await.unwrap();
                    let status = reply.status();
                    let body: Value = reply.json().await.unwrap_or(Value::Null);
                    assert!(status.is_success(), "{status}: {body}");
                    body
                }
            };
            for i in 0..cycles() {
                let email = format!("{tag}.{c}.{i}@workload.example");
                let created = send(client.post(&users).header("Content-Type", SCIM).json(&json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": email,
                    "name": {"givenName": "Work", "familyName": format!("Load {c} {i}")},
                    "displayName": format!("Work Load {c} {i}"),
                    "emails": [{"value": email, "type": "work", "primary": true}],
                    "active": true,
                })))
                .await;
                let id = created["id"].as_str().unwrap().to_owned();
                send(client.get(format!("{users}/{id}"))).await;
                let found = send(client.get(&users).query(&[("filter", format!("userName eq \"{email}\""))])).await;
                assert_eq!(found["totalResults"], 1, "{found}");
                send(client.get(&users).query(&[("startIndex", "1"), ("count", "20")])).await;
                send(client.patch(format!("{users}/{id}")).header("Content-Type", SCIM).json(&json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}],
                })))
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (CLIENTS * cycles() * 5) as f64 / started.elapsed().as_secs_f64()
}

async fn steward(dir: &std::path::Path) -> (Serve, String, String) {
    let db = format!("sqlite://{}", dir.join("workload.db").display());
    let (serve, _) = Serve::start(&db, &[]).await;
    let client = reqwest::Client::new();
    let admin = common::login(&client, &serve.base, ADMIN).await;
    let token = common::scim_token(&client, &serve.base, &admin).await;
    let users = format!("{}/scim/v2/Users", serve.base);
    (serve, users, token)
}

fn reference_server() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("STEWARD_SCIM2_SERVER").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scim2-server-venv/bin/scim2-server")
    });
    path.exists().then_some(path)
}

/// Rounds of the workload, each on a fresh Steward and a fresh reference server, alternating:
/// the machine's drift during the run reaches both alike, and the median round is reported.
const ROUNDS: usize = 3;

/// Runs the workload on a fresh reference server and returns its requests per second.
async fn reference_round(reference: &std::path::Path, round: usize) -> f64 {
    let port = free_port();
    let token = "workload-reference-token";
    let _reference = Process(
        Command::new(reference)
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", token])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let users = format!("http://127.0.0.1:{port}/v2/Users");
    wait_until_ok(&users, Some(token)).await;
    workload(&users, token, &format!("reference{round}")).await
}

/// Runs the workload on a fresh Steward and returns its requests per second.
async fn steward_round(round: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (_node, users, token) = steward(dir.path()).await;
    workload(&users, &token, &format!("steward{round}")).await
}

#[tokio::main]
async fn main() {
    let title = format!("{CLIENTS} clients × {} cycles of create, get, filter, list, PATCH active", cycles());
    let Some(reference) = reference_server() else {
        let ours = steward_round(0).await;
        println!("| server ({title}) | requests/s | ratio |");
        println!("| --- | ---: | ---: |");
        println!("| Steward, SQLite durable | {ours:.0} | |");
        println!("| scim2-server | not installed (scripts/bench installs it) | |");
        return;
    };
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let ours = steward_round(round).await;
        let theirs = reference_round(&reference, round).await;
        rounds.push((ours, theirs, ours / theirs));
    }
    println!(
        "| round ({title}) | Steward, SQLite durable (req/s) | scim2-server 0.8.3, Python, in memory (req/s; the ceiling) | ratio |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for (i, (ours, theirs, ratio)) in rounds.iter().enumerate() {
        println!("| {} | {ours:.0} | {theirs:.0} | {ratio:.1} |", i + 1);
    }
    let mut ratios: Vec<f64> = rounds.iter().map(|r| r.2).collect();
    ratios.sort_by(f64::total_cmp);
    println!("| median | | | **{:.1}** |", ratios[ratios.len() / 2]);
}

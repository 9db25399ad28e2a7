//! Consume throughput on SQLite, measured against the ceiling of the same SQLite file in the
//! same run: the raw conditional UPDATE that metering is built on.
//!
//! `cargo bench -p steward --bench consume` (or `scripts/bench`). Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use steward::config::{Config, Secret};
use steward_store::{Consume, Store};
use time::OffsetDateTime;

const SECONDS: f64 = 3.0;

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

async fn for_a_while<F, Fut>(mut f: F) -> (u64, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < SECONDS {
        f().await;
        n += 1;
    }
    (n, start.elapsed())
}

/// A Steward served in this process on a fresh SQLite file, signed in as its bootstrap admin.
struct Served {
    _dir: tempfile::TempDir,
    /// The database URL, for the ceilings measured on the same file.
    url: String,
    base: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    token: String,
}

impl Served {
    async fn start(durable: bool) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let config = Config {
            listen: "127.0.0.1:0".into(),
            database_url: url.clone(),
            bootstrap_admin_email: Some(common::ADMIN.into()),
            bootstrap_admin_password: Some(Secret::new(common::PASSWORD)),
            sqlite_durable: durable,
            ..Config::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = steward::Server::build(config, listener).await.unwrap();
        let base = format!("http://{}", server.addr);
        let store: Arc<dyn Store> = server.state.store.clone();
        tokio::spawn(server.run(std::future::pending()));
        let client = reqwest::Client::new();
        let token = common::login(&client, &base, common::ADMIN).await;
        Served { _dir: dir, url, base, store, client, token }
    }

    /// A new org with an operations budget no run uses up; its id.
    async fn org(&self, name: &str) -> String {
        let owner = common::me_id(&self.client, &self.base, &self.token).await;
        let body = json!({"name": name, "owner_id": owner, "license": {"operations": u64::MAX >> 14}});
        let org = common::post(&self.client, format!("{}/api/v1/orgs", self.base), &self.token, body).await;
        org["id"].as_str().unwrap().to_owned()
    }
}

async fn run(durable: bool) -> Vec<(String, f64)> {
    let served = Served::start(durable).await;
    let Served { url, base, store, token, .. } = &served;
    let (url, base, store, token) = (url.clone(), base.clone(), store.clone(), token.clone());
    let org_id = served.org("Bench").await;

    // The ceiling: the bare conditional UPDATE on the same file, one transaction each.
    let mut opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    opts = opts.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal).synchronous(if durable {
        sqlx::sqlite::SqliteSynchronous::Full
    } else {
        sqlx::sqlite::SqliteSynchronous::Normal
    });
    let raw = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_counter (id INTEGER PRIMARY KEY, used BIGINT NOT NULL, lim BIGINT NOT NULL)",
    )
    .execute(&raw)
    .await
    .unwrap();
    sqlx::query("INSERT OR REPLACE INTO bench_counter VALUES (1, 0, 9223372036854775807)").execute(&raw).await.unwrap();
    let (n, t) = for_a_while(|| {
        let raw = raw.clone();
        async move {
            sqlx::query("UPDATE bench_counter SET used = used + 1 WHERE id = 1 AND used + 1 <= lim")
                .execute(&raw)
                .await
                .unwrap();
        }
    })
    .await;
    let ceiling = rate(n, t);
    raw.close().await;

    // The store's consume: period row upsert and conditional update in one write transaction.
    let org_uuid: steward_core::OrgId = org_id.parse().unwrap();
    let now = OffsetDateTime::now_utc();
    let request = Consume {
        org: org_uuid,
        period_start: now,
        period_end: now + time::Duration::days(30),
        at: now,
        operations: 1,
        transfer: 0,
        operations_limit: Some(u64::MAX >> 14),
        transfer_limit: None,
    };
    let (n, t) = for_a_while(|| {
        let store = store.clone();
        async move {
            store.consume(&request).await.unwrap().unwrap();
        }
    })
    .await;
    let store_rate = rate(n, t);

    // The whole API: authentication, access, consume and the usage answer, from 8 and from 32
    // clients at once (each its own connection).
    let url = format!("{base}/api/v1/orgs/{org_id}/usage");
    let mut api_rates = Vec::new();
    for clients in [8, 32] {
        api_rates.push((clients, api(&url, &token, clients).await));
    }
    vec![
        ("raw conditional UPDATE (ceiling)".into(), ceiling),
        ("store consume (one write transaction)".into(), store_rate),
    ]
    .into_iter()
    .chain(api_rates.into_iter().map(|(n, r)| (format!("POST /orgs/{{id}}/usage, {n} clients"), r)))
    .collect()
}

/// Consumes through the API from `clients` tasks, each with its own connection, for a while.
async fn api(url: &str, token: &str, clients: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
        let (url, token) = (url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < SECONDS {
                let r = client.post(&url).bearer_auth(&token).json(&json!({"operations": 1})).send().await.unwrap();
                assert_eq!(r.status(), 200);
                n += 1;
            }
            n
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    rate(n, start.elapsed())
}

/// Batch ingestion against its ceiling, durable: the plain loop that does the same work per
/// event on the same file — the event's id into a unique index, then the conditional UPDATE of
/// its org's counter — committed 1,000 events at a time; and `POST /api/v1/usage/events` with
/// batches of 1,000 events spread over 100 orgs, from 4 clients.
async fn batches() -> Vec<(String, f64)> {
    const ORGS: usize = 100;
    const BATCH: usize = 1000;
    let served = Served::start(true).await;
    let (url, base, token, client) =
        (served.url.clone(), served.base.clone(), served.token.clone(), served.client.clone());
    let mut orgs = Vec::new();
    for i in 0..ORGS {
        orgs.push(served.org(&format!("Bench {i}")).await);
    }

    // The ceiling: the same work per event, by hand, 1,000 events a commit.
    let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let opts =
        opts.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal).synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let raw = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.unwrap();
    for ddl in [
        "CREATE TABLE bench_events (org INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (org, id))",
        "CREATE TABLE bench_orgs (id INTEGER PRIMARY KEY, used BIGINT NOT NULL, lim BIGINT NOT NULL)",
    ] {
        sqlx::query(ddl).execute(&raw).await.unwrap();
    }
    for i in 0..ORGS as i64 {
        sqlx::query("INSERT INTO bench_orgs VALUES (?, 0, 9223372036854775807)").bind(i).execute(&raw).await.unwrap();
    }
    let mut next = 0u64;
    let (commits, t) = for_a_while(|| {
        let raw = raw.clone();
        let first = next;
        next += BATCH as u64;
        async move {
            let mut tx = raw.begin().await.unwrap();
            for n in first..first + BATCH as u64 {
                let org = (n % ORGS as u64) as i64;
                sqlx::query("INSERT INTO bench_events VALUES (?, ?)")
                    .bind(org)
                    .bind(format!("ev-{n}"))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("UPDATE bench_orgs SET used = used + 1 WHERE id = ? AND used + 1 <= lim")
                    .bind(org)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
    })
    .await;
    let ceiling = rate(commits * BATCH as u64, t);
    raw.close().await;

    // The API: batches of 1,000 events over the 100 orgs, new ids each, from 4 clients.
    let url = format!("{base}/api/v1/usage/events");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..4u64 {
        let (client, url, token, orgs) = (client.clone(), url.clone(), token.clone(), orgs.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut batch_no = 0u64;
            while start.elapsed().as_secs_f64() < SECONDS {
                let events: Vec<_> = (0..BATCH)
                    .map(|k| json!({"id": format!("c{c}-b{batch_no}-{k}"), "org_id": orgs[k % ORGS], "operations": 1}))
                    .collect();
                let r = client.post(&url).bearer_auth(&token).json(&json!({"events": events})).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let answer: serde_json::Value = r.json().await.unwrap();
                assert!(answer["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"));
                n += BATCH as u64;
                batch_no += 1;
            }
            n
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    vec![
        ("plain loop: id into a unique index, conditional UPDATE, 1,000 a commit (ceiling)".into(), ceiling),
        ("POST /api/v1/usage/events, 1,000 a batch over 100 orgs, 4 clients".into(), rate(n, start.elapsed())),
    ]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Durable: the ceiling commits with synchronous=FULL, Steward flushes the log after its
    // commits (grouped); not durable: both commit with NORMAL and nothing is flushed.
    println!("| commits | path | consumes/s | ratio to ceiling |");
    println!("| --- | --- | ---: | ---: |");
    for durable in [true, false] {
        let rows = runtime.block_on(run(durable));
        let ceiling = rows[0].1;
        for (name, r) in rows {
            let mode = if durable { "durable" } else { "not durable" };
            println!("| {mode} | {name} | {r:.0} | {:.2} |", r / ceiling);
        }
    }
    println!();
    println!("| durable batches | events/s | ratio to ceiling |");
    println!("| --- | ---: | ---: |");
    let rows = runtime.block_on(batches());
    let ceiling = rows[0].1;
    for (name, r) in rows {
        println!("| {name} | {r:.0} | {:.2} |", r / ceiling);
    }
}

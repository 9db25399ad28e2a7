//! Metering and revocation on PostgreSQL with one and two nodes: consume throughput for one hot
//! org (with and without leases) and spread over 1,000 orgs, each against the raw conditional
//! UPDATE on the same server in the same run; and how long a deactivation takes to reach the
//! other node. `cargo bench -p steward --bench postgres` with PostgreSQL on
//! `STEWARD_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use steward::config::{Config, Secret};

const SECONDS: f64 = 3.0;
const CLIENTS: usize = 16;
const ADMIN: &str = "bench@steward.test";
const PASSWORD: &str = "bench password 123";

async fn fresh_database(admin_url: &str) -> String {
    let name = format!("steward_bench_{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::PgPool::connect(admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    pool.close().await;
    format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0)
}

/// A node and the means to stop it (which closes its pool).
struct Node {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A node with `connections` in its pool: the nodes of a row share the ceiling's `CLIENTS`.
async fn node(db: &str, lease_slice: u64, connections: u32) -> Node {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.into(),
        bootstrap_admin_email: Some(ADMIN.into()),
        bootstrap_admin_password: Some(Secret::new(PASSWORD)),
        lease_slice,
        database_max_connections: connections,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = steward::Server::build(config, listener).await.unwrap();
    let base = format!("http://{}", server.addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Node { base, _stop: stop }
}

async fn login(client: &reqwest::Client, base: &str, email: &str) -> String {
    let r: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_owned()
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let r = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn orgs(client: &reqwest::Client, base: &str, token: &str, n: usize) -> Vec<String> {
    let me: Value =
        client.get(format!("{base}/api/v1/me")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    let owner = me["user"]["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for i in 0..n {
        let body = json!({"name": format!("Bench {i}"), "owner_id": owner, "license": {"operations": 1u64 << 40}});
        let (_, org) = post(client, format!("{base}/api/v1/orgs"), token, body).await;
        ids.push(org["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Consumes per second with `CLIENTS` tasks spread over `nodes`, each picking orgs round robin,
/// in a running instance: every org has consumed once on every node before the clock starts, as
/// the ceiling's rows exist before its clock starts.
async fn consume_rate(client: &reqwest::Client, nodes: &[String], token: &str, orgs: &[String]) -> f64 {
    for base in nodes {
        for org in orgs {
            let (s, body) =
                post(client, format!("{base}/api/v1/orgs/{org}/usage"), token, json!({"operations": 1})).await;
            assert_eq!(s, 200, "{body}");
        }
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base, token, orgs) =
            (client.clone(), nodes[c % nodes.len()].clone(), token.to_owned(), orgs.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while start.elapsed().as_secs_f64() < SECONDS {
                let org = &orgs[(c + n * CLIENTS) % orgs.len()];
                let sent = Instant::now();
                let (s, body) =
                    post(&client, format!("{base}/api/v1/orgs/{org}/usage"), &token, json!({"operations": 1})).await;
                assert_eq!(s, 200, "after {:?}: {body}", sent.elapsed());
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// The bare conditional UPDATE, `CLIENTS` connections, over `rows` rows.
async fn ceiling(db: &str, rows: i64) -> f64 {
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(CLIENTS as u32).connect(db).await.unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_counter (id BIGINT PRIMARY KEY, used BIGINT NOT NULL, lim BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("TRUNCATE bench_counter").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO bench_counter SELECT i, 0, 9223372036854775807 FROM generate_series(1, $1) AS i")
        .bind(rows)
        .execute(&pool)
        .await
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0i64;
            while start.elapsed().as_secs_f64() < SECONDS {
                let id = 1 + (c as i64 + n * CLIENTS as i64) % rows;
                sqlx::query("UPDATE bench_counter SET used = used + 1 WHERE id = $1 AND used + 1 <= lim")
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    pool.close().await;
    total as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Time from a deactivation returning on node A to node B refusing the user's token.
async fn revocation_delays(client: &reqwest::Client, a: &str, b: &str, admin: &str, rounds: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for i in 0..rounds {
        let email = format!("revoked{i}@bench.test");
        let (_, user) = post(
            client,
            format!("{a}/api/v1/users"),
            admin,
            json!({"email": email, "name": "R", "password": PASSWORD}),
        )
        .await;
        let id = user["id"].as_str().unwrap().to_owned();
        let token = login(client, b, &email).await;
        for _ in 0..3 {
            assert_eq!(client.get(format!("{b}/api/v1/me")).bearer_auth(&token).send().await.unwrap().status(), 200);
        }
        let (s, _) = post(client, format!("{a}/api/v1/users/{id}/deactivate"), admin, json!({})).await;
        assert_eq!(s, 200);
        let returned = Instant::now();
        loop {
            let s = client.get(format!("{b}/api/v1/me")).bearer_auth(&token).send().await.unwrap().status();
            if s == 401 {
                delays.push(returned.elapsed());
                break;
            }
            assert!(returned.elapsed() < Duration::from_secs(5), "node B never refused the user");
        }
    }
    delays.sort();
    delays
}

async fn run() {
    let admin_url = std::env::var("STEWARD_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    println!("| nodes | workload | consumes/s | ceiling (raw UPDATE/s) | ratio |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    let only_two = std::env::var("BENCH_ONLY_TWO").is_ok();
    for nodes in if only_two { vec![2usize] } else { vec![1usize, 2] } {
        for (label, slice) in [("one hot org, no leases", 0u64), ("one hot org, leases of 100", 100)] {
            if only_two && slice == 0 {
                continue;
            }
            let db = fresh_database(&admin_url).await;
            let mut running = Vec::new();
            for _ in 0..nodes {
                running.push(node(&db, slice, (CLIENTS / nodes) as u32).await);
            }
            let bases: Vec<String> = running.iter().map(|n| n.base.clone()).collect();
            let token = login(&client, &bases[0], ADMIN).await;
            let org = orgs(&client, &bases[0], &token, 1).await;
            let rate = consume_rate(&client, &bases, &token, &org).await;
            let ceil = ceiling(&db, 1).await;
            println!("| {nodes} | {label} | {rate:.0} | {ceil:.0} | {:.2} |", rate / ceil);
        }
        let db = fresh_database(&admin_url).await;
        let mut running = Vec::new();
        for _ in 0..nodes {
            running.push(node(&db, 0, (CLIENTS / nodes) as u32).await);
        }
        let bases: Vec<String> = running.iter().map(|n| n.base.clone()).collect();
        let token = login(&client, &bases[0], ADMIN).await;
        let spread = orgs(&client, &bases[0], &token, 1000).await;
        let rate = consume_rate(&client, &bases, &token, &spread).await;
        let ceil = ceiling(&db, 1000).await;
        println!("| {nodes} | 1,000 orgs, no leases | {rate:.0} | {ceil:.0} | {:.2} |", rate / ceil);
    }
    let db = fresh_database(&admin_url).await;
    let (a, b) = (node(&db, 0, 8).await, node(&db, 0, 8).await);
    let admin = login(&client, &a.base, ADMIN).await;
    let delays = revocation_delays(&client, &a.base, &b.base, &admin, 40).await;
    println!();
    println!(
        "Cross-node revocation, 40 deactivations: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().unwrap()
    );
    // Leave the server clean.
    let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE 'steward_bench_%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    for n in names {
        let _ =
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"))).execute(&pool).await;
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(run());
}

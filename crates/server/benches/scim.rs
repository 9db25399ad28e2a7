//! SCIM `filter=userName eq "…"` over 100,000 users on SQLite: latency through the whole HTTP
//! path (token, filter parse, SQL on the `users_user_name` index, the ListResponse), against the
//! ceiling of the bare indexed SELECT on the same file in the same run.
//!
//! `cargo bench -p steward --bench scim` (or `scripts/bench`). Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use steward::config::{Config, Secret};

const USERS: usize = 100_000;
const QUERIES: usize = 2_000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn user_name(i: usize) -> String {
    format!("User{i:06}@Example.test")
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let config = Config {
        listen: "127.0.0.1:0".into(),
        database_url: url.clone(),
        bootstrap_admin_email: Some("bench@steward.test".into()),
        bootstrap_admin_password: Some(Secret::new("bench password 123")),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = steward::Server::build(config, listener).await.unwrap();
    let base = format!("http://{}", server.addr);
    tokio::spawn(server.run(std::future::pending()));

    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "bench@steward.test", "password": "bench password 123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = login["token"].as_str().unwrap().to_owned();
    let created: serde_json::Value = client
        .post(format!("{base}/api/v1/scim-tokens"))
        .bearer_auth(&admin)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();

    // 100,000 SCIM users written straight into the database in a few transactions.
    let loading = Instant::now();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = pool.begin().await.unwrap();
        for &i in chunk {
            let id = uuid::Uuid::now_v7().to_string();
            let name = user_name(i);
            let email = format!("user{i:06}@example.test");
            sqlx::query(
                "INSERT INTO users (id, email, email_key, name, status, created_at, updated_at, kind, notifications, \
                 scim_user_name, scim_user_name_key) VALUES (?, ?, ?, ?, 'active', ?, ?, 'person', '{}', ?, ?)",
            )
            .bind(&id)
            .bind(&email)
            .bind(&email)
            .bind(format!("User {i}"))
            .bind(now)
            .bind(now)
            .bind(&name)
            .bind(name.to_lowercase())
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query("INSERT INTO scim_users (user_id, external_id, attrs, updated_at) VALUES (?, ?, ?, ?)")
                .bind(&id)
                .bind(format!("ext-{i}"))
                .bind(
                    json!({"emails": [{"value": email, "primary": true}], "displayName": format!("User {i}")})
                        .to_string(),
                )
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let loaded = loading.elapsed();

    let mut api = Vec::with_capacity(QUERIES);
    let mut raw = Vec::with_capacity(QUERIES);
    for q in 0..QUERIES {
        let i = (q * 7919) % USERS;
        let filter = format!("userName eq \"{}\"", user_name(i).to_uppercase());
        let started = Instant::now();
        let reply: serde_json::Value = client
            .get(format!("{base}/scim/v2/Users"))
            .query(&[("filter", filter.as_str())])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        api.push(started.elapsed());
        assert_eq!(reply["totalResults"], 1, "{reply}");

        let started = Instant::now();
        let id: String = sqlx::query_scalar("SELECT id FROM users WHERE COALESCE(scim_user_name_key, email_key) = ?")
            .bind(user_name(i).to_lowercase())
            .fetch_one(&pool)
            .await
            .unwrap();
        raw.push(started.elapsed());
        assert!(!id.is_empty());
    }
    api.sort();
    raw.sort();
    println!("{USERS} users loaded in {:.1} s; {QUERIES} lookups each\n", loaded.as_secs_f64());
    println!("| path | p50 ms | p95 ms | p95 ratio to ceiling |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| bare indexed SELECT (ceiling) | {:.3} | {:.3} | 1.00 |", percentile(&raw, 0.5), percentile(&raw, 0.95));
    println!(
        "| GET /scim/v2/Users?filter=userName eq \"…\" | {:.3} | {:.3} | {:.1} |",
        percentile(&api, 0.5),
        percentile(&api, 0.95),
        percentile(&api, 0.95) / percentile(&raw, 0.95)
    );
}

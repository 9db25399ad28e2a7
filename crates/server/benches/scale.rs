//! A large instance: 1,000,000 users in 100,000 orgs (ten members each, one of them the owner),
//! generated straight into a SQLite file with bulk inserts, then served by a real `steward
//! serve`. Measures, each beside a ceiling from the same run:
//! - the generator's time (target: under two minutes);
//! - ready after start on that database (hyperfine when it is installed);
//! - `GET /api/v1/users?q=` p50/p95, for rare fragments (through the trigram index) and a
//!   fragment shared by 20,000 users (walked in id order), against `GET /healthz`;
//! - SCIM `filter=userName eq "…"` p50/p95 and deactivating one user p50/p95, against the bare
//!   indexed SELECT and a bare durable UPDATE on the same file.
//!
//! `cargo bench -p steward --bench scale` (or `scripts/bench`); `STEWARD_BENCH_USERS` scales it
//! down (orgs are a tenth of the users), `STEWARD_BENCH_SCALE_DB` keeps the database it made at
//! that path. Prints Markdown tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{ADMIN, Serve, free_port};

const SAMPLES: usize = 300;

const FIRST: [&str; 10] = ["Ada", "Grace", "Katherine", "Dorothy", "Mary", "Annie", "Joan", "Hedy", "Radia", "Frances"];
const LAST: [&str; 10] =
    ["Lovelace", "Hopper", "Johnson", "Vaughan", "Jackson", "Easley", "Clarke", "Lamarr", "Perlman", "Allen"];

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn row(what: &str, samples: &mut [Duration], ceiling: Option<f64>) -> String {
    samples.sort();
    let (p50, p95) = (percentile(samples, 0.5), percentile(samples, 0.95));
    let ratio = ceiling.map_or_else(|| "1.00".to_owned(), |c| format!("{:.1}", p95 / c));
    format!("| {what} | {p50:.3} | {p95:.3} | {ratio} |")
}

/// The id of generated user `i`: a valid UUID that sorts like `i`, apart from anything Steward
/// makes (those are UUIDv7 of today).
fn user_id(i: usize) -> String {
    format!("01900000-{:04x}-7000-8000-{:012x}", i >> 32, i & 0xffff_ffff)
}

fn email(i: usize) -> String {
    format!("user{i}@org{}.example", i / 10)
}

/// Writes the users, orgs, memberships and SCIM records in a handful of statements that SQLite
/// runs on its own (recursive CTEs), so that nothing is sent row by row.
async fn generate(url: &str, users: usize) -> Duration {
    // Migrations first, through the store itself.
    drop(steward_store::SqliteStore::open(url, false).await.unwrap());
    let started = Instant::now();
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let options = options.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let mut conn: sqlx::SqliteConnection = sqlx::ConnectOptions::connect(&options).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    let first = FIRST.iter().map(|f| format!("'{f}'")).collect::<Vec<_>>().join(", ");
    let last = LAST.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", ");
    let series =
        |n: usize| format!("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {n} - 1)");
    let id = |expr: &str, prefix: &str| {
        format!("printf('{prefix}-%04x-7000-8000-%012x', ({expr}) >> 32, ({expr}) & 4294967295)")
    };
    let statements = [
        "PRAGMA synchronous = OFF".to_owned(),
        "BEGIN".to_owned(),
        format!(
            "{} INSERT INTO users (id, email, email_key, name, status, created_at, updated_at, kind, notifications) \
             SELECT {}, 'user' || i || '@org' || (i / 10) || '.example', 'user' || i || '@org' || (i / 10) || '.example', \
                    json_extract(json_array({first}), '$[' || (i % 10) || ']') || ' ' || \
                    json_extract(json_array({last}), '$[' || ((i / 10) % 10) || ']') || ' ' || i, \
                    'active', {now}, {now}, 'person', '{{}}' FROM n",
            series(users),
            id("i", "01900000")
        ),
        format!(
            "{} INSERT INTO scim_users (user_id, external_id, attrs, updated_at) \
             SELECT {}, 'ext-' || i, '{{}}', {now} FROM n",
            series(users),
            id("i", "01900000")
        ),
        format!(
            "{} INSERT INTO orgs (id, name, owner_id, state, license, created_at, updated_at) \
             SELECT {}, 'Org ' || i, {}, 'active', '{{}}', {now}, {now} FROM n",
            series(users / 10),
            id("i", "01910000"),
            id("i * 10", "01900000")
        ),
        format!(
            "{} INSERT INTO memberships (id, org_id, user_id, role, created_at) \
             SELECT {}, {}, {}, CASE WHEN i % 10 = 0 THEN 'owner' ELSE 'member' END, {now} FROM n",
            series(users / 10 * 10),
            id("i", "01920000"),
            id("i / 10", "01910000"),
            id("i", "01900000")
        ),
        "COMMIT".to_owned(),
        "PRAGMA wal_checkpoint(TRUNCATE)".to_owned(),
        "ANALYZE".to_owned(),
    ];
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    }
    drop(conn);
    started.elapsed()
}

/// Ready after start as hyperfine measures it (mean of 5 runs, ms), when hyperfine is installed.
fn hyperfine_ready(db: &str) -> Option<f64> {
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_steward");
    let script = format!(
        "STEWARD_LISTEN=127.0.0.1:{port} STEWARD_DATABASE_URL='{db}' STEWARD_LOG=warn {bin} serve >/dev/null 2>&1 & \
         p=$!; until curl -fs http://127.0.0.1:{port}/readyz >/dev/null 2>&1; do sleep 0.002; done; kill $p; wait $p"
    );
    let out = std::env::temp_dir().join(format!("steward-ready-{port}.json"));
    let status = Command::new("hyperfine")
        .args(["--runs", "5", "--warmup", "1", "--shell", "bash", "--export-json"])
        .arg(&out)
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let report: Value = serde_json::from_slice(&std::fs::read(&out).ok()?).ok()?;
    let _ = std::fs::remove_file(out);
    status.success().then(|| report["results"][0]["mean"].as_f64()).flatten().map(|s| s * 1000.0)
}

async fn timed(request: reqwest::RequestBuilder) -> (Duration, Value) {
    let started = Instant::now();
    let reply = request.send().await.unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    let body = reply.json().await.unwrap_or(Value::Null);
    (started.elapsed(), body)
}

#[tokio::main]
async fn main() {
    let users: usize = std::env::var("STEWARD_BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    // STEWARD_BENCH_SCALE_DB keeps the generated database at that path (it must not exist yet).
    let path = std::env::var_os("STEWARD_BENCH_SCALE_DB")
        .map_or_else(|| dir.path().join("scale.db"), std::path::PathBuf::from);
    let db = format!("sqlite://{}", path.display());
    let generated = generate(&db, users).await;
    let size_mib = std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64;
    // The generator writes without syncing; its gigabyte goes to disk now, not while the durable
    // writes below are timed (their flushes would wait behind it).
    let flushing = Instant::now();
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    let flushed = flushing.elapsed();

    let (node, first_ready) = Serve::start(&db, &[]).await;
    let base = node.base.clone();
    let client = reqwest::Client::new();
    let admin = common::login(&client, &base, ADMIN).await;
    let scim = common::scim_token(&client, &base, &admin).await;
    let pick = |k: usize| (k * 7_919 + 13) % users;

    let mut health = Vec::new();
    let mut rare = Vec::new();
    let mut common = Vec::new();
    let mut scim_eq = Vec::new();
    for k in 0..SAMPLES {
        health.push(timed(client.get(format!("{base}/healthz"))).await.0);
        let i = pick(k);
        let (took, body) =
            timed(client.get(format!("{base}/api/v1/users")).query(&[("q", email(i).as_str())]).bearer_auth(&admin))
                .await;
        assert_eq!(body["items"][0]["email"], email(i), "{body}");
        rare.push(took);
        let fragment = LAST[k % LAST.len()].to_lowercase();
        let (took, body) =
            timed(client.get(format!("{base}/api/v1/users")).query(&[("q", fragment.as_str())]).bearer_auth(&admin))
                .await;
        assert!(!body["items"].as_array().unwrap().is_empty(), "{body}");
        common.push(took);
        let filter = format!("userName eq \"{}\"", email(i).to_uppercase());
        let (took, body) =
            timed(client.get(format!("{base}/scim/v2/Users")).query(&[("filter", filter.as_str())]).bearer_auth(&scim))
                .await;
        assert_eq!(body["totalResults"], 1, "{body}");
        scim_eq.push(took);
    }
    let mut deactivate = Vec::new();
    for k in 0..SAMPLES {
        let i = pick(k + SAMPLES) | 1; // never an org's owner (i % 10 == 0)
        let (took, _) = timed(
            client.post(format!("{base}/api/v1/users/{}/deactivate", user_id(i))).bearer_auth(&admin).json(&json!({})),
        )
        .await;
        deactivate.push(took);
    }
    let idle_rss = node.status_mib("VmRSS");
    // Pages of the database file the readers map count in RSS while mapped; they are the
    // system's page cache, shared, and given back under pressure.
    let (anon_rss, file_rss) = (node.status_mib("RssAnon"), node.status_mib("RssFile"));
    drop(node);

    // Ceilings on the same file: the bare indexed SELECT and a bare durable UPDATE.
    let options: sqlx::sqlite::SqliteConnectOptions = db.parse().unwrap();
    let options = options.synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let mut conn: sqlx::SqliteConnection = sqlx::ConnectOptions::connect(&options).await.unwrap();
    let mut select = Vec::new();
    let mut update = Vec::new();
    for k in 0..SAMPLES {
        let i = pick(k);
        let started = Instant::now();
        let found: String =
            sqlx::query_scalar("SELECT id FROM users WHERE COALESCE(scim_user_name_key, email_key) = ?")
                .bind(email(i))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        select.push(started.elapsed());
        assert_eq!(found, user_id(i));
        let started = Instant::now();
        sqlx::query("UPDATE users SET updated_at = updated_at + 1 WHERE id = ?")
            .bind(user_id(i))
            .execute(&mut conn)
            .await
            .unwrap();
        update.push(started.elapsed());
    }
    drop(conn);
    let ready: Vec<Duration> = {
        let mut times = Vec::new();
        for _ in 0..3 {
            times.push(Serve::start(&db, &[]).await.1);
        }
        times.sort();
        times
    };
    let hyperfine = hyperfine_ready(&db);

    health.sort();
    select.sort();
    update.sort();
    let (health_p95, select_p95, update_p95) =
        (percentile(&health, 0.95), percentile(&select, 0.95), percentile(&update, 0.95));
    println!(
        "{users} users, {} orgs, {} memberships generated in {:.1} s ({size_mib:.0} MiB), flushed to disk in {:.1} s\n",
        users / 10,
        users / 10 * 10,
        generated.as_secs_f64(),
        flushed.as_secs_f64()
    );
    println!("| request ({SAMPLES} each, one client) | p50 ms | p95 ms | p95 ratio to its ceiling |");
    println!("| --- | ---: | ---: | ---: |");
    println!("{}", row("GET /healthz (ceiling of the API rows)", &mut health, None));
    println!("{}", row("GET /api/v1/users?q=<an email> (1 match, trigram index)", &mut rare, Some(health_p95)));
    let shared = format!("GET /api/v1/users?q=<a last name> ({} matches, id order)", users / 10);
    println!("{}", row(&shared, &mut common, Some(health_p95)));
    println!("{}", row("bare indexed SELECT (ceiling of SCIM)", &mut select, None));
    println!("{}", row("GET /scim/v2/Users?filter=userName eq \"…\"", &mut scim_eq, Some(select_p95)));
    println!("{}", row("bare durable UPDATE of one user (ceiling of deactivate)", &mut update, None));
    println!("{}", row("POST /api/v1/users/{id}/deactivate", &mut deactivate, Some(update_p95)));
    println!();
    println!("| footprint on this database | figure |");
    println!("| --- | ---: |");
    println!(
        "| ready after the first start (creates the bootstrap admin) | {:.0} ms |",
        first_ready.as_secs_f64() * 1000.0
    );
    println!("| ready after start, median of 3 | {:.0} ms |", ready[1].as_secs_f64() * 1000.0);
    match hyperfine {
        Some(ms) => println!("| ready after start, hyperfine mean of 5 (includes stopping) | {ms:.0} ms |"),
        None => println!("| ready after start, hyperfine | not installed |"),
    }
    println!(
        "| RSS after the requests above | {idle_rss:.1} MiB ({anon_rss:.1} MiB its own, {file_rss:.1} MiB mapped files) |"
    );
}

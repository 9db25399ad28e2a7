//! Several `steward serve` processes on one PostgreSQL database: a deactivation on one node is
//! enforced by the other within 100 ms, metering stays exact across nodes, and mail is delivered
//! once. They need PostgreSQL, so they are ignored unless asked for: `scripts/test` runs them
//! with `--ignored` and `STEWARD_TEST_POSTGRES_URL` naming its server.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, PASSWORD, fresh_database};
use crate::smtp::SmtpSink;

struct Node {
    child: Child,
    base: String,
    db: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn node(db_url: &str, smtp: Option<&str>) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.arg("serve")
        .env("STEWARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("STEWARD_DATABASE_URL", db_url)
        .env("STEWARD_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("STEWARD_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
        .env("STEWARD_OUTBOX_POLL_MS", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = smtp {
        cmd.env("STEWARD_SMTP_URL", url);
    }
    let node = Node { child: cmd.spawn().unwrap(), base: format!("http://127.0.0.1:{port}"), db: db_url.to_owned() };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(format!("{}/readyz", node.base)).send().await.is_ok_and(|r| r.status() == 200) {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("node on port {port} did not become ready");
}

async fn two_nodes(smtp: Option<&str>) -> (Node, Node, tempfile::TempDir) {
    assert!(
        std::env::var("STEWARD_TEST_POSTGRES_URL").is_ok(),
        "two nodes share a PostgreSQL database: set STEWARD_TEST_POSTGRES_URL"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let a = node(&db, smtp).await;
    let b = node(&db, smtp).await;
    (a, b, dir)
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
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
    r["token"].as_str().expect("login").to_owned()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
async fn a_deactivation_on_one_node_is_enforced_by_the_other_within_100_ms() {
    let (a, b, _dir) = two_nodes(None).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &a.base, ADMIN_EMAIL).await;
    let body = json!({"email": "roamer@nodes.test", "name": "Roamer", "password": PASSWORD});
    let (status, user) =
        call(&client, reqwest::Method::POST, format!("{}/api/v1/users", a.base), &admin, Some(body)).await;
    assert_eq!(status, 201);
    let id = user["id"].as_str().unwrap().to_owned();
    let token = login(&client, &b.base, "roamer@nodes.test").await;
    for _ in 0..5 {
        assert_eq!(call(&client, reqwest::Method::GET, format!("{}/api/v1/me", b.base), &token, None).await.0, 200);
    }
    let hammer = {
        let (client, url, token) = (client.clone(), format!("{}/api/v1/me", b.base), token.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let end = Instant::now() + Duration::from_millis(900);
            while Instant::now() < end {
                let started = Instant::now();
                let status = client.get(&url).bearer_auth(&token).send().await.unwrap().status().as_u16();
                seen.push((started, status));
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/users/{id}/deactivate", a.base),
        &admin,
        Some(json!({})),
    )
    .await;
    let returned = Instant::now();
    assert_eq!(status, 200);
    let seen = hammer.await.unwrap();
    let late: Vec<_> = seen.iter().filter(|(t, s)| *t > returned + Duration::from_millis(100) && *s != 401).collect();
    assert!(
        late.is_empty(),
        "node B still served the user 100 ms after the deactivation returned, {} times",
        late.len()
    );
    let first_refusal = seen.iter().find(|(t, s)| *t >= returned && *s == 401).map(|(t, _)| t.duration_since(returned));
    println!("node B refused the user {first_refusal:?} after the deactivation returned on node A");
    assert!(seen.iter().any(|(t, s)| *t < returned && *s == 200), "the hammer ran before the deactivation too");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
async fn metering_stays_exact_across_nodes() {
    let (a, b, _dir) = two_nodes(None).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &a.base, ADMIN_EMAIL).await;
    let (_, me) = call(&client, reqwest::Method::GET, format!("{}/api/v1/me", a.base), &admin, None).await;
    let owner = me["user"]["id"].as_str().unwrap().to_owned();
    let body = json!({"name": "Shared", "owner_id": owner, "license": {"operations": 40}});
    let (_, org) = call(&client, reqwest::Method::POST, format!("{}/api/v1/orgs", a.base), &admin, Some(body)).await;
    let org = org["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
        let (client, admin, org) = (client.clone(), admin.clone(), org.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..4 {
                let (s, _) = call(
                    &client,
                    reqwest::Method::POST,
                    format!("{base}/api/v1/orgs/{org}/usage"),
                    &admin,
                    Some(json!({"operations": 1})),
                )
                .await;
                assert!(s == 200 || s == 402, "{s}");
                ok += u64::from(s == 200);
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert_eq!(ok, 40, "96 attempts on two nodes, exactly the limit served");
    let (_, usage) =
        call(&client, reqwest::Method::GET, format!("{}/api/v1/orgs/{org}/usage", b.base), &admin, None).await;
    assert_eq!(usage["operations"]["used"], 40);
}

/// Batches of usage events sent to two nodes at once, with duplicates and retries: each event
/// counts once and no org goes past its limit.
#[tokio::test]
#[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
async fn usage_events_stay_exact_across_nodes() {
    let (a, b, _dir) = two_nodes(None).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &a.base, ADMIN_EMAIL).await;
    crate::metering::exact_under_concurrent_batches(&client, &a.base, &b.base, &admin).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
async fn two_nodes_deliver_each_email_once() {
    let (sink, url) = SmtpSink::start().await;
    let (a, _b, _dir) = two_nodes(Some(&url)).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &a.base, ADMIN_EMAIL).await;
    for i in 0..8 {
        let body = json!({"email": format!("invitee{i}@nodes.test"), "name": "Invitee"});
        assert_eq!(
            call(&client, reqwest::Method::POST, format!("{}/api/v1/users", a.base), &admin, Some(body)).await.0,
            201
        );
    }
    for i in 0..8 {
        sink.wait_for(&format!("invitee{i}@nodes.test"), 1).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..8 {
        assert_eq!(sink.to(&format!("invitee{i}@nodes.test")).len(), 1, "delivered once");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
async fn a_permission_taken_from_a_role_on_one_node_is_refused_by_the_other_within_100_ms() {
    let (a, b, _dir) = two_nodes(None).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &a.base, ADMIN_EMAIL).await;
    let role = json!({"name": "desk", "permissions": ["users.read"]});
    assert_eq!(
        call(&client, reqwest::Method::POST, format!("{}/api/v1/roles", a.base), &admin, Some(role)).await.0,
        201
    );
    let body = json!({"email": "desk@nodes.test", "name": "Desk", "password": PASSWORD, "instance_roles": ["desk"]});
    assert_eq!(
        call(&client, reqwest::Method::POST, format!("{}/api/v1/users", a.base), &admin, Some(body)).await.0,
        201
    );
    let token = login(&client, &b.base, "desk@nodes.test").await;
    for _ in 0..3 {
        assert_eq!(call(&client, reqwest::Method::GET, format!("{}/api/v1/users", b.base), &token, None).await.0, 200);
    }
    let patch = json!({"permissions": []});
    let (status, _) =
        call(&client, reqwest::Method::PATCH, format!("{}/api/v1/roles/desk", a.base), &admin, Some(patch)).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(call(&client, reqwest::Method::GET, format!("{}/api/v1/users", b.base), &token, None).await.0, 403);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
async fn failures_on_one_node_lock_the_account_on_the_other() {
    let (a, b, _dir) = two_nodes(None).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &a.base, ADMIN_EMAIL).await;
    let body = json!({"email": "locked@nodes.test", "name": "Locked", "password": PASSWORD});
    assert_eq!(
        call(&client, reqwest::Method::POST, format!("{}/api/v1/users", a.base), &admin, Some(body)).await.0,
        201
    );
    // Each node throttles its own failures at 5 per account; the lock at 10 is shared.
    for node in [&a, &b] {
        for _ in 0..5 {
            let r = client
                .post(format!("{}/api/v1/auth/login", node.base))
                .json(&json!({"email": "locked@nodes.test", "password": "not the password"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401);
        }
    }
    let c = node(&a.db, None).await;
    let r = client
        .post(format!("{}/api/v1/auth/login", c.base))
        .json(&json!({"email": "locked@nodes.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a third node, which saw no failure, finds the account locked");
}

/// Every node drops what it keeps (principals, `/me`, `/check`, a consume's facts) when another
/// node tells of a commit, so a node at rest must tell of none: its outbox, webhook and scheduler
/// passes that find nothing to do commit nothing.
#[tokio::test]
#[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
async fn a_node_at_rest_tells_the_others_of_no_change() {
    let (a, _b, _dir) = two_nodes(None).await;
    let mut listener = sqlx::postgres::PgListener::connect(&a.db).await.unwrap();
    listener.listen("steward_changes").await.unwrap();
    // Each node polls its outbox every 50 ms and runs the scheduler every second.
    let quiet = Duration::from_millis(2500);
    let mut told = 0;
    let until = Instant::now() + quiet;
    while let Ok(heard) = tokio::time::timeout_at(until.into(), listener.try_recv()).await {
        if heard.unwrap().is_some() {
            told += 1;
        }
    }
    assert_eq!(told, 0, "two idle nodes told of {told} changes in {quiet:?}");
    // The listener hears a change when there is one.
    let client = reqwest::Client::new();
    let admin = login(&client, &a.base, ADMIN_EMAIL).await;
    let body = json!({"email": "heard@nodes.test", "name": "Heard"});
    let (status, _) =
        call(&client, reqwest::Method::POST, format!("{}/api/v1/users", a.base), &admin, Some(body)).await;
    assert_eq!(status, 201);
    let heard = tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await;
    assert!(matches!(heard, Ok(Ok(Some(_)))), "a created user is told: {heard:?}");
}

//! Webhooks: Standard Webhooks signatures checked by an implementation of the test's own, retries
//! after a failing receiver, the delivery log and redelivery, URL policy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    fail_first: Arc<Mutex<u32>>,
}

impl Receiver {
    async fn start(fail_first: u32) -> (Receiver, String) {
        let receiver = Receiver { fail_first: Arc::new(Mutex::new(fail_first)), ..Default::default() };
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    r.got.lock().unwrap().push((headers, String::from_utf8_lossy(&body).into_owned()));
                    let mut fail = r.fail_first.lock().unwrap();
                    if *fail > 0 {
                        *fail -= 1;
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    async fn wait_for(&self, count: usize, within: Duration) -> Vec<(HeaderMap, String)> {
        let end = std::time::Instant::now() + within;
        while std::time::Instant::now() < end {
            if self.got.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let got = self.got.lock().unwrap().clone();
        assert!(got.len() >= count, "expected {count} deliveries, got {}", got.len());
        got
    }
}

/// The Standard Webhooks check, written here from the specification.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    headers["webhook-signature"].to_str().unwrap().split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

async fn hook(app: &TestApp, url: &str, events: Value) -> Value {
    app.post("/api/v1/webhooks", &app.admin, json!({"url": url, "events": events})).await.expect(201)
}

#[tokio::test]
async fn changes_arrive_signed_per_standard_webhooks() {
    let app = spawn_app().await;
    let (receiver, url) = Receiver::start(0).await;
    let created = hook(&app, &url, json!(["user.created", "membership.added"])).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = app.get("/api/v1/webhooks", &app.admin).await.expect(200);
    assert!(listed["items"][0].get("secret").is_none(), "the secret is shown once");
    let owner = app.user("owner@hooks.test").await;
    let org = app.org("Hooked", &owner).await;
    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    let bodies: Vec<Value> = got.iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    assert_eq!(bodies[0]["type"], "user.created");
    assert_eq!(bodies[0]["data"]["user_id"], owner.as_str());
    assert!(bodies[0]["timestamp"].is_string());
    assert_eq!(bodies[1]["type"], "membership.added");
    assert_eq!(bodies[1]["data"]["org_id"], org.as_str());
    for (headers, body) in &got {
        assert!(verify(&secret, headers, body), "the signature verifies");
        assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", headers, body));
        let ts: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
        assert!((time::OffsetDateTime::now_utc().unix_timestamp() - ts).abs() < 60);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got.lock().unwrap().len(), 2, "org.created was not subscribed to");
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_and_the_log_shows_it() {
    let app = spawn_app().await;
    let (receiver, url) = Receiver::start(1).await;
    let created = hook(&app, &url, json!(["*"])).await;
    let id = created["id"].as_str().unwrap();
    app.user("retry@hooks.test").await;
    let got = receiver.wait_for(2, Duration::from_secs(12)).await;
    assert_eq!(got[0].0["webhook-id"], got[1].0["webhook-id"], "the same delivery, retried");
    let log = app.get(&format!("/api/v1/webhooks/{id}/deliveries"), &app.admin).await.expect(200);
    let d = &log["items"][0];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
        (Some("delivered"), Some(2), Some(204))
    );
    let again = app
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/{}/redeliver", d["id"].as_str().unwrap()),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(again.expect(200)["status"], "pending");
    receiver.wait_for(3, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn endpoints_are_validated_and_only_for_webhook_managers() {
    let app = spawn_app().await;
    let (_, plain) = app.user_with_session("plain@hooks.test").await;
    app.post("/api/v1/webhooks", &plain, json!({"url": "http://127.0.0.1:9/x", "events": ["*"]}))
        .await
        .expect_problem(403, "forbidden");
    for body in [
        json!({"url": "ftp://example.com/x", "events": ["*"]}),
        json!({"url": "http://127.0.0.1:9/x", "events": []}),
        json!({"url": "http://127.0.0.1:9/x", "events": ["user.exploded"]}),
        json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "mine"}),
    ] {
        app.post("/api/v1/webhooks", &app.admin, body).await.expect_problem(400, "validation_failed");
    }
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"webhook_deny_private": true}})).await.expect(200);
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://[::ffff:127.0.0.1]:9/x",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data",
        "http://[::127.0.0.1]:9/x",
        "http://[64:ff9b::7f00:1]:9/x",
        "http://100.64.0.1/x",
        "http://0x7f.1:9/x",
        "http://0177.0.0.1:9/x",
        "http://2130706433:9/x",
        "http://[fd00::1]/x",
    ] {
        app.post("/api/v1/webhooks", &app.admin, json!({"url": url, "events": ["*"]}))
            .await
            .expect_problem(400, "validation_failed");
    }
}

#[tokio::test]
async fn with_the_policy_on_a_hook_created_before_is_not_delivered_to_a_private_address() {
    let app = spawn_app().await;
    let (receiver, url) = Receiver::start(0).await;
    hook(&app, &url, json!(["user.created"])).await;
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"webhook_deny_private": true}})).await.expect(200);
    app.user("someone@private.test").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.got.lock().unwrap().is_empty(), "nothing reached loopback");
}

#[tokio::test]
async fn freezing_and_unfreezing_an_org_are_announced() {
    let app = spawn_app().await;
    let (receiver, url) = Receiver::start(0).await;
    hook(&app, &url, json!(["org.frozen", "org.unfrozen"])).await;
    let owner = app.user("owner@frozen.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Icy", "owner_id": owner, "license": {"operations": 3}}))
        .await
        .expect(201);
    let org = org["id"].as_str().unwrap();
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 2})).await.expect(200);
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 1})).await.expect(200);
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"operations": 10})).await.expect(200);
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"operations": 0})).await.expect(200);
    let got = receiver.wait_for(3, Duration::from_secs(5)).await;
    let kinds: Vec<String> = got
        .iter()
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, vec!["org.frozen", "org.unfrozen", "org.frozen"]);
    let first: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(first["data"]["org_id"], org);
    assert_eq!(first["data"]["cause"], "consumable_used_up");
}

/// A node killed with SIGKILL while it sends a delivery: the next node sends it again.
#[tokio::test]
async fn a_delivery_in_flight_survives_a_kill_9() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("steward.db").display());
    let hang = Arc::new(Mutex::new(true));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = {
        let (hang, seen) = (hang.clone(), seen.clone());
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap| {
                let (hang, seen) = (hang.clone(), seen.clone());
                async move {
                    seen.lock().unwrap().push(headers["webhook-id"].to_str().unwrap().to_owned());
                    let stall = *hang.lock().unwrap();
                    if stall {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let start = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_steward"))
            .arg("serve")
            .env("STEWARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("STEWARD_DATABASE_URL", &db)
            .env("STEWARD_BOOTSTRAP_ADMIN_EMAIL", crate::helpers::ADMIN_EMAIL)
            .env("STEWARD_BOOTSTRAP_ADMIN_PASSWORD", crate::helpers::PASSWORD)
            .env("STEWARD_WEBHOOK_LEASE_SECS", "2")
            .env("STEWARD_OUTBOX_POLL_MS", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = |client: reqwest::Client, base: String| async move {
        for _ in 0..300 {
            if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not ready");
    };
    let mut first = start(port);
    ready(client.clone(), base.clone()).await;
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": crate::helpers::ADMIN_EMAIL, "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let created = client
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(&token)
        .json(&json!({"url": url, "events": ["user.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let r = client
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({"email": "k@kill.test", "name": "K"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for _ in 0..100 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.lock().unwrap().len(), 1, "the delivery is in flight");
    first.kill().unwrap();
    first.wait().unwrap();
    *hang.lock().unwrap() = false;
    let mut second = start(port);
    ready(client.clone(), base.clone()).await;
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = seen.lock().unwrap().clone();
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(ids.len() >= 2, "the restarted node sent the delivery again");
    assert_eq!(ids[0], ids[1], "the same delivery, not lost");
}

#[tokio::test]
async fn an_expiring_license_is_announced_once_when_its_time_comes() {
    let app = spawn_app().await;
    let (receiver, url) = Receiver::start(0).await;
    hook(&app, &url, json!(["org.frozen"])).await;
    let owner = app.user("owner@expiry.test").await;
    let at = (time::OffsetDateTime::now_utc() + time::Duration::days(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Expiring", "owner_id": owner, "license": {"expires_at": at}}))
        .await
        .expect(201);
    assert_eq!(org["frozen"], false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.got.lock().unwrap().is_empty());
    app.state.clock.advance(time::Duration::days(4));
    let got = receiver.wait_for(1, Duration::from_secs(6)).await;
    let body: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(body["data"]["cause"], "license_expired");
    assert_eq!(body["data"]["org_id"], org["id"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.got.lock().unwrap().len(), 1, "announced once");
}

//! Lockout after repeated failed logins: kept in the database, answered exactly like a wrong
//! password, lifted by the cool-down or by an admin.

use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, PASSWORD, TestApp, spawn_app_with};

/// Status, content type and the raw body bytes of a login attempt. Each attempt sends the same
/// `X-Request-Id`, which its problem document names: the bytes differ in nothing else.
async fn raw_login(app: &TestApp, email: &str, password: &str) -> (u16, String, Vec<u8>) {
    let resp = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("x-request-id", "login-probe")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

async fn locking_app(failures: u32, secs: u64) -> TestApp {
    spawn_app_with(move |c| {
        c.login_lockout_failures = failures;
        c.login_lockout_secs = secs;
        c.login_failures_per_account = 1000;
    })
    .await
}

#[tokio::test]
async fn a_locked_account_answers_byte_for_byte_like_a_wrong_password() {
    let app = locking_app(3, 900).await;
    let id = app.user("victim@acme.example").await;
    let wrong = raw_login(&app, "victim@acme.example", "not the password").await;
    assert_eq!(wrong.0, 401);
    raw_login(&app, "victim@acme.example", "not the password").await;
    raw_login(&app, "victim@acme.example", "not the password").await;
    // Locked now: the right password gets exactly the wrong password's answer.
    let locked = raw_login(&app, "victim@acme.example", PASSWORD).await;
    assert_eq!(locked, wrong);
    let unknown = raw_login(&app, "nobody@acme.example", PASSWORD).await;
    assert_eq!(unknown, wrong);
    let events = app.audit("&type=user.locked").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["target_id"], json!(id));
    // Other accounts log in as usual.
    app.login(ADMIN_EMAIL, PASSWORD).await;
    let security = app.get(&format!("/api/v1/users/{id}/security"), &app.admin).await.expect(200);
    assert_eq!(security["failed_logins"], 3);
    assert!(security["locked_until"].is_string());
    assert_eq!(security["totp_enabled"], false);

    app.post(&format!("/api/v1/users/{id}/unlock"), &app.admin, json!({})).await.expect(204);
    app.login("victim@acme.example", PASSWORD).await;
    let security = app.get(&format!("/api/v1/users/{id}/security"), &app.admin).await.expect(200);
    assert_eq!((security["failed_logins"].clone(), security["locked_until"].clone()), (json!(0), json!(null)));
    let unlocked = app.audit("&type=user.unlocked").await;
    assert_eq!(unlocked[0]["detail"]["was_locked"], true);
}

#[tokio::test]
async fn the_lock_runs_out_after_the_cooldown_and_a_success_resets_the_count() {
    let app = locking_app(2, 1).await;
    app.user("slow@acme.example").await;
    raw_login(&app, "slow@acme.example", "not the password").await;
    // A success in between starts the count again.
    app.login("slow@acme.example", PASSWORD).await;
    raw_login(&app, "slow@acme.example", "not the password").await;
    app.login("slow@acme.example", PASSWORD).await;
    raw_login(&app, "slow@acme.example", "not the password").await;
    raw_login(&app, "slow@acme.example", "not the password").await;
    assert_eq!(raw_login(&app, "slow@acme.example", PASSWORD).await.0, 401);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.login("slow@acme.example", PASSWORD).await;
}

#[tokio::test]
async fn the_lock_lives_in_the_database_so_every_node_sees_it() {
    let a = locking_app(2, 900).await;
    let db_url = a.db_url.clone();
    let b = spawn_app_with(move |c| {
        c.database_url = db_url;
        c.login_lockout_failures = 2;
        c.login_failures_per_account = 1000;
    })
    .await;
    let id = a.user("shared@acme.example").await;
    b.login("shared@acme.example", PASSWORD).await;
    raw_login(&a, "shared@acme.example", "not the password").await;
    raw_login(&a, "shared@acme.example", "not the password").await;
    let on_b = raw_login(&b, "shared@acme.example", PASSWORD).await;
    assert_eq!(on_b.0, 401);
    // Unlocked on one node, open on the other.
    b.post(&format!("/api/v1/users/{id}/unlock"), &b.admin, json!({})).await.expect(204);
    a.login("shared@acme.example", PASSWORD).await;
}

#[tokio::test]
async fn unlock_needs_the_lifecycle_permission_and_a_known_user() {
    let app = locking_app(3, 900).await;
    let (id, token) = app.user_with_session("plain@acme.example").await;
    app.post(&format!("/api/v1/users/{id}/unlock"), &token, json!({})).await.expect_problem(403, "forbidden");
    app.post("/api/v1/users/00000000-0000-7000-8000-000000000000/unlock", &app.admin, json!({}))
        .await
        .expect_problem(404, "not_found");
}

#[tokio::test]
async fn the_throttle_still_answers_429_and_failures_elsewhere_do_not_hold_up_a_login() {
    let app = spawn_app_with(|c| {
        c.login_failures_per_account = 3;
        c.login_lockout_failures = 10;
    })
    .await;
    app.user("target@acme.example").await;
    app.user("bystander@acme.example").await;
    for _ in 0..3 {
        raw_login(&app, "target@acme.example", "not the password").await;
    }
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "target@acme.example", "password": "not the password"})),
        )
        .await;
    r.expect_problem(429, "rate_limited");
    // A storm of failures against one account while another signs in: every sign-in succeeds.
    let storm: Vec<_> = (0..16)
        .map(|_| {
            let (client, base) = (app.client.clone(), app.base.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": "target@acme.example", "password": "still not it"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for _ in 0..5 {
        app.login("bystander@acme.example", PASSWORD).await;
    }
    for s in storm {
        assert!([401, 429].contains(&s.await.unwrap().unwrap()));
    }
}

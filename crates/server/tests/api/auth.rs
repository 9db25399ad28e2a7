//! Login, logout, sessions, API tokens, throttling, CSRF.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, PASSWORD, Reply, TestApp, spawn_app, spawn_app_with};

#[tokio::test]
async fn login_gives_a_session_that_me_recognises() {
    let app = spawn_app().await;
    let me = app.get("/api/v1/me", &app.admin).await.expect(200);
    assert_eq!(me["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me["instance_roles"], json!(["system_admin"]));
    assert!(me["impersonator"].is_null());
    assert!(me["permissions"].as_array().unwrap().contains(&json!("users.impersonate")));
}

#[tokio::test]
async fn wrong_password_unknown_email_and_inactive_users_get_the_same_401() {
    let app = spawn_app().await;
    let invited =
        app.post("/api/v1/users", &app.admin, json!({"email": "inv@example.com", "name": "Inv"})).await.expect(201);
    assert_eq!(invited["status"], "invited");
    for (email, password) in
        [(ADMIN_EMAIL, "wrong password!!"), ("nobody@example.com", PASSWORD), ("inv@example.com", PASSWORD)]
    {
        let r = app
            .request(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": password})))
            .await;
        let body = r.expect_problem(401, "unauthenticated");
        assert_eq!(body["detail"], "the email or password is wrong, or the account is not active");
    }
}

#[tokio::test]
async fn session_secrets_are_stored_only_as_digests() {
    let app = spawn_app().await;
    let db = app.db().await;
    let hashes = db.strings("SELECT token_hash FROM sessions", &[]).await;
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], app.admin);
    assert_eq!(hashes[0], steward::auth::secret_hash(&app.admin));
    let dump = db.strings("SELECT id || token_hash || COALESCE(user_agent, '') FROM sessions", &[]).await;
    assert!(!dump.concat().contains(&app.admin));
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let app = spawn_app().await;
    let token = app.login(ADMIN_EMAIL, PASSWORD).await;
    app.get("/api/v1/me", &token).await.expect(200);
    app.post("/api/v1/auth/logout", &token, json!({})).await.expect(204);
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
    app.get("/api/v1/me", &app.admin).await.expect(200);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_without_slowing_others() {
    let app = spawn_app_with(|c| c.login_failures_per_account = 3).await;
    let bad = json!({"email": ADMIN_EMAIL, "password": "not the password"});
    for _ in 0..3 {
        app.request(Method::POST, "/api/v1/auth/login", None, Some(bad.clone()))
            .await
            .expect_problem(401, "unauthenticated");
    }
    let r = app.request(Method::POST, "/api/v1/auth/login", None, Some(bad.clone())).await;
    let retry: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    r.expect_problem(429, "rate_limited");
    // Even the right password waits now: the account is under attack.
    let good = json!({"email": ADMIN_EMAIL, "password": PASSWORD});
    app.request(Method::POST, "/api/v1/auth/login", None, Some(good)).await.expect_problem(429, "rate_limited");
    // Another account is not affected, and its successes are never counted.
    app.user("other@example.com").await;
    for _ in 0..6 {
        app.login("other@example.com", PASSWORD).await;
    }
}

#[tokio::test]
async fn failed_logins_are_throttled_per_client_address() {
    let app = spawn_app_with(|c| c.login_failures_per_address = 4).await;
    for i in 0..4 {
        let body = json!({"email": format!("probe{i}@example.com"), "password": "whatever at all"});
        app.request(Method::POST, "/api/v1/auth/login", None, Some(body)).await.expect_problem(401, "unauthenticated");
    }
    let body = json!({"email": "probe9@example.com", "password": "whatever at all"});
    app.request(Method::POST, "/api/v1/auth/login", None, Some(body)).await.expect_problem(429, "rate_limited");
}

/// A password login from a client that sends `cookie` (a device cookie), as a browser would.
async fn login_with_cookie(app: &TestApp, email: &str, password: &str, cookie: Option<&str>) -> Reply {
    let mut req =
        app.client.post(format!("{}/api/v1/auth/login", app.base)).json(&json!({"email": email, "password": password}));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    Reply { status, headers, body: resp.json().await.unwrap_or_default() }
}

/// The device cookie a successful login set, as `name=value`.
fn device_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "unexpected reply: {:#}", reply.body);
    let set = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("steward_device="))
        .expect("a login sets the device cookie");
    assert!(set.contains("; HttpOnly; SameSite=Strict; Max-Age=7776000"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_known_device_signs_in_while_an_attacker_fails_its_account_and_shares_its_address() {
    let app = spawn_app_with(|c| {
        c.login_failures_per_account = 3;
        c.login_failures_per_address = 5;
    })
    .await;
    for email in ["victim@example.com", "bystander@example.com"] {
        app.user(email).await;
    }
    let victim = device_of(&login_with_cookie(&app, "victim@example.com", PASSWORD, None).await);
    let bystander = device_of(&login_with_cookie(&app, "bystander@example.com", PASSWORD, None).await);
    // An attacker on the same address (every client here is 127.0.0.1) fails the victim's account
    // up to its limit, and other accounts up to the address's.
    for email in ["victim@example.com"; 3].into_iter().chain(["probe1@example.com", "probe2@example.com"]) {
        login_with_cookie(&app, email, "not the password", None).await.expect_problem(401, "unauthenticated");
    }
    // From a new device, both people are refused with the right password...
    for email in ["victim@example.com", "bystander@example.com"] {
        login_with_cookie(&app, email, PASSWORD, None).await.expect_problem(429, "rate_limited");
    }
    // ...and from their own devices they sign in; the victim's device gets a fresh cookie.
    let renewed = device_of(&login_with_cookie(&app, "victim@example.com", PASSWORD, Some(&victim)).await);
    assert_ne!(renewed, victim);
    login_with_cookie(&app, "bystander@example.com", PASSWORD, Some(&bystander)).await.expect(200);
    // A device is known to its own account only, and a cookie that was changed is no device.
    login_with_cookie(&app, "victim@example.com", PASSWORD, Some(&bystander)).await.expect_problem(429, "rate_limited");
    let tampered = format!("{}{}", &renewed[..renewed.len() - 2], if renewed.ends_with("AA") { "BB" } else { "AA" });
    login_with_cookie(&app, "victim@example.com", PASSWORD, Some(&tampered)).await.expect_problem(429, "rate_limited");
    login_with_cookie(&app, "victim@example.com", PASSWORD, Some(&renewed)).await.expect(200);
}

#[tokio::test]
async fn a_known_device_has_as_few_guesses_as_an_account() {
    let app = spawn_app_with(|c| c.login_failures_per_account = 3).await;
    app.user("victim@example.com").await;
    let device = device_of(&login_with_cookie(&app, "victim@example.com", PASSWORD, None).await);
    // Whoever holds the cookie, its guesses are limited like any client's.
    for _ in 0..3 {
        login_with_cookie(&app, "victim@example.com", "not the password", Some(&device))
            .await
            .expect_problem(401, "unauthenticated");
    }
    login_with_cookie(&app, "victim@example.com", PASSWORD, Some(&device)).await.expect_problem(429, "rate_limited");
    // Its failures counted for the account too: a new device is refused as well.
    login_with_cookie(&app, "victim@example.com", PASSWORD, None).await.expect_problem(429, "rate_limited");
}

#[tokio::test]
async fn api_tokens_are_shown_once_work_and_die_when_revoked() {
    let app = spawn_app().await;
    let created = app.post("/api/v1/me/tokens", &app.admin, json!({"name": "ci"})).await.expect(201);
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("stw_t_"));
    let me = app.request(Method::GET, "/api/v1/me", None, None).await;
    me.expect_problem(401, "unauthenticated");
    let r = app
        .client
        .get(format!("{}/api/v1/me", app.base))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = app.get("/api/v1/me/tokens", &app.admin).await.expect(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("token").is_none(), "the secret is never listed");
    let id = created["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/me/tokens/{id}"), &app.admin).await.expect(204);
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let app = spawn_app().await;
    app.post("/api/v1/me/tokens", &app.admin, json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}))
        .await
        .expect_problem(400, "validation_failed");
}

#[tokio::test]
async fn sessions_are_listed_and_can_be_ended_by_their_owner() {
    let app = spawn_app().await;
    let other = app.login(ADMIN_EMAIL, PASSWORD).await;
    let list = app.get("/api/v1/me/sessions", &app.admin).await.expect(200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let other_id = items.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/me/sessions/{other_id}"), &app.admin).await.expect(204);
    app.get("/api/v1/me", &other).await.expect_problem(401, "unauthenticated");
    // Someone else's session is not found.
    let (_, bob) = app.user_with_session("bob@example.com").await;
    let mine =
        app.get("/api/v1/me/sessions", &app.admin).await.expect(200)["items"][0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/me/sessions/{mine}"), &bob).await.expect_problem(404, "not_found");
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_on_unsafe_requests() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({"email": ADMIN_EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let session = cookies.iter().find(|c| c.starts_with("steward_session=")).unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
    let body: serde_json::Value = r.json().await.unwrap();
    let cookie = format!("steward_session={}", body["token"].as_str().unwrap());
    let csrf = body["csrf_token"].as_str().unwrap();
    let get = app.client.get(format!("{}/api/v1/me", app.base)).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(get.status(), 200);
    let new_token = json!({"name": "from the browser"});
    let without = app
        .client
        .post(format!("{}/api/v1/me/tokens", app.base))
        .header("Cookie", &cookie)
        .json(&new_token)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403);
    let with = app
        .client
        .post(format!("{}/api/v1/me/tokens", app.base))
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", csrf)
        .json(&new_token)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 201);
}

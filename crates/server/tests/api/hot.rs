//! The kept answers of `/me` and `/check` (crate::hot) follow every change at once: each call
//! below is made twice before a change, so that the second is answered from memory where Steward
//! keeps answers (SQLite), and the call right after the change must already show it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn reason(body: &Value) -> String {
    body["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn kept_answers_of_me_and_check_show_each_change_on_the_next_request() {
    let app = spawn_app().await;
    let owner = app.user("owner@hot.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Hot", "owner_id": owner, "license": {"operations": 3}}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (member, token) = app.user_with_session("member@hot.test").await;
    app.add_member(&org, &member, "viewer").await;
    let ask = json!({"user_id": member, "org_id": org, "action": "asset.write"});
    let check = || async { reason(&app.post("/api/v1/check", &app.admin, ask.clone()).await.expect(200)) };
    let me = || async { app.get("/api/v1/me", &token).await.expect(200) };

    // A role change: both answers move with it.
    for _ in 0..2 {
        assert_eq!(check().await, "role");
        assert_eq!(me().await["memberships"][0]["role"], "viewer");
    }
    app.add_member(&org, &member, "member").await;
    assert_eq!(check().await, "ok");
    assert_eq!(me().await["memberships"][0]["role"], "member");

    // A consume that is not a committed change of its own, and one that freezes the org.
    for _ in 0..2 {
        assert_eq!(check().await, "ok");
        assert_eq!(me().await["memberships"][0]["frozen"], false);
    }
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 2})).await.expect(200);
    assert_eq!(check().await, "ok", "one operation is left");
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 1})).await.expect(200);
    assert_eq!(check().await, "org_frozen");
    assert_eq!(me().await["memberships"][0]["frozen"], true);

    // A license change lifts the freeze.
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"operations": 100})).await.expect(200);
    assert_eq!(check().await, "ok");
    assert_eq!(me().await["memberships"][0]["frozen"], false);

    // The user's own details, and the end of the membership.
    app.patch(&format!("/api/v1/users/{member}"), &app.admin, json!({"name": "Renamed"})).await.expect(200);
    assert_eq!(me().await["user"]["name"], "Renamed");
    app.delete(&format!("/api/v1/orgs/{org}/members/{member}"), &app.admin).await.expect(204);
    assert_eq!(check().await, "not_a_member");
    assert_eq!(me().await["memberships"], json!([]));

    // Deactivation: the kept /me must not outlive the session.
    app.post(&format!("/api/v1/users/{member}/deactivate"), &app.admin, json!({})).await.expect(200);
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
}

/// Many connections ask `/check` while the org's last operation is consumed: no check that
/// started after the consume returned may still say `ok`.
#[tokio::test]
async fn no_check_started_after_the_last_consume_returned_says_ok() {
    let app = spawn_app().await;
    let owner = app.user("owner@race.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Race", "owner_id": owner, "license": {"operations": 1}}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let consumed = Arc::new(AtomicBool::new(false));
    let (late_ok, after) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url, token) = (app.client.clone(), format!("{}/api/v1/check", app.base), app.admin.clone());
        let body = json!({"user_id": owner, "org_id": org, "action": "asset.write"});
        let (consumed, late_ok, after, stop) = (consumed.clone(), late_ok.clone(), after.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let started_after = consumed.load(Ordering::SeqCst);
                let answer: Value =
                    client.post(&url).bearer_auth(&token).json(&body).send().await.unwrap().json().await.unwrap();
                if started_after {
                    after.fetch_add(1, Ordering::SeqCst);
                    if reason(&answer) == "ok" {
                        late_ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 1})).await.expect(200);
    consumed.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(after.load(Ordering::SeqCst) > 16, "checks ran after the consume");
    assert_eq!(late_ok.load(Ordering::SeqCst), 0, "a check that started after the consume returned said ok");
}

/// A SCIM token is kept between changes; its revocation is one, so the next call is refused.
#[tokio::test]
async fn a_revoked_scim_token_is_refused_on_its_next_call() {
    let app = spawn_app().await;
    let created = app.post("/api/v1/scim-tokens", &app.admin, json!({"name": "Okta"})).await.expect(201);
    let (id, token) = (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned());
    for _ in 0..2 {
        app.get("/scim/v2/Users?count=1", &token).await.expect(200);
    }
    app.delete(&format!("/api/v1/scim-tokens/{id}"), &app.admin).await.expect(204);
    assert_eq!(app.get("/scim/v2/Users?count=1", &token).await.status, 401);
}

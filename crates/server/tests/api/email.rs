//! Email over a real SMTP conversation on loopback: invitations, resets, notices, and nothing
//! for users who may not receive mail.

use serde_json::json;
use steward_store::OutboxRow;

use crate::helpers::{PASSWORD, spawn_app_with};
use crate::smtp::SmtpSink;

#[tokio::test]
async fn an_invitation_arrives_by_smtp_and_its_link_activates_the_user_once() {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let owner = app.user("owner@mail.test").await;
    let org = app.org("Mail Co", &owner).await;
    let team = app.post(&format!("/api/v1/orgs/{org}/teams"), &app.admin, json!({"name": "Core"})).await.expect(201);
    let team = team["id"].as_str().unwrap();
    let inv = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &app.admin,
            json!({"email": "new@mail.test", "role": "admin", "team_ids": [team]}),
        )
        .await
        .expect(201);
    let mails = sink.wait_for("new@mail.test", 1).await;
    assert!(mails[0].subject().contains("Mail Co"), "{}", mails[0].subject());
    let token = mails[0].link_token("/invite/").expect("the mail carries the link");
    let db = app.db().await;
    let stored = db.strings("SELECT token_hash FROM invitations", &[]).await;
    assert!(!stored.contains(&token), "the secret is stored only as a digest");
    let path = format!("/api/v1/auth/invitations/{token}/accept");
    let none = reqwest::Method::POST;
    app.request(none.clone(), &path, None, Some(json!({}))).await.expect_problem(400, "validation_failed");
    let user = app
        .request(none.clone(), &path, None, Some(json!({"password": PASSWORD, "name": "Newcomer"})))
        .await
        .expect(200);
    assert_eq!((user["status"].as_str(), user["name"].as_str()), (Some("active"), Some("Newcomer")));
    assert_eq!(user["id"], inv["user_id"]);
    app.request(none, &path, None, Some(json!({"password": PASSWORD}))).await.expect_problem(404, "not_found");
    let t = app.login("new@mail.test", PASSWORD).await;
    let me = app.get("/api/v1/me", &t).await.expect(200);
    assert_eq!(me["memberships"][0]["role"], "admin");
    assert_eq!(me["teams"][0]["team_id"], team);
}

#[tokio::test]
async fn a_password_reset_mails_active_users_only_and_ends_their_sessions() {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let (_, old_session) = app.user_with_session("forgot@mail.test").await;
    let gone = app.user("gone@mail.test").await;
    app.post(&format!("/api/v1/users/{gone}/deactivate"), &app.admin, json!({})).await.expect(200);
    for email in ["forgot@mail.test", "gone@mail.test", "nobody@mail.test"] {
        let r = app
            .request(reqwest::Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": email})))
            .await;
        assert_eq!(r.status.as_u16(), 202, "always 202, so that accounts cannot be probed");
    }
    let mails = sink.wait_for("forgot@mail.test", 1).await;
    let token = mails[0].link_token("/reset/").unwrap();
    let path = format!("/api/v1/auth/password-reset/{token}");
    app.request(reqwest::Method::POST, &path, None, Some(json!({"password": "my new password 1"}))).await.expect(204);
    app.get("/api/v1/me", &old_session).await.expect_problem(401, "unauthenticated");
    app.login("forgot@mail.test", "my new password 1").await;
    app.request(reqwest::Method::POST, &path, None, Some(json!({"password": "another password"})))
        .await
        .expect_problem(404, "not_found");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sink.to("gone@mail.test").is_empty(), "a deactivated user gets nothing");
    assert!(sink.to("nobody@mail.test").is_empty());
}

/// An instance mailing `SmtpSink` whose outbox worker runs when woken (`outbox_wake`), so that
/// what happens between queueing and delivery is the test's.
async fn outbox_woken_by_hand() -> (SmtpSink, crate::helpers::TestApp) {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(steward::config::Secret::new(url));
        c.outbox_poll_ms = 60_000;
    })
    .await;
    (sink, app)
}

#[tokio::test]
async fn mail_queued_before_a_deactivation_is_dropped_at_delivery() {
    let (sink, app) = outbox_woken_by_hand().await;
    let id = app.user("late@mail.test").await;
    let now = time::OffsetDateTime::now_utc();
    let mut tx = app.state.store.write().await.unwrap();
    tx.enqueue(&OutboxRow {
        id: uuid::Uuid::now_v7(),
        user_id: Some(id.parse().unwrap()),
        org_id: None,
        recipient: "late@mail.test".into(),
        category: "org_activity".into(),
        subject: "Weekly digest".into(),
        body: "news".into(),
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
        sent_at: None,
        dropped_at: None,
        last_error: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({})).await.expect(200);
    app.state.outbox_wake.notify_one();
    let db = app.db().await;
    let mut dropped = None;
    for _ in 0..100 {
        dropped = db
            .opt_string(
                "SELECT last_error FROM outbox WHERE recipient = 'late@mail.test' AND dropped_at IS NOT NULL",
                &[],
            )
            .await;
        if dropped.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(dropped.as_deref(), Some("the user is not active"));
    assert!(sink.to("late@mail.test").is_empty());
}

/// The reasons the outbox gave for the messages to `to` it dropped, waiting until it has handled
/// `n` of them.
async fn dropped_for(app: &crate::helpers::TestApp, to: &str, n: usize) -> Vec<String> {
    let db = app.db().await;
    for _ in 0..100 {
        let reasons = db
            .strings("SELECT last_error FROM outbox WHERE recipient = ? AND dropped_at IS NOT NULL ORDER BY id", &[to])
            .await;
        if reasons.len() >= n {
            return reasons;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the outbox did not drop {n} messages to {to}");
}

/// An org's own email (a usage alert) goes out only if, when it is sent, the person is still a
/// member who wants that org's emails: the org's deprovisioning silences it, and so does leaving.
#[tokio::test]
async fn an_orgs_email_queued_before_its_deprovisioning_or_the_members_leaving_is_dropped() {
    let (sink, app) = outbox_woken_by_hand().await;
    let owner = app.user("owner@alerts.test").await;
    let (leaving, silenced, other) = (
        app.user("leaving@alerts.test").await,
        app.user("silenced@alerts.test").await,
        app.user("other@alerts.test").await,
    );
    let (org, elsewhere) = (app.org("Alerted", &owner).await, app.org("Elsewhere", &owner).await);
    app.add_member(&org, &leaving, "admin").await;
    app.add_member(&org, &silenced, "admin").await;
    app.add_member(&elsewhere, &other, "admin").await;
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"operations": 100})).await.expect(200);
    app.patch(&format!("/api/v1/orgs/{elsewhere}/license"), &app.admin, json!({"operations": 100})).await.expect(200);
    // Crossing 75 % queues an alert to each org's admins; the worker sleeps meanwhile.
    for o in [&org, &elsewhere] {
        app.post(&format!("/api/v1/orgs/{o}/usage"), &app.admin, json!({"operations": 80})).await.expect(200);
    }
    let db = app.db().await;
    let queued = |to: &str| {
        let to = to.to_owned();
        let db = &db;
        async move { db.i64("SELECT COUNT(*) FROM outbox WHERE recipient = ? AND sent_at IS NULL", &[&to]).await }
    };
    for to in ["leaving@alerts.test", "silenced@alerts.test", "other@alerts.test"] {
        assert_eq!(queued(to).await, 1, "an alert is queued for {to}");
    }
    app.delete(&format!("/api/v1/orgs/{org}/members/{leaving}"), &app.admin).await.expect(204);
    app.post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "ended"})).await.expect(200);
    app.state.outbox_wake.notify_one();
    assert_eq!(dropped_for(&app, "leaving@alerts.test", 1).await, ["the user is not a member of this organization"]);
    assert_eq!(
        dropped_for(&app, "silenced@alerts.test", 1).await,
        ["this category is off for the user in this organization"]
    );
    let sent = sink.wait_for("other@alerts.test", 1).await;
    assert!(sent[0].subject().contains("75"), "another org's alert still goes out: {}", sent[0].subject());
    assert!(sink.to("leaving@alerts.test").is_empty() && sink.to("silenced@alerts.test").is_empty());
}

#[tokio::test]
async fn the_impersonation_notice_respects_the_users_settings() {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let loud = app.user("loud@mail.test").await;
    let quiet = app.user("quiet@mail.test").await;
    app.put(&format!("/api/v1/users/{quiet}/notifications"), &app.admin, json!({"categories": {"security": false}}))
        .await
        .expect(200);
    for id in [&loud, &quiet] {
        app.post(&format!("/api/v1/users/{id}/impersonate"), &app.admin, json!({"reason": "support"}))
            .await
            .expect(200);
    }
    let mails = sink.wait_for("loud@mail.test", 1).await;
    assert_eq!(mails[0].subject(), "An administrator signed in as you");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sink.to("quiet@mail.test").is_empty());
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff() {
    // Nothing listens on this port: every attempt fails and is rescheduled, never lost.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app =
        spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(format!("smtp://127.0.0.1:{port}")))).await;
    app.post("/api/v1/users", &app.admin, json!({"email": "retry@mail.test", "name": "Retry"})).await.expect(201);
    let db = app.db().await;
    let mut row = None;
    for _ in 0..150 {
        let error = db.opt_string("SELECT last_error FROM outbox WHERE recipient = 'retry@mail.test'", &[]).await;
        if error.is_some() {
            let q = |c: &str| format!("SELECT {c} FROM outbox WHERE recipient = 'retry@mail.test'");
            row = Some((
                db.i64(&q("attempts"), &[]).await,
                error,
                db.i64(&q("next_attempt_at"), &[]).await,
                db.i64(&q("created_at"), &[]).await,
            ));
        }
        if row.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (attempts, error, next, created) = row.expect("the failed attempt is recorded");
    assert_eq!(attempts, 1);
    assert!(error.is_some());
    let delay_s = (next - created) as f64 / 1e6;
    assert!((4.0..=10.0).contains(&delay_s), "the first retry comes after ~5 s: {delay_s}");
}

//! Scheduled lifecycle: deactivations that fall due and the dormant-users policy, carried out
//! within seconds by the scheduler, with an injected clock.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> Value {
    for _ in 0..60 {
        let user = app.get(&format!("/api/v1/users/{id}"), &app.admin).await.expect(200);
        if user["status"] == status {
            return user;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} did not become {status} within 6 s");
}

#[tokio::test]
async fn a_scheduled_deactivation_happens_within_seconds_of_its_time() {
    let mut app = spawn_app().await;
    let (id, token) = app.user_with_session("leaving@schedule.test").await;
    let path = format!("/api/v1/users/{id}");
    app.patch(&path, &app.admin, json!({"deactivate_at": "2001-01-01T00:00:00Z"}))
        .await
        .expect_problem(400, "validation_failed");
    let at = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let scheduled = app.patch(&path, &app.admin, json!({"deactivate_at": at})).await.expect(200);
    assert!(scheduled["deactivate_at"].is_string());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.get("/api/v1/me", &token).await.expect(200);
    app.advance(time::Duration::days(1) + time::Duration::seconds(1)).await;
    let user = wait_for_status(&app, &id, "deactivated").await;
    assert!(user["deactivate_at"].is_null());
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
    let event = &app.audit("&type=user.deactivated").await[0];
    assert_eq!(event["detail"]["scheduled"], true);
    assert!(event["actor_id"].is_null(), "Steward itself did it");
}

#[tokio::test]
async fn a_cleared_schedule_does_nothing() {
    let app = spawn_app().await;
    let id = app.user("staying@schedule.test").await;
    let path = format!("/api/v1/users/{id}");
    let at = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    app.patch(&path, &app.admin, json!({"deactivate_at": at})).await.expect(200);
    app.patch(&path, &app.admin, json!({"deactivate_at": null})).await.expect(200);
    app.state.clock.advance(time::Duration::hours(2));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.get(&path, &app.admin).await.expect(200)["status"], "active");
}

#[tokio::test]
async fn the_dormant_policy_deactivates_users_not_seen_for_its_days_but_never_the_last_admin() {
    let mut app = spawn_app().await;
    let idle = app.user("idle@schedule.test").await;
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"dormant_after_days": 30}})).await.expect(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.get(&format!("/api/v1/users/{idle}"), &app.admin).await.expect(200)["status"], "active");
    app.advance(time::Duration::days(31)).await;
    wait_for_status(&app, &idle, "deactivated").await;
    let event =
        app.audit("&type=user.deactivated").await.into_iter().find(|e| e["target_id"] == idle.as_str()).unwrap();
    assert_eq!(event["detail"]["policy"], "dormant_after_days");
    assert_eq!(event["detail"]["days"], 30);
    let me = app.get("/api/v1/me", &app.admin).await.expect(200);
    assert_eq!(me["user"]["status"], "active", "the last system admin keeps the instance reachable");
}

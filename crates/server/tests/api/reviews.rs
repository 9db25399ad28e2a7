//! Access reviews from start to CSV to completion.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_instance_review_recommends_decides_exports_and_applies() {
    let app = spawn_app().await;
    let (stale, _) = app.user_with_session("stale@review.test").await;
    let (fresh, _) = app.user_with_session("fresh@review.test").await;
    let db = app.db().await;
    let long_ago =
        ((time::OffsetDateTime::now_utc() - time::Duration::days(60)).unix_timestamp_nanos() / 1000).to_string();
    db.run("UPDATE users SET last_login_at = CAST(? AS BIGINT) WHERE id = ?", &[&long_ago, &stale]).await;
    let review = app.post("/api/v1/access-reviews", &app.admin, json!({"inactive_days": 30})).await.expect(201);
    let id = review["id"].as_str().unwrap().to_owned();
    let rec = |user: &str| {
        review["items"].as_array().unwrap().iter().find(|i| i["user_id"] == user).unwrap()["recommendation"].clone()
    };
    assert_eq!(rec(&stale), "deactivate");
    assert_eq!(rec(&fresh), "keep");
    let decisions = format!("/api/v1/access-reviews/{id}/decisions");
    app.post(&decisions, &app.admin, json!({"user_id": stale, "decision": "remove_from_org"}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&decisions, &app.admin, json!({"user_id": stale, "decision": "deactivate"})).await.expect(200);
    app.post(&decisions, &app.admin, json!({"user_id": fresh, "decision": "keep"})).await.expect(200);
    let csv = app
        .client
        .get(format!("{}/api/v1/access-reviews/{id}", app.base))
        .bearer_auth(&app.admin)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("user_id,email,last_login_at,roles,recommendation,decision"));
    assert!(text.lines().any(|l| l.starts_with(&stale) && l.ends_with(",deactivate,deactivate")), "{text}");
    let done = app.post(&format!("/api/v1/access-reviews/{id}/complete"), &app.admin, json!({})).await.expect(200);
    assert!(done["completed_at"].is_string());
    assert_eq!(app.get(&format!("/api/v1/users/{stale}"), &app.admin).await.expect(200)["status"], "deactivated");
    assert_eq!(app.get(&format!("/api/v1/users/{fresh}"), &app.admin).await.expect(200)["status"], "active");
    app.post(&format!("/api/v1/access-reviews/{id}/complete"), &app.admin, json!({}))
        .await
        .expect_problem(409, "invalid_transition");
    let (_, plain) = app.user_with_session("plain@review.test").await;
    app.post("/api/v1/access-reviews", &plain, json!({"inactive_days": 30})).await.expect_problem(403, "forbidden");
}

#[tokio::test]
async fn an_org_review_removes_members_who_were_not_seen_but_never_the_owner() {
    let app = spawn_app().await;
    let owner = app.user("owner@orgreview.test").await;
    let org = app.org("Reviewed", &owner).await;
    let member = app.user("member@orgreview.test").await;
    app.add_member(&org, &member, "member").await;
    let review =
        app.post("/api/v1/access-reviews", &app.admin, json!({"org_id": org, "inactive_days": 0})).await.expect(201);
    let id = review["id"].as_str().unwrap();
    let rec = |user: &str| {
        review["items"].as_array().unwrap().iter().find(|i| i["user_id"] == user).unwrap()["recommendation"].clone()
    };
    assert_eq!(rec(&member), "remove_from_org");
    assert_eq!(rec(&owner), "keep", "the owner is never recommended for removal");
    for user in [&member, &owner] {
        app.post(
            &format!("/api/v1/access-reviews/{id}/decisions"),
            &app.admin,
            json!({"user_id": user, "decision": "remove_from_org"}),
        )
        .await
        .expect(200);
    }
    app.post(&format!("/api/v1/access-reviews/{id}/complete"), &app.admin, json!({})).await.expect(200);
    let members = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await.expect(200);
    let ids: Vec<&str> = members["items"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![owner.as_str()], "the member left; the owner stayed");
}

#[tokio::test]
async fn instance_admins_are_reminded_when_a_review_is_due() {
    let (sink, url) = crate::smtp::SmtpSink::start().await;
    let app = crate::helpers::spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let s = app.get("/api/v1/instance", &app.admin).await.expect(200);
    assert_eq!(s["policies"]["review_interval_days"], 90, "reviews are due every 90 days by default");
    app.user("not-an-admin@review.test").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(sink.to(crate::helpers::ADMIN_EMAIL).is_empty());
    app.state.clock.advance(time::Duration::days(91));
    let mails = sink.wait_for(crate::helpers::ADMIN_EMAIL, 1).await;
    assert_eq!(mails[0].subject(), "An access review is due");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(sink.to(crate::helpers::ADMIN_EMAIL).len(), 1, "once per interval");
    assert!(sink.to("not-an-admin@review.test").is_empty());
}

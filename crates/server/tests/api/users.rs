//! Users: creation, search, pagination, changes, and invariant 2 (no email belongs to two
//! users, ever; no user row is ever deleted).

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn a_user_is_created_active_with_a_password_and_invited_without() {
    let app = spawn_app().await;
    let active = app
        .post("/api/v1/users", &app.admin, json!({"email": "Ada@Example.COM", "name": "Ada", "password": PASSWORD}))
        .await
        .expect(201);
    assert_eq!(active["status"], "active");
    assert_eq!(active["email"], "Ada@example.com", "the domain is lower-cased, the local part kept");
    assert!(active["locale"].is_null(), "fields without a value are present as null");
    assert!(active.get("password_hash").is_none() && active.get("password").is_none());
    let invited =
        app.post("/api/v1/users", &app.admin, json!({"email": "bo@example.com", "name": "Bo"})).await.expect(201);
    assert_eq!(invited["status"], "invited");
    app.login("ada@example.com", PASSWORD).await;
}

#[tokio::test]
async fn invariant_2_an_email_never_belongs_to_two_users_whatever_its_case() {
    let app = spawn_app().await;
    app.user("sam@example.com").await;
    for email in ["sam@example.com", "SAM@EXAMPLE.COM", " Sam@Example.com "] {
        app.post("/api/v1/users", &app.admin, json!({"email": email, "name": "Sam again"}))
            .await
            .expect_problem(409, "email_taken");
    }
}

#[tokio::test]
async fn invariant_2_holds_under_concurrent_creation() {
    let app = spawn_app().await;
    let emails = ["race@example.com", "RACE@example.com", "Race@Example.com", "race@EXAMPLE.com"];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let email = emails[i % emails.len()];
        let client = app.client.clone();
        let url = format!("{}/api/v1/users", app.base);
        let admin = app.admin.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(admin)
                .json(&json!({"email": email, "name": "Racer"}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap().as_u16() {
            201 => created += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 1);
    let db = app.db().await;
    let n = db.i64("SELECT COUNT(*) FROM users WHERE email_key = 'race@example.com'", &[]).await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_deactivated_users_email_answers_user_deactivated_with_their_id() {
    let app = spawn_app().await;
    let id = app.user("gone@example.com").await;
    // The lifecycle API comes later; set the status behind Steward's back to test the refusal.
    let db = app.db().await;
    db.run("UPDATE users SET status = 'deactivated' WHERE id = ?", &[&id]).await;
    let before = app.snapshot().await;
    let body = app
        .post("/api/v1/users", &app.admin, json!({"email": "GONE@example.com", "name": "Gone again"}))
        .await
        .expect_problem(409, "user_deactivated");
    assert_eq!(body["user_id"], id.as_str());
    assert!(body["detail"].as_str().unwrap().contains("reactivate"));
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn invariant_2_no_user_row_is_ever_deleted() {
    let app = spawn_app().await;
    let id = app.user("keep@example.com").await;
    let db = app.db().await;
    let err = db.exec("DELETE FROM users WHERE id = ?", &[&id]).await.unwrap_err();
    assert!(err.contains("users are never deleted"), "{err}");
    app.get(&format!("/api/v1/users/{id}"), &app.admin).await.expect(200);
    let r = app.delete(&format!("/api/v1/users/{id}"), &app.admin).await;
    assert_eq!(r.status.as_u16(), 405, "there is no way to delete a user through the API");
}

#[tokio::test]
async fn users_are_searched_filtered_and_paged_newest_first() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.post(
            "/api/v1/users",
            &app.admin,
            json!({"email": format!("p{i}@paging.test"), "name": format!("Pager {i}")}),
        )
        .await
        .expect(201);
    }
    app.user("zed@other.test").await;
    let q = app.get("/api/v1/users?q=PAGING", &app.admin).await.expect(200);
    assert_eq!(q["items"].as_array().unwrap().len(), 7);
    let q = app.get("/api/v1/users?q=pager%203", &app.admin).await.expect(200);
    assert_eq!(q["items"][0]["email"], "p3@paging.test");
    let q = app.get("/api/v1/users?q=%25", &app.admin).await.expect(200);
    assert_eq!(q["items"].as_array().unwrap().len(), 0, "LIKE wildcards in q are literal");
    let invited = app.get("/api/v1/users?status=invited", &app.admin).await.expect(200);
    assert_eq!(invited["items"].as_array().unwrap().len(), 7);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=3&cursor={c}"),
            None => "/api/v1/users?limit=3".to_owned(),
        };
        let page = app.get(&path, &app.admin).await.expect(200);
        for u in page["items"].as_array().unwrap() {
            seen.push(u["email"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 9);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 9);
    assert_eq!(seen[0], "zed@other.test", "newest first");
    assert_eq!(seen[8], "root@steward.test");
}

#[tokio::test]
async fn patch_honours_if_match_and_bumps_the_version() {
    let app = spawn_app().await;
    let id = app.user("pat@example.com").await;
    let path = format!("/api/v1/users/{id}");
    let r = app
        .client
        .patch(format!("{}{path}", app.base))
        .bearer_auth(&app.admin)
        .header("If-Match", "\"7\"")
        .json(&json!({"name": "Pat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "precondition_failed");
    let r = app
        .client
        .patch(format!("{}{path}", app.base))
        .bearer_auth(&app.admin)
        .header("If-Match", "\"1\"")
        .json(&json!({"name": "Pat", "locale": "cs-CZ", "timezone": "Europe/Prague"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!((body["name"].as_str(), body["version"].as_i64()), (Some("Pat"), Some(2)));
    let cleared = app.patch(&path, &app.admin, json!({"locale": null})).await.expect(200);
    assert!(cleared["locale"].is_null());
    assert_eq!(cleared["timezone"], "Europe/Prague");
}

#[tokio::test]
async fn instance_roles_can_only_be_granted_by_someone_holding_their_permissions() {
    let app = spawn_app().await;
    let support = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "sup@example.com", "name": "Sup", "password": PASSWORD, "instance_roles": ["admin"]}),
        )
        .await
        .expect(201);
    let token = app.login("sup@example.com", PASSWORD).await;
    // An admin lacks roles.manage and instance.manage, so cannot mint a system_admin.
    let before = app.snapshot().await;
    app.post(
        "/api/v1/users",
        &token,
        json!({"email": "evil@example.com", "name": "Evil", "instance_roles": ["system_admin"]}),
    )
    .await
    .expect_problem(403, "forbidden");
    let id = support["id"].as_str().unwrap();
    app.patch(&format!("/api/v1/users/{id}"), &token, json!({"instance_roles": ["system_admin"]}))
        .await
        .expect_problem(403, "forbidden");
    app.post("/api/v1/users", &app.admin, json!({"email": "x@example.com", "name": "X", "instance_roles": ["wizard"]}))
        .await
        .expect_problem(400, "validation_failed");
    assert_eq!(app.snapshot().await, before);
    // But they may grant what they hold.
    app.post("/api/v1/users", &token, json!({"email": "v@example.com", "name": "V", "instance_roles": ["viewer"]}))
        .await
        .expect(201);
}

#[tokio::test]
async fn the_last_system_admin_keeps_the_role() {
    let app = spawn_app().await;
    let me = app.get("/api/v1/me", &app.admin).await.expect(200);
    let id = me["user"]["id"].as_str().unwrap();
    app.patch(&format!("/api/v1/users/{id}"), &app.admin, json!({"instance_roles": []}))
        .await
        .expect_problem(409, "invalid_transition");
}

#[tokio::test]
async fn an_admin_setting_a_password_ends_the_users_sessions() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_session("reset@example.com").await;
    app.patch(&format!("/api/v1/users/{id}"), &app.admin, json!({"password": "a brand new password"}))
        .await
        .expect(200);
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
    app.login("reset@example.com", "a brand new password").await;
}

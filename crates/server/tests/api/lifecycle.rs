//! Deactivation, reactivation, suspension, anonymization; invariants 3 and 4 and the rule that
//! an email is never reused.

use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn invariant_3_a_deactivated_users_next_request_fails_with_every_credential() {
    let app = spawn_app().await;
    let (id, session) = app.user_with_session("leaver@example.com").await;
    let second = app.login("leaver@example.com", PASSWORD).await;
    let token = app.post("/api/v1/me/tokens", &session, json!({"name": "script"})).await.expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for t in [&session, &second, &token] {
        app.get("/api/v1/me", t).await.expect(200);
    }
    let user = app
        .post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({"reason": "left the company"}))
        .await
        .expect(200);
    assert_eq!(user["status"], "deactivated");
    for t in [&session, &second, &token] {
        app.get("/api/v1/me", t).await.expect_problem(401, "unauthenticated");
    }
    let login = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "leaver@example.com", "password": PASSWORD})),
        )
        .await;
    login.expect_problem(401, "unauthenticated");
    let db = app.db().await;
    let live = db
        .i64(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE user_id = ? AND revoked_at IS NULL) + \
             (SELECT COUNT(*) FROM api_tokens WHERE user_id = ? AND revoked_at IS NULL)",
            &[&id, &id],
        )
        .await;
    assert_eq!(live, 0, "every credential is revoked in the deactivation's transaction");
    let event = &app.audit("&type=user.deactivated").await[0];
    assert_eq!(event["detail"]["credentials_revoked"], 3);
    assert_eq!(event["personal"]["reason"], "left the company");
}

#[tokio::test]
async fn invariant_3_holds_for_suspended_users_too_and_unsuspend_lets_them_back() {
    let app = spawn_app().await;
    let (id, session) = app.user_with_session("pause@example.com").await;
    let token = app.post("/api/v1/me/tokens", &session, json!({"name": "t"})).await.expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/api/v1/users/{id}/suspend"), &app.admin, json!({})).await.expect(200);
    app.get("/api/v1/me", &session).await.expect_problem(401, "unauthenticated");
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
    app.post(&format!("/api/v1/users/{id}/suspend"), &app.admin, json!({}))
        .await
        .expect_problem(409, "invalid_transition");
    app.post(&format!("/api/v1/users/{id}/unsuspend"), &app.admin, json!({})).await.expect(200);
    app.get("/api/v1/me", &token).await.expect(200);
    app.login("pause@example.com", PASSWORD).await;
}

#[tokio::test]
async fn invariant_4_reactivation_restores_memberships_teams_roles_and_ownership_unchanged() {
    let app = spawn_app().await;
    let user = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "ret@example.com", "name": "Ret", "password": PASSWORD, "instance_roles": ["support"]}),
        )
        .await
        .expect(201);
    let id = user["id"].as_str().unwrap().to_owned();
    let other = app.user("other@example.com").await;
    let org_a = app.org("A", &other).await;
    let org_b = app.org("B", &other).await;
    let owned = app.org("Owned", &id).await;
    app.add_member(&org_a, &id, "admin").await;
    app.add_member(&org_b, &id, "accountant").await;
    let team = app.post(&format!("/api/v1/orgs/{org_a}/teams"), &app.admin, json!({"name": "Ops"})).await.expect(201);
    let team = team["id"].as_str().unwrap().to_owned();
    app.put(&format!("/api/v1/teams/{team}/members/{id}"), &app.admin, json!({"role": "team_operator"}))
        .await
        .expect(200);
    let memberships_before = app.memberships(&id).await;
    let teams_before = app.team_memberships(&id).await;

    app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({})).await.expect(200);
    let dormant = app.memberships(&id).await;
    assert_eq!(dormant.len(), 3, "memberships are kept, not removed");
    assert!(dormant.iter().all(|m| m.2), "and dormant: {dormant:?}");
    assert!(app.team_memberships(&id).await.iter().all(|t| t.2));
    let org = app.get(&format!("/api/v1/orgs/{owned}"), &app.admin).await.expect(200);
    assert_ne!(org["owner_id"], id.as_str(), "owned orgs pass to the placeholder owner");
    let placeholder = org["owner_id"].as_str().unwrap().to_owned();
    let instance = app.get("/api/v1/instance", &app.admin).await.expect(200);
    assert_eq!(instance["placeholder_owner_id"], placeholder.as_str());
    let members = app.get(&format!("/api/v1/orgs/{org_a}/members"), &app.admin).await.expect(200);
    let row = members["items"].as_array().unwrap().iter().find(|m| m["user_id"] == id.as_str()).unwrap().clone();
    assert_eq!((row["dormant"].as_bool(), row["status"].as_str()), (Some(true), Some("deactivated")));

    let back = app.post(&format!("/api/v1/users/{id}/reactivate"), &app.admin, json!({})).await.expect(200);
    assert_eq!(back["status"], "active");
    assert_eq!(back["instance_roles"], json!(["support"]));
    assert_eq!(app.memberships(&id).await, memberships_before);
    assert_eq!(app.team_memberships(&id).await, teams_before);
    let org = app.get(&format!("/api/v1/orgs/{owned}"), &app.admin).await.expect(200);
    assert_eq!(org["owner_id"], id.as_str(), "ownership comes back while the placeholder holds it");
    let members = app.get(&format!("/api/v1/orgs/{owned}/members"), &app.admin).await.expect(200);
    assert_eq!(members["items"].as_array().unwrap().len(), 1, "the placeholder left: {members}");
    let token = app.login("ret@example.com", PASSWORD).await;
    let me = app.get("/api/v1/me", &token).await.expect(200);
    assert_eq!(me["memberships"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_named_new_owner_keeps_the_orgs_after_reactivation() {
    let app = spawn_app().await;
    let owner = app.user("o@n.test").await;
    let heir = app.user("h@n.test").await;
    let org = app.org("N", &owner).await;
    app.post(&format!("/api/v1/users/{owner}/deactivate"), &app.admin, json!({"new_owner_id": heir})).await.expect(200);
    let view = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    assert_eq!(view["owner_id"], heir.as_str());
    app.post(&format!("/api/v1/users/{owner}/reactivate"), &app.admin, json!({})).await.expect(200);
    let view = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    assert_eq!(view["owner_id"], heir.as_str());
    let roles: Vec<(String, String, bool)> = app.memberships(&owner).await;
    assert_eq!(roles, vec![(org.clone(), "admin".to_owned(), false)]);
}

#[tokio::test]
async fn an_email_is_never_reused_after_deactivation_or_anonymization() {
    let app = spawn_app().await;
    let owner = app.user("own@reuse.test").await;
    let org = app.org("Reuse", &owner).await;
    let id = app.user("Kim@Reuse.test").await;
    app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({})).await.expect(200);
    let before = app.snapshot().await;
    for email in ["kim@reuse.test", "KIM@REUSE.TEST"] {
        let body = app
            .post("/api/v1/users", &app.admin, json!({"email": email, "name": "Kim"}))
            .await
            .expect_problem(409, "user_deactivated");
        assert_eq!(body["user_id"], id.as_str());
        let body = app
            .post(&format!("/api/v1/orgs/{org}/invitations"), &app.admin, json!({"email": email, "role": "member"}))
            .await
            .expect_problem(409, "user_deactivated");
        assert_eq!(body["user_id"], id.as_str());
    }
    app.put(&format!("/api/v1/orgs/{org}/members/{id}"), &app.admin, json!({"role": "member"}))
        .await
        .expect_problem(409, "user_deactivated");
    assert_eq!(app.snapshot().await, before);

    let anon = app.post(&format!("/api/v1/users/{id}/anonymize"), &app.admin, json!({})).await.expect(200);
    assert_eq!(anon["status"], "anonymized");
    assert!(!anon["email"].as_str().unwrap().contains("kim"));
    assert_eq!(anon["name"], "Anonymized user");
    app.post(&format!("/api/v1/users/{id}/reactivate"), &app.admin, json!({}))
        .await
        .expect_problem(409, "invalid_transition");
    let body = app
        .post("/api/v1/users", &app.admin, json!({"email": "kim@reuse.test", "name": "Kim"}))
        .await
        .expect_problem(409, "user_deactivated");
    // The keyed hash still blocks the email, and the erased address no longer leads to the id.
    assert!(body["user_id"].is_null() && !body.to_string().contains(&id), "{body}");
    let db = app.db().await;
    let leaked =
        db.i64("SELECT COUNT(*) FROM users WHERE lower(email) LIKE '%kim@%' OR email_key LIKE '%kim@%'", &[]).await;
    assert_eq!(leaked, 0, "the email itself is gone from the users table");
    let personal = db.i64("SELECT COUNT(*) FROM audit_events WHERE lower(personal) LIKE '%kim@%'", &[]).await;
    assert_eq!(personal, 0, "and from the audit log's personal parts");
    assert_eq!(app.get("/api/v1/audit/verify", &app.admin).await.expect(200)["ok"], true);
}

#[tokio::test]
async fn lifecycle_bad_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app.user("x@bad.test").await;
    let (_, plain) = app.user_with_session("plain@bad.test").await;
    let me = app.me_id(&app.admin).await;
    let before = app.snapshot().await;
    app.post("/api/v1/users/0190a0b0-0000-7000-8000-000000000000/deactivate", &app.admin, json!({}))
        .await
        .expect_problem(404, "not_found");
    app.post(&format!("/api/v1/users/{id}/reactivate"), &app.admin, json!({}))
        .await
        .expect_problem(409, "invalid_transition");
    app.post(&format!("/api/v1/users/{id}/anonymize"), &app.admin, json!({}))
        .await
        .expect_problem(409, "invalid_transition");
    app.post(&format!("/api/v1/users/{id}/deactivate"), &plain, json!({})).await.expect_problem(403, "forbidden");
    app.post(&format!("/api/v1/users/{me}/deactivate"), &app.admin, json!({}))
        .await
        .expect_problem(409, "invalid_transition");
    app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({"why": "x"}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({"new_owner_id": id}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&format!("/api/v1/users/{id}/impersonate"), &app.admin, json!({}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&format!("/api/v1/users/{id}/impersonate"), &app.admin, json!({"reason": "  "}))
        .await
        .expect_problem(400, "validation_failed");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn admins_list_and_end_a_users_sessions() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_session("s@sessions.test").await;
    app.login("s@sessions.test", PASSWORD).await;
    let list = app.get(&format!("/api/v1/users/{id}/sessions"), &app.admin).await.expect(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let done = app.post(&format!("/api/v1/users/{id}/sessions/revoke"), &app.admin, json!({})).await.expect(200);
    assert_eq!(done["revoked"], 2);
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
    let history = app.get(&format!("/api/v1/users/{id}/history"), &app.admin).await.expect(200);
    let kinds: Vec<&str> = history["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"user.sessions_revoked") && kinds.contains(&"user.created"), "{kinds:?}");
}

#[tokio::test]
async fn notification_settings_are_set_by_the_user_and_by_admins() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_session("n@notify.test").await;
    let mine = app.get("/api/v1/me/notifications", &token).await.expect(200);
    assert_eq!(
        mine["categories"],
        json!({"org_activity": true, "product_updates": true, "security": true, "usage_alerts": true})
    );
    let set = app
        .put("/api/v1/me/notifications", &token, json!({"categories": {"product_updates": false}}))
        .await
        .expect(200);
    assert_eq!(set["categories"]["product_updates"], false);
    assert_eq!(set["categories"]["security"], true);
    app.put("/api/v1/me/notifications", &token, json!({"categories": {"spam": true}}))
        .await
        .expect_problem(400, "validation_failed");
    let path = format!("/api/v1/users/{id}/notifications");
    app.put(&path, &app.admin, json!({"categories": {"usage_alerts": false}})).await.expect(200);
    let read = app.get(&path, &app.admin).await.expect(200);
    assert_eq!(
        (read["categories"]["usage_alerts"].as_bool(), read["categories"]["product_updates"].as_bool()),
        (Some(false), Some(false))
    );
    app.put(&path, &token, json!({"categories": {"usage_alerts": true}})).await.expect_problem(403, "forbidden");
}

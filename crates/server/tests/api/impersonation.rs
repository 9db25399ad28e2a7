//! Login as user; invariant 10.

use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn invariant_10_an_impersonated_session_is_attributed_to_both_and_limited() {
    let app = spawn_app().await;
    let admin_id = app.me_id(&app.admin).await;
    let owner = app.user("owner@imp.test").await;
    let org = app.org("Imp", &owner).await;
    let colleague = app.user("colleague@imp.test").await;
    app.add_member(&org, &colleague, "member").await;

    let imp = app
        .post(&format!("/api/v1/users/{owner}/impersonate"), &app.admin, json!({"reason": "ticket 42"}))
        .await
        .expect(200);
    let token = imp["token"].as_str().unwrap().to_owned();
    let expires = time::OffsetDateTime::parse(
        imp["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(expires <= time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let me = app.get("/api/v1/me", &token).await.expect(200);
    assert_eq!(me["user"]["id"], owner.as_str());
    assert_eq!(me["impersonator"]["id"], admin_id.as_str());
    assert_eq!(me["memberships"][0]["role"], "owner", "the admin sees exactly the user's view");

    app.put(&format!("/api/v1/orgs/{org}/members/{colleague}"), &token, json!({"role": "viewer"})).await.expect(200);
    let event = &app.audit("&type=org.member_role_changed").await[0];
    assert_eq!(event["actor_id"], owner.as_str());
    assert_eq!(event["impersonator_id"], admin_id.as_str());
    let started = &app.audit("&type=user.impersonation_started").await[0];
    assert_eq!(started["personal"]["reason"], "ticket 42");

    app.post(&format!("/api/v1/users/{colleague}/impersonate"), &token, json!({"reason": "chain"}))
        .await
        .expect_problem(403, "forbidden");
    app.post("/api/v1/me/tokens", &token, json!({"name": "backdoor"})).await.expect_problem(403, "forbidden");

    let back = app.post("/api/v1/auth/logout", &token, json!({})).await.expect(200);
    let admin_token = back["token"].as_str().unwrap().to_owned();
    assert_eq!(admin_token, app.admin, "the admin is back in their own session");
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
    let me = app.get("/api/v1/me", &admin_token).await.expect(200);
    assert_eq!(me["user"]["id"], admin_id.as_str());
    assert!(me["impersonator"].is_null());
    let ended = &app.audit("&type=user.impersonation_ended").await[0];
    assert_eq!(
        (ended["actor_id"].as_str(), ended["impersonator_id"].as_str()),
        (Some(owner.as_str()), Some(admin_id.as_str()))
    );
}

#[tokio::test]
async fn an_impersonated_admin_cannot_change_credentials() {
    let app = spawn_app().await;
    let helper = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "ops@imp.test", "name": "Ops", "password": PASSWORD, "instance_roles": ["admin"]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim = app.user("v@imp.test").await;
    let imp = app
        .post(&format!("/api/v1/users/{helper}/impersonate"), &app.admin, json!({"reason": "audit"}))
        .await
        .expect(200);
    let token = imp["token"].as_str().unwrap();
    let before = app.snapshot().await;
    app.patch(&format!("/api/v1/users/{victim}"), token, json!({"password": "stolen password!"}))
        .await
        .expect_problem(403, "forbidden");
    app.patch(&format!("/api/v1/users/{helper}"), token, json!({"password": "stolen password!"}))
        .await
        .expect_problem(403, "forbidden");
    app.post(&format!("/api/v1/users/{victim}/deactivate"), token, json!({})).await.expect_problem(403, "forbidden");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn only_a_system_admin_impersonates_holders_of_instance_roles() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/users",
        &app.admin,
        json!({"email": "sup@imp.test", "name": "Sup", "password": PASSWORD, "instance_roles": ["support"]}),
    )
    .await
    .expect(201);
    let billing = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "bill@imp.test", "name": "Bill", "password": PASSWORD, "instance_roles": ["billing"]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain = app.user("plain@imp.test").await;
    let support = app.login("sup@imp.test", PASSWORD).await;
    app.post(&format!("/api/v1/users/{billing}/impersonate"), &support, json!({"reason": "x"}))
        .await
        .expect_problem(403, "forbidden");
    app.post(&format!("/api/v1/users/{plain}/impersonate"), &support, json!({"reason": "x"})).await.expect(200);
    let viewer = app.user_with_session("viewer@imp.test").await.1;
    app.post(&format!("/api/v1/users/{plain}/impersonate"), &viewer, json!({"reason": "x"}))
        .await
        .expect_problem(403, "forbidden");
}

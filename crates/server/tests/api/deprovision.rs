//! Deprovisioning and restoring a customer; invariant 7.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Everything restore must put back: license, owner, roles, members' notification settings.
async fn state_of(app: &TestApp, org: &str) -> Value {
    let view = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    let members = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await.expect(200);
    let mut roles = Vec::new();
    for m in members["items"].as_array().unwrap() {
        let id = m["user_id"].as_str().unwrap();
        let n = app.get(&format!("/api/v1/users/{id}/notifications"), &app.admin).await.expect(200);
        roles.push(json!([id, m["role"], n["categories"]]));
    }
    roles.sort_by_key(|r| r[0].as_str().unwrap().to_owned());
    json!({"license": view["license"], "owner": view["owner_id"], "state": view["state"], "frozen": view["frozen"], "members": roles})
}

async fn customer(app: &TestApp) -> (String, String, String) {
    let owner = app.user("owner@cust.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Customer", "owner_id": owner, "license": {"operations": 5000, "transfer": 1000000, "users": 10}}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = app.user("admin@cust.test").await;
    app.add_member(&org, &admin, "admin").await;
    app.put(
        &format!("/api/v1/users/{admin}/notifications"),
        &app.admin,
        json!({"categories": {"product_updates": false}}),
    )
    .await
    .expect(200);
    (org, owner, admin)
}

#[tokio::test]
async fn a_dry_run_returns_the_plan_and_changes_nothing() {
    let app = spawn_app().await;
    let (org, _, _) = customer(&app).await;
    let before = app.snapshot().await;
    let plan = app
        .post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "churned", "dry_run": true}))
        .await
        .expect(200);
    assert_eq!(plan["applied"], false);
    assert!(plan["record_id"].is_null());
    let steps: Vec<&str> = plan["plan"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(steps[0].contains("operations 5000 -> 0"), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("placeholder")));
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn invariant_7_deprovision_then_restore_gives_back_license_owner_roles_and_notifications() {
    let app = spawn_app().await;
    let (org, owner, _) = customer(&app).await;
    let before = state_of(&app, &org).await;
    let done = app
        .post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "subscription ended"}))
        .await
        .expect(200);
    assert_eq!(done["applied"], true);
    let record = done["record_id"].as_str().unwrap().to_owned();

    let during = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    assert_eq!(during["state"], "deprovisioned");
    assert_eq!(during["frozen"], true);
    assert_eq!((during["license"]["operations"].as_u64(), during["license"]["transfer"].as_u64()), (Some(0), Some(0)));
    assert_eq!(during["license"]["users"], 10, "limits other than consumables stay");
    assert_ne!(during["owner_id"], owner.as_str());
    let roles = app.memberships(&owner).await;
    assert_eq!(roles, vec![(org.clone(), "member".to_owned(), false)], "the former owner is a member now");
    let n = app.get(&format!("/api/v1/users/{owner}/notifications"), &app.admin).await.expect(200);
    assert!(n["categories"].as_object().unwrap().values().all(|v| v == false), "{n}");
    // Reads still work for the former owner, who stays a member.
    let token = {
        app.patch(&format!("/api/v1/users/{owner}"), &app.admin, json!({"password": "owner password 123"}))
            .await
            .expect(200);
        app.login("owner@cust.test", "owner password 123").await
    };
    app.get(&format!("/api/v1/orgs/{org}"), &token).await.expect(200);
    app.post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "again"}))
        .await
        .expect_problem(409, "invalid_transition");

    let restored = app.post(&format!("/api/v1/orgs/{org}/restore"), &app.admin, json!({})).await.expect(200);
    assert_eq!(restored["state"], "active");
    assert_eq!(state_of(&app, &org).await, before);
    app.post(&format!("/api/v1/orgs/{org}/restore"), &app.admin, json!({"record_id": record}))
        .await
        .expect_problem(409, "invalid_transition");
    let records = app.get(&format!("/api/v1/orgs/{org}/deprovision-records"), &app.admin).await.expect(200);
    let items = records["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["reason"], "subscription ended");
    assert!(items[0]["restored_at"].is_string());
    let kinds: Vec<String> =
        app.audit(&format!("&org_id={org}")).await.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert!(kinds.contains(&"org.deprovisioned".to_owned()) && kinds.contains(&"org.restored".to_owned()));
}

#[tokio::test]
async fn deprovisioning_needs_the_lifecycle_permission_and_a_reason() {
    let app = spawn_app().await;
    let (org, owner, _) = customer(&app).await;
    let token = {
        app.patch(&format!("/api/v1/users/{owner}"), &app.admin, json!({"password": "owner password 123"}))
            .await
            .expect(200);
        app.login("owner@cust.test", "owner password 123").await
    };
    let before = app.snapshot().await;
    app.post(&format!("/api/v1/orgs/{org}/deprovision"), &token, json!({"reason": "x"}))
        .await
        .expect_problem(403, "forbidden");
    app.post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "x", "demote_to": "owner"}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&format!("/api/v1/orgs/{org}/restore"), &app.admin, json!({}))
        .await
        .expect_problem(409, "invalid_transition");
    assert_eq!(app.snapshot().await, before);
}

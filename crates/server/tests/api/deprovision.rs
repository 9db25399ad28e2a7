//! Deprovisioning and restoring a customer; invariant 7.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// The settings of `org`'s own emails in a notification settings document.
fn of_org(settings: &Value, org: &str) -> Value {
    let orgs = settings["orgs"].as_array().expect("the settings name each org");
    orgs.iter().find(|o| o["org_id"] == org).map_or(Value::Null, |o| o["categories"].clone())
}

/// Everything restore must put back: license, owner, roles, members' notification settings.
async fn state_of(app: &TestApp, org: &str) -> Value {
    let view = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    let members = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await.expect(200);
    let mut roles = Vec::new();
    for m in members["items"].as_array().unwrap() {
        let id = m["user_id"].as_str().unwrap();
        let n = app.get(&format!("/api/v1/users/{id}/notifications"), &app.admin).await.expect(200);
        roles.push(json!([id, m["role"], n]));
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
    assert_eq!(of_org(&n, &org), json!({"usage_alerts": false, "org_activity": false}), "{n}");
    assert!(n["categories"].as_object().unwrap().values().all(|v| v == true), "the person's own stay: {n}");
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

/// Deprovisioning one org switches off that org's emails to its members and nothing else: a
/// person who is also in another org keeps that org's emails and their own (security among
/// them), and restore gives back exactly what was switched off — a switch they had turned off
/// themselves stays off.
#[tokio::test]
async fn deprovisioning_one_org_silences_only_that_orgs_emails_and_restore_gives_them_back() {
    let app = spawn_app().await;
    let (globex, _, bob) = customer(&app).await;
    let owner = app.user("acme-owner@cust.test").await;
    let acme = app.org("Acme", &owner).await;
    app.add_member(&acme, &bob, "admin").await;
    let settings = format!("/api/v1/users/{bob}/notifications");
    let mine = json!({"categories": {}, "orgs": [{"org_id": globex, "categories": {"org_activity": false}}]});
    app.put(&settings, &app.admin, mine).await.expect(200);
    let before = app.get(&settings, &app.admin).await.expect(200);
    assert_eq!(of_org(&before, &globex), json!({"usage_alerts": true, "org_activity": false}));

    app.post(&format!("/api/v1/orgs/{globex}/deprovision"), &app.admin, json!({"reason": "churned"})).await.expect(200);
    let during = app.get(&settings, &app.admin).await.expect(200);
    assert_eq!(of_org(&during, &globex), json!({"usage_alerts": false, "org_activity": false}));
    assert_eq!(of_org(&during, &acme), of_org(&before, &acme), "the other org's emails stay on");
    assert_eq!(during["categories"], before["categories"], "the person's own settings are not the org's to change");
    assert_eq!(during["categories"]["security"], true);

    // Mail follows: Acme's usage alert reaches Bob, its admin.
    app.patch(&format!("/api/v1/orgs/{acme}/license"), &app.admin, json!({"operations": 10})).await.expect(200);
    app.post(&format!("/api/v1/orgs/{acme}/usage"), &app.admin, json!({"operations": 9})).await.expect(200);
    let db = app.db().await;
    let alerts = db
        .i64("SELECT COUNT(*) FROM outbox WHERE recipient = 'admin@cust.test' AND category = 'usage_alerts'", &[])
        .await;
    assert!(alerts >= 1, "Acme's alerts still reach Bob");

    app.post(&format!("/api/v1/orgs/{globex}/restore"), &app.admin, json!({})).await.expect(200);
    let after = app.get(&settings, &app.admin).await.expect(200);
    assert_eq!(after, before, "restore gives back exactly what deprovisioning switched off");

    let refused = json!({"categories": {}, "orgs": [{"org_id": acme, "categories": {"security": false}}]});
    app.put(&settings, &app.admin, refused).await.expect_problem(400, "validation_failed");
    let stranger = json!({"categories": {}, "orgs": [{"org_id": "01936f0e-9a21-7c33-8b0d-1e2f3a4b5c6d", "categories": {"usage_alerts": false}}]});
    app.put(&settings, &app.admin, stranger).await.expect_problem(400, "validation_failed");
    assert_eq!(app.get(&settings, &app.admin).await.expect(200), before, "refused settings change nothing");
}

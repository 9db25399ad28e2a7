//! Organizations, members, ownership and licenses; invariant 1 (exactly one owner, who is a
//! member with role `owner`).

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Checks invariant 1 in the database itself.
async fn assert_single_owner(app: &TestApp, org: &str) {
    let db = app.db().await;
    let owners = db
        .strings("SELECT user_id FROM memberships WHERE org_id = ? AND role = 'owner' AND ended_at IS NULL", &[org])
        .await;
    let recorded = db.strings("SELECT owner_id FROM orgs WHERE id = ?", &[org]).await;
    assert_eq!(owners, recorded, "org {org} must have exactly one owner, the recorded one");
}

fn roles(members: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user_id"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_org_is_created_with_its_owner_as_a_member() {
    let app = spawn_app().await;
    let owner = app.user("owner@acme.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Acme", "owner_id": owner, "external_id": "cus_1", "country": "CZ", "license": {"operations": 1000}}))
        .await
        .expect(201);
    assert_eq!(org["owner_id"], owner.as_str());
    assert_eq!(org["state"], "active");
    assert_eq!(org["frozen"], false);
    assert_eq!(org["license"]["operations"], 1000);
    assert!(org["license"]["users"].is_null(), "absent limits are unlimited");
    let id = org["id"].as_str().unwrap();
    let members = app.get(&format!("/api/v1/orgs/{id}/members"), &app.admin).await.expect(200);
    assert_eq!(roles(&members), vec![(owner.clone(), "owner".to_owned())]);
    assert_single_owner(&app, id).await;
    app.post("/api/v1/orgs", &app.admin, json!({"name": "Acme 2", "owner_id": owner, "external_id": "cus_1"}))
        .await
        .expect_problem(409, "external_id_taken");
}

/// The members list pages newest first through every member once, a member who left in
/// between included nowhere, however the pages fall.
#[tokio::test]
async fn members_are_listed_newest_first_a_page_at_a_time() {
    let app = spawn_app().await;
    let owner = app.user("owner@pages.test").await;
    let org = app.org("Paged", &owner).await;
    let mut joined = vec![owner.clone()];
    for i in 0..5 {
        let member = app.user(&format!("member{i}@pages.test")).await;
        app.add_member(&org, &member, "member").await;
        joined.push(member);
    }
    let left = joined.remove(2);
    app.delete(&format!("/api/v1/orgs/{org}/members/{left}"), &app.admin).await.expect(204);
    let mut seen = Vec::new();
    let mut url = format!("/api/v1/orgs/{org}/members?limit=2");
    loop {
        let page = app.get(&url, &app.admin).await.expect(200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(items.iter().map(|m| m["user_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/v1/orgs/{org}/members?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    joined.reverse();
    assert_eq!(seen, joined, "newest first, each once");
    app.get(&format!("/api/v1/orgs/{org}/members?cursor=bm90LWEtY3Vyc29y"), &app.admin)
        .await
        .expect_problem(400, "validation_failed");
}

#[tokio::test]
async fn missing_license_fields_come_from_the_instance_default() {
    let app = spawn_app().await;
    app.patch("/api/v1/instance", &app.admin, json!({"default_license": {"users": 5, "operations": 100}}))
        .await
        .expect(200);
    let owner = app.user("o@d.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "D", "owner_id": owner, "license": {"operations": 7}}))
        .await
        .expect(201);
    assert_eq!(org["license"]["users"], 5);
    assert_eq!(org["license"]["operations"], 7);
}

#[tokio::test]
async fn invariant_1_the_owner_cannot_be_removed_or_demoted_except_by_transfer() {
    let app = spawn_app().await;
    let (owner, owner_token) = app.user_with_session("own@acme.test").await;
    let org = app.org("Acme", &owner).await;
    let member = app.user("mem@acme.test").await;
    app.add_member(&org, &member, "member").await;
    let before = app.snapshot().await;
    app.delete(&format!("/api/v1/orgs/{org}/members/{owner}"), &app.admin).await.expect_problem(409, "owner_required");
    app.delete(&format!("/api/v1/orgs/{org}/members/{owner}"), &owner_token)
        .await
        .expect_problem(409, "owner_required");
    app.put(&format!("/api/v1/orgs/{org}/members/{owner}"), &app.admin, json!({"role": "viewer"}))
        .await
        .expect_problem(409, "owner_required");
    app.put(&format!("/api/v1/orgs/{org}/members/{member}"), &app.admin, json!({"role": "owner"}))
        .await
        .expect_problem(400, "validation_failed");
    assert_eq!(app.snapshot().await, before);
    assert_single_owner(&app, &org).await;
}

#[tokio::test]
async fn invariant_1_transfer_hands_ownership_and_keeps_the_old_owner_as_a_member() {
    let app = spawn_app().await;
    let (owner, owner_token) = app.user_with_session("own@acme.test").await;
    let org = app.org("Acme", &owner).await;
    let next = app.user("next@acme.test").await;
    let outsider = app.user("out@acme.test").await;
    app.add_member(&org, &next, "member").await;
    let path = format!("/api/v1/orgs/{org}/transfer-ownership");
    app.post(&path, &owner_token, json!({"new_owner_id": outsider})).await.expect_problem(409, "invalid_transition");
    let done =
        app.post(&path, &owner_token, json!({"new_owner_id": next, "previous_owner_role": "member"})).await.expect(200);
    assert_eq!(done["owner_id"], next.as_str());
    let members = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await.expect(200);
    let mut expected = vec![(owner.clone(), "member".to_owned()), (next.clone(), "owner".to_owned())];
    expected.sort();
    assert_eq!(roles(&members), expected);
    assert_single_owner(&app, &org).await;
    // The old owner is only a member now and cannot transfer again.
    app.post(&path, &owner_token, json!({"new_owner_id": owner})).await.expect_problem(403, "forbidden");
    let events = app.audit("&type=org.ownership_transferred").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["from"], owner.as_str());
    assert_eq!(events[0]["detail"]["to"], next.as_str());
}

#[tokio::test]
async fn invariant_1_holds_under_concurrent_transfers() {
    let app = spawn_app().await;
    let owner = app.user("own@race.test").await;
    let org = app.org("Race", &owner).await;
    let mut candidates = Vec::new();
    for i in 0..6 {
        let id = app.user(&format!("c{i}@race.test")).await;
        app.add_member(&org, &id, "admin").await;
        candidates.push(id);
    }
    let mut tasks = Vec::new();
    for c in candidates.clone() {
        let client = app.client.clone();
        let url = format!("{}/api/v1/orgs/{org}/transfer-ownership", app.base);
        let admin = app.admin.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(admin)
                .json(&json!({"new_owner_id": c}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let statuses: Vec<u16> = futures_join(tasks).await;
    assert!(statuses.iter().all(|s| *s == 200), "each transfer is serialized and valid: {statuses:?}");
    assert_single_owner(&app, &org).await;
    let db = app.db().await;
    let err = db
        .exec(
            "UPDATE memberships SET role = 'owner' WHERE org_id = ? AND role <> 'owner' AND ended_at IS NULL",
            &[&org],
        )
        .await
        .unwrap_err();
    assert!(err.to_lowercase().contains("unique"), "the database itself refuses a second owner: {err}");
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn org_admins_manage_members_and_members_only_read() {
    let app = spawn_app().await;
    let owner = app.user("own@team.test").await;
    let org = app.org("Team", &owner).await;
    let (admin_id, admin_token) = app.user_with_session("adm@team.test").await;
    let (member_id, member_token) = app.user_with_session("mem@team.test").await;
    let newcomer = app.user("new@team.test").await;
    app.add_member(&org, &admin_id, "admin").await;
    app.add_member(&org, &member_id, "member").await;
    let put = format!("/api/v1/orgs/{org}/members/{newcomer}");
    let before = app.snapshot().await;
    app.put(&put, &member_token, json!({"role": "viewer"})).await.expect_problem(403, "forbidden");
    app.patch(&format!("/api/v1/orgs/{org}"), &member_token, json!({"name": "Mine"}))
        .await
        .expect_problem(403, "forbidden");
    app.put(&format!("/api/v1/orgs/{org}/license"), &admin_token, json!({})).await.expect_problem(403, "forbidden");
    assert_eq!(app.snapshot().await, before);
    app.get(&format!("/api/v1/orgs/{org}/members"), &member_token).await.expect(200);
    app.get(&format!("/api/v1/orgs/{org}/license"), &member_token).await.expect(200);
    // An org admin adds existing users by invitation only: by id, a non-member is not found.
    app.put(&put, &admin_token, json!({"role": "viewer"})).await.expect_problem(404, "not_found");
    app.add_member(&org, &newcomer, "viewer").await;
    let changed = app.put(&put, &admin_token, json!({"role": "viewer"})).await.expect(200);
    assert_eq!(changed["role"], "viewer");
    app.put(&put, &admin_token, json!({"role": "accountant"})).await.expect(200);
    app.delete(&put, &admin_token).await.expect(204);
    app.delete(&put, &admin_token).await.expect_problem(404, "not_found");
    // A member may leave by themselves; the row stays as history.
    app.delete(&format!("/api/v1/orgs/{org}/members/{member_id}"), &member_token).await.expect(204);
    let db = app.db().await;
    let rows = db.i64("SELECT COUNT(*) FROM memberships WHERE org_id = ? AND ended_at IS NOT NULL", &[&org]).await;
    assert_eq!(rows, 2, "ended memberships are kept");
    let events: Vec<String> =
        app.audit(&format!("&org_id={org}")).await.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert!(
        events.contains(&"org.member_removed".to_owned()) && events.contains(&"org.member_role_changed".to_owned())
    );
}

#[tokio::test]
async fn licenses_are_replaced_and_merged_by_license_writers() {
    let app = spawn_app().await;
    let owner = app.user("own@lic.test").await;
    let org = app.org("Lic", &owner).await;
    let path = format!("/api/v1/orgs/{org}/license");
    let put =
        app.put(&path, &app.admin, json!({"operations": 10, "users": 3, "features": {"sso": true}})).await.expect(200);
    assert_eq!(put["users"], 3);
    let merged = app.patch(&path, &app.admin, json!({"users": null, "features": {"beta": true}})).await.expect(200);
    assert!(merged["users"].is_null());
    assert_eq!(merged["operations"], 10);
    assert_eq!(merged["features"], json!({"beta": true, "sso": true}));
    let frozen = app.patch(&path, &app.admin, json!({"operations": 0})).await.expect(200);
    assert_eq!(frozen["operations"], 0);
    let org_view = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    assert_eq!(org_view["frozen"], true, "a consumable at 0 freezes the org");
    app.put(&path, &app.admin, json!({"operatons": 5})).await.expect_problem(400, "validation_failed");
    let changes = app.audit("&type=org.license_changed").await;
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0]["detail"]["after"]["operations"], 0);
}

#[tokio::test]
async fn deactivated_users_cannot_be_given_a_membership() {
    let app = spawn_app().await;
    let owner = app.user("own@x.test").await;
    let org = app.org("X", &owner).await;
    let gone = app.user("gone@x.test").await;
    let db = app.db().await;
    db.run("UPDATE users SET status = 'deactivated' WHERE id = ?", &[&gone]).await;
    app.put(&format!("/api/v1/orgs/{org}/members/{gone}"), &app.admin, json!({"role": "member"}))
        .await
        .expect_problem(409, "user_deactivated");
}

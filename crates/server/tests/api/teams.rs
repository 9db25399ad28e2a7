//! Teams and team members.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn teams_hold_org_members_with_team_roles() {
    let app = spawn_app().await;
    let (owner, owner_token) = app.user_with_session("own@t.test").await;
    let org = app.org("T", &owner).await;
    let member = app.user("m@t.test").await;
    let outsider = app.user("o@t.test").await;
    app.add_member(&org, &member, "member").await;
    let team = app.post(&format!("/api/v1/orgs/{org}/teams"), &owner_token, json!({"name": "Ops"})).await.expect(201);
    let team_id = team["id"].as_str().unwrap();
    app.post(&format!("/api/v1/orgs/{org}/teams"), &owner_token, json!({"name": "OPS"}))
        .await
        .expect_problem(409, "name_taken");
    let put = app
        .put(&format!("/api/v1/teams/{team_id}/members/{member}"), &owner_token, json!({"role": "team_operator"}))
        .await
        .expect(200);
    assert_eq!(put["members"], json!([{"user_id": member, "role": "team_operator", "dormant": false}]));
    app.put(&format!("/api/v1/teams/{team_id}/members/{outsider}"), &owner_token, json!({"role": "team_member"}))
        .await
        .expect_problem(409, "invalid_transition");
    app.put(&format!("/api/v1/teams/{team_id}/members/{member}"), &owner_token, json!({"role": "boss"}))
        .await
        .expect_problem(400, "validation_failed");
    let renamed =
        app.patch(&format!("/api/v1/teams/{team_id}"), &owner_token, json!({"name": "Operations"})).await.expect(200);
    assert_eq!((renamed["name"].as_str(), renamed["version"].as_i64()), (Some("Operations"), Some(2)));
    let list = app.get(&format!("/api/v1/orgs/{org}/teams"), &owner_token).await.expect(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // Leaving the org ends the team membership too.
    app.delete(&format!("/api/v1/orgs/{org}/members/{member}"), &owner_token).await.expect(204);
    let team = app.get(&format!("/api/v1/teams/{team_id}"), &owner_token).await.expect(200);
    assert_eq!(team["members"], json!([]));
    let me = app.get("/api/v1/me", &owner_token).await.expect(200);
    assert_eq!(me["memberships"][0]["role"], "owner");
}

#[tokio::test]
async fn team_members_are_removed_and_kept_in_history() {
    let app = spawn_app().await;
    let (owner, owner_token) = app.user_with_session("own@h.test").await;
    let org = app.org("H", &owner).await;
    let team = app.post(&format!("/api/v1/orgs/{org}/teams"), &owner_token, json!({"name": "Core"})).await.expect(201);
    let team_id = team["id"].as_str().unwrap();
    let path = format!("/api/v1/teams/{team_id}/members/{owner}");
    app.put(&path, &owner_token, json!({"role": "team_admin"})).await.expect(200);
    app.delete(&path, &owner_token).await.expect(204);
    app.delete(&path, &owner_token).await.expect_problem(404, "not_found");
    let db = app.db().await;
    let kept = db.i64("SELECT COUNT(*) FROM team_members WHERE team_id = ? AND ended_at IS NOT NULL", &[team_id]).await;
    assert_eq!(kept, 1);
}

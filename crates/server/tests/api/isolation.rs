//! Invariant 9: nothing of org A is visible to a user whose only role is in org B.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn invariant_9_another_tenants_org_is_invisible_and_untouchable() {
    let app = spawn_app().await;
    let owner_a = app.user("a@a.test").await;
    let org_a = app.org("Org A", &owner_a).await;
    let team_a =
        app.post(&format!("/api/v1/orgs/{org_a}/teams"), &app.admin, json!({"name": "Secret"})).await.expect(201);
    let team_a = team_a["id"].as_str().unwrap().to_owned();
    let (owner_b, token_b) = app.user_with_session("b@b.test").await;
    let org_b = app.org("Org B", &owner_b).await;

    let list = app.get("/api/v1/orgs", &token_b).await.expect(200);
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![org_b.as_str()]);
    let me = app.get("/api/v1/me", &token_b).await.expect(200);
    assert_eq!(me["memberships"].as_array().unwrap().len(), 1);

    let before = app.snapshot().await;
    for path in [
        format!("/api/v1/orgs/{org_a}"),
        format!("/api/v1/orgs/{org_a}/members"),
        format!("/api/v1/orgs/{org_a}/teams"),
        format!("/api/v1/orgs/{org_a}/license"),
        format!("/api/v1/teams/{team_a}"),
    ] {
        app.get(&path, &token_b).await.expect_problem(404, "not_found");
    }
    app.patch(&format!("/api/v1/orgs/{org_a}"), &token_b, json!({"name": "Mine"}))
        .await
        .expect_problem(404, "not_found");
    app.put(&format!("/api/v1/orgs/{org_a}/members/{owner_b}"), &token_b, json!({"role": "admin"}))
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("/api/v1/orgs/{org_a}/members/{owner_a}"), &token_b).await.expect_problem(404, "not_found");
    app.post(&format!("/api/v1/orgs/{org_a}/transfer-ownership"), &token_b, json!({"new_owner_id": owner_b}))
        .await
        .expect_problem(404, "not_found");
    app.post(&format!("/api/v1/orgs/{org_a}/teams"), &token_b, json!({"name": "Mine"}))
        .await
        .expect_problem(404, "not_found");
    app.put(&format!("/api/v1/teams/{team_a}/members/{owner_b}"), &token_b, json!({"role": "team_admin"}))
        .await
        .expect_problem(404, "not_found");
    app.patch(&format!("/api/v1/teams/{team_a}"), &token_b, json!({"name": "Mine"}))
        .await
        .expect_problem(404, "not_found");
    // Instance-level reads are for instance admins only.
    app.get("/api/v1/users", &token_b).await.expect_problem(403, "forbidden");
    app.get(&format!("/api/v1/users/{owner_a}"), &token_b).await.expect_problem(403, "forbidden");
    app.get("/api/v1/audit", &token_b).await.expect_problem(403, "forbidden");
    app.get("/api/v1/instance", &token_b).await.expect_problem(403, "forbidden");
    app.post("/api/v1/orgs", &token_b, json!({"name": "New", "owner_id": owner_b}))
        .await
        .expect_problem(403, "forbidden");
    assert_eq!(app.snapshot().await, before, "nothing changed");
}

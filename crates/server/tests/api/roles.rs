//! Custom instance roles: named permission sets, the fixed built-in ones, and changes that take
//! effect on the holder's very next request.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn built_in_roles_are_listed_and_cannot_be_changed_or_deleted() {
    let app = spawn_app().await;
    let list = app.get("/api/v1/roles", &app.admin).await.expect(200);
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["system_admin", "admin", "support", "billing", "viewer"]);
    assert!(list["items"].as_array().unwrap().iter().all(|r| r["builtin"] == true));
    assert!(list["next_cursor"].is_null());
    let support = app.get("/api/v1/roles/support", &app.admin).await.expect(200);
    assert!(support["permissions"].as_array().unwrap().contains(&json!("users.impersonate")));
    app.patch("/api/v1/roles/viewer", &app.admin, json!({"permissions": ["users.read"]}))
        .await
        .expect_problem(409, "builtin_role");
    app.delete("/api/v1/roles/admin", &app.admin).await.expect_problem(409, "builtin_role");
    app.post("/api/v1/roles", &app.admin, json!({"name": "billing", "permissions": []}))
        .await
        .expect_problem(409, "builtin_role");
    app.get("/api/v1/roles/nothing_here", &app.admin).await.expect_problem(404, "not_found");
}

#[tokio::test]
async fn a_custom_role_is_validated_created_listed_and_audited() {
    let app = spawn_app().await;
    let bad = app
        .post("/api/v1/roles", &app.admin, json!({"name": "helpdesk", "permissions": ["users.read", "users.fly"]}))
        .await
        .expect_problem(400, "validation_failed");
    assert_eq!(bad["errors"][0]["field"], "permissions[1]");
    app.post("/api/v1/roles", &app.admin, json!({"name": "Help Desk", "permissions": []}))
        .await
        .expect_problem(400, "validation_failed");
    app.post("/api/v1/roles", &app.admin, json!({"name": "helpdesk", "permissions": [], "color": "red"}))
        .await
        .expect_problem(400, "validation_failed");
    let created = app
        .post(
            "/api/v1/roles",
            &app.admin,
            json!({"name": "helpdesk", "permissions": ["sessions.revoke", "users.read"]}),
        )
        .await
        .expect(201);
    assert_eq!(
        created,
        json!({"name": "helpdesk", "permissions": ["sessions.revoke", "users.read"], "builtin": false, "version": 1})
    );
    app.post("/api/v1/roles", &app.admin, json!({"name": "helpdesk", "permissions": []}))
        .await
        .expect_problem(409, "role_exists");
    let list = app.get("/api/v1/roles", &app.admin).await.expect(200);
    assert_eq!(list["items"].as_array().unwrap().last().unwrap()["name"], "helpdesk");
    let patched = app
        .request(
            reqwest::Method::PATCH,
            "/api/v1/roles/helpdesk",
            Some(&app.admin),
            Some(json!({"permissions": ["users.read"]})),
        )
        .await
        .expect(200);
    assert_eq!(patched["version"], 2);
    let kinds: Vec<Value> = app.audit("").await.iter().map(|e| e["type"].clone()).collect();
    assert!(kinds.contains(&json!("role.created")) && kinds.contains(&json!("role.updated")));
}

#[tokio::test]
async fn a_permission_taken_from_a_role_is_refused_on_the_very_next_request() {
    let app = spawn_app().await;
    app.post("/api/v1/roles", &app.admin, json!({"name": "helpdesk", "permissions": ["users.read"]})).await.expect(201);
    app.post(
        "/api/v1/users",
        &app.admin,
        json!({"email": "desk@steward.test", "name": "Desk", "password": PASSWORD, "instance_roles": ["helpdesk"]}),
    )
    .await
    .expect(201);
    let desk = app.login("desk@steward.test", PASSWORD).await;
    // Twice, so that the second answer comes from the principal cache.
    app.get("/api/v1/users", &desk).await.expect(200);
    app.get("/api/v1/users", &desk).await.expect(200);
    app.patch("/api/v1/roles/helpdesk", &app.admin, json!({"permissions": []})).await.expect(200);
    app.get("/api/v1/users", &desk).await.expect_problem(403, "forbidden");
    app.patch("/api/v1/roles/helpdesk", &app.admin, json!({"permissions": ["users.read"]})).await.expect(200);
    app.get("/api/v1/users", &desk).await.expect(200);
    let me = app.get("/api/v1/me", &desk).await.expect(200);
    assert_eq!(me["instance_roles"], json!(["helpdesk"]));
    assert_eq!(me["permissions"], json!(["users.read"]));
}

#[tokio::test]
async fn a_role_in_use_cannot_be_deleted_and_unknown_roles_cannot_be_granted() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/users",
        &app.admin,
        json!({"email": "x@steward.test", "name": "X", "password": PASSWORD, "instance_roles": ["auditor"]}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post("/api/v1/roles", &app.admin, json!({"name": "auditor", "permissions": ["audit.read"]})).await.expect(201);
    let id = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "x@steward.test", "name": "X", "password": PASSWORD, "instance_roles": ["auditor"]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Deactivated holders count too: reactivation gives the role back.
    app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({})).await.expect(200);
    app.delete("/api/v1/roles/auditor", &app.admin).await.expect_problem(409, "role_in_use");
    app.post(&format!("/api/v1/users/{id}/reactivate"), &app.admin, json!({})).await.expect(200);
    app.patch(&format!("/api/v1/users/{id}"), &app.admin, json!({"instance_roles": []})).await.expect(200);
    app.delete("/api/v1/roles/auditor", &app.admin).await.expect(204);
    app.get("/api/v1/roles/auditor", &app.admin).await.expect_problem(404, "not_found");
    assert_eq!(app.audit("&type=role.deleted").await.len(), 1);
}

#[tokio::test]
async fn managing_roles_needs_roles_manage_and_grants_nothing_the_caller_lacks() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/users",
        &app.admin,
        json!({"email": "adm@steward.test", "name": "Adm", "password": PASSWORD, "instance_roles": ["admin"]}),
    )
    .await
    .expect(201);
    let adm = app.login("adm@steward.test", PASSWORD).await;
    app.get("/api/v1/roles", &adm).await.expect(200);
    app.post("/api/v1/roles", &adm, json!({"name": "mine", "permissions": []})).await.expect_problem(403, "forbidden");
    let (_, plain) = app.user_with_session("plain@acme.example").await;
    app.get("/api/v1/roles", &plain).await.expect_problem(403, "forbidden");
    // A role manager without instance.manage cannot put it into a role.
    app.post("/api/v1/roles", &app.admin, json!({"name": "role_admin", "permissions": ["roles.manage", "users.read"]}))
        .await
        .expect(201);
    app.post(
        "/api/v1/users",
        &app.admin,
        json!({"email": "ra@steward.test", "name": "Ra", "password": PASSWORD, "instance_roles": ["role_admin"]}),
    )
    .await
    .expect(201);
    let ra = app.login("ra@steward.test", PASSWORD).await;
    app.post("/api/v1/roles", &ra, json!({"name": "wide", "permissions": ["instance.manage"]}))
        .await
        .expect_problem(403, "forbidden");
    app.patch("/api/v1/roles/role_admin", &ra, json!({"permissions": ["roles.manage", "users.read", "users.write"]}))
        .await
        .expect_problem(403, "forbidden");
    app.post("/api/v1/roles", &ra, json!({"name": "reader", "permissions": ["users.read"]})).await.expect(201);
}

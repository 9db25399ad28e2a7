//! Bad input gets the documented error and changes nothing.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn bad_input_is_refused_with_the_documented_code_and_changes_nothing() {
    let app = spawn_app().await;
    let owner = app.user("own@bad.test").await;
    let org = app.org("Bad", &owner).await;
    let (_, viewer) = app.user_with_session("viewer@bad.test").await;
    let before = app.snapshot().await;

    let invalid_email = app.post("/api/v1/users", &app.admin, json!({"email": "not-an-email", "name": "X"})).await;
    let body = invalid_email.expect_problem(400, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "email");

    let unknown =
        app.post("/api/v1/users", &app.admin, json!({"email": "u@bad.test", "name": "U", "admin": true})).await;
    let body = unknown.expect_problem(400, "validation_failed");
    assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");

    app.post("/api/v1/users", &app.admin, json!({"email": "p@bad.test", "name": "P", "password": "short"}))
        .await
        .expect_problem(400, "validation_failed");
    app.post("/api/v1/users", &app.admin, json!({"email": "n@bad.test", "name": "   "}))
        .await
        .expect_problem(400, "validation_failed");
    app.post("/api/v1/orgs", &app.admin, json!({"name": "C", "owner_id": owner, "country": "Czechia"}))
        .await
        .expect_problem(400, "validation_failed");
    app.get("/api/v1/users?limit=501", &app.admin).await.expect_problem(400, "validation_failed");
    app.get("/api/v1/users?status=sleeping", &app.admin).await.expect_problem(400, "validation_failed");
    app.get("/api/v1/users?cursor=%%%", &app.admin).await.expect_problem(400, "validation_failed");
    app.get("/api/v1/users?colour=red", &app.admin).await.expect_problem(400, "validation_failed");

    let not_json = app
        .client
        .post(format!("{}/api/v1/users", app.base))
        .bearer_auth(&app.admin)
        .header("Content-Type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    app.request(Method::POST, "/api/v1/users", None, Some(json!({"email": "m@bad.test", "name": "M"})))
        .await
        .expect_problem(401, "unauthenticated");
    app.post("/api/v1/users", "stw_s_forged-token-that-does-not-exist", json!({"email": "w@bad.test", "name": "W"}))
        .await
        .expect_problem(401, "unauthenticated");
    app.post("/api/v1/users", "garbage", json!({"email": "w@bad.test", "name": "W"}))
        .await
        .expect_problem(401, "unauthenticated");

    app.post("/api/v1/users", &viewer, json!({"email": "r@bad.test", "name": "R"}))
        .await
        .expect_problem(403, "forbidden");
    app.get(&format!("/api/v1/orgs/{org}"), &viewer).await.expect_problem(404, "not_found");
    app.get("/api/v1/users/not-a-uuid", &app.admin).await.expect_problem(404, "not_found");
    app.get("/api/v1/users/0190a0b0-0000-7000-8000-000000000000", &app.admin).await.expect_problem(404, "not_found");

    assert_eq!(app.snapshot().await, before, "no bad request changed the database");
}

//! `Idempotency-Key`: a repeat returns the first response and changes nothing.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_repeated_post_with_the_same_key_replays_the_first_response() {
    let app = spawn_app().await;
    let send = |key: &str, email: &str| {
        app.client
            .post(format!("{}/api/v1/users", app.base))
            .bearer_auth(&app.admin)
            .header("Idempotency-Key", key)
            .json(&json!({"email": email, "name": "Idem"}))
            .send()
    };
    let first = send("key-1", "idem@example.com").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let before = app.snapshot().await;
    let again = send("key-1", "idem@example.com").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(app.snapshot().await, before, "the repeat changed nothing");
    let other_body = send("key-1", "someone@example.com").await.unwrap();
    assert_eq!(other_body.status(), 409);
    let body: serde_json::Value = other_body.json().await.unwrap();
    assert_eq!(body["code"], "idempotency_key_reused");
    // Keys are scoped to the caller: another principal's key does not collide.
    let other_token = app.post("/api/v1/me/tokens", &app.admin, json!({"name": "second"})).await.expect(201);
    let other = app
        .client
        .post(format!("{}/api/v1/users", app.base))
        .bearer_auth(other_token["token"].as_str().unwrap())
        .header("Idempotency-Key", "key-1")
        .json(&json!({"email": "third@example.com", "name": "Idem"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 201);
}

#[tokio::test]
async fn instance_settings_merge_validate_and_honour_if_match() {
    let app = spawn_app().await;
    let s = app.get("/api/v1/instance", &app.admin).await.expect(200);
    assert_eq!(s["policies"]["session_hours"], 12);
    assert_eq!(s["policies"]["purge_after_days"], 30);
    assert!(s["placeholder_owner_id"].is_null());
    let v = app
        .patch(
            "/api/v1/instance",
            &app.admin,
            json!({"name": "Acme Cloud", "policies": {"session_hours": 8}, "branding": {"primary_color": "#1f6feb"}}),
        )
        .await
        .expect(200);
    assert_eq!(v["policies"]["session_hours"], 8);
    assert_eq!(v["policies"]["purge_after_days"], 30, "nested objects merge");
    assert_eq!(v["version"], 1);
    let before = app.snapshot().await;
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"session_hours": 0}}))
        .await
        .expect_problem(400, "validation_failed");
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"sesion_hours": 3}}))
        .await
        .expect_problem(400, "validation_failed");
    app.patch("/api/v1/instance", &app.admin, json!({"branding": {"primary_color": "blue"}}))
        .await
        .expect_problem(400, "validation_failed");
    let stale = app
        .client
        .patch(format!("{}/api/v1/instance", app.base))
        .bearer_auth(&app.admin)
        .header("If-Match", "\"0\"")
        .json(&json!({"name": "Stale"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(app.snapshot().await, before);
    // The session policy applies to new logins.
    let login = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({"email": crate::helpers::ADMIN_EMAIL, "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = login.json().await.unwrap();
    let expires = time::OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let hours = (expires - time::OffsetDateTime::now_utc()).whole_minutes() as f64 / 60.0;
    assert!((7.9..=8.0).contains(&hours), "{hours}");
}

#[tokio::test]
async fn remembered_replies_holding_secrets_are_stored_sealed_and_still_replay() {
    let app = spawn_app().await;
    let send = |path: &str, body: serde_json::Value| {
        app.client
            .post(format!("{}{path}", app.base))
            .bearer_auth(&app.admin)
            .header("Idempotency-Key", "secret-reply")
            .json(&body)
            .send()
    };
    let first: serde_json::Value =
        send("/api/v1/me/tokens", json!({"name": "ci"})).await.unwrap().json().await.unwrap();
    let token = first["token"].as_str().unwrap().to_owned();
    let again = send("/api/v1/me/tokens", json!({"name": "ci"})).await.unwrap();
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json::<serde_json::Value>().await.unwrap()["token"], json!(token));
    let totp = app
        .client
        .post(format!("{}/api/v1/me/totp", app.base))
        .bearer_auth(&app.admin)
        .header("Idempotency-Key", "enrol")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let secret = totp["secret"].as_str().unwrap().to_owned();
    // A login's reply holds a session secret and its request the password: nothing of it is kept,
    // and a repeat signs in again.
    let login = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("Idempotency-Key", "login-1")
        .json(&json!({"email": crate::helpers::ADMIN_EMAIL, "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let session = login["token"].as_str().unwrap().to_owned();
    let db = app.db().await;
    let hashes = db.strings("SELECT request_hash FROM idempotency_keys", &[]).await;
    assert_eq!(hashes.len(), 2);
    let stored = db.strings("SELECT body FROM idempotency_keys", &[]).await;
    assert_eq!(stored.len(), 2, "a request carrying a password is not remembered");
    for body in &stored {
        assert!(!body.contains(&token) && !body.contains(&secret) && !body.contains(&session), "{body}");
    }
}

//! Health, readiness, metrics, the OpenAPI document, limits.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    let r = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.get("/api/v1/me", &app.admin).await.expect(200);
    let text = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("steward_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/me\""), "{text}");
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = spawn_app().await;
    let served = app.client.get(format!("{}/api/v1/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let served = served.text().await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    if std::env::var_os("STEWARD_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(path).expect("openapi.json is committed at the repository root");
    assert!(
        served == committed,
        "openapi.json differs from what the code serves; regenerate it with STEWARD_UPDATE_OPENAPI=1 cargo test -p steward openapi"
    );
    let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in
        ["/api/v1/auth/login", "/api/v1/users/{id}", "/api/v1/orgs/{id}/members/{user_id}", "/api/v1/audit/verify"]
    {
        assert!(doc["paths"].get(path).is_some(), "{path} is not described");
    }
}

/// What the document calls public (`security: []`) answers without credentials; every other
/// operation refuses a caller without them with 401 `unauthenticated`.
#[tokio::test]
async fn the_documents_public_operations_are_public_and_no_other() {
    let app = spawn_app().await;
    let doc: serde_json::Value = serde_json::from_str(&steward::app::openapi_json()).unwrap();
    let mut public = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            let concrete =
                path.split('/').map(|s| if s.starts_with('{') { "0192f0c4-0000-7000-8000-000000000000" } else { s });
            let concrete = concrete.collect::<Vec<_>>().join("/");
            let body = (method != reqwest::Method::GET).then(|| json!({}));
            let reply = app.request(method.clone(), &concrete, None, body).await;
            if op["security"] == json!([]) {
                assert_ne!(reply.status, 401, "{method} {path} is documented public: {:#}", reply.body);
                public.push(path.clone());
            } else {
                reply.expect_problem(401, "unauthenticated");
            }
        }
    }
    public.sort();
    assert_eq!(
        public,
        [
            "/api/v1/auth/invitations/{token}/accept",
            "/api/v1/auth/login",
            "/api/v1/auth/password-reset",
            "/api/v1/auth/password-reset/{token}",
            "/api/v1/auth/sso/discover"
        ]
    );
}

#[tokio::test]
async fn unknown_api_paths_answer_a_problem() {
    let app = spawn_app().await;
    app.get("/api/v1/nothing-here", &app.admin).await.expect_problem(404, "not_found");
}

/// A method a path does not take answers 405 with a problem document, which names the path,
/// and keeps the `Allow` header; the instance settings are unchanged.
#[tokio::test]
async fn a_method_an_api_path_does_not_take_answers_a_problem() {
    let app = spawn_app().await;
    let refused = app.request(reqwest::Method::DELETE, "/api/v1/instance", Some(&app.admin), None).await;
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    let allow = refused.headers.get("allow").map(|v| v.to_str().unwrap().to_owned());
    let problem = refused.expect_problem(405, "method_not_allowed");
    assert!(problem["detail"].as_str().unwrap().contains("/api/v1/instance"), "{problem}");
    let allow = allow.expect("405 names the methods the path takes");
    assert!(allow.contains("GET") && allow.contains("PATCH"), "{allow}");
    app.get("/api/v1/instance", &app.admin).await.expect(200);
}

#[tokio::test]
async fn oversized_bodies_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let before = app.snapshot().await;
    let huge = "x".repeat(1024 * 1024 + 10);
    app.post("/api/v1/users", &app.admin, json!({"email": "big@example.com", "name": huge}))
        .await
        .expect_problem(413, "payload_too_large");
    assert_eq!(app.snapshot().await, before);
}

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

/// Every operation has a short summary and a description, and an operationId of its own that
/// reads as a verb on its object (`deactivate_user`, `list_scim_tokens`).
#[test]
fn every_operation_is_summarized_and_described() {
    let doc: serde_json::Value = serde_json::from_str(&steward::app::openapi_json()).unwrap();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let summary = op["summary"].as_str().unwrap_or_default();
            assert!((3..=60).contains(&summary.len()) && !summary.contains('\n'), "{method} {path}: {summary:?}");
            assert!(op["description"].as_str().is_some_and(|d| d.len() > summary.len()), "{method} {path}");
            let id = op["operationId"].as_str().unwrap().to_owned();
            assert!(id.contains('_'), "{method} {path}: {id} should read as a verb on its object");
            assert!(ids.insert(id), "{method} {path}: operationId twice");
        }
    }
}

/// A `PATCH` is a merge patch: its body's schema requires nothing, so that a generated client
/// can send one field. The license patch takes `{"users": 10}` alone.
#[tokio::test]
async fn merge_patch_schemas_require_no_field() {
    let doc: serde_json::Value = serde_json::from_str(&steward::app::openapi_json()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let mut patched = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(body) = item.get("patch").map(|op| &op["requestBody"]["content"]["application/json"]["schema"]) else {
            continue;
        };
        let name = body["$ref"].as_str().unwrap_or_else(|| panic!("PATCH {path} names no schema")).rsplit('/').next();
        let schema = &schemas[name.unwrap()];
        assert!(schema["required"].as_array().is_none_or(|r| r.is_empty()), "PATCH {path}: {schema:#}");
        patched += 1;
    }
    assert!(patched >= 8, "{patched} PATCH operations");
    let app = spawn_app().await;
    let owner = app.user("owner@patch.test").await;
    let org = app.org("Patched", &owner).await;
    let license = app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"users": 10})).await.expect(200);
    assert_eq!((license["users"].as_u64(), license["restart_period"].as_str()), (Some(10), Some("monthly")));
    let team = app.post(&format!("/api/v1/orgs/{org}/teams"), &app.admin, json!({"name": "Ops"})).await.expect(201);
    let same = app.patch(&format!("/api/v1/teams/{}", team["id"].as_str().unwrap()), &app.admin, json!({})).await;
    let same = same.expect(200);
    assert_eq!((&same["name"], &same["version"]), (&team["name"], &team["version"]), "an empty patch changes nothing");
    app.post("/api/v1/roles", &app.admin, json!({"name": "helpdesk", "permissions": ["users.read"]})).await.expect(201);
    let role = app.patch("/api/v1/roles/helpdesk", &app.admin, json!({})).await.expect(200);
    assert_eq!((role["permissions"].clone(), role["version"].as_i64()), (json!(["users.read"]), Some(1)));
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

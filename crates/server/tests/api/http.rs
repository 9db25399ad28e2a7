//! The HTTP conventions every route keeps: a request id on every answer and in problem
//! documents, `Location` on what a `POST` created, `ETag` on versioned resources with
//! `If-None-Match` answered by 304.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app};

fn header(reply: &Reply, name: &str) -> Option<String> {
    reply.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

async fn with_header(app: &TestApp, method: Method, path: &str, name: &str, value: &str) -> Reply {
    let request = app.client.request(method, format!("{}{path}", app.base)).bearer_auth(&app.admin).header(name, value);
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    Reply { status, headers, body }
}

/// A usable `X-Request-Id` comes back as sent; none, or one too long or with spaces, gets a new
/// one; a problem document names the id its answer carries; two requests never share one.
#[tokio::test]
async fn every_answer_carries_a_request_id_and_problems_name_it() {
    let app = spawn_app().await;
    let kept = with_header(&app, Method::GET, "/api/v1/me", "x-request-id", "trace-42_abc.DEF").await;
    assert_eq!(header(&kept, "x-request-id").as_deref(), Some("trace-42_abc.DEF"));
    let made = app.get("/api/v1/me", &app.admin).await;
    let first = header(&made, "x-request-id").expect("an answer without a request id");
    assert_eq!(first.len(), 32, "{first}");
    let again = header(&app.get("/api/v1/me", &app.admin).await, "x-request-id").unwrap();
    assert_ne!(first, again, "each request has its own id");
    for refused in ["has a space", &"x".repeat(129)] {
        let reply = with_header(&app, Method::GET, "/api/v1/me", "x-request-id", refused).await;
        let id = header(&reply, "x-request-id").unwrap();
        assert!(id != refused && id.len() == 32, "{id}");
    }
    let missing = with_header(&app, Method::GET, "/api/v1/nothing-here", "x-request-id", "lost-1").await;
    assert_eq!(header(&missing, "x-request-id").as_deref(), Some("lost-1"));
    assert_eq!(missing.expect_problem(404, "not_found")["request_id"], "lost-1");
    let unauthenticated = app.request(Method::GET, "/api/v1/me", None, None).await;
    let id = header(&unauthenticated, "x-request-id").unwrap();
    assert_eq!(unauthenticated.expect_problem(401, "unauthenticated")["request_id"], id.as_str());
    let not_allowed = app.request(Method::DELETE, "/api/v1/instance", Some(&app.admin), None).await;
    let id = header(&not_allowed, "x-request-id").unwrap();
    assert_eq!(not_allowed.expect_problem(405, "method_not_allowed")["request_id"], id.as_str());
}

/// Every `POST` that creates a resource answers 201 with its `Location`, which reads it back
/// where the resource can be read.
#[tokio::test]
async fn a_created_resource_answers_where_it_is() {
    let app = spawn_app().await;
    let owner = app.user("owner@location.test").await;
    let org = app.org("Located", &owner).await;
    let readable: Vec<(String, Value)> = vec![
        ("/api/v1/users".into(), json!({"email": "new@location.test", "name": "New"})),
        ("/api/v1/orgs".into(), json!({"name": "Another", "owner_id": owner})),
        (format!("/api/v1/orgs/{org}/teams"), json!({"name": "Ops"})),
        (format!("/api/v1/orgs/{org}/assets"), json!({"kind": "scenario", "name": "Sync"})),
        ("/api/v1/roles".into(), json!({"name": "helpdesk", "permissions": ["users.read"]})),
        ("/api/v1/access-reviews".into(), json!({"inactive_days": 30})),
        (format!("/api/v1/orgs/{org}/invitations"), json!({"email": "invited@location.test", "role": "member"})),
    ];
    for (path, body) in readable {
        let created = app.post(&path, &app.admin, body).await;
        let location = header(&created, "location").unwrap_or_else(|| panic!("POST {path} answered no Location"));
        let created = created.expect(201);
        let read = app.get(&location, &app.admin).await.expect(200);
        let key = if path.ends_with("/roles") { "name" } else { "id" };
        assert_eq!(read[key], created[key], "{location} reads another resource than POST {path} made");
    }
    let removable: Vec<(&str, Value, &str)> = vec![
        ("/api/v1/me/tokens", json!({"name": "ci"}), "/api/v1/me/tokens/"),
        ("/api/v1/scim-tokens", json!({"name": "Entra ID"}), "/api/v1/scim-tokens/"),
        (
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["user.created"]}),
            "/api/v1/webhooks/",
        ),
    ];
    for (path, body, prefix) in removable {
        let created = app.post(path, &app.admin, body).await;
        let location = header(&created, "location").unwrap_or_else(|| panic!("POST {path} answered no Location"));
        let id = created.expect(201)["id"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("{prefix}{id}"));
        app.delete(&location, &app.admin).await.expect(204);
    }
}

/// A versioned resource answers `ETag: "<version>"`; `If-None-Match` naming it (or `*`, or its
/// weak form) answers 304 with no body while it is unchanged, and the new version after a
/// change.
#[tokio::test]
async fn a_versioned_resource_answers_its_etag_and_304_while_unchanged() {
    let app = spawn_app().await;
    let owner = app.user("owner@etag.test").await;
    let org = app.org("Tagged", &owner).await;
    let team = app.post(&format!("/api/v1/orgs/{org}/teams"), &app.admin, json!({"name": "Ops"})).await.expect(201);
    let asset = app
        .post(&format!("/api/v1/orgs/{org}/assets"), &app.admin, json!({"kind": "file", "name": "a"}))
        .await
        .expect(201);
    app.post("/api/v1/roles", &app.admin, json!({"name": "helpdesk", "permissions": ["users.read"]})).await.expect(201);
    let resources = [
        (format!("/api/v1/users/{owner}"), json!({"name": "Renamed"})),
        (format!("/api/v1/orgs/{org}"), json!({"name": "Renamed"})),
        (format!("/api/v1/teams/{}", team["id"].as_str().unwrap()), json!({"name": "Renamed"})),
        (format!("/api/v1/assets/{}", asset["id"].as_str().unwrap()), json!({"name": "Renamed"})),
        ("/api/v1/roles/helpdesk".into(), json!({"permissions": ["users.read", "audit.read"]})),
        ("/api/v1/instance".into(), json!({"branding": {"product_name": "Renamed"}})),
    ];
    for (path, change) in resources {
        let first = app.get(&path, &app.admin).await;
        let etag = header(&first, "etag").unwrap_or_else(|| panic!("GET {path} answered no ETag"));
        let version = first.expect(200)["version"].as_i64().unwrap();
        assert_eq!(etag, format!("\"{version}\""), "{path}");
        for tag in [etag.clone(), format!("W/{etag}"), "\"0\", *".into()] {
            let unchanged = with_header(&app, Method::GET, &path, "if-none-match", &tag).await;
            assert_eq!(unchanged.status, 304, "{path} with If-None-Match: {tag}");
            assert_eq!((header(&unchanged, "etag"), &unchanged.body), (Some(etag.clone()), &Value::Null), "{path}");
        }
        let other = with_header(&app, Method::GET, &path, "if-none-match", "\"999\"").await;
        assert_eq!(other.status, 200, "{path}");
        let changed = app.patch(&path, &app.admin, change).await;
        let new_tag = header(&changed, "etag").unwrap_or_else(|| panic!("PATCH {path} answered no ETag"));
        assert_eq!(new_tag, format!("\"{}\"", changed.expect(200)["version"].as_i64().unwrap()), "{path}");
        assert_ne!(new_tag, etag, "{path}");
        let stale = with_header(&app, Method::GET, &path, "if-none-match", &etag).await;
        assert_eq!((stale.status.as_u16(), header(&stale, "etag")), (200, Some(new_tag)), "{path}");
    }
}

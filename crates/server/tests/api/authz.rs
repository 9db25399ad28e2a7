//! The authorization matrix: every operation of `openapi.json`, called as every kind of
//! principal, answers what `tests/authorization.json` says. An operation without an entry fails
//! the test, so that no endpoint ships without a decision about who may call it. Each operation
//! runs on a fresh Steward; within it the principals call from the least to the most privileged,
//! so the first allowed call is the one that changes things.
//!
//! After a deliberate change: `STEWARD_UPDATE_AUTHZ=1 cargo test -p steward --test api authz`,
//! then read the diff of `tests/authorization.json` line by line.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const NOWHERE: &str = "01900000-0000-7000-8000-000000000000";

/// Who calls, least privileged first.
const PRINCIPALS: &[&str] = &[
    "none",
    "deactivated_user_old_token",
    "scim_token",
    "other_org_member",
    "impersonated_session",
    "org_viewer",
    "org_accountant",
    "org_member",
    "org_admin",
    "org_owner",
    "instance_viewer",
    "instance_billing",
    "instance_support",
    "instance_admin",
    "system_admin",
];

struct World {
    tokens: BTreeMap<&'static str, Option<String>>,
    ids: BTreeMap<&'static str, String>,
}

async fn person(app: &TestApp, email: &str, roles: &[&str]) -> (String, String) {
    let body = json!({"email": email, "name": "Person", "password": PASSWORD, "instance_roles": roles});
    let id = app.post("/api/v1/users", &app.admin, body).await.expect(201)["id"].as_str().unwrap().to_owned();
    (id, app.login(email, PASSWORD).await)
}

async fn world(app: &TestApp) -> World {
    let mut tokens: BTreeMap<&'static str, Option<String>> = BTreeMap::new();
    let mut ids = BTreeMap::new();
    tokens.insert("none", None);
    tokens.insert("system_admin", Some(app.admin.clone()));
    for (name, role) in [
        ("instance_viewer", "viewer"),
        ("instance_billing", "billing"),
        ("instance_support", "support"),
        ("instance_admin", "admin"),
    ] {
        let (_, t) = person(app, &format!("{role}@instance.test"), &[role]).await;
        tokens.insert(name, Some(t));
    }
    let (owner, owner_t) = person(app, "owner@a.test", &[]).await;
    let org = app.org("Org A", &owner).await;
    tokens.insert("org_owner", Some(owner_t));
    for (name, role) in
        [("org_admin", "admin"), ("org_member", "member"), ("org_accountant", "accountant"), ("org_viewer", "viewer")]
    {
        let (id, t) = person(app, &format!("{role}@a.test"), &[]).await;
        app.add_member(&org, &id, role).await;
        tokens.insert(name, Some(t));
        ids.insert(name, id);
    }
    let (b_owner, b_t) = person(app, "owner@b.test", &[]).await;
    app.org("Org B", &b_owner).await;
    tokens.insert("other_org_member", Some(b_t));
    ids.insert("other_user", b_owner);
    let (gone, gone_t) = person(app, "gone@a.test", &[]).await;
    app.add_member(&org, &gone, "member").await;
    app.post(&format!("/api/v1/users/{gone}/deactivate"), &app.admin, json!({})).await.expect(200);
    tokens.insert("deactivated_user_old_token", Some(gone_t));
    ids.insert("deactivated", gone);
    let member = ids["org_member"].clone();
    let imp = app.post(&format!("/api/v1/users/{member}/impersonate"), &app.admin, json!({"reason": "matrix"})).await;
    tokens.insert("impersonated_session", Some(imp.expect(200)["token"].as_str().unwrap().to_owned()));
    let scim = app.post("/api/v1/scim-tokens", &app.admin, json!({"name": "matrix"})).await.expect(201);
    tokens.insert("scim_token", Some(scim["token"].as_str().unwrap().to_owned()));
    ids.insert("scim_token", scim["id"].as_str().unwrap().to_owned());

    let team = app.post(&format!("/api/v1/orgs/{org}/teams"), &app.admin, json!({"name": "Team A"})).await.expect(201);
    ids.insert("team", team["id"].as_str().unwrap().to_owned());
    let asset =
        app.post(&format!("/api/v1/orgs/{org}/assets"), &app.admin, json!({"kind": "scenario", "name": "S"})).await;
    ids.insert("asset", asset.expect(201)["id"].as_str().unwrap().to_owned());
    let hook = app
        .post("/api/v1/webhooks", &app.admin, json!({"url": "http://127.0.0.1:9/hook", "events": ["user.created"]}))
        .await
        .expect(201);
    ids.insert("webhook", hook["id"].as_str().unwrap().to_owned());
    let review = app.post("/api/v1/access-reviews", &app.admin, json!({"inactive_days": 30})).await.expect(201);
    ids.insert("review", review["id"].as_str().unwrap().to_owned());
    app.post("/api/v1/roles", &app.admin, json!({"name": "auditor", "permissions": ["audit.read"]})).await.expect(201);
    ids.insert("org", org);
    ids.insert("owner", owner);
    World { tokens, ids }
}

/// The concrete path and body of an operation in this world.
fn request(op: &str, w: &World) -> (String, Option<Value>) {
    let (method, path) = op.split_once(' ').unwrap();
    let id_for = |segment: &str| -> String {
        match segment {
            "users" => w.ids["org_member"].clone(),
            "orgs" => w.ids["org"].clone(),
            "teams" => w.ids["team"].clone(),
            "assets" => w.ids["asset"].clone(),
            "webhooks" => w.ids["webhook"].clone(),
            "access-reviews" => w.ids["review"].clone(),
            "scim-tokens" => w.ids["scim_token"].clone(),
            _ => NOWHERE.to_owned(),
        }
    };
    let mut out = Vec::new();
    let mut previous = "";
    for seg in path.split('/') {
        let value = match seg {
            "{id}" => {
                // Reactivation and erasure act on the deactivated user.
                if previous == "users" && (path.ends_with("/reactivate") || path.ends_with("/anonymize")) {
                    w.ids["deactivated"].clone()
                } else {
                    id_for(previous)
                }
            }
            "{user_id}" => w.ids["org_member"].clone(),
            "{name}" => "auditor".to_owned(),
            "{token}" | "{delivery_id}" => NOWHERE.to_owned(),
            other => other.to_owned(),
        };
        previous = seg;
        out.push(value);
    }
    let path = out.join("/");
    let member = &w.ids["org_member"];
    let body = match op {
        "POST /api/v1/access-reviews" => json!({"inactive_days": 30}),
        "POST /api/v1/access-reviews/{id}/decisions" => json!({"user_id": member, "decision": "keep"}),
        "PATCH /api/v1/assets/{id}" => json!({"name": "Renamed"}),
        "POST /api/v1/auth/invitations/{token}/accept" | "POST /api/v1/auth/password-reset/{token}" => {
            json!({"password": "a new long password"})
        }
        "POST /api/v1/auth/login" => json!({"email": "nobody@nowhere.test", "password": "not the password"}),
        "POST /api/v1/auth/password-reset" | "POST /api/v1/auth/sso/discover" => {
            json!({"email": "nobody@nowhere.test"})
        }
        "POST /api/v1/check" => json!({"user_id": member, "org_id": w.ids["org"], "action": "asset.read"}),
        "PATCH /api/v1/instance" => json!({"name": "Renamed"}),
        "PUT /api/v1/me/notifications" | "PUT /api/v1/users/{id}/notifications" => json!({"categories": {}}),
        "POST /api/v1/me/tokens" => json!({"name": "matrix"}),
        "POST /api/v1/orgs" => json!({"name": "New org", "owner_id": w.ids["owner"]}),
        "PATCH /api/v1/orgs/{id}" => json!({"name": "Org A renamed"}),
        "POST /api/v1/orgs/{id}/assets" => json!({"kind": "scenario", "name": "S2"}),
        "POST /api/v1/orgs/{id}/deprovision" => json!({"reason": "matrix", "dry_run": true}),
        "POST /api/v1/orgs/{id}/invitations" => json!({"email": "invited@a.test", "role": "member"}),
        "PUT /api/v1/orgs/{id}/license" | "PATCH /api/v1/orgs/{id}/license" => json!({"operations": 100}),
        "PUT /api/v1/orgs/{id}/members/{user_id}" => json!({"role": "member"}),
        "POST /api/v1/orgs/{id}/purge" => json!({"confirm": "Org A"}),
        "POST /api/v1/orgs/{id}/teams" => json!({"name": "Team B"}),
        "POST /api/v1/orgs/{id}/transfer-ownership" => json!({"new_owner_id": w.ids["org_admin"]}),
        "POST /api/v1/orgs/{id}/usage" => json!({"operations": 1}),
        "POST /api/v1/scim-tokens" => json!({"name": "another"}),
        "PATCH /api/v1/teams/{id}" => json!({"name": "Team renamed"}),
        "PUT /api/v1/teams/{id}/members/{user_id}" => json!({"role": "team_member"}),
        "POST /api/v1/users" => json!({"email": "new@instance.test", "name": "New"}),
        "PATCH /api/v1/users/{id}" => json!({"name": "Renamed"}),
        "POST /api/v1/users/{id}/deactivate" => json!({"reason": "matrix"}),
        "POST /api/v1/users/{id}/impersonate" => json!({"reason": "matrix"}),
        "POST /api/v1/roles" => json!({"name": "matrix_role", "permissions": ["users.read"]}),
        "PATCH /api/v1/roles/{name}" => json!({"permissions": ["audit.read", "users.read"]}),
        "POST /api/v1/webhooks" => json!({"url": "http://127.0.0.1:9/other", "events": ["user.created"]}),
        _ if method == "POST" || method == "PUT" || method == "PATCH" => json!({}),
        _ => return (path, None),
    };
    (path, Some(body))
}

fn operations() -> Vec<String> {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json")).unwrap(),
    )
    .unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    ops
}

async fn observe(op: String) -> (String, BTreeMap<String, u16>) {
    let app = spawn_app().await;
    let w = world(&app).await;
    let (method, _) = op.split_once(' ').unwrap();
    let method: Method = method.parse().unwrap();
    let (path, body) = request(&op, &w);
    let mut row = BTreeMap::new();
    for p in PRINCIPALS {
        let token = w.tokens[p].as_deref();
        let reply = app.request(method.clone(), &path, token, body.clone()).await;
        assert!(reply.status.as_u16() < 500, "{op} as {p}: {:#}", reply.body);
        row.insert((*p).to_owned(), reply.status.as_u16());
    }
    (op, row)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_every_principal_as_the_matrix_says() {
    let ops = operations();
    let mut observed: BTreeMap<String, BTreeMap<String, u16>> = BTreeMap::new();
    for chunk in ops.chunks(8) {
        let runs = chunk.iter().cloned().map(|op| tokio::spawn(observe(op)));
        for run in runs {
            let (op, row) = run.await.unwrap();
            observed.insert(op, row);
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/authorization.json");
    let text = serde_json::to_string_pretty(&observed).unwrap() + "\n";
    if std::env::var_os("STEWARD_UPDATE_AUTHZ").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let expected: BTreeMap<String, BTreeMap<String, u16>> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("tests/authorization.json is committed")).unwrap();
    let mut problems = Vec::new();
    for (op, row) in &observed {
        match expected.get(op) {
            None => problems.push(format!("{op}: no entry in tests/authorization.json")),
            Some(want) => {
                for (p, status) in row {
                    if want.get(p) != Some(status) {
                        problems.push(format!("{op} as {p}: {status}, the matrix says {:?}", want.get(p)));
                    }
                }
            }
        }
    }
    for op in expected.keys().filter(|op| !observed.contains_key(*op)) {
        problems.push(format!("{op}: in the matrix but not in openapi.json"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The rules that matter most, stated here too so that a regenerated matrix cannot hide them.
    for (op, row) in &observed {
        let public =
            ["/auth/login", "/auth/password-reset", "/auth/invitations/", "/auth/sso/"].iter().any(|p| op.contains(p));
        if !public {
            assert_eq!(row["none"], 401, "{op} without a token");
            assert_eq!(row["deactivated_user_old_token"], 401, "{op} with a deactivated user's token");
            assert_eq!(row["scim_token"], 401, "{op} with a SCIM token");
        }
        if op.contains("/orgs/{id}") || op.contains("/teams/{id}") || op.contains("/assets/{id}") {
            let other = row["other_org_member"];
            assert!(other == 403 || other == 404, "{op}: another org's member got {other}");
        }
    }
    for op in ["POST /api/v1/users/{id}/impersonate", "POST /api/v1/me/tokens", "POST /api/v1/scim-tokens"] {
        assert_eq!(observed[op]["impersonated_session"], 403, "{op} in an impersonated session");
    }
}

//! The authorization matrix's target dimension: every operation that acts on a user — each
//! operation of `openapi.json` with a user in its path, the ones that name a user in their body,
//! the SCIM operations on Users and Groups, and the scheduler carrying out a deactivation someone
//! scheduled — called by the principals of org A (its owner, admin and member, and its admin
//! through a JWT of an issuer trusted for A's domain), by A's and B's SCIM tokens and an
//! instance-wide one, by each single instance permission and by the built-in roles, against A's own person,
//! B's person, a person in both, an instance admin and a system admin (both members of A). What
//! each cell answers is written in `tests/authorization_targets.json`; an operation without its
//! rows fails. Single sign-on's cells are in `sso.rs` (they need the real provider).
//!
//! After a deliberate change: `STEWARD_UPDATE_AUTHZ=1 cargo test -p steward --test api authz_targets`,
//! then read the diff line by line.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const TARGETS: &[&str] = &["a_person", "b_person", "shared", "instance_admin", "system_admin"];

const PERMISSIONS: &[&str] = &[
    "users.read",
    "users.write",
    "users.lifecycle",
    "users.impersonate",
    "sessions.revoke",
    "orgs.read",
    "orgs.write",
    "orgs.lifecycle",
    "licenses.write",
    "usage.write",
    "audit.read",
    "reviews.manage",
    "instance.manage",
    "roles.manage",
    "webhooks.manage",
    "scim.manage",
];

const BUILTINS: &[(&str, &str)] = &[
    ("instance_viewer", "viewer"),
    ("instance_billing", "billing"),
    ("instance_support", "support"),
    ("instance_admin", "admin"),
];

const SCIM_PRINCIPALS: &[&str] = &["scim_b", "scim_a", "scim_instance"];

/// Who calls an API operation, least privileged first.
fn api_principals() -> Vec<String> {
    let mut all: Vec<String> =
        ["org_a_member", "org_a_admin", "jwt_org_a_admin", "org_a_owner"].iter().map(|s| (*s).to_owned()).collect();
    all.extend(PERMISSIONS.iter().map(|p| format!("perm_{}", p.replace('.', "_"))));
    all.extend(BUILTINS.iter().map(|(name, _)| (*name).to_owned()));
    all.push("system_admin".to_owned());
    all
}

struct World {
    tokens: BTreeMap<String, String>,
    targets: BTreeMap<&'static str, (String, String)>,
    org_a: String,
    team_a: String,
    review: String,
}

async fn person(app: &TestApp, email: &str, roles: &[&str]) -> String {
    let body = json!({"email": email, "name": "Person", "password": PASSWORD, "instance_roles": roles});
    app.post("/api/v1/users", &app.admin, body).await.expect(201)["id"].as_str().unwrap().to_owned()
}

async fn world(app: &TestApp) -> World {
    let mut tokens = BTreeMap::new();
    tokens.insert("system_admin".to_owned(), app.admin.clone());
    let owner = person(app, "owner@a.test", &[]).await;
    let org_a = app.org("Org A", &owner).await;
    tokens.insert("org_a_owner".to_owned(), app.login("owner@a.test", PASSWORD).await);
    for (name, role) in [("org_a_admin", "admin"), ("org_a_member", "member")] {
        let email = format!("{role}@a.test");
        let id = person(app, &email, &[]).await;
        app.add_member(&org_a, &id, role).await;
        tokens.insert(name.to_owned(), app.login(&email, PASSWORD).await);
    }
    // An API of A's that calls Steward with the tokens of an issuer trusted for A's domain.
    let key = crate::jwt::TestKey::ed25519("matrix");
    let issuer = json!({"issuer": "http://127.0.0.1/matrix", "audience": "steward", "public_key_pem": key.pem(), "domains": ["a.test"]});
    app.post("/api/v1/jwt-issuers", &app.admin, issuer).await.expect(201);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({"iss": "http://127.0.0.1/matrix", "aud": "steward", "sub": "a-admin", "email": "admin@a.test",
        "iat": now, "exp": now + 3600});
    tokens.insert("jwt_org_a_admin".to_owned(), key.sign(&claims));
    for p in PERMISSIONS {
        let role = format!("perm_{}", p.replace('.', "_"));
        app.post("/api/v1/roles", &app.admin, json!({"name": role, "permissions": [p]})).await.expect(201);
        let email = format!("{role}@instance.test");
        person(app, &email, &[&role]).await;
        tokens.insert(role, app.login(&email, PASSWORD).await);
    }
    for (name, role) in BUILTINS {
        let email = format!("{role}@instance.test");
        person(app, &email, &[role]).await;
        tokens.insert((*name).to_owned(), app.login(&email, PASSWORD).await);
    }
    let b_owner = person(app, "owner@b.test", &[]).await;
    let org_b = app.org("Org B", &b_owner).await;
    let scim = |org: Option<&str>| {
        let body = match org {
            Some(o) => json!({"name": "idp", "org_id": o}),
            None => json!({"name": "idp"}),
        };
        async move {
            app.post("/api/v1/scim-tokens", &app.admin, body).await.expect(201)["token"].as_str().unwrap().to_owned()
        }
    };
    tokens.insert("scim_a".to_owned(), scim(Some(&org_a)).await);
    tokens.insert("scim_b".to_owned(), scim(Some(&org_b)).await);
    tokens.insert("scim_instance".to_owned(), scim(None).await);

    let mut targets = BTreeMap::new();
    for (target, email, roles, orgs) in [
        ("a_person", "target-a@a.test", &[][..], &[&org_a][..]),
        ("b_person", "target-b@b.test", &[], &[&org_b]),
        ("shared", "target-ab@a.test", &[], &[&org_a, &org_b]),
        ("instance_admin", "target-admin@a.test", &["admin"], &[&org_a]),
        ("system_admin", "target-root@a.test", &["system_admin"], &[&org_a]),
    ] {
        let id = person(app, email, roles).await;
        for org in orgs {
            app.add_member(org, &id, "member").await;
        }
        targets.insert(target, (id, email.to_owned()));
    }
    let team =
        app.post(&format!("/api/v1/orgs/{org_a}/teams"), &app.admin, json!({"name": "Team A"})).await.expect(201);
    let review = app.post("/api/v1/access-reviews", &app.admin, json!({"inactive_days": 0})).await.expect(201);
    World {
        tokens,
        targets,
        org_a,
        team_a: team["id"].as_str().unwrap().to_owned(),
        review: review["id"].as_str().unwrap().to_owned(),
    }
}

/// The operations acting on a user: those of `openapi.json` with a user in the path, then the
/// ones that name one in their body, the SCIM ones and the scheduler's.
fn operations() -> Vec<String> {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json")).unwrap(),
    )
    .unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !(path.contains("/users/{id}") || path.contains("{user_id}")) {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    for extra in [
        "PATCH /api/v1/users/{id} (password)",
        "PATCH /api/v1/users/{id} (instance_roles)",
        "POST /api/v1/orgs/{id}/invitations (the target's email)",
        "POST /api/v1/orgs/{id}/transfer-ownership (to the target)",
        "POST /api/v1/access-reviews/{id}/decisions (deactivate the target)",
        "GET /scim/v2/Users/{id}",
        "PUT /scim/v2/Users/{id} (another email)",
        "PATCH /scim/v2/Users/{id} (displayName)",
        "PATCH /scim/v2/Users/{id} (password)",
        "PATCH /scim/v2/Users/{id} (active: false)",
        "DELETE /scim/v2/Users/{id}",
        "POST /scim/v2/Users (the target's email)",
        "PATCH /scim/v2/Groups/{id} (add the target)",
        "SCHEDULER deactivate_at",
    ] {
        ops.push(extra.to_owned());
    }
    ops
}

/// The request an operation makes against `target`.
fn request(op: &str, w: &World, target: &str) -> (Method, String, Option<Value>) {
    let (method, rest) = op.split_once(' ').unwrap();
    let path = rest.split(" (").next().unwrap();
    let (id, email) = &w.targets[target];
    let path = path
        .replace("/orgs/{id}", &format!("/orgs/{}", w.org_a))
        .replace("/teams/{id}", &format!("/teams/{}", w.team_a))
        .replace("/access-reviews/{id}", &format!("/access-reviews/{}", w.review))
        .replace("/Groups/{id}", &format!("/Groups/{}", w.team_a))
        .replace("{id}", id)
        .replace("{user_id}", id);
    let scim_user = |email: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email, "emails": [{"value": email, "primary": true}], "active": true});
    let scim_patch =
        |op: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]});
    let body = match op {
        "PATCH /api/v1/users/{id}" => Some(json!({"name": "Renamed"})),
        "PATCH /api/v1/users/{id} (password)" => Some(json!({"password": "a password someone chose"})),
        "PATCH /api/v1/users/{id} (instance_roles)" => Some(json!({"instance_roles": []})),
        "POST /api/v1/users/{id}/deactivate" | "POST /api/v1/users/{id}/impersonate" => {
            Some(json!({"reason": "matrix"}))
        }
        "PUT /api/v1/users/{id}/notifications" => Some(json!({"categories": {"security": false}})),
        "PUT /api/v1/orgs/{id}/members/{user_id}" => Some(json!({"role": "admin"})),
        "PUT /api/v1/teams/{id}/members/{user_id}" => Some(json!({"role": "team_member"})),
        "POST /api/v1/orgs/{id}/invitations (the target's email)" => Some(json!({"email": email, "role": "member"})),
        "POST /api/v1/orgs/{id}/transfer-ownership (to the target)" => Some(json!({"new_owner_id": id})),
        "POST /api/v1/access-reviews/{id}/decisions (deactivate the target)" => {
            Some(json!({"user_id": id, "decision": "deactivate"}))
        }
        "PUT /scim/v2/Users/{id} (another email)" => Some(scim_user(&format!("changed.{email}"))),
        "PATCH /scim/v2/Users/{id} (displayName)" => {
            Some(scim_patch(json!({"op": "replace", "path": "displayName", "value": "Renamed"})))
        }
        "PATCH /scim/v2/Users/{id} (password)" => {
            Some(scim_patch(json!({"op": "replace", "path": "password", "value": "a password someone chose"})))
        }
        "PATCH /scim/v2/Users/{id} (active: false)" => {
            Some(scim_patch(json!({"op": "replace", "path": "active", "value": false})))
        }
        "POST /scim/v2/Users (the target's email)" => Some(scim_user(email)),
        "PATCH /scim/v2/Groups/{id} (add the target)" => {
            Some(scim_patch(json!({"op": "add", "path": "members", "value": [{"value": id}]})))
        }
        _ if matches!(method, "POST" | "PUT" | "PATCH") => Some(json!({})),
        _ => None,
    };
    let method = if method == "SCHEDULER" { Method::PATCH } else { method.parse().unwrap() };
    let path = if op == "SCHEDULER deactivate_at" { format!("/api/v1/users/{id}") } else { path };
    (method, path, body)
}

/// Puts the target where the operation starts from: deactivated for reactivation and erasure,
/// suspended to lift a suspension.
async fn prepare(app: &TestApp, op: &str, id: &str) {
    let setup = match op {
        "POST /api/v1/users/{id}/reactivate" | "POST /api/v1/users/{id}/anonymize" => "deactivate",
        "POST /api/v1/users/{id}/unsuspend" => "suspend",
        _ => return,
    };
    app.post(&format!("/api/v1/users/{id}/{setup}"), &app.admin, json!({})).await.expect(200);
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.get(&format!("/api/v1/users/{id}"), &app.admin).await.expect(200)["status"].as_str().unwrap().to_owned()
}

type Row = BTreeMap<String, String>;

async fn observe(op: String) -> (String, BTreeMap<String, Row>) {
    let app = spawn_app().await;
    let w = world(&app).await;
    let principals: Vec<String> = if op.contains("/scim/v2/") {
        SCIM_PRINCIPALS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        api_principals()
    };
    let mut rows = BTreeMap::new();
    for target in TARGETS {
        let id = w.targets[target].0.clone();
        prepare(&app, &op, &id).await;
        let (method, path, mut body) = request(&op, &w, target);
        let mut row = Row::new();
        for p in &principals {
            if op.starts_with("SCHEDULER") {
                // In the future of Steward's clock, which the scheduler's runs move on.
                let at = (app.state.clock.now() + time::Duration::days(1))
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                body = Some(json!({ "deactivate_at": at }));
            }
            let reply = app.request(method.clone(), &path, Some(&w.tokens[p]), body.clone()).await;
            assert!(reply.status.as_u16() < 500, "{op} on {target} as {p}: {:#}", reply.body);
            let mut outcome = reply.status.as_u16().to_string();
            if op.starts_with("SCHEDULER") && reply.status.is_success() {
                // The scheduler carries the schedule out, with the rights of whoever set it.
                // Sessions live by the same clock, so it comes back once the pass is run.
                app.state.clock.advance(time::Duration::days(2));
                steward::scheduler::run_once(&app.state).await.unwrap();
                app.state.clock.advance(-time::Duration::days(2));
                let status = status_of(&app, &id).await;
                outcome = format!("{outcome} {status}");
                if status == "deactivated" {
                    app.post(&format!("/api/v1/users/{id}/reactivate"), &app.admin, json!({})).await.expect(200);
                }
            }
            row.insert(p.clone(), outcome);
        }
        rows.insert((*target).to_owned(), row);
    }
    (op, rows)
}

/// One line per operation and target, so that a diff shows which cells moved.
fn render(all: &BTreeMap<String, BTreeMap<String, Row>>) -> String {
    let mut out = String::from("{\n");
    let ops: Vec<_> = all.iter().collect();
    for (i, (op, targets)) in ops.iter().enumerate() {
        out.push_str(&format!("  {}: {{\n", serde_json::to_string(op).unwrap()));
        let ts: Vec<_> = targets.iter().collect();
        for (j, (target, row)) in ts.iter().enumerate() {
            let comma = if j + 1 < ts.len() { "," } else { "" };
            out.push_str(&format!(
                "    {}: {}{comma}\n",
                serde_json::to_string(target).unwrap(),
                serde_json::to_string(row).unwrap()
            ));
        }
        out.push_str(if i + 1 < ops.len() { "  },\n" } else { "  }\n" });
    }
    out.push_str("}\n");
    out
}

fn succeeded(outcome: &str) -> bool {
    outcome.starts_with('2')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_on_a_user_answers_every_principal_and_target_as_the_matrix_says() {
    let ops = operations();
    let mut observed = BTreeMap::new();
    for chunk in ops.chunks(6) {
        let runs = chunk.iter().cloned().map(|op| tokio::spawn(observe(op)));
        for run in runs {
            let (op, rows) = run.await.unwrap();
            observed.insert(op, rows);
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/authorization_targets.json");
    if std::env::var_os("STEWARD_UPDATE_AUTHZ").is_some() {
        std::fs::write(path, render(&observed)).unwrap();
    }
    let expected: BTreeMap<String, BTreeMap<String, Row>> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("tests/authorization_targets.json is committed"))
            .unwrap();
    let mut problems = Vec::new();
    for (op, targets) in &observed {
        for (target, row) in targets {
            for (p, outcome) in row {
                let want = expected.get(op).and_then(|t| t.get(target)).and_then(|r| r.get(p));
                if want != Some(outcome) {
                    problems.push(format!("{op} on {target} as {p}: {outcome}, the matrix says {want:?}"));
                }
            }
        }
    }
    for op in expected.keys().filter(|op| !observed.contains_key(*op)) {
        problems.push(format!("{op}: in the matrix but no longer an operation"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The rules, stated here too so that a regenerated matrix cannot hide them.
    let changes_identity = |op: &str| {
        !op.starts_with("GET ")
            && !op.contains("/members/")
            && !op.contains("/invitations")
            && !op.contains("transfer-ownership")
            && !op.contains("(active: false)")
            && !op.contains("DELETE /scim/v2/")
            && !op.contains("/Groups/")
    };
    for (op, targets) in &observed {
        for (target, row) in targets {
            for (p, outcome) in row {
                let ok = succeeded(outcome);
                // No one but a system admin changes a system admin.
                if target == "system_admin" && p != "system_admin" && changes_identity(op) {
                    assert!(!ok, "{op} on a system admin as {p}: {outcome}");
                }
                // An org's principals never change anyone's identity or status.
                if (p.starts_with("org_a_") || p.starts_with("jwt_org_a_")) && op.contains("/users/{id}") {
                    assert!(!ok, "{op} on {target} as {p}: {outcome}");
                }
                // An org's directory governs only the person that org alone holds.
                if p == "scim_a" && changes_identity(op) && op != "POST /scim/v2/Users (the target's email)" {
                    assert_eq!(ok, target == "a_person", "{op} on {target} as {p}: {outcome}");
                }
                // Another org's directory reaches no one outside it.
                if p == "scim_b" && ["a_person", "instance_admin", "system_admin"].contains(&target.as_str()) {
                    assert!(!ok, "{op} on {target} as {p}: {outcome}");
                }
                // The scheduler deactivates no one its setter could not.
                if op.starts_with("SCHEDULER") && target == "system_admin" && p != "system_admin" {
                    assert!(!outcome.contains("deactivated"), "{op} on {target} as {p}: {outcome}");
                }
            }
        }
    }
}

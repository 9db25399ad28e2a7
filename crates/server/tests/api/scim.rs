//! SCIM 2.0 at /scim/v2: tokens, the request shapes of Okta and Entra ID, lifecycle semantics,
//! filters, ETags, Bulk, and the isolation of org-bound tokens.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn scim_token(app: &TestApp, org: Option<&str>) -> String {
    let body = match org {
        Some(o) => json!({"name": "idp", "org_id": o}),
        None => json!({"name": "idp"}),
    };
    let created = app.post("/api/v1/scim-tokens", &app.admin, body).await.expect(201);
    created["token"].as_str().unwrap().to_owned()
}

fn new_user(user_name: &str, email: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true
    })
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn user_status(app: &TestApp, id: &str) -> String {
    app.get(&format!("/api/v1/users/{id}"), &app.admin).await.expect(200)["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_are_shown_once_stored_hashed_and_revocable() {
    let app = spawn_app().await;
    let created = app.post("/api/v1/scim-tokens", &app.admin, json!({"name": "Okta"})).await.expect(201);
    let token = created["token"].as_str().unwrap().to_owned();
    let listed = app.get("/api/v1/scim-tokens", &app.admin).await.expect(200);
    assert_eq!(listed["items"][0]["token"], Value::Null);
    let db = app.db().await;
    let stored = db.strings("SELECT token_hash FROM scim_tokens", &[]).await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&token) && stored[0] != token);

    app.get("/scim/v2/Users", &token).await.expect(200);
    let bob = app.user("bob@acme.test").await;
    let bob_session = app.login("bob@acme.test", PASSWORD).await;
    app.get("/api/v1/scim-tokens", &bob_session).await.expect_problem(403, "forbidden");
    app.post("/api/v1/scim-tokens", &app.admin, json!({"name": ""})).await.expect_problem(400, "validation_failed");

    let id = created["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/scim-tokens/{id}"), &app.admin).await.expect(204);
    let refused = app.get("/scim/v2/Users", &token).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.headers["content-type"], "application/scim+json");
    // A session or API token is no SCIM credential, and a SCIM token opens nothing in /api/v1.
    assert_eq!(app.get("/scim/v2/Users", &app.admin).await.status, 401);
    let other = scim_token(&app, None).await;
    app.get(&format!("/api/v1/users/{bob}"), &other).await.expect_problem(401, "unauthenticated");
}

#[tokio::test]
async fn okta_provisions_deactivates_at_once_and_reactivates_with_roles_intact() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    let owner = app.user("owner@acme.test").await;
    let org = app.org("Acme", &owner).await;

    // Okta looks the user up first, then creates.
    let found =
        app.get("/scim/v2/Users?filter=userName%20eq%20%22ada%40acme.test%22&startIndex=1&count=100", &token).await;
    assert_eq!(found.expect(200)["totalResults"], 0);
    let mut body = new_user("ada@acme.test", "ada@acme.test");
    body["password"] = json!("a password from Okta");
    let created = app.post("/scim/v2/Users", &token, body).await;
    assert_eq!(created.headers["content-type"], "application/scim+json");
    let location = created.headers["location"].to_str().unwrap().to_owned();
    let created = created.expect(201);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("{}/scim/v2/Users/{id}", app.base));
    assert_eq!(created["active"], true);
    assert!(created.get("password").is_none());
    assert_eq!(user_status(&app, &id).await, "active");
    app.add_member(&org, &id, "admin").await;
    let session = app.login("ada@acme.test", "a password from Okta").await;

    let found = app.get("/scim/v2/Users?filter=userName%20eq%20%22ADA%40acme.test%22", &token).await.expect(200);
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], id.as_str());

    // Okta's deactivation: a path-less replace of active.
    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(app.patch(&format!("/scim/v2/Users/{id}"), &token, off).await.expect(200)["active"], false);
    assert_eq!(user_status(&app, &id).await, "deactivated");
    app.get("/api/v1/me", &session).await.expect_problem(401, "unauthenticated");
    assert_eq!(app.memberships(&id).await, vec![(org.clone(), "admin".to_owned(), true)]);

    // Okta's full replace brings the user back, with the same role.
    let mut back = new_user("ada@acme.test", "ada@acme.test");
    back["name"] = json!({"givenName": "Ada", "familyName": "King"});
    let replaced = app.put(&format!("/scim/v2/Users/{id}"), &token, back).await.expect(200);
    assert_eq!(replaced["name"]["familyName"], "King");
    assert_eq!(user_status(&app, &id).await, "active");
    assert_eq!(app.memberships(&id).await, vec![(org, "admin".to_owned(), false)]);

    // Every change is attributed to the token's service user and the chain holds.
    let events = app.audit(&format!("&target_id={id}")).await;
    let service = app.get("/api/v1/scim-tokens", &app.admin).await.expect(200)["items"][0]["service_user_id"].clone();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in ["user.created", "user.deactivated", "user.reactivated", "user.scim_updated"] {
        let e = events.iter().find(|e| e["type"] == kind).unwrap_or_else(|| panic!("no {kind} in {kinds:?}"));
        assert_eq!(e["actor_id"], service, "{kind}");
    }
    assert_eq!(app.get("/api/v1/audit/verify", &app.admin).await.expect(200)["ok"], true);
}

#[tokio::test]
async fn entra_request_shapes() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    let mut body = new_user("grace@contoso.test", "grace@contoso.test");
    body["externalId"] = json!("0a21f0f2-8d2a-4f8e-bf98-7b2d3f1a9c10");
    body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = json!({"department": "Navy"});
    let id = app.post("/scim/v2/Users", &token, body).await.expect(201)["id"].as_str().unwrap().to_owned();
    let by_external =
        app.get("/scim/v2/Users?filter=externalId+eq+%220a21f0f2-8d2a-4f8e-bf98-7b2d3f1a9c10%22", &token).await;
    assert_eq!(by_external.expect(200)["Resources"][0]["id"], id.as_str());

    let ops = json!([
        {"op": "Replace", "path": "displayName", "value": "Grace Hopper"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "grace.hopper@contoso.test"},
        {"op": "Replace", "path": "name.givenName", "value": "Grace"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "x"},
        {"op": "Replace", "path": "active", "value": "False"}
    ]);
    let patched = app.patch(&format!("/scim/v2/Users/{id}"), &token, patch(ops)).await.expect(200);
    assert_eq!(patched["displayName"], "Grace Hopper");
    assert_eq!(patched["emails"][0]["value"], "grace.hopper@contoso.test");
    assert_eq!(patched["active"], false);
    let user = app.get(&format!("/api/v1/users/{id}"), &app.admin).await.expect(200);
    assert_eq!(
        (user["email"].as_str(), user["name"].as_str()),
        (Some("grace.hopper@contoso.test"), Some("Grace Hopper"))
    );
    assert_eq!(user["status"], "deactivated");
    // The address given up is never anyone else's.
    let taken = app.post("/api/v1/users", &app.admin, json!({"email": "grace@contoso.test", "name": "Other"})).await;
    assert_eq!(taken.status, 409);
    let again = app.post("/scim/v2/Users", &token, new_user("someone", "grace@contoso.test")).await.expect(409);
    assert_eq!(again["scimType"], "uniqueness");
    app.patch(
        &format!("/scim/v2/Users/{id}"),
        &token,
        patch(json!([{"op": "replace", "path": "active", "value": "True"}])),
    )
    .await
    .expect(200);

    // Groups: Entra adds members by list and removes them by filter or by list.
    let owner = app.user("owner@contoso.test").await;
    app.org("Contoso", &owner).await;
    let group = app
        .post("/scim/v2/Groups", &token, json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Contoso/Engineering", "externalId": "g-1"}))
        .await
        .expect(201);
    let gid = group["id"].as_str().unwrap().to_owned();
    assert_eq!(group["displayName"], "Contoso/Engineering");
    let add = patch(json!([{"op": "Add", "path": "members", "value": [{"value": id}, {"value": owner}]}]));
    let g = app.patch(&format!("/scim/v2/Groups/{gid}"), &token, add).await.expect(200);
    assert_eq!(g["members"].as_array().unwrap().len(), 2);
    assert!(app.memberships(&id).await.iter().any(|(_, role, _)| role == "member"), "joined the org as member");
    let remove = patch(json!([{"op": "Remove", "path": format!("members[value eq \"{id}\"]")}]));
    assert_eq!(
        app.patch(&format!("/scim/v2/Groups/{gid}"), &token, remove).await.expect(200)["members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let remove = patch(json!([{"op": "Remove", "path": "members", "value": [{"value": owner}]}]));
    let g = app.patch(&format!("/scim/v2/Groups/{gid}"), &token, remove).await.expect(200);
    assert!(g.get("members").is_none());
    let by_member = app.get(&format!("/scim/v2/Groups?filter=members%20eq%20%22{owner}%22"), &token).await.expect(200);
    assert_eq!(by_member["totalResults"], 0);
    let wrong = app.post("/scim/v2/Groups", &token, json!({"displayName": "Nowhere/Team"})).await.expect(400);
    assert_eq!(wrong["scimType"], "invalidValue");
    app.delete(&format!("/scim/v2/Groups/{gid}"), &token).await.expect(204);
    app.get(&format!("/scim/v2/Groups/{gid}"), &token).await.expect(404);
    app.get(&format!("/api/v1/teams/{gid}"), &app.admin).await.expect(404);
}

#[tokio::test]
async fn delete_hides_the_user_and_a_later_post_brings_back_the_same_one() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    let owner = app.user("owner@acme.test").await;
    let org = app.org("Acme", &owner).await;
    let id = app.post("/scim/v2/Users", &token, new_user("lin", "lin@acme.test")).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.add_member(&org, &id, "accountant").await;

    app.delete(&format!("/scim/v2/Users/{id}"), &token).await.expect(204);
    app.get(&format!("/scim/v2/Users/{id}"), &token).await.expect(404);
    let listed = app.get("/scim/v2/Users?filter=userName%20eq%20%22lin%22", &token).await.expect(200);
    assert_eq!(listed["totalResults"], 0);
    // Steward keeps the user and its history.
    assert_eq!(user_status(&app, &id).await, "deactivated");
    assert!(app.db().await.i64("SELECT COUNT(*) FROM users WHERE id = ?", &[&id]).await == 1);

    let back = app.post("/scim/v2/Users", &token, new_user("LIN", "lin@acme.test")).await.expect(201);
    assert_eq!(back["id"], id.as_str(), "the same user, not a second one");
    assert_eq!(user_status(&app, &id).await, "active");
    assert_eq!(app.memberships(&id).await, vec![(org, "accountant".to_owned(), false)]);
    let count = app.db().await.i64("SELECT COUNT(*) FROM users WHERE email_key = 'lin@acme.test'", &[]).await;
    assert_eq!(count, 1);

    // A user deactivated through the API is not taken over by a POST: its email is refused.
    let api_user = app.user("kim@acme.test").await;
    app.post(&format!("/api/v1/users/{api_user}/deactivate"), &app.admin, json!({})).await.expect(200);
    let refused = app.post("/scim/v2/Users", &token, new_user("kim", "kim@acme.test")).await.expect(409);
    assert_eq!(refused["scimType"], "uniqueness");
    assert!(!refused["detail"].as_str().unwrap().contains(&api_user), "the holder is not named");
    assert_eq!(user_status(&app, &api_user).await, "deactivated");
}

#[tokio::test]
async fn etags_guard_writes() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    let created = app.post("/scim/v2/Users", &token, new_user("etag", "etag@acme.test")).await;
    let etag = created.headers["etag"].to_str().unwrap().to_owned();
    let id = created.expect(201)["id"].as_str().unwrap().to_owned();
    let url = format!("{}/scim/v2/Users/{id}", app.base);
    let send = |tag: &str| {
        app.client
            .patch(&url)
            .bearer_auth(&token)
            .header("If-Match", tag)
            .header("Content-Type", "application/scim+json")
            .body(patch(json!([{"op": "replace", "path": "title", "value": "Dr"}])).to_string())
            .send()
    };
    assert_eq!(send("W/\"999\"").await.unwrap().status(), 412);
    let ok = send(&etag).await.unwrap();
    assert_eq!(ok.status(), 200);
    let fresh = ok.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(fresh, etag);
    assert_eq!(send(&etag).await.unwrap().status(), 412, "the old version is stale now");
}

#[tokio::test]
async fn filters_sorting_paging_and_projection() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    for (name, email) in [("alpha", "a@x.test"), ("bravo", "b@x.test"), ("charlie", "c@y.test"), ("delta", "d@y.test")]
    {
        app.post("/scim/v2/Users", &token, new_user(name, email)).await.expect(201);
    }
    let names = |v: &Value| -> Vec<String> {
        v["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap_or("").to_owned()).collect()
    };
    let q = |f: &str| format!("/scim/v2/Users?sortBy=userName&filter={}", urlencode(f));
    let cases = [
        (r#"userName sw "b""#, vec!["bravo"]),
        (r#"userName ew "HA""#, vec!["alpha"]),
        (r#"userName co "arl""#, vec!["charlie"]),
        (r#"emails.value ew "@y.test" and not (userName eq "delta")"#, vec!["charlie"]),
        (r#"userName eq "alpha" or userName eq "delta""#, vec!["alpha", "delta"]),
        (r#"userName gt "bravo" and userName le "delta""#, vec!["charlie", "delta"]),
        (r#"emails[value eq "b@x.test"]"#, vec!["bravo"]),
        (r#"userName ne "alpha" and userName lt "c""#, vec!["bravo"]),
        (r#"userName ge "charlie" and userName sw "c""#, vec!["charlie"]),
        (r#"userName ge "CHARLIE" and userName lt "d""#, vec!["charlie"]),
        (r#"externalId pr"#, vec![]),
        (r#"active eq true and userName sw "a""#, vec!["alpha"]),
        (r#"meta.created gt "2000-01-01T00:00:00Z" and userName eq "alpha""#, vec!["alpha"]),
    ];
    for (filter, expected) in cases {
        let got = app.get(&q(filter), &token).await.expect(200);
        assert_eq!(names(&got), expected, "{filter}");
    }
    let page =
        app.get("/scim/v2/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=2", &token).await.expect(200);
    assert_eq!(names(&page).len(), 2);
    assert_eq!(page["startIndex"], 2);
    assert!(page["totalResults"].as_u64().unwrap() >= 4);
    // startIndex is 1-based: pages of one, walked in order, give the sorted list back.
    let mine = urlencode(r#"emails.value ew "@x.test" or emails.value ew "@y.test""#);
    let q_page = |i: usize| format!("/scim/v2/Users?sortBy=userName&filter={mine}&startIndex={i}&count=1");
    let mut walked = Vec::new();
    for i in 1..=4 {
        walked.extend(names(&app.get(&q_page(i), &token).await.expect(200)));
    }
    assert_eq!(walked, ["alpha", "bravo", "charlie", "delta"]);
    assert_eq!(names(&app.get(&q_page(5), &token).await.expect(200)), Vec::<String>::new());
    let desc =
        app.get("/scim/v2/Users?sortBy=userName&sortOrder=descending&filter=userName%20pr", &token).await.expect(200);
    let all = names(&desc);
    let mut sorted = all.clone();
    sorted.sort_by_key(|a| std::cmp::Reverse(a.to_lowercase()));
    assert_eq!(all, sorted);
    let only =
        app.get("/scim/v2/Users?attributes=userName&filter=userName%20eq%20%22alpha%22", &token).await.expect(200);
    let r = &only["Resources"][0];
    assert!(r.get("userName").is_some() && r.get("id").is_some() && r.get("emails").is_none());
    let searched = app
        .post("/scim/v2/Users/.search", &token, json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"bravo\"", "excludedAttributes": ["emails"]}))
        .await
        .expect(200);
    assert_eq!(names(&searched), vec!["bravo"]);
    assert!(searched["Resources"][0].get("emails").is_none());
    // externalId is case-exact, userName and emails are not.
    let alpha = app.get("/scim/v2/Users?filter=userName%20eq%20%22ALPHA%22", &token).await.expect(200);
    let alpha_id = alpha["Resources"][0]["id"].as_str().unwrap().to_owned();
    let set = patch(json!([{"op": "add", "path": "externalId", "value": "Ext-A"}]));
    app.patch(&format!("/scim/v2/Users/{alpha_id}"), &token, set).await.expect(200);
    for (filter, expected) in [
        (r#"externalId eq "Ext-A""#, vec!["alpha"]),
        (r#"externalId eq "ext-a""#, vec![]),
        (r#"externalId sw "Ext""#, vec!["alpha"]),
        (r#"externalId co "xt-a""#, vec![]),
        (r#"emails.value eq "A@X.TEST""#, vec!["alpha"]),
    ] {
        assert_eq!(names(&app.get(&q(filter), &token).await.expect(200)), expected, "{filter}");
    }
    for bad in ["userName xx \"a\"", "title eq \"x\"", "(userName eq \"a\""] {
        let e = app.get(&q(bad), &token).await.expect(400);
        assert_eq!(e["scimType"], "invalidFilter", "{bad}");
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn bulk_resolves_bulk_ids_and_stops_after_fail_on_errors() {
    let app = spawn_app().await;
    let owner = app.user("owner@acme.test").await;
    let org = app.org("Acme", &owner).await;
    let token = scim_token(&app, Some(&org)).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": new_user("bulk1", "bulk1@acme.test")},
            {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "Ops", "members": [{"value": "bulkId:u1"}]}},
            {"method": "PATCH", "path": "/Users/bulkId:u1", "data": patch(json!([{"op": "replace", "path": "title", "value": "Lead"}]))},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": new_user("bulk1", "other@acme.test")}
        ]
    });
    let reply = app.post("/scim/v2/Bulk", &token, body).await.expect(200);
    let ops = reply["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["201", "201", "200", "409"]);
    let group = ops[1]["location"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let g = app.get(&format!("/scim/v2/Groups/{group}"), &token).await.expect(200);
    let user = ops[0]["location"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    assert_eq!(g["members"][0]["value"], user.as_str());
    assert_eq!(g["displayName"], "Ops", "an org-bound token names teams without the org");

    let failing = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "PATCH", "path": "/Users/bulkId:nope", "data": patch(json!([{"op": "replace", "path": "title", "value": "x"}]))},
            {"method": "POST", "path": "/Users", "bulkId": "never", "data": new_user("never", "never@acme.test")}
        ]
    });
    let reply = app.post("/scim/v2/Bulk", &token, failing).await.expect(200);
    assert_eq!(reply["Operations"].as_array().unwrap().len(), 1);
    let found = app.get("/scim/v2/Users?filter=userName%20eq%20%22never%22", &token).await.expect(200);
    assert_eq!(found["totalResults"], 0, "nothing runs after the allowed errors");
    let bad = app.post("/scim/v2/Bulk", &token, json!({"Operations": []})).await.expect(400);
    assert_eq!(bad["scimType"], "invalidSyntax");
}

#[tokio::test]
async fn an_org_bound_token_sees_only_its_org() {
    let app = spawn_app().await;
    let a_owner = app.user("owner@a.test").await;
    let b_owner = app.user("owner@b.test").await;
    let a = app.org("A", &a_owner).await;
    let b = app.org("B", &b_owner).await;
    let team_b = app.post(&format!("/api/v1/orgs/{b}/teams"), &app.admin, json!({"name": "Secret"})).await.expect(201);
    let token_a = scim_token(&app, Some(&a)).await;

    let created = app.post("/scim/v2/Users", &token_a, new_user("new@a.test", "new@a.test")).await.expect(201);
    let new_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(app.memberships(&new_id).await, vec![(a.clone(), "member".to_owned(), false)]);
    let users = app.get("/scim/v2/Users", &token_a).await.expect(200);
    let ids: Vec<&str> = users["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&a_owner.as_str()) && ids.contains(&new_id.as_str()));
    assert!(!ids.contains(&b_owner.as_str()));
    app.get(&format!("/scim/v2/Users/{b_owner}"), &token_a).await.expect(404);
    let deactivate = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    app.patch(&format!("/scim/v2/Users/{b_owner}"), &token_a, deactivate).await.expect(404);
    assert_eq!(user_status(&app, &b_owner).await, "active");
    let tb = team_b["id"].as_str().unwrap();
    app.get(&format!("/scim/v2/Groups/{tb}"), &token_a).await.expect(404);
    app.delete(&format!("/scim/v2/Groups/{tb}"), &token_a).await.expect(404);
    let groups = app.get("/scim/v2/Groups", &token_a).await.expect(200);
    assert_eq!(groups["totalResults"], 0);
    let root = app
        .post("/scim/v2/.search", &token_a, json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}))
        .await
        .expect(200);
    let found = root["Resources"].as_array().unwrap();
    assert!(found.iter().all(|r| r["id"] != b_owner.as_str() && r["id"] != tb));
    assert!(found.iter().any(|r| r["id"] == a_owner.as_str()), "the root search finds the token's own users: {root:#}");
}

#[tokio::test]
async fn discovery_is_served_and_the_schemas_are_committed() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    let config = app.get("/scim/v2/ServiceProviderConfig", &token).await.expect(200);
    for feature in ["patch", "bulk", "filter", "sort", "etag", "changePassword"] {
        assert_eq!(config[feature]["supported"], true, "{feature}");
    }
    let types = app.get("/scim/v2/ResourceTypes", &token).await.expect(200);
    assert_eq!(types["totalResults"], 2);
    let schemas = app.get("/scim/v2/Schemas", &token).await.expect(200);
    let mut served = schemas["Resources"].clone();
    for s in served.as_array_mut().unwrap() {
        s["meta"]["location"] = Value::Null;
    }
    let text = serde_json::to_string_pretty(&served).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scim-schemas.json");
    if std::env::var_os("STEWARD_UPDATE_SCIM_SCHEMAS").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(path).expect("docs/scim-schemas.json is committed");
    assert_eq!(committed, text, "the SCIM schemas changed; regenerate with STEWARD_UPDATE_SCIM_SCHEMAS=1");
    let missing = app.request(Method::GET, "/scim/v2/Nope", Some(&token), None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
}

#[tokio::test]
async fn the_total_of_an_unfiltered_list_leaves_out_hidden_anonymized_and_service_users() {
    let app = spawn_app().await;
    // The token's service user is no person, and is never listed.
    let token = scim_token(&app, None).await;
    let mut ids = Vec::new();
    for name in ["ann", "ben", "cai", "dev"] {
        let created = app.post("/scim/v2/Users", &token, new_user(name, &format!("{name}@acme.test"))).await;
        ids.push(created.expect(201)["id"].as_str().unwrap().to_owned());
    }
    let gone = app.user("gone@acme.test").await;
    app.post(&format!("/api/v1/users/{gone}/deactivate"), &app.admin, json!({})).await.expect(200);
    app.post(&format!("/api/v1/users/{gone}/anonymize"), &app.admin, json!({})).await.expect(200);
    app.delete(&format!("/scim/v2/Users/{}", ids[1]), &token).await.expect(204);

    let all = app.get("/scim/v2/Users?count=100", &token).await.expect(200);
    let shown = all["Resources"].as_array().unwrap().len() as u64;
    // The same people through a filter, which joins each user with what SCIM keeps of it.
    let filtered = app.get("/scim/v2/Users?count=100&filter=userName%20pr", &token).await.expect(200);
    assert_eq!(all["totalResults"], shown, "{all}");
    assert_eq!(filtered["totalResults"], shown);
    // The bootstrap admin, ann, cai and dev: not ben (hidden), the anonymized user nor the service user.
    assert_eq!(shown, 4);
    let page = app.get("/scim/v2/Users?startIndex=2&count=1", &token).await.expect(200);
    assert_eq!(page["totalResults"], 4);
    assert_eq!(page["Resources"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn string_attributes_and_echoed_input_are_bounded() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    let mut user = new_user("long", "long@acme.test");
    user["externalId"] = json!("x".repeat(500_000));
    let refused = app.post("/scim/v2/Users", &token, user.clone()).await.expect(400);
    assert_eq!(refused["scimType"], "invalidValue");
    user["externalId"] = json!("x".repeat(100));
    user["title"] = json!("t".repeat(5_000));
    assert_eq!(app.post("/scim/v2/Users", &token, user).await.expect(400)["scimType"], "invalidValue");
    let found = app.get("/scim/v2/Users?filter=userName%20eq%20%22long%22", &token).await.expect(200);
    assert_eq!(found["totalResults"], 0, "nothing was stored");

    let filter = format!("userName eq \"{}\" and", "y".repeat(20_000));
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter});
    let bad = app.post("/scim/v2/Users/.search", &token, body).await.expect(400);
    assert!(
        bad.to_string().len() < 2_000,
        "the error quotes a bounded part of the filter: {} bytes",
        bad.to_string().len()
    );
}

#[tokio::test]
async fn an_orgs_token_names_teams_without_an_org_and_bulk_passwords_are_bounded() {
    let app = spawn_app().await;
    let owner = app.user("owner@acme.test").await;
    let org = app.org("Acme", &owner).await;
    let token = scim_token(&app, Some(&org)).await;
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Other Co/Ops"});
    assert_eq!(app.post("/scim/v2/Groups", &token, group).await.expect(400)["scimType"], "invalidValue");

    // Made-up ids cost no password hashing, and a request may set only so many passwords.
    let set = |id: String| {
        json!({"method": "PATCH", "path": format!("/Users/{id}"),
            "data": patch(json!([{"op": "replace", "path": "password", "value": "a password long enough"}]))})
    };
    let made_up: Vec<Value> = (0..20).map(|_| set(uuid::Uuid::now_v7().to_string())).collect();
    let before = app.state.passwords.computed();
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": made_up});
    let reply = app.post("/scim/v2/Bulk", &token, body).await.expect(200);
    assert!(reply["Operations"].as_array().unwrap().iter().all(|o| o["status"] == "404"));
    assert_eq!(app.state.passwords.computed(), before, "nothing was hashed");
    let too_many: Vec<Value> = (0..21).map(|_| set(uuid::Uuid::now_v7().to_string())).collect();
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": too_many});
    assert_eq!(app.post("/scim/v2/Bulk", &token, body).await.status, 413);
}

#[tokio::test]
async fn a_tokens_password_hashes_have_a_budget_per_minute() {
    let app = spawn_app_with(|c| c.scim_passwords_per_minute = 3).await;
    let token = scim_token(&app, None).await;
    let other = scim_token(&app, None).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let user = new_user(&format!("budget{i}@b.test"), &format!("budget{i}@b.test"));
        ids.push(app.post("/scim/v2/Users", &token, user).await.expect(201)["id"].as_str().unwrap().to_owned());
    }
    let set = || patch(json!([{"op": "replace", "path": "password", "value": "a password long enough"}]));
    let bulk =
        |ops: Vec<Value>| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops});
    let op = |id: &str| json!({"method": "PATCH", "path": format!("/Users/{id}"), "data": set()});

    // Two in one bulk request and one alone spend the minute's three.
    let reply = app.post("/scim/v2/Bulk", &token, bulk(vec![op(&ids[0]), op(&ids[1])])).await.expect(200);
    assert!(reply["Operations"].as_array().unwrap().iter().all(|o| o["status"] == "200"), "{reply:#}");
    app.patch(&format!("/scim/v2/Users/{}", ids[2]), &token, set()).await.expect(200);

    // The fourth is refused before anything is hashed or written.
    let before = (app.state.passwords.computed(), app.snapshot().await);
    let refused = app.patch(&format!("/scim/v2/Users/{}", ids[0]), &token, set()).await;
    assert!(refused.headers.get("retry-after").is_some_and(|v| v.to_str().unwrap().parse::<u64>().unwrap() >= 1));
    assert_eq!(refused.expect(429)["status"], "429");
    let refused = app.post("/scim/v2/Bulk", &token, bulk(vec![op(&ids[1])])).await;
    assert_eq!(refused.status, 429, "a bulk request is refused whole, before any operation runs");
    assert_eq!((app.state.passwords.computed(), app.snapshot().await), before);
    // More than a minute's budget in one request can never pass.
    let four = bulk(ids.iter().chain([&ids[0]]).map(|id| op(id)).collect());
    assert_eq!(app.post("/scim/v2/Bulk", &other, four).await.status, 429);

    // Another token has a budget of its own, and changes without a password spend none.
    app.patch(&format!("/scim/v2/Users/{}", ids[0]), &other, set()).await.expect(200);
    let rename = patch(json!([{"op": "replace", "path": "displayName", "value": "Renamed"}]));
    app.patch(&format!("/scim/v2/Users/{}", ids[0]), &token, rename).await.expect(200);
}

/// Whatever a write answers is what a GET by the same token answers next (to the microsecond,
/// and with the version an `If-Match` needs); and a user the instance deactivated reads as
/// inactive to the org's directory, which cannot undo it.
#[tokio::test]
async fn every_write_answers_the_user_as_the_token_now_sees_them() {
    let app = spawn_app().await;
    let owner = app.user("owner@seen.test").await;
    let org = app.org("Seen", &owner).await;
    let token = scim_token(&app, Some(&org)).await;
    let created = app.post("/scim/v2/Users", &token, new_user("seen@seen.test", "seen@seen.test")).await.expect(201);
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/scim/v2/Users/{id}");
    assert_eq!(created, app.get(&path, &token).await.expect(200), "POST");

    let rename = patch(json!([{"op": "replace", "path": "displayName", "value": "Seen Once"}]));
    let patched = app.patch(&path, &token, rename).await.expect(200);
    assert_eq!(patched, app.get(&path, &token).await.expect(200), "PATCH");

    let mut replacement = new_user("seen@seen.test", "seen@seen.test");
    replacement["displayName"] = json!("Seen Twice");
    let put = app.put(&path, &token, replacement).await.expect(200);
    assert_eq!(put, app.get(&path, &token).await.expect(200), "PUT");

    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "PATCH", "path": format!("/Users/{id}"),
         "data": patch(json!([{"op": "replace", "path": "displayName", "value": "Seen Thrice"}]))}]});
    let reply = app.post("/scim/v2/Bulk", &token, bulk).await.expect(200);
    let now = app.get(&path, &token).await.expect(200);
    assert_eq!(reply["Operations"][0]["version"], now["meta"]["version"], "Bulk: {reply:#}");
    assert_eq!(now["displayName"], "Seen Thrice");

    app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({"reason": "fraud"})).await.expect(200);
    let seen = app.get(&path, &token).await.expect(200);
    assert_eq!(seen["active"], false);
    let revive = patch(json!([{"op": "replace", "path": "active", "value": true}]));
    assert_eq!(app.patch(&path, &token, revive).await.status, 403);
    assert_eq!(app.get(&path, &token).await.expect(200), seen, "the refused write changed nothing");
}

/// Entra ID provisions a user without a `mail` attribute with its email-shaped userName and no
/// `emails`: the userName is then the email. A userName that is not an address still needs one.
#[tokio::test]
async fn a_user_without_emails_takes_an_email_shaped_user_name_as_its_email() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    let entra = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Grace.Hopper@acme.test",
        "displayName": "Grace Hopper",
        "active": true
    });
    let created = app.post("/scim/v2/Users", &token, entra).await.expect(201);
    assert_eq!(created["userName"], "Grace.Hopper@acme.test");
    let id = created["id"].as_str().unwrap();
    let user = app.get(&format!("/api/v1/users/{id}"), &app.admin).await.expect(200);
    assert_eq!(user["email"], "Grace.Hopper@acme.test");
    let no_address = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ghopper",
        "active": true
    });
    let refused = app.post("/scim/v2/Users", &token, no_address).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["scimType"], "invalidValue");
    let users = app.get("/api/v1/users?limit=100", &app.admin).await.expect(200);
    let names: Vec<&str> = users["items"].as_array().unwrap().iter().filter_map(|u| u["name"].as_str()).collect();
    assert!(
        names.contains(&"Grace Hopper") && !names.contains(&"ghopper"),
        "the refused one created nobody: {names:?}"
    );
}

/// `If-Match` is judged before the body: a stale version answers 412 even when the body would
/// be refused, for a PUT or a PATCH of a user or a group, and nothing changes.
#[tokio::test]
async fn a_stale_version_answers_412_whatever_the_body() {
    let app = spawn_app().await;
    let token = scim_token(&app, None).await;
    let user = app.post("/scim/v2/Users", &token, new_user("judge", "judge@acme.test")).await.expect(201);
    app.org("Judges", user["id"].as_str().unwrap()).await;
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Judges/Bench", "members": []});
    let group = app.post("/scim/v2/Groups", &token, group).await.expect(201);
    let incomplete = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]});
    for (kind, resource) in [("Users", &user), ("Groups", &group)] {
        let path = format!("/scim/v2/{kind}/{}", resource["id"].as_str().unwrap());
        let url = format!("{}{path}", app.base);
        for method in ["PUT", "PATCH"] {
            let sent = app
                .client
                .request(method.parse().unwrap(), &url)
                .bearer_auth(&token)
                .header("If-Match", "W/\"999\"")
                .header("Content-Type", "application/scim+json")
                .body(incomplete.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(sent.status(), 412, "{method} {url}");
        }
        let now = app.get(&path, &token).await.expect(200);
        assert_eq!(now["meta"]["version"], resource["meta"]["version"], "nothing changed");
    }
}

//! Credentials never outlive or outrank what made them: a token made with an expiring token
//! expires with it, a JWT makes no Steward credentials, and a password set by anyone but the user
//! (a reset, an admin, a directory) ends every session and API token, while using one reset link
//! voids the others.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
use crate::smtp::SmtpSink;

fn parse_time(v: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

/// Equal to the microsecond Steward keeps.
fn same_instant(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    (parse_time(a) - parse_time(b)).abs() < time::Duration::milliseconds(1)
}

#[tokio::test]
async fn a_token_made_with_an_expiring_token_expires_with_it() {
    let app = spawn_app().await;
    let (id, session) = app.user_with_session("ada@cred.test").await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(20))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let parent =
        app.post("/api/v1/me/tokens", &session, json!({"name": "short", "expires_at": soon})).await.expect(201);
    let parent_token = parent["token"].as_str().unwrap();
    let child = app.post("/api/v1/me/tokens", parent_token, json!({"name": "child"})).await.expect(201);
    assert!(same_instant(&child["expires_at"], &parent["expires_at"]), "{child:#}");
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let asked = app.post("/api/v1/me/tokens", parent_token, json!({"name": "longer", "expires_at": later})).await;
    assert!(same_instant(&asked.expect(201)["expires_at"], &parent["expires_at"]));
    // A session makes a token that lives as long as asked.
    let free = app.post("/api/v1/me/tokens", &session, json!({"name": "free"})).await.expect(201);
    assert!(free["expires_at"].is_null());

    // An admin's impersonation through an expiring API token ends with that token.
    let scoped = json!({"name": "ops", "expires_at": soon, "scopes": ["users.impersonate"]});
    let admin_token = app.post("/api/v1/me/tokens", &app.admin, scoped).await.expect(201);
    let imp = app
        .post(
            &format!("/api/v1/users/{id}/impersonate"),
            admin_token["token"].as_str().unwrap(),
            json!({"reason": "t"}),
        )
        .await
        .expect(200);
    assert!(parse_time(&imp["expires_at"]) <= parse_time(&admin_token["expires_at"]));
}

#[tokio::test]
async fn a_credential_is_revoked_with_the_token_or_session_that_made_it() {
    let app = spawn_app().await;
    let (target, target_session) = app.user_with_session("cy@cred.test").await;
    let scoped = json!({"name": "ops", "scopes": ["users.impersonate"]});
    let parent = app.post("/api/v1/me/tokens", &app.admin, scoped).await.expect(201);
    let parent_token = parent["token"].as_str().unwrap();
    let child = app.post("/api/v1/me/tokens", parent_token, json!({"name": "child", "scopes": ["users.impersonate"]}));
    let child = child.await.expect(201);
    let child_token = child["token"].as_str().unwrap();
    let grandchild = app.post("/api/v1/me/tokens", child_token, json!({"name": "grandchild"})).await.expect(201);
    let grandchild_token = grandchild["token"].as_str().unwrap();
    let path = format!("/api/v1/users/{target}/impersonate");
    let imp = app.post(&path, child_token, json!({"reason": "ticket 7"})).await.expect(200);
    let imp_token = imp["token"].as_str().unwrap();
    app.get("/api/v1/me", imp_token).await.expect(200);

    app.delete(&format!("/api/v1/me/tokens/{}", parent["id"].as_str().unwrap()), &app.admin).await.expect(204);
    for made in [child_token, grandchild_token, imp_token] {
        app.get("/api/v1/me", made).await.expect_problem(401, "unauthenticated");
    }
    app.get("/api/v1/me", &target_session).await.expect(200);

    // An impersonation started from a session ends when that session is revoked.
    let own = app.login(ADMIN_EMAIL, PASSWORD).await;
    let own_id = app.get("/api/v1/me/sessions", &own).await.expect(200)["items"][0]["id"].as_str().unwrap().to_owned();
    let imp = app.post(&path, &own, json!({"reason": "ticket 8"})).await.expect(200);
    let imp_token = imp["token"].as_str().unwrap();
    app.delete(&format!("/api/v1/me/sessions/{own_id}"), &app.admin).await.expect(204);
    app.get("/api/v1/me", imp_token).await.expect_problem(401, "unauthenticated");
    app.get("/api/v1/me", &target_session).await.expect(200);
}

#[tokio::test]
async fn an_api_token_does_only_what_it_was_created_for() {
    let app = spawn_app().await;
    let target = app.user("dee@cred.test").await;
    let plain = app.post("/api/v1/me/tokens", &app.admin, json!({"name": "plain"})).await.expect(201);
    let plain = plain["token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/users", plain).await.status, 200, "a plain token reads and writes as its user");
    let path = format!("/api/v1/users/{target}/impersonate");
    app.post(&path, plain, json!({"reason": "t"})).await.expect_problem(403, "forbidden");
    app.post("/api/v1/scim-tokens", plain, json!({"name": "idp"})).await.expect_problem(403, "forbidden");
    // A token made with it gets no scope it lacks.
    let wider = json!({"name": "wider", "scopes": ["users.impersonate"]});
    app.post("/api/v1/me/tokens", plain, wider).await.expect_problem(403, "forbidden");

    let both = json!({"name": "both", "scopes": ["scim_tokens.create", "users.impersonate", "users.impersonate"]});
    let both = app.post("/api/v1/me/tokens", &app.admin, both).await.expect(201);
    assert_eq!(both["scopes"], json!(["users.impersonate", "scim_tokens.create"]));
    let both = both["token"].as_str().unwrap();
    app.post(&path, both, json!({"reason": "t"})).await.expect(200);
    app.post("/api/v1/scim-tokens", both, json!({"name": "idp"})).await.expect(201);
    let listed = app.get("/api/v1/me/tokens", &app.admin).await.expect(200);
    assert_eq!(listed["items"][0]["scopes"], json!(["users.impersonate", "scim_tokens.create"]));

    // A scope needs its permission; an unknown scope is a validation error.
    let (_, session) = app.user_with_session("eve@cred.test").await;
    let asked = json!({"name": "mine", "scopes": ["users.impersonate"]});
    app.post("/api/v1/me/tokens", &session, asked).await.expect_problem(403, "forbidden");
    let unknown = json!({"name": "mine", "scopes": ["everything"]});
    app.post("/api/v1/me/tokens", &session, unknown).await.expect_problem(400, "validation_failed");
}

#[tokio::test]
async fn a_password_set_by_anyone_but_the_user_ends_every_session_and_token() {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let (id, session) = app.user_with_session("bea@cred.test").await;
    let token = app.post("/api/v1/me/tokens", &session, json!({"name": "ci"})).await.expect(201);
    let token = token["token"].as_str().unwrap().to_owned();
    app.patch(&format!("/api/v1/users/{id}"), &app.admin, json!({"password": "an admin chose this one"}))
        .await
        .expect(200);
    app.get("/api/v1/me", &session).await.expect_problem(401, "unauthenticated");
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");

    // Two reset links: using the newer one voids the older, and revokes the new token too.
    let session = app.login("bea@cred.test", "an admin chose this one").await;
    let token = app.post("/api/v1/me/tokens", &session, json!({"name": "ci"})).await.expect(201);
    let token = token["token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        app.request(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "bea@cred.test"})))
            .await
            .expect(202);
    }
    let mails = sink.wait_for("bea@cred.test", 2).await;
    let links: Vec<String> = mails.iter().filter_map(|m| m.link_token("/reset/")).collect();
    assert_eq!(links.len(), 2);
    reset(&app, &links[1]).await.expect(204);
    app.get("/api/v1/me", &session).await.expect_problem(401, "unauthenticated");
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
    reset(&app, &links[0]).await.expect_problem(404, "not_found");
    app.login("bea@cred.test", "my very own password").await;
}

async fn reset(app: &TestApp, link: &str) -> Reply {
    let path = format!("/api/v1/auth/password-reset/{link}");
    app.request(Method::POST, &path, None, Some(json!({"password": "my very own password"}))).await
}

#[tokio::test]
async fn a_made_up_reset_link_costs_no_password_hashing() {
    let app = spawn_app().await;
    let path = "/api/v1/auth/password-reset/stw_setup_made-up";
    let before = app.state.passwords.computed();
    app.request(Method::POST, path, None, Some(json!({"password": "a password nobody needs"})))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.state.passwords.computed(), before, "nothing was hashed for a link that does not exist");
    let path = "/api/v1/auth/invitations/stw_setup_made-up/accept";
    app.request(Method::POST, path, None, Some(json!({"password": "a password nobody needs"})))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.state.passwords.computed(), before, "nor for a made-up invitation");
}

#[tokio::test]
async fn an_invitation_sent_to_an_address_dies_when_a_directory_changes_it() {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let owner = app.user("owner@corp.test").await;
    let org = app.org("Corp", &owner).await;
    let token = app.post("/api/v1/scim-tokens", &app.admin, json!({"name": "idp", "org_id": org})).await.expect(201);
    let token = token["token"].as_str().unwrap().to_owned();
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "old-mailbox@corp.test",
        "emails": [{"value": "old-mailbox@corp.test", "primary": true}]});
    let id = app.post("/scim/v2/Users", &token, user).await.expect(201)["id"].as_str().unwrap().to_owned();
    let invite = json!({"email": "old-mailbox@corp.test", "role": "member"});
    let other = app.org("Other", &app.user("owner@other.test").await).await;
    app.post(&format!("/api/v1/orgs/{other}/invitations"), &app.admin, invite).await.expect(201);
    let link = sink.wait_for("old-mailbox@corp.test", 1).await[0].link_token("/invite/").unwrap();
    let rename = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "replace", "path": "emails", "value": [{"value": "real.person@corp.test", "primary": true}]},
        {"op": "replace", "path": "userName", "value": "real.person@corp.test"}]});
    app.patch(&format!("/scim/v2/Users/{id}"), &token, rename).await.expect(200);
    app.request(
        Method::POST,
        &format!("/api/v1/auth/invitations/{link}/accept"),
        None,
        Some(json!({"password": "set through the old link"})),
    )
    .await
    .expect_problem(404, "not_found");
}

#[tokio::test]
async fn an_address_guessing_links_is_refused_before_any_lookup() {
    let app = spawn_app_with(|c| c.login_failures_per_address = 3).await;
    for i in 0..3 {
        reset(&app, &format!("stw_setup_guess-{i}")).await.expect_problem(404, "not_found");
    }
    let refused = reset(&app, "stw_setup_guess-4").await;
    assert!(refused.headers.contains_key("retry-after"));
    refused.expect_problem(429, "rate_limited");
    let path = "/api/v1/auth/invitations/stw_setup_guess-5/accept";
    app.request(Method::POST, path, None, Some(json!({"password": "a password nobody needs"})))
        .await
        .expect_problem(429, "rate_limited");
}

/// A reset request answers before anyone is looked up: with the database's write lock held (on
/// SQLite every writer waits for it), a request for an address with an account is answered as
/// one for an address without, and the link is mailed once the lock is free.
#[tokio::test]
async fn a_reset_request_answers_before_the_account_is_looked_up() {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    app.user("known@cred.test").await;
    let held = app.state.store.write().await.unwrap();
    for email in ["known@cred.test", "nobody@cred.test"] {
        let asked = app.request(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": email})));
        let answered = tokio::time::timeout(std::time::Duration::from_secs(5), asked).await;
        answered.unwrap_or_else(|_| panic!("the request for {email} waited for the lookup")).expect(202);
    }
    held.rollback().await.unwrap();
    let mails = sink.wait_for("known@cred.test", 1).await;
    assert!(mails[0].link_token("/reset/").is_some());
}

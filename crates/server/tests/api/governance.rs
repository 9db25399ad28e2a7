//! Who governs a user (API.md, invariant 11), on every path: an org's directory governs only the
//! people that org alone holds, no instance actor acts on someone whose roles grant more than it
//! holds, refusals name no one, a status set from above stays, org admins add people by
//! invitation only, and Login as user dies with the impersonator's access.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::smtp::SmtpSink;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

async fn scim_token(app: &TestApp, org: Option<&str>) -> String {
    let body = match org {
        Some(o) => json!({"name": "idp", "org_id": o}),
        None => json!({"name": "idp"}),
    };
    app.post("/api/v1/scim-tokens", &app.admin, body).await.expect(201)["token"].as_str().unwrap().to_owned()
}

fn patch_op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn scim_user(user_name: &str, extra: Value) -> Value {
    let mut doc =
        json!({"schemas": [USER_SCHEMA], "userName": user_name, "emails": [{"value": user_name, "primary": true}]});
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    doc
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.get(&format!("/api/v1/users/{id}"), &app.admin).await.expect(200)["status"].as_str().unwrap().to_owned()
}

/// An instance user with these instance roles, signed in: (id, session).
async fn staff(app: &TestApp, email: &str, roles: &[&str]) -> (String, String) {
    let body = json!({"email": email, "name": "Staff", "password": PASSWORD, "instance_roles": roles});
    let id = app.post("/api/v1/users", &app.admin, body).await.expect(201)["id"].as_str().unwrap().to_owned();
    (id, app.login(email, PASSWORD).await)
}

async fn custom_role(app: &TestApp, name: &str, permissions: &[&str]) {
    app.post("/api/v1/roles", &app.admin, json!({"name": name, "permissions": permissions})).await.expect(201);
}

/// Two customers: A (owner, admin, an A-only person, a system admin and a person shared with
/// B as members) and B (owner, a B-only person).
struct Tenants {
    a: String,
    b: String,
    a_admin: (String, String),
    a_only: String,
    shared: String,
    sysadmin: String,
    b_only: String,
}

async fn tenants(app: &TestApp) -> Tenants {
    let a_owner = app.user("owner@a.test").await;
    let a = app.org("Org A", &a_owner).await;
    let b_owner = app.user("owner@b.test").await;
    let b = app.org("Org B", &b_owner).await;
    let a_admin = app.user_with_session("admin@a.test").await;
    app.add_member(&a, &a_admin.0, "admin").await;
    let a_only = app.user("person@a.test").await;
    app.add_member(&a, &a_only, "member").await;
    let shared = app.user("shared@a.test").await;
    app.add_member(&a, &shared, "member").await;
    app.add_member(&b, &shared, "member").await;
    let (sysadmin, _) = staff(app, "second-root@a.test", &["system_admin"]).await;
    app.add_member(&a, &sysadmin, "member").await;
    let b_only = app.user("person@b.test").await;
    app.add_member(&b, &b_only, "member").await;
    Tenants { a, b, a_admin, a_only, shared, sysadmin, b_only }
}

#[tokio::test]
async fn an_orgs_directory_governs_only_the_people_that_org_alone_holds() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    let token = scim_token(&app, Some(&t.a)).await;
    let new_password = "a password the directory chose";

    // A system admin who is a member of A: no password, no name, no status from A's directory.
    let path = format!("/scim/v2/Users/{}", t.sysadmin);
    let set_password = patch_op(json!([{"op": "replace", "path": "password", "value": new_password}]));
    assert_eq!(app.patch(&path, &token, set_password.clone()).await.status, 403);
    let login = json!({"email": "second-root@a.test", "password": new_password});
    assert_eq!(app.request(reqwest::Method::POST, "/api/v1/auth/login", None, Some(login)).await.status, 401);
    let rename = patch_op(json!([{"op": "replace", "path": "displayName", "value": "Taken over"}]));
    assert_eq!(app.patch(&path, &token, rename.clone()).await.status, 403);
    let deactivate = patch_op(json!([{"op": "replace", "path": "active", "value": false}]));
    app.patch(&path, &token, deactivate).await.expect(200);
    assert_eq!(status_of(&app, &t.sysadmin).await, "active", "only the membership of A ended");
    assert!(app.memberships(&t.sysadmin).await.is_empty());

    // A person B holds too: A's directory cannot change their login email.
    let path = format!("/scim/v2/Users/{}", t.shared);
    let email =
        patch_op(json!([{"op": "replace", "path": "emails", "value": [{"value": "evil@a.test", "primary": true}]}]));
    assert_eq!(app.patch(&path, &token, email).await.status, 403);
    let user_name = patch_op(json!([{"op": "replace", "path": "userName", "value": "evil@a.test"}]));
    assert_eq!(app.patch(&path, &token, user_name).await.status, 403);
    let shared = app.get(&format!("/api/v1/users/{}", t.shared), &app.admin).await.expect(200);
    assert_eq!(shared["email"], "shared@a.test");
    let put = scim_user("evil@a.test", json!({"active": true}));
    assert_eq!(app.put(&path, &token, put).await.status, 403);
    // Deleting them through A ends their place in A only.
    app.delete(&path, &token).await.expect(204);
    assert_eq!(status_of(&app, &t.shared).await, "active");
    assert_eq!(app.memberships(&t.shared).await.len(), 1, "B's membership stays");

    // The person A alone holds is A's to manage, password included.
    let path = format!("/scim/v2/Users/{}", t.a_only);
    app.patch(&path, &token, rename).await.expect(200);
    let session = app.login("person@a.test", PASSWORD).await;
    app.patch(&path, &token, set_password).await.expect(200);
    app.get("/api/v1/me", &session).await.expect_problem(401, "unauthenticated");
    app.login("person@a.test", new_password).await;
}

#[tokio::test]
async fn an_instance_wide_directory_acts_with_a_directorys_rights_only() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    let token = scim_token(&app, None).await;
    let set_password =
        patch_op(json!([{"op": "replace", "path": "password", "value": "a password the directory chose"}]));
    assert_eq!(app.patch(&format!("/scim/v2/Users/{}", t.sysadmin), &token, set_password.clone()).await.status, 403);
    assert_eq!(app.delete(&format!("/scim/v2/Users/{}", t.sysadmin), &token).await.status, 403);
    assert_eq!(status_of(&app, &t.sysadmin).await, "active");
    app.patch(&format!("/scim/v2/Users/{}", t.shared), &token, set_password).await.expect(200);
}

#[tokio::test]
async fn scim_refusals_name_no_one_and_an_invisible_id_answers_as_an_unknown_one() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    let token = scim_token(&app, Some(&t.a)).await;
    let root = app.me_id(&app.admin).await;

    let taken = app.post("/scim/v2/Users", &token, scim_user(ADMIN_EMAIL, json!({}))).await;
    assert_eq!(taken.status, 409);
    assert_eq!(taken.body["scimType"], "uniqueness");
    assert!(!taken.body.to_string().contains(&root), "the holder is not named: {}", taken.body);
    let b_person = app.post("/scim/v2/Users", &token, scim_user("person@b.test", json!({}))).await;
    assert_eq!(b_person.status, 409);
    assert_eq!(b_person.body["detail"], taken.body["detail"], "a visible and an invisible holder answer alike");

    let team = app.post(&format!("/api/v1/orgs/{}/teams", t.a), &app.admin, json!({"name": "Ops"})).await.expect(201);
    let group = format!("/scim/v2/Groups/{}", team["id"].as_str().unwrap());
    let add = |id: &str| patch_op(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]));
    let unknown_id = "01900000-0000-7000-8000-000000000000";
    let unknown = app.patch(&group, &token, add(unknown_id)).await;
    assert_eq!(unknown.status, 400);
    for outsider in [&root, &t.b_only] {
        let refused = app.patch(&group, &token, add(outsider)).await;
        assert_eq!(refused.status, unknown.status);
        assert_eq!(
            refused.body["detail"].as_str().unwrap().replace(outsider.as_str(), "ID"),
            unknown.body["detail"].as_str().unwrap().replace(unknown_id, "ID")
        );
        assert!(app.memberships(outsider).await.iter().all(|(org, _, _)| *org != t.a), "no one joined A");
    }
    // People already in A are A's directory's to place in its teams.
    app.patch(&group, &token, add(&t.shared)).await.expect(200);
}

#[tokio::test]
async fn a_status_set_by_a_higher_or_another_authority_stays() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    let a_token = scim_token(&app, Some(&t.a)).await;
    let b_token = scim_token(&app, Some(&t.b)).await;
    let activate = patch_op(json!([{"op": "replace", "path": "active", "value": true}]));

    // An instance admin's deactivation is not A's directory's to undo.
    app.post(&format!("/api/v1/users/{}/deactivate", t.a_only), &app.admin, json!({})).await.expect(200);
    assert_eq!(app.patch(&format!("/scim/v2/Users/{}", t.a_only), &a_token, activate.clone()).await.status, 403);
    assert_eq!(status_of(&app, &t.a_only).await, "deactivated");

    // B's directory deletes B's person; A's directory cannot bring them back by their userName.
    app.delete(&format!("/scim/v2/Users/{}", t.b_only), &b_token).await.expect(204);
    let revive = scim_user("person@b.test", json!({"password": "a password from org A's side"}));
    assert_eq!(app.post("/scim/v2/Users", &a_token, revive.clone()).await.status, 409);
    assert_eq!(status_of(&app, &t.b_only).await, "deactivated");
    assert_eq!(app.memberships(&t.b_only).await, vec![(t.b.clone(), "member".to_owned(), true)]);
    // B's own directory still can.
    let back = app.post("/scim/v2/Users", &b_token, revive).await.expect(201);
    assert_eq!(back["id"], t.b_only.as_str());
    assert_eq!(status_of(&app, &t.b_only).await, "active");

    // A's own deactivation is A's to undo.
    let own = app.post("/scim/v2/Users", &a_token, scim_user("new@a.test", json!({}))).await.expect(201);
    let own_path = format!("/scim/v2/Users/{}", own["id"].as_str().unwrap());
    app.patch(&own_path, &a_token, patch_op(json!([{"op": "replace", "path": "active", "value": false}])))
        .await
        .expect(200);
    app.patch(&own_path, &a_token, activate).await.expect(200);
    assert_eq!(status_of(&app, own["id"].as_str().unwrap()).await, "active");
}

#[tokio::test]
async fn no_instance_actor_acts_on_a_user_whose_roles_grant_more() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    let (_, admin) = staff(&app, "admin@instance.test", &["admin"]).await;
    let user = format!("/api/v1/users/{}", t.sysadmin);
    for action in ["deactivate", "suspend"] {
        app.post(&format!("{user}/{action}"), &admin, json!({})).await.expect_problem(403, "forbidden");
    }
    app.post(&format!("{user}/sessions/revoke"), &admin, json!({})).await.expect_problem(403, "forbidden");
    app.patch(&user, &admin, json!({"password": "a password the admin chose"})).await.expect_problem(403, "forbidden");
    app.put(&format!("{user}/notifications"), &admin, json!({"categories": {"security": false}}))
        .await
        .expect_problem(403, "forbidden");
    assert_eq!(status_of(&app, &t.sysadmin).await, "active");
    // The built-in admin still governs people without instance roles.
    app.post(&format!("/api/v1/users/{}/suspend", t.a_only), &admin, json!({})).await.expect(200);

    custom_role(&app, "renamer", &["users.read", "users.write"]).await;
    let (_, renamer) = staff(&app, "renamer@instance.test", &["renamer"]).await;
    app.patch(&user, &renamer, json!({"name": "Renamed"})).await.expect_problem(403, "forbidden");
    app.patch(&format!("/api/v1/users/{}", t.shared), &renamer, json!({"name": "Renamed"})).await.expect(200);

    custom_role(&app, "scheduler", &["users.read", "users.write", "users.lifecycle"]).await;
    let (_, scheduler) = staff(&app, "scheduler@instance.test", &["scheduler"]).await;
    let at = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    app.patch(&user, &scheduler, json!({"deactivate_at": at})).await.expect_problem(403, "forbidden");

    // A role held by a more privileged admin cannot be edited by a narrower role manager.
    custom_role(&app, "auditor", &["users.read", "audit.read"]).await;
    app.patch(&user, &app.admin, json!({"instance_roles": ["system_admin", "auditor"]})).await.expect(200);
    custom_role(&app, "role_manager", &["roles.manage", "users.read", "audit.read"]).await;
    let (_, manager) = staff(&app, "roles@instance.test", &["role_manager"]).await;
    app.patch("/api/v1/roles/auditor", &manager, json!({"permissions": ["users.read"]}))
        .await
        .expect_problem(403, "forbidden");
    custom_role(&app, "reader", &["users.read"]).await;
    app.patch(&format!("/api/v1/users/{}", t.shared), &app.admin, json!({"instance_roles": ["reader"]}))
        .await
        .expect(200);
    app.patch("/api/v1/roles/reader", &manager, json!({"permissions": ["users.read", "audit.read"]})).await.expect(200);
}

#[tokio::test]
async fn an_access_review_lists_and_applies_only_what_its_reviewer_may() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    custom_role(&app, "reviews_only", &["reviews.manage"]).await;
    let (_, narrow) = staff(&app, "narrow@instance.test", &["reviews_only"]).await;
    app.post("/api/v1/access-reviews", &narrow, json!({"inactive_days": 0})).await.expect_problem(403, "forbidden");

    custom_role(&app, "reviewer", &["reviews.manage", "users.read"]).await;
    let (_, reviewer) = staff(&app, "reviewer@instance.test", &["reviewer"]).await;
    let review = app.post("/api/v1/access-reviews", &reviewer, json!({"inactive_days": 0})).await.expect(201);
    let id = review["id"].as_str().unwrap();
    let decide = |user: &str, decision: &str| json!({"user_id": user, "decision": decision});
    app.post(&format!("/api/v1/access-reviews/{id}/decisions"), &reviewer, decide(&t.a_only, "deactivate"))
        .await
        .expect_problem(403, "forbidden");

    custom_role(&app, "lifecycle_reviewer", &["reviews.manage", "users.read", "users.lifecycle"]).await;
    let (_, lifecycle) = staff(&app, "lifecycle@instance.test", &["lifecycle_reviewer"]).await;
    app.post(&format!("/api/v1/access-reviews/{id}/decisions"), &lifecycle, decide(&t.sysadmin, "deactivate"))
        .await
        .expect_problem(403, "forbidden");
    // A decision made by someone with the right is applied only with the completer's rights.
    app.post(&format!("/api/v1/access-reviews/{id}/decisions"), &app.admin, decide(&t.sysadmin, "deactivate"))
        .await
        .expect(200);
    app.post(&format!("/api/v1/access-reviews/{id}/decisions"), &lifecycle, decide(&t.a_only, "deactivate"))
        .await
        .expect(200);
    let done = app.post(&format!("/api/v1/access-reviews/{id}/complete"), &lifecycle, json!({})).await.expect(200);
    assert!(done["completed_at"].is_string());
    assert_eq!(status_of(&app, &t.sysadmin).await, "active");
    assert_eq!(status_of(&app, &t.a_only).await, "deactivated");
    let completed = &app.audit("&type=review.completed").await[0];
    assert_eq!(completed["detail"]["skipped"], 1);
}

#[tokio::test]
async fn instance_policies_and_schedules_reach_no_further_than_their_setters() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    let (admin_id, admin) = staff(&app, "admin@instance.test", &["admin"]).await;
    custom_role(&app, "settings", &["instance.manage"]).await;
    let (settings_id, settings) = staff(&app, "settings@instance.test", &["settings"]).await;
    app.patch("/api/v1/instance", &settings, json!({"policies": {"dormant_after_days": 0}}))
        .await
        .expect_problem(403, "forbidden");
    app.patch("/api/v1/instance", &settings, json!({"placeholder_owner_id": settings_id}))
        .await
        .expect_problem(400, "validation_failed");

    // The dormant-users policy reaches the people of the orgs, never the instance's admins.
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"dormant_after_days": 0}})).await.expect(200);
    app.state.clock.advance(time::Duration::seconds(5));
    steward::scheduler::run_once(&app.state).await.unwrap();
    assert_eq!(status_of(&app, &t.a_only).await, "deactivated");
    for id in [&t.sysadmin, &admin_id, &settings_id] {
        assert_eq!(status_of(&app, id).await, "active");
    }
    app.get("/api/v1/me", &app.admin).await.expect(200);
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"dormant_after_days": null}})).await.expect(200);

    // A schedule runs with its setter's rights: once the setter lost them, it is dropped.
    let scheduled = app.user("scheduled@a.test").await;
    let spent = app.user("spent@a.test").await;
    let at = (app.state.clock.now() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    app.patch(&format!("/api/v1/users/{scheduled}"), &admin, json!({"deactivate_at": at})).await.expect(200);
    app.patch(&format!("/api/v1/users/{admin_id}"), &app.admin, json!({"instance_roles": ["viewer"]}))
        .await
        .expect(200);
    // A manual deactivation and reactivation spend the other schedule.
    app.patch(&format!("/api/v1/users/{spent}"), &app.admin, json!({"deactivate_at": at})).await.expect(200);
    app.post(&format!("/api/v1/users/{spent}/deactivate"), &app.admin, json!({})).await.expect(200);
    app.post(&format!("/api/v1/users/{spent}/reactivate"), &app.admin, json!({})).await.expect(200);
    app.state.clock.advance(time::Duration::hours(2));
    steward::scheduler::run_once(&app.state).await.unwrap();
    assert_eq!(status_of(&app, &scheduled).await, "active");
    assert_eq!(status_of(&app, &spent).await, "active");
    let dropped = app.audit("&type=user.schedule_dropped").await;
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["target_id"], scheduled.as_str());
}

#[tokio::test]
async fn org_admins_add_people_by_invitation_only_and_a_frozen_org_takes_no_one() {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let t = tenants(&app).await;
    let (_, a_admin) = &t.a_admin;
    // B's person cannot be pulled into A by id; to A's admin they do not exist.
    let put = app.put(&format!("/api/v1/orgs/{}/members/{}", t.a, t.b_only), a_admin, json!({"role": "member"})).await;
    let unknown = app
        .put(
            &format!("/api/v1/orgs/{}/members/01900000-0000-7000-8000-000000000000", t.a),
            a_admin,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!((put.status, put.code()), (unknown.status, unknown.code()));
    assert_eq!(put.status, 404);
    assert_eq!(app.memberships(&t.b_only).await.len(), 1);

    // An invitation answers alike whether or not the address has an account.
    let invite = |email: &str| json!({"email": email, "role": "member"});
    let existing =
        app.post(&format!("/api/v1/orgs/{}/invitations", t.a), a_admin, invite("person@b.test")).await.expect(201);
    let fresh =
        app.post(&format!("/api/v1/orgs/{}/invitations", t.a), a_admin, invite("fresh@a.test")).await.expect(201);
    assert!(existing["user_id"].is_null() && fresh["user_id"].is_null());
    app.post(&format!("/api/v1/users/{}/deactivate", t.b_only), &app.admin, json!({})).await.expect(200);
    let deactivated = app.post(&format!("/api/v1/orgs/{}/invitations", t.a), a_admin, invite("person@b.test")).await;
    let body = deactivated.expect_problem(409, "user_deactivated");
    assert!(!body.to_string().contains(&t.b_only), "the holder is not named to an org admin: {body}");

    // An invitation carries its inviter's rights to the moment it is accepted.
    let pending =
        app.post(&format!("/api/v1/orgs/{}/invitations", t.a), a_admin, invite("later@a.test")).await.expect(201);
    app.put(&format!("/api/v1/orgs/{}/members/{}", t.a, t.a_admin.0), &app.admin, json!({"role": "member"}))
        .await
        .expect(200);
    assert!(pending["id"].is_string());
    let mails = sink.wait_for("later@a.test", 1).await;
    let secret = mails[0].link_token("/invite/").expect("the mail carries the link");
    let accept = json!({"password": "a password of my own"});
    let accepted = app
        .request(reqwest::Method::POST, &format!("/api/v1/auth/invitations/{secret}/accept"), None, Some(accept))
        .await;
    assert_eq!(accepted.status, 409, "{:#}", accepted.body);
    app.put(&format!("/api/v1/orgs/{}/members/{}", t.a, t.a_admin.0), &app.admin, json!({"role": "admin"}))
        .await
        .expect(200);

    // A deprovisioned org's admins change none of its people or teams.
    app.post(&format!("/api/v1/orgs/{}/deprovision", t.a), &app.admin, json!({"reason": "churned"})).await.expect(200);
    app.post(&format!("/api/v1/orgs/{}/invitations", t.a), a_admin, invite("another@a.test"))
        .await
        .expect_problem(409, "org_frozen");
    app.post(&format!("/api/v1/orgs/{}/teams", t.a), a_admin, json!({"name": "New"}))
        .await
        .expect_problem(409, "org_frozen");
    app.put(&format!("/api/v1/orgs/{}/members/{}", t.a, t.a_only), a_admin, json!({"role": "viewer"}))
        .await
        .expect_problem(409, "org_frozen");
    // The operator still may.
    app.put(&format!("/api/v1/orgs/{}/members/{}", t.a, t.a_only), &app.admin, json!({"role": "viewer"}))
        .await
        .expect(200);
}

#[tokio::test]
async fn login_as_user_ends_with_the_impersonators_access_and_cannot_revoke_the_users_credentials() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    let (support_id, support) = staff(&app, "support@instance.test", &["support"]).await;
    let own_token = app
        .post("/api/v1/me/tokens", &app.login("person@a.test", PASSWORD).await, json!({"name": "ci"}))
        .await
        .expect(201);
    let start = |who: String| {
        let app = &app;
        let support = support.clone();
        async move {
            let body = app
                .post(&format!("/api/v1/users/{who}/impersonate"), &support, json!({"reason": "ticket 7"}))
                .await
                .expect(200);
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let session = start(t.a_only.clone()).await;
    let token_id = own_token["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/me/tokens/{token_id}"), &session).await.expect_problem(403, "forbidden");
    let sessions = app.get("/api/v1/me/sessions", &session).await.expect(200);
    let other = sessions["items"].as_array().unwrap().iter().find(|s| s["current"] != true).unwrap()["id"].clone();
    app.delete(&format!("/api/v1/me/sessions/{}", other.as_str().unwrap()), &session)
        .await
        .expect_problem(403, "forbidden");
    app.get("/api/v1/me", own_token["token"].as_str().unwrap()).await.expect(200);

    // Losing users.impersonate ends it at once.
    app.patch(&format!("/api/v1/users/{support_id}"), &app.admin, json!({"instance_roles": ["viewer"]}))
        .await
        .expect(200);
    app.get("/api/v1/me", &session).await.expect_problem(401, "unauthenticated");
    app.patch(&format!("/api/v1/users/{support_id}"), &app.admin, json!({"instance_roles": ["support"]}))
        .await
        .expect(200);
    let session = start(t.a_only.clone()).await;
    app.get("/api/v1/me", &session).await.expect(200);
    // So does the impersonator's suspension.
    app.post(&format!("/api/v1/users/{support_id}/suspend"), &app.admin, json!({})).await.expect(200);
    app.get("/api/v1/me", &session).await.expect_problem(401, "unauthenticated");
}

#[tokio::test]
async fn bulk_runs_every_operation_through_the_same_rule() {
    let app = spawn_app().await;
    let t = tenants(&app).await;
    let token = scim_token(&app, Some(&t.a)).await;
    let password = |id: &str| {
        json!({"method": "PATCH", "path": format!("/Users/{id}"),
            "data": patch_op(json!([{"op": "replace", "path": "password", "value": "a password the directory chose"}]))})
    };
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            password(&t.sysadmin),
            password(&t.shared),
            {"method": "PATCH", "path": format!("/Users/{}", t.sysadmin),
                "data": patch_op(json!([{"op": "replace", "path": "active", "value": true}]))},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": scim_user("person@b.test", json!({"password": "a password from org A's side"}))},
            password(&t.a_only),
        ]
    });
    let reply = app.post("/scim/v2/Bulk", &token, body).await.expect(200);
    let statuses: Vec<&str> =
        reply["Operations"].as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["403", "403", "200", "409", "200"]);
    let login = json!({"email": "second-root@a.test", "password": "a password the directory chose"});
    assert_eq!(app.request(reqwest::Method::POST, "/api/v1/auth/login", None, Some(login)).await.status, 401);
    assert!(!reply.to_string().contains(&t.b_only), "the 409 names no one");
}

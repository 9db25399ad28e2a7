//! Invitations to an org as resources: read where `Location` says, listed while open, revoked by
//! the org's managers, and accepted by the invited person as themselves.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

/// An admin invites an existing person; the invitation is read where the answer says, listed
/// while it is open, and the person sees it among their own and accepts it: they join with its
/// role, and it is listed nowhere any more.
#[tokio::test]
async fn an_existing_person_sees_their_invitation_and_accepts_it_as_themselves() {
    let app = spawn_app().await;
    let owner = app.user("owner@inv.test").await;
    let org = app.org("Invites", &owner).await;
    let owner_token = app.login("owner@inv.test", PASSWORD).await;
    let (person, person_token) = app.user_with_session("person@inv.test").await;
    let (_, stranger_token) = app.user_with_session("stranger@inv.test").await;

    let made = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &owner_token,
            json!({"email": "person@inv.test", "role": "admin"}),
        )
        .await;
    let location = made.headers.get("location").expect("201 says where").to_str().unwrap().to_owned();
    let made = made.expect(201);
    let id = made["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/orgs/{org}/invitations/{id}"));
    assert_eq!((made["status"].as_str(), made["org_name"].as_str()), (Some("pending"), Some("Invites")));
    assert_eq!(made["user_id"], json!(null), "an org's owner does not learn which user holds an address");
    let read = app.get(&location, &owner_token).await.expect(200);
    assert_eq!((read["id"].as_str(), read["role"].as_str()), (Some(id), Some("admin")));
    let listed = app.get(&format!("/api/v1/orgs/{org}/invitations"), &owner_token).await.expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let mine = app.get("/api/v1/me/invitations", &person_token).await.expect(200);
    assert_eq!(mine["items"][0]["id"], id);
    assert_eq!(mine["items"][0]["org_name"], "Invites");
    assert_eq!(mine["items"][0]["user_id"], person.as_str(), "the invited person sees themselves");
    let theirs = app.get("/api/v1/me/invitations", &stranger_token).await.expect(200);
    assert_eq!(theirs["items"], json!([]));

    let accept = format!("/api/v1/me/invitations/{id}/accept");
    let before = app.snapshot().await;
    app.post(&accept, &stranger_token, json!({})).await.expect_problem(404, "not_found");
    app.post("/api/v1/me/invitations/not-an-id/accept", &person_token, json!({}))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.snapshot().await, before, "a refused acceptance changes nothing");
    let accepted = app.post(&accept, &person_token, json!({})).await.expect(200);
    assert_eq!(accepted["status"], "accepted");
    let me = app.get("/api/v1/me", &person_token).await.expect(200);
    assert_eq!(
        (me["memberships"][0]["org_id"].as_str(), me["memberships"][0]["role"].as_str()),
        (Some(org.as_str()), Some("admin"))
    );
    app.post(&accept, &person_token, json!({})).await.expect_problem(404, "not_found");
    assert_eq!(app.get("/api/v1/me/invitations", &person_token).await.expect(200)["items"], json!([]));
    assert_eq!(app.get(&format!("/api/v1/orgs/{org}/invitations"), &owner_token).await.expect(200)["items"], json!([]));
    assert_eq!(app.get(&location, &owner_token).await.expect(200)["status"], "accepted");
    app.delete(&location, &owner_token).await.expect_problem(409, "invalid_transition");
    let audit =
        app.get(&format!("/api/v1/audit?type=invitation.accepted&target_id={person}"), &app.admin).await.expect(200);
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit:#}");
}

/// Revoking frees the seat an open invitation held and stops it being accepted; another org's
/// admin and the org's plain members can neither read nor revoke it.
#[tokio::test]
async fn a_revoked_invitation_frees_its_seat_and_is_the_orgs_own() {
    let app = spawn_app().await;
    let owner = app.user("owner@revoke.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Seats", "owner_id": owner, "license": {"users": 2}}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner_token = app.login("owner@revoke.test", PASSWORD).await;
    let (_, invited_token) = app.user_with_session("invited@revoke.test").await;
    let invitations = format!("/api/v1/orgs/{org}/invitations");
    let first = app.post(&invitations, &owner_token, json!({"email": "invited@revoke.test", "role": "member"})).await;
    let first = first.expect(201)["id"].as_str().unwrap().to_owned();
    let second = json!({"email": "later@revoke.test", "role": "member"});
    app.post(&invitations, &owner_token, second.clone()).await.expect_problem(409, "limit_reached");

    let other_owner = app.user("other@revoke.test").await;
    let other_org = app.org("Elsewhere", &other_owner).await;
    let other_token = app.login("other@revoke.test", PASSWORD).await;
    let (plain, plain_token) = app.user_with_session("plain@revoke.test").await;
    app.add_member(&other_org, &plain, "member").await;
    let one = format!("{invitations}/{first}");
    let before = app.snapshot().await;
    for token in [&other_token, &plain_token] {
        let refused = app.get(&one, token).await;
        assert!(matches!(refused.status.as_u16(), 403 | 404), "{}", refused.status);
        let refused = app.delete(&one, token).await;
        assert!(matches!(refused.status.as_u16(), 403 | 404), "{}", refused.status);
    }
    let mismatched = format!("/api/v1/orgs/{other_org}/invitations/{first}");
    app.get(&mismatched, &other_token).await.expect_problem(404, "not_found");
    app.delete(&mismatched, &other_token).await.expect_problem(404, "not_found");
    assert_eq!(app.snapshot().await, before, "nothing changed");

    app.delete(&one, &owner_token).await.expect(204);
    assert_eq!(app.get(&one, &owner_token).await.expect(200)["status"], "revoked");
    app.delete(&one, &owner_token).await.expect_problem(409, "invalid_transition");
    app.post(&format!("/api/v1/me/invitations/{first}/accept"), &invited_token, json!({}))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.get("/api/v1/me/invitations", &invited_token).await.expect(200)["items"], json!([]));
    app.post(&invitations, &owner_token, second).await.expect(201);
    let audit = app.get("/api/v1/audit?type=invitation.revoked", &app.admin).await.expect(200);
    assert_eq!(audit["items"][0]["org_id"], org.as_str(), "{audit:#}");
}

/// A Login as user session cannot accept the person's invitations: joining is their own choice.
#[tokio::test]
async fn an_impersonation_cannot_accept_an_invitation() {
    let app = spawn_app().await;
    let owner = app.user("owner@imp-inv.test").await;
    let org = app.org("Chosen", &owner).await;
    let person = app.user("person@imp-inv.test").await;
    let made = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &app.admin,
            json!({"email": "person@imp-inv.test", "role": "member"}),
        )
        .await
        .expect(201);
    let imp = app
        .post(&format!("/api/v1/users/{person}/impersonate"), &app.admin, json!({"reason": "support"}))
        .await
        .expect(200);
    let token = imp["token"].as_str().unwrap();
    let before = app.snapshot().await;
    let accept = format!("/api/v1/me/invitations/{}/accept", made["id"].as_str().unwrap());
    app.request(Method::POST, &accept, Some(token), Some(json!({}))).await.expect_problem(403, "forbidden");
    assert_eq!(app.snapshot().await, before);
}

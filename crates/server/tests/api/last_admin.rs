//! One rule keeps the instance reachable: the last active system admin is never deactivated or
//! suspended, whichever path asks. The actor here holds a custom role with every permission, so
//! that the governance rule lets each path reach the admin and only the last-admin rule stands.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const REFUSAL: &str = "the last active system_admin cannot be deactivated";

#[tokio::test]
async fn the_last_active_system_admin_is_refused_the_same_way_on_every_path() {
    let app = spawn_app().await;
    let root = app.me_id(&app.admin).await;
    let every = app.get("/api/v1/roles/system_admin", &app.admin).await.expect(200)["permissions"].clone();
    app.post("/api/v1/roles", &app.admin, json!({"name": "deputy", "permissions": every})).await.expect(201);
    let body =
        json!({"email": "deputy@last.test", "name": "Deputy", "password": PASSWORD, "instance_roles": ["deputy"]});
    app.post("/api/v1/users", &app.admin, body).await.expect(201);
    let deputy = app.login("deputy@last.test", PASSWORD).await;
    let user_path = format!("/api/v1/users/{root}");

    // The JSON API (and the pages, which call it).
    let refused = app.post(&format!("{user_path}/deactivate"), &deputy, json!({})).await;
    assert_eq!(refused.expect_problem(409, "invalid_transition")["detail"], REFUSAL);
    let refused = app.post(&format!("{user_path}/suspend"), &deputy, json!({})).await;
    assert_eq!(
        refused.expect_problem(409, "invalid_transition")["detail"],
        "the last active system_admin cannot be suspended"
    );

    // SCIM PATCH and DELETE, with an instance-wide token the deputy made. A directory never
    // governs a holder of an instance role, so the governance rule refuses first (403); the
    // last-admin rule stands behind it in the one deactivation every path calls.
    let token = app.post("/api/v1/scim-tokens", &deputy, json!({"name": "idp"})).await.expect(201);
    let token = token["token"].as_str().unwrap().to_owned();
    let scim_path = format!("/scim/v2/Users/{root}");
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let patched = app.patch(&scim_path, &token, off).await;
    assert_eq!(patched.status.as_u16(), 403, "SCIM PATCH: {:#}", patched.body);
    let deleted = app.delete(&scim_path, &token).await;
    assert_eq!((deleted.status.as_u16(), &deleted.body), (403, &patched.body), "SCIM DELETE");

    // The scheduler: a schedule the rule refuses is dropped, with the same reason.
    let at = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    app.patch(&user_path, &deputy, json!({"deactivate_at": at})).await.expect(200);
    app.state.clock.advance(time::Duration::hours(2));
    let dropped = dropped_schedule(&app, &root).await;
    assert_eq!(dropped["detail"]["reason"], REFUSAL);
    assert!(app.get(&user_path, &app.admin).await.expect(200)["deactivate_at"].is_null());

    // An access review's decision is skipped.
    let review = app.post("/api/v1/access-reviews", &deputy, json!({"inactive_days": 0})).await.expect(201);
    let id = review["id"].as_str().unwrap().to_owned();
    let decision = json!({"user_id": root, "decision": "deactivate"});
    app.post(&format!("/api/v1/access-reviews/{id}/decisions"), &deputy, decision).await.expect(200);
    app.post(&format!("/api/v1/access-reviews/{id}/complete"), &deputy, json!({})).await.expect(200);
    let completed = app.audit("&type=review.completed").await;
    assert_eq!(completed[0]["detail"]["applied"], 0, "{completed:#?}");

    assert_eq!(app.get(&user_path, &app.admin).await.expect(200)["status"], "active");
    assert!(app.audit("&type=user.deactivated").await.is_empty());
    assert!(app.audit("&type=user.suspended").await.is_empty());
}

async fn dropped_schedule(app: &TestApp, user: &str) -> Value {
    for _ in 0..60 {
        if let Some(e) = app.audit("&type=user.schedule_dropped").await.into_iter().find(|e| e["target_id"] == user) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the schedule was not dropped within 6 s");
}

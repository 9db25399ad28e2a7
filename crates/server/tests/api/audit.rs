//! Invariant 6: every change writes its audit event in the same transaction; the log is
//! hash-chained and verification points at an edited event.

use std::process::Command;

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn invariant_6_every_change_writes_its_event_attributed_to_its_actor() {
    let app = spawn_app().await;
    let me = app.get("/api/v1/me", &app.admin).await.expect(200);
    let admin_id = me["user"]["id"].as_str().unwrap().to_owned();
    let mut expected: Vec<(&str, String)> = Vec::new();
    let owner = app.user("own@audit.test").await;
    expected.push(("user.created", owner.clone()));
    let org = app.org("Audited", &owner).await;
    expected.push(("org.created", org.clone()));
    expected.push(("org.member_added", owner.clone()));
    let member = app.user("m@audit.test").await;
    expected.push(("user.created", member.clone()));
    app.add_member(&org, &member, "admin").await;
    expected.push(("org.member_added", member.clone()));
    app.put(&format!("/api/v1/orgs/{org}/members/{member}"), &app.admin, json!({"role": "viewer"})).await.expect(200);
    expected.push(("org.member_role_changed", member.clone()));
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"users": 9})).await.expect(200);
    expected.push(("org.license_changed", org.clone()));
    app.patch(&format!("/api/v1/users/{member}"), &app.admin, json!({"name": "Renamed"})).await.expect(200);
    expected.push(("user.updated", member.clone()));

    let events = app.audit(&format!("&actor_id={admin_id}")).await;
    let got: Vec<(String, String)> = events
        .iter()
        .rev()
        .filter(|e| e["type"] != "user.login")
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["target_id"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<(String, String)> = expected.into_iter().map(|(k, t)| (k.to_owned(), t)).collect();
    assert_eq!(got, expected);
    let role_change = events.iter().find(|e| e["type"] == "org.member_role_changed").unwrap();
    assert_eq!(role_change["org_id"], org.as_str(), "membership events name the org");
    assert_eq!(role_change["detail"], json!({"from": "admin", "to": "viewer"}));
    // Personal data sits apart from the hashed detail.
    let created = events.iter().find(|e| e["type"] == "user.created").unwrap();
    assert_eq!(created["personal"]["email"], "m@audit.test");
    assert!(!created["detail"].to_string().contains("m@audit.test"));
    // Reading and failing change nothing, so they write nothing.
    let count = app.audit("").await.len();
    app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    app.put(&format!("/api/v1/orgs/{org}/members/{owner}"), &app.admin, json!({"role": "viewer"})).await.expect(409);
    assert_eq!(app.audit("").await.len(), count);
}

#[tokio::test]
async fn invariant_6_a_change_whose_event_cannot_be_written_does_not_happen() {
    let app = spawn_app().await;
    let owner = app.user("own@atomic.test").await;
    let db = app.db().await;
    if db.is_pg() {
        db.run(
            "CREATE FUNCTION refuse_org_events() RETURNS TRIGGER LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.kind = 'org.created' THEN RAISE EXCEPTION 'audit store refused the event'; END IF; RETURN NEW; END; $$",
            &[],
        )
        .await;
        db.run("CREATE TRIGGER refuse_org_events BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_org_events()", &[])
            .await;
    } else {
        db.run(
            "CREATE TRIGGER refuse_org_events BEFORE INSERT ON audit_events WHEN NEW.kind = 'org.created' \
             BEGIN SELECT RAISE(ABORT, 'audit store refused the event'); END",
            &[],
        )
        .await;
    }
    let before = app.snapshot().await;
    let r = app.post("/api/v1/orgs", &app.admin, json!({"name": "Ghost", "owner_id": owner})).await;
    let body = r.expect_problem(500, "internal");
    assert!(!body.to_string().contains("audit store refused"), "5xx bodies carry no internals");
    assert_eq!(app.snapshot().await, before, "the org was not created without its event");
    let orgs = db.i64("SELECT COUNT(*) FROM orgs", &[]).await;
    assert_eq!(orgs, 0);
}

#[tokio::test]
async fn invariant_6_the_log_is_append_only_and_verify_points_at_an_edited_event() {
    let app = spawn_app().await;
    let owner = app.user("own@chain.test").await;
    app.org("Chain", &owner).await;
    let ok = app.get("/api/v1/audit/verify", &app.admin).await.expect(200);
    assert_eq!(ok["ok"], true);
    let total = ok["events"].as_i64().unwrap();
    assert!(total >= 5);
    let db = app.db().await;
    let refused = db.exec("UPDATE audit_events SET detail = '{}' WHERE seq = 3", &[]).await.unwrap_err();
    assert!(refused.contains("append-only"), "{refused}");
    assert!(db.exec("DELETE FROM audit_events WHERE seq = 3", &[]).await.is_err());

    // Someone with the database file removes the guard and edits an event.
    let drop = if db.is_pg() { " ON audit_events" } else { "" };
    db.run(&format!("DROP TRIGGER audit_events_append_only_update{drop}"), &[]).await;
    db.run("UPDATE audit_events SET detail = '{\"role\":\"viewer\"}' WHERE seq = 3", &[]).await;
    let bad = app.get("/api/v1/audit/verify", &app.admin).await.expect(200);
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["first_bad_seq"], 3);
    assert_eq!(bad["events"], total);

    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["audit", "verify"])
        .env("STEWARD_DATABASE_URL", &app.db_url)
        .current_dir(app.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("broken at event 3"), "{out:?}");
}

#[tokio::test]
async fn erasing_personal_data_keeps_the_chain_verifiable() {
    let app = spawn_app().await;
    app.user("erase@chain.test").await;
    let db = app.db().await;
    let n = db.run("UPDATE audit_events SET personal = NULL WHERE personal LIKE '%erase@chain.test%'", &[]).await;
    assert_eq!(n, 1);
    let ok = app.get("/api/v1/audit/verify", &app.admin).await.expect(200);
    assert_eq!(ok["ok"], true);
    // But changing (rather than erasing) personal data is caught.
    db.run("UPDATE audit_events SET personal = '{\"email\":\"x@y.z\"}' WHERE seq = 1", &[]).await;
    let bad = app.get("/api/v1/audit/verify", &app.admin).await.expect(200);
    assert_eq!(bad["first_bad_seq"], 1);
}

#[tokio::test]
async fn audit_is_filtered_and_paged_newest_first() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.user(&format!("u{i}@page.test")).await;
    }
    let all = app.audit("&type=user.created").await;
    assert_eq!(all.len(), 6);
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    let page = app.get("/api/v1/audit?type=user.created&limit=4", &app.admin).await.expect(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest =
        app.get(&format!("/api/v1/audit?type=user.created&limit=4&cursor={cursor}"), &app.admin).await.expect(200);
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["next_cursor"].is_null());
    let future = app.get("/api/v1/audit?since=2999-01-01T00:00:00Z", &app.admin).await.expect(200);
    assert_eq!(future["items"].as_array().unwrap().len(), 0);
    app.get("/api/v1/audit?since=yesterday", &app.admin).await.expect_problem(400, "validation_failed");
}

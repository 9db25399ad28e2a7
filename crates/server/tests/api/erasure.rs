//! Data export and erasure: the streamed bundle, purge after retention, the redactable chain,
//! the org's own audit view.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{Db, PASSWORD, TestApp, spawn_app, spawn_app_with};

/// Rows anywhere in the database that mention `needle` (case-insensitive), by table.
async fn mentions(db: &Db, needle: &str) -> Vec<(String, i64)> {
    let tables = db
        .strings(
            if db.is_pg() {
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
            } else {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            },
            &[],
        )
        .await;
    let mut found = Vec::new();
    for t in tables {
        let columns = if db.is_pg() {
            db.strings(
                "SELECT column_name::text FROM information_schema.columns WHERE table_name = ? ORDER BY 1",
                &[&t],
            )
            .await
        } else {
            db.strings("SELECT name FROM pragma_table_info(?)", &[&t]).await
        };
        let any = columns.iter().map(|c| format!("lower(CAST({c} AS TEXT)) LIKE ?")).collect::<Vec<_>>().join(" OR ");
        let pattern = format!("%{}%", needle.to_lowercase());
        let binds: Vec<&str> = columns.iter().map(|_| pattern.as_str()).collect();
        let n = db.i64(&format!("SELECT COUNT(*) FROM {t} WHERE {any}"), &binds).await;
        if n > 0 {
            found.push((t, n));
        }
    }
    found
}

async fn populated_org(app: &TestApp) -> (String, String, String) {
    let owner = app.user("owner@export.test").await;
    let org = app
        .post(
            "/api/v1/orgs",
            &app.admin,
            json!({"name": "Exported", "owner_id": owner, "license": {"operations": 100}}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let member = app.user("member@export.test").await;
    app.add_member(&org, &member, "member").await;
    let team = app.post(&format!("/api/v1/orgs/{org}/teams"), &app.admin, json!({"name": "Core"})).await.expect(201);
    app.put(
        &format!("/api/v1/teams/{}/members/{member}", team["id"].as_str().unwrap()),
        &app.admin,
        json!({"role": "team_admin"}),
    )
    .await
    .expect(200);
    app.post(&format!("/api/v1/orgs/{org}/assets"), &app.admin, json!({"kind": "scenario", "name": "Sync"}))
        .await
        .expect(201);
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 7})).await.expect(200);
    (org, owner, member)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_bundle_holds_everything_of_the_org_and_only_for_owner_and_admins() {
    let app = spawn_app().await;
    let (org, owner, member) = populated_org(&app).await;
    app.post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "left"})).await.expect(200);
    let r =
        app.client.get(format!("{}/api/v1/orgs/{org}/export", app.base)).bearer_auth(&app.admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
    let bundle: Value = serde_json::from_str(&r.text().await.unwrap()).expect("the bundle is one JSON document");
    assert_eq!(bundle["format"], "steward-org-export/1");
    assert_eq!(bundle["org"]["id"], org.as_str());
    let members: Vec<&str> =
        bundle["members"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    assert!(members.contains(&member.as_str()) && members.contains(&owner.as_str()), "{members:?}");
    assert_eq!(bundle["teams"][0]["members"][0]["role"], "team_admin");
    assert_eq!(bundle["assets"][0]["name"], "Sync");
    assert_eq!(bundle["usage"][0]["operations_used"], 7);
    assert_eq!(bundle["deprovision_records"][0]["reason"], "left");
    let kinds: Vec<&str> =
        bundle["audit_events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"org.created") && kinds.contains(&"org.deprovisioned"), "{kinds:?}");

    app.patch(&format!("/api/v1/users/{member}"), &app.admin, json!({"password": PASSWORD})).await.expect(200);
    let token = app.login("member@export.test", PASSWORD).await;
    app.get(&format!("/api/v1/orgs/{org}/export"), &token).await.expect_problem(403, "forbidden");
    let (_, stranger) = app.user_with_session("stranger@export.test").await;
    app.get(&format!("/api/v1/orgs/{org}/export"), &stranger).await.expect_problem(404, "not_found");
}

fn export_peak_kib(app: &TestApp, org: &str) -> (u64, Value) {
    let file = app.dir.path().join(format!("{org}.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["orgs", "export", org, "--report-memory", "--output"])
        .arg(&file)
        .env("STEWARD_DATABASE_URL", &app.db_url)
        .current_dir(app.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("the peak memory is reported");
    let bundle = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    (peak, bundle)
}

async fn add_generated_members(db: &Db, org: &str, from: u64, to: u64) {
    let (uuid, now) = if db.is_pg() {
        ("'00000000-0000-7000-8000-' || lpad(i::text, 12, '0')", "(extract(epoch from now()) * 1000000)::bigint")
    } else {
        ("printf('00000000-0000-7000-8000-%012d', i)", "CAST(strftime('%s', 'now') AS INTEGER) * 1000000")
    };
    let range = format!("WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})");
    db.run(
        &format!(
            "INSERT INTO users (id, email, email_key, name, status, created_at, updated_at) {range} \
             SELECT {uuid}, 'm' || i || '@big.test', 'm' || i || '@big.test', 'Member ' || i, 'active', {now}, {now} FROM n"
        ),
        &[],
    )
    .await;
    db.run(
        &format!(
            "INSERT INTO memberships (id, org_id, user_id, role, dormant, created_at) {range} \
             SELECT {uuid}, ?, {uuid}, 'member', FALSE, {now} FROM n"
        ),
        &[org],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exporting_an_org_of_100000_members_takes_flat_memory() {
    let app = spawn_app().await;
    let owner = app.user("owner@big.test").await;
    let medium = app.org("Medium", &owner).await;
    let big = app.org("Big", &owner).await;
    let db = app.db().await;
    add_generated_members(&db, &medium, 1, 30_000).await;
    add_generated_members(&db, &big, 30_001, 130_000).await;
    let (medium_peak, medium_bundle) = export_peak_kib(&app, &medium);
    let (big_peak, big_bundle) = export_peak_kib(&app, &big);
    assert_eq!(medium_bundle["members"].as_array().unwrap().len(), 30_001);
    assert_eq!(big_bundle["members"].as_array().unwrap().len(), 100_001);
    let kib = |b: &Value| serde_json::to_string(&b["members"]).unwrap().len() as u64 / 1024;
    let grown = kib(&big_bundle) - kib(&medium_bundle);
    println!("peak: {medium_peak} KiB for 30,001 members, {big_peak} KiB for 100,001 (bundles differ by {grown} KiB)");
    // Buffering the bundle would grow the peak by at least the bundles' difference; caches that
    // fill up to their bound may add a little.
    assert!(big_peak < medium_peak + grown / 3, "memory grew with the org: {medium_peak} -> {big_peak} KiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_erases_the_org_and_its_leavers_personal_data_and_the_chain_still_verifies() {
    let mut app = spawn_app_with(|_| {}).await;
    let (org, _, member) = populated_org(&app).await;
    let other = app.org("Elsewhere", &app.user("o2@export.test").await).await;
    let stays = app.user("stays@export.test").await;
    app.add_member(&org, &stays, "viewer").await;
    app.add_member(&other, &stays, "viewer").await;
    for id in [&member, &stays] {
        app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({"reason": "left with the customer"}))
            .await
            .expect(200);
    }
    let purge = format!("/api/v1/orgs/{org}/purge");
    let before = app.snapshot().await;
    app.post(&purge, &app.admin, json!({"confirm": "Exported"})).await.expect_problem(409, "invalid_transition");
    app.post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "contract ended"}))
        .await
        .expect(200);
    let before_early = app.snapshot().await;
    assert_ne!(before, before_early);
    app.post(&purge, &app.admin, json!({"confirm": "exported"})).await.expect_problem(400, "validation_failed");
    app.post(&purge, &app.admin, json!({"confirm": "Exported"})).await.expect_problem(409, "invalid_transition");
    assert_eq!(app.snapshot().await, before_early, "refused purges change nothing");
    app.advance(time::Duration::days(31)).await;
    let done = app.post(&purge, &app.admin, json!({"confirm": "Exported"})).await.expect(200);
    assert_eq!(done["state"], "purged");
    assert_eq!(done["users_anonymized"], json!([member]), "only leavers who belong nowhere else");
    let view = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    assert_eq!(view["state"], "purged");
    assert_eq!(app.get(&format!("/api/v1/orgs/{org}/assets"), &app.admin).await.expect(200)["items"], json!([]));
    assert_eq!(app.get(&format!("/api/v1/orgs/{org}/teams"), &app.admin).await.expect(200)["items"], json!([]));
    let db = app.db().await;
    for needle in
        ["member@export.test", "member@export", "Exported", "Sync", "contract ended", "left with the customer"]
    {
        let left = mentions(&db, needle).await;
        assert!(
            left.is_empty() || needle == "left with the customer" && left.iter().all(|(t, _)| t == "audit_events"),
            "{needle:?} remains in {left:?}"
        );
    }
    assert!(!mentions(&db, "stays@export.test").await.is_empty(), "a member of another org is kept");
    let verify = app.get("/api/v1/audit/verify", &app.admin).await.expect(200);
    assert_eq!(verify["ok"], true);
    assert!(app.audit("&type=org.purged").await.len() == 1);
    // A redacted event is still protected: changing anything else is caught.
    let seq = db
        .i64(
            "SELECT MIN(seq) FROM audit_events WHERE org_id = ? AND personal IS NULL AND personal_digest IS NOT NULL",
            &[&org],
        )
        .await;
    let drop = if db.is_pg() { " ON audit_events" } else { "" };
    db.run(&format!("DROP TRIGGER audit_events_append_only_update{drop}"), &[]).await;
    db.run("UPDATE audit_events SET target_id = 'someone-else' WHERE seq = CAST(? AS BIGINT)", &[&seq.to_string()])
        .await;
    let verify = app.get("/api/v1/audit/verify", &app.admin).await.expect(200);
    assert_eq!(verify["first_bad_seq"], seq);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_orgs_audit_view_is_for_owner_and_admins_within_audit_log_days() {
    let mut app = spawn_app().await;
    let (org, owner, member) = populated_org(&app).await;
    for id in [&owner, &member] {
        app.patch(&format!("/api/v1/users/{id}"), &app.admin, json!({"password": PASSWORD})).await.expect(200);
    }
    let owner_token = app.login("owner@export.test", PASSWORD).await;
    let member_token = app.login("member@export.test", PASSWORD).await;
    let path = format!("/api/v1/orgs/{org}/audit");
    let seen = app.get(&path, &owner_token).await.expect(200);
    let items = seen["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["org_id"] == org.as_str()));
    app.get(&path, &member_token).await.expect_problem(403, "forbidden");
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"audit_log_days": 2})).await.expect(200);
    assert!(!app.get(&path, &owner_token).await.expect(200)["items"].as_array().unwrap().is_empty());
    app.advance(time::Duration::days(3)).await;
    // Sessions live by the same clock: the owner signs in again three days later.
    let owner_token = app.login("owner@export.test", PASSWORD).await;
    let later = app.get(&path, &owner_token).await.expect(200);
    assert_eq!(later["items"], json!([]), "older events fall outside the license's window");
    assert!(!app.audit(&format!("&org_id={org}")).await.is_empty(), "the instance keeps everything");
    // The export shows no more history than the audit view.
    let exported = app.client.get(format!("{}/api/v1/orgs/{org}/export", app.base)).bearer_auth(&owner_token);
    let bundle: Value = serde_json::from_str(&exported.send().await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(bundle["audit_events"], json!([]), "{bundle:#}");
}

/// Waits for the command on the test's thread: the tests of this file run on a multi-threaded
/// runtime, so that the Steward they serve keeps answering (and committing) meanwhile; on one
/// thread a transaction the server had begun would wait for the command, and the command for it.
fn steward_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .env("STEWARD_DATABASE_URL", &app.db_url)
        .current_dir(app.dir.path())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn archiving_moves_old_events_to_a_file_and_verification_continues_from_the_anchor() {
    let app = spawn_app().await;
    app.user("a@archive.test").await;
    let refused = steward_cli(&app, &["audit", "archive"]);
    assert!(!refused.status.success(), "without a retention policy nothing is archived");
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"audit_retention_days": 0}})).await.expect(200);
    let total = app.get("/api/v1/audit/verify", &app.admin).await.expect(200)["events"].as_u64().unwrap();
    let file = app.dir.path().join("archive.jsonl");
    let out = steward_cli(&app, &["audit", "archive", "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let lines = std::fs::read_to_string(&file).unwrap().lines().count() as u64;
    assert_eq!(lines, total);
    let db = app.db().await;
    assert_eq!(db.i64("SELECT COUNT(*) FROM audit_events", &[]).await, 1, "only the archiving's own event stays");
    app.user("b@archive.test").await;
    let verify = app.get("/api/v1/audit/verify", &app.admin).await.expect(200);
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["events"].as_u64().unwrap() >= 2, "new events continue the chain after the anchor: {verify}");
    let first_new = db.i64("SELECT MIN(seq) FROM audit_events", &[]).await;
    assert_eq!(first_new as u64, total + 1);
    let out = steward_cli(&app, &["audit", "verify", "--archive", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("({total} from archives)")));
    // The archive is held to the chain too: an edited line is found.
    let text = std::fs::read_to_string(&file).unwrap().replacen("user.created", "user.deleted", 1);
    let edited = app.dir.path().join("edited.jsonl");
    std::fs::write(&edited, text).unwrap();
    let out = steward_cli(&app, &["audit", "verify", "--archive", edited.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Events after the anchor still cannot be deleted.
    assert!(db.exec("DELETE FROM audit_events", &[]).await.is_err());
}

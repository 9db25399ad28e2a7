//! The CLI's bulk commands against a running Steward (STEWARD_URL, STEWARD_TOKEN): imports,
//! deactivations, deprovisioning by external id, audit export — each safe to run again.

use std::process::Command;

use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

fn cli(app: &TestApp, token: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .env("STEWARD_URL", &app.base)
        .env("STEWARD_TOKEN", token)
        .current_dir(app.dir.path())
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

// The CLI runs as a child process while this test waits on it: the server needs threads of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_commands_work_against_a_running_steward_and_can_run_again() {
    let app = spawn_app().await;
    let token = app.post("/api/v1/me/tokens", &app.admin, json!({"name": "bulk"})).await.expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner = app.user("owner@bulk.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Bulk", "owner_id": owner, "external_id": "cus_9"}))
        .await
        .expect(201);
    let org = org["id"].as_str().unwrap().to_owned();
    let csv = app.dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "email,name,org_external_id,role\r\nann@bulk.test,Ann,cus_9,admin\r\nben@bulk.test,\"Ben, Jr.\",,\r\n",
    )
    .unwrap();
    let (code, out) = cli(&app, &token, &["users", "import", csv.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "2 imported, 0 skipped, 0 failed"));
    let members = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await.expect(200);
    assert!(members["items"].as_array().unwrap().iter().any(|m| m["email"] == "ann@bulk.test" && m["role"] == "admin"));
    let (code, out) = cli(&app, &token, &["users", "import", csv.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "0 imported, 2 skipped, 0 failed"), "a second run changes nothing");

    let gone = app.user("gone@bulk.test").await;
    app.post(&format!("/api/v1/users/{gone}/deactivate"), &app.admin, json!({})).await.expect(200);
    std::fs::write(&csv, "email,name\ngone@bulk.test,Gone\n").unwrap();
    let (code, out) = cli(&app, &token, &["users", "import", csv.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (1, "0 imported, 0 skipped, 1 failed"), "a deactivated user's email is not reused");

    let (code, out) = cli(&app, &token, &["orgs", "deprovision", "--external-id", "cus_9", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("operations"), "{out}");
    assert_eq!(app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200)["state"], "active");
    assert_eq!(cli(&app, &token, &["orgs", "deprovision", "--external-id", "cus_9"]).0, 0);
    assert_eq!(app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200)["state"], "deprovisioned");
    let (code, out) = cli(&app, &token, &["orgs", "deprovision", "--external-id", "cus_9"]);
    assert_eq!(code, 0);
    assert!(out.trim_end().ends_with("0 deprovisioned, 1 skipped, 0 failed"), "{out}");
    assert_eq!(cli(&app, &token, &["orgs", "restore", "--external-id", "cus_9"]).0, 0);
    assert_eq!(app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200)["state"], "active");
    assert_eq!(cli(&app, &token, &["orgs", "restore", "--external-id", "nobody"]).0, 2);

    let (code, out) = cli(&app, &token, &["users", "deactivate", "--inactive-days", "0", "--dry-run"]);
    assert_eq!(code, 0);
    // Imported users without a password are invited, not active: only active users are listed.
    assert!(out.contains("would deactivate owner@bulk.test") && !out.contains("ann@bulk.test"), "{out}");
    assert_eq!(
        app.get("/api/v1/users?status=deactivated", &app.admin).await.expect(200)["items"].as_array().unwrap().len(),
        1
    );

    let file = app.dir.path().join("audit.jsonl");
    assert_eq!(cli(&app, &token, &["audit", "export", "--output", file.to_str().unwrap()]).0, 0);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() > 10);
    assert!(lines.windows(2).all(|w| w[0]["seq"].as_i64() > w[1]["seq"].as_i64()), "newest first, no gaps in order");
    assert_eq!(cli(&app, "stw_t_wrong", &["audit", "export"]).0, 2, "a refused token ends with an error");
}

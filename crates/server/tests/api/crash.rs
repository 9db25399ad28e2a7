//! Crash safety: a Steward killed with SIGKILL in the middle of a SCIM bulk request, and again in
//! the middle of a bulk deprovisioning, comes back each time with the invariants of DESIGN.md that
//! live in the database intact and an audit log that `steward audit verify` passes, because each
//! change committed together with its audit event or not at all.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, Db, PASSWORD, fresh_database};

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(db: &str, port: u16) -> Node {
    let node = Node(
        Command::new(env!("CARGO_BIN_EXE_steward"))
            .arg("serve")
            .env("STEWARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("STEWARD_DATABASE_URL", db)
            .env("STEWARD_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("STEWARD_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("Steward did not become ready");
}

async fn call(client: &reqwest::Client, method: reqwest::Method, url: String, token: &str, body: Value) -> Value {
    let r = client.request(method, url).bearer_auth(token).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

async fn db_of(url: &str) -> Db {
    if url.starts_with("postgres") {
        Db::Pg(sqlx::PgPool::connect(url).await.unwrap())
    } else {
        Db::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
    }
}

#[tokio::test]
async fn a_kill_9_during_scim_bulk_and_deprovisioning_leaves_every_invariant_intact() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let api = format!("{base}/api/v1");
    let client = reqwest::Client::new();
    let first = start(&db, port).await;
    let login = call(
        &client,
        reqwest::Method::POST,
        format!("{api}/auth/login"),
        "",
        json!({"email": ADMIN_EMAIL, "password": PASSWORD}),
    )
    .await;
    let admin = login["token"].as_str().unwrap().to_owned();

    // Customers with owners, members and licenses; the members keep a session each.
    let mut orgs = Vec::new();
    for i in 0..100 {
        let owner = call(
            &client,
            reqwest::Method::POST,
            format!("{api}/users"),
            &admin,
            json!({"email": format!("owner{i}@crash.test"), "name": "Owner", "password": PASSWORD}),
        )
        .await;
        let owner = owner["id"].as_str().unwrap().to_owned();
        let license = json!({"operations": 1000 + i, "users": 10});
        let org = call(
            &client,
            reqwest::Method::POST,
            format!("{api}/orgs"),
            &admin,
            json!({"name": format!("Org {i}"), "owner_id": owner, "license": license}),
        )
        .await;
        let org = org["id"].as_str().unwrap().to_owned();
        let member = call(
            &client,
            reqwest::Method::POST,
            format!("{api}/users"),
            &admin,
            json!({"email": format!("member{i}@crash.test"), "name": "Member", "send_invitation": false}),
        )
        .await;
        let member = member["id"].as_str().unwrap().to_owned();
        call(
            &client,
            reqwest::Method::PUT,
            format!("{api}/orgs/{org}/members/{member}"),
            &admin,
            json!({"role": "admin"}),
        )
        .await;
        let lic = call(&client, reqwest::Method::GET, format!("{api}/orgs/{org}/license"), &admin, Value::Null).await;
        orgs.push((org, owner, lic));
    }
    let token =
        call(&client, reqwest::Method::POST, format!("{api}/scim-tokens"), &admin, json!({"name": "idp"})).await;
    let scim = token["token"].as_str().unwrap().to_owned();

    // 1st kill: in the middle of a long SCIM bulk request.
    let operations: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": {
                "userName": format!("bulk{i}"), "emails": [{"value": format!("bulk{i}@crash.test")}],
                "active": i % 3 != 0
            }})
        })
        .collect();
    let bulk = {
        let (client, url, scim) = (client.clone(), format!("{base}/scim/v2/Bulk"), scim.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(scim)
                .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": operations}))
                .send()
                .await
        })
    };
    let watch = db_of(&db).await;
    wait_for(&watch, "SELECT COUNT(*) FROM scim_users", 20).await;
    drop(first);
    let bulk_outcome = bulk.await.unwrap();
    assert!(
        bulk_outcome.is_err() || bulk_outcome.is_ok_and(|r| !r.status().is_success()),
        "the bulk request was cut off"
    );
    let second = start(&db, port).await;
    let check = db_of(&db).await;
    invariants_hold(&db, &check).await;
    let bulk_users = check.i64("SELECT COUNT(*) FROM scim_users", &[]).await;
    eprintln!("at the first kill: {bulk_users} of 1000 SCIM users had committed");
    assert!(bulk_users > 0 && bulk_users < 1000, "the kill fell inside the bulk request");

    // 2nd kill: in the middle of a bulk deprovisioning of every customer.
    let admin = admin_again(&client, &api).await;
    let mut deprovisions = Vec::new();
    for (org, _, _) in &orgs {
        let (client, url, admin) = (client.clone(), format!("{api}/orgs/{org}/deprovision"), admin.clone());
        deprovisions.push(tokio::spawn(async move {
            client.post(url).bearer_auth(admin).json(&json!({"reason": "crash test"})).send().await
        }));
    }
    wait_for(&check, "SELECT COUNT(*) FROM orgs WHERE state = 'deprovisioned'", 5).await;
    drop(second);
    let mut cut = 0;
    for d in deprovisions {
        cut += usize::from(!d.await.unwrap().is_ok_and(|r| r.status().is_success()));
    }
    assert!(cut > 0, "some deprovisionings were cut off by the kill");
    let _third = start(&db, port).await;
    invariants_hold(&db, &check).await;
    let deprovisioned = check.i64("SELECT COUNT(*) FROM orgs WHERE state = 'deprovisioned'", &[]).await;
    eprintln!("at the second kill: {deprovisioned} of 100 deprovisionings had committed");

    // 7. Whatever was deprovisioned restores to the license, owner, roles and notification
    // settings it had.
    let admin = admin_again(&client, &api).await;
    let all_on = json!({"org_activity": true, "product_updates": true, "security": true, "usage_alerts": true});
    for (org, owner, license) in &orgs {
        let o = call(&client, reqwest::Method::GET, format!("{api}/orgs/{org}"), &admin, Value::Null).await;
        if o["state"] == "deprovisioned" {
            call(&client, reqwest::Method::POST, format!("{api}/orgs/{org}/restore"), &admin, json!({})).await;
        }
        let o = call(&client, reqwest::Method::GET, format!("{api}/orgs/{org}"), &admin, Value::Null).await;
        assert_eq!(o["owner_id"], owner.as_str());
        let now = call(&client, reqwest::Method::GET, format!("{api}/orgs/{org}/license"), &admin, Value::Null).await;
        assert_eq!(&now, license);
        let members =
            call(&client, reqwest::Method::GET, format!("{api}/orgs/{org}/members"), &admin, Value::Null).await;
        let mut roles: Vec<&str> =
            members["items"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        roles.sort_unstable();
        assert_eq!(roles, ["admin", "owner"], "{members}");
        for m in members["items"].as_array().unwrap() {
            let url = format!("{api}/users/{}/notifications", m["user_id"].as_str().unwrap());
            let settings = call(&client, reqwest::Method::GET, url, &admin, Value::Null).await;
            assert_eq!(settings["categories"], all_on, "{org}: {m}");
        }
    }
    invariants_hold(&db, &check).await;
}

/// The invariants of DESIGN.md that live in the database, checked beside a running node, and
/// `steward audit verify` run from the shell.
async fn invariants_hold(url: &str, check: &Db) {
    let zero = |sql: &'static str| async move { assert_eq!(check.i64(sql, &[]).await, 0, "{sql}") };
    // 1. Exactly one owner, who is a current member with role owner.
    zero(
        "SELECT COUNT(*) FROM orgs o WHERE o.state <> 'purged' AND (SELECT COUNT(*) FROM memberships m \
          WHERE m.org_id = o.id AND m.role = 'owner' AND m.ended_at IS NULL) <> 1",
    )
    .await;
    zero(
        "SELECT COUNT(*) FROM orgs o WHERE o.state <> 'purged' AND NOT EXISTS (SELECT 1 FROM memberships m \
          WHERE m.org_id = o.id AND m.user_id = o.owner_id AND m.role = 'owner' AND m.ended_at IS NULL)",
    )
    .await;
    // 2. No email twice.
    zero("SELECT COUNT(*) - COUNT(DISTINCT email_key) FROM users").await;
    // 3. No live credential of a user who may not sign in.
    zero(
        "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id \
          WHERE u.status <> 'active' AND s.revoked_at IS NULL",
    )
    .await;
    zero(
        "SELECT COUNT(*) FROM api_tokens t JOIN users u ON u.id = t.user_id \
          WHERE u.status <> 'active' AND t.revoked_at IS NULL",
    )
    .await;
    // 4. Memberships are dormant exactly while their user is deactivated, so that reactivation
    // has them all to give back.
    zero(
        "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
          WHERE m.ended_at IS NULL AND m.dormant <> (u.status = 'deactivated')",
    )
    .await;
    zero(
        "SELECT COUNT(*) FROM team_members m JOIN users u ON u.id = m.user_id \
          WHERE m.ended_at IS NULL AND m.dormant <> (u.status = 'deactivated')",
    )
    .await;
    // 6. Every user and every deprovisioning that exists committed with its audit event.
    zero(
        "SELECT COUNT(*) FROM users u WHERE u.kind IN ('person', 'service') AND NOT EXISTS \
          (SELECT 1 FROM audit_events a WHERE a.target_id = u.id AND a.kind IN ('user.created', 'scim_token.created'))",
    )
    .await;
    zero(
        "SELECT COUNT(*) FROM users u JOIN scim_users s ON s.user_id = u.id WHERE u.status = 'deactivated' \
          AND NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.target_id = u.id AND a.kind = 'user.deactivated')",
    )
    .await;
    zero(
        "SELECT COUNT(*) FROM orgs o WHERE o.state = 'deprovisioned' AND NOT EXISTS \
          (SELECT 1 FROM deprovision_records d WHERE d.org_id = o.id)",
    )
    .await;
    zero(
        "SELECT COUNT(*) FROM orgs o WHERE o.state = 'deprovisioned' AND NOT EXISTS \
          (SELECT 1 FROM audit_events a WHERE a.org_id = o.id AND a.kind = 'org.deprovisioned')",
    )
    .await;
    let verify = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["audit", "verify"])
        .env("STEWARD_DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(verify.status.success(), "steward audit verify: {}", String::from_utf8_lossy(&verify.stdout));
}

/// Waits until `sql` counts at least `n` (reading beside the running node).
async fn wait_for(db: &Db, sql: &str, n: i64) {
    for _ in 0..2000 {
        if db.i64(sql, &[]).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{sql} never reached {n}");
}

/// The admin's sessions survive a restart; a new login proves the node serves again.
async fn admin_again(client: &reqwest::Client, api: &str) -> String {
    let login = call(
        client,
        reqwest::Method::POST,
        format!("{api}/auth/login"),
        "",
        json!({"email": ADMIN_EMAIL, "password": PASSWORD}),
    )
    .await;
    login["token"].as_str().unwrap().to_owned()
}

//! Licenses that bite: exact consumption, periods, frozen orgs, assets and limits, decisions,
//! usage alerts and per-org request budgets.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with};
use crate::smtp::SmtpSink;

async fn org_with(app: &TestApp, license: Value) -> (String, String) {
    let owner = app.user(&format!("owner{}@meter.test", uuid::Uuid::now_v7().simple())).await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Metered", "owner_id": owner, "license": license}))
        .await
        .expect(201);
    (org["id"].as_str().unwrap().to_owned(), owner)
}

#[tokio::test]
async fn invariant_5_concurrent_consumers_use_exactly_the_limit() {
    let app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": 25})).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (client, url, token) =
            (app.client.clone(), format!("{}/api/v1/orgs/{org}/usage", app.base), app.admin.clone());
        tasks.push(tokio::spawn(async move {
            client.post(url).bearer_auth(token).json(&json!({"operations": 1})).send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 25, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 15, "{statuses:?}");
    let usage = app.get(&format!("/api/v1/orgs/{org}/usage"), &app.admin).await.expect(200);
    assert_eq!(usage["operations"], json!({"limit": 25, "used": 25, "remaining": 0}));
    assert_eq!(usage["frozen"], true, "a used-up consumable freezes the org");
}

#[tokio::test]
async fn invariant_5_mixed_amounts_never_overshoot() {
    let app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": 100, "transfer": 1000})).await;
    let mut tasks = Vec::new();
    for i in 0..24u64 {
        let (client, url, token) =
            (app.client.clone(), format!("{}/api/v1/orgs/{org}/usage", app.base), app.admin.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"operations": 3 + i % 5, "transfer": 40});
            let ok = client.post(url).bearer_auth(token).json(&body).send().await.unwrap().status() == 200;
            if ok { (3 + i % 5, 40) } else { (0, 0) }
        }));
    }
    let (mut ops, mut transfer) = (0, 0);
    for t in tasks {
        let (o, b) = t.await.unwrap();
        ops += o;
        transfer += b;
    }
    let usage = app.get(&format!("/api/v1/orgs/{org}/usage"), &app.admin).await.expect(200);
    assert_eq!(usage["operations"]["used"], ops, "what was answered 200 is exactly what was counted");
    assert_eq!(usage["transfer"]["used"], transfer);
    assert!(ops <= 100 && transfer <= 1000);
}

#[tokio::test]
async fn a_refused_consume_consumes_nothing_and_bad_amounts_are_400() {
    let app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": 10, "transfer": 100})).await;
    let path = format!("/api/v1/orgs/{org}/usage");
    app.post(&path, &app.admin, json!({"operations": 8})).await.expect(200);
    let r = app.post(&path, &app.admin, json!({"operations": 1, "transfer": 101})).await;
    r.expect_problem(402, "quota_exhausted");
    let usage = app.get(&path, &app.admin).await.expect(200);
    assert_eq!(
        (usage["operations"]["used"].as_u64(), usage["transfer"]["used"].as_u64()),
        (Some(8), Some(0)),
        "all or nothing"
    );
    for body in [
        json!({"operations": -1}),
        json!({"operations": 0}),
        json!({"operations": 1u64 << 60}),
        json!({"ops": 1}),
        json!({"operations": "1"}),
    ] {
        app.post(&path, &app.admin, body).await.expect_problem(400, "validation_failed");
    }
    let (_, plain) = app.user_with_session("plain@meter.test").await;
    app.post(&path, &plain, json!({"operations": 1})).await.expect_problem(403, "forbidden");
}

#[tokio::test]
async fn a_retried_consume_with_the_same_idempotency_key_counts_once() {
    let app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": 10})).await;
    let url = format!("{}/api/v1/orgs/{org}/usage", app.base);
    for _ in 0..3 {
        let r = app
            .client
            .post(&url)
            .bearer_auth(&app.admin)
            .header("Idempotency-Key", "job-7")
            .json(&json!({"operations": 4}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let usage = app.get(&format!("/api/v1/orgs/{org}/usage"), &app.admin).await.expect(200);
    assert_eq!(usage["operations"]["used"], 4);
}

#[tokio::test]
async fn periods_roll_over_lazily_and_past_periods_stay_readable() {
    let mut app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": 5})).await;
    let path = format!("/api/v1/orgs/{org}/usage");
    app.post(&path, &app.admin, json!({"operations": 5})).await.expect(200);
    app.post(&path, &app.admin, json!({"operations": 1})).await.expect_problem(402, "quota_exhausted");
    let first = app.get(&path, &app.admin).await.expect(200);
    let first_start = first["period"]["start"].as_str().unwrap().to_owned();
    app.advance(time::Duration::days(32)).await;
    let second = app.post(&path, &app.admin, json!({"operations": 2})).await.expect(200);
    assert_eq!(second["operations"]["used"], 2, "the new period starts from zero");
    assert_eq!(second["period"]["start"], first["period"]["end"], "periods follow each other");
    assert_eq!(second["frozen"], false);
    let past = app.get(&format!("{path}?period={first_start}"), &app.admin).await.expect(200);
    assert_eq!(past["operations"]["used"], 5);
    let view = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    assert_eq!(view["frozen"], false);
}

#[tokio::test]
async fn invariant_8_a_frozen_orgs_assets_stay_readable_but_writes_and_consumption_are_refused() {
    let app = spawn_app().await;
    let (org, owner) = org_with(&app, json!({"operations": 100})).await;
    app.patch(&format!("/api/v1/users/{owner}"), &app.admin, json!({"password": PASSWORD})).await.expect(200);
    let owner_email =
        app.get(&format!("/api/v1/users/{owner}"), &app.admin).await.expect(200)["email"].as_str().unwrap().to_owned();
    let token = app.login(&owner_email, PASSWORD).await;
    let asset = app
        .post(&format!("/api/v1/orgs/{org}/assets"), &token, json!({"kind": "scenario", "name": "Sync"}))
        .await
        .expect(201);
    let asset_id = asset["id"].as_str().unwrap();
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"operations": 0})).await.expect(200);
    let me = app.get("/api/v1/me", &token).await.expect(200);
    assert_eq!(me["memberships"][0]["frozen"], true);
    let before = app.snapshot().await;
    app.get(&format!("/api/v1/orgs/{org}/assets"), &token).await.expect(200);
    app.get(&format!("/api/v1/assets/{asset_id}"), &token).await.expect(200);
    app.post(&format!("/api/v1/orgs/{org}/assets"), &token, json!({"kind": "scenario", "name": "New"}))
        .await
        .expect_problem(409, "org_frozen");
    app.patch(&format!("/api/v1/assets/{asset_id}"), &token, json!({"name": "Renamed"}))
        .await
        .expect_problem(409, "org_frozen");
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 1}))
        .await
        .expect_problem(402, "quota_exhausted");
    assert_eq!(app.snapshot().await, before);
    // An expired license freezes too, whatever its limits.
    app.patch(
        &format!("/api/v1/orgs/{org}/license"),
        &app.admin,
        json!({"operations": null, "expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await
    .expect(200);
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 1}))
        .await
        .expect_problem(402, "quota_exhausted");
    app.patch(&format!("/api/v1/assets/{asset_id}"), &token, json!({"name": "Renamed"}))
        .await
        .expect_problem(409, "org_frozen");
    let usage = app.get(&format!("/api/v1/orgs/{org}/usage"), &app.admin).await.expect(200);
    assert_eq!(usage["operations"]["limit"], 0, "after expiry every consumable counts as 0");
}

#[tokio::test]
async fn every_capacity_limit_is_enforced() {
    let app = spawn_app().await;
    let license =
        json!({"data_stores": 1, "data_store_bytes": 100, "scenarios": 1, "file_bytes": 50, "users": 2, "teams": 1});
    let (org, _) = org_with(&app, license).await;
    let assets = format!("/api/v1/orgs/{org}/assets");
    let store =
        app.post(&assets, &app.admin, json!({"kind": "data_store", "name": "A", "size_bytes": 60})).await.expect(201);
    app.post(&assets, &app.admin, json!({"kind": "data_store", "name": "B"}))
        .await
        .expect_problem(409, "limit_reached");
    app.patch(&format!("/api/v1/assets/{}", store["id"].as_str().unwrap()), &app.admin, json!({"size_bytes": 101}))
        .await
        .expect_problem(409, "limit_reached");
    app.post(&assets, &app.admin, json!({"kind": "scenario", "name": "S"})).await.expect(201);
    app.post(&assets, &app.admin, json!({"kind": "scenario", "name": "T"})).await.expect_problem(409, "limit_reached");
    app.post(&assets, &app.admin, json!({"kind": "file", "name": "f", "size_bytes": 51}))
        .await
        .expect_problem(409, "limit_reached");
    app.post(&assets, &app.admin, json!({"kind": "template", "name": "any number of templates"})).await.expect(201);
    let usage = app.get(&format!("/api/v1/orgs/{org}/usage"), &app.admin).await.expect(200);
    assert_eq!(usage["data_stores"], json!({"limit": 1, "used": 1}));
    assert_eq!(usage["data_store_bytes"], json!({"limit": 100, "used": 60}));
    // users: the owner holds one seat; an invitation takes the second.
    app.post(&format!("/api/v1/orgs/{org}/invitations"), &app.admin, json!({"email": "x@seat.test", "role": "member"}))
        .await
        .expect(201);
    let third = app.user("third@seat.test").await;
    app.put(&format!("/api/v1/orgs/{org}/members/{third}"), &app.admin, json!({"role": "member"}))
        .await
        .expect_problem(409, "limit_reached");
    app.post(&format!("/api/v1/orgs/{org}/invitations"), &app.admin, json!({"email": "y@seat.test", "role": "member"}))
        .await
        .expect_problem(409, "limit_reached");
    app.post(&format!("/api/v1/orgs/{org}/teams"), &app.admin, json!({"name": "One"})).await.expect(201);
    app.post(&format!("/api/v1/orgs/{org}/teams"), &app.admin, json!({"name": "Two"}))
        .await
        .expect_problem(409, "limit_reached");
    // A SCIM group is a team, created by the same rule.
    let scim = app.post("/api/v1/scim-tokens", &app.admin, json!({"name": "idp", "org_id": org})).await.expect(201);
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Three"});
    let refused = app.post("/scim/v2/Groups", scim["token"].as_str().unwrap(), group).await.expect(409);
    assert_eq!(refused["detail"], "the license allows 1 teams", "{refused}");
}

#[tokio::test]
async fn check_answers_each_documented_reason() {
    let app = spawn_app().await;
    let (org, owner) = org_with(&app, json!({"operations": 10, "features": {"sso": false}})).await;
    let viewer = app.user("viewer@check.test").await;
    app.add_member(&org, &viewer, "viewer").await;
    let outsider = app.user("out@check.test").await;
    let ask = |user: &str, action: &str, feature: Option<&str>| json!({"user_id": user, "org_id": org, "action": action, "feature": feature});
    let reason = |body: Value| body["reason"].as_str().unwrap().to_owned();
    let r = app.post("/api/v1/check", &app.admin, ask(&owner, "scenario.run", None)).await.expect(200);
    assert_eq!((r["allowed"].as_bool(), reason(r)), (Some(true), "ok".to_owned()));
    assert_eq!(
        reason(app.post("/api/v1/check", &app.admin, ask(&outsider, "asset.read", None)).await.expect(200)),
        "not_a_member"
    );
    assert_eq!(
        reason(app.post("/api/v1/check", &app.admin, ask(&viewer, "asset.write", None)).await.expect(200)),
        "role"
    );
    assert_eq!(
        reason(app.post("/api/v1/check", &app.admin, ask(&viewer, "asset.read", Some("sso"))).await.expect(200)),
        "feature_disabled"
    );
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 10})).await.expect(200);
    assert_eq!(
        reason(app.post("/api/v1/check", &app.admin, ask(&owner, "scenario.run", None)).await.expect(200)),
        "org_frozen"
    );
    assert_eq!(reason(app.post("/api/v1/check", &app.admin, ask(&viewer, "asset.read", None)).await.expect(200)), "ok");
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"expires_at": "2001-01-01T00:00:00Z"}))
        .await
        .expect(200);
    assert_eq!(
        reason(app.post("/api/v1/check", &app.admin, ask(&owner, "asset.write", None)).await.expect(200)),
        "license_expired"
    );
    app.post(&format!("/api/v1/users/{viewer}/deactivate"), &app.admin, json!({})).await.expect(200);
    assert_eq!(
        reason(app.post("/api/v1/check", &app.admin, ask(&viewer, "asset.read", None)).await.expect(200)),
        "user_inactive"
    );
    app.post("/api/v1/check", &app.admin, ask(&owner, "fly", None)).await.expect_problem(400, "validation_failed");
    let unknown = "0190a0b0-0000-7000-8000-000000000000";
    app.post("/api/v1/check", &app.admin, ask(unknown, "asset.read", None)).await.expect_problem(404, "not_found");
    let before = app.snapshot().await;
    app.post("/api/v1/check", &app.admin, ask(&owner, "asset.read", None)).await.expect(200);
    assert_eq!(app.snapshot().await, before, "a decision writes nothing");
}

#[tokio::test]
async fn usage_alerts_go_once_per_threshold_to_owners_and_admins_who_want_them() {
    let (sink, url) = SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let owner = app.user("owner@alerts.test").await;
    let org = app
        .post("/api/v1/orgs", &app.admin, json!({"name": "Alerted", "owner_id": owner, "license": {"operations": 100}}))
        .await
        .expect(201);
    let org = org["id"].as_str().unwrap().to_owned();
    let quiet = app.user("quiet@alerts.test").await;
    app.add_member(&org, &quiet, "admin").await;
    app.put(
        &format!("/api/v1/users/{quiet}/notifications"),
        &app.admin,
        json!({"categories": {"usage_alerts": false}}),
    )
    .await
    .expect(200);
    let member = app.user("member@alerts.test").await;
    app.add_member(&org, &member, "member").await;
    let path = format!("/api/v1/orgs/{org}/usage");
    app.post(&path, &app.admin, json!({"operations": 74})).await.expect(200);
    app.post(&path, &app.admin, json!({"operations": 1})).await.expect(200);
    let mails = sink.wait_for("owner@alerts.test", 1).await;
    assert!(mails[0].subject().contains("75 %"), "{}", mails[0].subject());
    app.post(&path, &app.admin, json!({"operations": 1})).await.expect(200);
    app.post(&path, &app.admin, json!({"operations": 24})).await.expect(200);
    let mails = sink.wait_for("owner@alerts.test", 3).await;
    let subjects: Vec<String> = mails.iter().map(|m| m.subject()).collect();
    assert!(
        subjects.iter().any(|s| s.contains("90 %")) && subjects.iter().any(|s| s.contains("100 %")),
        "{subjects:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.to("owner@alerts.test").len(), 3, "once per threshold");
    assert!(sink.to("quiet@alerts.test").is_empty());
    assert!(sink.to("member@alerts.test").is_empty());
    assert_eq!(app.audit("&type=usage.threshold_crossed").await.len(), 3);
}

#[tokio::test]
async fn api_requests_per_minute_is_a_token_bucket_per_org() {
    let app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"api_requests_per_minute": 3})).await;
    let (other, _) = org_with(&app, json!({"api_requests_per_minute": 3})).await;
    let told = |r: &crate::helpers::Reply, name: &str| r.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    for left in [2, 1, 0] {
        let r = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await;
        assert_eq!(told(&r, "ratelimit-policy").as_deref(), Some("\"org\";q=3;w=60"));
        let state = told(&r, "ratelimit").unwrap();
        assert!(state.starts_with(&format!("\"org\";r={left};t=")), "{state}");
        r.expect(200);
    }
    let r = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await;
    let wait: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert_eq!(told(&r, "ratelimit").unwrap(), format!("\"org\";r=0;t={wait}"));
    r.expect_problem(429, "rate_limited");
    let unlimited = app.get("/api/v1/me", &app.admin).await;
    assert_eq!(told(&unlimited, "ratelimit"), None, "a route no limit counts says nothing of one");
    app.get(&format!("/api/v1/orgs/{other}"), &app.admin).await.expect(200);
    // The operator can always change the license, and 0 shuts the org's API.
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"api_requests_per_minute": 0}))
        .await
        .expect(200);
    app.get(&format!("/api/v1/orgs/{other}"), &app.admin).await.expect(200);
    app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect_problem(429, "rate_limited");
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"api_requests_per_minute": null}))
        .await
        .expect(200);
    app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
}

async fn hammer(app: &TestApp, org: &str, tasks: usize, each: usize) -> u64 {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (client, url, token) =
            (app.client.clone(), format!("{}/api/v1/orgs/{org}/usage", app.base), app.admin.clone());
        handles.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..each {
                let s = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"operations": 1}))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert!(s == 200 || s == 402, "{s}");
                ok += u64::from(s == 200);
            }
            ok
        }));
    }
    let mut served = 0;
    for h in handles {
        served += h.await.unwrap();
    }
    served
}

async fn used(app: &TestApp, org: &str) -> u64 {
    app.get(&format!("/api/v1/orgs/{org}/usage"), &app.admin).await.expect(200)["operations"]["used"].as_u64().unwrap()
}

#[tokio::test]
async fn leases_serve_from_memory_and_give_back_what_they_did_not_use() {
    let app = spawn_app_with(|c| {
        c.lease_slice = 64;
        c.lease_ttl_ms = 2000;
    })
    .await;
    let (org, _) = org_with(&app, json!({"operations": 100_000})).await;
    assert_eq!(hammer(&app, &org, 8, 25).await, 200);
    let counted = used(&app, &org).await;
    // 200 is no multiple of 64: some leased operations are still unused.
    assert!(counted > 200 && counted % 64 == 0, "leased slices count as used while held: {counted}");
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(used(&app, &org).await, 200, "the unused part went back: exactly what was served stays counted");
}

#[tokio::test]
async fn near_the_limit_every_consume_is_exact_and_the_limit_holds_with_leases() {
    let app = spawn_app_with(|c| {
        c.lease_slice = 10;
        c.lease_factor = 20;
        c.lease_ttl_ms = 300;
    })
    .await;
    // 150 < 20 slices: no lease is ever taken, every unit goes to the database.
    let (small, _) = org_with(&app, json!({"operations": 150})).await;
    assert_eq!(hammer(&app, &small, 20, 10).await, 150);
    assert_eq!(used(&app, &small).await, 150, "exact at once, nothing held in memory");
    // Far from the limit leases serve; near it the database does; the limit holds exactly.
    let (big, _) = org_with(&app, json!({"operations": 1000})).await;
    assert_eq!(hammer(&app, &big, 30, 50).await, 1000);
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(used(&app, &big).await, 1000);
}

#[tokio::test]
async fn a_held_lease_is_already_counted_so_a_dying_node_cannot_overspend() {
    let app = spawn_app_with(|c| {
        c.lease_slice = 10;
        c.lease_ttl_ms = 60_000;
    })
    .await;
    let (org, _) = org_with(&app, json!({"operations": 1000})).await;
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 1})).await.expect(200);
    // The node holds 9 unused operations; the database counts the whole slice, so that if this
    // node died now, no other node could spend them: at most one slice is lost.
    assert_eq!(used(&app, &org).await, 10);
}

/// Consumption is kept per day by the consumes themselves: what went through counts on its day,
/// a refused consume nowhere. The API lists the days since the previous period began, for those
/// who may read usage; the org's page charts them as SVG, with the numbers in a table.
#[tokio::test]
async fn usage_is_kept_per_day_and_charted_on_the_orgs_page() {
    let app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": 100})).await;
    let usage = format!("/api/v1/orgs/{org}/usage");
    app.post(&usage, &app.admin, json!({"operations": 30, "transfer": 2048})).await.expect(200);
    app.post(&usage, &app.admin, json!({"operations": 20})).await.expect(200);
    app.post(&usage, &app.admin, json!({"operations": 60})).await.expect_problem(402, "quota_exhausted");
    let days = app.get(&format!("{usage}/days"), &app.admin).await.expect(200);
    let today = time::OffsetDateTime::now_utc().date();
    let listed = days["days"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{days:#}");
    assert!(listed[0]["day"].as_str().unwrap().starts_with(&today.to_string()), "{days:#}");
    assert_eq!((listed[0]["operations"].as_u64(), listed[0]["transfer"].as_u64()), (Some(50), Some(2048)));
    assert!(days["since"].as_str().unwrap() < days["period_start"].as_str().unwrap(), "from the previous period");
    let seats = days["seats"].as_array().unwrap();
    assert_eq!(seats.last().unwrap()["seats"], 1, "the owner holds the one seat today");
    assert_eq!(seats.first().unwrap()["seats"], 0, "nobody before the org existed");

    let member = app.user("viewer@days.test").await;
    app.add_member(&org, &member, "viewer").await;
    let viewer = app.login("viewer@days.test", crate::helpers::PASSWORD).await;
    app.get(&format!("{usage}/days"), &viewer).await.expect_problem(403, "forbidden");

    let page = app
        .client
        .get(format!("{}/admin/orgs/{org}", app.base))
        .header("cookie", format!("steward_session={}", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<svg role=\"img\" aria-labelledby=\"operations-per-day-t\""), "{page}");
    assert!(page.contains("Operations per day since") && page.contains("Data transfer per day since"));
    assert!(page.contains("50 in all"), "the chart's description says the total");
    assert!(page.contains("<th scope=\"col\">Day</th>"), "the numbers are in a table");
    assert!(page.contains("Seats at the end of each day since") && page.contains("2 on the last day"), "{page}");
}

/// A consume reads its org and access from what this node kept since the last committed change:
/// a license lowered, a member removed or an asset added is seen by the very next consume.
#[tokio::test]
async fn a_consume_sees_every_change_committed_before_it() {
    let app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": 10, "data_stores": 5})).await;
    let usage = format!("/api/v1/orgs/{org}/usage");
    let first = app.post(&usage, &app.admin, json!({"operations": 6})).await.expect(200);
    assert_eq!(first["operations"]["used"], 6);
    assert_eq!(first["data_stores"]["used"], 0);
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"operations": 7})).await.expect(200);
    app.post(&usage, &app.admin, json!({"operations": 2})).await.expect_problem(402, "quota_exhausted");
    app.post(&format!("/api/v1/orgs/{org}/assets"), &app.admin, json!({"kind": "data_store", "name": "Orders"}))
        .await
        .expect(201);
    let next = app.post(&usage, &app.admin, json!({"operations": 1})).await.expect(200);
    assert_eq!((next["operations"]["used"].as_u64(), next["operations"]["limit"].as_u64()), (Some(7), Some(7)));
    assert_eq!(next["data_stores"]["used"], 1, "the answer counts the asset added since");

    // A caller whose access ends is refused at once, though the same node answered them before.
    let (billing, token) = app.user_with_session("billing@metered.test").await;
    let user = format!("/api/v1/users/{billing}");
    app.patch(&user, &app.admin, json!({"instance_roles": ["billing"]})).await.expect(200);
    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"operations": 100})).await.expect(200);
    app.post(&usage, &token, json!({"operations": 1})).await.expect(200);
    app.post(&usage, &token, json!({"operations": 1})).await.expect(200);
    app.patch(&user, &app.admin, json!({"instance_roles": []})).await.expect(200);
    let refused = app.post(&usage, &token, json!({"operations": 1})).await;
    assert_eq!(refused.status.as_u16(), 403, "no usage.write any more");

    // Access through membership alone: removing the member is seen by the next consume.
    app.post("/api/v1/roles", &app.admin, json!({"name": "meter", "permissions": ["usage.write"]})).await.expect(201);
    app.patch(&user, &app.admin, json!({"instance_roles": ["meter"]})).await.expect(200);
    app.post(&usage, &token, json!({"operations": 1})).await.expect_problem(404, "not_found");
    app.add_member(&org, &billing, "member").await;
    app.post(&usage, &token, json!({"operations": 1})).await.expect(200);
    app.post(&usage, &token, json!({"operations": 1})).await.expect(200);
    app.delete(&format!("/api/v1/orgs/{org}/members/{billing}"), &app.admin).await.expect(204);
    app.post(&usage, &token, json!({"operations": 1})).await.expect_problem(404, "not_found");
    let used = app.get(&usage, &app.admin).await.expect(200);
    assert_eq!(used["operations"]["used"], 11);
}

/// A batch of usage events: one result per event in the order sent; each counted once by its id,
/// all or nothing and exact against its org's budget; a malformed event, or one of an org the
/// caller cannot see, is `invalid` without stopping the others.
#[tokio::test]
async fn usage_events_are_counted_once_each_in_order() {
    let app = spawn_app().await;
    let (a, _) = org_with(&app, json!({"operations": 10})).await;
    let (b, _) = org_with(&app, json!({"operations": null})).await;
    let events = json!({"events": [
        {"id": "e1", "org_id": a, "operations": 6},
        {"id": "e2", "org_id": a, "operations": 5},
        {"id": "e1", "org_id": a, "operations": 1},
        {"id": "e3", "org_id": a, "operations": 4, "transfer": 100},
        {"id": "e1", "org_id": b, "operations": 7},
        {"id": "", "org_id": b, "operations": 1},
        {"id": "e4", "org_id": b},
        {"id": "e5", "org_id": "01936f0e-9a21-7c33-8b0d-1e2f3a4b5c6d", "operations": 1},
    ]});
    let answer = app.post("/api/v1/usage/events", &app.admin, events.clone()).await.expect(200);
    let statuses: Vec<&str> =
        answer["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["accepted", "quota_exhausted", "duplicate", "accepted", "accepted", "invalid", "invalid", "invalid"]
    );
    assert_eq!(answer["results"][1]["detail"], "the period's budget does not cover this");
    let used = |org: &str| {
        let app = &app;
        let org = org.to_owned();
        async move { app.get(&format!("/api/v1/orgs/{org}/usage"), &app.admin).await.expect(200) }
    };
    let a_used = used(&a).await;
    assert_eq!((a_used["operations"]["used"].as_u64(), a_used["transfer"]["used"].as_u64()), (Some(10), Some(100)));
    assert_eq!(a_used["frozen"], true, "used up by a batch, frozen as by a consume");
    assert_eq!(used(&b).await["operations"]["used"], 7);

    // The same batch again, as a retry: nothing counts twice.
    let again = app.post("/api/v1/usage/events", &app.admin, events).await.expect(200);
    let statuses: Vec<&str> =
        again["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(&statuses[..5], ["duplicate", "quota_exhausted", "duplicate", "duplicate", "duplicate"]);
    assert_eq!(used(&b).await["operations"]["used"], 7);
    let days = app.get(&format!("/api/v1/orgs/{a}/usage/days"), &app.admin).await.expect(200);
    let counted: u64 = days["days"].as_array().unwrap().iter().map(|d| d["operations"].as_u64().unwrap()).sum();
    assert_eq!(counted, 10, "the days count what the periods count");

    let too_many: Vec<_> = (0..1001).map(|i| json!({"id": format!("x{i}"), "org_id": b, "operations": 1})).collect();
    app.post("/api/v1/usage/events", &app.admin, json!({"events": too_many}))
        .await
        .expect_problem(400, "validation_failed");
    app.post("/api/v1/usage/events", &app.admin, json!({"events": []})).await.expect_problem(400, "validation_failed");
}

/// Many clients sending overlapping batches at once, with duplicates and retries: every org's
/// used amount is the sum of the distinct events it accepted, each id is accepted once at most,
/// and a limited org never goes past its limit.
#[tokio::test]
async fn concurrent_batches_with_duplicates_and_retries_count_each_event_once() {
    let app = spawn_app().await;
    exact_under_concurrent_batches(&app.client, &app.base, &app.base, &app.admin).await;
}

/// Makes an org with `license` through the API at `base`; its id.
async fn org_at(client: &reqwest::Client, base: &str, token: &str, license: Value) -> String {
    let email = format!("owner{}@batches.test", uuid::Uuid::now_v7().simple());
    let user = json!({"email": email, "name": "Owner", "password": PASSWORD});
    let r = client.post(format!("{base}/api/v1/users")).bearer_auth(token).json(&user).send().await.unwrap();
    let owner: Value = r.json().await.unwrap();
    let org = json!({"name": "Batches", "owner_id": owner["id"], "license": license});
    let r = client.post(format!("{base}/api/v1/orgs")).bearer_auth(token).json(&org).send().await.unwrap();
    let org: Value = r.json().await.unwrap();
    org["id"].as_str().unwrap().to_owned()
}

/// The concurrent batches of [`concurrent_batches_with_duplicates_and_retries_count_each_event_once`],
/// sent alternately to `first` and `second` (two nodes, or the same one twice).
pub async fn exact_under_concurrent_batches(client: &reqwest::Client, first: &str, second: &str, token: &str) {
    let limited = org_at(client, first, token, json!({"operations": 150})).await;
    let open = org_at(client, first, token, json!({"operations": null})).await;
    let mut tasks = Vec::new();
    for client_no in 0..8u64 {
        let (client, token) = (client.clone(), token.to_owned());
        let base = if client_no % 2 == 0 { first.to_owned() } else { second.to_owned() };
        let (limited, open) = (limited.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut refused) = (Vec::new(), 0);
            for round in 0..6u64 {
                // Ids overlap across clients and rounds: the same events sent again and again.
                let events: Vec<Value> = (0..40u64)
                    .map(|k| {
                        let n = (client_no * 13 + round * 17 + k * 7) % 120;
                        let org = if k % 2 == 0 { &limited } else { &open };
                        json!({"id": format!("ev-{n}"), "org_id": org, "operations": 1 + n % 3})
                    })
                    .collect();
                let body = json!({"events": events});
                let r = client
                    .post(format!("{base}/api/v1/usage/events"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let answer: Value = r.json().await.unwrap();
                for (e, res) in events.iter().zip(answer["results"].as_array().unwrap()) {
                    assert_ne!(res["status"], "invalid", "{res}");
                    refused += u32::from(res["status"] == "quota_exhausted");
                    if res["status"] == "accepted" {
                        accepted.push((
                            e["org_id"].as_str().unwrap().to_owned(),
                            e["id"].as_str().unwrap().to_owned(),
                            e["operations"].as_u64().unwrap(),
                        ));
                    }
                }
            }
            (accepted, refused)
        }));
    }
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (a, r) = t.await.unwrap();
        accepted.extend(a);
        refused += r;
    }
    assert!(refused > 0, "the limited org's budget ran out during the run");
    let mut once = std::collections::HashSet::new();
    for (org, id, _) in &accepted {
        assert!(once.insert((org.clone(), id.clone())), "{id} of {org} was accepted twice");
    }
    for (org, limit) in [(&limited, Some(150)), (&open, None)] {
        let sum: u64 = accepted.iter().filter(|(o, _, _)| o == org).map(|(_, _, n)| n).sum();
        let r = client.get(format!("{second}/api/v1/orgs/{org}/usage")).bearer_auth(token).send().await.unwrap();
        let usage: Value = r.json().await.unwrap();
        let used = usage["operations"]["used"].as_u64().unwrap();
        assert_eq!(used, sum, "used is the sum of the distinct accepted events");
        if let Some(l) = limit {
            assert!(used <= l, "{used} is past the limit {l}");
        } else {
            assert!(used > 0);
        }
    }
}

/// An event id is remembered through the period after its own, then the scheduler forgets it —
/// whether or not its org sends again — and the same id counts anew.
#[tokio::test]
async fn event_ids_are_forgotten_after_the_next_period() {
    let mut app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": null})).await;
    let batch = json!({"events": [{"id": "once", "org_id": org, "operations": 1}]});
    let first = app.post("/api/v1/usage/events", &app.admin, batch.clone()).await.expect(200);
    assert_eq!(first["results"][0]["status"], "accepted");
    app.advance(time::Duration::days(27)).await;
    steward::scheduler::run_once(&app.state).await.unwrap();
    let db = app.db().await;
    assert_eq!(db.i64("SELECT COUNT(*) FROM usage_events", &[]).await, 1, "kept through the next period");
    let retried = app.post("/api/v1/usage/events", &app.admin, batch.clone()).await.expect(200);
    assert_eq!(retried["results"][0]["status"], "duplicate");
    app.advance(time::Duration::days(70)).await;
    steward::scheduler::run_once(&app.state).await.unwrap();
    assert_eq!(db.i64("SELECT COUNT(*) FROM usage_events", &[]).await, 0, "the scheduler forgot it");
    let anew = app.post("/api/v1/usage/events", &app.admin, batch).await.expect(200);
    assert_eq!(anew["results"][0]["status"], "accepted");
}

/// What follows a batch (the org frozen when it used a consumable up, the expiry named) holds
/// however the sender spelt the org's id.
#[tokio::test]
async fn a_batch_follows_up_on_its_orgs_however_their_ids_are_spelt() {
    let app = spawn_app().await;
    let (org, _) = org_with(&app, json!({"operations": 5})).await;
    let shouted = org.to_uppercase();
    let batch = json!({"events": [{"id": "all", "org_id": shouted, "operations": 5}]});
    let answer = app.post("/api/v1/usage/events", &app.admin, batch).await.expect(200);
    assert_eq!(answer["results"][0]["status"], "accepted");
    let frozen = app.get(&format!("/api/v1/audit?type=org.frozen&org_id={org}"), &app.admin).await.expect(200);
    assert_eq!(frozen["items"].as_array().unwrap().len(), 1, "the org is recorded frozen: {frozen:#}");
    app.patch(
        &format!("/api/v1/orgs/{org}/license"),
        &app.admin,
        json!({"operations": 100, "expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await
    .expect(200);
    let late = json!({"events": [{"id": "late", "org_id": shouted, "operations": 1}]});
    let answer = app.post("/api/v1/usage/events", &app.admin, late).await.expect(200);
    assert_eq!(answer["results"][0]["detail"], "the license has expired");
}

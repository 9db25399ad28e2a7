//! Two-factor: enrolment with a QR code, codes accepted once only, recovery codes, the admin
//! reset, the instance policy for admins, and what an impersonation session may not do.

use reqwest::Method;
use serde_json::{Value, json};
use steward_core::totp;

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with};

fn now_step() -> i64 {
    totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp())
}

fn code_at(secret: &str, step: i64) -> String {
    totp::hotp(&totp::base32_decode(secret).unwrap(), step as u64)
}

async fn login_with(app: &TestApp, email: &str, password: &str, code: Option<&str>) -> crate::helpers::Reply {
    let mut body = json!({"email": email, "password": password});
    if let Some(c) = code {
        body["totp_code"] = json!(c);
    }
    app.request(Method::POST, "/api/v1/auth/login", None, Some(body)).await
}

/// Enrols `token`'s user; returns (secret, the step the confirming code used, recovery codes).
async fn enrol(app: &TestApp, token: &str) -> (String, i64, Vec<String>) {
    let started = app.post("/api/v1/me/totp", token, json!({})).await.expect(200);
    let secret = started["secret"].as_str().unwrap().to_owned();
    let step = now_step();
    let codes = app
        .post("/api/v1/me/totp/confirm", token, json!({"code": code_at(&secret, step)}))
        .await
        .expect(200)["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, step, codes)
}

#[tokio::test]
async fn enrolment_gives_a_secret_uri_and_svg_qr_code_and_confirmation_gives_ten_recovery_codes() {
    let app = spawn_app().await;
    let (_, token) = app.user_with_session("ada@acme.example").await;
    let started = app.post("/api/v1/me/totp", &token, json!({})).await.expect(200);
    let secret = started["secret"].as_str().unwrap();
    assert_eq!(totp::base32_decode(secret).unwrap().len(), 20);
    let uri = started["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Steward:ada@acme.example?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("period=30") && uri.contains("digits=6"));
    let svg = started["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    // Until confirmed, login needs no code.
    login_with(&app, "ada@acme.example", PASSWORD, None).await.expect(200);
    app.post("/api/v1/me/totp/confirm", &token, json!({"code": "000000x"}))
        .await
        .expect_problem(400, "validation_failed");
    let wrong = code_at(secret, now_step() + 5);
    app.post("/api/v1/me/totp/confirm", &token, json!({"code": wrong})).await.expect_problem(400, "validation_failed");
    app.post("/api/v1/me/totp/confirm", &token, json!({"code": "123456", "extra": 1}))
        .await
        .expect_problem(400, "validation_failed");
    let confirmed =
        app.post("/api/v1/me/totp/confirm", &token, json!({"code": code_at(secret, now_step())})).await.expect(200);
    let codes = confirmed["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::BTreeSet<&str> = codes.iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(app.get("/api/v1/me", &token).await.expect(200)["totp_enabled"], true);
    // A second enrolment over a confirmed one is refused.
    app.post("/api/v1/me/totp", &token, json!({})).await.expect_problem(409, "invalid_transition");
    let kinds: Vec<Value> = app.audit("").await.iter().map(|e| e["type"].clone()).collect();
    assert!(kinds.contains(&json!("user.totp_enabled")) && kinds.contains(&json!("user.totp_enrollment_started")));
}

#[tokio::test]
async fn login_needs_the_code_and_each_code_is_accepted_once_only() {
    let app = spawn_app().await;
    let (_, token) = app.user_with_session("bob@acme.example").await;
    let (secret, used_step, _) = enrol(&app, &token).await;
    let email = "bob@acme.example";
    login_with(&app, email, PASSWORD, None).await.expect_problem(401, "totp_required");
    login_with(&app, email, PASSWORD, Some("")).await.expect_problem(401, "totp_required");
    login_with(&app, email, PASSWORD, Some(&code_at(&secret, used_step + 7)))
        .await
        .expect_problem(401, "totp_required");
    // A wrong password is a wrong password, whatever the code.
    login_with(&app, email, "not the password", Some(&code_at(&secret, used_step + 1)))
        .await
        .expect_problem(401, "unauthenticated");
    // The code that confirmed the enrolment was used: it does not open a session.
    login_with(&app, email, PASSWORD, Some(&code_at(&secret, used_step))).await.expect_problem(401, "totp_required");
    // The next step's code is within the skew and new: accepted, then never again.
    let next = code_at(&secret, used_step + 1);
    let body = login_with(&app, email, PASSWORD, Some(&next)).await.expect(200);
    app.get("/api/v1/me", body["token"].as_str().unwrap()).await.expect(200);
    login_with(&app, email, PASSWORD, Some(&next)).await.expect_problem(401, "totp_required");
    let logins: Vec<Value> =
        app.audit("&type=user.login").await.iter().map(|e| e["detail"]["method"].clone()).collect();
    assert!(logins.contains(&json!("password+totp")), "{logins:?}");
}

#[tokio::test]
async fn a_recovery_code_works_once_and_the_user_is_told() {
    let app = spawn_app().await;
    let (_, token) = app.user_with_session("cy@acme.example").await;
    let (_, _, codes) = enrol(&app, &token).await;
    let email = "cy@acme.example";
    login_with(&app, email, PASSWORD, Some(&codes[0])).await.expect(200);
    let id = app.me_id(&token).await;
    let security = app.get(&format!("/api/v1/users/{id}/security"), &app.admin).await.expect(200);
    assert_eq!((security["totp_enabled"].clone(), security["recovery_codes_left"].clone()), (json!(true), json!(9)));
    login_with(&app, email, PASSWORD, Some(&codes[0])).await.expect_problem(401, "totp_required");
    // Typed in capitals with spaces instead of the dash, it is the same code.
    let typed = codes[1].to_uppercase().replace('-', " ");
    login_with(&app, email, PASSWORD, Some(&typed)).await.expect(200);
    login_with(&app, email, PASSWORD, Some("zzzzz-zzzzz")).await.expect_problem(401, "totp_required");
    let methods: Vec<Value> =
        app.audit("&type=user.login").await.iter().map(|e| e["detail"]["method"].clone()).collect();
    assert_eq!(methods.iter().filter(|m| **m == json!("password+recovery_code")).count(), 2);
    let db = app.db().await;
    let subjects = db.strings("SELECT subject FROM outbox WHERE recipient = ? ORDER BY created_at", &[email]).await;
    assert!(subjects.iter().any(|s| s == "A recovery code was used"), "{subjects:?}");
}

#[tokio::test]
async fn secrets_and_recovery_codes_are_not_stored_in_the_clear() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_session("di@acme.example").await;
    let (secret, _, codes) = enrol(&app, &token).await;
    let db = app.db().await;
    let sealed = db.opt_string("SELECT secret_sealed FROM user_totp WHERE user_id = ?", &[&id]).await.unwrap();
    let raw = totp::base32_decode(&secret).unwrap();
    assert!(!sealed.contains(&secret) && !sealed.to_lowercase().contains(&secret.to_lowercase()));
    assert!(!sealed.contains(&String::from_utf8_lossy(&raw).to_string()));
    let stored = db.strings("SELECT code_hash FROM recovery_codes WHERE user_id = ?", &[&id]).await;
    assert_eq!(stored.len(), 10);
    for code in &codes {
        let bare = code.replace('-', "");
        assert!(stored.iter().all(|h| !h.contains(&bare) && !h.contains(code.as_str())));
    }
    // Salted by the user: each stored digest is the code's under this user's id.
    let user: steward_core::UserId = id.parse().unwrap();
    let mut expected: Vec<String> = codes.iter().map(|c| steward::twofactor::recovery_hash(user, c)).collect();
    let mut stored = stored;
    expected.sort_unstable();
    stored.sort_unstable();
    assert_eq!(stored, expected);

    // A code stored unsalted, as before the salt, still signs in once.
    let unsalted =
        steward::auth::secret_hash(&format!("steward-recovery:{}", totp::normalize_recovery_code(&codes[0])));
    let salted = steward::twofactor::recovery_hash(user, &codes[0]);
    let changed = db.exec("UPDATE recovery_codes SET code_hash = ? WHERE code_hash = ?", &[&unsalted, &salted]).await;
    assert_eq!(changed, Ok(1));
    login_with(&app, "di@acme.example", PASSWORD, Some(&codes[0])).await.expect(200);
    login_with(&app, "di@acme.example", PASSWORD, Some(&codes[0])).await.expect_problem(401, "totp_required");
}

#[tokio::test]
async fn turning_two_factor_off_and_an_admin_reset_bring_back_password_only_login() {
    let (sink, url) = crate::smtp::SmtpSink::start().await;
    let app = spawn_app_with(|c| c.smtp_url = Some(steward::config::Secret::new(url))).await;
    let (id, token) = app.user_with_session("ed@acme.example").await;
    let email = "ed@acme.example";
    enrol(&app, &token).await;
    app.delete("/api/v1/me/totp", &token).await.expect(204);
    app.delete("/api/v1/me/totp", &token).await.expect_problem(404, "not_found");
    login_with(&app, email, PASSWORD, None).await.expect(200);

    enrol(&app, &token).await;
    login_with(&app, email, PASSWORD, None).await.expect_problem(401, "totp_required");
    // Someone without users.write cannot reset; the instance admin can.
    let (_, other) = app.user_with_session("fay@acme.example").await;
    app.delete(&format!("/api/v1/users/{id}/totp"), &other).await.expect_problem(403, "forbidden");
    app.delete(&format!("/api/v1/users/{id}/totp"), &app.admin).await.expect(204);
    login_with(&app, email, PASSWORD, None).await.expect(200);
    app.delete(&format!("/api/v1/users/{id}/totp"), &app.admin).await.expect_problem(404, "not_found");
    let reset = app.audit("&type=user.totp_reset").await;
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0]["target_id"], json!(id));
    let db = app.db().await;
    let mail = db
        .strings("SELECT category || ':' || subject FROM outbox WHERE recipient = ? ORDER BY created_at", &[email])
        .await;
    assert!(mail.contains(&"security:Your two-factor sign-in was reset".to_owned()), "{mail:?}");
    // On, off, on again, reset: each told to the user over SMTP.
    let mut delivered: Vec<String> = sink.wait_for(email, 4).await.iter().map(|m| m.subject()).collect();
    delivered.sort_unstable();
    assert_eq!(
        delivered,
        [
            "Two-factor sign-in is off",
            "Two-factor sign-in is on",
            "Two-factor sign-in is on",
            "Your two-factor sign-in was reset"
        ]
    );
}

#[tokio::test]
async fn an_impersonation_session_cannot_change_two_factor() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_session("gil@acme.example").await;
    let as_user = app
        .post(&format!("/api/v1/users/{id}/impersonate"), &app.admin, json!({"reason": "ticket 42"}))
        .await
        .expect(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post("/api/v1/me/totp", &as_user, json!({})).await.expect_problem(403, "forbidden");
    enrol(&app, &token).await;
    app.delete("/api/v1/me/totp", &as_user).await.expect_problem(403, "forbidden");
    app.post("/api/v1/me/totp/confirm", &as_user, json!({"code": "123456"})).await.expect_problem(403, "forbidden");
    assert_eq!(app.get("/api/v1/me", &token).await.expect(200)["totp_enabled"], true);
}

#[tokio::test]
async fn the_admin_policy_holds_back_instance_roles_until_enrolment() {
    let app = spawn_app().await;
    let admin_id = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "ops@steward.test", "name": "Ops", "password": PASSWORD, "instance_roles": ["admin"]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, plain) = app.user_with_session("user@acme.example").await;
    app.patch("/api/v1/instance", &app.admin, json!({"policies": {"require_totp_for_admins": true}})).await.expect(200);
    let login = login_with(&app, "ops@steward.test", PASSWORD, None).await.expect(200);
    assert_eq!(login["totp_enrollment_required"], true);
    let ops = login["token"].as_str().unwrap().to_owned();
    app.get("/api/v1/users", &ops).await.expect_problem(403, "totp_enrollment_required");
    let me = app.get("/api/v1/me", &ops).await.expect(200);
    assert_eq!(me["totp_enrollment_required"], true);
    assert_eq!(me["permissions"], json!([]));
    // A user without instance roles is not concerned.
    let plain_login = login_with(&app, "user@acme.example", PASSWORD, None).await.expect(200);
    assert_eq!(plain_login["totp_enrollment_required"], false);
    app.get("/api/v1/me", &plain).await.expect(200);
    // Enrolment lifts the hold on the very next request of the same session.
    enrol(&app, &ops).await;
    app.get("/api/v1/users", &ops).await.expect(200);
    assert_eq!(app.get("/api/v1/me", &ops).await.expect(200)["totp_enrollment_required"], false);
    let _ = admin_id;
}

#[tokio::test]
async fn anonymizing_a_user_removes_their_two_factor_secret_and_codes() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_session("hal@acme.example").await;
    enrol(&app, &token).await;
    app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({})).await.expect(200);
    app.post(&format!("/api/v1/users/{id}/anonymize"), &app.admin, json!({})).await.expect(200);
    let db = app.db().await;
    assert_eq!(db.i64("SELECT COUNT(*) FROM user_totp WHERE user_id = ?", &[&id]).await, 0);
    assert_eq!(db.i64("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?", &[&id]).await, 0);
    let event = app.audit("&type=user.anonymized").await;
    assert_eq!(event[0]["detail"]["two_factor_removed"], true);
}

/// New recovery codes need a current code, unused: the old codes stop working, the new ones sign
/// in once, and a code already used (here the confirming one) or a made-up one changes nothing.
#[tokio::test]
async fn recovery_codes_are_replaced_with_a_current_code_only() {
    let app = spawn_app().await;
    let (_, token) = app.user_with_session("ada@acme.example").await;
    let path = "/api/v1/me/totp/recovery-codes";
    app.post(path, &token, json!({"code": "123456"})).await.expect_problem(409, "invalid_transition");
    let (secret, step, old) = enrol(&app, &token).await;
    let before = app.snapshot().await;
    app.post(path, &token, json!({"code": code_at(&secret, step)})).await.expect_problem(400, "validation_failed");
    app.post(path, &token, json!({"code": "000000"})).await.expect_problem(400, "validation_failed");
    assert_eq!(app.snapshot().await, before, "a refused code changes nothing");
    let fresh = app.post(path, &token, json!({"code": code_at(&secret, step + 1)})).await.expect(200);
    let fresh: Vec<String> =
        fresh["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(fresh.len(), 10);
    login_with(&app, "ada@acme.example", PASSWORD, Some(&old[0])).await.expect_problem(401, "totp_required");
    login_with(&app, "ada@acme.example", PASSWORD, Some(&fresh[0])).await.expect(200);
    login_with(&app, "ada@acme.example", PASSWORD, Some(&fresh[0])).await.expect_problem(401, "totp_required");
}

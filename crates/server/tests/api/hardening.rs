//! Security headers, cookie flags, HTTPS with a certificate from files, and no secret in the logs.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use steward::config::{Config, Secret};
use steward_core::totp;

use crate::helpers::{ADMIN_EMAIL, PASSWORD, spawn_app};

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_plain_http_no_hsts() {
    let app = spawn_app().await;
    for r in [
        app.get("/api/v1/me", &app.admin).await,
        app.get("/api/v1/nothing", &app.admin).await,
        app.request(reqwest::Method::GET, "/healthz", None, None).await,
        app.request(reqwest::Method::GET, "/api/v1/openapi.json", None, None).await,
    ] {
        let csp = header(&r.headers, "content-security-policy");
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(header(&r.headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r.headers, "referrer-policy"), "no-referrer");
        assert_eq!(header(&r.headers, "x-frame-options"), "DENY");
        assert!(r.headers.get("strict-transport-security").is_none());
    }
    let resp = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({"email": ADMIN_EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let session = cookies.iter().find(|c| c.starts_with("steward_session=")).unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && !session.contains("Secure"));
}

#[tokio::test]
async fn html_pages_get_the_page_policy() {
    // The setup page is HTML (shown while no system admin exists).
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        database_url: crate::helpers::fresh_database(dir.path()).await,
        sqlite_durable: false,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = steward::Server::build(config, listener).await.unwrap();
    let link = server.setup_link.clone().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let resp = reqwest::get(&link).await.unwrap();
    assert!(header(resp.headers(), "content-type").starts_with("text/html"));
    let csp = header(resp.headers(), "content-security-policy");
    assert_eq!(csp, steward::app::PAGE_CSP);
    assert!(!csp.contains("unsafe-inline"));
    let _ = tx.send(());
}

#[tokio::test]
async fn https_from_certificate_files_with_hsts_and_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        database_url: crate::helpers::fresh_database(dir.path()).await,
        bootstrap_admin_email: Some(ADMIN_EMAIL.into()),
        bootstrap_admin_password: Some(Secret::new(PASSWORD)),
        sqlite_durable: false,
        tls_cert_file: Some(cert_file.display().to_string()),
        tls_key_file: Some(key_file.display().to_string()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = steward::Server::build(config, listener).await.unwrap();
    let addr = server.addr;
    assert_eq!(server.state.public_url, format!("https://{addr}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    // A client that stalls its handshake holds up nobody.
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", addr.port());
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(header(health.headers(), "strict-transport-security").starts_with("max-age="));
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookies: Vec<String> =
        login.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cookies.iter().all(|c| c.contains("; Secure")), "{cookies:?}");
    let token = login.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let me = client.get(format!("{base}/api/v1/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new().get(format!("http://{addr}/healthz")).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    let _ = tx.send(());
}

/// Runs `steward serve` with debug logs in JSON, drives many operations that handle secrets, and
/// looks for every one of those secrets in what it logged.
#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log_path = dir.path().join("steward.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let admin_password = "bootstrap secret password 1";
    let mut child = Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(dir.path())
        .args(["serve", "--log-format", "json"])
        .env_remove("STEWARD_DATABASE_URL")
        .env("STEWARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("STEWARD_LOG", "debug")
        .env("STEWARD_SQLITE_DURABLE", "false")
        .env("STEWARD_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("STEWARD_BOOTSTRAP_ADMIN_PASSWORD", admin_password)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t.to_owned());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method as M;
    let login = |email: &str, password: &str, code: Option<String>| {
        let body = json!({"email": email, "password": password, "totp_code": code});
        call(M::POST, "/api/v1/auth/login", None, Some(body))
    };
    let mut secrets: Vec<String> = vec![admin_password.to_owned()];
    let (_, body) = login(ADMIN_EMAIL, admin_password, None).await;
    let admin = body["token"].as_str().unwrap().to_owned();
    secrets.push(admin.clone());
    let user_password = "the user's own password";
    secrets.push(user_password.to_owned());
    let (s, body) = call(
        M::POST,
        "/api/v1/users",
        Some(&admin),
        Some(json!({"email": "ada@acme.example", "name": "Ada", "password": user_password})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let ada_id = body["id"].as_str().unwrap().to_owned();
    let wrong = "a wrong guess at the password";
    secrets.push(wrong.to_owned());
    assert_eq!(login("ada@acme.example", wrong, None).await.0, 401);
    let (_, body) = login("ada@acme.example", user_password, None).await;
    let ada = body["token"].as_str().unwrap().to_owned();
    secrets.push(ada.clone());
    let (_, body) = call(M::POST, "/api/v1/me/tokens", Some(&ada), Some(json!({"name": "ci"}))).await;
    let api_token = body["token"].as_str().unwrap().to_owned();
    secrets.push(api_token.clone());
    assert_eq!(call(M::GET, "/api/v1/me", Some(&api_token), None).await.0, 200);
    let (_, body) = call(M::POST, "/api/v1/me/totp", Some(&ada), None).await;
    let secret = body["secret"].as_str().unwrap().to_owned();
    secrets.push(secret.clone());
    let raw = totp::base32_decode(&secret).unwrap();
    let step = totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let code = totp::hotp(&raw, step as u64);
    let (s, body) = call(M::POST, "/api/v1/me/totp/confirm", Some(&ada), Some(json!({"code": code}))).await;
    assert_eq!(s, 200, "{body}");
    let recovery: Vec<String> =
        body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    secrets.extend(recovery.iter().cloned());
    secrets.extend(recovery.iter().map(|c| c.replace('-', "")));
    let (s, body) = login("ada@acme.example", user_password, Some(totp::hotp(&raw, step as u64 + 1))).await;
    assert_eq!(s, 200, "{body}");
    secrets.push(body["token"].as_str().unwrap().to_owned());
    let (s, body) = login("ada@acme.example", user_password, Some(recovery[0].clone())).await;
    assert_eq!(s, 200, "{body}");
    secrets.push(body["token"].as_str().unwrap().to_owned());
    assert_eq!(login("ada@acme.example", user_password, Some(recovery[0].clone())).await.0, 401);
    let (_, body) = call(
        M::POST,
        &format!("/api/v1/users/{ada_id}/impersonate"),
        Some(&admin),
        Some(json!({"reason": "support ticket"})),
    )
    .await;
    let impersonation = body["token"].as_str().unwrap().to_owned();
    secrets.push(impersonation.clone());
    assert_eq!(call(M::GET, "/api/v1/me", Some(&impersonation), None).await.0, 200);
    let new_password = "a brand new password for ada";
    secrets.push(new_password.to_owned());
    let (s, _) =
        call(M::PATCH, &format!("/api/v1/users/{ada_id}"), Some(&admin), Some(json!({"password": new_password}))).await;
    assert_eq!(s, 200);
    let (s, body) = call(
        M::POST,
        "/api/v1/webhooks",
        Some(&admin),
        Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["user.created"]})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    secrets.push(body["secret"].as_str().unwrap().to_owned());
    assert_eq!(call(M::GET, "/api/v1/me", Some("stw_s_not-a-real-session-secret-at-all"), None).await.0, 401);
    secrets.push("stw_s_not-a-real-session-secret-at-all".to_owned());
    assert_eq!(call(M::DELETE, "/api/v1/me/totp", Some(&ada), None).await.0, 401, "the password change ended it");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.lines().count() > 20 && logged.contains("\"route\""), "the server logged requests:\n{logged}");
    for s in &secrets {
        assert!(!logged.contains(s.as_str()), "the log holds a secret ({}…):\n{logged}", &s[..6.min(s.len())]);
    }
    // The secret's bytes in hex or base64 would be as bad as the secret.
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!logged.contains(&hex));
}

#[tokio::test]
async fn names_that_reach_logs_and_emails_take_no_line_breaks() {
    let app = spawn_app().await;
    for patch in [
        json!({"name": "Acme\r\nX-Injected: yes"}),
        json!({"branding": {"product_name": "Acme\nsecond line"}}),
        json!({"name": "Tab\tbed"}),
    ] {
        app.patch("/api/v1/instance", &app.admin, patch).await.expect_problem(400, "validation_failed");
    }
    app.patch("/api/v1/instance", &app.admin, json!({"name": "Acme Cloud"})).await.expect(200);
}

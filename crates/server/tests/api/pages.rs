//! The pages without a browser: sign-in redirects by role, CSRF refusals, escaping of user data,
//! administration closed to non-admins, HTML error pages, and the way back from Login as user.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, PASSWORD, TestApp, spawn_app};

/// A page response as the tests look at it.
struct Html {
    status: StatusCode,
    location: String,
    content_type: String,
    cookies: Vec<String>,
    body: String,
}

impl Html {
    /// The value a `Set-Cookie` of this response gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find_map(|c| {
            let pair = c.split(';').next()?;
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    /// The CSRF field of the first form on the page.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("the page has a form with a CSRF field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

async fn page(app: &TestApp, method: reqwest::Method, path: &str, cookie: &str, form: &[(&str, &str)]) -> Html {
    let mut req = app.client.request(method, format!("{}{path}", app.base));
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    if !form.is_empty() {
        req = req.form(form);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (status, location, content_type) = (resp.status(), header("location"), header("content-type"));
    let cookies =
        resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
    Html { status, location, content_type, cookies, body: resp.text().await.unwrap() }
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> Html {
    page(app, reqwest::Method::GET, path, cookie, &[]).await
}

async fn post(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> Html {
    page(app, reqwest::Method::POST, path, cookie, form).await
}

/// The cookie header of an API session, and the CSRF token its forms carry.
fn session(token: &str) -> (String, String) {
    (format!("steward_session={token}"), steward::auth::csrf_token(token))
}

/// Signs in through the sign-in form: the response to the form's POST.
async fn sign_in(app: &TestApp, email: &str, password: &str) -> Html {
    let form = get(app, "/login", "").await;
    assert_eq!(form.status, 200);
    let token = form.cookie("steward_form").expect("the sign-in form sets its token cookie");
    assert_eq!(form.csrf(), token, "the form carries the token of its cookie");
    let cookie = format!("steward_form={token}");
    post(app, "/login", &cookie, &[("csrf", &token), ("email", email), ("password", password), ("next", "")]).await
}

#[tokio::test]
async fn signing_in_lands_admins_on_administration_and_everyone_else_on_the_dashboard() {
    let app = spawn_app().await;
    app.user("ada@acme.example").await;

    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(admin.status, 303);
    assert_eq!(admin.location, "/admin");
    let secret = admin.cookie("steward_session").expect("signing in sets the session cookie");
    let set = admin.cookies.iter().find(|c| c.starts_with("steward_session=")).unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
    let overview = get(&app, "/admin", &format!("steward_session={secret}")).await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("<h1>Administration</h1>"));

    let user = sign_in(&app, "ada@acme.example", PASSWORD).await;
    assert_eq!(user.status, 303);
    assert_eq!(user.location, "/app");

    let wrong = sign_in(&app, "ada@acme.example", "not the password at all").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.content_type.starts_with("text/html"));
    assert!(wrong.body.contains("The email or password is wrong"));
    let tied = "aria-invalid=\"true\" aria-describedby=\"login-error\"";
    assert_eq!(wrong.body.matches(tied).count(), 2, "the error is tied to both fields: {}", wrong.body);
    assert!(wrong.cookie("steward_session").is_none());
}

#[tokio::test]
async fn signed_out_pages_send_to_the_sign_in_page_and_come_back() {
    let app = spawn_app().await;
    for path in ["/admin", "/admin/users?q=bob", "/app", "/app/security"] {
        let r = get(&app, path, "").await;
        assert_eq!(r.status, 303, "{path}");
        assert!(r.location.starts_with("/login?next=%2F"), "{path}: {}", r.location);
    }
    let form = get(&app, "/login", "").await;
    let token = form.cookie("steward_form").unwrap();
    let cookie = format!("steward_form={token}");
    let r = post(
        &app,
        "/login",
        &cookie,
        &[("csrf", &token), ("email", ADMIN_EMAIL), ("password", PASSWORD), ("next", "/admin/users?q=bob")],
    )
    .await;
    assert_eq!(r.location, "/admin/users?q=bob");
    let r = post(
        &app,
        "/login",
        &cookie,
        &[("csrf", &token), ("email", ADMIN_EMAIL), ("password", PASSWORD), ("next", "//evil.example/")],
    )
    .await;
    assert_eq!(r.location, "/admin", "a next that leaves the site is ignored");
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (bob, bob_token) = app.user_with_session("bob@acme.example").await;
    let (cookie, csrf) = session(&app.admin);
    let path = format!("/admin/users/{bob}/sessions/revoke");

    let bobs_csrf = steward::auth::csrf_token(&bob_token);
    for form in [vec![], vec![("csrf", "forged")], vec![("csrf", bobs_csrf.as_str())]] {
        let r = post(&app, &path, &cookie, &form).await;
        assert_eq!(r.status, 403, "{form:?}");
        assert!(r.content_type.starts_with("text/html"), "an HTML page, not JSON");
        assert!(r.body.contains("This form has expired or did not come from this site"));
        app.get("/api/v1/me", &bob_token).await.expect(200);
    }

    let r = post(&app, &path, &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location, format!("/admin/users/{bob}"));
    app.get("/api/v1/me", &bob_token).await.expect_problem(401, "unauthenticated");
    let events = app.audit(&format!("&type=user.sessions_revoked&target_id={bob}")).await;
    assert_eq!(events.len(), 1, "the change was committed with its audit event");

    let login = post(&app, "/login", "", &[("email", ADMIN_EMAIL), ("password", PASSWORD)]).await;
    assert_eq!(login.status, 403, "the sign-in form needs its token too");
    assert!(login.cookie("steward_session").is_none());
}

#[tokio::test]
async fn user_data_is_escaped_on_every_page() {
    let app = spawn_app().await;
    let evil = "<script>alert(1)</script>";
    let id = app
        .post("/api/v1/users", &app.admin, json!({"email": "evil@acme.example", "name": evil, "password": PASSWORD}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let org = app.org("<b>Bold</b> & Co", &id).await;
    let (cookie, _) = session(&app.admin);

    for path in [
        "/admin/users?q=script".to_owned(),
        format!("/admin/users/{id}"),
        format!("/admin/orgs/{org}"),
        "/admin/orgs".into(),
    ] {
        let r = get(&app, &path, &cookie).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains("<script>alert"), "{path} renders the name as markup");
        assert!(!r.body.contains("<b>Bold</b>"), "{path} renders the org name as markup");
    }
    let list = get(&app, "/admin/users?q=script", &cookie).await;
    assert!(list.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;") || list.body.contains("&lt;script&gt;"));

    let token = app.login("evil@acme.example", PASSWORD).await;
    let dashboard = get(&app, "/app", &session(&token).0).await;
    assert!(!dashboard.body.contains("<script>alert") && !dashboard.body.contains("<b>Bold</b>"));
}

#[tokio::test]
async fn administration_is_closed_to_users_without_an_instance_role() {
    let app = spawn_app().await;
    let (_, token) = app.user_with_session("ada@acme.example").await;
    let (cookie, csrf) = session(&token);
    for path in ["/admin", "/admin/users", "/admin/orgs", "/admin/audit", "/admin/settings"] {
        let r = get(&app, path, &cookie).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(r.content_type.starts_with("text/html"));
        assert!(r.body.contains("Administration is for instance administrators"));
    }
    let r = post(
        &app,
        "/admin/settings",
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "Mine now"),
            ("product_name", ""),
            ("primary_color", ""),
            ("logo_url", ""),
            ("support_email", ""),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "the refusal comes from the API's own check");
    let settings = app.get("/api/v1/instance", &app.admin).await.expect(200);
    assert_eq!(settings["name"], "Steward", "nothing changed");
    let dashboard = get(&app, "/app", &cookie).await;
    assert_eq!(dashboard.status, 200);
    assert!(!dashboard.body.contains("href=\"/admin\""), "no link to administration");
}

#[tokio::test]
async fn refusals_and_missing_things_are_html_pages() {
    let app = spawn_app().await;
    let (cookie, _) = session(&app.admin);
    let r = get(&app, "/admin/users/not-an-id", &cookie).await;
    assert_eq!(r.status, 404);
    assert!(r.content_type.starts_with("text/html"));
    assert!(r.body.contains("user not found"));
    assert!(r.body.contains("<h1>Administration</h1>") || r.body.contains("Not Found"));
    assert!(!r.body.contains("\"code\""), "not a problem document");
    for path in ["/admin/nothing/here", "/app/nothing", "/nothing/here"] {
        let r = get(&app, path, &cookie).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.content_type.starts_with("text/html") && r.body.contains("There is no such page."));
    }
}

#[tokio::test]
async fn login_as_user_returns_to_the_admin_page_in_the_admins_own_session() {
    let app = spawn_app().await;
    let ada = app.user("ada@acme.example").await;
    let (cookie, csrf) = session(&app.admin);

    let r = post(&app, &format!("/admin/users/{ada}/impersonate"), &cookie, &[("csrf", &csrf), ("reason", "")]).await;
    assert_eq!(r.status, 303, "a missing reason is refused back on the page");
    assert!(r.cookie("steward_session").is_none());

    let r =
        post(&app, &format!("/admin/users/{ada}/impersonate"), &cookie, &[("csrf", &csrf), ("reason", "ticket 42")])
            .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location, "/app");
    let as_ada = r.cookie("steward_session").unwrap();
    let back = r.cookie("steward_return").unwrap();
    assert_eq!(back, format!("/admin/users/{ada}"));
    let (ada_cookie, ada_csrf) = session(&as_ada);
    let ada_cookie = format!("{ada_cookie}; steward_return={back}");

    let dashboard = get(&app, "/app", &ada_cookie).await;
    assert!(dashboard.body.contains("You are signed in as <strong>ada</strong>"));
    assert!(dashboard.body.contains("Reason: “ticket 42”. This session ends at "), "{}", dashboard.body);
    assert!(dashboard.body.contains("action=\"/impersonation/end\" class=\"signout\""), "the header returns, too");
    assert!(!dashboard.body.contains(">Sign out</button>"));
    let admin = get(&app, "/admin", &ada_cookie).await;
    assert_eq!(admin.status, 403);
    assert!(admin.body.contains("You are signed in as ada through Login as user"), "{}", admin.body);
    let token = post(&app, "/app/tokens", &ada_cookie, &[("csrf", &ada_csrf), ("name", "sneaky")]).await;
    assert_eq!(token.status, 303, "an impersonation session cannot create API tokens");
    assert!(app.db().await.i64("SELECT COUNT(*) FROM api_tokens", &[]).await == 0);

    let end = post(&app, "/impersonation/end", &ada_cookie, &[("csrf", &ada_csrf)]).await;
    assert_eq!(end.status, 303);
    assert_eq!(end.location, format!("/admin/users/{ada}"));
    assert_eq!(
        end.cookie("steward_session").as_deref(),
        Some(app.admin.as_str()),
        "the admin's own session comes back"
    );
    app.get("/api/v1/me", &as_ada).await.expect_problem(401, "unauthenticated");
    let page = get(&app, &end.location, &cookie).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Return to administration"));
}

/// The Login as user banner gives the reason its own session was started with, however many
/// sessions as that user were started since.
#[tokio::test]
async fn the_login_as_user_banner_gives_its_own_sessions_reason() {
    let app = spawn_app().await;
    let ada = app.user("ada@banner.test").await;
    let start = |reason: &'static str| {
        let (app, ada) = (&app, ada.clone());
        async move {
            let imp =
                app.post(&format!("/api/v1/users/{ada}/impersonate"), &app.admin, json!({"reason": reason})).await;
            imp.expect(200)["token"].as_str().unwrap().to_owned()
        }
    };
    let first = start("ticket 42").await;
    for _ in 0..25 {
        start("a later ticket").await;
    }
    let page = get(&app, "/app", &session(&first).0).await.body;
    assert!(page.contains("Reason: “ticket 42”."), "{page}");
}

#[tokio::test]
async fn the_dashboard_shows_a_frozen_org_with_its_badge_and_the_role() {
    let app = spawn_app().await;
    let (ada, token) = app.user_with_session("ada@acme.example").await;
    let body = json!({"name": "Icebox", "owner_id": ada, "license": {"operations": 0}});
    app.post("/api/v1/orgs", &app.admin, body).await.expect(201);
    app.org("Warm", &ada).await;
    let dashboard = get(&app, "/app", &session(&token).0).await;
    assert_eq!(dashboard.status, 200);
    let icebox = &dashboard.body[dashboard.body.find("Icebox").unwrap()..];
    let icebox = &icebox[..icebox.find("</li>").unwrap()];
    assert!(icebox.contains("badge frozen\">Frozen"), "{icebox}");
    assert!(icebox.contains("owner"));
    let warm = &dashboard.body[dashboard.body.find("Warm").unwrap()..];
    let warm = &warm[..warm.find("</li>").unwrap()];
    assert!(!warm.contains("Frozen"), "{warm}");
}

#[tokio::test]
async fn pages_are_not_counted_against_an_orgs_api_budget() {
    let app = spawn_app().await;
    let ada = app.user("ada@acme.example").await;
    let body = json!({"name": "Quiet", "owner_id": ada, "license": {"api_requests_per_minute": 0}});
    let org = app.post("/api/v1/orgs", &app.admin, body).await.expect(201)["id"].as_str().unwrap().to_owned();
    app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect_problem(429, "rate_limited");
    let page = get(&app, &format!("/admin/orgs/{org}"), &session(&app.admin).0).await;
    assert_eq!(page.status, 200, "the operator can still see the org and lift the limit");
    assert!(page.body.contains("Save the license"));
}

#[tokio::test]
async fn a_used_or_unknown_reset_link_says_so() {
    let app = spawn_app().await;
    let r = get(&app, "/reset/stw_setup_not-a-real-link", "").await;
    assert_eq!(r.status, 404);
    assert!(r.content_type.starts_with("text/html"));
    assert!(r.body.contains("This link has expired or was already used"));
    let r = get(&app, "/invite/stw_setup_not-a-real-link", "").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("This invitation has expired or was already used"));
}

#[tokio::test]
async fn the_audit_viewer_filters_and_the_branding_reaches_the_sign_in_page() {
    let app = spawn_app().await;
    let ada = app.user("ada@acme.example").await;
    app.org("Acme", &ada).await;
    let (cookie, csrf) = session(&app.admin);

    let all = get(&app, "/admin/audit", &cookie).await;
    assert!(all.body.contains("org.created") && all.body.contains("user.created"));
    let only = get(&app, "/admin/audit?type=org.created&since=&until=", &cookie).await;
    assert_eq!(only.status, 200);
    assert!(only.body.contains("org.created") && !only.body.contains("<code>user.created</code>"));
    let bad = get(&app, "/admin/audit?since=yesterday", &cookie).await;
    assert_eq!(bad.status, 200);
    assert!(bad.body.contains("since: must be an RFC 3339 time"), "a bad filter is explained on the page");
    assert!(!bad.body.contains("\"code\""));

    let form = [
        ("csrf", csrf.as_str()),
        ("name", "Steward"),
        ("product_name", "Northwind <Cloud>"),
        ("primary_color", "#0A7D55"),
        ("logo_url", ""),
        ("support_email", ""),
    ];
    let saved = post(&app, "/admin/settings", &cookie, &form).await;
    assert_eq!(saved.status, 303);
    let login = get(&app, "/login", "").await;
    assert!(login.body.contains("<title>Sign in · Northwind &#60;Cloud&#62;</title>"), "{}", &login.body[..400]);
    assert!(login.body.contains(r#"<link rel="stylesheet" href="/static/brand.css">"#));
    let brand = get(&app, "/static/brand.css", "").await;
    assert!(brand.body.contains("--primary: #0a7d55;"), "{}", brand.body);
    let refused = post(
        &app,
        "/admin/settings",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("name", "Steward"),
            ("product_name", ""),
            ("primary_color", "red"),
            ("logo_url", ""),
            ("support_email", ""),
        ],
    )
    .await;
    assert_eq!(refused.status, 303);
    let page =
        get(&app, "/admin/settings", &format!("{cookie}; {}", refused.cookies[0].split(';').next().unwrap())).await;
    assert!(page.body.contains("must be a colour like #1f6feb"), "the refusal is shown on the form's page");

    // The logo comes over https, as the page policy allows images; an http one is refused.
    let logo = |url: &'static str| {
        vec![
            ("csrf", csrf.as_str()),
            ("name", "Steward"),
            ("product_name", "Northwind"),
            ("primary_color", "#0a7d55"),
            ("logo_url", url),
            ("support_email", ""),
        ]
    };
    let plain = post(&app, "/admin/settings", &cookie, &logo("http://cdn.example/logo.png")).await;
    assert!(flash(&plain).starts_with("e."), "{:?}", plain.cookies);
    assert!(!get(&app, "/login", "").await.body.contains("cdn.example"));
    let secure = post(&app, "/admin/settings", &cookie, &logo("https://cdn.example/logo.png")).await;
    assert!(flash(&secure).starts_with("n."), "{:?}", secure.cookies);
    let signed_in = get(&app, "/admin", &cookie).await;
    let img = &signed_in.body[signed_in.body.find("<img src=").expect("the logo is shown")..];
    assert!(img[..img.find('>').unwrap()].contains("cdn.example"), "{img:.80}");
}

#[tokio::test]
async fn transfer_ownership_and_notification_settings_go_through_the_api() {
    let app = spawn_app().await;
    let ada = app.user("ada@acme.example").await;
    let bob = app.user("bob@acme.example").await;
    let org = app.org("Acme", &ada).await;
    app.add_member(&org, &bob, "member").await;
    let (cookie, csrf) = session(&app.admin);

    let r = post(
        &app,
        &format!("/admin/orgs/{org}/transfer"),
        &cookie,
        &[("csrf", csrf.as_str()), ("new_owner_id", bob.as_str()), ("previous_owner_role", "member")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location, format!("/admin/orgs/{org}"));
    let after = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    assert_eq!(after["owner_id"], bob.as_str());
    let mut roles = app.memberships(&ada).await;
    roles.extend(app.memberships(&bob).await);
    assert_eq!(roles.iter().map(|(_, r, _)| r.as_str()).collect::<Vec<_>>(), ["member", "owner"]);
    assert_eq!(app.audit("&type=org.ownership_transferred").await.len(), 1);

    // Unchecked boxes are sent as nothing: those categories go off.
    let r = post(
        &app,
        &format!("/admin/users/{ada}/notifications"),
        &cookie,
        &[("csrf", csrf.as_str()), ("security", "on")],
    )
    .await;
    assert_eq!(r.status, 303);
    let settings = app.get(&format!("/api/v1/users/{ada}/notifications"), &app.admin).await.expect(200);
    assert_eq!(
        settings["categories"],
        json!({"org_activity": false, "product_updates": false, "security": true, "usage_alerts": false})
    );

    let version = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200)["version"].to_string();
    let r = post(
        &app,
        &format!("/admin/orgs/{org}/license"),
        &cookie,
        &[("csrf", csrf.as_str()), ("version", version.as_str()), ("operations", "500"), ("users", "")],
    )
    .await;
    assert_eq!(r.status, 303);
    let license = app.get(&format!("/api/v1/orgs/{org}/license"), &app.admin).await.expect(200);
    assert_eq!(license["operations"], 500);
    let stale = post(
        &app,
        &format!("/admin/orgs/{org}/license"),
        &cookie,
        &[("csrf", csrf.as_str()), ("version", version.as_str()), ("operations", "900")],
    )
    .await;
    let flash = stale.cookie("steward_flash").unwrap();
    assert!(flash.starts_with("e."), "a form from an older version of the org is refused");
    let license = app.get(&format!("/api/v1/orgs/{org}/license"), &app.admin).await.expect(200);
    assert_eq!(license["operations"], 500);
}

/// The newest email to `recipient`, as queued.
async fn last_mail(app: &TestApp, recipient: &str) -> String {
    let sql = "SELECT body FROM outbox WHERE recipient = ? ORDER BY created_at DESC, id DESC";
    let db = app.db().await;
    // Some mail (a reset link) is queued just after the answer.
    for _ in 0..60 {
        if let Some(body) = db.strings(sql, &[recipient]).await.into_iter().next() {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no email was queued for {recipient}")
}

#[tokio::test]
async fn forgot_password_mails_a_link_whose_form_sets_a_new_password() {
    let app = spawn_app().await;
    app.user("ada@acme.example").await;
    let old_session = app.login("ada@acme.example", PASSWORD).await;

    let form = get(&app, "/forgot", "").await;
    let token = form.cookie("steward_form").unwrap();
    let cookie = format!("steward_form={token}");
    for email in ["ada@acme.example", "nobody@acme.example"] {
        let r = post(&app, "/forgot", &cookie, &[("csrf", &token), ("email", email)]).await;
        assert_eq!(r.status, 303);
        assert_eq!(r.location, "/login", "the same answer whether or not the account exists");
    }
    let body = last_mail(&app, "ada@acme.example").await;
    let at = body.find("/reset/").unwrap();
    let path = body[at..].split_whitespace().next().unwrap().to_owned();

    let page = get(&app, &path, &cookie).await;
    assert_eq!(page.status, 200);
    let differ = post(
        &app,
        &path,
        &cookie,
        &[("csrf", &token), ("password", "a new long password"), ("confirm", "another one!!")],
    )
    .await;
    assert_eq!(differ.status, 400);
    assert!(differ.body.contains("The password and its confirmation differ."));
    let done = post(
        &app,
        &path,
        &cookie,
        &[("csrf", &token), ("password", "a new long password"), ("confirm", "a new long password")],
    )
    .await;
    assert_eq!(done.status, 303);
    app.get("/api/v1/me", &old_session).await.expect_problem(401, "unauthenticated");
    app.login("ada@acme.example", "a new long password").await;
    assert_eq!(get(&app, &path, &cookie).await.status, 404, "the link works once");
}

#[tokio::test]
async fn security_page_changes_the_password_and_shows_a_new_token_once() {
    let app = spawn_app().await;
    app.user("ada@acme.example").await;
    let other = app.login("ada@acme.example", PASSWORD).await;
    let this = app.login("ada@acme.example", PASSWORD).await;
    let (cookie, csrf) = session(&this);

    let wrong = post(
        &app,
        "/app/password",
        &cookie,
        &[
            ("csrf", &csrf),
            ("current_password", "not my password!"),
            ("password", "a new long password"),
            ("confirm", "a new long password"),
        ],
    )
    .await;
    assert!(wrong.cookie("steward_flash").unwrap().starts_with("e."));
    app.get("/api/v1/me", &other).await.expect(200);
    let right = post(
        &app,
        "/app/password",
        &cookie,
        &[
            ("csrf", &csrf),
            ("current_password", PASSWORD),
            ("password", "a new long password"),
            ("confirm", "a new long password"),
        ],
    )
    .await;
    assert!(right.cookie("steward_flash").unwrap().starts_with("n."));
    app.get("/api/v1/me", &other).await.expect_problem(401, "unauthenticated");
    app.get("/api/v1/me", &this).await.expect(200);
    assert_eq!(app.audit("&type=user.password_changed").await.len(), 1);

    let created = post(&app, "/app/tokens", &cookie, &[("csrf", &csrf), ("name", "deploy script")]).await;
    assert_eq!(created.status, 201);
    let at = created.body.find("value=\"stw_t_").expect("the new token is on the page") + "value=\"".len();
    let secret = &created.body[at..at + created.body[at..].find('"').unwrap()];
    app.get("/api/v1/me", secret).await.expect(200);
    let again = get(&app, "/app/security", &cookie).await;
    assert!(again.body.contains("deploy script") && !again.body.contains(secret), "shown once only");
}

#[tokio::test]
async fn the_sign_in_page_offers_single_sign_on_and_finds_the_connection_from_the_email() {
    let app = spawn_app().await;
    let idp = crate::sso::provider(&app, crate::sso::accounts()).await;
    let created = crate::sso::connection(&app, &idp, json!({"name": "Acme <Okta>", "enforced": true})).await;
    let id = created["id"].as_str().unwrap();

    let form = get(&app, "/login", "").await;
    assert!(
        form.body.contains(&format!(r#"href="/sso/{id}/start">Sign in with Acme &#60;Okta&#62;</a>"#)),
        "{}",
        form.body
    );
    let token = form.cookie("steward_form").unwrap();
    let cookie = format!("steward_form={token}");

    // "Continue with single sign-on" goes to the connection of the email's domain.
    let sso =
        post(&app, "/login", &cookie, &[("csrf", &token), ("email", "ada@acme.test"), ("sso", "1"), ("next", "")])
            .await;
    // A page sends the browser on: the pages' form-action policy stops a redirect to another origin.
    assert_eq!(sso.status, 200);
    let start = format!("/sso/{id}/start?login_hint=ada%40acme.test");
    assert!(sso.body.contains(&format!(r#"<meta http-equiv="refresh" content="0;url={start}">"#)), "{}", sso.body);
    let none = post(&app, "/login", &cookie, &[("csrf", &token), ("email", "bob@elsewhere.test"), ("sso", "1")]).await;
    assert_eq!(none.status, 404);
    assert!(none.body.contains("No single sign-on is set up"));

    // A password sign-in for an enforced domain is sent to its identity provider instead.
    let enforced = post(
        &app,
        "/login",
        &cookie,
        &[("csrf", &token), ("email", "ada@acme.test"), ("password", "some password here")],
    )
    .await;
    assert_eq!(enforced.status, 200);
    assert!(enforced.body.contains(&format!("/sso/{id}/start")));
}

/// The flash a page's redirect carries: `n.` for a notice, `e.` for a refusal.
fn flash(page: &Html) -> String {
    page.cookie("steward_flash").unwrap_or_default()
}

#[tokio::test]
async fn an_org_admin_changes_roles_builds_teams_and_removes_members_from_the_dashboard() {
    let app = spawn_app().await;
    let owner = app.user("owner@acme.example").await;
    let org = app.org("Acme", &owner).await;
    let (ada, ada_token) = app.user_with_session("ada@acme.example").await;
    let (bob, bob_token) = app.user_with_session("bob@acme.example").await;
    for (user, role) in [(&ada, "admin"), (&bob, "member")] {
        app.put(&format!("/api/v1/orgs/{org}/members/{user}"), &app.admin, json!({"role": role})).await.expect(200);
    }
    let role_of = |user: String| {
        let app = &app;
        let org = &org;
        async move {
            let members = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await.expect(200);
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["user_id"] == user.as_str())
                .map(|m| m["role"].clone())
        }
    };

    // A plain member sees the org but may not change it.
    let (bob_cookie, bob_csrf) = session(&bob_token);
    let bob_page = get(&app, &format!("/app/orgs/{org}"), &bob_cookie).await;
    assert_eq!(bob_page.status, 200);
    assert!(!bob_page.body.contains("/remove\""), "no remove buttons for a member");
    let refused = post(
        &app,
        &format!("/app/orgs/{org}/members/{ada}/role"),
        &bob_cookie,
        &[("csrf", &bob_csrf), ("role", "viewer")],
    )
    .await;
    assert!(flash(&refused).starts_with("e."), "{:?}", refused.cookies);
    assert_eq!(role_of(ada.clone()).await, Some(json!("admin")));

    let (cookie, csrf) = session(&ada_token);
    let org_page = get(&app, &format!("/app/orgs/{org}"), &cookie).await;
    assert!(org_page.body.contains("bob@acme.example") && org_page.body.contains(&format!("/members/{bob}/remove")));
    let to = format!("/app/orgs/{org}");
    let changed =
        post(&app, &format!("/app/orgs/{org}/members/{bob}/role"), &cookie, &[("csrf", &csrf), ("role", "viewer")])
            .await;
    assert_eq!((changed.status, changed.location.as_str()), (StatusCode::SEE_OTHER, to.as_str()));
    assert!(flash(&changed).starts_with("n."));
    assert_eq!(role_of(bob.clone()).await, Some(json!("viewer")));

    let created =
        post(&app, &format!("/app/orgs/{org}/teams"), &cookie, &[("csrf", &csrf), ("name", "Platform")]).await;
    assert!(flash(&created).starts_with("n."));
    let teams = app.get(&format!("/api/v1/orgs/{org}/teams"), &app.admin).await.expect(200);
    let team = teams["items"].as_array().unwrap().iter().find(|t| t["name"] == "Platform").expect("the team exists");
    let team = team["id"].as_str().unwrap().to_owned();
    let added = post(
        &app,
        &format!("/app/orgs/{org}/teams/{team}/members"),
        &cookie,
        &[("csrf", &csrf), ("user_id", &bob), ("role", "team_operator")],
    )
    .await;
    assert!(flash(&added).starts_with("n."));
    let read = app.get(&format!("/api/v1/teams/{team}"), &app.admin).await.expect(200);
    assert_eq!(read["members"], json!([{"user_id": bob, "role": "team_operator", "dormant": false}]));
    assert!(get(&app, &to, &cookie).await.body.contains("Platform"));

    let removed = post(&app, &format!("/app/orgs/{org}/members/{bob}/remove"), &cookie, &[("csrf", &csrf)]).await;
    assert!(flash(&removed).starts_with("n."));
    assert_eq!(role_of(bob.clone()).await, None);
    let events = app.audit(&format!("&actor_id={ada}")).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in ["org.member_role_changed", "team.created", "org.member_removed"] {
        assert!(kinds.contains(&kind), "{kind} by the org admin: {kinds:?}");
    }
}

#[tokio::test]
async fn the_security_page_ends_sessions_and_revokes_tokens_and_the_dashboard_saves_notifications() {
    let app = spawn_app().await;
    app.user("ada@acme.example").await;
    let other = app.login("ada@acme.example", PASSWORD).await;
    let this = app.login("ada@acme.example", PASSWORD).await;
    let token = app.post("/api/v1/me/tokens", &this, json!({"name": "ci"})).await.expect(201);
    let (cookie, csrf) = session(&this);

    let sessions = app.get("/api/v1/me/sessions", &this).await.expect(200);
    let other_id = sessions["items"].as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = get(&app, "/app/security", &cookie).await;
    assert!(page.body.contains(&format!("/app/sessions/{other_id}/end")), "the other session can be ended");
    assert_eq!(page.body.matches("/end\"").count(), 1, "not the current one");
    let ended = post(&app, &format!("/app/sessions/{other_id}/end"), &cookie, &[("csrf", &csrf)]).await;
    assert!(flash(&ended).starts_with("n."));
    app.get("/api/v1/me", &other).await.expect_problem(401, "unauthenticated");
    app.get("/api/v1/me", &this).await.expect(200);

    let secret = token["token"].as_str().unwrap();
    app.get("/api/v1/me", secret).await.expect(200);
    let id = token["id"].as_str().unwrap();
    let revoked = post(&app, &format!("/app/tokens/{id}/revoke"), &cookie, &[("csrf", &csrf)]).await;
    assert!(flash(&revoked).starts_with("n."));
    app.get("/api/v1/me", secret).await.expect_problem(401, "unauthenticated");

    // Boxes left unticked are categories switched off.
    let saved = post(&app, "/app/notifications", &cookie, &[("csrf", &csrf), ("usage_alerts", "on")]).await;
    assert_eq!((saved.status, saved.location.as_str()), (StatusCode::SEE_OTHER, "/app"));
    let settings = app.get("/api/v1/me/notifications", &this).await.expect(200);
    assert_eq!(
        settings["categories"],
        json!({"org_activity": false, "product_updates": false, "security": false, "usage_alerts": true})
    );
    let dashboard = get(&app, "/app", &cookie).await;
    assert!(dashboard.body.contains("name=\"usage_alerts\" value=\"on\" checked"));
    assert!(!dashboard.body.contains("name=\"security\" value=\"on\" checked"));
}

#[tokio::test]
async fn the_users_list_filters_by_status() {
    let app = spawn_app().await;
    app.user("still@acme.example").await;
    let gone = app.user("gone@acme.example").await;
    app.post(&format!("/api/v1/users/{gone}/deactivate"), &app.admin, json!({})).await.expect(200);
    let (cookie, _) = session(&app.admin);
    let inactive = get(&app, "/admin/users?status=deactivated", &cookie).await;
    assert!(inactive.body.contains("gone@acme.example") && !inactive.body.contains("still@acme.example"));
    let active = get(&app, "/admin/users?status=active", &cookie).await;
    assert!(active.body.contains("still@acme.example") && !active.body.contains("gone@acme.example"));
    let both = get(&app, "/admin/users?q=acme.example", &cookie).await;
    assert!(both.body.contains("still@acme.example") && both.body.contains("gone@acme.example"));
}

#[tokio::test]
async fn a_next_parameter_that_a_browser_would_read_as_another_site_goes_home() {
    let app = spawn_app().await;
    let (cookie, _) = session(&app.admin);
    for next in ["/%09/evil.example", "/%5Cevil.example", "%2F%2Fevil.example", "/%0A/evil.example"] {
        let r = get(&app, &format!("/login?next={next}"), &cookie).await;
        assert_eq!(r.status, 303, "{next}");
        assert_eq!(r.location, "/", "{next}");
    }
    let r = get(&app, "/login?next=/admin/users%3Fq%3Dada", &cookie).await;
    assert_eq!(r.location, "/admin/users?q=ada");
}

/// The setup link's page is a page of the instance, in its layout, with a CSRF-checked form; a
/// mistake shows the form again with what to fix; a success goes to the sign-in page with a
/// notice, and the link is spent; an unknown or spent link is an HTML page that says what to do.
#[tokio::test]
async fn the_setup_link_is_a_branded_page_with_a_checked_form_that_works_once() {
    let app = spawn_app().await;
    let secret = "stw_setup_the_test_link_secret";
    *app.state.setup_secret_hash.lock().unwrap() = Some(steward::auth::secret_hash(secret));
    let path = format!("/setup/{secret}");
    let form = get(&app, &path, "").await;
    assert_eq!(form.status, 200);
    assert!(form.content_type.starts_with("text/html"));
    assert!(form.body.contains("/static/steward.css") && form.body.contains("Create the first system administrator"));
    let token = form.cookie("steward_form").expect("the setup form sets its token cookie");
    assert_eq!(form.csrf(), token);
    let cookie = format!("steward_form={token}");
    let fields = |password: &'static str| {
        [
            ("csrf", token.clone()),
            ("email", "first@setup.test".into()),
            ("name", "First Admin".into()),
            ("password", password.into()),
        ]
    };
    let forged =
        post(&app, &path, &cookie, &[("email", "first@setup.test"), ("name", "X"), ("password", PASSWORD)]).await;
    assert_eq!(forged.status, 403, "a form without its token is refused");
    let short: Vec<(&str, String)> = fields("short").to_vec();
    let short: Vec<(&str, &str)> = short.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let again = post(&app, &path, &cookie, &short).await;
    assert_eq!(again.status, 400);
    assert!(
        again.body.contains("role=\"alert\"") && again.body.contains("value=\"first@setup.test\""),
        "{}",
        again.body
    );
    let good: Vec<(&str, String)> = fields(PASSWORD).to_vec();
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let made = post(&app, &path, &cookie, &good).await;
    assert_eq!((made.status.as_u16(), made.location.as_str()), (303, "/login"));
    assert!(made.cookie("steward_flash").is_some(), "the sign-in page says the administrator is created");
    app.login("first@setup.test", PASSWORD).await;
    for spent in [path.as_str(), "/setup/stw_setup_unknown"] {
        let r = get(&app, spent, "").await;
        assert_eq!(r.status, 404, "{spent}");
        assert!(r.content_type.starts_with("text/html") && r.body.contains("does not work any more"), "{}", r.body);
        assert!(r.body.contains("/static/steward.css"), "the refusal is a page of the instance");
    }
}

/// Administration's overview shows the instance at a glance: people by status, organizations by
/// state and how many of the active ones are frozen (used up, or expired; counted at most once a
/// minute, since a count reads every active org), and the sign-ins of the last 30 days as a chart
/// with its numbers.
#[tokio::test]
async fn the_overview_counts_people_orgs_and_sign_ins() {
    let mut app = spawn_app().await;
    let owner = app.user("glance-owner@example.com").await;
    app.org("Glance", &owner).await;
    let used_up = app.org("Used up", &owner).await;
    app.patch(&format!("/api/v1/orgs/{used_up}/license"), &app.admin, json!({"operations": 3})).await.expect(200);
    app.post(&format!("/api/v1/orgs/{used_up}/usage"), &app.admin, json!({"operations": 3})).await.expect(200);
    let expired = app.org("Expired", &owner).await;
    let past = json!({"expires_at": "2001-01-01T00:00:00Z"});
    app.patch(&format!("/api/v1/orgs/{expired}/license"), &app.admin, past).await.expect(200);
    let room = app.org("Room left", &owner).await;
    app.patch(&format!("/api/v1/orgs/{room}/license"), &app.admin, json!({"operations": 3})).await.expect(200);
    app.post(&format!("/api/v1/orgs/{room}/usage"), &app.admin, json!({"operations": 2})).await.expect(200);
    app.login(ADMIN_EMAIL, PASSWORD).await;
    let (cookie, _) = session(&app.admin);
    let page = get(&app, "/admin", &cookie).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("At a glance"), "{}", page.body);
    assert!(page.body.contains("<dt>People active</dt><dd>2</dd>"), "the admin and the owner");
    assert!(page.body.contains("<dt>Organizations active</dt><dd>4</dd>"), "{}", page.body);
    assert!(page.body.contains("<dt>Active organizations frozen</dt><dd>2</dd>"), "used up and expired, not room left");
    assert!(page.body.contains("Frozen organizations are counted at most once a minute."), "the page says how old");
    assert!(page.body.contains("aria-labelledby=\"sign-ins-per-day-t\""));
    assert!(page.body.contains("30 days from") && page.body.contains("2 in all"), "the admin signed in twice today");
    app.post(&format!("/api/v1/orgs/{room}/usage"), &app.admin, json!({"operations": 1})).await.expect(200);
    let page = get(&app, "/admin", &cookie).await;
    assert!(page.body.contains("<dt>Active organizations frozen</dt><dd>2</dd>"), "counted less than a minute ago");
    app.advance(time::Duration::seconds(61)).await;
    let (cookie, _) = session(&app.admin);
    let page = get(&app, "/admin", &cookie).await;
    assert!(
        page.body.contains("<dt>Active organizations frozen</dt><dd>3</dd>"),
        "counted again: room left is used up"
    );
}

/// The pages answer invitations as the API does: an org's admin sees the open ones and revokes
/// one; the invited person finds theirs on the dashboard and joins with one button.
#[tokio::test]
async fn invitations_are_revoked_and_accepted_on_the_pages() {
    let app = spawn_app().await;
    let owner = app.user("owner@pages-inv.test").await;
    let org = app.org("Paged", &owner).await;
    let (cookie, csrf) = session(&app.login("owner@pages-inv.test", PASSWORD).await);
    let (person_cookie, person_csrf) = session(&app.user_with_session("person@pages-inv.test").await.1);
    let invite = |email: &'static str| {
        let (app, org) = (&app, &org);
        async move {
            let path = format!("/api/v1/orgs/{org}/invitations");
            let made = app.post(&path, &app.admin, json!({"email": email, "role": "viewer"})).await.expect(201);
            made["id"].as_str().unwrap().to_owned()
        }
    };
    let (kept, dropped) = (invite("person@pages-inv.test").await, invite("later@pages-inv.test").await);

    let org_page = get(&app, &format!("/app/orgs/{org}"), &cookie).await;
    assert!(org_page.body.contains("Invitations not yet accepted") && org_page.body.contains("later@pages-inv.test"));
    let revoke = format!("/app/orgs/{org}/invitations/{dropped}/revoke");
    let revoked = post(&app, &revoke, &cookie, &[("csrf", &csrf)]).await;
    assert!(flash(&revoked).starts_with("n."), "{:?}", revoked.cookies);
    let status = app.get(&format!("/api/v1/orgs/{org}/invitations/{dropped}"), &app.admin).await.expect(200);
    assert_eq!(status["status"], "revoked");
    let again = post(&app, &revoke, &cookie, &[("csrf", &csrf)]).await;
    assert!(flash(&again).starts_with("e."), "revoked once");

    let dashboard = get(&app, "/app", &person_cookie).await;
    assert!(
        dashboard.body.contains("Invitations for you") && dashboard.body.contains("Join Paged"),
        "{}",
        dashboard.body
    );
    let accept = format!("/app/invitations/{kept}/accept");
    let stranger_cookie = session(&app.user_with_session("stranger@pages-inv.test").await.1);
    let refused = post(&app, &accept, &stranger_cookie.0, &[("csrf", &stranger_cookie.1)]).await;
    assert!(flash(&refused).starts_with("e."), "not theirs");
    let joined = post(&app, &accept, &person_cookie, &[("csrf", &person_csrf)]).await;
    assert_eq!((joined.status, joined.location.as_str()), (StatusCode::SEE_OTHER, "/app"));
    assert!(flash(&joined).starts_with("n."));
    let dashboard = get(&app, "/app", &person_cookie).await;
    assert!(
        !dashboard.body.contains("Invitations for you") && dashboard.body.contains("/app/orgs/"),
        "{}",
        dashboard.body
    );
}

/// Usage is told in words: when the period renews, no meter for what has no bound, and for a
/// frozen org which allowance froze it and what lifts it — to its owner with the amounts, to a
/// plain member without them, with the instance's support contact; on the org's page and on the
/// dashboard's card alike.
#[tokio::test]
async fn usage_says_when_it_renews_and_a_frozen_org_says_why() {
    let app = spawn_app().await;
    app.patch("/api/v1/instance", &app.admin, json!({"branding": {"support_email": "help@steward.test"}}))
        .await
        .expect(200);
    let (owner, owner_token) = app.user_with_session("owner@usage-words.test").await;
    let (member, member_token) = app.user_with_session("member@usage-words.test").await;
    let license = json!({"operations": 3, "transfer": null});
    let org =
        app.post("/api/v1/orgs", &app.admin, json!({"name": "Used Up", "owner_id": owner, "license": license})).await;
    let org = org.expect(201)["id"].as_str().unwrap().to_owned();
    app.add_member(&org, &member, "member").await;
    app.post(&format!("/api/v1/orgs/{org}/usage"), &app.admin, json!({"operations": 3, "transfer": 10}))
        .await
        .expect(200);

    let page = get(&app, &format!("/app/orgs/{org}"), &session(&owner_token).0).await.body;
    assert!(page.contains("Renews on ") && page.contains(" days)"), "{page}");
    assert!(page.contains("Operations of this period are used up; the period renews on"), "{page}");
    assert!(page.contains("3 of 3") && page.contains("10 B used; no limit"), "{page}");
    let meters = page.matches("<meter").count();
    assert_eq!(meters, 1, "a meter only for the bounded operations: {page}");
    assert!(page.contains("low=\"2\" high=\"2\" optimum=\"0\""), "{page}");
    assert!(page.contains("mailto:help@steward.test"));

    let seen = get(&app, &format!("/app/orgs/{org}"), &session(&member_token).0).await.body;
    assert!(seen.contains("has used what its license allows for this period"), "{seen}");
    assert!(!seen.contains("3 of 3"), "a member does not see the amounts");
    // The dashboard's card tells each of them the same as the org's page.
    let card = get(&app, "/app", &session(&member_token).0).await.body;
    assert!(card.contains("has used what its license allows for this period"), "{card}");
    assert!(!card.contains("3 of 3"), "{card}");
    let card = get(&app, "/app", &session(&owner_token).0).await.body;
    assert!(card.contains("Operations of this period are used up; the period renews on"), "{card}");
    assert!(card.contains("3 of 3"), "{card}");

    app.patch(&format!("/api/v1/orgs/{org}/license"), &app.admin, json!({"expires_at": "2001-01-01T00:00:00Z"}))
        .await
        .expect(200);
    app.login(ADMIN_EMAIL, PASSWORD).await;
    let admin = get(&app, &format!("/admin/orgs/{org}"), &session(&app.admin).0).await.body;
    assert!(admin.contains("The license expired on 2001-01-01"), "{admin}");
    assert!(admin.contains("none allowed (3 used)"), "an expired license allows nothing: {admin}");
}

/// One vocabulary for a user's lifecycle on the pages: Deactivate names the orgs that will change
/// owner before anything changes; Suspend and Unsuspend work from the user's page; the page says
/// since when, by whom and why, and that nothing is emailed meanwhile.
#[tokio::test]
async fn a_users_status_is_changed_in_one_vocabulary_and_told_with_who_when_and_why() {
    let app = spawn_app().await;
    let ada = app.user("ada@words.test").await;
    app.org("Owned By Ada", &ada).await;
    let (cookie, csrf) = session(&app.admin);
    let user_page = format!("/admin/users/{ada}");

    let confirm = get(&app, &format!("{user_page}/deactivate"), &cookie).await;
    assert!(confirm.body.contains("Deactivate ada?") && confirm.body.contains(">Owned By Ada</a>"), "{}", confirm.body);
    let before = app.snapshot().await;
    assert_eq!(get(&app, &format!("{user_page}/suspend"), &cookie).await.status, 200);
    assert_eq!(get(&app, &format!("{user_page}/disable"), &cookie).await.status, 404, "one vocabulary");
    assert_eq!(app.snapshot().await, before, "confirmations change nothing");

    let suspended = post(&app, &format!("{user_page}/suspend"), &cookie, &[("csrf", &csrf)]).await;
    assert!(flash(&suspended).starts_with("n."), "{:?}", suspended.cookies);
    assert_eq!(app.get(&format!("/api/v1/users/{ada}"), &app.admin).await.expect(200)["status"], "suspended");
    let page = get(&app, &user_page, &cookie).await.body;
    assert!(page.contains("suspended ada.") && page.contains("/unsuspend\">Unsuspend</a>"), "{page}");
    post(&app, &format!("{user_page}/unsuspend"), &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(app.get(&format!("/api/v1/users/{ada}"), &app.admin).await.expect(200)["status"], "active");

    let form = [("csrf", csrf.as_str()), ("reason", "Moved to another team")];
    let gone = post(&app, &format!("{user_page}/deactivate"), &cookie, &form).await;
    assert!(flash(&gone).starts_with("n."), "{:?}", gone.cookies);
    let page = get(&app, &user_page, &cookie).await.body;
    assert!(page.contains("<dt>Since</dt><dd id=\"status-story\">20"), "{page}");
    assert!(page.contains("deactivated ada, saying “Moved to another team”."), "{page}");
    assert!(page.contains("Nothing is sent while ada is deactivated"), "{page}");
    assert!(page.contains("/reactivate\">Reactivate</a>"));
}

/// Two-factor from the security page, by the API's rules: set up with a QR code and the key,
/// confirmed with a code, the recovery codes shown once, replaced with a fresh code, and turned
/// off only with the box ticked.
#[tokio::test]
async fn two_factor_is_set_up_replaced_and_turned_off_on_the_security_page() {
    use steward_core::totp;
    let app = spawn_app().await;
    let (_, token) = app.user_with_session("ada@2fa-page.test").await;
    let (cookie, csrf) = session(&token);
    let off = get(&app, "/app/security", &cookie).await.body;
    assert!(off.contains("Two-factor sign-in is <strong>off</strong>"), "{off}");
    let started = post(&app, "/app/totp/start", &cookie, &[("csrf", &csrf)]).await.body;
    assert!(started.contains("src=\"data:image/svg+xml;base64,"), "{started}");
    let key = &started[started.find("id=\"totp-secret\">").unwrap() + 17..];
    let key = &key[..key.find('<').unwrap()];
    let code_at = |step: i64| totp::hotp(&totp::base32_decode(key).unwrap(), step as u64);
    let step = totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let confirmed = post(&app, "/app/totp/confirm", &cookie, &[("csrf", &csrf), ("code", &code_at(step))]).await.body;
    assert_eq!(confirmed.matches("<li><code>").count(), 10, "ten recovery codes, shown once: {confirmed}");
    let on = get(&app, "/app/security", &cookie).await.body;
    assert!(on.contains("is <strong>on</strong>; 10 recovery codes are left") && !on.contains("<li><code>"), "{on}");

    let stale = post(&app, "/app/totp/recovery-codes", &cookie, &[("csrf", &csrf), ("code", &code_at(step))]).await;
    assert!(flash(&stale).starts_with("e."), "a used code does not replace them");
    let fresh = post(&app, "/app/totp/recovery-codes", &cookie, &[("csrf", &csrf), ("code", &code_at(step + 1))]).await;
    assert_eq!(fresh.body.matches("<li><code>").count(), 10);

    let unticked = post(&app, "/app/totp/off", &cookie, &[("csrf", &csrf)]).await;
    assert!(flash(&unticked).starts_with("e."));
    assert!(get(&app, "/app/security", &cookie).await.body.contains("is <strong>on</strong>"));
    let ticked = post(&app, "/app/totp/off", &cookie, &[("csrf", &csrf), ("confirm", "on")]).await;
    assert!(flash(&ticked).starts_with("n."));
    assert!(get(&app, "/app/security", &cookie).await.body.contains("is <strong>off</strong>"));
}

/// Consequences are named before anything changes: the deprovisioning plan names the reason, the
/// owner whose role changes and the people whose emails stop, and goes Back with the choices
/// kept; a deprovisioned org offers Restore (confirmed first), not Transfer ownership; the
/// placeholder owner shows as a system account, offered no person's action; removing a member
/// and changing one's own role ask first.
#[tokio::test]
async fn consequences_are_named_and_the_placeholder_owner_is_a_system_account() {
    let app = spawn_app().await;
    let (ada, ada_token) = app.user_with_session("ada@named.test").await;
    let org = app.org("Named Co", &ada).await;
    let (bob, bob_token) = app.user_with_session("bob@named.test").await;
    app.add_member(&org, &bob, "admin").await;
    let (cookie, csrf) = session(&app.admin);
    let wizard = format!("/admin/orgs/{org}/deprovision");
    let choices =
        [("csrf", csrf.as_str()), ("reason", "Contract ended"), ("demote_to", "member"), ("notifications_off", "on")];
    let plan = post(&app, &wizard, &cookie, &[choices.as_slice(), &[("step", "plan")]].concat()).await.body;
    assert!(plan.contains("“Contract ended”") && plan.contains("ada, the owner, becomes member"), "{plan}");
    let stop = &plan[plan.find("usage alerts and activity to ").expect("the emails that stop are named")..];
    assert!(
        stop[..stop.find('.').unwrap()].contains("ada") && stop[..stop.find('.').unwrap()].contains("bob"),
        "{plan}"
    );
    let back = post(&app, &wizard, &cookie, &[choices.as_slice(), &[("step", "back")]].concat()).await.body;
    assert!(back.contains("value=\"Contract ended\"") && back.contains("Show the plan"), "{back}");
    let applied = post(&app, &wizard, &cookie, &[choices.as_slice(), &[("step", "apply")]].concat()).await;
    assert!(flash(&applied).starts_with("n."), "{:?}", applied.cookies);

    let page = get(&app, &format!("/admin/orgs/{org}"), &cookie).await.body;
    assert!(page.contains("/restore\">Restore…</a>") && !page.contains("Transfer ownership"), "{page}");
    assert!(page.contains("<span class=\"badge\">system account</span>"), "{page}");
    let before = app.snapshot().await;
    let confirm = get(&app, &format!("/admin/orgs/{org}/restore"), &cookie).await.body;
    assert!(confirm.contains("Restore Named Co?") && confirm.contains("“Contract ended”"), "{confirm}");
    assert_eq!(app.snapshot().await, before, "asking changes nothing");

    let placeholder =
        app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200)["owner_id"].as_str().unwrap().to_owned();
    let held = get(&app, &format!("/admin/users/{placeholder}"), &cookie).await.body;
    assert!(
        held.contains("id=\"system-account\"")
            && !held.contains("/deactivate\"")
            && !held.contains("Login as user</button>"),
        "{held}"
    );
    let seen = get(&app, &format!("/app/orgs/{org}"), &session(&ada_token).0).await.body;
    assert!(
        seen.contains("System account") && !seen.contains("steward.invalid"),
        "members see a system account, not an address: {seen}"
    );
    assert!(seen.contains("The operator deprovisioned this organization"), "why it is frozen: {seen}");
    assert!(!seen.contains("has used what its license allows"), "not a used-up allowance: {seen}");

    post(&app, &format!("/admin/orgs/{org}/restore"), &cookie, &[("csrf", &csrf)]).await;
    let (bob_cookie, bob_csrf) = session(&bob_token);
    let ask = get(&app, &format!("/app/orgs/{org}/members/{ada}/remove"), &bob_cookie).await.body;
    assert!(ask.contains("Remove ada from Named Co?"), "{ask}");
    let own = format!("/app/orgs/{org}/members/{bob}/role");
    let unconfirmed = post(&app, &own, &bob_cookie, &[("csrf", &bob_csrf), ("role", "member")]).await;
    assert!(flash(&unconfirmed).starts_with("e."), "one's own role changes only when confirmed");
    let members = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await.expect(200);
    assert!(members["items"].as_array().unwrap().iter().any(|m| m["user_id"] == bob.as_str() && m["role"] == "admin"));
    let confirmed =
        post(&app, &own, &bob_cookie, &[("csrf", &bob_csrf), ("role", "member"), ("confirm_self", "on")]).await;
    assert!(flash(&confirmed).starts_with("n."));
}

/// The audit log is filtered by picking a person by email and an org by name, as well as by id;
/// a name that names nothing is said so on the page.
#[tokio::test]
async fn the_audit_log_is_filtered_by_email_and_organization_name() {
    let app = spawn_app().await;
    let ada = app.user("ada@picked.test").await;
    let org = app.org("Picked Co", &ada).await;
    app.org("Other Co", &ada).await;
    let (cookie, _) = session(&app.admin);
    let by_name = get(&app, "/admin/audit?org_id=picked+co", &cookie).await.body;
    assert!(by_name.contains("created Picked Co") && !by_name.contains("created Other Co"), "{by_name}");
    let by_id = get(&app, &format!("/admin/audit?org_id={org}"), &cookie).await.body;
    assert!(by_id.contains("created Picked Co"));
    let by_email = get(&app, "/admin/audit?target_id=ada%40picked.test&type=user.created", &cookie).await.body;
    assert!(by_email.contains("created ada.") && !by_email.contains("No events match"), "{by_email}");
    let nobody = get(&app, "/admin/audit?actor_id=nobody%40picked.test", &cookie).await.body;
    assert!(nobody.contains("id=\"audit-error\">No user has the email nobody@picked.test."), "{nobody}");
    let nothing = get(&app, "/admin/audit?org_id=Nowhere", &cookie).await.body;
    assert!(nothing.contains("No organization is named Nowhere."), "{nothing}");
    assert!(nothing.contains("value=\"Nowhere\""), "the filter stays as given");
}

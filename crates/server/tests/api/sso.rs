//! Single sign-on against a real OpenID Connect provider: node-oidc-provider (a certified
//! implementation) started from `tests/oidc` on loopback, driven through its login form the way
//! a browser would. They fail when `node` is not installed: `scripts/test` runs them where it is.

use std::collections::HashMap;
use std::process::Stdio;

use reqwest::{Method, Url};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{PASSWORD, TestApp, spawn_app};

/// The provider, stopped when dropped.
pub(crate) struct Provider {
    issuer: String,
    _child: tokio::process::Child,
}

fn oidc_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

impl Provider {
    /// Makes the provider's token endpoint spoil the ID tokens it issues from now on (see
    /// `tests/oidc/provider.mjs`); `none` makes them good again.
    async fn spoil_id_tokens(&self, mode: &str) {
        let url = format!("{}/test/id-token/{mode}", self.issuer);
        let status = reqwest::Client::new().post(url).send().await.unwrap().status();
        assert_eq!(status, 204, "the provider takes the mode {mode}");
    }
}

/// Starts the provider for a Steward at `app`.
pub(crate) async fn provider(app: &TestApp, accounts: Value) -> Provider {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(node.is_ok(), "the OpenID Connect tests need node (scripts/test runs them where it is installed)");
    let dir = oidc_dir();
    if !dir.join("node_modules").exists() {
        static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _guard = INSTALL.lock().await;
        if !dir.join("node_modules").exists() {
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .status();
            assert!(status.is_ok_and(|s| s.success()), "npm ci --prefix tests/oidc failed");
        }
    }
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join("provider.mjs"))
        .env("OIDC_REDIRECT_URI", format!("{}/sso/callback", app.base))
        .env("OIDC_ACCOUNTS", accounts.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(issuer) = line.strip_prefix("ready ") {
                return issuer.to_owned();
            }
        }
        panic!("the provider stopped before it was ready");
    })
    .await
    .expect("the provider is ready within 30 s");
    // Keep reading, so that the provider's later lines never meet a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Provider { issuer, _child: child }
}

pub(crate) fn accounts() -> Value {
    json!({
        "ada": {"email": "ada@acme.test", "name": "Ada Admin", "groups": ["acme-admins", "everyone"]},
        "bob": {"email": "bob@acme.test", "name": "Bob Staff", "groups": ["acme-staff"]},
        "cy": {"email": "cy@acme.test", "name": "Cy", "groups": []},
        "eve": {"email": "eve@elsewhere.test", "name": "Eve", "groups": ["acme-admins"]},
        "dan": {"email": "dan@acme.test", "name": "Dan", "groups": [], "email_verified": false},
        "fay": {"email": "fay@acme.test", "name": "Fay", "groups": []},
    })
}

/// A browser: follows redirects by hand and keeps cookies per host and port.
#[derive(Default)]
struct Browser {
    client: reqwest::Client,
    jar: HashMap<String, HashMap<String, String>>,
}

struct Page {
    url: Url,
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

fn authority(url: &Url) -> String {
    format!("{}:{}", url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0))
}

impl Browser {
    fn new() -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { client, jar: HashMap::new() }
    }

    /// A browser that asks for pages, as a person's does.
    fn html() -> Self {
        let mut accept = reqwest::header::HeaderMap::new();
        accept.insert("accept", reqwest::header::HeaderValue::from_static("text/html,application/xhtml+xml"));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(accept)
            .build()
            .unwrap();
        Browser { client, jar: HashMap::new() }
    }

    async fn go(&mut self, method: Method, url: Url, form: Option<Vec<(String, String)>>) -> Page {
        let jar = self.jar.entry(authority(&url)).or_default();
        let mut req = self.client.request(method, url.clone());
        if !jar.is_empty() {
            let cookies: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", cookies.join("; "));
        }
        if let Some(form) = form {
            req = req.form(&form);
        }
        let resp = req.send().await.unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || set.contains("Max-Age=0") || set.contains("expires=Thu, 01 Jan 1970") {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Page { url, status, headers, body: resp.text().await.unwrap() }
    }

    /// From Steward's start URL through the provider's login form, with `login`, up to the
    /// answer of Steward's callback.
    async fn sign_in(&mut self, app: &TestApp, start_url: &str, login: &str) -> Page {
        let steward = authority(&Url::parse(&app.base).unwrap());
        let mut page = self.go(Method::GET, Url::parse(start_url).unwrap(), None).await;
        for _ in 0..20 {
            if (300..400).contains(&page.status) {
                let location = page.headers["location"].to_str().unwrap().to_owned();
                let next = page.url.join(&location).unwrap();
                let to_callback = authority(&next) == steward && next.path() == "/sso/callback";
                page = self.go(Method::GET, next, None).await;
                if to_callback {
                    return page;
                }
            } else if page.status == 200 && page.body.contains("<form") {
                let (action, mut fields) = parse_form(&page.body);
                for (k, v) in &mut fields {
                    match k.as_str() {
                        "login" => *v = login.to_owned(),
                        "password" => *v = "anything".to_owned(),
                        _ => {}
                    }
                }
                let next = page.url.join(&action).unwrap();
                page = self.go(Method::POST, next, Some(fields)).await;
            } else {
                panic!("unexpected page {} {}: {}", page.status, page.url, page.body);
            }
        }
        panic!("the sign-in did not come back to Steward");
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&"))
}

/// The first form's action and its inputs (login and password included, empty).
fn parse_form(html: &str) -> (String, Vec<(String, String)>) {
    let form = &html[html.find("<form").unwrap()..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let action = attr(&form[..form.find('>').unwrap()], "action").unwrap();
    let fields = form
        .split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect();
    (action, fields)
}

fn session_cookie(page: &Page) -> Option<String> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("steward_session=").map(|rest| rest.split(';').next().unwrap().to_owned()))
        .filter(|v| !v.is_empty())
}

fn session_of(page: &Page) -> String {
    session_cookie(page).expect("a session cookie")
}

pub(crate) async fn connection(app: &TestApp, idp: &Provider, extra: Value) -> Value {
    let mut body = json!({
        "name": "Acme IdP", "issuer": idp.issuer, "client_id": "steward", "client_secret": "steward-test-secret",
        "scopes": ["openid", "email", "profile", "groups"], "domains": ["acme.test"],
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    app.post("/api/v1/sso/connections", &app.admin, body).await.expect(201)
}

async fn start_url(app: &TestApp, email: &str) -> String {
    let found = app.post("/api/v1/auth/sso/discover", "", json!({ "email": email })).await.expect(200);
    found["start_url"].as_str().unwrap().to_owned()
}

fn problem_code(page: &Page) -> String {
    serde_json::from_str::<Value>(&page.body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test]
async fn sso_creates_users_just_in_time_and_maps_their_groups_to_org_roles_at_every_sign_in() {
    let app = spawn_app().await;
    let idp = provider(&app, accounts()).await;
    let owner = app.user("owner@acme.test").await;
    let org = app.org("Acme", &owner).await;
    let mapping = json!([
        {"group": "acme-admins", "org_id": org, "role": "admin"},
        {"group": "acme-staff", "org_id": org, "role": "member"},
    ]);
    let created = connection(&app, &idp, json!({"role_mapping": mapping, "jit": true})).await;
    assert!(created.get("client_secret").is_none(), "the secret is write-only: {created:#}");
    assert_eq!(created["redirect_uri"], format!("{}/sso/callback", app.base));
    let id = created["id"].as_str().unwrap();
    let read = app.get(&format!("/api/v1/sso/connections/{id}"), &app.admin).await.expect(200);
    assert!(!read.to_string().contains("steward-test-secret"));
    let stored = app.db().await.strings("SELECT client_secret_sealed FROM sso_connections", &[]).await;
    assert!(!stored[0].contains("steward-test-secret"), "stored encrypted");

    app.post("/api/v1/auth/sso/discover", "", json!({"email": "x@nowhere.test"}))
        .await
        .expect_problem(404, "not_found");
    let start = start_url(&app, "ada@acme.test").await;
    assert!(start.contains(&format!("/sso/{id}/start")));

    // The redirect to the provider carries PKCE, state and nonce.
    let mut browser = Browser::new();
    let first = browser.go(Method::GET, Url::parse(&start).unwrap(), None).await;
    assert_eq!(first.status, 303);
    let to_idp = Url::parse(first.headers["location"].to_str().unwrap()).unwrap();
    let query: HashMap<String, String> = to_idp.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["login_hint"], "ada@acme.test");
    assert!(query["state"].len() >= 43 && query["nonce"].len() >= 43 && query["code_challenge"].len() == 43);

    let done = Browser::new().sign_in(&app, &start, "ada").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.headers["location"], "/app");
    let ada = session_of(&done);
    let me = app.get("/api/v1/me", &ada).await.expect(200);
    assert_eq!(me["user"]["email"], "ada@acme.test");
    assert_eq!(me["user"]["name"], "Ada Admin");
    assert_eq!(me["memberships"][0]["role"], "admin", "{me:#}");

    let bob = session_of(&Browser::new().sign_in(&app, &start, "bob").await);
    let bob_me = app.get("/api/v1/me", &bob).await.expect(200);
    assert_eq!(bob_me["memberships"][0]["role"], "member");

    // A changed mapping applies at the next sign-in.
    let remapped = json!([{"group": "acme-staff", "org_id": org, "role": "viewer"}]);
    app.patch(&format!("/api/v1/sso/connections/{id}"), &app.admin, json!({"role_mapping": remapped}))
        .await
        .expect(200);
    let bob = session_of(&Browser::new().sign_in(&app, &start, "bob").await);
    assert_eq!(app.get("/api/v1/me", &bob).await.expect(200)["memberships"][0]["role"], "viewer");
    // The same subject signs in as the same user, not a second one.
    assert_eq!(app.get("/api/v1/me", &bob).await.expect(200)["user"]["id"], bob_me["user"]["id"]);

    let events = app.audit("").await;
    let of = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!(events.iter().filter(|e| e["type"] == "user.created" && e["detail"]["jit"] == true).count(), 2);
    assert_eq!(events.iter().filter(|e| e["type"] == "user.login" && e["detail"]["method"] == "sso").count(), 3);
    assert_eq!(events.iter().filter(|e| e["type"] == "org.member_added" && e["detail"]["source"] == "sso").count(), 2);
    assert_eq!(of("org.member_role_changed"), 1);
    assert_eq!(of("sso_connection.created"), 1);
    assert_eq!(of("sso_connection.updated"), 1);
    assert_eq!(app.get("/api/v1/audit/verify", &app.admin).await.expect(200)["ok"], true);
}

#[tokio::test]
async fn sso_refuses_deactivated_unknown_and_outside_users_and_enforced_domains_lose_password_login() {
    let app = spawn_app().await;
    let idp = provider(&app, accounts()).await;
    let cy = app.user("cy@acme.test").await;
    app.user("dan@acme.test").await;
    let created = connection(&app, &idp, json!({})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let start = start_url(&app, "cy@acme.test").await;

    // An existing user signs in by email and is linked; once deactivated, refused.
    let done = Browser::new().sign_in(&app, &start, "cy").await;
    assert_eq!(done.status, 303, "{}", done.body);
    app.post(&format!("/api/v1/users/{cy}/deactivate"), &app.admin, json!({})).await.expect(200);
    let refused = Browser::new().sign_in(&app, &start, "cy").await;
    assert_eq!((refused.status, problem_code(&refused).as_str()), (401, "sso_user_inactive"), "{}", refused.body);
    let users = app.get("/api/v1/users?q=cy%40acme.test", &app.admin).await.expect(200);
    assert_eq!(users["items"].as_array().unwrap().len(), 1, "never re-created");
    assert_eq!(users["items"][0]["status"], "deactivated");

    // An invited user is activated by signing in, as by accepting the invitation.
    let fay = app.post("/api/v1/users", &app.admin, json!({"email": "fay@acme.test", "name": "Fay"})).await.expect(201);
    assert_eq!(fay["status"], "invited");
    let done = Browser::new().sign_in(&app, &start, "fay").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(app.get("/api/v1/me", &session_of(&done)).await.expect(200)["user"]["status"], "active");
    assert_eq!(app.audit("&type=user.activated").await[0]["detail"]["via"], "sso");

    // Without jit an unknown user is refused; so is an email outside the domains, or unverified.
    for login in ["bob", "eve", "dan"] {
        let page = Browser::new().sign_in(&app, &start, login).await;
        assert_eq!((page.status, problem_code(&page).as_str()), (401, "sso_user_unknown"), "{login}: {}", page.body);
    }
    let refusals = app.audit("&type=sso.refused").await;
    assert_eq!(refusals.len(), 4, "{refusals:#?}");
    assert_eq!(refusals.last().unwrap()["target_id"], cy.as_str());

    // A callback that Steward did not start is refused before anything else.
    let forged = app.request(Method::GET, "/sso/callback?code=x&state=y", None, None).await;
    assert_eq!((forged.status.as_u16(), forged.code()), (400, "sso_state_invalid"));
    // A browser that lands there is told on a page what to do.
    let browser = app.client.get(format!("{}/sso/callback?code=x&state=y", app.base)).header("accept", "text/html");
    let page = browser.send().await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let text = page.text().await.unwrap();
    assert!(text.contains("Start again from the sign-in page") && text.contains("/static/steward.css"), "{text}");

    // Enforcing the connection ends password login for its domain only.
    app.post("/api/v1/auth/login", "", json!({"email": "dan@acme.test", "password": PASSWORD})).await.expect(200);
    app.patch(&format!("/api/v1/sso/connections/{id}"), &app.admin, json!({"enforced": true})).await.expect(200);
    app.post("/api/v1/auth/login", "", json!({"email": "dan@acme.test", "password": PASSWORD}))
        .await
        .expect_problem(401, "sso_required");
    app.login(crate::helpers::ADMIN_EMAIL, PASSWORD).await;
}

#[tokio::test]
async fn connections_are_checked_on_the_way_in() {
    let app = spawn_app().await;
    let idp = provider(&app, accounts()).await;
    let (_, bob) = app.user_with_session("bob@acme.test").await;
    let owner = app.user("owner@acme.test").await;
    let org = app.org("Acme", &owner).await;
    let base = json!({"name": "IdP", "issuer": idp.issuer, "client_id": "steward", "client_secret": "s"});
    app.post("/api/v1/sso/connections", &bob, base.clone()).await.expect_problem(403, "forbidden");
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    for bad in [
        with(json!({"issuer": "http://idp.example"})),
        with(json!({"issuer": "http://127.0.0.1:9/nothing"})),
        with(json!({"role_mapping": [{"group": "g", "org_id": org, "role": "owner"}]})),
        with(json!({"domains": ["not a domain"]})),
        with(json!({"enforced": true})),
        with(json!({"org_id": org})),
        with(
            json!({"org_id": org, "domains": ["acme.test"], "role_mapping": [{"group": "g", "org_id": owner, "role": "admin"}]}),
        ),
        with(json!({"client_secret": ""})),
        with(json!({"unknown": 1})),
    ] {
        app.post("/api/v1/sso/connections", &app.admin, bad).await.expect_problem(400, "validation_failed");
    }
    app.post("/api/v1/sso/connections", &app.admin, with(json!({"domains": ["acme.test"]}))).await.expect(201);
    app.post("/api/v1/sso/connections", &app.admin, with(json!({"domains": ["ACME.test"]})))
        .await
        .expect_problem(409, "domain_taken");
    let list = app.get("/api/v1/sso/connections", &app.admin).await.expect(200);
    let id = list["items"][0]["id"].as_str().unwrap();
    app.request(Method::PATCH, &format!("/api/v1/sso/connections/{id}"), Some(&app.admin), Some(json!({"name": "x"})))
        .await
        .expect(200);
    app.delete(&format!("/api/v1/sso/connections/{id}"), &app.admin).await.expect(204);
    app.post("/api/v1/auth/sso/discover", "", json!({"email": "a@acme.test"})).await.expect_problem(404, "not_found");
}

#[tokio::test]
async fn id_tokens_that_are_tampered_misaddressed_expired_or_signed_by_an_unknown_key_are_refused() {
    let app = spawn_app().await;
    let idp = provider(&app, accounts()).await;
    connection(&app, &idp, json!({"jit": true})).await;
    let start = start_url(&app, "ada@acme.test").await;

    for (mode, reason) in
        [("tamper", "signature"), ("audience", "audience"), ("expired", "expired"), ("unknown-kid", "unknown_key")]
    {
        idp.spoil_id_tokens(mode).await;
        let page = Browser::new().sign_in(&app, &start, "ada").await;
        assert_eq!((page.status, problem_code(&page).as_str()), (401, "sso_failed"), "{mode}: {}", page.body);
        assert!(page.body.contains(&format!("invalid ID token: {reason}")), "{mode}: {}", page.body);
        assert!(session_cookie(&page).is_none(), "{mode}: no session");
    }
    let refusals = app.audit("&type=sso.refused").await;
    let mut reasons: Vec<&str> = refusals.iter().map(|e| e["detail"]["reason"].as_str().unwrap()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "invalid ID token: audience",
            "invalid ID token: expired",
            "invalid ID token: signature",
            "invalid ID token: unknown_key"
        ]
    );
    let users = app.get("/api/v1/users?q=acme.test", &app.admin).await.expect(200);
    assert_eq!(users["items"].as_array().unwrap().len(), 0, "nobody was created: {users:#}");

    // The same provider's good tokens still sign in: the refusals came from the spoiling.
    idp.spoil_id_tokens("none").await;
    let done = Browser::new().sign_in(&app, &start, "ada").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(app.get("/api/v1/me", &session_of(&done)).await.expect(200)["user"]["email"], "ada@acme.test");
}

#[tokio::test]
async fn an_orgs_connection_signs_in_only_the_people_that_org_alone_holds() {
    let app = spawn_app().await;
    let idp = provider(&app, accounts()).await;
    let owner = app.user("owner@acme.test").await;
    let acme = app.org("Acme", &owner).await;
    let boss = app.user("boss@beta.test").await;
    let beta = app.org("Beta", &boss).await;
    let admin = json!({"email": "ada@acme.test", "name": "Ada", "password": PASSWORD, "instance_roles": ["admin"]});
    let ada = app.post("/api/v1/users", &app.admin, admin).await.expect(201)["id"].as_str().unwrap().to_owned();
    app.add_member(&acme, &ada, "member").await;
    let bob = app.user("bob@acme.test").await;
    app.add_member(&beta, &bob, "member").await;
    let cy = app.user("cy@acme.test").await;
    app.add_member(&acme, &cy, "member").await;
    let mapping = json!([{"group": "acme-admins", "org_id": acme, "role": "admin"}]);
    let created = connection(&app, &idp, json!({"org_id": acme, "role_mapping": mapping, "jit": true})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let start = start_url(&app, "cy@acme.test").await;

    let done = Browser::new().sign_in(&app, &start, "cy").await;
    assert_eq!(done.status, 303, "{}", done.body);
    // Acme's provider cannot sign in an instance admin, nor Beta's person, whatever their address.
    for login in ["ada", "bob"] {
        let page = Browser::new().sign_in(&app, &start, login).await;
        assert_eq!((page.status, problem_code(&page).as_str()), (401, "sso_not_governed"), "{login}: {}", page.body);
        assert!(session_cookie(&page).is_none());
    }
    // A person sees the refusal as a page of the instance.
    let page = Browser::html().sign_in(&app, &start, "bob").await;
    assert_eq!(page.status, 401);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.body.contains("does not alone hold"), "{}", page.body);
    assert_eq!(app.memberships(&ada).await, vec![(acme.clone(), "member".to_owned(), false)], "no role mapped");
    assert_eq!(app.memberships(&bob).await, vec![(beta.clone(), "member".to_owned(), false)], "not pulled into Acme");
    let refusals = app.audit("&type=sso.refused").await;
    assert_eq!(refusals.len(), 3);
    assert!(refusals.iter().all(|e| e["detail"]["code"] == "sso_not_governed"));

    // A person created just in time joins Acme and is Acme's.
    let fay = session_of(&Browser::new().sign_in(&app, &start, "fay").await);
    let me = app.get("/api/v1/me", &fay).await.expect(200);
    assert_eq!(me["memberships"][0]["org_id"], acme.as_str());

    // A link holds only while the connection's domains take the address.
    app.patch(&format!("/api/v1/sso/connections/{id}"), &app.admin, json!({"domains": ["acme.example"]}))
        .await
        .expect(200);
    let page = Browser::new().sign_in(&app, &start, "cy").await;
    assert_eq!((page.status, problem_code(&page).as_str()), (401, "sso_user_unknown"), "{}", page.body);
    assert_eq!(app.audit("&type=sso.refused").await[0]["target_id"], cy.as_str());
}

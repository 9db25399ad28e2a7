//! `spawn_app()`: a Steward on port 0 with its own fresh database, and typed request helpers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::SqlitePool;
use steward::config::{Config, Secret};
use tempfile::TempDir;

pub const ADMIN_EMAIL: &str = "root@steward.test";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub admin: String,
    pub state: steward::state::AppState,
    pub db_url: String,
    pub dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The problem `code`, for error replies.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected reply: {:#}", self.body);
        self.body
    }
    /// Asserts a problem reply with this status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected reply: {:#}", self.body);
        assert_eq!(self.code(), code, "unexpected reply: {:#}", self.body);
        let ct = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(ct, "application/problem+json");
        self.body
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A fresh database: a SQLite file in `dir`, or, when `STEWARD_TEST_POSTGRES_URL` names a
/// PostgreSQL server, a new database on it.
pub async fn fresh_database(dir: &std::path::Path) -> String {
    match std::env::var("STEWARD_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("steward_test_{}", uuid::Uuid::now_v7().simple());
            let pool = sqlx::PgPool::connect(&admin).await.expect("STEWARD_TEST_POSTGRES_URL is reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
            pool.close().await;
            let (base, _) = admin.rsplit_once('/').unwrap();
            format!("{base}/{name}")
        }
        Err(_) => format!("sqlite://{}", dir.join("steward.db").display()),
    }
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db_url = fresh_database(dir.path()).await;
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        database_url: db_url.clone(),
        bootstrap_admin_email: Some(ADMIN_EMAIL.into()),
        bootstrap_admin_password: Some(Secret::new(PASSWORD)),
        sqlite_durable: false,
        outbox_poll_ms: 50,
        ..Config::default()
    };
    adjust(&mut config);
    let db_url = config.database_url.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = steward::Server::build(config, listener).await.unwrap();
    let addr = server.addr;
    let state = server.state.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut app = TestApp {
        base: format!("http://{addr}"),
        client,
        admin: String::new(),
        state,
        db_url,
        dir,
        shutdown: Some(tx),
    };
    app.admin = app.login(ADMIN_EMAIL, PASSWORD).await;
    app
}

impl TestApp {
    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// Moves Steward's clock forward by `by`, and signs the admin in again: sessions live by that
    /// clock, so the admin's session of before may have ended.
    pub async fn advance(&mut self, by: time::Duration) {
        self.state.clock.advance(by);
        self.admin = self.login(ADMIN_EMAIL, PASSWORD).await;
    }

    /// Logs in and returns the session token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let body = self
            .request(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": password})))
            .await
            .expect(200);
        body["token"].as_str().unwrap().to_owned()
    }

    /// Creates an active user with the standard password and returns its id.
    pub async fn user(&self, email: &str) -> String {
        let body = self
            .post(
                "/api/v1/users",
                &self.admin,
                json!({"email": email, "name": email.split('@').next().unwrap(), "password": PASSWORD}),
            )
            .await
            .expect(201);
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates an active user and logs them in: (id, token).
    pub async fn user_with_session(&self, email: &str) -> (String, String) {
        let id = self.user(email).await;
        let token = self.login(email, PASSWORD).await;
        (id, token)
    }

    /// Creates an org owned by `owner` and returns its id.
    pub async fn org(&self, name: &str, owner: &str) -> String {
        let body = self.post("/api/v1/orgs", &self.admin, json!({"name": name, "owner_id": owner})).await.expect(201);
        body["id"].as_str().unwrap().to_owned()
    }

    /// Puts `role` on `user` in `org` as the instance admin.
    pub async fn add_member(&self, org: &str, user: &str, role: &str) {
        self.put(&format!("/api/v1/orgs/{org}/members/{user}"), &self.admin, json!({"role": role})).await.expect(200);
    }

    /// A direct connection to the database, for checks behind Steward's back.
    pub async fn db(&self) -> Db {
        if self.db_url.starts_with("postgres") {
            Db::Pg(sqlx::PgPool::connect(&self.db_url).await.unwrap())
        } else {
            Db::Sqlite(SqlitePool::connect(&self.db_url).await.unwrap())
        }
    }

    /// Row counts of every table (and version sums): equal snapshots mean nothing changed.
    pub async fn snapshot(&self) -> Vec<(String, i64)> {
        let db = self.db().await;
        let tables = db
            .strings(match db {
                Db::Sqlite(_) => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
                Db::Pg(_) => "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' ORDER BY 1",
            }, &[])
            .await;
        let mut out = Vec::new();
        for t in tables {
            let n = db.i64(&format!("SELECT COUNT(*) FROM {t}"), &[]).await;
            let v = if ["users", "orgs", "teams"].contains(&t.as_str()) {
                db.i64(&format!("SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM {t}"), &[]).await
            } else {
                0
            };
            out.push((t, n * 1_000_000 + v));
        }
        out
    }

    /// The audit events, newest first (up to 500).
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let body = self.get(&format!("/api/v1/audit?limit=500{query}"), &self.admin).await.expect(200);
        body["items"].as_array().unwrap().clone()
    }
}

impl TestApp {
    /// The current user's id for a token.
    pub async fn me_id(&self, token: &str) -> String {
        self.get("/api/v1/me", token).await.expect(200)["user"]["id"].as_str().unwrap().to_owned()
    }

    /// Current memberships of a user as (org, role, dormant), sorted.
    pub async fn memberships(&self, user: &str) -> Vec<(String, String, bool)> {
        let sql =
            "SELECT org_id, role, dormant FROM memberships WHERE user_id = ? AND ended_at IS NULL ORDER BY org_id";
        self.db().await.triples(sql, &[user]).await
    }

    /// Current team memberships of a user as (team, role, dormant), sorted.
    pub async fn team_memberships(&self, user: &str) -> Vec<(String, String, bool)> {
        let sql =
            "SELECT team_id, role, dormant FROM team_members WHERE user_id = ? AND ended_at IS NULL ORDER BY team_id";
        self.db().await.triples(sql, &[user]).await
    }
}

/// A direct connection to either backend, for checks behind Steward's back. Queries use `?`
/// placeholders; they are numbered for PostgreSQL.
pub enum Db {
    Sqlite(SqlitePool),
    Pg(sqlx::PgPool),
}

fn numbered(sql: &str) -> String {
    let mut n = 0;
    sql.chars()
        .map(|c| {
            if c == '?' {
                n += 1;
                format!("${n}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

macro_rules! on_db {
    ($db:expr, $sql:expr, $binds:expr, |$q:ident, $pool:ident| $body:expr) => {
        match $db {
            Db::Sqlite($pool) => {
                let mut $q = sqlx::query(sqlx::AssertSqlSafe($sql.to_owned()));
                for b in $binds {
                    $q = $q.bind(b.to_string());
                }
                $body
            }
            Db::Pg($pool) => {
                let mut $q = sqlx::query(sqlx::AssertSqlSafe(numbered($sql)));
                for b in $binds {
                    $q = $q.bind(b.to_string());
                }
                $body
            }
        }
    };
}

impl Db {
    pub fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// One integer.
    pub async fn i64(&self, sql: &str, binds: &[&str]) -> i64 {
        use sqlx::Row;
        on_db!(self, sql, binds, |q, pool| q.fetch_one(pool).await.unwrap().get::<i64, _>(0))
    }

    /// The first column of every row, as text.
    pub async fn strings(&self, sql: &str, binds: &[&str]) -> Vec<String> {
        use sqlx::Row;
        on_db!(self, sql, binds, |q, pool| q
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect())
    }

    /// The first column of the first row, if any, as optional text.
    pub async fn opt_string(&self, sql: &str, binds: &[&str]) -> Option<String> {
        use sqlx::Row;
        on_db!(self, sql, binds, |q, pool| q
            .fetch_optional(pool)
            .await
            .unwrap()
            .and_then(|r| r.get::<Option<String>, _>(0)))
    }

    /// Rows of (text, text, flag).
    pub async fn triples(&self, sql: &str, binds: &[&str]) -> Vec<(String, String, bool)> {
        use sqlx::Row;
        on_db!(self, sql, binds, |q, pool| q
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1), r.get::<bool, _>(2)))
            .collect())
    }

    /// Runs a statement; the error text when the database refuses it.
    pub async fn exec(&self, sql: &str, binds: &[&str]) -> Result<u64, String> {
        on_db!(self, sql, binds, |q, pool| q.execute(pool).await.map(|r| r.rows_affected()).map_err(|e| e.to_string()))
    }

    /// Runs a statement that must succeed.
    pub async fn run(&self, sql: &str, binds: &[&str]) -> u64 {
        self.exec(sql, binds).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

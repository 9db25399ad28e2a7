//! What the benches that run a real `steward serve` process share: starting it on a loopback
//! port with a bootstrap admin, reading its memory, and the calls every bench begins with.
//! Each bench uses a part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The bootstrap admin's password, and the one benches give their users.
pub const PASSWORD: &str = "bench password 123";
/// The bootstrap admin.
pub const ADMIN: &str = "admin@bench.test";

/// A `steward serve` process, stopped when dropped.
pub struct Serve {
    child: Child,
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Serve {
    /// Starts `steward serve` on `database_url` with the bootstrap admin and `env`, and returns
    /// it with the time until `/readyz` answered 200.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> (Serve, Duration) {
        let port = free_port();
        let started = Instant::now();
        // `STEWARD_BENCH_BIN` runs another build, to compare two builds in one session.
        let binary = std::env::var_os("STEWARD_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_steward").into());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("STEWARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("STEWARD_DATABASE_URL", database_url)
            .env("STEWARD_BOOTSTRAP_ADMIN_EMAIL", ADMIN)
            .env("STEWARD_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
            .env("STEWARD_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let serve = Serve { child: command.spawn().unwrap(), base: format!("http://127.0.0.1:{port}") };
        wait_until_ok(&format!("{}/readyz", serve.base), None).await;
        (serve, started.elapsed())
    }

    /// A line of the process's `/proc/…/status` in MiB (`VmRSS`, `VmHWM`).
    pub fn status_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }
}

/// Waits (a minute at most) until `url` answers with a success.
pub async fn wait_until_ok(url: &str, bearer: Option<&str>) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let mut request = client.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if request.send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{url} did not answer");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Signs `email` in and returns the session token.
pub async fn login(client: &reqwest::Client, base: &str, email: &str) -> String {
    let reply: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["token"].as_str().unwrap().to_owned()
}

/// Creates an instance-wide SCIM token as `admin` and returns its secret.
pub async fn scim_token(client: &reqwest::Client, base: &str, admin: &str) -> String {
    let reply: Value = client
        .post(format!("{base}/api/v1/scim-tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["token"].as_str().unwrap().to_owned()
}

/// POSTs `body` as JSON with `token` and returns the answer's JSON (null when it has none).
pub async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let r = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
    r.json().await.unwrap_or(Value::Null)
}

/// The id of the user `token` belongs to.
pub async fn me_id(client: &reqwest::Client, base: &str, token: &str) -> String {
    let me: Value =
        client.get(format!("{base}/api/v1/me")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    me["user"]["id"].as_str().unwrap().to_owned()
}

//! The CLI's bulk commands, which talk to a running Steward over its API with an API token
//! (`STEWARD_URL`, `STEWARD_TOKEN`), so that they work against remote deployments. Each is safe
//! to run again: what is already done is reported and skipped.

use std::io::Write;

use anyhow::Context;
use serde_json::{Value, json};

/// A client for one Steward.
pub struct Remote {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// What a bulk run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub done: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl Summary {
    /// Prints the closing line; the exit code is non-zero when anything failed.
    pub fn finish(&self, verb: &str) -> std::process::ExitCode {
        eprintln!();
        println!("{} {verb}, {} skipped, {} failed", self.done, self.skipped, self.failed);
        if self.failed > 0 { std::process::ExitCode::from(1) } else { std::process::ExitCode::SUCCESS }
    }
}

fn progress(i: usize, total: usize) {
    if i == total || i.is_multiple_of(25) {
        eprint!("\r[{}{}] {i}/{total}", "#".repeat(i * 30 / total.max(1)), " ".repeat(30 - i * 30 / total.max(1)));
        let _ = std::io::stderr().flush();
    }
}

impl Remote {
    /// From `STEWARD_URL` and `STEWARD_TOKEN`.
    pub fn from_env() -> anyhow::Result<Remote> {
        let base = std::env::var("STEWARD_URL").context("set STEWARD_URL to the Steward to talk to")?;
        let token = std::env::var("STEWARD_TOKEN").context("set STEWARD_TOKEN to an API token")?;
        Ok(Remote { base: base.trim_end_matches('/').to_owned(), token, http: reqwest::Client::new() })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.with_context(|| format!("calling {}", self.base))?;
        let status = r.status().as_u16();
        if status == 401 {
            anyhow::bail!("STEWARD_TOKEN was refused");
        }
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn org_by_external_id(&self, external_id: &str) -> anyhow::Result<Option<String>> {
        let path = format!(
            "/orgs?external_id={}",
            form_urlencoded::byte_serialize(external_id.as_bytes()).collect::<String>()
        );
        let (status, body) = self.call(reqwest::Method::GET, &path, None).await?;
        anyhow::ensure!(status == 200, "listing orgs answered {status}: {body}");
        Ok(body["items"][0]["id"].as_str().map(str::to_owned))
    }

    /// `users import FILE.csv`: columns `email,name` and optionally `password`, `org_external_id`,
    /// `role`; existing users are skipped (and get the membership when asked).
    pub async fn import_users(&self, csv: &str, dry_run: bool) -> anyhow::Result<Summary> {
        let mut rows = parse_csv(csv).into_iter();
        let header = rows.next().context("the file is empty")?;
        let col = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
        let (email, name) = (col("email").context("no email column")?, col("name").context("no name column")?);
        let (password, org, role) = (col("password"), col("org_external_id"), col("role"));
        let rows: Vec<Vec<String>> = rows.filter(|r| r.iter().any(|f| !f.trim().is_empty())).collect();
        let mut s = Summary::default();
        for (i, row) in rows.iter().enumerate() {
            progress(i + 1, rows.len());
            let get =
                |c: Option<usize>| c.and_then(|c| row.get(c)).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
            let Some(address) = get(Some(email)) else {
                s.failed += 1;
                continue;
            };
            if dry_run {
                println!("would import {address}");
                s.done += 1;
                continue;
            }
            let mut body = json!({"email": address, "name": get(Some(name)).unwrap_or_else(|| address.clone())});
            if let Some(p) = get(password) {
                body["password"] = json!(p);
            }
            let (status, created) = self.call(reqwest::Method::POST, "/users", Some(body)).await?;
            let user_id = match (status, created["code"].as_str()) {
                (201, _) => {
                    s.done += 1;
                    created["id"].as_str().map(str::to_owned)
                }
                (409, Some("email_taken")) => {
                    s.skipped += 1;
                    self.user_by_email(&address).await?
                }
                _ => {
                    eprintln!("\n{address}: {}", created["detail"].as_str().unwrap_or("refused"));
                    s.failed += 1;
                    None
                }
            };
            if let (Some(user), Some(external)) = (user_id, get(org)) {
                let Some(org_id) = self.org_by_external_id(&external).await? else {
                    eprintln!("\n{address}: no org with external id {external}");
                    s.failed += 1;
                    continue;
                };
                let role = get(role).unwrap_or_else(|| "member".into());
                let (status, body) = self
                    .call(reqwest::Method::PUT, &format!("/orgs/{org_id}/members/{user}"), Some(json!({"role": role})))
                    .await?;
                if status != 200 && body["code"] != "owner_required" {
                    eprintln!("\n{address}: membership: {}", body["detail"].as_str().unwrap_or("refused"));
                    s.failed += 1;
                }
            }
        }
        Ok(s)
    }

    /// The id of the user with this email address, if the instance has one.
    async fn user_by_email(&self, address: &str) -> anyhow::Result<Option<String>> {
        let q = form_urlencoded::byte_serialize(address.as_bytes()).collect::<String>();
        let (_, found) = self.call(reqwest::Method::GET, &format!("/users?q={q}"), None).await?;
        Ok(found["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(address)))
            .and_then(|u| u["id"].as_str().map(str::to_owned)))
    }

    /// `users deactivate --inactive-days N`: active users not seen for N days.
    pub async fn deactivate_inactive(&self, days: u32, dry_run: bool) -> anyhow::Result<Summary> {
        let since = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days));
        let since = since.format(&time::format_description::well_known::Rfc3339)?;
        let mut users = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/users?status=active&limit=500&inactive_since={}",
                form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>()
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = self.call(reqwest::Method::GET, &path, None).await?;
            anyhow::ensure!(status == 200, "listing users answered {status}: {page}");
            users.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let mut s = Summary::default();
        for (i, u) in users.iter().enumerate() {
            progress(i + 1, users.len());
            let (id, email) = (u["id"].as_str().unwrap_or_default(), u["email"].as_str().unwrap_or_default());
            if dry_run {
                println!("would deactivate {email}");
                s.done += 1;
                continue;
            }
            let body = json!({"reason": format!("not seen for {days} days")});
            let (status, r) = self.call(reqwest::Method::POST, &format!("/users/{id}/deactivate"), Some(body)).await?;
            match status {
                200 => s.done += 1,
                409 => s.skipped += 1,
                _ => {
                    eprintln!("\n{email}: {}", r["detail"].as_str().unwrap_or("refused"));
                    s.failed += 1;
                }
            }
        }
        Ok(s)
    }

    /// `orgs deprovision --external-id X` (or `orgs restore`).
    pub async fn org_lifecycle(
        &self,
        external_id: &str,
        restore: bool,
        reason: &str,
        dry_run: bool,
    ) -> anyhow::Result<Summary> {
        let org = self
            .org_by_external_id(external_id)
            .await?
            .with_context(|| format!("no org with external id {external_id}"))?;
        let (path, body) = if restore {
            (format!("/orgs/{org}/restore"), json!({}))
        } else {
            (format!("/orgs/{org}/deprovision"), json!({"reason": reason, "dry_run": dry_run}))
        };
        let mut s = Summary::default();
        if restore && dry_run {
            println!("would restore {external_id}");
            s.done += 1;
            return Ok(s);
        }
        let (status, r) = self.call(reqwest::Method::POST, &path, Some(body)).await?;
        match (status, r["code"].as_str()) {
            (200, _) => {
                for step in r["plan"].as_array().into_iter().flatten() {
                    println!("  {}", step.as_str().unwrap_or_default());
                }
                s.done += 1;
            }
            (409, Some("invalid_transition")) => {
                println!("{external_id}: {}", r["detail"].as_str().unwrap_or("already done"));
                s.skipped += 1;
            }
            _ => {
                eprintln!("{external_id}: {}", r["detail"].as_str().unwrap_or("refused"));
                s.failed += 1;
            }
        }
        Ok(s)
    }

    /// `audit export`: every event the token may read, newest first, as JSON lines.
    pub async fn export_audit(&self, out: &mut dyn Write) -> anyhow::Result<Summary> {
        let mut s = Summary::default();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/audit?limit=500&cursor={c}"),
                None => "/audit?limit=500".into(),
            };
            let (status, page) = self.call(reqwest::Method::GET, &path, None).await?;
            anyhow::ensure!(status == 200, "reading the audit log answered {status}: {page}");
            for e in page["items"].as_array().into_iter().flatten() {
                serde_json::to_writer(&mut *out, e)?;
                out.write_all(b"\n")?;
                s.done += 1;
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        Ok(s)
    }
}

/// A small RFC 4180 reader: commas, quotes doubled inside quoted fields, CRLF or LF.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_handles_quotes_commas_and_line_endings() {
        let rows = parse_csv("email,name\r\na@x.io,\"Doe, Jane\"\nb@x.io,\"say \"\"hi\"\"\"\n");
        assert_eq!(rows, vec![vec!["email", "name"], vec!["a@x.io", "Doe, Jane"], vec!["b@x.io", "say \"hi\""]]);
    }
}

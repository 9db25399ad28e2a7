//! `steward admin create`: an instance admin, created in the database directly.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use steward_core::{Actor, Email, InstanceRole, PersonName};

use crate::config::Config;

/// Creates an instance admin with `role`, the password read from standard input.
pub async fn create(
    config: &Config,
    email: &str,
    role: &str,
    name: &str,
    password_stdin: bool,
) -> anyhow::Result<ExitCode> {
    let email = Email::parse(email)?;
    let name = PersonName::parse(name)?;
    let role = InstanceRole::parse(role)?;
    anyhow::ensure!(password_stdin, "the password is read from standard input (--password-stdin)");
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("reading the password")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let store = crate::open_store(config).await?;
    if !role.is_builtin() {
        let mut tx = store.read().await?;
        let custom = tx.custom_role(role.as_str()).await?;
        tx.rollback().await?;
        anyhow::ensure!(custom.is_some(), "there is no role named {role}");
    }
    let pool = crate::auth::PasswordPool::new(1);
    let hash = pool.hash(password).await.map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
    // This process keeps no principals or answers: its change epochs are its own.
    let changes = steward_ops::Changes::default();
    let now = time::OffsetDateTime::now_utc();
    let who = (&email, &name);
    let user = steward_ops::users::create_admin(store.as_ref(), &changes, who, hash, role, Actor::SYSTEM, now).await?;
    println!("created {} ({})", user.email, user.id);
    Ok(ExitCode::SUCCESS)
}

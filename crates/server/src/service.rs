//! Operations shared by the API, start-up and the CLI.

use serde_json::json;
use steward_core::{Actor, AuditDraft, Email, InstanceRole, PersonName, TargetType, UserId, UserStatus};
use steward_store::{Store, UserRow};
use time::OffsetDateTime;

use crate::error::ApiResult;
use crate::routes::users::email_in_use;
use crate::state::commit;

/// Creates an active user with the given instance role, for bootstrap, the setup link and the CLI.
pub async fn create_admin(
    store: &dyn Store,
    email: &Email,
    name: &PersonName,
    password_hash: String,
    role: InstanceRole,
    actor: Actor,
) -> ApiResult<UserRow> {
    let now = OffsetDateTime::now_utc();
    let user = UserRow {
        id: UserId::new(),
        email: email.as_str().to_owned(),
        email_key: email.key(),
        name: name.as_str().to_owned(),
        status: UserStatus::Active,
        password_hash: Some(password_hash),
        locale: None,
        timezone: None,
        instance_roles: vec![role],
        created_at: now,
        updated_at: now,
        last_login_at: None,
        version: 1,
    };
    let mut tx = store.write().await?;
    if let Some(existing) = tx.user_by_email_key(&user.email_key).await? {
        return Err(email_in_use(&existing));
    }
    tx.insert_user(&user).await?;
    let event = AuditDraft::new("user.created", actor, TargetType::User, user.id)
        .detail(json!({ "status": user.status, "instance_roles": user.instance_roles }))
        .personal(json!({ "email": user.email, "name": user.name }));
    commit(tx, vec![event], now).await?;
    Ok(user)
}

/// Creates the first (or another) system admin.
pub async fn create_system_admin(
    store: &dyn Store,
    email: &Email,
    name: &PersonName,
    password_hash: String,
    actor: Actor,
) -> ApiResult<UserRow> {
    create_admin(store, email, name, password_hash, InstanceRole::system_admin(), actor).await
}

/// Whether an active system admin exists.
pub async fn has_system_admin(store: &dyn Store) -> ApiResult<bool> {
    let mut tx = store.read().await?;
    let n = tx.count_users_with_role(InstanceRole::system_admin().as_str()).await?;
    tx.rollback().await?;
    Ok(n > 0)
}

//! Loads what `steward_core::governance` decides from, for every path that acts on a user: the
//! API, the pages, SCIM, single sign-on, the scheduler and access reviews call these, never a
//! copy of the rule. Each surface turns a refusal into its own format.

use std::collections::BTreeSet;

use steward_core::governance::{self, Authority, Reach, StatusSetter, Subject};
use steward_core::{OrgId, Permission, RoleBook};
use steward_store::{Tx, UserRow};

use crate::{OpError, OpResult};

/// A user as the governance rule sees them.
#[derive(Debug, Clone)]
pub struct Held {
    has_instance_roles: bool,
    permissions: BTreeSet<Permission>,
    orgs: Vec<OrgId>,
    status_by: Option<StatusSetter>,
}

impl Held {
    /// The rule's view of the user.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            has_instance_roles: self.has_instance_roles,
            permissions: &self.permissions,
            orgs: &self.orgs,
            status_by: self.status_by,
        }
    }

    /// How far `authority` reaches into this user.
    pub fn reach(&self, authority: Authority<'_>) -> Reach {
        governance::reach(authority, &self.subject())
    }

    /// The permissions the user's instance roles grant.
    pub fn permissions(&self) -> &BTreeSet<Permission> {
        &self.permissions
    }
}

/// The built-in roles and the instance's own.
pub async fn role_book(tx: &mut dyn Tx) -> OpResult<RoleBook> {
    let custom = tx.custom_roles().await?;
    Ok(RoleBook::new(custom.into_iter().map(|r| (r.name, r.permissions.into_iter().collect()))))
}

/// Reads who holds `user`: their instance roles' permissions and their current orgs.
pub async fn held(tx: &mut dyn Tx, user: &UserRow) -> OpResult<Held> {
    let permissions = if user.instance_roles.is_empty() {
        BTreeSet::new()
    } else {
        role_book(tx).await?.permissions_of(&user.instance_roles)
    };
    let orgs = tx.memberships_of(user.id).await?.into_iter().map(|m| m.org_id).collect();
    Ok(Held { has_instance_roles: !user.instance_roles.is_empty(), permissions, orgs, status_by: user.status_by })
}

/// How far an org's directory or identity provider reaches into `user`.
pub async fn directory_reach(tx: &mut dyn Tx, org: OrgId, user: &UserRow) -> OpResult<Reach> {
    Ok(held(tx, user).await?.reach(Authority::Directory(org)))
}

/// Refused unless an instance actor holding `permissions` may change the credentials, status,
/// sessions, tokens, profile, schedule or roles of `user`: the actor holds every permission the
/// user's roles grant.
pub async fn require_instance_reach(
    tx: &mut dyn Tx,
    permissions: &BTreeSet<Permission>,
    user: &UserRow,
) -> OpResult<()> {
    if user.instance_roles.is_empty() {
        return Ok(());
    }
    if held(tx, user).await?.reach(Authority::Instance(permissions)).governs() { Ok(()) } else { Err(outranked()) }
}

/// The refusal of acting on someone whose instance roles grant more than the actor holds.
pub fn outranked() -> OpError {
    OpError::forbidden("this user's instance roles grant permissions you do not hold")
}

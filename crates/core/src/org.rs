//! Organizations and their members: the pure rules for roles, removal and ownership transfer.
//! Every org has exactly one owner, and the owner is a member with role `owner`.

use serde_json::json;

use crate::roles::string_enum;
use crate::{Actor, AuditDraft, DomainError, OrgId, OrgRole, TargetType, UserId, UserStatus};

/// A current (not ended) membership as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member.
    pub user_id: UserId,
    /// Their role.
    pub role: OrgRole,
    /// Kept but inactive while the user is deactivated.
    pub dormant: bool,
}

/// What the rules need to know of an org.
#[derive(Debug, Clone)]
pub struct OrgView {
    /// The org.
    pub id: OrgId,
    /// The owner recorded on the org.
    pub owner_id: UserId,
    /// Its current memberships: all of them, or at least those of the users a change is about
    /// and of the recorded owner.
    pub members: Vec<Member>,
}

impl OrgView {
    /// The membership of `user_id`, if current.
    pub fn member(&self, user_id: UserId) -> Option<&Member> {
        self.members.iter().find(|m| m.user_id == user_id)
    }

    /// Invariant 1: exactly one member holds `owner`, and it is the recorded owner.
    pub fn has_single_owner(&self) -> bool {
        let owners: Vec<&Member> = self.members.iter().filter(|m| m.role == OrgRole::Owner).collect();
        owners.len() == 1 && owners[0].user_id == self.owner_id
    }
}

/// The effect of putting a role on a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// A new membership.
    Added,
    /// The role changed from the one given.
    Changed { from: OrgRole },
    /// The user already had that role.
    Unchanged,
}

/// Puts `role` on `user_id` in the org, adding the membership when there is none.
pub fn set_member_role(
    org: &OrgView,
    user_id: UserId,
    status: UserStatus,
    role: OrgRole,
    actor: Actor,
) -> Result<(RoleChange, Option<AuditDraft>), DomainError> {
    if role == OrgRole::Owner {
        return Err(DomainError::invalid("role", "owner is given only by transferring ownership"));
    }
    let change = match org.member(user_id) {
        Some(m) if m.role == OrgRole::Owner => {
            return Err(DomainError::OwnerRequired("the owner's role changes only by transferring ownership".into()));
        }
        Some(m) if m.role == role => RoleChange::Unchanged,
        Some(m) => RoleChange::Changed { from: m.role },
        None => {
            if !status.can_receive_roles() {
                return Err(DomainError::UserDeactivated(user_id));
            }
            RoleChange::Added
        }
    };
    let event = match &change {
        RoleChange::Unchanged => None,
        RoleChange::Added => Some(
            AuditDraft::new("org.member_added", actor, TargetType::User, user_id)
                .in_org(org.id)
                .detail(json!({ "role": role })),
        ),
        RoleChange::Changed { from } => Some(
            AuditDraft::new("org.member_role_changed", actor, TargetType::User, user_id)
                .in_org(org.id)
                .detail(json!({ "from": from, "to": role })),
        ),
    };
    Ok((change, event))
}

/// Ends a membership; the owner cannot be removed.
pub fn remove_member(org: &OrgView, user_id: UserId, actor: Actor) -> Result<AuditDraft, DomainError> {
    let member =
        org.member(user_id).ok_or_else(|| DomainError::invalid("user_id", "is not a member of this organization"))?;
    if member.role == OrgRole::Owner || org.owner_id == user_id {
        return Err(DomainError::OwnerRequired("the owner cannot be removed; transfer ownership first".into()));
    }
    Ok(AuditDraft::new("org.member_removed", actor, TargetType::User, user_id)
        .in_org(org.id)
        .detail(json!({ "role": member.role })))
}

/// The outcome of an ownership transfer: who gets which role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The owner before.
    pub previous_owner_id: UserId,
    /// The role the previous owner keeps.
    pub previous_owner_role: OrgRole,
    /// The new owner.
    pub new_owner_id: UserId,
}

/// Hands ownership to an active member; the old owner stays a member with `previous_owner_role`.
pub fn transfer_ownership(
    org: &OrgView,
    new_owner_id: UserId,
    new_owner_status: UserStatus,
    previous_owner_role: OrgRole,
    actor: Actor,
) -> Result<(Transfer, AuditDraft), DomainError> {
    if previous_owner_role == OrgRole::Owner {
        return Err(DomainError::invalid("previous_owner_role", "cannot be owner"));
    }
    if new_owner_id == org.owner_id {
        return Err(DomainError::InvalidTransition("that user already owns the organization".into()));
    }
    let member = org.member(new_owner_id).filter(|m| !m.dormant).ok_or_else(|| {
        DomainError::InvalidTransition("the new owner must be an active member of the organization".into())
    })?;
    if new_owner_status != UserStatus::Active {
        return Err(DomainError::InvalidTransition(format!(
            "the new owner must be an active user, not {new_owner_status}"
        )));
    }
    let transfer = Transfer { previous_owner_id: org.owner_id, previous_owner_role, new_owner_id };
    let event =
        AuditDraft::new("org.ownership_transferred", actor, TargetType::Org, org.id).in_org(org.id).detail(json!({
            "from": org.owner_id,
            "to": new_owner_id,
            "previous_owner_role": previous_owner_role,
            "new_owner_previous_role": member.role,
        }));
    Ok((transfer, event))
}

impl OrgView {
    /// The org as it stands after `transfer`.
    pub fn apply_transfer(&mut self, t: &Transfer) {
        self.owner_id = t.new_owner_id;
        for m in &mut self.members {
            if m.user_id == t.new_owner_id {
                m.role = OrgRole::Owner;
            } else if m.user_id == t.previous_owner_id {
                m.role = t.previous_owner_role;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> (OrgView, UserId, UserId) {
        let owner = UserId::new();
        let member = UserId::new();
        let view = OrgView {
            id: OrgId::new(),
            owner_id: owner,
            members: vec![
                Member { user_id: owner, role: OrgRole::Owner, dormant: false },
                Member { user_id: member, role: OrgRole::Member, dormant: false },
            ],
        };
        (view, owner, member)
    }

    #[test]
    fn the_owner_cannot_be_removed_or_demoted_directly() {
        let (o, owner, _) = org();
        assert!(matches!(remove_member(&o, owner, Actor::SYSTEM), Err(DomainError::OwnerRequired(_))));
        assert!(matches!(
            set_member_role(&o, owner, UserStatus::Active, OrgRole::Admin, Actor::SYSTEM),
            Err(DomainError::OwnerRequired(_))
        ));
        assert!(set_member_role(&o, UserId::new(), UserStatus::Active, OrgRole::Owner, Actor::SYSTEM).is_err());
    }

    #[test]
    fn transfer_keeps_exactly_one_owner() {
        let (mut o, owner, member) = org();
        let (t, event) = transfer_ownership(&o, member, UserStatus::Active, OrgRole::Admin, Actor::SYSTEM).unwrap();
        o.apply_transfer(&t);
        assert!(o.has_single_owner());
        assert_eq!(o.member(owner).unwrap().role, OrgRole::Admin);
        assert_eq!(event.kind, "org.ownership_transferred");
    }

    #[test]
    fn transfer_needs_an_active_member() {
        let (mut o, _, member) = org();
        let outsider = UserId::new();
        assert!(transfer_ownership(&o, outsider, UserStatus::Active, OrgRole::Admin, Actor::SYSTEM).is_err());
        assert!(transfer_ownership(&o, member, UserStatus::Suspended, OrgRole::Admin, Actor::SYSTEM).is_err());
        o.members[1].dormant = true;
        assert!(transfer_ownership(&o, member, UserStatus::Active, OrgRole::Admin, Actor::SYSTEM).is_err());
    }

    #[test]
    fn deactivated_users_get_no_new_membership() {
        let (o, _, _) = org();
        let u = UserId::new();
        assert_eq!(
            set_member_role(&o, u, UserStatus::Deactivated, OrgRole::Viewer, Actor::SYSTEM).unwrap_err(),
            DomainError::UserDeactivated(u)
        );
    }
}

string_enum!(
    /// Where an organization stands: in use, deprovisioned (access taken away, everything kept,
    /// restorable), or purged (its data erased; the row and audit history remain).
    OrgState, "state" {
        Active => "active",
        Deprovisioned => "deprovisioned",
        Purged => "purged",
    }
);

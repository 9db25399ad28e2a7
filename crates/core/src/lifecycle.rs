//! User lifecycle transitions and the deprovisioning of an org, as pure rules over plain data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::license::License;
use crate::org::OrgView;
use crate::{DomainError, OrgRole, UserId, UserStatus};

/// The notification categories every user has; a category not set is on.
pub const NOTIFICATION_CATEGORIES: &[&str] = &["product_updates", "usage_alerts", "security", "org_activity"];
/// The categories of an org's own emails, which a member also sets per org and which that org's
/// deprovisioning switches off for its members — and nothing else.
pub const ORG_NOTIFICATION_CATEGORIES: &[&str] = &["usage_alerts", "org_activity"];

/// A step in a user's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    /// Revoke access at once, keep everything.
    Deactivate,
    /// Give access back with every role.
    Reactivate,
    /// Block temporarily; memberships untouched.
    Suspend,
    /// Lift a suspension.
    Unsuspend,
    /// Erase personal data of a deactivated user; irreversible.
    Anonymize,
}

impl UserAction {
    fn name(self) -> &'static str {
        match self {
            UserAction::Deactivate => "deactivate",
            UserAction::Reactivate => "reactivate",
            UserAction::Suspend => "suspend",
            UserAction::Unsuspend => "unsuspend",
            UserAction::Anonymize => "anonymize",
        }
    }
}

/// The status after `action`, or why it is not allowed. A reactivated user who never set a
/// password goes back to `invited`.
pub fn transition(from: UserStatus, action: UserAction, has_password: bool) -> Result<UserStatus, DomainError> {
    use UserAction::*;
    use UserStatus::*;
    let to = match (from, action) {
        (Invited | Active | Suspended, Deactivate) => Deactivated,
        (Deactivated, Reactivate) => {
            if has_password {
                Active
            } else {
                Invited
            }
        }
        (Active, Suspend) => Suspended,
        (Suspended, Unsuspend) => Active,
        (Deactivated, Anonymize) => Anonymized,
        _ => {
            return Err(DomainError::InvalidTransition(format!("cannot {} a user who is {from}", action.name())));
        }
    };
    Ok(to)
}

/// What the rules for taking a user's access away need to know of the user and the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRemoval {
    /// The user's status now.
    pub status: UserStatus,
    /// What the user row stands for.
    pub kind: crate::user::UserKind,
    /// Whether the user has a password (a reactivation then makes them active, not invited).
    pub has_password: bool,
    /// Whether the actor is the user themself.
    pub by_self: bool,
    /// Whether the user holds `system_admin`.
    pub system_admin: bool,
    /// How many active users hold `system_admin`, the user included.
    pub active_system_admins: i64,
}

/// The status after deactivating or suspending (`action`) a user, or why not: a person only,
/// never by themself, and never the last active system admin, so that the instance keeps a way
/// in. Every path that takes access away (the API, the pages, SCIM, the scheduler, access
/// reviews) asks this one rule.
pub fn guard_deactivate(user: AccessRemoval, action: UserAction) -> Result<UserStatus, DomainError> {
    let verb = match action {
        UserAction::Suspend => "suspended",
        _ => "deactivated",
    };
    let who = match user.kind {
        crate::user::UserKind::Person => None,
        crate::user::UserKind::Placeholder => Some("the placeholder owner"),
        crate::user::UserKind::Service => Some("a SCIM token's service user"),
    };
    if let Some(who) = who {
        return Err(DomainError::InvalidTransition(format!("{who} cannot be {verb}")));
    }
    if user.by_self {
        return Err(DomainError::InvalidTransition(format!("you cannot {} yourself", action.name())));
    }
    let to = transition(user.status, action, user.has_password)?;
    if user.status == UserStatus::Active && user.system_admin && user.active_system_admins <= 1 {
        return Err(DomainError::InvalidTransition(format!("the last active system_admin cannot be {verb}")));
    }
    Ok(to)
}

/// What the rule for Login as user needs to know of the target and the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Impersonation {
    /// The target's status and kind.
    pub status: UserStatus,
    pub kind: crate::user::UserKind,
    /// Whether the actor is the target.
    pub by_self: bool,
    /// Whether the target holds any instance role.
    pub target_has_instance_role: bool,
    /// Whether the actor holds `system_admin`.
    pub actor_is_system_admin: bool,
}

/// Ok when an admin (who holds `users.impersonate` and governs the target) may sign in as the
/// target: an active person other than themself, and a holder of an instance role only for a
/// `system_admin`.
pub fn may_impersonate(i: Impersonation) -> Result<(), DomainError> {
    if i.by_self {
        return Err(DomainError::InvalidTransition("you cannot impersonate yourself".into()));
    }
    if i.status != UserStatus::Active || i.kind != crate::user::UserKind::Person {
        return Err(DomainError::InvalidTransition(format!("a {} user cannot be impersonated", i.status)));
    }
    if i.target_has_instance_role && !i.actor_is_system_admin {
        return Err(DomainError::Forbidden("only a system_admin may impersonate a holder of an instance role".into()));
    }
    Ok(())
}

/// Notification settings with every category switched off.
pub fn all_notifications_off() -> BTreeMap<String, bool> {
    NOTIFICATION_CATEGORIES.iter().map(|c| ((*c).to_owned(), false)).collect()
}

/// Every category of an org's own emails, off.
pub fn org_notifications_off() -> BTreeMap<String, bool> {
    ORG_NOTIFICATION_CATEGORIES.iter().map(|c| ((*c).to_owned(), false)).collect()
}

/// Whether `category` is on in `settings` (missing means on).
pub fn notification_on(settings: &BTreeMap<String, bool>, category: &str) -> bool {
    settings.get(category).copied().unwrap_or(true)
}

/// What a deprovisioning changes, kept so that restore can put it back exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The license just before.
    pub license: License,
    /// The owner just before.
    pub owner_id: UserId,
    /// Every current member's role just before.
    pub roles: BTreeMap<UserId, OrgRole>,
    /// Notification settings of the members whose notifications were switched off.
    pub notifications: BTreeMap<UserId, BTreeMap<String, bool>>,
    /// Whether `notifications` are the members' settings for this org (deprovisionings since
    /// settings are kept per org) rather than their settings as people (earlier ones).
    #[serde(default)]
    pub org_scoped: bool,
}

/// The changes a deprovisioning makes.
#[derive(Debug, Clone, PartialEq)]
pub struct DeprovisionPlan {
    /// Human-readable steps, as the dry run shows them.
    pub steps: Vec<String>,
    /// The license with every consumable at 0.
    pub license: License,
    /// Who owns the org afterwards.
    pub new_owner: UserId,
    /// The former owner and their new role.
    pub demoted: (UserId, OrgRole),
    /// Members whose notifications are switched off.
    pub silenced: Vec<UserId>,
    /// What restore puts back.
    pub snapshot: Snapshot,
}

/// Plans the deprovisioning of an active org: consumables to 0, ownership to `placeholder`, the
/// former owner demoted to `demote_to`, and (when asked) every member's notifications off.
pub fn plan_deprovision(
    org: &OrgView,
    state: crate::org::OrgState,
    license: &License,
    placeholder: UserId,
    demote_to: OrgRole,
    notifications_off: bool,
    notifications: &BTreeMap<UserId, BTreeMap<String, bool>>,
) -> Result<DeprovisionPlan, DomainError> {
    if state != crate::org::OrgState::Active {
        return Err(DomainError::InvalidTransition(format!("the organization is {state}, not active")));
    }
    if demote_to == OrgRole::Owner {
        return Err(DomainError::invalid("demote_to", "cannot be owner"));
    }
    if placeholder == org.owner_id {
        return Err(DomainError::InvalidTransition("the placeholder already owns the organization".into()));
    }
    let mut new_license = license.clone();
    new_license.operations = Some(0);
    new_license.transfer = Some(0);
    let silenced: Vec<UserId> = if notifications_off {
        org.members.iter().map(|m| m.user_id).filter(|u| *u != placeholder).collect()
    } else {
        Vec::new()
    };
    let mut steps = vec![
        format!(
            "set consumables to 0: operations {} -> 0, transfer {} -> 0",
            limit_text(license.operations),
            limit_text(license.transfer)
        ),
        format!("transfer ownership from {} to the placeholder owner {placeholder}", org.owner_id),
        format!("demote the former owner {} to {demote_to}", org.owner_id),
    ];
    if notifications_off {
        steps.push(format!(
            "switch off this organization's emails (usage alerts, org activity) to {} member(s); their security and product emails stay on",
            silenced.len()
        ));
    }
    steps.push("mark the organization deprovisioned".into());
    let snapshot = Snapshot {
        license: license.clone(),
        owner_id: org.owner_id,
        roles: org.members.iter().map(|m| (m.user_id, m.role)).collect(),
        notifications: silenced.iter().map(|u| (*u, notifications.get(u).cloned().unwrap_or_default())).collect(),
        org_scoped: true,
    };
    Ok(DeprovisionPlan {
        steps,
        license: new_license,
        new_owner: placeholder,
        demoted: (org.owner_id, demote_to),
        silenced,
        snapshot,
    })
}

/// A change to one membership that a restore makes, in the order it must be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipStep {
    /// The member's role becomes this one.
    SetRole(UserId, OrgRole),
    /// The member leaves: whoever held the org and was not a member before.
    End(UserId),
    /// The user joins with this role: the former owner, if they left meanwhile.
    Add(UserId, OrgRole),
}

/// What a restore puts back.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorePlan {
    /// The membership changes, in order: whoever holds the org steps down first, so that it never
    /// has two owners.
    pub steps: Vec<MembershipStep>,
    /// The owner again.
    pub owner_id: UserId,
    /// The license again.
    pub license: License,
    /// The notification settings to put back, by user.
    pub notifications: BTreeMap<UserId, BTreeMap<String, bool>>,
    /// Whether they are settings for this org ([`Snapshot::org_scoped`]).
    pub org_scoped: bool,
}

/// Plans the restore of a deprovisioned org from the snapshot its deprovisioning kept: the
/// current `holder` of ownership steps down (to their role before, or out of the org), every
/// member who was there before gets their role back, and the former owner owns it again. Members
/// who joined since keep their role.
pub fn plan_restore(
    state: crate::org::OrgState,
    holder: UserId,
    members: &[(UserId, OrgRole)],
    snapshot: &Snapshot,
) -> Result<RestorePlan, DomainError> {
    if state != crate::org::OrgState::Deprovisioned {
        return Err(DomainError::InvalidTransition(format!("the organization is {state}, not deprovisioned")));
    }
    let owner = snapshot.owner_id;
    let mut steps = Vec::new();
    match snapshot.roles.get(&holder) {
        Some(OrgRole::Owner) => {}
        Some(role) => steps.push(MembershipStep::SetRole(holder, *role)),
        None => steps.push(MembershipStep::End(holder)),
    }
    for (user, role) in members {
        if *user == holder || *user == owner {
            continue;
        }
        if let Some(before) = snapshot.roles.get(user)
            && before != role
        {
            steps.push(MembershipStep::SetRole(*user, *before));
        }
    }
    if members.iter().any(|(u, _)| *u == owner) {
        if holder != owner {
            steps.push(MembershipStep::SetRole(owner, OrgRole::Owner));
        }
    } else {
        steps.push(MembershipStep::Add(owner, OrgRole::Owner));
    }
    Ok(RestorePlan {
        steps,
        owner_id: owner,
        license: snapshot.license.clone(),
        notifications: snapshot.notifications.clone(),
        org_scoped: snapshot.org_scoped,
    })
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |l| l.to_string())
}

#[cfg(test)]
mod tests {
    mod restore {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::super::{MembershipStep, Snapshot, plan_restore};
        use crate::license::License;
        use crate::org::OrgState;
        use crate::{OrgRole, UserId};

        fn role(i: u8) -> OrgRole {
            [OrgRole::Admin, OrgRole::Member, OrgRole::Accountant, OrgRole::Viewer][usize::from(i % 4)]
        }

        proptest! {
            /// Whatever changed since the deprovisioning, a restore ends with the former owner
            /// the one owner, every member of before in their role of before, and never passes
            /// through two owners.
            #[test]
            fn a_restore_puts_every_role_back_and_never_makes_two_owners(
                before in proptest::collection::vec(0u8..4, 1..6),
                now_roles in proptest::collection::vec(proptest::option::of(0u8..4), 1..6),
                joined in proptest::collection::vec(0u8..4, 0..3),
                holder_was_member in any::<bool>(),
            ) {
                let users: Vec<UserId> = (0..8).map(|_| UserId::new()).collect();
                let owner = users[0];
                let mut roles: BTreeMap<UserId, OrgRole> =
                    before.iter().enumerate().map(|(i, r)| (users[i + 1], role(*r))).collect();
                roles.insert(owner, OrgRole::Owner);
                let holder = if holder_was_member { users[1] } else { users[7] };
                // Now: some of before left, some changed role, some joined; the holder owns.
                let mut current: BTreeMap<UserId, OrgRole> = BTreeMap::new();
                for (i, r) in now_roles.iter().enumerate() {
                    if let (Some(r), Some(u)) = (r, users.get(i)) && roles.contains_key(u) {
                        current.insert(*u, role(*r));
                    }
                }
                for (i, r) in joined.iter().enumerate() {
                    current.entry(users[4 + i]).or_insert(role(*r));
                }
                current.insert(holder, OrgRole::Owner);
                let snapshot = Snapshot {
                    license: License::default(),
                    owner_id: owner,
                    roles: roles.clone(),
                    notifications: BTreeMap::new(),
                    org_scoped: true,
                };
                let members: Vec<(UserId, OrgRole)> = current.iter().map(|(u, r)| (*u, *r)).collect();
                let plan = plan_restore(OrgState::Deprovisioned, holder, &members, &snapshot).unwrap();
                for step in &plan.steps {
                    match *step {
                        MembershipStep::SetRole(u, r) | MembershipStep::Add(u, r) => { current.insert(u, r); }
                        MembershipStep::End(u) => { current.remove(&u); }
                    }
                    let owners = current.values().filter(|r| **r == OrgRole::Owner).count();
                    prop_assert!(owners <= 1, "two owners after {step:?}");
                }
                prop_assert_eq!(current.get(&owner), Some(&OrgRole::Owner));
                for (u, r) in &current {
                    if let Some(was) = roles.get(u) {
                        prop_assert_eq!(r, was);
                    }
                }
                prop_assert_eq!(current.contains_key(&holder), roles.contains_key(&holder));
            }
        }

        #[test]
        fn only_a_deprovisioned_org_is_restored() {
            let owner = UserId::new();
            let snapshot = Snapshot {
                license: License::default(),
                owner_id: owner,
                roles: BTreeMap::from([(owner, OrgRole::Owner)]),
                notifications: BTreeMap::new(),
                org_scoped: true,
            };
            for state in [OrgState::Active, OrgState::Purged] {
                assert!(plan_restore(state, owner, &[(owner, OrgRole::Owner)], &snapshot).is_err());
            }
            // A record kept before settings were kept per org reads as the person's settings.
            let mut earlier = serde_json::to_value(&snapshot).unwrap();
            earlier.as_object_mut().unwrap().remove("org_scoped");
            let earlier: Snapshot = serde_json::from_value(earlier).unwrap();
            assert!(!earlier.org_scoped);
            assert!(
                !plan_restore(OrgState::Deprovisioned, owner, &[(owner, OrgRole::Owner)], &earlier).unwrap().org_scoped
            );
        }
    }

    #[test]
    fn only_an_active_person_other_than_oneself_is_impersonated_and_admins_only_by_a_system_admin() {
        use crate::user::UserKind;
        for status in UserStatus::ALL.iter().copied() {
            for kind in UserKind::ALL.iter().copied() {
                for bits in 0..8u8 {
                    let i = Impersonation {
                        status,
                        kind,
                        by_self: bits & 1 != 0,
                        target_has_instance_role: bits & 2 != 0,
                        actor_is_system_admin: bits & 4 != 0,
                    };
                    let expected = !i.by_self
                        && status == UserStatus::Active
                        && kind == UserKind::Person
                        && (!i.target_has_instance_role || i.actor_is_system_admin);
                    assert_eq!(may_impersonate(i).is_ok(), expected, "{i:?}");
                }
            }
        }
    }

    #[test]
    fn access_is_taken_only_from_a_person_by_another_and_never_from_the_last_system_admin() {
        use crate::user::UserKind;
        for action in [UserAction::Deactivate, UserAction::Suspend] {
            for status in UserStatus::ALL.iter().copied() {
                for kind in UserKind::ALL.iter().copied() {
                    for (by_self, system_admin, admins) in
                        [false, true].into_iter().flat_map(|s| [(s, false, 1), (s, true, 1), (s, true, 2)])
                    {
                        let user = AccessRemoval {
                            status,
                            kind,
                            has_password: true,
                            by_self,
                            system_admin,
                            active_system_admins: admins,
                        };
                        let allowed = guard_deactivate(user, action).is_ok();
                        let expected = kind == UserKind::Person
                            && !by_self
                            && transition(status, action, true).is_ok()
                            && !(status == UserStatus::Active && system_admin && admins <= 1);
                        assert_eq!(allowed, expected, "{action:?} of {user:?}");
                    }
                }
            }
        }
        let last = AccessRemoval {
            status: UserStatus::Active,
            kind: UserKind::Person,
            has_password: true,
            by_self: false,
            system_admin: true,
            active_system_admins: 1,
        };
        assert_eq!(
            guard_deactivate(last, UserAction::Deactivate),
            Err(DomainError::InvalidTransition("the last active system_admin cannot be deactivated".into()))
        );
    }

    use super::*;
    use crate::OrgId;
    use crate::org::Member;

    #[test]
    fn statuses_move_only_along_the_lifecycle() {
        use UserAction::*;
        use UserStatus::*;
        assert_eq!(transition(Active, Deactivate, true).unwrap(), Deactivated);
        assert_eq!(transition(Invited, Deactivate, false).unwrap(), Deactivated);
        assert_eq!(transition(Deactivated, Reactivate, true).unwrap(), Active);
        assert_eq!(transition(Deactivated, Reactivate, false).unwrap(), Invited);
        assert_eq!(transition(Deactivated, Anonymize, true).unwrap(), Anonymized);
        for (from, action) in [
            (Active, Reactivate),
            (Active, Anonymize),
            (Anonymized, Reactivate),
            (Deactivated, Suspend),
            (Invited, Suspend),
            (Active, Unsuspend),
            (Deactivated, Deactivate),
            (Anonymized, Deactivate),
        ] {
            assert!(
                matches!(transition(from, action, true), Err(DomainError::InvalidTransition(_))),
                "{from} {action:?}"
            );
        }
    }

    #[test]
    fn the_plan_snapshots_what_it_changes() {
        let owner = UserId::new();
        let member = UserId::new();
        let placeholder = UserId::new();
        let org = OrgView {
            id: OrgId::new(),
            owner_id: owner,
            members: vec![
                Member { user_id: owner, role: OrgRole::Owner, dormant: false },
                Member { user_id: member, role: OrgRole::Admin, dormant: false },
            ],
        };
        let license = License { operations: Some(500), users: Some(3), ..License::default() };
        let settings = BTreeMap::from([(owner, BTreeMap::from([("security".to_owned(), true)]))]);
        let plan =
            plan_deprovision(&org, crate::OrgState::Active, &license, placeholder, OrgRole::Member, true, &settings)
                .unwrap();
        assert_eq!(plan.license.operations, Some(0));
        assert_eq!(plan.license.transfer, Some(0));
        assert_eq!(plan.license.users, Some(3), "limits that are not consumables stay");
        assert_eq!(plan.snapshot.license, license);
        assert_eq!(plan.snapshot.roles[&member], OrgRole::Admin);
        assert_eq!(plan.silenced.len(), 2);
        assert_eq!(plan.demoted, (owner, OrgRole::Member));
        assert!(
            plan_deprovision(
                &org,
                crate::OrgState::Deprovisioned,
                &license,
                placeholder,
                OrgRole::Member,
                true,
                &settings
            )
            .is_err()
        );
    }
}

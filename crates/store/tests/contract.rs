//! The store contract: what every backend must do, written once and run against each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use steward_core::lockout::LockoutState;
use steward_core::{
    Actor, AuditDraft, ChainCheck, InstanceRole, License, OrgId, OrgRole, Permission, TargetType, UserId, UserStatus,
};
use steward_core::{TeamId, TeamRole};
use steward_store::{
    ApiTokenRow, Constraint, InvitationRow, OrgRow, PgStore, RoleMappingRow, RoleRow, ScimUserRow, SessionRow,
    SqliteStore, SsoClaims, SsoConnectionRow, Store, StoreError, StoreResult, TotpRow, UserFilter, UserRow,
};
use steward_store::{
    AssetRow, DeliveryRow, DeprovisionRow, HandoverRow, IdempotentResponse, JwtIssuerRow, OrgFilter, OutboxRow,
    ResetRow, ReviewItemRow, ReviewRow, TeamMemberRow, TeamRow, WebhookRow,
};
use steward_store::{AuditFilter, CheckpointRow, Cond, Consume, Lit, Op, ScimQuery, ScimTokenRow, UsageRow, UserField};
use time::OffsetDateTime;

struct Backend {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
    Backend { store: Arc::new(SqliteStore::open(&url, false).await.unwrap()), _dir: Some(dir) }
}

/// A fresh PostgreSQL database on the server `STEWARD_TEST_POSTGRES_URL` names. The tests that
/// call this are ignored unless asked for (`scripts/test` runs them with `--ignored`).
async fn postgres() -> Backend {
    postgres_named().await.0
}

/// [`postgres`], and the name of its database.
async fn postgres_named() -> (Backend, String) {
    let admin = std::env::var("STEWARD_TEST_POSTGRES_URL")
        .expect("the PostgreSQL half needs STEWARD_TEST_POSTGRES_URL to name a server");
    let name = format!("steward_test_{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::PgPool::connect(&admin).await.expect("STEWARD_TEST_POSTGRES_URL is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let store = PgStore::open(&url, 5, std::time::Duration::from_secs(30)).await.unwrap();
    (Backend { store: Arc::new(store), _dir: None }, name)
}

fn user(email: &str) -> UserRow {
    let now = OffsetDateTime::now_utc();
    let mut user = UserRow::new(email, email.to_lowercase(), "Someone", UserStatus::Active, now);
    user.instance_roles = vec![InstanceRole::parse("viewer").unwrap()];
    user
}

fn org(owner: UserId) -> OrgRow {
    let now = OffsetDateTime::now_utc();
    OrgRow {
        id: OrgId::new(),
        name: "Acme".into(),
        external_id: None,
        owner_id: owner,
        state: steward_core::OrgState::Active,
        timezone: None,
        country: None,
        license: License::default(),
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

/// A live session of `user`, made at `at` for `lives`, with nothing else set.
fn session_of(user: UserId, token_hash: &str, at: OffsetDateTime, lives: time::Duration) -> SessionRow {
    SessionRow {
        id: steward_core::SessionId::new(),
        user_id: user,
        token_hash: token_hash.into(),
        impersonator_id: None,
        parent_id: None,
        return_sealed: None,
        parent_token_id: None,
        created_at: at,
        expires_at: at + lives,
        revoked_at: None,
        ip: None,
        user_agent: None,
    }
}

/// An API token of `user`, made at `at`, without expiry or scopes.
fn token_of(user: UserId, token_hash: &str, at: OffsetDateTime) -> ApiTokenRow {
    ApiTokenRow {
        id: steward_core::TokenId::new(),
        user_id: user,
        name: token_hash.into(),
        token_hash: token_hash.into(),
        created_at: at,
        expires_at: None,
        revoked_at: None,
        parent_token_id: None,
        scopes: vec![],
    }
}

/// A security message to `to`, due at `at`.
fn message_to(to: &str, at: OffsetDateTime) -> OutboxRow {
    OutboxRow {
        id: uuid::Uuid::now_v7(),
        user_id: None,
        org_id: None,
        recipient: to.into(),
        category: "security".into(),
        subject: "Subject".into(),
        body: "Body".into(),
        created_at: at,
        attempts: 0,
        next_attempt_at: at,
        sent_at: None,
        dropped_at: None,
        last_error: None,
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::sqlite().await.store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
                async fn $name() {
                    super::$name(super::postgres().await.store).await;
                }
            )*
        }
    };
}

contract!(
    users_round_trip_with_roles,
    email_keys_are_unique,
    updates_are_conditional_on_version,
    a_transaction_that_failed_keeps_nothing,
    one_current_owner_per_org,
    audit_chain_is_sealed_in_order,
    rollback_discards_changes_and_events,
    user_search_escapes_wildcards,
    user_search_finds_exactly_the_substring_matches_through_either_path,
    totp_steps_are_used_once_and_recovery_codes_once,
    lockout_state_round_trips,
    custom_roles_round_trip_with_holders,
    sso_connections_own_their_domains_and_identities_link_once,
    identity_holders_answer_as_the_lookups_one_by_one,
    a_deactivation_sweep_revokes_cancels_and_finds_the_orgs_owned,
    membership_in_answers_for_one_org_as_memberships_of_does,
    a_credential_is_revoked_with_the_credential_that_made_it,
    teams_keep_their_members_and_change_only_at_their_version,
    invitations_and_reset_links_are_used_once,
    settings_keep_one_document_first_secrets_and_one_answer_per_key,
    a_review_keeps_its_items_and_each_decision,
    assets_count_toward_their_org_and_change_only_at_their_version,
    orgs_list_page_and_change_only_at_their_version,
    webhooks_deliver_once_claimed_and_are_remembered_only_until_changed,
    the_outbox_hands_each_message_to_one_worker_and_keeps_its_fate,
    handovers_and_deprovision_records_open_and_close_once,
    trusted_issuers_are_listed_by_name_and_removed_once,
    scheduled_and_dormant_users_are_found_and_admins_counted,
    the_audit_log_filters_archives_from_its_anchor_and_forgets_the_personal,
    scim_keeps_names_groups_and_tokens_beside_the_rows,
    usage_is_taken_within_its_budget_given_back_and_kept_per_period,
    sessions_and_tokens_are_found_by_digest_and_listed_while_live,
    expiry_is_announced_once_and_a_purge_keeps_only_the_owner,
    roles_held_beside_a_role_are_those_of_its_holders,
    a_store_is_ready_tells_of_commits_when_shared_and_reads_to_the_last,
    the_instance_is_counted_by_status_state_and_sign_ins_per_day,
    usage_events_count_once_each_all_or_nothing_and_exactly,
);

/// Revoking a token revokes the tokens it made, theirs in turn, and the impersonations any of
/// them started; revoking a session ends the impersonations started from it; revoking all of a
/// user's credentials ends the impersonations they started. Siblings and strangers keep theirs.
async fn a_credential_is_revoked_with_the_credential_that_made_it(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let later = now + time::Duration::days(1);
    let (admin, target) = (user("admin@lineage.test"), user("target@lineage.test"));
    let mut tx = store.write().await.unwrap();
    for u in [&admin, &target] {
        tx.insert_user(u).await.unwrap();
    }
    let token = |parent: Option<&ApiTokenRow>| ApiTokenRow {
        parent_token_id: parent.map(|p| p.id),
        scopes: vec![steward_core::TokenScope::Impersonate],
        ..token_of(admin.id, &uuid::Uuid::now_v7().to_string(), now)
    };
    let session = |user: &UserRow, parent: Option<&SessionRow>, token: Option<&ApiTokenRow>| SessionRow {
        impersonator_id: (parent.is_some() || token.is_some()).then_some(admin.id),
        parent_id: parent.map(|p| p.id),
        parent_token_id: token.map(|t| t.id),
        ..session_of(user.id, &uuid::Uuid::now_v7().to_string(), now, later - now)
    };
    let root = token(None);
    let child = token(Some(&root));
    let grandchild = token(Some(&child));
    let sibling = token(None);
    let from_grandchild = session(&target, None, Some(&grandchild));
    let from_sibling = session(&target, None, Some(&sibling));
    let own = session(&admin, None, None);
    let from_own = session(&target, Some(&own), None);
    let targets_own = session(&target, None, None);
    for t in [&root, &child, &grandchild, &sibling] {
        tx.insert_api_token(t).await.unwrap();
    }
    for s in [&from_grandchild, &from_sibling, &own, &from_own, &targets_own] {
        tx.insert_session(s).await.unwrap();
    }
    let read = tx.api_token_by_hash(&grandchild.token_hash).await.unwrap().unwrap();
    assert_eq!((read.parent_token_id, read.scopes.clone()), (Some(child.id), grandchild.scopes.clone()));

    tx.revoke_api_token(root.id, now).await.unwrap();
    for t in [&root, &child, &grandchild] {
        assert!(tx.api_token_by_hash(&t.token_hash).await.unwrap().unwrap().revoked_at.is_some(), "{}", t.id);
    }
    assert!(tx.api_token_by_hash(&sibling.token_hash).await.unwrap().unwrap().revoked_at.is_none());
    let revoked = |s: Option<SessionRow>| s.unwrap().revoked_at.is_some();
    assert!(revoked(tx.session(from_grandchild.id).await.unwrap()));
    assert!(!revoked(tx.session(from_sibling.id).await.unwrap()));

    tx.revoke_session(own.id, now).await.unwrap();
    assert!(revoked(tx.session(from_own.id).await.unwrap()));
    assert!(!revoked(tx.session(targets_own.id).await.unwrap()), "the target's own session is not the admin's");

    let again = session(&admin, None, None);
    let impersonating = session(&target, Some(&again), None);
    tx.insert_session(&again).await.unwrap();
    tx.insert_session(&impersonating).await.unwrap();
    tx.revoke_all_credentials(admin.id, now).await.unwrap();
    assert!(revoked(tx.session(impersonating.id).await.unwrap()));
    assert!(revoked(tx.session(from_sibling.id).await.unwrap()));
    assert!(!revoked(tx.session(targets_own.id).await.unwrap()));
    tx.rollback().await.unwrap();
}

/// `membership_in` is `memberships_of` narrowed to one org: current memberships only, dormant
/// ones included with their flag.
async fn membership_in_answers_for_one_org_as_memberships_of_does(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let (member, owner) = (user("member@m.test"), user("owner@m.test"));
    let (kept, left, dormant, never) = (org(owner.id), org(owner.id), org(owner.id), org(owner.id));
    let mut tx = store.write().await.unwrap();
    for u in [&member, &owner] {
        tx.insert_user(u).await.unwrap();
    }
    for o in [&kept, &left, &dormant, &never] {
        tx.insert_org(o).await.unwrap();
        tx.insert_membership(o.id, owner.id, OrgRole::Owner, now).await.unwrap();
    }
    tx.insert_membership(kept.id, member.id, OrgRole::Admin, now).await.unwrap();
    tx.insert_membership(left.id, member.id, OrgRole::Member, now).await.unwrap();
    tx.end_membership(left.id, member.id, now).await.unwrap();
    tx.insert_membership(dormant.id, member.id, OrgRole::Viewer, now).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    let awake = tx.membership_in(dormant.id, member.id).await.unwrap().unwrap();
    assert!(!awake.dormant);
    tx.rollback().await.unwrap();
    // As a deactivation does: the current memberships sleep, the ended one is left alone.
    let mut tx = store.write().await.unwrap();
    tx.set_memberships_dormant(member.id, true).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let all = tx.memberships_of(member.id).await.unwrap();
    for o in [&kept, &left, &dormant, &never] {
        let one = tx.membership_in(o.id, member.id).await.unwrap();
        let from_all = all.iter().find(|m| m.org_id == o.id);
        assert_eq!(
            one.as_ref().map(|m| (m.org_id, m.role, m.dormant)),
            from_all.map(|m| (m.org_id, m.role, m.dormant))
        );
    }
    assert!(tx.membership_in(left.id, member.id).await.unwrap().is_none(), "an ended membership is not current");
    assert!(tx.membership_in(never.id, member.id).await.unwrap().is_none());
    let one = tx.membership_in(dormant.id, member.id).await.unwrap().unwrap();
    assert!(one.dormant && one.role == OrgRole::Viewer && one.org_name == "Acme", "{one:?}");
    assert_eq!(tx.membership_in(kept.id, member.id).await.unwrap().map(|m| m.role), Some(OrgRole::Admin));
    tx.rollback().await.unwrap();
}

async fn users_round_trip_with_roles(store: Arc<dyn Store>) {
    let u = user("Round@example.com");
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    let back = tx.user(u.id).await.unwrap().unwrap();
    assert_eq!(back.email, u.email);
    assert_eq!(back.instance_roles, u.instance_roles);
    assert_eq!(back.created_at.unix_timestamp(), u.created_at.unix_timestamp());
    assert_eq!(tx.user_by_email_key("round@example.com").await.unwrap().unwrap().id, u.id);
}

/// The error of `step`, or else of the commit that follows it: a write may be sent with a later
/// statement (see [`steward_store::Tx`]).
async fn refused(tx: Box<dyn steward_store::Tx>, step: StoreResult<()>) -> StoreError {
    match step {
        Err(e) => {
            tx.rollback().await.unwrap();
            e
        }
        Ok(()) => tx.commit().await.unwrap_err(),
    }
}

async fn email_keys_are_unique(store: Arc<dyn Store>) {
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&user("dup@example.com")).await.unwrap();
    tx.commit().await.unwrap();
    for mut taker in [user("DUP@example.com"), user("dup@EXAMPLE.com")] {
        // Without roles to write, the insert is the transaction's last statement.
        taker.instance_roles.clear();
        let mut tx = store.write().await.unwrap();
        let step = tx.insert_user(&taker).await;
        let err = refused(tx, step).await;
        assert!(matches!(err, StoreError::Conflict(Constraint::EmailTaken)), "{err:?}");
        let mut read = store.read().await.unwrap();
        assert!(read.user(taker.id).await.unwrap().is_none(), "a refused insert was kept");
        read.rollback().await.unwrap();
    }
}

async fn updates_are_conditional_on_version(store: Arc<dyn Store>) {
    let mut u = user("v@example.com");
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    u.name = "First".into();
    tx.update_user(&u).await.unwrap();
    assert_eq!(tx.user(u.id).await.unwrap().unwrap().version, 2, "a transaction reads its own writes");
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    u.name = "Stale".into();
    let step = tx.update_user(&u).await;
    let err = refused(tx, step).await;
    assert!(matches!(err, StoreError::Conflict(Constraint::VersionMismatch)), "{err:?}");
    let mut read = store.read().await.unwrap();
    let kept = read.user(u.id).await.unwrap().unwrap();
    read.rollback().await.unwrap();
    assert_eq!((kept.version, kept.name.as_str()), (2, "First"));
}

/// A transaction that met an error commits nothing of what it did before it either.
async fn a_transaction_that_failed_keeps_nothing(store: Arc<dyn Store>) {
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&user("first@example.com")).await.unwrap();
    tx.commit().await.unwrap();
    let (before, mut taker) = (user("before@example.com"), user("FIRST@example.com"));
    taker.instance_roles.clear();
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&before).await.unwrap();
    let step = tx.insert_user(&taker).await;
    let err = refused(tx, step).await;
    assert!(matches!(err, StoreError::Conflict(Constraint::EmailTaken)), "{err:?}");
    let mut read = store.read().await.unwrap();
    assert!(read.user(before.id).await.unwrap().is_none(), "the write before the error was kept");
    read.rollback().await.unwrap();
}

async fn one_current_owner_per_org(store: Arc<dyn Store>) {
    let (a, b) = (user("a@o.test"), user("b@o.test"));
    let o = org(a.id);
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&a).await.unwrap();
    tx.insert_user(&b).await.unwrap();
    tx.insert_org(&o).await.unwrap();
    tx.insert_membership(o.id, a.id, OrgRole::Owner, now).await.unwrap();
    tx.insert_membership(o.id, b.id, OrgRole::Member, now).await.unwrap();
    tx.commit().await.unwrap();
    // A refused write leaves its transaction unusable on some backends: each gets its own.
    let mut tx = store.write().await.unwrap();
    tx.end_membership(o.id, b.id, now).await.unwrap();
    let err = tx.insert_membership(o.id, b.id, OrgRole::Owner, now).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::OwnerTaken)), "{err:?}");
    tx.rollback().await.unwrap();
    let mut tx = store.write().await.unwrap();
    let err = tx.insert_membership(o.id, b.id, OrgRole::Viewer, now).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::MembershipExists)), "{err:?}");
    tx.rollback().await.unwrap();
    let mut tx = store.write().await.unwrap();
    tx.end_membership(o.id, b.id, now).await.unwrap();
    tx.insert_membership(o.id, b.id, OrgRole::Viewer, now).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    let members = tx.members(o.id).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().any(|m| m.user_id == b.id && m.role == OrgRole::Viewer));
}

async fn audit_chain_is_sealed_in_order(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    for batch in 0..3 {
        let mut tx = store.write().await.unwrap();
        let drafts = (0..4)
            .map(|i| {
                AuditDraft::new("test.event", Actor::SYSTEM, TargetType::User, format!("{batch}-{i}"))
                    .detail(json!({"i": i}))
                    .personal(json!({"email": "p@example.com"}))
            })
            .collect();
        let sealed = tx.append_audit(drafts, now).await.unwrap();
        assert_eq!(sealed.first().unwrap().seq, batch * 4 + 1);
        tx.commit().await.unwrap();
    }
    let check: ChainCheck = store.verify_audit().await.unwrap();
    assert_eq!((check.checked(), check.first_bad_seq()), (12, None));
    let mut tx = store.read().await.unwrap();
    let chain = tx.audit_chain(0, 100).await.unwrap();
    assert!(chain.windows(2).all(|w| w[1].prev_hash == w[0].hash));
}

async fn rollback_discards_changes_and_events(store: Arc<dyn Store>) {
    let u = user("gone@example.com");
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    tx.append_audit(
        vec![AuditDraft::new("user.created", Actor::SYSTEM, TargetType::User, u.id)],
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.read().await.unwrap();
    assert!(tx.user(u.id).await.unwrap().is_none());
    assert!(tx.audit_chain(0, 10).await.unwrap().is_empty());
}

async fn user_search_escapes_wildcards(store: Arc<dyn Store>) {
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&user("under_score@example.com")).await.unwrap();
    tx.insert_user(&user("underXscore@example.com")).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    let found = tx.list_users(&UserFilter { q: Some("UNDER_".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].email, "under_score@example.com");
}

async fn totp_steps_are_used_once_and_recovery_codes_once(store: Arc<dyn Store>) {
    let u = user("totp@example.com");
    let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    let row = TotpRow {
        user_id: u.id,
        secret_sealed: "v1.sealed".into(),
        confirmed_at: None,
        last_step: None,
        created_at: now,
    };
    tx.put_totp(&row).await.unwrap();
    assert_eq!(tx.totp(u.id).await.unwrap().unwrap(), row);
    tx.confirm_totp(u.id, now, 100).await.unwrap();
    assert!(!tx.use_totp_step(u.id, 100).await.unwrap(), "the confirming step is used");
    assert!(!tx.use_totp_step(u.id, 99).await.unwrap());
    assert!(tx.use_totp_step(u.id, 101).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 101).await.unwrap());
    assert_eq!(tx.totp(u.id).await.unwrap().unwrap().last_step, Some(101));
    tx.replace_recovery_codes(u.id, &["h1".into(), "h2".into()], now).await.unwrap();
    assert!(tx.use_recovery_code(u.id, "h1", now).await.unwrap());
    assert!(!tx.use_recovery_code(u.id, "h1", now).await.unwrap());
    assert!(!tx.use_recovery_code(u.id, "nope", now).await.unwrap());
    assert_eq!(tx.recovery_codes_left(u.id).await.unwrap(), 1);
    // Starting over replaces the enrolment; deleting removes it with its codes.
    tx.put_totp(&row).await.unwrap();
    assert_eq!(tx.totp(u.id).await.unwrap().unwrap().confirmed_at, None);
    assert!(tx.delete_totp(u.id).await.unwrap());
    assert!(!tx.delete_totp(u.id).await.unwrap());
    assert_eq!(tx.recovery_codes_left(u.id).await.unwrap(), 0);
    tx.commit().await.unwrap();
}

async fn lockout_state_round_trips(store: Arc<dyn Store>) {
    let u = user("lock@example.com");
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    assert_eq!(tx.lockout(u.id).await.unwrap(), LockoutState::default());
    let until = OffsetDateTime::from_unix_timestamp(now.unix_timestamp() + 900).unwrap();
    tx.put_lockout(u.id, &LockoutState { failures: 4, locked_until: Some(until) }, now).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    let back = tx.lockout(u.id).await.unwrap();
    assert_eq!((back.failures, back.locked_until), (4, Some(until)));
    tx.rollback().await.unwrap();
    let mut tx = store.write().await.unwrap();
    tx.put_lockout(u.id, &LockoutState::default(), now).await.unwrap();
    assert_eq!(tx.lockout(u.id).await.unwrap(), LockoutState::default());
}

async fn custom_roles_round_trip_with_holders(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let role = RoleRow {
        name: "helpdesk".into(),
        permissions: vec![Permission::SessionsRevoke, Permission::UsersRead],
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut tx = store.write().await.unwrap();
    tx.insert_custom_role(&role).await.unwrap();
    let err = tx.insert_custom_role(&role).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::RoleExists)), "{err:?}");
    tx.rollback().await.unwrap();
    let mut tx = store.write().await.unwrap();
    tx.insert_custom_role(&role).await.unwrap();
    let mut u = user("holder@example.com");
    u.status = UserStatus::Deactivated;
    u.instance_roles = vec![InstanceRole::parse("helpdesk").unwrap()];
    tx.insert_user(&u).await.unwrap();
    assert_eq!(tx.role_holders("helpdesk").await.unwrap(), 1);
    let mut changed = tx.custom_role("helpdesk").await.unwrap().unwrap();
    assert_eq!(changed.permissions, role.permissions);
    changed.permissions = vec![Permission::AuditRead];
    tx.update_custom_role(&changed).await.unwrap();
    let err = tx.update_custom_role(&changed).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::VersionMismatch)));
    let all = tx.custom_roles().await.unwrap();
    assert_eq!((all.len(), all[0].version, all[0].permissions.clone()), (1, 2, vec![Permission::AuditRead]));
    tx.set_instance_roles(u.id, &[]).await.unwrap();
    assert_eq!(tx.role_holders("helpdesk").await.unwrap(), 0);
    tx.delete_custom_role("helpdesk").await.unwrap();
    assert!(tx.custom_role("helpdesk").await.unwrap().is_none());
    tx.commit().await.unwrap();
}

async fn sso_connections_own_their_domains_and_identities_link_once(store: Arc<dyn Store>) {
    // Stored times keep microseconds; a whole second compares equal after the round trip.
    let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let owner = user("owner@acme.test");
    let acme = org(owner.id);
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&owner).await.unwrap();
    tx.insert_org(&acme).await.unwrap();
    let mut c = SsoConnectionRow {
        id: uuid::Uuid::now_v7(),
        name: "IdP".into(),
        org_id: Some(acme.id),
        issuer: "https://idp.test".into(),
        client_id: "steward".into(),
        client_secret_sealed: "v1.sealed".into(),
        scopes: vec!["openid".into()],
        domains: vec!["acme.test".into(), "acme.example".into()],
        claims: SsoClaims { email: "email".into(), name: "name".into(), groups: "groups".into() },
        role_mapping: vec![RoleMappingRow { group: "admins".into(), org_id: acme.id, role: OrgRole::Admin }],
        jit: true,
        enforced: false,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    tx.insert_sso_connection(&c).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.sso_connection_for_domain("acme.example").await.unwrap().unwrap(), c);
    c.domains = vec!["acme.test".into()];
    c.enforced = true;
    tx.update_sso_connection(&c).await.unwrap();
    assert!(tx.sso_connection_for_domain("acme.example").await.unwrap().is_none());
    let read = tx.sso_connection(c.id).await.unwrap().unwrap();
    assert_eq!((read.version, read.enforced), (2, true));
    assert!(matches!(tx.update_sso_connection(&c).await, Err(StoreError::Conflict(Constraint::VersionMismatch))));
    let mut rival = c.clone();
    rival.id = uuid::Uuid::now_v7();
    assert!(tx.insert_sso_connection(&rival).await.is_err(), "a domain belongs to one connection");
    tx.rollback().await.unwrap();

    let mut tx = store.write().await.unwrap();
    tx.link_external_identity("https://idp.test", "sub-1", owner.id, now).await.unwrap();
    let other = user("other@acme.test");
    tx.insert_user(&other).await.unwrap();
    tx.link_external_identity("https://idp.test", "sub-1", other.id, now).await.unwrap();
    assert_eq!(tx.external_identity("https://idp.test", "sub-1").await.unwrap(), Some(owner.id));
    assert_eq!(tx.external_identity("https://other.test", "sub-1").await.unwrap(), None);
    assert!(tx.delete_sso_connection(c.id).await.unwrap());
    assert!(tx.sso_connection_for_domain("acme.test").await.unwrap().is_none());
    assert!(tx.sso_connections().await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

/// `q` is a case-insensitive substring of email or name: a rare fragment (read through the
/// trigram index on SQLite), a common one (more matches than the index path takes), short ones,
/// quotes and wildcards, and a rename, each compared with a filter over all users in memory.
async fn user_search_finds_exactly_the_substring_matches_through_either_path(store: Arc<dyn Store>) {
    let names = ["Ada Lovelace", "Grace Hopper", "Katherine Johnson", "Émile Zola", "Quote \"Me\" O'Neil"];
    let mut users = Vec::new();
    let mut tx = store.write().await.unwrap();
    for i in 0..2_300 {
        let mut u = user(&format!("Member{i:04}@Common.example"));
        u.name = format!("{} {i}", names[i % names.len()]);
        tx.insert_user(&u).await.unwrap();
        users.push(u);
    }
    tx.commit().await.unwrap();
    let search = |q: &'static str| {
        let store = store.clone();
        async move {
            let mut found = Vec::new();
            let mut before = None;
            loop {
                let mut tx = store.read().await.unwrap();
                let page = tx
                    .list_users(&UserFilter { q: Some(q.into()), before, limit: 500, ..Default::default() })
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                let Some(last) = page.last() else { break };
                before = Some(last.id);
                found.extend(page.into_iter().map(|u| u.id));
            }
            found.sort();
            found
        }
    };
    let expected = |users: &[UserRow], q: &str| {
        let q = q.to_lowercase();
        let mut ids: Vec<UserId> = users
            .iter()
            .filter(|u| u.email_key.contains(&q) || u.name.to_lowercase().contains(&q))
            .map(|u| u.id)
            .collect();
        ids.sort();
        ids
    };
    for q in [
        "member0042@",
        "LOVELACE 1",
        "hopper 2",
        "common.example",
        "er",
        "a",
        "\"me\"",
        "o'neil",
        "zz_none",
        "ohnson 22",
    ] {
        let got = search(q).await;
        assert_eq!(got, expected(&users, q), "q = {q}");
    }
    assert_eq!(search("common.example").await.len(), 2_300, "the common fragment pages through everyone");

    // A rename moves the user in the index.
    let mut renamed = users[7].clone();
    renamed.name = "Dorothy Vaughan".into();
    let mut tx = store.write().await.unwrap();
    tx.update_user(&renamed).await.unwrap();
    tx.commit().await.unwrap();
    users[7] = UserRow { version: renamed.version + 1, ..renamed };
    assert_eq!(search("vaughan").await, vec![users[7].id]);
    assert_eq!(search("hopper 7").await, expected(&users, "hopper 7"));
}

async fn identity_holders_answer_as_the_lookups_one_by_one(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await.unwrap();
    let plain = user("plain@x.test");
    let named = user("named@x.test");
    // A userName that is another address than the user's email.
    let alias = user("alias@x.test");
    let retired = user("now@x.test");
    let mut anonymized = user("anonymized@x.test");
    anonymized.email_key = "anon:digest".into();
    // One user's email is another's userName: the email wins.
    let owner = user("both@x.test");
    let taker = user("taker@x.test");
    for u in [&plain, &named, &alias, &retired, &anonymized, &owner, &taker] {
        tx.insert_user(u).await.unwrap();
    }
    let scim = |u: &UserRow, name: &str| ScimUserRow {
        user_id: u.id,
        user_name: Some(name.into()),
        external_id: None,
        attrs: json!({}),
        hidden_at: None,
        updated_at: now,
    };
    tx.put_scim_user(&scim(&named, "Bee")).await.unwrap();
    tx.put_scim_user(&scim(&alias, "plain.alias@x.test")).await.unwrap();
    tx.put_scim_user(&scim(&owner, "owner")).await.unwrap();
    tx.put_scim_user(&scim(&taker, "both@x.test")).await.unwrap();
    tx.retire_email(retired.id, "old@x.test", now).await.unwrap();
    let id = |u: &Option<UserRow>| u.as_ref().map(|u| u.id);
    // The userName key, the email key, the anonymized key; who holds the name, who the email.
    type Case<'a> = (Option<&'a str>, &'a str, &'a str, Option<UserId>, Option<UserId>);
    let cases: [Case; 9] = [
        (Some("both@x.test"), "both@x.test", "anon:none", Some(taker.id), Some(owner.id)),
        (Some("plain@x.test"), "plain@x.test", "anon:none", Some(plain.id), Some(plain.id)),
        (Some("bee"), "named@x.test", "anon:none", Some(named.id), Some(named.id)),
        // An email key that is someone's userName.
        (None, "plain.alias@x.test", "anon:none", None, Some(alias.id)),
        (Some("bee"), "bee", "anon:none", Some(named.id), Some(named.id)),
        (None, "old@x.test", "anon:none", None, Some(retired.id)),
        (None, "gone@x.test", "anon:digest", None, Some(anonymized.id)),
        (Some("plain@x.test"), "named@x.test", "anon:digest", Some(plain.id), Some(named.id)),
        (Some("nobody"), "nobody@x.test", "anon:none", None, None),
    ];
    for (name, email, anon, want_name, want_email) in cases {
        let together = tx.identity_holders(name, email, anon).await.unwrap();
        let apart = steward_store::identity_holders_one_by_one(tx.as_mut(), name, email, anon).await.unwrap();
        assert_eq!((id(&together.0), id(&together.1)), (want_name, want_email), "{name:?} {email}");
        assert_eq!((id(&apart.0), id(&apart.1)), (want_name, want_email), "one by one: {name:?} {email}");
    }
    tx.rollback().await.unwrap();
}

async fn a_deactivation_sweep_revokes_cancels_and_finds_the_orgs_owned(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let later = now + time::Duration::days(1);
    let (leaver, other) = (user("leaver@s.test"), user("other@s.test"));
    let owned = org(leaver.id);
    let mut tx = store.write().await.unwrap();
    for u in [&leaver, &other] {
        tx.insert_user(u).await.unwrap();
    }
    tx.insert_org(&owned).await.unwrap();
    tx.insert_membership(owned.id, leaver.id, OrgRole::Owner, now).await.unwrap();
    tx.insert_membership(owned.id, other.id, OrgRole::Member, now).await.unwrap();
    tx.insert_org(&org(other.id)).await.unwrap();
    let session = |u: &UserRow, revoked: Option<OffsetDateTime>| SessionRow {
        revoked_at: revoked,
        ..session_of(u.id, &uuid::Uuid::now_v7().to_string(), now, later - now)
    };
    let token = |u: &UserRow| token_of(u.id, &uuid::Uuid::now_v7().to_string(), now);
    let invitation = |u: &UserRow, accepted: Option<OffsetDateTime>| InvitationRow {
        id: uuid::Uuid::now_v7(),
        user_id: u.id,
        org_id: None,
        role: None,
        team_ids: vec![],
        token_hash: uuid::Uuid::now_v7().to_string(),
        invited_by: None,
        created_at: now,
        expires_at: later,
        accepted_at: accepted,
        cancelled_at: None,
    };
    // Two live sessions, one already revoked; a token; a pending and an accepted invitation.
    for s in [session(&leaver, None), session(&leaver, None), session(&leaver, Some(now)), session(&other, None)] {
        tx.insert_session(&s).await.unwrap();
    }
    tx.insert_api_token(&token(&leaver)).await.unwrap();
    tx.insert_api_token(&token(&other)).await.unwrap();
    for i in [invitation(&leaver, None), invitation(&leaver, Some(now)), invitation(&other, None)] {
        tx.insert_invitation(&i).await.unwrap();
    }
    let (revoked, cancelled, orgs) = tx.deactivation_sweep(leaver.id, now).await.unwrap();
    assert_eq!((revoked, cancelled), (3, 1));
    assert_eq!(orgs.iter().map(|o| o.id).collect::<Vec<_>>(), [owned.id]);
    let dormant = |members: Vec<steward_store::MemberRow>| {
        members.into_iter().map(|m| (m.user_id == leaver.id, m.dormant)).collect::<Vec<_>>()
    };
    assert_eq!(dormant(tx.members(owned.id).await.unwrap()), [(true, true), (false, false)]);
    let (revoked, cancelled, orgs) = tx.deactivation_sweep(leaver.id, now).await.unwrap();
    assert_eq!((revoked, cancelled, orgs.len()), (0, 0, 1), "nothing is swept twice");
    // The other user keeps everything.
    let (revoked, cancelled, _) = tx.deactivation_sweep(other.id, now).await.unwrap();
    assert_eq!((revoked, cancelled), (2, 1));
    tx.rollback().await.unwrap();
}

/// A user and an org it owns, stored; the org is `Acme` with the default license.
async fn owned_org(tx: &mut Box<dyn steward_store::Tx>, email: &str) -> (UserRow, OrgRow) {
    let now = OffsetDateTime::now_utc();
    let owner = user(email);
    tx.insert_user(&owner).await.unwrap();
    let o = org(owner.id);
    tx.insert_org(&o).await.unwrap();
    tx.insert_membership(o.id, owner.id, OrgRole::Owner, now).await.unwrap();
    (owner, o)
}

/// Stored times keep microseconds: a whole second compares equal after the round trip.
fn second() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

async fn teams_keep_their_members_and_change_only_at_their_version(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "team-owner@example.com").await;
    let team =
        TeamRow { id: TeamId::new(), org_id: o.id, name: "Ops".into(), created_at: now, updated_at: now, version: 1 };
    tx.insert_team(&team).await.unwrap();
    assert_eq!(tx.team(team.id).await.unwrap(), Some(team.clone()));
    assert_eq!(tx.teams_of_org(o.id, None, 10).await.unwrap(), vec![team.clone()]);
    assert_eq!(tx.team_count(o.id).await.unwrap(), 1);
    let renamed = TeamRow { name: "Operations".into(), ..team.clone() };
    tx.update_team(&renamed).await.unwrap();
    let err = tx.update_team(&renamed).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::VersionMismatch)), "{err:?}");
    assert_eq!(tx.team(team.id).await.unwrap().map(|t| (t.name, t.version)), Some(("Operations".into(), 2)));
    tx.put_team_member(team.id, owner.id, TeamRole::TeamAdmin, now).await.unwrap();
    tx.put_team_member(team.id, owner.id, TeamRole::TeamViewer, now).await.unwrap();
    let expected =
        TeamMemberRow { team_id: team.id, org_id: o.id, user_id: owner.id, role: TeamRole::TeamViewer, dormant: false };
    assert_eq!(tx.team_members(team.id).await.unwrap(), vec![expected.clone()]);
    assert_eq!(tx.teams_of_user(owner.id).await.unwrap(), vec![expected]);
    tx.end_team_member(team.id, owner.id, now).await.unwrap();
    assert!(tx.team_members(team.id).await.unwrap().is_empty());
    assert!(tx.teams_of_user(owner.id).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

async fn invitations_and_reset_links_are_used_once(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "inviter@example.com").await;
    let invited = user("invited@example.com");
    tx.insert_user(&invited).await.unwrap();
    let invitation = |hash: &str| InvitationRow {
        id: uuid::Uuid::now_v7(),
        user_id: invited.id,
        org_id: Some(o.id),
        role: Some(OrgRole::Member),
        team_ids: vec![],
        token_hash: hash.into(),
        invited_by: Some(owner.id),
        created_at: now,
        expires_at: now + time::Duration::days(7),
        accepted_at: None,
        cancelled_at: None,
    };
    let (first, second_one) = (invitation("hash-1"), invitation("hash-2"));
    tx.insert_invitation(&first).await.unwrap();
    tx.insert_invitation(&second_one).await.unwrap();
    assert_eq!(tx.invitation_by_hash("hash-1").await.unwrap(), Some(first.clone()));
    assert_eq!(tx.invitation_by_hash("nobody").await.unwrap(), None);
    let other_org = OrgRow { id: OrgId::new(), ..o.clone() };
    tx.insert_org(&other_org).await.unwrap();
    let elsewhere = InvitationRow { org_id: Some(other_org.id), ..invitation("hash-3") };
    let lapsed = InvitationRow { expires_at: now, ..invitation("hash-4") };
    let to_instance = InvitationRow { org_id: None, role: None, ..invitation("hash-5") };
    for i in [&elsewhere, &lapsed, &to_instance] {
        tx.insert_invitation(i).await.unwrap();
    }
    let ids = |list: Vec<InvitationRow>| list.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let of_org = ids(tx.open_invitations(Some(o.id), None, now, None, 10).await.unwrap());
    assert_eq!(of_org, vec![second_one.id, first.id], "open ones, newest first; not lapsed, not another org's");
    let of_user = ids(tx.open_invitations(None, Some(invited.id), now, None, 10).await.unwrap());
    assert_eq!(of_user, vec![elsewhere.id, second_one.id, first.id], "to orgs only");
    assert_eq!(
        ids(tx.open_invitations(Some(o.id), Some(owner.id), now, None, 10).await.unwrap()),
        Vec::<uuid::Uuid>::new()
    );
    assert_eq!(ids(tx.open_invitations(None, Some(invited.id), now, None, 1).await.unwrap()), vec![elsewhere.id]);
    let older = ids(tx.open_invitations(None, Some(invited.id), now, Some(elsewhere.id), 10).await.unwrap());
    assert_eq!(older, vec![second_one.id, first.id], "the next page");
    assert_eq!(tx.invitation(elsewhere.id).await.unwrap(), Some(elsewhere.clone()));
    assert_eq!(tx.invitation(uuid::Uuid::now_v7()).await.unwrap(), None);
    tx.cancel_invitation(elsewhere.id, now).await.unwrap();
    assert!(tx.cancel_invitation(elsewhere.id, now).await.is_err(), "cancelled once");
    assert_eq!(tx.invitation(elsewhere.id).await.unwrap().and_then(|i| i.cancelled_at), Some(now));
    tx.accept_invitation(first.id, now).await.unwrap();
    assert!(tx.accept_invitation(first.id, now).await.is_err(), "an invitation is accepted once");
    assert!(tx.cancel_invitation(first.id, now).await.is_err(), "an accepted invitation is not cancelled");
    assert_eq!(tx.invitation_by_hash("hash-1").await.unwrap().and_then(|i| i.accepted_at), Some(now));
    assert_eq!(tx.cancel_invitations_of(invited.id, now).await.unwrap(), 3, "only the open ones are cancelled");
    assert_eq!(tx.invitation_by_hash("hash-2").await.unwrap().and_then(|i| i.cancelled_at), Some(now));
    let reset = |hash: &str| ResetRow {
        id: uuid::Uuid::now_v7(),
        user_id: invited.id,
        token_hash: hash.into(),
        created_at: now,
        expires_at: now + time::Duration::hours(1),
        used_at: None,
    };
    let (used, left) = (reset("reset-1"), reset("reset-2"));
    tx.insert_reset(&used).await.unwrap();
    tx.insert_reset(&left).await.unwrap();
    assert_eq!(tx.reset_by_hash("reset-1").await.unwrap(), Some(used.clone()));
    tx.use_reset(used.id, now).await.unwrap();
    assert!(tx.use_reset(used.id, now).await.is_err(), "a reset link is used once");
    assert_eq!(tx.void_resets_of(invited.id, now).await.unwrap(), 1, "only the unused one is voided");
    assert!(tx.reset_by_hash("reset-2").await.unwrap().and_then(|r| r.used_at).is_some());
    tx.commit().await.unwrap();
}

async fn settings_keep_one_document_first_secrets_and_one_answer_per_key(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.instance_doc().await.unwrap(), None);
    tx.put_instance_doc(&json!({"name": "Steward"}), 1).await.unwrap();
    tx.put_instance_doc(&json!({"name": "Acme Cloud"}), 2).await.unwrap();
    assert_eq!(tx.instance_doc().await.unwrap(), Some((json!({"name": "Acme Cloud"}), 2)));
    assert_eq!(tx.instance_secret("signing").await.unwrap(), None);
    assert_eq!(tx.ensure_instance_secret("signing", "first", now).await.unwrap(), "first");
    assert_eq!(tx.ensure_instance_secret("signing", "second", now).await.unwrap(), "first", "the first one stays");
    assert_eq!(tx.instance_secret("signing").await.unwrap(), Some("first".into()));
    assert_eq!(tx.idempotent_response("org-1", "key").await.unwrap(), None);
    let answer = IdempotentResponse { request_hash: "h".into(), status: 201, body: "{}".into() };
    tx.save_idempotent_response("org-1", "key", &answer, now).await.unwrap();
    assert_eq!(tx.idempotent_response("org-1", "key").await.unwrap(), Some(answer.clone()));
    assert_eq!(tx.idempotent_response("org-2", "key").await.unwrap(), None, "keys are per scope");
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    let err = tx.save_idempotent_response("org-1", "key", &answer, now).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::IdempotencyKey)), "{err:?}");
    tx.rollback().await.unwrap();
}

async fn a_review_keeps_its_items_and_each_decision(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "reviewer@example.com").await;
    let review = ReviewRow {
        id: uuid::Uuid::now_v7(),
        org_id: Some(o.id),
        inactive_days: 90,
        created_at: now,
        created_by: Some(owner.id),
        completed_at: None,
        completed_by: None,
    };
    let item = ReviewItemRow {
        review_id: review.id,
        user_id: owner.id,
        email: owner.email.clone(),
        last_login_at: None,
        roles: vec!["owner".into()],
        recommendation: "keep".into(),
        decision: None,
    };
    tx.insert_review(&review, std::slice::from_ref(&item)).await.unwrap();
    assert_eq!(tx.review(review.id).await.unwrap(), Some((review.clone(), vec![item.clone()])));
    tx.decide(review.id, owner.id, "keep").await.unwrap();
    assert!(tx.decide(review.id, UserId::new(), "keep").await.is_err(), "no item for that user");
    tx.complete_review(review.id, owner.id, now).await.unwrap();
    assert!(tx.complete_review(review.id, owner.id, now).await.is_err(), "a review completes once");
    let (done, items) = tx.review(review.id).await.unwrap().unwrap();
    assert_eq!((done.completed_at, done.completed_by), (Some(now), Some(owner.id)));
    assert_eq!(items[0].decision.as_deref(), Some("keep"));
    assert_eq!(tx.review(uuid::Uuid::now_v7()).await.unwrap(), None);
    tx.commit().await.unwrap();
}

async fn assets_count_toward_their_org_and_change_only_at_their_version(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "assets@example.com").await;
    let asset = |kind: &str, size: u64| AssetRow {
        id: uuid::Uuid::now_v7(),
        org_id: o.id,
        kind: kind.into(),
        name: kind.into(),
        team_id: None,
        size_bytes: size,
        created_by: Some(owner.id),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let (store_a, scenario, file) = (asset("data_store", 100), asset("scenario", 0), asset("file", 7));
    for a in [&store_a, &scenario, &file] {
        tx.insert_asset(a).await.unwrap();
    }
    assert_eq!(tx.asset(scenario.id).await.unwrap(), Some(scenario.clone()));
    let newest_first: Vec<_> = tx.assets_of_org(o.id, None, 10).await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(newest_first, vec![file.id, scenario.id, store_a.id]);
    let after: Vec<_> = tx.assets_of_org(o.id, Some(file.id), 1).await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(after, vec![scenario.id]);
    let grown = AssetRow { size_bytes: 300, ..store_a.clone() };
    tx.update_asset(&grown).await.unwrap();
    let err = tx.update_asset(&grown).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::VersionMismatch)), "{err:?}");
    let totals = tx.asset_totals(o.id).await.unwrap();
    assert_eq!((totals.data_stores, totals.data_store_bytes, totals.scenarios, totals.file_bytes), (1, 300, 1, 7));
    assert_eq!(tx.seats_in_use(o.id, now).await.unwrap(), 1, "the owner holds the one seat");
    tx.commit().await.unwrap();
}

async fn orgs_list_page_and_change_only_at_their_version(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "lister@example.com").await;
    let member = user("member@example.com");
    tx.insert_user(&member).await.unwrap();
    tx.insert_membership(o.id, member.id, OrgRole::Member, now).await.unwrap();
    tx.set_membership_role(o.id, member.id, OrgRole::Admin).await.unwrap();
    let page = tx.members_page(o.id, None, 10).await.unwrap();
    let mut ids = vec![owner.id, member.id];
    ids.sort_by_key(|id| id.to_string());
    assert_eq!(page.iter().map(|m| m.user_id).collect::<Vec<_>>(), ids, "in user id order");
    assert_eq!(page.iter().find(|m| m.user_id == member.id).map(|m| m.role), Some(OrgRole::Admin));
    assert_eq!(tx.member(o.id, member.id).await.unwrap().as_ref(), page.iter().find(|m| m.user_id == member.id));
    assert_eq!(tx.member(o.id, UserId::new()).await.unwrap(), None);
    let rest = tx.members_page(o.id, Some(ids[0]), 10).await.unwrap();
    assert_eq!(rest.iter().map(|m| m.user_id).collect::<Vec<_>>(), vec![ids[1]]);
    // Newest first: a later member, two who joined at one instant (by user id), a member gone.
    let (later, gone) = (user("later@example.com"), user("gone@example.com"));
    let (twin_a, twin_b) = (user("twin-a@example.com"), user("twin-b@example.com"));
    for u in [&later, &gone, &twin_a, &twin_b] {
        tx.insert_user(u).await.unwrap();
    }
    let at = |s: i64| now + time::Duration::seconds(s);
    tx.insert_membership(o.id, later.id, OrgRole::Member, at(1)).await.unwrap();
    tx.insert_membership(o.id, gone.id, OrgRole::Member, at(2)).await.unwrap();
    tx.end_membership(o.id, gone.id, at(3)).await.unwrap();
    tx.insert_membership(o.id, twin_a.id, OrgRole::Viewer, at(4)).await.unwrap();
    tx.insert_membership(o.id, twin_b.id, OrgRole::Viewer, at(4)).await.unwrap();
    let mut twins = [twin_a.id, twin_b.id];
    twins.sort_by_key(|id| std::cmp::Reverse(id.to_string()));
    let first = tx.members_newest_first(o.id, None, 2).await.unwrap();
    assert_eq!(first.iter().map(|m| m.user_id).collect::<Vec<_>>(), twins.to_vec(), "the latest, by user id");
    let last = first.last().map(|m| (m.created_at, m.user_id));
    let next = tx.members_newest_first(o.id, last, 10).await.unwrap();
    assert_eq!(next.first().map(|m| m.user_id), Some(later.id), "a member gone is not listed");
    assert_eq!(next.len(), 3, "then the two who joined first: {next:?}");
    assert_eq!(tx.org(o.id).await.unwrap().map(|x| x.name), Some("Acme".into()));
    let renamed = OrgRow { name: "Acme Corp".into(), ..o.clone() };
    tx.update_org(&renamed).await.unwrap();
    let err = tx.update_org(&renamed).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::VersionMismatch)), "{err:?}");
    let mine = tx.list_orgs(&OrgFilter { member: Some(member.id), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(mine.iter().map(|x| (x.id, x.name.clone())).collect::<Vec<_>>(), vec![(o.id, "Acme Corp".into())]);
    let stranger = tx.list_orgs(&OrgFilter { member: Some(UserId::new()), limit: 10, ..Default::default() }).await;
    assert!(stranger.unwrap().is_empty());
    tx.commit().await.unwrap();
}

async fn webhooks_deliver_once_claimed_and_are_remembered_only_until_changed(store: Arc<dyn Store>) {
    let now = second();
    let hook = WebhookRow {
        id: uuid::Uuid::now_v7(),
        url: "https://hooks.example.com/steward".into(),
        events: vec!["*".into()],
        secret: "whsec_x".into(),
        created_at: now,
        created_by: None,
        disabled_at: None,
    };
    let mut tx = store.write().await.unwrap();
    assert!(tx.webhooks().await.unwrap().is_empty());
    tx.insert_webhook(&hook).await.unwrap();
    assert_eq!(tx.webhooks().await.unwrap(), vec![hook.clone()], "a transaction reads the webhook it wrote");
    let delivery = DeliveryRow {
        id: uuid::Uuid::now_v7(),
        webhook_id: hook.id,
        event_type: "user.created".into(),
        payload: "{}".into(),
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
        delivered_at: None,
        failed_at: None,
        last_status: None,
        last_error: None,
    };
    tx.enqueue_delivery(&delivery).await.unwrap();
    tx.commit().await.unwrap();
    // Read twice from fresh transactions: kept or not, the answer is what is stored.
    for _ in 0..2 {
        let mut tx = store.write().await.unwrap();
        assert_eq!(tx.webhooks().await.unwrap(), vec![hook.clone()]);
        tx.rollback().await.unwrap();
    }
    let lease = now + time::Duration::minutes(1);
    let mut tx = store.write().await.unwrap();
    let claimed = tx.claim_deliveries(now, lease, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![delivery.id]);
    assert!(tx.claim_deliveries(now, lease, 10).await.unwrap().is_empty(), "a claimed delivery is leased");
    tx.record_attempt(delivery.id, Some(200), None, Some(now), None, None).await.unwrap();
    let done = tx.delivery(delivery.id).await.unwrap().unwrap();
    assert_eq!((done.delivered_at, done.last_status, done.attempts), (Some(now), Some(200), 1));
    assert_eq!(tx.deliveries_of(hook.id, None, 10).await.unwrap(), vec![done]);
    tx.redeliver(delivery.id, now).await.unwrap();
    assert_eq!(tx.claim_deliveries(lease, lease + time::Duration::minutes(1), 10).await.unwrap().len(), 1);
    tx.disable_webhook(hook.id, now).await.unwrap();
    assert!(tx.disable_webhook(hook.id, now).await.is_err(), "a webhook is disabled once");
    assert!(tx.webhooks().await.unwrap().is_empty());
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert!(tx.webhooks().await.unwrap().is_empty(), "the disabled webhook is not remembered");
    tx.rollback().await.unwrap();
}

async fn the_outbox_hands_each_message_to_one_worker_and_keeps_its_fate(store: Arc<dyn Store>) {
    let now = second();
    let message = |to: &str| message_to(to, now);
    let (sent, dropped) = (message("a@example.com"), message("b@example.com"));
    // One of an org's own emails keeps the org it is about.
    let retried = OutboxRow { org_id: Some(steward_core::OrgId::new()), ..message("c@example.com") };
    let mut tx = store.write().await.unwrap();
    for m in [&sent, &dropped, &retried] {
        tx.enqueue(m).await.unwrap();
    }
    tx.commit().await.unwrap();
    let lease = now + time::Duration::minutes(1);
    let mut tx = store.write().await.unwrap();
    let mut claimed: Vec<_> = tx.claim_due(now, lease, 10).await.unwrap().into_iter().map(|m| m.id).collect();
    claimed.sort();
    assert_eq!(claimed, vec![sent.id, dropped.id, retried.id]);
    assert!(tx.claim_due(now, lease, 10).await.unwrap().is_empty(), "a claimed message is leased");
    tx.mark_sent(sent.id, now).await.unwrap();
    tx.mark_dropped(dropped.id, now, "the recipient is deactivated").await.unwrap();
    let later = now + time::Duration::minutes(5);
    tx.mark_retry(retried.id, later, "connection refused").await.unwrap();
    let a = tx.outbox_for("a@example.com").await.unwrap();
    assert_eq!((a.len(), a[0].sent_at, a[0].attempts), (1, Some(now), 1));
    let b = tx.outbox_for("b@example.com").await.unwrap();
    assert_eq!((b[0].dropped_at, b[0].last_error.as_deref()), (Some(now), Some("the recipient is deactivated")));
    let c = tx.outbox_for("c@example.com").await.unwrap();
    assert_eq!((c[0].next_attempt_at, c[0].last_error.as_deref()), (later, Some("connection refused")));
    assert!(tx.claim_due(now, lease, 10).await.unwrap().is_empty(), "the retry is not due yet");
    let again = tx.claim_due(later, later + time::Duration::minutes(1), 10).await.unwrap();
    assert_eq!((again.len(), again[0].id, again[0].attempts), (1, retried.id, 1), "only the retry, once due");
    assert_eq!((again[0].org_id, a[0].org_id), (retried.org_id, None));
    tx.commit().await.unwrap();
}

async fn handovers_and_deprovision_records_open_and_close_once(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.placeholder_user().await.unwrap(), None);
    let (owner, o) = owned_org(&mut tx, "handing@example.com").await;
    let mut placeholder = user("placeholder-owner@steward.invalid");
    placeholder.kind = steward_core::UserKind::Placeholder;
    tx.insert_user(&placeholder).await.unwrap();
    assert_eq!(tx.placeholder_user().await.unwrap().map(|u| u.id), Some(placeholder.id));
    assert_eq!(tx.orgs_owned_by(owner.id).await.unwrap().iter().map(|x| x.id).collect::<Vec<_>>(), vec![o.id]);
    let handover = HandoverRow {
        id: uuid::Uuid::now_v7(),
        org_id: o.id,
        from_user_id: owner.id,
        to_user_id: placeholder.id,
        returnable: true,
        created_at: now,
        closed_at: None,
    };
    tx.insert_handover(&handover).await.unwrap();
    assert_eq!(tx.open_handovers_from(owner.id).await.unwrap(), vec![handover.clone()]);
    tx.close_handover(handover.id, now).await.unwrap();
    assert!(tx.open_handovers_from(owner.id).await.unwrap().is_empty());
    let record = DeprovisionRow {
        id: uuid::Uuid::now_v7(),
        org_id: o.id,
        reason: "contract ended".into(),
        snapshot: json!({"members": 1}),
        created_at: now,
        created_by: Some(owner.id),
        restored_at: None,
        restored_by: None,
    };
    tx.insert_deprovision(&record).await.unwrap();
    assert_eq!(tx.deprovisions_of(o.id).await.unwrap(), vec![record.clone()]);
    tx.close_deprovision(record.id, now, Some(owner.id)).await.unwrap();
    let closed = tx.deprovisions_of(o.id).await.unwrap();
    assert_eq!((closed[0].restored_at, closed[0].restored_by), (Some(now), Some(owner.id)));
    tx.commit().await.unwrap();
}

async fn trusted_issuers_are_listed_by_name_and_removed_once(store: Arc<dyn Store>) {
    let now = second();
    let issuer = |audience: &str| JwtIssuerRow {
        id: uuid::Uuid::now_v7(),
        issuer: "https://id.example.com".into(),
        audience: audience.into(),
        jwks_url: Some("https://id.example.com/jwks".into()),
        public_key_pem: None,
        subject_claim: "sub".into(),
        email_claim: None,
        jit: true,
        created_by: None,
        created_at: now,
        domains: vec!["example.com".into()],
        allow_instance_roles: false,
    };
    let (app, api) = (issuer("app"), issuer("api"));
    let mut tx = store.write().await.unwrap();
    tx.insert_jwt_issuer(&app).await.unwrap();
    tx.insert_jwt_issuer(&api).await.unwrap();
    assert_eq!(tx.jwt_issuers().await.unwrap(), vec![api.clone(), app.clone()], "newest first");
    assert_eq!(tx.jwt_issuers_named("https://id.example.com").await.unwrap(), vec![app.clone(), api.clone()]);
    assert!(tx.jwt_issuers_named("https://other.example.com").await.unwrap().is_empty());
    assert!(tx.delete_jwt_issuer(app.id).await.unwrap());
    assert!(!tx.delete_jwt_issuer(app.id).await.unwrap(), "removed once");
    assert_eq!(tx.jwt_issuers().await.unwrap(), vec![api]);
    tx.commit().await.unwrap();
}

async fn scheduled_and_dormant_users_are_found_and_admins_counted(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let mut scheduled = user("scheduled@example.com");
    let mut admin = user("admin@example.com");
    admin.instance_roles = vec![InstanceRole::system_admin()];
    let mut idle = user("idle@example.com");
    idle.created_at = now - time::Duration::days(400);
    for u in [&scheduled, &admin, &idle] {
        tx.insert_user(u).await.unwrap();
    }
    // A new user has no schedule; one is set by a change.
    assert!(tx.due_deactivations(now, 10).await.unwrap().is_empty());
    scheduled.deactivate_at = Some(now - time::Duration::minutes(1));
    tx.update_user(&scheduled).await.unwrap();
    let due = tx.due_deactivations(now, 10).await.unwrap();
    assert_eq!(due.iter().map(|u| u.id).collect::<Vec<_>>(), vec![scheduled.id]);
    assert_eq!(tx.count_users_with_role("system_admin").await.unwrap(), 1);
    let cutoff = now - time::Duration::days(90);
    assert_eq!(tx.dormant_users(cutoff, 10).await.unwrap().iter().map(|u| u.id).collect::<Vec<_>>(), vec![idle.id]);
    tx.record_login(idle.id, now).await.unwrap();
    assert!(tx.dormant_users(cutoff, 10).await.unwrap().is_empty(), "a sign-in wakes a dormant user");
    assert_eq!(tx.user(idle.id).await.unwrap().and_then(|u| u.last_login_at), Some(now));
    tx.commit().await.unwrap();
}

/// Filters pick exactly their events; a checkpoint is kept once per (seq, kind); archiving
/// leaves an anchor the chain goes on from, in the same transaction and in the next, even when
/// nothing is left; erasing a person's data keeps the chain whole.
async fn the_audit_log_filters_archives_from_its_anchor_and_forgets_the_personal(store: Arc<dyn Store>) {
    let now = second();
    let at = |s: i64| now + time::Duration::seconds(s);
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "audited@example.com").await;
    let other = user("other-actor@example.com");
    tx.insert_user(&other).await.unwrap();
    let impersonated = Actor { user_id: Some(other.id), impersonator_id: Some(owner.id) };
    let drafts = [
        AuditDraft::new("user.login", Actor::user(owner.id), TargetType::User, owner.id).personal(json!({"ip": "x"})),
        AuditDraft::new("org.updated", Actor::user(owner.id), TargetType::Org, o.id).in_org(o.id),
        AuditDraft::new("user.updated", impersonated, TargetType::User, other.id).personal(json!({"email": "o"})),
        AuditDraft::new("user.updated", Actor::SYSTEM, TargetType::User, owner.id).personal(json!({"email": "a"})),
    ];
    for (i, draft) in drafts.into_iter().enumerate() {
        tx.append_audit(vec![draft], at(i as i64)).await.unwrap();
    }
    let filter = AuditFilter { limit: 10, ..AuditFilter::default() };
    let cases = [
        (AuditFilter { actor_id: Some(owner.id), ..filter.clone() }, vec![2, 1]),
        (AuditFilter { involving: Some(owner.id), ..filter.clone() }, vec![4, 3, 2, 1]),
        (AuditFilter { involving: Some(other.id), ..filter.clone() }, vec![3]),
        (AuditFilter { org_id: Some(o.id), ..filter.clone() }, vec![2]),
        (AuditFilter { target_id: Some(other.id.to_string()), ..filter.clone() }, vec![3]),
        (AuditFilter { kind: Some("user.updated".into()), ..filter.clone() }, vec![4, 3]),
        (AuditFilter { since: Some(at(1)), until: Some(at(3)), ..filter.clone() }, vec![3, 2]),
        (AuditFilter { before_seq: Some(3), ..filter.clone() }, vec![2, 1]),
        (AuditFilter { kind: Some("user.updated".into()), limit: 1, ..filter.clone() }, vec![4]),
    ];
    for (f, seqs) in cases {
        let found: Vec<i64> = tx.list_audit(&f).await.unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(found, seqs, "{f:?}");
    }

    let checkpoint = |kind: &str, signature: &str| CheckpointRow {
        seq: 2,
        kind: kind.into(),
        hash: "h".into(),
        at: now,
        key_id: "k".into(),
        signature: signature.into(),
    };
    tx.insert_audit_checkpoint(&checkpoint("head", "first")).await.unwrap();
    tx.insert_audit_checkpoint(&checkpoint("head", "second")).await.unwrap();
    tx.insert_audit_checkpoint(&checkpoint("anchor", "first")).await.unwrap();
    assert_eq!(tx.audit_checkpoints().await.unwrap(), vec![checkpoint("anchor", "first"), checkpoint("head", "first")]);

    let message = OutboxRow {
        user_id: Some(owner.id),
        subject: "New sign-in".into(),
        body: "From 192.0.2.1".into(),
        ..message_to("audited@example.com", now)
    };
    tx.enqueue(&message).await.unwrap();
    let session = SessionRow {
        ip: Some("192.0.2.1".into()),
        user_agent: Some("Firefox".into()),
        ..session_of(owner.id, "redacted-session", now, time::Duration::hours(1))
    };
    tx.insert_session(&session).await.unwrap();
    assert_eq!(tx.redact_personal(owner.id).await.unwrap(), 2, "the login and the event about them");
    let personal: Vec<bool> = tx.audit_chain(0, 10).await.unwrap().iter().map(|e| e.personal.is_some()).collect();
    assert_eq!(personal, [false, false, true, false]);
    assert!(tx.outbox_for("audited@example.com").await.unwrap().is_empty());
    let erased = tx.outbox_for("erased@anonymized.invalid").await.unwrap();
    assert_eq!((erased.len(), erased[0].subject.as_str(), erased[0].body.as_str()), (1, "", ""));
    let kept = tx.session(session.id).await.unwrap().unwrap();
    assert_eq!((kept.ip, kept.user_agent), (None, None));
    tx.commit().await.unwrap();
    assert_eq!(store.verify_audit().await.unwrap().first_bad_seq(), None, "erasing keeps the chain whole");

    let mut tx = store.write().await.unwrap();
    let chain = tx.audit_chain(0, 10).await.unwrap();
    assert_eq!(tx.audit_anchor().await.unwrap(), None);
    assert_eq!(tx.drop_archived_audit(2, &chain[1].hash, now).await.unwrap(), 2);
    assert_eq!(tx.audit_anchor().await.unwrap(), Some((2, chain[1].hash.clone())));
    let next = AuditDraft::new("test.after_archive", Actor::SYSTEM, TargetType::User, "x");
    let sealed = tx.append_audit(vec![next], now).await.unwrap();
    assert_eq!((sealed[0].seq, sealed[0].prev_hash.as_str()), (5, chain[3].hash.as_str()));
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.drop_archived_audit(5, &sealed[0].hash, now).await.unwrap(), 3);
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    let last = AuditDraft::new("test.after_all", Actor::SYSTEM, TargetType::User, "x");
    let resumed = tx.append_audit(vec![last], now).await.unwrap();
    assert_eq!((resumed[0].seq, resumed[0].prev_hash.as_str()), (6, sealed[0].hash.as_str()), "from the anchor");
    tx.commit().await.unwrap();
    let check = store.verify_audit().await.unwrap();
    assert_eq!((check.checked(), check.first_bad_seq()), (1, None));
}

/// What SCIM keeps beside users and teams: a userName looked up without case, external ids
/// filtered on, a hidden user left out of lists, a retired email given back only to its
/// holder, an archived group gone with its members, tokens found by digest and revoked once.
async fn scim_keeps_names_groups_and_tokens_beside_the_rows(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "scim-owner@example.com").await;
    let ada = user("ada@example.com");
    tx.insert_user(&ada).await.unwrap();
    tx.insert_membership(o.id, ada.id, OrgRole::Member, now).await.unwrap();
    let kept = ScimUserRow {
        user_id: ada.id,
        user_name: Some("Ada.L".into()),
        external_id: Some("ext-ada".into()),
        attrs: json!({"displayName": "Ada"}),
        hidden_at: None,
        updated_at: now,
    };
    tx.put_scim_user(&kept).await.unwrap();
    assert_eq!(tx.scim_user(ada.id).await.unwrap().map(|(u, s)| (u.id, s)), Some((ada.id, Some(kept.clone()))));
    assert_eq!(tx.scim_user(owner.id).await.unwrap().map(|(u, s)| (u.id, s)), Some((owner.id, None)));
    assert_eq!(tx.user_by_user_name_key("ada.l").await.unwrap().map(|u| u.id), Some(ada.id));
    assert_eq!(tx.user_by_user_name_key("scim-owner@example.com").await.unwrap().map(|u| u.id), Some(owner.id));
    assert_eq!(tx.user_by_user_name_key("ada@example.com").await.unwrap(), None, "the userName stands for the email");

    let query = |cond: Cond<UserField>| ScimQuery { cond, sort: None, offset: 0, limit: 10, org: Some(o.id) };
    let ids = |found: (u64, Vec<(UserRow, Option<ScimUserRow>)>)| {
        (found.0, found.1.into_iter().map(|(u, _)| u.id).collect::<Vec<_>>())
    };
    let mut both = vec![owner.id, ada.id];
    both.sort();
    assert_eq!(ids(tx.scim_users(&query(Cond::Const(true))).await.unwrap()), (2, both));
    let by_name = Cond::Cmp(UserField::UserName, Op::Eq, Lit::Text("ADA.L".into()));
    assert_eq!(ids(tx.scim_users(&query(by_name)).await.unwrap()), (1, vec![ada.id]));
    let by_external = Cond::Cmp(UserField::ExternalId, Op::Eq, Lit::Text("ext-ada".into()));
    assert_eq!(ids(tx.scim_users(&query(by_external)).await.unwrap()), (1, vec![ada.id]));
    let paged = ScimQuery { offset: 1, limit: 1, ..query(Cond::Const(true)) };
    assert_eq!(tx.scim_users(&paged).await.unwrap().0, 2, "the total counts past the page");
    let hidden = ScimUserRow { hidden_at: Some(now), attrs: json!({}), ..kept.clone() };
    tx.put_scim_attrs(&hidden).await.unwrap();
    assert_eq!(ids(tx.scim_users(&query(Cond::Const(true))).await.unwrap()), (1, vec![owner.id]));
    assert_eq!(tx.scim_user(ada.id).await.unwrap().and_then(|(_, s)| s), Some(hidden));

    tx.retire_email(ada.id, "old@example.com", now).await.unwrap();
    assert_eq!(tx.retired_email_holder("old@example.com", None).await.unwrap(), Some(ada.id));
    assert_eq!(tx.retired_email_holder("old@example.com", Some(owner.id)).await.unwrap(), Some(ada.id));
    assert_eq!(tx.retired_email_holder("old@example.com", Some(ada.id)).await.unwrap(), None, "given back");
    assert_eq!(tx.retired_email_holder("old@example.com", None).await.unwrap(), None);

    let team =
        TeamRow { id: TeamId::new(), org_id: o.id, name: "Ops".into(), created_at: now, updated_at: now, version: 1 };
    tx.insert_team(&team).await.unwrap();
    tx.put_team_member(team.id, ada.id, TeamRole::TeamMember, now).await.unwrap();
    tx.put_scim_group(team.id, Some("ext-team"), now).await.unwrap();
    let group = tx.scim_group(team.id).await.unwrap().unwrap();
    assert_eq!(
        (group.team, group.org_name.as_str(), group.external_id.as_deref()),
        (team.clone(), "Acme", Some("ext-team"))
    );
    let groups = ScimQuery { cond: Cond::Const(true), sort: None, offset: 0, limit: 10, org: Some(o.id) };
    assert_eq!(tx.scim_groups(&groups).await.unwrap().0, 1);
    tx.archive_team(team.id, now).await.unwrap();
    assert_eq!(tx.scim_group(team.id).await.unwrap(), None);
    assert_eq!(tx.scim_groups(&groups).await.unwrap(), (0, vec![]));
    assert!(tx.team_members(team.id).await.unwrap().is_empty());

    let named: Vec<_> = tx.orgs_named("ACME").await.unwrap().into_iter().map(|n| n.id).collect();
    assert_eq!(named, vec![o.id]);
    let twin = OrgRow { id: OrgId::new(), name: "acme".into(), ..o.clone() };
    tx.insert_org(&twin).await.unwrap();
    assert_eq!(tx.orgs_named("Acme").await.unwrap().len(), 2);

    let token = |hash: &str| ScimTokenRow {
        id: uuid::Uuid::now_v7(),
        name: "Entra ID".into(),
        token_hash: hash.into(),
        org_id: Some(o.id),
        service_user_id: ada.id,
        created_by: Some(owner.id),
        created_at: now,
        revoked_at: None,
    };
    let (first, second) = (token("digest-1"), token("digest-2"));
    tx.insert_scim_token(&first).await.unwrap();
    tx.insert_scim_token(&second).await.unwrap();
    assert_eq!(tx.scim_token_by_hash("digest-1").await.unwrap(), Some(first.clone()));
    assert_eq!(tx.scim_token_by_hash("digest-3").await.unwrap(), None);
    assert_eq!(tx.scim_tokens().await.unwrap(), vec![second.clone(), first.clone()]);
    assert!(tx.revoke_scim_token(first.id, now).await.unwrap());
    assert!(!tx.revoke_scim_token(first.id, now).await.unwrap(), "revoked once");
    assert_eq!(tx.scim_tokens().await.unwrap(), vec![second]);
    assert_eq!(tx.scim_token_by_hash("digest-1").await.unwrap().and_then(|t| t.revoked_at), Some(now));
    tx.commit().await.unwrap();
}

/// A consume is all or nothing against its budget and leaves no trace when refused; what is
/// given back never takes usage below zero; each period keeps its own row; an alert is claimed
/// once per threshold; a decision's facts are read at once.
async fn usage_is_taken_within_its_budget_given_back_and_kept_per_period(store: Arc<dyn Store>) {
    let start = second();
    let end = start + time::Duration::days(30);
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "metered@example.com").await;
    let stranger = user("stranger@example.com");
    tx.insert_user(&stranger).await.unwrap();
    tx.commit().await.unwrap();
    let take = |operations: u64, period_start: OffsetDateTime| Consume {
        org: o.id,
        period_start,
        period_end: period_start + time::Duration::days(30),
        at: period_start,
        operations,
        transfer: 5,
        operations_limit: Some(100),
        transfer_limit: None,
    };
    let used = |u: Option<UsageRow>| u.map(|u| (u.operations_used, u.transfer_used));
    assert_eq!(used(store.consume(&take(60, start)).await.unwrap()), Some((60, 5)));
    assert_eq!(used(store.consume(&take(60, start)).await.unwrap()), None, "60 more is over 100");
    assert_eq!(used(store.consume(&take(40, start)).await.unwrap()), Some((100, 10)), "exactly the budget");
    let earlier = start - time::Duration::days(30);
    assert_eq!(used(store.consume(&take(101, earlier)).await.unwrap()), None);
    store.give_back(o.id, start, 30).await.unwrap();
    let mut tx = store.read().await.unwrap();
    assert_eq!(used(tx.usage(o.id, start).await.unwrap()), Some((70, 10)));
    assert_eq!(tx.usage(o.id, earlier).await.unwrap(), None, "a refused consume leaves no period behind");
    tx.rollback().await.unwrap();
    store.give_back(o.id, start, 500).await.unwrap();
    assert_eq!(used(store.consume(&take(1, end)).await.unwrap()), Some((1, 5)));

    let mut tx = store.write().await.unwrap();
    let history = tx.usage_history(o.id, 10).await.unwrap();
    let periods: Vec<_> = history.iter().map(|u| (u.period_start, u.period_end, u.operations_used)).collect();
    assert_eq!(periods, vec![(end, end + time::Duration::days(30), 1), (start, end, 0)], "never below zero");
    assert_eq!(tx.usage_history(o.id, 1).await.unwrap().len(), 1);
    let day = |at: OffsetDateTime| at.replace_time(time::Time::MIDNIGHT);
    let days: Vec<_> = tx
        .usage_days(o.id, earlier, end + time::Duration::days(30))
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.day, d.operations_used, d.transfer_used))
        .collect();
    assert_eq!(
        days,
        vec![(day(start), 0, 10), (day(end), 1, 5)],
        "each day counts what it took; refusals count nowhere; what is given back comes off the latest day"
    );
    assert!(tx.usage_days(o.id, earlier, day(start)).await.unwrap().is_empty(), "until is exclusive");
    assert!(tx.claim_usage_alert(o.id, start, 80, start).await.unwrap());
    assert!(!tx.claim_usage_alert(o.id, start, 80, start).await.unwrap(), "claimed once");
    assert!(tx.claim_usage_alert(o.id, start, 100, start).await.unwrap());
    assert!(tx.claim_usage_alert(o.id, end, 80, end).await.unwrap(), "each period its own");
    let facts = tx.check_facts(owner.id, o.id, end).await.unwrap().unwrap();
    let created = tx.org(o.id).await.unwrap().unwrap().created_at;
    assert_eq!(
        (facts.status, facts.membership, facts.operations_used, facts.transfer_used, facts.org_created_at),
        (UserStatus::Active, Some((OrgRole::Owner, false)), 1, 5, created)
    );
    let outside = tx.check_facts(stranger.id, o.id, earlier).await.unwrap().unwrap();
    assert_eq!((outside.membership, outside.operations_used), (None, 0));
    assert_eq!(tx.check_facts(UserId::new(), o.id, start).await.unwrap(), None);
    assert_eq!(tx.check_facts(owner.id, OrgId::new(), start).await.unwrap(), None);
    tx.commit().await.unwrap();
}

/// A session is found by its digest; only the unexpired, unrevoked ones are live, newest
/// first; a user's tokens are the unrevoked ones, newest first.
async fn sessions_and_tokens_are_found_by_digest_and_listed_while_live(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let (ada, bob) = (user("ada@sessions.test"), user("bob@sessions.test"));
    for u in [&ada, &bob] {
        tx.insert_user(u).await.unwrap();
    }
    let session =
        |u: &UserRow, hash: &str, expires_in: i64| session_of(u.id, hash, now, time::Duration::seconds(expires_in));
    let (old, expired, revoked, newest, bobs) = (
        session(&ada, "s-old", 60),
        session(&ada, "s-expired", 0),
        session(&ada, "s-revoked", 60),
        session(&ada, "s-newest", 60),
        session(&bob, "s-bob", 60),
    );
    for s in [&old, &expired, &revoked, &newest, &bobs] {
        tx.insert_session(s).await.unwrap();
    }
    tx.revoke_session(revoked.id, now).await.unwrap();
    assert_eq!(tx.session_by_hash("s-old").await.unwrap(), Some(old.clone()));
    assert_eq!(tx.session_by_hash("s-unknown").await.unwrap(), None);
    let live: Vec<_> = tx.live_sessions(ada.id, now).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(live, vec![newest.id, old.id]);

    let token = |u: &UserRow, hash: &str| token_of(u.id, hash, now);
    let (first, gone, last, bobs) = (token(&ada, "t-1"), token(&ada, "t-2"), token(&ada, "t-3"), token(&bob, "t-4"));
    for t in [&first, &gone, &last, &bobs] {
        tx.insert_api_token(t).await.unwrap();
    }
    tx.revoke_api_token(gone.id, now).await.unwrap();
    assert_eq!(tx.api_tokens_of(ada.id).await.unwrap(), vec![last, first]);
    tx.commit().await.unwrap();
}

/// An expired license is announced once per expiry; purging an org erases what it holds and
/// keeps its owner's membership, and leaves other orgs alone.
async fn expiry_is_announced_once_and_a_purge_keeps_only_the_owner(store: Arc<dyn Store>) {
    let now = second();
    let mut tx = store.write().await.unwrap();
    let (owner, mut o) = owned_org(&mut tx, "purged-owner@example.com").await;
    let (_, mut renewed) = owned_org(&mut tx, "renewed-owner@example.com").await;
    let expired_at = now - time::Duration::days(1);
    o.license.expires_at = Some(expired_at);
    tx.update_org(&o).await.unwrap();
    o.version += 1;
    renewed.license.expires_at = Some(now + time::Duration::days(1));
    tx.update_org(&renewed).await.unwrap();
    renewed.version += 1;
    let expired: Vec<_> = tx.newly_expired_orgs(now, 10).await.unwrap().into_iter().map(|o| o.id).collect();
    assert_eq!(expired, vec![o.id]);
    tx.announce_expiry(o.id, expired_at).await.unwrap();
    assert!(tx.newly_expired_orgs(now, 10).await.unwrap().is_empty(), "announced once");
    let later = now + time::Duration::days(2);
    let expired: Vec<_> = tx.newly_expired_orgs(later, 10).await.unwrap().into_iter().map(|o| o.id).collect();
    assert_eq!(expired, vec![renewed.id]);
    o.license.expires_at = Some(now - time::Duration::hours(1));
    tx.update_org(&o).await.unwrap();
    let again: Vec<_> = tx.newly_expired_orgs(now, 10).await.unwrap().into_iter().map(|o| o.id).collect();
    assert_eq!(again, vec![o.id], "a new expiry is announced again");

    let member = user("purged-member@example.com");
    tx.insert_user(&member).await.unwrap();
    tx.insert_membership(o.id, member.id, OrgRole::Member, now).await.unwrap();
    tx.insert_membership(renewed.id, member.id, OrgRole::Member, now).await.unwrap();
    let team =
        TeamRow { id: TeamId::new(), org_id: o.id, name: "Ops".into(), created_at: now, updated_at: now, version: 1 };
    tx.insert_team(&team).await.unwrap();
    tx.put_team_member(team.id, member.id, TeamRole::TeamMember, now).await.unwrap();
    tx.insert_deprovision(&DeprovisionRow {
        id: uuid::Uuid::now_v7(),
        org_id: o.id,
        reason: "contract ended".into(),
        snapshot: json!({}),
        created_at: now,
        created_by: Some(owner.id),
        restored_at: None,
        restored_by: None,
    })
    .await
    .unwrap();
    let event = AuditDraft::new("org.member_added", Actor::user(owner.id), TargetType::User, member.id)
        .in_org(o.id)
        .personal(json!({"email": "purged-member@example.com"}));
    tx.append_audit(vec![event], now).await.unwrap();
    let about_org = |org: OrgId| OutboxRow { org_id: Some(org), ..message_to("purged-member@example.com", now) };
    tx.enqueue(&about_org(o.id)).await.unwrap();
    tx.enqueue(&about_org(renewed.id)).await.unwrap();
    tx.enqueue(&message_to("purged-member@example.com", now)).await.unwrap();
    tx.commit().await.unwrap();
    let take = Consume {
        org: o.id,
        period_start: now,
        period_end: later,
        at: now,
        operations: 1,
        transfer: 0,
        operations_limit: None,
        transfer_limit: None,
    };
    store.consume(&take).await.unwrap().unwrap();

    let mut tx = store.write().await.unwrap();
    assert!(tx.purge_org_data(o.id, owner.id).await.unwrap() >= 6);
    let members: Vec<_> = tx.members(o.id).await.unwrap().into_iter().map(|m| m.user_id).collect();
    assert_eq!(members, vec![owner.id]);
    assert!(tx.teams_of_org(o.id, None, 10).await.unwrap().is_empty());
    assert!(tx.usage_history(o.id, 10).await.unwrap().is_empty());
    assert!(tx.usage_days(o.id, now - time::Duration::days(1), later).await.unwrap().is_empty());
    assert!(tx.deprovisions_of(o.id).await.unwrap().is_empty());
    let events = tx.list_audit(&AuditFilter { org_id: Some(o.id), limit: 10, ..AuditFilter::default() }).await.unwrap();
    assert_eq!((events.len(), events[0].personal.clone()), (1, None), "the event stays, its personal part goes");
    assert_eq!(tx.members(renewed.id).await.unwrap().len(), 2, "the other org keeps its member");
    let mail: Vec<_> =
        tx.outbox_for("purged-member@example.com").await.unwrap().into_iter().map(|m| m.org_id).collect();
    assert_eq!(mail.len(), 2, "the org's own email goes; another org's and the person's own stay: {mail:?}");
    assert!(!mail.contains(&Some(o.id)));
    tx.commit().await.unwrap();
}

/// The roles held beside a role are every role of its holders, whatever their status.
async fn roles_held_beside_a_role_are_those_of_its_holders(store: Arc<dyn Store>) {
    let mut tx = store.write().await.unwrap();
    let holder = |email: &str, roles: &[&str]| {
        let mut u = user(email);
        u.instance_roles = roles.iter().map(|r| InstanceRole::parse(r).unwrap()).collect();
        u
    };
    let mut away = holder("away@roles.test", &["support", "viewer"]);
    away.status = UserStatus::Deactivated;
    for u in [&away, &holder("here@roles.test", &["support", "auditor"]), &holder("other@roles.test", &["admin"])] {
        tx.insert_user(u).await.unwrap();
    }
    let mut beside = tx.roles_held_beside("support").await.unwrap();
    beside.sort();
    assert_eq!(beside, ["auditor", "support", "viewer"]);
    assert!(tx.roles_held_beside("billing").await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

/// A store is ready once migrated; one shared with other nodes tells of each commit; a read
/// told that its next call is its last still answers that call, and a call after it.
async fn a_store_is_ready_tells_of_commits_when_shared_and_reads_to_the_last(store: Arc<dyn Store>) {
    assert!(store.ready().await.unwrap());
    let mut changes = store.changes();
    assert_eq!(store.shared(), changes.is_some(), "a shared store tells of changes, and only it");
    let commit = |email: &'static str| {
        let store = store.clone();
        async move {
            let mut tx = store.write().await.unwrap();
            tx.insert_user(&user(email)).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    let told = |rx: &mut tokio::sync::watch::Receiver<u64>| {
        let mut rx = rx.clone();
        async move { tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed()).await.is_ok() }
    };
    if let Some(rx) = changes.as_mut() {
        // Once a first change is told, the store listens (it tells of its start too); from then
        // on each commit is told.
        commit("first-commit@example.com").await;
        assert!(told(rx).await, "the store tells of a change within 10 s");
        rx.borrow_and_update();
        commit("second-commit@example.com").await;
        assert!(told(rx).await, "a commit is told within 10 s");
        // A write transaction that changed nothing tells nobody, so no node drops what it keeps:
        // of it and a commit after it, only the second is told (notices arrive in commit order;
        // those of the commits above are let arrive first).
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let before = *rx.borrow_and_update();
        let now = OffsetDateTime::now_utc();
        let mut tx = store.write().await.unwrap();
        assert!(tx.claim_due(now, now, 10).await.unwrap().is_empty(), "an outbox claim that finds nothing");
        assert_eq!(tx.forget_usage_events(now, 10).await.unwrap(), 0, "a delete of nothing");
        assert!(tx.user(UserId::new()).await.unwrap().is_none());
        tx.commit().await.unwrap();
        // Nor does a signed checkpoint of the audit chain, which no node keeps.
        let checkpoint = CheckpointRow {
            seq: 1,
            kind: "head".into(),
            hash: "told-nobody".into(),
            at: second(),
            key_id: "k".into(),
            signature: "s".into(),
        };
        let mut tx = store.write().await.unwrap();
        tx.insert_audit_checkpoint(&checkpoint).await.unwrap();
        tx.commit().await.unwrap();
        commit("third-commit@example.com").await;
        assert!(told(rx).await, "a commit is told within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(*rx.borrow(), before + 1, "the transactions that changed nothing kept were not told");
        let mut tx = store.read().await.unwrap();
        assert!(tx.audit_checkpoints().await.unwrap().contains(&checkpoint), "the checkpoint was kept");
        tx.rollback().await.unwrap();
    }
    let u = user("last-read@example.com");
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    tx.last_read();
    assert_eq!(tx.user(u.id).await.unwrap().map(|r| r.email), Some(u.email.clone()));
    assert_eq!(tx.user(u.id).await.unwrap().map(|r| r.id), Some(u.id), "a call after the last still answers");
    tx.commit().await.unwrap();
}

/// The instance at a glance: people by status (service and placeholder users are not people),
/// orgs by state, and sign-ins per UTC day from the audit log.
async fn the_instance_is_counted_by_status_state_and_sign_ins_per_day(store: Arc<dyn Store>) {
    let day = |d: u8| {
        OffsetDateTime::new_utc(
            time::Date::from_calendar_date(2026, time::Month::December, d).unwrap(),
            time::Time::MIDNIGHT,
        )
    };
    let mut tx = store.write().await.unwrap();
    let (owner, o) = owned_org(&mut tx, "counted-owner@example.com").await;
    let mut away = user("counted-away@example.com");
    away.status = UserStatus::Deactivated;
    let mut service = user("counted-service@example.com");
    service.kind = steward_core::UserKind::Service;
    for u in [&away, &service] {
        tx.insert_user(u).await.unwrap();
    }
    let gone = OrgRow { id: OrgId::new(), state: steward_core::OrgState::Deprovisioned, ..o.clone() };
    tx.insert_org(&gone).await.unwrap();
    let login = || AuditDraft::new("user.login", Actor::user(owner.id), TargetType::User, owner.id);
    let other = AuditDraft::new("user.updated", Actor::user(owner.id), TargetType::User, owner.id);
    tx.append_audit(vec![login(), login()], day(2) + time::Duration::hours(9)).await.unwrap();
    tx.append_audit(vec![other], day(3)).await.unwrap();
    tx.append_audit(vec![login()], day(4) + time::Duration::hours(23)).await.unwrap();
    tx.append_audit(vec![login()], day(1)).await.unwrap();
    assert_eq!(tx.people_by_status().await.unwrap(), vec![(UserStatus::Active, 1), (UserStatus::Deactivated, 1)]);
    assert_eq!(
        tx.orgs_by_state().await.unwrap(),
        vec![(steward_core::OrgState::Active, 1), (steward_core::OrgState::Deprovisioned, 1)]
    );
    assert_eq!(tx.sign_ins_per_day(day(2)).await.unwrap(), vec![(day(2), 2), (day(4), 1)]);

    // Seats over time: every membership of a person, ended ones too; a service user holds none.
    let left = user("counted-left@example.com");
    tx.insert_user(&left).await.unwrap();
    tx.insert_membership(o.id, left.id, OrgRole::Member, day(2)).await.unwrap();
    tx.end_membership(o.id, left.id, day(3)).await.unwrap();
    tx.insert_membership(o.id, service.id, OrgRole::Member, day(2)).await.unwrap();
    let spans: Vec<_> = tx.membership_spans(o.id).await.unwrap().into_iter().map(|(u, _, until)| (u, until)).collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(spans.contains(&(owner.id, None)) && spans.contains(&(left.id, Some(day(3)))), "{spans:?}");
    let idle = OrgRow { id: OrgId::new(), ..o.clone() };
    tx.insert_org(&idle).await.unwrap();
    tx.commit().await.unwrap();

    // Active orgs a page at a time, each with the usage of the period that holds the instant asked.
    let take = Consume {
        org: o.id,
        period_start: day(1),
        period_end: day(8),
        at: day(2),
        operations: 7,
        transfer: 3,
        operations_limit: None,
        transfer_limit: None,
    };
    store.consume(&take).await.unwrap().expect("no limit");
    let mut tx = store.read().await.unwrap();
    let used = |page: Vec<(OrgRow, Option<UsageRow>)>| {
        page.into_iter().map(|(org, u)| (org.id, u.map(|u| (u.period_start, u.operations_used)))).collect::<Vec<_>>()
    };
    let (first, second) = if o.id < idle.id { (o.id, idle.id) } else { (idle.id, o.id) };
    let usage_of = |id: OrgId| if id == o.id { Some((day(1), 7)) } else { None };
    let all = used(tx.active_orgs_with_usage(day(3), None, 10).await.unwrap());
    assert_eq!(all, vec![(first, usage_of(first)), (second, usage_of(second))], "the deprovisioned org is left out");
    assert_eq!(used(tx.active_orgs_with_usage(day(3), None, 1).await.unwrap()), vec![(first, usage_of(first))]);
    let rest = used(tx.active_orgs_with_usage(day(3), Some(first), 10).await.unwrap());
    assert_eq!(rest, vec![(second, usage_of(second))]);
    let later = used(tx.active_orgs_with_usage(day(8), None, 10).await.unwrap());
    assert_eq!(later, vec![(first, None), (second, None)], "a period that has ended is not the one at that time");
    tx.rollback().await.unwrap();
}

/// Batch ingestion: each event all or nothing, in order, exactly against its org's budget; an
/// id counted before, or earlier in the batch, counts nothing; ids are forgotten after
/// `keep_until`; a period the batch made and left empty is not kept.
async fn usage_events_count_once_each_all_or_nothing_and_exactly(store: Arc<dyn Store>) {
    let start = second();
    let mut tx = store.write().await.unwrap();
    let (_, a) = owned_org(&mut tx, "events-a@example.com").await;
    let (_, b) = owned_org(&mut tx, "events-b@example.com").await;
    tx.commit().await.unwrap();
    let event = |org: OrgId, id: &str, operations: u64, limit: Option<u64>| steward_store::UsageEvent {
        id: id.into(),
        consume: Consume {
            org,
            period_start: start,
            period_end: start + time::Duration::days(30),
            at: start,
            operations,
            transfer: 1,
            operations_limit: limit,
            transfer_limit: None,
        },
        keep_until: start + time::Duration::days(60),
    };
    let batch = vec![
        event(a.id, "e1", 6, Some(10)),
        event(a.id, "e2", 5, Some(10)),
        event(a.id, "e1", 1, Some(10)),
        event(a.id, "e3", 4, Some(10)),
        event(b.id, "e1", 100, Some(50)),
    ];
    let mut tx = store.write().await.unwrap();
    let (outcomes, usage) = tx.ingest_usage(&batch, start).await.unwrap();
    tx.commit().await.unwrap();
    use steward_store::EventOutcome::*;
    assert_eq!(outcomes, vec![Accepted, Refused, Duplicate, Accepted, Refused]);
    assert_eq!(
        usage.iter().map(|u| (u.org_id, u.operations_used, u.transfer_used)).collect::<Vec<_>>(),
        vec![(a.id, 10, 2)]
    );
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.usage(b.id, start).await.unwrap(), None, "a period the batch made and left empty is not kept");
    assert_eq!(
        tx.usage_days(a.id, start, start + time::Duration::days(1))
            .await
            .unwrap()
            .iter()
            .map(|d| d.operations_used)
            .sum::<u64>(),
        10
    );
    let again = vec![event(a.id, "e2", 0, Some(10)), event(a.id, "e3", 1, Some(10)), event(b.id, "e1", 50, Some(50))];
    let (outcomes, _) = tx.ingest_usage(&again, start).await.unwrap();
    assert_eq!(
        outcomes,
        vec![Accepted, Duplicate, Accepted],
        "a refused id was not remembered; another org's ids are its own"
    );
    tx.commit().await.unwrap();
    // Past keep_until an id is forgotten and counts again: by the scheduler's sweep, a bounded
    // number at a time, or by the org's next batch.
    let later = start + time::Duration::days(61);
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.forget_usage_events(start, 10).await.unwrap(), 0, "nothing has expired yet");
    assert_eq!(tx.forget_usage_events(later, 2).await.unwrap(), 2, "two at a time");
    tx.rollback().await.unwrap();
    let mut tx = store.write().await.unwrap();
    let (outcomes, _) = tx.ingest_usage(&[event(a.id, "e1", 0, None)], later).await.unwrap();
    assert_eq!(outcomes, vec![Accepted]);
    tx.rollback().await.unwrap();
}

/// A pooled connection is handed out again without asking the server while it was used moments
/// ago; one that sat idle is asked first, so a connection the server dropped meanwhile (a restart,
/// a proxy's idle timeout) is replaced, not handed to a request.
#[tokio::test]
#[ignore = "needs PostgreSQL: STEWARD_TEST_POSTGRES_URL names a server (scripts/test runs these)"]
async fn a_postgres_connection_dropped_while_idle_is_replaced_before_use() {
    let (backend, database) = postgres_named().await;
    let store = backend.store;
    assert!(store.ready().await.unwrap());
    let admin = std::env::var("STEWARD_TEST_POSTGRES_URL").unwrap();
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    let dropped: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'steward' AND datname = $1 AND state = 'idle' AND query NOT LIKE 'LISTEN%'",
    )
    .bind(&database)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(!dropped.is_empty(), "the store's idle connections were dropped by the server");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(store.ready().await.unwrap(), "the next statement runs on a working connection");
}

//! The storage traits. They speak in domain ids and rows, never in SQL dialects, so that each
//! backend implements them with its own queries.

use async_trait::async_trait;
use serde_json::Value;
use steward_core::lockout::LockoutState;
use steward_core::{
    AuditDraft, AuditRecord, InstanceRole, OrgId, OrgRole, SessionId, TeamId, TeamRole, TokenId, UserId,
};
use time::OffsetDateTime;

use crate::StoreResult;
use crate::model::*;
use crate::query::{GroupField, ScimQuery, UserField};

/// A database: hands out transactions and answers readiness.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A write transaction; writers are serialized, so what it reads stays true until commit.
    async fn write(&self) -> StoreResult<Box<dyn Tx>>;
    /// A read-only transaction over a consistent snapshot.
    async fn read(&self) -> StoreResult<Box<dyn Tx>>;
    /// Whether the database answers and every migration is applied.
    async fn ready(&self) -> StoreResult<bool>;
    /// Whether other Steward nodes may write to the same database, so that what this node
    /// caches can change without it knowing.
    fn shared(&self) -> bool {
        false
    }
    /// Ticks whenever any node commits a change (or when changes may have been missed), for
    /// databases other nodes share; `None` where only this node writes.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// Consumes from an org's period budget, all or nothing, in one conditional update: `None`
    /// when the budget (`None` limit: unlimited) does not cover it, and then nothing changed.
    async fn consume(&self, request: &Consume) -> StoreResult<Option<UsageRow>>;
    /// Gives back operations taken earlier (a lease's unused part); never below zero.
    async fn give_back(&self, org: OrgId, period_start: OffsetDateTime, operations: u64) -> StoreResult<()>;
    /// Verifies the whole audit chain, reading it in pages, from the archive anchor if any.
    async fn verify_audit(&self) -> StoreResult<steward_core::ChainCheck> {
        let mut tx = self.read().await?;
        let anchor = tx.audit_anchor().await?;
        tx.rollback().await?;
        let (mut check, mut after) = match anchor {
            Some((seq, hash)) => (steward_core::ChainCheck::after(seq, &hash), seq),
            None => (steward_core::ChainCheck::default(), 0),
        };
        loop {
            let mut tx = self.read().await?;
            let page = tx.audit_chain(after, 1000).await?;
            tx.rollback().await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            page.iter().for_each(|r| check.push(r));
        }
        Ok(check)
    }
}

/// One transaction with every family of queries.
///
/// A write that returns nothing may be sent with a later statement of the same transaction (see
/// the SQLite backend), so its error (a taken email, a stale version) may come from a later call,
/// at the latest from [`Tx::commit`], which then commits nothing. After any error the transaction
/// is only rolled back.
#[async_trait]
pub trait Tx:
    Users
    + Orgs
    + Teams
    + Credentials
    + Audit
    + Settings
    + Lifecycle
    + Invitations
    + Outbox
    + Metering
    + Webhooks
    + Reviews
    + Scim
    + Security
    + Roles
    + Sso
    + Send
{
    /// Makes the changes durable.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
    /// Drops the changes.
    async fn rollback(self: Box<Self>) -> StoreResult<()>;

    /// Says that the next call is the last read of this read-only transaction: a backend may
    /// end the transaction with it, in the same round trip. [`Tx::commit`] or [`Tx::rollback`]
    /// still follows. A call after that one still works, and may read a snapshot of its own. A
    /// transaction that writes ignores it.
    fn last_read(&mut self) {}

    /// Who holds the identities a user would take: first the user whose `userName` (or, without
    /// one, email) has the key `name`; then the user the email key `email` belongs to — the
    /// first of: whose email it is, whose `userName` it is, who gave it up, whose anonymized
    /// email key is `anonymized`. A backend may answer in one statement; this asks one by one.
    async fn identity_holders(
        &mut self,
        name: Option<&str>,
        email: &str,
        anonymized: &str,
    ) -> StoreResult<(Option<UserRow>, Option<UserRow>)> {
        crate::sql::users::identity_holders_one_by_one(self, name, email, anonymized).await
    }

    /// What deactivating `user` sweeps away: every session and API token revoked (how many),
    /// every pending invitation cancelled (how many), the memberships and team memberships made
    /// dormant, and the orgs the user owns, to hand over. A backend may do it in one statement;
    /// this does it one step after another.
    async fn deactivation_sweep(&mut self, user: UserId, at: OffsetDateTime) -> StoreResult<(u64, u64, Vec<OrgRow>)> {
        let revoked = self.revoke_all_credentials(user, at).await?;
        let cancelled = self.cancel_invitations_of(user, at).await?;
        self.set_memberships_dormant(user, true).await?;
        let owned = self.orgs_owned_by(user).await?;
        Ok((revoked, cancelled, owned))
    }
}

/// Users and their instance roles.
#[async_trait]
pub trait Users {
    async fn insert_user(&mut self, user: &UserRow) -> StoreResult<()>;
    async fn user(&mut self, id: UserId) -> StoreResult<Option<UserRow>>;
    async fn user_by_email_key(&mut self, key: &str) -> StoreResult<Option<UserRow>>;
    async fn list_users(&mut self, filter: &UserFilter) -> StoreResult<Vec<UserRow>>;
    /// Writes every column of `user` and bumps its version, if it is still at `user.version`.
    async fn update_user(&mut self, user: &UserRow) -> StoreResult<()>;
    async fn set_instance_roles(&mut self, id: UserId, roles: &[InstanceRole]) -> StoreResult<()>;
    async fn count_users_with_role(&mut self, role: &str) -> StoreResult<i64>;
    /// How many people are in each status (statuses nobody is in are left out).
    async fn people_by_status(&mut self) -> StoreResult<Vec<(steward_core::UserStatus, u64)>>;
    async fn record_login(&mut self, id: UserId, at: OffsetDateTime) -> StoreResult<()>;
    /// Users whose scheduled deactivation is due and who are not deactivated yet.
    async fn due_deactivations(&mut self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<UserRow>>;
    /// Active people not seen (signed in, or created when never signed in) since `before`.
    async fn dormant_users(&mut self, before: OffsetDateTime, limit: u32) -> StoreResult<Vec<UserRow>>;
}

/// Organizations and memberships.
#[async_trait]
pub trait Orgs {
    async fn insert_org(&mut self, org: &OrgRow) -> StoreResult<()>;
    async fn org(&mut self, id: OrgId) -> StoreResult<Option<OrgRow>>;
    async fn list_orgs(&mut self, filter: &OrgFilter) -> StoreResult<Vec<OrgRow>>;
    /// Writes every column of `org` and bumps its version, if it is still at `org.version`.
    async fn update_org(&mut self, org: &OrgRow) -> StoreResult<()>;
    async fn members(&mut self, org: OrgId) -> StoreResult<Vec<MemberRow>>;
    /// Orgs whose license expired by `now` and whose expiry was not announced yet.
    async fn newly_expired_orgs(&mut self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<OrgRow>>;
    /// Every membership the org's people have held, ended ones too: who, from when, until when.
    async fn membership_spans(
        &mut self,
        org: OrgId,
    ) -> StoreResult<Vec<(UserId, OffsetDateTime, Option<OffsetDateTime>)>>;
    /// How many orgs are in each state (states no org is in are left out).
    async fn orgs_by_state(&mut self) -> StoreResult<Vec<(steward_core::OrgState, u64)>>;
    /// A page of active orgs in id order after `after`, each with its usage row of a period that
    /// contains `at`, if one was kept.
    async fn active_orgs_with_usage(
        &mut self,
        at: OffsetDateTime,
        after: Option<OrgId>,
        limit: u32,
    ) -> StoreResult<Vec<(OrgRow, Option<UsageRow>)>>;
    /// Records that the expiry at `expires_at` was announced.
    async fn announce_expiry(&mut self, org: OrgId, expires_at: OffsetDateTime) -> StoreResult<()>;
    /// The current member `user` of `org`, with the user's identity.
    async fn member(&mut self, org: OrgId, user: UserId) -> StoreResult<Option<MemberRow>>;
    /// A page of current members in user id order, after `after`.
    async fn members_page(&mut self, org: OrgId, after: Option<UserId>, limit: u32) -> StoreResult<Vec<MemberRow>>;
    /// A page of current members, the latest to join first (the user id orders those who joined
    /// at the same instant), after the one who joined at `before`'s instant with its user id.
    async fn members_newest_first(
        &mut self,
        org: OrgId,
        before: Option<(OffsetDateTime, UserId)>,
        limit: u32,
    ) -> StoreResult<Vec<MemberRow>>;
    async fn insert_membership(
        &mut self,
        org: OrgId,
        user: UserId,
        role: OrgRole,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Sets a current member's notification settings for the org's own emails; Err(Conflict)
    /// without a current membership.
    async fn set_org_notifications(
        &mut self,
        org: OrgId,
        user: UserId,
        settings: &std::collections::BTreeMap<String, bool>,
    ) -> StoreResult<()>;
    async fn set_membership_role(&mut self, org: OrgId, user: UserId, role: OrgRole) -> StoreResult<()>;
    /// Ends the current membership (and the user's teams in that org), keeping the rows.
    async fn end_membership(&mut self, org: OrgId, user: UserId, at: OffsetDateTime) -> StoreResult<()>;
    async fn memberships_of(&mut self, user: UserId) -> StoreResult<Vec<MembershipOfUser>>;
    /// The user's current membership of one org: one row, however many orgs the user is in.
    async fn membership_in(&mut self, org: OrgId, user: UserId) -> StoreResult<Option<MembershipOfUser>>;
}

/// Teams and team memberships.
#[async_trait]
pub trait Teams {
    async fn insert_team(&mut self, team: &TeamRow) -> StoreResult<()>;
    async fn team(&mut self, id: TeamId) -> StoreResult<Option<TeamRow>>;
    async fn teams_of_org(&mut self, org: OrgId, before: Option<TeamId>, limit: u32) -> StoreResult<Vec<TeamRow>>;
    async fn update_team(&mut self, team: &TeamRow) -> StoreResult<()>;
    async fn team_members(&mut self, team: TeamId) -> StoreResult<Vec<TeamMemberRow>>;
    async fn put_team_member(
        &mut self,
        team: TeamId,
        user: UserId,
        role: TeamRole,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn end_team_member(&mut self, team: TeamId, user: UserId, at: OffsetDateTime) -> StoreResult<()>;
    async fn teams_of_user(&mut self, user: UserId) -> StoreResult<Vec<TeamMemberRow>>;
}

/// Sessions and API tokens.
#[async_trait]
pub trait Credentials {
    async fn insert_session(&mut self, session: &SessionRow) -> StoreResult<()>;
    async fn session_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<SessionRow>>;
    async fn session(&mut self, id: SessionId) -> StoreResult<Option<SessionRow>>;
    /// Sessions neither revoked nor expired at `now`, newest first.
    async fn live_sessions(&mut self, user: UserId, now: OffsetDateTime) -> StoreResult<Vec<SessionRow>>;
    async fn revoke_session(&mut self, id: SessionId, at: OffsetDateTime) -> StoreResult<()>;
    async fn insert_api_token(&mut self, token: &ApiTokenRow) -> StoreResult<()>;
    async fn api_token_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<ApiTokenRow>>;
    /// Tokens not revoked, newest first.
    async fn api_tokens_of(&mut self, user: UserId) -> StoreResult<Vec<ApiTokenRow>>;
    async fn revoke_api_token(&mut self, id: TokenId, at: OffsetDateTime) -> StoreResult<()>;
}

/// The audit log.
#[async_trait]
pub trait Audit {
    /// Seals the drafts into the chain after its current head and stores them.
    async fn append_audit(&mut self, drafts: Vec<AuditDraft>, at: OffsetDateTime) -> StoreResult<Vec<AuditRecord>>;
    /// Events matching the filter, newest first.
    async fn list_audit(&mut self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;
    /// Erases the personal part of the events about `user` (and of their logins); returns how many.
    async fn redact_personal(&mut self, user: UserId) -> StoreResult<u64>;
    /// The last archived event's (seq, hash), if events were archived.
    async fn audit_anchor(&mut self) -> StoreResult<Option<(i64, String)>>;
    /// Records the anchor and deletes the events up to it (they are in the archive file).
    async fn drop_archived_audit(&mut self, seq: i64, hash: &str, at: OffsetDateTime) -> StoreResult<u64>;
    /// Events with `seq` above `after`, oldest first.
    async fn audit_chain(&mut self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    /// Keeps a signed checkpoint; one already kept for its (seq, kind) stays as it is.
    async fn insert_audit_checkpoint(&mut self, checkpoint: &CheckpointRow) -> StoreResult<()>;
    /// Every kept checkpoint, by seq.
    async fn audit_checkpoints(&mut self) -> StoreResult<Vec<CheckpointRow>>;
    /// Sign-ins (`user.login` events still in the log) per UTC day since `since`, oldest first;
    /// days without any are left out.
    async fn sign_ins_per_day(&mut self, since: OffsetDateTime) -> StoreResult<Vec<(OffsetDateTime, u64)>>;
}

/// Instance settings and idempotent replies.
#[async_trait]
pub trait Settings {
    /// The settings document and its version, if ever written.
    async fn instance_doc(&mut self) -> StoreResult<Option<(Value, i64)>>;
    async fn put_instance_doc(&mut self, doc: &Value, version: i64) -> StoreResult<()>;
    async fn idempotent_response(&mut self, scope: &str, key: &str) -> StoreResult<Option<IdempotentResponse>>;
    /// A named secret Steward keeps for itself.
    async fn instance_secret(&mut self, name: &str) -> StoreResult<Option<String>>;
    /// Stores a named secret unless one exists; returns the one that holds.
    async fn ensure_instance_secret(&mut self, name: &str, value: &str, at: OffsetDateTime) -> StoreResult<String>;
    async fn save_idempotent_response(
        &mut self,
        scope: &str,
        key: &str,
        response: &IdempotentResponse,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
}

/// What deactivation, reactivation and deprovisioning need beyond single rows.
#[async_trait]
pub trait Lifecycle {
    /// Marks every current org and team membership of the user dormant (or active again).
    async fn set_memberships_dormant(&mut self, user: UserId, dormant: bool) -> StoreResult<()>;
    /// Revokes every live session and API token of the user; returns how many.
    async fn revoke_all_credentials(&mut self, user: UserId, at: OffsetDateTime) -> StoreResult<u64>;
    /// Orgs whose recorded owner is the user.
    async fn orgs_owned_by(&mut self, user: UserId) -> StoreResult<Vec<OrgRow>>;
    async fn insert_handover(&mut self, handover: &HandoverRow) -> StoreResult<()>;
    /// Hand-overs from the user not yet closed.
    async fn open_handovers_from(&mut self, user: UserId) -> StoreResult<Vec<HandoverRow>>;
    async fn close_handover(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<()>;
    /// The instance's placeholder owner, if created.
    async fn placeholder_user(&mut self) -> StoreResult<Option<UserRow>>;
    async fn insert_deprovision(&mut self, record: &DeprovisionRow) -> StoreResult<()>;
    /// The org's records, newest first.
    async fn deprovisions_of(&mut self, org: OrgId) -> StoreResult<Vec<DeprovisionRow>>;
    async fn close_deprovision(&mut self, id: uuid::Uuid, at: OffsetDateTime, by: Option<UserId>) -> StoreResult<()>;
    /// Erases what an org holds: assets, teams, memberships (but the owner's), invitations, usage,
    /// deprovision records, and the personal parts of its audit events. Returns rows erased.
    async fn purge_org_data(&mut self, org: OrgId, owner: UserId) -> StoreResult<u64>;
}

/// Invitations and password resets: single-use secrets kept as digests.
#[async_trait]
pub trait Invitations {
    async fn insert_invitation(&mut self, invitation: &InvitationRow) -> StoreResult<()>;
    async fn invitation_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<InvitationRow>>;
    async fn accept_invitation(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<()>;
    /// Cancels the user's pending invitations; returns how many.
    async fn cancel_invitations_of(&mut self, user: UserId, at: OffsetDateTime) -> StoreResult<u64>;
    async fn invitation(&mut self, id: uuid::Uuid) -> StoreResult<Option<InvitationRow>>;
    /// Invitations to orgs neither accepted, cancelled nor expired at `now`, newest first: to `org`
    /// or to `user`, whichever is given; older than `before`, when given.
    async fn open_invitations(
        &mut self,
        org: Option<OrgId>,
        user: Option<UserId>,
        now: OffsetDateTime,
        before: Option<uuid::Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationRow>>;
    /// Cancels one open invitation; Err(NotFound) when it is not open.
    async fn cancel_invitation(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<()>;
    async fn insert_reset(&mut self, reset: &ResetRow) -> StoreResult<()>;
    async fn reset_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<ResetRow>>;
    async fn use_reset(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<()>;
    /// Marks every unused reset link of the user used; returns how many.
    async fn void_resets_of(&mut self, user: UserId, at: OffsetDateTime) -> StoreResult<u64>;
}

/// The outbox of emails.
#[async_trait]
pub trait Outbox {
    async fn enqueue(&mut self, message: &OutboxRow) -> StoreResult<()>;
    /// Claims up to `limit` due messages until `lease_until`, so that no other worker takes them.
    async fn claim_due(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>>;
    async fn mark_sent(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<()>;
    async fn mark_dropped(&mut self, id: uuid::Uuid, at: OffsetDateTime, why: &str) -> StoreResult<()>;
    async fn mark_retry(&mut self, id: uuid::Uuid, next_attempt_at: OffsetDateTime, error: &str) -> StoreResult<()>;
    /// Messages for a recipient, newest first (for tests and support).
    async fn outbox_for(&mut self, recipient: &str) -> StoreResult<Vec<OutboxRow>>;
}

/// A consumption to apply.
#[derive(Debug, Clone, Copy)]
pub struct Consume {
    pub org: OrgId,
    pub period_start: OffsetDateTime,
    pub period_end: OffsetDateTime,
    /// When it happens: its UTC day counts it in the org's usage per day.
    pub at: OffsetDateTime,
    pub operations: u64,
    pub transfer: u64,
    pub operations_limit: Option<u64>,
    pub transfer_limit: Option<u64>,
}

/// A usage event of a batch: a consumption with the id its sender gave it.
#[derive(Debug, Clone)]
pub struct UsageEvent {
    /// The sender's id, unique per org: an id already counted is not counted again.
    pub id: String,
    /// The consumption, as [`Consume`] (its org, period and limits).
    pub consume: Consume,
    /// Until when the id is remembered: the end of the period after the one it counts in.
    pub keep_until: OffsetDateTime,
}

/// What became of a usage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Counted.
    Accepted,
    /// Its id was counted before (or earlier in the same batch): nothing counted.
    Duplicate,
    /// The period's budget did not cover it: nothing counted.
    Refused,
}

/// Usage, assets and the facts of a permission decision.
#[async_trait]
pub trait Metering {
    /// Counts a batch of usage events in this (write) transaction, each all or nothing and in
    /// the order given, exactly against its org's budget: the period rows of the batch's orgs are
    /// locked and read once, each event is decided against the running totals, and the accepted
    /// ones are written with a statement per org, plus their ids. Ids remembered past their
    /// `keep_until` are forgotten first. Answers an outcome per event, and the usage of each
    /// period that accepted something.
    async fn ingest_usage(
        &mut self,
        events: &[UsageEvent],
        now: OffsetDateTime,
    ) -> StoreResult<(Vec<EventOutcome>, Vec<UsageRow>)>;
    /// Forgets up to `limit` event ids of any org whose `keep_until` has passed; how many.
    async fn forget_usage_events(&mut self, now: OffsetDateTime, limit: u32) -> StoreResult<u64>;
    /// The org's usage in the period starting at `period_start`, if anything was consumed.
    async fn usage(&mut self, org: OrgId, period_start: OffsetDateTime) -> StoreResult<Option<UsageRow>>;
    /// The org's periods, newest first.
    async fn usage_history(&mut self, org: OrgId, limit: u32) -> StoreResult<Vec<UsageRow>>;
    /// What the org consumed on each UTC day from `since` up to `until`, oldest first; days
    /// without a consume are left out.
    async fn usage_days(
        &mut self,
        org: OrgId,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<Vec<UsageDayRow>>;
    /// Records that `threshold` (percent) was crossed in the period; true for the first caller only.
    async fn claim_usage_alert(
        &mut self,
        org: OrgId,
        period_start: OffsetDateTime,
        threshold: u64,
        at: OffsetDateTime,
    ) -> StoreResult<bool>;
    async fn insert_asset(&mut self, asset: &AssetRow) -> StoreResult<()>;
    async fn asset(&mut self, id: uuid::Uuid) -> StoreResult<Option<AssetRow>>;
    async fn assets_of_org(&mut self, org: OrgId, before: Option<uuid::Uuid>, limit: u32)
    -> StoreResult<Vec<AssetRow>>;
    async fn update_asset(&mut self, asset: &AssetRow) -> StoreResult<()>;
    async fn asset_totals(&mut self, org: OrgId) -> StoreResult<AssetTotals>;
    /// Current memberships plus pending, unexpired invitations: the seats in use.
    async fn seats_in_use(&mut self, org: OrgId, now: OffsetDateTime) -> StoreResult<u64>;
    async fn team_count(&mut self, org: OrgId) -> StoreResult<u64>;
    /// The facts of a decision about `user` in `org`, in one read; `None` when either is unknown.
    async fn check_facts(
        &mut self,
        user: UserId,
        org: OrgId,
        period_start: OffsetDateTime,
    ) -> StoreResult<Option<CheckFacts>>;
}

/// Webhook endpoints and deliveries.
#[async_trait]
pub trait Webhooks {
    async fn insert_webhook(&mut self, hook: &WebhookRow) -> StoreResult<()>;
    /// Endpoints not disabled, newest first.
    async fn webhooks(&mut self) -> StoreResult<Vec<WebhookRow>>;
    async fn disable_webhook(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<()>;
    async fn enqueue_delivery(&mut self, delivery: &DeliveryRow) -> StoreResult<()>;
    /// Claims due deliveries until `lease_until`.
    async fn claim_deliveries(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>>;
    /// Records an attempt: delivered, retry at `next`, or failed for good.
    async fn record_attempt(
        &mut self,
        id: uuid::Uuid,
        status: Option<i64>,
        error: Option<&str>,
        delivered: Option<OffsetDateTime>,
        next: Option<OffsetDateTime>,
        failed: Option<OffsetDateTime>,
    ) -> StoreResult<()>;
    /// An endpoint's deliveries, newest first.
    async fn deliveries_of(
        &mut self,
        hook: uuid::Uuid,
        before: Option<uuid::Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>>;
    async fn delivery(&mut self, id: uuid::Uuid) -> StoreResult<Option<DeliveryRow>>;
    /// Queues a delivery again, now.
    async fn redeliver(&mut self, id: uuid::Uuid, now: OffsetDateTime) -> StoreResult<()>;
}

/// Access reviews.
#[async_trait]
pub trait Reviews {
    async fn insert_review(&mut self, review: &ReviewRow, items: &[ReviewItemRow]) -> StoreResult<()>;
    async fn review(&mut self, id: uuid::Uuid) -> StoreResult<Option<(ReviewRow, Vec<ReviewItemRow>)>>;
    async fn decide(&mut self, id: uuid::Uuid, user: UserId, decision: &str) -> StoreResult<()>;
    async fn complete_review(&mut self, id: uuid::Uuid, by: UserId, at: OffsetDateTime) -> StoreResult<()>;
}

/// SCIM: users and groups queried by filter, what SCIM keeps beside them, and SCIM tokens.
#[async_trait]
pub trait Scim {
    /// A page of the users a SCIM client sees (not hidden, not anonymized), and how many match.
    async fn scim_users(
        &mut self,
        query: &ScimQuery<UserField>,
    ) -> StoreResult<(u64, Vec<(UserRow, Option<ScimUserRow>)>)>;
    /// A user with what SCIM keeps of it, hidden or not.
    async fn scim_user(&mut self, id: UserId) -> StoreResult<Option<(UserRow, Option<ScimUserRow>)>>;
    /// The user whose `userName` (or, without one, email) has this case-insensitive key.
    async fn user_by_user_name_key(&mut self, key: &str) -> StoreResult<Option<UserRow>>;
    /// Writes what SCIM keeps of a user, and its `userName`.
    async fn put_scim_user(&mut self, row: &ScimUserRow) -> StoreResult<()>;
    /// [`Scim::put_scim_user`] for a user whose `userName` stays the one stored: writes the
    /// rest of what SCIM keeps.
    async fn put_scim_attrs(&mut self, row: &ScimUserRow) -> StoreResult<()>;
    /// Records that the user gave up an email, so that nobody else ever takes it.
    async fn retire_email(&mut self, user: UserId, email_key: &str, at: OffsetDateTime) -> StoreResult<()>;
    /// The user who once held an email key they gave up, and drops that record when it is
    /// `reclaimer` taking it back.
    async fn retired_email_holder(&mut self, email_key: &str, reclaimer: Option<UserId>)
    -> StoreResult<Option<UserId>>;
    /// A page of the groups (teams) a SCIM client sees, and how many match.
    async fn scim_groups(&mut self, query: &ScimQuery<GroupField>) -> StoreResult<(u64, Vec<ScimGroupRow>)>;
    /// A team as SCIM sees it, unless archived.
    async fn scim_group(&mut self, id: TeamId) -> StoreResult<Option<ScimGroupRow>>;
    async fn put_scim_group(&mut self, team: TeamId, external_id: Option<&str>, at: OffsetDateTime) -> StoreResult<()>;
    /// Archives a team: its memberships end (kept as history) and its name is free again.
    async fn archive_team(&mut self, team: TeamId, at: OffsetDateTime) -> StoreResult<()>;
    /// Orgs (not purged) whose name is this, ignoring case; at most two, to tell ambiguity.
    async fn orgs_named(&mut self, name: &str) -> StoreResult<Vec<OrgRow>>;
    async fn insert_scim_token(&mut self, token: &ScimTokenRow) -> StoreResult<()>;
    async fn scim_token_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<ScimTokenRow>>;
    /// Tokens not revoked, newest first.
    async fn scim_tokens(&mut self) -> StoreResult<Vec<ScimTokenRow>>;
    async fn revoke_scim_token(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<bool>;
}

/// Two-factor enrolments, recovery codes and the failed-login lockout of each account.
#[async_trait]
pub trait Security {
    async fn totp(&mut self, user: UserId) -> StoreResult<Option<TotpRow>>;
    /// Starts an enrolment, replacing whatever the user had.
    async fn put_totp(&mut self, row: &TotpRow) -> StoreResult<()>;
    /// Confirms the enrolment with the step of its first code.
    async fn confirm_totp(&mut self, user: UserId, at: OffsetDateTime, step: i64) -> StoreResult<()>;
    /// Records `step` as used if it is later than the last used one, in one conditional update;
    /// false when it is not (a replayed code), and then nothing changed.
    async fn use_totp_step(&mut self, user: UserId, step: i64) -> StoreResult<bool>;
    /// Removes the enrolment and the recovery codes; whether there was an enrolment.
    async fn delete_totp(&mut self, user: UserId) -> StoreResult<bool>;
    /// Replaces the user's recovery codes with these digests.
    async fn replace_recovery_codes(&mut self, user: UserId, hashes: &[String], at: OffsetDateTime) -> StoreResult<()>;
    /// Marks an unused code used; false when the user has no such unused code.
    async fn use_recovery_code(&mut self, user: UserId, hash: &str, at: OffsetDateTime) -> StoreResult<bool>;
    /// Recovery codes not used yet.
    async fn recovery_codes_left(&mut self, user: UserId) -> StoreResult<i64>;
    /// The account's failed-login state (the default when it never failed).
    async fn lockout(&mut self, user: UserId) -> StoreResult<LockoutState>;
    async fn put_lockout(&mut self, user: UserId, state: &LockoutState, at: OffsetDateTime) -> StoreResult<()>;
}

/// Instance roles operators define (the built-in ones live in `steward-core`).
#[async_trait]
pub trait Roles {
    /// Every defined role, by name.
    async fn custom_roles(&mut self) -> StoreResult<Vec<RoleRow>>;
    async fn custom_role(&mut self, name: &str) -> StoreResult<Option<RoleRow>>;
    /// Adds a role; `Conflict(RoleExists)` when the name is taken.
    async fn insert_custom_role(&mut self, role: &RoleRow) -> StoreResult<()>;
    /// Writes the permissions and bumps the version, if the role is still at `role.version`.
    async fn update_custom_role(&mut self, role: &RoleRow) -> StoreResult<()>;
    async fn delete_custom_role(&mut self, name: &str) -> StoreResult<()>;
    /// Users holding the role, whatever their status (a deactivated user gets it back on
    /// reactivation).
    async fn role_holders(&mut self, name: &str) -> StoreResult<i64>;
    /// Every role held by a user who holds `name` (`name` among them when anyone holds it).
    async fn roles_held_beside(&mut self, name: &str) -> StoreResult<Vec<String>>;
}

/// Single sign-on: trusted JWT issuers, OpenID Connect connections with their domains, and the
/// external identities linked to users.
#[async_trait]
pub trait Sso {
    async fn insert_jwt_issuer(&mut self, row: &JwtIssuerRow) -> StoreResult<()>;
    /// Every trusted issuer, newest first.
    async fn jwt_issuers(&mut self) -> StoreResult<Vec<JwtIssuerRow>>;
    /// The issuers whose `iss` is this.
    async fn jwt_issuers_named(&mut self, issuer: &str) -> StoreResult<Vec<JwtIssuerRow>>;
    async fn delete_jwt_issuer(&mut self, id: uuid::Uuid) -> StoreResult<bool>;
    /// Stores a connection and claims its domains.
    async fn insert_sso_connection(&mut self, row: &SsoConnectionRow) -> StoreResult<()>;
    /// Writes every column and the domains, bumping the version, if still at `row.version`.
    async fn update_sso_connection(&mut self, row: &SsoConnectionRow) -> StoreResult<()>;
    async fn sso_connection(&mut self, id: uuid::Uuid) -> StoreResult<Option<SsoConnectionRow>>;
    /// Every connection, newest first.
    async fn sso_connections(&mut self) -> StoreResult<Vec<SsoConnectionRow>>;
    /// The connection owning an email domain (lower case).
    async fn sso_connection_for_domain(&mut self, domain: &str) -> StoreResult<Option<SsoConnectionRow>>;
    async fn delete_sso_connection(&mut self, id: uuid::Uuid) -> StoreResult<bool>;
    /// The user an issuer's subject is linked to.
    async fn external_identity(&mut self, issuer: &str, subject: &str) -> StoreResult<Option<UserId>>;
    /// Links an issuer's subject to a user (a second link of the same subject is ignored).
    async fn link_external_identity(
        &mut self,
        issuer: &str,
        subject: &str,
        user: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<()>;
}

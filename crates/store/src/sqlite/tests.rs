//! The SQLite backend's own tests: durable commits, batched statements, dropped transactions,
//! reads that end themselves, a chain shared with another process and the writer's memo.

use super::*;
use crate::query::{SCIM_USER_COLUMNS, ScimQuery};
use sqlx::AssertSqlSafe;
use steward_core::AuditDraft;
use uuid::Uuid;

/// A store in a directory of its own, kept as long as the directory is.
async fn opened(durable: bool) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(&dir), durable).await.unwrap();
    (dir, store)
}

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("steward.db").display())
}

#[tokio::test]
async fn a_durable_store_answers_a_commit_once_it_is_on_disk() {
    let (_dir, store) = opened(true).await;
    assert_eq!(store.flush.synced(), store.flush.seen(), "the migrations are on disk once the store opens");
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await.unwrap();
    tx.ensure_instance_secret("probe", "value", now).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.flush.synced(), store.flush.seen(), "a commit returned before it was flushed");
    let mut read = store.read().await.unwrap();
    assert_eq!(read.instance_secret("probe").await.unwrap().as_deref(), Some("value"));
    read.rollback().await.unwrap();

    // Writers at once share flushes, and each is answered after its own.
    let mut writers = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut tx = store.write().await.unwrap();
            tx.ensure_instance_secret(&format!("probe {i}"), "value", now).await.unwrap();
            tx.commit().await.unwrap();
            store.flush.synced()
        }));
    }
    let before = store.flush.synced();
    for w in writers {
        assert!(w.await.unwrap() > before);
    }
    assert_eq!(store.flush.synced(), store.flush.seen());
}

#[tokio::test]
async fn a_commit_waiting_for_its_flush_leaves_the_writer_to_the_next() {
    let (_dir, store) = opened(true).await;
    let now = OffsetDateTime::now_utc();
    let held = store.flush.hold().await;
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.write().await.unwrap();
            tx.ensure_instance_secret("first", "value", now).await.unwrap();
            tx.commit().await.unwrap();
        })
    };
    // Once the first commit is made (visible; a reader that is dropped waits for no flush)…
    loop {
        let mut read = store.read().await.unwrap();
        let made = read.instance_secret("first").await.unwrap().is_some();
        drop(read);
        if made {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // …a second writer gets the writer while the first still waits for its flush.
    let second = async {
        let mut tx = store.write().await.unwrap();
        tx.ensure_instance_secret("second", "value", now).await.unwrap();
        tx
    };
    let tx = tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("the writer stayed held while a commit waited for its flush");
    assert!(!first.is_finished(), "a commit was answered before its flush");
    drop(held);
    tx.commit().await.unwrap();
    first.await.unwrap();
    assert_eq!(store.flush.synced(), store.flush.seen());
}

#[tokio::test]
async fn a_transaction_dropped_midway_leaves_the_connection_free_and_keeps_nothing() {
    let (_dir, store) = opened(false).await;
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await.unwrap();
    tx.ensure_instance_secret("dropped", "value", now).await.unwrap();
    drop(tx);
    // The next write gets the one writer connection, outside any transaction.
    let mut tx = store.write().await.unwrap();
    assert!(tx.instance_secret("dropped").await.unwrap().is_none(), "a dropped transaction was kept");
    tx.ensure_instance_secret("kept", "value", now).await.unwrap();
    tx.commit().await.unwrap();
    let mut read = store.read().await.unwrap();
    assert!(read.instance_secret("kept").await.unwrap().is_some());
    read.rollback().await.unwrap();
}

#[tokio::test]
async fn waiting_writes_are_read_back_in_order_and_a_failed_one_keeps_the_rest_out() {
    let (_dir, store) = opened(false).await;
    let now = OffsetDateTime::now_utc();
    let mut u = UserRow::new("waits@x.test", "waits@x.test".into(), "Waits", steward_core::UserStatus::Active, now);
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    u.name = "Renamed".into();
    tx.update_user(&u).await.unwrap();
    let draft = AuditDraft::new("probe.waits", steward_core::Actor::SYSTEM, steward_core::audit::TargetType::User, "u");
    tx.append_audit(vec![draft], now).await.unwrap();
    // One trip sends the three, then reads.
    let back = tx.user(u.id).await.unwrap().unwrap();
    assert_eq!((back.name.as_str(), back.version), ("Renamed", 2));
    tx.commit().await.unwrap();

    // A stale update waits, and the commit it goes with refuses it and everything before it.
    let mut tx = store.write().await.unwrap();
    let draft =
        AuditDraft::new("probe.undone", steward_core::Actor::SYSTEM, steward_core::audit::TargetType::User, "u");
    tx.append_audit(vec![draft], now).await.unwrap();
    u.name = "Stale".into();
    tx.update_user(&u).await.unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::VersionMismatch)), "{err:?}");
    let mut read = store.read().await.unwrap();
    assert_eq!(read.user(u.id).await.unwrap().unwrap().name, "Renamed");
    let kinds: Vec<String> = read.audit_chain(0, 10).await.unwrap().into_iter().map(|e| e.kind).collect();
    read.rollback().await.unwrap();
    assert_eq!(kinds, ["probe.waits"]);
}

/// The query plan of `sql` (with its binds), one step per line.
async fn plan(store: &SqliteStore, sql: &crate::query::Sql) -> String {
    let text = format!("EXPLAIN QUERY PLAN {}", sql.text);
    let mut query = sqlx::query(AssertSqlSafe(text));
    for b in &sql.binds {
        query = match b {
            crate::query::Bind::Text(s) => query.bind(s.clone()),
            crate::query::Bind::Int(i) => query.bind(*i),
        };
    }
    let rows = query.fetch_all(&mut *store.readers.acquire().await.unwrap()).await.unwrap();
    rows.iter().map(|r| get::<String>(r, "detail").unwrap()).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn an_unfiltered_scim_list_reads_one_page_in_id_order_and_counts_from_indexes() {
    let (_dir, store) = opened(false).await;
    let everyone = ScimQuery { cond: crate::query::Cond::Const(true), sort: None, offset: 0, limit: 20, org: None };
    let (page, count) = crate::query::users_sql(&everyone, &format!("{USER_COLUMNS}, {SCIM_USER_COLUMNS}"));
    let page = plan(&store, &page).await;
    assert!(page.contains("USING INDEX users_people"), "{page}");
    assert!(!page.contains("TEMP B-TREE"), "a list page sorts every user: {page}");
    let count = plan(&store, &count).await;
    assert!(count.contains("USING INDEX users_people") && count.contains("USING INDEX scim_users_hidden"), "{count}");
    assert!(!count.contains("SCAN u\n") && !count.ends_with("SCAN u"), "the count reads the users table: {count}");
}

async fn append(store: &SqliteStore, kind: &'static str) {
    let mut tx = store.write().await.unwrap();
    let draft = AuditDraft::new(kind, steward_core::Actor::SYSTEM, steward_core::audit::TargetType::User, "probe");
    tx.append_audit(vec![draft], OffsetDateTime::now_utc()).await.unwrap();
    tx.commit().await.unwrap();
}

/// Frames of the log a checkpoint could not copy into the database: those after the oldest
/// snapshot a reader holds.
async fn left_in_log(dir: &tempfile::TempDir) -> i64 {
    let url = format!("sqlite://{}", dir.path().join("steward.db").display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let (_busy, log, copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut conn).await.unwrap();
    log - copied
}

#[tokio::test]
async fn a_read_told_its_last_query_ends_with_it_and_holds_back_no_checkpoint() {
    let (dir, store) = opened(true).await;
    append(&store, "probe.first").await;
    let mut open = store.read().await.unwrap();
    assert!(open.user(UserId::new()).await.unwrap().is_none());
    let mut ended = store.read().await.unwrap();
    ended.last_read();
    assert!(ended.user(UserId::new()).await.unwrap().is_none());
    append(&store, "probe.second").await;
    assert!(left_in_log(&dir).await > 0, "a read left open holds its snapshot, and the log behind it");
    open.rollback().await.unwrap();
    // `ended` is not rolled back yet, but its last query ended it.
    assert_eq!(left_in_log(&dir).await, 0, "a read still held its snapshot after its last query");
    ended.rollback().await.unwrap();
    assert_eq!(store.flush.synced(), store.flush.seen(), "a read ended early answered before the flush");
    // A transaction that writes is not ended by the hint.
    let mut tx = store.write().await.unwrap();
    tx.last_read();
    assert!(tx.user(UserId::new()).await.unwrap().is_none());
    let draft = AuditDraft::new("probe.third", steward_core::Actor::SYSTEM, steward_core::audit::TargetType::User, "x");
    tx.append_audit(vec![draft], OffsetDateTime::now_utc()).await.unwrap();
    tx.rollback().await.unwrap();
    let mut read = store.read().await.unwrap();
    let kinds: Vec<String> = read.audit_chain(0, 10).await.unwrap().into_iter().map(|e| e.kind).collect();
    read.rollback().await.unwrap();
    assert_eq!(kinds, ["probe.first", "probe.second"], "a write told of a last read committed early");
}

#[tokio::test]
async fn the_audit_chain_stays_whole_when_another_process_appends_to_it() {
    let (dir, serving) = opened(false).await;
    // A second store on the same file stands for another process (`steward admin create`).
    let other = SqliteStore::open(&url(&dir), false).await.unwrap();
    append(&serving, "probe.first").await;
    append(&serving, "probe.second").await;
    append(&other, "probe.elsewhere").await;
    append(&serving, "probe.third").await;
    let mut tx = serving.write().await.unwrap();
    let draft =
        AuditDraft::new("probe.undone", steward_core::Actor::SYSTEM, steward_core::audit::TargetType::User, "x");
    let sealed = tx.append_audit(vec![draft], OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(sealed[0].seq, 5, "the head is read with the transaction's BEGIN");
    tx.rollback().await.unwrap();
    append(&serving, "probe.fourth").await;

    let mut read = serving.read().await.unwrap();
    let events = read.audit_chain(0, 100).await.unwrap();
    read.rollback().await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["probe.first", "probe.second", "probe.elsewhere", "probe.third", "probe.fourth"]);
    let mut check = steward_core::audit::ChainCheck::default();
    for e in &events {
        check.push(e);
    }
    assert_eq!(check.first_bad_seq(), None, "{events:#?}");
}

#[tokio::test]
async fn the_writer_sees_a_webhook_once_it_is_committed_and_never_one_rolled_back() {
    let (_dir, store) = opened(false).await;
    let hook = |url: &str| WebhookRow {
        id: Uuid::now_v7(),
        url: url.to_owned(),
        events: vec!["*".into()],
        secret: "whsec_probe".into(),
        created_at: OffsetDateTime::now_utc(),
        created_by: None,
        disabled_at: None,
    };
    let urls = |hooks: Vec<WebhookRow>| hooks.into_iter().map(|h| h.url).collect::<Vec<_>>();
    let known = |store: &SqliteStore| store.memo.lock().unwrap().webhooks.clone();
    let mut tx = store.write().await.unwrap();
    assert!(tx.webhooks().await.unwrap().is_empty());
    tx.commit().await.unwrap();
    assert_eq!(known(&store), Some(vec![]), "the writer keeps what it read");

    let mut tx = store.write().await.unwrap();
    tx.insert_webhook(&hook("https://undone.example")).await.unwrap();
    assert_eq!(urls(tx.webhooks().await.unwrap()), ["https://undone.example"], "its own write, in its transaction");
    tx.rollback().await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert!(tx.webhooks().await.unwrap().is_empty(), "a rolled-back webhook is not kept");
    let kept = hook("https://kept.example");
    tx.insert_webhook(&kept).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert_eq!(urls(tx.webhooks().await.unwrap()), ["https://kept.example"]);
    tx.disable_webhook(kept.id, OffsetDateTime::now_utc()).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert!(tx.webhooks().await.unwrap().is_empty(), "a disabled webhook receives nothing");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_store_opened_not_durable_flushes_nothing() {
    let (_dir, store) = opened(false).await;
    let mut tx = store.write().await.unwrap();
    tx.ensure_instance_secret("probe", "value", OffsetDateTime::now_utc()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.flush.synced(), 0);
    assert!(store.flush.seen() > 0);
}

/// Consumes share their flushes: while one waits for the log to reach the disk, the next takes
/// the writer and commits, so that one flush then answers both.
#[tokio::test]
async fn a_consume_waiting_for_its_flush_leaves_the_writer_to_the_next() {
    use crate::{Consume, Store};
    let (_dir, store) = opened(true).await;
    let now = OffsetDateTime::now_utc();
    let owner = crate::UserRow::new(
        "owner@flush.test",
        "owner@flush.test".into(),
        "Owner",
        steward_core::UserStatus::Active,
        now,
    );
    let org = crate::OrgRow {
        id: steward_core::OrgId::new(),
        name: "Flushed".into(),
        external_id: None,
        owner_id: owner.id,
        state: steward_core::OrgState::Active,
        timezone: None,
        country: None,
        license: steward_core::License::default(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&owner).await.unwrap();
    tx.insert_org(&org).await.unwrap();
    tx.commit().await.unwrap();
    let take = Consume {
        org: org.id,
        period_start: now,
        period_end: now + time::Duration::days(30),
        at: now,
        operations: 1,
        transfer: 0,
        operations_limit: None,
        transfer_limit: None,
    };
    let held = store.flush.hold().await;
    let consumes: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume(&take).await.unwrap().unwrap() })
        })
        .collect();
    // All three commit (a reader sees them) while the flush is held…
    let committed = async {
        loop {
            let mut read = store.read().await.unwrap();
            let used = read.usage(org.id, now).await.unwrap().map_or(0, |u| u.operations_used);
            drop(read);
            if used == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), committed)
        .await
        .expect("a consume held the writer while it waited for its flush");
    // …and none is answered before its flush.
    assert!(consumes.iter().all(|c| !c.is_finished()), "a consume was answered before its flush");
    drop(held);
    for c in consumes {
        c.await.unwrap();
    }
}

/// A stored value that is not of its field's kind is refused as corrupt, naming its column,
/// whichever way it is wrong: never guessed, never a panic.
#[tokio::test]
async fn a_stored_value_of_the_wrong_kind_is_refused_naming_its_column() {
    let (dir, store) = opened(false).await;
    let now = OffsetDateTime::now_utc();
    let user = UserRow::new("odd@example.com", "odd@example.com".into(), "Odd", steward_core::UserStatus::Active, now);
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&user).await.unwrap();
    tx.commit().await.unwrap();
    let file = format!("sqlite://{}", dir.path().join("steward.db").display());
    // One connection that writes past the schema's own checks, as a damaged file would hold.
    let raw = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&file).await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON").execute(&raw).await.unwrap();
    for (change, column) in [
        ("UPDATE users SET status = 'asleep'", "status"),
        ("UPDATE users SET status = 'active', notifications = '[1'", "notifications"),
        ("UPDATE users SET notifications = '{}', last_login_at = 9223372036854775807", "last_login_at"),
        ("UPDATE users SET last_login_at = NULL, deactivate_by = 'someone'", "deactivate_by"),
    ] {
        sqlx::query(AssertSqlSafe(change)).execute(&raw).await.unwrap();
        let mut read = store.read().await.unwrap();
        match read.user(user.id).await {
            Err(StoreError::Corrupt(why)) => assert!(why.starts_with(&format!("{column}: ")), "{column}: {why}"),
            other => panic!("{column}: {other:?}"),
        }
        read.rollback().await.unwrap();
    }
    sqlx::query("UPDATE users SET deactivate_by = NULL").execute(&raw).await.unwrap();
    let mut read = store.read().await.unwrap();
    assert_eq!(read.user(user.id).await.unwrap().map(|u| u.email), Some(user.email), "read again once mended");
    read.rollback().await.unwrap();
}

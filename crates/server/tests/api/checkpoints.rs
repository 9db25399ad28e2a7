//! Signed checkpoints (invariant 12): whoever can write the database can rewrite an event and
//! recompute every later hash, delete the newest events, renumber history or forge an archive
//! anchor, and the hash chain alone still verifies; the checkpoints signed with a key kept
//! outside the database do not.

use std::process::Command;

use steward_core::AuditRecord;

use crate::helpers::*;

/// Waits for the command on the test's thread: the tests of this file run on a multi-threaded
/// runtime, so that the Steward they serve keeps answering (and committing) meanwhile; on one
/// thread a transaction the server had begun would wait for the command, and the command for it.
fn cli(app: &TestApp, key: Option<&str>, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.args(args).env("STEWARD_DATABASE_URL", &app.db_url).current_dir(app.dir.path());
    match key {
        Some(k) => cmd.env("STEWARD_AUDIT_KEY", k),
        None => cmd.env_remove("STEWARD_AUDIT_KEY"),
    };
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// A Steward signing with a fresh key, some history, and a checkpoint exported to a file.
async fn signed_app() -> (TestApp, String, std::path::PathBuf) {
    let key = steward::checkpoint::AuditKey::generate().unwrap();
    let k = key.clone();
    let app = spawn_app_with(move |c| {
        c.audit_key = Some(steward::config::Secret::new(k));
        c.audit_checkpoint_secs = 1;
    })
    .await;
    for i in 0..6 {
        app.user(&format!("person{i}@chain.test")).await;
    }
    // Steward signs its head within seconds, without being asked.
    let db = app.db().await;
    let head = db.i64("SELECT MAX(seq) FROM audit_events", &[]).await;
    let signed = "SELECT COUNT(*) FROM audit_checkpoints WHERE kind = 'head' AND seq = CAST(? AS BIGINT)";
    for _ in 0..100 {
        if db.i64(signed, &[&head.to_string()]).await > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(db.i64(signed, &[&head.to_string()]).await, 1, "the head was signed");
    let file = app.dir.path().join("checkpoint.json");
    let (code, out) = cli(&app, Some(&key), &["audit", "checkpoint", "--output", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&app, Some(&key), &["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signed checkpoints hold"), "{out}");
    (app, key, file)
}

/// Removes the append-only guards, as someone holding the database can.
async fn unguard(db: &Db) {
    let on = if db.is_pg() { " ON audit_events" } else { "" };
    for t in ["audit_events_append_only_update", "audit_events_append_only_delete"] {
        db.run(&format!("DROP TRIGGER {t}{on}"), &[]).await;
    }
}

/// Recomputes every hash from `from` on, so that the chain verifies again.
async fn rehash(app: &TestApp, db: &Db) {
    let mut tx = app.state.store.read().await.unwrap();
    let anchor = tx.audit_anchor().await.unwrap();
    let events: Vec<AuditRecord> = tx.audit_chain(anchor.as_ref().map_or(0, |a| a.0), 100_000).await.unwrap();
    tx.rollback().await.unwrap();
    let mut prev = anchor.map_or_else(String::new, |a| a.1);
    if prev.is_empty() {
        prev = events[0].prev_hash.clone();
    }
    for mut e in events {
        e.prev_hash = prev.clone();
        e.hash = e.computed_hash();
        db.run(
            "UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = CAST(? AS BIGINT)",
            &[&e.prev_hash, &e.hash, &e.seq.to_string()],
        )
        .await;
        prev = e.hash;
    }
}

fn chain_intact(out: &str) -> bool {
    out.contains("audit chain intact")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_and_rehashed_event_is_caught() {
    let (app, key, file) = signed_app().await;
    let db = app.db().await;
    unguard(&db).await;
    db.run("UPDATE audit_events SET detail = '{\"status\":\"invited\"}' WHERE seq = 3", &[]).await;
    rehash(&app, &db).await;
    let (code, out) = cli(&app, Some(&key), &["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert!(chain_intact(&out), "the chain alone is fooled: {out}");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rewritten"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_newest_events_are_caught() {
    let (app, key, file) = signed_app().await;
    let db = app.db().await;
    unguard(&db).await;
    let head = db.i64("SELECT MAX(seq) FROM audit_events", &[]).await;
    db.run("DELETE FROM audit_events WHERE seq > CAST(? AS BIGINT)", &[&(head - 2).to_string()]).await;
    db.run("DELETE FROM audit_checkpoints", &[]).await;
    let (code, out) = cli(&app, Some(&key), &["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert!(chain_intact(&out), "{out}");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("events were deleted"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn renumbered_history_is_caught() {
    let (app, key, file) = signed_app().await;
    let db = app.db().await;
    unguard(&db).await;
    db.run("DELETE FROM audit_events WHERE seq = 2", &[]).await;
    db.run("UPDATE audit_events SET seq = seq + 100000 WHERE seq > 2", &[]).await;
    db.run("UPDATE audit_events SET seq = seq - 100001 WHERE seq > 100000", &[]).await;
    rehash(&app, &db).await;
    let (code, out) = cli(&app, Some(&key), &["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert!(chain_intact(&out), "{out}");
    assert_eq!(code, 1, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_archive_anchor_is_caught_and_an_archiving_signs_its_own() {
    let (app, key, file) = signed_app().await;
    let db = app.db().await;
    // A real archiving signs its anchor.
    app.patch("/api/v1/instance", &app.admin, serde_json::json!({"policies": {"audit_retention_days": 0}}))
        .await
        .expect(200);
    let out_file = app.dir.path().join("archive.jsonl");
    let (code, out) = cli(&app, Some(&key), &["audit", "archive", "--output", out_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    for i in 0..3 {
        app.user(&format!("later{i}@chain.test")).await;
    }
    let (code, out) = cli(&app, Some(&key), &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    // Someone deletes more of the oldest events and writes a matching anchor.
    unguard(&db).await;
    let anchor = db.i64("SELECT seq FROM audit_anchor WHERE id = 1", &[]).await;
    let forged = anchor + 2;
    let hash = db
        .opt_string("SELECT hash FROM audit_events WHERE seq = CAST(? AS BIGINT)", &[&forged.to_string()])
        .await
        .unwrap();
    db.run("DELETE FROM audit_events WHERE seq <= CAST(? AS BIGINT)", &[&forged.to_string()]).await;
    db.run("UPDATE audit_anchor SET seq = CAST(? AS BIGINT), hash = ? WHERE id = 1", &[&forged.to_string(), &hash])
        .await;
    let (code, out) = cli(&app, Some(&key), &["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert!(chain_intact(&out), "{out}");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("anchor"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_steward_says_the_chain_is_not_signed() {
    let app = spawn_app().await;
    let (code, out) = cli(&app, None, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("NOT checked"), "{out}");
    let (code, out) = cli(&app, None, &["audit", "checkpoint"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("STEWARD_AUDIT_KEY"), "{out}");
    // A running Steward with a key signs its head without being asked.
    let key = steward::checkpoint::AuditKey::generate().unwrap();
    let signing = spawn_app_with(move |c| c.audit_key = Some(steward::config::Secret::new(key))).await;
    let db = signing.db().await;
    let mut kept = 0;
    for _ in 0..50 {
        kept = db.i64("SELECT COUNT(*) FROM audit_checkpoints", &[]).await;
        if kept > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(kept > 0, "no checkpoint was signed");
}

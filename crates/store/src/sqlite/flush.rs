//! Group commit for the SQLite writer.
//!
//! With `synchronous=FULL` SQLite syncs the write-ahead log inside every `COMMIT`, while the one
//! writer connection is held, so concurrent writers queue behind each other's disk flushes. A
//! durable store instead commits with `synchronous=NORMAL` (the log is appended, not synced) and
//! flushes the log after the writer is released and before the change is answered: one flush
//! then covers every commit made before it, however many writers wait for it.
//!
//! A commit is visible to readers before it is flushed, so a read transaction also waits, when
//! it ends, for the flush of every commit begun before that: nothing is answered, written or
//! read, that a crash of the machine could still take back.
//!
//! A flush that fails is answered as an error although its commits are visible: like any
//! storage whose flush fails, the disk may or may not keep them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{StoreError, StoreResult};

/// Commits begun, finished and on disk, counted since the store was opened. The one writer
/// connection commits one transaction at a time, so commit `n` finishes before `n + 1` begins.
pub(super) struct Flush {
    /// The write-ahead log; `None` when commits need no flush (a store opened not durable).
    wal: Option<PathBuf>,
    /// Commits begun: a reader that saw a commit ends after it began.
    begun: AtomicU64,
    /// Commits finished, their frames written to the log (or failed, with nothing to flush).
    finished: tokio::sync::watch::Sender<u64>,
    /// Commits on disk.
    synced: AtomicU64,
    /// Flushes done, each covering one or more commits.
    flushes: AtomicU64,
    /// Held by the one flush under way; those who wait behind it often find their commit
    /// already covered.
    flushing: tokio::sync::Mutex<()>,
}

/// A commit under way; dropped when it has finished, whether it succeeded or not.
pub(super) struct Committing<'a> {
    flush: &'a Flush,
    /// The commit's number, to wait for with [`Flush::through`].
    pub(super) n: u64,
}

impl Committing<'_> {
    /// Marks the commit finished, returning its number to wait for.
    pub(super) fn done(self) -> u64 {
        self.n
    }
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        self.flush.finished.send_modify(|f| *f += 1);
    }
}

impl Flush {
    /// Flushes `wal` (the `-wal` file beside the database) before commits are answered, or
    /// nothing when `wal` is `None`.
    pub(super) fn new(wal: Option<PathBuf>) -> Self {
        Self {
            wal,
            begun: AtomicU64::new(0),
            finished: tokio::sync::watch::Sender::new(0),
            synced: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts a commit about to be sent; keep the answer until the commit has returned.
    pub(super) fn begin(&self) -> Committing<'_> {
        Committing { flush: self, n: self.begun.fetch_add(1, Ordering::SeqCst) + 1 }
    }

    /// The commits begun so far: every commit a transaction ending now can have seen.
    pub(super) fn seen(&self) -> u64 {
        self.begun.load(Ordering::SeqCst)
    }

    /// The commits known to be on disk.
    pub(super) fn synced(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    /// Returns once the first `n` commits are on disk.
    pub(super) async fn through(&self, n: u64) -> StoreResult<()> {
        let Some(wal) = &self.wal else { return Ok(()) };
        if self.synced() >= n {
            return Ok(());
        }
        // A reader may have seen commit `n` while it was being written: let it finish first.
        let mut finished = self.finished.subscribe();
        finished
            .wait_for(|f| *f >= n)
            .await
            .map_err(|e| StoreError::Backend(format!("waiting for a commit to finish: {e}")))?;
        let _flushing = self.flushing.lock().await;
        if self.synced() >= n {
            return Ok(());
        }
        // Every commit finished by now has written its frames to the log: one flush holds them.
        let upto = *self.finished.borrow();
        let wal = wal.clone();
        tokio::task::spawn_blocking(move || sync_file(&wal))
            .await
            .map_err(|e| StoreError::Backend(format!("flushing the write-ahead log: {e}")))??;
        self.synced.fetch_max(upto, Ordering::SeqCst);
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Keeps every flush waiting while the guard lives.
    #[cfg(test)]
    pub(super) async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.flushing.lock().await
    }

    /// Counts a commit and waits until it is on disk, for a commit that has already returned.
    pub(super) async fn committed(&self) -> StoreResult<()> {
        let n = self.begin().n;
        self.through(n).await
    }
}

/// Flushes the file at `path` to disk. A log that is gone was checkpointed into the database,
/// which SQLite syncs before it removes the log: nothing is left to flush.
fn sync_file(path: &std::path::Path) -> StoreResult<()> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => file.sync_data().map_err(|e| StoreError::Backend(format!("flushing {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Backend(format!("opening {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long a test waits for an answer before it fails instead of hanging.
    const BOUND: std::time::Duration = std::time::Duration::from_secs(10);

    fn log() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        (dir, wal)
    }

    #[tokio::test]
    async fn a_flush_covers_every_commit_finished_before_it() {
        let (_dir, wal) = log();
        let flush = Flush::new(Some(wal));
        let (a, b) = (flush.begin(), flush.begin());
        let (na, nb) = (a.n, b.n);
        drop((a, b));
        assert_eq!(flush.synced(), 0, "nothing is on disk before a flush");
        flush.through(na).await.unwrap();
        assert_eq!(flush.synced(), nb, "the flush for the first commit covered the second, finished before it");
        flush.through(nb).await.unwrap();
        assert_eq!(flush.flushes.load(Ordering::SeqCst), 1);
        flush.committed().await.unwrap();
        assert_eq!(flush.synced(), 3);
    }

    #[tokio::test]
    async fn a_reader_waits_for_a_commit_it_saw_while_it_was_written() {
        let (_dir, wal) = log();
        let flush = std::sync::Arc::new(Flush::new(Some(wal)));
        let writing = flush.begin();
        // A reader ending now may have seen the commit under way.
        let seen = flush.seen();
        let reader = tokio::spawn({
            let flush = flush.clone();
            async move { flush.through(seen).await.map(|()| flush.synced()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!reader.is_finished(), "answered before the commit it saw was written");
        drop(writing);
        let answered =
            tokio::time::timeout(BOUND, reader).await.expect("the reader was answered once the commit was written");
        assert_eq!(answered.unwrap().unwrap(), 1);
    }

    #[tokio::test]
    async fn concurrent_waiters_share_flushes() {
        let (_dir, wal) = log();
        let flush = std::sync::Arc::new(Flush::new(Some(wal)));
        let mut waiters = Vec::new();
        for _ in 0..16 {
            let flush = flush.clone();
            waiters.push(tokio::spawn(async move {
                let n = flush.begin().n;
                flush.through(n).await.unwrap();
                assert!(flush.synced() >= n, "answered before its commit was on disk");
            }));
        }
        for w in waiters {
            tokio::time::timeout(BOUND, w).await.expect("every waiter was answered").unwrap();
        }
        assert_eq!(flush.synced(), 16);
        let flushes = flush.flushes.load(Ordering::SeqCst);
        assert!(flushes < 16, "{flushes} flushes for 16 commits made together");
    }

    #[tokio::test]
    async fn a_log_that_cannot_be_opened_is_an_error_and_a_missing_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        Flush::new(Some(dir.path().join("gone-wal"))).committed().await.unwrap();
        // A directory cannot be opened for writing: the commit is not reported durable.
        let flush = Flush::new(Some(dir.path().to_path_buf()));
        assert!(flush.committed().await.is_err());
        assert_eq!(flush.synced(), 0);
    }

    #[tokio::test]
    async fn a_store_opened_not_durable_never_waits() {
        let flush = Flush::new(None);
        let _unfinished = flush.begin();
        let waited = tokio::time::timeout(BOUND, flush.through(flush.seen())).await;
        assert!(waited.is_ok(), "a store that is not durable waited for a commit under way");
        waited.unwrap().unwrap();
        assert_eq!(flush.flushes.load(Ordering::SeqCst), 0, "nothing is flushed");
    }
}

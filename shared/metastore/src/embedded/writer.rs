//! The store's side of its [`fv_wal::GroupWriter`] thread: a group of requests is
//! evaluated against the committed state, its commits are appended to the log and
//! synced once, and only then applied in memory and answered. It also writes the
//! snapshots and rotates the log.

use std::convert::Infallible;
use std::fs;
use std::io;
use std::sync::Arc;

use fv_wal::{DirLock, GroupCommit, ReplaceError, Staged};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::Core;
use super::eval::{Overlay, WriteOp, WriteReply};
use super::log::{LogWriter, encode_frame};
use super::snapshot::{SNAPSHOT_FILE, encode_snapshot};
use super::state::Commit;
use crate::{MetaError, Result};

/// Requests the writer takes from the queue for one group commit.
pub(super) const MAX_BATCH: usize = 1024;

pub(super) type ReplyTx = oneshot::Sender<Result<WriteReply>>;

/// A write queued for the writer thread.
pub(super) struct Request {
    pub(super) op: WriteOp,
    pub(super) reply: ReplyTx,
}

/// The writer thread's handle, as the store and the lease task hold it.
pub(super) type Requests = fv_wal::GroupSender<Request, Infallible>;

/// A group after `write`, waiting for its sync.
pub(super) enum Pending {
    /// The log is unusable since an earlier failure; nothing was evaluated.
    Poisoned(Vec<ReplyTx>),
    /// Nothing to log (reads, deletes of absent keys, refused requests).
    Evaluated(Vec<(ReplyTx, Result<WriteReply>)>),
    /// Appending the commits failed; `fatal` when the log could not be restored.
    WriteFailed { outcomes: Vec<(ReplyTx, Result<WriteReply>)>, source: io::Error, fatal: bool },
    /// The commits are written (not yet synced): `bytes` of log.
    Written { outcomes: Vec<(ReplyTx, Result<WriteReply>)>, commits: Vec<Commit>, bytes: u64, now: Instant },
}

pub(super) struct Writer {
    core: Arc<Core>,
    log: LogWriter,
    /// Set after an error that leaves the log in an unknown state; every later write fails.
    poisoned: Option<String>,
    next_snapshot_at: u64,
    /// Held for as long as the writer runs.
    _lock: DirLock,
}

impl Writer {
    pub(super) fn new(core: Arc<Core>, log: LogWriter, lock: DirLock) -> Self {
        let next_snapshot_at = core.config.snapshot_log_bytes;
        Writer { core, log, poisoned: None, next_snapshot_at, _lock: lock }
    }

    fn poison_error(&self) -> MetaError {
        let reason = self.poisoned.as_deref().unwrap_or("unknown");
        MetaError::Io {
            path: self.log.path.clone(),
            source: io::Error::other(format!("the meta log is unusable after an earlier failure: {reason}")),
        }
    }

    /// Answers a group whose commits did not reach the log.
    fn fail(&mut self, outcomes: Vec<(ReplyTx, Result<WriteReply>)>, source: &io::Error, fatal: bool) {
        error!(path = %self.log.path.display(), error = %source, fatal, "meta log append failed");
        if fatal {
            self.poisoned = Some(format!("append failed: {source}"));
        }
        for (reply, outcome) in outcomes {
            let outcome = outcome.and_then(|_| {
                Err(MetaError::Io {
                    path: self.log.path.clone(),
                    source: io::Error::new(source.kind(), source.to_string()),
                })
            });
            let _ = reply.send(outcome);
        }
    }

    fn answer(&mut self, outcomes: Vec<(ReplyTx, Result<WriteReply>)>) {
        for (reply, outcome) in outcomes {
            let _ = reply.send(outcome);
        }
        if self.poisoned.is_none() && self.log.len >= self.next_snapshot_at {
            self.snapshot();
        }
    }

    /// Writes a snapshot and switches to a new log generation.
    fn snapshot(&mut self) {
        let threshold = self.core.config.snapshot_log_bytes;
        match self.rotate() {
            // Wait for a log at least as large as the snapshot before writing the next
            // one, so a large state is not rewritten for every few changes.
            Ok(snapshot_bytes) => self.next_snapshot_at = threshold.max(snapshot_bytes),
            Err(RotateError::Retry(error)) => {
                warn!(dir = %self.core.dir.display(), %error, "meta snapshot failed; will retry later");
                self.next_snapshot_at = self.log.len.saturating_add((threshold / 4).max(1));
            }
            Err(RotateError::Fatal(error)) => {
                error!(dir = %self.core.dir.display(), %error, "meta snapshot failed after the rename");
                self.poisoned = Some(format!("snapshot failed: {error}"));
            }
        }
    }

    /// Returns the size of the snapshot written.
    fn rotate(&mut self) -> std::result::Result<u64, RotateError> {
        let dir = self.core.dir.clone();
        let generation = self.log.generation + 1;
        let new_log = LogWriter::create(&dir, generation).map_err(RotateError::Retry)?;
        let snapshot = {
            let state = self.core.state.read();
            encode_snapshot(&state, generation)
        };
        match fv_wal::replace_file(&dir.join(SNAPSHOT_FILE), &snapshot) {
            Ok(()) => {}
            Err(ReplaceError::NotReplaced { source, .. }) => {
                let _ = fs::remove_file(&new_log.path);
                return Err(RotateError::Retry(source));
            }
            // The snapshot names the new log, but may not survive a power loss.
            Err(ReplaceError::NotDurable { source, .. }) => {
                self.log = new_log;
                return Err(RotateError::Fatal(source));
            }
        }
        // The snapshot now names the new log: from here on there is no going back.
        let old = std::mem::replace(&mut self.log, new_log);
        drop(old.file);
        if let Err(error) = fs::remove_file(&old.path) {
            warn!(path = %old.path.display(), %error, "could not remove the old meta log");
        }
        info!(
            dir = %dir.display(),
            generation,
            snapshot_bytes = snapshot.len(),
            old_log_bytes = old.len,
            "wrote meta snapshot and started a new log"
        );
        Ok(snapshot.len() as u64)
    }
}

enum RotateError {
    /// Nothing changed on disk that matters; keep the current log.
    Retry(io::Error),
    /// The state on disk is unknown.
    Fatal(io::Error),
}

impl GroupCommit for Writer {
    type Append = Request;
    type Control = Infallible;
    type Pending = Pending;

    fn append_bytes(_: &Request) -> usize {
        // Groups are bounded by their number of requests only.
        0
    }

    fn write(&mut self, group: Vec<Request>) -> Staged<Pending> {
        if self.poisoned.is_some() {
            let replies = group.into_iter().map(|req| req.reply).collect();
            return Staged { pending: Pending::Poisoned(replies), needs_sync: false };
        }
        let now = Instant::now();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut commits = Vec::new();
        {
            let state = self.core.state.read();
            let mut overlay = Overlay::new(&state, now);
            for Request { op, reply } in group {
                let outcome = overlay.eval(op).map(|(response, commit)| {
                    commits.extend(commit);
                    response
                });
                outcomes.push((reply, outcome));
            }
        }
        if commits.is_empty() {
            return Staged { pending: Pending::Evaluated(outcomes), needs_sync: false };
        }
        let mut buf = Vec::new();
        for commit in &commits {
            encode_frame(commit, &mut buf);
        }
        match self.log.write(&buf) {
            Ok(()) => {
                let bytes = buf.len() as u64;
                Staged { pending: Pending::Written { outcomes, commits, bytes, now }, needs_sync: true }
            }
            Err((source, fatal)) => {
                Staged { pending: Pending::WriteFailed { outcomes, source, fatal }, needs_sync: false }
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.log.sync()
    }

    fn publish(&mut self, pending: Pending, synced: io::Result<()>) {
        match (pending, synced) {
            (Pending::Poisoned(replies), _) => {
                for reply in replies {
                    let _ = reply.send(Err(self.poison_error()));
                }
            }
            (Pending::Evaluated(outcomes), _) => self.answer(outcomes),
            (Pending::WriteFailed { outcomes, source, fatal }, _) => self.fail(outcomes, &source, fatal),
            // The bytes may or may not be on disk: the log's state is unknown.
            (Pending::Written { outcomes, .. }, Err(source)) => self.fail(outcomes, &source, true),
            (Pending::Written { outcomes, commits, bytes, now }, Ok(())) => {
                self.log.len += bytes;
                let grants = commits.iter().any(|commit| !commit.grants.is_empty());
                let mut state = self.core.state.write();
                for commit in commits {
                    if let Err(reason) = state.apply(commit, now) {
                        error!(%reason, "logged commit does not apply to the in-memory state");
                        self.poisoned = Some(format!("inconsistent commit: {reason}"));
                        break;
                    }
                }
                drop(state);
                if grants {
                    self.core.lease_wake.notify_one();
                }
                self.answer(outcomes);
            }
        }
    }

    fn control(&mut self, control: Infallible) {
        match control {}
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use bytes::Bytes;

    use super::super::log::parse_log_file_name;
    use super::super::snapshot::{SNAPSHOT_FILE, SNAPSHOT_TMP_FILE};
    use super::super::testutil::*;
    use super::super::{EmbeddedMetaKv, EmbeddedMetaKvConfig};
    use crate::{MetaError, MetaKv};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshot_rotation_then_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { snapshot_log_bytes: 4096, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config.clone()).expect("open");
        let lease = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
        for i in 0..300 {
            let lease = if i % 7 == 0 { lease } else { 0 };
            kv.put(&format!("key/{i:04}"), Bytes::from(vec![i as u8; 100]), lease).await.expect("put");
        }
        for i in (0..300).step_by(3) {
            kv.put(&format!("key/{i:04}"), b("overwritten"), 0).await.expect("put");
        }
        assert_eq!(kv.delete_prefix("key/00").await.expect("delete_prefix"), 100);
        let log = log_path(dir.path());
        let generation = log.file_name().and_then(|n| n.to_str()).and_then(parse_log_file_name).expect("generation");
        assert!(generation > 2, "the log rotated several times (generation {generation})");
        let snapshot_len = fs::metadata(dir.path().join(SNAPSHOT_FILE)).expect("snapshot").len();
        assert!(fs::metadata(&log).expect("log").len() < snapshot_len.max(4096) + 1024);
        assert!(dir.path().join(SNAPSHOT_FILE).exists());
        assert!(!dir.path().join(SNAPSHOT_TMP_FILE).exists());
        let before = dump(&kv).await;
        drop(kv);

        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config).expect("reopen");
        assert_eq!(dump(&kv).await, before);
        kv.keep_alive(lease).await.expect("lease survives snapshots");
        kv.revoke_lease(lease).await.expect("revoke");
        let leased = before.0.iter().filter(|kv| kv.lease == lease).count();
        assert!(leased > 0);
        assert_eq!(kv.scan_prefix("").await.expect("scan").len(), before.0.len() - leased);
        // History before the snapshot is gone.
        match kv.watch_prefix("", Some(1)).await {
            Err(MetaError::Compacted { requested: 1, oldest }) => assert!(oldest > 1),
            Err(other) => panic!("expected Compacted, got {other:?}"),
            Ok(_) => panic!("expected Compacted, got a stream"),
        }
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        let kv_ref = kv.as_ref();
        let revisions = futures::future::join_all(
            (0..200).map(|i| async move { kv_ref.put(&format!("k/{i:03}"), b("v"), 0).await.expect("put") }),
        )
        .await;
        let mut sorted = revisions.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=200).collect::<Vec<_>>(), "every put got its own revision");
        for (i, revision) in revisions.iter().enumerate() {
            assert_eq!(kv.get(&format!("k/{i:03}")).await.expect("get").expect("key").mod_revision, *revision);
        }
        drop(kv);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen");
        assert_eq!(kv.scan_prefix("k/").await.expect("scan").len(), 200);
    }
}

//! The embedded meta store: etcd semantics in one process, durable in a directory.
//!
//! The whole key space lives in memory (a `BTreeMap`). Durability comes from an
//! append-only write-ahead log holding one checksummed frame per committed change
//! (a revision, or a lease grant/revoke), `fdatasync`ed before the call returns.
//! Writes go through one writer thread that evaluates a *batch* of queued requests
//! against the committed state plus the batch's own effects, appends all their frames
//! with one `write` + one `fdatasync` (group commit), and only then applies them to
//! the in-memory state. Readers and watchers therefore never see a change that a crash
//! could take back.
//!
//! ```text
//!  put/txn/lease ──► request queue ──► writer thread: eval batch ─► append frames ─► fdatasync
//!                                                                                      │
//!  get/scan ◄── RwLock<State> ◄── apply (map, leases, history, watchers) ◄─────────────┘
//! ```
//!
//! When the log grows past [`EmbeddedMetaKvConfig::snapshot_log_bytes`] (and past the
//! size of the previous snapshot, which bounds write amplification), the writer
//! creates the next log generation, writes a snapshot of the state (temp file, fsync,
//! rename, fsync of the directory) that names that generation, and deletes the old log.
//!
//! On-disk layout of the directory (the lock, frame codec, torn-tail recovery and the
//! group-commit thread are [`fv_wal`]'s, shared with the embedded log broker):
//! - `LOCK`: held with an exclusive file lock while the store is open.
//! - `meta.snap`: `"FVMSNAP1"`, payload length (u64 LE), CRC-32 (u32 LE) of the payload,
//!   payload = format version, log generation to replay next, revision, next lease id,
//!   the leases (id, TTL) and every key with its value, create/mod revision, version and lease.
//! - `meta-<generation:016x>.wal`: `"FVMWAL01"` + generation (u64 LE), then frames of
//!   `magic "FVMF" | payload length (u32 LE) | CRC-32 of length+payload (u32 LE) | payload`,
//!   payload = revision, the Put/Delete events of that revision, lease grants and revokes.
//!
//! On open, a torn or corrupt frame at the very tail (a crash in the middle of a write)
//! is cut off with a warning; a bad frame followed by a valid one is [`MetaError::Corrupt`].
//!
//! Watches replay from an in-memory history holding the events of the current log
//! (i.e. since the last snapshot, replayed at open) and everything since, bounded by
//! [`EmbeddedMetaKvConfig::history_events`] and [`EmbeddedMetaKvConfig::history_bytes`];
//! an older start revision is [`MetaError::Compacted`]. A start revision <= 0 means "from
//! now on", as in etcd. Each watcher buffers at most
//! [`EmbeddedMetaKvConfig::watch_buffer_events`] undelivered events; past that its stream
//! ends with [`MetaError::Compacted`] instead of slowing writers down.
//!
//! Leases are persisted (grant and revoke), but not their deadlines: after a restart
//! every lease starts a fresh full TTL, as etcd does after a leader change.
//!
//! Modules: the in-memory state and how commits apply to it (`state`), evaluating writes
//! (`eval`), the writer thread (`writer`), the log and its frames (`log`), the snapshot
//! (`snapshot`), their field encoding (`codec`) and lease expiry (`lease`).

mod codec;
mod eval;
mod lease;
mod log;
mod snapshot;
mod state;
#[cfg(test)]
mod testutil;
mod writer;

use std::convert::Infallible;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use fv_wal::{DirLock, FsyncPolicy, GroupConfig, GroupWriter};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, info};

use self::eval::{Overlay, WriteOp, WriteReply, validate_key, validate_txn};
use self::log::{LogWriter, remove_other_logs};
use self::snapshot::{SNAPSHOT_FILE, SNAPSHOT_TMP_FILE, read_snapshot};
use self::state::{State, Watcher, prefix_range};
use self::writer::{MAX_BATCH, Request, Writer};
use crate::{KeyValue, LeaseId, MetaError, MetaKv, Result, Revision, Txn, TxnOp, TxnResponse, WatchEvent, WatchStream};

/// Tuning of [`EmbeddedMetaKv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedMetaKvConfig {
    /// Once the write-ahead log is larger than this, the store writes a snapshot and
    /// starts a new log (default 64 MiB).
    pub snapshot_log_bytes: u64,
    /// How many recent events are kept for watches that start at a past revision
    /// (default 100,000). Older start revisions get [`MetaError::Compacted`].
    pub history_events: usize,
    /// Upper bound on the memory of that history (keys + values + overhead; default
    /// 64 MiB): whichever of the two limits is reached first trims it.
    pub history_bytes: usize,
    /// How many undelivered events a watcher may have buffered; a watcher that falls
    /// further behind has its stream ended with [`MetaError::Compacted`] (default 65,536).
    pub watch_buffer_events: usize,
}

impl Default for EmbeddedMetaKvConfig {
    fn default() -> Self {
        Self {
            snapshot_log_bytes: 64 << 20,
            history_events: 100_000,
            history_bytes: 64 << 20,
            watch_buffer_events: 65_536,
        }
    }
}

/// A file-backed [`MetaKv`] with etcd semantics, for standalone mode and tests.
///
/// Open it with [`EmbeddedMetaKv::open`]; dropping the last reference stops its writer
/// thread and lease task and releases the directory lock.
pub struct EmbeddedMetaKv {
    core: Arc<Core>,
    /// Dropped (which commits what is queued and joins the thread) after the lease task
    /// is aborted.
    writer: GroupWriter<Request, Infallible>,
    lease_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for EmbeddedMetaKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedMetaKv").field("dir", &self.core.dir).finish_non_exhaustive()
    }
}

/// State shared by the handle, the writer thread and the lease task.
struct Core {
    dir: PathBuf,
    config: EmbeddedMetaKvConfig,
    state: RwLock<State>,
    /// Woken when a lease is granted, so the lease task can shorten its sleep.
    lease_wake: Arc<Notify>,
}

impl EmbeddedMetaKv {
    /// Opens (or creates) the store in `dir` with the default configuration.
    ///
    /// Must be called from within a tokio runtime (the lease expiry task is spawned on it).
    pub fn open(dir: &Path) -> Result<Arc<EmbeddedMetaKv>> {
        Self::open_with_config(dir, EmbeddedMetaKvConfig::default())
    }

    /// Opens (or creates) the store in `dir`: loads the snapshot, replays the log
    /// (cutting off a torn tail), restores leases with a fresh TTL, and starts the
    /// writer thread and the lease expiry task.
    ///
    /// Fails with [`MetaError::Unavailable`] if another open store holds the directory.
    pub fn open_with_config(dir: &Path, config: EmbeddedMetaKvConfig) -> Result<Arc<EmbeddedMetaKv>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MetaError::InvalidArgument {
            reason: "EmbeddedMetaKv::open must be called from within a tokio runtime".to_owned(),
        })?;
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = DirLock::acquire(dir)?;
        remove_if_exists(&dir.join(SNAPSHOT_TMP_FILE)).map_err(io_error(&dir.join(SNAPSHOT_TMP_FILE)))?;

        let now = Instant::now();
        let (mut state, generation) = match read_snapshot(&dir.join(SNAPSHOT_FILE), &config, now)? {
            Some((state, generation)) => (state, generation),
            None => (State::new(&config), 1),
        };
        remove_other_logs(dir, generation)?;
        let log = LogWriter::open_and_replay(dir, generation, &mut state, now)?;
        info!(
            dir = %dir.display(),
            revision = state.revision,
            keys = state.kvs.len(),
            leases = state.leases.len(),
            log_generation = generation,
            "opened embedded meta store"
        );

        let core = Arc::new(Core {
            dir: dir.to_owned(),
            config: config.clone(),
            state: RwLock::new(state),
            lease_wake: Arc::new(Notify::new()),
        });
        // Every commit is synced before it is applied and answered, whatever the broker's
        // policy: the meta store has no volatile writes.
        let group = GroupConfig { max_appends: MAX_BATCH, max_bytes: usize::MAX, fsync: FsyncPolicy::Always };
        let writer = GroupWriter::spawn("fv-metakv-writer", group, Writer::new(core.clone(), log, lock))
            .map_err(io_error(dir))?;
        let lease_task =
            runtime.spawn(lease::lease_expiry_loop(Arc::downgrade(&core), writer.sender(), core.lease_wake.clone()));
        Ok(Arc::new(EmbeddedMetaKv { core, writer, lease_task }))
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.core.dir
    }

    async fn submit(&self, op: WriteOp) -> Result<WriteReply> {
        let (reply, rx) = oneshot::channel();
        self.writer.append(Request { op, reply }).map_err(|_| closed_error())?;
        rx.await.map_err(|_| closed_error())?
    }
}

impl Drop for EmbeddedMetaKv {
    fn drop(&mut self) {
        self.lease_task.abort();
        // The `writer` field is dropped next: requests queued before it are still
        // committed, then its thread is joined and the directory lock released.
    }
}

fn closed_error() -> MetaError {
    MetaError::Unavailable { reason: "the embedded meta store is closed".to_owned() }
}

#[async_trait]
impl MetaKv for EmbeddedMetaKv {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let state = self.core.state.read();
        Ok(state.kvs.get(key).map(|entry| entry.to_kv(key)))
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let state = self.core.state.read();
        Ok(prefix_range(&state.kvs, prefix).map(|(key, entry)| entry.to_kv(key)).collect())
    }

    async fn put(&self, key: &str, value: Bytes, lease: LeaseId) -> Result<Revision> {
        match self.submit(WriteOp::Put { key: key.to_owned(), value, lease }).await? {
            WriteReply::Revision(revision) => Ok(revision),
            other => Err(unexpected_reply(&other)),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        match self.submit(WriteOp::Delete { key: key.to_owned() }).await? {
            WriteReply::Deleted(count) => Ok(count > 0),
            other => Err(unexpected_reply(&other)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        match self.submit(WriteOp::DeletePrefix { prefix: prefix.to_owned() }).await? {
            WriteReply::Deleted(count) => Ok(count),
            other => Err(unexpected_reply(&other)),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        validate_txn(&txn)?;
        let read_only = txn.success.iter().chain(&txn.failure).all(|op| matches!(op, TxnOp::Get { .. }));
        if read_only {
            // Nothing to log: evaluate against the committed state directly.
            let state = self.core.state.read();
            let mut overlay = Overlay::new(&state, Instant::now());
            return match overlay.eval(WriteOp::Txn(txn))? {
                (WriteReply::Txn(response), None) => Ok(response),
                (other, _) => Err(unexpected_reply(&other)),
            };
        }
        match self.submit(WriteOp::Txn(txn)).await? {
            WriteReply::Txn(response) => Ok(response),
            other => Err(unexpected_reply(&other)),
        }
    }

    async fn watch_prefix(&self, prefix: &str, start_revision: Option<Revision>) -> Result<WatchStream> {
        let (tx, rx) = mpsc::channel(self.core.config.watch_buffer_events.max(1));
        let overflow = Arc::new(Mutex::new(None));
        let replay = {
            let mut state = self.core.state.write();
            let current = state.revision;
            // etcd treats a start revision of 0 as "from now on".
            let start = match start_revision {
                Some(start) if start > 0 => start,
                _ => current + 1,
            };
            if start < state.oldest_history {
                return Err(MetaError::Compacted { requested: start, oldest: state.oldest_history });
            }
            let from = state.history.partition_point(|event| event.kv.mod_revision < start);
            let replay: Vec<WatchEvent> =
                state.history.range(from..).filter(|event| event.kv.key.starts_with(prefix)).cloned().collect();
            state.watchers.retain(|watcher| !watcher.tx.is_closed());
            state.watchers.push(Watcher {
                prefix: prefix.to_owned(),
                start: start.max(current + 1),
                tx,
                overflow: overflow.clone(),
            });
            replay
        };
        debug!(prefix, ?start_revision, replayed = replay.len(), "watch registered");
        let live = futures::stream::unfold(Some((rx, overflow)), |live| async move {
            let (mut rx, overflow) = live?;
            match rx.recv().await {
                Some(event) => Some((Ok(event), Some((rx, overflow)))),
                None => {
                    // The sender is gone: either this watcher fell too far behind, or the
                    // store closed. Report which, then end the stream.
                    let error = match overflow.lock().take() {
                        Some((requested, oldest)) => MetaError::Compacted { requested, oldest },
                        None => closed_error(),
                    };
                    Some((Err(error), None))
                }
            }
        });
        Ok(Box::pin(futures::stream::iter(replay.into_iter().map(Ok)).chain(live)))
    }

    async fn revision(&self) -> Result<Revision> {
        Ok(self.core.state.read().revision)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        match self.submit(WriteOp::GrantLease { ttl }).await? {
            WriteReply::Lease(lease) => Ok(lease),
            other => Err(unexpected_reply(&other)),
        }
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        let now = Instant::now();
        let mut state = self.core.state.write();
        match state.leases.get_mut(&lease) {
            // Once the deadline passed the lease is dead, even before the lease task
            // got around to revoking it.
            Some(entry) if entry.deadline > now => {
                entry.deadline = now + entry.ttl;
                Ok(())
            }
            _ => Err(MetaError::LeaseNotFound { lease }),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.submit(WriteOp::RevokeLease { lease }).await.map(|_| ())
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

fn unexpected_reply(reply: &WriteReply) -> MetaError {
    error!(?reply, "meta store writer answered with an unexpected reply");
    MetaError::Unavailable { reason: format!("internal error: unexpected writer reply {reply:?}") }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> MetaError + '_ {
    move |source| MetaError::Io { path: path.to_owned(), source }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> MetaError {
    MetaError::Corrupt { path: path.to_owned(), offset, reason: reason.into() }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use super::testutil::*;
    use super::*;
    use crate::{Compare, WatchEventKind, testsuite};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        testsuite::run_all(kv.as_ref(), "suite/").await;
    }

    /// The suite again with snapshots every few KiB, so rotations happen mid-suite.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite_with_frequent_snapshots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { snapshot_log_bytes: 2048, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config.clone()).expect("open");
        testsuite::run_all(kv.as_ref(), "suite/").await;
        assert!(dir.path().join(SNAPSHOT_FILE).exists());
        let before = dump(&kv).await;
        drop(kv);
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config).expect("reopen");
        assert_eq!(dump(&kv).await, before);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_and_revisions_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        let r1 = kv.put("a", b("1"), 0).await.expect("put");
        kv.put("a", b("2"), 0).await.expect("put");
        kv.put("b", b("1"), 0).await.expect("put");
        assert!(kv.delete("b").await.expect("delete"));
        let txn = Txn {
            compares: vec![Compare::absent("c")],
            success: vec![TxnOp::put("c", "3"), TxnOp::put("d", "4")],
            failure: vec![],
        };
        assert!(kv.txn(txn).await.expect("txn").succeeded);
        let lease = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
        kv.put("e", b("leased"), lease).await.expect("put with lease");
        let before = dump(&kv).await;
        assert_eq!(before.1, 6);
        drop(kv);

        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen");
        assert_eq!(dump(&kv).await, before);
        assert_eq!(kv.get("e").await.expect("get").expect("e").lease, lease);
        kv.keep_alive(lease).await.expect("the lease survived");
        let next = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
        assert!(next > lease, "lease ids are not reused");
        assert_eq!(kv.put("a", b("3"), 0).await.expect("put"), 7, "revisions continue");
        let a = kv.get("a").await.expect("get").expect("a");
        assert_eq!((a.create_revision, a.mod_revision, a.version), (r1, 7, 3));

        // The log since the last snapshot is watch history again.
        let mut watch = kv.watch_prefix("", Some(1)).await.expect("watch from 1");
        let mut seen = Vec::new();
        for _ in 0..8 {
            let event = testsuite::next_event(&mut watch, Duration::from_secs(5)).await;
            seen.push((event.kind, event.kv.key, event.kv.mod_revision));
        }
        use WatchEventKind::{Delete, Put};
        let expected = [
            (Put, "a", 1),
            (Put, "a", 2),
            (Put, "b", 3),
            (Delete, "b", 4),
            (Put, "c", 5),
            (Put, "d", 5),
            (Put, "e", 6),
            (Put, "a", 7),
        ];
        let expected: Vec<_> = expected.iter().map(|&(kind, key, rev)| (kind, key.to_owned(), rev)).collect();
        assert_eq!(seen, expected);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_directory_is_opened_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        assert!(matches!(EmbeddedMetaKv::open(dir.path()), Err(MetaError::Unavailable { .. })));
        drop(kv);
        EmbeddedMetaKv::open(dir.path()).expect("open after the first one closed");
    }
    const CRASH_DIR_ENV: &str = "FV_METAKV_CRASH_CHILD_DIR";

    /// The child of [`survives_kill_9`]: writes until killed, printing every acknowledged write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "started by survives_kill_9 in a child process"]
    async fn crash_child() {
        let Ok(dir) = std::env::var(CRASH_DIR_ENV) else { return };
        let config = EmbeddedMetaKvConfig { snapshot_log_bytes: 32 << 10, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(Path::new(&dir), config).expect("open");
        let round = kv.revision().await.expect("revision");
        let kv_ref = kv.as_ref();
        let writer = |writer: usize| async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let key = format!("w/{round}/{writer}/{n}");
                kv_ref.put(&key, Bytes::from(vec![7u8; 200]), 0).await.expect("put");
                writeln!(io::stdout().lock(), "PUT {key}").expect("stdout");
                if n.is_multiple_of(5) {
                    // CAS increment of a shared counter.
                    loop {
                        let current = kv_ref.get("counter").await.expect("get");
                        let (value, compare) = match current {
                            None => (0u64, Compare::absent("counter")),
                            Some(kv) => (
                                std::str::from_utf8(&kv.value).expect("utf8").parse().expect("number"),
                                Compare::mod_revision_equals("counter", kv.mod_revision),
                            ),
                        };
                        let txn = Txn {
                            compares: vec![compare],
                            success: vec![TxnOp::put("counter", (value + 1).to_string())],
                            failure: vec![],
                        };
                        if kv_ref.txn(txn).await.expect("txn").succeeded {
                            writeln!(io::stdout().lock(), "CNT {}", value + 1).expect("stdout");
                            break;
                        }
                    }
                }
            }
        };
        futures::future::join_all((0..4).map(writer)).await;
    }

    /// kill -9 of a process in the middle of writing loses no acknowledged write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_kill_9() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = std::env::current_exe().expect("test binary");
        let mut acked_keys = Vec::new();
        let mut acked_counter = 0u64;
        for round in 0..4u64 {
            let mut child = std::process::Command::new(&exe)
                .args(["--exact", "embedded::tests::crash_child", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CRASH_DIR_ENV, dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn child");
            let stdout = child.stdout.take().expect("stdout");
            let kill_after = 300 + 250 * round as usize;
            let (keys, counter) = tokio::task::spawn_blocking(move || {
                let mut keys = Vec::new();
                let mut counter = 0u64;
                let mut lines = BufReader::new(stdout).lines();
                let mut acks = 0;
                let mut killed = false;
                // After the kill, keep reading: lines printed before the kill are acks too.
                while let Some(Ok(line)) = lines.next() {
                    if let Some(key) = line.strip_prefix("PUT ") {
                        keys.push(key.to_owned());
                        acks += 1;
                    } else if let Some(value) = line.strip_prefix("CNT ") {
                        counter = counter.max(value.parse().expect("counter"));
                    }
                    if acks >= kill_after && !killed {
                        child.kill().expect("kill -9");
                        killed = true;
                    }
                }
                assert!(killed, "the child stopped before it was killed");
                child.wait().expect("wait");
                (keys, counter)
            })
            .await
            .expect("reader");
            acked_keys.extend(keys);
            acked_counter = acked_counter.max(counter);

            let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen after kill -9");
            for key in &acked_keys {
                assert!(kv.get(key).await.expect("get").is_some(), "acknowledged {key} lost in round {round}");
            }
            let counter = kv
                .get("counter")
                .await
                .expect("get")
                .map_or(0, |kv| std::str::from_utf8(&kv.value).expect("utf8").parse::<u64>().expect("number"));
            assert!(counter >= acked_counter, "counter {counter} < acknowledged {acked_counter}");
        }
        assert!(acked_keys.len() >= 300 + 550 + 800 + 1050);
    }
}

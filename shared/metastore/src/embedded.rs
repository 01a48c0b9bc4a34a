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
//! On-disk layout of the directory:
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

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::{
    Compare, CompareOp, CompareTarget, KeyValue, LeaseId, MetaError, MetaKv, Result, Revision, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchEvent, WatchEventKind, WatchStream,
};

const LOCK_FILE: &str = "LOCK";
const SNAPSHOT_FILE: &str = "meta.snap";
const SNAPSHOT_TMP_FILE: &str = "meta.snap.tmp";
const SNAPSHOT_MAGIC: &[u8; 8] = b"FVMSNAP1";
const SNAPSHOT_FORMAT_VERSION: u32 = 1;
const WAL_MAGIC: &[u8; 8] = b"FVMWAL01";
const WAL_HEADER_LEN: u64 = 16;
const FRAME_MAGIC: [u8; 4] = *b"FVMF";
const FRAME_HEADER_LEN: usize = 12;
/// Frames larger than this are treated as garbage when reading a log.
const MAX_FRAME_LEN: usize = 1 << 30;
/// Requests the writer takes from the queue for one group commit.
const MAX_BATCH: usize = 1024;
/// The lease task re-checks deadlines at least this often.
const LEASE_CHECK_MAX_SLEEP: Duration = Duration::from_secs(1);

const EVENT_PUT: u8 = 1;
const EVENT_DELETE: u8 = 2;

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
    requests: std_mpsc::Sender<WriterMsg>,
    writer: Option<JoinHandle<()>>,
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
        let lock = lock_dir(dir)?;
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
        let (requests, queue) = std_mpsc::channel();
        let next_snapshot_at = config.snapshot_log_bytes;
        let writer = Writer { core: core.clone(), log, poisoned: None, next_snapshot_at, _lock: lock };
        let writer = std::thread::Builder::new()
            .name("fv-metakv-writer".to_owned())
            .spawn(move || writer.run(queue))
            .map_err(io_error(dir))?;
        let lease_task =
            runtime.spawn(lease_expiry_loop(Arc::downgrade(&core), requests.clone(), core.lease_wake.clone()));
        Ok(Arc::new(EmbeddedMetaKv { core, requests, writer: Some(writer), lease_task }))
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.core.dir
    }

    async fn submit(&self, op: WriteOp) -> Result<WriteReply> {
        let (reply, rx) = oneshot::channel();
        self.requests.send(WriterMsg::Op(op, reply)).map_err(|_| closed_error())?;
        rx.await.map_err(|_| closed_error())?
    }
}

impl Drop for EmbeddedMetaKv {
    fn drop(&mut self) {
        self.lease_task.abort();
        // Requests queued before the shutdown message are still committed.
        let _ = self.requests.send(WriterMsg::Shutdown);
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            error!(dir = %self.core.dir.display(), "meta store writer thread panicked");
        }
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

// ---------------------------------------------------------------------------------------
// In-memory state
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: Bytes,
    create_revision: Revision,
    mod_revision: Revision,
    version: i64,
    lease: LeaseId,
}

impl Entry {
    fn to_kv(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }

    fn from_kv(kv: &KeyValue) -> Self {
        Entry {
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

struct Watcher {
    prefix: String,
    /// Live events below this revision were replayed from history (or not asked for).
    start: Revision,
    tx: mpsc::Sender<WatchEvent>,
    /// Set when the watcher is cut off: (first revision not delivered, oldest kept).
    overflow: Arc<Mutex<Option<(Revision, Revision)>>>,
}

/// One committed change: one frame of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Commit {
    /// The store revision after the change (unchanged when there are no events).
    revision: Revision,
    events: Vec<WatchEvent>,
    grants: Vec<(LeaseId, Duration)>,
    revokes: Vec<LeaseId>,
}

struct State {
    kvs: BTreeMap<String, Entry>,
    revision: Revision,
    leases: HashMap<LeaseId, Lease>,
    next_lease_id: LeaseId,
    /// Recent events, in revision order; complete for revisions >= `oldest_history`.
    history: VecDeque<WatchEvent>,
    oldest_history: Revision,
    /// Approximate memory of `history`.
    history_bytes: usize,
    history_limit: usize,
    history_max_bytes: usize,
    watchers: Vec<Watcher>,
}

/// Approximate memory taken by an event kept in the history.
fn event_bytes(event: &WatchEvent) -> usize {
    event.kv.key.len() + event.kv.value.len() + std::mem::size_of::<WatchEvent>()
}

impl State {
    fn new(config: &EmbeddedMetaKvConfig) -> Self {
        State {
            kvs: BTreeMap::new(),
            revision: 0,
            leases: HashMap::new(),
            next_lease_id: 1,
            history: VecDeque::new(),
            oldest_history: 1,
            history_bytes: 0,
            history_limit: config.history_events,
            history_max_bytes: config.history_bytes,
            watchers: Vec::new(),
        }
    }

    /// Applies a commit (live or replayed from the log); an error means the commit
    /// does not fit the state, i.e. the log is inconsistent.
    fn apply(&mut self, commit: Commit, now: Instant) -> std::result::Result<(), String> {
        let expected = if commit.events.is_empty() { self.revision } else { self.revision + 1 };
        if commit.revision != expected {
            return Err(format!("revision {} does not follow revision {}", commit.revision, self.revision));
        }
        for &(id, ttl) in &commit.grants {
            if id < self.next_lease_id || self.leases.contains_key(&id) {
                return Err(format!("lease {id} granted twice"));
            }
            self.leases.insert(id, Lease { ttl, deadline: now + ttl, keys: BTreeSet::new() });
            self.next_lease_id = id + 1;
        }
        for event in &commit.events {
            let key = &event.kv.key;
            if event.kv.mod_revision != commit.revision {
                return Err(format!("event on {key:?} has revision {}", event.kv.mod_revision));
            }
            let old = match event.kind {
                WatchEventKind::Put => {
                    if event.kv.lease != 0 {
                        let lease = self
                            .leases
                            .get_mut(&event.kv.lease)
                            .ok_or_else(|| format!("put of {key:?} with unknown lease {}", event.kv.lease))?;
                        lease.keys.insert(key.clone());
                    }
                    self.kvs.insert(key.clone(), Entry::from_kv(&event.kv))
                }
                WatchEventKind::Delete => {
                    Some(self.kvs.remove(key).ok_or_else(|| format!("delete of absent key {key:?}"))?)
                }
            };
            if let Some(old) = old {
                let same_lease = event.kind == WatchEventKind::Put && old.lease == event.kv.lease;
                if old.lease != 0
                    && !same_lease
                    && let Some(lease) = self.leases.get_mut(&old.lease)
                {
                    lease.keys.remove(key);
                }
            }
        }
        for id in &commit.revokes {
            match self.leases.remove(id) {
                Some(lease) if lease.keys.is_empty() => {}
                Some(lease) => return Err(format!("lease {id} revoked with {} keys attached", lease.keys.len())),
                None => return Err(format!("revoke of unknown lease {id}")),
            }
        }
        self.revision = commit.revision;
        if !commit.events.is_empty() {
            self.dispatch(&commit.events);
            self.record_history(commit.events);
        }
        Ok(())
    }

    fn dispatch(&mut self, events: &[WatchEvent]) {
        if self.watchers.is_empty() {
            return;
        }
        let oldest = self.oldest_history;
        self.watchers.retain(|watcher| {
            for event in events {
                if event.kv.mod_revision < watcher.start || !event.kv.key.starts_with(&watcher.prefix) {
                    continue;
                }
                match watcher.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        warn!(
                            prefix = %watcher.prefix,
                            revision = event.kv.mod_revision,
                            "watcher fell too far behind; ending its stream with Compacted"
                        );
                        *watcher.overflow.lock() = Some((event.kv.mod_revision, oldest));
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            !watcher.tx.is_closed()
        });
    }

    fn record_history(&mut self, events: Vec<WatchEvent>) {
        self.history_bytes += events.iter().map(event_bytes).sum::<usize>();
        self.history.extend(events);
        let mut dropped = None;
        while self.history.len() > self.history_limit || self.history_bytes > self.history_max_bytes {
            let Some(event) = self.history.pop_front() else { break };
            self.history_bytes -= event_bytes(&event);
            dropped = Some(event.kv.mod_revision);
        }
        if let Some(revision) = dropped {
            // Keep whole revisions only: a start revision is either fully available or not.
            while let Some(event) = self.history.pop_front_if(|event| event.kv.mod_revision == revision) {
                self.history_bytes -= event_bytes(&event);
            }
            self.oldest_history = revision + 1;
        }
    }
}

fn prefix_range<'a>(
    kvs: &'a BTreeMap<String, Entry>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
    kvs.range::<str, _>((Bound::Included(prefix), Bound::Unbounded)).take_while(move |(key, _)| key.starts_with(prefix))
}

// ---------------------------------------------------------------------------------------
// Evaluation of writes (the writer's view: committed state + the batch so far)
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
enum WriteOp {
    Put {
        key: String,
        value: Bytes,
        lease: LeaseId,
    },
    Delete {
        key: String,
    },
    DeletePrefix {
        prefix: String,
    },
    Txn(Txn),
    GrantLease {
        ttl: Duration,
    },
    RevokeLease {
        lease: LeaseId,
    },
    /// Sent by the lease task: revoke if still present and past its deadline.
    ExpireLease {
        lease: LeaseId,
    },
}

#[derive(Debug)]
enum WriteReply {
    Revision(Revision),
    Deleted(u64),
    Txn(TxnResponse),
    Lease(LeaseId),
    Done,
}

type ReplyTx = oneshot::Sender<Result<WriteReply>>;

enum WriterMsg {
    Op(WriteOp, ReplyTx),
    Shutdown,
}

/// The committed state with the uncommitted effects of the batch being evaluated on top.
struct Overlay<'a> {
    base: &'a State,
    now: Instant,
    changes: BTreeMap<String, Option<Entry>>,
    revision: Revision,
    next_lease_id: LeaseId,
    granted: HashSet<LeaseId>,
    revoked: HashSet<LeaseId>,
}

impl<'a> Overlay<'a> {
    fn new(base: &'a State, now: Instant) -> Self {
        Overlay {
            base,
            now,
            changes: BTreeMap::new(),
            revision: base.revision,
            next_lease_id: base.next_lease_id,
            granted: HashSet::new(),
            revoked: HashSet::new(),
        }
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        match self.changes.get(key) {
            Some(change) => change.as_ref(),
            None => self.base.kvs.get(key),
        }
    }

    fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys: BTreeSet<&str> = prefix_range(&self.base.kvs, prefix)
            .map(|(key, _)| key.as_str())
            .filter(|key| !self.changes.contains_key(*key))
            .collect();
        keys.extend(
            self.changes
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix))
                .filter(|(_, change)| change.is_some())
                .map(|(key, _)| key.as_str()),
        );
        keys.into_iter().map(str::to_owned).collect()
    }

    fn lease_exists(&self, lease: LeaseId) -> bool {
        !self.revoked.contains(&lease) && (self.granted.contains(&lease) || self.base.leases.contains_key(&lease))
    }

    /// Exists and has not reached its deadline.
    fn lease_alive(&self, lease: LeaseId) -> bool {
        self.lease_exists(lease)
            && (self.granted.contains(&lease) || self.base.leases.get(&lease).is_some_and(|l| l.deadline > self.now))
    }

    fn put(&mut self, key: &str, value: Bytes, lease: LeaseId, revision: Revision, events: &mut Vec<WatchEvent>) {
        let previous = self.entry(key);
        let entry = Entry {
            value,
            create_revision: previous.map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: previous.map_or(1, |p| p.version + 1),
            lease,
        };
        events.push(WatchEvent { kind: WatchEventKind::Put, kv: entry.to_kv(key) });
        self.changes.insert(key.to_owned(), Some(entry));
    }

    fn delete(&mut self, key: &str, revision: Revision, events: &mut Vec<WatchEvent>) -> bool {
        if self.entry(key).is_none() {
            return false;
        }
        events.push(delete_event(key, revision));
        self.changes.insert(key.to_owned(), None);
        true
    }

    fn compare_holds(&self, compare: &Compare) -> bool {
        let entry = self.entry(&compare.key);
        let ordering = match &compare.target {
            // etcd: a value comparison against an absent key is false for every operator.
            CompareTarget::Value(value) => match entry {
                Some(entry) => entry.value.as_ref().cmp(value.as_ref()),
                None => return false,
            },
            CompareTarget::Version(version) => entry.map_or(0, |e| e.version).cmp(version),
            CompareTarget::CreateRevision(revision) => entry.map_or(0, |e| e.create_revision).cmp(revision),
            CompareTarget::ModRevision(revision) => entry.map_or(0, |e| e.mod_revision).cmp(revision),
        };
        match compare.op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Greater => ordering == Ordering::Greater,
            CompareOp::Less => ordering == Ordering::Less,
        }
    }

    /// Evaluates one request. On success the overlay includes its effects and the
    /// returned commit (if any) is what must be logged and applied.
    fn eval(&mut self, op: WriteOp) -> Result<(WriteReply, Option<Commit>)> {
        let revision = self.revision + 1;
        let mut events = Vec::new();
        match op {
            WriteOp::Put { key, value, lease } => {
                validate_key(&key)?;
                validate_value(&key, &value)?;
                if lease != 0 && !self.lease_alive(lease) {
                    return Err(MetaError::LeaseNotFound { lease });
                }
                self.put(&key, value, lease, revision, &mut events);
                Ok((WriteReply::Revision(revision), Some(self.commit(revision, events))))
            }
            WriteOp::Delete { key } => {
                validate_key(&key)?;
                if self.delete(&key, revision, &mut events) {
                    Ok((WriteReply::Deleted(1), Some(self.commit(revision, events))))
                } else {
                    Ok((WriteReply::Deleted(0), None))
                }
            }
            WriteOp::DeletePrefix { prefix } => {
                for key in self.keys_with_prefix(&prefix) {
                    self.delete(&key, revision, &mut events);
                }
                if events.is_empty() {
                    return Ok((WriteReply::Deleted(0), None));
                }
                Ok((WriteReply::Deleted(events.len() as u64), Some(self.commit(revision, events))))
            }
            WriteOp::Txn(txn) => {
                validate_txn(&txn)?;
                let succeeded = txn.compares.iter().all(|compare| self.compare_holds(compare));
                let ops = if succeeded { txn.success } else { txn.failure };
                // Validate before changing anything, so a failing txn applies nothing.
                for op in &ops {
                    if let TxnOp::Put { lease, .. } = op
                        && *lease != 0
                        && !self.lease_alive(*lease)
                    {
                        return Err(MetaError::LeaseNotFound { lease: *lease });
                    }
                }
                let mut responses = Vec::with_capacity(ops.len());
                for op in ops {
                    responses.push(match op {
                        TxnOp::Put { key, value, lease } => {
                            self.put(&key, value, lease, revision, &mut events);
                            TxnOpResponse::Put
                        }
                        TxnOp::Delete { key } => {
                            TxnOpResponse::Delete(u64::from(self.delete(&key, revision, &mut events)))
                        }
                        TxnOp::DeletePrefix { prefix } => {
                            let keys = self.keys_with_prefix(&prefix);
                            for key in &keys {
                                self.delete(key, revision, &mut events);
                            }
                            TxnOpResponse::Delete(keys.len() as u64)
                        }
                        TxnOp::Get { key } => TxnOpResponse::Get(self.entry(&key).map(|entry| entry.to_kv(&key))),
                    });
                }
                let commit = if events.is_empty() { None } else { Some(self.commit(revision, events)) };
                let response = TxnResponse { succeeded, revision: self.revision, responses };
                Ok((WriteReply::Txn(response), commit))
            }
            WriteOp::GrantLease { ttl } => {
                if ttl.is_zero() || u64::try_from(ttl.as_nanos()).is_err() {
                    return Err(MetaError::InvalidArgument { reason: format!("invalid lease TTL {ttl:?}") });
                }
                let lease = self.next_lease_id;
                self.next_lease_id += 1;
                self.granted.insert(lease);
                let commit = Commit { revision: self.revision, grants: vec![(lease, ttl)], ..Commit::default() };
                Ok((WriteReply::Lease(lease), Some(commit)))
            }
            WriteOp::RevokeLease { lease } => {
                if !self.lease_exists(lease) {
                    return Err(MetaError::LeaseNotFound { lease });
                }
                Ok((WriteReply::Done, Some(self.revoke(lease, revision))))
            }
            WriteOp::ExpireLease { lease } => {
                let expired = self.lease_exists(lease)
                    && !self.granted.contains(&lease)
                    && self.base.leases.get(&lease).is_some_and(|l| l.deadline <= self.now);
                if !expired {
                    return Ok((WriteReply::Done, None));
                }
                let commit = self.revoke(lease, revision);
                info!(lease, deleted_keys = commit.events.len(), "lease expired");
                Ok((WriteReply::Done, Some(commit)))
            }
        }
    }

    fn revoke(&mut self, lease: LeaseId, revision: Revision) -> Commit {
        let mut candidates: BTreeSet<String> = self.base.leases.get(&lease).map(|l| l.keys.clone()).unwrap_or_default();
        candidates.extend(self.changes.keys().cloned());
        let mut events = Vec::new();
        for key in candidates {
            if self.entry(&key).is_some_and(|entry| entry.lease == lease) {
                self.delete(&key, revision, &mut events);
            }
        }
        self.revoked.insert(lease);
        let mut commit = if events.is_empty() {
            Commit { revision: self.revision, ..Commit::default() }
        } else {
            self.commit(revision, events)
        };
        commit.revokes.push(lease);
        commit
    }

    fn commit(&mut self, revision: Revision, events: Vec<WatchEvent>) -> Commit {
        self.revision = revision;
        Commit { revision, events, ..Commit::default() }
    }
}

fn delete_event(key: &str, revision: Revision) -> WatchEvent {
    WatchEvent {
        kind: WatchEventKind::Delete,
        kv: KeyValue {
            key: key.to_owned(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: 0,
        },
    }
}

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(MetaError::InvalidArgument { reason: "empty key".to_owned() });
    }
    if u32::try_from(key.len()).is_err() {
        return Err(MetaError::InvalidArgument { reason: format!("key of {} bytes is too long", key.len()) });
    }
    Ok(())
}

fn validate_value(key: &str, value: &Bytes) -> Result<()> {
    if u32::try_from(value.len()).is_err() {
        return Err(MetaError::InvalidArgument {
            reason: format!("value of {} bytes for key {key:?} is too large", value.len()),
        });
    }
    Ok(())
}

/// Checks keys, and (as etcd does) that no branch writes one key twice.
fn validate_txn(txn: &Txn) -> Result<()> {
    for compare in &txn.compares {
        validate_key(&compare.key)?;
    }
    for branch in [&txn.success, &txn.failure] {
        let mut puts = BTreeSet::new();
        for op in branch {
            match op {
                TxnOp::Put { key, value, .. } => {
                    validate_key(key)?;
                    validate_value(key, value)?;
                    if !puts.insert(key.as_str()) {
                        return Err(duplicate_key(key));
                    }
                }
                TxnOp::Delete { key } | TxnOp::Get { key } => validate_key(key)?,
                TxnOp::DeletePrefix { .. } => {}
            }
        }
        for op in branch {
            match op {
                TxnOp::Delete { key } if puts.contains(key.as_str()) => return Err(duplicate_key(key)),
                TxnOp::DeletePrefix { prefix } => {
                    if let Some(key) = puts.iter().find(|key| key.starts_with(prefix.as_str())) {
                        return Err(duplicate_key(key));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn duplicate_key(key: &str) -> MetaError {
    MetaError::InvalidArgument { reason: format!("duplicate key {key:?} given in txn request") }
}

// ---------------------------------------------------------------------------------------
// The writer thread
// ---------------------------------------------------------------------------------------

struct Writer {
    core: Arc<Core>,
    log: LogWriter,
    /// Set after an error that leaves the log in an unknown state; every later write fails.
    poisoned: Option<String>,
    next_snapshot_at: u64,
    /// Held (locked) for as long as the writer runs.
    _lock: File,
}

impl Writer {
    fn run(mut self, queue: std_mpsc::Receiver<WriterMsg>) {
        loop {
            let mut batch = Vec::new();
            let mut shutdown = false;
            match queue.recv() {
                Ok(WriterMsg::Op(op, reply)) => batch.push((op, reply)),
                Ok(WriterMsg::Shutdown) | Err(_) => break,
            }
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(WriterMsg::Op(op, reply)) => batch.push((op, reply)),
                    Ok(WriterMsg::Shutdown) => {
                        shutdown = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.process(batch);
            if shutdown {
                break;
            }
        }
        debug!(dir = %self.core.dir.display(), "meta store writer stopped");
    }

    fn poison_error(&self) -> MetaError {
        let reason = self.poisoned.as_deref().unwrap_or("unknown");
        MetaError::Io {
            path: self.log.path.clone(),
            source: io::Error::other(format!("the meta log is unusable after an earlier failure: {reason}")),
        }
    }

    fn process(&mut self, batch: Vec<(WriteOp, ReplyTx)>) {
        if self.poisoned.is_some() {
            for (_, reply) in batch {
                let _ = reply.send(Err(self.poison_error()));
            }
            return;
        }
        let now = Instant::now();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut commits = Vec::new();
        {
            let state = self.core.state.read();
            let mut overlay = Overlay::new(&state, now);
            for (op, reply) in batch {
                let outcome = overlay.eval(op).map(|(response, commit)| {
                    commits.extend(commit);
                    response
                });
                outcomes.push((reply, outcome));
            }
        }
        if !commits.is_empty() {
            let mut buf = Vec::new();
            for commit in &commits {
                encode_frame(&encode_commit(commit), &mut buf);
            }
            if let Err((source, fatal)) = self.log.append(&buf) {
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
                return;
            }
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
        }
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
        let tmp = dir.join(SNAPSHOT_TMP_FILE);
        let written = (|| -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&snapshot)?;
            file.sync_all()?;
            fs::rename(&tmp, dir.join(SNAPSHOT_FILE))
        })();
        if let Err(error) = written {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&new_log.path);
            return Err(RotateError::Retry(error));
        }
        // The snapshot now names the new log: from here on there is no going back.
        let old = std::mem::replace(&mut self.log, new_log);
        sync_dir(&dir).map_err(RotateError::Fatal)?;
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

// ---------------------------------------------------------------------------------------
// The lease task
// ---------------------------------------------------------------------------------------

async fn lease_expiry_loop(core: Weak<Core>, requests: std_mpsc::Sender<WriterMsg>, wake: Arc<Notify>) {
    loop {
        let now = Instant::now();
        let (expired, next) = {
            let Some(core) = core.upgrade() else { return };
            let state = core.state.read();
            let mut expired = Vec::new();
            let mut next: Option<Instant> = None;
            for (&id, lease) in &state.leases {
                if lease.deadline <= now {
                    expired.push(id);
                } else {
                    next = Some(next.map_or(lease.deadline, |next| next.min(lease.deadline)));
                }
            }
            (expired, next)
        };
        let mut failed = false;
        for lease in expired {
            let (reply, rx) = oneshot::channel();
            if requests.send(WriterMsg::Op(WriteOp::ExpireLease { lease }, reply)).is_err() {
                return;
            }
            match rx.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    warn!(lease, %error, "could not expire lease");
                    failed = true;
                }
                Err(_) => return,
            }
        }
        let mut wake_at = next.map_or(now + LEASE_CHECK_MAX_SLEEP, |next| next.min(now + LEASE_CHECK_MAX_SLEEP));
        if failed {
            wake_at = wake_at.max(Instant::now() + Duration::from_millis(100));
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            () = wake.notified() => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// Files: lock, log, snapshot
// ---------------------------------------------------------------------------------------

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> MetaError + '_ {
    move |source| MetaError::Io { path: path.to_owned(), source }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> MetaError {
    MetaError::Corrupt { path: path.to_owned(), offset, reason: reason.into() }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(MetaError::Unavailable {
            reason: format!("{} is locked: the meta store is already open", path.display()),
        }),
        Err(fs::TryLockError::Error(source)) => Err(MetaError::Io { path, source }),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn log_file_name(generation: u64) -> String {
    format!("meta-{generation:016x}.wal")
}

fn parse_log_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("meta-")?.strip_suffix(".wal")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Removes logs of other generations: older ones are covered by the snapshot, newer
/// ones were created by a rotation that crashed before its snapshot was renamed (they
/// hold no frames then; one that does means the snapshot is missing or stale).
fn remove_other_logs(dir: &Path, generation: u64) -> Result<()> {
    let mut removed = false;
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let Some(other) = entry.file_name().to_str().and_then(parse_log_file_name) else { continue };
        if other == generation {
            continue;
        }
        let path = entry.path();
        if other > generation {
            let len = entry.metadata().map_err(io_error(&path))?.len();
            if len > WAL_HEADER_LEN {
                return Err(corrupt(
                    &path,
                    0,
                    format!("log generation {other} holds data but the snapshot names generation {generation}"),
                ));
            }
        }
        info!(path = %path.display(), "removing stale meta log");
        fs::remove_file(&path).map_err(io_error(&path))?;
        removed = true;
    }
    if removed {
        sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(())
}

struct LogWriter {
    file: File,
    path: PathBuf,
    generation: u64,
    /// Bytes of valid log (header + frames); the file position.
    len: u64,
}

impl LogWriter {
    fn header(generation: u64) -> [u8; WAL_HEADER_LEN as usize] {
        let mut header = [0u8; WAL_HEADER_LEN as usize];
        header[..8].copy_from_slice(WAL_MAGIC);
        header[8..].copy_from_slice(&generation.to_le_bytes());
        header
    }

    /// Creates an empty, durable log of `generation`.
    fn create(dir: &Path, generation: u64) -> io::Result<LogWriter> {
        let path = dir.join(log_file_name(generation));
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        file.write_all(&Self::header(generation))?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(LogWriter { file, path, generation, len: WAL_HEADER_LEN })
    }

    /// Opens the log of `generation` (creating it if missing), applies its frames to
    /// `state`, and cuts off a torn tail.
    fn open_and_replay(dir: &Path, generation: u64, state: &mut State, now: Instant) -> Result<LogWriter> {
        let path = dir.join(log_file_name(generation));
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return LogWriter::create(dir, generation).map_err(io_error(&path));
            }
            Err(source) => return Err(MetaError::Io { path, source }),
        };
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io_error(&path))?;
        if (data.len() as u64) < WAL_HEADER_LEN {
            // Crashed while creating the log: nothing was ever acknowledged from it.
            if !data.is_empty() {
                warn!(path = %path.display(), bytes = data.len(), "meta log header is torn; rewriting it");
            }
            drop(file);
            return LogWriter::create(dir, generation).map_err(io_error(&path));
        }
        if data[..8] != WAL_MAGIC[..] || data[8..16] != generation.to_le_bytes() {
            return Err(corrupt(&path, 0, "bad log header"));
        }
        let mut offset = WAL_HEADER_LEN as usize;
        let mut frames = 0u64;
        while offset < data.len() {
            match frame_at(&data, offset) {
                Some((payload, next)) => {
                    let commit = decode_commit(payload).map_err(|reason| corrupt(&path, offset as u64, reason))?;
                    state.apply(commit, now).map_err(|reason| corrupt(&path, offset as u64, reason))?;
                    frames += 1;
                    offset = next;
                }
                None => {
                    if let Some(valid) = (offset + 1..data.len()).find(|&at| frame_at(&data, at).is_some()) {
                        return Err(corrupt(
                            &path,
                            offset as u64,
                            format!("invalid frame followed by a valid frame at offset {valid}"),
                        ));
                    }
                    warn!(
                        path = %path.display(),
                        offset,
                        bytes = data.len() - offset,
                        "cutting off a torn tail of the meta log (crash during a write)"
                    );
                    file.set_len(offset as u64).map_err(io_error(&path))?;
                    file.sync_all().map_err(io_error(&path))?;
                    break;
                }
            }
        }
        file.seek(SeekFrom::Start(offset as u64)).map_err(io_error(&path))?;
        debug!(path = %path.display(), frames, "replayed meta log");
        Ok(LogWriter { file, path, generation, len: offset as u64 })
    }

    /// Appends and syncs. On failure, the flag says whether the log is now in an
    /// unknown state (it could not be restored to its previous length, or sync failed).
    fn append(&mut self, buf: &[u8]) -> std::result::Result<(), (io::Error, bool)> {
        if let Err(error) = self.file.write_all(buf) {
            let restored = self.file.set_len(self.len).and_then(|()| self.file.seek(SeekFrom::Start(self.len)));
            return Err((error, restored.is_err()));
        }
        self.file.sync_data().map_err(|error| (error, true))?;
        self.len += buf.len() as u64;
        Ok(())
    }
}

/// The payload of a valid frame at `offset` and the offset after it.
fn frame_at(data: &[u8], offset: usize) -> Option<(&[u8], usize)> {
    let header = data.get(offset..offset.checked_add(FRAME_HEADER_LEN)?)?;
    if header[..4] != FRAME_MAGIC {
        return None;
    }
    let len_bytes: [u8; 4] = header[4..8].try_into().ok()?;
    let crc_bytes: [u8; 4] = header[8..12].try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_FRAME_LEN {
        return None;
    }
    let start = offset + FRAME_HEADER_LEN;
    let payload = data.get(start..start + len)?;
    (frame_crc(&len_bytes, payload) == u32::from_le_bytes(crc_bytes)).then_some((payload, start + len))
}

fn frame_crc(len_bytes: &[u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len_bytes);
    hasher.update(payload);
    hasher.finalize()
}

fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len_bytes = u32::try_from(payload.len()).expect("frames are far smaller than 4 GiB").to_le_bytes();
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&frame_crc(&len_bytes, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn encode_commit(commit: &Commit) -> Vec<u8> {
    let mut enc = Encoder::default();
    enc.i64(commit.revision);
    enc.len(commit.events.len());
    for event in &commit.events {
        match event.kind {
            WatchEventKind::Put => {
                enc.u8(EVENT_PUT);
                enc.bytes(event.kv.key.as_bytes());
                enc.bytes(&event.kv.value);
                enc.i64(event.kv.create_revision);
                enc.i64(event.kv.version);
                enc.i64(event.kv.lease);
            }
            WatchEventKind::Delete => {
                enc.u8(EVENT_DELETE);
                enc.bytes(event.kv.key.as_bytes());
            }
        }
    }
    enc.len(commit.grants.len());
    for &(lease, ttl) in &commit.grants {
        enc.i64(lease);
        enc.duration(ttl);
    }
    enc.len(commit.revokes.len());
    for &lease in &commit.revokes {
        enc.i64(lease);
    }
    enc.0
}

fn decode_commit(payload: &[u8]) -> std::result::Result<Commit, String> {
    let mut dec = Decoder::new(payload);
    let revision = dec.i64()?;
    let mut commit = Commit { revision, ..Commit::default() };
    for _ in 0..dec.u32()? {
        let kind = dec.u8()?;
        let key = dec.string()?;
        commit.events.push(match kind {
            EVENT_PUT => {
                let value = Bytes::copy_from_slice(dec.bytes()?);
                let create_revision = dec.i64()?;
                let version = dec.i64()?;
                let lease = dec.i64()?;
                let kv = KeyValue { key, value, create_revision, mod_revision: revision, version, lease };
                WatchEvent { kind: WatchEventKind::Put, kv }
            }
            EVENT_DELETE => delete_event(&key, revision),
            other => return Err(format!("unknown event kind {other}")),
        });
    }
    for _ in 0..dec.u32()? {
        let lease = dec.i64()?;
        commit.grants.push((lease, dec.duration()?));
    }
    for _ in 0..dec.u32()? {
        commit.revokes.push(dec.i64()?);
    }
    dec.finish()?;
    Ok(commit)
}

fn encode_snapshot(state: &State, generation: u64) -> Vec<u8> {
    let mut enc = Encoder::default();
    enc.u32(SNAPSHOT_FORMAT_VERSION);
    enc.u64(generation);
    enc.i64(state.revision);
    enc.i64(state.next_lease_id);
    let leases: BTreeMap<LeaseId, Duration> = state.leases.iter().map(|(&id, lease)| (id, lease.ttl)).collect();
    enc.len(leases.len());
    for (id, ttl) in leases {
        enc.i64(id);
        enc.duration(ttl);
    }
    enc.u64(state.kvs.len() as u64);
    for (key, entry) in &state.kvs {
        enc.bytes(key.as_bytes());
        enc.bytes(&entry.value);
        enc.i64(entry.create_revision);
        enc.i64(entry.mod_revision);
        enc.i64(entry.version);
        enc.i64(entry.lease);
    }
    let payload = enc.0;
    let mut out = Vec::with_capacity(payload.len() + 20);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Reads the snapshot, if there is one: the state and the log generation to replay.
fn read_snapshot(path: &Path, config: &EmbeddedMetaKvConfig, now: Instant) -> Result<Option<(State, u64)>> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MetaError::Io { path: path.to_owned(), source }),
    };
    if data.len() < 20 || data[..8] != SNAPSHOT_MAGIC[..] {
        return Err(corrupt(path, 0, "bad snapshot header"));
    }
    let len = u64::from_le_bytes(data[8..16].try_into().expect("slice of 8 bytes"));
    let crc = u32::from_le_bytes(data[16..20].try_into().expect("slice of 4 bytes"));
    let payload = &data[20..];
    if payload.len() as u64 != len || crc32fast::hash(payload) != crc {
        return Err(corrupt(path, 0, "snapshot checksum or length mismatch"));
    }
    decode_snapshot(payload, config, now).map(Some).map_err(|reason| corrupt(path, 20, reason))
}

fn decode_snapshot(
    payload: &[u8],
    config: &EmbeddedMetaKvConfig,
    now: Instant,
) -> std::result::Result<(State, u64), String> {
    let mut dec = Decoder::new(payload);
    let version = dec.u32()?;
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(format!("unsupported snapshot format version {version}"));
    }
    let generation = dec.u64()?;
    let mut state = State::new(config);
    state.revision = dec.i64()?;
    state.oldest_history = state.revision + 1;
    state.next_lease_id = dec.i64()?;
    for _ in 0..dec.u32()? {
        let id = dec.i64()?;
        let ttl = dec.duration()?;
        state.leases.insert(id, Lease { ttl, deadline: now + ttl, keys: BTreeSet::new() });
    }
    for _ in 0..dec.u64()? {
        let key = dec.string()?;
        let value = Bytes::copy_from_slice(dec.bytes()?);
        let entry = Entry {
            value,
            create_revision: dec.i64()?,
            mod_revision: dec.i64()?,
            version: dec.i64()?,
            lease: dec.i64()?,
        };
        if entry.lease != 0 {
            let lease = state
                .leases
                .get_mut(&entry.lease)
                .ok_or_else(|| format!("key {key:?} has unknown lease {}", entry.lease))?;
            lease.keys.insert(key.clone());
        }
        state.kvs.insert(key, entry);
    }
    dec.finish()?;
    Ok((state, generation))
}

#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, len: usize) {
        self.u32(u32::try_from(len).expect("counts are checked to fit in u32"));
    }
    fn duration(&mut self, d: Duration) {
        self.u64(u64::try_from(d.as_nanos()).expect("lease TTLs are checked to fit in u64 nanoseconds"));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or_else(|| format!("truncated record at byte {}", self.pos))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        self.take(N).map(|s| s.try_into().expect("take returns exactly N bytes"))
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> std::result::Result<i64, String> {
        self.array().map(i64::from_le_bytes)
    }
    fn duration(&mut self) -> std::result::Result<Duration, String> {
        self.u64().map(Duration::from_nanos)
    }
    fn bytes(&mut self) -> std::result::Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "key is not UTF-8".to_owned())
    }
    fn finish(&self) -> std::result::Result<(), String> {
        if self.pos == self.buf.len() { Ok(()) } else { Err(format!("{} trailing bytes", self.buf.len() - self.pos)) }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};

    use futures::StreamExt;

    use super::*;
    use crate::testsuite;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn log_path(dir: &Path) -> PathBuf {
        let mut logs: Vec<PathBuf> = fs::read_dir(dir)
            .expect("read dir")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.file_name().and_then(|n| n.to_str()).and_then(parse_log_file_name).is_some())
            .collect();
        assert_eq!(logs.len(), 1, "exactly one log file: {logs:?}");
        logs.pop().expect("one log")
    }

    async fn dump(kv: &EmbeddedMetaKv) -> (Vec<KeyValue>, Revision) {
        (kv.scan_prefix("").await.expect("scan"), kv.revision().await.expect("revision"))
    }

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
    async fn torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        kv.put("a", b("1"), 0).await.expect("put");
        kv.put("b", b("2"), 0).await.expect("put");
        drop(kv);
        let log = log_path(dir.path());
        let good_len = fs::metadata(&log).expect("log").len();

        // A frame whose payload never made it to disk.
        let mut file = OpenOptions::new().append(true).open(&log).expect("open log");
        let mut torn = Vec::new();
        torn.extend_from_slice(&FRAME_MAGIC);
        torn.extend_from_slice(&100u32.to_le_bytes());
        torn.extend_from_slice(&[0xAB; 14]);
        file.write_all(&torn).expect("append");
        drop(file);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen after a torn frame");
        assert_eq!(fs::metadata(&log).expect("log").len(), good_len, "the torn tail was cut off");
        assert_eq!(kv.get("b").await.expect("get").expect("b").value, b("2"));
        assert_eq!(kv.put("c", b("3"), 0).await.expect("put"), 3);
        drop(kv);

        // Zeroed pages at the tail (file size updated, data not written).
        let mut file = OpenOptions::new().append(true).open(&log).expect("open log");
        file.write_all(&[0u8; 4096]).expect("append");
        drop(file);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen after zeroed tail");
        assert_eq!(kv.get("c").await.expect("get").expect("c").value, b("3"));
        drop(kv);

        // The last frame cut in the middle: that write was never acknowledged.
        let len = fs::metadata(&log).expect("log").len();
        OpenOptions::new().write(true).open(&log).expect("open log").set_len(len - 3).expect("truncate");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen after a cut frame");
        assert_eq!(kv.get("c").await.expect("get"), None);
        assert_eq!(kv.revision().await.expect("revision"), 2);
        assert_eq!(kv.put("d", b("4"), 0).await.expect("put"), 3);
        drop(kv);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen");
        assert_eq!(kv.scan_prefix("").await.expect("scan").len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corruption_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        for key in ["a", "b", "c"] {
            kv.put(key, b(key), 0).await.expect("put");
        }
        drop(kv);
        let log = log_path(dir.path());
        let mut data = fs::read(&log).expect("read log");
        let first_payload = WAL_HEADER_LEN as usize + FRAME_HEADER_LEN + 2;
        data[first_payload] ^= 0xFF;
        fs::write(&log, &data).expect("write log");
        match EmbeddedMetaKv::open(dir.path()) {
            Err(MetaError::Corrupt { offset, .. }) => assert_eq!(offset, WAL_HEADER_LEN),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_snapshot_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { snapshot_log_bytes: 256, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config.clone()).expect("open");
        for i in 0..20 {
            kv.put(&format!("k{i}"), Bytes::from(vec![1u8; 64]), 0).await.expect("put");
        }
        drop(kv);
        let snapshot = dir.path().join(SNAPSHOT_FILE);
        let mut data = fs::read(&snapshot).expect("read snapshot");
        let last = data.len() - 1;
        data[last] ^= 0x01;
        fs::write(&snapshot, &data).expect("write snapshot");
        assert!(matches!(EmbeddedMetaKv::open_with_config(dir.path(), config), Err(MetaError::Corrupt { .. })));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_come_back_with_a_fresh_ttl_then_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ttl = Duration::from_secs(1);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        let lease = kv.grant_lease(ttl).await.expect("grant");
        kv.put("session", b("alive"), lease).await.expect("put");
        tokio::time::sleep(Duration::from_millis(800)).await;
        drop(kv);

        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen");
        let mut watch = kv.watch_prefix("session", None).await.expect("watch");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // 1.3 s since the last refresh, but the restart restarted the TTL.
        assert!(kv.get("session").await.expect("get").is_some(), "the lease got a fresh TTL");
        let event = testsuite::next_event(&mut watch, Duration::from_secs(5)).await;
        assert_eq!((event.kind, event.kv.key.as_str()), (WatchEventKind::Delete, "session"));
        assert_eq!(kv.get("session").await.expect("get"), None);
        assert!(matches!(kv.keep_alive(lease).await, Err(MetaError::LeaseNotFound { .. })));
        drop(kv);

        // The expiry was logged like any delete.
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen");
        assert_eq!(kv.get("session").await.expect("get"), None);
        assert!(matches!(kv.keep_alive(lease).await, Err(MetaError::LeaseNotFound { .. })));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_history_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { history_events: 10, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config).expect("open");
        for i in 1..=30 {
            kv.put(&format!("k{i:02}"), b("v"), 0).await.expect("put");
        }
        match kv.watch_prefix("", Some(5)).await {
            Err(MetaError::Compacted { requested: 5, oldest: 21 }) => {}
            Err(other) => panic!("expected Compacted, got {other:?}"),
            Ok(_) => panic!("expected Compacted, got a stream"),
        }
        let mut watch = kv.watch_prefix("", Some(21)).await.expect("watch from the oldest kept revision");
        for revision in 21..=30 {
            let event = testsuite::next_event(&mut watch, Duration::from_secs(5)).await;
            assert_eq!(event.kv.mod_revision, revision);
        }
        testsuite::assert_no_event(&mut watch, Duration::from_millis(100)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_history_is_bounded_in_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { history_bytes: 100 << 10, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config).expect("open");
        for i in 1..=20 {
            kv.put(&format!("k{i:02}"), Bytes::from(vec![0u8; 10 << 10]), 0).await.expect("put");
        }
        let state = kv.core.state.read();
        assert!(state.history_bytes <= 100 << 10);
        assert!((9..=10).contains(&state.history.len()), "{} events kept", state.history.len());
        assert_eq!(state.oldest_history, state.history.front().expect("kept events").kv.mod_revision);
        assert_eq!(state.history_bytes, state.history.iter().map(event_bytes).sum::<usize>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_watcher_is_cut_off_without_blocking_writers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { watch_buffer_events: 8, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config).expect("open");
        let mut slow = kv.watch_prefix("", None).await.expect("watch");
        let mut other_prefix = kv.watch_prefix("elsewhere/", None).await.expect("watch");
        for i in 1..=100 {
            kv.put(&format!("k{i:03}"), b("v"), 0).await.expect("writers are never blocked by watchers");
        }
        for revision in 1..=8 {
            let event = testsuite::next_event(&mut slow, Duration::from_secs(5)).await;
            assert_eq!(event.kv.mod_revision, revision);
        }
        match tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
            Ok(Some(Err(MetaError::Compacted { requested: 9, .. }))) => {}
            other => panic!("expected Compacted at revision 9, got {other:?}"),
        }
        assert!(slow.next().await.is_none(), "the stream ends after the error");
        // A watcher with nothing to deliver is unaffected.
        kv.put("elsewhere/x", b("v"), 0).await.expect("put");
        let event = testsuite::next_event(&mut other_prefix, Duration::from_secs(5)).await;
        assert_eq!(event.kv.key, "elsewhere/x");
        assert_eq!(kv.core.state.read().watchers.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_watch_releases_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        let watch = kv.watch_prefix("", None).await.expect("watch");
        let _kept = kv.watch_prefix("", None).await.expect("watch");
        assert_eq!(kv.core.state.read().watchers.len(), 2);
        drop(watch);
        kv.put("k", b("v"), 0).await.expect("put");
        assert_eq!(kv.core.state.read().watchers.len(), 1);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_requests_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        assert!(matches!(kv.put("", b("v"), 0).await, Err(MetaError::InvalidArgument { .. })));
        assert!(matches!(kv.get("").await, Err(MetaError::InvalidArgument { .. })));
        assert!(matches!(kv.grant_lease(Duration::ZERO).await, Err(MetaError::InvalidArgument { .. })));
        let duplicate =
            Txn { compares: vec![], success: vec![TxnOp::put("k", "1"), TxnOp::put("k", "2")], failure: vec![] };
        assert!(matches!(kv.txn(duplicate).await, Err(MetaError::InvalidArgument { .. })));
        let overlapping = Txn {
            compares: vec![],
            success: vec![],
            failure: vec![TxnOp::put("p/k", "1"), TxnOp::DeletePrefix { prefix: "p/".to_owned() }],
        };
        assert!(matches!(kv.txn(overlapping).await, Err(MetaError::InvalidArgument { .. })));
        assert_eq!(kv.revision().await.expect("revision"), 0, "nothing was applied");
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

    /// A meta directory as the store wrote it before its WAL code moved to fv-wal (commit
    /// 83c7e5a): a snapshot (after a rotation) and a log with frames after it. Files
    /// written by older builds must keep opening, and this build must write the same bytes.
    const GOLDEN_FILES: &[(&str, &str)] = &[
        (
            "meta-0000000000000003.wal",
            concat!(
                "46564d57414c3031030000000000000046564d461a000000567279820400000000000000010000000201000000610000",
                "00000000000046564d463800000031411bb1050000000000000001000000010100000063020000003333030000000000",
                "0000020000000000000000000000000000000000000000000000",
            ),
        ),
        (
            "meta.snap",
            concat!(
                "46564d534e415031e6000000000000008be28efd01000000030000000000000003000000000000000200000000000000",
                "010000000100000000000000005847f80d00000004000000000000000100000061010000003101000000000000000100",
                "000000000000010000000000000000000000000000000100000063010000003303000000000000000300000000000000",
                "010000000000000000000000000000000100000064010000003403000000000000000300000000000000010000000000",
                "0000000000000000000001000000730700000073657373696f6e02000000000000000200000000000000010000000000",
                "00000100000000000000",
            ),
        ),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn golden_config() -> EmbeddedMetaKvConfig {
        EmbeddedMetaKvConfig { snapshot_log_bytes: 96, ..EmbeddedMetaKvConfig::default() }
    }

    /// The directory's files (but `LOCK`), sorted by name, as hex.
    fn files_as_hex(dir: &Path) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry"))
            .filter(|e| e.file_name() != "LOCK")
            .map(|e| (e.file_name().to_string_lossy().into_owned(), hex(&fs::read(e.path()).expect("read"))))
            .collect();
        files.sort();
        files
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_of_the_original_format_open_and_are_reproduced() {
        // This build writes the same bytes.
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), golden_config()).expect("open");
        kv.put("a", b("1"), 0).await.expect("put");
        let lease = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
        kv.put("s", b("session"), lease).await.expect("put with lease");
        let txn = Txn {
            compares: vec![Compare::absent("c")],
            success: vec![TxnOp::put("c", "3"), TxnOp::put("d", "4")],
            failure: vec![],
        };
        assert!(kv.txn(txn).await.expect("txn").succeeded);
        assert!(kv.delete("a").await.expect("delete"));
        kv.put("c", b("33"), 0).await.expect("put");
        let expected = dump(&kv).await;
        drop(kv);
        let written = files_as_hex(dir.path());
        let golden: Vec<(String, String)> = GOLDEN_FILES.iter().map(|(n, h)| (n.to_string(), h.to_string())).collect();
        assert_eq!(written, golden, "files changed");

        // Files written by the original code open with the same contents.
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, data) in GOLDEN_FILES {
            fs::write(dir.path().join(name), unhex(data)).expect("write");
        }
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), golden_config()).expect("open the original files");
        assert_eq!(dump(&kv).await, expected);
        assert_eq!(expected.1, 5);
        kv.keep_alive(lease).await.expect("the lease came back");
        assert_eq!(kv.put("e", b("5"), 0).await.expect("put"), 6);
    }
}

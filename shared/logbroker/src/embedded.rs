//! [`EmbeddedBroker`]: a durable file log under one directory, for standalone Ferrovec
//! and tests. It serves a single process: request/reply and notifications are in-process.
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/LOCK                                  advisory lock: one broker per directory
//! <dir>/<encoded topic>/                      one directory per topic
//! <dir>/<encoded topic>/00000000000000000001.log   segments, named by their first position
//! <dir>/<encoded topic>/first_retained        first readable position after `truncate`
//! ```
//!
//! Topic names are encoded byte-wise: `[A-Za-z0-9_-]` stay, every other byte becomes
//! `%XX` (upper-case hex). `first_retained` holds a decimal number and a newline and is
//! replaced atomically (write temp file, fsync, rename, fsync directory).
//!
//! A segment is a sequence of *batch frames*, one per `produce` call, all little-endian:
//!
//! ```text
//! magic "FVLB" (4) | body_len u32 | crc32 u32 | first_seq u64 | count u32 | body (body_len)
//! body = count records: subject_len u32, subject, header_count u32,
//!        header_count * (key_len u32, key, value_len u32, value), payload_len u32, payload
//! ```
//!
//! The crc32 (crc32fast / IEEE) covers everything after the crc field: `first_seq`,
//! `count` and the body. Frames are contiguous: each frame's `first_seq` is the previous
//! frame's `first_seq + count`, and a segment's first frame starts at the number in the
//! segment's name. A frame is all-or-nothing: on open, damage at the tail of the *last*
//! segment (nothing valid after it: a crash mid-write) is truncated away with a warning;
//! any other damage fails `open` with [`BrokerError::Corrupt`].
//!
//! # Writes
//!
//! Each topic has a writer thread. Concurrent `produce` calls queue there and are
//! written as one group followed by a single `fdatasync` (group commit) under
//! [`FsyncPolicy::Always`]. Records become visible to subscribers only once they are
//! durable (written, and synced under `Always`), so a subscriber never sees data that a
//! crash could take back.
//!
//! # Reads
//!
//! A subscription keeps a cursor (the next position) and reads either from a small
//! in-memory cache of the most recent records of the topic (at most 4 MiB, and at most
//! one segment's size) or, on a blocking thread, from the segment files, at most a few
//! MiB per step. A sparse per-segment index (one entry per 64 KiB) finds the frame of a
//! position without scanning the whole segment.
//!
//! # Modules
//!
//! The lock, the frame codec, torn-tail recovery and the group-commit thread are
//! [`fv_wal`]'s, shared with the embedded meta store. Here: topic and file names
//! (`names`), the frame layout (`frame`), a topic's state (`topic`), opening a topic
//! (`recovery`), the writer (`writer`), subscriptions (`subscription`) and the in-process
//! request/reply and notifications (`rpc`).

mod frame;
mod names;
mod recovery;
mod rpc;
mod subscription;
#[cfg(test)]
mod testutil;
mod topic;
mod writer;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fv_wal::DirLock;
pub use fv_wal::FsyncPolicy;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{info, warn};

use self::frame::record_len;
use self::names::{decode_topic, encode_topic, validate_subject, validate_topic};
use self::recovery::recover_topic;
use self::topic::{AppendReq, Control, Topic, start_topic};
use crate::{
    BrokerError, Headers, LogBroker, LogStream, NotificationStream, OutgoingMessage, Position, RequestStream, Result,
    SeekFrom, SubjectFilter,
};

/// Settings of an [`EmbeddedBroker`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    pub fsync: FsyncPolicy,
    /// A segment file is closed and a new one started once appending the next batch
    /// would make it larger than this (a segment always holds at least one batch).
    pub segment_bytes: u64,
    /// Largest payload of one record ([`LogBroker::max_message_bytes`]).
    pub max_message_bytes: usize,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        Self { fsync: FsyncPolicy::Always, segment_bytes: 64 << 20, max_message_bytes: 16 << 20 }
    }
}

/// Distance between sparse index entries of a segment.
const INDEX_INTERVAL: u64 = 64 << 10;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BrokerError + '_ {
    move |source| BrokerError::Io { path: path.to_path_buf(), source }
}

fn join_err(e: tokio::task::JoinError) -> BrokerError {
    BrokerError::Unavailable { reason: format!("blocking task failed: {e}") }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fv_wal::sync_dir(dir).map_err(io_err(dir))
}

/// The embedded durable log broker. See the module docs for the format.
pub struct EmbeddedBroker {
    dir: PathBuf,
    config: EmbeddedBrokerConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation.
    create_lock: tokio::sync::Mutex<()>,
    rpc: rpc::InProc,
    /// Held while the broker lives: one broker per directory.
    _lock: DirLock,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker").field("dir", &self.dir).field("config", &self.config).finish()
    }
}

impl EmbeddedBroker {
    /// Opens the broker stored under `dir` (created if missing) and recovers every topic
    /// found there, truncating torn tails. Blocks on file I/O: call it at start-up or from
    /// a blocking thread. Fails with [`BrokerError::Unavailable`] when another broker holds
    /// the directory and with [`BrokerError::Corrupt`] on unrecoverable damage.
    pub fn open(dir: &Path, config: EmbeddedBrokerConfig) -> Result<Arc<EmbeddedBroker>> {
        if config.segment_bytes == 0 {
            return Err(BrokerError::InvalidArgument { reason: "segment_bytes must be positive".into() });
        }
        if config.max_message_bytes == 0 || config.max_message_bytes > (u32::MAX as usize) / 2 {
            return Err(BrokerError::InvalidArgument {
                reason: format!("max_message_bytes must be in 1..={}", u32::MAX / 2),
            });
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = DirLock::acquire(dir)?;

        let mut topics = HashMap::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let path = entry.path();
            if !entry.file_type().map_err(io_err(&path))?.is_dir() {
                continue;
            }
            let dir_name = entry.file_name();
            let Some(name) = dir_name.to_str().and_then(decode_topic) else {
                warn!(path = %path.display(), "ignoring directory that is not a topic");
                continue;
            };
            let recovered = recover_topic(&path, &name)?;
            topics.insert(name, Arc::new(start_topic(recovered, &config)?));
        }
        info!(dir = %dir.display(), topics = topics.len(), fsync = ?config.fsync, "embedded log broker opened");
        Ok(Arc::new(EmbeddedBroker {
            dir: dir.to_path_buf(),
            config,
            topics: RwLock::new(topics),
            create_lock: tokio::sync::Mutex::new(()),
            rpc: rpc::InProc::default(),
            _lock: lock,
        }))
    }

    /// The directory the broker stores its topics in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings the broker was opened with.
    pub fn config(&self) -> &EmbeddedBrokerConfig {
        &self.config
    }

    /// Directory holding `topic`'s segments (whether or not the topic exists).
    pub fn topic_dir(&self, topic: &str) -> PathBuf {
        self.dir.join(encode_topic(topic))
    }

    /// First position of `topic` still readable (1 until the topic is truncated).
    pub fn first_retained(&self, topic: &str) -> Result<Position> {
        Ok(self.topic(topic)?.shared.state.lock().first_retained)
    }

    /// Number of fdatasync calls made on `topic`'s segments since open (group-commit
    /// diagnostics).
    pub fn sync_count(&self, topic: &str) -> Result<u64> {
        Ok(self.topic(topic)?.shared.syncs.load(Ordering::Relaxed))
    }

    fn topic(&self, topic: &str) -> Result<Arc<Topic>> {
        self.topics.read().get(topic).cloned().ok_or_else(|| BrokerError::TopicNotFound { topic: topic.to_owned() })
    }

    /// Appends a batch; `durable` asks for fdatasync before the reply (see the fsync policy).
    async fn append(&self, topic: &str, messages: Vec<OutgoingMessage>, durable: bool) -> Result<Vec<Position>> {
        let t = self.topic(topic)?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let limit = self.config.max_message_bytes;
        let mut body_len = 0u64;
        for m in &messages {
            if m.payload.len() > limit {
                return Err(BrokerError::MessageTooLarge { size: m.payload.len(), limit });
            }
            validate_subject(&m.subject)?;
            let too_long = m.subject.len() > u32::MAX as usize
                || m.headers.iter().any(|(k, v)| k.len() > u32::MAX as usize || v.len() > u32::MAX as usize);
            if too_long {
                return Err(BrokerError::InvalidArgument { reason: "subject or header too long".into() });
            }
            body_len += record_len(m);
        }
        if body_len > u64::from(u32::MAX) || messages.len() > u32::MAX as usize {
            return Err(BrokerError::InvalidArgument {
                reason: format!("batch of {} records / {body_len} bytes is too large for one frame", messages.len()),
            });
        }
        let (reply, rx) = oneshot::channel();
        t.append(AppendReq { messages, body_len: body_len as usize, durable, reply })?;
        rx.await.map_err(|_| BrokerError::Unavailable { reason: format!("writer of topic {topic} stopped") })?
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // End the request and notification streams; topics (and their writer threads)
        // are dropped with the map, which ends the subscriptions.
        self.rpc.close();
    }
}

#[async_trait]
impl LogBroker for EmbeddedBroker {
    async fn ensure_topic(&self, topic: &str) -> Result<()> {
        validate_topic(topic)?;
        if self.topics.read().contains_key(topic) {
            return Ok(());
        }
        let _guard = self.create_lock.lock().await;
        if self.topics.read().contains_key(topic) {
            return Ok(());
        }
        let root = self.dir.clone();
        let topic_dir = self.topic_dir(topic);
        let name = topic.to_owned();
        let fsync = self.config.fsync;
        let recovered = tokio::task::spawn_blocking(move || {
            let existed = topic_dir.exists();
            fs::create_dir_all(&topic_dir).map_err(io_err(&topic_dir))?;
            if !existed && fsync == FsyncPolicy::Always {
                sync_dir(&root)?;
            }
            recover_topic(&topic_dir, &name)
        })
        .await
        .map_err(join_err)??;
        let started = start_topic(recovered, &self.config)?;
        self.topics.write().insert(topic.to_owned(), Arc::new(started));
        info!(topic, "created topic");
        Ok(())
    }

    async fn produce(&self, topic: &str, messages: Vec<OutgoingMessage>) -> Result<Vec<Position>> {
        self.append(topic, messages, true).await
    }

    async fn produce_volatile(&self, topic: &str, messages: Vec<OutgoingMessage>) -> Result<Vec<Position>> {
        self.append(topic, messages, false).await
    }

    async fn subscribe(&self, topic: &str, filter: SubjectFilter, from: SeekFrom) -> Result<LogStream> {
        subscription::subscribe(&*self.topic(topic)?, topic, filter, from)
    }

    async fn latest_position(&self, topic: &str) -> Result<Position> {
        Ok(self.topic(topic)?.shared.state.lock().tip)
    }

    async fn truncate(&self, topic: &str, before: Position) -> Result<()> {
        let t = self.topic(topic)?;
        let (reply, rx) = oneshot::channel();
        t.control(Control::Truncate { before, reply })?;
        rx.await.map_err(|_| BrokerError::Unavailable { reason: format!("writer of topic {topic} stopped") })?
    }

    async fn topics(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.topics.read().keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn serve(&self, subject: &str, queue_group: Option<&str>) -> Result<RequestStream> {
        self.rpc.serve(subject, queue_group)
    }

    async fn request(&self, subject: &str, payload: Bytes, headers: Headers, timeout: Duration) -> Result<Bytes> {
        self.rpc.request(subject, payload, headers, timeout).await
    }

    async fn notify(&self, subject: &str, payload: Bytes, headers: Headers) -> Result<()> {
        self.rpc.notify(subject, payload, headers)
    }

    async fn listen(&self, subject: &str) -> Result<NotificationStream> {
        self.rpc.listen(subject)
    }

    fn max_message_bytes(&self) -> usize {
        self.config.max_message_bytes
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use serde::Deserialize;
    use tempfile::TempDir;

    use super::names::{decode_topic, encode_topic};
    use super::testutil::*;
    use super::*;
    use crate::testsuite;

    macro_rules! suite_tests {
        ($($name:ident),* $(,)?) => {
            mod suite {
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let dir = TempDir::new().expect("tempdir");
                        let broker = open(dir.path());
                        testsuite::$name(&*broker, "t").await;
                    }
                )*
            }
        };
    }

    suite_tests!(
        ensure_topic_is_idempotent,
        produce_assigns_contiguous_positions,
        subscribe_from_earliest,
        subscribe_from_latest,
        subscribe_after_position,
        subject_filters,
        live_follow,
        latest_position_tracks_appends,
        headers_round_trip,
        concurrent_producers,
        truncate_discards_prefix,
        message_too_large_appends_nothing,
        record_at_the_size_limit_round_trips,
        missing_topic_is_not_found,
        topics_lists_created_topics,
        dropped_subscription_is_harmless,
        request_reply_round_trip,
        request_without_responders,
        request_timeout,
        queue_group_distribution,
        fanout_without_queue_group,
        notify_and_listen,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_default_config() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        testsuite::run_all(&*broker, "all").await;
    }

    /// Tiny segments and no cache to speak of: every read goes through the files.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_small_segments_fsync_never() {
        let dir = TempDir::new().expect("tempdir");
        let broker = EmbeddedBroker::open(dir.path(), config(FsyncPolicy::Never, 512)).expect("open");
        testsuite::run_all(&*broker, "small").await;
        assert_eq!(broker.sync_count("small-concurrent").expect("topic"), 0, "Never must not fsync");
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn second_open_of_a_directory_is_refused() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        let err = EmbeddedBroker::open(dir.path(), EmbeddedBrokerConfig::default()).expect_err("locked");
        assert!(matches!(err, BrokerError::Unavailable { .. }), "{err}");
        drop(broker);
        open(dir.path());
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn odd_topic_names_round_trip() {
        let dir = TempDir::new().expect("tempdir");
        let names = ["fv-dml-3", "a/b", "..", "with space.and.dots", "ünïcödé%41", "UPPER_lower-09"];
        let broker = open(dir.path());
        for (i, n) in names.iter().enumerate() {
            broker.ensure_topic(n).await.expect("ensure");
            broker.produce(n, vec![OutgoingMessage::new("s", format!("{i}"))]).await.expect("produce");
        }
        assert!(matches!(broker.ensure_topic("").await, Err(BrokerError::InvalidArgument { .. })));
        drop(broker);
        let broker = open(dir.path());
        let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(broker.topics().await.expect("topics"), expected);
        for (i, n) in names.iter().enumerate() {
            let got = read_all(&broker, n, SubjectFilter::All, 1).await;
            assert_eq!(got[0].payload.as_ref(), i.to_string().as_bytes());
        }
        for n in names {
            assert_eq!(decode_topic(&encode_topic(n)).as_deref(), Some(n));
        }
        assert_eq!(decode_topic("a%2f"), None, "non-canonical encodings are not topics");
        assert_eq!(decode_topic("a.b"), None);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn message_size_limit_is_inclusive() {
        let dir = TempDir::new().expect("tempdir");
        let cfg = EmbeddedBrokerConfig { max_message_bytes: 1000, ..config(FsyncPolicy::Always, 4096) };
        let broker = EmbeddedBroker::open(dir.path(), cfg).expect("open");
        broker.ensure_topic("m").await.expect("ensure");
        let ok = broker.produce("m", vec![OutgoingMessage::new("a", vec![1u8; 1000])]).await.expect("at the limit");
        assert_eq!(ok, vec![1]);
        let err = broker.produce("m", vec![OutgoingMessage::new("a", vec![1u8; 1001])]).await.expect_err("above");
        assert!(matches!(err, BrokerError::MessageTooLarge { size: 1001, limit: 1000 }));
        // A batch larger than a segment still fits in one (new) segment.
        let big: Vec<_> = (0..10).map(|_| OutgoingMessage::new("a", vec![2u8; 1000])).collect();
        assert_eq!(broker.produce("m", big).await.expect("big batch"), (2..=11).collect::<Vec<_>>());
        drop(broker);
        let broker = EmbeddedBroker::open(dir.path(), cfg_clone()).expect("reopen");
        assert_eq!(broker.latest_position("m").await.expect("latest"), 11);

        fn cfg_clone() -> EmbeddedBrokerConfig {
            EmbeddedBrokerConfig { max_message_bytes: 1000, ..config(FsyncPolicy::Always, 4096) }
        }
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_end_when_the_broker_is_dropped() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        fill(&broker, "t", 1, 2).await;
        let mut sub = broker.subscribe("t", SubjectFilter::All, SeekFrom::Earliest).await.expect("subscribe");
        let mut requests = broker.serve("svc", None).await.expect("serve");
        let mut notes = broker.listen("evt.>").await.expect("listen");
        drop(broker);
        // Already committed records are still delivered, then the stream ends.
        assert_eq!(sub.next().await.expect("open").expect("record").position, 1);
        assert_eq!(sub.next().await.expect("open").expect("record").position, 2);
        let end = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("ends");
        assert!(end.is_none());
        assert!(tokio::time::timeout(Duration::from_secs(5), requests.next()).await.expect("ends").is_none());
        assert!(tokio::time::timeout(Duration::from_secs(5), notes.next()).await.expect("ends").is_none());
    }
    #[test]
    fn config_deserializes_lowercase() {
        #[derive(Deserialize)]
        struct Wrap {
            fsync: FsyncPolicy,
        }
        let w: Wrap = serde::Deserialize::deserialize(
            serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new([("fsync", "never")].into_iter()),
        )
        .expect("deserialize");
        assert_eq!(w.fsync, FsyncPolicy::Never);
        assert_eq!(EmbeddedBrokerConfig::default().fsync, FsyncPolicy::Always);
        assert_eq!(EmbeddedBrokerConfig::default().segment_bytes, 64 << 20);
        assert_eq!(EmbeddedBrokerConfig::default().max_message_bytes, 16 << 20);
    }
}

//! A topic's state as readers see it (segments, tip, cache of recent records) and the
//! handle that owns its writer thread.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use fv_wal::{GroupConfig, GroupWriter};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use super::recovery::Recovered;
use super::writer::Writer;
use super::{EmbeddedBrokerConfig, io_err};
use crate::{BrokerError, LogMessage, OutgoingMessage, Position, Result};

/// Upper bound of the per-topic cache of recent records.
const MAX_CACHE_BYTES: usize = 4 << 20;
/// Limits of one group commit.
const GROUP_MAX_COMMANDS: usize = 1024;
const GROUP_MAX_BYTES: usize = 32 << 20;

/// A segment file as known to readers: only its committed (visible) part.
#[derive(Debug, Clone)]
pub(super) struct SegMeta {
    pub(super) base: Position,
    pub(super) path: PathBuf,
    /// Bytes of committed frames.
    pub(super) end: u64,
    /// Last committed position in the segment (`base - 1` when empty).
    pub(super) last: Position,
    /// Sparse index: (first position of a frame, its offset), ascending.
    pub(super) index: Vec<(Position, u64)>,
}

impl SegMeta {
    /// Where to start scanning for `pos`: the last indexed frame starting at or before it.
    pub(super) fn seek_hint(&self, pos: Position) -> (Position, u64) {
        let i = self.index.partition_point(|&(seq, _)| seq <= pos);
        if i == 0 { (self.base, 0) } else { self.index[i - 1] }
    }
}

pub(super) struct TopicState {
    pub(super) segments: BTreeMap<Position, SegMeta>,
    /// First readable position (1 for a topic never truncated).
    pub(super) first_retained: Position,
    /// Last visible (durable) position, 0 when empty.
    pub(super) tip: Position,
    /// The most recent records, contiguous and ending at `tip` (or empty).
    pub(super) cache: VecDeque<LogMessage>,
    pub(super) cache_bytes: usize,
}

pub(super) struct TopicShared {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) state: Mutex<TopicState>,
    pub(super) cache_limit: usize,
    /// Number of fdatasync calls on segment data (for tests of group commit).
    pub(super) syncs: AtomicU64,
}

fn cached_size(m: &LogMessage) -> usize {
    64 + m.subject.len() + m.payload.len() + m.headers.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>()
}

impl TopicState {
    pub(super) fn push_cache(&mut self, msg: LogMessage, limit: usize) {
        let size = cached_size(&msg);
        if size > limit {
            // The cache must stay contiguous up to the tip: drop it all.
            self.cache.clear();
            self.cache_bytes = 0;
            return;
        }
        self.cache_bytes += size;
        self.cache.push_back(msg);
        while self.cache_bytes > limit {
            match self.cache.pop_front() {
                Some(old) => self.cache_bytes -= cached_size(&old),
                None => break,
            }
        }
    }

    pub(super) fn trim_cache_below(&mut self, first: Position) {
        while self.cache.front().is_some_and(|m| m.position < first) {
            if let Some(old) = self.cache.pop_front() {
                self.cache_bytes -= cached_size(&old);
            }
        }
    }
}

/// A queued `produce`.
pub(super) struct AppendReq {
    pub(super) messages: Vec<OutgoingMessage>,
    pub(super) body_len: usize,
    /// Whether the producer needs the batch on stable storage before the reply.
    pub(super) durable: bool,
    pub(super) reply: oneshot::Sender<Result<Vec<Position>>>,
}

/// Requests to the writer other than appends; they run between groups.
pub(super) enum Control {
    Truncate { before: Position, reply: oneshot::Sender<Result<()>> },
}

/// A topic owned by the broker: its shared state and its writer thread (stopped, after
/// committing what is queued, when the topic is dropped).
pub(super) struct Topic {
    pub(super) shared: Arc<TopicShared>,
    writer: GroupWriter<AppendReq, Control>,
    /// Template for subscriptions; the writer thread holds the sender, so the receivers
    /// see the channel close (and their streams end) once the topic is dropped.
    pub(super) tip_rx: watch::Receiver<Position>,
}

impl Topic {
    fn unavailable(&self) -> BrokerError {
        BrokerError::Unavailable { reason: format!("writer of topic {} stopped", self.shared.name) }
    }

    pub(super) fn append(&self, req: AppendReq) -> Result<()> {
        self.writer.append(req).map_err(|_| self.unavailable())
    }

    pub(super) fn control(&self, control: Control) -> Result<()> {
        self.writer.control(control).map_err(|_| self.unavailable())
    }
}

/// Starts the writer thread of a recovered topic.
pub(super) fn start_topic(rec: Recovered, config: &EmbeddedBrokerConfig) -> Result<Topic> {
    let cache_limit = MAX_CACHE_BYTES.min(usize::try_from(config.segment_bytes).unwrap_or(usize::MAX));
    let shared = Arc::new(TopicShared {
        name: rec.name,
        dir: rec.dir,
        state: Mutex::new(TopicState {
            segments: rec.segments,
            first_retained: rec.first_retained,
            tip: rec.tip,
            cache: VecDeque::new(),
            cache_bytes: 0,
        }),
        cache_limit,
        syncs: AtomicU64::new(0),
    });
    let (tip_tx, tip_rx) = watch::channel(rec.tip);
    let writer = Writer::new(shared.clone(), tip_tx, config, rec.active, rec.tip + 1);
    let group = GroupConfig { max_appends: GROUP_MAX_COMMANDS, max_bytes: GROUP_MAX_BYTES, fsync: config.fsync };
    let writer =
        GroupWriter::spawn(&format!("fv-log-writer:{}", shared.name), group, writer).map_err(io_err(&shared.dir))?;
    Ok(Topic { shared, writer, tip_rx })
}

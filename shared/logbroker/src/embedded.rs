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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::{
    BrokerError, Headers, IncomingRequest, LogBroker, LogMessage, LogStream, Notification, NotificationStream,
    OutgoingMessage, Position, Replier, RequestStream, Result, SeekFrom, SubjectFilter, subject_matches,
};

/// When the embedded broker forces appended data to stable storage: under `Always`,
/// `produce` returns only after its records are fdatasync'ed, and concurrent producers
/// of a topic share one fdatasync (group commit).
pub use fv_wal::FsyncPolicy;

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

const FRAME_MAGIC: [u8; 4] = *b"FVLB";
/// magic 4 + body_len 4 + crc 4 + first_seq 8 + count 4.
const FRAME_HEADER_LEN: usize = 24;
/// The crc covers the frame from this offset (first_seq) to its end.
const FRAME_CRC_FROM: usize = 12;
const SEGMENT_SUFFIX: &str = ".log";
const FIRST_RETAINED_FILE: &str = "first_retained";
const LOCK_FILE: &str = "LOCK";
/// Distance between sparse index entries of a segment.
const INDEX_INTERVAL: u64 = 64 << 10;
/// Upper bound of the per-topic cache of recent records.
const MAX_CACHE_BYTES: usize = 4 << 20;
/// A subscription reads at most this many records / payload bytes per step.
const READ_BATCH_RECORDS: usize = 1024;
const READ_BATCH_BYTES: usize = 4 << 20;
/// Read-ahead of a subscription's segment reader.
const READ_CHUNK: usize = 256 << 10;
/// Limits of one group commit.
const GROUP_MAX_COMMANDS: usize = 1024;
const GROUP_MAX_BYTES: usize = 32 << 20;
/// The writer hands its buffer to the kernel once it holds this much.
const WRITE_BUF_FLUSH: usize = 4 << 20;
/// Notifications queued for a listener that does not keep up before new ones are dropped.
const NOTIFY_QUEUE: usize = 65_536;
/// Longest encoded topic directory name (file systems allow 255 bytes).
const MAX_TOPIC_DIR_LEN: usize = 240;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BrokerError + '_ {
    move |source| BrokerError::Io { path: path.to_path_buf(), source }
}

fn join_err(e: tokio::task::JoinError) -> BrokerError {
    BrokerError::Unavailable { reason: format!("blocking task failed: {e}") }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

// ---------------------------------------------------------------------------------------
// Topic names and paths

/// Encodes a topic name into a directory name: `[A-Za-z0-9_-]` kept, other bytes `%XX`.
fn encode_topic(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`encode_topic`]; `None` for names it cannot have produced.
fn decode_topic(dir_name: &str) -> Option<String> {
    let bytes = dir_name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = dir_name.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if v.is_ascii_alphanumeric() || v == b'-' || v == b'_' || hex.bytes().any(|c| c.is_ascii_lowercase()) {
                return None; // not canonical
            }
            out.push(v);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

fn validate_topic(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(BrokerError::InvalidArgument { reason: "empty topic name".into() });
    }
    if encode_topic(name).len() > MAX_TOPIC_DIR_LEN {
        return Err(BrokerError::InvalidArgument { reason: format!("topic name too long: {name:?}") });
    }
    Ok(())
}

fn validate_subject(subject: &str) -> Result<()> {
    if subject.is_empty() {
        return Err(BrokerError::InvalidArgument { reason: "empty subject".into() });
    }
    Ok(())
}

fn segment_path(topic_dir: &Path, base: Position) -> PathBuf {
    topic_dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<Position> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Frame encoding

/// Encoded size of one record inside a frame body.
fn record_len(m: &OutgoingMessage) -> u64 {
    let headers: u64 = m.headers.iter().map(|(k, v)| 8 + k.len() as u64 + v.len() as u64).sum();
    4 + m.subject.len() as u64 + 4 + headers + 4 + m.payload.len() as u64
}

fn put_lp(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
    buf.extend_from_slice(data);
}

/// Appends one batch frame to `buf`. Lengths were validated by `produce`.
fn encode_frame(buf: &mut Vec<u8>, first_seq: Position, msgs: &[OutgoingMessage], body_len: usize) {
    let start = buf.len();
    buf.reserve(FRAME_HEADER_LEN + body_len);
    buf.extend_from_slice(&FRAME_MAGIC);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&first_seq.to_le_bytes());
    buf.extend_from_slice(&(msgs.len() as u32).to_le_bytes());
    for m in msgs {
        put_lp(buf, m.subject.as_bytes());
        buf.extend_from_slice(&(m.headers.len() as u32).to_le_bytes());
        for (k, v) in &m.headers {
            put_lp(buf, k.as_bytes());
            put_lp(buf, v.as_bytes());
        }
        put_lp(buf, &m.payload);
    }
    debug_assert_eq!(buf.len() - start, FRAME_HEADER_LEN + body_len);
    let crc = crc32fast::hash(&buf[start + FRAME_CRC_FROM..]);
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// The fixed-size header of a frame.
#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    body_len: u32,
    crc: u32,
    first_seq: Position,
    count: u32,
}

impl FrameHeader {
    fn parse(h: &[u8]) -> std::result::Result<Self, String> {
        if h.len() < FRAME_HEADER_LEN {
            return Err("truncated frame header".into());
        }
        if h[0..4] != FRAME_MAGIC {
            return Err("bad frame magic".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&h[12..20]);
        Ok(Self { body_len: u32_at(4), crc: u32_at(8), first_seq: u64::from_le_bytes(seq), count: u32_at(20) })
    }

    fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.body_len)
    }

    /// Checks the crc of a complete frame (header included).
    fn check_crc(&self, frame: &[u8]) -> std::result::Result<(), String> {
        let actual = crc32fast::hash(&frame[FRAME_CRC_FROM..]);
        if actual != self.crc {
            return Err(format!("checksum mismatch (stored {:08x}, computed {actual:08x})", self.crc));
        }
        Ok(())
    }
}

/// A record inside a frame body, borrowed.
struct RawRecord<'a> {
    subject: &'a str,
    header_count: u32,
    headers_raw: &'a [u8],
    payload: Range<usize>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.buf.get(self.pos..self.pos + 4).ok_or("record runs past the end of its frame")?;
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-prefixed byte string; returns its range in the buffer.
    fn lp(&mut self) -> std::result::Result<Range<usize>, String> {
        let n = self.u32()? as usize;
        let range = self.pos..self.pos.checked_add(n).ok_or("length overflow")?;
        if range.end > self.buf.len() {
            return Err("record runs past the end of its frame".into());
        }
        self.pos = range.end;
        Ok(range)
    }

    fn lp_str(&mut self) -> std::result::Result<&'a str, String> {
        let r = self.lp()?;
        std::str::from_utf8(&self.buf[r]).map_err(|_| "string is not UTF-8".to_string())
    }
}

/// Walks the `count` records of a frame body, validating its structure.
fn parse_records<'a>(
    body: &'a [u8],
    count: u32,
    mut f: impl FnMut(u32, RawRecord<'a>) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let mut c = Cursor { buf: body, pos: 0 };
    for i in 0..count {
        let subject = c.lp_str()?;
        let header_count = c.u32()?;
        let headers_start = c.pos;
        for _ in 0..header_count {
            c.lp_str()?;
            c.lp_str()?;
        }
        let headers_raw = &body[headers_start..c.pos];
        let payload = c.lp()?;
        f(i, RawRecord { subject, header_count, headers_raw, payload })?;
    }
    if c.pos != body.len() {
        return Err(format!("{} trailing bytes after the last record of the frame", body.len() - c.pos));
    }
    Ok(())
}

fn decode_headers(raw: &[u8], n: u32) -> std::result::Result<Headers, String> {
    let mut c = Cursor { buf: raw, pos: 0 };
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let k = c.lp_str()?.to_owned();
        let v = c.lp_str()?.to_owned();
        out.push((k, v));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Topic state

/// A segment file as known to readers: only its committed (visible) part.
#[derive(Debug, Clone)]
struct SegMeta {
    base: Position,
    path: PathBuf,
    /// Bytes of committed frames.
    end: u64,
    /// Last committed position in the segment (`base - 1` when empty).
    last: Position,
    /// Sparse index: (first position of a frame, its offset), ascending.
    index: Vec<(Position, u64)>,
}

impl SegMeta {
    /// Where to start scanning for `pos`: the last indexed frame starting at or before it.
    fn seek_hint(&self, pos: Position) -> (Position, u64) {
        let i = self.index.partition_point(|&(seq, _)| seq <= pos);
        if i == 0 { (self.base, 0) } else { self.index[i - 1] }
    }
}

struct TopicState {
    segments: BTreeMap<Position, SegMeta>,
    /// First readable position (1 for a topic never truncated).
    first_retained: Position,
    /// Last visible (durable) position, 0 when empty.
    tip: Position,
    /// The most recent records, contiguous and ending at `tip` (or empty).
    cache: VecDeque<LogMessage>,
    cache_bytes: usize,
}

struct TopicShared {
    name: String,
    dir: PathBuf,
    state: Mutex<TopicState>,
    cache_limit: usize,
    /// Number of fdatasync calls on segment data (for tests of group commit).
    syncs: AtomicU64,
}

fn cached_size(m: &LogMessage) -> usize {
    64 + m.subject.len() + m.payload.len() + m.headers.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>()
}

impl TopicState {
    fn push_cache(&mut self, msg: LogMessage, limit: usize) {
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

    fn trim_cache_below(&mut self, first: Position) {
        while self.cache.front().is_some_and(|m| m.position < first) {
            if let Some(old) = self.cache.pop_front() {
                self.cache_bytes -= cached_size(&old);
            }
        }
    }
}

struct AppendReq {
    messages: Vec<OutgoingMessage>,
    body_len: usize,
    /// Whether the producer needs the batch on stable storage before the reply.
    durable: bool,
    reply: oneshot::Sender<Result<Vec<Position>>>,
}

enum Command {
    Append(AppendReq),
    Truncate { before: Position, reply: oneshot::Sender<Result<()>> },
}

/// A topic owned by the broker: its shared state and its writer thread.
struct Topic {
    shared: Arc<TopicShared>,
    tx: Option<std_mpsc::Sender<Command>>,
    /// Template for subscriptions; the writer thread holds the sender, so the receivers
    /// see the channel close (and their streams end) once the topic is dropped.
    tip_rx: watch::Receiver<Position>,
    thread: Option<JoinHandle<()>>,
}

impl Topic {
    fn send(&self, cmd: Command) -> Result<()> {
        let unavailable =
            || BrokerError::Unavailable { reason: format!("writer of topic {} stopped", self.shared.name) };
        self.tx.as_ref().ok_or_else(unavailable)?.send(cmd).map_err(|_| unavailable())
    }
}

impl Drop for Topic {
    fn drop(&mut self) {
        // Closing the channel stops the writer once it has finished its queue.
        self.tx.take();
        if let Some(handle) = self.thread.take()
            && handle.join().is_err()
        {
            error!(topic = %self.shared.name, "log writer thread panicked");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Recovery

/// The segment being appended to.
struct Active {
    base: Position,
    path: PathBuf,
    file: File,
    len: u64,
    last_index: Option<u64>,
}

struct Recovered {
    name: String,
    dir: PathBuf,
    segments: BTreeMap<Position, SegMeta>,
    first_retained: Position,
    tip: Position,
    active: Active,
}

struct ScannedSegment {
    end: u64,
    last: Position,
    index: Vec<(Position, u64)>,
}

/// Validates the frames of one segment starting with position `first`. In the last
/// segment, damage with nothing valid after it is truncated away.
fn scan_segment(path: &Path, first: Position, is_last: bool) -> Result<ScannedSegment> {
    let file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut seq = first;
    let mut index = Vec::new();
    let mut last_index: Option<u64> = None;
    let mut frame = Vec::new();
    let corrupt = |offset: u64, reason: String| BrokerError::Corrupt { path: path.to_path_buf(), offset, reason };

    let damage: Option<(u64, String)> = loop {
        if offset == file_len {
            break None;
        }
        if file_len - offset < FRAME_HEADER_LEN as u64 {
            break Some((offset, format!("incomplete frame header ({} bytes)", file_len - offset)));
        }
        frame.resize(FRAME_HEADER_LEN, 0);
        reader.read_exact(&mut frame).map_err(io_err(path))?;
        let header = match FrameHeader::parse(&frame) {
            Ok(h) => h,
            Err(reason) => break Some((offset, reason)),
        };
        if offset + header.frame_len() > file_len {
            break Some((offset, format!("frame of {} bytes runs past the end of the file", header.frame_len())));
        }
        frame.resize(header.frame_len() as usize, 0);
        reader.read_exact(&mut frame[FRAME_HEADER_LEN..]).map_err(io_err(path))?;
        if let Err(reason) = header.check_crc(&frame) {
            break Some((offset, reason));
        }
        // From here on the frame is what we wrote: inconsistencies are not torn writes.
        if header.first_seq != seq {
            return Err(corrupt(
                offset,
                format!("frame starts at position {} but {seq} was expected", header.first_seq),
            ));
        }
        if header.count == 0 {
            return Err(corrupt(offset, "empty frame".into()));
        }
        parse_records(&frame[FRAME_HEADER_LEN..], header.count, |_, _| Ok(()))
            .map_err(|reason| corrupt(offset, reason))?;
        if last_index.is_none_or(|li| offset - li >= INDEX_INTERVAL) {
            index.push((seq, offset));
            last_index = Some(offset);
        }
        offset += header.frame_len();
        seq += u64::from(header.count);
    };

    if let Some((at, reason)) = damage {
        if !is_last {
            return Err(corrupt(at, reason));
        }
        drop(reader);
        if let Some(valid_at) = find_valid_frame_after(path, at)? {
            return Err(corrupt(
                at,
                format!("{reason}; a valid frame follows at offset {valid_at}, so this is not a torn tail"),
            ));
        }
        warn!(path = %path.display(), offset = at, dropped_bytes = file_len - at, %reason,
            "truncating torn tail of log segment (crash during a write)");
        let f = OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
        f.set_len(at).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    Ok(ScannedSegment { end: offset, last: seq - 1, index })
}

/// Looks for a complete frame with a valid checksum anywhere after `damaged_at`.
fn find_valid_frame_after(path: &Path, damaged_at: u64) -> Result<Option<u64>> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut rest = Vec::new();
    io::Seek::seek(&mut file, io::SeekFrom::Start(damaged_at + 1)).map_err(io_err(path))?;
    file.read_to_end(&mut rest).map_err(io_err(path))?;
    let mut i = 0;
    while i + FRAME_HEADER_LEN <= rest.len() {
        if rest[i..i + 4] == FRAME_MAGIC
            && let Ok(h) = FrameHeader::parse(&rest[i..])
            && h.count > 0
        {
            let end = i as u64 + h.frame_len();
            if end <= rest.len() as u64 && h.check_crc(&rest[i..end as usize]).is_ok() {
                return Ok(Some(damaged_at + 1 + i as u64));
            }
        }
        i += 1;
    }
    Ok(None)
}

fn read_first_retained(topic_dir: &Path) -> Result<Option<Position>> {
    let path = topic_dir.join(FIRST_RETAINED_FILE);
    match fs::read_to_string(&path) {
        Ok(s) => s.trim().parse::<Position>().map(Some).map_err(|e| BrokerError::Corrupt {
            path,
            offset: 0,
            reason: format!("invalid first retained position {s:?}: {e}"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn write_first_retained(topic_dir: &Path, first: Position) -> Result<()> {
    let tmp = topic_dir.join(format!("{FIRST_RETAINED_FILE}.tmp"));
    let path = topic_dir.join(FIRST_RETAINED_FILE);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(format!("{first}\n").as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(topic_dir)
}

/// Opens (and repairs the torn tail of) the topic stored in `topic_dir`, creating its
/// first segment when it has none.
fn recover_topic(topic_dir: &Path, name: &str) -> Result<Recovered> {
    let mut files: BTreeMap<Position, PathBuf> = BTreeMap::new();
    for entry in fs::read_dir(topic_dir).map_err(io_err(topic_dir))? {
        let entry = entry.map_err(io_err(topic_dir))?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if let Some(base) = parse_segment_name(&file_name) {
            files.insert(base, entry.path());
        } else if file_name.ends_with(".tmp") {
            let path = entry.path();
            debug!(path = %path.display(), "removing leftover temporary file");
            fs::remove_file(&path).map_err(io_err(&path))?;
        } else if file_name != FIRST_RETAINED_FILE {
            warn!(path = %entry.path().display(), "ignoring unexpected file in topic directory");
        }
    }
    let persisted_first = read_first_retained(topic_dir)?;

    let mut segments = BTreeMap::new();
    let mut expected: Option<Position> = None;
    let count = files.len();
    for (i, (base, path)) in files.into_iter().enumerate() {
        if let Some(exp) = expected
            && base != exp
        {
            return Err(BrokerError::Corrupt {
                path,
                offset: 0,
                reason: format!("segment starts at position {base} but the previous one ends at {}", exp - 1),
            });
        }
        if base == 0 {
            return Err(BrokerError::Corrupt { path, offset: 0, reason: "segment named 0".into() });
        }
        let scanned = scan_segment(&path, base, i + 1 == count)?;
        expected = Some(scanned.last + 1);
        segments.insert(base, SegMeta { base, path, end: scanned.end, last: scanned.last, index: scanned.index });
    }

    let first_base = segments.keys().next().copied();
    let mut first_retained = persisted_first.unwrap_or(1).max(1);
    if let Some(first_base) = first_base
        && first_base > first_retained
    {
        return Err(BrokerError::Corrupt {
            path: segment_path(topic_dir, first_base),
            offset: 0,
            reason: format!(
                "the oldest segment starts at position {first_base} but positions from {first_retained} are retained"
            ),
        });
    }
    let tip = segments.values().next_back().map_or(first_retained - 1, |s| s.last);
    if first_retained > tip + 1 {
        warn!(topic = name, first_retained, tip, "first retained position is beyond the end of the log; clamping");
        first_retained = tip + 1;
    }

    // Finish a truncation interrupted between persisting the position and deleting files.
    let last_base = segments.keys().next_back().copied();
    let doomed: Vec<Position> =
        segments.values().filter(|s| Some(s.base) != last_base && s.last < first_retained).map(|s| s.base).collect();
    for base in doomed {
        if let Some(seg) = segments.remove(&base) {
            info!(path = %seg.path.display(), "removing segment below the first retained position");
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
        }
    }

    let active = match segments.values().next_back() {
        Some(seg) => {
            let file = OpenOptions::new().append(true).open(&seg.path).map_err(io_err(&seg.path))?;
            Active {
                base: seg.base,
                path: seg.path.clone(),
                file,
                len: seg.end,
                last_index: seg.index.last().map(|&(_, off)| off),
            }
        }
        None => {
            let base = tip + 1;
            let path = segment_path(topic_dir, base);
            let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(io_err(&path))?;
            sync_dir(topic_dir)?;
            segments.insert(base, SegMeta { base, path: path.clone(), end: 0, last: base - 1, index: Vec::new() });
            Active { base, path, file, len: 0, last_index: None }
        }
    };
    debug!(topic = name, first_retained, tip, segments = segments.len(), "recovered topic");
    Ok(Recovered { name: name.to_owned(), dir: topic_dir.to_path_buf(), segments, first_retained, tip, active })
}

// ---------------------------------------------------------------------------------------
// The writer thread

/// What one group changed in one segment.
struct SegTouch {
    base: Position,
    path: PathBuf,
    end: u64,
    last: Position,
    new_index: Vec<(Position, u64)>,
}

struct Writer {
    shared: Arc<TopicShared>,
    tip_tx: watch::Sender<Position>,
    fsync: FsyncPolicy,
    segment_bytes: u64,
    active: Active,
    next_seq: Position,
    /// Set after a failed write or fsync: the file state is unknown, so the topic stops
    /// accepting writes until the broker is reopened (which recovers the files).
    failed: Option<String>,
}

impl Writer {
    fn run(mut self, rx: std_mpsc::Receiver<Command>) {
        let mut pending: Option<Command> = None;
        loop {
            let cmd = match pending.take() {
                Some(cmd) => cmd,
                None => match rx.recv() {
                    Ok(cmd) => cmd,
                    Err(_) => break,
                },
            };
            match cmd {
                Command::Truncate { before, reply } => {
                    let _ = reply.send(self.truncate(before));
                }
                Command::Append(first) => {
                    let mut bytes = first.body_len;
                    let mut group = vec![first];
                    while group.len() < GROUP_MAX_COMMANDS && bytes < GROUP_MAX_BYTES {
                        match rx.try_recv() {
                            Ok(Command::Append(req)) => {
                                bytes += req.body_len;
                                group.push(req);
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(group);
                }
            }
        }
        debug!(topic = %self.shared.name, "log writer stopped");
    }

    fn commit(&mut self, group: Vec<AppendReq>) {
        if let Some(reason) = &self.failed {
            for req in group {
                let _ = req.reply.send(Err(BrokerError::Unavailable { reason: reason.clone() }));
            }
            return;
        }
        match self.write_group(&group) {
            Ok(touched) => self.publish(group, touched),
            Err(e) => {
                error!(topic = %self.shared.name, error = %e, "log write failed; topic stops accepting writes");
                let reason = format!("topic {} failed a write and is read-only until reopened: {e}", self.shared.name);
                self.failed = Some(reason);
                let path = self.active.path.clone();
                for req in group {
                    let source = match &e {
                        BrokerError::Io { source, .. } => io::Error::new(source.kind(), source.to_string()),
                        other => io::Error::other(other.to_string()),
                    };
                    let _ = req.reply.send(Err(BrokerError::Io { path: path.clone(), source }));
                }
            }
        }
    }

    fn sync_active(&mut self) -> Result<()> {
        if self.fsync == FsyncPolicy::Always {
            self.active.file.sync_data().map_err(io_err(&self.active.path))?;
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        if !buf.is_empty() {
            self.active.file.write_all(buf).map_err(io_err(&self.active.path))?;
            buf.clear();
        }
        Ok(())
    }

    fn roll(&mut self, base: Position) -> Result<()> {
        let path = segment_path(&self.shared.dir, base);
        let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(io_err(&path))?;
        if self.fsync == FsyncPolicy::Always {
            sync_dir(&self.shared.dir)?;
        }
        debug!(topic = %self.shared.name, base, "started a new log segment");
        self.active = Active { base, path, file, len: 0, last_index: None };
        Ok(())
    }

    fn touch(&self) -> SegTouch {
        SegTouch {
            base: self.active.base,
            path: self.active.path.clone(),
            end: self.active.len,
            last: self.next_seq - 1,
            new_index: Vec::new(),
        }
    }

    /// Writes one frame per request, then syncs once. Returns the segments touched.
    fn write_group(&mut self, group: &[AppendReq]) -> Result<Vec<SegTouch>> {
        let total: usize = group.iter().map(|r| FRAME_HEADER_LEN + r.body_len).sum();
        let mut buf = Vec::with_capacity(total.min(WRITE_BUF_FLUSH + (1 << 20)));
        let mut touched = Vec::new();
        let mut cur = self.touch();
        for req in group {
            let frame_len = (FRAME_HEADER_LEN + req.body_len) as u64;
            if self.active.len > 0 && self.active.len + frame_len > self.segment_bytes {
                self.flush(&mut buf)?;
                // The old segment must be durable before a newer one exists, so recovery
                // never sees a damaged segment that is not the last.
                self.sync_active()?;
                touched.push(cur);
                self.roll(self.next_seq)?;
                cur = self.touch();
            }
            let offset = self.active.len;
            if self.active.last_index.is_none_or(|li| offset - li >= INDEX_INTERVAL) {
                cur.new_index.push((self.next_seq, offset));
                self.active.last_index = Some(offset);
            }
            encode_frame(&mut buf, self.next_seq, &req.messages, req.body_len);
            self.active.len += frame_len;
            self.next_seq += req.messages.len() as u64;
            cur.end = self.active.len;
            cur.last = self.next_seq - 1;
            if buf.len() >= WRITE_BUF_FLUSH {
                self.flush(&mut buf)?;
            }
        }
        self.flush(&mut buf)?;
        // A group of volatile records only (time ticks) is not forced to disk; the next
        // durable group's fdatasync covers them, so the file never has holes.
        if group.iter().any(|r| r.durable) {
            self.sync_active()?;
        }
        touched.push(cur);
        Ok(touched)
    }

    /// Makes a durable group visible and acknowledges its producers.
    fn publish(&mut self, group: Vec<AppendReq>, touched: Vec<SegTouch>) {
        let mut replies = Vec::with_capacity(group.len());
        let tip = {
            let mut st = self.shared.state.lock();
            for t in touched {
                let seg = st.segments.entry(t.base).or_insert_with(|| SegMeta {
                    base: t.base,
                    path: t.path,
                    end: 0,
                    last: t.base - 1,
                    index: Vec::new(),
                });
                seg.end = t.end;
                seg.last = t.last;
                seg.index.extend(t.new_index);
            }
            let mut seq = st.tip + 1;
            for req in group {
                let first = seq;
                for m in req.messages {
                    let msg = LogMessage { position: seq, subject: m.subject, payload: m.payload, headers: m.headers };
                    st.push_cache(msg, self.shared.cache_limit);
                    seq += 1;
                }
                replies.push((req.reply, (first..seq).collect::<Vec<_>>()));
            }
            st.tip = seq - 1;
            debug_assert_eq!(st.tip + 1, self.next_seq);
            st.tip
        };
        self.tip_tx.send_replace(tip);
        for (reply, positions) in replies {
            let _ = reply.send(Ok(positions));
        }
    }

    fn truncate(&mut self, before: Position) -> Result<()> {
        if let Some(reason) = &self.failed {
            return Err(BrokerError::Unavailable { reason: reason.clone() });
        }
        // Every queued append before this command is committed, so next_seq - 1 is the tip.
        let target = before.min(self.next_seq);
        let current = self.shared.state.lock().first_retained;
        if target <= current {
            return Ok(());
        }
        write_first_retained(&self.shared.dir, target)?;
        let doomed: Vec<SegMeta> = {
            let mut st = self.shared.state.lock();
            st.first_retained = target;
            st.trim_cache_below(target);
            let active = self.active.base;
            let bases: Vec<Position> =
                st.segments.values().filter(|s| s.base != active && s.last < target).map(|s| s.base).collect();
            bases.iter().filter_map(|b| st.segments.remove(b)).collect()
        };
        for seg in &doomed {
            // Leftovers are removed again on the next open.
            if let Err(e) = fs::remove_file(&seg.path) {
                warn!(path = %seg.path.display(), error = %e, "cannot delete truncated log segment");
            }
        }
        info!(topic = %self.shared.name, first_retained = target, deleted_segments = doomed.len(), "truncated topic");
        Ok(())
    }
}

fn start_topic(rec: Recovered, config: &EmbeddedBrokerConfig) -> Result<Topic> {
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
    let (tx, rx) = std_mpsc::channel();
    let writer = Writer {
        shared: shared.clone(),
        tip_tx,
        fsync: config.fsync,
        segment_bytes: config.segment_bytes,
        active: rec.active,
        next_seq: rec.tip + 1,
        failed: None,
    };
    let thread = std::thread::Builder::new()
        .name("fv-log-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(io_err(&shared.dir))?;
    Ok(Topic { shared, tx: Some(tx), tip_rx, thread: Some(thread) })
}

// ---------------------------------------------------------------------------------------
// Subscriptions

/// A snapshot of the committed part of a segment for one read step.
struct SegSnap {
    base: Position,
    path: PathBuf,
    end: u64,
    hint: (Position, u64),
}

/// A subscription's open segment file and read-ahead buffer.
struct SegReader {
    base: Position,
    file: File,
    path: PathBuf,
    /// Offset of the next frame to read and its first position.
    offset: u64,
    seq: Position,
    chunk: Vec<u8>,
    chunk_off: u64,
}

impl SegReader {
    fn open(snap: &SegSnap) -> io::Result<Self> {
        let file = File::open(&snap.path)?;
        Ok(Self {
            base: snap.base,
            file,
            path: snap.path.clone(),
            offset: snap.hint.1,
            seq: snap.hint.0,
            chunk: Vec::new(),
            chunk_off: 0,
        })
    }

    /// Bytes `[off, off + len)` of the file; `end` bounds the read-ahead to committed data.
    fn bytes(&mut self, off: u64, len: usize, end: u64) -> Result<&[u8]> {
        let have = off >= self.chunk_off && off + len as u64 <= self.chunk_off + self.chunk.len() as u64;
        if !have {
            let n = (len.max(READ_CHUNK) as u64).min(end - off) as usize;
            if self.chunk.capacity() > 2 * READ_CHUNK && n <= READ_CHUNK {
                self.chunk = Vec::new();
            }
            self.chunk.resize(n, 0);
            self.chunk_off = off;
            self.file.read_exact_at(&mut self.chunk, off).map_err(io_err(&self.path))?;
        }
        let start = (off - self.chunk_off) as usize;
        Ok(&self.chunk[start..start + len])
    }

    /// Reads records from `next` on within the committed part of this segment, at most
    /// one read batch. Returns the records matching `filter` and the new cursor.
    fn read(
        &mut self,
        snap: &SegSnap,
        mut next: Position,
        filter: &SubjectFilter,
    ) -> Result<(Vec<LogMessage>, Position)> {
        let mut out = Vec::new();
        let mut payload_bytes = 0usize;
        let mut scanned = 0u64;
        let corrupt = |offset: u64, reason: String| BrokerError::Corrupt { path: snap.path.clone(), offset, reason };
        while self.offset < snap.end {
            let offset = self.offset;
            if snap.end - offset < FRAME_HEADER_LEN as u64 {
                return Err(corrupt(offset, "incomplete frame header in committed data".into()));
            }
            let header = FrameHeader::parse(self.bytes(offset, FRAME_HEADER_LEN, snap.end)?)
                .map_err(|reason| corrupt(offset, reason))?;
            if header.first_seq != self.seq || header.count == 0 {
                return Err(corrupt(
                    offset,
                    format!("frame at position {} where {} was expected", header.first_seq, self.seq),
                ));
            }
            let frame_len = header.frame_len();
            if offset + frame_len > snap.end {
                return Err(corrupt(offset, "frame runs past the committed end of the segment".into()));
            }
            let frame_last = header.first_seq + u64::from(header.count) - 1;
            if frame_last >= next {
                let frame = self.bytes(offset, frame_len as usize, snap.end)?;
                header.check_crc(frame).map_err(|reason| corrupt(offset, reason))?;
                let body = &frame[FRAME_HEADER_LEN..];
                parse_records(body, header.count, |i, raw| {
                    let position = header.first_seq + u64::from(i);
                    if position >= next && filter.matches(raw.subject) {
                        payload_bytes += raw.payload.len();
                        out.push(LogMessage {
                            position,
                            subject: raw.subject.to_owned(),
                            payload: Bytes::copy_from_slice(&body[raw.payload]),
                            headers: decode_headers(raw.headers_raw, raw.header_count)?,
                        });
                    }
                    Ok(())
                })
                .map_err(|reason| corrupt(offset, reason))?;
                next = frame_last + 1;
                scanned += frame_len;
            }
            self.offset += frame_len;
            self.seq = frame_last + 1;
            if out.len() >= READ_BATCH_RECORDS
                || payload_bytes >= READ_BATCH_BYTES
                || scanned >= 2 * READ_BATCH_BYTES as u64
            {
                break;
            }
        }
        Ok((out, next))
    }
}

struct Subscription {
    shared: Arc<TopicShared>,
    tip_rx: watch::Receiver<Position>,
    filter: Arc<SubjectFilter>,
    next: Position,
    buf: VecDeque<LogMessage>,
    reader: Option<SegReader>,
    /// The topic's writer is gone (broker dropped): end once caught up.
    closed: bool,
    /// An error was yielded: the stream ends.
    done: bool,
}

enum Step {
    /// Records were consumed (some may have been filtered out).
    Progress,
    /// Caught up with the tip.
    Idle,
    /// Read this segment from a file.
    File(SegSnap),
}

impl Subscription {
    async fn next_item(&mut self) -> Option<Result<LogMessage>> {
        loop {
            if let Some(m) = self.buf.pop_front() {
                return Some(Ok(m));
            }
            if self.done {
                return None;
            }
            self.tip_rx.borrow_and_update();
            match self.step().await {
                Ok(true) => continue,
                Ok(false) if self.closed => return None,
                Ok(false) => {
                    if self.tip_rx.changed().await.is_err() {
                        self.closed = true;
                    }
                }
                Err(e) => {
                    self.done = true;
                    self.reader = None;
                    return Some(Err(e));
                }
            }
        }
    }

    fn truncated(&self, first_retained: Position) -> BrokerError {
        BrokerError::PositionTruncated { topic: self.shared.name.clone(), position: self.next, first_retained }
    }

    /// Moves the cursor forward; `Ok(false)` when there is nothing new.
    async fn step(&mut self) -> Result<bool> {
        let plan = {
            let st = self.shared.state.lock();
            if self.next < st.first_retained {
                return Err(self.truncated(st.first_retained));
            }
            if self.next > st.tip {
                Step::Idle
            } else if let Some(front) = st.cache.front()
                && front.position <= self.next
                && self.next - front.position < st.cache.len() as u64
            {
                // The cache is contiguous and ends at the tip, so `next` is inside it.
                let skip = (self.next - front.position) as usize;
                let mut bytes = 0usize;
                for (n, m) in st.cache.range(skip..).enumerate() {
                    if n >= READ_BATCH_RECORDS || bytes >= READ_BATCH_BYTES {
                        break;
                    }
                    self.next = m.position + 1;
                    if self.filter.matches(&m.subject) {
                        bytes += m.payload.len();
                        self.buf.push_back(m.clone());
                    }
                }
                Step::Progress
            } else {
                match st.segments.range(..=self.next).next_back() {
                    Some((_, seg)) if self.next <= seg.last => Step::File(SegSnap {
                        base: seg.base,
                        path: seg.path.clone(),
                        end: seg.end,
                        hint: seg.seek_hint(self.next),
                    }),
                    _ => {
                        return Err(BrokerError::Unavailable {
                            reason: format!("position {} of topic {} is in no segment", self.next, self.shared.name),
                        });
                    }
                }
            }
        };
        match plan {
            Step::Idle => Ok(false),
            Step::Progress => Ok(true),
            Step::File(snap) => self.read_file(snap).await.map(|()| true),
        }
    }

    async fn read_file(&mut self, snap: SegSnap) -> Result<()> {
        let reusable = self.reader.take().filter(|r| r.base == snap.base && r.seq <= self.next && r.seq >= snap.hint.0);
        let filter = self.filter.clone();
        let next = self.next;
        let res = tokio::task::spawn_blocking(move || {
            let mut reader = match reusable {
                Some(r) => r,
                None => match SegReader::open(&snap) {
                    Ok(r) => r,
                    Err(e) => return Err((e.kind() == io::ErrorKind::NotFound, io_err(&snap.path)(e))),
                },
            };
            let (records, new_next) = reader.read(&snap, next, &filter).map_err(|e| (false, e))?;
            Ok((reader, records, new_next))
        })
        .await
        .map_err(join_err)?;
        match res {
            Ok((reader, records, new_next)) => {
                if new_next <= self.next {
                    return Err(BrokerError::Unavailable {
                        reason: format!("reader of topic {} made no progress at {}", self.shared.name, self.next),
                    });
                }
                self.next = new_next;
                self.buf.extend(records);
                self.reader = Some(reader);
                Ok(())
            }
            Err((not_found, e)) => {
                // The segment may have been deleted by a truncation after the snapshot.
                let first = self.shared.state.lock().first_retained;
                if not_found && self.next < first { Err(self.truncated(first)) } else { Err(e) }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request/reply and notifications (in-process)

struct Server {
    id: u64,
    tx: mpsc::UnboundedSender<IncomingRequest>,
}

#[derive(Default)]
struct Group {
    members: Vec<Server>,
    next: usize,
}

#[derive(Default)]
struct SubjectServers {
    plain: Vec<Server>,
    groups: BTreeMap<String, Group>,
}

impl SubjectServers {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }
}

#[derive(Default)]
struct Routing {
    subjects: HashMap<String, SubjectServers>,
}

type ReplySlot = Arc<Mutex<Option<oneshot::Sender<Bytes>>>>;

struct InProcReplier {
    slot: ReplySlot,
}

#[async_trait]
impl Replier for InProcReplier {
    async fn reply(self: Box<Self>, payload: Bytes, _headers: Headers) -> Result<()> {
        // Later replies (and replies after the requester gave up) are dropped, as in NATS.
        if let Some(tx) = self.slot.lock().take() {
            let _ = tx.send(payload);
        }
        Ok(())
    }
}

struct ServeStream {
    rx: mpsc::UnboundedReceiver<IncomingRequest>,
    routing: Arc<Mutex<Routing>>,
    subject: String,
    group: Option<String>,
    id: u64,
}

impl Stream for ServeStream {
    type Item = IncomingRequest;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl Drop for ServeStream {
    fn drop(&mut self) {
        let mut routing = self.routing.lock();
        let Some(servers) = routing.subjects.get_mut(&self.subject) else { return };
        match &self.group {
            None => servers.plain.retain(|s| s.id != self.id),
            Some(g) => {
                if let Some(group) = servers.groups.get_mut(g) {
                    group.members.retain(|s| s.id != self.id);
                    if group.members.is_empty() {
                        servers.groups.remove(g);
                    }
                }
            }
        }
        if servers.is_empty() {
            routing.subjects.remove(&self.subject);
        }
    }
}

struct Listener {
    id: u64,
    pattern: String,
    tx: mpsc::Sender<Notification>,
}

struct ListenStream {
    rx: mpsc::Receiver<Notification>,
    listeners: Arc<Mutex<Vec<Listener>>>,
    id: u64,
}

impl Stream for ListenStream {
    type Item = Notification;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl Drop for ListenStream {
    fn drop(&mut self) {
        self.listeners.lock().retain(|l| l.id != self.id);
    }
}

// ---------------------------------------------------------------------------------------
// The broker

/// The embedded durable log broker. See the module docs for the format.
pub struct EmbeddedBroker {
    dir: PathBuf,
    config: EmbeddedBrokerConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation.
    create_lock: tokio::sync::Mutex<()>,
    routing: Arc<Mutex<Routing>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
    next_id: AtomicU64,
    /// Holds the advisory lock on `<dir>/LOCK` while the broker lives.
    _lock: File,
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
        let lock_path = dir.join(LOCK_FILE);
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BrokerError::Unavailable {
                    reason: format!("{} is in use by another log broker", dir.display()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }

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
            routing: Arc::new(Mutex::new(Routing::default())),
            listeners: Arc::new(Mutex::new(Vec::new())),
            next_id: AtomicU64::new(1),
            _lock: lock,
        }))
    }

    /// The directory the broker stores its topics in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

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
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // End the request and notification streams; topics (and their writer threads)
        // are dropped with the map, which ends the subscriptions.
        self.routing.lock().subjects.clear();
        self.listeners.lock().clear();
    }
}

impl EmbeddedBroker {
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
        t.send(Command::Append(AppendReq { messages, body_len: body_len as usize, durable, reply }))?;
        rx.await.map_err(|_| BrokerError::Unavailable { reason: format!("writer of topic {topic} stopped") })?
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
        let t = self.topic(topic)?;
        let next = {
            let st = t.shared.state.lock();
            match from {
                SeekFrom::Earliest => st.first_retained,
                SeekFrom::Latest => st.tip + 1,
                SeekFrom::After(p) => {
                    let next = p.saturating_add(1);
                    if next < st.first_retained {
                        return Err(BrokerError::PositionTruncated {
                            topic: topic.to_owned(),
                            position: next,
                            first_retained: st.first_retained,
                        });
                    }
                    next
                }
            }
        };
        debug!(topic, ?from, next, "subscribed");
        let sub = Subscription {
            shared: t.shared.clone(),
            tip_rx: t.tip_rx.clone(),
            filter: Arc::new(filter),
            next,
            buf: VecDeque::new(),
            reader: None,
            closed: false,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(sub, |mut sub| async move {
            let item = sub.next_item().await?;
            Some((item, sub))
        })))
    }

    async fn latest_position(&self, topic: &str) -> Result<Position> {
        Ok(self.topic(topic)?.shared.state.lock().tip)
    }

    async fn truncate(&self, topic: &str, before: Position) -> Result<()> {
        let t = self.topic(topic)?;
        let (reply, rx) = oneshot::channel();
        t.send(Command::Truncate { before, reply })?;
        rx.await.map_err(|_| BrokerError::Unavailable { reason: format!("writer of topic {topic} stopped") })?
    }

    async fn topics(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.topics.read().keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn serve(&self, subject: &str, queue_group: Option<&str>) -> Result<RequestStream> {
        validate_subject(subject)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut routing = self.routing.lock();
            let servers = routing.subjects.entry(subject.to_owned()).or_default();
            let server = Server { id, tx };
            match queue_group {
                None => servers.plain.push(server),
                Some(g) => servers.groups.entry(g.to_owned()).or_default().members.push(server),
            }
        }
        debug!(subject, ?queue_group, "serving");
        Ok(Box::pin(ServeStream {
            rx,
            routing: self.routing.clone(),
            subject: subject.to_owned(),
            group: queue_group.map(str::to_owned),
            id,
        }))
    }

    async fn request(&self, subject: &str, payload: Bytes, headers: Headers, timeout: Duration) -> Result<Bytes> {
        validate_subject(subject)?;
        let (tx, rx) = oneshot::channel();
        let slot: ReplySlot = Arc::new(Mutex::new(Some(tx)));
        let make = || IncomingRequest {
            subject: subject.to_owned(),
            payload: payload.clone(),
            headers: headers.clone(),
            replier: Box::new(InProcReplier { slot: slot.clone() }),
        };
        let mut delivered = 0usize;
        {
            let mut routing = self.routing.lock();
            if let Some(servers) = routing.subjects.get_mut(subject) {
                // Every plain server gets the request; servers that went away are removed.
                servers.plain.retain(|s| {
                    let ok = s.tx.send(make()).is_ok();
                    delivered += usize::from(ok);
                    ok
                });
                // One member of each queue group, round-robin.
                for group in servers.groups.values_mut() {
                    let mut req = make();
                    while !group.members.is_empty() {
                        let i = group.next % group.members.len();
                        match group.members[i].tx.send(req) {
                            Ok(()) => {
                                group.next = i + 1;
                                delivered += 1;
                                break;
                            }
                            Err(mpsc::error::SendError(back)) => {
                                group.members.remove(i);
                                req = back;
                            }
                        }
                    }
                }
                servers.groups.retain(|_, g| !g.members.is_empty());
                if servers.is_empty() {
                    routing.subjects.remove(subject);
                }
            }
        }
        drop(slot);
        if delivered == 0 {
            return Err(BrokerError::NoResponders { subject: subject.to_owned() });
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            // Every server dropped the request without replying (e.g. it stopped serving).
            Ok(Err(_)) => Err(BrokerError::NoResponders { subject: subject.to_owned() }),
            Err(_) => Err(BrokerError::Timeout {
                subject: subject.to_owned(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    async fn notify(&self, subject: &str, payload: Bytes, headers: Headers) -> Result<()> {
        validate_subject(subject)?;
        let mut listeners = self.listeners.lock();
        listeners.retain(|l| {
            if !subject_matches(&l.pattern, subject) {
                return true;
            }
            let n = Notification { subject: subject.to_owned(), payload: payload.clone(), headers: headers.clone() };
            match l.tx.try_send(n) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(subject, pattern = %l.pattern, "listener does not keep up; notification dropped");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        Ok(())
    }

    async fn listen(&self, subject: &str) -> Result<NotificationStream> {
        validate_subject(subject)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(NOTIFY_QUEUE);
        self.listeners.lock().push(Listener { id, pattern: subject.to_owned(), tx });
        Ok(Box::pin(ListenStream { rx, listeners: self.listeners.clone(), id }))
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
    use super::*;
    use crate::testsuite;
    use futures::StreamExt;
    use std::time::Instant;
    use tempfile::TempDir;

    fn config(fsync: FsyncPolicy, segment_bytes: u64) -> EmbeddedBrokerConfig {
        EmbeddedBrokerConfig { fsync, segment_bytes, ..EmbeddedBrokerConfig::default() }
    }

    fn open(dir: &Path) -> Arc<EmbeddedBroker> {
        EmbeddedBroker::open(dir, EmbeddedBrokerConfig::default()).expect("open broker")
    }

    fn open_small(dir: &Path) -> Arc<EmbeddedBroker> {
        EmbeddedBroker::open(dir, config(FsyncPolicy::Always, 1024)).expect("open broker")
    }

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

    fn segment_files(broker: &EmbeddedBroker, topic: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(broker.topic_dir(topic))
            .expect("topic dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        files
    }

    async fn read_all(broker: &EmbeddedBroker, topic: &str, filter: SubjectFilter, n: usize) -> Vec<LogMessage> {
        let mut s = broker.subscribe(topic, filter, SeekFrom::Earliest).await.expect("subscribe");
        let mut out = Vec::new();
        while out.len() < n {
            let m = tokio::time::timeout(Duration::from_secs(10), s.next())
                .await
                .expect("record in time")
                .expect("stream open")
                .expect("record");
            out.push(m);
        }
        out
    }

    /// Produces `batches` batches of `per_batch` records on subjects `a`/`b` alternating.
    async fn fill(broker: &EmbeddedBroker, topic: &str, batches: usize, per_batch: usize) {
        broker.ensure_topic(topic).await.expect("ensure");
        for b in 0..batches {
            let msgs = (0..per_batch)
                .map(|i| {
                    let n = b * per_batch + i + 1;
                    OutgoingMessage {
                        subject: if n.is_multiple_of(2) { "b".into() } else { "a".into() },
                        payload: Bytes::from(format!("payload-{n}-{}", "x".repeat(n % 50))),
                        headers: vec![("n".into(), n.to_string())],
                    }
                })
                .collect();
            broker.produce(topic, msgs).await.expect("produce");
        }
    }

    fn check_record(m: &LogMessage) {
        let n = m.position as usize;
        assert_eq!(m.payload.as_ref(), format!("payload-{n}-{}", "x".repeat(n % 50)).as_bytes());
        assert_eq!(m.subject, if n.is_multiple_of(2) { "b" } else { "a" });
        assert_eq!(m.headers, vec![("n".to_string(), n.to_string())]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopen_keeps_records_and_positions_continue() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open_small(dir.path());
        fill(&broker, "fv-dml-0", 40, 5).await;
        assert!(segment_files(&broker, "fv-dml-0").len() > 5, "small segments roll");
        drop(broker);

        let broker = open_small(dir.path());
        assert_eq!(broker.topics().await.expect("topics"), vec!["fv-dml-0".to_string()]);
        assert_eq!(broker.latest_position("fv-dml-0").await.expect("latest"), 200);
        let all = read_all(&broker, "fv-dml-0", SubjectFilter::All, 200).await;
        assert_eq!(all.iter().map(|m| m.position).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
        all.iter().for_each(check_record);
        let only_b = read_all(&broker, "fv-dml-0", SubjectFilter::Subjects(vec!["b".into()]), 100).await;
        assert_eq!(only_b.iter().map(|m| m.position).collect::<Vec<_>>(), (1..=100).map(|i| i * 2).collect::<Vec<_>>());
        // Seeking into the middle of a batch in the middle of a segment.
        let mut s = broker.subscribe("fv-dml-0", SubjectFilter::All, SeekFrom::After(123)).await.expect("subscribe");
        let m = s.next().await.expect("open").expect("record");
        assert_eq!(m.position, 124);
        check_record(&m);

        assert_eq!(
            broker.produce("fv-dml-0", vec![OutgoingMessage::new("a", "next")]).await.expect("produce"),
            vec![201]
        );
        drop(s);
        drop(broker);
        let broker = open_small(dir.path());
        assert_eq!(broker.latest_position("fv-dml-0").await.expect("latest"), 201);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn catch_up_reads_large_history_from_files() {
        let dir = TempDir::new().expect("tempdir");
        // 64 KiB segments: the cache holds at most 64 KiB, so history comes from files
        // and the sparse index is exercised.
        let broker = EmbeddedBroker::open(dir.path(), config(FsyncPolicy::Never, 64 << 10)).expect("open");
        fill(&broker, "hist", 300, 20).await;
        let all = read_all(&broker, "hist", SubjectFilter::All, 6000).await;
        assert_eq!(all.iter().map(|m| m.position).collect::<Vec<_>>(), (1..=6000).collect::<Vec<_>>());
        all.iter().for_each(check_record);
        for start in [0u64, 1, 19, 20, 21, 2999, 5998] {
            let mut s = broker.subscribe("hist", SubjectFilter::All, SeekFrom::After(start)).await.expect("subscribe");
            let m = s.next().await.expect("open").expect("record");
            assert_eq!(m.position, start + 1);
            check_record(&m);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_tail_garbage_is_truncated() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        fill(&broker, "t", 3, 4).await;
        let seg = segment_files(&broker, "t").pop().expect("segment");
        drop(broker);
        let good_len = fs::metadata(&seg).expect("meta").len();
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open segment");
        f.write_all(b"FVLB\x10\x00\x00\x00garbage garbage garbage").expect("append garbage");
        drop(f);

        let broker = open(dir.path());
        assert_eq!(fs::metadata(&seg).expect("meta").len(), good_len, "garbage cut off");
        assert_eq!(broker.latest_position("t").await.expect("latest"), 12);
        read_all(&broker, "t", SubjectFilter::All, 12).await.iter().for_each(check_record);
        assert_eq!(broker.produce("t", vec![OutgoingMessage::new("a", "13")]).await.expect("produce"), vec![13]);
        drop(broker);
        let broker = open(dir.path());
        assert_eq!(broker.latest_position("t").await.expect("latest"), 13);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_last_frame_recovers_to_last_complete_batch() {
        for cut in [5u64, 30, 60] {
            let dir = TempDir::new().expect("tempdir");
            let broker = open(dir.path());
            fill(&broker, "t", 3, 4).await;
            let seg = segment_files(&broker, "t").pop().expect("segment");
            drop(broker);
            let len = fs::metadata(&seg).expect("meta").len();
            // Cut `cut` bytes off the last frame: from its body, or into its header.
            let f = OpenOptions::new().write(true).open(&seg).expect("open segment");
            f.set_len(len - cut).expect("cut");
            drop(f);

            let broker = open(dir.path());
            assert_eq!(broker.latest_position("t").await.expect("latest"), 8, "cut {cut}: last batch dropped whole");
            read_all(&broker, "t", SubjectFilter::All, 8).await.iter().for_each(check_record);
            let pos = broker.produce("t", vec![OutgoingMessage::new("a", "x")]).await.expect("produce");
            assert_eq!(pos, vec![9]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_header_only_tail() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        fill(&broker, "t", 2, 1).await;
        let seg = segment_files(&broker, "t").pop().expect("segment");
        drop(broker);
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open segment");
        f.write_all(&FRAME_MAGIC).expect("partial header");
        f.write_all(&[0u8; 9]).expect("partial header");
        drop(f);
        let broker = open(dir.path());
        assert_eq!(broker.latest_position("t").await.expect("latest"), 2);
    }

    fn flip_byte(path: &Path, offset: u64) {
        let f = OpenOptions::new().read(true).write(true).open(path).expect("open");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, offset).expect("read");
        b[0] ^= 0x40;
        f.write_all_at(&b, offset).expect("write");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flipped_byte_in_older_segment_is_corrupt() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open_small(dir.path());
        fill(&broker, "t", 20, 5).await;
        let segs = segment_files(&broker, "t");
        assert!(segs.len() >= 3);
        drop(broker);
        flip_byte(&segs[1], 40);
        match EmbeddedBroker::open(dir.path(), config(FsyncPolicy::Always, 1024)) {
            Err(BrokerError::Corrupt { path, offset, reason }) => {
                assert_eq!(path, segs[1]);
                assert_eq!(offset, 0, "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flipped_byte_mid_last_segment_is_corrupt() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        fill(&broker, "t", 5, 3).await;
        let seg = segment_files(&broker, "t").pop().expect("segment");
        drop(broker);
        // Damage the first frame; acknowledged frames follow, so this is not a torn tail.
        flip_byte(&seg, 30);
        let err = EmbeddedBroker::open(dir.path(), EmbeddedBrokerConfig::default()).expect_err("corrupt");
        assert!(matches!(err, BrokerError::Corrupt { .. }), "{err}");
        assert!(fs::metadata(&seg).expect("meta").len() > 100, "nothing truncated");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_middle_segment_is_corrupt() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open_small(dir.path());
        fill(&broker, "t", 20, 5).await;
        let segs = segment_files(&broker, "t");
        drop(broker);
        fs::remove_file(&segs[1]).expect("remove");
        let err = EmbeddedBroker::open(dir.path(), EmbeddedBrokerConfig::default()).expect_err("corrupt");
        assert!(matches!(err, BrokerError::Corrupt { .. }), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncation_deletes_segments_and_survives_reopen() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open_small(dir.path());
        fill(&broker, "t", 40, 5).await;
        let before = segment_files(&broker, "t").len();
        broker.truncate("t", 150).await.expect("truncate");
        let after = segment_files(&broker, "t");
        assert!(after.len() < before, "whole segments below 150 deleted ({before} -> {})", after.len());
        let first_file: Position =
            parse_segment_name(&after[0].file_name().expect("name").to_string_lossy()).expect("segment name");
        assert!(first_file <= 150, "the segment holding 150 is kept");
        assert_eq!(broker.first_retained("t").expect("topic"), 150);
        drop(broker);

        let broker = open_small(dir.path());
        assert_eq!(broker.first_retained("t").expect("topic"), 150);
        assert_eq!(broker.latest_position("t").await.expect("latest"), 200);
        match broker.subscribe("t", SubjectFilter::All, SeekFrom::After(10)).await {
            Err(BrokerError::PositionTruncated { position, first_retained, .. }) => {
                assert_eq!((position, first_retained), (11, 150));
            }
            other => panic!("expected PositionTruncated, got {:?}", other.map(|_| ())),
        }
        let got = read_all(&broker, "t", SubjectFilter::All, 51).await;
        assert_eq!(got.iter().map(|m| m.position).collect::<Vec<_>>(), (150..=200).collect::<Vec<_>>());
        got.iter().for_each(check_record);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lagging_subscriber_sees_truncation_error() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open_small(dir.path());
        fill(&broker, "t", 20, 5).await;
        let mut s = broker.subscribe("t", SubjectFilter::All, SeekFrom::Earliest).await.expect("subscribe");
        assert_eq!(s.next().await.expect("open").expect("record").position, 1);
        broker.truncate("t", 50).await.expect("truncate");
        // Whatever was already buffered may still come; then the error, then the end.
        loop {
            match s.next().await.expect("stream open") {
                Ok(m) => assert!(m.position < 50),
                Err(BrokerError::PositionTruncated { first_retained, .. }) => {
                    assert_eq!(first_retained, 50);
                    break;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert!(s.next().await.is_none(), "the stream ends after an error");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_producers_share_fsyncs() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        broker.ensure_topic("g").await.expect("ensure");
        let base = broker.sync_count("g").expect("topic");
        const N: usize = 64;
        let results = futures::future::join_all(
            (0..N).map(|i| broker.produce("g", vec![OutgoingMessage::new("a", format!("m{i}"))])),
        )
        .await;
        let mut positions: Vec<Position> = results.into_iter().flat_map(|r| r.expect("produce")).collect();
        positions.sort();
        assert_eq!(positions, (1..=N as u64).collect::<Vec<_>>());
        let syncs = broker.sync_count("g").expect("topic") - base;
        assert!(syncs >= 1 && syncs <= (N / 4) as u64, "{syncs} fsyncs for {N} concurrent produces");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn volatile_batches_skip_fsync_but_stay_ordered() {
        let dir = TempDir::new().expect("tempdir");
        {
            let broker = open(dir.path());
            broker.ensure_topic("v").await.expect("ensure");
            let base = broker.sync_count("v").expect("topic");
            let p1 = broker.produce_volatile("v", vec![OutgoingMessage::new("tt", "t1")]).await.expect("volatile");
            assert_eq!(broker.sync_count("v").expect("topic"), base, "a volatile batch is not fsynced");
            let p2 = broker.produce("v", vec![OutgoingMessage::new("d", "d1")]).await.expect("durable");
            assert_eq!(broker.sync_count("v").expect("topic"), base + 1, "a durable batch is");
            assert_eq!((p1, p2), (vec![1], vec![2]));
        }
        let broker = open(dir.path());
        let mut s = broker.subscribe("v", SubjectFilter::All, SeekFrom::Earliest).await.expect("subscribe");
        let first = s.next().await.expect("record").expect("ok");
        let second = s.next().await.expect("record").expect("ok");
        assert_eq!((first.subject.as_str(), second.subject.as_str()), ("tt", "d"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_wakeup_is_fast() {
        let dir = TempDir::new().expect("tempdir");
        let broker = EmbeddedBroker::open(dir.path(), config(FsyncPolicy::Never, 64 << 20)).expect("open");
        broker.ensure_topic("w").await.expect("ensure");
        let mut s = broker.subscribe("w", SubjectFilter::All, SeekFrom::Latest).await.expect("subscribe");
        let mut lat = Vec::new();
        for i in 0..200 {
            let t0 = Instant::now();
            broker.produce("w", vec![OutgoingMessage::new("a", format!("{i}"))]).await.expect("produce");
            let m = s.next().await.expect("open").expect("record");
            lat.push(t0.elapsed());
            assert_eq!(m.position, i + 1);
        }
        lat.sort();
        let median = lat[lat.len() / 2];
        // Produce + delivery round trip; generous for a loaded 2-core machine.
        assert!(median < Duration::from_millis(5), "median produce->deliver latency {median:?}");
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_dropped_by_server_is_no_responders() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        let mut requests = broker.serve("svc", Some("g")).await.expect("serve");
        let server = tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                drop(req);
            }
        });
        let started = Instant::now();
        let err = broker.request("svc", Bytes::new(), Vec::new(), Duration::from_secs(10)).await.expect_err("dropped");
        assert!(matches!(err, BrokerError::NoResponders { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        server.abort();
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

    #[test]
    fn frame_round_trip_and_crc() {
        let msgs = vec![
            OutgoingMessage {
                subject: "s1".into(),
                payload: Bytes::from_static(b"abc"),
                headers: vec![("k".into(), "v".into())],
            },
            OutgoingMessage::new("s2", Bytes::new()),
        ];
        let body_len: u64 = msgs.iter().map(record_len).sum();
        let mut buf = Vec::new();
        encode_frame(&mut buf, 42, &msgs, body_len as usize);
        let h = FrameHeader::parse(&buf).expect("header");
        assert_eq!((h.first_seq, h.count, h.frame_len()), (42, 2, buf.len() as u64));
        h.check_crc(&buf).expect("crc");
        let mut seen = Vec::new();
        parse_records(&buf[FRAME_HEADER_LEN..], h.count, |i, r| {
            seen.push((i, r.subject.to_owned(), decode_headers(r.headers_raw, r.header_count)?, r.payload.len()));
            Ok(())
        })
        .expect("parse");
        assert_eq!(seen, vec![(0, "s1".into(), vec![("k".into(), "v".into())], 3), (1, "s2".into(), vec![], 0)]);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert!(h.check_crc(&buf).is_err());
    }

    /// A topic as the broker wrote it before its WAL code moved to fv-wal (commit
    /// 83c7e5a): two batches, then `truncate(2)`. Files written by older builds must keep
    /// opening, and this build must write the same bytes.
    const GOLDEN_TOPIC: &str = "fv-dml-0";
    const GOLDEN_SEGMENT_NAME: &str = "00000000000000000001.log";
    const GOLDEN_SEGMENT: &str = concat!(
        "46564c423f00000071e3451b0100000000000000020000000d00000066762d646d6c2d302e6331763001000000010000",
        "006b01000000760500000068656c6c6f0b00000066762d646d6c2d302e7474000000000000000046564c424500000013",
        "7983460300000000000000010000000d00000066762d646d6c2d302e6331763002000000050000007472616365030000",
        "00616263040000007479706506000000696e736572740a00000000010203040506070809",
    );
    const GOLDEN_FIRST_RETAINED: &str = "2\n";

    fn golden_batches() -> Vec<Vec<OutgoingMessage>> {
        vec![
            vec![
                OutgoingMessage {
                    subject: "fv-dml-0.c1v0".into(),
                    payload: Bytes::from_static(b"hello"),
                    headers: vec![("k".into(), "v".into())],
                },
                OutgoingMessage::new("fv-dml-0.tt", Bytes::new()),
            ],
            vec![OutgoingMessage {
                subject: "fv-dml-0.c1v0".into(),
                payload: Bytes::from((0u8..10).collect::<Vec<_>>()),
                headers: vec![("trace".into(), "abc".into()), ("type".into(), "insert".into())],
            }],
        ]
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_of_the_original_format_open_and_are_reproduced() {
        // This build writes the same bytes.
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        broker.ensure_topic(GOLDEN_TOPIC).await.expect("ensure");
        let mut positions = Vec::new();
        for batch in golden_batches() {
            positions.extend(broker.produce(GOLDEN_TOPIC, batch).await.expect("produce"));
        }
        assert_eq!(positions, vec![1, 2, 3]);
        broker.truncate(GOLDEN_TOPIC, 2).await.expect("truncate");
        let topic_dir = broker.topic_dir(GOLDEN_TOPIC);
        drop(broker);
        let segment = fs::read(topic_dir.join(GOLDEN_SEGMENT_NAME)).expect("segment");
        assert_eq!(hex(&segment), GOLDEN_SEGMENT, "segment bytes changed");
        let first = fs::read_to_string(topic_dir.join("first_retained")).expect("first_retained");
        assert_eq!(first, GOLDEN_FIRST_RETAINED);

        // Files written by the original code open and read back as produced.
        let dir = TempDir::new().expect("tempdir");
        let topic_dir = dir.path().join(GOLDEN_TOPIC);
        fs::create_dir_all(&topic_dir).expect("mkdir");
        fs::write(topic_dir.join(GOLDEN_SEGMENT_NAME), unhex(GOLDEN_SEGMENT)).expect("write segment");
        fs::write(topic_dir.join("first_retained"), GOLDEN_FIRST_RETAINED).expect("write first_retained");
        let broker = open(dir.path());
        assert_eq!(broker.topics().await.expect("topics"), vec![GOLDEN_TOPIC.to_string()]);
        assert_eq!(broker.first_retained(GOLDEN_TOPIC).expect("topic"), 2);
        assert_eq!(broker.latest_position(GOLDEN_TOPIC).await.expect("latest"), 3);
        let got = read_all(&broker, GOLDEN_TOPIC, SubjectFilter::All, 2).await;
        let expected: Vec<OutgoingMessage> = golden_batches().into_iter().flatten().skip(1).collect();
        for (m, e) in got.iter().zip(&expected) {
            assert_eq!((&m.subject, &m.payload, &m.headers), (&e.subject, &e.payload, &e.headers));
        }
        assert_eq!(got.iter().map(|m| m.position).collect::<Vec<_>>(), vec![2, 3]);
        let next = broker.produce(GOLDEN_TOPIC, vec![OutgoingMessage::new("fv-dml-0.x", "4")]).await.expect("produce");
        assert_eq!(next, vec![4]);
    }
}

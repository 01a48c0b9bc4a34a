//! Subscriptions: a cursor over a topic that reads from the cache of recent records or,
//! on a blocking thread, from the segment files, and waits for the tip to move.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tracing::debug;

use super::frame::{FRAME_HEADER_LEN, FrameHeader, decode_headers, parse_records};
use super::topic::{Topic, TopicShared};
use super::{io_err, join_err};
use crate::{BrokerError, LogMessage, LogStream, Position, Result, SeekFrom, SubjectFilter};

/// A subscription reads at most this many records / payload bytes per step.
const READ_BATCH_RECORDS: usize = 1024;
const READ_BATCH_BYTES: usize = 4 << 20;
/// Read-ahead of a subscription's segment reader.
const READ_CHUNK: usize = 256 << 10;

/// Subscribes to `topic` from `from`.
pub(super) fn subscribe(topic: &Topic, name: &str, filter: SubjectFilter, from: SeekFrom) -> Result<LogStream> {
    let next = {
        let st = topic.shared.state.lock();
        match from {
            SeekFrom::Earliest => st.first_retained,
            SeekFrom::Latest => st.tip + 1,
            SeekFrom::After(p) => {
                let next = p.saturating_add(1);
                if next < st.first_retained {
                    return Err(BrokerError::PositionTruncated {
                        topic: name.to_owned(),
                        position: next,
                        first_retained: st.first_retained,
                    });
                }
                next
            }
        }
    };
    debug!(topic = name, ?from, next, "subscribed");
    let sub = Subscription {
        shared: topic.shared.clone(),
        tip_rx: topic.tip_rx.clone(),
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
                            payload: Bytes::copy_from_slice(raw.payload),
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use tempfile::TempDir;

    use super::super::testutil::*;
    use super::super::{EmbeddedBroker, FsyncPolicy};
    use crate::{BrokerError, LogBroker, OutgoingMessage, SeekFrom, SubjectFilter};

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
}

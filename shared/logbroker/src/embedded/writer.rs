//! A topic's side of its [`fv_wal::GroupWriter`] thread: writing groups of batches into
//! segments (rolling to a new segment when one is full), publishing them once durable,
//! and truncating.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fv_wal::{GroupCommit, Staged};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::frame::{FRAME_HEADER_LEN, encode_frame};
use super::names::segment_path;
use super::recovery::{Active, write_first_retained};
use super::topic::{AppendReq, Control, SegMeta, TopicShared};
use super::{EmbeddedBrokerConfig, FsyncPolicy, INDEX_INTERVAL, io_err, sync_dir};
use crate::{BrokerError, LogMessage, Position, Result};

/// The writer hands its buffer to the kernel once it holds this much.
const WRITE_BUF_FLUSH: usize = 4 << 20;

/// What one group changed in one segment.
pub(super) struct SegTouch {
    base: Position,
    path: PathBuf,
    end: u64,
    last: Position,
    new_index: Vec<(Position, u64)>,
}

/// A group after `write`, waiting for its sync.
pub(super) enum Pending {
    /// The topic failed an earlier write: the group was not written.
    Refused(Vec<AppendReq>, String),
    /// Writing the group failed.
    Failed(Vec<AppendReq>, BrokerError),
    /// Written (not yet synced); the segments it touched.
    Written(Vec<AppendReq>, Vec<SegTouch>),
}

/// Owns the topic's active segment; runs on the writer thread.
pub(super) struct Writer {
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
    pub(super) fn new(
        shared: Arc<TopicShared>,
        tip_tx: watch::Sender<Position>,
        config: &EmbeddedBrokerConfig,
        active: Active,
        next_seq: Position,
    ) -> Self {
        Writer {
            shared,
            tip_tx,
            fsync: config.fsync,
            segment_bytes: config.segment_bytes,
            active,
            next_seq,
            failed: None,
        }
    }

    fn sync_active(&mut self) -> Result<()> {
        if self.fsync == FsyncPolicy::Always {
            self.sync_data().map_err(io_err(&self.active.path))?;
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.active.file.sync_data()?;
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
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

    /// Writes one frame per request (not synced). Returns the segments touched.
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
        touched.push(cur);
        Ok(touched)
    }

    /// Answers a group that could not be made durable; the topic stops accepting writes.
    fn fail(&mut self, group: Vec<AppendReq>, e: BrokerError) {
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

    /// Makes a durable group visible and acknowledges its producers.
    fn publish_group(&mut self, group: Vec<AppendReq>, touched: Vec<SegTouch>) {
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

impl GroupCommit for Writer {
    type Append = AppendReq;
    type Control = Control;
    type Pending = Pending;

    fn append_bytes(req: &AppendReq) -> usize {
        req.body_len
    }

    fn write(&mut self, group: Vec<AppendReq>) -> Staged<Pending> {
        if let Some(reason) = &self.failed {
            return Staged { pending: Pending::Refused(group, reason.clone()), needs_sync: false };
        }
        match self.write_group(&group) {
            // A group of volatile records only (time ticks) is not forced to disk; the next
            // durable group's fdatasync covers them, so the file never has holes.
            Ok(touched) => {
                let needs_sync = group.iter().any(|r| r.durable);
                Staged { pending: Pending::Written(group, touched), needs_sync }
            }
            Err(e) => Staged { pending: Pending::Failed(group, e), needs_sync: false },
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn publish(&mut self, pending: Pending, synced: io::Result<()>) {
        match (pending, synced) {
            (Pending::Refused(group, reason), _) => {
                for req in group {
                    let _ = req.reply.send(Err(BrokerError::Unavailable { reason: reason.clone() }));
                }
            }
            (Pending::Failed(group, e), _) => self.fail(group, e),
            (Pending::Written(group, _), Err(source)) => {
                let e = BrokerError::Io { path: self.active.path.clone(), source };
                self.fail(group, e);
            }
            (Pending::Written(group, touched), Ok(())) => self.publish_group(group, touched),
        }
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Truncate { before, reply } => {
                let _ = reply.send(self.truncate(before));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tempfile::TempDir;

    use super::super::names::parse_segment_name;
    use super::super::testutil::*;
    use crate::{BrokerError, LogBroker, OutgoingMessage, Position, SeekFrom, SubjectFilter};

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
}

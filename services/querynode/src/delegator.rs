//! The shard delegator of one vchannel.
//!
//! It consumes the vchannel from its checkpoint: inserts build growing segments (except
//! for segments already flushed, which workers serve as sealed segments), deletes are
//! applied to growing segments and forwarded to the workers of sealed ones, and time
//! ticks advance the serviceable time that reads wait for. Handoff (a flushed segment
//! loaded on a worker) replaces the growing copy with the sealed one atomically for
//! readers, after replaying the buffered deletes onto the sealed copy.
//!
//! Moving a sealed segment between workers (balance) is load-then-switch-then-release:
//! querycoord loads the copy on the new worker, re-points the delegator with
//! `AddSealed`, and only then releases the old copy. Every read pins the routing epoch
//! it planned with ([`ReadPin`]); a sync that re-points or removes a sealed segment
//! starts a new epoch and returns only after the reads of the old one have finished,
//! so the release that follows never pulls a segment from under a running read.
//!
//! Moving the delegator itself to another node (channel balance) starts a second one in
//! *standby*: it consumes the vchannel from the checkpoint and receives the sealed
//! routing like any new delegator, but refuses reads until querycoord declares it the
//! shard leader (`serve`), after it caught up with the old one. The old delegator is
//! then stopped; a read still waiting on it fails with a retriable "channel not
//! available" and the proxy retries it on the new leader.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use fv_common::channel::{pchannel_of, tick_subject, vchannel_subject};
use fv_common::pk::PkColumn;
use fv_common::schema::Schema;
use fv_common::{
    ALL_PARTITIONS, Code, CollectionId, FvError, FvResult, NodeId, PartitionId, PrimaryKey, SegmentId, Timestamp,
};
use fv_logbroker::{SeekFrom, SubjectFilter};
use fv_proto::fv::msg::{DeleteMsg, DmlMessage, InsertMsg, dml_message::Body};
use fv_proto::fv::querynode::{ApplyDeleteRequest, SyncDistributionRequest, SyncType};
use fv_proto::fv::rootcoord::SyncTimeTickRequest;
use fv_runtime::Clients;
use fv_runtime::Shutdown;
use fv_storage::SegmentData;
use parking_lot::{Mutex, RwLock};
use prost::Message;
use tokio::sync::watch;

use crate::segment::{Segment, SegmentPlace};
use crate::worker::Worker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedPlace {
    pub node: NodeId,
    pub partition: PartitionId,
}

/// How long a routing change waits for the reads planned before it. Reads are bounded
/// by their own timeout; past this the change goes ahead (a late read then fails with a
/// retriable "segment not loaded" rather than returning partial results).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One routing epoch of the sealed segments. Dropping the last reference (the
/// delegator lets go of it when a new epoch starts) signals that no read planned with
/// this routing is still running.
struct Epoch {
    drained: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Epoch {
    fn drop(&mut self) {
        if let Some(tx) = self.drained.take() {
            let _ = tx.send(());
        }
    }
}

fn new_epoch() -> (Arc<Epoch>, tokio::sync::oneshot::Receiver<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (Arc::new(Epoch { drained: Some(tx) }), rx)
}

/// Held by a read for as long as it may touch the sealed segments it planned with.
#[derive(Clone)]
pub struct ReadPin(#[allow(dead_code)] Arc<Epoch>);

#[derive(Debug, Clone)]
struct DeleteRecord {
    key: PrimaryKey,
    ts: Timestamp,
    partition: PartitionId,
    seq: u64,
}

pub struct Delegator {
    pub collection: CollectionId,
    pub vchannel: String,
    pub pchannel: String,
    pub schema: Arc<Schema>,
    /// Loaded partitions; None means the whole collection.
    partitions: RwLock<Option<HashSet<PartitionId>>>,
    growing: RwLock<BTreeMap<SegmentId, Arc<Segment>>>,
    sealed: RwLock<BTreeMap<SegmentId, SealedPlace>>,
    /// The current routing epoch, read and swapped only under the `sealed` lock.
    epoch: Mutex<(Arc<Epoch>, tokio::sync::oneshot::Receiver<()>)>,
    excluded: RwLock<HashSet<SegmentId>>,
    /// Deletes since the last known checkpoint, replayed onto segments handed off.
    deletes: tokio::sync::Mutex<Vec<DeleteRecord>>,
    /// Deletes newer than the last tick: an insert with an older timestamp may still
    /// arrive after them (from another proxy) and must be deleted on arrival.
    unsettled: Mutex<HashMap<PrimaryKey, Vec<(Timestamp, PartitionId)>>>,
    serviceable: watch::Sender<Timestamp>,
    /// Largest timestamp of any DML consumed so far.
    consumed: AtomicU64,
    sync_requested: AtomicU64,
    /// Refusing reads until declared shard leader (see the module docs).
    standby: AtomicBool,
    pub stop: Shutdown,
}

/// Segments a read runs on.
pub struct Snapshot {
    pub growing: Vec<Arc<Segment>>,
    pub sealed: BTreeMap<NodeId, Vec<SegmentId>>,
    /// Keeps the workers' copies of `sealed` from being released until dropped.
    pub pin: ReadPin,
}

impl Delegator {
    pub fn new(
        collection: CollectionId,
        vchannel: String,
        schema: Arc<Schema>,
        partitions: Option<HashSet<PartitionId>>,
        excluded: HashSet<SegmentId>,
        standby: bool,
        stop: Shutdown,
    ) -> Arc<Delegator> {
        let (tx, _) = watch::channel(0);
        Arc::new(Delegator {
            collection,
            pchannel: pchannel_of(&vchannel).to_string(),
            vchannel,
            schema,
            partitions: RwLock::new(partitions),
            growing: RwLock::new(BTreeMap::new()),
            sealed: RwLock::new(BTreeMap::new()),
            epoch: Mutex::new(new_epoch()),
            excluded: RwLock::new(excluded),
            deletes: tokio::sync::Mutex::new(Vec::new()),
            unsettled: Mutex::new(HashMap::new()),
            serviceable: tx,
            consumed: AtomicU64::new(0),
            sync_requested: AtomicU64::new(0),
            standby: AtomicBool::new(standby),
            stop,
        })
    }

    pub fn serviceable_ts(&self) -> Timestamp {
        *self.serviceable.borrow()
    }

    pub fn is_standby(&self) -> bool {
        self.standby.load(Ordering::Acquire)
    }

    /// The error a read gets from a delegator that is not (or no longer) the shard
    /// leader: retriable, and the proxy's cue to ask querycoord for the leader again.
    fn not_leader(&self, why: &str) -> FvError {
        FvError::new(Code::ChannelNotAvailable, format!("shard delegator {why}[channel={}]", self.vchannel))
            .retriable(true)
    }

    /// Fails unless this delegator may answer reads.
    pub fn check_serving(&self) -> FvResult<()> {
        if self.stop.is_triggered() {
            return Err(self.not_leader("stopped"));
        }
        if self.is_standby() {
            return Err(self.not_leader("not serving yet"));
        }
        Ok(())
    }

    pub fn set_partitions(&self, p: Option<HashSet<PartitionId>>) {
        *self.partitions.write() = p;
    }

    fn partition_loaded(&self, p: PartitionId) -> bool {
        self.partitions.read().as_ref().is_none_or(|s| s.contains(&p))
    }

    pub fn growing_ids(&self) -> Vec<SegmentId> {
        self.growing.read().keys().copied().collect()
    }

    pub fn sealed_ids(&self) -> Vec<SegmentId> {
        self.sealed.read().keys().copied().collect()
    }

    /// Where each sealed segment is routed (segment -> worker node).
    pub fn sealed_nodes(&self) -> HashMap<SegmentId, NodeId> {
        self.sealed.read().iter().map(|(id, p)| (*id, p.node)).collect()
    }

    /// Starts a new routing epoch (the caller holds the `sealed` write lock) and returns
    /// the signal that the reads of the previous one are done.
    fn next_epoch(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (old, rx) = std::mem::replace(&mut *self.epoch.lock(), new_epoch());
        drop(old);
        rx
    }

    /// The segments of the requested partitions (all loaded ones when empty).
    pub fn snapshot(&self, partitions: &[PartitionId]) -> Snapshot {
        let wanted = |p: PartitionId| self.partition_loaded(p) && (partitions.is_empty() || partitions.contains(&p));
        // Same lock order as handoff: growing, then sealed.
        let growing = self.growing.read();
        let sealed = self.sealed.read();
        let mut by_node: BTreeMap<NodeId, Vec<SegmentId>> = BTreeMap::new();
        for (id, place) in sealed.iter().filter(|(_, p)| wanted(p.partition)) {
            by_node.entry(place.node).or_default().push(*id);
        }
        let pin = ReadPin(self.epoch.lock().0.clone());
        Snapshot { growing: growing.values().filter(|s| wanted(s.partition)).cloned().collect(), sealed: by_node, pin }
    }

    /// Waits until serviceable time reaches `guarantee`, then returns the read's MVCC
    /// timestamp: the latest timestamp consumed, so a read sees everything the delegator
    /// has (as Milvus does; the guarantee only bounds how stale that may be). Asks
    /// rootcoord for a tick instead of waiting for the next period.
    pub async fn wait_serviceable(
        &self,
        worker: &Worker,
        guarantee: Timestamp,
        timeout: Duration,
    ) -> FvResult<Timestamp> {
        let guarantee = if guarantee == fv_common::ts::GUARANTEE_STRONG {
            // Strong: a tick published after this request arrived covers every write
            // acknowledged before it.
            let req = SyncTimeTickRequest { pchannels: vec![self.pchannel.clone()], min_ts: 0 };
            worker.ctx.rpc.rootcoord().sync_time_tick(&req).timeout(timeout).await?.timestamp
        } else {
            guarantee
        };
        let ts = self.wait_tick(worker, guarantee, timeout).await?;
        Ok(ts.max(self.consumed.load(Ordering::Acquire)))
    }

    async fn wait_tick(&self, worker: &Worker, guarantee: Timestamp, timeout: Duration) -> FvResult<Timestamp> {
        let mut rx = self.serviceable.subscribe();
        let now = *rx.borrow_and_update();
        if now >= guarantee {
            return Ok(now);
        }
        if self.sync_requested.fetch_max(guarantee, Ordering::AcqRel) < guarantee {
            let rpc = worker.ctx.rpc.clone();
            let req = SyncTimeTickRequest { pchannels: vec![self.pchannel.clone()], min_ts: guarantee };
            tokio::spawn(async move {
                if let Err(e) = rpc.rootcoord().sync_time_tick(&req).retry(Duration::from_secs(10)).await {
                    tracing::debug!(error = %e, "time tick sync request failed");
                }
            });
        }
        self.await_serviceable(rx, guarantee, timeout).await
    }

    /// Waits (at most `timeout`) until serviceable time reaches `guarantee`.
    async fn await_serviceable(
        &self,
        mut rx: watch::Receiver<Timestamp>,
        guarantee: Timestamp,
        timeout: Duration,
    ) -> FvResult<Timestamp> {
        let wait = async {
            loop {
                // A delegator released for a channel move stops consuming: its
                // serviceable time would never advance, so waiting reads fail at once
                // (retriable) and go to the new leader instead of timing out here.
                let changed = tokio::select! {
                    r = rx.changed() => r.is_ok(),
                    _ = self.stop.wait() => false,
                };
                if !changed {
                    return Err(self.not_leader("stopped"));
                }
                let ts = *rx.borrow_and_update();
                if ts >= guarantee {
                    return Ok(ts);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(FvError::timeout(format!(
                "vchannel {} is not serviceable at the requested consistency after {} ms (serviceable {}, wanted {guarantee})",
                self.vchannel,
                timeout.as_millis(),
                self.serviceable_ts()
            ))),
        }
    }

    /// Consumes the vchannel from just after `seek_seq` until stopped.
    pub async fn run(self: Arc<Self>, worker: Arc<Worker>, mut last_seq: u64) {
        tracing::info!(vchannel = %self.vchannel, from = last_seq, "delegator started");
        let filter = SubjectFilter::Subjects(vec![vchannel_subject(&self.vchannel), tick_subject(&self.pchannel)]);
        loop {
            let mut stream =
                match worker.ctx.broker.subscribe(&self.pchannel, filter.clone(), SeekFrom::After(last_seq)).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, vchannel = %self.vchannel, "cannot consume; retrying");
                        tokio::select! {
                            _ = self.stop.wait() => return,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        }
                    }
                };
            loop {
                let item = tokio::select! {
                    _ = self.stop.wait() => {
                        tracing::info!(vchannel = %self.vchannel, "delegator stopped");
                        return;
                    }
                    item = stream.next() => item,
                };
                match item {
                    Some(Ok(msg)) => {
                        let seq = msg.position;
                        match DmlMessage::decode(msg.payload) {
                            Ok(m) => self.process(&worker, m, seq).await,
                            Err(e) => tracing::error!(error = %e, seq, "undecodable log record skipped"),
                        }
                        last_seq = seq;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, vchannel = %self.vchannel, "log stream failed; resubscribing");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    async fn process(&self, worker: &Worker, msg: DmlMessage, seq: u64) {
        match msg.body {
            Some(Body::Insert(ins)) if ins.vchannel == self.vchannel => self.on_insert(ins, seq),
            Some(Body::Delete(del)) if del.vchannel == self.vchannel => self.on_delete(worker, del, seq).await,
            Some(Body::TimeTick(tt)) => {
                self.unsettled.lock().retain(|_, v| {
                    v.retain(|(ts, _)| *ts > tt.timestamp);
                    !v.is_empty()
                });
                self.serviceable.send_if_modified(|cur| {
                    if tt.timestamp > *cur {
                        *cur = tt.timestamp;
                        true
                    } else {
                        false
                    }
                });
            }
            _ => {}
        }
    }

    fn on_insert(&self, ins: InsertMsg, seq: u64) {
        if self.excluded.read().contains(&ins.segment_id) || !self.partition_loaded(ins.partition_id) {
            return;
        }
        // Published only after the rows are in the segment (below).
        let ts = ins.timestamp;
        let rows = match SegmentData::from_field_data(&ins.fields, &self.schema, ins.num_rows as usize, ins.timestamp) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, seq, "malformed insert record skipped");
                return;
            }
        };
        let seg = {
            let mut g = self.growing.write();
            g.entry(ins.segment_id)
                .or_insert_with(|| {
                    let place = SegmentPlace {
                        id: ins.segment_id,
                        collection: self.collection,
                        partition: ins.partition_id,
                        vchannel: self.vchannel.clone(),
                    };
                    Arc::new(Segment::new(
                        place,
                        self.schema.clone(),
                        SegmentData::empty(&self.schema).expect("schema types are supported"),
                        false,
                        None,
                    ))
                })
                .clone()
        };
        if let Err(e) = seg.append(&rows) {
            tracing::error!(error = %e, seq, "insert record does not fit the segment; skipped");
            return;
        }
        self.consumed.fetch_max(ts, Ordering::AcqRel);
        // Deletes that arrived before these (older) rows still apply to them.
        let unsettled = self.unsettled.lock();
        if !unsettled.is_empty()
            && let Some(pk) = rows.column(self.schema.pk().id)
        {
            for r in 0..pk.len() {
                let Some(k) = pk.pk(r) else { continue };
                for (ts, part) in unsettled.get(&k).into_iter().flatten() {
                    if *ts > rows.timestamps[r] && (*part == ALL_PARTITIONS || *part == ins.partition_id) {
                        seg.delete(std::slice::from_ref(&k), &[*ts]);
                    }
                }
            }
        }
    }

    async fn on_delete(&self, worker: &Worker, del: DeleteMsg, seq: u64) {
        let Some(ids) = &del.primary_keys else { return };
        let keys: Vec<PrimaryKey> = PkColumn::from_ids(ids).iter().collect();
        let ts = vec![del.timestamp; keys.len()];
        let mut buffer = self.deletes.lock().await;
        let matches = |p: PartitionId| del.partition_id == ALL_PARTITIONS || del.partition_id == p;
        let growing: Vec<Arc<Segment>> =
            self.growing.read().values().filter(|s| matches(s.partition)).cloned().collect();
        for s in growing {
            s.delete(&keys, &ts);
        }
        let mut by_node: BTreeMap<NodeId, Vec<SegmentId>> = BTreeMap::new();
        for (id, place) in self.sealed.read().iter().filter(|(_, p)| matches(p.partition)) {
            by_node.entry(place.node).or_default().push(*id);
        }
        for (n, segs) in by_node {
            self.apply_on_worker(worker, n, segs, &keys, &ts).await;
        }
        {
            let mut u = self.unsettled.lock();
            for k in &keys {
                u.entry(k.clone()).or_default().push((del.timestamp, del.partition_id));
            }
        }
        buffer.extend(keys.into_iter().map(|key| DeleteRecord {
            key,
            ts: del.timestamp,
            partition: del.partition_id,
            seq,
        }));
        self.consumed.fetch_max(del.timestamp, Ordering::AcqRel);
    }

    /// Applies deletes to sealed segments held by node `target` (this node or another).
    async fn apply_on_worker(
        &self,
        worker: &Worker,
        target: NodeId,
        segments: Vec<SegmentId>,
        keys: &[PrimaryKey],
        ts: &[Timestamp],
    ) {
        if target == worker.ctx.node_id {
            for id in &segments {
                if let Some(s) = worker.segments.read().get(id).cloned() {
                    s.delete(keys, ts);
                }
            }
            return;
        }
        let Some(pks) = PkColumn::from_keys(keys) else { return };
        let req = ApplyDeleteRequest {
            collection_id: self.collection,
            segment_ids: segments,
            primary_keys: Some(pks.to_ids()),
            timestamps: ts.to_vec(),
        };
        // A worker that cannot take the delete will have the segment reassigned and
        // reloaded (with its delta logs), so failing here is logged, not fatal.
        if let Err(e) = worker.ctx.rpc.querynode(target).apply_delete(&req).retry(Duration::from_secs(10)).await {
            tracing::error!(error = %e, worker = target, "could not forward deletes to a worker");
        }
    }

    /// Applies a distribution change from querycoord (handoff of sealed segments).
    pub async fn sync(&self, worker: &Worker, req: SyncDistributionRequest) -> FvResult<()> {
        let mut buffer = self.deletes.lock().await;
        if req.serve && self.standby.swap(false, Ordering::AcqRel) {
            tracing::info!(vchannel = %self.vchannel, serviceable = self.serviceable_ts(), "delegator now serves as shard leader");
        }
        if !req.partition_ids.is_empty() {
            let mut p = self.partitions.write();
            if let Some(set) = p.as_mut() {
                set.extend(req.partition_ids.iter().copied());
            }
        }
        // Whether a sealed segment stops being read where it was (moved or removed):
        // then the old copy may be released once this returns, so reads planned with
        // the old routing must be finished by then.
        let mut rerouted = false;
        for a in &req.actions {
            match SyncType::try_from(a.r#type) {
                Ok(SyncType::AddSealed) => {
                    let recs: Vec<&DeleteRecord> = buffer
                        .iter()
                        .filter(|d| d.partition == ALL_PARTITIONS || d.partition == a.partition_id)
                        .collect();
                    if !recs.is_empty() {
                        let keys: Vec<PrimaryKey> = recs.iter().map(|d| d.key.clone()).collect();
                        let ts: Vec<Timestamp> = recs.iter().map(|d| d.ts).collect();
                        self.apply_on_worker(worker, a.node_id, vec![a.segment_id], &keys, &ts).await;
                    }
                    let mut growing = self.growing.write();
                    let mut sealed = self.sealed.write();
                    let before =
                        sealed.insert(a.segment_id, SealedPlace { node: a.node_id, partition: a.partition_id });
                    rerouted |= before.is_some_and(|p| p.node != a.node_id);
                    growing.remove(&a.segment_id);
                    self.excluded.write().insert(a.segment_id);
                    tracing::debug!(segment = a.segment_id, node = a.node_id, vchannel = %self.vchannel, "handoff");
                }
                Ok(SyncType::RemoveSealed) => {
                    rerouted |= self.sealed.write().remove(&a.segment_id).is_some();
                }
                Err(_) => return Err(FvError::invalid_parameter(format!("unknown sync action {}", a.r#type))),
            }
        }
        if let Some(cp) = &req.checkpoint {
            buffer.retain(|d| d.seq > cp.seq);
        }
        // Deletes may flow again while the old reads finish.
        drop(buffer);
        if rerouted && !self.drain_earlier_reads(DRAIN_TIMEOUT).await {
            tracing::warn!(vchannel = %self.vchannel, "reads planned before a routing change still run; going ahead");
        }
        Ok(())
    }

    /// Starts a new routing epoch and waits, at most `bound`, until no read planned with
    /// an earlier routing is still running. Returns whether they all finished.
    async fn drain_earlier_reads(&self, bound: Duration) -> bool {
        let drained = {
            let _routing = self.sealed.write();
            self.next_epoch()
        };
        tokio::time::timeout(bound, drained).await.is_ok()
    }

    /// Drops growing segments of the given partitions (after they were released).
    pub fn release_partitions(&self, partitions: &[PartitionId]) {
        self.growing.write().retain(|_, s| !partitions.contains(&s.partition));
        self.sealed.write().retain(|_, p| !partitions.contains(&p.partition));
        if let Some(set) = self.partitions.write().as_mut() {
            set.retain(|p| !partitions.contains(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delegator() -> Arc<Delegator> {
        let schema = Arc::new(fv_storage::testing::schema(2));
        Delegator::new(1, "dml_0_1v0".into(), schema, None, HashSet::new(), false, Shutdown::new())
    }

    #[tokio::test]
    async fn routing_change_waits_for_reads_planned_before_it() {
        let d = delegator();
        let running = d.snapshot(&[]);
        // A read is running with the old routing: the change cannot complete.
        assert!(!d.drain_earlier_reads(Duration::from_millis(50)).await);

        // Another change waits for reads of the epoch before it only: the read above
        // belongs to an older one, which the first change already gave up on.
        let d2 = d.clone();
        let pinned = d.snapshot(&[]);
        let waiter = tokio::spawn(async move { d2.drain_earlier_reads(Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "released while a read still used the old routing");
        // A read planned after the change does not hold it up.
        let _later = d.snapshot(&[]);
        drop(pinned);
        assert!(waiter.await.expect("waiter task"), "the change completes once the old read is done");
        drop(running);
    }

    #[tokio::test]
    async fn standby_refuses_reads_until_it_serves() {
        let d = Delegator::new(
            1,
            "dml_0_1v0".into(),
            Arc::new(fv_storage::testing::schema(2)),
            None,
            HashSet::new(),
            true,
            Shutdown::new(),
        );
        let e = d.check_serving().expect_err("a standby delegator must not answer reads");
        assert_eq!(e.code, Code::ChannelNotAvailable);
        assert!(e.retriable, "the proxy retries on the leader querycoord names");
        d.standby.store(false, Ordering::Release);
        d.check_serving().expect("a leader answers reads");
        d.stop.trigger();
        assert_eq!(d.check_serving().expect_err("stopped").code, Code::ChannelNotAvailable);
    }

    #[tokio::test]
    async fn a_read_waiting_on_a_stopped_delegator_fails_at_once() {
        let d = delegator();
        let d2 = d.clone();
        let waiting = tokio::spawn(async move {
            let rx = d2.serviceable.subscribe();
            d2.await_serviceable(rx, 100, Duration::from_secs(20)).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "serviceable time is below the guarantee");
        let started = std::time::Instant::now();
        d.stop.trigger();
        let r = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the read is not stuck until its own timeout")
            .expect("read task");
        let e = r.expect_err("no serviceable time after the stop");
        assert_eq!(e.code, Code::ChannelNotAvailable);
        assert!(e.retriable);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Ticks that do arrive still serve reads on a running delegator.
        let live = delegator();
        let rx = live.serviceable.subscribe();
        live.serviceable.send_replace(150);
        assert_eq!(live.await_serviceable(rx, 100, Duration::from_secs(1)).await.expect("served"), 150);
    }

    #[tokio::test]
    async fn routing_change_without_reads_is_immediate() {
        let d = delegator();
        assert!(d.drain_earlier_reads(Duration::from_millis(1)).await);
    }
}

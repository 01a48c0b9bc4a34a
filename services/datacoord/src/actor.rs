//! datacoord's [`Core`]: every change to its state runs on the role's exclusive actor,
//! one at a time (see [`crate::service`]); the state is shared with read-only request
//! handlers.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use fv_common::{Code, FvError, FvResult, NodeId, SegmentId, Timestamp};
use fv_metastore::TxnOp;
use fv_proto::common::SegmentState;
use fv_proto::fv::datacoord::{
    AssignSegmentRequest, AssignSegmentResponse, DropCollectionDataRequest, FlushRequest, FlushResponse,
    SaveBinlogPathsRequest, SegmentAssignment, SegmentFlushedEvent, UpdateChannelCheckpointRequest,
    WatchChannelsRequest,
};
use fv_proto::fv::datanode::{FlushSegmentsRequest, UnwatchDmChannelRequest, WatchDmChannelRequest};
use fv_proto::fv::meta::{ChannelWatchInfo, SegmentInfo};
use fv_proto::fv::msg::MsgPosition;
use fv_proto::fv::rootcoord::{AllocIdRequest, AllocTimestampRequest, DescribeCollectionRequest};
use fv_runtime::Clients;
use fv_runtime::RoleContext;
use parking_lot::Mutex;
use prost::Message;

use crate::alloc::{self, GrowingAlloc};
use crate::catalog::{self, commit, put_checkpoint, put_segment, put_watch};
use crate::state::{State, is, is_unflushed};

pub const SEGMENT_EVENT_SUBJECT: &str = "fv.evt.segment_flushed";
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

pub struct Core {
    pub ctx: RoleContext,
    pub state: Mutex<State>,
}

impl Core {
    pub async fn alloc_ts(&self) -> FvResult<Timestamp> {
        let r = self
            .ctx
            .rpc
            .rootcoord()
            .alloc_timestamp(&AllocTimestampRequest { count: 1 })
            .retry(DELIVERY_DEADLINE)
            .await?;
        Ok(r.timestamp)
    }

    async fn alloc_ids(&self, count: u32) -> FvResult<i64> {
        let r = self.ctx.rpc.rootcoord().alloc_id(&AllocIdRequest { count }).retry(DELIVERY_DEADLINE).await?;
        Ok(r.id_begin)
    }

    /// Assigns rows to segments, opening and sealing segments as they fill.
    pub async fn assign(&self, req: AssignSegmentRequest) -> FvResult<AssignSegmentResponse> {
        let cfg = &self.ctx.config.datacoord;
        let mut assignments = Vec::new();
        let mut to_seal = Vec::new();
        for r in req.requests {
            if r.count == 0 {
                continue;
            }
            if !self.state.lock().watches.contains_key(&r.vchannel) {
                return Err(FvError::new(
                    Code::ChannelNotAvailable,
                    format!("channel not available[channel={}]", r.vchannel),
                )
                .retriable(true));
            }
            let capacity = alloc::max_rows(r.row_bytes, cfg.segment_max_bytes, cfg.segment_max_rows);
            let key = (r.collection_id, r.partition_id, r.vchannel.clone());
            let plan = {
                let mut st = self.state.lock();
                let plan = alloc::plan(st.growing.get(&key), r.count as u64, capacity);
                if plan.into_current > 0 || plan.seal_current {
                    let g = st.growing.get_mut(&key).expect("plan used the current segment");
                    g.allocated += plan.into_current;
                    g.last_assign = Instant::now();
                    if plan.into_current > 0 {
                        assignments.push(SegmentAssignment {
                            segment_id: g.segment_id,
                            collection_id: r.collection_id,
                            partition_id: r.partition_id,
                            vchannel: r.vchannel.clone(),
                            count: plan.into_current as u32,
                        });
                    }
                    if plan.seal_current {
                        to_seal.push(g.segment_id);
                        st.growing.remove(&key);
                    }
                }
                plan
            };
            if plan.new_segments.is_empty() {
                continue;
            }
            let first = self.alloc_ids(plan.new_segments.len() as u32).await?;
            let mut ops = Vec::new();
            let mut new_infos = Vec::new();
            for (i, rows) in plan.new_segments.iter().enumerate() {
                let info = SegmentInfo {
                    id: first + i as i64,
                    collection_id: r.collection_id,
                    partition_id: r.partition_id,
                    vchannel: r.vchannel.clone(),
                    state: SegmentState::Growing as i32,
                    max_rows: capacity as i64,
                    create_ts: r.timestamp,
                    ..Default::default()
                };
                ops.push(put_segment(&info));
                new_infos.push((info, *rows));
            }
            // Persisted before any row can reference them, so a restart knows them.
            commit(&self.ctx.meta, ops).await?;
            let mut st = self.state.lock();
            for (info, rows) in new_infos {
                assignments.push(SegmentAssignment {
                    segment_id: info.id,
                    collection_id: r.collection_id,
                    partition_id: r.partition_id,
                    vchannel: r.vchannel.clone(),
                    count: rows as u32,
                });
                if rows >= capacity {
                    to_seal.push(info.id);
                } else {
                    st.growing.insert(
                        key.clone(),
                        GrowingAlloc {
                            segment_id: info.id,
                            allocated: rows,
                            max_rows: capacity,
                            last_assign: Instant::now(),
                        },
                    );
                }
                st.segments.insert(info.id, info);
            }
        }
        if !to_seal.is_empty() {
            self.seal(&to_seal, false).await?;
        }
        Ok(AssignSegmentResponse { status: Some(Default::default()), assignments })
    }

    /// Seals segments: no more rows go to them, and their data node flushes them once
    /// its time tick passes the seal timestamp.
    pub async fn seal(&self, ids: &[SegmentId], flush_deletes: bool) -> FvResult<Timestamp> {
        let seal_ts = self.alloc_ts().await?;
        let mut ops = Vec::new();
        let mut sealed = Vec::new();
        {
            let mut st = self.state.lock();
            for id in ids {
                if let Some(s) = st.segments.get_mut(id)
                    && is(s, SegmentState::Growing)
                {
                    s.state = SegmentState::Sealed as i32;
                    s.seal_ts = seal_ts;
                    ops.push(put_segment(s));
                    sealed.push(s.clone());
                }
                st.growing.retain(|_, g| g.segment_id != *id);
            }
        }
        commit(&self.ctx.meta, ops).await?;
        let mut by_channel: BTreeMap<String, Vec<SegmentId>> = BTreeMap::new();
        for s in &sealed {
            by_channel.entry(s.vchannel.clone()).or_default().push(s.id);
        }
        for (vchannel, ids) in by_channel {
            self.notify_flush(vchannel, ids, seal_ts, flush_deletes);
        }
        Ok(seal_ts)
    }

    /// Tells the data node of `vchannel` to flush (in the background, retried).
    pub fn notify_flush(&self, vchannel: String, segment_ids: Vec<SegmentId>, seal_ts: Timestamp, flush_deletes: bool) {
        let node = self.state.lock().watches.get(&vchannel).map(|w| w.node_id).unwrap_or(0);
        if node == 0 {
            return; // delivered with the channel watch once a data node takes it
        }
        let rpc = self.ctx.rpc.clone();
        tokio::spawn(async move {
            let req = FlushSegmentsRequest {
                vchannel: vchannel.clone(),
                segment_ids,
                seal_ts,
                flush_deletes,
                dropped_segment_ids: vec![],
            };
            if let Err(e) = rpc.datanode(node).flush_segments(&req).retry(DELIVERY_DEADLINE).await {
                tracing::warn!(error = %e, %vchannel, node, "flush request not delivered; will be repeated");
            }
        });
    }

    pub async fn flush(&self, req: FlushRequest) -> FvResult<FlushResponse> {
        let (growing, sealed, flushed, channels) = {
            let st = self.state.lock();
            let mut growing = vec![];
            let mut sealed = vec![];
            let mut flushed = vec![];
            for s in st.segments.values().filter(|s| s.collection_id == req.collection_id) {
                if is(s, SegmentState::Growing) {
                    growing.push(s.id);
                } else if is_unflushed(s) {
                    sealed.push(s.id);
                } else if is(s, SegmentState::Flushed) {
                    flushed.push(s.id);
                }
            }
            (growing, sealed, flushed, st.collection_vchannels(req.collection_id))
        };
        let flush_ts = self.seal(&growing, true).await?;
        // Channels without a growing segment still write out their buffered deletes.
        for vchannel in channels {
            self.notify_flush(vchannel, vec![], flush_ts, true);
        }
        let mut segment_ids = growing;
        segment_ids.extend(sealed);
        segment_ids.sort_unstable();
        Ok(FlushResponse { status: Some(Default::default()), segment_ids, flushed_segment_ids: flushed, flush_ts })
    }

    pub async fn save_binlogs(&self, req: SaveBinlogPathsRequest) -> FvResult<()> {
        let mut ops = Vec::new();
        let mut flushed_event = None;
        let orphan_files: Vec<String>;
        {
            let mut st = self.state.lock();
            let Some(seg) = st.segments.get_mut(&req.segment_id) else {
                // Unknown (collected) segment: its new files are garbage.
                orphan_files = files_of(&req);
                drop(st);
                self.delete_files(orphan_files);
                return Ok(());
            };
            if is(seg, SegmentState::Dropped) || (req.flushed && is(seg, SegmentState::Flushed)) {
                // Dropped meanwhile, or a repeated flush after a data node restart.
                orphan_files = files_of(&req);
                drop(st);
                self.delete_files(orphan_files);
                return Ok(());
            }
            if req.flushed {
                seg.binlogs = req.field_binlogs.clone();
                seg.statslogs = req.statslogs.clone();
                seg.num_rows = req.num_rows;
                seg.state = if req.num_rows == 0 { SegmentState::Dropped as i32 } else { SegmentState::Flushed as i32 };
                seg.dml_position = req.checkpoint.clone();
                if seg.state == SegmentState::Flushed as i32 {
                    flushed_event = Some(SegmentFlushedEvent {
                        collection_id: seg.collection_id,
                        segment_id: seg.id,
                        vchannel: seg.vchannel.clone(),
                    });
                }
            }
            seg.deltalogs.extend(req.deltalogs.iter().cloned());
            seg.deleted_rows += req.deleted_rows;
            ops.push(put_segment(seg));
            let seg_id = seg.id;
            st.buffered_rows.remove(&seg_id);
            if let Some(cp) = &req.checkpoint
                && advance_checkpoint(&mut st, &req.vchannel, cp)
            {
                ops.push(put_checkpoint(&req.vchannel, cp));
            }
        }
        commit(&self.ctx.meta, ops).await?;
        if let Some(ev) = flushed_event {
            tracing::info!(segment = ev.segment_id, rows = req.num_rows, "segment flushed");
            let _ = self.ctx.broker.notify(SEGMENT_EVENT_SUBJECT, ev.encode_to_vec().into(), Vec::new()).await;
        }
        Ok(())
    }

    pub async fn update_checkpoint(&self, req: UpdateChannelCheckpointRequest) -> FvResult<()> {
        let Some(cp) = req.position else { return Ok(()) };
        let op = {
            let mut st = self.state.lock();
            if !st.watches.contains_key(&req.vchannel) {
                return Ok(());
            }
            advance_checkpoint(&mut st, &req.vchannel, &cp).then(|| put_checkpoint(&req.vchannel, &cp))
        };
        commit(&self.ctx.meta, op.into_iter().collect()).await
    }

    pub async fn watch_channels(&self, req: WatchChannelsRequest) -> FvResult<()> {
        let mut ops = Vec::new();
        {
            let mut st = self.state.lock();
            for (i, v) in req.vchannels.iter().enumerate() {
                if st.watches.contains_key(v) {
                    continue;
                }
                let w = ChannelWatchInfo { vchannel: v.clone(), collection_id: req.collection_id, node_id: 0 };
                ops.push(put_watch(&w));
                st.watches.insert(v.clone(), w);
                if !st.checkpoints.contains_key(v) {
                    let cp = req.start_positions.get(i).cloned().unwrap_or_else(|| MsgPosition {
                        pchannel: fv_common::channel::pchannel_of(v).to_string(),
                        seq: 0,
                        timestamp: 0,
                    });
                    ops.push(put_checkpoint(v, &cp));
                    st.checkpoints.insert(v.clone(), cp);
                }
            }
        }
        commit(&self.ctx.meta, ops).await?;
        self.assign_channels(None).await
    }

    /// Gives unassigned channels (and channels of data nodes not in `live`) to the live
    /// data node with the fewest channels.
    pub async fn assign_channels(&self, live: Option<Vec<NodeId>>) -> FvResult<()> {
        let live = match live {
            Some(l) => l,
            None => fv_runtime::session::list(&self.ctx.meta, fv_runtime::rpc::Role::DataNode)
                .await?
                .iter()
                .map(|s| s.node_id)
                .collect(),
        };
        let live_set: HashSet<NodeId> = live.iter().copied().collect();
        let mut ops = Vec::new();
        let mut deliveries = Vec::new();
        {
            let mut st = self.state.lock();
            let mut load: BTreeMap<NodeId, usize> = live.iter().map(|n| (*n, 0)).collect();
            for w in st.watches.values() {
                if let Some(c) = load.get_mut(&w.node_id) {
                    *c += 1;
                }
            }
            for w in st.watches.values_mut() {
                if live_set.contains(&w.node_id) {
                    continue;
                }
                let Some((&node, _)) = load.iter().min_by_key(|(n, c)| (**c, **n)) else {
                    if w.node_id != 0 {
                        w.node_id = 0;
                        ops.push(put_watch(w));
                    }
                    continue;
                };
                *load.get_mut(&node).expect("node is in the load map") += 1;
                tracing::info!(vchannel = %w.vchannel, node, "assigning channel to data node");
                w.node_id = node;
                ops.push(put_watch(w));
                deliveries.push((w.vchannel.clone(), node));
            }
        }
        commit(&self.ctx.meta, ops).await?;
        for (vchannel, node) in deliveries {
            self.deliver_watch(vchannel, node);
        }
        Ok(())
    }

    /// Sends the watch of `vchannel` to `node` in the background.
    pub fn deliver_watch(&self, vchannel: String, node: NodeId) {
        let Some((channel, collection_id, segments)) = ({
            let st = self.state.lock();
            st.vchannel_info(&vchannel, &[]).map(|info| {
                let c = info.collection_id;
                (info, c, st.channel_segments(&vchannel))
            })
        }) else {
            return;
        };
        let rpc = self.ctx.rpc.clone();
        tokio::spawn(async move {
            let desc = rpc
                .rootcoord()
                .describe_collection(&DescribeCollectionRequest { collection_id, ..Default::default() })
                .retry(DELIVERY_DEADLINE)
                .await;
            let collection = match desc {
                Ok(d) => d.collection,
                Err(e) => {
                    tracing::debug!(error = %e, collection_id, "collection gone; not delivering its channel");
                    return;
                }
            };
            let req = WatchDmChannelRequest { channel: Some(channel), collection, segments };
            if let Err(e) = rpc.datanode(node).watch_dm_channel(&req).retry(DELIVERY_DEADLINE).await {
                tracing::warn!(error = %e, %vchannel, node, "channel watch not delivered; will be repeated");
            }
        });
    }

    pub async fn drop_data(&self, req: DropCollectionDataRequest) -> FvResult<()> {
        let whole = req.partition_ids.is_empty();
        let mut ops = Vec::new();
        let mut unwatch = Vec::new();
        let mut discard: BTreeMap<String, Vec<SegmentId>> = BTreeMap::new();
        {
            let mut st = self.state.lock();
            let hit = |s: &SegmentInfo| {
                s.collection_id == req.collection_id && (whole || req.partition_ids.contains(&s.partition_id))
            };
            for s in st.segments.values_mut().filter(|s| hit(s)) {
                if !is(s, SegmentState::Dropped) {
                    if is_unflushed(s) {
                        discard.entry(s.vchannel.clone()).or_default().push(s.id);
                    }
                    s.state = SegmentState::Dropped as i32;
                    ops.push(put_segment(s));
                }
            }
            st.growing.retain(|(c, p, _), _| !(*c == req.collection_id && (whole || req.partition_ids.contains(p))));
            if whole {
                let channels = st.collection_vchannels(req.collection_id);
                for v in channels {
                    if let Some(w) = st.watches.remove(&v) {
                        unwatch.push((v.clone(), w.node_id));
                    }
                    st.checkpoints.remove(&v);
                    ops.push(TxnOp::delete(catalog::watch_key(&v)));
                    ops.push(TxnOp::delete(catalog::checkpoint_key(&v)));
                }
            }
        }
        commit(&self.ctx.meta, ops).await?;
        // Data nodes still buffering rows of dropped segments discard them (their
        // checkpoints would otherwise never pass those rows).
        for (vchannel, ids) in discard.into_iter().filter(|_| !whole) {
            let node = self.state.lock().watches.get(&vchannel).map(|w| w.node_id).unwrap_or(0);
            if node == 0 {
                continue;
            }
            let rpc = self.ctx.rpc.clone();
            tokio::spawn(async move {
                let req = FlushSegmentsRequest { vchannel, dropped_segment_ids: ids, ..Default::default() };
                let _ = rpc.datanode(node).flush_segments(&req).retry(DELIVERY_DEADLINE).await;
            });
        }
        for (vchannel, node) in unwatch.into_iter().filter(|(_, n)| *n != 0) {
            let rpc = self.ctx.rpc.clone();
            tokio::spawn(async move {
                let req = UnwatchDmChannelRequest { vchannel };
                let _ = rpc.datanode(node).unwatch_dm_channel(&req).retry(DELIVERY_DEADLINE).await;
            });
        }
        Ok(())
    }

    /// Seals idle segments and repeats flush requests for segments still sealed.
    pub async fn seal_idle(&self, repeat_sealed_older_than: Duration) -> FvResult<()> {
        let idle = Duration::from_millis(self.ctx.config.datacoord.segment_idle_seal_ms);
        let now = Instant::now();
        let idle_ids: Vec<SegmentId> =
            self.state.lock().growing.values().filter(|g| alloc::is_idle(g, now, idle)).map(|g| g.segment_id).collect();
        if !idle_ids.is_empty() {
            self.seal(&idle_ids, false).await?;
        }
        let horizon = fv_common::ts::wall_clock_ts_minus(repeat_sealed_older_than.as_millis() as u64);
        let stale: Vec<(String, SegmentId, Timestamp)> = self
            .state
            .lock()
            .segments
            .values()
            .filter(|s| is(s, SegmentState::Sealed) && s.seal_ts < horizon)
            .map(|s| (s.vchannel.clone(), s.id, s.seal_ts))
            .collect();
        for (vchannel, id, ts) in stale {
            self.notify_flush(vchannel, vec![id], ts, false);
        }
        Ok(())
    }

    /// Removes the files and records of dropped segments.
    pub async fn collect_garbage(&self) -> FvResult<()> {
        let dropped: Vec<SegmentInfo> =
            self.state.lock().segments.values().filter(|s| is(s, SegmentState::Dropped)).cloned().collect();
        for s in dropped {
            for prefix in fv_storage::paths::segment_prefixes(s.collection_id, s.partition_id, s.id) {
                if let Err(e) = self.ctx.objects.delete_prefix(&prefix).await {
                    tracing::warn!(error = %e, segment = s.id, "cannot delete segment files yet");
                    continue;
                }
            }
            commit(&self.ctx.meta, vec![TxnOp::delete(catalog::segment_key(s.collection_id, s.id))]).await?;
            self.state.lock().segments.remove(&s.id);
            tracing::debug!(segment = s.id, "dropped segment collected");
        }
        Ok(())
    }

    fn delete_files(&self, files: Vec<String>) {
        let objects = self.ctx.objects.clone();
        tokio::spawn(async move {
            for f in files {
                let _ = objects.delete(&f).await;
            }
        });
    }

    /// Startup: growing segments of a previous run are sealed (their allocation counts
    /// were not persisted); their data nodes flush them after replaying the log.
    pub async fn seal_recovered(&self) -> FvResult<()> {
        let growing: Vec<SegmentId> =
            self.state.lock().segments.values().filter(|s| is(s, SegmentState::Growing)).map(|s| s.id).collect();
        if !growing.is_empty() {
            self.seal(&growing, false).await?;
        }
        Ok(())
    }
}

fn files_of(req: &SaveBinlogPathsRequest) -> Vec<String> {
    req.field_binlogs
        .iter()
        .flat_map(|f| f.binlogs.iter())
        .chain(req.statslogs.iter())
        .chain(req.deltalogs.iter())
        .map(|b| b.log_path.clone())
        .collect()
}

fn advance_checkpoint(st: &mut State, vchannel: &str, cp: &MsgPosition) -> bool {
    match st.checkpoints.get(vchannel) {
        Some(old) if old.seq >= cp.seq => false,
        _ => {
            st.checkpoints.insert(vchannel.to_string(), cp.clone());
            true
        }
    }
}

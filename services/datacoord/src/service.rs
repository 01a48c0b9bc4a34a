//! Starting datacoord: recover state, serve requests, run the background loop.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fv_common::{FvError, FvResult, NodeId};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::datacoord::{self as pb, DataCoordHandler, data_coord_routes};
use fv_proto::fv::datanode::WatchedChannelsRequest;
use fv_proto::fv::rootcoord::ShowCollectionsRequest;
use fv_runtime::actor::ExclusiveHandle;
use fv_runtime::rpc::Role;
use fv_runtime::{Clients, RoleContext, Target, session};
use parking_lot::Mutex;

use crate::actor::Core;
use crate::catalog;
use crate::state::State;

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let mut state = State::default();
    for s in catalog::load_segments(&ctx.meta).await? {
        state.segments.insert(s.id, s);
    }
    for (v, p) in catalog::load_checkpoints(&ctx.meta).await? {
        state.checkpoints.insert(v, p);
    }
    for w in catalog::load_watches(&ctx.meta).await? {
        state.watches.insert(w.vchannel.clone(), w);
    }
    tracing::info!(segments = state.segments.len(), channels = state.watches.len(), "datacoord state recovered");
    let core = Arc::new(Core { ctx: ctx.clone(), state: Mutex::new(state) });
    let exclusive = ExclusiveHandle::start(core.clone());
    let routes = data_coord_routes(Arc::new(DataCoordService { core: core.clone(), exclusive: exclusive.clone() }));
    ctx.server.serve(Target::Coord, routes).await?;
    session::register(
        ctx.meta.clone(),
        Role::DataCoord,
        ctx.node_id,
        String::new(),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;
    tokio::spawn(background(ctx.clone(), core, exclusive));
    tracing::info!(node_id = ctx.node_id, "datacoord started");
    Ok(())
}

/// datacoord's requests: changes run one at a time on the actor, reads go to the state.
struct DataCoordService {
    core: Arc<Core>,
    exclusive: ExclusiveHandle<Core>,
}

impl DataCoordHandler for DataCoordService {
    type Error = FvError;

    async fn assign_segment(&self, req: pb::AssignSegmentRequest) -> FvResult<pb::AssignSegmentResponse> {
        self.exclusive.run("assign", move |c| async move { c.assign(req).await }).await
    }

    async fn flush(&self, req: pb::FlushRequest) -> FvResult<pb::FlushResponse> {
        self.exclusive.run("flush", move |c| async move { c.flush(req).await }).await
    }

    async fn get_flush_state(&self, req: pb::GetFlushStateRequest) -> FvResult<pb::GetFlushStateResponse> {
        Ok(pb::GetFlushStateResponse {
            status: Some(Default::default()),
            flushed: self.core.state.lock().all_flushed(&req.segment_ids),
        })
    }

    async fn save_binlog_paths(&self, req: pb::SaveBinlogPathsRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("save_binlogs", move |c| async move { c.save_binlogs(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn update_channel_checkpoint(&self, req: pb::UpdateChannelCheckpointRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("update_checkpoint", move |c| async move { c.update_checkpoint(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn report_data_node_stats(&self, req: pb::ReportDataNodeStatsRequest) -> FvResult<StatusResponse> {
        let mut st = self.core.state.lock();
        for s in req.segments {
            if st.segments.get(&s.segment_id).is_some_and(crate::state::is_unflushed) {
                st.buffered_rows.insert(s.segment_id, s.num_rows);
            }
        }
        Ok(StatusResponse::ok())
    }

    async fn get_recovery_info(&self, req: pb::GetRecoveryInfoRequest) -> FvResult<pb::GetRecoveryInfoResponse> {
        Ok(self.core.state.lock().recovery_info(req.collection_id, &req.partition_ids))
    }

    async fn get_segment_info(&self, req: pb::GetSegmentInfoRequest) -> FvResult<pb::GetSegmentInfoResponse> {
        let st = self.core.state.lock();
        let mut segments: Vec<_> = if req.segment_ids.is_empty() {
            st.segments
                .values()
                .filter(|s| s.collection_id == req.collection_id)
                .filter(|s| req.include_dropped || !crate::state::is(s, fv_proto::common::SegmentState::Dropped))
                .cloned()
                .collect()
        } else {
            req.segment_ids.iter().filter_map(|id| st.segments.get(id).cloned()).collect()
        };
        segments.sort_by_key(|s| s.id);
        Ok(pb::GetSegmentInfoResponse { status: Some(Default::default()), segments })
    }

    async fn get_collection_statistics(
        &self,
        req: pb::GetCollectionStatisticsRequest,
    ) -> FvResult<pb::GetCollectionStatisticsResponse> {
        Ok(pb::GetCollectionStatisticsResponse {
            status: Some(Default::default()),
            row_count: self.core.state.lock().row_count(req.collection_id, &req.partition_ids),
        })
    }

    async fn watch_channels(&self, req: pb::WatchChannelsRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("watch_channels", move |c| async move { c.watch_channels(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn drop_collection_data(&self, req: pb::DropCollectionDataRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("drop_data", move |c| async move { c.drop_data(req).await }).await?;
        Ok(StatusResponse::ok())
    }
}

/// Periodic work: sealing, channel assignment and re-delivery, reconciliation with
/// rootcoord, garbage collection and log truncation.
async fn background(ctx: RoleContext, core: Arc<Core>, exclusive: ExclusiveHandle<Core>) {
    let cfg = ctx.config.datacoord.clone();
    if let Err(e) = exclusive.run("seal_recovered", |c| async move { c.seal_recovered().await }).await {
        tracing::warn!(error = %e, "could not seal segments of the previous run yet");
    }
    let mut last_reconcile = Instant::now() - Duration::from_secs(60);
    let mut last_gc = Instant::now();
    let mut last_truncate = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ctx.shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        let run = async {
            exclusive.run("seal_idle", |c| async move { c.seal_idle(Duration::from_secs(10)).await }).await?;
            let live: Vec<NodeId> = session::list(&ctx.meta, Role::DataNode).await?.iter().map(|s| s.node_id).collect();
            let nodes = live.clone();
            exclusive.run("assign_channels", move |c| async move { c.assign_channels(Some(nodes)).await }).await?;
            redeliver(&ctx, &core, &live).await;
            if last_reconcile.elapsed() >= Duration::from_secs(5) {
                last_reconcile = Instant::now();
                reconcile_with_rootcoord(&ctx, &core, &exclusive).await?;
            }
            if last_gc.elapsed() >= Duration::from_millis(cfg.gc_interval_ms) {
                last_gc = Instant::now();
                exclusive.run("collect_garbage", |c| async move { c.collect_garbage().await }).await?;
            }
            if last_truncate.elapsed() >= Duration::from_millis(cfg.log_truncate_interval_ms) {
                last_truncate = Instant::now();
                truncate_log(&ctx, &core).await;
            }
            FvResult::Ok(())
        };
        if let Err(e) = run.await {
            tracing::debug!(error = %e, "datacoord background round incomplete");
        }
    }
}

/// Re-sends watches a data node does not have (it restarted, or a delivery was lost).
async fn redeliver(ctx: &RoleContext, core: &Core, live: &[NodeId]) {
    for &node in live {
        let Ok(watched) =
            ctx.rpc.datanode(node).watched_channels(&WatchedChannelsRequest {}).timeout(Duration::from_secs(2)).await
        else {
            continue;
        };
        let have: HashSet<String> = watched.vchannels.into_iter().collect();
        let missing: Vec<String> = core
            .state
            .lock()
            .watches
            .values()
            .filter(|w| w.node_id == node && !have.contains(&w.vchannel))
            .map(|w| w.vchannel.clone())
            .collect();
        for v in missing {
            core.deliver_watch(v, node);
        }
    }
}

/// Watches the channels of collections rootcoord knows but datacoord does not (their
/// WatchChannels call was lost).
async fn reconcile_with_rootcoord(ctx: &RoleContext, core: &Core, exclusive: &ExclusiveHandle<Core>) -> FvResult<()> {
    let list = ctx
        .rpc
        .rootcoord()
        .show_collections(&ShowCollectionsRequest { db_name: String::new() })
        .timeout(Duration::from_secs(5))
        .await?;
    for info in list.collections {
        let missing = {
            let st = core.state.lock();
            info.vchannels.iter().any(|v| !st.watches.contains_key(v))
        };
        if missing {
            let req = pb::WatchChannelsRequest {
                collection_id: info.id,
                vchannels: info.vchannels.clone(),
                start_positions: info.start_positions.clone(),
            };
            exclusive.run("watch_channels", move |c| async move { c.watch_channels(req).await }).await?;
        }
    }
    Ok(())
}

/// Lets the log discard what every vchannel of a pchannel has persisted.
async fn truncate_log(ctx: &RoleContext, core: &Core) {
    let mut min_by_pchannel: BTreeMap<String, u64> = BTreeMap::new();
    {
        let st = core.state.lock();
        for v in st.watches.keys() {
            let p = fv_common::channel::pchannel_of(v).to_string();
            let seq = st.checkpoints.get(v).map(|c| c.seq).unwrap_or(0);
            let e = min_by_pchannel.entry(p).or_insert(u64::MAX);
            *e = (*e).min(seq);
        }
    }
    for (p, seq) in min_by_pchannel {
        if seq > 0
            && seq != u64::MAX
            && let Err(e) = ctx.broker.truncate(&p, seq + 1).await
        {
            tracing::debug!(error = %e, pchannel = %p, "log truncation skipped");
        }
    }
}

//! Starting datacoord: recover state, serve requests, run the background loop.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use fv_common::{FvResult, NodeId};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::datacoord as pb;
use fv_proto::fv::datanode::WatchedChannelsRequest;
use fv_proto::fv::rootcoord::ShowCollectionsRequest;
use fv_runtime::actor::mailbox_error;
use fv_runtime::rpc::Role;
use fv_runtime::rpcs::{datacoord as rpc, datanode, rootcoord};
use fv_runtime::{RoleContext, Target, session};
use parking_lot::Mutex;

use crate::actor::*;
use crate::catalog;
use crate::state::State;

fn ok() -> StatusResponse {
    StatusResponse { status: Some(Default::default()) }
}

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
    let actor = DataCoordActor { core: core.clone() }.start();
    serve(&ctx, core.clone(), actor.clone()).await?;
    session::register(
        ctx.meta.clone(),
        Role::DataCoord,
        ctx.node_id,
        String::new(),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;
    tokio::spawn(background(ctx.clone(), core, actor));
    tracing::info!(node_id = ctx.node_id, "datacoord started");
    Ok(())
}

async fn serve(ctx: &RoleContext, core: Arc<Core>, actor: Addr<DataCoordActor>) -> FvResult<()> {
    let s = &ctx.server;
    macro_rules! via_actor {
        ($rpc:ty, $msg:ident, |$r:ident| $resp:expr) => {{
            let a = actor.clone();
            s.serve::<$rpc, _, _>(Target::Coord, move |req| {
                let a = a.clone();
                async move {
                    let $r = a.send($msg(req)).await.map_err(mailbox_error)??;
                    Ok($resp)
                }
            })
            .await?;
        }};
    }
    via_actor!(rpc::AssignSegment, Assign, |r| r);
    via_actor!(rpc::Flush, Flush, |r| r);
    via_actor!(rpc::SaveBinlogPaths, SaveBinlogs, |_r| ok());
    via_actor!(rpc::UpdateChannelCheckpoint, UpdateCheckpoint, |_r| ok());
    via_actor!(rpc::WatchChannels, WatchChannels, |_r| ok());
    via_actor!(rpc::DropCollectionData, DropData, |_r| ok());

    let c = core.clone();
    s.serve::<rpc::GetFlushState, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move {
            Ok(pb::GetFlushStateResponse {
                status: Some(Default::default()),
                flushed: c.state.lock().all_flushed(&req.segment_ids),
            })
        }
    })
    .await?;
    let c = core.clone();
    s.serve::<rpc::ReportDataNodeStats, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move {
            let mut st = c.state.lock();
            for s in req.segments {
                if st.segments.get(&s.segment_id).is_some_and(crate::state::is_unflushed) {
                    st.buffered_rows.insert(s.segment_id, s.num_rows);
                }
            }
            Ok(ok())
        }
    })
    .await?;
    let c = core.clone();
    s.serve::<rpc::GetRecoveryInfo, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move { Ok(c.state.lock().recovery_info(req.collection_id, &req.partition_ids)) }
    })
    .await?;
    let c = core.clone();
    s.serve::<rpc::GetSegmentInfo, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move {
            let st = c.state.lock();
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
    })
    .await?;
    let c = core.clone();
    s.serve::<rpc::GetCollectionStatistics, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move {
            Ok(pb::GetCollectionStatisticsResponse {
                status: Some(Default::default()),
                row_count: c.state.lock().row_count(req.collection_id, &req.partition_ids),
            })
        }
    })
    .await?;
    Ok(())
}

/// Periodic work: sealing, channel assignment and re-delivery, reconciliation with
/// rootcoord, garbage collection and log truncation.
async fn background(ctx: RoleContext, core: Arc<Core>, actor: Addr<DataCoordActor>) {
    let cfg = ctx.config.datacoord.clone();
    if let Err(e) = actor.send(SealRecovered(())).await.map_err(mailbox_error).and_then(|r| r) {
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
            actor.send(SealIdle(Duration::from_secs(10))).await.map_err(mailbox_error)??;
            let live: Vec<NodeId> = session::list(&ctx.meta, Role::DataNode).await?.iter().map(|s| s.node_id).collect();
            actor.send(AssignChannels(live.clone())).await.map_err(mailbox_error)??;
            redeliver(&ctx, &core, &live).await;
            if last_reconcile.elapsed() >= Duration::from_secs(5) {
                last_reconcile = Instant::now();
                reconcile_with_rootcoord(&ctx, &core, &actor).await?;
            }
            if last_gc.elapsed() >= Duration::from_millis(cfg.gc_interval_ms) {
                last_gc = Instant::now();
                actor.send(CollectGarbage(())).await.map_err(mailbox_error)??;
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
        let Ok(watched) = ctx
            .rpc
            .call_with_timeout::<datanode::WatchedChannels>(
                Target::Node(node),
                &WatchedChannelsRequest {},
                Duration::from_secs(2),
            )
            .await
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
async fn reconcile_with_rootcoord(ctx: &RoleContext, core: &Core, actor: &Addr<DataCoordActor>) -> FvResult<()> {
    let list = ctx
        .rpc
        .call_with_timeout::<rootcoord::ShowCollections>(
            Target::Coord,
            &ShowCollectionsRequest { db_name: String::new() },
            Duration::from_secs(5),
        )
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
            actor.send(WatchChannels(req)).await.map_err(mailbox_error)??;
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

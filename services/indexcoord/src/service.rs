//! Starting indexcoord.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use fv_common::FvResult;
use fv_proto::fv::common::StatusResponse;
use fv_runtime::actor::mailbox_error;
use fv_runtime::rpc::Role;
use fv_runtime::rpcs::indexcoord as rpc;
use fv_runtime::{RoleContext, Target, session};
use parking_lot::RwLock;

use crate::actor::*;
use crate::catalog;

pub const SEGMENT_EVENT_SUBJECT: &str = "fv.evt.segment_flushed";

fn ok() -> StatusResponse {
    StatusResponse { status: Some(Default::default()) }
}

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let (indexes, tasks) = catalog::load(&ctx.meta).await?;
    let state = State {
        indexes: indexes.into_iter().map(|i| (i.index_id, i)).collect(),
        tasks: tasks.into_iter().map(|t| (t.build_id, t)).collect(),
    };
    let core = Arc::new(Core { ctx: ctx.clone(), state: RwLock::new(state) });
    let actor = IndexCoordActor { core: core.clone() }.start();
    let s = &ctx.server;
    macro_rules! control {
        ($rpc:ty, $msg:ident) => {{
            let a = actor.clone();
            s.serve::<$rpc, _, _>(Target::Coord, move |req| {
                let a = a.clone();
                async move {
                    a.send($msg(req)).await.map_err(mailbox_error)??;
                    a.do_send(Schedule(()));
                    Ok(ok())
                }
            })
            .await?;
        }};
    }
    control!(rpc::CreateIndex, Create);
    control!(rpc::DropIndex, Drop);
    control!(rpc::DropCollectionIndexes, DropAll);
    control!(rpc::ReportBuildResult, Report);
    control!(rpc::ReportCorruptIndex, Corrupt);
    let c = core.clone();
    s.serve::<rpc::DescribeIndex, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move { c.describe(req.collection_id, &req.index_name) }
    })
    .await?;
    let c = core.clone();
    s.serve::<rpc::GetSegmentIndexes, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move { Ok(c.segment_indexes(req.collection_id, &req.segment_ids)) }
    })
    .await?;
    session::register(
        ctx.meta.clone(),
        Role::IndexCoord,
        ctx.node_id,
        String::new(),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;
    let mut events = ctx
        .broker
        .listen(SEGMENT_EVENT_SUBJECT)
        .await
        .map_err(|e| fv_common::FvError::unavailable(format!("cannot listen for segment events: {e}")))?;
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticker.tick() => {}
                Some(_) = events.next() => {}
            }
            if let Err(e) = actor.send(Schedule(())).await.map_err(mailbox_error).and_then(|r| r) {
                tracing::debug!(error = %e, "index scheduling round failed");
            }
        }
    });
    tracing::info!(node_id = ctx.node_id, "indexcoord started");
    Ok(())
}

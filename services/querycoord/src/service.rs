//! Starting querycoord: recover load intents, serve requests, reconcile periodically
//! and whenever a segment is flushed.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use fv_common::FvResult;
use fv_proto::fv::common::StatusResponse;
use fv_runtime::actor::mailbox_error;
use fv_runtime::rpc::Role;
use fv_runtime::rpcs::querycoord as rpc;
use fv_runtime::{RoleContext, Target, session};

use crate::actor::*;

/// Published by datacoord when a segment is flushed.
pub const SEGMENT_EVENT_SUBJECT: &str = "fv.evt.segment_flushed";

fn ok() -> StatusResponse {
    StatusResponse { status: Some(Default::default()) }
}

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let core = Arc::new(Core::recover(ctx.clone()).await?);
    let actor = QueryCoordActor { core: core.clone() }.start();
    let s = &ctx.server;
    macro_rules! control {
        ($rpc:ty, $msg:ident) => {{
            let a = actor.clone();
            s.serve::<$rpc, _, _>(Target::Coord, move |req| {
                let a = a.clone();
                async move {
                    a.send($msg(req)).await.map_err(mailbox_error)??;
                    a.do_send(Reconcile(()));
                    Ok(ok())
                }
            })
            .await?;
        }};
    }
    control!(rpc::LoadCollection, Load);
    control!(rpc::LoadPartitions, LoadParts);
    control!(rpc::ReleaseCollection, Release);
    control!(rpc::ReleasePartitions, ReleaseParts);
    let c = core.clone();
    s.serve::<rpc::GetLoadState, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move { Ok(c.load_state(req.collection_id, &req.partition_ids)) }
    })
    .await?;
    let c = core.clone();
    s.serve::<rpc::GetShardLeaders, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move { c.shard_leaders(req.collection_id) }
    })
    .await?;
    // Read-only and possibly slow (asks every query node): kept off the actor so it
    // never waits behind, or delays, a reconciliation round.
    let c = core.clone();
    s.serve::<rpc::GetDistribution, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move { c.distribution(req.collection_id).await }
    })
    .await?;
    session::register(
        ctx.meta.clone(),
        Role::QueryCoord,
        ctx.node_id,
        String::new(),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;

    // Reconcile on every flushed segment (fast handoff) and periodically.
    let mut events = ctx
        .broker
        .listen(SEGMENT_EVENT_SUBJECT)
        .await
        .map_err(|e| fv_common::FvError::unavailable(format!("cannot listen for segment events: {e}")))?;
    let period = Duration::from_millis(ctx.config.querycoord.check_interval_ms);
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticker.tick() => {}
                Some(_) = events.next() => {}
            }
            if !actor.connected() {
                return;
            }
            if let Err(e) = actor.send(Reconcile(())).await.map_err(mailbox_error).and_then(|r| r) {
                tracing::debug!(error = %e, "reconciliation round failed");
            }
        }
    });
    tracing::info!(node_id = ctx.node_id, "querycoord started");
    Ok(())
}

//! Starting querycoord: recover load intents, serve requests, reconcile periodically
//! and whenever a segment is flushed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use fv_common::{FvError, FvResult};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::querycoord::{
    GetDistributionRequest, GetDistributionResponse, GetLoadStateRequest, GetLoadStateResponse, GetShardLeadersRequest,
    GetShardLeadersResponse, LoadCollectionRequest, LoadPartitionsRequest, QueryCoordHandler, ReleaseCollectionRequest,
    ReleasePartitionsRequest, query_coord_routes,
};
use fv_runtime::actor::ExclusiveHandle;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, Target, session};

use crate::actor::Core;

/// Published by datacoord when a segment is flushed.
pub const SEGMENT_EVENT_SUBJECT: &str = "fv.evt.segment_flushed";

/// querycoord's requests: load and release run one at a time on the actor, each
/// followed by a reconciliation round; reads go to the state.
struct QueryCoordService {
    core: Arc<Core>,
    exclusive: ExclusiveHandle<Core>,
}

impl QueryCoordService {
    /// Runs a change, then queues a reconciliation round so it takes effect
    /// without waiting for the next period.
    async fn change<F, Fut>(&self, name: &'static str, f: F) -> FvResult<StatusResponse>
    where
        F: FnOnce(Arc<Core>) -> Fut + Send + 'static,
        Fut: Future<Output = FvResult<()>> + 'static,
    {
        self.exclusive.run_then(name, f, "reconcile", |c| async move { c.reconcile().await }).await?;
        Ok(StatusResponse::ok())
    }
}

impl QueryCoordHandler for QueryCoordService {
    type Error = FvError;

    async fn load_collection(&self, req: LoadCollectionRequest) -> FvResult<StatusResponse> {
        self.change("load_collection", move |c| async move { c.load_collection(req).await }).await
    }

    async fn load_partitions(&self, req: LoadPartitionsRequest) -> FvResult<StatusResponse> {
        self.change("load_partitions", move |c| async move { c.load_partitions(req).await }).await
    }

    async fn release_collection(&self, req: ReleaseCollectionRequest) -> FvResult<StatusResponse> {
        self.change("release_collection", move |c| async move { c.release_collection(req).await }).await
    }

    async fn release_partitions(&self, req: ReleasePartitionsRequest) -> FvResult<StatusResponse> {
        self.change("release_partitions", move |c| async move { c.release_partitions(req).await }).await
    }

    async fn get_load_state(&self, req: GetLoadStateRequest) -> FvResult<GetLoadStateResponse> {
        Ok(self.core.load_state(req.collection_id, &req.partition_ids))
    }

    async fn get_shard_leaders(&self, req: GetShardLeadersRequest) -> FvResult<GetShardLeadersResponse> {
        self.core.shard_leaders(req.collection_id)
    }

    /// Read-only and possibly slow (asks every query node): kept off the actor so it
    /// never waits behind, or delays, a reconciliation round.
    async fn get_distribution(&self, req: GetDistributionRequest) -> FvResult<GetDistributionResponse> {
        self.core.distribution(req.collection_id).await
    }
}

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let core = Arc::new(Core::recover(ctx.clone()).await?);
    let exclusive = ExclusiveHandle::start(core.clone());
    // Moves a crash interrupted run on before the first round plans anew (they need the
    // other roles; a failure leaves them to the rounds).
    exclusive.spawn("resume_procedures", |c| async move { c.resume_procedures().await });
    let routes = query_coord_routes(Arc::new(QueryCoordService { core, exclusive: exclusive.clone() }));
    ctx.server.serve(Target::Coord, routes).await?;
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
            if !exclusive.connected() {
                return;
            }
            if let Err(e) = exclusive.run("reconcile", |c| async move { c.reconcile().await }).await {
                tracing::debug!(error = %e, "reconciliation round failed");
            }
        }
    });
    tracing::info!(node_id = ctx.node_id, "querycoord started");
    Ok(())
}

//! Starting indexcoord and serving its requests.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use fv_common::{FvError, FvResult};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::index::{
    CreateIndexRequest, DescribeIndexRequest, DescribeIndexResponse, DropCollectionIndexesRequest, DropIndexRequest,
    GetSegmentIndexesRequest, GetSegmentIndexesResponse, IndexCoordHandler, ReportBuildResultRequest,
    ReportCorruptIndexRequest, index_coord_routes,
};
use fv_runtime::actor::ExclusiveHandle;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, Target, session};
use parking_lot::RwLock;

use crate::actor::{Core, State};
use crate::catalog;

pub const SEGMENT_EVENT_SUBJECT: &str = "fv.evt.segment_flushed";

/// indexcoord's requests: meta changes run one at a time on the actor, each followed by
/// a scheduling round; reads go to the state.
struct IndexCoordService {
    core: Arc<Core>,
    exclusive: ExclusiveHandle<Core>,
}

impl IndexCoordService {
    /// Runs a change, then queues a scheduling round so new or failed tasks are
    /// issued without waiting for the next tick.
    async fn change<F, Fut>(&self, name: &'static str, f: F) -> FvResult<StatusResponse>
    where
        F: FnOnce(Arc<Core>) -> Fut + Send + 'static,
        Fut: Future<Output = FvResult<()>> + 'static,
    {
        self.exclusive.run_then(name, f, "schedule", |c| async move { c.schedule().await }).await?;
        Ok(StatusResponse::ok())
    }
}

impl IndexCoordHandler for IndexCoordService {
    type Error = FvError;

    async fn create_index(&self, req: CreateIndexRequest) -> FvResult<StatusResponse> {
        self.change("create_index", move |c| async move { c.create_index(req).await }).await
    }

    async fn describe_index(&self, req: DescribeIndexRequest) -> FvResult<DescribeIndexResponse> {
        self.core.describe(req.collection_id, &req.index_name)
    }

    async fn drop_index(&self, req: DropIndexRequest) -> FvResult<StatusResponse> {
        self.change("drop_index", move |c| async move { c.drop_index(req).await }).await
    }

    async fn drop_collection_indexes(&self, req: DropCollectionIndexesRequest) -> FvResult<StatusResponse> {
        self.change("drop_collection_indexes", move |c| async move { c.drop_collection_indexes(req).await }).await
    }

    async fn get_segment_indexes(&self, req: GetSegmentIndexesRequest) -> FvResult<GetSegmentIndexesResponse> {
        Ok(self.core.segment_indexes(req.collection_id, &req.segment_ids))
    }

    async fn report_build_result(&self, req: ReportBuildResultRequest) -> FvResult<StatusResponse> {
        self.change("report", move |c| async move { c.report(req).await }).await
    }

    async fn report_corrupt_index(&self, req: ReportCorruptIndexRequest) -> FvResult<StatusResponse> {
        self.change("report_corrupt", move |c| async move { c.report_corrupt(req).await }).await
    }
}

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let (indexes, tasks) = catalog::load(&ctx.meta).await?;
    let state = State {
        indexes: indexes.into_iter().map(|i| (i.index_id, i)).collect(),
        tasks: tasks.into_iter().map(|t| (t.build_id, t)).collect(),
    };
    let core = Arc::new(Core { ctx: ctx.clone(), state: RwLock::new(state) });
    let exclusive = ExclusiveHandle::start(core.clone());
    let routes = index_coord_routes(Arc::new(IndexCoordService { core, exclusive: exclusive.clone() }));
    ctx.server.serve(Target::Coord, routes).await?;
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
            if let Err(e) = exclusive.run("schedule", |c| async move { c.schedule().await }).await {
                tracing::debug!(error = %e, "index scheduling round failed");
            }
        }
    });
    tracing::info!(node_id = ctx.node_id, "indexcoord started");
    Ok(())
}

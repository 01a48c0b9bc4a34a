//! Starting an index node and serving its requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fv_common::{FvError, FvResult};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::index::{
    BuildIndexRequest, GetJobStatsRequest, GetJobStatsResponse, IndexNodeHandler, index_node_routes,
};
use fv_runtime::actor::ExclusiveHandle;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, Target, session};

use crate::actor::Core;

struct IndexNodeService {
    core: Arc<Core>,
    exclusive: ExclusiveHandle<Core>,
}

impl IndexNodeHandler for IndexNodeService {
    type Error = FvError;

    async fn build_index(&self, req: BuildIndexRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("accept", move |c| async move { c.accept(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn get_job_stats(&self, _req: GetJobStatsRequest) -> FvResult<GetJobStatsResponse> {
        Ok(GetJobStatsResponse {
            status: Some(Default::default()),
            running: self.core.running.load(Ordering::Acquire),
            slots: self.core.slots(),
        })
    }
}

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let core = Arc::new(Core { ctx: ctx.clone(), running: Arc::new(AtomicI64::new(0)) });
    let exclusive = ExclusiveHandle::start(core.clone());
    let routes = index_node_routes(Arc::new(IndexNodeService { core, exclusive }));
    ctx.server.serve(Target::Node(ctx.node_id), routes).await?;
    session::register(
        ctx.meta.clone(),
        Role::IndexNode,
        ctx.node_id,
        String::new(),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;
    tracing::info!(node_id = ctx.node_id, "index node started");
    Ok(())
}

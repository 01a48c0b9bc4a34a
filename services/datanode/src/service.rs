//! Starting a data node and serving its requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fv_common::{FvError, FvResult};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::datanode::{
    DataNodeHandler, FlushSegmentsRequest, UnwatchDmChannelRequest, WatchDmChannelRequest, WatchedChannelsRequest,
    WatchedChannelsResponse, data_node_routes,
};
use fv_runtime::actor::ExclusiveHandle;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, Target, session};
use parking_lot::Mutex;

use crate::actor::Core;

/// The data node's requests: pipeline changes run one at a time on the actor.
struct DataNodeService {
    core: Arc<Core>,
    exclusive: ExclusiveHandle<Core>,
}

impl DataNodeHandler for DataNodeService {
    type Error = FvError;

    async fn watch_dm_channel(&self, req: WatchDmChannelRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("watch", move |c| async move { c.watch(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn unwatch_dm_channel(&self, req: UnwatchDmChannelRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("unwatch", move |c| async move { c.unwatch(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn flush_segments(&self, req: FlushSegmentsRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("flush", move |c| async move { c.flush(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn watched_channels(&self, _req: WatchedChannelsRequest) -> FvResult<WatchedChannelsResponse> {
        Ok(WatchedChannelsResponse { status: Some(Default::default()), vchannels: self.core.watched() })
    }
}

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let core = Arc::new(Core { ctx: ctx.clone(), pipelines: Mutex::new(HashMap::new()) });
    let exclusive = ExclusiveHandle::start(core.clone());
    let routes = data_node_routes(Arc::new(DataNodeService { core, exclusive }));
    ctx.server.serve(Target::Node(ctx.node_id), routes).await?;
    session::register(
        ctx.meta.clone(),
        Role::DataNode,
        ctx.node_id,
        String::new(),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;
    tracing::info!(node_id = ctx.node_id, "data node started");
    Ok(())
}

//! Starting a query node and serving its requests.

use std::sync::Arc;
use std::time::Duration;

use fv_common::{FvError, FvResult};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::querynode::{
    ApplyDeleteRequest, ChannelDistribution, GetDataDistributionRequest, GetDataDistributionResponse,
    LoadSegmentsRequest, QueryNodeHandler, QueryRequest, QueryResponse, ReleaseSegmentsRequest, SearchRequest,
    SearchResponse, SegmentDistribution, SyncDistributionRequest, UnsubDmChannelRequest, WatchDmChannelRequest,
    query_node_routes,
};
use fv_runtime::actor::ExclusiveHandle;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, Target, session};

use crate::actor::{Core, apply_delete};
use crate::executor;
use crate::node::NodeState;

/// The query node's requests: control-plane changes run one at a time on the actor;
/// reads and forwarded deletes go straight to the node's state.
struct QueryNodeService {
    node: Arc<NodeState>,
    exclusive: ExclusiveHandle<Core>,
}

impl QueryNodeHandler for QueryNodeService {
    type Error = FvError;

    async fn watch_dm_channel(&self, req: WatchDmChannelRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("watch", move |c| async move { c.watch(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn unsub_dm_channel(&self, req: UnsubDmChannelRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("unsub", move |c| async move { c.unsub(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn load_segments(&self, req: LoadSegmentsRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("load", move |c| async move { c.load(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn release_segments(&self, req: ReleaseSegmentsRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("release", move |c| async move { c.release(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn sync_distribution(&self, req: SyncDistributionRequest) -> FvResult<StatusResponse> {
        self.exclusive.run("sync", move |c| async move { c.sync(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn apply_delete(&self, req: ApplyDeleteRequest) -> FvResult<StatusResponse> {
        apply_delete(&self.node, req)?;
        Ok(StatusResponse::ok())
    }

    async fn search(&self, req: SearchRequest) -> FvResult<SearchResponse> {
        executor::search(self.node.clone(), req).await
    }

    async fn query(&self, req: QueryRequest) -> FvResult<QueryResponse> {
        executor::query(self.node.clone(), req).await
    }

    async fn get_data_distribution(&self, _req: GetDataDistributionRequest) -> FvResult<GetDataDistributionResponse> {
        let n = &self.node;
        let channels = n
            .delegators
            .read()
            .values()
            .map(|d| ChannelDistribution {
                collection_id: d.collection,
                vchannel: d.vchannel.clone(),
                serviceable_ts: d.serviceable_ts(),
                growing_segment_ids: d.growing_ids(),
                sealed_segment_ids: d.sealed_ids(),
                sealed_segment_nodes: d.sealed_nodes().into_iter().collect(),
                standby: d.is_standby(),
            })
            .collect();
        let segments = n
            .worker
            .segments
            .read()
            .values()
            .map(|s| SegmentDistribution {
                collection_id: s.collection,
                segment_id: s.id,
                partition_id: s.partition,
                vchannel: s.vchannel.clone(),
                num_rows: s.num_rows() as i64,
                index_build_id: s.index_build_id(),
            })
            .collect();
        Ok(GetDataDistributionResponse {
            status: Some(Default::default()),
            node_id: n.ctx().node_id,
            channels,
            segments,
        })
    }
}

pub async fn start(ctx: RoleContext) -> FvResult<Arc<NodeState>> {
    let node = NodeState::new(ctx.clone());
    let exclusive = ExclusiveHandle::start(Arc::new(Core { node: node.clone() }));
    let routes = query_node_routes(Arc::new(QueryNodeService { node: node.clone(), exclusive }));
    ctx.server.serve(Target::Node(ctx.node_id), routes).await?;
    session::register(
        ctx.meta.clone(),
        Role::QueryNode,
        ctx.node_id,
        String::new(),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;
    tracing::info!(node_id = ctx.node_id, "query node started");
    Ok(node)
}

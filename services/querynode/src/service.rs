//! Starting a query node.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use fv_common::FvResult;
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::querynode::{ChannelDistribution, GetDataDistributionResponse, SegmentDistribution};
use fv_runtime::actor::mailbox_error;
use fv_runtime::rpc::Role;
use fv_runtime::rpcs::querynode as rpc;
use fv_runtime::{RoleContext, Target, session};

use crate::actor::*;
use crate::executor;
use crate::node::NodeState;

fn ok() -> StatusResponse {
    StatusResponse { status: Some(Default::default()) }
}

pub async fn start(ctx: RoleContext) -> FvResult<Arc<NodeState>> {
    let node = NodeState::new(ctx.clone());
    let actor = QueryNodeActor { core: Arc::new(Core { node: node.clone() }) }.start();
    let me = Target::Node(ctx.node_id);
    let s = &ctx.server;
    macro_rules! control {
        ($rpc:ty, $msg:ident) => {{
            let a = actor.clone();
            s.serve::<$rpc, _, _>(me, move |req| {
                let a = a.clone();
                async move {
                    a.send($msg(req)).await.map_err(mailbox_error)??;
                    Ok(ok())
                }
            })
            .await?;
        }};
    }
    control!(rpc::WatchDmChannel, Watch);
    control!(rpc::UnsubDmChannel, Unsub);
    control!(rpc::LoadSegments, Load);
    control!(rpc::ReleaseSegments, Release);
    control!(rpc::SyncDistribution, Sync);
    let n = node.clone();
    s.serve::<rpc::ApplyDelete, _, _>(me, move |req| {
        let n = n.clone();
        async move {
            apply_delete(&n, req)?;
            Ok(ok())
        }
    })
    .await?;
    let n = node.clone();
    s.serve::<rpc::Search, _, _>(me, move |req| executor::search(n.clone(), req)).await?;
    let n = node.clone();
    s.serve::<rpc::Query, _, _>(me, move |req| executor::query(n.clone(), req)).await?;
    let n = node.clone();
    s.serve::<rpc::GetDataDistribution, _, _>(me, move |_req| {
        let n = n.clone();
        async move {
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
                node_id: n.ctx.node_id,
                channels,
                segments,
            })
        }
    })
    .await?;
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

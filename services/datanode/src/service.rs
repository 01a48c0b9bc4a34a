//! Starting a data node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use fv_common::FvResult;
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::datanode::WatchedChannelsResponse;
use fv_runtime::actor::mailbox_error;
use fv_runtime::rpc::Role;
use fv_runtime::rpcs::datanode as rpc;
use fv_runtime::{RoleContext, Target, session};
use parking_lot::Mutex;

use crate::actor::*;

fn ok() -> StatusResponse {
    StatusResponse { status: Some(Default::default()) }
}

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let core = Arc::new(Core { ctx: ctx.clone(), pipelines: Mutex::new(HashMap::new()) });
    let actor = DataNodeActor { core: core.clone() }.start();
    let me = Target::Node(ctx.node_id);
    let s = &ctx.server;
    let a = actor.clone();
    s.serve::<rpc::WatchDmChannel, _, _>(me, move |req| {
        let a = a.clone();
        async move {
            a.send(Watch(req)).await.map_err(mailbox_error)??;
            Ok(ok())
        }
    })
    .await?;
    let a = actor.clone();
    s.serve::<rpc::UnwatchDmChannel, _, _>(me, move |req| {
        let a = a.clone();
        async move {
            a.send(Unwatch(req)).await.map_err(mailbox_error)??;
            Ok(ok())
        }
    })
    .await?;
    let a = actor.clone();
    s.serve::<rpc::FlushSegments, _, _>(me, move |req| {
        let a = a.clone();
        async move {
            a.send(Flush(req)).await.map_err(mailbox_error)??;
            Ok(ok())
        }
    })
    .await?;
    let c = core.clone();
    s.serve::<rpc::WatchedChannels, _, _>(me, move |_req| {
        let c = c.clone();
        async move { Ok(WatchedChannelsResponse { status: Some(Default::default()), vchannels: c.watched() }) }
    })
    .await?;
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

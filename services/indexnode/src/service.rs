//! Starting an index node.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use fv_common::FvResult;
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::index::GetJobStatsResponse;
use fv_runtime::actor::mailbox_error;
use fv_runtime::rpc::Role;
use fv_runtime::rpcs::indexnode as rpc;
use fv_runtime::{RoleContext, Target, session};

use crate::actor::*;

pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let core = Arc::new(Core { ctx: ctx.clone(), running: Arc::new(AtomicI64::new(0)) });
    let actor = IndexNodeActor { core: core.clone() }.start();
    let me = Target::Node(ctx.node_id);
    let a = actor.clone();
    ctx.server
        .serve::<rpc::BuildIndex, _, _>(me, move |req| {
            let a = a.clone();
            async move {
                a.send(Build(req)).await.map_err(mailbox_error)??;
                Ok(StatusResponse { status: Some(Default::default()) })
            }
        })
        .await?;
    let c = core.clone();
    ctx.server
        .serve::<rpc::GetJobStats, _, _>(me, move |_req| {
            let c = c.clone();
            async move {
                Ok(GetJobStatsResponse {
                    status: Some(Default::default()),
                    running: c.running.load(Ordering::Acquire),
                    slots: c.slots(),
                })
            }
        })
        .await?;
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

//! rootcoord's actors.
//!
//! `TsoActor` owns the timestamp and id allocators; extending a persisted limit is an
//! exclusive (atomic) handler, so nothing is handed out before its limit is durable.
//! `DdlActor` serialises DDL: its handlers are atomic, so one DDL finishes before the
//! next starts, while reads are served from the shared catalog without waiting.

use std::sync::Arc;

use actix::prelude::*;
use fv_common::ts::now_ms;
use fv_common::{FvError, FvResult, Timestamp};
use fv_metastore::MetaKvRef;
use fv_proto::fv::rootcoord::{
    CreateCollectionRequest, CreatePartitionRequest, DropCollectionRequest, DropPartitionRequest,
    RenameCollectionRequest,
};
use tracing::Instrument;

use crate::catalog::{ID_LIMIT_KEY, TSO_LIMIT_KEY, store_u64};
use crate::ddl::Ddl;
use crate::tso::{IdAllocator, Tso};

pub struct TsoActor {
    tso: Tso,
    ids: IdAllocator,
    meta: MetaKvRef,
}

impl TsoActor {
    pub fn new(tso: Tso, ids: IdAllocator, meta: MetaKvRef) -> TsoActor {
        TsoActor { tso, ids, meta }
    }
}

impl Actor for TsoActor {
    type Context = Context<Self>;
}

/// Allocates `count` consecutive timestamps; replies with the first.
#[derive(Message)]
#[rtype(result = "FvResult<Timestamp>")]
pub struct AllocTs(pub u32);

/// Allocates `count` consecutive ids; replies with the first.
#[derive(Message)]
#[rtype(result = "FvResult<i64>")]
pub struct AllocId(pub u32);

impl Handler<AllocTs> for TsoActor {
    type Result = AtomicResponse<Self, FvResult<Timestamp>>;

    fn handle(&mut self, msg: AllocTs, _ctx: &mut Context<Self>) -> Self::Result {
        let count = msg.0.max(1);
        match self.tso.needs_extension(now_ms(), count) {
            None => AtomicResponse::new(Box::pin(fut::ready(Ok(self.tso.alloc(now_ms(), count))))),
            Some(limit) => {
                let meta = self.meta.clone();
                AtomicResponse::new(Box::pin(
                    async move { store_u64(&meta, TSO_LIMIT_KEY, limit).await }.into_actor(self).map(
                        move |res, act, _| {
                            res?;
                            act.tso.set_limit(limit);
                            // The clock may have advanced past the new window meanwhile; the
                            // window is seconds long, so one extension always suffices.
                            Ok(act.tso.alloc(now_ms().min(limit.saturating_sub(2)), count))
                        },
                    ),
                ))
            }
        }
    }
}

impl Handler<AllocId> for TsoActor {
    type Result = AtomicResponse<Self, FvResult<i64>>;

    fn handle(&mut self, msg: AllocId, _ctx: &mut Context<Self>) -> Self::Result {
        let count = msg.0.max(1);
        match self.ids.needs_extension(count) {
            None => AtomicResponse::new(Box::pin(fut::ready(Ok(self.ids.alloc(count))))),
            Some(limit) => {
                let meta = self.meta.clone();
                AtomicResponse::new(Box::pin(
                    async move { store_u64(&meta, ID_LIMIT_KEY, limit as u64).await }.into_actor(self).map(
                        move |res, act, _| {
                            res?;
                            act.ids.set_limit(limit);
                            Ok(act.ids.alloc(count))
                        },
                    ),
                ))
            }
        }
    }
}

/// Typed handle to the `TsoActor`.
#[derive(Clone)]
pub struct TsoHandle(pub Addr<TsoActor>);

fn mailbox(e: MailboxError) -> FvError {
    FvError::unavailable(format!("rootcoord actor stopped: {e}"))
}

impl TsoHandle {
    pub async fn alloc_ts(&self, count: u32) -> FvResult<Timestamp> {
        self.0.send(AllocTs(count)).await.map_err(mailbox)?
    }
    pub async fn alloc_id(&self, count: u32) -> FvResult<i64> {
        self.0.send(AllocId(count)).await.map_err(mailbox)?
    }
}

/// Serialises DDL.
pub struct DdlActor {
    ddl: Arc<Ddl>,
}

impl DdlActor {
    pub fn new(ddl: Arc<Ddl>) -> DdlActor {
        DdlActor { ddl }
    }
}

impl Actor for DdlActor {
    type Context = Context<Self>;
}

/// One DDL request.
#[derive(Message)]
#[rtype(result = "FvResult<()>")]
pub enum DdlRequest {
    CreateCollection(CreateCollectionRequest),
    DropCollection(DropCollectionRequest),
    RenameCollection(RenameCollectionRequest),
    CreatePartition(CreatePartitionRequest),
    DropPartition(DropPartitionRequest),
    /// Retry drops that could not finish.
    FinishPendingDrops,
}

impl Handler<DdlRequest> for DdlActor {
    type Result = AtomicResponse<Self, FvResult<()>>;

    fn handle(&mut self, msg: DdlRequest, _ctx: &mut Context<Self>) -> Self::Result {
        let ddl = self.ddl.clone();
        let span = tracing::info_span!("ddl");
        AtomicResponse::new(Box::pin(
            async move {
                match msg {
                    DdlRequest::CreateCollection(r) => ddl.create_collection(r).await,
                    DdlRequest::DropCollection(r) => ddl.drop_collection(r).await,
                    DdlRequest::RenameCollection(r) => ddl.rename_collection(r).await,
                    DdlRequest::CreatePartition(r) => ddl.create_partition(r).await,
                    DdlRequest::DropPartition(r) => ddl.drop_partition(r).await,
                    DdlRequest::FinishPendingDrops => {
                        ddl.finish_pending_drops().await;
                        Ok(())
                    }
                }
            }
            .instrument(span)
            .into_actor(self),
        ))
    }
}

#[derive(Clone)]
pub struct DdlHandle(pub Addr<DdlActor>);

impl DdlHandle {
    pub async fn run(&self, req: DdlRequest) -> FvResult<()> {
        self.0.send(req).await.map_err(mailbox)?
    }
}

//! Starting rootcoord: recover state, start the actors and the ticker, serve requests.

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use fv_common::{FvError, FvResult};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::meta::CollectionState;
use fv_proto::fv::rootcoord as pb;
use fv_runtime::rpc::Role;
use fv_runtime::rpcs::rootcoord as rpc;
use fv_runtime::{RoleContext, Target, session};
use parking_lot::RwLock;

use crate::actor::{DdlActor, DdlHandle, DdlRequest, TsoActor, TsoHandle};
use crate::catalog::{self, Catalog, ID_LIMIT_KEY, TSO_LIMIT_KEY};
use crate::ddl::{Ddl, resolve_db};
use crate::ticker::Ticker;
use crate::tso::{IdAllocator, Tso};

fn ok() -> StatusResponse {
    StatusResponse { status: Some(Default::default()) }
}

/// Starts rootcoord inside the current actix system.
pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let tso_limit = catalog::load_u64(&ctx.meta, TSO_LIMIT_KEY).await?;
    let id_limit = catalog::load_u64(&ctx.meta, ID_LIMIT_KEY).await? as i64;
    let tso = TsoHandle(TsoActor::new(Tso::new(tso_limit), IdAllocator::new(id_limit), ctx.meta.clone()).start());

    let mut cat = Catalog::default();
    for info in catalog::load_all(&ctx.meta).await? {
        cat.insert(info);
    }
    let catalog = Arc::new(RwLock::new(cat));
    let ddl = Arc::new(Ddl { ctx: ctx.clone(), catalog: catalog.clone(), tso: tso.clone() });
    let ddl_handle = DdlHandle(DdlActor::new(ddl.clone()).start());
    let ticker = Ticker::new(ctx.clone(), tso.clone(), catalog.clone());

    serve(&ctx, tso, ddl_handle.clone(), catalog.clone(), ticker.clone()).await?;
    session::register(
        ctx.meta.clone(),
        Role::RootCoord,
        ctx.node_id,
        String::new(),
        Duration::from_millis(ctx.config.meta.session_ttl_ms),
        ctx.shutdown.clone(),
    )
    .await?;
    tokio::spawn(ticker.run());

    // Drops interrupted by a crash or an unavailable coordinator are finished here.
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let pending = catalog.read().all().iter().any(|c| c.state != CollectionState::CollectionCreated as i32);
            if pending {
                let _ = ddl_handle.run(DdlRequest::FinishPendingDrops).await;
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    });
    tracing::info!(node_id = ctx.node_id, "rootcoord started");
    Ok(())
}

async fn serve(
    ctx: &RoleContext,
    tso: TsoHandle,
    ddl: DdlHandle,
    catalog: Arc<RwLock<Catalog>>,
    ticker: Arc<Ticker>,
) -> FvResult<()> {
    let s = &ctx.server;
    let t = tso.clone();
    s.serve::<rpc::AllocTimestamp, _, _>(Target::Coord, move |req| {
        let t = t.clone();
        async move {
            let count = req.count.max(1);
            let timestamp = t.alloc_ts(count).await?;
            Ok(pb::AllocTimestampResponse { status: Some(Default::default()), timestamp, count })
        }
    })
    .await?;
    let t = tso.clone();
    s.serve::<rpc::AllocId, _, _>(Target::Coord, move |req| {
        let t = t.clone();
        async move {
            let count = req.count.max(1);
            let id_begin = t.alloc_id(count).await?;
            Ok(pb::AllocIdResponse { status: Some(Default::default()), id_begin, count })
        }
    })
    .await?;

    macro_rules! ddl_rpc {
        ($rpc:ty, $variant:ident) => {{
            let d = ddl.clone();
            s.serve::<$rpc, _, _>(Target::Coord, move |req| {
                let d = d.clone();
                async move {
                    d.run(DdlRequest::$variant(req)).await?;
                    Ok(ok())
                }
            })
            .await?;
        }};
    }
    ddl_rpc!(rpc::CreateCollection, CreateCollection);
    ddl_rpc!(rpc::DropCollection, DropCollection);
    ddl_rpc!(rpc::RenameCollection, RenameCollection);
    ddl_rpc!(rpc::CreatePartition, CreatePartition);
    ddl_rpc!(rpc::DropPartition, DropPartition);

    let c = catalog.clone();
    s.serve::<rpc::DescribeCollection, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move {
            let info = if req.collection_name.is_empty() {
                c.read().by_id(req.collection_id).ok_or_else(|| FvError::collection_id_not_found(req.collection_id))?
            } else {
                let db = resolve_db(&req.db_name)?;
                c.read()
                    .by_name(&db, &req.collection_name)
                    .ok_or_else(|| FvError::collection_not_found(&db, &req.collection_name))?
            };
            Ok(pb::DescribeCollectionResponse { status: Some(Default::default()), collection: Some((*info).clone()) })
        }
    })
    .await?;
    let c = catalog.clone();
    s.serve::<rpc::ShowCollections, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move {
            // An empty db name lists every database (used by coordinators to reconcile).
            let list = if req.db_name.is_empty() {
                c.read()
                    .all()
                    .into_iter()
                    .filter(|i| i.state == CollectionState::CollectionCreated as i32)
                    .collect::<Vec<_>>()
            } else {
                let db = resolve_db(&req.db_name)?;
                c.read().live(&db)
            };
            Ok(pb::ShowCollectionsResponse {
                status: Some(Default::default()),
                collections: list.iter().map(|i| (**i).clone()).collect(),
            })
        }
    })
    .await?;
    let c = catalog.clone();
    s.serve::<rpc::ShowPartitions, _, _>(Target::Coord, move |req| {
        let c = c.clone();
        async move {
            let info = if req.collection_name.is_empty() {
                c.read().by_id(req.collection_id).ok_or_else(|| FvError::collection_id_not_found(req.collection_id))?
            } else {
                let db = resolve_db(&req.db_name)?;
                c.read()
                    .by_name(&db, &req.collection_name)
                    .ok_or_else(|| FvError::collection_not_found(&db, &req.collection_name))?
            };
            Ok(pb::ShowPartitionsResponse {
                status: Some(Default::default()),
                partitions: info.partitions.clone(),
                collection_id: info.id,
            })
        }
    })
    .await?;
    s.serve::<rpc::SyncTimeTick, _, _>(Target::Coord, move |req| {
        let t = ticker.clone();
        async move {
            let timestamp = t.sync(req.min_ts).await?;
            Ok(pb::SyncTimeTickResponse { status: Some(Default::default()), timestamp })
        }
    })
    .await?;
    Ok(())
}

//! Starting rootcoord: recover state, start the actors and the ticker, serve requests.

use std::sync::Arc;
use std::time::Duration;

use fv_common::{FvError, FvResult};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::meta::{CollectionInfo, CollectionState};
use fv_proto::fv::rootcoord::{self as pb, RootCoordHandler, root_coord_routes};
use fv_runtime::actor::ExclusiveHandle;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, Target, session};
use parking_lot::RwLock;

use crate::catalog::{self, Catalog};
use crate::ddl::{Ddl, resolve_db};
use crate::ticker::Ticker;
use crate::tso::TsoHandle;

/// rootcoord's requests: allocation goes to the TSO actor, DDL runs one request at a
/// time on the DDL actor (so DDL is applied in timestamp order), reads are served from
/// the shared catalog without waiting for either.
struct RootCoordService {
    tso: TsoHandle,
    ddl: ExclusiveHandle<Ddl>,
    catalog: Arc<RwLock<Catalog>>,
    ticker: Arc<Ticker>,
}

impl RootCoordService {
    /// The collection a describe-style request names: by name in its database, or by
    /// id when the name is empty.
    fn collection(&self, db_name: &str, name: &str, id: i64) -> FvResult<Arc<CollectionInfo>> {
        if name.is_empty() {
            self.catalog.read().by_id(id).ok_or_else(|| FvError::collection_id_not_found(id))
        } else {
            let db = resolve_db(db_name)?;
            self.catalog.read().by_name(&db, name).ok_or_else(|| FvError::collection_not_found(&db, name))
        }
    }
}

impl RootCoordHandler for RootCoordService {
    type Error = FvError;

    async fn alloc_timestamp(&self, req: pb::AllocTimestampRequest) -> FvResult<pb::AllocTimestampResponse> {
        let count = req.count.max(1);
        let timestamp = self.tso.alloc_ts(count).await?;
        Ok(pb::AllocTimestampResponse { status: Some(Default::default()), timestamp, count })
    }

    async fn alloc_id(&self, req: pb::AllocIdRequest) -> FvResult<pb::AllocIdResponse> {
        let count = req.count.max(1);
        let id_begin = self.tso.alloc_id(count).await?;
        Ok(pb::AllocIdResponse { status: Some(Default::default()), id_begin, count })
    }

    async fn create_collection(&self, req: pb::CreateCollectionRequest) -> FvResult<StatusResponse> {
        self.ddl.run("create_collection", move |d| async move { d.create_collection(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn drop_collection(&self, req: pb::DropCollectionRequest) -> FvResult<StatusResponse> {
        self.ddl.run("drop_collection", move |d| async move { d.drop_collection(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn describe_collection(
        &self,
        req: pb::DescribeCollectionRequest,
    ) -> FvResult<pb::DescribeCollectionResponse> {
        let info = self.collection(&req.db_name, &req.collection_name, req.collection_id)?;
        Ok(pb::DescribeCollectionResponse { status: Some(Default::default()), collection: Some((*info).clone()) })
    }

    async fn show_collections(&self, req: pb::ShowCollectionsRequest) -> FvResult<pb::ShowCollectionsResponse> {
        // An empty db name lists every database (used by coordinators to reconcile).
        let list = if req.db_name.is_empty() {
            self.catalog
                .read()
                .all()
                .into_iter()
                .filter(|i| i.state == CollectionState::CollectionCreated as i32)
                .collect::<Vec<_>>()
        } else {
            let db = resolve_db(&req.db_name)?;
            self.catalog.read().live(&db)
        };
        Ok(pb::ShowCollectionsResponse {
            status: Some(Default::default()),
            collections: list.iter().map(|i| (**i).clone()).collect(),
        })
    }

    async fn rename_collection(&self, req: pb::RenameCollectionRequest) -> FvResult<StatusResponse> {
        self.ddl.run("rename_collection", move |d| async move { d.rename_collection(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn create_partition(&self, req: pb::CreatePartitionRequest) -> FvResult<StatusResponse> {
        self.ddl.run("create_partition", move |d| async move { d.create_partition(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn drop_partition(&self, req: pb::DropPartitionRequest) -> FvResult<StatusResponse> {
        self.ddl.run("drop_partition", move |d| async move { d.drop_partition(req).await }).await?;
        Ok(StatusResponse::ok())
    }

    async fn show_partitions(&self, req: pb::ShowPartitionsRequest) -> FvResult<pb::ShowPartitionsResponse> {
        let info = self.collection(&req.db_name, &req.collection_name, req.collection_id)?;
        Ok(pb::ShowPartitionsResponse {
            status: Some(Default::default()),
            partitions: info.partitions.clone(),
            collection_id: info.id,
        })
    }

    async fn sync_time_tick(&self, req: pb::SyncTimeTickRequest) -> FvResult<pb::SyncTimeTickResponse> {
        let timestamp = self.ticker.sync(req.min_ts).await?;
        Ok(pb::SyncTimeTickResponse { status: Some(Default::default()), timestamp })
    }
}

/// Starts rootcoord inside the current actix system.
pub async fn start(ctx: RoleContext) -> FvResult<()> {
    let tso = TsoHandle::start(&ctx.meta).await?;
    let catalog = Arc::new(RwLock::new(catalog::recover(&ctx.meta).await?));
    let ddl = ExclusiveHandle::start(Arc::new(Ddl::new(ctx.clone(), catalog.clone(), tso.clone())));
    let ticker = Ticker::new(ctx.clone(), tso.clone(), catalog.clone());

    let service = RootCoordService { tso, ddl: ddl.clone(), catalog: catalog.clone(), ticker: ticker.clone() };
    ctx.server.serve(Target::Coord, root_coord_routes(Arc::new(service))).await?;
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

    // DDL interrupted by a crash or an unavailable coordinator is finished here.
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = ddl.run("finish_pending", |d| async move { d.finish_pending().await }).await {
                tracing::debug!(error = %e, "pending DDL not resumed yet");
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

//! Drop collection: mark dropping (and tell proxies) → release → drop data → drop
//! indexes → remove meta. Every step after the mark is repeated until it succeeds, so a
//! dropped collection never leaves segments, indexes or a load behind.

use fv_common::{FvError, FvResult};
use fv_proto::fv::datacoord::DropCollectionDataRequest;
use fv_proto::fv::index::DropCollectionIndexesRequest;
use fv_proto::fv::meta::CollectionState;
use fv_proto::fv::querycoord::ReleaseCollectionRequest;
use fv_proto::fv::rootcoord::drop_collection_procedure::Step as S;
use fv_proto::fv::rootcoord::{DropCollectionProcedure, DropCollectionRequest};
use fv_runtime::Clients;
use fv_runtime::procedure::Step;

use super::{COORD_CALL_DEADLINE, Ddl, resolve_db};
use crate::catalog;

pub fn start(request: DropCollectionRequest) -> DropCollectionProcedure {
    DropCollectionProcedure { step: S::MarkDropping as i32, request: Some(request), collection_id: 0 }
}

pub async fn step(p: &mut DropCollectionProcedure, ddl: &Ddl) -> FvResult<Step> {
    let rpc = &ddl.ctx.rpc;
    let id = p.collection_id;
    match p.step() {
        S::MarkDropping => {
            let req = p.request.as_ref().ok_or_else(|| FvError::internal("drop collection without request"))?;
            let db = resolve_db(&req.db_name)?;
            let Some(existing) = ddl.catalog.read().by_name(&db, &req.collection_name) else {
                // Dropping a collection that does not exist succeeds, as in Milvus.
                return Ok(Step::Done);
            };
            let mut info = (*existing).clone();
            info.state = CollectionState::CollectionDropping as i32;
            info.update_ts = ddl.tso.alloc_ts(1).await?;
            catalog::save(&ddl.ctx.meta, &info, None).await?;
            ddl.catalog.write().insert(info.clone());
            ddl.notify_changed(&info).await;
            tracing::info!(collection = %req.collection_name, id = info.id, "collection dropping");
            p.collection_id = info.id;
            p.set_step(S::Release);
        }
        S::Release => {
            rpc.querycoord()
                .release_collection(&ReleaseCollectionRequest { collection_id: id })
                .retry(COORD_CALL_DEADLINE)
                .await?;
            p.set_step(S::DropData);
        }
        S::DropData => {
            rpc.datacoord()
                .drop_collection_data(&DropCollectionDataRequest { collection_id: id, partition_ids: vec![] })
                .retry(COORD_CALL_DEADLINE)
                .await?;
            p.set_step(S::DropIndexes);
        }
        S::DropIndexes => {
            rpc.indexcoord()
                .drop_collection_indexes(&DropCollectionIndexesRequest { collection_id: id })
                .retry(COORD_CALL_DEADLINE)
                .await?;
            p.set_step(S::RemoveMeta);
        }
        S::RemoveMeta => {
            let info = ddl.catalog.read().any_by_id(id);
            if let Some(info) = info {
                catalog::remove(&ddl.ctx.meta, &info).await?;
            }
            ddl.catalog.write().remove(id);
            tracing::info!(id, "collection dropped");
            return Ok(Step::Done);
        }
    }
    Ok(Step::Next)
}

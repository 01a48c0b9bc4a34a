//! Drop partition: prepare (it must not be loaded) → save meta → broadcast → drop data.
//! Once the partition is gone from the meta, its segments are dropped even across a
//! crash.

use fv_common::{DEFAULT_PARTITION_NAME, FvError, FvResult};
use fv_proto::common::LoadState;
use fv_proto::fv::datacoord::DropCollectionDataRequest;
use fv_proto::fv::querycoord::GetLoadStateRequest;
use fv_proto::fv::rootcoord::drop_partition_procedure::Step as S;
use fv_proto::fv::rootcoord::{DropPartitionProcedure, DropPartitionRequest};
use fv_runtime::Clients;
use fv_runtime::procedure::Step;

use super::{COORD_CALL_DEADLINE, Ddl, resolve_db};
use crate::catalog;

pub fn start(request: DropPartitionRequest) -> DropPartitionProcedure {
    DropPartitionProcedure {
        step: S::Prepare as i32,
        request: Some(request),
        collection_id: 0,
        partition_id: 0,
        update_ts: 0,
    }
}

pub async fn step(p: &mut DropPartitionProcedure, ddl: &Ddl) -> FvResult<Step> {
    match p.step() {
        S::Prepare => {
            let req = p.request.as_ref().ok_or_else(|| FvError::internal("drop partition without request"))?;
            let db = resolve_db(&req.db_name)?;
            let existing = ddl.live_by_name(&db, &req.collection_name)?;
            if req.partition_name == DEFAULT_PARTITION_NAME {
                return Err(FvError::invalid_parameter("default partition cannot be deleted"));
            }
            let Some(part) = existing.partitions.iter().find(|p| p.name == req.partition_name).cloned() else {
                return Ok(Step::Done);
            };
            let load = ddl
                .ctx
                .rpc
                .querycoord()
                .get_load_state(&GetLoadStateRequest { collection_id: existing.id, partition_ids: vec![part.id] })
                .retry(COORD_CALL_DEADLINE)
                .await?;
            if load.state == LoadState::Loaded as i32 || load.state == LoadState::Loading as i32 {
                return Err(FvError::invalid_parameter(format!(
                    "partition cannot be dropped, partition is loaded, please release it first[partition={}]",
                    req.partition_name
                )));
            }
            p.collection_id = existing.id;
            p.partition_id = part.id;
            p.update_ts = ddl.tso.alloc_ts(1).await?;
            p.set_step(S::SaveMeta);
        }
        S::SaveMeta => {
            let Some(current) = ddl.live_by_id(p.collection_id) else { return Ok(Step::Done) };
            if current.partitions.iter().any(|x| x.id == p.partition_id) {
                let mut info = (*current).clone();
                info.partitions.retain(|x| x.id != p.partition_id);
                info.num_partitions = info.partitions.len() as i32;
                info.update_ts = p.update_ts;
                catalog::save(&ddl.ctx.meta, &info, None).await?;
                ddl.catalog.write().insert(info);
            }
            p.set_step(S::Broadcast);
        }
        S::Broadcast => {
            let Some(info) = ddl.live_by_id(p.collection_id) else { return Ok(Step::Done) };
            ddl.notify_changed(&info).await;
            p.set_step(S::DropData);
        }
        S::DropData => {
            ddl.ctx
                .rpc
                .datacoord()
                .drop_collection_data(&DropCollectionDataRequest {
                    collection_id: p.collection_id,
                    partition_ids: vec![p.partition_id],
                })
                .retry(COORD_CALL_DEADLINE)
                .await?;
            return Ok(Step::Done);
        }
    }
    Ok(Step::Next)
}

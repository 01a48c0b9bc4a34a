//! Create partition: prepare → save meta → broadcast.

use fv_common::schema::validate_name;
use fv_common::{FvError, FvResult};
use fv_proto::fv::meta::PartitionInfo;
use fv_proto::fv::rootcoord::create_partition_procedure::Step as S;
use fv_proto::fv::rootcoord::{CreatePartitionProcedure, CreatePartitionRequest};
use fv_runtime::procedure::Step;

use super::{Ddl, MAX_PARTITIONS, resolve_db};
use crate::catalog;

pub fn start(request: CreatePartitionRequest) -> CreatePartitionProcedure {
    CreatePartitionProcedure { step: S::Prepare as i32, request: Some(request), collection_id: 0, partition: None }
}

pub async fn step(p: &mut CreatePartitionProcedure, ddl: &Ddl) -> FvResult<Step> {
    match p.step() {
        S::Prepare => {
            let req = p.request.as_ref().ok_or_else(|| FvError::internal("create partition without request"))?;
            let db = resolve_db(&req.db_name)?;
            validate_name("partition", &req.partition_name)?;
            let existing = ddl.live_by_name(&db, &req.collection_name)?;
            if existing.partitions.iter().any(|p| p.name == req.partition_name) {
                return Ok(Step::Done);
            }
            if existing.partitions.len() >= MAX_PARTITIONS {
                return Err(FvError::invalid_parameter(format!(
                    "partition number ({}) exceeds max configuration ({MAX_PARTITIONS})",
                    existing.partitions.len()
                )));
            }
            let id = ddl.tso.alloc_id(1).await?;
            let ts = ddl.tso.alloc_ts(1).await?;
            p.partition = Some(PartitionInfo { id, name: req.partition_name.clone(), create_ts: ts });
            p.collection_id = existing.id;
            p.set_step(S::SaveMeta);
            Ok(Step::Next)
        }
        S::SaveMeta => {
            let part = p.partition.clone().ok_or_else(|| FvError::internal("create partition without partition"))?;
            let Some(current) = ddl.live_by_id(p.collection_id) else { return Ok(Step::Done) };
            if !current.partitions.iter().any(|x| x.id == part.id) {
                let mut info = (*current).clone();
                info.update_ts = part.create_ts;
                info.partitions.push(part);
                info.num_partitions = info.partitions.len() as i32;
                catalog::save(&ddl.ctx.meta, &info, None).await?;
                ddl.catalog.write().insert(info);
            }
            p.set_step(S::Broadcast);
            Ok(Step::Next)
        }
        S::Broadcast => {
            let Some(info) = ddl.live_by_id(p.collection_id) else { return Ok(Step::Done) };
            ddl.notify_changed(&info).await;
            Ok(Step::Done)
        }
    }
}

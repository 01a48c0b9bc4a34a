//! Rename collection: prepare → save meta → broadcast.

use fv_common::schema::validate_name;
use fv_common::{FvError, FvResult};
use fv_proto::fv::rootcoord::rename_collection_procedure::Step as S;
use fv_proto::fv::rootcoord::{RenameCollectionProcedure, RenameCollectionRequest};
use fv_runtime::procedure::Step;

use super::{Ddl, resolve_db};
use crate::catalog;

pub fn start(request: RenameCollectionRequest) -> RenameCollectionProcedure {
    RenameCollectionProcedure { step: S::Prepare as i32, request: Some(request), collection_id: 0, update_ts: 0 }
}

pub async fn step(p: &mut RenameCollectionProcedure, ddl: &Ddl) -> FvResult<Step> {
    let req = p.request.clone().ok_or_else(|| FvError::internal("rename collection without request"))?;
    let db = resolve_db(&req.db_name)?;
    match p.step() {
        S::Prepare => {
            if !req.new_db_name.is_empty() {
                resolve_db(&req.new_db_name)?;
            }
            validate_name("collection", &req.new_name)?;
            let existing = ddl.live_by_name(&db, &req.old_name)?;
            if req.old_name == req.new_name {
                return Ok(Step::Done);
            }
            if ddl.catalog.read().by_name(&db, &req.new_name).is_some() {
                return Err(FvError::invalid_parameter(format!(
                    "duplicated new collection name {db}:{} with other collection name or alias",
                    req.new_name
                )));
            }
            p.collection_id = existing.id;
            p.update_ts = ddl.tso.alloc_ts(1).await?;
            p.set_step(S::SaveMeta);
            Ok(Step::Next)
        }
        S::SaveMeta => {
            let Some(current) = ddl.live_by_id(p.collection_id) else { return Ok(Step::Done) };
            let renamed = current.schema.as_ref().is_some_and(|s| s.name == req.new_name);
            if !renamed {
                let mut info = (*current).clone();
                if let Some(s) = info.schema.as_mut() {
                    s.name = req.new_name.clone();
                }
                info.update_ts = p.update_ts;
                if !catalog::save(&ddl.ctx.meta, &info, Some((&req.old_name, &req.new_name))).await? {
                    return Ok(Step::Fail(FvError::invalid_parameter(format!(
                        "collection {} already exists",
                        req.new_name
                    ))));
                }
                let mut cat = ddl.catalog.write();
                cat.remove(info.id);
                cat.insert(info);
            }
            p.set_step(S::Broadcast);
            Ok(Step::Next)
        }
        S::Broadcast => {
            let Some(info) = ddl.live_by_id(p.collection_id) else { return Ok(Step::Done) };
            // Proxies cache by name: both the old and the new name must be forgotten.
            let mut old = (*info).clone();
            if let Some(s) = old.schema.as_mut() {
                s.name = req.old_name.clone();
            }
            ddl.notify_changed(&old).await;
            ddl.notify_changed(&info).await;
            Ok(Step::Done)
        }
    }
}

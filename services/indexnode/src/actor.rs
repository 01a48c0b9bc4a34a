//! `IndexNodeActor` accepts builds up to its slot count and runs each in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use fv_common::schema::Schema;
use fv_common::{Code, FvError, FvResult};
use fv_proto::common::{IndexState, KeyValuePair};
use fv_proto::fv::index::{BuildIndexRequest, ReportBuildResultRequest};
use fv_proto::fv::meta::{CollectionInfo, SegmentInfo};
use fv_proto::fv::rootcoord::DescribeCollectionRequest;
use fv_runtime::rpcs::{indexcoord, rootcoord};
use fv_runtime::{RoleContext, Target, atomic_handlers};
use fv_storage::binlog::decode_insert_log;

pub struct Core {
    pub ctx: RoleContext,
    /// Builds in progress (shared with the build tasks).
    pub running: Arc<AtomicI64>,
}

fn param<'a>(kvs: &'a [KeyValuePair], key: &str) -> Option<&'a str> {
    kvs.iter().find(|kv| kv.key == key).map(|kv| kv.value.as_str())
}

impl Core {
    pub fn slots(&self) -> i64 {
        self.ctx.config.indexnode.slots
    }

    pub async fn accept(&self, req: BuildIndexRequest) -> FvResult<()> {
        if self.running.load(Ordering::Acquire) >= self.slots() {
            return Err(
                FvError::new(Code::ServiceRequestLimitExceeded, "index node has no free build slot").retriable(true)
            );
        }
        let task = req.task.clone().ok_or_else(|| FvError::invalid_parameter("build without task"))?;
        self.running.fetch_add(1, Ordering::AcqRel);
        let ctx = self.ctx.clone();
        let node_id = ctx.node_id;
        let running = self.running.clone();
        tokio::spawn(async move {
            let result = build(&ctx, &req).await;
            let report = match result {
                Ok(files) => ReportBuildResultRequest {
                    build_id: task.build_id,
                    node_id,
                    state: IndexState::Finished as i32,
                    index_files: files,
                    ..Default::default()
                },
                Err(e) => {
                    tracing::warn!(error = %e, build = task.build_id, "index build failed");
                    ReportBuildResultRequest {
                        build_id: task.build_id,
                        node_id,
                        state: IndexState::Failed as i32,
                        fail_reason: e.to_string(),
                        ..Default::default()
                    }
                }
            };
            running.fetch_sub(1, Ordering::AcqRel);
            if let Err(e) = ctx
                .rpc
                .call_retry::<indexcoord::ReportBuildResult>(Target::Coord, &report, Duration::from_secs(30))
                .await
            {
                tracing::warn!(error = %e, build = task.build_id, "build result not reported; indexcoord will re-issue");
            }
        });
        Ok(())
    }
}

/// Reads and checks the segment's vector data, then builds the index. Returns the
/// index files written (none for FLAT).
async fn build(ctx: &RoleContext, req: &BuildIndexRequest) -> FvResult<Vec<String>> {
    let segment: &SegmentInfo =
        req.segment.as_ref().ok_or_else(|| FvError::invalid_parameter("build without segment"))?;
    let index = req.index.as_ref().ok_or_else(|| FvError::invalid_parameter("build without index"))?;
    let desc = ctx
        .rpc
        .call_retry::<rootcoord::DescribeCollection>(
            Target::Coord,
            &DescribeCollectionRequest { collection_id: segment.collection_id, ..Default::default() },
            Duration::from_secs(10),
        )
        .await?;
    let info: CollectionInfo =
        desc.collection.ok_or_else(|| FvError::collection_id_not_found(segment.collection_id))?;
    let schema =
        Schema::from_proto(info.schema.as_ref().ok_or_else(|| FvError::internal("collection without schema"))?)?;
    let field =
        schema.field_by_id(index.field_id).ok_or_else(|| FvError::field_not_found(&index.field_id.to_string()))?;
    let binlogs = segment
        .binlogs
        .iter()
        .find(|b| b.field_id == field.id)
        .ok_or_else(|| FvError::io(format!("segment {} has no binlog of field {}", segment.id, field.name)))?;
    let mut rows = 0usize;
    for log in &binlogs.binlogs {
        let bytes = ctx.objects.get(&log.log_path).await.map_err(|e| FvError::io(e.to_string()).retriable(true))?;
        let (_, col) = decode_insert_log(&bytes, &log.log_path, field)?;
        rows += col.len();
    }
    if rows as i64 != segment.num_rows {
        return Err(FvError::io(format!(
            "segment {} holds {rows} vectors but its meta says {}",
            segment.id, segment.num_rows
        )));
    }
    match param(&index.index_params, "index_type").unwrap_or("FLAT").to_ascii_uppercase().as_str() {
        "FLAT" | "AUTOINDEX" => Ok(vec![]),
        other => Err(FvError::new(Code::IndexNotSupported, format!("index type not supported[type={other}]"))),
    }
}

pub struct IndexNodeActor {
    pub core: Arc<Core>,
}

impl Actor for IndexNodeActor {
    type Context = Context<Self>;
}

atomic_handlers!(IndexNodeActor, core;
    Build(BuildIndexRequest) => accept -> ();
);

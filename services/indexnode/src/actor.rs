//! The index node's core accepts builds up to its slot count and runs each in the
//! background; acceptance runs on the node's exclusive actor, so two requests never
//! both take the last slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fv_common::schema::Schema;
use fv_common::{Code, FvError, FvResult};
use fv_index::{IndexParams, IndexType, VectorIndex};
use fv_proto::common::{IndexState, KeyValuePair};
use fv_proto::fv::index::{BuildIndexRequest, ReportBuildResultRequest};
use fv_proto::fv::meta::{CollectionInfo, SegmentInfo};
use fv_proto::fv::rootcoord::DescribeCollectionRequest;
use fv_runtime::Clients;
use fv_runtime::RoleContext;
use fv_storage::ColumnData;
use fv_storage::binlog::decode_insert_log;
use fv_storage::paths;

#[cfg(test)]
mod tests;

pub struct Core {
    pub ctx: RoleContext,
    /// Builds in progress (shared with the build tasks).
    pub running: Arc<AtomicI64>,
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
                Ok(built) => ReportBuildResultRequest {
                    build_id: task.build_id,
                    node_id,
                    state: IndexState::Finished as i32,
                    index_files: built.files,
                    serialized_size: built.bytes,
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
            if let Err(e) = ctx.rpc.indexcoord().report_build_result(&report).retry(Duration::from_secs(30)).await {
                tracing::warn!(error = %e, build = task.build_id, "build result not reported; indexcoord will re-issue");
            }
        });
        Ok(())
    }
}

/// What a finished build wrote.
#[derive(Debug, Default)]
struct Built {
    files: Vec<String>,
    bytes: i64,
}

/// Build parameters from the index meta (the normalised `index_type`, `metric_type`
/// and `params` pairs the proxy records).
pub fn index_params(kvs: &[KeyValuePair]) -> FvResult<IndexParams> {
    IndexParams::from_kv(kvs.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())))
        .map_err(|e| FvError::invalid_parameter(format!("invalid index params: {e}")))
}

/// Reads and checks the segment's vector data, builds the index and writes its file.
/// FLAT (and AUTOINDEX on a small segment) writes nothing: query nodes search the raw
/// vectors they load anyway.
async fn build(ctx: &RoleContext, req: &BuildIndexRequest) -> FvResult<Built> {
    let task = req.task.as_ref().ok_or_else(|| FvError::invalid_parameter("build without task"))?;
    let segment: &SegmentInfo =
        req.segment.as_ref().ok_or_else(|| FvError::invalid_parameter("build without segment"))?;
    let index = req.index.as_ref().ok_or_else(|| FvError::invalid_parameter("build without index"))?;
    let desc = ctx
        .rpc
        .rootcoord()
        .describe_collection(&DescribeCollectionRequest { collection_id: segment.collection_id, ..Default::default() })
        .retry(Duration::from_secs(10))
        .await?;
    let info: CollectionInfo =
        desc.collection.ok_or_else(|| FvError::collection_id_not_found(segment.collection_id))?;
    let schema =
        Schema::from_proto(info.schema.as_ref().ok_or_else(|| FvError::internal("collection without schema"))?)?;
    let field =
        schema.field_by_id(index.field_id).ok_or_else(|| FvError::field_not_found(&index.field_id.to_string()))?;
    let params = index_params(&index.index_params)?;
    let binlogs = segment
        .binlogs
        .iter()
        .find(|b| b.field_id == field.id)
        .ok_or_else(|| FvError::io(format!("segment {} has no binlog of field {}", segment.id, field.name)))?;
    let mut vectors: Vec<f32> = Vec::new();
    let mut dim = field.dim;
    for log in &binlogs.binlogs {
        let bytes = ctx.objects.get(&log.log_path).await.map_err(|e| FvError::io(e.to_string()).retriable(true))?;
        let (_, col) = decode_insert_log(&bytes, &log.log_path, field)?;
        match col.data {
            ColumnData::FloatVector { dim: d, data } => {
                dim = d;
                vectors.extend_from_slice(&data);
            }
            _ => return Err(FvError::invalid_parameter(format!("field {} is not a float vector", field.name))),
        }
    }
    let rows = vectors.len() / dim.max(1);
    if rows as i64 != segment.num_rows {
        return Err(FvError::io(format!(
            "segment {} holds {rows} vectors but its meta says {}",
            segment.id, segment.num_rows
        )));
    }
    let resolved = match params.index_type {
        IndexType::AutoIndex => fv_index::auto_index(rows, &params).0.index_type,
        t => t,
    };
    if resolved == IndexType::Flat {
        return Ok(Built::default());
    }
    let started = std::time::Instant::now();
    // k-means and encoding are CPU-bound: off the async workers.
    let bytes = tokio::task::spawn_blocking(move || {
        let data = fv_index::matrix_view(&vectors, dim)?;
        VectorIndex::build(&params, data).map(|i| (i.to_bytes(), i.index_type(), i.nlist()))
    })
    .await
    .map_err(|e| FvError::internal(format!("index build task failed: {e}")))?
    .map_err(|e| FvError::invalid_parameter(format!("index build failed: {e}")))?;
    let (bytes, built_type, nlist) = bytes;
    let name = index_file_name(field.id, ctx.node_id, task.retries);
    let key = paths::index_file(task.collection_id, task.segment_id, task.build_id, &name);
    let size = bytes.len() as i64;
    ctx.objects
        .put(&key, bytes.into())
        .await
        .map_err(|e| FvError::io(format!("writing {key}: {e}")).retriable(true))?;
    tracing::info!(
        build = task.build_id,
        segment = segment.id,
        rows,
        index_type = built_type.name(),
        nlist,
        bytes = size,
        ms = started.elapsed().as_millis() as u64,
        "index built"
    );
    Ok(Built { files: vec![key], bytes: size })
}

/// The object name of a field's index inside its build directory. It names the node
/// and attempt, so a node that lost its task (and may still be writing) never
/// overwrites the file of the attempt that won; the whole directory is collected when
/// the build is dropped.
fn index_file_name(field: i64, node: i64, attempt: i32) -> String {
    format!("{field}.node{node}.try{attempt}.fvidx")
}

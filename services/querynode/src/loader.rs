//! Loading sealed segments from their binlogs.

use std::sync::Arc;

use bytes::Bytes;
use fv_common::schema::Schema;
use fv_common::{FvError, FvResult, PrimaryKey, TIMESTAMP_FIELD_ID};
use fv_index::VectorIndex;
use fv_objectstore::ObjectStoreRef;
use fv_proto::fv::meta::{SegmentIndexTask, SegmentInfo};
use fv_storage::binlog::{decode_delta_log, decode_insert_log, decode_stats_log, decode_timestamp_log};
use fv_storage::{Column, SegmentData};

use crate::segment::{Segment, SegmentIndex, SegmentPlace};

async fn fetch(objects: &ObjectStoreRef, key: &str) -> FvResult<Bytes> {
    objects.get(key).await.map_err(|e| FvError::io(format!("reading {key}: {e}")).retriable(true))
}

/// Reads every binlog of a flushed segment and applies its delta logs.
pub async fn load_segment(objects: &ObjectStoreRef, schema: Arc<Schema>, info: &SegmentInfo) -> FvResult<Segment> {
    let files = |fid: i64| -> FvResult<Vec<String>> {
        let fb = info
            .binlogs
            .iter()
            .find(|b| b.field_id == fid)
            .ok_or_else(|| FvError::io(format!("segment {} has no binlog for field {fid}", info.id)))?;
        Ok(fb.binlogs.iter().map(|b| b.log_path.clone()).collect())
    };
    let mut columns = Vec::with_capacity(schema.fields.len());
    let column_jobs = schema.fields.iter().map(|f| {
        let paths = files(f.id);
        async move {
            let mut col: Option<Column> = None;
            for p in paths? {
                let bytes = fetch(objects, &p).await?;
                let (_, c) = decode_insert_log(&bytes, &p, f)?;
                match col.as_mut() {
                    None => col = Some(c),
                    Some(acc) => acc.append(&c)?,
                }
            }
            match col {
                Some(c) => Ok::<Column, FvError>(c),
                None => Ok(Column::empty(f)?),
            }
        }
    });
    for c in futures::future::try_join_all(column_jobs).await? {
        columns.push(c);
    }
    let mut timestamps = Vec::new();
    for p in files(TIMESTAMP_FIELD_ID)? {
        timestamps.extend(decode_timestamp_log(&fetch(objects, &p).await?, &p)?);
    }
    if columns.iter().any(|c| c.len() != timestamps.len()) {
        return Err(FvError::io(format!("segment {}: columns and timestamps disagree on the row count", info.id)));
    }
    let stats = match info.statslogs.last() {
        Some(log) => Some(decode_stats_log(&fetch(objects, &log.log_path).await?, &log.log_path)?.1),
        None => None,
    };
    let place = SegmentPlace {
        id: info.id,
        collection: info.collection_id,
        partition: info.partition_id,
        vchannel: info.vchannel.clone(),
    };
    let segment = Segment::new(place, schema, SegmentData { timestamps, columns }, true, stats);
    for log in &info.deltalogs {
        let (_, delta) = decode_delta_log(&fetch(objects, &log.log_path).await?, &log.log_path)?;
        let keys: Vec<PrimaryKey> = delta.pks.iter().collect();
        segment.delete(&keys, &delta.timestamps);
    }
    Ok(segment)
}

/// Reads a finished build's index file. FLAT builds have no file. A missing, corrupt or
/// truncated file is an error: the caller keeps the segment on brute force and asks
/// indexcoord for a rebuild; it is never served.
pub async fn load_index(objects: &ObjectStoreRef, task: &SegmentIndexTask) -> FvResult<SegmentIndex> {
    let Some(path) = task.index_files.first() else {
        return Ok(SegmentIndex { build_id: task.build_id, index: None });
    };
    let bytes = objects.get(path).await.map_err(|e| FvError::io(format!("reading {path}: {e}")))?;
    let index = tokio::task::spawn_blocking(move || VectorIndex::from_bytes(&bytes))
        .await
        .map_err(|e| FvError::internal(format!("index load task failed: {e}")))?
        .map_err(|e| FvError::io(format!("index file {path}: {e}")))?;
    Ok(SegmentIndex { build_id: task.build_id, index: Some(index) })
}

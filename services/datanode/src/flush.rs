//! Writing a segment's binlogs: one insert log per field plus the row timestamps, a
//! stats log for the primary key, and a delta log for buffered deletes.

use bytes::Bytes;
use fv_common::schema::Schema;
use fv_common::{CollectionId, FvError, FvResult, PartitionId, SegmentId, TIMESTAMP_FIELD_ID, Timestamp};
use fv_objectstore::ObjectStoreRef;
use fv_proto::fv::meta::{Binlog, FieldBinlog};
use fv_storage::binlog::{self, LogHeader, LogKind, PkStats};
use fv_storage::paths;

use crate::buffer::{GrowingBuffer, PendingDeletes};

/// False-positive rate of the primary-key bloom filters.
pub const BLOOM_FP_RATE: f64 = 0.001;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Written {
    pub field_binlogs: Vec<FieldBinlog>,
    pub statslogs: Vec<Binlog>,
    pub deltalogs: Vec<Binlog>,
    pub num_rows: i64,
    pub stats: Option<PkStats>,
}

/// Log ids a segment flush needs.
pub fn ids_needed(schema: &Schema, has_deletes: bool) -> u32 {
    schema.fields.len() as u32 + 2 + has_deletes as u32
}

fn io(e: fv_objectstore::ObjectStoreError) -> FvError {
    FvError::io(e.to_string()).retriable(true)
}

async fn put(objects: &ObjectStoreRef, key: String, data: Vec<u8>) -> FvResult<i64> {
    let size = data.len() as i64;
    objects.put(&key, Bytes::from(data)).await.map_err(io)?;
    Ok(size)
}

/// Writes every file of a buffered segment; `first_log_id` starts `ids_needed` ids.
pub async fn write_segment(
    objects: &ObjectStoreRef,
    schema: &Schema,
    collection: CollectionId,
    segment: SegmentId,
    buf: &GrowingBuffer,
    first_log_id: i64,
) -> FvResult<Written> {
    let p = buf.partition_id;
    let data = &buf.data;
    let n = data.num_rows();
    let ts_from = data.timestamps.iter().copied().min().unwrap_or(0);
    let ts_to = data.timestamps.iter().copied().max().unwrap_or(0);
    let header = LogHeader {
        kind: LogKind::Insert,
        collection,
        partition: p,
        segment,
        field_id: 0,
        data_type: 0,
        row_count: n as u64,
        ts_from,
        ts_to,
    };
    let mut next_id = first_log_id;
    let mut writes = Vec::new();
    let mut field_binlogs = Vec::new();
    for col in &data.columns {
        let key = paths::insert_log(collection, p, segment, col.field_id, next_id);
        let bytes = binlog::encode_insert_log(header, col);
        field_binlogs.push((col.field_id, key.clone(), next_id));
        writes.push((key, bytes));
        next_id += 1;
    }
    let ts_key = paths::insert_log(collection, p, segment, TIMESTAMP_FIELD_ID, next_id);
    writes.push((ts_key.clone(), binlog::encode_timestamp_log(header, &data.timestamps)));
    field_binlogs.push((TIMESTAMP_FIELD_ID, ts_key, next_id));
    next_id += 1;

    let pk_col = data.column(schema.pk().id).ok_or_else(|| FvError::internal("buffer lacks the primary key column"))?;
    let stats = PkStats::build((0..pk_col.len()).filter_map(|i| pk_col.pk(i)), BLOOM_FP_RATE);
    let stats_key = paths::stats_log(collection, p, segment, schema.pk().id, next_id);
    let stats_bytes = binlog::encode_stats_log(header, &stats);
    let stats_id = next_id;
    next_id += 1;

    let mut out = Written { num_rows: n as i64, ..Default::default() };
    let sizes = futures::future::try_join_all(writes.iter().map(|(k, b)| put(objects, k.clone(), b.clone()))).await?;
    for ((field_id, key, id), size) in field_binlogs.into_iter().zip(sizes) {
        out.field_binlogs.push(FieldBinlog {
            field_id,
            binlogs: vec![Binlog {
                entries_num: n as i64,
                timestamp_from: ts_from,
                timestamp_to: ts_to,
                log_path: key,
                log_size: size,
                log_id: id,
            }],
        });
    }
    let size = put(objects, stats_key.clone(), stats_bytes).await?;
    out.statslogs.push(Binlog {
        entries_num: n as i64,
        timestamp_from: ts_from,
        timestamp_to: ts_to,
        log_path: stats_key,
        log_size: size,
        log_id: stats_id,
    });
    if let Some(d) = write_delta(objects, collection, p, segment, &buf.deletes, next_id).await? {
        out.deltalogs.push(d);
    }
    out.stats = Some(stats);
    Ok(out)
}

/// Writes buffered deletes as one delta log (None when there are none).
pub async fn write_delta(
    objects: &ObjectStoreRef,
    collection: CollectionId,
    partition: PartitionId,
    segment: SegmentId,
    deletes: &PendingDeletes,
    log_id: i64,
) -> FvResult<Option<Binlog>> {
    let Some(delta) = deletes.to_delta() else { return Ok(None) };
    let header = LogHeader {
        kind: LogKind::Delta,
        collection,
        partition,
        segment,
        field_id: 0,
        data_type: 0,
        row_count: 0,
        ts_from: 0,
        ts_to: 0,
    };
    let key = paths::delta_log(collection, partition, segment, log_id);
    let bytes = binlog::encode_delta_log(header, &delta);
    let size = put(objects, key.clone(), bytes).await?;
    let ts = |f: fn(&[Timestamp]) -> Option<&Timestamp>| f(&delta.timestamps).copied().unwrap_or(0);
    Ok(Some(Binlog {
        entries_num: delta.timestamps.len() as i64,
        timestamp_from: ts(|t| t.iter().min()),
        timestamp_to: ts(|t| t.iter().max()),
        log_path: key,
        log_size: size,
        log_id,
    }))
}

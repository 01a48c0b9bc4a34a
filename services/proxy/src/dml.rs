//! Insert, upsert and delete.
//!
//! Rows are validated against the schema and normalised into one column per field
//! (nullable columns at full length, defaults filled, auto-ids assigned, the dynamic
//! field present), hashed by primary key to shards, and published on each shard's
//! vchannel by its pchannel's producer. The client is answered once every shard's
//! messages are durably on the log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use fv_common::pk::PkColumn;
use fv_common::{ALL_PARTITIONS, Code, DYNAMIC_FIELD_NAME, FvError, FvResult, PrimaryKey, Timestamp};
use fv_proto::api::{DeleteRequest, InsertRequest, MutationResult, UpsertRequest};
use fv_proto::schema::{DataType, FieldData};
use fv_storage::{Column, ColumnData};
use prost::Message;

use crate::Proxy;
use crate::meta_cache::Collection;
use crate::producer::{DeleteBatch, InsertBatch, Produce};

/// How a primary key column is supplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PkSource {
    /// Insert: generated when the field is auto-id, else required.
    Insert,
    /// Upsert: always supplied by the client.
    Required,
}

fn check_size(p: &Proxy, bytes: usize) -> FvResult<()> {
    let max = p.ctx.config.proxy.max_request_bytes;
    if bytes > max {
        return Err(FvError::invalid_parameter(format!("request of {bytes} bytes exceeds the limit of {max} bytes")));
    }
    Ok(())
}

/// Validates and normalises client columns; returns one column per schema field (in
/// schema order) and the primary keys.
async fn prepare_rows(
    p: &Proxy,
    coll: &Collection,
    data: &[FieldData],
    num_rows: u32,
    pk_source: PkSource,
) -> FvResult<(Vec<Column>, PkColumn)> {
    let schema = &coll.schema;
    let n = num_rows as usize;
    if n == 0 {
        return Err(FvError::invalid_parameter("num_rows should be greater than 0"));
    }
    let mut by_field: HashMap<i64, &FieldData> = HashMap::new();
    for fd in data {
        let field = if fd.is_dynamic || fd.field_name == DYNAMIC_FIELD_NAME {
            schema.dynamic().ok_or_else(|| {
                FvError::invalid_parameter(format!(
                    "Attempt to insert an unexpected field `{}` to collection without enabling dynamic field",
                    fd.field_name
                ))
            })?
        } else {
            schema.field(&fd.field_name).ok_or_else(|| {
                if schema.dynamic().is_some() {
                    FvError::invalid_parameter(format!(
                        "field {} not exist; dynamic keys must travel inside {DYNAMIC_FIELD_NAME}",
                        fd.field_name
                    ))
                } else {
                    FvError::invalid_parameter(format!(
                        "Attempt to insert an unexpected field `{}` to collection without enabling dynamic field",
                        fd.field_name
                    ))
                }
            })?
        };
        if by_field.insert(field.id, fd).is_some() {
            return Err(FvError::invalid_parameter(format!(
                "duplicated field name {} in the inserted data",
                fd.field_name
            )));
        }
    }
    let pk_field = schema.pk();
    let mut columns = Vec::with_capacity(schema.fields.len());
    let mut pks = None;
    for f in &schema.fields {
        let col = if f.is_primary && f.auto_id && pk_source == PkSource::Insert {
            if by_field.contains_key(&f.id) {
                return Err(FvError::invalid_parameter(format!(
                    "can not assign primary field data when auto id enabled: {}",
                    f.name
                )));
            }
            let first = p.alloc_ids(num_rows).await?;
            let ids: Vec<i64> = (first..first + n as i64).collect();
            let data = match f.data_type {
                DataType::Int64 => ColumnData::Int64(ids),
                _ => ColumnData::VarChar(ids.iter().map(|i| i.to_string()).collect()),
            };
            Column::new(f.id, data)
        } else if f.is_dynamic {
            match by_field.get(&f.id) {
                Some(fd) => Column::from_client_field_data(Some(fd), f, n)?,
                None => Column::new(f.id, ColumnData::Json(vec![serde_json::Value::Object(Default::default()); n])),
            }
        } else {
            match by_field.get(&f.id) {
                Some(fd) => Column::from_client_field_data(Some(fd), f, n)?,
                None if f.is_primary => {
                    return Err(FvError::invalid_parameter(format!(
                        "the primary key field {} is missing from the data",
                        f.name
                    )));
                }
                None if f.is_vector() => {
                    return Err(FvError::invalid_parameter(format!(
                        "Insert missed an field `{}` to collection",
                        f.name
                    )));
                }
                None => Column::from_client_field_data(None, f, n)?,
            }
        };
        if f.id == pk_field.id {
            pks = Some(match &col.data {
                ColumnData::Int64(v) => PkColumn::Int(v.clone()),
                ColumnData::VarChar(v) => PkColumn::Str(v.clone()),
                _ => return Err(FvError::internal("primary key column of unexpected type")),
            });
        }
        columns.push(col);
    }
    if let Some(d) = schema.dynamic() {
        let static_names: Vec<&str> = schema.user_fields().map(|f| f.name.as_str()).collect();
        if let Some(c) = columns.iter().find(|c| c.field_id == d.id)
            && let ColumnData::Json(rows) = &c.data
        {
            for row in rows {
                if let Some(obj) = row.as_object()
                    && let Some(k) = obj.keys().find(|k| static_names.contains(&k.as_str()))
                {
                    return Err(FvError::invalid_parameter(format!(
                        "dynamic field name cannot include the static field name: {k}"
                    )));
                }
            }
        }
    }
    Ok((columns, pks.ok_or_else(|| FvError::internal("schema without primary key"))?))
}

/// Row indices per shard.
fn route(pks: &PkColumn, shards: usize) -> BTreeMap<usize, Vec<usize>> {
    let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, k) in pks.iter().enumerate() {
        m.entry(k.shard(shards)).or_default().push(i);
    }
    m
}

fn take_keys(pks: &PkColumn, rows: &[usize]) -> PkColumn {
    match pks {
        PkColumn::Int(v) => PkColumn::Int(rows.iter().map(|&r| v[r]).collect()),
        PkColumn::Str(v) => PkColumn::Str(rows.iter().map(|&r| v[r].clone()).collect()),
    }
}

/// Publishes rows (and, for upserts, deletes of their keys) shard by shard.
async fn publish(
    p: &Proxy,
    coll: &Arc<Collection>,
    partition: i64,
    columns: Vec<Column>,
    pks: &PkColumn,
    delete_first: bool,
    row_bytes: u64,
) -> FvResult<Timestamp> {
    let shards = coll.info.vchannels.len().max(1);
    let routes = route(pks, shards);
    let calls = routes.into_iter().map(|(shard, rows)| {
        let vchannel = coll.info.vchannels[shard].clone();
        let pchannel = coll.info.pchannels[shard].clone();
        let inserts = InsertBatch {
            collection_id: coll.info.id,
            partition_id: partition,
            schema: coll.schema.clone(),
            columns: columns.iter().map(|c| c.take(&rows)).collect(),
            num_rows: rows.len(),
            row_bytes,
        };
        let deletes = delete_first.then(|| DeleteBatch {
            collection_id: coll.info.id,
            partition_id: ALL_PARTITIONS,
            keys: take_keys(pks, &rows),
        });
        async move { p.producers.produce(&pchannel, Produce { vchannel, deletes, inserts: Some(inserts) }).await }
    });
    let ts = futures::future::try_join_all(calls).await?;
    Ok(ts.into_iter().max().unwrap_or(0))
}

fn row_bytes(encoded: usize, rows: u32, coll: &Collection) -> u64 {
    ((encoded / rows.max(1) as usize) as u64).max(coll.schema.estimate_row_bytes() / 4).max(1)
}

pub async fn insert(p: &Proxy, req: InsertRequest) -> FvResult<MutationResult> {
    check_size(p, req.encoded_len())?;
    let coll = p.cache.get(&req.db_name, &req.collection_name).await?;
    let partition = coll.partition_id(&req.partition_name)?;
    let (columns, pks) = prepare_rows(p, &coll, &req.fields_data, req.num_rows, PkSource::Insert).await?;
    let ts =
        publish(p, &coll, partition, columns, &pks, false, row_bytes(req.encoded_len(), req.num_rows, &coll)).await?;
    let n = pks.len();
    Ok(MutationResult {
        status: Some(Default::default()),
        i_ds: Some(pks.to_ids()),
        succ_index: (0..n as u32).collect(),
        insert_cnt: n as i64,
        timestamp: ts,
        ..Default::default()
    })
}

pub async fn upsert(p: &Proxy, req: UpsertRequest) -> FvResult<MutationResult> {
    check_size(p, req.encoded_len())?;
    if req.partial_update {
        return Err(FvError::unimplemented("partial upsert"));
    }
    let coll = p.cache.get(&req.db_name, &req.collection_name).await?;
    let partition = coll.partition_id(&req.partition_name)?;
    let (columns, pks) = prepare_rows(p, &coll, &req.fields_data, req.num_rows, PkSource::Required).await?;
    // Milvus 2.6 refuses a batch that repeats a key: which row should win is ambiguous.
    let mut seen: HashSet<PrimaryKey> = HashSet::with_capacity(pks.len());
    if let Some(k) = pks.iter().find(|k| !seen.insert(k.clone())) {
        return Err(FvError::invalid_parameter(format!(
            "duplicate primary keys are not allowed in the same batch: {k}"
        )));
    }
    let ts =
        publish(p, &coll, partition, columns, &pks, true, row_bytes(req.encoded_len(), req.num_rows, &coll)).await?;
    let n = req.num_rows as usize;
    Ok(MutationResult {
        status: Some(Default::default()),
        i_ds: Some(pks.to_ids()),
        succ_index: (0..n as u32).collect(),
        upsert_cnt: n as i64,
        timestamp: ts,
        ..Default::default()
    })
}

pub async fn delete(p: &Proxy, req: DeleteRequest) -> FvResult<MutationResult> {
    let coll = p.cache.get(&req.db_name, &req.collection_name).await?;
    let partition =
        if req.partition_name.is_empty() { ALL_PARTITIONS } else { coll.partition_id(&req.partition_name)? };
    if req.expr.trim().is_empty() {
        return Err(FvError::invalid_parameter("delete plan can't be empty or always true : "));
    }
    let plan = fv_expr::compile(&req.expr, &coll.schema, &req.expr_template_values)
        .map_err(|e| FvError::invalid_parameter(format!("cannot parse expression: {}, error: {e}", req.expr)))?;
    let keys: Vec<PrimaryKey> = match plan.as_primary_keys(&coll.schema) {
        Some(k) => k,
        None => {
            let partitions = if partition == ALL_PARTITIONS { vec![] } else { vec![partition] };
            crate::read::matching_keys(
                p,
                &coll,
                &req.expr,
                &req.expr_template_values,
                partitions,
                req.consistency_level,
            )
            .await?
        }
    };
    if keys.is_empty() {
        return Ok(MutationResult { status: Some(Default::default()), delete_cnt: 0, ..Default::default() });
    }
    let pks = PkColumn::from_keys(&keys)
        .ok_or_else(|| FvError::new(Code::ParameterInvalid, "primary keys of mixed types"))?;
    let shards = coll.info.vchannels.len().max(1);
    let calls = route(&pks, shards).into_iter().map(|(shard, rows)| {
        let vchannel = coll.info.vchannels[shard].clone();
        let pchannel = coll.info.pchannels[shard].clone();
        let deletes =
            DeleteBatch { collection_id: coll.info.id, partition_id: partition, keys: take_keys(&pks, &rows) };
        async move { p.producers.produce(&pchannel, Produce { vchannel, deletes: Some(deletes), inserts: None }).await }
    });
    let ts = futures::future::try_join_all(calls).await?.into_iter().max().unwrap_or(0);
    Ok(MutationResult {
        status: Some(Default::default()),
        delete_cnt: keys.len() as i64,
        timestamp: ts,
        ..Default::default()
    })
}

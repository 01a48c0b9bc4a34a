//! Collections, partitions, indexes, load/release, flush and statistics: checks and
//! translation between the Milvus API and the coordinators' requests.

use std::collections::BTreeMap;

use fv_common::schema::Field;
use fv_common::ts::physical_ms;
use fv_common::{Code, DYNAMIC_FIELD_NAME, FvError, FvResult};
use fv_common::Metric;
use fv_proto::api;
use fv_proto::common::{IndexState, KeyValuePair, LoadState};
use fv_proto::fv::datacoord as dc;
use fv_proto::fv::index as ix;
use fv_proto::fv::querycoord as qc;
use fv_proto::fv::rootcoord as rc;
use fv_proto::schema::LongArray;
use fv_runtime::Clients;

use crate::meta_cache::{Collection, db_name};
use crate::{COORD_DEADLINE, Proxy};

fn forget(p: &Proxy, db: &str, name: &str, id: Option<i64>) {
    p.cache.invalidate(db, name);
    if let Some(id) = id {
        p.cache.invalidate_id(id);
        p.leaders.invalidate(id);
    }
}

pub async fn create_collection(p: &Proxy, req: api::CreateCollectionRequest) -> FvResult<()> {
    let r = rc::CreateCollectionRequest {
        db_name: db_name(&req.db_name),
        collection_name: req.collection_name.clone(),
        schema: req.schema,
        shards_num: req.shards_num,
        consistency_level: req.consistency_level,
        properties: req.properties,
        num_partitions: req.num_partitions,
    };
    p.ctx.rpc.rootcoord().create_collection(&r).retry(COORD_DEADLINE).await?;
    forget(p, &req.db_name, &req.collection_name, None);
    Ok(())
}

pub async fn drop_collection(p: &Proxy, req: api::DropCollectionRequest) -> FvResult<()> {
    let id = p.cache.get(&req.db_name, &req.collection_name).await.ok().map(|c| c.info.id);
    p.ctx
        .rpc
        .rootcoord()
        .drop_collection(&rc::DropCollectionRequest {
            db_name: db_name(&req.db_name),
            collection_name: req.collection_name.clone(),
        })
        .retry(COORD_DEADLINE)
        .await?;
    forget(p, &req.db_name, &req.collection_name, id);
    Ok(())
}

pub async fn has_collection(p: &Proxy, db: &str, name: &str) -> FvResult<bool> {
    p.cache.invalidate(db, name);
    match p.cache.get(db, name).await {
        Ok(_) => Ok(true),
        Err(e) if e.code == Code::CollectionNotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn describe_collection(
    p: &Proxy,
    req: api::DescribeCollectionRequest,
) -> FvResult<api::DescribeCollectionResponse> {
    let info = if req.collection_name.is_empty() && req.collection_id != 0 {
        p.ctx
            .rpc
            .rootcoord()
            .describe_collection(&rc::DescribeCollectionRequest {
                collection_id: req.collection_id,
                ..Default::default()
            })
            .retry(COORD_DEADLINE)
            .await?
            .collection
            .ok_or_else(|| FvError::collection_id_not_found(req.collection_id))?
    } else {
        p.cache.invalidate(&req.db_name, &req.collection_name);
        p.cache.get(&req.db_name, &req.collection_name).await?.info.clone()
    };
    let mut schema = info.schema.clone().unwrap_or_default();
    // Clients never see the hidden dynamic field (they would demand it on insert).
    schema.fields.retain(|f| !f.is_dynamic && f.name != DYNAMIC_FIELD_NAME);
    let name = schema.name.clone();
    Ok(api::DescribeCollectionResponse {
        status: Some(Default::default()),
        schema: Some(schema),
        collection_id: info.id,
        virtual_channel_names: info.vchannels.clone(),
        physical_channel_names: info.pchannels.clone(),
        created_timestamp: info.create_ts,
        created_utc_timestamp: physical_ms(info.create_ts),
        shards_num: info.shards_num,
        aliases: info.aliases.clone(),
        consistency_level: info.consistency_level,
        collection_name: name,
        properties: info.properties.clone(),
        db_name: info.db_name.clone(),
        num_partitions: info.partitions.len() as i64,
        update_timestamp: info.update_ts,
        update_timestamp_str: info.update_ts.to_string(),
        ..Default::default()
    })
}

pub async fn show_collections(p: &Proxy, req: api::ShowCollectionsRequest) -> FvResult<api::ShowCollectionsResponse> {
    let r = p
        .ctx
        .rpc
        .rootcoord()
        .show_collections(&rc::ShowCollectionsRequest { db_name: db_name(&req.db_name) })
        .retry(COORD_DEADLINE)
        .await?;
    let mut out = api::ShowCollectionsResponse { status: Some(Default::default()), ..Default::default() };
    let in_memory = req.r#type == api::ShowType::InMemory as i32;
    for c in r.collections {
        if in_memory {
            let st = p
                .ctx
                .rpc
                .querycoord()
                .get_load_state(&qc::GetLoadStateRequest { collection_id: c.id, partition_ids: vec![] })
                .retry(COORD_DEADLINE)
                .await?;
            if st.state != LoadState::Loaded as i32 {
                continue;
            }
        }
        out.collection_names.push(c.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default());
        out.collection_ids.push(c.id);
        out.created_timestamps.push(c.create_ts);
        out.created_utc_timestamps.push(physical_ms(c.create_ts));
        out.shards_num.push(c.shards_num);
    }
    Ok(out)
}

pub async fn rename_collection(p: &Proxy, req: api::RenameCollectionRequest) -> FvResult<()> {
    let id = p.cache.get(&req.db_name, &req.old_name).await.ok().map(|c| c.info.id);
    p.ctx
        .rpc
        .rootcoord()
        .rename_collection(&rc::RenameCollectionRequest {
            db_name: db_name(&req.db_name),
            old_name: req.old_name.clone(),
            new_name: req.new_name.clone(),
            new_db_name: req.new_db_name.clone(),
        })
        .retry(COORD_DEADLINE)
        .await?;
    forget(p, &req.db_name, &req.old_name, id);
    forget(p, &req.db_name, &req.new_name, None);
    Ok(())
}

pub async fn create_partition(p: &Proxy, db: &str, collection: &str, partition: &str) -> FvResult<()> {
    let id = p.cache.get(db, collection).await?.info.id;
    p.ctx
        .rpc
        .rootcoord()
        .create_partition(&rc::CreatePartitionRequest {
            db_name: db_name(db),
            collection_name: collection.to_string(),
            partition_name: partition.to_string(),
        })
        .retry(COORD_DEADLINE)
        .await?;
    forget(p, db, collection, Some(id));
    Ok(())
}

pub async fn drop_partition(p: &Proxy, db: &str, collection: &str, partition: &str) -> FvResult<()> {
    let id = p.cache.get(db, collection).await?.info.id;
    p.ctx
        .rpc
        .rootcoord()
        .drop_partition(&rc::DropPartitionRequest {
            db_name: db_name(db),
            collection_name: collection.to_string(),
            partition_name: partition.to_string(),
        })
        .retry(COORD_DEADLINE)
        .await?;
    forget(p, db, collection, Some(id));
    Ok(())
}

pub async fn has_partition(p: &Proxy, db: &str, collection: &str, partition: &str) -> FvResult<bool> {
    p.cache.invalidate(db, collection);
    let c = p.cache.get(db, collection).await?;
    Ok(c.info.partitions.iter().any(|x| x.name == partition))
}

pub async fn show_partitions(p: &Proxy, req: api::ShowPartitionsRequest) -> FvResult<api::ShowPartitionsResponse> {
    p.cache.invalidate(&req.db_name, &req.collection_name);
    let c = p.cache.get(&req.db_name, &req.collection_name).await?;
    let parts: Vec<_> = c
        .info
        .partitions
        .iter()
        .filter(|x| req.partition_names.is_empty() || req.partition_names.contains(&x.name))
        .collect();
    Ok(api::ShowPartitionsResponse {
        status: Some(Default::default()),
        partition_names: parts.iter().map(|x| x.name.clone()).collect(),
        partition_i_ds: parts.iter().map(|x| x.id).collect(),
        created_timestamps: parts.iter().map(|x| x.create_ts).collect(),
        created_utc_timestamps: parts.iter().map(|x| physical_ms(x.create_ts)).collect(),
        ..Default::default()
    })
}

/// The vector index of a collection, if any.
async fn vector_index(p: &Proxy, c: &Collection) -> FvResult<Option<ix::IndexStatus>> {
    match p
        .ctx
        .rpc
        .indexcoord()
        .describe_index(&ix::DescribeIndexRequest { collection_id: c.info.id, index_name: String::new() })
        .await
    {
        Ok(r) => {
            Ok(r.indexes.into_iter().find(|i| i.info.as_ref().is_some_and(|x| x.field_id == c.schema.vector().id)))
        }
        Err(e) if e.code == Code::IndexNotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn load_collection(p: &Proxy, db: &str, collection: &str, replicas: i32) -> FvResult<()> {
    let c = p.cache.get(db, collection).await?;
    if vector_index(p, &c).await?.is_none() {
        return Err(FvError::index_not_found(format!(
            "there is no vector index on field: [{}], please create index firstly: collection={collection}",
            c.schema.vector().name
        )));
    }
    p.ctx
        .rpc
        .querycoord()
        .load_collection(&qc::LoadCollectionRequest { collection_id: c.info.id, replica_number: replicas.max(1) })
        .retry(COORD_DEADLINE)
        .await?;
    p.leaders.invalidate(c.info.id);
    Ok(())
}

pub async fn release_collection(p: &Proxy, db: &str, collection: &str) -> FvResult<()> {
    let c = p.cache.get(db, collection).await?;
    p.ctx
        .rpc
        .querycoord()
        .release_collection(&qc::ReleaseCollectionRequest { collection_id: c.info.id })
        .retry(COORD_DEADLINE)
        .await?;
    p.leaders.invalidate(c.info.id);
    Ok(())
}

fn partition_ids(c: &Collection, names: &[String]) -> FvResult<Vec<i64>> {
    names.iter().map(|n| c.partition_id(n)).collect()
}

pub async fn load_partitions(p: &Proxy, db: &str, collection: &str, names: &[String], replicas: i32) -> FvResult<()> {
    let c = p.cache.get(db, collection).await?;
    if vector_index(p, &c).await?.is_none() {
        return Err(FvError::index_not_found(format!(
            "there is no vector index on field: [{}], please create index firstly: collection={collection}",
            c.schema.vector().name
        )));
    }
    let ids = partition_ids(&c, names)?;
    p.ctx
        .rpc
        .querycoord()
        .load_partitions(&qc::LoadPartitionsRequest {
            collection_id: c.info.id,
            partition_ids: ids,
            replica_number: replicas.max(1),
        })
        .retry(COORD_DEADLINE)
        .await?;
    p.leaders.invalidate(c.info.id);
    Ok(())
}

pub async fn release_partitions(p: &Proxy, db: &str, collection: &str, names: &[String]) -> FvResult<()> {
    let c = p.cache.get(db, collection).await?;
    let ids = partition_ids(&c, names)?;
    p.ctx
        .rpc
        .querycoord()
        .release_partitions(&qc::ReleasePartitionsRequest { collection_id: c.info.id, partition_ids: ids })
        .retry(COORD_DEADLINE)
        .await?;
    p.leaders.invalidate(c.info.id);
    Ok(())
}

pub async fn load_state(
    p: &Proxy,
    db: &str,
    collection: &str,
    partitions: &[String],
) -> FvResult<qc::GetLoadStateResponse> {
    let c = p.cache.get(db, collection).await?;
    let ids = partition_ids(&c, partitions)?;
    p.ctx
        .rpc
        .querycoord()
        .get_load_state(&qc::GetLoadStateRequest { collection_id: c.info.id, partition_ids: ids })
        .retry(COORD_DEADLINE)
        .await
}

/// Index parameters in one canonical list: index_type, metric_type, and `params` (a
/// JSON object of the build parameters). Accepts both the flat form MilvusClient sends
/// and the ORM's `params` JSON string.
pub fn normalize_index_params(extra: &[KeyValuePair], field: &Field) -> FvResult<Vec<KeyValuePair>> {
    let mut map: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for kv in extra {
        if kv.key == "params" {
            let v: serde_json::Value = serde_json::from_str(&kv.value)
                .map_err(|e| FvError::invalid_parameter(format!("index params are not valid JSON: {e}")))?;
            if let serde_json::Value::Object(o) = v {
                map.extend(o);
            }
        } else {
            map.insert(kv.key.clone(), serde_json::Value::String(kv.value.clone()));
        }
    }
    let text =
        |v: Option<serde_json::Value>| v.map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    let index_type = text(map.remove("index_type"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "AUTOINDEX".to_string())
        .to_ascii_uppercase();
    let metric = text(map.remove("metric_type"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "COSINE".to_string())
        .to_ascii_uppercase();
    if !field.is_vector() {
        return Err(FvError::new(
            Code::IndexNotSupported,
            format!("index on scalar field {} is not supported yet", field.name),
        ));
    }
    if Metric::parse(&metric).is_none() {
        return Err(FvError::new(
            Code::MetricNotFound,
            format!("metric type {metric} is not supported for float vectors, use L2, IP or COSINE"),
        ));
    }
    let params = serde_json::Value::Object(map.into_iter().collect()).to_string();
    Ok(vec![
        KeyValuePair { key: "index_type".into(), value: index_type },
        KeyValuePair { key: "metric_type".into(), value: metric },
        KeyValuePair { key: "params".into(), value: params },
    ])
}

pub async fn create_index(p: &Proxy, req: api::CreateIndexRequest) -> FvResult<()> {
    let c = p.cache.get(&req.db_name, &req.collection_name).await?;
    let field = c
        .schema
        .field(&req.field_name)
        .filter(|f| !f.is_dynamic)
        .ok_or_else(|| FvError::field_not_found(&req.field_name))?;
    let params = normalize_index_params(&req.extra_params, field)?;
    let index_name = if req.index_name.is_empty() { field.name.clone() } else { req.index_name.clone() };
    let type_params = c
        .info
        .schema
        .as_ref()
        .and_then(|s| s.fields.iter().find(|f| f.field_id == field.id))
        .map(|f| f.type_params.clone())
        .unwrap_or_default();
    p.ctx
        .rpc
        .indexcoord()
        .create_index(&ix::CreateIndexRequest {
            collection_id: c.info.id,
            field_id: field.id,
            index_name,
            type_params,
            index_params: params,
            user_index_params: req.extra_params,
        })
        .retry(COORD_DEADLINE)
        .await?;
    p.leaders.invalidate(c.info.id);
    Ok(())
}

/// Index parameters as Milvus 2.4+ describes them: the build parameters recorded in the
/// `params` JSON come back as pairs of their own (`nlist`, `m`, …) beside `index_type`
/// and `metric_type`.
fn flatten_index_params(stored: &[KeyValuePair]) -> Vec<KeyValuePair> {
    let mut out = Vec::with_capacity(stored.len() + 2);
    for kv in stored {
        match (kv.key.as_str(), serde_json::from_str::<serde_json::Value>(&kv.value)) {
            ("params", Ok(serde_json::Value::Object(o))) => out.extend(o.into_iter().map(|(k, v)| KeyValuePair {
                key: k,
                value: v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
            })),
            _ => out.push(kv.clone()),
        }
    }
    out
}

pub async fn describe_index(
    p: &Proxy,
    db: &str,
    collection: &str,
    field_name: &str,
    index_name: &str,
) -> FvResult<Vec<api::IndexDescription>> {
    let c = p.cache.get(db, collection).await?;
    let r = p
        .ctx
        .rpc
        .indexcoord()
        .describe_index(&ix::DescribeIndexRequest { collection_id: c.info.id, index_name: index_name.to_string() })
        .await?;
    let out: Vec<api::IndexDescription> = r
        .indexes
        .into_iter()
        .filter_map(|s| {
            let info = s.info?;
            let fname = c.schema.field_by_id(info.field_id)?.name.clone();
            (field_name.is_empty() || fname == field_name).then(|| api::IndexDescription {
                index_name: info.index_name,
                index_id: info.index_id,
                params: flatten_index_params(&info.index_params),
                field_name: fname,
                indexed_rows: s.indexed_rows,
                total_rows: s.total_rows,
                state: s.state,
                index_state_fail_reason: s.fail_reason,
                pending_index_rows: s.pending_rows,
                ..Default::default()
            })
        })
        .collect();
    if out.is_empty() {
        return Err(FvError::index_not_found(format!(
            "collection={collection}][field={field_name}][index={index_name}"
        )));
    }
    Ok(out)
}

pub async fn drop_index(p: &Proxy, db: &str, collection: &str, field_name: &str, index_name: &str) -> FvResult<()> {
    let c = p.cache.get(db, collection).await?;
    let st = p
        .ctx
        .rpc
        .querycoord()
        .get_load_state(&qc::GetLoadStateRequest { collection_id: c.info.id, partition_ids: vec![] })
        .retry(COORD_DEADLINE)
        .await?;
    if st.state == LoadState::Loaded as i32 || st.state == LoadState::Loading as i32 {
        return Err(FvError::invalid_parameter(format!(
            "index cannot be dropped, collection is loaded, please release it first: collection={collection}"
        )));
    }
    let name = if index_name.is_empty() {
        match describe_index(p, db, collection, field_name, "").await {
            Ok(d) => d.first().map(|d| d.index_name.clone()).unwrap_or_default(),
            Err(e) if e.code == Code::IndexNotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    } else {
        index_name.to_string()
    };
    p.ctx
        .rpc
        .indexcoord()
        .drop_index(&ix::DropIndexRequest { collection_id: c.info.id, index_name: name, partition_ids: vec![] })
        .retry(COORD_DEADLINE)
        .await?;
    Ok(())
}

pub async fn index_state(
    p: &Proxy,
    db: &str,
    collection: &str,
    field_name: &str,
    index_name: &str,
) -> FvResult<(i32, String, i64, i64)> {
    let d = describe_index(p, db, collection, field_name, index_name).await?;
    let first = d.first().ok_or_else(|| FvError::index_not_found(index_name))?;
    Ok((first.state, first.index_state_fail_reason.clone(), first.indexed_rows, first.total_rows))
}

pub async fn flush(p: &Proxy, req: api::FlushRequest) -> FvResult<api::FlushResponse> {
    let mut out =
        api::FlushResponse { status: Some(Default::default()), db_name: db_name(&req.db_name), ..Default::default() };
    for name in &req.collection_names {
        let c = p.cache.get(&req.db_name, name).await?;
        let r =
            p.ctx.rpc.datacoord().flush(&dc::FlushRequest { collection_id: c.info.id }).retry(COORD_DEADLINE).await?;
        out.coll_seg_i_ds.insert(name.clone(), LongArray { data: r.segment_ids });
        out.flush_coll_seg_i_ds.insert(name.clone(), LongArray { data: r.flushed_segment_ids });
        out.coll_seal_times.insert(name.clone(), physical_ms(r.flush_ts) as i64 / 1000);
        out.coll_flush_ts.insert(name.clone(), r.flush_ts);
    }
    Ok(out)
}

pub async fn flush_state(p: &Proxy, req: api::GetFlushStateRequest) -> FvResult<bool> {
    let r = p
        .ctx
        .rpc
        .datacoord()
        .get_flush_state(&dc::GetFlushStateRequest {
            segment_ids: req.segment_i_ds,
            flush_ts: req.flush_ts,
            collection_id: 0,
        })
        .retry(COORD_DEADLINE)
        .await?;
    Ok(r.flushed)
}

pub async fn row_count(p: &Proxy, db: &str, collection: &str, partitions: &[String]) -> FvResult<i64> {
    let c = p.cache.get(db, collection).await?;
    let ids = partition_ids(&c, partitions)?;
    Ok(p.ctx
        .rpc
        .datacoord()
        .get_collection_statistics(&dc::GetCollectionStatisticsRequest { collection_id: c.info.id, partition_ids: ids })
        .retry(COORD_DEADLINE)
        .await?
        .row_count)
}

pub fn index_state_name(s: i32) -> &'static str {
    IndexState::try_from(s).map(|s| s.as_str_name()).unwrap_or("IndexStateNone")
}

//! Create collection: prepare → create meta → watch channels → broadcast.

use fv_common::channel::vchannel_name;
use fv_common::schema::{prepare_new_schema, validate_name};
use fv_common::{DEFAULT_PARTITION_NAME, FvError, FvResult};
use fv_proto::fv::datacoord::WatchChannelsRequest;
use fv_proto::fv::meta::{CollectionInfo, CollectionState, PartitionInfo};
use fv_proto::fv::msg::MsgPosition;
use fv_proto::fv::rootcoord::create_collection_procedure::Step as S;
use fv_proto::fv::rootcoord::{CreateCollectionProcedure, CreateCollectionRequest};
use fv_proto::schema::CollectionSchema;
use fv_runtime::Clients;
use fv_runtime::procedure::Step;
use prost::Message;

use super::{COORD_CALL_DEADLINE, Ddl, resolve_db};
use crate::catalog;

pub fn start(request: CreateCollectionRequest) -> CreateCollectionProcedure {
    CreateCollectionProcedure { step: S::Prepare as i32, request: Some(request), info: None }
}

pub async fn step(p: &mut CreateCollectionProcedure, ddl: &Ddl) -> FvResult<Step> {
    match p.step() {
        S::Prepare => {
            let req = p.request.as_ref().ok_or_else(|| FvError::internal("create collection without request"))?;
            match prepare(ddl, req).await? {
                None => Ok(Step::Done),
                Some(info) => {
                    p.info = Some(info);
                    p.set_step(S::CreateMeta);
                    Ok(Step::Next)
                }
            }
        }
        S::CreateMeta => {
            let info = p.info.as_ref().ok_or_else(|| FvError::internal("create collection without prepared meta"))?;
            // Already there: this step ran before a crash that kept its state from
            // being saved.
            if ddl.catalog.read().any_by_id(info.id).is_none() {
                if !catalog::create(&ddl.ctx.meta, info).await? {
                    let name = info.schema.as_ref().map(|s| s.name.as_str()).unwrap_or_default();
                    return Ok(Step::Fail(FvError::invalid_parameter(format!("collection {name} already exists"))));
                }
                ddl.catalog.write().insert(info.clone());
                tracing::info!(
                    collection = info.schema.as_ref().map(|s| s.name.as_str()).unwrap_or_default(),
                    id = info.id,
                    shards = info.shards_num,
                    "collection created"
                );
            }
            p.set_step(S::WatchChannels);
            Ok(Step::Next)
        }
        S::WatchChannels => {
            let info = p.info.as_ref().ok_or_else(|| FvError::internal("create collection without prepared meta"))?;
            let watch = WatchChannelsRequest {
                collection_id: info.id,
                vchannels: info.vchannels.clone(),
                start_positions: info.start_positions.clone(),
            };
            if let Err(e) = ddl.ctx.rpc.datacoord().watch_channels(&watch).retry(COORD_CALL_DEADLINE).await {
                // datacoord reconciles with rootcoord periodically and will watch them later.
                tracing::warn!(error = %e, collection_id = info.id, "datacoord did not take the new channels yet");
            }
            p.set_step(S::Broadcast);
            Ok(Step::Next)
        }
        S::Broadcast => {
            if let Some(info) = &p.info {
                ddl.notify_changed(info).await;
            }
            Ok(Step::Done)
        }
    }
}

/// Checks the request and allocates what the collection needs; `None` when an
/// identical collection exists already (creating it again succeeds, as in Milvus).
async fn prepare(ddl: &Ddl, req: &CreateCollectionRequest) -> FvResult<Option<CollectionInfo>> {
    let db = resolve_db(&req.db_name)?;
    validate_name("collection", &req.collection_name)?;
    let schema = CollectionSchema::decode(req.schema.as_slice())
        .map_err(|e| FvError::invalid_parameter(format!("cannot decode the collection schema: {e}")))?;
    let schema = prepare_new_schema(schema, &req.collection_name)?;
    let max_shards = ddl.ctx.config.rootcoord.max_shards;
    let shards = if req.shards_num <= 0 { 1 } else { req.shards_num };
    if shards > max_shards {
        return Err(FvError::invalid_parameter(format!("maximum shards's number should be limited to {max_shards}")));
    }
    if let Some(existing) = ddl.catalog.read().by_name(&db, &req.collection_name) {
        let same = existing.shards_num == shards && existing.schema.as_ref().is_some_and(|s| same_schema(s, &schema));
        return if same {
            Ok(None)
        } else {
            Err(FvError::invalid_parameter(format!(
                "create duplicate collection with different parameters, collection: {}",
                req.collection_name
            )))
        };
    }
    let ids = ddl.tso.alloc_id(2).await?;
    let (collection_id, partition_id) = (ids, ids + 1);
    let ts = ddl.tso.alloc_ts(1).await?;
    let pchannels = ddl.choose_pchannels(shards as usize);
    let vchannels: Vec<String> =
        pchannels.iter().enumerate().map(|(i, p)| vchannel_name(p, collection_id, i)).collect();
    let mut start_positions = Vec::with_capacity(pchannels.len());
    for p in &pchannels {
        ddl.ctx.broker.ensure_topic(p).await.map_err(fv_runtime::errors::broker_err)?;
        let seq = ddl.ctx.broker.latest_position(p).await.map_err(fv_runtime::errors::broker_err)?;
        start_positions.push(MsgPosition { pchannel: p.clone(), seq, timestamp: ts });
    }
    Ok(Some(CollectionInfo {
        id: collection_id,
        db_name: db,
        schema: Some(schema),
        create_ts: ts,
        shards_num: shards,
        vchannels,
        pchannels,
        partitions: vec![PartitionInfo { id: partition_id, name: DEFAULT_PARTITION_NAME.to_string(), create_ts: ts }],
        consistency_level: req.consistency_level,
        properties: req.properties.clone(),
        state: CollectionState::CollectionCreated as i32,
        update_ts: ts,
        aliases: vec![],
        num_partitions: 1,
        start_positions,
    }))
}

/// Whether two prepared schemas describe the same collection (for idempotent create).
fn same_schema(a: &CollectionSchema, b: &CollectionSchema) -> bool {
    a.fields.len() == b.fields.len()
        && a.enable_dynamic_field == b.enable_dynamic_field
        && a.fields.iter().zip(&b.fields).all(|(x, y)| {
            x.name == y.name
                && x.data_type == y.data_type
                && x.is_primary_key == y.is_primary_key
                && x.auto_id == y.auto_id
                && x.nullable == y.nullable
                && x.type_params == y.type_params
                && x.default_value == y.default_value
        })
}

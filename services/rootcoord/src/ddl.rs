//! DDL execution. Every method runs inside `DdlActor`'s exclusive handler, so DDL
//! requests are applied one at a time, each stamped with a fresh timestamp: the order of
//! the timestamps is the order of the changes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fv_common::channel::{pchannel_name, vchannel_name};
use fv_common::schema::{Schema, prepare_new_schema, validate_name};
use fv_common::{DEFAULT_DB_NAME, DEFAULT_PARTITION_NAME, FvError, FvResult};
use fv_proto::common::LoadState;
use fv_proto::fv::datacoord::{DropCollectionDataRequest, WatchChannelsRequest};
use fv_proto::fv::index::DropCollectionIndexesRequest;
use fv_proto::fv::meta::{CollectionInfo, CollectionState, PartitionInfo};
use fv_proto::fv::msg::MsgPosition;
use fv_proto::fv::querycoord::{GetLoadStateRequest, ReleaseCollectionRequest};
use fv_proto::fv::rootcoord::{
    CollectionMetaChanged, CreateCollectionRequest, CreatePartitionRequest, DropCollectionRequest,
    DropPartitionRequest, RenameCollectionRequest,
};
use fv_proto::schema::CollectionSchema;
use fv_runtime::rpcs::{datacoord, indexcoord, querycoord};
use fv_runtime::{RoleContext, Target};
use parking_lot::RwLock;
use prost::Message;

use crate::actor::TsoHandle;
use crate::catalog::{self, Catalog};

pub const COLLECTION_EVENT_SUBJECT: &str = "fv.evt.collection";
pub const MAX_PARTITIONS: usize = 1024;
const COORD_CALL_DEADLINE: Duration = Duration::from_secs(15);

pub struct Ddl {
    pub ctx: RoleContext,
    pub catalog: Arc<RwLock<Catalog>>,
    pub tso: TsoHandle,
}

/// "" means the default database; Ferrovec serves only that one for now.
pub fn resolve_db(db: &str) -> FvResult<String> {
    if db.is_empty() || db == DEFAULT_DB_NAME {
        Ok(DEFAULT_DB_NAME.to_string())
    } else {
        Err(FvError::database_not_found(db))
    }
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

impl Ddl {
    async fn notify_changed(&self, info: &CollectionInfo) {
        let ev = CollectionMetaChanged {
            db_name: info.db_name.clone(),
            collection_name: info.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            collection_id: info.id,
            timestamp: info.update_ts,
        };
        if let Err(e) =
            self.ctx.broker.notify(COLLECTION_EVENT_SUBJECT, Bytes::from(ev.encode_to_vec()), Vec::new()).await
        {
            tracing::warn!(error = %e, "cannot broadcast collection change");
        }
    }

    fn live_by_name(&self, db: &str, name: &str) -> FvResult<Arc<CollectionInfo>> {
        self.catalog.read().by_name(db, name).ok_or_else(|| FvError::collection_not_found(db, name))
    }

    /// Picks the least used pchannels for `shards` new vchannels.
    fn choose_pchannels(&self, shards: usize) -> Vec<String> {
        let mut usage = self.catalog.read().pchannel_usage();
        let n = self.ctx.config.rootcoord.dml_channels;
        (0..shards)
            .map(|_| {
                let best = (0..n)
                    .map(pchannel_name)
                    .min_by_key(|p| {
                        (usage.get(p).copied().unwrap_or(0), fv_common::channel::pchannel_index(p).unwrap_or(0))
                    })
                    .expect("at least one pchannel is configured");
                *usage.entry(best.clone()).or_insert(0) += 1;
                best
            })
            .collect()
    }

    pub async fn create_collection(&self, req: CreateCollectionRequest) -> FvResult<()> {
        let db = resolve_db(&req.db_name)?;
        validate_name("collection", &req.collection_name)?;
        let schema = CollectionSchema::decode(req.schema.as_slice())
            .map_err(|e| FvError::invalid_parameter(format!("cannot decode the collection schema: {e}")))?;
        let schema = prepare_new_schema(schema, &req.collection_name)?;
        let max_shards = self.ctx.config.rootcoord.max_shards;
        let shards = if req.shards_num <= 0 { 1 } else { req.shards_num };
        if shards > max_shards {
            return Err(FvError::invalid_parameter(format!(
                "maximum shards's number should be limited to {max_shards}"
            )));
        }
        if let Some(existing) = self.catalog.read().by_name(&db, &req.collection_name) {
            let same =
                existing.shards_num == shards && existing.schema.as_ref().is_some_and(|s| same_schema(s, &schema));
            return if same {
                Ok(())
            } else {
                Err(FvError::invalid_parameter(format!(
                    "create duplicate collection with different parameters, collection: {}",
                    req.collection_name
                )))
            };
        }
        let ids = self.tso.alloc_id(2).await?;
        let (collection_id, partition_id) = (ids, ids + 1);
        let ts = self.tso.alloc_ts(1).await?;
        let pchannels = self.choose_pchannels(shards as usize);
        let vchannels: Vec<String> =
            pchannels.iter().enumerate().map(|(i, p)| vchannel_name(p, collection_id, i)).collect();
        let mut start_positions = Vec::with_capacity(pchannels.len());
        for p in &pchannels {
            self.ctx.broker.ensure_topic(p).await.map_err(|e| FvError::unavailable(format!("log broker: {e}")))?;
            let seq = self
                .ctx
                .broker
                .latest_position(p)
                .await
                .map_err(|e| FvError::unavailable(format!("log broker: {e}")))?;
            start_positions.push(MsgPosition { pchannel: p.clone(), seq, timestamp: ts });
        }
        let info = CollectionInfo {
            id: collection_id,
            db_name: db.clone(),
            schema: Some(schema),
            create_ts: ts,
            shards_num: shards,
            vchannels: vchannels.clone(),
            pchannels,
            partitions: vec![PartitionInfo {
                id: partition_id,
                name: DEFAULT_PARTITION_NAME.to_string(),
                create_ts: ts,
            }],
            consistency_level: req.consistency_level,
            properties: req.properties,
            state: CollectionState::CollectionCreated as i32,
            update_ts: ts,
            aliases: vec![],
            num_partitions: 1,
            start_positions: start_positions.clone(),
        };
        if !catalog::create(&self.ctx.meta, &info).await? {
            return Err(FvError::invalid_parameter(format!("collection {} already exists", req.collection_name)));
        }
        self.catalog.write().insert(info.clone());
        tracing::info!(collection = %req.collection_name, id = collection_id, shards, "collection created");
        let watch = WatchChannelsRequest { collection_id, vchannels, start_positions };
        if let Err(e) =
            self.ctx.rpc.call_retry::<datacoord::WatchChannels>(Target::Coord, &watch, COORD_CALL_DEADLINE).await
        {
            // datacoord reconciles with rootcoord periodically and will watch them later.
            tracing::warn!(error = %e, collection_id, "datacoord did not take the new channels yet");
        }
        self.notify_changed(&info).await;
        Ok(())
    }

    pub async fn drop_collection(&self, req: DropCollectionRequest) -> FvResult<()> {
        let db = resolve_db(&req.db_name)?;
        let Some(existing) = self.catalog.read().by_name(&db, &req.collection_name) else {
            // Dropping a collection that does not exist succeeds, as in Milvus.
            return Ok(());
        };
        let mut info = (*existing).clone();
        info.state = CollectionState::CollectionDropping as i32;
        info.update_ts = self.tso.alloc_ts(1).await?;
        catalog::save(&self.ctx.meta, &info, None).await?;
        self.catalog.write().insert(info.clone());
        self.notify_changed(&info).await;
        tracing::info!(collection = %req.collection_name, id = info.id, "collection dropping");
        self.finish_drop(&info).await
    }

    /// Releases, forgets the data of, and removes a collection marked Dropping.
    pub async fn finish_drop(&self, info: &CollectionInfo) -> FvResult<()> {
        let rpc = &self.ctx.rpc;
        rpc.call_retry::<querycoord::ReleaseCollection>(
            Target::Coord,
            &ReleaseCollectionRequest { collection_id: info.id },
            COORD_CALL_DEADLINE,
        )
        .await?;
        rpc.call_retry::<datacoord::DropCollectionData>(
            Target::Coord,
            &DropCollectionDataRequest { collection_id: info.id, partition_ids: vec![] },
            COORD_CALL_DEADLINE,
        )
        .await?;
        rpc.call_retry::<indexcoord::DropCollectionIndexes>(
            Target::Coord,
            &DropCollectionIndexesRequest { collection_id: info.id },
            COORD_CALL_DEADLINE,
        )
        .await?;
        catalog::remove(&self.ctx.meta, info).await?;
        self.catalog.write().remove(info.id);
        tracing::info!(id = info.id, "collection dropped");
        Ok(())
    }

    /// Completes drops interrupted by a failure or a restart.
    pub async fn finish_pending_drops(&self) {
        let pending: Vec<_> = self
            .catalog
            .read()
            .all()
            .into_iter()
            .filter(|c| c.state != CollectionState::CollectionCreated as i32)
            .collect();
        for info in pending {
            if let Err(e) = self.finish_drop(&info).await {
                tracing::warn!(error = %e, id = info.id, "collection drop not finished yet");
            }
        }
    }

    pub async fn rename_collection(&self, req: RenameCollectionRequest) -> FvResult<()> {
        let db = resolve_db(&req.db_name)?;
        if !req.new_db_name.is_empty() {
            resolve_db(&req.new_db_name)?;
        }
        validate_name("collection", &req.new_name)?;
        let existing = self.live_by_name(&db, &req.old_name)?;
        if req.old_name == req.new_name {
            return Ok(());
        }
        if self.catalog.read().by_name(&db, &req.new_name).is_some() {
            return Err(FvError::invalid_parameter(format!(
                "duplicated new collection name {db}:{} with other collection name or alias",
                req.new_name
            )));
        }
        let mut info = (*existing).clone();
        if let Some(s) = info.schema.as_mut() {
            s.name = req.new_name.clone();
        }
        info.update_ts = self.tso.alloc_ts(1).await?;
        if !catalog::save(&self.ctx.meta, &info, Some((&req.old_name, &req.new_name))).await? {
            return Err(FvError::invalid_parameter(format!("collection {} already exists", req.new_name)));
        }
        {
            let mut cat = self.catalog.write();
            cat.remove(info.id);
            cat.insert(info.clone());
        }
        let mut old = info.clone();
        if let Some(s) = old.schema.as_mut() {
            s.name = req.old_name.clone();
        }
        self.notify_changed(&old).await;
        self.notify_changed(&info).await;
        Ok(())
    }

    pub async fn create_partition(&self, req: CreatePartitionRequest) -> FvResult<()> {
        let db = resolve_db(&req.db_name)?;
        validate_name("partition", &req.partition_name)?;
        let existing = self.live_by_name(&db, &req.collection_name)?;
        if existing.partitions.iter().any(|p| p.name == req.partition_name) {
            return Ok(());
        }
        if existing.partitions.len() >= MAX_PARTITIONS {
            return Err(FvError::invalid_parameter(format!(
                "partition number ({}) exceeds max configuration ({MAX_PARTITIONS})",
                existing.partitions.len()
            )));
        }
        let id = self.tso.alloc_id(1).await?;
        let ts = self.tso.alloc_ts(1).await?;
        let mut info = (*existing).clone();
        info.partitions.push(PartitionInfo { id, name: req.partition_name.clone(), create_ts: ts });
        info.num_partitions = info.partitions.len() as i32;
        info.update_ts = ts;
        catalog::save(&self.ctx.meta, &info, None).await?;
        self.catalog.write().insert(info.clone());
        self.notify_changed(&info).await;
        Ok(())
    }

    pub async fn drop_partition(&self, req: DropPartitionRequest) -> FvResult<()> {
        let db = resolve_db(&req.db_name)?;
        let existing = self.live_by_name(&db, &req.collection_name)?;
        if req.partition_name == DEFAULT_PARTITION_NAME {
            return Err(FvError::invalid_parameter("default partition cannot be deleted"));
        }
        let Some(part) = existing.partitions.iter().find(|p| p.name == req.partition_name).cloned() else {
            return Ok(());
        };
        let load = self
            .ctx
            .rpc
            .call_retry::<querycoord::GetLoadState>(
                Target::Coord,
                &GetLoadStateRequest { collection_id: existing.id, partition_ids: vec![part.id] },
                COORD_CALL_DEADLINE,
            )
            .await?;
        if load.state == LoadState::Loaded as i32 || load.state == LoadState::Loading as i32 {
            return Err(FvError::invalid_parameter(format!(
                "partition cannot be dropped, partition is loaded, please release it first[partition={}]",
                req.partition_name
            )));
        }
        let mut info = (*existing).clone();
        info.partitions.retain(|p| p.id != part.id);
        info.num_partitions = info.partitions.len() as i32;
        info.update_ts = self.tso.alloc_ts(1).await?;
        catalog::save(&self.ctx.meta, &info, None).await?;
        self.catalog.write().insert(info.clone());
        self.notify_changed(&info).await;
        self.ctx
            .rpc
            .call_retry::<datacoord::DropCollectionData>(
                Target::Coord,
                &DropCollectionDataRequest { collection_id: info.id, partition_ids: vec![part.id] },
                COORD_CALL_DEADLINE,
            )
            .await?;
        Ok(())
    }
}

/// Parses the stored schema of a collection (used by readers that need typed fields).
pub fn parsed_schema(info: &CollectionInfo) -> FvResult<Schema> {
    Schema::from_proto(info.schema.as_ref().ok_or_else(|| FvError::internal("collection without schema"))?)
}

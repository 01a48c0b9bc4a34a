//! querycoord's [`Core`]: the load intents (persisted) and what is known of each
//! loaded collection (progress, shard leaders). Load/release and reconciliation rounds
//! ([`crate::reconcile`]) run one at a time on the role's exclusive actor (see
//! [`crate::service`]); GetLoadState and GetShardLeaders read the state directly.

use std::collections::{BTreeMap, HashMap};
use std::future::IntoFuture;
use std::time::Duration;

use fv_common::{Code, CollectionId, FvError, FvResult, PartitionId, SegmentId};
use fv_metastore::TxnOp;
use fv_proto::common::LoadState;
use fv_proto::fv::index::GetSegmentIndexesRequest;
use fv_proto::fv::meta::{CollectionInfo, LoadInfo, LoadStatus, SegmentIndexTask};
use fv_proto::fv::querycoord::{
    GetLoadStateResponse, GetShardLeadersResponse, LoadCollectionRequest, LoadPartitionsRequest,
    ReleaseCollectionRequest, ReleasePartitionsRequest, ShardLeader,
};
use fv_proto::fv::querynode::{
    GetDataDistributionRequest, GetDataDistributionResponse, ReleaseSegmentsRequest, UnsubDmChannelRequest,
    WatchDmChannelRequest,
};
use fv_proto::fv::rootcoord::DescribeCollectionRequest;
use fv_runtime::Clients;
use fv_runtime::errors::meta_err;
use fv_runtime::procedure::ProcedureStore;
use fv_runtime::rpc::{COORD_CALL_TIMEOUT, Role};
use fv_runtime::{RoleContext, session};
use parking_lot::RwLock;
use prost::Message;

const LOAD_PREFIX: &str = "querycoord/load/";
/// Where unfinished distribution procedures are kept (see [`crate::actions`]).
const PROCEDURE_PREFIX: &str = "querycoord/procedure/";

fn load_key(c: CollectionId) -> String {
    format!("{LOAD_PREFIX}{c}")
}

#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub info: LoadInfo,
    pub progress: i64,
    pub leaders: Vec<ShardLeader>,
    /// Fully served at some point since this load (from the persisted status after a
    /// restart): a vchannel without a delegator then lost it (see `planner::plan`).
    pub served_before: bool,
}

pub struct Core {
    pub ctx: RoleContext,
    pub loads: RwLock<BTreeMap<CollectionId, Loaded>>,
    /// When each channel move under way started (vchannel -> start), to log how long
    /// moves take. In memory only: a move resumed after a restart is timed from then.
    pub(crate) channel_moves: parking_lot::Mutex<HashMap<String, std::time::Instant>>,
    pub(crate) procedures: ProcedureStore,
}

impl Core {
    pub async fn recover(ctx: RoleContext) -> FvResult<Core> {
        let kvs = ctx.meta.scan_prefix(LOAD_PREFIX).await.map_err(meta_err)?;
        let mut loads = BTreeMap::new();
        for kv in kvs {
            let mut info =
                LoadInfo::decode(kv.value).map_err(|e| FvError::internal(format!("corrupt load info: {e}")))?;
            let served_before = info.status == LoadStatus::Loaded as i32;
            // Nothing is served after a restart until the nodes report it again.
            info.status = LoadStatus::Loading as i32;
            loads.insert(info.collection_id, Loaded { info, progress: 0, leaders: vec![], served_before });
        }
        let procedures = ProcedureStore::new(ctx.meta.clone(), PROCEDURE_PREFIX);
        Ok(Core { ctx, loads: RwLock::new(loads), channel_moves: Default::default(), procedures })
    }

    pub(crate) async fn persist(&self, info: &LoadInfo) -> FvResult<()> {
        self.ctx.meta.put(&load_key(info.collection_id), info.encode_to_vec().into(), 0).await.map_err(meta_err)?;
        Ok(())
    }

    pub async fn load_collection(&self, req: LoadCollectionRequest) -> FvResult<()> {
        let existing = self.loads.read().get(&req.collection_id).map(|l| l.info.clone());
        let info = match existing {
            Some(i) if i.whole_collection => return Ok(()),
            Some(mut i) => {
                i.whole_collection = true;
                i.partition_ids.clear();
                i
            }
            None => LoadInfo {
                collection_id: req.collection_id,
                partition_ids: vec![],
                status: LoadStatus::Loading as i32,
                replica_number: req.replica_number.max(1),
                whole_collection: true,
            },
        };
        self.persist(&info).await?;
        self.loads.write().entry(req.collection_id).or_default().info = info;
        Ok(())
    }

    pub async fn load_partitions(&self, req: LoadPartitionsRequest) -> FvResult<()> {
        let existing = self.loads.read().get(&req.collection_id).map(|l| l.info.clone());
        let mut info = existing.unwrap_or(LoadInfo {
            collection_id: req.collection_id,
            status: LoadStatus::Loading as i32,
            replica_number: req.replica_number.max(1),
            ..Default::default()
        });
        if info.whole_collection {
            return Ok(());
        }
        let before = info.partition_ids.len();
        for p in req.partition_ids {
            if !info.partition_ids.contains(&p) {
                info.partition_ids.push(p);
            }
        }
        if info.partition_ids.len() != before {
            info.status = LoadStatus::Loading as i32;
        }
        self.persist(&info).await?;
        let mut loads = self.loads.write();
        let l = loads.entry(req.collection_id).or_default();
        l.info = info;
        Ok(())
    }

    pub async fn release_collection(&self, req: ReleaseCollectionRequest) -> FvResult<()> {
        self.ctx
            .meta
            .txn(fv_metastore::Txn {
                compares: vec![],
                success: vec![TxnOp::delete(load_key(req.collection_id))],
                failure: vec![],
            })
            .await
            .map_err(meta_err)?;
        self.loads.write().remove(&req.collection_id);
        let views = self.views().await?;
        self.release_everything_of(req.collection_id, &views).await;
        Ok(())
    }

    pub async fn release_partitions(&self, req: ReleasePartitionsRequest) -> FvResult<()> {
        let Some(mut info) = self.loads.read().get(&req.collection_id).map(|l| l.info.clone()) else { return Ok(()) };
        if info.whole_collection {
            // Keep the other partitions loaded: turn the whole-collection load into a list.
            let desc = self.describe(req.collection_id).await?;
            info.whole_collection = false;
            info.partition_ids = desc.partitions.iter().map(|p| p.id).collect();
        }
        info.partition_ids.retain(|p| !req.partition_ids.contains(p));
        if info.partition_ids.is_empty() {
            return self.release_collection(ReleaseCollectionRequest { collection_id: req.collection_id }).await;
        }
        self.persist(&info).await?;
        if let Some(l) = self.loads.write().get_mut(&req.collection_id) {
            l.info = info.clone();
        }
        // Delegators narrow their partitions; the next round releases the segments.
        let views = self.views().await?;
        let desc = self.describe(req.collection_id).await?;
        for v in &views {
            for c in v.channels.iter().filter(|c| c.collection_id == req.collection_id) {
                let req = WatchDmChannelRequest {
                    collection: Some(desc.clone()),
                    channel: Some(fv_proto::fv::datacoord::VchannelInfo {
                        collection_id: c.collection_id,
                        vchannel: c.vchannel.clone(),
                        ..Default::default()
                    }),
                    partition_ids: info.partition_ids.clone(),
                    whole_collection: false,
                    standby: false,
                };
                let _ = self.ctx.rpc.querynode(v.node_id).watch_dm_channel(&req).await;
            }
        }
        self.reconcile().await
    }

    pub(crate) async fn describe(&self, id: CollectionId) -> FvResult<CollectionInfo> {
        let r = self
            .ctx
            .rpc
            .rootcoord()
            .describe_collection(&DescribeCollectionRequest { collection_id: id, ..Default::default() })
            .timeout(COORD_CALL_TIMEOUT)
            .await?;
        r.collection.ok_or_else(|| FvError::collection_id_not_found(id))
    }

    /// The finished vector index build of each segment of a collection.
    pub(crate) async fn finished_builds(&self, cid: CollectionId) -> FvResult<HashMap<SegmentId, SegmentIndexTask>> {
        let r = self
            .ctx
            .rpc
            .indexcoord()
            .get_segment_indexes(&GetSegmentIndexesRequest { collection_id: cid, segment_ids: vec![] })
            .timeout(COORD_CALL_TIMEOUT)
            .await?;
        Ok(r.tasks.into_iter().map(|t| (t.segment_id, t)).collect())
    }

    /// What every live query node holds.
    pub(crate) async fn views(&self) -> FvResult<Vec<GetDataDistributionResponse>> {
        let live = session::list(&self.ctx.meta, Role::QueryNode).await?;
        let calls = live.iter().map(|s| {
            self.ctx
                .rpc
                .querynode(s.node_id)
                .get_data_distribution(&GetDataDistributionRequest {})
                .timeout(Duration::from_secs(5))
                .into_future()
        });
        Ok(futures::future::join_all(calls).await.into_iter().filter_map(|r| r.ok()).collect())
    }

    pub(crate) async fn release_everything_of(&self, collection: CollectionId, views: &[GetDataDistributionResponse]) {
        for v in views {
            for c in v.channels.iter().filter(|c| c.collection_id == collection) {
                let req = UnsubDmChannelRequest { collection_id: collection, vchannel: c.vchannel.clone() };
                let _ = self.ctx.rpc.querynode(v.node_id).unsub_dm_channel(&req).await;
            }
            let segs: Vec<i64> =
                v.segments.iter().filter(|s| s.collection_id == collection).map(|s| s.segment_id).collect();
            if !segs.is_empty() {
                let req = ReleaseSegmentsRequest { collection_id: collection, segment_ids: segs };
                let _ = self.ctx.rpc.querynode(v.node_id).release_segments(&req).await;
            }
        }
    }

    pub fn load_state(&self, cid: CollectionId, partitions: &[PartitionId]) -> GetLoadStateResponse {
        let loads = self.loads.read();
        let (state, progress, loaded_partition_ids) = match loads.get(&cid) {
            None => (LoadState::NotLoad, 0, vec![]),
            Some(l) => {
                let covers = l.info.whole_collection || partitions.iter().all(|p| l.info.partition_ids.contains(p));
                if !covers {
                    (LoadState::NotLoad, 0, l.info.partition_ids.clone())
                } else if l.info.status == LoadStatus::Loaded as i32 {
                    (LoadState::Loaded, 100, l.info.partition_ids.clone())
                } else {
                    (LoadState::Loading, l.progress, l.info.partition_ids.clone())
                }
            }
        };
        GetLoadStateResponse { status: Some(Default::default()), state: state as i32, progress, loaded_partition_ids }
    }

    pub fn shard_leaders(&self, cid: CollectionId) -> FvResult<GetShardLeadersResponse> {
        let loads = self.loads.read();
        let l = loads.get(&cid).ok_or_else(|| {
            FvError::new(Code::CollectionNotLoaded, format!("collection not loaded[collection={cid}]"))
        })?;
        if l.info.status != LoadStatus::Loaded as i32 {
            return Err(FvError::new(
                Code::CollectionNotFullyLoaded,
                format!("collection not fully loaded[collection={cid}]"),
            ));
        }
        Ok(GetShardLeadersResponse {
            status: Some(Default::default()),
            shards: l.leaders.clone(),
            loaded_partition_ids: if l.info.whole_collection { vec![] } else { l.info.partition_ids.clone() },
        })
    }
}

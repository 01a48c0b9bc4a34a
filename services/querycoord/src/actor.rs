//! `QueryCoordActor` serialises load/release and reconciliation rounds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use fv_common::{Code, CollectionId, FvError, FvResult, PartitionId, SegmentId};
use fv_metastore::TxnOp;
use fv_proto::common::LoadState;
use fv_proto::fv::datacoord::GetRecoveryInfoRequest;
use fv_proto::fv::index::GetSegmentIndexesRequest;
use fv_proto::fv::meta::{CollectionInfo, LoadInfo, LoadStatus, SegmentIndexTask};
use fv_proto::fv::querycoord::{
    GetDistributionResponse, GetLoadStateResponse, GetShardLeadersResponse, LoadCollectionRequest,
    LoadPartitionsRequest, ReleaseCollectionRequest, ReleasePartitionsRequest, SegmentReplica, ShardDistribution,
    ShardLeader,
};
use fv_proto::fv::querynode::{
    GetDataDistributionRequest, GetDataDistributionResponse, LoadSegmentsRequest, ReleaseSegmentsRequest,
    SegmentDistribution, SyncAction, SyncDistributionRequest, SyncType, UnsubDmChannelRequest, WatchDmChannelRequest,
};
use fv_proto::fv::rootcoord::DescribeCollectionRequest;
use fv_runtime::rpc::{COORD_CALL_TIMEOUT, Role};
use fv_runtime::rpcs::{datacoord, indexcoord, querynode, rootcoord};
use fv_runtime::{RoleContext, Target, atomic_handlers, session};
use parking_lot::RwLock;
use prost::Message;

use crate::planner::{self, Action, TargetSegment};

const LOAD_PREFIX: &str = "querycoord/load/";
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn load_key(c: CollectionId) -> String {
    format!("{LOAD_PREFIX}{c}")
}

fn meta_err(e: fv_metastore::MetaError) -> FvError {
    FvError::unavailable(format!("meta store: {e}")).retriable(e.is_retriable())
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
    channel_moves: parking_lot::Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a leader switch waits for the standby delegator to reach the old leader's
/// serviceable time; the planner only starts a switch within
/// [`planner::CATCH_UP_SLACK`] of it, so this is rarely approached.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

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
        Ok(Core { ctx, loads: RwLock::new(loads), channel_moves: Default::default() })
    }

    async fn persist(&self, info: &LoadInfo) -> FvResult<()> {
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
                let _ = self.ctx.rpc.call::<querynode::WatchDmChannel>(Target::Node(v.node_id), &req).await;
            }
        }
        self.reconcile(()).await
    }

    async fn describe(&self, id: CollectionId) -> FvResult<CollectionInfo> {
        let r = self
            .ctx
            .rpc
            .call_with_timeout::<rootcoord::DescribeCollection>(
                Target::Coord,
                &DescribeCollectionRequest { collection_id: id, ..Default::default() },
                COORD_CALL_TIMEOUT,
            )
            .await?;
        r.collection.ok_or_else(|| FvError::collection_id_not_found(id))
    }

    /// What every live query node holds.
    /// The finished vector index build of each segment of a collection.
    async fn finished_builds(&self, cid: CollectionId) -> FvResult<HashMap<SegmentId, SegmentIndexTask>> {
        let r = self
            .ctx
            .rpc
            .call_with_timeout::<indexcoord::GetSegmentIndexes>(
                Target::Coord,
                &GetSegmentIndexesRequest { collection_id: cid, segment_ids: vec![] },
                COORD_CALL_TIMEOUT,
            )
            .await?;
        Ok(r.tasks.into_iter().map(|t| (t.segment_id, t)).collect())
    }

    async fn views(&self) -> FvResult<Vec<GetDataDistributionResponse>> {
        let live = session::list(&self.ctx.meta, Role::QueryNode).await?;
        let calls = live.iter().map(|s| {
            self.ctx.rpc.call_with_timeout::<querynode::GetDataDistribution>(
                Target::Node(s.node_id),
                &GetDataDistributionRequest {},
                Duration::from_secs(5),
            )
        });
        Ok(futures::future::join_all(calls).await.into_iter().filter_map(|r| r.ok()).collect())
    }

    async fn release_everything_of(&self, collection: CollectionId, views: &[GetDataDistributionResponse]) {
        for v in views {
            for c in v.channels.iter().filter(|c| c.collection_id == collection) {
                let req = UnsubDmChannelRequest { collection_id: collection, vchannel: c.vchannel.clone() };
                let _ = self.ctx.rpc.call::<querynode::UnsubDmChannel>(Target::Node(v.node_id), &req).await;
            }
            let segs: Vec<i64> =
                v.segments.iter().filter(|s| s.collection_id == collection).map(|s| s.segment_id).collect();
            if !segs.is_empty() {
                let req = ReleaseSegmentsRequest { collection_id: collection, segment_ids: segs };
                let _ = self.ctx.rpc.call::<querynode::ReleaseSegments>(Target::Node(v.node_id), &req).await;
            }
        }
    }

    /// One reconciliation round over every loaded collection.
    pub async fn reconcile(&self, _: ()) -> FvResult<()> {
        let views = self.views().await?;
        let loaded: Vec<(CollectionId, LoadInfo)> =
            self.loads.read().iter().map(|(c, l)| (*c, l.info.clone())).collect();
        // Work left behind by collections no longer loaded.
        let mut orphans: Vec<CollectionId> = views
            .iter()
            .flat_map(|v| v.channels.iter().map(|c| c.collection_id).chain(v.segments.iter().map(|s| s.collection_id)))
            .filter(|c| !loaded.iter().any(|(l, _)| l == c))
            .collect();
        orphans.sort_unstable();
        orphans.dedup();
        for c in orphans {
            self.release_everything_of(c, &views).await;
        }
        for (cid, info) in loaded {
            if let Err(e) = self.reconcile_collection(cid, &info, &views).await {
                if e.code == Code::CollectionNotFound {
                    tracing::info!(collection = cid, "loaded collection no longer exists; releasing");
                    let _ = self.release_collection(ReleaseCollectionRequest { collection_id: cid }).await;
                } else {
                    tracing::debug!(error = %e, collection = cid, "reconciliation incomplete");
                }
            }
        }
        Ok(())
    }

    async fn reconcile_collection(
        &self,
        cid: CollectionId,
        info: &LoadInfo,
        views: &[GetDataDistributionResponse],
    ) -> FvResult<()> {
        let desc = self.describe(cid).await?;
        let partitions: Vec<PartitionId> = if info.whole_collection {
            vec![]
        } else {
            info.partition_ids.iter().copied().filter(|p| desc.partitions.iter().any(|x| x.id == *p)).collect()
        };
        let rec = self
            .ctx
            .rpc
            .call_with_timeout::<datacoord::GetRecoveryInfo>(
                Target::Coord,
                &GetRecoveryInfoRequest { collection_id: cid, partition_ids: partitions.clone() },
                COORD_CALL_TIMEOUT,
            )
            .await?;
        let builds = self.finished_builds(cid).await?;
        let targets: Vec<TargetSegment> = rec
            .segments
            .iter()
            .map(|s| TargetSegment {
                id: s.id,
                vchannel: s.vchannel.clone(),
                partition: s.partition_id,
                rows: s.num_rows,
                index_build: builds.get(&s.id).map(|t| t.build_id).unwrap_or(0),
            })
            .collect();
        let (previous, served_before): (BTreeMap<String, i64>, bool) = self
            .loads
            .read()
            .get(&cid)
            .map(|l| (l.leaders.iter().map(|s| (s.vchannel.clone(), s.node_id)).collect(), l.served_before))
            .unwrap_or_default();
        let p = planner::plan(cid, &desc.vchannels, &targets, views, &previous, served_before);
        let channel_info = |v: &str| rec.channels.iter().find(|c| c.vchannel == v).cloned();
        let mut failed_loads = Vec::new();
        let mut leaders = p.leaders.clone();
        for a in &p.actions {
            let rpc = &self.ctx.rpc;
            let result = match a {
                Action::Watch { vchannel, node, standby } => {
                    let Some(ch) = channel_info(vchannel) else { continue };
                    let req = WatchDmChannelRequest {
                        collection: Some(desc.clone()),
                        channel: Some(ch),
                        partition_ids: partitions.clone(),
                        whole_collection: info.whole_collection,
                        standby: *standby,
                    };
                    let r = rpc
                        .call_with_timeout::<querynode::WatchDmChannel>(Target::Node(*node), &req, CALL_TIMEOUT)
                        .await;
                    if r.is_ok() {
                        leaders.insert(vchannel.clone(), *node);
                    }
                    r.map(|_| ())
                }
                Action::Load { segment, node } | Action::SwitchIndex { segment, node } => {
                    let Some(seg) = rec.segments.iter().find(|s| s.id == *segment).cloned() else { continue };
                    let req = LoadSegmentsRequest {
                        collection: Some(desc.clone()),
                        segments: vec![seg],
                        indexes: builds.get(segment).cloned().into_iter().collect(),
                    };
                    let r =
                        rpc.call_with_timeout::<querynode::LoadSegments>(Target::Node(*node), &req, CALL_TIMEOUT).await;
                    if r.is_err() && matches!(a, Action::Load { .. }) {
                        failed_loads.push(*segment);
                    }
                    r.map(|_| ())
                }
                Action::AddSealed { vchannel, delegator, segment, worker, partition } => {
                    if failed_loads.contains(segment) {
                        continue;
                    }
                    let req = SyncDistributionRequest {
                        collection_id: cid,
                        vchannel: vchannel.clone(),
                        actions: vec![SyncAction {
                            r#type: SyncType::AddSealed as i32,
                            segment_id: *segment,
                            node_id: *worker,
                            partition_id: *partition,
                        }],
                        partition_ids: vec![],
                        checkpoint: channel_info(vchannel).and_then(|c| c.seek_position),
                        serve: false,
                    };
                    rpc.call_with_timeout::<querynode::SyncDistribution>(Target::Node(*delegator), &req, CALL_TIMEOUT)
                        .await
                        .map(|_| ())
                }
                Action::RemoveSealed { vchannel, delegator, segment } => {
                    let req = SyncDistributionRequest {
                        collection_id: cid,
                        vchannel: vchannel.clone(),
                        actions: vec![SyncAction {
                            r#type: SyncType::RemoveSealed as i32,
                            segment_id: *segment,
                            ..Default::default()
                        }],
                        ..Default::default()
                    };
                    rpc.call_with_timeout::<querynode::SyncDistribution>(Target::Node(*delegator), &req, CALL_TIMEOUT)
                        .await
                        .map(|_| ())
                }
                Action::Release { segment, node } => {
                    let req = ReleaseSegmentsRequest { collection_id: cid, segment_ids: vec![*segment] };
                    rpc.call_with_timeout::<querynode::ReleaseSegments>(Target::Node(*node), &req, CALL_TIMEOUT)
                        .await
                        .map(|_| ())
                }
                Action::Move { vchannel, delegator, segment, partition, from, to } => {
                    let Some(seg) = rec.segments.iter().find(|s| s.id == *segment).cloned() else { continue };
                    let started = std::time::Instant::now();
                    let load = LoadSegmentsRequest {
                        collection: Some(desc.clone()),
                        segments: vec![seg],
                        indexes: builds.get(segment).cloned().into_iter().collect(),
                    };
                    // Returns once the delegator routes to `to` and the reads that still
                    // used `from` are done; only then may `from` let go of its copy. A
                    // failure part-way leaves two copies, which the next round resolves.
                    let switch = SyncDistributionRequest {
                        collection_id: cid,
                        vchannel: vchannel.clone(),
                        actions: vec![SyncAction {
                            r#type: SyncType::AddSealed as i32,
                            segment_id: *segment,
                            node_id: *to,
                            partition_id: *partition,
                        }],
                        partition_ids: vec![],
                        checkpoint: channel_info(vchannel).and_then(|c| c.seek_position),
                        serve: false,
                    };
                    let release = ReleaseSegmentsRequest { collection_id: cid, segment_ids: vec![*segment] };
                    let r = async {
                        rpc.call_with_timeout::<querynode::LoadSegments>(Target::Node(*to), &load, CALL_TIMEOUT)
                            .await
                            .map_err(|e| e.context(format!("loading segment {segment} on node {to}")))?;
                        rpc.call_with_timeout::<querynode::SyncDistribution>(
                            Target::Node(*delegator),
                            &switch,
                            CALL_TIMEOUT,
                        )
                        .await
                        .map_err(|e| e.context(format!("routing segment {segment} to node {to}")))?;
                        rpc.call_with_timeout::<querynode::ReleaseSegments>(
                            Target::Node(*from),
                            &release,
                            CALL_TIMEOUT,
                        )
                        .await
                        .map_err(|e| e.context(format!("releasing segment {segment} on node {from}")))?;
                        Ok::<(), FvError>(())
                    }
                    .await;
                    if r.is_ok() {
                        tracing::info!(
                            collection = cid,
                            segment,
                            from,
                            to,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "segment moved for balance"
                        );
                    }
                    r
                }
                Action::MoveChannel { vchannel, from, to } => {
                    let Some(ch) = channel_info(vchannel) else { continue };
                    // From the current checkpoint, like a failover delegator; the
                    // following rounds give it the routing, then switch.
                    let req = WatchDmChannelRequest {
                        collection: Some(desc.clone()),
                        channel: Some(ch),
                        partition_ids: partitions.clone(),
                        whole_collection: info.whole_collection,
                        standby: true,
                    };
                    let r = rpc
                        .call_with_timeout::<querynode::WatchDmChannel>(Target::Node(*to), &req, CALL_TIMEOUT)
                        .await
                        .map(|_| ());
                    if r.is_ok() {
                        tracing::info!(collection = cid, vchannel, from, to, "moving shard delegator for balance");
                        self.channel_moves.lock().insert(vchannel.clone(), std::time::Instant::now());
                    }
                    r
                }
                Action::SwitchLeader { vchannel, from, to } => {
                    let started = std::time::Instant::now();
                    let r = self.switch_leader(cid, vchannel, *from, *to).await;
                    // Once `to` serves and is named, it stays the leader even if the
                    // release of `from` failed (the next round releases it); keeping
                    // `from` named would make that round release `to` instead.
                    let renamed = self
                        .loads
                        .read()
                        .get(&cid)
                        .is_some_and(|l| l.leaders.iter().any(|s| &s.vchannel == vchannel && s.node_id == *to));
                    if renamed {
                        leaders.insert(vchannel.clone(), *to);
                    }
                    if r.is_ok() {
                        let total = self.channel_moves.lock().remove(vchannel).map(|t| t.elapsed().as_millis() as u64);
                        tracing::info!(
                            collection = cid,
                            vchannel,
                            from,
                            to,
                            switch_ms = started.elapsed().as_millis() as u64,
                            move_ms = total,
                            "shard delegator moved for balance"
                        );
                    }
                    r
                }
                Action::Serve { vchannel, node } => {
                    let req = SyncDistributionRequest {
                        collection_id: cid,
                        vchannel: vchannel.clone(),
                        serve: true,
                        ..Default::default()
                    };
                    let r = rpc
                        .call_with_timeout::<querynode::SyncDistribution>(Target::Node(*node), &req, CALL_TIMEOUT)
                        .await
                        .map(|_| ());
                    if r.is_ok() {
                        tracing::info!(
                            collection = cid,
                            vchannel,
                            node,
                            "standby delegator serves (its old leader is gone)"
                        );
                        self.channel_moves.lock().remove(vchannel);
                    }
                    r
                }
                Action::Unsub { vchannel, node } => {
                    let req = UnsubDmChannelRequest { collection_id: cid, vchannel: vchannel.clone() };
                    rpc.call_with_timeout::<querynode::UnsubDmChannel>(Target::Node(*node), &req, CALL_TIMEOUT)
                        .await
                        .map(|_| ())
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, action = ?a, "distribution action failed; retrying next round");
            }
        }
        let progress = (p.served * 100).checked_div(p.total).unwrap_or(100) as i64;
        let mut became_loaded = None;
        {
            let mut loads = self.loads.write();
            if let Some(l) = loads.get_mut(&cid) {
                l.leaders = leaders.into_iter().map(|(vchannel, node_id)| ShardLeader { vchannel, node_id }).collect();
                if p.complete && !views.is_empty() {
                    l.progress = 100;
                    l.served_before = true;
                    if l.info.status != LoadStatus::Loaded as i32 {
                        l.info.status = LoadStatus::Loaded as i32;
                        became_loaded = Some(l.info.clone());
                    }
                } else if l.info.status != LoadStatus::Loaded as i32 {
                    l.progress = progress.min(99);
                }
            }
        }
        if let Some(info) = became_loaded {
            tracing::info!(collection = cid, "collection loaded");
            self.persist(&info).await?;
        }
        Ok(())
    }

    /// Hands a shard over from the delegator on `from` to the standby one on `to`, which
    /// already has the same sealed routing: waits until `to` has consumed as far as
    /// `from` had when this started (every write `from` could show, `to` shows too),
    /// makes `to` serve, names it in GetShardLeaders, then releases `from`. Proxies that
    /// still call `from` get a retriable "channel not available" and ask again.
    async fn switch_leader(&self, cid: CollectionId, vchannel: &str, from: i64, to: i64) -> FvResult<()> {
        let rpc = &self.ctx.rpc;
        let serviceable_on = |node: i64| async move {
            let v = rpc
                .call_with_timeout::<querynode::GetDataDistribution>(
                    Target::Node(node),
                    &GetDataDistributionRequest {},
                    Duration::from_secs(5),
                )
                .await
                .map_err(|e| e.context(format!("reading the distribution of node {node}")))?;
            v.channels
                .iter()
                .find(|c| c.collection_id == cid && c.vchannel == vchannel)
                .map(|c| c.serviceable_ts)
                .ok_or_else(|| FvError::unavailable(format!("node {node} has no delegator of {vchannel}")))
        };
        let goal = serviceable_on(from).await?;
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        loop {
            let now = serviceable_on(to).await?;
            if now >= goal {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(FvError::timeout(format!(
                    "delegator of {vchannel} on node {to} did not catch up with node {from} within {} ms (at {now}, leader at {goal})",
                    CATCH_UP_WAIT.as_millis()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let serve = SyncDistributionRequest {
            collection_id: cid,
            vchannel: vchannel.to_string(),
            serve: true,
            ..Default::default()
        };
        rpc.call_with_timeout::<querynode::SyncDistribution>(Target::Node(to), &serve, CALL_TIMEOUT)
            .await
            .map_err(|e| e.context(format!("making the delegator of {vchannel} on node {to} serve")))?;
        // Named before the old one goes, so a proxy that finds it gone learns the new
        // leader on its next GetShardLeaders.
        if let Some(l) = self.loads.write().get_mut(&cid) {
            match l.leaders.iter_mut().find(|s| s.vchannel == vchannel) {
                Some(s) => s.node_id = to,
                None => l.leaders.push(ShardLeader { vchannel: vchannel.to_string(), node_id: to }),
            }
        }
        let unsub = UnsubDmChannelRequest { collection_id: cid, vchannel: vchannel.to_string() };
        rpc.call_with_timeout::<querynode::UnsubDmChannel>(Target::Node(from), &unsub, CALL_TIMEOUT)
            .await
            .map_err(|e| e.context(format!("releasing the old delegator of {vchannel} on node {from}")))?;
        Ok(())
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

impl Core {
    /// What the live query nodes serve of a collection right now: every sealed segment
    /// with the nodes holding it (the one reads are routed to first), and every shard
    /// with its delegator and workers. Read straight from the nodes, like a
    /// reconciliation round, so it shows moves as they happen.
    pub async fn distribution(&self, cid: CollectionId) -> FvResult<GetDistributionResponse> {
        let Some(info) = self.loads.read().get(&cid).map(|l| l.info.clone()) else {
            return Ok(GetDistributionResponse { status: Some(Default::default()), ..Default::default() });
        };
        let views = self.views().await?;
        let desc = self.describe(cid).await?;
        // Only to name the index a segment is searched with; the distribution itself
        // does not depend on it.
        let builds = self.finished_builds(cid).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, collection = cid, "index builds unavailable; reporting segments without index");
            HashMap::new()
        });
        let routes: HashMap<SegmentId, i64> = views
            .iter()
            .flat_map(|v| v.channels.iter().filter(|c| c.collection_id == cid))
            .flat_map(|c| c.sealed_segment_nodes.iter().map(|(s, n)| (*s, *n)))
            .collect();
        // Per segment: its report from the first node seen, and every copy.
        struct Copies<'a> {
            first: &'a SegmentDistribution,
            /// (node, index build the copy is searched with)
            at: Vec<(i64, i64)>,
        }
        let mut copies: BTreeMap<SegmentId, Copies> = BTreeMap::new();
        for v in &views {
            for s in v.segments.iter().filter(|s| s.collection_id == cid) {
                copies
                    .entry(s.segment_id)
                    .or_insert(Copies { first: s, at: vec![] })
                    .at
                    .push((v.node_id, s.index_build_id));
            }
        }
        let segments: BTreeMap<SegmentId, SegmentReplica> = copies
            .into_iter()
            .map(|(id, Copies { first: s, mut at })| {
                // The copy reads are routed to first (the sort is stable otherwise).
                at.sort_by_key(|(n, _)| routes.get(&id) != Some(n));
                let build = at[0].1;
                let index_id =
                    builds.get(&id).filter(|t| build != 0 && t.build_id == build).map(|t| t.index_id).unwrap_or(0);
                let replica = SegmentReplica {
                    segment_id: id,
                    partition_id: s.partition_id,
                    vchannel: s.vchannel.clone(),
                    num_rows: s.num_rows,
                    node_ids: at.iter().map(|(n, _)| *n).collect(),
                    index_id,
                    index_build_id: build,
                };
                (id, replica)
            })
            .collect();
        let named: HashMap<String, i64> = self
            .loads
            .read()
            .get(&cid)
            .map(|l| l.leaders.iter().map(|s| (s.vchannel.clone(), s.node_id)).collect())
            .unwrap_or_default();
        let shards = desc
            .vchannels
            .iter()
            .map(|vchannel| {
                // The leader GetShardLeaders names (during a channel move a second,
                // standby delegator exists); else any node reporting a delegator.
                let leader = named.get(vchannel).copied().filter(|n| *n != 0).unwrap_or_else(|| {
                    views
                        .iter()
                        .find(|v| v.channels.iter().any(|c| c.collection_id == cid && &c.vchannel == vchannel))
                        .map(|v| v.node_id)
                        .unwrap_or(0)
                });
                let mut node_ids: Vec<i64> = std::iter::once(leader).filter(|n| *n != 0).collect();
                for s in segments.values().filter(|s| &s.vchannel == vchannel) {
                    for n in &s.node_ids {
                        if !node_ids.contains(n) {
                            node_ids.push(*n);
                        }
                    }
                }
                ShardDistribution { vchannel: vchannel.clone(), leader_node_id: leader, node_ids }
            })
            .collect();
        Ok(GetDistributionResponse {
            status: Some(Default::default()),
            loaded: true,
            segments: segments.into_values().collect(),
            shards,
            loaded_partition_ids: if info.whole_collection { vec![] } else { info.partition_ids.clone() },
            replica_number: info.replica_number,
        })
    }
}

pub struct QueryCoordActor {
    pub core: Arc<Core>,
}

impl Actor for QueryCoordActor {
    type Context = Context<Self>;
}

atomic_handlers!(QueryCoordActor, core;
    Load(LoadCollectionRequest) => load_collection -> ();
    LoadParts(LoadPartitionsRequest) => load_partitions -> ();
    Release(ReleaseCollectionRequest) => release_collection -> ();
    ReleaseParts(ReleasePartitionsRequest) => release_partitions -> ();
    Reconcile(()) => reconcile -> ();
);

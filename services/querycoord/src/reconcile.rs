//! A reconciliation round: for every loaded collection, plan the difference between
//! its target (vchannels and flushed segments, from datacoord) and what the query
//! nodes report, run the actions ([`crate::actions`]), and update load progress and
//! shard leaders. Work left by collections no longer loaded is released.

use std::collections::BTreeMap;

use fv_common::{Code, CollectionId, FvResult, PartitionId};
use fv_proto::fv::datacoord::GetRecoveryInfoRequest;
use fv_proto::fv::meta::{LoadInfo, LoadStatus};
use fv_proto::fv::querycoord::{ReleaseCollectionRequest, ShardLeader};
use fv_proto::fv::querynode::GetDataDistributionResponse;
use fv_runtime::Clients;
use fv_runtime::rpc::COORD_CALL_TIMEOUT;

use crate::actions::{self, Round, RoundState};
use crate::actor::Core;
use crate::planner::{self, TargetSegment};

impl Core {
    /// One reconciliation round over every loaded collection.
    pub async fn reconcile(&self) -> FvResult<()> {
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

    /// Plans one loaded collection's distribution against its target, runs the
    /// actions, and updates its load progress and shard leaders.
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
            .datacoord()
            .get_recovery_info(&GetRecoveryInfoRequest { collection_id: cid, partition_ids: partitions.clone() })
            .timeout(COORD_CALL_TIMEOUT)
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
        let round = Round {
            core: self,
            cid,
            desc: &desc,
            load: info,
            partitions: &partitions,
            recovery: &rec,
            builds: &builds,
        };
        let mut state = RoundState { leaders: p.leaders.clone(), failed_loads: Vec::new() };
        for a in &p.actions {
            if let Err(e) = actions::execute(&round, &mut state, a).await {
                tracing::warn!(error = %e, action = ?a, "distribution action failed; retrying next round");
            }
        }
        let leaders = state.leaders;
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
}

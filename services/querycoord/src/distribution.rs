//! GetDistribution: what the live query nodes serve of a loaded collection right now.

use std::collections::{BTreeMap, HashMap};

use fv_common::{CollectionId, FvResult, SegmentId};
use fv_proto::fv::querycoord::{GetDistributionResponse, SegmentReplica, ShardDistribution};
use fv_proto::fv::querynode::SegmentDistribution;

use crate::actor::Core;

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

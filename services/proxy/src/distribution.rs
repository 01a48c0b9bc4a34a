//! Where a loaded collection is served: `GetQuerySegmentInfo` (sealed segments per
//! query node) and `GetReplicas` (shards with their delegator and workers).
//!
//! Both read querycoord's live view of the query nodes, so they show a segment on two
//! nodes for the instant of a balance move. As in Milvus, a collection that exists but
//! is not loaded has an empty distribution rather than an error; a name that does not
//! resolve is an error (code 100).

use std::collections::HashMap;

use fv_common::FvResult;
use fv_proto::api::{QuerySegmentInfo, ReplicaInfo, ShardReplica};
use fv_proto::common::{SegmentLevel, SegmentState};
use fv_proto::fv::index as ix;
use fv_proto::fv::querycoord::{GetDistributionRequest, GetDistributionResponse};
use fv_proto::fv::rootcoord::DescribeCollectionRequest;
use fv_runtime::Clients;

use crate::{COORD_DEADLINE, Proxy};

async fn distribution(p: &Proxy, collection_id: i64) -> FvResult<GetDistributionResponse> {
    p.ctx.rpc.querycoord().get_distribution(&GetDistributionRequest { collection_id }).retry(COORD_DEADLINE).await
}

/// The sealed segments query nodes serve for `collection`.
pub async fn query_segment_info(p: &Proxy, db: &str, collection: &str) -> FvResult<Vec<QuerySegmentInfo>> {
    let c = p.cache.get(db, collection).await?;
    let d = distribution(p, c.info.id).await?;
    let index_names: HashMap<i64, String> = if d.segments.iter().any(|s| s.index_id != 0) {
        p.ctx
            .rpc
            .indexcoord()
            .describe_index(&ix::DescribeIndexRequest { collection_id: c.info.id, index_name: String::new() })
            .retry(COORD_DEADLINE)
            .await?
            .indexes
            .into_iter()
            .filter_map(|s| s.info)
            .map(|i| (i.index_id, i.index_name))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(d.segments
        .into_iter()
        .map(|s| QuerySegmentInfo {
            segment_id: s.segment_id,
            collection_id: c.info.id,
            partition_id: s.partition_id,
            num_rows: s.num_rows,
            index_name: index_names.get(&s.index_id).cloned().unwrap_or_default(),
            index_id: s.index_id,
            node_id: s.node_ids.first().copied().unwrap_or(0),
            state: SegmentState::Sealed as i32,
            node_ids: s.node_ids,
            level: SegmentLevel::L1 as i32,
            ..Default::default()
        })
        .collect())
}

/// The replica of a loaded collection (Ferrovec serves one copy of each segment, so a
/// loaded collection has exactly one replica; its id is the collection id, which is as
/// unique as Milvus' allocated replica ids). By id, as pymilvus asks, or by name.
pub async fn replicas(p: &Proxy, db: &str, name: &str, mut collection_id: i64) -> FvResult<Vec<ReplicaInfo>> {
    if !name.is_empty() {
        collection_id = p.cache.get(db, name).await?.info.id;
    }
    let d = distribution(p, collection_id).await?;
    if !d.loaded {
        return Ok(vec![]);
    }
    let partition_ids = if d.loaded_partition_ids.is_empty() {
        let info = p
            .ctx
            .rpc
            .rootcoord()
            .describe_collection(&DescribeCollectionRequest { collection_id, ..Default::default() })
            .retry(COORD_DEADLINE)
            .await?
            .collection;
        info.map(|c| c.partitions.iter().map(|p| p.id).collect()).unwrap_or_default()
    } else {
        d.loaded_partition_ids.clone()
    };
    let mut node_ids: Vec<i64> = d.shards.iter().flat_map(|s| s.node_ids.iter().copied()).collect();
    node_ids.sort_unstable();
    node_ids.dedup();
    let shard_replicas = d
        .shards
        .into_iter()
        .map(|s| ShardReplica {
            leader_id: s.leader_node_id,
            leader_addr: String::new(),
            dm_channel_name: s.vchannel,
            node_ids: s.node_ids,
        })
        .collect();
    Ok(vec![ReplicaInfo {
        replica_id: collection_id,
        collection_id,
        partition_ids,
        shard_replicas,
        node_ids,
        resource_group_name: "__default_resource_group".to_string(),
        num_outbound_node: Default::default(),
    }])
}

//! Tell a delegator that a worker serves a sealed segment (handoff).

use fv_common::{FvResult, NodeId, PartitionId, SegmentId};
use fv_proto::fv::querynode::{SyncAction, SyncDistributionRequest, SyncType};
use fv_runtime::Clients;

use super::{CALL_TIMEOUT, Round, RoundState};

pub async fn execute(
    round: &Round<'_>,
    state: &RoundState,
    vchannel: &str,
    delegator: NodeId,
    segment: SegmentId,
    worker: NodeId,
    partition: PartitionId,
) -> FvResult<()> {
    if state.failed_loads.contains(&segment) {
        return Ok(());
    }
    let req = SyncDistributionRequest {
        collection_id: round.cid,
        vchannel: vchannel.to_string(),
        actions: vec![SyncAction {
            r#type: SyncType::AddSealed as i32,
            segment_id: segment,
            node_id: worker,
            partition_id: partition,
        }],
        partition_ids: vec![],
        checkpoint: round.channel(vchannel).and_then(|c| c.seek_position),
        serve: false,
    };
    round.core.ctx.rpc.querynode(delegator).sync_distribution(&req).timeout(CALL_TIMEOUT).await?;
    Ok(())
}

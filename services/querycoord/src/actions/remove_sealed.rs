//! Tell a delegator to stop using a sealed segment.

use fv_common::{FvResult, NodeId, SegmentId};
use fv_proto::fv::querynode::{SyncAction, SyncDistributionRequest, SyncType};
use fv_runtime::Clients;

use super::{CALL_TIMEOUT, Round};

pub async fn execute(round: &Round<'_>, vchannel: &str, delegator: NodeId, segment: SegmentId) -> FvResult<()> {
    let req = SyncDistributionRequest {
        collection_id: round.cid,
        vchannel: vchannel.to_string(),
        actions: vec![SyncAction { r#type: SyncType::RemoveSealed as i32, segment_id: segment, ..Default::default() }],
        ..Default::default()
    };
    round.core.ctx.rpc.querynode(delegator).sync_distribution(&req).timeout(CALL_TIMEOUT).await?;
    Ok(())
}

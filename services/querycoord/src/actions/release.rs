//! Drop a sealed segment from a node.

use fv_common::{FvResult, NodeId, SegmentId};
use fv_proto::fv::querynode::ReleaseSegmentsRequest;
use fv_runtime::Clients;

use super::{CALL_TIMEOUT, Round};

pub async fn execute(round: &Round<'_>, segment: SegmentId, node: NodeId) -> FvResult<()> {
    let req = ReleaseSegmentsRequest { collection_id: round.cid, segment_ids: vec![segment] };
    round.core.ctx.rpc.querynode(node).release_segments(&req).timeout(CALL_TIMEOUT).await?;
    Ok(())
}

//! Load a sealed segment on a node, or make a loaded one use its current index build
//! (the same request: the node loads what it lacks and switches the index).

use fv_common::{FvResult, NodeId, SegmentId};
use fv_runtime::Clients;

use super::{CALL_TIMEOUT, Round, RoundState, load_request};

pub async fn execute(
    round: &Round<'_>,
    state: &mut RoundState,
    segment: SegmentId,
    node: NodeId,
    first_load: bool,
) -> FvResult<()> {
    let Some(seg) = round.segment(segment) else { return Ok(()) };
    let req = load_request(round.desc, seg, round.builds.get(&segment).cloned());
    let r = round.core.ctx.rpc.querynode(node).load_segments(&req).timeout(CALL_TIMEOUT).await;
    if r.is_err() && first_load {
        state.failed_loads.push(segment);
    }
    r.map(|_| ())
}

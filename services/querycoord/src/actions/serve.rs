//! Make a standby delegator serve: it is the only one of its vchannel (its old leader
//! is gone) and has the complete routing.

use fv_common::{FvResult, NodeId};
use fv_proto::fv::querynode::SyncDistributionRequest;
use fv_runtime::Clients;

use super::{CALL_TIMEOUT, Round};

pub async fn execute(round: &Round<'_>, vchannel: &str, node: NodeId) -> FvResult<()> {
    let req = SyncDistributionRequest {
        collection_id: round.cid,
        vchannel: vchannel.to_string(),
        serve: true,
        ..Default::default()
    };
    round.core.ctx.rpc.querynode(node).sync_distribution(&req).timeout(CALL_TIMEOUT).await?;
    tracing::info!(collection = round.cid, vchannel, node, "standby delegator serves (its old leader is gone)");
    round.core.channel_moves.lock().remove(vchannel);
    Ok(())
}

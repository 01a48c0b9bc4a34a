//! Stop a delegator that is not needed (a second one left by an interrupted move).

use fv_common::{FvResult, NodeId};
use fv_proto::fv::querynode::UnsubDmChannelRequest;
use fv_runtime::Clients;

use super::{CALL_TIMEOUT, Round};

pub async fn execute(round: &Round<'_>, vchannel: &str, node: NodeId) -> FvResult<()> {
    let req = UnsubDmChannelRequest { collection_id: round.cid, vchannel: vchannel.to_string() };
    round.core.ctx.rpc.querynode(node).unsub_dm_channel(&req).timeout(CALL_TIMEOUT).await?;
    Ok(())
}

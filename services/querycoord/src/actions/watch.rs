//! Make a node the delegator of a vchannel (a first load, or failover as standby).

use fv_common::{FvResult, NodeId};
use fv_runtime::Clients;

use super::{CALL_TIMEOUT, Round, RoundState, watch_request};

pub async fn execute(
    round: &Round<'_>,
    state: &mut RoundState,
    vchannel: &str,
    node: NodeId,
    standby: bool,
) -> FvResult<()> {
    let Some(channel) = round.channel(vchannel) else { return Ok(()) };
    let req = watch_request(round, channel, standby);
    round.core.ctx.rpc.querynode(node).watch_dm_channel(&req).timeout(CALL_TIMEOUT).await?;
    state.leaders.insert(vchannel.to_string(), node);
    Ok(())
}

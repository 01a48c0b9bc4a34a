//! Channel balance, first step: start a standby delegator of the vchannel on the target
//! node (from the current checkpoint, like a failover delegator). The following rounds
//! give it the routing; [`super::switch_leader`] then hands the shard over.

use fv_common::{FvResult, NodeId};
use fv_runtime::Clients;

use super::{CALL_TIMEOUT, Round, watch_request};

pub async fn execute(round: &Round<'_>, vchannel: &str, from: NodeId, to: NodeId) -> FvResult<()> {
    let Some(channel) = round.channel(vchannel) else { return Ok(()) };
    let req = watch_request(round, channel, true);
    round.core.ctx.rpc.querynode(to).watch_dm_channel(&req).timeout(CALL_TIMEOUT).await?;
    tracing::info!(collection = round.cid, vchannel, from, to, "moving shard delegator for balance");
    round.core.channel_moves.lock().insert(vchannel.to_string(), std::time::Instant::now());
    Ok(())
}

//! Channel balance, last step, a persisted procedure: hand a shard over from the
//! delegator on `from` to the standby one on `to`, which already has the same sealed
//! routing. Waits until `to` has consumed as far as `from` had when this started (every
//! write `from` could show, `to` shows too), makes `to` serve, names it in
//! GetShardLeaders, then releases `from`. Proxies that still call `from` get a
//! retriable "channel not available" and ask again.

use std::time::{Duration, Instant};

use fv_common::{CollectionId, FvError, FvResult, NodeId, Timestamp};
use fv_proto::fv::querycoord::distribution_procedure::Op;
use fv_proto::fv::querycoord::switch_leader_procedure::Step as S;
use fv_proto::fv::querycoord::{ShardLeader, SwitchLeaderProcedure};
use fv_proto::fv::querynode::{GetDataDistributionRequest, SyncDistributionRequest, UnsubDmChannelRequest};
use fv_runtime::Clients;
use fv_runtime::procedure::Step;

use super::{CALL_TIMEOUT, Round, RoundState};
use crate::actor::Core;

/// How long the switch waits for the standby delegator to reach the old leader's
/// serviceable time; the planner only starts a switch within
/// [`crate::planner::CATCH_UP_SLACK`] of it, so this is rarely approached.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

pub async fn execute(
    round: &Round<'_>,
    state: &mut RoundState,
    vchannel: &str,
    from: NodeId,
    to: NodeId,
) -> FvResult<()> {
    let started = Instant::now();
    let p = SwitchLeaderProcedure {
        step: S::ReadGoal as i32,
        collection_id: round.cid,
        vchannel: vchannel.to_string(),
        from,
        to,
        goal_ts: 0,
    };
    let r = round.core.run_procedure(Op::SwitchLeader(p)).await;
    // Once `to` serves and is named, it stays the leader even if the release of `from`
    // failed (the next round releases it); keeping `from` named would make that round
    // release `to` instead.
    let renamed = round
        .core
        .loads
        .read()
        .get(&round.cid)
        .is_some_and(|l| l.leaders.iter().any(|s| s.vchannel == vchannel && s.node_id == to));
    if renamed {
        state.leaders.insert(vchannel.to_string(), to);
    }
    if r.is_ok() {
        let total = round.core.channel_moves.lock().remove(vchannel).map(|t| t.elapsed().as_millis() as u64);
        tracing::info!(
            collection = round.cid,
            vchannel,
            from,
            to,
            switch_ms = started.elapsed().as_millis() as u64,
            move_ms = total,
            "shard delegator moved for balance"
        );
    }
    r
}

/// How far the delegator of `vchannel` on `node` has consumed.
async fn serviceable_on(core: &Core, cid: CollectionId, vchannel: &str, node: NodeId) -> FvResult<Timestamp> {
    let v = core
        .ctx
        .rpc
        .querynode(node)
        .get_data_distribution(&GetDataDistributionRequest {})
        .timeout(Duration::from_secs(5))
        .await
        .map_err(|e| e.context(format!("reading the distribution of node {node}")))?;
    v.channels
        .iter()
        .find(|c| c.collection_id == cid && c.vchannel == vchannel)
        .map(|c| c.serviceable_ts)
        .ok_or_else(|| FvError::unavailable(format!("node {node} has no delegator of {vchannel}")))
}

pub async fn step(p: &mut SwitchLeaderProcedure, core: &Core) -> FvResult<Step> {
    let (cid, from, to) = (p.collection_id, p.from, p.to);
    let vchannel = p.vchannel.clone();
    match p.step() {
        S::ReadGoal => {
            p.goal_ts = serviceable_on(core, cid, &vchannel, from).await?;
            p.set_step(S::CatchUp);
        }
        S::CatchUp => {
            let goal = p.goal_ts;
            let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
            loop {
                let now = serviceable_on(core, cid, &vchannel, to).await?;
                if now >= goal {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(FvError::timeout(format!(
                        "delegator of {vchannel} on node {to} did not catch up with node {from} within {} ms (at {now}, leader at {goal})",
                        CATCH_UP_WAIT.as_millis()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            p.set_step(S::Serve);
        }
        S::Serve => {
            let serve = SyncDistributionRequest {
                collection_id: cid,
                vchannel: vchannel.clone(),
                serve: true,
                ..Default::default()
            };
            core.ctx
                .rpc
                .querynode(to)
                .sync_distribution(&serve)
                .timeout(CALL_TIMEOUT)
                .await
                .map_err(|e| e.context(format!("making the delegator of {vchannel} on node {to} serve")))?;
            p.set_step(S::Rename);
        }
        S::Rename => {
            // Named before the old one goes, so a proxy that finds it gone learns the
            // new leader on its next GetShardLeaders.
            if let Some(l) = core.loads.write().get_mut(&cid) {
                match l.leaders.iter_mut().find(|s| s.vchannel == vchannel) {
                    Some(s) => s.node_id = to,
                    None => l.leaders.push(ShardLeader { vchannel: vchannel.clone(), node_id: to }),
                }
            }
            p.set_step(S::ReleaseOld);
        }
        S::ReleaseOld => {
            let unsub = UnsubDmChannelRequest { collection_id: cid, vchannel: vchannel.clone() };
            core.ctx
                .rpc
                .querynode(from)
                .unsub_dm_channel(&unsub)
                .timeout(CALL_TIMEOUT)
                .await
                .map_err(|e| e.context(format!("releasing the old delegator of {vchannel} on node {from}")))?;
            return Ok(Step::Done);
        }
    }
    Ok(Step::Next)
}

//! Segment balance, a persisted procedure: load the segment on `to`, route the delegator
//! to it, release it on `from`, in that order, so every read finds the segment exactly
//! once. Routing returns once the reads that still used `from` are done; only then may
//! `from` let go of its copy.

use std::time::Instant;

use fv_common::{FvError, FvResult, NodeId, SegmentId};
use fv_proto::fv::querycoord::MoveSegmentProcedure;
use fv_proto::fv::querycoord::distribution_procedure::Op;
use fv_proto::fv::querycoord::move_segment_procedure::Step as S;
use fv_proto::fv::querynode::{ReleaseSegmentsRequest, SyncAction, SyncDistributionRequest, SyncType};
use fv_runtime::Clients;
use fv_runtime::procedure::Step;

use super::{CALL_TIMEOUT, Round, load_request};
use crate::actor::Core;

pub async fn execute(
    round: &Round<'_>,
    vchannel: &str,
    delegator: NodeId,
    segment: SegmentId,
    from: NodeId,
    to: NodeId,
) -> FvResult<()> {
    let Some(seg) = round.segment(segment) else { return Ok(()) };
    let started = Instant::now();
    let p = MoveSegmentProcedure {
        step: S::Load as i32,
        collection_id: round.cid,
        vchannel: vchannel.to_string(),
        delegator,
        segment: Some(seg),
        index: round.builds.get(&segment).cloned(),
        from,
        to,
        checkpoint: round.channel(vchannel).and_then(|c| c.seek_position),
    };
    round.core.run_procedure(Op::MoveSegment(p)).await?;
    tracing::info!(
        collection = round.cid,
        segment,
        from,
        to,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "segment moved for balance"
    );
    Ok(())
}

pub async fn step(p: &mut MoveSegmentProcedure, core: &Core) -> FvResult<Step> {
    let rpc = &core.ctx.rpc;
    let seg = p.segment.clone().ok_or_else(|| FvError::internal("segment move without segment"))?;
    let (id, from, to) = (seg.id, p.from, p.to);
    match p.step() {
        S::Load => {
            let desc = core.describe(p.collection_id).await?;
            let load = load_request(&desc, seg, p.index.clone());
            rpc.querynode(to)
                .load_segments(&load)
                .timeout(CALL_TIMEOUT)
                .await
                .map_err(|e| e.context(format!("loading segment {id} on node {to}")))?;
            p.set_step(S::Route);
            Ok(Step::Next)
        }
        S::Route => {
            let switch = SyncDistributionRequest {
                collection_id: p.collection_id,
                vchannel: p.vchannel.clone(),
                actions: vec![SyncAction {
                    r#type: SyncType::AddSealed as i32,
                    segment_id: id,
                    node_id: to,
                    partition_id: seg.partition_id,
                }],
                partition_ids: vec![],
                checkpoint: p.checkpoint.clone(),
                serve: false,
            };
            rpc.querynode(p.delegator)
                .sync_distribution(&switch)
                .timeout(CALL_TIMEOUT)
                .await
                .map_err(|e| e.context(format!("routing segment {id} to node {to}")))?;
            p.set_step(S::Release);
            Ok(Step::Next)
        }
        S::Release => {
            let release = ReleaseSegmentsRequest { collection_id: p.collection_id, segment_ids: vec![id] };
            rpc.querynode(from)
                .release_segments(&release)
                .timeout(CALL_TIMEOUT)
                .await
                .map_err(|e| e.context(format!("releasing segment {id} on node {from}")))?;
            Ok(Step::Done)
        }
    }
}

//! Executing the planner's actions: one executor per action under `actions/`.
//!
//! Single-request actions (watch, load, add/remove a route, release, serve, unsub) are
//! idempotent and re-planned from what the nodes report if they fail or querycoord
//! dies, so they are not persisted. The two that take several steps whose order keeps
//! reads exact, [`Action::Move`] (load → route → release) and [`Action::SwitchLeader`]
//! (catch up → serve → rename → release the old delegator), are persisted procedures
//! ([`fv_runtime::procedure`]): their state is saved after each step and, after a
//! restart, each runs on from its saved step before the first round plans anew.

mod add_sealed;
mod load;
mod move_channel;
mod move_segment;
mod release;
mod remove_sealed;
mod serve;
mod switch_leader;
#[cfg(test)]
mod tests;
mod unsub;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fv_common::{CollectionId, FvError, FvResult, NodeId, PartitionId, SegmentId};
use fv_proto::fv::datacoord::{GetRecoveryInfoResponse, VchannelInfo};
use fv_proto::fv::meta::{CollectionInfo, LoadInfo, SegmentIndexTask, SegmentInfo};
use fv_proto::fv::querycoord::DistributionProcedure;
use fv_proto::fv::querycoord::distribution_procedure::Op;
use fv_proto::fv::querynode::{LoadSegmentsRequest, WatchDmChannelRequest};
use fv_proto::fv::rootcoord::AllocIdRequest;
use fv_runtime::Clients;
use fv_runtime::procedure::{Procedure, Step};

use crate::actor::Core;
use crate::planner::Action;

/// Bound of one request to a query node (a load reads the segment's files).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a reconciliation round knows about the collection whose actions it runs.
pub struct Round<'a> {
    pub core: &'a Core,
    pub cid: CollectionId,
    pub desc: &'a CollectionInfo,
    pub load: &'a LoadInfo,
    /// The loaded partitions (empty: the whole collection).
    pub partitions: &'a [PartitionId],
    pub recovery: &'a GetRecoveryInfoResponse,
    pub builds: &'a HashMap<SegmentId, SegmentIndexTask>,
}

impl Round<'_> {
    fn channel(&self, vchannel: &str) -> Option<VchannelInfo> {
        self.recovery.channels.iter().find(|c| c.vchannel == vchannel).cloned()
    }

    fn segment(&self, id: SegmentId) -> Option<SegmentInfo> {
        self.recovery.segments.iter().find(|s| s.id == id).cloned()
    }
}

/// What the actions of one round changed that the round reports at its end.
#[derive(Default)]
pub struct RoundState {
    /// The shard leader of each vchannel (what GetShardLeaders will return).
    pub leaders: BTreeMap<String, NodeId>,
    /// Segments whose load failed this round: routing to them must wait.
    pub failed_loads: Vec<SegmentId>,
}

/// Runs one action. Actions whose inputs are gone (a segment compacted or dropped since
/// the plan) are skipped.
pub async fn execute(round: &Round<'_>, state: &mut RoundState, action: &Action) -> FvResult<()> {
    match action {
        Action::Watch { vchannel, node, standby } => watch::execute(round, state, vchannel, *node, *standby).await,
        Action::Load { segment, node } => load::execute(round, state, *segment, *node, true).await,
        Action::SwitchIndex { segment, node } => load::execute(round, state, *segment, *node, false).await,
        Action::AddSealed { vchannel, delegator, segment, worker, partition } => {
            add_sealed::execute(round, state, vchannel, *delegator, *segment, *worker, *partition).await
        }
        Action::RemoveSealed { vchannel, delegator, segment } => {
            remove_sealed::execute(round, vchannel, *delegator, *segment).await
        }
        Action::Release { segment, node } => release::execute(round, *segment, *node).await,
        Action::Move { vchannel, delegator, segment, partition: _, from, to } => {
            move_segment::execute(round, vchannel, *delegator, *segment, *from, *to).await
        }
        Action::MoveChannel { vchannel, from, to } => move_channel::execute(round, vchannel, *from, *to).await,
        Action::SwitchLeader { vchannel, from, to } => switch_leader::execute(round, state, vchannel, *from, *to).await,
        Action::Serve { vchannel, node } => serve::execute(round, vchannel, *node).await,
        Action::Unsub { vchannel, node } => unsub::execute(round, vchannel, *node).await,
    }
}

/// Makes a node the delegator of `channel` for the loaded partitions (`standby`: it
/// refuses reads until told to serve).
fn watch_request(round: &Round<'_>, channel: VchannelInfo, standby: bool) -> WatchDmChannelRequest {
    WatchDmChannelRequest {
        collection: Some(round.desc.clone()),
        channel: Some(channel),
        partition_ids: round.partitions.to_vec(),
        whole_collection: round.load.whole_collection,
        standby,
    }
}

/// The load request of one sealed segment with its finished index build, if any.
fn load_request(desc: &CollectionInfo, segment: SegmentInfo, index: Option<SegmentIndexTask>) -> LoadSegmentsRequest {
    LoadSegmentsRequest {
        collection: Some(desc.clone()),
        segments: vec![segment],
        indexes: index.into_iter().collect(),
    }
}

impl Procedure<Core> for DistributionProcedure {
    async fn step(&mut self, core: &Core) -> FvResult<Step> {
        match self.op.as_mut() {
            Some(Op::MoveSegment(p)) => move_segment::step(p, core).await,
            Some(Op::SwitchLeader(p)) => switch_leader::step(p, core).await,
            None => Ok(Step::Fail(FvError::internal("distribution procedure without an operation"))),
        }
    }

    fn describe(&self) -> String {
        match &self.op {
            Some(Op::MoveSegment(p)) => format!(
                "move segment {} from node {} to node {}",
                p.segment.as_ref().map(|s| s.id).unwrap_or_default(),
                p.from,
                p.to
            ),
            Some(Op::SwitchLeader(p)) => {
                format!("switch the delegator of {} from node {} to node {}", p.vchannel, p.from, p.to)
            }
            None => "empty distribution procedure".into(),
        }
    }
}

impl Core {
    /// Runs a new distribution procedure to its end. One that fails is dropped: the
    /// next round plans from what the nodes then hold.
    pub(crate) async fn run_procedure(&self, op: Op) -> FvResult<()> {
        let id = self.ctx.rpc.rootcoord().alloc_id(&AllocIdRequest { count: 1 }).timeout(CALL_TIMEOUT).await?.id_begin;
        let mut p = DistributionProcedure { op: Some(op) };
        let r = self.procedures.run(id, &mut p, self).await;
        if r.is_err() {
            self.procedures.abandon(id).await?;
        }
        r
    }

    /// After a restart: runs every procedure a crash interrupted on from its saved
    /// step, once; one that fails is dropped (the rounds re-plan from the nodes).
    pub async fn resume_procedures(&self) -> FvResult<()> {
        for (id, mut p) in self.procedures.pending::<DistributionProcedure>().await? {
            tracing::info!(id, procedure = %p.describe(), "resuming distribution procedure");
            if let Err(e) = self.procedures.run(id, &mut p, self).await {
                tracing::warn!(error = %e, id, procedure = %p.describe(), "interrupted procedure dropped; the next round re-plans");
                self.procedures.abandon(id).await?;
            }
        }
        Ok(())
    }
}

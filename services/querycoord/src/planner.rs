//! Planning distribution changes (pure logic).
//!
//! Besides bringing the actual distribution to the target (delegators for every
//! vchannel, every flushed segment loaded once and routed to), a round of a collection
//! that is fully served also evens out the sealed segments over the query nodes
//! ([`balance`]): a node that joined or came back after a restart gets its share.
//! Load is measured in rows of this collection per node, the quantity search cost
//! grows with; a segment moves from the most to the least loaded node only when the gap
//! between them is larger than the segment, so every move strictly lowers the sum of
//! squared loads and balance cannot oscillate. At most [`MAX_MOVES_PER_ROUND`] segments
//! move per round, so a join never turns into a load storm.
//!
//! Shard delegators are balanced too ([`balance_channels`]), before segments: when the
//! delegators of a collection are unevenly spread (a gap of two or more between two
//! nodes), one vchannel moves per round. A move runs over several rounds, each step
//! driven by what the nodes report, so a querycoord restart resumes it:
//!
//! 1. [`Action::MoveChannel`] starts a *standby* delegator on the target node; it
//!    consumes the vchannel from the checkpoint but refuses reads.
//! 2. Rounds copy the sealed routing to it ([`Action::AddSealed`] to every delegator
//!    of the vchannel, the same worker for each segment).
//! 3. Once its routing equals the leader's and its serviceable time is close to the
//!    leader's, [`Action::SwitchLeader`] waits until it reached the leader's, makes it
//!    serve, names it in GetShardLeaders and releases the old delegator.
//!
//! Nothing else balances while a move is under way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fv_common::{NodeId, PartitionId, SegmentId, Timestamp};
use fv_proto::fv::querynode::GetDataDistributionResponse;

/// A flushed segment that must be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSegment {
    pub id: SegmentId,
    pub vchannel: String,
    pub partition: PartitionId,
    pub rows: i64,
    /// The finished index build searches should use; 0: none (raw-vector scans).
    pub index_build: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make `node` the delegator of `vchannel`. `standby` when the vchannel had a leader
    /// that is gone (failover, also after a querycoord restart): the new delegator
    /// refuses reads until it has the sealed routing and is told to [`Action::Serve`],
    /// so no search misses sealed rows while the dead node's segments load elsewhere. A
    /// first load needs no standby: the collection is not reported loaded before its
    /// routing is complete.
    Watch { vchannel: String, node: NodeId, standby: bool },
    /// Load a sealed segment on `node`.
    Load { segment: SegmentId, node: NodeId },
    /// Tell the delegator that `worker` serves `segment` (handoff).
    AddSealed { vchannel: String, delegator: NodeId, segment: SegmentId, worker: NodeId, partition: PartitionId },
    /// Tell the delegator to stop using `segment`.
    RemoveSealed { vchannel: String, delegator: NodeId, segment: SegmentId },
    /// Drop a sealed segment from `node`.
    Release { segment: SegmentId, node: NodeId },
    /// Make the loaded `segment` on `node` use its current index build (a build that
    /// finished, was rebuilt or was dropped after the segment was loaded).
    SwitchIndex { segment: SegmentId, node: NodeId },
    /// Balance: load `segment` on `to`, re-point the delegator to it, then release it
    /// on `from`, in that order, so every read finds the segment exactly once.
    Move { vchannel: String, delegator: NodeId, segment: SegmentId, partition: PartitionId, from: NodeId, to: NodeId },
    /// Channel balance, step 1: start a standby delegator of `vchannel` on `to` (the
    /// leader stays on `from` until [`Action::SwitchLeader`]).
    MoveChannel { vchannel: String, from: NodeId, to: NodeId },
    /// Channel balance, last step: once `to` has caught up with `from`, make it serve,
    /// name it the shard leader and release the delegator on `from`.
    SwitchLeader { vchannel: String, from: NodeId, to: NodeId },
    /// A standby delegator left as the only one of its vchannel (started by failover,
    /// or the old leader's node died during a move) has the complete routing: make it
    /// serve.
    Serve { vchannel: String, node: NodeId },
    /// Stop a delegator that is not needed (a second one left by an interrupted move).
    Unsub { vchannel: String, node: NodeId },
}

/// Upper bound on balance moves per collection and round (a round runs every
/// `querycoord.check_interval_ms` and after each flush).
pub const MAX_MOVES_PER_ROUND: usize = 2;

/// A sealed segment as balance sees it: served from exactly one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub segment: SegmentId,
    pub rows: i64,
    pub node: NodeId,
}

/// How far (in physical time) a standby delegator's serviceable time may trail the
/// leader's for the switch to start; the switch itself then waits, bounded, until it
/// reaches the leader's. Keeps a delegator still replaying a long backlog from holding
/// querycoord's actor in that wait.
pub const CATCH_UP_SLACK: Timestamp = 2_000 << fv_common::ts::LOGICAL_BITS;

/// A delegator moves only when the nodes holding most and fewest delegators of its
/// collection differ by at least this many: a gap of one would only swap them.
pub const CHANNEL_GAP: usize = 2;

/// One channel balance move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMove {
    pub vchannel: String,
    pub from: NodeId,
    pub to: NodeId,
}

/// The vchannel (at most one) of a collection to move: from the node with the most of
/// its delegators to the one with the fewest, when they differ by [`CHANNEL_GAP`] or
/// more. `leaders` are (vchannel, node) of this collection; `global` counts every
/// delegator per node and breaks ties, so collections also spread over each other.
/// A move lowers the gap by two, so the sum of squared counts strictly decreases and
/// no delegator can move back.
pub fn balance_channels(
    leaders: &[(String, NodeId)],
    nodes: &[NodeId],
    global: &BTreeMap<NodeId, usize>,
) -> Option<ChannelMove> {
    let mut count: BTreeMap<NodeId, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    for (_, n) in leaders {
        // A delegator on a node that is not live is failover's business.
        if let Some(c) = count.get_mut(n) {
            *c += 1;
        }
    }
    let g = |n: &NodeId| global.get(n).copied().unwrap_or(0);
    let (&hi, &hi_count) = count.iter().max_by_key(|(n, c)| (**c, g(n), std::cmp::Reverse(**n)))?;
    let (&lo, &lo_count) = count.iter().min_by_key(|(n, c)| (**c, g(n), **n))?;
    if hi_count < lo_count + CHANNEL_GAP {
        return None;
    }
    let vchannel = leaders.iter().filter(|(_, n)| *n == hi).map(|(v, _)| v).min()?.clone();
    Some(ChannelMove { vchannel, from: hi, to: lo })
}

/// One balance move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub segment: SegmentId,
    pub from: NodeId,
    pub to: NodeId,
}

/// Moves that even out `placed` over `nodes` (rows per node), at most `max_moves`.
///
/// Each step takes the most and the least loaded node (ties: lower id) and moves the
/// segment of the former that brings the two closest together, among those smaller
/// than the gap (a larger one would only swap which node is overloaded).
pub fn balance(placed: &[Placed], nodes: &[NodeId], max_moves: usize) -> Vec<Move> {
    let mut load: BTreeMap<NodeId, i64> = nodes.iter().map(|n| (*n, 0)).collect();
    let mut at: BTreeMap<SegmentId, (NodeId, i64)> = BTreeMap::new();
    for p in placed {
        // A segment on a node that is not live has no say in balance.
        if let Some(l) = load.get_mut(&p.node) {
            *l += p.rows.max(1);
            at.insert(p.segment, (p.node, p.rows.max(1)));
        }
    }
    let mut moves = Vec::new();
    while moves.len() < max_moves {
        let Some((&hi, &hi_load)) = load.iter().max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n))) else { break };
        let Some((&lo, &lo_load)) = load.iter().min_by_key(|(n, l)| (**l, **n)) else { break };
        let gap = hi_load - lo_load;
        let best = at
            .iter()
            .filter(|(seg, (n, rows))| *n == hi && *rows < gap && !moves.iter().any(|m: &Move| m.segment == **seg))
            .min_by_key(|(seg, (_, rows))| ((gap - 2 * rows).abs(), **seg))
            .map(|(seg, (_, rows))| (*seg, *rows));
        let Some((segment, rows)) = best else { break };
        *load.get_mut(&hi).expect("node present") -= rows;
        *load.get_mut(&lo).expect("node present") += rows;
        at.insert(segment, (lo, rows));
        moves.push(Move { segment, from: hi, to: lo });
    }
    moves
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Whether the target is fully served (nothing to do but index switches, which
    /// never interrupt serving).
    pub complete: bool,
    /// Units served / total (channels + segments), for load progress.
    pub served: usize,
    pub total: usize,
    /// The shard leader of each vchannel that has one (what GetShardLeaders returns).
    pub leaders: BTreeMap<String, NodeId>,
}

/// A shard delegator as its node reports it.
struct DelegatorView<'a> {
    node: NodeId,
    standby: bool,
    serviceable: Timestamp,
    /// Where it routes each sealed segment.
    routes: BTreeMap<SegmentId, NodeId>,
    vchannel: &'a str,
}

/// Plans one collection. `views` are the live nodes' reports (only this collection's
/// entries matter); `leaders` are the shard leaders of the previous round (the choice
/// when a vchannel has two serving delegators, after a switch whose release failed).
/// `served_before`: the collection has been fully served since it was loaded (known
/// across querycoord restarts, unlike `leaders`), so a vchannel without a delegator
/// lost it and gets a standby one.
pub fn plan(
    collection: i64,
    channels: &[String],
    segments: &[TargetSegment],
    views: &[GetDataDistributionResponse],
    leaders: &BTreeMap<String, NodeId>,
    served_before: bool,
) -> Plan {
    let mut out = Plan { total: channels.len() + segments.len(), ..Default::default() };
    if views.is_empty() {
        return out;
    }
    // Current state: every delegator of this collection's vchannels.
    let mut delegators_of: HashMap<&str, Vec<DelegatorView>> = HashMap::new();
    let mut holders: HashMap<SegmentId, Vec<NodeId>> = HashMap::new();
    let mut index_of: HashMap<(SegmentId, NodeId), i64> = HashMap::new();
    let mut channel_load: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut segment_load: BTreeMap<NodeId, i64> = BTreeMap::new();
    for v in views {
        channel_load.entry(v.node_id).or_insert(0);
        segment_load.entry(v.node_id).or_insert(0);
        for c in &v.channels {
            *channel_load.entry(v.node_id).or_insert(0) += 1;
            if c.collection_id == collection {
                delegators_of.entry(c.vchannel.as_str()).or_default().push(DelegatorView {
                    node: v.node_id,
                    standby: c.standby,
                    serviceable: c.serviceable_ts,
                    routes: c.sealed_segment_nodes.iter().map(|(s, n)| (*s, *n)).collect(),
                    vchannel: c.vchannel.as_str(),
                });
            }
        }
        for s in &v.segments {
            *segment_load.entry(v.node_id).or_insert(0) += s.num_rows.max(1);
            if s.collection_id == collection {
                holders.entry(s.segment_id).or_default().push(v.node_id);
                index_of.insert((s.segment_id, v.node_id), s.index_build_id);
            }
        }
    }
    let pick = |load: &BTreeMap<NodeId, i64>| load.iter().min_by_key(|(n, l)| (**l, **n)).map(|(n, _)| *n);

    // Delegators: the leader of each vchannel, and the standby one taking over from it.
    let mut delegators: HashMap<String, NodeId> = HashMap::new();
    let mut leader_views: HashMap<&str, &DelegatorView> = HashMap::new();
    let mut joining: HashMap<&str, &DelegatorView> = HashMap::new();
    // Actions that finish or tidy up a channel move; they do not make the collection
    // incomplete (it is served by the leaders meanwhile).
    let mut move_actions: Vec<Action> = Vec::new();
    for ch in channels {
        let Some(ds) = delegators_of.get(ch.as_str()).filter(|ds| !ds.is_empty()) else {
            let node =
                channel_load.iter().min_by_key(|(n, c)| (**c, **n)).map(|(n, _)| *n).expect("views are not empty");
            *channel_load.get_mut(&node).expect("node present") += 1;
            let standby = served_before || leaders.contains_key(ch);
            out.actions.push(Action::Watch { vchannel: ch.clone(), node, standby });
            delegators.insert(ch.clone(), node);
            continue;
        };
        out.served += 1;
        // A serving delegator leads; of two (a switch that did not release the old one),
        // the one named last round. Only when none serves does a standby one lead.
        let serving: Vec<&DelegatorView> = ds.iter().filter(|d| !d.standby).collect();
        let pool: Vec<&DelegatorView> = if serving.is_empty() { ds.iter().collect() } else { serving };
        let leader = pool
            .iter()
            .find(|d| leaders.get(ch) == Some(&d.node))
            .or_else(|| pool.iter().min_by_key(|d| d.node))
            .copied()
            .expect("pool is not empty");
        // At most one standby delegator takes over (from a serving leader); any other
        // goes.
        let mut standby: Vec<&DelegatorView> =
            ds.iter().filter(|d| d.standby && !leader.standby && d.node != leader.node).collect();
        standby.sort_by_key(|d| d.node);
        if let Some(j) = standby.first() {
            joining.insert(ch.as_str(), j);
        }
        for d in
            ds.iter().filter(|d| d.node != leader.node && joining.get(ch.as_str()).is_none_or(|j| j.node != d.node))
        {
            move_actions.push(Action::Unsub { vchannel: ch.clone(), node: d.node });
        }
        leader_views.insert(ch.as_str(), leader);
        delegators.insert(ch.clone(), leader.node);
    }

    // Sealed segments.
    let target_ids: BTreeSet<SegmentId> = segments.iter().map(|s| s.id).collect();
    // Served segments (balance candidates) and copies left over from an interrupted move.
    let mut placed: Vec<Placed> = Vec::new();
    let mut extra_copies: Vec<Action> = Vec::new();
    for s in segments {
        let Some(&delegator) = delegators.get(&s.vchannel) else { continue };
        let routed = leader_views.get(s.vchannel.as_str()).and_then(|d| d.routes.get(&s.id)).copied();
        let held = holders.get(&s.id).map(Vec::as_slice).unwrap_or_default();
        // Keep the copy reads already go to; otherwise any copy; otherwise load one.
        let kept = routed.filter(|r| held.contains(r)).or_else(|| held.first().copied());
        let worker = match kept {
            Some(w) => w,
            None => {
                let node = pick(&segment_load).expect("views are not empty");
                *segment_load.get_mut(&node).expect("node present") += s.rows.max(1);
                out.actions.push(Action::Load { segment: s.id, node });
                node
            }
        };
        for n in held {
            if index_of.get(&(s.id, *n)).copied().unwrap_or(0) != s.index_build {
                out.actions.push(Action::SwitchIndex { segment: s.id, node: *n });
            }
        }
        // The delegator taking over gets the same routing as the leader.
        if let Some(j) = joining.get(s.vchannel.as_str())
            && (j.routes.get(&s.id) != Some(&worker) || held.is_empty())
        {
            move_actions.push(Action::AddSealed {
                vchannel: s.vchannel.clone(),
                delegator: j.node,
                segment: s.id,
                worker,
                partition: s.partition,
            });
        }
        if routed != Some(worker) || held.is_empty() {
            out.actions.push(Action::AddSealed {
                vchannel: s.vchannel.clone(),
                delegator,
                segment: s.id,
                worker,
                partition: s.partition,
            });
        } else {
            out.served += 1;
            placed.push(Placed { segment: s.id, rows: s.rows, node: worker });
            // Reads go to `worker` only, and the sync that re-pointed them waited for
            // the reads of other copies, so those copies can go.
            for n in held.iter().filter(|n| **n != worker) {
                extra_copies.push(Action::Release { segment: s.id, node: *n });
            }
        }
    }

    // Segments no longer wanted.
    for ch in channels {
        let lead = leader_views.get(ch.as_str());
        let join = joining.get(ch.as_str());
        for (d, is_leader) in lead.map(|d| (d, true)).into_iter().chain(join.map(|d| (d, false))) {
            for seg in d.routes.keys().filter(|s| !target_ids.contains(s)) {
                let a = Action::RemoveSealed { vchannel: d.vchannel.to_string(), delegator: d.node, segment: *seg };
                if is_leader { out.actions.push(a) } else { move_actions.push(a) }
            }
        }
    }
    // A standby delegator that leads (its old leader is gone) serves once its routing
    // is complete; one taking over switches once it also caught up.
    let pending: BTreeSet<(&str, NodeId)> = out
        .actions
        .iter()
        .chain(&move_actions)
        .filter_map(|a| match a {
            Action::AddSealed { vchannel, delegator, .. } | Action::RemoveSealed { vchannel, delegator, .. } => {
                Some((vchannel.as_str(), *delegator))
            }
            _ => None,
        })
        .collect();
    let mut finishing = Vec::new();
    for ch in channels {
        let routing_pending = |node: NodeId| pending.contains(&(ch.as_str(), node));
        let Some(lead) = leader_views.get(ch.as_str()) else { continue };
        if lead.standby {
            if !routing_pending(lead.node) {
                finishing.push(Action::Serve { vchannel: ch.clone(), node: lead.node });
            }
        } else if let Some(j) = joining.get(ch.as_str())
            && !routing_pending(j.node)
            && j.serviceable.saturating_add(CATCH_UP_SLACK) >= lead.serviceable
        {
            finishing.push(Action::SwitchLeader { vchannel: ch.clone(), from: lead.node, to: j.node });
        }
    }
    drop(pending);
    for a in finishing {
        // Serving makes a leader of a standby delegator: until then the collection is
        // not fully served. A switch only changes which complete delegator leads.
        if matches!(a, Action::Serve { .. }) { out.actions.push(a) } else { move_actions.push(a) }
    }
    for (seg, nodes) in &holders {
        if !target_ids.contains(seg) {
            for n in nodes {
                out.actions.push(Action::Release { segment: *seg, node: *n });
            }
        }
    }
    out.complete = out.actions.iter().all(|a| matches!(a, Action::SwitchIndex { .. }));
    let cleaning_up = !extra_copies.is_empty();
    out.actions.extend(extra_copies);
    let channel_moving = !joining.is_empty() || !move_actions.is_empty();
    out.actions.extend(move_actions);
    out.leaders = delegators
        .iter()
        .filter(|(ch, _)| leader_views.contains_key(ch.as_str()))
        .map(|(c, n)| (c.clone(), *n))
        .collect();

    // Balance only a collection that is fully served and has no copies to clean up and
    // no channel move under way, so moves never compete with loading or with each
    // other. (Pending index switches do not hold it back: a moved segment is loaded
    // with its current index.) Delegators first: while one moves, segments wait.
    if out.complete && !cleaning_up && !channel_moving {
        let nodes: Vec<NodeId> = views.iter().map(|v| v.node_id).collect();
        let mine: Vec<(String, NodeId)> = out.leaders.iter().map(|(c, n)| (c.clone(), *n)).collect();
        if let Some(m) = balance_channels(&mine, &nodes, &channel_load) {
            out.actions.push(Action::MoveChannel { vchannel: m.vchannel, from: m.from, to: m.to });
            return out;
        }
        for m in balance(&placed, &nodes, MAX_MOVES_PER_ROUND) {
            let Some(s) = segments.iter().find(|s| s.id == m.segment) else { continue };
            let Some(&delegator) = delegators.get(&s.vchannel) else { continue };
            out.actions.push(Action::Move {
                vchannel: s.vchannel.clone(),
                delegator,
                segment: m.segment,
                partition: s.partition,
                from: m.from,
                to: m.to,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fv_proto::fv::querynode::{ChannelDistribution, SegmentDistribution};

    /// A node's report: its delegators (vchannel, routing of sealed segments as
    /// (segment, worker)) and the sealed segments it holds.
    fn view(node: i64, channels: Vec<(&str, Vec<(i64, i64)>)>, segs: Vec<i64>) -> GetDataDistributionResponse {
        GetDataDistributionResponse {
            status: None,
            node_id: node,
            channels: channels
                .into_iter()
                .map(|(v, sealed)| ChannelDistribution {
                    collection_id: 1,
                    vchannel: v.into(),
                    sealed_segment_ids: sealed.iter().map(|(s, _)| *s).collect(),
                    sealed_segment_nodes: sealed.into_iter().collect(),
                    ..Default::default()
                })
                .collect(),
            segments: segs
                .into_iter()
                .map(|s| SegmentDistribution { collection_id: 1, segment_id: s, num_rows: 10, ..Default::default() })
                .collect(),
        }
    }

    fn plan0(
        collection: i64,
        channels: &[String],
        segments: &[TargetSegment],
        views: &[GetDataDistributionResponse],
    ) -> Plan {
        plan(collection, channels, segments, views, &BTreeMap::new(), false)
    }

    /// A delegator's report with its standby flag and serviceable time.
    fn delegator(v: &str, routes: &[(i64, i64)], standby: bool, serviceable: u64) -> ChannelDistribution {
        ChannelDistribution {
            collection_id: 1,
            vchannel: v.into(),
            sealed_segment_ids: routes.iter().map(|(s, _)| *s).collect(),
            sealed_segment_nodes: routes.iter().copied().collect(),
            standby,
            serviceable_ts: serviceable,
            ..Default::default()
        }
    }

    fn node(id: i64, channels: Vec<ChannelDistribution>, segs: Vec<i64>) -> GetDataDistributionResponse {
        let mut v = view(id, vec![], segs);
        v.channels = channels;
        v
    }

    const SEC: u64 = 1_000 << fv_common::ts::LOGICAL_BITS;

    fn chans(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn channel_balance_moves_one_delegator_of_two_onto_an_idle_node() {
        let leaders = vec![("b".to_string(), 1), ("a".to_string(), 1)];
        let global = BTreeMap::from([(1, 2), (2, 0)]);
        assert_eq!(
            balance_channels(&leaders, &[1, 2], &global),
            Some(ChannelMove { vchannel: "a".into(), from: 1, to: 2 })
        );
        // A gap of one: moving would only swap the nodes.
        let leaders = vec![("a".to_string(), 1), ("b".to_string(), 1), ("c".to_string(), 2)];
        assert_eq!(balance_channels(&leaders, &[1, 2], &BTreeMap::new()), None);
        // One shard: nothing to spread.
        assert_eq!(balance_channels(&[("a".to_string(), 1)], &[1, 2], &BTreeMap::new()), None);
        // Delegators on a node that left are failover's, not balance's.
        assert_eq!(balance_channels(&[("a".into(), 9), ("b".into(), 9)], &[1, 2], &BTreeMap::new()), None);
    }

    #[test]
    fn channel_balance_prefers_the_node_with_fewer_delegators_overall() {
        let leaders = vec![("a".to_string(), 1), ("b".to_string(), 1)];
        // Node 2 already leads other collections' shards; node 3 leads none.
        let global = BTreeMap::from([(1, 2), (2, 4), (3, 0)]);
        assert_eq!(balance_channels(&leaders, &[1, 2, 3], &global).map(|m| m.to), Some(3));
    }

    #[test]
    fn channel_balance_converges_without_ping_pong() {
        let mut at: Vec<(String, i64)> = (0..7).map(|i| (format!("v{i}"), 1)).collect();
        let nodes = [1, 2, 3];
        let mut moved_from: Vec<(String, i64)> = vec![];
        let mut rounds = 0;
        while let Some(m) = balance_channels(&at, &nodes, &BTreeMap::new()) {
            assert!(!moved_from.contains(&(m.vchannel.clone(), m.to)), "{} went back to node {}", m.vchannel, m.to);
            moved_from.push((m.vchannel.clone(), m.from));
            at.iter_mut().find(|(v, _)| *v == m.vchannel).expect("moved channel exists").1 = m.to;
            rounds += 1;
            assert!(rounds < 10, "channel balance does not settle");
        }
        let counts: Vec<usize> = nodes.iter().map(|n| at.iter().filter(|(_, x)| x == n).count()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
    }

    #[test]
    fn both_delegators_on_one_node_start_a_channel_move_before_any_segment_moves() {
        let segs: Vec<TargetSegment> = vec![seg(10, "a"), seg(11, "a"), seg(12, "b"), seg(13, "b")];
        let views = [
            node(
                5,
                vec![delegator("a", &[(10, 5), (11, 5)], false, SEC), delegator("b", &[(12, 5), (13, 5)], false, SEC)],
                vec![10, 11, 12, 13],
            ),
            node(6, vec![], vec![]),
        ];
        let p = plan0(1, &chans(&["a", "b"]), &segs, &views);
        assert!(p.complete);
        assert_eq!(p.actions, vec![Action::MoveChannel { vchannel: "a".into(), from: 5, to: 6 }]);
        assert_eq!(p.leaders, BTreeMap::from([("a".to_string(), 5), ("b".to_string(), 5)]));
    }

    #[test]
    fn a_standby_delegator_gets_the_leaders_routing_then_switches() {
        let segs = vec![seg(10, "a"), seg(11, "a")];
        let leader = node(5, vec![delegator("a", &[(10, 5), (11, 6)], false, 10 * SEC)], vec![10]);
        // Step 2: the standby one on 6 routes nothing yet.
        let views = [leader.clone(), node(6, vec![delegator("a", &[], true, 9 * SEC)], vec![11])];
        let p = plan0(1, &chans(&["a"]), &segs, &views);
        assert!(p.complete, "the leader serves everything meanwhile");
        assert_eq!(
            p.actions,
            vec![
                Action::AddSealed { vchannel: "a".into(), delegator: 6, segment: 10, worker: 5, partition: 7 },
                Action::AddSealed { vchannel: "a".into(), delegator: 6, segment: 11, worker: 6, partition: 7 },
            ],
            "same workers as the leader; no switch before the routing is complete, no balance"
        );
        assert_eq!(p.leaders.get("a"), Some(&5));
        // Step 3: routing complete but far behind the leader: wait.
        let behind = [leader.clone(), node(6, vec![delegator("a", &[(10, 5), (11, 6)], true, 5 * SEC)], vec![11])];
        assert!(plan0(1, &chans(&["a"]), &segs, &behind).actions.is_empty());
        // Caught up to within the slack: switch.
        let close = [leader, node(6, vec![delegator("a", &[(10, 5), (11, 6)], true, 9 * SEC)], vec![11])];
        let p = plan0(1, &chans(&["a"]), &segs, &close);
        assert_eq!(p.actions, vec![Action::SwitchLeader { vchannel: "a".into(), from: 5, to: 6 }]);
        assert_eq!(p.leaders.get("a"), Some(&5), "the leader changes only once the switch succeeded");
    }

    #[test]
    fn a_handoff_during_a_channel_move_reaches_both_delegators() {
        let segs = vec![seg(10, "a"), seg(11, "a")];
        // Segment 11 was just flushed and loaded on 6; neither delegator routes it.
        let views = [
            node(5, vec![delegator("a", &[(10, 5)], false, SEC)], vec![10]),
            node(6, vec![delegator("a", &[(10, 5)], true, SEC)], vec![11]),
        ];
        let p = plan0(1, &chans(&["a"]), &segs, &views);
        assert!(p.actions.contains(&Action::AddSealed {
            vchannel: "a".into(),
            delegator: 5,
            segment: 11,
            worker: 6,
            partition: 7
        }));
        assert!(p.actions.contains(&Action::AddSealed {
            vchannel: "a".into(),
            delegator: 6,
            segment: 11,
            worker: 6,
            partition: 7
        }));
        assert!(!p.actions.iter().any(|a| matches!(a, Action::SwitchLeader { .. })));
    }

    #[test]
    fn a_standby_delegator_whose_leader_died_serves_once_its_routing_is_complete() {
        let segs = vec![seg(10, "a")];
        // Node 5 (the leader) is gone; the standby on 6 routes nothing yet.
        let p = plan0(1, &chans(&["a"]), &segs, &[node(6, vec![delegator("a", &[], true, SEC)], vec![10])]);
        assert!(!p.complete);
        assert_eq!(
            p.actions,
            vec![Action::AddSealed { vchannel: "a".into(), delegator: 6, segment: 10, worker: 6, partition: 7 }]
        );
        assert_eq!(p.leaders.get("a"), Some(&6));
        let p = plan0(1, &chans(&["a"]), &segs, &[node(6, vec![delegator("a", &[(10, 6)], true, SEC)], vec![10])]);
        assert!(!p.complete, "not served until it serves");
        assert_eq!(p.actions, vec![Action::Serve { vchannel: "a".into(), node: 6 }]);
    }

    #[test]
    fn failover_starts_a_standby_delegator_that_serves_once_routed() {
        let segs = vec![seg(10, "a")];
        // The leader on 5 died with the only copy of segment 10; 6 is left.
        let previous = BTreeMap::from([("a".to_string(), 5)]);
        let p = plan(1, &chans(&["a"]), &segs, &[node(6, vec![], vec![])], &previous, false);
        assert_eq!(
            p.actions,
            vec![
                Action::Watch { vchannel: "a".into(), node: 6, standby: true },
                Action::Load { segment: 10, node: 6 },
                Action::AddSealed { vchannel: "a".into(), delegator: 6, segment: 10, worker: 6, partition: 7 },
            ]
        );
        assert!(!p.complete);
        // Next round: routed, so it may serve; until then the collection is not served.
        let p = plan(
            1,
            &chans(&["a"]),
            &segs,
            &[node(6, vec![delegator("a", &[(10, 6)], true, SEC)], vec![10])],
            &previous,
            false,
        );
        assert_eq!(p.actions, vec![Action::Serve { vchannel: "a".into(), node: 6 }]);
        assert!(!p.complete);
    }

    #[test]
    fn a_restarted_querycoord_starts_failover_delegators_as_standby() {
        let segs = vec![seg(10, "a")];
        // The leader on 5 died and querycoord restarted: no previous leaders in memory,
        // but the collection had been served.
        let p = plan(1, &chans(&["a"]), &segs, &[node(6, vec![], vec![])], &BTreeMap::new(), true);
        assert_eq!(
            p.actions,
            vec![
                Action::Watch { vchannel: "a".into(), node: 6, standby: true },
                Action::Load { segment: 10, node: 6 },
                Action::AddSealed { vchannel: "a".into(), delegator: 6, segment: 10, worker: 6, partition: 7 },
            ]
        );
        // A first load (never served) starts serving delegators.
        let p = plan(1, &chans(&["a"]), &segs, &[node(6, vec![], vec![])], &BTreeMap::new(), false);
        assert_eq!(p.actions[0], Action::Watch { vchannel: "a".into(), node: 6, standby: false });
    }

    #[test]
    fn a_switch_whose_release_failed_keeps_the_new_leader() {
        let segs = vec![seg(10, "a")];
        let views = [
            node(5, vec![delegator("a", &[(10, 5)], false, SEC)], vec![10]),
            node(6, vec![delegator("a", &[(10, 5)], false, SEC)], vec![]),
        ];
        let previous = BTreeMap::from([("a".to_string(), 6)]);
        let p = plan(1, &chans(&["a"]), &segs, &views, &previous, false);
        assert_eq!(p.actions, vec![Action::Unsub { vchannel: "a".into(), node: 5 }]);
        assert_eq!(p.leaders.get("a"), Some(&6));
        assert!(p.complete);
        // Without a previous leader (querycoord restarted) either is complete: the
        // lower node id leads and the other goes.
        let p = plan0(1, &chans(&["a"]), &segs, &views);
        assert_eq!(p.actions, vec![Action::Unsub { vchannel: "a".into(), node: 6 }]);
    }

    #[test]
    fn one_moved_delegator_settles_two_shards_on_two_nodes() {
        // After the move: one delegator per node, nothing more to do for channels.
        let segs = vec![seg(10, "a"), seg(12, "b")];
        let views = [
            node(5, vec![delegator("b", &[(12, 5)], false, SEC)], vec![12]),
            node(6, vec![delegator("a", &[(10, 6)], false, SEC)], vec![10]),
        ];
        let p = plan0(1, &chans(&["a", "b"]), &segs, &views);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
    }

    fn seg(id: i64, v: &str) -> TargetSegment {
        TargetSegment { id, vchannel: v.into(), partition: 7, rows: 10, index_build: 0 }
    }

    #[test]
    fn fresh_load_watches_loads_and_hands_off() {
        let p = plan0(1, &["a".into()], &[seg(10, "a")], &[view(5, vec![], vec![])]);
        assert_eq!(
            p.actions,
            vec![
                Action::Watch { vchannel: "a".into(), node: 5, standby: false },
                Action::Load { segment: 10, node: 5 },
                Action::AddSealed { vchannel: "a".into(), delegator: 5, segment: 10, worker: 5, partition: 7 },
            ]
        );
        assert!(!p.complete);
        assert_eq!((p.served, p.total), (0, 2));
    }

    #[test]
    fn steady_state_is_complete() {
        let p = plan0(1, &["a".into()], &[seg(10, "a")], &[view(5, vec![("a", vec![(10, 5)])], vec![10])]);
        assert!(p.complete, "{:?}", p.actions);
        assert_eq!(p.served, 2);
    }

    #[test]
    fn restarted_worker_reloads_and_dropped_segments_go() {
        // Node 6 restarted (holds nothing) while the delegator on 5 still points at it.
        let p = plan0(
            1,
            &["a".into()],
            &[seg(10, "a")],
            &[view(5, vec![("a", vec![(10, 6), (11, 5)])], vec![11]), view(6, vec![], vec![])],
        );
        assert!(p.actions.contains(&Action::Load { segment: 10, node: 6 }));
        assert!(p.actions.contains(&Action::AddSealed {
            vchannel: "a".into(),
            delegator: 5,
            segment: 10,
            worker: 6,
            partition: 7
        }));
        assert!(p.actions.contains(&Action::RemoveSealed { vchannel: "a".into(), delegator: 5, segment: 11 }));
        assert!(p.actions.contains(&Action::Release { segment: 11, node: 5 }));
    }

    #[test]
    fn spreads_channels_over_nodes() {
        let p = plan0(1, &["a".into(), "b".into()], &[], &[view(5, vec![], vec![]), view(6, vec![], vec![])]);
        assert_eq!(
            p.actions,
            vec![
                Action::Watch { vchannel: "a".into(), node: 5, standby: false },
                Action::Watch { vchannel: "b".into(), node: 6, standby: false }
            ]
        );
    }

    #[test]
    fn finished_and_dropped_builds_switch_without_blocking_the_load() {
        let mut target = seg(10, "a");
        target.index_build = 77;
        let loaded = view(5, vec![("a", vec![(10, 5)])], vec![10]);
        let p = plan0(1, &["a".into()], std::slice::from_ref(&target), std::slice::from_ref(&loaded));
        assert_eq!(p.actions, vec![Action::SwitchIndex { segment: 10, node: 5 }]);
        assert!(p.complete, "an index switch does not make a loaded collection incomplete");
        // The node reports the build: nothing to do.
        let mut indexed = loaded.clone();
        indexed.segments[0].index_build_id = 77;
        assert!(
            plan0(1, &["a".into()], std::slice::from_ref(&target), std::slice::from_ref(&indexed)).actions.is_empty()
        );
        // The index was dropped: back to raw scans.
        let p = plan0(1, &["a".into()], &[seg(10, "a")], &[indexed]);
        assert_eq!(p.actions, vec![Action::SwitchIndex { segment: 10, node: 5 }]);
    }

    fn placed(list: &[(i64, i64, i64)]) -> Vec<Placed> {
        list.iter().map(|&(segment, rows, node)| Placed { segment, rows, node }).collect()
    }

    fn loads(p: &[Placed], nodes: &[i64]) -> Vec<i64> {
        nodes.iter().map(|n| p.iter().filter(|x| x.node == *n).map(|x| x.rows).sum()).collect()
    }

    fn apply(p: &mut [Placed], moves: &[Move]) {
        for m in moves {
            let x = p.iter_mut().find(|x| x.segment == m.segment).expect("moved segment exists");
            assert_eq!(x.node, m.from, "a move starts where the segment is");
            x.node = m.to;
        }
    }

    #[test]
    fn a_joining_node_gets_half_of_equal_segments() {
        let p = placed(&[(1, 10, 1), (2, 10, 1), (3, 10, 1), (4, 10, 1)]);
        assert_eq!(
            balance(&p, &[1, 2], 10),
            vec![Move { segment: 1, from: 1, to: 2 }, Move { segment: 2, from: 1, to: 2 }]
        );
    }

    #[test]
    fn moves_are_bounded_per_round_and_converge_without_ping_pong() {
        let mut p: Vec<Placed> = (1..=9).map(|i| Placed { segment: i, rows: 10 * i, node: 1 }).collect();
        let nodes = [1, 2, 3];
        let mut rounds = 0;
        let mut moved_from: Vec<(i64, i64)> = vec![];
        loop {
            let moves = balance(&p, &nodes, 2);
            assert!(moves.len() <= 2, "{moves:?}");
            if moves.is_empty() {
                break;
            }
            let before: i64 = loads(&p, &nodes).iter().map(|l| l * l).sum();
            apply(&mut p, &moves);
            let after: i64 = loads(&p, &nodes).iter().map(|l| l * l).sum();
            assert!(after < before, "every round evens the load out");
            for m in &moves {
                assert!(!moved_from.contains(&(m.segment, m.to)), "segment {} went back to node {}", m.segment, m.to);
                moved_from.push((m.segment, m.from));
            }
            rounds += 1;
            assert!(rounds < 20, "balance does not settle");
        }
        // 450 rows over 3 nodes: each ends within one segment of the mean.
        let l = loads(&p, &nodes);
        assert_eq!(l.iter().sum::<i64>(), 450);
        assert!(l.iter().all(|x| (x - 150).abs() <= 90), "{l:?}");
        assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 90, "{l:?}");
    }

    #[test]
    fn no_move_unless_the_gap_exceeds_the_segment() {
        // One extra segment of difference: moving it would just swap the roles.
        assert!(balance(&placed(&[(1, 10, 1), (2, 10, 1), (3, 10, 2)]), &[1, 2], 10).is_empty());
        // A single segment cannot be split.
        assert!(balance(&placed(&[(1, 100, 1)]), &[1, 2], 10).is_empty());
        // Already even.
        assert!(balance(&placed(&[(1, 10, 1), (2, 10, 2)]), &[1, 2], 10).is_empty());
    }

    #[test]
    fn picks_the_segment_that_closes_the_gap_best() {
        // Gap 85: moving 50 leaves 35/50 (gap 15), 30 leaves 55/30, 5 leaves 80/5.
        let p = placed(&[(1, 5, 1), (2, 30, 1), (3, 50, 1)]);
        assert_eq!(balance(&p, &[1, 2], 10), vec![Move { segment: 3, from: 1, to: 2 }]);
    }

    #[test]
    fn segments_on_nodes_that_left_are_ignored() {
        let p = placed(&[(1, 10, 9), (2, 10, 9), (3, 10, 1)]);
        assert!(balance(&p, &[1, 2], 10).is_empty());
    }

    #[test]
    fn fully_served_collection_is_balanced_onto_an_idle_node() {
        let segs: Vec<TargetSegment> = (10..14).map(|i| seg(i, "a")).collect();
        let routes = (10..14).map(|i| (i, 5)).collect();
        let views = [view(5, vec![("a", routes)], (10..14).collect()), view(6, vec![], vec![])];
        let p = plan0(1, &["a".into()], &segs, &views);
        assert!(p.complete, "moves do not make a served collection incomplete");
        assert_eq!(
            p.actions,
            vec![
                Action::Move { vchannel: "a".into(), delegator: 5, segment: 10, partition: 7, from: 5, to: 6 },
                Action::Move { vchannel: "a".into(), delegator: 5, segment: 11, partition: 7, from: 5, to: 6 },
            ]
        );
    }

    #[test]
    fn no_balance_while_loading() {
        // Segment 13 is not loaded yet: it is placed, nothing is moved.
        let segs: Vec<TargetSegment> = (10..14).map(|i| seg(i, "a")).collect();
        let routes = (10..13).map(|i| (i, 5)).collect();
        let views = [view(5, vec![("a", routes)], (10..13).collect()), view(6, vec![], vec![])];
        let p = plan0(1, &["a".into()], &segs, &views);
        assert!(!p.actions.iter().any(|a| matches!(a, Action::Move { .. })), "{:?}", p.actions);
        assert!(p.actions.contains(&Action::Load { segment: 13, node: 6 }));
    }

    #[test]
    fn an_interrupted_move_is_finished_or_undone() {
        // Re-pointed to 6 but the release on 5 did not happen: release it now.
        let views = [view(5, vec![("a", vec![(10, 6)])], vec![10]), view(6, vec![], vec![10])];
        let p = plan0(1, &["a".into()], &[seg(10, "a")], &views);
        assert_eq!(p.actions, vec![Action::Release { segment: 10, node: 5 }]);
        assert!(p.complete);
        // Loaded on 6 but never re-pointed: reads still go to 5, the copy on 6 goes.
        let views = [view(5, vec![("a", vec![(10, 5)])], vec![10]), view(6, vec![], vec![10])];
        let p = plan0(1, &["a".into()], &[seg(10, "a")], &views);
        assert_eq!(p.actions, vec![Action::Release { segment: 10, node: 6 }]);
    }

    #[test]
    fn routing_to_a_node_without_the_segment_is_repaired() {
        // Node 6 restarted: the delegator still routes 10 there, but only 5 holds it.
        let views = [view(5, vec![("a", vec![(10, 6)])], vec![10]), view(6, vec![], vec![])];
        let p = plan0(1, &["a".into()], &[seg(10, "a")], &views);
        assert_eq!(
            p.actions,
            vec![Action::AddSealed { vchannel: "a".into(), delegator: 5, segment: 10, worker: 5, partition: 7 }]
        );
        assert!(!p.complete);
    }
}

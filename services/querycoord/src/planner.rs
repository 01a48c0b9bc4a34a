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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fv_common::{NodeId, PartitionId, SegmentId};
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
    /// Make `node` the delegator of `vchannel`.
    Watch { vchannel: String, node: NodeId },
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
}

/// Plans one collection. `views` are the live nodes' reports (only this collection's
/// entries matter).
pub fn plan(
    collection: i64,
    channels: &[String],
    segments: &[TargetSegment],
    views: &[GetDataDistributionResponse],
) -> Plan {
    let mut out = Plan { total: channels.len() + segments.len(), ..Default::default() };
    if views.is_empty() {
        return out;
    }
    // Current state.
    let mut delegator_of: HashMap<&str, NodeId> = HashMap::new();
    // Per vchannel: where its delegator routes each sealed segment.
    let mut delegator_sealed: HashMap<&str, BTreeMap<SegmentId, NodeId>> = HashMap::new();
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
                delegator_of.insert(c.vchannel.as_str(), v.node_id);
                delegator_sealed
                    .insert(c.vchannel.as_str(), c.sealed_segment_nodes.iter().map(|(s, n)| (*s, *n)).collect());
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

    // Delegators.
    let mut delegators: HashMap<String, NodeId> = HashMap::new();
    for ch in channels {
        match delegator_of.get(ch.as_str()) {
            Some(n) => {
                delegators.insert(ch.clone(), *n);
                out.served += 1;
            }
            None => {
                let node =
                    channel_load.iter().min_by_key(|(n, c)| (**c, **n)).map(|(n, _)| *n).expect("views are not empty");
                *channel_load.get_mut(&node).expect("node present") += 1;
                out.actions.push(Action::Watch { vchannel: ch.clone(), node });
                delegators.insert(ch.clone(), node);
            }
        }
    }

    // Sealed segments.
    let target_ids: BTreeSet<SegmentId> = segments.iter().map(|s| s.id).collect();
    // Served segments (balance candidates) and copies left over from an interrupted move.
    let mut placed: Vec<Placed> = Vec::new();
    let mut extra_copies: Vec<Action> = Vec::new();
    for s in segments {
        let Some(&delegator) = delegators.get(&s.vchannel) else { continue };
        let routed = delegator_sealed.get(s.vchannel.as_str()).and_then(|m| m.get(&s.id)).copied();
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
    for (vchannel, routes) in &delegator_sealed {
        for seg in routes.keys().filter(|s| !target_ids.contains(s)) {
            if let Some(&d) = delegator_of.get(vchannel) {
                out.actions.push(Action::RemoveSealed { vchannel: vchannel.to_string(), delegator: d, segment: *seg });
            }
        }
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

    // Balance only a collection that is fully served and has no copies to clean up, so
    // moves never compete with loading or with an unfinished move. (Pending index
    // switches do not hold it back: a moved segment is loaded with its current index.)
    if out.complete && !cleaning_up {
        let nodes: Vec<NodeId> = views.iter().map(|v| v.node_id).collect();
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

    fn seg(id: i64, v: &str) -> TargetSegment {
        TargetSegment { id, vchannel: v.into(), partition: 7, rows: 10, index_build: 0 }
    }

    #[test]
    fn fresh_load_watches_loads_and_hands_off() {
        let p = plan(1, &["a".into()], &[seg(10, "a")], &[view(5, vec![], vec![])]);
        assert_eq!(
            p.actions,
            vec![
                Action::Watch { vchannel: "a".into(), node: 5 },
                Action::Load { segment: 10, node: 5 },
                Action::AddSealed { vchannel: "a".into(), delegator: 5, segment: 10, worker: 5, partition: 7 },
            ]
        );
        assert!(!p.complete);
        assert_eq!((p.served, p.total), (0, 2));
    }

    #[test]
    fn steady_state_is_complete() {
        let p = plan(1, &["a".into()], &[seg(10, "a")], &[view(5, vec![("a", vec![(10, 5)])], vec![10])]);
        assert!(p.complete, "{:?}", p.actions);
        assert_eq!(p.served, 2);
    }

    #[test]
    fn restarted_worker_reloads_and_dropped_segments_go() {
        // Node 6 restarted (holds nothing) while the delegator on 5 still points at it.
        let p = plan(
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
        let p = plan(1, &["a".into(), "b".into()], &[], &[view(5, vec![], vec![]), view(6, vec![], vec![])]);
        assert_eq!(
            p.actions,
            vec![Action::Watch { vchannel: "a".into(), node: 5 }, Action::Watch { vchannel: "b".into(), node: 6 }]
        );
    }

    #[test]
    fn finished_and_dropped_builds_switch_without_blocking_the_load() {
        let mut target = seg(10, "a");
        target.index_build = 77;
        let loaded = view(5, vec![("a", vec![(10, 5)])], vec![10]);
        let p = plan(1, &["a".into()], std::slice::from_ref(&target), std::slice::from_ref(&loaded));
        assert_eq!(p.actions, vec![Action::SwitchIndex { segment: 10, node: 5 }]);
        assert!(p.complete, "an index switch does not make a loaded collection incomplete");
        // The node reports the build: nothing to do.
        let mut indexed = loaded.clone();
        indexed.segments[0].index_build_id = 77;
        assert!(
            plan(1, &["a".into()], std::slice::from_ref(&target), std::slice::from_ref(&indexed)).actions.is_empty()
        );
        // The index was dropped: back to raw scans.
        let p = plan(1, &["a".into()], &[seg(10, "a")], &[indexed]);
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
        let p = plan(1, &["a".into()], &segs, &views);
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
        let p = plan(1, &["a".into()], &segs, &views);
        assert!(!p.actions.iter().any(|a| matches!(a, Action::Move { .. })), "{:?}", p.actions);
        assert!(p.actions.contains(&Action::Load { segment: 13, node: 6 }));
    }

    #[test]
    fn an_interrupted_move_is_finished_or_undone() {
        // Re-pointed to 6 but the release on 5 did not happen: release it now.
        let views = [view(5, vec![("a", vec![(10, 6)])], vec![10]), view(6, vec![], vec![10])];
        let p = plan(1, &["a".into()], &[seg(10, "a")], &views);
        assert_eq!(p.actions, vec![Action::Release { segment: 10, node: 5 }]);
        assert!(p.complete);
        // Loaded on 6 but never re-pointed: reads still go to 5, the copy on 6 goes.
        let views = [view(5, vec![("a", vec![(10, 5)])], vec![10]), view(6, vec![], vec![10])];
        let p = plan(1, &["a".into()], &[seg(10, "a")], &views);
        assert_eq!(p.actions, vec![Action::Release { segment: 10, node: 6 }]);
    }

    #[test]
    fn routing_to_a_node_without_the_segment_is_repaired() {
        // Node 6 restarted: the delegator still routes 10 there, but only 5 holds it.
        let views = [view(5, vec![("a", vec![(10, 6)])], vec![10]), view(6, vec![], vec![])];
        let p = plan(1, &["a".into()], &[seg(10, "a")], &views);
        assert_eq!(
            p.actions,
            vec![Action::AddSealed { vchannel: "a".into(), delegator: 5, segment: 10, worker: 5, partition: 7 }]
        );
        assert!(!p.complete);
    }
}

//! Planning distribution changes (pure logic).

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
    let mut delegator_sealed: HashMap<&str, BTreeSet<SegmentId>> = HashMap::new();
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
                delegator_sealed.insert(c.vchannel.as_str(), c.sealed_segment_ids.iter().copied().collect());
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
    for s in segments {
        let Some(&delegator) = delegators.get(&s.vchannel) else { continue };
        let in_delegator = delegator_sealed.get(s.vchannel.as_str()).is_some_and(|set| set.contains(&s.id));
        let worker = match holders.get(&s.id).and_then(|h| h.first()) {
            Some(w) => *w,
            None => {
                let node = pick(&segment_load).expect("views are not empty");
                *segment_load.get_mut(&node).expect("node present") += s.rows.max(1);
                out.actions.push(Action::Load { segment: s.id, node });
                node
            }
        };
        let loaded = holders.contains_key(&s.id);
        for n in holders.get(&s.id).into_iter().flatten() {
            if index_of.get(&(s.id, *n)).copied().unwrap_or(0) != s.index_build {
                out.actions.push(Action::SwitchIndex { segment: s.id, node: *n });
            }
        }
        if !in_delegator || !loaded {
            out.actions.push(Action::AddSealed {
                vchannel: s.vchannel.clone(),
                delegator,
                segment: s.id,
                worker,
                partition: s.partition,
            });
        } else {
            out.served += 1;
        }
    }

    // Segments no longer wanted.
    for (vchannel, set) in &delegator_sealed {
        for seg in set.iter().filter(|s| !target_ids.contains(s)) {
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fv_proto::fv::querynode::{ChannelDistribution, SegmentDistribution};

    fn view(node: i64, channels: Vec<(&str, Vec<i64>)>, segs: Vec<i64>) -> GetDataDistributionResponse {
        GetDataDistributionResponse {
            status: None,
            node_id: node,
            channels: channels
                .into_iter()
                .map(|(v, sealed)| ChannelDistribution {
                    collection_id: 1,
                    vchannel: v.into(),
                    sealed_segment_ids: sealed,
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
        let p = plan(1, &["a".into()], &[seg(10, "a")], &[view(5, vec![("a", vec![10])], vec![10])]);
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
            &[view(5, vec![("a", vec![10, 11])], vec![11]), view(6, vec![], vec![])],
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
        let loaded = view(5, vec![("a", vec![10])], vec![10]);
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
}

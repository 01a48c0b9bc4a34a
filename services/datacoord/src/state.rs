//! datacoord's in-memory view and the read-only answers computed from it.

use std::collections::{BTreeMap, HashMap};

use fv_common::{CollectionId, PartitionId, SegmentId};
use fv_proto::common::SegmentState;
use fv_proto::fv::datacoord::{GetRecoveryInfoResponse, VchannelInfo};
use fv_proto::fv::meta::{ChannelWatchInfo, SegmentInfo};
use fv_proto::fv::msg::MsgPosition;

use crate::alloc::GrowingAlloc;

pub fn is(s: &SegmentInfo, st: SegmentState) -> bool {
    s.state == st as i32
}

/// Growing or sealed but not yet flushed.
pub fn is_unflushed(s: &SegmentInfo) -> bool {
    is(s, SegmentState::Growing) || is(s, SegmentState::Sealed) || is(s, SegmentState::Flushing)
}

#[derive(Debug, Default)]
pub struct State {
    pub segments: HashMap<SegmentId, SegmentInfo>,
    pub checkpoints: HashMap<String, MsgPosition>,
    pub watches: BTreeMap<String, ChannelWatchInfo>,
    /// The open growing segment of each (collection, partition, vchannel).
    pub growing: HashMap<(CollectionId, PartitionId, String), GrowingAlloc>,
    /// Buffered rows of unflushed segments, as their data node last reported them.
    pub buffered_rows: HashMap<SegmentId, i64>,
}

impl State {
    pub fn collection_vchannels(&self, c: CollectionId) -> Vec<String> {
        self.watches.values().filter(|w| w.collection_id == c).map(|w| w.vchannel.clone()).collect()
    }

    pub fn channel_segments(&self, vchannel: &str) -> Vec<SegmentInfo> {
        let mut v: Vec<_> = self
            .segments
            .values()
            .filter(|s| s.vchannel == vchannel && !is(s, SegmentState::Dropped))
            .cloned()
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    pub fn vchannel_info(&self, vchannel: &str, partitions: &[PartitionId]) -> Option<VchannelInfo> {
        let w = self.watches.get(vchannel)?;
        let in_parts = |s: &SegmentInfo| partitions.is_empty() || partitions.contains(&s.partition_id);
        let mut info = VchannelInfo {
            collection_id: w.collection_id,
            vchannel: vchannel.to_string(),
            seek_position: self.checkpoints.get(vchannel).cloned(),
            ..Default::default()
        };
        let mut segs: Vec<_> = self.segments.values().filter(|s| s.vchannel == vchannel).collect();
        segs.sort_by_key(|s| s.id);
        for s in segs {
            if is(s, SegmentState::Dropped) {
                info.dropped_segment_ids.push(s.id);
            } else if !in_parts(s) {
                continue;
            } else if is(s, SegmentState::Flushed) {
                info.flushed_segment_ids.push(s.id);
            } else {
                info.unflushed_segment_ids.push(s.id);
            }
        }
        Some(info)
    }

    pub fn recovery_info(&self, c: CollectionId, partitions: &[PartitionId]) -> GetRecoveryInfoResponse {
        let channels = self.collection_vchannels(c).iter().filter_map(|v| self.vchannel_info(v, partitions)).collect();
        let mut segments: Vec<_> = self
            .segments
            .values()
            .filter(|s| s.collection_id == c && is(s, SegmentState::Flushed))
            .filter(|s| partitions.is_empty() || partitions.contains(&s.partition_id))
            .cloned()
            .collect();
        segments.sort_by_key(|s| s.id);
        GetRecoveryInfoResponse { status: Some(Default::default()), channels, segments }
    }

    /// Rows of flushed segments plus rows data nodes hold in memory.
    pub fn row_count(&self, c: CollectionId, partitions: &[PartitionId]) -> i64 {
        self.segments
            .values()
            .filter(|s| s.collection_id == c && (partitions.is_empty() || partitions.contains(&s.partition_id)))
            .map(|s| {
                if is(s, SegmentState::Flushed) {
                    s.num_rows
                } else if is_unflushed(s) {
                    self.buffered_rows.get(&s.id).copied().unwrap_or(0)
                } else {
                    0
                }
            })
            .sum()
    }

    /// Whether every segment is flushed (or dropped, or forgotten after GC).
    pub fn all_flushed(&self, ids: &[SegmentId]) -> bool {
        ids.iter().all(|id| self.segments.get(id).is_none_or(|s| !is_unflushed(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: i64, part: i64, st: SegmentState, rows: i64) -> SegmentInfo {
        SegmentInfo {
            id,
            collection_id: 1,
            partition_id: part,
            vchannel: "v".into(),
            state: st as i32,
            num_rows: rows,
            ..Default::default()
        }
    }

    #[test]
    fn recovery_and_counts() {
        let mut s = State::default();
        s.watches.insert("v".into(), ChannelWatchInfo { vchannel: "v".into(), collection_id: 1, node_id: 3 });
        s.checkpoints.insert("v".into(), MsgPosition { pchannel: "p".into(), seq: 7, timestamp: 9 });
        s.segments.insert(1, seg(1, 10, SegmentState::Flushed, 100));
        s.segments.insert(2, seg(2, 10, SegmentState::Growing, 0));
        s.segments.insert(3, seg(3, 11, SegmentState::Flushed, 50));
        s.segments.insert(4, seg(4, 10, SegmentState::Dropped, 0));
        s.buffered_rows.insert(2, 20);
        let r = s.recovery_info(1, &[10]);
        assert_eq!(r.channels.len(), 1);
        assert_eq!(r.channels[0].flushed_segment_ids, vec![1]);
        assert_eq!(r.channels[0].unflushed_segment_ids, vec![2]);
        assert_eq!(r.channels[0].dropped_segment_ids, vec![4]);
        assert_eq!(r.channels[0].seek_position.as_ref().map(|p| p.seq), Some(7));
        assert_eq!(r.segments.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.row_count(1, &[]), 170);
        assert_eq!(s.row_count(1, &[11]), 50);
        assert!(s.all_flushed(&[1, 3, 4, 99]));
        assert!(!s.all_flushed(&[1, 2]));
    }
}

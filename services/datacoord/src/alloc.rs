//! Segment allocation and the seal policy (pure logic).
//!
//! Rows are assigned to the growing segment of their (collection, partition, vchannel)
//! until it reaches its row capacity, derived from the configured segment size and the
//! schema's estimated row size; then it is sealed and a new one opened. Segments are
//! also sealed when idle for long, and on flush.

use std::time::{Duration, Instant};

use fv_common::SegmentId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowingAlloc {
    pub segment_id: SegmentId,
    pub allocated: u64,
    pub max_rows: u64,
    pub last_assign: Instant,
}

/// Row capacity of a new segment.
pub fn max_rows(row_bytes: u64, segment_max_bytes: u64, segment_max_rows: u64) -> u64 {
    let by_size = (segment_max_bytes / row_bytes.max(1)).max(1);
    if segment_max_rows > 0 { by_size.min(segment_max_rows) } else { by_size }
}

/// How `count` rows split over the current growing segment and new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Rows for the current segment (0 when there is none or it is full).
    pub into_current: u64,
    /// Rows for each new segment to open, in order.
    pub new_segments: Vec<u64>,
    /// Whether the current segment is full afterwards (and must be sealed).
    pub seal_current: bool,
}

pub fn plan(current: Option<&GrowingAlloc>, count: u64, capacity: u64) -> Plan {
    let capacity = capacity.max(1);
    let mut left = count;
    let (into_current, seal_current) = match current {
        Some(g) => {
            let room = g.max_rows.saturating_sub(g.allocated);
            let take = room.min(left);
            left -= take;
            (take, g.allocated + take >= g.max_rows)
        }
        None => (0, false),
    };
    let mut new_segments = Vec::new();
    while left > 0 {
        let take = left.min(capacity);
        new_segments.push(take);
        left -= take;
    }
    Plan { into_current, new_segments, seal_current }
}

pub fn is_idle(g: &GrowingAlloc, now: Instant, idle: Duration) -> bool {
    now.duration_since(g.last_assign) >= idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_from_size_and_rows() {
        assert_eq!(max_rows(512, 512 << 20, 0), 1 << 20);
        assert_eq!(max_rows(512, 512 << 20, 1000), 1000);
        assert_eq!(max_rows(0, 10, 0), 10);
    }

    #[test]
    fn plans_fill_then_open_new_segments() {
        let g = GrowingAlloc { segment_id: 1, allocated: 90, max_rows: 100, last_assign: Instant::now() };
        assert_eq!(plan(Some(&g), 5, 100), Plan { into_current: 5, new_segments: vec![], seal_current: false });
        assert_eq!(plan(Some(&g), 10, 100), Plan { into_current: 10, new_segments: vec![], seal_current: true });
        assert_eq!(
            plan(Some(&g), 250, 100),
            Plan { into_current: 10, new_segments: vec![100, 100, 40], seal_current: true }
        );
        assert_eq!(plan(None, 30, 100), Plan { into_current: 0, new_segments: vec![30], seal_current: false });
    }

    #[test]
    fn idleness() {
        let past = Instant::now() - Duration::from_secs(10);
        let g = GrowingAlloc { segment_id: 1, allocated: 1, max_rows: 10, last_assign: past };
        assert!(is_idle(&g, Instant::now(), Duration::from_secs(5)));
        assert!(!is_idle(&g, Instant::now(), Duration::from_secs(60)));
    }
}

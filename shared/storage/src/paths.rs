//! Object storage layout. Every file of a segment lives under keys that name its
//! collection, partition and segment, so dropping any of them is a prefix delete.

use fv_common::{BuildId, CollectionId, FieldId, PartitionId, SegmentId};

pub fn insert_log(c: CollectionId, p: PartitionId, s: SegmentId, field: FieldId, log_id: i64) -> String {
    format!("insert_log/{c}/{p}/{s}/{field}/{log_id}")
}

pub fn delta_log(c: CollectionId, p: PartitionId, s: SegmentId, log_id: i64) -> String {
    format!("delta_log/{c}/{p}/{s}/{log_id}")
}

pub fn stats_log(c: CollectionId, p: PartitionId, s: SegmentId, field: FieldId, log_id: i64) -> String {
    format!("stats_log/{c}/{p}/{s}/{field}/{log_id}")
}

pub fn index_file(c: CollectionId, s: SegmentId, build: BuildId, name: &str) -> String {
    format!("index_files/{c}/{s}/{build}/{name}")
}

/// Prefixes covering everything of a segment (for garbage collection).
pub fn segment_prefixes(c: CollectionId, p: PartitionId, s: SegmentId) -> [String; 3] {
    [format!("insert_log/{c}/{p}/{s}/"), format!("delta_log/{c}/{p}/{s}/"), format!("stats_log/{c}/{p}/{s}/")]
}

pub fn index_prefix(c: CollectionId, s: SegmentId, build: BuildId) -> String {
    format!("index_files/{c}/{s}/{build}/")
}

//! Identifier types and well-known ids and names (Milvus conventions).

pub type UniqueId = i64;
pub type CollectionId = i64;
pub type PartitionId = i64;
pub type SegmentId = i64;
pub type FieldId = i64;
pub type IndexId = i64;
pub type BuildId = i64;
pub type NodeId = i64;

/// System field holding each row's id (Milvus field 0). Ferrovec does not store it.
pub const ROW_ID_FIELD_ID: FieldId = 0;
/// System field holding each row's hybrid timestamp (Milvus field 1); stored in binlogs.
pub const TIMESTAMP_FIELD_ID: FieldId = 1;
/// User fields are numbered from here in schema order.
pub const START_OF_USER_FIELD_ID: FieldId = 100;

pub const DEFAULT_DB_NAME: &str = "default";
pub const DEFAULT_PARTITION_NAME: &str = "_default";
/// Name of the hidden JSON field that holds dynamic (schema-less) keys.
pub const DYNAMIC_FIELD_NAME: &str = "$meta";
/// Partition id meaning "every partition" in delete messages and requests.
pub const ALL_PARTITIONS: PartitionId = -1;

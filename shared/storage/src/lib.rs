//! Segment data in memory and on object storage.
//!
//! - [`column`]: typed columns ([`column::Column`]) and their conversion from/to the
//!   Milvus `FieldData` protos that travel on the log and to clients.
//! - [`segment`]: a batch of rows of one segment (columns + timestamps), appendable.
//! - [`binlog`]: the versioned, checksummed file formats for insert, delta and stats logs.
//! - [`bloom`]: the primary-key bloom filter stored in stats logs.
//! - [`paths`]: where each file lives in object storage.
//! - `testing` (feature `testing`): a two-field schema and rows of it for tests.

pub mod binlog;
pub mod bloom;
pub mod column;
pub mod error;
pub mod paths;
pub mod result;
pub mod segment;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use column::{Column, ColumnData};
pub use error::{Result, StorageError};
pub use segment::SegmentData;

//! indexnode: builds indexes of sealed segments.
//!
//! A build reads the segment's vector binlogs, checks them (row count, dimension,
//! checksums) and builds the requested index. FLAT (and AUTOINDEX on a segment under
//! 5,000 rows) searches the raw vectors, so its build writes no index file; IVF_FLAT,
//! IVF_SQ8, IVF_PQ and HNSW (AUTOINDEX above 5,000 rows) write one file under the
//! segment's index path. The result is reported to indexcoord, which owns the task state.

pub mod actor;
pub mod service;

pub use service::start;

//! indexnode: builds indexes of sealed segments.
//!
//! A build reads the segment's vector binlogs, checks them (row count, dimension,
//! checksums) and builds the requested index. FLAT and AUTOINDEX (which maps to FLAT in
//! this build) search the raw vectors, so their build writes no index file; the IVF
//! family arrives with the index issue and writes its files under the segment's index
//! path. The result is reported to indexcoord, which owns the task state.

pub mod actor;
pub mod service;

pub use service::start;

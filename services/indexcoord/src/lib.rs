//! indexcoord: index meta and per-segment build tasks.
//!
//! `create_index` records the index; every flushed segment of the collection (existing
//! and future) gets a build task persisted in meta, which moves Unissued -> InProgress
//! (assigned to the least loaded index node) -> Finished or Failed (retried up to
//! [`MAX_RETRIES`] times). A task whose index node dies goes back to Unissued. Dropped
//! indexes are marked, and a background pass removes their files and records.
//!
//! - [`catalog`]: typed keys; [`actor`]: the core, whose changes run on the role's exclusive actor;
//!   [`service`]: bus requests and the scheduling loop.

pub mod actor;
pub mod catalog;
pub mod service;

pub use service::start;

pub const MAX_RETRIES: i32 = 3;

/// Index types this build can create on float vectors.
pub const SUPPORTED_VECTOR_INDEXES: &[&str] = &["FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "AUTOINDEX"];

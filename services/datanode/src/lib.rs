//! datanode: consumes vchannels from their checkpoints, buffers growing segments and
//! deletes, and writes insert/delta/stats binlogs to object storage when datacoord
//! seals a segment (flushing once the vchannel's time tick passes the seal timestamp).
//!
//! - [`buffer`]: per-vchannel buffers: growing segment rows, routing of deletes to
//!   segments (exact key sets for growing segments, bloom filters for flushed ones),
//!   and the checkpoint below which everything is persisted.
//! - [`flush`]: encoding and writing binlogs.
//! - [`pipeline`]: the task that consumes one vchannel.
//! - [`actor`]: `DataNodeActor`, which owns the pipelines (watch, unwatch, flush).

pub mod actor;
pub mod buffer;
pub mod flush;
pub mod pipeline;
pub mod service;

pub use service::start;

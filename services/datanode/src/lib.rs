//! datanode: consumes vchannels from their checkpoints, buffers growing segments and
//! deletes, and writes insert/delta/stats binlogs to object storage when datacoord
//! seals a segment (flushing once the vchannel's time tick passes the seal timestamp).
//!
//! - [`buffer`]: per-vchannel buffers: growing segment rows, routing of deletes to
//!   segments (exact key sets for growing segments, bloom filters for flushed ones),
//!   and the checkpoint below which everything is persisted.
//! - [`flush`]: encoding and writing binlogs.
//! - [`pipeline`]: the task that consumes one vchannel.
//! - [`actor`]: the node's core, which owns the pipelines (watch, unwatch, flush).
//! - [`service`]: the requests it serves; pipeline changes run on its exclusive actor.

pub mod actor;
pub mod buffer;
pub mod flush;
pub mod pipeline;
pub mod service;

pub use service::start;

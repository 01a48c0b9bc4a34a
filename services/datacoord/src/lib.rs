//! datacoord: segments, their allocation and sealing, flush bookkeeping, channel
//! checkpoints, which data node consumes which vchannel, and garbage collection.
//!
//! - [`alloc`]: the pure allocation/seal policy.
//! - [`catalog`]: typed keys over the meta store.
//! - [`state`]: the in-memory view (segments, checkpoints, channel watches).
//! - [`actor`]: the core; every change runs on the role's exclusive actor, one at a time.
//! - [`service`]: bus requests and the background loop (idle sealing, channel
//!   assignment and re-delivery, reconciliation with rootcoord, GC, log truncation).

pub mod actor;
pub mod alloc;
pub mod catalog;
pub mod service;
pub mod state;

pub use service::start;

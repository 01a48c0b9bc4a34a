//! querynode: the shard delegator of the vchannels it watches (growing segments built
//! from the log, deletes, serviceable time) and a worker for the sealed segments it
//! holds (loaded from binlogs). Searches and queries arrive at a vchannel's delegator,
//! which waits until its serviceable time reaches the request's guarantee, searches its
//! growing segments and asks the workers holding the sealed ones, and reduces the parts.
//!
//! - [`segment`]: a segment in memory (rows, per-row delete timestamps, primary-key
//!   index) and search/retrieve over it with MVCC visibility.
//! - [`loader`]: reading sealed segments from object storage.
//! - [`worker`]: the sealed segments this node serves (to its own delegators and others').
//! - [`delegator`]: one vchannel's consumer and distribution.
//! - [`node`]: what the node holds: its delegators and its worker.
//! - [`executor`]: search/query requests, locally and across workers.
//! - [`actor`]: the control plane (watch, load, release, handoff).
//! - [`service`]: the requests it serves; control-plane changes run on its exclusive actor.

pub mod actor;
pub mod delegator;
pub mod executor;
pub mod loader;
pub mod node;
pub mod segment;
pub mod service;
pub mod worker;

pub use service::start;

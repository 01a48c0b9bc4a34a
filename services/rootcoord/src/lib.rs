//! rootcoord: the timestamp oracle, id allocation, DDL and time ticks.
//!
//! - [`tso`]: hybrid-timestamp and id allocation, persisted so they never go backwards,
//!   owned by `TsoActor`.
//! - [`catalog`]: collection meta (typed keys over the meta store) and its in-memory copy.
//! - [`ddl`]: DDL execution, one request at a time on an exclusive actor, so DDL is
//!   applied in timestamp order.
//! - [`ticker`]: publishes TimeTick messages on the pchannels in use, periodically and
//!   on demand (`SyncTimeTick`), after every proxy confirmed it has no DML in flight
//!   below the tick.
//! - [`service`]: the bus requests, wired to the actors.

pub mod catalog;
pub mod ddl;
pub mod service;
pub mod ticker;
pub mod tso;

pub use service::start;

//! rootcoord: the timestamp oracle, id allocation, DDL and time ticks.
//!
//! - [`tso`]: hybrid-timestamp and id allocation, persisted so they never go backwards.
//! - [`catalog`]: collection meta (typed keys over the meta store) and its in-memory copy.
//! - [`actor`]: two actix actors: `TsoActor` hands out timestamps and ids; `DdlActor`
//!   runs DDL one request at a time, so DDL is applied in timestamp order.
//! - [`ticker`]: publishes TimeTick messages on the pchannels in use, periodically and
//!   on demand (`SyncTimeTick`), after every proxy confirmed it has no DML in flight
//!   below the tick.
//! - [`service`]: wires the bus requests to the actors.

pub mod actor;
pub mod catalog;
pub mod ddl;
pub mod service;
pub mod ticker;
pub mod tso;

pub use service::start;

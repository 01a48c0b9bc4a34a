//! querycoord: which collections are loaded, which query node is the delegator of each
//! vchannel and which holds each sealed segment; handoff of flushed segments; moving
//! work off query nodes that leave.
//!
//! The distribution is not stored: every round, querycoord asks each live query node
//! what it actually holds and plans the difference to the target (the vchannels and
//! flushed segments of loaded collections, from datacoord). That makes node restarts,
//! lost requests and querycoord restarts the same case.
//!
//! - [`planner`]: the pure diff between target and actual distribution.
//! - [`reconcile`]: a round: targets and reports in, the planner's actions out.
//! - [`actions`]: one executor per action; segment and channel moves are persisted
//!   procedures, resumed after a restart.
//! - [`actor`]: the core (load intents, progress, leaders); load/release and rounds run
//!   on the role's exclusive actor.
//! - [`distribution`]: GetDistribution, read from the nodes.
//! - [`service`]: bus requests and the periodic loop.

pub mod actions;
pub mod actor;
pub mod distribution;
pub mod planner;
pub mod reconcile;
pub mod service;

pub use service::start;

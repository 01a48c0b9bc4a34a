//! The runtime every role shares.
//!
//! - [`rpc`]: typed request/reply between roles over the log broker's request subjects
//!   (`fv.rpc.<role>.<Method>` for coordinators, `fv.rpc.<role>.<node>.<Method>` for
//!   nodes), prost-encoded, with Milvus statuses carried inside the responses. The same
//!   code path serves standalone (embedded broker) and a cluster (NATS).
//! - [`rpcs`]: the catalogue of every request a role serves.
//! - [`session`]: node ids and live sessions (lease-backed keys in the meta store).
//! - [`context`]: what a role is started with.
//! - [`telemetry`]: logs, and span export over OTLP with trace context carried in the
//!   broker's request headers; [`metrics`]: the process' Prometheus metrics.
//! - [`shutdown`], [`retry`].

pub mod actor;
pub mod context;
pub mod metrics;
pub mod retry;
pub mod rpc;
pub mod rpcs;
pub mod session;
pub mod shutdown;
pub mod telemetry;

pub use context::RoleContext;
pub use rpc::{Rpc, RpcClient, RpcServer, Target};
pub use shutdown::Shutdown;

//! The runtime every role shares.
//!
//! - [`rpc`]: typed request/reply between roles over the log broker's request subjects
//!   (`fv.rpc.<role>.<Method>` for coordinators, `fv.rpc.<role>.<node>.<Method>` for
//!   nodes), prost-encoded, with Milvus statuses carried inside the responses. The same
//!   code path serves standalone (embedded broker) and a cluster (NATS). The services
//!   themselves are declared in `proto/internal/*.proto`, their glue generated into
//!   `fv-proto`.
//! - [`session`]: node ids and live sessions (lease-backed keys in the meta store).
//! - [`context`]: what a role is started with.
//! - [`telemetry`]: logs, and span export over OTLP with trace context carried in the
//!   broker's request headers; [`metrics`]: the process' Prometheus metrics.
//! - `testing` (feature `testing`): a role context over embedded backends for unit tests.
//! - [`procedure`]: long operations as step machines persisted after every step.
//! - [`shutdown`], [`retry`], [`errors`] (backend errors as Milvus errors).

pub mod actor;
pub mod context;
pub mod errors;
pub mod metrics;
pub mod procedure;
pub mod retry;
pub mod rpc;
pub mod session;
pub mod shutdown;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use context::RoleContext;
pub use rpc::{Clients, Rpc, RpcClient, RpcServer, Target};
pub use shutdown::Shutdown;

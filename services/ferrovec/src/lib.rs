//! The `ferrovec` binary's library: opening backends, starting roles in order, the
//! network servers (Milvus gRPC, health), and standalone mode (every role in one
//! process). Integration tests start a [`standalone::Standalone`] directly.

pub mod backends;
pub mod cli;
pub mod roles;
pub mod server;
pub mod standalone;

pub use standalone::Standalone;

//! What a role is started with.

use std::sync::Arc;

use fv_common::NodeId;
use fv_config::Config;
use fv_logbroker::LogBrokerRef;
use fv_metastore::MetaKvRef;
use fv_objectstore::ObjectStoreRef;

use crate::rpc::{RpcClient, RpcServer};
use crate::shutdown::Shutdown;

/// Backends, identity and plumbing shared by the roles of one process.
#[derive(Clone)]
pub struct RoleContext {
    pub config: Arc<Config>,
    pub broker: LogBrokerRef,
    /// The meta store, already rooted at `config.meta.root`.
    pub meta: MetaKvRef,
    pub objects: ObjectStoreRef,
    /// This process' node id (nodes use it in their request subjects).
    pub node_id: NodeId,
    pub rpc: RpcClient,
    pub server: RpcServer,
    pub shutdown: Shutdown,
}

//! What one query node holds: the delegators of its vchannels and, as a [`Worker`], the
//! sealed segments it serves.

use std::collections::HashMap;
use std::sync::Arc;

use fv_common::{Code, FvError, FvResult};
use fv_runtime::RoleContext;
use parking_lot::RwLock;

use crate::delegator::Delegator;
use crate::worker::Worker;

pub struct NodeState {
    pub worker: Arc<Worker>,
    pub delegators: RwLock<HashMap<String, Arc<Delegator>>>,
}

impl NodeState {
    pub fn new(ctx: RoleContext) -> Arc<NodeState> {
        Arc::new(NodeState { worker: Arc::new(Worker::new(ctx)), delegators: RwLock::new(HashMap::new()) })
    }

    pub fn ctx(&self) -> &RoleContext {
        &self.worker.ctx
    }

    pub fn delegator(&self, vchannel: &str) -> FvResult<Arc<Delegator>> {
        self.delegators.read().get(vchannel).cloned().ok_or_else(|| {
            FvError::new(Code::ChannelNotAvailable, format!("shard delegator not found[channel={vchannel}]"))
                .retriable(true)
        })
    }
}

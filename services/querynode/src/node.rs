//! What one query node holds: the delegators of its vchannels and the sealed segments
//! it serves as a worker.

use std::collections::HashMap;
use std::sync::Arc;

use fv_common::{Code, FvError, FvResult, SegmentId};
use fv_runtime::RoleContext;
use parking_lot::RwLock;

use crate::delegator::Delegator;
use crate::segment::Segment;

pub struct NodeState {
    pub ctx: RoleContext,
    pub delegators: RwLock<HashMap<String, Arc<Delegator>>>,
    pub segments: RwLock<HashMap<SegmentId, Arc<Segment>>>,
}

impl NodeState {
    pub fn new(ctx: RoleContext) -> Arc<NodeState> {
        Arc::new(NodeState { ctx, delegators: RwLock::new(HashMap::new()), segments: RwLock::new(HashMap::new()) })
    }

    pub fn delegator(&self, vchannel: &str) -> FvResult<Arc<Delegator>> {
        self.delegators.read().get(vchannel).cloned().ok_or_else(|| {
            FvError::new(Code::ChannelNotAvailable, format!("shard delegator not found[channel={vchannel}]"))
                .retriable(true)
        })
    }

    pub fn sealed(&self, ids: &[SegmentId]) -> FvResult<Vec<Arc<Segment>>> {
        let segs = self.segments.read();
        ids.iter()
            .map(|id| {
                segs.get(id).cloned().ok_or_else(|| {
                    FvError::new(Code::SegmentNotLoaded, format!("segment not loaded[segment={id}]")).retriable(true)
                })
            })
            .collect()
    }
}

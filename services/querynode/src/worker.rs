//! This node as a worker: the sealed segments it holds and serves (for its own
//! delegators and for other nodes'), and the context serving them needs.

use std::collections::HashMap;
use std::sync::Arc;

use fv_common::{Code, FvError, FvResult, SegmentId};
use fv_runtime::RoleContext;
use parking_lot::RwLock;

use crate::segment::Segment;

pub struct Worker {
    pub ctx: RoleContext,
    pub segments: RwLock<HashMap<SegmentId, Arc<Segment>>>,
}

impl Worker {
    pub fn new(ctx: RoleContext) -> Worker {
        Worker { ctx, segments: RwLock::new(HashMap::new()) }
    }

    /// The loaded sealed segments `ids`; a missing one is a retriable error (the
    /// caller's distribution is stale or the segment is still loading).
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

//! The control plane of a query node: watch/unwatch, segment loads and releases and
//! distribution changes, run one at a time on the node's exclusive actor (see
//! [`crate::service`]); reads bypass it.

use std::collections::HashSet;
use std::sync::Arc;

use fv_common::schema::Schema;
use fv_common::{FvError, FvResult, PrimaryKey};
use fv_proto::fv::index::ReportCorruptIndexRequest;
use fv_proto::fv::meta::SegmentIndexTask;
use fv_proto::fv::querynode::{
    ApplyDeleteRequest, LoadSegmentsRequest, ReleaseSegmentsRequest, SyncDistributionRequest, UnsubDmChannelRequest,
    WatchDmChannelRequest,
};
use fv_runtime::Clients;

use crate::delegator::Delegator;
use crate::loader;
use crate::node::NodeState;
use crate::segment::Segment;

const REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn schema_of(info: Option<&fv_proto::fv::meta::CollectionInfo>) -> FvResult<Arc<Schema>> {
    let info = info.ok_or_else(|| FvError::invalid_parameter("request without collection info"))?;
    Ok(Arc::new(Schema::from_proto(
        info.schema.as_ref().ok_or_else(|| FvError::invalid_parameter("collection without schema"))?,
    )?))
}

pub struct Core {
    pub node: Arc<NodeState>,
}

impl Core {
    pub async fn watch(&self, req: WatchDmChannelRequest) -> FvResult<()> {
        let channel = req.channel.clone().ok_or_else(|| FvError::invalid_parameter("watch without channel"))?;
        let partitions: Option<HashSet<i64>> =
            (!req.whole_collection).then(|| req.partition_ids.iter().copied().collect());
        if let Some(d) = self.node.delegators.read().get(&channel.vchannel) {
            d.set_partitions(partitions);
            return Ok(());
        }
        let schema = schema_of(req.collection.as_ref())?;
        let stop = self.node.ctx().shutdown.child();
        let d = Delegator::new(
            channel.collection_id,
            channel.vchannel.clone(),
            schema,
            partitions,
            // Flushed segments come back as sealed ones; dropped ones never come back.
            channel.flushed_segment_ids.iter().chain(&channel.dropped_segment_ids).copied().collect(),
            req.standby,
            stop,
        );
        let seek = channel.seek_position.as_ref().map(|p| p.seq).unwrap_or(0);
        self.node.delegators.write().insert(channel.vchannel.clone(), d.clone());
        tokio::spawn(d.run(self.node.worker.clone(), seek));
        Ok(())
    }

    pub async fn unsub(&self, req: UnsubDmChannelRequest) -> FvResult<()> {
        if let Some(d) = self.node.delegators.write().remove(&req.vchannel) {
            d.stop.trigger();
        }
        Ok(())
    }

    pub async fn load(&self, req: LoadSegmentsRequest) -> FvResult<()> {
        let schema = schema_of(req.collection.as_ref())?;
        for info in &req.segments {
            let existing = self.node.worker.segments.read().get(&info.id).cloned();
            let seg = match existing {
                Some(s) => s,
                None => {
                    let seg = Arc::new(loader::load_segment(&self.node.ctx().objects, schema.clone(), info).await?);
                    tracing::debug!(segment = info.id, rows = seg.num_rows(), "sealed segment loaded");
                    self.node.worker.segments.write().insert(info.id, seg.clone());
                    seg
                }
            };
            self.switch_index(&seg, req.indexes.iter().find(|t| t.segment_id == info.id)).await;
        }
        Ok(())
    }

    /// Makes `seg` use the build `task` (None: raw-vector scans). A build whose files
    /// cannot be read is reported for a rebuild, and the segment keeps what it had.
    async fn switch_index(&self, seg: &Segment, task: Option<&SegmentIndexTask>) {
        let want = task.map(|t| t.build_id).unwrap_or(0);
        if seg.index_build_id() == want {
            return;
        }
        let Some(task) = task else {
            let _ = seg.set_index(None);
            return;
        };
        let loaded = loader::load_index(&self.node.ctx().objects, task).await;
        let result = loaded.and_then(|ix| seg.set_index(Some(ix)));
        match result {
            Ok(()) => tracing::info!(segment = seg.id, build = want, "segment searches through its index"),
            Err(e) => {
                tracing::warn!(segment = seg.id, build = want, error = %e, "index unusable; asking for a rebuild");
                let report = ReportCorruptIndexRequest {
                    build_id: want,
                    node_id: self.node.ctx().node_id,
                    reason: e.to_string(),
                };
                if let Err(e) =
                    self.node.ctx().rpc.indexcoord().report_corrupt_index(&report).timeout(REPORT_TIMEOUT).await
                {
                    tracing::warn!(error = %e, build = want, "corrupt index not reported; will retry");
                }
            }
        }
    }

    pub async fn release(&self, req: ReleaseSegmentsRequest) -> FvResult<()> {
        let mut segs = self.node.worker.segments.write();
        for id in &req.segment_ids {
            segs.remove(id);
        }
        Ok(())
    }

    pub async fn sync(&self, req: SyncDistributionRequest) -> FvResult<()> {
        let d = self.node.delegator(&req.vchannel)?;
        d.sync(&self.node.worker, req).await
    }
}

/// Applies forwarded deletes to local sealed segments (no actor needed: segments lock
/// themselves).
pub fn apply_delete(node: &NodeState, req: ApplyDeleteRequest) -> FvResult<()> {
    let keys: Vec<PrimaryKey> = req
        .primary_keys
        .as_ref()
        .map(|ids| fv_common::pk::PkColumn::from_ids(ids).iter().collect())
        .unwrap_or_default();
    if keys.len() != req.timestamps.len() {
        return Err(FvError::invalid_parameter("delete keys and timestamps differ in length"));
    }
    for s in node.worker.sealed(&req.segment_ids)? {
        s.delete(&keys, &req.timestamps);
    }
    Ok(())
}

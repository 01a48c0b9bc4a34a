//! `QueryNodeActor`: the control plane of a query node. It serialises watch/unwatch,
//! segment loads and releases and distribution changes; reads bypass it.

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use fv_common::schema::Schema;
use fv_common::{FvError, FvResult, PrimaryKey};
use fv_proto::fv::querynode::{
    ApplyDeleteRequest, LoadSegmentsRequest, ReleaseSegmentsRequest, SyncDistributionRequest, UnsubDmChannelRequest,
    WatchDmChannelRequest,
};
use fv_runtime::atomic_handlers;

use crate::delegator::Delegator;
use crate::loader;
use crate::node::NodeState;

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
        let stop = self.node.ctx.shutdown.child();
        let d = Delegator::new(
            channel.collection_id,
            channel.vchannel.clone(),
            schema,
            partitions,
            // Flushed segments come back as sealed ones; dropped ones never come back.
            channel.flushed_segment_ids.iter().chain(&channel.dropped_segment_ids).copied().collect(),
            stop,
        );
        let seek = channel.seek_position.as_ref().map(|p| p.seq).unwrap_or(0);
        self.node.delegators.write().insert(channel.vchannel.clone(), d.clone());
        tokio::spawn(d.run(self.node.clone(), seek));
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
            if self.node.segments.read().contains_key(&info.id) {
                continue;
            }
            let seg = loader::load_segment(&self.node.ctx.objects, schema.clone(), info).await?;
            tracing::debug!(segment = info.id, rows = seg.num_rows(), "sealed segment loaded");
            self.node.segments.write().insert(info.id, Arc::new(seg));
        }
        Ok(())
    }

    pub async fn release(&self, req: ReleaseSegmentsRequest) -> FvResult<()> {
        let mut segs = self.node.segments.write();
        for id in &req.segment_ids {
            segs.remove(id);
        }
        Ok(())
    }

    pub async fn sync(&self, req: SyncDistributionRequest) -> FvResult<()> {
        let d = self.node.delegator(&req.vchannel)?;
        d.sync(&self.node, req).await
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
    for s in node.sealed(&req.segment_ids)? {
        s.delete(&keys, &req.timestamps);
    }
    Ok(())
}

pub struct QueryNodeActor {
    pub core: Arc<Core>,
}

impl Actor for QueryNodeActor {
    type Context = Context<Self>;
}

atomic_handlers!(QueryNodeActor, core;
    Watch(WatchDmChannelRequest) => watch -> ();
    Unsub(UnsubDmChannelRequest) => unsub -> ();
    Load(LoadSegmentsRequest) => load -> ();
    Release(ReleaseSegmentsRequest) => release -> ();
    Sync(SyncDistributionRequest) => sync -> ();
);

//! datacoord's keys in the meta store:
//! - `datacoord/segment/<collection>/<segment>`: a `SegmentInfo`;
//! - `datacoord/checkpoint/<vchannel>`: the vchannel's `MsgPosition` checkpoint;
//! - `datacoord/watch/<vchannel>`: a `ChannelWatchInfo` (which data node consumes it).

use fv_common::{CollectionId, FvError, FvResult, SegmentId};
use fv_metastore::{MetaKvRef, Txn, TxnOp};
use fv_proto::fv::meta::{ChannelWatchInfo, SegmentInfo};
use fv_proto::fv::msg::MsgPosition;
use fv_runtime::errors::meta_err;
use prost::Message;

const SEGMENT_PREFIX: &str = "datacoord/segment/";
const CHECKPOINT_PREFIX: &str = "datacoord/checkpoint/";
const WATCH_PREFIX: &str = "datacoord/watch/";

pub fn segment_key(c: CollectionId, s: SegmentId) -> String {
    format!("{SEGMENT_PREFIX}{c}/{s}")
}
pub fn checkpoint_key(vchannel: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{vchannel}")
}
pub fn watch_key(vchannel: &str) -> String {
    format!("{WATCH_PREFIX}{vchannel}")
}

fn decode<M: Message + Default>(kv: &fv_metastore::KeyValue) -> FvResult<M> {
    M::decode(kv.value.clone()).map_err(|e| FvError::internal(format!("corrupt meta record {}: {e}", kv.key)))
}

pub async fn load_segments(meta: &MetaKvRef) -> FvResult<Vec<SegmentInfo>> {
    meta.scan_prefix(SEGMENT_PREFIX).await.map_err(meta_err)?.iter().map(decode).collect()
}

/// Every stored checkpoint as (vchannel, position).
pub async fn load_checkpoints(meta: &MetaKvRef) -> FvResult<Vec<(String, MsgPosition)>> {
    let kvs = meta.scan_prefix(CHECKPOINT_PREFIX).await.map_err(meta_err)?;
    kvs.iter()
        .map(|kv| Ok((kv.key.strip_prefix(CHECKPOINT_PREFIX).unwrap_or_default().to_string(), decode(kv)?)))
        .collect()
}

pub async fn load_watches(meta: &MetaKvRef) -> FvResult<Vec<ChannelWatchInfo>> {
    meta.scan_prefix(WATCH_PREFIX).await.map_err(meta_err)?.iter().map(decode).collect()
}

/// Applies a batch of record changes atomically.
pub async fn commit(meta: &MetaKvRef, ops: Vec<TxnOp>) -> FvResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    meta.txn(Txn { compares: vec![], success: ops, failure: vec![] }).await.map_err(meta_err)?;
    Ok(())
}

pub fn put_segment(s: &SegmentInfo) -> TxnOp {
    TxnOp::put(segment_key(s.collection_id, s.id), s.encode_to_vec())
}
pub fn put_checkpoint(vchannel: &str, p: &MsgPosition) -> TxnOp {
    TxnOp::put(checkpoint_key(vchannel), p.encode_to_vec())
}
pub fn put_watch(w: &ChannelWatchInfo) -> TxnOp {
    TxnOp::put(watch_key(&w.vchannel), w.encode_to_vec())
}

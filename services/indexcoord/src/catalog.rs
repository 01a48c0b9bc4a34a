//! indexcoord's keys: `indexcoord/index/<collection>/<index id>` (IndexInfo) and
//! `indexcoord/task/<build id>` (SegmentIndexTask).

use fv_common::{FvError, FvResult};
use fv_metastore::{MetaKvRef, Txn, TxnOp};
use fv_proto::fv::meta::{IndexInfo, SegmentIndexTask};
use fv_runtime::errors::meta_err;
use prost::Message;

const INDEX_PREFIX: &str = "indexcoord/index/";
const TASK_PREFIX: &str = "indexcoord/task/";

pub fn index_key(i: &IndexInfo) -> String {
    format!("{INDEX_PREFIX}{}/{}", i.collection_id, i.index_id)
}
pub fn task_key(t: &SegmentIndexTask) -> String {
    format!("{TASK_PREFIX}{}", t.build_id)
}

pub async fn load(meta: &MetaKvRef) -> FvResult<(Vec<IndexInfo>, Vec<SegmentIndexTask>)> {
    let decode_err = |k: &str, e: prost::DecodeError| FvError::internal(format!("corrupt meta record {k}: {e}"));
    let indexes = meta
        .scan_prefix(INDEX_PREFIX)
        .await
        .map_err(meta_err)?
        .into_iter()
        .map(|kv| IndexInfo::decode(kv.value.clone()).map_err(|e| decode_err(&kv.key, e)))
        .collect::<FvResult<_>>()?;
    let tasks = meta
        .scan_prefix(TASK_PREFIX)
        .await
        .map_err(meta_err)?
        .into_iter()
        .map(|kv| SegmentIndexTask::decode(kv.value.clone()).map_err(|e| decode_err(&kv.key, e)))
        .collect::<FvResult<_>>()?;
    Ok((indexes, tasks))
}

pub async fn commit(meta: &MetaKvRef, ops: Vec<TxnOp>) -> FvResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    meta.txn(Txn { compares: vec![], success: ops, failure: vec![] }).await.map_err(meta_err)?;
    Ok(())
}

pub fn put_index(i: &IndexInfo) -> TxnOp {
    TxnOp::put(index_key(i), i.encode_to_vec())
}
pub fn put_task(t: &SegmentIndexTask) -> TxnOp {
    TxnOp::put(task_key(t), t.encode_to_vec())
}

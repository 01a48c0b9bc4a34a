//! indexcoord's [`Core`]: index meta changes and scheduling rounds run one at a time
//! on the role's exclusive actor (see [`crate::service`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use fv_common::{Code, CollectionId, FvError, FvResult, NodeId, SegmentId};
use fv_index::IndexParams;
use fv_metastore::TxnOp;
use fv_proto::common::{IndexState, KeyValuePair, SegmentState};
use fv_proto::fv::datacoord::GetSegmentInfoRequest;
use fv_proto::fv::index::{
    BuildIndexRequest, CreateIndexRequest, DescribeIndexResponse, DropCollectionIndexesRequest, DropIndexRequest,
    GetJobStatsRequest, GetSegmentIndexesResponse, IndexStatus, ReportBuildResultRequest, ReportCorruptIndexRequest,
};
use fv_proto::fv::meta::{IndexInfo, SegmentIndexTask, SegmentInfo};
use fv_proto::fv::rootcoord::{AllocIdRequest, AllocTimestampRequest};
use fv_runtime::Clients;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, session};
use fv_storage::paths;
use parking_lot::RwLock;

use crate::catalog::{self, commit, put_index, put_task};
use crate::{MAX_RETRIES, SUPPORTED_VECTOR_INDEXES};

#[cfg(test)]
mod tests;

const CALL_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct State {
    pub indexes: BTreeMap<i64, IndexInfo>,
    pub tasks: BTreeMap<i64, SegmentIndexTask>,
}

pub struct Core {
    pub ctx: RoleContext,
    pub state: RwLock<State>,
}

fn param<'a>(kvs: &'a [KeyValuePair], key: &str) -> Option<&'a str> {
    kvs.iter().find(|kv| kv.key == key).map(|kv| kv.value.as_str())
}

fn same_params(a: &[KeyValuePair], b: &[KeyValuePair]) -> bool {
    let norm = |v: &[KeyValuePair]| v.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect::<BTreeMap<_, _>>();
    norm(a) == norm(b)
}

impl Core {
    async fn alloc_id(&self) -> FvResult<i64> {
        Ok(self.ctx.rpc.rootcoord().alloc_id(&AllocIdRequest { count: 1 }).retry(CALL_DEADLINE).await?.id_begin)
    }

    async fn flushed_segments(&self, collection: CollectionId) -> FvResult<Vec<SegmentInfo>> {
        let r = self
            .ctx
            .rpc
            .datacoord()
            .get_segment_info(&GetSegmentInfoRequest {
                segment_ids: vec![],
                collection_id: collection,
                include_dropped: false,
            })
            .retry(CALL_DEADLINE)
            .await?;
        Ok(r.segments.into_iter().filter(|s| s.state == SegmentState::Flushed as i32).collect())
    }

    pub async fn create_index(&self, req: CreateIndexRequest) -> FvResult<()> {
        let index_type = param(&req.index_params, "index_type").unwrap_or("").to_ascii_uppercase();
        if !SUPPORTED_VECTOR_INDEXES.contains(&index_type.as_str()) {
            return Err(FvError::new(
                Code::IndexNotSupported,
                format!(
                    "index type not supported[type={index_type}]: this build supports {}",
                    SUPPORTED_VECTOR_INDEXES.join(", ")
                ),
            ));
        }
        // Bad build parameters are refused now, not when the first build fails.
        let dim: usize = param(&req.type_params, "dim").and_then(|d| d.parse().ok()).unwrap_or(0);
        IndexParams::from_kv(req.index_params.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())))
            .and_then(|p| if dim > 0 { p.validate(dim) } else { Ok(()) })
            .map_err(|e| FvError::invalid_parameter(format!("invalid index params: {e}")))?;
        {
            let st = self.state.read();
            for i in st.indexes.values().filter(|i| i.collection_id == req.collection_id && !i.deleted) {
                if i.index_name == req.index_name || i.field_id == req.field_id {
                    if i.index_name == req.index_name
                        && i.field_id == req.field_id
                        && same_params(&i.index_params, &req.index_params)
                    {
                        return Ok(());
                    }
                    return Err(FvError::invalid_parameter(
                        "at most one distinct index is allowed per field, and index names must be unique in a collection",
                    ));
                }
            }
        }
        let index_id = self.alloc_id().await?;
        let ts = self
            .ctx
            .rpc
            .rootcoord()
            .alloc_timestamp(&AllocTimestampRequest { count: 1 })
            .retry(CALL_DEADLINE)
            .await?
            .timestamp;
        let info = IndexInfo {
            collection_id: req.collection_id,
            field_id: req.field_id,
            index_id,
            index_name: req.index_name.clone(),
            type_params: req.type_params,
            index_params: req.index_params,
            user_index_params: req.user_index_params,
            deleted: false,
            create_ts: ts,
        };
        commit(&self.ctx.meta, vec![put_index(&info)]).await?;
        self.state.write().indexes.insert(index_id, info);
        tracing::info!(collection = req.collection_id, index = %req.index_name, %index_type, "index created");
        self.create_missing_tasks(req.collection_id).await
    }

    /// Creates build tasks for flushed segments that have none.
    async fn create_missing_tasks(&self, collection: CollectionId) -> FvResult<()> {
        let indexes: Vec<IndexInfo> = self
            .state
            .read()
            .indexes
            .values()
            .filter(|i| i.collection_id == collection && !i.deleted)
            .cloned()
            .collect();
        if indexes.is_empty() {
            return Ok(());
        }
        let segments = self.flushed_segments(collection).await?;
        for index in indexes {
            let have: HashSet<SegmentId> = self
                .state
                .read()
                .tasks
                .values()
                .filter(|t| t.index_id == index.index_id && !t.deleted)
                .map(|t| t.segment_id)
                .collect();
            for s in segments.iter().filter(|s| !have.contains(&s.id)) {
                let task = SegmentIndexTask {
                    build_id: self.alloc_id().await?,
                    collection_id: collection,
                    partition_id: s.partition_id,
                    segment_id: s.id,
                    index_id: index.index_id,
                    num_rows: s.num_rows,
                    state: IndexState::Unissued as i32,
                    create_ts: index.create_ts,
                    ..Default::default()
                };
                commit(&self.ctx.meta, vec![put_task(&task)]).await?;
                self.state.write().tasks.insert(task.build_id, task);
            }
        }
        Ok(())
    }

    pub async fn drop_index(&self, req: DropIndexRequest) -> FvResult<()> {
        let mut ops = Vec::new();
        {
            let mut st = self.state.write();
            let name = req.index_name.clone();
            let hits: Vec<i64> = st
                .indexes
                .values()
                .filter(|i| {
                    i.collection_id == req.collection_id && !i.deleted && (name.is_empty() || i.index_name == name)
                })
                .map(|i| i.index_id)
                .collect();
            for id in hits {
                if let Some(i) = st.indexes.get_mut(&id) {
                    i.deleted = true;
                    ops.push(put_index(i));
                }
            }
        }
        commit(&self.ctx.meta, ops).await
    }

    pub async fn drop_collection_indexes(&self, req: DropCollectionIndexesRequest) -> FvResult<()> {
        self.drop_index(DropIndexRequest {
            collection_id: req.collection_id,
            index_name: String::new(),
            partition_ids: vec![],
        })
        .await
    }

    pub async fn report(&self, req: ReportBuildResultRequest) -> FvResult<()> {
        let op = {
            let mut st = self.state.write();
            let Some(t) = st.tasks.get_mut(&req.build_id) else { return Ok(()) };
            if t.node_id != req.node_id || t.state != IndexState::InProgress as i32 {
                return Ok(()); // a stale report from a node the task was taken from
            }
            if req.state == IndexState::Finished as i32 {
                t.state = IndexState::Finished as i32;
                t.index_files = req.index_files;
                t.serialized_size = req.serialized_size;
                t.fail_reason.clear();
            } else {
                t.retries += 1;
                t.fail_reason = req.fail_reason;
                t.state =
                    if t.retries >= MAX_RETRIES { IndexState::Failed as i32 } else { IndexState::Unissued as i32 };
                tracing::warn!(build = t.build_id, reason = %t.fail_reason, retries = t.retries, "index build failed");
            }
            put_task(t)
        };
        commit(&self.ctx.meta, vec![op]).await
    }

    /// A query node could not read a finished build's files: the task is dropped (its
    /// files are collected) and the next round creates a fresh build for the segment,
    /// with a new build id, so nodes swap to the rebuilt index when it is finished.
    pub async fn report_corrupt(&self, req: ReportCorruptIndexRequest) -> FvResult<()> {
        let op = {
            let mut st = self.state.write();
            let Some(t) = st.tasks.get_mut(&req.build_id) else { return Ok(()) };
            if t.deleted {
                return Ok(());
            }
            tracing::warn!(build = t.build_id, segment = t.segment_id, node = req.node_id, reason = %req.reason,
                "index files unreadable; rebuilding");
            t.deleted = true;
            put_task(t)
        };
        commit(&self.ctx.meta, vec![op]).await
    }

    /// One scheduling round: new tasks, re-issue tasks of dead nodes, assign work,
    /// collect dropped indexes.
    pub async fn schedule(&self) -> FvResult<()> {
        let collections: HashSet<CollectionId> =
            self.state.read().indexes.values().filter(|i| !i.deleted).map(|i| i.collection_id).collect();
        let mut live_segments: HashMap<CollectionId, HashSet<SegmentId>> = HashMap::new();
        for c in &collections {
            self.create_missing_tasks(*c).await?;
            live_segments.insert(*c, self.flushed_segments(*c).await?.iter().map(|s| s.id).collect());
        }
        let nodes: Vec<NodeId> =
            session::list(&self.ctx.meta, Role::IndexNode).await?.iter().map(|s| s.node_id).collect();
        let live: HashSet<NodeId> = nodes.iter().copied().collect();
        let mut ops = Vec::new();
        let mut to_issue = Vec::new();
        {
            let mut st = self.state.write();
            let deleted_indexes: HashSet<i64> = st.indexes.values().filter(|i| i.deleted).map(|i| i.index_id).collect();
            for t in st.tasks.values_mut() {
                let segment_gone = live_segments.get(&t.collection_id).is_some_and(|s| !s.contains(&t.segment_id));
                if !t.deleted && (deleted_indexes.contains(&t.index_id) || segment_gone) {
                    t.deleted = true;
                    ops.push(put_task(t));
                    continue;
                }
                if t.state == IndexState::InProgress as i32 && !live.contains(&t.node_id) {
                    tracing::info!(build = t.build_id, node = t.node_id, "index node gone; re-issuing build");
                    t.state = IndexState::Unissued as i32;
                    t.node_id = 0;
                    ops.push(put_task(t));
                }
                if t.state == IndexState::Unissued as i32 && !t.deleted {
                    to_issue.push(t.build_id);
                }
            }
        }
        commit(&self.ctx.meta, ops).await?;
        for build_id in to_issue {
            if !self.issue(build_id, &nodes).await? {
                break; // no free slot anywhere
            }
        }
        self.collect_dropped().await
    }

    /// Assigns a task to the least loaded node with a free slot; false when none.
    async fn issue(&self, build_id: i64, nodes: &[NodeId]) -> FvResult<bool> {
        let mut best: Option<(NodeId, i64)> = None;
        for n in nodes {
            if let Ok(s) =
                self.ctx.rpc.indexnode(*n).get_job_stats(&GetJobStatsRequest {}).timeout(Duration::from_secs(2)).await
            {
                let free = s.slots - s.running;
                if free > 0 && best.is_none_or(|(_, f)| free > f) {
                    best = Some((*n, free));
                }
            }
        }
        let Some((node, _)) = best else { return Ok(false) };
        let (task, index) = {
            let st = self.state.read();
            let Some(t) = st.tasks.get(&build_id).cloned() else { return Ok(true) };
            let Some(i) = st.indexes.get(&t.index_id).cloned() else { return Ok(true) };
            (t, i)
        };
        let segment = self
            .ctx
            .rpc
            .datacoord()
            .get_segment_info(&GetSegmentInfoRequest { segment_ids: vec![task.segment_id], ..Default::default() })
            .retry(CALL_DEADLINE)
            .await?
            .segments
            .into_iter()
            .next();
        let Some(segment) = segment else { return Ok(true) };
        let mut t = task.clone();
        t.state = IndexState::InProgress as i32;
        t.node_id = node;
        // Recorded before sending, so a node that dies mid-build is noticed.
        commit(&self.ctx.meta, vec![put_task(&t)]).await?;
        self.state.write().tasks.insert(build_id, t.clone());
        let req = BuildIndexRequest { task: Some(t), index: Some(index), segment: Some(segment), dim: 0 };
        if let Err(e) = self.ctx.rpc.indexnode(node).build_index(&req).timeout(Duration::from_secs(10)).await {
            tracing::warn!(error = %e, build_id, node, "build not accepted; will be re-issued");
            let op = {
                let mut st = self.state.write();
                st.tasks.get_mut(&build_id).map(|t| {
                    t.state = IndexState::Unissued as i32;
                    t.node_id = 0;
                    put_task(t)
                })
            };
            commit(&self.ctx.meta, op.into_iter().collect()).await?;
        }
        Ok(true)
    }

    /// Removes files and records of dropped indexes and of tasks of dropped segments.
    async fn collect_dropped(&self) -> FvResult<()> {
        let (tasks, indexes): (Vec<SegmentIndexTask>, Vec<IndexInfo>) = {
            let st = self.state.read();
            (
                st.tasks.values().filter(|t| t.deleted).cloned().collect(),
                st.indexes.values().filter(|i| i.deleted).cloned().collect(),
            )
        };
        for t in &tasks {
            let prefix = paths::index_prefix(t.collection_id, t.segment_id, t.build_id);
            if self.ctx.objects.delete_prefix(&prefix).await.is_err() {
                continue;
            }
            commit(&self.ctx.meta, vec![TxnOp::delete(catalog::task_key(t))]).await?;
            self.state.write().tasks.remove(&t.build_id);
        }
        for i in &indexes {
            let remaining = self.state.read().tasks.values().any(|t| t.index_id == i.index_id);
            if !remaining {
                commit(&self.ctx.meta, vec![TxnOp::delete(catalog::index_key(i))]).await?;
                self.state.write().indexes.remove(&i.index_id);
                tracing::info!(index = %i.index_name, "dropped index collected");
            }
        }
        Ok(())
    }

    pub fn describe(&self, collection: CollectionId, name: &str) -> FvResult<DescribeIndexResponse> {
        let st = self.state.read();
        let indexes: Vec<IndexStatus> = st
            .indexes
            .values()
            .filter(|i| i.collection_id == collection && !i.deleted && (name.is_empty() || i.index_name == name))
            .map(|i| {
                let tasks: Vec<&SegmentIndexTask> =
                    st.tasks.values().filter(|t| t.index_id == i.index_id && !t.deleted).collect();
                let total: i64 = tasks.iter().map(|t| t.num_rows).sum();
                let indexed: i64 =
                    tasks.iter().filter(|t| t.state == IndexState::Finished as i32).map(|t| t.num_rows).sum();
                let failed = tasks.iter().find(|t| t.state == IndexState::Failed as i32);
                let state = if failed.is_some() {
                    IndexState::Failed
                } else if indexed == total {
                    IndexState::Finished
                } else {
                    IndexState::InProgress
                };
                IndexStatus {
                    info: Some(i.clone()),
                    state: state as i32,
                    indexed_rows: indexed,
                    total_rows: total,
                    pending_rows: total - indexed,
                    fail_reason: failed.map(|t| t.fail_reason.clone()).unwrap_or_default(),
                }
            })
            .collect();
        if indexes.is_empty() {
            let what = if name.is_empty() { format!("collection={collection}") } else { format!("indexName={name}") };
            return Err(FvError::index_not_found(what));
        }
        Ok(DescribeIndexResponse { status: Some(Default::default()), indexes })
    }

    pub fn segment_indexes(&self, collection: CollectionId, segments: &[SegmentId]) -> GetSegmentIndexesResponse {
        let st = self.state.read();
        GetSegmentIndexesResponse {
            status: Some(Default::default()),
            tasks: st
                .tasks
                .values()
                .filter(|t| t.collection_id == collection && !t.deleted && t.state == IndexState::Finished as i32)
                .filter(|t| segments.is_empty() || segments.contains(&t.segment_id))
                .cloned()
                .collect(),
            indexes: st.indexes.values().filter(|i| i.collection_id == collection && !i.deleted).cloned().collect(),
        }
    }
}

//! Search and query execution: on a delegator (waits for serviceable time, runs its
//! growing segments and the sealed segments of every worker, reduces) and on a worker
//! (runs the sealed segments it was asked for at the delegator's MVCC timestamp).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fv_common::schema::Schema;
use fv_common::{FvError, FvResult, NodeId, SegmentId, Timestamp};
use fv_common::Metric;
use fv_proto::fv::querynode::{QueryRequest, QueryResponse, SearchRequest, SearchResponse};
use fv_proto::schema::SearchResultData;
use fv_runtime::Clients;
use fv_storage::result::{Rows, merge_query, merge_search};

use crate::delegator::{ReadPin, Snapshot};
use crate::node::NodeState;
use crate::segment::{QueryJob, SearchJob, Segment};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn timeout_of(ms: i64) -> Duration {
    if ms > 0 { Duration::from_millis(ms as u64) } else { DEFAULT_TIMEOUT }
}

fn compile(
    schema: &Schema,
    req_filter: &str,
    params: &std::collections::HashMap<String, fv_proto::schema::TemplateValue>,
) -> FvResult<Option<fv_expr::Plan>> {
    if req_filter.trim().is_empty() {
        return Ok(None);
    }
    fv_expr::compile(req_filter, schema, params)
        .map(Some)
        .map_err(|e| FvError::invalid_parameter(format!("cannot parse expression: {req_filter}, error: {e}")))
}

fn search_job(schema: &Schema, req: &SearchRequest, mvcc_ts: Timestamp, stop: &Stop) -> FvResult<SearchJob> {
    let metric = Metric::parse(&req.metric_type)
        .ok_or_else(|| FvError::invalid_parameter(format!("metric type {} is not supported", req.metric_type)))?;
    let (nq, dim) = (req.nq.max(0) as usize, req.dim.max(0) as usize);
    if req.vectors.len() != nq * dim * 4 {
        return Err(FvError::invalid_parameter(format!(
            "{} bytes of query vectors for nq={nq}, dim={dim}",
            req.vectors.len()
        )));
    }
    let vectors = req.vectors.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let params: serde_json::Value = if req.search_params.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&req.search_params)
            .map_err(|e| FvError::invalid_parameter(format!("search params are not JSON: {e}")))?
    };
    let num = |k: &str| {
        params.get(k).and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).map(|f| f as f32)
    };
    Ok(SearchJob {
        field_id: req.field_id,
        metric,
        nq,
        dim,
        vectors,
        topk: req.topk.max(0) as usize,
        plan: compile(schema, &req.filter, &req.filter_params)?,
        output_fields: req.output_field_ids.clone(),
        mvcc_ts,
        radius: num("radius"),
        range_filter: num("range_filter"),
        nprobe: num("nprobe").filter(|n| *n >= 1.0).map(|n| n as usize),
        // Out-of-range values reach the index, which refuses them (0 stays 0).
        ef: num("ef").map(|n| n.max(0.0) as usize),
        stop: stop.flag(),
    })
}

fn search_segments(
    segments: Vec<Arc<Segment>>,
    job: Arc<SearchJob>,
    schema: Arc<Schema>,
) -> FvResult<SearchResultData> {
    let mut parts = Vec::with_capacity(segments.len());
    for s in segments {
        // Each index polls the flag inside its scan; between segments it is checked here.
        if job.stop.load(Ordering::Acquire) {
            return Err(FvError::timeout("search stopped: its request was cancelled or timed out"));
        }
        parts.push(s.search(&job)?);
    }
    Ok(merge_search(&parts, &schema, job.nq, 0, job.topk, job.metric.higher_is_better())?)
}

fn empty_search(nq: usize, topk: usize, schema: &Schema) -> SearchResultData {
    let ids =
        if schema.pk_is_int() { fv_common::pk::PkColumn::Int(vec![]) } else { fv_common::pk::PkColumn::Str(vec![]) };
    SearchResultData {
        num_queries: nq as i64,
        top_k: topk as i64,
        topks: vec![0; nq],
        ids: Some(ids.to_ids()),
        ..Default::default()
    }
}

/// Sealed segments to ask another worker for.
type RemoteWork = Vec<(NodeId, Vec<SegmentId>)>;

/// The segments of a read: those this node holds (growing, and its own sealed ones) and,
/// per other worker, the sealed segments to ask it for; and the pin that keeps the
/// remote copies in place until the read is done (held by the caller to the end).
fn split(node: &NodeState, snap: Snapshot) -> FvResult<(Vec<Arc<Segment>>, RemoteWork, ReadPin)> {
    let mut local = snap.growing;
    let mut remote = Vec::new();
    for (n, segs) in snap.sealed {
        if n == node.ctx().node_id {
            local.extend(node.worker.sealed(&segs)?);
        } else {
            remote.push((n, segs));
        }
    }
    Ok((local, remote, snap.pin))
}

/// The stop flag of one read: set when the read's future is dropped (its caller gave up,
/// or another shard of the read failed) and when its deadline passes, so that the scans
/// running for it on blocking threads stop instead of finishing for nobody.
struct Stop(Arc<AtomicBool>);

impl Stop {
    fn new() -> Stop {
        Stop(Arc::new(AtomicBool::new(false)))
    }

    fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs a read with its stop flag for at most `timeout` (the request's own timeout).
async fn bounded<T, F, Fut>(what: &str, timeout: Duration, read: F) -> FvResult<T>
where
    F: FnOnce(Stop) -> Fut,
    Fut: Future<Output = FvResult<T>>,
{
    let stop = Stop::new();
    let flag = stop.flag();
    match tokio::time::timeout(timeout, read(stop)).await {
        Ok(r) => r,
        Err(_) => {
            flag.store(true, Ordering::Release);
            Err(FvError::timeout(format!("{what} did not finish within {} ms", timeout.as_millis())))
        }
    }
}

pub async fn search(node: Arc<NodeState>, req: SearchRequest) -> FvResult<SearchResponse> {
    let timeout = timeout_of(req.timeout_ms);
    bounded("search", timeout, |stop| search_with(node, req, stop)).await
}

async fn search_with(node: Arc<NodeState>, req: SearchRequest, stop: Stop) -> FvResult<SearchResponse> {
    if req.from_delegator {
        return search_on_worker(node, req, stop).await;
    }
    let d = node.delegator(&req.vchannel)?;
    d.check_serving()?;
    let mvcc = d.wait_serviceable(&node.worker, req.guarantee_ts, timeout_of(req.timeout_ms)).await?;
    let schema = d.schema.clone();
    let job = Arc::new(search_job(&schema, &req, mvcc, &stop)?);
    let (local, remote, _pin) = split(&node, d.snapshot(&req.partition_ids))?;
    let remote_calls = remote.into_iter().map(|(n, segs)| {
        let mut r = req.clone();
        r.from_delegator = true;
        r.segment_ids = segs;
        r.mvcc_ts = mvcc;
        let rpc = node.ctx().rpc.clone();
        async move { rpc.querynode(n).search(&r).timeout(timeout_of(req.timeout_ms)).await }
    });
    let (job2, schema2) = (job.clone(), schema.clone());
    let local_task = tokio::task::spawn_blocking(move || search_segments(local, job2, schema2));
    let remote_results = futures::future::try_join_all(remote_calls).await?;
    let mut parts = vec![local_task.await.map_err(|e| FvError::internal(format!("search task failed: {e}")))??];
    parts.extend(remote_results.into_iter().filter_map(|r| r.result));
    let result = merge_search(&parts, &schema, job.nq, 0, job.topk, job.metric.higher_is_better())?;
    Ok(SearchResponse { status: Some(Default::default()), result: Some(result), mvcc_ts: mvcc })
}

async fn search_on_worker(node: Arc<NodeState>, req: SearchRequest, stop: Stop) -> FvResult<SearchResponse> {
    let segments = node.worker.sealed(&req.segment_ids)?;
    let Some(schema) = segments.first().map(|s| s.schema.clone()) else {
        let nq = req.nq.max(0) as usize;
        return Ok(SearchResponse {
            status: Some(Default::default()),
            result: Some(SearchResultData { num_queries: nq as i64, topks: vec![0; nq], ..Default::default() }),
            mvcc_ts: req.mvcc_ts,
        });
    };
    let job = Arc::new(search_job(&schema, &req, req.mvcc_ts, &stop)?);
    let (nq, topk) = (job.nq, job.topk);
    let s2 = schema.clone();
    let result = tokio::task::spawn_blocking(move || search_segments(segments, job, s2))
        .await
        .map_err(|e| FvError::internal(format!("search task failed: {e}")))??;
    let result = if result.topks.is_empty() { empty_search(nq, topk, &schema) } else { result };
    Ok(SearchResponse { status: Some(Default::default()), result: Some(result), mvcc_ts: req.mvcc_ts })
}

fn query_job(schema: &Schema, req: &QueryRequest, mvcc_ts: Timestamp, stop: &Stop) -> FvResult<QueryJob> {
    Ok(QueryJob {
        plan: compile(schema, &req.filter, &req.filter_params)?,
        output_fields: req.output_field_ids.clone(),
        mvcc_ts,
        limit: (req.limit >= 0).then_some(req.limit as usize),
        count_only: req.count_only,
        stop: stop.flag(),
    })
}

/// Runs a query on segments: the merged rows (ordered by key, limited), or a count.
fn query_segments(segments: Vec<Arc<Segment>>, job: Arc<QueryJob>, schema: Arc<Schema>) -> FvResult<(Vec<Rows>, i64)> {
    let mut parts = Vec::with_capacity(segments.len());
    let mut count = 0i64;
    for s in segments {
        let (rows, n) = s.retrieve(&job)?;
        count += n as i64;
        if !job.count_only {
            parts.push(rows);
        }
    }
    if job.count_only {
        return Ok((vec![], count));
    }
    let merged = merge_query(&parts, schema.pk().id, 0, job.limit)?;
    let n = merged.len() as i64;
    Ok((vec![merged], n))
}

fn query_response(rows: Vec<Rows>, count: i64, schema: &Schema, job: &QueryJob, mvcc_ts: Timestamp) -> QueryResponse {
    let fields_data = match rows.into_iter().next() {
        Some(r) if !r.columns.is_empty() => r.encode(schema),
        _ => empty_columns(schema, job),
    };
    QueryResponse { status: Some(Default::default()), fields_data, count, mvcc_ts }
}

/// Empty (typed) columns for the requested fields, the primary key first.
fn empty_columns(schema: &Schema, job: &QueryJob) -> Vec<fv_proto::schema::FieldData> {
    if job.count_only {
        return vec![];
    }
    std::iter::once(schema.pk().id)
        .chain(job.output_fields.iter().copied().filter(|f| *f != schema.pk().id))
        .filter_map(|f| schema.field_by_id(f))
        .filter_map(|f| fv_storage::Column::empty(f).ok().map(|c| c.to_field_data(f)))
        .collect()
}

pub async fn query(node: Arc<NodeState>, req: QueryRequest) -> FvResult<QueryResponse> {
    let timeout = timeout_of(req.timeout_ms);
    bounded("query", timeout, |stop| query_with(node, req, stop)).await
}

async fn query_with(node: Arc<NodeState>, req: QueryRequest, stop: Stop) -> FvResult<QueryResponse> {
    if req.from_delegator {
        let segments = node.worker.sealed(&req.segment_ids)?;
        let Some(schema) = segments.first().map(|s| s.schema.clone()) else {
            return Ok(QueryResponse { status: Some(Default::default()), mvcc_ts: req.mvcc_ts, ..Default::default() });
        };
        let job = Arc::new(query_job(&schema, &req, req.mvcc_ts, &stop)?);
        let (j2, s2) = (job.clone(), schema.clone());
        let (rows, count) = tokio::task::spawn_blocking(move || query_segments(segments, j2, s2))
            .await
            .map_err(|e| FvError::internal(format!("query task failed: {e}")))??;
        return Ok(query_response(rows, count, &schema, &job, req.mvcc_ts));
    }
    let d = node.delegator(&req.vchannel)?;
    d.check_serving()?;
    let serviceable = d.wait_serviceable(&node.worker, req.guarantee_ts, timeout_of(req.timeout_ms)).await?;
    // A pinned snapshot (the later pages of a query iterator) reads at its own timestamp
    // once the shard has caught up with it; otherwise at everything consumed.
    let mvcc = if req.mvcc_ts > 0 { req.mvcc_ts.min(serviceable) } else { serviceable };
    let schema = d.schema.clone();
    let job = Arc::new(query_job(&schema, &req, mvcc, &stop)?);
    let (local, remote, _pin) = split(&node, d.snapshot(&req.partition_ids))?;
    let remote_calls = remote.into_iter().map(|(n, segs)| {
        let mut r = req.clone();
        r.from_delegator = true;
        r.segment_ids = segs;
        r.mvcc_ts = mvcc;
        let rpc = node.ctx().rpc.clone();
        async move { rpc.querynode(n).query(&r).timeout(timeout_of(req.timeout_ms)).await }
    });
    let (j2, s2) = (job.clone(), schema.clone());
    let local_task = tokio::task::spawn_blocking(move || query_segments(local, j2, s2));
    let remote_results = futures::future::try_join_all(remote_calls).await?;
    let (mut parts, mut count) =
        local_task.await.map_err(|e| FvError::internal(format!("query task failed: {e}")))??;
    for r in remote_results {
        count += r.count;
        if !job.count_only && !r.fields_data.is_empty() {
            parts.push(Rows::decode(&r.fields_data, &schema)?);
        }
    }
    if job.count_only {
        return Ok(query_response(vec![], count, &schema, &job, mvcc));
    }
    let merged = merge_query(&parts, schema.pk().id, 0, job.limit)?;
    let n = merged.len() as i64;
    Ok(query_response(vec![merged], n, &schema, &job, mvcc))
}

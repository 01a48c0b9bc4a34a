//! Search and query: consistency, fan-out to each shard's delegator, global reduce,
//! offsets and output fields.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fv_common::schema::Schema;
use fv_common::ts::{GUARANTEE_BOUNDED, wall_clock_ts_minus};
use fv_common::{Code, CollectionId, FvError, FvResult, PartitionId, PrimaryKey, Timestamp};
use fv_common::Metric;
use fv_proto::api::{QueryRequest, QueryResults, SearchRequest, SearchResults};
use fv_proto::common::{ConsistencyLevel, KeyValuePair, PlaceholderGroup, PlaceholderType};
use fv_proto::fv::index::DescribeIndexRequest;
use fv_proto::fv::querycoord::{GetShardLeadersRequest, ShardLeader};
use fv_proto::fv::querynode as qn;
use fv_proto::schema::field_data::Field;
use fv_proto::schema::scalar_field::Data;
use fv_proto::schema::{DataType, FieldData, LongArray, ScalarField, TemplateValue};
use fv_runtime::Clients;
use fv_storage::result::{Rows, merge_query, merge_search};
use parking_lot::RwLock;
use prost::Message;

use crate::meta_cache::Collection;
use crate::output::{self, OutputPlan};
use crate::{COORD_DEADLINE, Proxy};

/// Largest `limit + offset` (and nq) a read may ask for, as in Milvus.
pub const MAX_RESULT_WINDOW: i64 = 16_384;

/// Shard leaders (and the vector index's metric) of loaded collections.
#[derive(Default)]
pub struct LeaderCache {
    map: RwLock<HashMap<CollectionId, Arc<Leaders>>>,
}

#[derive(Debug)]
pub struct Leaders {
    pub shards: Vec<ShardLeader>,
    /// Loaded partitions; empty means the whole collection.
    pub partitions: Vec<PartitionId>,
    /// Metric of the vector field's index (None when it has no index).
    pub metric: Option<String>,
}

impl LeaderCache {
    pub fn invalidate(&self, c: CollectionId) {
        self.map.write().remove(&c);
    }
}

fn param<'a>(kvs: &'a [KeyValuePair], key: &str) -> Option<&'a str> {
    kvs.iter().find(|kv| kv.key == key).map(|kv| kv.value.as_str())
}

async fn leaders(p: &Proxy, coll: &Collection) -> FvResult<Arc<Leaders>> {
    if let Some(l) = p.leaders.map.read().get(&coll.info.id) {
        return Ok(l.clone());
    }
    let resp = p
        .ctx
        .rpc
        .querycoord()
        .get_shard_leaders(&GetShardLeadersRequest { collection_id: coll.info.id })
        .retry(COORD_DEADLINE)
        .await
        .map_err(|e| match e.code {
            Code::CollectionNotLoaded => FvError::collection_not_loaded(coll.name()),
            Code::CollectionNotFullyLoaded => FvError::new(
                Code::CollectionNotFullyLoaded,
                format!("collection not fully loaded[collection={}]", coll.name()),
            ),
            _ => e,
        })?;
    let metric = match p
        .ctx
        .rpc
        .indexcoord()
        .describe_index(&DescribeIndexRequest { collection_id: coll.info.id, index_name: String::new() })
        .await
    {
        Ok(d) => d
            .indexes
            .iter()
            .filter_map(|i| i.info.as_ref())
            .find(|i| i.field_id == coll.schema.vector().id)
            .and_then(|i| param(&i.index_params, "metric_type").map(|m| m.to_ascii_uppercase())),
        Err(e) if e.code == Code::IndexNotFound => None,
        Err(e) => return Err(e),
    };
    let l = Arc::new(Leaders { shards: resp.shards, partitions: resp.loaded_partition_ids, metric });
    p.leaders.map.write().insert(coll.info.id, l.clone());
    Ok(l)
}

/// The timestamp a read must observe, from the consistency level.
pub async fn guarantee_ts(
    p: &Proxy,
    coll: &Collection,
    level: i32,
    use_default: bool,
    given: Timestamp,
) -> FvResult<Timestamp> {
    let level = if use_default { coll.info.consistency_level } else { level };
    Ok(match ConsistencyLevel::try_from(level).unwrap_or(ConsistencyLevel::Bounded) {
        ConsistencyLevel::Strong => fv_common::ts::GUARANTEE_STRONG,
        ConsistencyLevel::Bounded => wall_clock_ts_minus(p.ctx.config.proxy.bounded_staleness_ms),
        ConsistencyLevel::Session | ConsistencyLevel::Customized => {
            if given > GUARANTEE_BOUNDED {
                given
            } else {
                0
            }
        }
        ConsistencyLevel::Eventually => 0,
    })
}

fn resolve_partitions(coll: &Collection, names: &[String], leaders: &Leaders) -> FvResult<Vec<PartitionId>> {
    let mut ids = Vec::with_capacity(names.len());
    for n in names {
        let id = coll.partition_id(n)?;
        if !leaders.partitions.is_empty() && !leaders.partitions.contains(&id) {
            return Err(FvError::new(Code::PartitionNotLoaded, format!("partition not loaded[partition={n}]")));
        }
        ids.push(id);
    }
    Ok(ids)
}

fn read_timeout_ms(p: &Proxy) -> i64 {
    p.ctx.config.proxy.read_timeout_ms as i64
}

/// Calls every shard's delegator; drops cached leaders on failure so the next request
/// asks querycoord again.
async fn fan_out<R, F, Fut>(p: &Proxy, coll: &Collection, leaders: &Leaders, call: &F) -> FvResult<Vec<R>>
where
    F: Fn(ShardLeader) -> Fut,
    Fut: std::future::Future<Output = FvResult<R>>,
{
    let res = futures::future::try_join_all(leaders.shards.iter().cloned().map(call)).await;
    if res.is_err() {
        p.leaders.invalidate(coll.info.id);
    }
    res
}

/// Attempts a read makes when a shard leader turns out to be stale.
const LEADER_ATTEMPTS: usize = 3;

/// Whether a delegator's error means the cached leader is stale rather than the read
/// failing: its delegator was released (a channel move, a release), is not serving
/// yet, or its node is gone. Timeouts are not retried; they already took long.
fn stale_leader(e: &FvError) -> bool {
    matches!(e.code, Code::ChannelNotAvailable | Code::ServiceUnavailable) && e.retriable
}

/// [`fan_out`] to the current shard leaders; when a leader proves stale, fetches them
/// again from querycoord and repeats the whole read (every shard, so the reduce never
/// mixes attempts), at most [`LEADER_ATTEMPTS`] times. A delegator moves to another
/// node by being released after its successor serves, so the retry finds the
/// successor.
async fn fan_out_to_leaders<R, F, Fut>(p: &Proxy, coll: &Collection, first: Arc<Leaders>, call: F) -> FvResult<Vec<R>>
where
    F: Fn(ShardLeader) -> Fut,
    Fut: std::future::Future<Output = FvResult<R>>,
{
    let mut current = first;
    let mut attempt = 1;
    loop {
        match fan_out(p, coll, &current, &call).await {
            Err(e) if attempt < LEADER_ATTEMPTS && stale_leader(&e) => {
                tracing::info!(error = %e, collection = coll.info.id, attempt, "stale shard leader; asking querycoord again");
                // A leader that is being replaced answers within one reconciliation
                // round; a short pause keeps a retry from finding the same state.
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
                attempt += 1;
                current = leaders(p, coll).await?;
            }
            r => return r,
        }
    }
}

struct SearchSpec {
    field_id: i64,
    metric: Metric,
    limit: i64,
    offset: i64,
    round_decimal: i32,
    params_json: String,
}

fn search_spec(coll: &Collection, params: &[KeyValuePair], index_metric: Option<&str>) -> FvResult<SearchSpec> {
    let schema = &coll.schema;
    let field = match param(params, "anns_field").filter(|s| !s.is_empty()) {
        Some(name) => schema.field(name).filter(|f| f.is_vector()).ok_or_else(|| {
            FvError::invalid_parameter(format!(
                "failed to get field schema by name: fieldName({name}) not found or is not a vector field"
            ))
        })?,
        None => schema.vector(),
    };
    let int = |k: &str, default: i64| -> FvResult<i64> {
        match param(params, k) {
            None | Some("") => Ok(default),
            Some(v) => v.trim().parse::<i64>().map_err(|_| FvError::invalid_parameter(format!("{k} [{v}] is invalid"))),
        }
    };
    let limit = match param(params, "topk") {
        None => return Err(FvError::invalid_parameter("topk not found in search_params")),
        Some(v) => v.trim().parse::<i64>().map_err(|_| FvError::invalid_parameter(format!("topk [{v}] is invalid")))?,
    };
    let offset = int("offset", 0)?;
    if !(1..=MAX_RESULT_WINDOW).contains(&limit) {
        return Err(FvError::invalid_parameter(format!(
            "topk [{limit}] is invalid, it should be in range [1, {MAX_RESULT_WINDOW}]"
        )));
    }
    if offset < 0 || offset + limit > MAX_RESULT_WINDOW {
        return Err(FvError::invalid_parameter(format!(
            "offset [{offset}] is invalid, topk+offset should be in range [1, {MAX_RESULT_WINDOW}]"
        )));
    }
    let round_decimal = int("round_decimal", -1)? as i32;
    if !(-1..=6).contains(&round_decimal) {
        return Err(FvError::invalid_parameter(format!(
            "round_decimal {round_decimal} is invalid, should be -1 or an integer in range [0, 6]"
        )));
    }
    if param(params, "group_by_field").is_some_and(|g| !g.is_empty()) {
        return Err(FvError::unimplemented("grouping search"));
    }
    let json: serde_json::Value = match param(params, "params") {
        None | Some("") => serde_json::Value::Object(Default::default()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| FvError::invalid_parameter(format!("search params are not valid JSON: {e}")))?,
    };
    let requested = param(params, "metric_type")
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .or_else(|| json.get("metric_type").and_then(|m| m.as_str()).filter(|m| !m.is_empty()).map(str::to_string));
    let metric_name = match (requested, index_metric) {
        (Some(r), Some(i)) if !r.eq_ignore_ascii_case(i) => {
            return Err(FvError::invalid_parameter(format!(
                "metric type not match: invalid parameter[expected={i}][actual={}]",
                r.to_ascii_uppercase()
            )));
        }
        (Some(r), _) => r,
        (None, Some(i)) => i.to_string(),
        (None, None) => "COSINE".to_string(),
    };
    let metric = Metric::parse(&metric_name).ok_or_else(|| {
        FvError::new(Code::MetricNotFound, format!("metric type {metric_name} is not supported for float vectors"))
    })?;
    Ok(SearchSpec { field_id: field.id, metric, limit, offset, round_decimal, params_json: json.to_string() })
}

/// Query vectors of a search request, packed as little-endian f32.
fn query_vectors(req: &SearchRequest, dim: usize) -> FvResult<(usize, Vec<u8>)> {
    use fv_proto::api::search_request::SearchInput;
    let bytes = match &req.search_input {
        Some(SearchInput::PlaceholderGroup(b)) => b,
        Some(SearchInput::Ids(_)) => return Err(FvError::unimplemented("search by primary keys")),
        None => return Err(FvError::invalid_parameter("search request carries no query vectors")),
    };
    let group = PlaceholderGroup::decode(bytes.as_slice())
        .map_err(|e| FvError::invalid_parameter(format!("invalid placeholder group: {e}")))?;
    let ph = group
        .placeholders
        .first()
        .ok_or_else(|| FvError::invalid_parameter("search request carries no query vectors"))?;
    if ph.r#type != PlaceholderType::FloatVector as i32 {
        let t = PlaceholderType::try_from(ph.r#type).map(|t| t.as_str_name()).unwrap_or("unknown");
        return Err(FvError::invalid_parameter(format!(
            "placeholder type {t} does not match the field data type FloatVector"
        )));
    }
    let nq = ph.values.len();
    if nq == 0 {
        return Err(FvError::invalid_parameter(
            "nq [0] is invalid, nq (number of search vector per search request) should be in range [1, 16384]",
        ));
    }
    if nq as i64 > MAX_RESULT_WINDOW {
        return Err(FvError::invalid_parameter(format!(
            "nq [{nq}] is invalid, nq (number of search vector per search request) should be in range [1, 16384]"
        )));
    }
    let mut out = Vec::with_capacity(nq * dim * 4);
    for v in &ph.values {
        if v.len() != dim * 4 {
            return Err(FvError::invalid_parameter(format!(
                "the dim ({}) of field data(vector) is not equal to schema dim ({dim})",
                v.len() / 4
            )));
        }
        if v.chunks_exact(4).any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()) {
            return Err(FvError::invalid_parameter("query vectors contain NaN or infinity"));
        }
        out.extend_from_slice(v);
    }
    Ok((nq, out))
}

fn round_scores(scores: &mut [f32], decimals: i32) {
    if decimals < 0 {
        return;
    }
    let f = 10f32.powi(decimals);
    for s in scores {
        *s = (*s * f).round() / f;
    }
}

pub async fn search(p: &Proxy, req: SearchRequest) -> FvResult<SearchResults> {
    if !req.sub_reqs.is_empty() {
        return Err(FvError::unimplemented("multi-vector search requests"));
    }
    let coll = p.cache.get(&req.db_name, &req.collection_name).await?;
    let schema = coll.schema.clone();
    let leaders = leaders(p, &coll).await?;
    let spec = search_spec(&coll, &req.search_params, leaders.metric.as_deref())?;
    let dim = schema.field_by_id(spec.field_id).map(|f| f.dim).unwrap_or(0);
    let (nq, vectors) = query_vectors(&req, dim)?;
    if !req.dsl.trim().is_empty() {
        fv_expr::compile(&req.dsl, &schema, &req.expr_template_values)
            .map_err(|e| FvError::invalid_parameter(format!("cannot parse expression: {}, error: {e}", req.dsl)))?;
    }
    let out = output::resolve(&schema, &req.output_fields, false)?;
    if out.count {
        return Err(FvError::invalid_parameter("count(*) is not an output field of search"));
    }
    let partitions = resolve_partitions(&coll, &req.partition_names, &leaders)?;
    let guarantee =
        guarantee_ts(p, &coll, req.consistency_level, req.use_default_consistency, req.guarantee_timestamp).await?;
    let base = qn::SearchRequest {
        collection_id: coll.info.id,
        partition_ids: partitions,
        field_id: spec.field_id,
        metric_type: spec.metric.name().to_string(),
        nq: nq as i64,
        dim: dim as i64,
        vectors,
        topk: spec.limit + spec.offset,
        filter: req.dsl.clone(),
        filter_params: req.expr_template_values.clone(),
        output_field_ids: out.field_ids.clone(),
        guarantee_ts: guarantee,
        search_params: spec.params_json.clone(),
        timeout_ms: read_timeout_ms(p),
        ..Default::default()
    };
    let parts = fan_out_to_leaders(p, &coll, leaders.clone(), |leader| {
        let mut r = base.clone();
        r.vchannel = leader.vchannel.clone();
        async move {
            p.ctx
                .rpc
                .querynode(leader.node_id)
                .search(&r)
                .timeout(std::time::Duration::from_millis(r.timeout_ms as u64 + 5_000))
                .await
        }
    })
    .await?;
    let session_ts = parts.iter().map(|r| r.mvcc_ts).max().unwrap_or(0);
    let results: Vec<_> = parts.into_iter().filter_map(|r| r.result).collect();
    let mut merged =
        merge_search(&results, &schema, nq, spec.offset as usize, spec.limit as usize, spec.metric.higher_is_better())?;
    round_scores(&mut merged.scores, spec.round_decimal);
    output::filter_dynamic(&mut merged.fields_data, &out);
    merged.top_k = spec.limit;
    merged.output_fields = out.names.clone();
    merged.primary_field_name = schema.pk().name.clone();
    Ok(SearchResults {
        status: Some(Default::default()),
        results: Some(merged),
        collection_name: coll.name().to_string(),
        session_ts,
    })
}

/// Internal query: rows or a count from every shard, merged.
struct QuerySpec {
    filter: String,
    params: HashMap<String, TemplateValue>,
    partitions: Vec<PartitionId>,
    out: OutputPlan,
    /// Rows per shard (limit + offset), or -1 for all.
    shard_limit: i64,
    offset: usize,
    limit: Option<usize>,
    guarantee: Timestamp,
    /// Read at exactly this snapshot (0: at everything the shards consumed).
    pin: Timestamp,
}

/// Runs a query on every shard; returns the merged rows, their count, and the newest
/// MVCC timestamp the shards read at (iterators pin later pages to it).
async fn run_query(
    p: &Proxy,
    coll: &Collection,
    leaders: &Arc<Leaders>,
    spec: &QuerySpec,
) -> FvResult<(Rows, i64, Timestamp)> {
    let schema = &coll.schema;
    let base = qn::QueryRequest {
        collection_id: coll.info.id,
        partition_ids: spec.partitions.clone(),
        filter: spec.filter.clone(),
        filter_params: spec.params.clone(),
        output_field_ids: spec.out.field_ids.clone(),
        limit: spec.shard_limit,
        count_only: spec.out.count,
        guarantee_ts: spec.guarantee,
        mvcc_ts: spec.pin,
        timeout_ms: read_timeout_ms(p),
        ..Default::default()
    };
    let parts = fan_out_to_leaders(p, coll, leaders.clone(), |leader| {
        let mut r = base.clone();
        r.vchannel = leader.vchannel.clone();
        async move {
            p.ctx
                .rpc
                .querynode(leader.node_id)
                .query(&r)
                .timeout(std::time::Duration::from_millis(r.timeout_ms as u64 + 5_000))
                .await
        }
    })
    .await?;
    let mvcc_ts = parts.iter().map(|r| r.mvcc_ts).max().unwrap_or(0);
    if spec.out.count {
        return Ok((Rows { columns: vec![] }, parts.iter().map(|r| r.count).sum(), mvcc_ts));
    }
    let rows = parts.iter().map(|r| Rows::decode(&r.fields_data, schema)).collect::<Result<Vec<_>, _>>()?;
    let merged = merge_query(&rows, schema.pk().id, spec.offset, spec.limit)?;
    let n = merged.len() as i64;
    Ok((merged, n, mvcc_ts))
}

fn count_field(count: i64) -> FieldData {
    FieldData {
        r#type: DataType::Int64 as i32,
        field_name: output::COUNT_STAR.to_string(),
        field: Some(Field::Scalars(ScalarField { data: Some(Data::LongData(LongArray { data: vec![count] })) })),
        ..Default::default()
    }
}

/// Typed empty columns for a result without rows (SDKs need every column present).
fn empty_fields(schema: &Schema, out: &OutputPlan) -> Vec<FieldData> {
    out.field_ids
        .iter()
        .filter_map(|id| schema.field_by_id(*id))
        .filter_map(|f| fv_storage::Column::empty(f).ok().map(|c| c.to_field_data(f)))
        .collect()
}

pub async fn query(p: &Proxy, req: QueryRequest) -> FvResult<QueryResults> {
    let coll = p.cache.get(&req.db_name, &req.collection_name).await?;
    let schema = coll.schema.clone();
    let leaders = leaders(p, &coll).await?;
    let out = output::resolve(&schema, &req.output_fields, true)?;
    let int = |k: &str| -> FvResult<Option<i64>> {
        match param(&req.query_params, k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| FvError::invalid_parameter(format!("{k} [{v}] is invalid"))),
        }
    };
    let limit = int("limit")?;
    let offset = int("offset")?.unwrap_or(0);
    if let Some(l) = limit
        && (l <= 0 || offset < 0 || l + offset > MAX_RESULT_WINDOW)
    {
        return Err(FvError::invalid_parameter(format!(
            "invalid max query result window, (offset+limit) should be in range [1, {MAX_RESULT_WINDOW}], but got {}",
            l + offset
        )));
    }
    if req.expr.trim().is_empty() && limit.is_none() && !out.count {
        return Err(FvError::invalid_parameter("empty expression should be used with limit"));
    }
    if out.count && limit.is_some() {
        return Err(FvError::invalid_parameter("count entities with pagination is not allowed"));
    }
    if !req.expr.trim().is_empty() {
        fv_expr::compile(&req.expr, &schema, &req.expr_template_values)
            .map_err(|e| FvError::invalid_parameter(format!("cannot parse expression: {}, error: {e}", req.expr)))?;
    }
    let partitions = resolve_partitions(&coll, &req.partition_names, &leaders)?;
    let guarantee =
        guarantee_ts(p, &coll, req.consistency_level, req.use_default_consistency, req.guarantee_timestamp).await?;
    // As in Milvus, an iterator reads every page at one snapshot: the first page learns
    // it (session_ts below) and pymilvus sends it back as guarantee_timestamp.
    let iterator = param(&req.query_params, "iterator").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let spec = QuerySpec {
        filter: req.expr.clone(),
        params: req.expr_template_values.clone(),
        partitions,
        shard_limit: limit.map(|l| l + offset).unwrap_or(-1),
        offset: offset as usize,
        limit: limit.map(|l| l as usize),
        guarantee,
        pin: if iterator { req.guarantee_timestamp } else { 0 },
        out,
    };
    let (rows, count, session_ts) = run_query(p, &coll, &leaders, &spec).await?;
    // As Milvus does, only the first page of an iterator learns the snapshot it read at
    // (pymilvus pins the following pages to it); other results carry no session_ts.
    let iterator_first_page = iterator && req.guarantee_timestamp == 0;
    let (fields_data, output_fields) = if spec.out.count {
        (vec![count_field(count)], vec![output::COUNT_STAR.to_string()])
    } else {
        let mut fields = if rows.columns.is_empty() { empty_fields(&schema, &spec.out) } else { rows.encode(&schema) };
        output::filter_dynamic(&mut fields, &spec.out);
        (fields, spec.out.names.clone())
    };
    Ok(QueryResults {
        status: Some(Default::default()),
        fields_data,
        collection_name: coll.name().to_string(),
        output_fields,
        primary_field_name: schema.pk().name.clone(),
        session_ts: if iterator_first_page { session_ts } else { 0 },
        ..Default::default()
    })
}

/// Primary keys of every row matching `expr` (for delete by filter).
pub async fn matching_keys(
    p: &Proxy,
    coll: &Arc<Collection>,
    expr: &str,
    params: &HashMap<String, TemplateValue>,
    partitions: Vec<PartitionId>,
    consistency: i32,
) -> FvResult<Vec<PrimaryKey>> {
    let leaders = leaders(p, coll).await?;
    let guarantee = guarantee_ts(p, coll, consistency, false, 0).await?;
    let out = OutputPlan { field_ids: vec![coll.schema.pk().id], ..Default::default() };
    let spec = QuerySpec {
        filter: expr.to_string(),
        params: params.clone(),
        partitions,
        out,
        shard_limit: -1,
        offset: 0,
        limit: None,
        guarantee,
        pin: 0,
    };
    let (rows, _, _) = run_query(p, coll, &leaders, &spec).await?;
    let pk_id = coll.schema.pk().id;
    let Some(col) = rows.columns.iter().find(|c| c.field_id == pk_id) else { return Ok(vec![]) };
    let keys: HashSet<PrimaryKey> = (0..col.len()).filter_map(|r| col.pk(r)).collect();
    let mut keys: Vec<PrimaryKey> = keys.into_iter().collect();
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_or_not_yet_serving_delegator_makes_a_read_ask_for_leaders_again() {
        // Released by a channel move or not serving yet: the querynode's answer.
        let released = FvError::new(Code::ChannelNotAvailable, "shard delegator stopped[channel=c]").retriable(true);
        assert!(stale_leader(&released));
        // The node is gone (no responders on the broker).
        let gone = FvError::new(Code::ServiceUnavailable, "service unavailable: no querynode serves Search");
        assert!(stale_leader(&gone.retriable(true)));
        // A timeout already used the read's time; bad input and unloaded collections
        // would fail the same way again.
        assert!(!stale_leader(&FvError::timeout("querynode.Search did not answer within 35000 ms")));
        assert!(!stale_leader(&FvError::invalid_parameter("cannot parse expression")));
        assert!(!stale_leader(&FvError::new(Code::CollectionNotLoaded, "collection not loaded")));
        assert!(!stale_leader(&released.retriable(false)));
    }
}

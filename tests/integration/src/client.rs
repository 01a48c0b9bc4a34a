//! Request builders and a thin client over [`MilvusApi`] that turns statuses into errors.

use std::future::Future;
use std::time::{Duration, Instant};

use fv_common::{Code, FvError, FvResult};
use fv_proto::api::milvus_service_server::MilvusService;
use fv_proto::api::*;
use fv_proto::common::{ConsistencyLevel, KeyValuePair, PlaceholderGroup, PlaceholderType, PlaceholderValue, Status};
use fv_proto::schema::{CollectionSchema, FieldData, SearchResultData};
use fv_proxy::service::MilvusApi;
use prost::Message;
use tonic::Request;

/// Runs `f` inside an actix system on a multi-thread tokio runtime, as the binary does.
pub fn run<F: Future>(f: F) -> F::Output {
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
    });
    system.block_on(f)
}

pub fn kv(k: &str, v: impl ToString) -> KeyValuePair {
    KeyValuePair { key: k.to_string(), value: v.to_string() }
}

fn check(st: Option<&Status>) -> FvResult<()> {
    match st.and_then(FvError::from_status) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub struct Client {
    pub api: MilvusApi,
}

pub struct SearchArgs<'a> {
    pub vectors: &'a [Vec<f32>],
    pub limit: usize,
    pub offset: usize,
    pub filter: &'a str,
    pub output_fields: &'a [&'a str],
    pub metric: Option<&'a str>,
    pub consistency: ConsistencyLevel,
    pub extra: Vec<KeyValuePair>,
    pub partitions: &'a [&'a str],
    /// Sent as `guarantee_timestamp` (Session: the client's last write timestamp).
    pub guarantee: u64,
}

impl Default for SearchArgs<'_> {
    fn default() -> Self {
        SearchArgs {
            vectors: &[],
            limit: 10,
            offset: 0,
            filter: "",
            output_fields: &[],
            metric: None,
            consistency: ConsistencyLevel::Strong,
            extra: vec![],
            partitions: &[],
            guarantee: 0,
        }
    }
}

impl Client {
    pub async fn create_collection(&self, name: &str, schema: CollectionSchema, shards: i32) -> FvResult<()> {
        let r = self
            .api
            .create_collection(Request::new(CreateCollectionRequest {
                collection_name: name.into(),
                schema: schema.encode_to_vec(),
                shards_num: shards,
                consistency_level: ConsistencyLevel::Strong as i32,
                ..Default::default()
            }))
            .await
            .expect("no transport error");
        check(Some(r.get_ref()))
    }

    pub async fn create_index(&self, name: &str, field: &str, params: Vec<KeyValuePair>) -> FvResult<()> {
        let r = self
            .api
            .create_index(Request::new(CreateIndexRequest {
                collection_name: name.into(),
                field_name: field.into(),
                extra_params: params,
                ..Default::default()
            }))
            .await
            .expect("no transport error");
        check(Some(r.get_ref()))
    }

    pub async fn describe_index(&self, name: &str) -> FvResult<Vec<IndexDescription>> {
        let r = self
            .api
            .describe_index(Request::new(DescribeIndexRequest { collection_name: name.into(), ..Default::default() }))
            .await
            .expect("no transport error")
            .into_inner();
        check(r.status.as_ref())?;
        Ok(r.index_descriptions)
    }

    /// Loads and waits until loaded (as pymilvus does by polling).
    pub async fn load(&self, name: &str) -> FvResult<()> {
        let r = self
            .api
            .load_collection(Request::new(LoadCollectionRequest { collection_name: name.into(), ..Default::default() }))
            .await
            .expect("no transport error");
        check(Some(r.get_ref()))?;
        self.wait(Duration::from_secs(60), || async {
            let p = self
                .api
                .get_loading_progress(Request::new(GetLoadingProgressRequest {
                    collection_name: name.into(),
                    ..Default::default()
                }))
                .await
                .expect("no transport error")
                .into_inner();
            check(p.status.as_ref())?;
            Ok(p.progress >= 100)
        })
        .await
    }

    pub async fn create_partition(&self, name: &str, partition: &str) -> FvResult<()> {
        let r = self
            .api
            .create_partition(Request::new(CreatePartitionRequest {
                collection_name: name.into(),
                partition_name: partition.into(),
                ..Default::default()
            }))
            .await
            .expect("no transport error");
        check(Some(r.get_ref()))
    }

    pub async fn drop_partition(&self, name: &str, partition: &str) -> FvResult<()> {
        let r = self
            .api
            .drop_partition(Request::new(DropPartitionRequest {
                collection_name: name.into(),
                partition_name: partition.into(),
                ..Default::default()
            }))
            .await
            .expect("no transport error");
        check(Some(r.get_ref()))
    }

    pub async fn release(&self, name: &str) -> FvResult<()> {
        let r = self
            .api
            .release_collection(Request::new(ReleaseCollectionRequest {
                collection_name: name.into(),
                ..Default::default()
            }))
            .await
            .expect("no transport error");
        check(Some(r.get_ref()))
    }

    pub async fn insert(&self, name: &str, fields: Vec<FieldData>, rows: usize) -> FvResult<MutationResult> {
        self.insert_into(name, "", fields, rows).await
    }

    pub async fn insert_into(
        &self,
        name: &str,
        partition: &str,
        fields: Vec<FieldData>,
        rows: usize,
    ) -> FvResult<MutationResult> {
        let r = self
            .api
            .insert(Request::new(InsertRequest {
                collection_name: name.into(),
                partition_name: partition.into(),
                fields_data: fields,
                num_rows: rows as u32,
                ..Default::default()
            }))
            .await
            .expect("no transport error")
            .into_inner();
        check(r.status.as_ref())?;
        Ok(r)
    }

    pub async fn upsert(&self, name: &str, fields: Vec<FieldData>, rows: usize) -> FvResult<MutationResult> {
        let r = self
            .api
            .upsert(Request::new(UpsertRequest {
                collection_name: name.into(),
                fields_data: fields,
                num_rows: rows as u32,
                ..Default::default()
            }))
            .await
            .expect("no transport error")
            .into_inner();
        check(r.status.as_ref())?;
        Ok(r)
    }

    pub async fn delete(&self, name: &str, expr: &str) -> FvResult<MutationResult> {
        let r = self
            .api
            .delete(Request::new(DeleteRequest {
                collection_name: name.into(),
                expr: expr.into(),
                consistency_level: ConsistencyLevel::Strong as i32,
                ..Default::default()
            }))
            .await
            .expect("no transport error")
            .into_inner();
        check(r.status.as_ref())?;
        Ok(r)
    }

    /// Flushes and waits until every sealed segment is persisted.
    pub async fn flush(&self, name: &str) -> FvResult<()> {
        let r = self
            .api
            .flush(Request::new(FlushRequest { collection_names: vec![name.into()], ..Default::default() }))
            .await
            .expect("no transport error")
            .into_inner();
        check(r.status.as_ref())?;
        let segs = r.coll_seg_i_ds.get(name).map(|l| l.data.clone()).unwrap_or_default();
        let ts = r.coll_flush_ts.get(name).copied().unwrap_or(0);
        self.wait(Duration::from_secs(60), || {
            let segs = segs.clone();
            async move {
                let s = self
                    .api
                    .get_flush_state(Request::new(GetFlushStateRequest {
                        segment_i_ds: segs,
                        flush_ts: ts,
                        collection_name: name.into(),
                        ..Default::default()
                    }))
                    .await
                    .expect("no transport error")
                    .into_inner();
                check(s.status.as_ref())?;
                Ok(s.flushed)
            }
        })
        .await
    }

    pub async fn search(&self, name: &str, a: SearchArgs<'_>) -> FvResult<SearchResultData> {
        let group = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: a.vectors.iter().map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect(),
                ..Default::default()
            }],
        };
        let mut params = vec![kv("topk", a.limit), kv("offset", a.offset), kv("round_decimal", -1)];
        if !a.extra.iter().any(|p| p.key == "params") {
            params.push(kv("params", "{}"));
        }
        if let Some(m) = a.metric {
            params.push(kv("metric_type", m));
        }
        params.extend(a.extra);
        let r = self
            .api
            .search(Request::new(SearchRequest {
                collection_name: name.into(),
                dsl: a.filter.into(),
                dsl_type: 1,
                search_input: Some(search_request::SearchInput::PlaceholderGroup(group.encode_to_vec())),
                output_fields: a.output_fields.iter().map(|s| s.to_string()).collect(),
                search_params: params,
                nq: a.vectors.len() as i64,
                consistency_level: a.consistency as i32,
                partition_names: a.partitions.iter().map(|s| s.to_string()).collect(),
                guarantee_timestamp: a.guarantee,
                ..Default::default()
            }))
            .await
            .expect("no transport error")
            .into_inner();
        check(r.status.as_ref())?;
        r.results.ok_or_else(|| FvError::internal("search without results"))
    }

    pub async fn query(
        &self,
        name: &str,
        expr: &str,
        output: &[&str],
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> FvResult<QueryResults> {
        let mut params = vec![];
        if let Some(l) = limit {
            params.push(kv("limit", l));
        }
        if let Some(o) = offset {
            params.push(kv("offset", o));
        }
        let r = self
            .api
            .query(Request::new(QueryRequest {
                collection_name: name.into(),
                expr: expr.into(),
                output_fields: output.iter().map(|s| s.to_string()).collect(),
                query_params: params,
                consistency_level: ConsistencyLevel::Strong as i32,
                ..Default::default()
            }))
            .await
            .expect("no transport error")
            .into_inner();
        check(r.status.as_ref())?;
        Ok(r)
    }

    pub async fn count(&self, name: &str, expr: &str) -> FvResult<i64> {
        let r = self.query(name, expr, &["count(*)"], None, None).await?;
        crate::data::longs(&r.fields_data[0]).first().copied().ok_or_else(|| FvError::internal("count without value"))
    }

    /// Polls `cond` until it holds (or fails with a non-retriable error, or times out).
    pub async fn wait<F, Fut>(&self, timeout: Duration, mut cond: F) -> FvResult<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = FvResult<bool>>,
    {
        let start = Instant::now();
        loop {
            match cond().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.retriable => {}
                Err(e) => return Err(e),
            }
            if start.elapsed() > timeout {
                return Err(FvError::new(Code::Timeout, "condition not reached in time"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

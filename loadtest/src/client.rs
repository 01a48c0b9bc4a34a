//! A Milvus gRPC client over Ferrovec's own proto crate: the calls the workload makes,
//! with statuses turned into [`ClientError`]s that carry the Milvus error code, so runs
//! against Ferrovec and against a real Milvus count failures the same way.

use std::time::{Duration, Instant};

use fv_proto::api::milvus_service_client::MilvusServiceClient;
use fv_proto::api::*;
use fv_proto::common::{
    ConsistencyLevel, IndexState, KeyValuePair, PlaceholderGroup, PlaceholderType, PlaceholderValue, Status,
};
use fv_proto::schema::field_data::Field;
use fv_proto::schema::i_ds::IdField;
use fv_proto::schema::scalar_field::Data;
use fv_proto::schema::{CollectionSchema, FieldData, IDs};
use prost::Message;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// A failed request: the server's Milvus status, or a transport failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("code {code}: {reason}")]
    Status { code: i32, reason: String },
    #[error("transport: {0}")]
    Transport(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The key errors are counted under in results.
    pub fn code_label(&self) -> String {
        match self {
            ClientError::Status { code, .. } => code.to_string(),
            ClientError::Transport(_) => "transport".into(),
            ClientError::Timeout(_) => "timeout".into(),
            ClientError::Protocol(_) => "protocol".into(),
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

fn check(status: Option<&Status>) -> ClientResult<()> {
    match status {
        Some(s) if s.code != 0 || s.error_code != 0 => {
            Err(ClientError::Status { code: if s.code != 0 { s.code } else { s.error_code }, reason: s.reason.clone() })
        }
        _ => Ok(()),
    }
}

fn transport(e: tonic::Status) -> ClientError {
    ClientError::Transport(format!("{:?}: {}", e.code(), e.message()))
}

/// Adds the database (`dbname`) and credentials (`authorization`) headers pymilvus sends.
#[derive(Clone)]
pub struct Headers {
    db: Option<AsciiMetadataValue>,
    auth: Option<AsciiMetadataValue>,
}

impl Interceptor for Headers {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(db) = &self.db {
            req.metadata_mut().insert("dbname", db.clone());
        }
        if let Some(a) = &self.auth {
            req.metadata_mut().insert("authorization", a.clone());
        }
        Ok(req)
    }
}

type Inner = MilvusServiceClient<InterceptedService<Channel, Headers>>;

/// How to reach an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `http://host:port`.
    pub uri: String,
    /// Database name; empty for the default database.
    pub db: String,
    /// `user:password` (Milvus sends it base64-encoded in `authorization`).
    pub token: Option<String>,
    pub request_timeout: Duration,
}

/// One connection (one HTTP/2 channel) to an endpoint; cheap to clone, clones share it.
#[derive(Clone)]
pub struct Client {
    inner: Inner,
}

/// One query's answer: (id, score) best first.
pub type Hits = Vec<(i64, f32)>;

/// The arguments of a search call.
#[derive(Debug, Clone)]
pub struct SearchCall<'a> {
    pub collection: &'a str,
    pub field: &'a str,
    pub vectors: Vec<&'a [f32]>,
    pub topk: usize,
    pub metric: &'a str,
    /// The search `params` JSON object, e.g. `{"nprobe": 16}`.
    pub params: &'a serde_json::Value,
    pub filter: &'a str,
    pub consistency: ConsistencyLevel,
}

impl Client {
    /// Connects (one TCP connection), with Nagle off like pymilvus' grpcio.
    pub async fn connect(target: &Target) -> ClientResult<Client> {
        let endpoint = Endpoint::from_shared(target.uri.clone())
            .map_err(|e| ClientError::Transport(format!("bad uri {}: {e}", target.uri)))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(target.request_timeout);
        let channel = endpoint.connect().await.map_err(|e| ClientError::Transport(format!("{}: {e}", target.uri)))?;
        let header = |v: String| {
            AsciiMetadataValue::try_from(v).map_err(|e| ClientError::Transport(format!("bad header value: {e}")))
        };
        let headers = Headers {
            db: if target.db.is_empty() { None } else { Some(header(target.db.clone())?) },
            auth: target.token.as_ref().map(|t| header(base64(t.as_bytes()))).transpose()?,
        };
        let inner = MilvusServiceClient::with_interceptor(channel, headers)
            .max_decoding_message_size(512 << 20)
            .max_encoding_message_size(512 << 20);
        Ok(Client { inner })
    }

    /// The server's version string (`GetVersion`).
    pub async fn version(&self) -> ClientResult<String> {
        let r = self.inner.clone().get_version(GetVersionRequest {}).await.map_err(transport)?.into_inner();
        check(r.status.as_ref())?;
        Ok(r.version)
    }

    pub async fn has_collection(&self, name: &str) -> ClientResult<bool> {
        let r = self
            .inner
            .clone()
            .has_collection(HasCollectionRequest { collection_name: name.into(), ..Default::default() })
            .await
            .map_err(transport)?
            .into_inner();
        check(r.status.as_ref())?;
        Ok(r.value)
    }

    pub async fn drop_collection(&self, name: &str) -> ClientResult<()> {
        let r = self
            .inner
            .clone()
            .drop_collection(DropCollectionRequest { collection_name: name.into(), ..Default::default() })
            .await
            .map_err(transport)?;
        check(Some(r.get_ref()))
    }

    pub async fn create_collection(
        &self,
        schema: &CollectionSchema,
        shards: i32,
        consistency: ConsistencyLevel,
    ) -> ClientResult<()> {
        let r = self
            .inner
            .clone()
            .create_collection(CreateCollectionRequest {
                collection_name: schema.name.clone(),
                schema: schema.encode_to_vec(),
                shards_num: shards,
                consistency_level: consistency as i32,
                ..Default::default()
            })
            .await
            .map_err(transport)?;
        check(Some(r.get_ref()))
    }

    /// Inserts columns; returns the write timestamp (for Session consistency).
    pub async fn insert(&self, collection: &str, fields: Vec<FieldData>, rows: usize) -> ClientResult<u64> {
        let r = self
            .inner
            .clone()
            .insert(InsertRequest {
                collection_name: collection.into(),
                fields_data: fields,
                num_rows: rows as u32,
                ..Default::default()
            })
            .await
            .map_err(transport)?
            .into_inner();
        check(r.status.as_ref())?;
        if r.insert_cnt as usize != rows {
            return Err(ClientError::Protocol(format!("{rows} rows sent, {} acknowledged", r.insert_cnt)));
        }
        Ok(r.timestamp)
    }

    /// Deletes by expression; returns the write timestamp.
    pub async fn delete(&self, collection: &str, expr: &str) -> ClientResult<u64> {
        let r = self
            .inner
            .clone()
            .delete(DeleteRequest { collection_name: collection.into(), expr: expr.into(), ..Default::default() })
            .await
            .map_err(transport)?
            .into_inner();
        check(r.status.as_ref())?;
        Ok(r.timestamp)
    }

    /// Flushes and waits (bounded by `timeout`) until the sealed segments are persisted.
    pub async fn flush(&self, collection: &str, timeout: Duration) -> ClientResult<()> {
        let r = self
            .inner
            .clone()
            .flush(FlushRequest { collection_names: vec![collection.into()], ..Default::default() })
            .await
            .map_err(transport)?
            .into_inner();
        check(r.status.as_ref())?;
        let segments = r.coll_seg_i_ds.get(collection).map(|l| l.data.clone()).unwrap_or_default();
        let flush_ts = r.coll_flush_ts.get(collection).copied().unwrap_or(0);
        poll(timeout, "flush", || async {
            let s = self
                .inner
                .clone()
                .get_flush_state(GetFlushStateRequest {
                    segment_i_ds: segments.clone(),
                    flush_ts,
                    collection_name: collection.into(),
                    ..Default::default()
                })
                .await
                .map_err(transport)?
                .into_inner();
            check(s.status.as_ref())?;
            Ok(s.flushed.then_some(()))
        })
        .await
    }

    pub async fn create_index(
        &self,
        collection: &str,
        field: &str,
        index_type: &str,
        metric: &str,
        params: &serde_json::Value,
    ) -> ClientResult<()> {
        let kv = |k: &str, v: String| KeyValuePair { key: k.into(), value: v };
        let r = self
            .inner
            .clone()
            .create_index(CreateIndexRequest {
                collection_name: collection.into(),
                field_name: field.into(),
                extra_params: vec![
                    kv("index_type", index_type.into()),
                    kv("metric_type", metric.into()),
                    kv("params", params.to_string()),
                ],
                ..Default::default()
            })
            .await
            .map_err(transport)?;
        check(Some(r.get_ref()))
    }

    /// Waits until the field's index covers every row; `progress` gets (indexed, total).
    pub async fn wait_index(
        &self,
        collection: &str,
        field: &str,
        timeout: Duration,
        progress: impl Fn(i64, i64),
    ) -> ClientResult<()> {
        poll(timeout, "index build", || async {
            let r = self
                .inner
                .clone()
                .describe_index(DescribeIndexRequest {
                    collection_name: collection.into(),
                    field_name: field.into(),
                    ..Default::default()
                })
                .await
                .map_err(transport)?
                .into_inner();
            check(r.status.as_ref())?;
            let Some(d) = r.index_descriptions.iter().find(|d| d.field_name == field) else {
                return Err(ClientError::Protocol(format!("no index on {field}")));
            };
            progress(d.indexed_rows, d.total_rows);
            match IndexState::try_from(d.state) {
                Ok(IndexState::Failed) => {
                    Err(ClientError::Protocol(format!("index build failed: {}", d.index_state_fail_reason)))
                }
                Ok(IndexState::Finished) if d.pending_index_rows == 0 => Ok(Some(())),
                _ => Ok(None),
            }
        })
        .await
    }

    /// Loads the collection and waits until it is fully loaded.
    pub async fn load(&self, collection: &str, timeout: Duration) -> ClientResult<()> {
        let r = self
            .inner
            .clone()
            .load_collection(LoadCollectionRequest { collection_name: collection.into(), ..Default::default() })
            .await
            .map_err(transport)?;
        check(Some(r.get_ref()))?;
        poll(timeout, "load", || async {
            let p = self
                .inner
                .clone()
                .get_loading_progress(GetLoadingProgressRequest {
                    collection_name: collection.into(),
                    ..Default::default()
                })
                .await
                .map_err(transport)?
                .into_inner();
            check(p.status.as_ref())?;
            Ok((p.progress >= 100).then_some(()))
        })
        .await
    }

    /// One search call: per query, its hits best first.
    pub async fn search(&self, call: &SearchCall<'_>) -> ClientResult<Vec<Hits>> {
        let group = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: call.vectors.iter().map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect(),
                ..Default::default()
            }],
        };
        let kv = |k: &str, v: String| KeyValuePair { key: k.into(), value: v };
        let nq = call.vectors.len();
        let r = self
            .inner
            .clone()
            .search(SearchRequest {
                collection_name: call.collection.into(),
                dsl: call.filter.into(),
                dsl_type: 1,
                search_input: Some(search_request::SearchInput::PlaceholderGroup(group.encode_to_vec())),
                search_params: vec![
                    kv("anns_field", call.field.into()),
                    kv("topk", call.topk.to_string()),
                    kv("metric_type", call.metric.into()),
                    kv("params", call.params.to_string()),
                    kv("round_decimal", "-1".into()),
                ],
                nq: nq as i64,
                consistency_level: call.consistency as i32,
                use_default_consistency: false,
                ..Default::default()
            })
            .await
            .map_err(transport)?
            .into_inner();
        check(r.status.as_ref())?;
        let data = r.results.ok_or_else(|| ClientError::Protocol("search answer without results".into()))?;
        let ids = long_ids(data.ids.as_ref());
        if ids.len() != data.scores.len() {
            return Err(ClientError::Protocol(format!("{} ids but {} scores", ids.len(), data.scores.len())));
        }
        // `topks` may be left out when every query found `top_k` hits.
        let topks: Vec<usize> = if data.topks.is_empty() {
            vec![data.top_k as usize; nq]
        } else {
            data.topks.iter().map(|&t| t as usize).collect()
        };
        if topks.len() != nq || topks.iter().sum::<usize>() != ids.len() {
            return Err(ClientError::Protocol(format!(
                "topks {topks:?} do not cover {} hits of {nq} queries",
                ids.len()
            )));
        }
        let mut out = Vec::with_capacity(nq);
        let mut at = 0;
        for t in topks {
            out.push(ids[at..at + t].iter().copied().zip(data.scores[at..at + t].iter().copied()).collect());
            at += t;
        }
        Ok(out)
    }

    /// A query by expression; returns the int64 column `output` (or the ids).
    pub async fn query(
        &self,
        collection: &str,
        expr: &str,
        output: &str,
        limit: Option<usize>,
        consistency: ConsistencyLevel,
        guarantee_ts: u64,
    ) -> ClientResult<Vec<i64>> {
        let mut params = vec![];
        if let Some(l) = limit {
            params.push(KeyValuePair { key: "limit".into(), value: l.to_string() });
        }
        let r = self
            .inner
            .clone()
            .query(QueryRequest {
                collection_name: collection.into(),
                expr: expr.into(),
                output_fields: vec![output.into()],
                query_params: params,
                consistency_level: consistency as i32,
                use_default_consistency: false,
                guarantee_timestamp: guarantee_ts,
                ..Default::default()
            })
            .await
            .map_err(transport)?
            .into_inner();
        check(r.status.as_ref())?;
        let column = r
            .fields_data
            .iter()
            .find(|f| f.field_name == output)
            .ok_or_else(|| ClientError::Protocol(format!("query answer without the {output} column")))?;
        match &column.field {
            Some(Field::Scalars(s)) => match &s.data {
                Some(Data::LongData(l)) => Ok(l.data.clone()),
                _ => Err(ClientError::Protocol(format!("{output} is not an int64 column"))),
            },
            _ => Err(ClientError::Protocol(format!("{output} is not a scalar column"))),
        }
    }

    /// `count(*)` of the rows matching `expr` ("" for all).
    pub async fn count(&self, collection: &str, expr: &str, consistency: ConsistencyLevel) -> ClientResult<i64> {
        let v = self.query(collection, expr, "count(*)", None, consistency, 0).await?;
        v.first().copied().ok_or_else(|| ClientError::Protocol("count(*) without a value".into()))
    }
}

fn long_ids(ids: Option<&IDs>) -> Vec<i64> {
    match ids.and_then(|i| i.id_field.as_ref()) {
        Some(IdField::IntId(l)) => l.data.clone(),
        _ => vec![],
    }
}

/// Calls `step` every 100 ms until it yields a value, fails, or `timeout` passes.
async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut step: F) -> ClientResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ClientResult<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = step().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(ClientError::Timeout(format!("{what} not done after {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Standard base64 with padding (for the `authorization` header).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(b"root:Milvus"), "cm9vdDpNaWx2dXM=");
    }

    #[test]
    fn statuses_become_coded_errors() {
        let ok = Status::default();
        assert!(check(Some(&ok)).is_ok());
        let legacy = Status { error_code: 4, reason: "no such collection".into(), ..Default::default() };
        assert_eq!(check(Some(&legacy)).unwrap_err().code_label(), "4");
        let modern = Status { code: 1100, error_code: 5, reason: "bad".into(), ..Default::default() };
        assert_eq!(check(Some(&modern)).unwrap_err().code_label(), "1100");
    }
}

//! One search is one trace across processes: a proxy process and a query-node process on
//! real NATS, etcd and S3 export their spans over OTLP/gRPC to a receiver run by this
//! test, and the query node's spans of the search hang under the proxy's `Search` span.
//!
//! Needs the servers of `scripts/deps.sh` (`FERROVEC_TEST_NATS_URL`,
//! `FERROVEC_TEST_ETCD_ENDPOINT`, `FERROVEC_TEST_S3_ENDPOINT`); skipped without them,
//! failing instead when `FERROVEC_REQUIRE_REAL_BACKENDS=1`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{connect, free_port, index_and_load, ok};
use fv_integration_tests::client::kv;
use fv_integration_tests::data;
use fv_proto::api::*;
use fv_proto::common::{ConsistencyLevel, PlaceholderGroup, PlaceholderType, PlaceholderValue};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

const NAME: &str = "traced";
const PROXY_SERVICE: &str = "ferrovec-rootcoord+datacoord+indexcoord+querycoord+datanode+indexnode+proxy";
const QUERYNODE_SERVICE: &str = "ferrovec-querynode";
/// pchannels, hence JetStream streams, of the test cluster.
const DML_CHANNELS: usize = 2;

/// One received span with the `service.name` of the process that sent it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

/// An OTLP/gRPC trace receiver that keeps every span.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = self.spans.lock().expect("lock");
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Got {
                        service: service.clone(),
                        name: s.name,
                        kind: s.kind,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent: s.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The real backends' addresses, or None (after a notice) to skip.
struct Backends {
    nats: String,
    etcd: String,
    s3: String,
}

fn backends() -> Option<Backends> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("FERROVEC_TEST_NATS_URL"), var("FERROVEC_TEST_ETCD_ENDPOINT"), var("FERROVEC_TEST_S3_ENDPOINT")) {
        (Some(nats), Some(etcd), Some(s3)) => Some(Backends { nats, etcd, s3 }),
        _ => {
            if std::env::var("FERROVEC_REQUIRE_REAL_BACKENDS").as_deref() == Ok("1") {
                panic!(
                    "FERROVEC_REQUIRE_REAL_BACKENDS=1 but FERROVEC_TEST_NATS_URL, FERROVEC_TEST_ETCD_ENDPOINT and \
                     FERROVEC_TEST_S3_ENDPOINT are not all set: `source scripts/deps.sh && start_nats && start_etcd \
                     && start_s3`"
                );
            }
            eprintln!("notice: NATS, etcd or S3 test servers not configured; skipping the cross-process trace test");
            None
        }
    }
}

/// Deletes the run's JetStream streams when dropped (after the servers, panics included):
/// streams of another cluster on the same server capture the same subjects (`fv.dml.*`;
/// the prefix names streams, not subjects), so a leftover would fail the next run. Speaks
/// the NATS text protocol directly: `PUB $JS.API.STREAM.DELETE.<name>`, then `PING` and
/// wait for `PONG`, so the deletes have been handed to the server before returning.
struct DropStreams {
    nats: String,
    names: Vec<String>,
}

impl Drop for DropStreams {
    fn drop(&mut self) {
        let addr = self.nats.trim_start_matches("nats://").split(',').next().unwrap_or_default().to_string();
        let Ok(mut s) = std::net::TcpStream::connect(&addr) else { return };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut cmds = String::from("CONNECT {\"verbose\":false}\r\n");
        for n in &self.names {
            cmds.push_str(&format!("PUB $JS.API.STREAM.DELETE.{n} 0\r\n\r\n"));
        }
        cmds.push_str("PING\r\n");
        if s.write_all(cmds.as_bytes()).is_err() {
            return;
        }
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains("PONG") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }
}

/// A child process stopped with SIGTERM (so it flushes its spans), then SIGKILL, when
/// dropped; only ever signals its own pid.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run<'a> {
    backends: &'a Backends,
    /// Unique per test run, so runs never share meta keys, streams or objects.
    tag: String,
    otlp: String,
}

impl Run<'_> {
    fn spawn(&self, roles: &str, dir: &Path, port: u16, http: u16) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_ferrovec-test-server"))
            .args(["run", roles, "--log-level", "warn"])
            .arg("--data-dir")
            .arg(dir)
            .args(["--port", &port.to_string(), "--http-port", &http.to_string()])
            .env("FERROVEC__PROXY__HOST", "127.0.0.1")
            .env("FERROVEC__HTTP__HOST", "127.0.0.1")
            .env("FERROVEC__BROKER__KIND", "nats")
            .env("FERROVEC__BROKER__NATS_URL", &self.backends.nats)
            .env("FERROVEC__BROKER__NATS_STREAM_PREFIX", format!("{}_", self.tag))
            .env("FERROVEC__META__KIND", "etcd")
            .env("FERROVEC__META__ETCD_ENDPOINTS", &self.backends.etcd)
            .env("FERROVEC__META__ROOT", format!("test-runs/{}", self.tag))
            .env("FERROVEC__META__SESSION_TTL_MS", "3000")
            .env("FERROVEC__STORAGE__KIND", "s3")
            .env("FERROVEC__STORAGE__ENDPOINT", &self.backends.s3)
            .env(
                "FERROVEC__STORAGE__BUCKET",
                std::env::var("FERROVEC_TEST_S3_BUCKET")
                    .ok()
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| "ferrovec-test".into()),
            )
            .env("FERROVEC__STORAGE__ROOT_PREFIX", format!("test-runs/{}", self.tag))
            .env("FERROVEC__ROOTCOORD__DML_CHANNELS", DML_CHANNELS.to_string())
            .env("FERROVEC__ROOTCOORD__TIME_TICK_INTERVAL_MS", "100")
            .env("FERROVEC__QUERYCOORD__CHECK_INTERVAL_MS", "200")
            .env("FERROVEC__TELEMETRY__OTLP_ENDPOINT", &self.otlp)
            // The SDK's batch delay (5 s by default) would only slow the test down.
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        Server { child }
    }
}

/// GET `path` on 127.0.0.1:`port` with a bare HTTP/1.1 request; returns the body.
fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Walks up from `from` through parents (across processes) and says whether `to` is
/// reached.
fn descends_from(spans: &[Got], from: &Got, to: &Got) -> bool {
    let by_id: HashMap<&[u8], &Got> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let mut cur = from;
    for _ in 0..64 {
        if cur.span_id == to.span_id {
            return true;
        }
        match by_id.get(cur.parent.as_slice()) {
            Some(p) => cur = p,
            None => return false,
        }
    }
    false
}

#[test]
fn one_search_is_one_trace_across_proxy_and_query_node() {
    let Some(backends) = backends() else { return };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    let tag = format!("trace{}x{nanos}", std::process::id());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        // The receiver, on a port of its own.
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let otlp = format!("http://{}", listener.local_addr().expect("addr"));
        let svc = TraceServiceServer::new(receiver.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .expect("the OTLP receiver runs");
        });

        // Declared before the servers, so dropped after them.
        let _streams = DropStreams {
            nats: backends.nats.clone(),
            names: (0..DML_CHANNELS).map(|i| format!("{tag}_FV_DML_{i}")).collect(),
        };
        let run = Run { backends: &backends, tag, otlp };
        let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let (port, http_a, http_b) = (free_port(), free_port(), free_port());
        let _coords =
            run.spawn("rootcoord,datacoord,indexcoord,querycoord,datanode,indexnode,proxy", dir_a.path(), port, http_a);
        let _querynode = run.spawn("querynode", dir_b.path(), free_port(), http_b);
        let mut c = connect(port, Duration::from_secs(120)).await;

        let st = c
            .create_collection(CreateCollectionRequest {
                collection_name: NAME.into(),
                schema: data::schema(NAME).encode_to_vec(),
                shards_num: 1,
                ..Default::default()
            })
            .await
            .expect("rpc")
            .into_inner();
        assert!(ok(Some(&st)), "create: {st:?}");
        let rows = data::rows(7, 0..200);
        let r = c
            .insert(InsertRequest {
                collection_name: NAME.into(),
                fields_data: data::columns(&rows),
                num_rows: rows.len() as u32,
                ..Default::default()
            })
            .await
            .expect("rpc")
            .into_inner();
        assert!(ok(r.status.as_ref()), "insert: {:?}", r.status);
        index_and_load(&mut c, NAME, "vec").await;

        let group = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vec![rows[3].vec.iter().flat_map(|x| x.to_le_bytes()).collect()],
                ..Default::default()
            }],
        };
        let r = c
            .search(SearchRequest {
                collection_name: NAME.into(),
                dsl_type: 1,
                search_input: Some(search_request::SearchInput::PlaceholderGroup(group.encode_to_vec())),
                search_params: vec![kv("topk", 5), kv("metric_type", "L2"), kv("params", "{}")],
                nq: 1,
                consistency_level: ConsistencyLevel::Strong as i32,
                ..Default::default()
            })
            .await
            .expect("rpc")
            .into_inner();
        assert!(ok(r.status.as_ref()), "search: {:?}", r.status);
        let hits = data::ids_of(&r.results.as_ref().expect("results").ids);
        assert_eq!(hits.first(), Some(&3), "the query vector's own row comes first: {hits:?}");

        // The proxy process counted the search (and the rows) in its metrics.
        let metrics = tokio::task::spawn_blocking(move || http_get(http_a, "/metrics")).await.expect("scrape");
        assert!(
            metrics.lines().any(|l| l.starts_with("ferrovec_grpc_requests_total{method=\"Search\",code=\"OK\"} 1")),
            "{metrics}"
        );
        assert!(metrics.lines().any(|l| l == "ferrovec_proxy_inserted_rows_total 200"), "{metrics}");

        // Wait (bounded) for the search's spans from both processes: the proxy's Search
        // span, and the query node's span of the call the proxy made to it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (spans, search, entry) = loop {
            let spans = receiver.spans.lock().expect("lock").clone();
            let search = spans.iter().find(|s| s.service == PROXY_SERVICE && s.name == "Search").cloned();
            let entry = search.as_ref().and_then(|root| {
                spans
                    .iter()
                    .find(|s| {
                        s.service == QUERYNODE_SERVICE
                            && s.name == "querynode.Search"
                            && s.trace_id == root.trace_id
                            && spans.iter().any(|p| p.span_id == s.parent && p.service == PROXY_SERVICE)
                    })
                    .cloned()
            });
            if let (Some(search), Some(entry)) = (search, entry) {
                break (spans, search, entry);
            }
            assert!(
                Instant::now() < deadline,
                "no Search span from {PROXY_SERVICE} with a querynode.Search span of the same trace from \
                 {QUERYNODE_SERVICE} under it; received: {:?}",
                spans.iter().map(|s| (&s.service, &s.name, hex(&s.trace_id))).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(search.kind, SpanKind::Server as i32, "{search:?}");
        assert!(search.parent.is_empty(), "without a traceparent from the client the proxy starts the trace");
        assert_eq!(entry.kind, SpanKind::Server as i32, "{entry:?}");
        assert_eq!(hex(&entry.trace_id), hex(&search.trace_id));
        // Its parent is the proxy's client span of the call, itself under Search.
        let parent = spans.iter().find(|s| s.span_id == entry.parent).expect("the parent span was received");
        assert_eq!(parent.kind, SpanKind::Client as i32, "{parent:?}");
        assert_eq!(parent.name, "querynode.Search", "{parent:?}");
        assert!(descends_from(&spans, &entry, &search), "the query node's span does not lead up to Search: {entry:?}");
        // Every query-node span of this trace (the delegator's calls to workers included)
        // leads up to the proxy's Search span: nothing of the search starts a trace apart.
        let node_spans: Vec<&Got> =
            spans.iter().filter(|s| s.service == QUERYNODE_SERVICE && s.trace_id == search.trace_id).collect();
        assert!(!node_spans.is_empty());
        eprintln!("trace {}: {} spans from {QUERYNODE_SERVICE}", hex(&search.trace_id), node_spans.len());
        for s in node_spans {
            assert!(descends_from(&spans, s, &search), "{s:?} is cut off from the proxy's Search span");
        }
    });
}

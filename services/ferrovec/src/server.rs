//! Network servers: the Milvus gRPC API and the HTTP health and metrics endpoint.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use fv_common::{FvError, FvResult};
use fv_proto::api::milvus_service_server::MilvusServiceServer;
use fv_proxy::service::MilvusApi;
use fv_runtime::metrics::metrics;
use fv_runtime::{Shutdown, telemetry};
use tokio::net::TcpListener;
use tonic::codegen::http;
use tracing::Instrument;

async fn bind(host: &str, port: u16, what: &str) -> FvResult<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| FvError::unavailable(format!("cannot listen for {what} on {host}:{port}: {e}")))
}

/// Serves the Milvus API on `host:port`; returns the bound address.
pub async fn serve_grpc(
    api: MilvusApi,
    host: &str,
    port: u16,
    max_message: usize,
    shutdown: Shutdown,
) -> FvResult<SocketAddr> {
    let listener = bind(host, port, "the Milvus API").await?;
    let addr = listener.local_addr().map_err(|e| FvError::internal(format!("bound socket has no address: {e}")))?;
    let svc =
        MilvusServiceServer::new(api).max_decoding_message_size(max_message).max_encoding_message_size(usize::MAX);
    tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .layer(ObserveLayer)
            .add_service(svc)
            // Without TCP_NODELAY a response spanning several segments waits for the
            // client's delayed ACK (~40 ms per call on Linux).
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async move { shutdown.wait().await },
            )
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "Milvus API server stopped");
        }
    });
    tracing::info!(%addr, "Milvus API listening");
    Ok(addr)
}

/// The Milvus API method of a gRPC path: `/milvus.proto.milvus.MilvusService/Search` is
/// `Search`.
fn grpc_method(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, m)| m)
}

/// Name of a gRPC status code as Prometheus labels show it (`OK`, `InvalidArgument`).
fn grpc_code_name(code: &str) -> String {
    match code.parse::<i32>() {
        // Spelled as gRPC itself does; the other names are tonic's.
        Ok(0) => "OK".to_string(),
        Ok(n) => format!("{:?}", tonic::Code::from(n)),
        Err(_) => "Unknown".to_string(),
    }
}

/// Wraps every Milvus API request in a span named after its method, parented to the
/// caller's trace when its metadata carries a `traceparent`, and counts it in the
/// process' metrics. A tower layer around the generated service, so the service's code
/// needs no changes for it.
#[derive(Clone, Copy)]
struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observed<S>;
    fn layer(&self, inner: S) -> Observed<S> {
        Observed { inner }
    }
}

#[derive(Clone)]
struct Observed<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Observed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = grpc_method(req.uri().path()).to_string();
        let exporting = telemetry::exporting();
        let span = if exporting {
            tracing::info_span!("grpc", otel.name = %method, otel.kind = "server", rpc.system = "grpc", rpc.method = %method)
        } else {
            tracing::info_span!("grpc", method = %method)
        };
        if exporting {
            let headers: Vec<(String, String)> = telemetry::trace_header_names()
                .iter()
                .filter_map(|name| {
                    let value = req.headers().get(*name)?.to_str().ok()?;
                    Some((name.to_string(), value.to_string()))
                })
                .collect();
            telemetry::set_remote_parent(&span, &headers);
        }
        let started = Instant::now();
        let fut = {
            // Entered while the service builds its future, so anything it does eagerly
            // is inside the request's span as well.
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(
            async move {
                let r = fut.await;
                // tonic sends a failed call's status in the response headers
                // (trailers-only); a successful unary call's OK comes later in trailers.
                let code = match &r {
                    Ok(resp) => resp
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .map_or_else(|| "OK".to_string(), grpc_code_name),
                    Err(_) => "Unknown".to_string(),
                };
                metrics().grpc_done(&method, &code, started.elapsed());
                r
            }
            .instrument(span),
        )
    }
}

/// Serves `GET /healthz` (200 "OK" once `ready`, 503 before) and `GET /metrics`
/// (Prometheus, OpenMetrics text) on `host:port`.
pub async fn serve_http(host: &str, port: u16, ready: Arc<AtomicBool>, shutdown: Shutdown) -> FvResult<SocketAddr> {
    use axum::http::StatusCode;
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;
    let listener = bind(host, port, "health checks").await?;
    let addr = listener.local_addr().map_err(|e| FvError::internal(format!("bound socket has no address: {e}")))?;
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Acquire) {
                        (StatusCode::OK, "OK")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                match fv_runtime::metrics::render() {
                    Ok(text) => (StatusCode::OK, [(CONTENT_TYPE, fv_runtime::metrics::CONTENT_TYPE)], text),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                        format!("cannot encode the metrics: {e}"),
                    ),
                }
            }),
        );
    tokio::spawn(async move {
        let r = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await;
        if let Err(e) = r {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    tracing::info!(%addr, "health endpoint listening");
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use fv_config::Config;
    use fv_proto::api::ShowCollectionsRequest;
    use fv_proto::api::milvus_service_client::MilvusServiceClient;

    use super::*;
    use crate::Standalone;

    /// GET `path` with a bare HTTP/1.1 request; the status line and the body.
    async fn get(addr: SocketAddr, path: &str) -> (String, String) {
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect to the HTTP endpoint");
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("send");
            let mut text = String::new();
            s.read_to_string(&mut text).expect("read");
            let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
            (head.lines().next().unwrap_or_default().to_string(), body.to_string())
        })
        .await
        .expect("the request task")
    }

    fn sample(text: &str, prefix: &str) -> f64 {
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
    }

    #[test]
    fn method_names_of_grpc_paths() {
        assert_eq!(grpc_method("/milvus.proto.milvus.MilvusService/Search"), "Search");
        assert_eq!(grpc_method("Search"), "Search");
        assert_eq!(grpc_code_name("0"), "OK");
        assert_eq!(grpc_code_name("3"), "InvalidArgument");
        assert_eq!(grpc_code_name("x"), "Unknown");
    }

    /// A Milvus API call through the real servers moves its counter on `/metrics`, and
    /// `/healthz` answers once the roles run.
    #[test]
    fn metrics_count_api_requests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
        config.proxy.host = "127.0.0.1".into();
        config.proxy.port = 0;
        config.http.host = "127.0.0.1".into();
        config.http.port = 0;
        config.rootcoord.dml_channels = 2;
        let system = actix_rt::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
        });
        system.block_on(async move {
            let running =
                Standalone::start_roles(config, &crate::roles::START_ORDER, true).await.expect("standalone starts");
            let http = running.http_addr.expect("the HTTP endpoint runs");
            let grpc = running.grpc_addr.expect("the Milvus API runs");
            let (status, body) = get(http, "/healthz").await;
            assert!(status.contains(" 200 "), "{status}");
            assert_eq!(body, "OK");

            let line = "ferrovec_grpc_requests_total{method=\"ShowCollections\",code=\"OK\"}";
            let (status, before) = get(http, "/metrics").await;
            assert!(status.contains(" 200 "), "{status}");
            let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect to the Milvus API");
            let mut client = MilvusServiceClient::new(channel);
            for _ in 0..2 {
                let r = client.show_collections(ShowCollectionsRequest::default()).await.expect("rpc").into_inner();
                assert_eq!(r.status.expect("status").code, 0);
            }
            let (_, after) = get(http, "/metrics").await;
            assert_eq!(sample(&after, line), sample(&before, line) + 2.0, "{after}");
            let count = "ferrovec_grpc_request_duration_seconds_count{method=\"ShowCollections\"}";
            assert!(sample(&after, count) >= 2.0, "{after}");
            // The roles' own requests to each other are counted too (time ticks, at least).
            assert!(after.contains("ferrovec_rpc_requests_total{role=\"rootcoord\""), "{after}");
            running.stop().await;
        });
    }
}

//! Network servers: the Milvus gRPC API and the HTTP health endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fv_common::{FvError, FvResult};
use fv_proto::api::milvus_service_server::MilvusServiceServer;
use fv_proxy::service::MilvusApi;
use fv_runtime::Shutdown;
use tokio::net::TcpListener;

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

/// Serves `GET /healthz` (200 "OK" once `ready`, 503 before) on `host:port`.
pub async fn serve_http(host: &str, port: u16, ready: Arc<AtomicBool>, shutdown: Shutdown) -> FvResult<SocketAddr> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = bind(host, port, "health checks").await?;
    let addr = listener.local_addr().map_err(|e| FvError::internal(format!("bound socket has no address: {e}")))?;
    let app = axum::Router::new().route(
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

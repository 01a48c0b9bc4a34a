//! Typed request/reply between roles over the log broker.
//!
//! A request type implements [`Rpc`]: the role that serves it, its method name and its
//! prost request/response types. Responses carry a Milvus `Status` (as every Milvus
//! response does); [`RpcClient::call`] turns a non-success status into an [`FvError`],
//! and a handler's `Err` becomes the response's status. Transport failures (nobody
//! serving, timeout) become retriable `FvError`s.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use fv_common::{Code, FvError, FvResult, NodeId};
use fv_logbroker::{BrokerError, LogBrokerRef};
use fv_proto::common::Status;
use prost::Message;
use tracing::Instrument;

use crate::metrics::metrics;
use crate::shutdown::Shutdown;
use crate::telemetry;

/// The roles of a Ferrovec deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    RootCoord,
    DataCoord,
    IndexCoord,
    QueryCoord,
    Proxy,
    DataNode,
    QueryNode,
    IndexNode,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::RootCoord,
        Role::DataCoord,
        Role::IndexCoord,
        Role::QueryCoord,
        Role::DataNode,
        Role::QueryNode,
        Role::IndexNode,
        Role::Proxy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::RootCoord => "rootcoord",
            Role::DataCoord => "datacoord",
            Role::IndexCoord => "indexcoord",
            Role::QueryCoord => "querycoord",
            Role::Proxy => "proxy",
            Role::DataNode => "datanode",
            Role::QueryNode => "querynode",
            Role::IndexNode => "indexnode",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    pub fn is_coordinator(self) -> bool {
        matches!(self, Role::RootCoord | Role::DataCoord | Role::IndexCoord | Role::QueryCoord)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A response message with a Milvus status field.
pub trait HasStatus: Message + Default {
    fn status(&self) -> Option<&Status>;
    fn set_status(&mut self, status: Status);
}

/// One request a role serves.
pub trait Rpc: Send + Sync + 'static {
    const ROLE: Role;
    const METHOD: &'static str;
    type Req: Message + Default + Send + 'static;
    type Resp: HasStatus + Send + 'static;
}

/// Whom a request goes to: the (single active) coordinator of the role, or one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Coord,
    Node(NodeId),
}

/// Bound of a metadata read from a coordinator made by a role's background loop.
/// Coordinators answer those in milliseconds; a request caught by a coordinator that is
/// killed gets no answer at all, and waiting a long RPC timeout for it would stall the
/// caller (often an actor, with its queue behind it) long after a restarted coordinator
/// serves again. The loop's next round reaches the successor.
pub const COORD_CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn subject<R: Rpc>(target: Target) -> String {
    match target {
        Target::Coord => format!("fv.rpc.{}.{}", R::ROLE.name(), R::METHOD),
        Target::Node(id) => format!("fv.rpc.{}.{id}.{}", R::ROLE.name(), R::METHOD),
    }
}

fn transport_error(role: Role, method: &str, e: BrokerError) -> FvError {
    match e {
        BrokerError::NoResponders { .. } => {
            FvError::new(Code::ServiceUnavailable, format!("service unavailable: no {role} serves {method}"))
                .retriable(true)
        }
        BrokerError::Timeout { timeout_ms, .. } => {
            FvError::new(Code::Timeout, format!("{role}.{method} did not answer within {timeout_ms} ms"))
                .retriable(true)
        }
        other => FvError::new(Code::ServiceUnavailable, format!("calling {role}.{method}: {other}"))
            .retriable(other.is_retriable()),
    }
}

/// Sends typed requests.
#[derive(Clone)]
pub struct RpcClient {
    broker: LogBrokerRef,
    timeout: Duration,
}

impl RpcClient {
    pub fn new(broker: LogBrokerRef, timeout: Duration) -> RpcClient {
        RpcClient { broker, timeout }
    }

    pub fn broker(&self) -> &LogBrokerRef {
        &self.broker
    }

    /// Calls and checks the response status.
    pub async fn call<R: Rpc>(&self, target: Target, req: &R::Req) -> FvResult<R::Resp> {
        self.call_with_timeout::<R>(target, req, self.timeout).await
    }

    pub async fn call_with_timeout<R: Rpc>(
        &self,
        target: Target,
        req: &R::Req,
        timeout: Duration,
    ) -> FvResult<R::Resp> {
        let resp = self.call_unchecked::<R>(target, req, timeout).await?;
        match resp.status().and_then(FvError::from_status) {
            Some(e) => Err(e),
            None => Ok(resp),
        }
    }

    /// Calls without interpreting the response status.
    pub async fn call_unchecked<R: Rpc>(&self, target: Target, req: &R::Req, timeout: Duration) -> FvResult<R::Resp> {
        let subject = subject::<R>(target);
        let payload = Bytes::from(req.encode_to_vec());
        // A client span only inside an exported trace: it is what the server's span hangs
        // under, and shows the time spent in the broker. Elsewhere (no export, or a
        // background loop's call) it would be overhead, or a trace of its own per call.
        let span = if telemetry::in_trace() {
            tracing::info_span!(
                "rpc.call",
                otel.name = %format_args!("{}.{}", R::ROLE.name(), R::METHOD),
                otel.kind = "client",
                subject = %subject,
            )
        } else {
            tracing::Span::none()
        };
        async move {
            let mut headers = Vec::new();
            telemetry::inject(&mut headers);
            let reply = self
                .broker
                .request(&subject, payload, headers, timeout)
                .await
                .map_err(|e| transport_error(R::ROLE, R::METHOD, e))?;
            R::Resp::decode(reply)
                .map_err(|e| FvError::internal(format!("undecodable reply from {}.{}: {e}", R::ROLE, R::METHOD)))
        }
        .instrument(span)
        .await
    }

    /// Calls, retrying retriable failures (e.g. the role is still starting) until
    /// `deadline` has passed.
    pub async fn call_retry<R: Rpc>(&self, target: Target, req: &R::Req, deadline: Duration) -> FvResult<R::Resp> {
        crate::retry::retry_until(R::METHOD, deadline, || self.call::<R>(target, req)).await
    }

    /// [`RpcClient::call_retry`] with each attempt bounded by `attempt`, for quick calls
    /// (timestamp and id allocation, segment assignment): a request caught by a
    /// coordinator that dies (kill -9) gets no answer, and waiting the full RPC timeout
    /// for it would hold back everything queued behind it, time-tick confirmations
    /// included, long after a restarted coordinator is serving again.
    pub async fn call_retry_each<R: Rpc>(
        &self,
        target: Target,
        req: &R::Req,
        deadline: Duration,
        attempt: Duration,
    ) -> FvResult<R::Resp> {
        let attempt = attempt.min(self.timeout);
        crate::retry::retry_until(R::METHOD, deadline, || self.call_with_timeout::<R>(target, req, attempt)).await
    }
}

/// Serves typed requests; each request runs in its own task.
#[derive(Clone)]
pub struct RpcServer {
    broker: LogBrokerRef,
    shutdown: Shutdown,
}

impl RpcServer {
    pub fn new(broker: LogBrokerRef, shutdown: Shutdown) -> RpcServer {
        RpcServer { broker, shutdown }
    }

    /// Starts serving `R` for `target`; stops when the shutdown signal fires.
    pub async fn serve<R, F, Fut>(&self, target: Target, handler: F) -> FvResult<()>
    where
        R: Rpc,
        F: Fn(R::Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = FvResult<R::Resp>> + Send + 'static,
    {
        let subject = subject::<R>(target);
        let mut stream = self
            .broker
            .serve(&subject, Some(R::ROLE.name()))
            .await
            .map_err(|e| FvError::unavailable(format!("cannot serve {subject}: {e}")))?;
        let handler = Arc::new(handler);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let req = tokio::select! {
                    _ = shutdown.wait() => break,
                    r = stream.next() => match r { Some(r) => r, None => break },
                };
                let handler = handler.clone();
                let span = if !telemetry::exporting() {
                    tracing::info_span!("rpc", role = R::ROLE.name(), method = R::METHOD)
                } else if !telemetry::has_trace_context(&req.headers) {
                    tracing::info_span!(target: telemetry::UNTRACED, "rpc", role = R::ROLE.name(), method = R::METHOD)
                } else {
                    let span = tracing::info_span!(
                        "rpc",
                        otel.name = %format_args!("{}.{}", R::ROLE.name(), R::METHOD),
                        otel.kind = "server",
                        role = R::ROLE.name(),
                        method = R::METHOD,
                    );
                    // The caller's span (from the request headers) becomes this one's
                    // parent, so a search is one trace across the proxy and query nodes.
                    telemetry::set_remote_parent(&span, &req.headers);
                    span
                };
                tokio::spawn(
                    async move {
                        let started = Instant::now();
                        let resp = match R::Req::decode(req.payload.clone()) {
                            Ok(msg) => match handler(msg).await {
                                Ok(r) => r,
                                Err(e) => {
                                    tracing::debug!(error = %e, "request failed");
                                    let mut r = R::Resp::default();
                                    r.set_status(e.to_status());
                                    r
                                }
                            },
                            Err(e) => {
                                let mut r = R::Resp::default();
                                r.set_status(
                                    FvError::invalid_parameter(format!("undecodable {} request: {e}", R::METHOD))
                                        .to_status(),
                                );
                                r
                            }
                        };
                        let ok = resp.status().and_then(FvError::from_status).is_none();
                        metrics().rpc_done(R::ROLE.name(), R::METHOD, ok, started.elapsed());
                        if let Err(e) = req.respond(Bytes::from(resp.encode_to_vec()), Vec::new()).await {
                            tracing::debug!(error = %e, "reply not delivered");
                        }
                    }
                    .instrument(span),
                );
            }
        });
        Ok(())
    }
}

//! Typed request/reply between roles over the log broker.
//!
//! The services, their methods and messages are declared in `proto/internal/*.proto`;
//! fv-proto's build script generates the glue (see [`fv_proto::rpc`]): a marker type per
//! method implementing [`Rpc`], a handler trait and its [`Route`]s, and a typed client.
//! This module is the transport under that glue. [`RpcClient`] implements
//! [`Transport`]: `rpc.datanode(id).flush_segments(&req)` is a [`Call`] that can be
//! given a timeout or a retry deadline before it is awaited; a non-success status in
//! the response becomes an [`FvError`]. [`RpcServer::serve`] answers a service's routes
//! on their subjects; a handler's `Err` becomes the response's status. Transport
//! failures (nobody serving, timeout) become retriable `FvError`s.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use fv_common::{Code, FvError, FvResult};
use fv_logbroker::{BrokerError, LogBrokerRef};
pub use fv_proto::rpc::{Clients, HasStatus, Role, Route, Rpc, Target, Transport};
use prost::Message;
use tracing::Instrument;

use crate::metrics::metrics;
use crate::shutdown::Shutdown;
use crate::telemetry;

/// Bound of a metadata read from a coordinator made by a role's background loop.
/// Coordinators answer those in milliseconds; a request caught by a coordinator that is
/// killed gets no answer at all, and waiting a long RPC timeout for it would stall the
/// caller (often an actor, with its queue behind it) long after a restarted coordinator
/// serves again. The loop's next round reaches the successor.
pub const COORD_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The subject `R` is served on for `target`.
pub fn subject<R: Rpc>(target: Target) -> String {
    route_subject(R::ROLE, R::METHOD, target)
}

fn route_subject(role: Role, method: &str, target: Target) -> String {
    match target {
        Target::Coord => format!("fv.rpc.{}.{method}", role.name()),
        Target::Node(id) => format!("fv.rpc.{}.{id}.{method}", role.name()),
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

/// Sends typed requests; the generated clients reach every service through it
/// ([`Clients`]: `rpc.rootcoord().alloc_id(&req)`, `rpc.querynode(id).search(&req)`).
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

    /// One attempt: send, wait at most `timeout` for the reply, decode it; the status is
    /// checked unless `checked` is false.
    async fn attempt<R: Rpc>(
        &self,
        target: Target,
        req: &R::Req,
        timeout: Duration,
        checked: bool,
    ) -> FvResult<R::Resp> {
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
        let resp = async move {
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
        .await?;
        match resp.status().and_then(FvError::from_status) {
            Some(e) if checked => Err(e),
            _ => Ok(resp),
        }
    }
}

impl Transport for RpcClient {
    type Call<'a, R: Rpc> = Call<'a, R>;

    fn call<'a, R: Rpc>(&'a self, target: Target, req: &'a R::Req) -> Call<'a, R> {
        Call { client: self, target, req, timeout: self.timeout, retry_for: None, checked: true }
    }
}

/// One request, configured before it is awaited: by default a single attempt bounded
/// by the client's timeout, whose non-success status becomes an error.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<'a, R: Rpc> {
    client: &'a RpcClient,
    target: Target,
    req: &'a R::Req,
    timeout: Duration,
    retry_for: Option<Duration>,
    checked: bool,
}

impl<R: Rpc> Call<'_, R> {
    /// Bounds each attempt by `timeout` instead of the client's default.
    ///
    /// Quick calls (timestamp and id allocation, segment assignment) want short attempts
    /// with [`Call::retry`]: a request caught by a coordinator that dies (kill -9) gets no
    /// answer, and waiting the full RPC timeout for it would hold back everything queued
    /// behind it, time-tick confirmations included, long after a restarted coordinator
    /// is serving again.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries retriable failures (e.g. the role is still starting, or restarting) until
    /// `deadline` has passed since the first attempt.
    pub fn retry(mut self, deadline: Duration) -> Self {
        self.retry_for = Some(deadline);
        self
    }

    /// Returns the response whatever its status says (transport failures still fail).
    pub fn unchecked(mut self) -> Self {
        self.checked = false;
        self
    }
}

impl<'a, R: Rpc> IntoFuture for Call<'a, R> {
    type Output = FvResult<R::Resp>;
    type IntoFuture = Pin<Box<dyn Future<Output = FvResult<R::Resp>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Call { client, target, req, timeout, retry_for, checked } = self;
            match retry_for {
                None => client.attempt::<R>(target, req, timeout, checked).await,
                Some(deadline) => {
                    crate::retry::retry_until(R::METHOD, deadline, || {
                        client.attempt::<R>(target, req, timeout, checked)
                    })
                    .await
                }
            }
        })
    }
}

/// Serves the routes of bus services; each request runs in its own task.
#[derive(Clone)]
pub struct RpcServer {
    broker: LogBrokerRef,
    shutdown: Shutdown,
}

impl RpcServer {
    pub fn new(broker: LogBrokerRef, shutdown: Shutdown) -> RpcServer {
        RpcServer { broker, shutdown }
    }

    /// Starts serving every route (a service's `*_routes(handler)`) for `target`; they
    /// stop when the shutdown signal fires.
    pub async fn serve(&self, target: Target, routes: Vec<Route>) -> FvResult<()> {
        for route in routes {
            self.serve_route(target, route).await?;
        }
        Ok(())
    }

    async fn serve_route(&self, target: Target, route: Route) -> FvResult<()> {
        let (role, method) = (route.role, route.method);
        let subject = route_subject(role, method, target);
        let mut stream = self
            .broker
            .serve(&subject, Some(role.name()))
            .await
            .map_err(|e| FvError::unavailable(format!("cannot serve {subject}: {e}")))?;
        let route = std::sync::Arc::new(route);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let req = tokio::select! {
                    _ = shutdown.wait() => break,
                    r = stream.next() => match r { Some(r) => r, None => break },
                };
                let route = route.clone();
                let span = if !telemetry::exporting() {
                    tracing::info_span!("rpc", role = role.name(), method)
                } else if !telemetry::has_trace_context(&req.headers) {
                    tracing::info_span!(target: telemetry::UNTRACED, "rpc", role = role.name(), method)
                } else {
                    let span = tracing::info_span!(
                        "rpc",
                        otel.name = %format_args!("{}.{}", role.name(), method),
                        otel.kind = "server",
                        role = role.name(),
                        method,
                    );
                    // The caller's span (from the request headers) becomes this one's
                    // parent, so a search is one trace across the proxy and query nodes.
                    telemetry::set_remote_parent(&span, &req.headers);
                    span
                };
                tokio::spawn(
                    async move {
                        let started = Instant::now();
                        let (payload, ok) = match route.call(req.payload.clone()).await {
                            Ok(reply) => {
                                if let Some(status) = &reply.error {
                                    tracing::debug!(error = %status.reason, code = status.code, "request failed");
                                }
                                let ok = reply.error.as_ref().and_then(FvError::from_status).is_none();
                                (reply.payload, ok)
                            }
                            Err(e) => {
                                let status = FvError::invalid_parameter(format!("undecodable {method} request: {e}"))
                                    .to_status();
                                (route.error_reply(status), false)
                            }
                        };
                        metrics().rpc_done(role.name(), method, ok, started.elapsed());
                        if let Err(e) = req.respond(payload, Vec::new()).await {
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

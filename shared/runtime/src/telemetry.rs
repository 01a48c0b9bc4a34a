//! Logging and trace export.
//!
//! Logs are structured `tracing` output, text or JSON. With `telemetry.otlp_endpoint`
//! set, a second layer turns Ferrovec's spans into OpenTelemetry spans and a batch
//! exporter sends them over OTLP/gRPC from its own thread, so request paths never wait on
//! the collector. Without an endpoint that layer is not installed at all, and the helpers
//! below that carry trace context between processes ([`inject`], [`set_remote_parent`])
//! return at once.
//!
//! Trace context crosses processes as a W3C `traceparent` (plus `tracestate`) header: in
//! the log broker's request headers (NATS message headers in a cluster), in the headers of
//! DML records, and in gRPC metadata on the Milvus API.

use std::sync::atomic::{AtomicBool, Ordering};

use fv_config::{LogConfig, TelemetryConfig};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// True once an exporting subscriber is installed; checked before any propagation work
/// so that a process without an endpoint pays one atomic load per call.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Names of the W3C trace-context headers, the only ones the propagator reads.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Target of spans that are logged but never exported: requests between roles that
/// arrive without a trace context (time ticks, session and id traffic of background
/// loops). Exported, each would be a trace of its own, several per second per process,
/// burying the traces of client requests.
pub const UNTRACED: &str = "ferrovec_untraced";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("a global tracing subscriber is already installed; trace export to {endpoint} cannot be added")]
    AlreadyInstalled { endpoint: String },
}

/// Who this process is, as trace backends show it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `service.name`: `ferrovec-standalone`, `ferrovec-proxy`, `ferrovec-querynode`, ...
    pub service_name: String,
    /// `service.instance.id`: tells apart processes of the same service.
    pub instance_id: String,
}

/// Keeps the exporter alive; [`TelemetryGuard::shutdown`] flushes the spans still queued.
#[must_use = "dropping the guard without shutdown loses the spans still queued"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports what is queued and stops the exporter. The flush blocks on the exporter
    /// thread, so it runs on a blocking thread rather than stalling a runtime worker
    /// (which may be the one driving the gRPC connection the flush needs).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        EXPORTING.store(false, Ordering::Release);
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("ferrovec: flushing spans at exit failed: {e}"),
            Err(e) => eprintln!("ferrovec: the span flush task failed: {e}"),
        }
    }
}

/// Installs the global subscriber. `log.level` is a filter directive ("info",
/// "fv_querynode=debug,info"); RUST_LOG overrides it when set. With an OTLP endpoint,
/// spans are exported too (this must then run inside a tokio runtime, which the gRPC
/// channel of the exporter lives on). A second call installs nothing (tests rely on that)
/// and reports an error only if it was asked to export.
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig, who: &Identity) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let json = log.format == "json";
    if telemetry.otlp_endpoint.is_empty() {
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
        let _ = if json { builder.json().try_init() } else { builder.try_init() };
        return Ok(TelemetryGuard { provider: None });
    }
    let endpoint = telemetry.otlp_endpoint.clone();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| TelemetryError::Exporter { endpoint: endpoint.clone(), reason: e.to_string() })?;
    let resource = Resource::builder()
        .with_service_name(who.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.instance.id", who.instance_id.clone()))
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    // Parent-based: a request arriving with a sampled traceparent is recorded whatever
    // this process' ratio, so one trace is never cut in half between processes.
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(telemetry.sampling_ratio)));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("ferrovec");
    // The log filter decides what is printed; what is exported is decided apart, so that
    // `log.level = "warn"` does not silence traces: Ferrovec's own spans and events at
    // info and above (dependencies' spans would mostly be connection-level noise).
    let ours = filter_fn(|meta| {
        *meta.level() <= LevelFilter::INFO && {
            let t = meta.target();
            (t.starts_with("fv_") || t.starts_with("ferrovec")) && t != UNTRACED
        }
    });
    let otel = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(ours);
    let fmt = if json {
        tracing_subscriber::fmt::layer().with_target(true).json().with_filter(filter).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_target(true).with_filter(filter).boxed()
    };
    if tracing_subscriber::registry().with(fmt).with(otel).try_init().is_err() {
        let _ = provider.shutdown();
        return Err(TelemetryError::AlreadyInstalled { endpoint });
    }
    EXPORTING.store(true, Ordering::Release);
    tracing::info!(%endpoint, service = %who.service_name, "exporting traces over OTLP");
    Ok(TelemetryGuard { provider: Some(provider) })
}

/// For tests: logs at `warn` unless RUST_LOG says otherwise, captured by the test harness.
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Whether spans are exported by this process.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Acquire)
}

struct PairsInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for PairsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_string(), value));
    }
}

struct PairsExtractor<'a>(&'a [(String, String)]);

impl Extractor for PairsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Whether the current span belongs to an exported trace (so that work started from it,
/// e.g. a call to another role, should be traced too).
pub fn in_trace() -> bool {
    exporting() && tracing::Span::current().context().span().span_context().is_valid()
}

/// Whether `headers` carry a trace context.
pub fn has_trace_context(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, _)| TRACE_HEADERS.iter().any(|t| k.eq_ignore_ascii_case(t)))
}

/// Adds the current span's trace context to `headers` (nothing when not exporting, or
/// when the current span is not sampled-in and valid).
pub fn inject(headers: &mut Vec<(String, String)>) {
    if !exporting() {
        return;
    }
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    TraceContextPropagator::new().inject_context(&cx, &mut PairsInjector(headers));
}

/// The current span's trace context as headers, for a message built elsewhere (e.g. on an
/// actor, where the caller's span is no longer current).
pub fn current_headers() -> Vec<(String, String)> {
    let mut h = Vec::new();
    inject(&mut h);
    h
}

/// Makes the trace context found in `headers` (if any) the parent of `span`, which must
/// not have been entered yet. Other headers are ignored.
pub fn set_remote_parent(span: &tracing::Span, headers: &[(String, String)]) {
    if !exporting() || !has_trace_context(headers) {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&PairsExtractor(headers));
    if cx.span().span_context().is_valid() {
        // Fails only when the span is disabled or already started, and then it simply
        // stays a root: a trace split in two is better than a failed request.
        let _ = span.set_parent(cx);
    }
}

/// The header names [`set_remote_parent`] reads, for transports (gRPC metadata) that
/// copy only those.
pub fn trace_header_names() -> &'static [&'static str] {
    &TRACE_HEADERS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_through_the_propagator() {
        // A context made from a known traceparent comes back out unchanged, which is what
        // carries a trace across a broker request.
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let incoming = vec![("TraceParent".to_string(), parent.to_string()), ("x-other".into(), "1".into())];
        let cx = TraceContextPropagator::new().extract(&PairsExtractor(&incoming));
        assert!(cx.span().span_context().is_valid());
        assert_eq!(cx.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let mut out = vec![("traceparent".to_string(), "stale".to_string())];
        TraceContextPropagator::new().inject_context(&cx, &mut PairsInjector(&mut out));
        let tp: Vec<_> = out.iter().filter(|(k, _)| k == "traceparent").collect();
        assert_eq!(tp.len(), 1, "the injector replaces, never duplicates: {out:?}");
        assert_eq!(tp[0].1, parent);
    }

    #[test]
    fn nothing_is_injected_without_an_exporter() {
        // No exporting subscriber in this test binary: the helpers must be no-ops.
        assert!(!exporting());
        assert!(current_headers().is_empty());
    }
}

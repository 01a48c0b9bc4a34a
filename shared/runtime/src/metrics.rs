//! Prometheus metrics of one process, served as text on `GET /metrics`.
//!
//! One registry per process, shared by every role it runs: a standalone process and a
//! cluster of single-role processes expose the same names, so the same dashboards work
//! on both. Every name starts with `ferrovec_`.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Content type of [`render`]'s output (OpenMetrics text, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// The Milvus API method (`Search`, `Insert`, ...).
    pub method: String,
    /// gRPC status code name (`OK`, `InvalidArgument`, ...). Milvus reports most failures
    /// inside an OK response's status; those count as OK here and show in the role
    /// metrics instead.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub role: &'static str,
    pub method: &'static str,
    /// `ok`, or `error` when the reply carries a failure status.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcMethodLabels {
    pub role: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Milvus API requests answered, by method and gRPC code.
    pub grpc_requests: Family<GrpcLabels, Counter>,
    /// Milvus API request latency, by method.
    pub grpc_seconds: Family<MethodLabels, Histogram>,
    /// Requests between roles served by this process (query nodes' `Search`/`Query`
    /// among them), by role, method and outcome.
    pub rpc_served: Family<RpcLabels, Counter>,
    /// Latency of those requests, by role and method.
    pub rpc_seconds: Family<RpcMethodLabels, Histogram>,
    /// Rows the proxy wrote to the log (acknowledged inserts and upserts).
    pub rows_inserted: Counter,
    /// Primary keys the proxy wrote to the log as deletes.
    pub rows_deleted: Counter,
}

/// 0.5 ms to ~16 s in powers of two: covers a cache-hot point lookup and a search that
/// waits for a Strong read's time tick.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferrovec");
        let grpc_requests = Family::<GrpcLabels, Counter>::default();
        registry.register("grpc_requests", "Milvus API requests answered", grpc_requests.clone());
        let grpc_seconds = Family::<MethodLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register("grpc_request_duration_seconds", "Milvus API request latency", grpc_seconds.clone());
        let rpc_served = Family::<RpcLabels, Counter>::default();
        registry.register("rpc_requests", "Requests between roles served by this process", rpc_served.clone());
        let rpc_seconds = Family::<RpcMethodLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "rpc_request_duration_seconds",
            "Latency of requests between roles served by this process",
            rpc_seconds.clone(),
        );
        let rows_inserted = Counter::default();
        registry.register("proxy_inserted_rows", "Rows written to the log by this proxy", rows_inserted.clone());
        let rows_deleted = Counter::default();
        registry.register("proxy_deleted_rows", "Deletes written to the log by this proxy", rows_deleted.clone());

        let start = Gauge::<i64>::default();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        start.set(now.as_secs() as i64);
        registry.register("process_start_time_seconds", "Start of this process, Unix seconds", start);
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "Version of this build (the value is always 1)", build);

        Metrics { registry, grpc_requests, grpc_seconds, rpc_served, rpc_seconds, rows_inserted, rows_deleted }
    }

    /// Counts one served role request.
    pub fn rpc_done(&self, role: &'static str, method: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.rpc_served.get_or_create(&RpcLabels { role, method, outcome }).inc();
        self.rpc_seconds.get_or_create(&RpcMethodLabels { role, method }).observe(elapsed.as_secs_f64());
    }

    /// Counts one answered Milvus API request.
    pub fn grpc_done(&self, method: &str, code: &str, elapsed: Duration) {
        self.grpc_requests.get_or_create(&GrpcLabels { method: method.to_string(), code: code.to_string() }).inc();
        self.grpc_seconds.get_or_create(&MethodLabels { method: method.to_string() }).observe(elapsed.as_secs_f64());
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process' metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Every metric in the OpenMetrics text format.
pub fn render() -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &METRICS.registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line starting with `prefix`, if present.
    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn counters_and_histograms_show_in_the_text() {
        let m = metrics();
        let before = render().expect("renders");
        let prefix = "ferrovec_rpc_requests_total{role=\"querynode\",method=\"TestOnlyMethod\",outcome=\"ok\"}";
        let was = sample(&before, prefix).unwrap_or(0.0);
        m.rpc_done("querynode", "TestOnlyMethod", true, Duration::from_millis(3));
        m.rpc_done("querynode", "TestOnlyMethod", true, Duration::from_millis(3));
        let after = render().expect("renders");
        assert_eq!(sample(&after, prefix), Some(was + 2.0), "{after}");
        let count = "ferrovec_rpc_request_duration_seconds_count{role=\"querynode\",method=\"TestOnlyMethod\"}";
        assert!(sample(&after, count).is_some_and(|c| c >= 2.0), "{after}");
        assert!(after.contains("ferrovec_build_info{version=\""), "{after}");
        assert!(sample(&after, "ferrovec_process_start_time_seconds").is_some_and(|t| t > 1.6e9), "{after}");
        assert!(after.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
    }
}

//! Command-line options. `loadtest --help` prints every one of them.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fv_common::Metric;
use fv_proto::common::ConsistencyLevel;

use crate::dataset::Source;
use crate::error::{LoadError, Result};

/// The phases a run can go through, in the order they run.
pub const PHASES: [&str; 10] =
    ["create", "insert", "flush", "index", "load", "search", "sweep", "filtered", "query", "mixed"];

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadtest",
    version,
    about = "Benchmarks any Milvus-protocol endpoint (Ferrovec standalone or cluster, or a real Milvus): \
             throughput, latency and recall, with a JSON and a self-contained HTML report.",
    after_help = "Example: benchmark a running standalone server on the shipped dataset:\n  \
                  cargo run --release -p loadtest -- --dataset ../shared/data/pypi-minilm-384 \\\n    \
                  --index-type IVF_FLAT --index-params '{\"nlist\":256}' --search-params '{\"nprobe\":16}'\n\
                  Compare two endpoints in one run:\n  \
                  loadtest --endpoint ferrovec=http://127.0.0.1:19530 --endpoint milvus=http://127.0.0.1:19531"
)]
pub struct Options {
    // ---- where -------------------------------------------------------------------
    /// Endpoint to benchmark, as `[LABEL=]URI`; give it twice to run the same workload
    /// against two endpoints one after the other and print ratios (second / first).
    #[arg(long = "endpoint", default_value = "http://127.0.0.1:19530", help_heading = "Endpoints")]
    pub endpoints: Vec<String>,
    /// Database to use (sent as the `dbname` header, like pymilvus); empty = default.
    #[arg(long, default_value = "", help_heading = "Endpoints")]
    pub db_name: String,
    /// Credentials `user:password`, when the server requires authentication.
    #[arg(long, env = "LOADTEST_TOKEN", help_heading = "Endpoints")]
    pub token: Option<String>,
    /// Timeout of one request.
    #[arg(long, default_value = "120s", value_parser = parse_duration, help_heading = "Endpoints")]
    pub request_timeout: Duration,
    /// Timeout of each wait (flush, index build, load).
    #[arg(long, default_value = "30m", value_parser = parse_duration, help_heading = "Endpoints")]
    pub wait_timeout: Duration,

    // ---- data --------------------------------------------------------------------
    /// A directory of fvecs/ivecs files (base.fvecs, queries_public.fvecs, and optionally
    /// gt_public.ivecs + gt_public.dist.fvecs and texts_base.tsv), or `synth` for the
    /// built-in seeded generator (SIFT-like, L2).
    #[arg(long, default_value = "synth", help_heading = "Data")]
    pub dataset: String,
    /// Insert only the first N base rows (the shipped ground truth is then recomputed).
    #[arg(long, help_heading = "Data")]
    pub rows: Option<usize>,
    /// Use only the first N queries.
    #[arg(long, help_heading = "Data")]
    pub queries: Option<usize>,
    /// `synth`: base rows to generate.
    #[arg(long, default_value_t = 100_000, help_heading = "Data")]
    pub synth_rows: usize,
    /// `synth`: dimension.
    #[arg(long, default_value_t = 128, help_heading = "Data")]
    pub synth_dim: usize,
    /// `synth`: queries to generate.
    #[arg(long, default_value_t = 1_000, help_heading = "Data")]
    pub synth_queries: usize,
    /// Seed of the generator and of the workload's random choices.
    #[arg(long, default_value_t = 42, help_heading = "Data")]
    pub seed: u64,
    /// Metric (L2, IP, COSINE); default: inferred from the ground truth's order, else L2.
    #[arg(long, value_parser = parse_metric, help_heading = "Data")]
    pub metric: Option<Metric>,

    // ---- collection and index ----------------------------------------------------
    /// Collection to create (dropped first if it exists, unless `create` is not a phase).
    #[arg(long, default_value = "loadtest", help_heading = "Collection")]
    pub collection: String,
    #[arg(long, default_value_t = 1, help_heading = "Collection")]
    pub shards: i32,
    /// Index type: FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW, AUTOINDEX, ... (passed through).
    #[arg(long, default_value = "AUTOINDEX", help_heading = "Collection")]
    pub index_type: String,
    /// Index build parameters as a JSON object, e.g. '{"nlist":1024}'.
    #[arg(long, default_value = "{}", value_parser = parse_json_object, help_heading = "Collection")]
    pub index_params: serde_json::Value,

    // ---- phases ------------------------------------------------------------------
    /// Phases to run, comma-separated, from: create, insert, flush, index, load, search,
    /// sweep, filtered, query, mixed (`sweep` runs only with --sweep). `all` = every one.
    #[arg(long, default_value = "all", value_delimiter = ',', help_heading = "Phases")]
    pub phases: Vec<String>,
    /// Rows per insert request.
    #[arg(long, default_value_t = 1_000, help_heading = "Phases")]
    pub batch_size: usize,
    /// Concurrent insert requests.
    #[arg(long, default_value_t = 2, help_heading = "Phases")]
    pub insert_concurrency: usize,
    /// Search concurrency levels (clients, each on its own connection), comma-separated.
    #[arg(long, default_value = "1,2,4,8,16", value_delimiter = ',', help_heading = "Phases")]
    pub concurrency: Vec<usize>,
    /// How long each search level (and each sweep point, filter and query workload) runs.
    #[arg(long, default_value = "10s", value_parser = parse_duration, help_heading = "Phases")]
    pub duration: Duration,
    /// Instead of --duration: requests per level (per sweep point, filter, workload).
    #[arg(long, help_heading = "Phases")]
    pub count: Option<u64>,
    /// Queries per search request (nq).
    #[arg(long, default_value_t = 1, help_heading = "Phases")]
    pub nq: usize,
    /// Hits per query (topk); recall is recall@topk.
    #[arg(long, default_value_t = 10, help_heading = "Phases")]
    pub topk: usize,
    /// Search parameters as a JSON object, e.g. '{"nprobe":16}' or '{"ef":64}'.
    #[arg(long, default_value = "{}", value_parser = parse_json_object, help_heading = "Phases")]
    pub search_params: serde_json::Value,
    /// Consistency level of searches and queries: Strong, Session, Bounded, Eventually.
    #[arg(long, default_value = "Bounded", value_parser = parse_consistency, help_heading = "Phases")]
    pub consistency: ConsistencyLevel,
    /// Sweep one search parameter, e.g. `nprobe=1,2,4,8,16,32,64,128`: one point of a
    /// recall–QPS curve per value (merged into --search-params).
    #[arg(long, help_heading = "Phases")]
    pub sweep: Option<String>,
    /// Clients during the sweep.
    #[arg(long, default_value_t = 1, help_heading = "Phases")]
    pub sweep_concurrency: usize,
    /// Filtered-search selectivities (share of rows the filter admits), comma-separated.
    #[arg(long, default_value = "0.01,0.1,0.5", value_delimiter = ',', help_heading = "Phases")]
    pub selectivities: Vec<f64>,
    /// Clients for the filtered-search and query phases.
    #[arg(long, default_value_t = 4, help_heading = "Phases")]
    pub filtered_concurrency: usize,
    /// Queries whose filtered ground truth is computed (the filtered phase cycles them).
    #[arg(long, default_value_t = 200, help_heading = "Phases")]
    pub filtered_queries: usize,
    /// How long the mixed read/write phase runs.
    #[arg(long, default_value = "10s", value_parser = parse_duration, help_heading = "Phases")]
    pub mixed_duration: Duration,
    /// Searching clients during the mixed phase.
    #[arg(long, default_value_t = 2, help_heading = "Phases")]
    pub mixed_searchers: usize,
    /// Rows per insert during the mixed phase (half of each batch is deleted later).
    #[arg(long, default_value_t = 100, help_heading = "Phases")]
    pub mixed_batch: usize,
    /// Consistency level the mixed phase checks visibility at: with Strong or Session an
    /// acknowledged write must be visible (or gone) at once; with Bounded or Eventually
    /// the time until it is is measured.
    #[arg(long, default_value = "Strong", value_parser = parse_consistency, help_heading = "Phases")]
    pub mixed_consistency: ConsistencyLevel,
    /// Drop the collection when the run ends.
    #[arg(long, help_heading = "Phases")]
    pub drop_after: bool,

    // ---- output ------------------------------------------------------------------
    /// Directory for results.json and report.html.
    #[arg(long, default_value = "loadtest-report", help_heading = "Output")]
    pub out: PathBuf,
    /// No progress bars.
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
}

impl Options {
    pub fn source(&self) -> Source {
        if self.dataset == "synth" {
            Source::Synth { rows: self.synth_rows, dim: self.synth_dim, queries: self.synth_queries, seed: self.seed }
        } else {
            Source::Dir(PathBuf::from(&self.dataset))
        }
    }

    /// Whether `phase` is selected.
    pub fn runs(&self, phase: &str) -> bool {
        let all = self.phases.iter().any(|p| p == "all");
        if phase == "sweep" {
            return self.sweep.is_some() && (all || self.phases.iter().any(|p| p == phase));
        }
        all || self.phases.iter().any(|p| p == phase)
    }

    /// (label, uri) of each endpoint.
    pub fn endpoints(&self) -> Vec<(String, String)> {
        self.endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| match e.split_once('=') {
                Some((label, uri)) if !uri.is_empty() => (label.to_string(), uri.to_string()),
                _ => {
                    (if self.endpoints.len() == 1 { "server".into() } else { format!("endpoint{}", i + 1) }, e.clone())
                }
            })
            .collect()
    }

    /// The sweep: parameter name and values.
    pub fn sweep_values(&self) -> Result<Option<(String, Vec<serde_json::Value>)>> {
        let Some(s) = &self.sweep else { return Ok(None) };
        let (name, values) =
            s.split_once('=').ok_or_else(|| LoadError::Option(format!("--sweep {s}: expected NAME=V1,V2,...")))?;
        let values = values
            .split(',')
            .map(|v| serde_json::from_str(v.trim()).unwrap_or_else(|_| serde_json::Value::String(v.trim().into())))
            .collect::<Vec<_>>();
        if name.is_empty() || values.is_empty() {
            return Err(LoadError::Option(format!("--sweep {s}: expected NAME=V1,V2,...")));
        }
        Ok(Some((name.to_string(), values)))
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<()> {
        for p in &self.phases {
            if p != "all" && !PHASES.contains(&p.as_str()) {
                return Err(LoadError::Option(format!("unknown phase {p:?}; phases are all, {}", PHASES.join(", "))));
            }
        }
        let positive = [
            ("--batch-size", self.batch_size),
            ("--insert-concurrency", self.insert_concurrency),
            ("--nq", self.nq),
            ("--topk", self.topk),
            ("--sweep-concurrency", self.sweep_concurrency),
            ("--filtered-concurrency", self.filtered_concurrency),
            ("--filtered-queries", self.filtered_queries),
            ("--mixed-batch", self.mixed_batch),
            ("--mixed-searchers", self.mixed_searchers),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(LoadError::Option(format!("{name} must be at least 1")));
            }
        }
        if self.concurrency.is_empty() || self.concurrency.contains(&0) {
            return Err(LoadError::Option("--concurrency levels must be at least 1".into()));
        }
        if let Some(s) = self.selectivities.iter().find(|s| !(**s > 0.0 && **s <= 1.0)) {
            return Err(LoadError::Option(format!("selectivity {s} is not in (0, 1]")));
        }
        if self.count == Some(0) {
            return Err(LoadError::Option("--count must be at least 1".into()));
        }
        if self.endpoints.is_empty() || self.endpoints.len() > 2 {
            return Err(LoadError::Option("give one or two --endpoint".into()));
        }
        self.sweep_values()?;
        Ok(())
    }
}

/// "10s", "500ms", "2m", "1h", or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 10s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    Metric::parse(s).ok_or_else(|| format!("{s:?} is not L2, IP or COSINE"))
}

fn parse_json_object(s: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!("{s:?} is not a JSON object")),
        Err(e) => Err(format!("{s:?} is not JSON: {e}")),
    }
}

fn parse_consistency(s: &str) -> Result<ConsistencyLevel, String> {
    match s.to_ascii_lowercase().as_str() {
        "strong" => Ok(ConsistencyLevel::Strong),
        "session" => Ok(ConsistencyLevel::Session),
        "bounded" => Ok(ConsistencyLevel::Bounded),
        "eventually" => Ok(ConsistencyLevel::Eventually),
        _ => Err(format!("{s:?} is not Strong, Session, Bounded or Eventually")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        Options::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn endpoints_phases_and_sweep() {
        let o = opts(&["--endpoint", "a=http://x:1", "--endpoint", "http://y:2", "--phases", "create,search"]);
        assert_eq!(o.endpoints(), vec![("a".into(), "http://x:1".into()), ("endpoint2".into(), "http://y:2".into())]);
        assert!(o.runs("search") && !o.runs("insert") && !o.runs("sweep"));
        o.validate().unwrap();
        let o = opts(&["--sweep", "nprobe=1,8,64"]);
        assert!(o.runs("sweep"));
        let (name, values) = o.sweep_values().unwrap().unwrap();
        assert_eq!((name.as_str(), values), ("nprobe", vec![1.into(), 8.into(), 64.into()]));
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(opts(&["--phases", "serch"]).validate().is_err());
        assert!(opts(&["--concurrency", "0"]).validate().is_err());
        assert!(opts(&["--selectivities", "1.5"]).validate().is_err());
        assert!(opts(&["--sweep", "nprobe"]).validate().is_err());
        assert!(Options::try_parse_from(["loadtest", "--index-params", "[1]"]).is_err());
        assert!(Options::try_parse_from(["loadtest", "--consistency", "sometimes"]).is_err());
    }
}

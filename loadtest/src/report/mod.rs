//! The results of a run: serialised to `results.json` and rendered to a self-contained
//! `report.html` (inline SVG plots, no scripts, no network).

pub mod html;
pub mod svg;

use std::time::Duration;

use serde::Serialize;

use crate::stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// UTC time the run began (RFC 3339).
    pub started_at: String,
    pub tool: String,
    pub machine: Machine,
    pub workload: WorkloadInfo,
    /// One per endpoint, in the order given.
    pub runs: Vec<EndpointRun>,
    /// With two endpoints: the second's figures over the first's.
    pub comparison: Option<Vec<Ratio>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub os: String,
    pub arch: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            memory_gib: (mem_kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadInfo {
    pub dataset: String,
    pub rows: usize,
    pub dim: usize,
    pub queries: usize,
    pub metric: String,
    pub ground_truth: String,
    pub collection: String,
    pub index_type: String,
    pub index_params: serde_json::Value,
    pub search_params: serde_json::Value,
    pub topk: usize,
    pub nq: usize,
    pub consistency: String,
    /// Per measured level/point: "10s" or "500 requests".
    pub measure: String,
    pub command: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointRun {
    pub label: String,
    pub uri: String,
    pub server_version: String,
    pub setup: Vec<SetupPhase>,
    pub search: Vec<LevelResult>,
    pub sweep: Vec<SweepPoint>,
    pub filtered: Vec<FilteredResult>,
    pub query: Vec<QueryResult>,
    pub mixed: Option<MixedResult>,
}

impl EndpointRun {
    pub fn new(label: &str, uri: &str, version: &str) -> Self {
        EndpointRun {
            label: label.into(),
            uri: uri.into(),
            server_version: version.into(),
            setup: vec![],
            search: vec![],
            sweep: vec![],
            filtered: vec![],
            query: vec![],
            mixed: None,
        }
    }

    /// Errors of every measured phase, by code.
    pub fn errors(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        let mut add = |s: &Summary| {
            for (c, n) in &s.errors {
                *out.entry(c.clone()).or_insert(0) += n;
            }
        };
        self.setup.iter().filter_map(|p| p.summary.as_ref()).for_each(&mut add);
        self.search.iter().for_each(|l| add(&l.summary));
        self.sweep.iter().for_each(|p| add(&p.summary));
        self.filtered.iter().for_each(|f| add(&f.summary));
        self.query.iter().for_each(|q| add(&q.summary));
        if let Some(m) = &self.mixed {
            [&m.inserts, &m.deletes, &m.searches, &m.visibility].into_iter().for_each(add);
        }
        out
    }
}

/// create / insert / flush / index / load.
#[derive(Debug, Clone, Serialize)]
pub struct SetupPhase {
    pub name: String,
    pub seconds: f64,
    pub rows: Option<usize>,
    pub rows_per_s: Option<f64>,
    /// Per-request figures (insert).
    pub summary: Option<Summary>,
}

impl SetupPhase {
    pub fn timed(name: &str, elapsed: Duration, rows: Option<usize>) -> Self {
        let seconds = elapsed.as_secs_f64();
        SetupPhase {
            name: name.into(),
            seconds,
            rows,
            rows_per_s: rows.map(|r| r as f64 / seconds.max(1e-9)),
            summary: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    pub concurrency: usize,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub param: String,
    pub value: serde_json::Value,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilteredResult {
    pub selectivity: f64,
    pub expr: String,
    pub matching_rows: usize,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub name: String,
    pub expr: String,
    /// Rows (or the count) every answer must have.
    pub expected: Option<i64>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct VisibilityCheck {
    pub checks: u64,
    pub violations: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MixedResult {
    pub consistency: String,
    pub inserts: Summary,
    pub deletes: Summary,
    pub searches: Summary,
    /// Latency = time from the write's acknowledgement until a query saw it.
    pub visibility: Summary,
    pub checks: u64,
    /// Acknowledged writes not visible when they had to be.
    pub violations: u64,
    pub count_before: i64,
    pub count_expected: i64,
    pub count_after: i64,
}

/// One compared figure: `b / a` (or `b - a` for recall).
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub what: String,
    pub a: f64,
    pub b: f64,
    /// b / a for throughput and times; b - a for recall.
    pub ratio: f64,
    pub kind: RatioKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioKind {
    /// Higher is better (QPS, rows/s): ratio > 1 means the second endpoint is faster.
    Throughput,
    /// Lower is better (seconds, latency): ratio < 1 means the second endpoint is faster.
    Time,
    /// Difference in recall.
    RecallDelta,
}

/// The second run's figures against the first's.
pub fn compare(a: &EndpointRun, b: &EndpointRun) -> Vec<Ratio> {
    let mut out = vec![];
    let mut push = |what: String, x: f64, y: f64, kind: RatioKind| {
        let ratio = match kind {
            RatioKind::RecallDelta => y - x,
            _ if x > 0.0 => y / x,
            _ => f64::NAN,
        };
        out.push(Ratio { what, a: x, b: y, ratio, kind });
    };
    for pa in &a.setup {
        if let Some(pb) = b.setup.iter().find(|p| p.name == pa.name) {
            push(format!("{} seconds", pa.name), pa.seconds, pb.seconds, RatioKind::Time);
        }
    }
    let mut summaries = |label: &str, x: &Summary, y: &Summary| {
        push(format!("{label} QPS"), x.requests_per_s, y.requests_per_s, RatioKind::Throughput);
        push(format!("{label} p99 ms"), x.latency_ms.p99, y.latency_ms.p99, RatioKind::Time);
        if let (Some(rx), Some(ry)) = (x.recall, y.recall) {
            push(format!("{label} recall"), rx, ry, RatioKind::RecallDelta);
        }
    };
    for la in &a.search {
        if let Some(lb) = b.search.iter().find(|l| l.concurrency == la.concurrency) {
            summaries(&format!("search c={}", la.concurrency), &la.summary, &lb.summary);
        }
    }
    for pa in &a.sweep {
        if let Some(pb) = b.sweep.iter().find(|p| p.value == pa.value) {
            summaries(&format!("sweep {}={}", pa.param, pa.value), &pa.summary, &pb.summary);
        }
    }
    for fa in &a.filtered {
        if let Some(fb) = b.filtered.iter().find(|f| f.selectivity == fa.selectivity) {
            summaries(&format!("filtered {}", fa.selectivity), &fa.summary, &fb.summary);
        }
    }
    for qa in &a.query {
        if let Some(qb) = b.query.iter().find(|q| q.name == qa.name) {
            summaries(&format!("query {}", qa.name), &qa.summary, &qb.summary);
        }
    }
    out
}

/// The UTC time `secs` after the epoch in RFC 3339 (civil-from-days, no calendar crate).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_948_496), "2026-11-29T10:34:56Z");
    }
}

//! `loadtest`: benchmarks any Milvus-protocol endpoint. See `loadtest --help` and
//! `loadtest/README.md`.

mod cli;
mod client;
mod dataset;
mod error;
mod recall;
mod report;
mod stats;
mod workload;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::cli::Options;
use crate::error::{LoadError, Result};
use crate::report::{Machine, Report, WorkloadInfo};

fn main() -> ExitCode {
    let opts = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: Options) -> Result<()> {
    opts.validate()?;
    let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let origin = Instant::now();
    if !opts.quiet {
        eprintln!("loadtest: loading {} and computing ground truth", opts.dataset);
    }
    let shipped_truth = opts.dataset != "synth" && opts.rows.is_none() && opts.metric.is_none();
    let ds = tokio::task::block_in_place(|| workload::prepare(&opts))?;
    let shipped_truth = shipped_truth && ds.truth.as_ref().is_some_and(|t| t.depth() >= 100);
    let mut runs = vec![];
    for (label, uri) in opts.endpoints() {
        if !opts.quiet {
            eprintln!("loadtest: {label} at {uri}");
        }
        let w = workload::Workload::new(&opts, &ds, workload::target(&opts, &uri), origin);
        runs.push(w.run(&label).await?);
    }
    let comparison = (runs.len() == 2).then(|| report::compare(&runs[0], &runs[1]));
    let report = Report {
        started_at: report::rfc3339(started),
        tool: format!("ferrovec loadtest {}", env!("CARGO_PKG_VERSION")),
        machine: Machine::detect(),
        workload: WorkloadInfo {
            dataset: ds.name.clone(),
            rows: ds.rows(),
            dim: ds.dim,
            queries: ds.num_queries(),
            metric: ds.metric.name().into(),
            ground_truth: if shipped_truth {
                "shipped with the dataset (gt_public.*), tie-aware".into()
            } else {
                "computed exactly by the load generator, tie-aware".into()
            },
            collection: opts.collection.clone(),
            index_type: opts.index_type.clone(),
            index_params: opts.index_params.clone(),
            search_params: opts.search_params.clone(),
            topk: opts.topk,
            nq: opts.nq,
            consistency: format!("{:?}", opts.consistency),
            measure: match opts.count {
                Some(n) => format!("{n} requests"),
                None => format!("{:?}", opts.duration),
            },
            command: std::env::args().collect::<Vec<_>>().join(" "),
        },
        runs,
        comparison,
    };
    std::fs::create_dir_all(&opts.out).map_err(|e| LoadError::io(&opts.out, e))?;
    let json_path = opts.out.join("results.json");
    let json = serde_json::to_string_pretty(&report).map_err(|e| LoadError::Option(format!("results: {e}")))?;
    std::fs::write(&json_path, json).map_err(|e| LoadError::io(&json_path, e))?;
    let html_path = opts.out.join("report.html");
    std::fs::write(&html_path, report::html::render(&report)).map_err(|e| LoadError::io(&html_path, e))?;
    print_summary(&report);
    eprintln!("loadtest: wrote {} and {}", json_path.display(), html_path.display());
    Ok(())
}

/// A plain-text digest on stdout: search levels per endpoint, then the ratios.
fn print_summary(r: &Report) {
    let mut out = std::io::stdout().lock();
    for run in &r.runs {
        let _ = writeln!(out, "\n{} ({}, {})", run.label, run.uri, run.server_version);
        for p in &run.setup {
            let rate = p.rows_per_s.map(|x| format!(" ({x:.0} rows/s)")).unwrap_or_default();
            let _ = writeln!(out, "  {:<8} {:>9.2} s{rate}", p.name, p.seconds);
        }
        let _ = writeln!(
            out,
            "  {:<22} {:>10} {:>9} {:>9} {:>9} {:>8} {:>7}",
            "phase", "req/s", "p50 ms", "p99 ms", "max ms", "recall", "errors"
        );
        let mut line = |name: String, s: &stats::Summary| {
            let _ = writeln!(
                out,
                "  {:<22} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>7}",
                name,
                s.requests_per_s,
                s.latency_ms.p50,
                s.latency_ms.p99,
                s.latency_ms.max,
                s.recall.map_or("-".into(), |r| format!("{r:.4}")),
                s.errors.values().sum::<u64>()
            );
        };
        for l in &run.search {
            line(format!("search c={}", l.concurrency), &l.summary);
        }
        for p in &run.sweep {
            line(format!("{}={}", p.param, p.value), &p.summary);
        }
        for f in &run.filtered {
            line(format!("filtered {}", f.selectivity), &f.summary);
        }
        for q in &run.query {
            line(format!("query {}", q.name), &q.summary);
        }
        if let Some(m) = &run.mixed {
            line("mixed insert".into(), &m.inserts);
            line("mixed delete".into(), &m.deletes);
            line("mixed search".into(), &m.searches);
            line("mixed visibility".into(), &m.visibility);
            let _ = writeln!(
                out,
                "  mixed: {} visibility checks at {}, {} violations; rows {} -> expected {}, counted {}",
                m.checks, m.consistency, m.violations, m.count_before, m.count_expected, m.count_after
            );
        }
    }
    if let Some(ratios) = &r.comparison {
        let _ = writeln!(out, "\n{} / {}:", r.runs[1].label, r.runs[0].label);
        for x in ratios {
            let ratio = match x.kind {
                report::RatioKind::RecallDelta => format!("{:+.4}", x.ratio),
                _ => format!("{:.2}x", x.ratio),
            };
            let _ = writeln!(out, "  {:<34} {:>12.3} {:>12.3} {:>9}", x.what, x.a, x.b, ratio);
        }
    }
}

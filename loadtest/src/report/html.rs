//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no network)
//! with a section per part of the run. Section ids are stable (`summary`, `setup`,
//! `search`, `recall-qps`, `latency`, `throughput`, `sweep`, `filtered`, `query`,
//! `mixed`, `errors`, `comparison`) so tools and tests can find them.

use std::fmt::Write;

use super::svg::{Chart, Scale, Series, escape, line_chart};
use super::{EndpointRun, RatioKind, Report};
use crate::stats::{HISTOGRAM_BOUNDS_MS, Summary};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}h2{border-bottom:2px solid #0072b2;padding-bottom:2px}\
.charts{display:flex;flex-wrap:wrap;gap:12px}.note{color:#666;font-size:90%}.bad{color:#b00;font-weight:bold}";

fn f(v: f64, digits: usize) -> String {
    format!("{v:.digits$}")
}

fn recall(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| f(r, 4))
}

fn errors(s: &Summary) -> String {
    if s.errors.is_empty() {
        "0".into()
    } else {
        let list: Vec<String> = s.errors.iter().map(|(c, n)| format!("{n}×{c}")).collect();
        format!("<span class=\"bad\">{}</span>", escape(&list.join(", ")))
    }
}

/// A table row with the usual per-phase columns after `first` cells.
fn summary_cells(s: &Summary) -> String {
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        s.requests,
        f(s.requests_per_s, 1),
        f(s.items_per_s, 1),
        f(s.latency_ms.p50, 2),
        f(s.latency_ms.p95, 2),
        f(s.latency_ms.p99, 2),
        f(s.latency_ms.max, 2),
        recall(s.recall),
        errors(s)
    )
}

const SUMMARY_HEAD: &str = "<th>requests</th><th>req/s</th><th>items/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>recall</th><th>errors</th>";

fn section(out: &mut String, id: &str, title: &str) {
    let _ = write!(out, "<section id=\"{id}\"><h2>{}</h2>", escape(title));
}

fn none(out: &mut String, what: &str) {
    let _ = write!(out, "<p class=\"note\">{} was not part of this run.</p>", escape(what));
}

/// Renders the whole report.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ferrovec loadtest: {}</title><style>{STYLE}</style></head><body>",
        escape(&r.workload.dataset)
    );
    let _ = write!(o, "<h1>Load test: {}</h1>", escape(&r.workload.dataset));

    section(&mut o, "summary", "Summary");
    let w = &r.workload;
    let m = &r.machine;
    let rows: Vec<(&str, String)> = vec![
        ("started", r.started_at.clone()),
        ("tool", r.tool.clone()),
        ("machine", format!("{} × {}, {} GiB, {} {}", m.cpus, m.cpu_model, m.memory_gib, m.os, m.arch)),
        ("dataset", format!("{} ({} rows × {} dims, {} queries, {})", w.dataset, w.rows, w.dim, w.queries, w.metric)),
        ("ground truth", w.ground_truth.clone()),
        ("index", format!("{} {}", w.index_type, w.index_params)),
        (
            "search",
            format!(
                "topk {}, nq {} per request, params {}, consistency {}",
                w.topk, w.nq, w.search_params, w.consistency
            ),
        ),
        ("each level runs", w.measure.clone()),
        ("command", w.command.clone()),
    ];
    o.push_str("<table>");
    for (k, v) in rows {
        let _ = write!(o, "<tr><th>{k}</th><td style=\"text-align:left\">{}</td></tr>", escape(&v));
    }
    o.push_str("</table><table><tr><th>endpoint</th><th>uri</th><th>server version</th><th>best QPS</th><th>recall at best</th><th>errors</th></tr>");
    for run in &r.runs {
        let best = run.search.iter().max_by(|a, b| a.summary.requests_per_s.total_cmp(&b.summary.requests_per_s));
        let errs: u64 = run.errors().values().sum();
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&run.label),
            escape(&run.uri),
            escape(&run.server_version),
            best.map_or("–".into(), |b| format!("{} (c={})", f(b.summary.requests_per_s, 1), b.concurrency)),
            recall(best.and_then(|b| b.summary.recall)),
            if errs == 0 { "0".into() } else { format!("<span class=\"bad\">{errs}</span>") }
        );
    }
    o.push_str("</table></section>");

    section(&mut o, "setup", "Setup phases");
    if r.runs.iter().all(|x| x.setup.is_empty()) {
        none(&mut o, "Setup");
    } else {
        o.push_str("<table><tr><th>endpoint</th><th>phase</th><th>seconds</th><th>rows</th><th>rows/s</th><th>p99 ms per request</th></tr>");
        for run in &r.runs {
            for p in &run.setup {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&run.label),
                    p.name,
                    f(p.seconds, 2),
                    p.rows.map_or("–".into(), |x| x.to_string()),
                    p.rows_per_s.map_or("–".into(), |x| f(x, 0)),
                    p.summary.as_ref().map_or("–".into(), |s| f(s.latency_ms.p99, 2))
                );
            }
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");

    section(&mut o, "search", "Search by concurrency");
    if r.runs.iter().all(|x| x.search.is_empty()) {
        none(&mut o, "Search");
    } else {
        let _ = write!(o, "<table><tr><th>endpoint</th><th>clients</th>{SUMMARY_HEAD}</tr>");
        for run in &r.runs {
            for l in &run.search {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td>{}</tr>",
                    escape(&run.label),
                    l.concurrency,
                    summary_cells(&l.summary)
                );
            }
        }
        o.push_str("</table>");
        let qps: Vec<Series> = r
            .runs
            .iter()
            .map(|run| Series {
                name: run.label.clone(),
                points: run.search.iter().map(|l| (l.concurrency as f64, l.summary.requests_per_s)).collect(),
            })
            .collect();
        let chart = Chart {
            title: "Throughput by clients",
            x_label: "clients",
            y_label: "requests/s",
            x_scale: Scale::Log,
            y_scale: Scale::Linear,
            markers: true,
        };
        let _ = write!(o, "<div class=\"charts\">{}</div>", line_chart(&chart, &qps));
    }
    o.push_str("</section>");

    section(&mut o, "recall-qps", "Recall vs QPS");
    let curve: Vec<Series> =
        r.runs.iter().map(|run| Series { name: run.label.clone(), points: recall_qps_points(run) }).collect();
    if curve.iter().all(|s| s.points.is_empty()) {
        none(&mut o, "A search with ground truth");
    } else {
        let chart = Chart {
            title: "Recall vs QPS",
            x_label: "recall@k",
            y_label: "queries/s",
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            markers: true,
        };
        let _ = write!(
            o,
            "<p class=\"note\">One point per sweep value when a sweep ran, else per concurrency level.</p><div class=\"charts\">{}</div>",
            line_chart(&chart, &curve)
        );
    }
    o.push_str("</section>");

    section(&mut o, "latency", "Latency histograms per concurrency level");
    let levels: Vec<usize> = {
        let mut l: Vec<usize> = r.runs.iter().flat_map(|x| x.search.iter().map(|s| s.concurrency)).collect();
        l.sort_unstable();
        l.dedup();
        l
    };
    if levels.is_empty() {
        none(&mut o, "Search");
    } else {
        o.push_str("<p class=\"note\">Share of requests per latency bucket (bucket upper bounds, log scale).</p><div class=\"charts\">");
        for c in levels {
            let series: Vec<Series> = r
                .runs
                .iter()
                .filter_map(|run| run.search.iter().find(|l| l.concurrency == c).map(|l| (run, l)))
                .map(|(run, l)| Series { name: run.label.clone(), points: histogram_points(&l.summary) })
                .collect();
            let title = format!("Latency, {c} client{}", if c == 1 { "" } else { "s" });
            let chart = Chart {
                title: &title,
                x_label: "latency ms (≤)",
                y_label: "share of requests",
                x_scale: Scale::Log,
                y_scale: Scale::Linear,
                markers: true,
            };
            o.push_str(&line_chart(&chart, &series));
        }
        o.push_str("</div>");
    }
    o.push_str("</section>");

    section(&mut o, "throughput", "Throughput over time");
    let series: Vec<Series> = r
        .runs
        .iter()
        .map(|run| {
            // Phases end and begin within one second: add up what shares a second.
            let mut per_second: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
            for s in run
                .search
                .iter()
                .map(|l| &l.summary)
                .chain(run.sweep.iter().map(|p| &p.summary))
                .chain(run.filtered.iter().map(|p| &p.summary))
                .chain(run.query.iter().map(|p| &p.summary))
                .chain(run.mixed.iter().map(|m| &m.searches))
            {
                for t in &s.timeline {
                    *per_second.entry(t[0]).or_default() += t[1];
                }
            }
            Series {
                name: run.label.clone(),
                points: per_second.into_iter().map(|(x, y)| (x as f64, y as f64)).collect(),
            }
        })
        .collect();
    let inserts: Vec<Series> = r
        .runs
        .iter()
        .map(|run| Series {
            name: run.label.clone(),
            points: run
                .setup
                .iter()
                .filter_map(|p| p.summary.as_ref())
                .flat_map(|s| s.timeline.iter().map(|t| (t[0] as f64, t[1] as f64)))
                .collect(),
        })
        .collect();
    if series.iter().chain(&inserts).all(|s| s.points.is_empty()) {
        none(&mut o, "A measured phase");
    } else {
        let chart = Chart {
            title: "Search and query requests per second",
            x_label: "seconds since the run began",
            y_label: "requests/s",
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            markers: false,
        };
        let ins = Chart { title: "Insert requests per second", ..chart.clone() };
        let _ = write!(o, "<div class=\"charts\">{}{}</div>", line_chart(&chart, &series), line_chart(&ins, &inserts));
    }
    o.push_str("</section>");

    section(&mut o, "sweep", "Parameter sweep");
    if r.runs.iter().all(|x| x.sweep.is_empty()) {
        none(&mut o, "A sweep (--sweep)");
    } else {
        let _ = write!(o, "<table><tr><th>endpoint</th><th>param</th>{SUMMARY_HEAD}</tr>");
        for run in &r.runs {
            for p in &run.sweep {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}={}</td>{}</tr>",
                    escape(&run.label),
                    escape(&p.param),
                    p.value,
                    summary_cells(&p.summary)
                );
            }
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");

    section(&mut o, "filtered", "Filtered search");
    if r.runs.iter().all(|x| x.filtered.is_empty()) {
        none(&mut o, "Filtered search");
    } else {
        let _ = write!(
            o,
            "<table><tr><th>endpoint</th><th>selectivity</th><th>filter</th><th>matching rows</th>{SUMMARY_HEAD}</tr>"
        );
        for run in &r.runs {
            for x in &run.filtered {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                    escape(&run.label),
                    x.selectivity,
                    escape(&x.expr),
                    x.matching_rows,
                    summary_cells(&x.summary)
                );
            }
        }
        o.push_str("</table><p class=\"note\">Recall against exact search among the rows the filter admits; a hit outside the filter counts as an error (protocol).</p>");
    }
    o.push_str("</section>");

    section(&mut o, "query", "Queries by expression");
    if r.runs.iter().all(|x| x.query.is_empty()) {
        none(&mut o, "Query");
    } else {
        let _ = write!(
            o,
            "<table><tr><th>endpoint</th><th>workload</th><th>expression</th><th>expected</th>{SUMMARY_HEAD}</tr>"
        );
        for run in &r.runs {
            for q in &run.query {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                    escape(&run.label),
                    escape(&q.name),
                    escape(&q.expr),
                    q.expected.map_or("–".into(), |e| e.to_string()),
                    summary_cells(&q.summary)
                );
            }
        }
        o.push_str("</table><p class=\"note\">A wrong answer counts as an error (protocol).</p>");
    }
    o.push_str("</section>");

    section(&mut o, "mixed", "Mixed reads and writes");
    if r.runs.iter().all(|x| x.mixed.is_none()) {
        none(&mut o, "The mixed phase");
    } else {
        let _ = write!(o, "<table><tr><th>endpoint</th><th>part</th>{SUMMARY_HEAD}</tr>");
        for run in &r.runs {
            if let Some(m) = &run.mixed {
                for (part, s) in [
                    ("insert", &m.inserts),
                    ("delete", &m.deletes),
                    ("search", &m.searches),
                    ("write → visible", &m.visibility),
                ] {
                    let _ = write!(o, "<tr><td>{}</td><td>{part}</td>{}</tr>", escape(&run.label), summary_cells(s));
                }
            }
        }
        o.push_str("</table><table><tr><th>endpoint</th><th>consistency</th><th>visibility checks</th><th>violations</th><th>rows before</th><th>rows expected</th><th>rows after</th></tr>");
        for run in &r.runs {
            if let Some(m) = &run.mixed {
                let bad = |b: bool, s: String| if b { format!("<span class=\"bad\">{s}</span>") } else { s };
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&run.label),
                    escape(&m.consistency),
                    m.checks,
                    bad(m.violations > 0, m.violations.to_string()),
                    m.count_before,
                    m.count_expected,
                    bad(m.count_after != m.count_expected, m.count_after.to_string())
                );
            }
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");

    section(&mut o, "errors", "Errors by code");
    let mut any = false;
    o.push_str("<table><tr><th>endpoint</th><th>code</th><th>requests</th></tr>");
    for run in &r.runs {
        for (code, n) in run.errors() {
            any = true;
            let _ = write!(o, "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>", escape(&run.label), escape(&code));
        }
    }
    o.push_str("</table>");
    if !any {
        o.push_str("<p>No request failed.</p>");
    }
    o.push_str("</section>");

    section(&mut o, "comparison", "Comparison");
    match &r.comparison {
        None => none(&mut o, "A second endpoint"),
        Some(ratios) => {
            let (a, b) = (&r.runs[0].label, &r.runs[1].label);
            let _ = write!(
                o,
                "<table><tr><th>figure</th><th>{}</th><th>{}</th><th>{} / {}</th></tr>",
                escape(a),
                escape(b),
                escape(b),
                escape(a)
            );
            for x in ratios {
                let ratio = match x.kind {
                    RatioKind::RecallDelta => format!("{:+.4}", x.ratio),
                    _ => format!("{:.2}×", x.ratio),
                };
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{ratio}</td></tr>",
                    escape(&x.what),
                    f(x.a, 3),
                    f(x.b, 3)
                );
            }
            o.push_str("</table><p class=\"note\">Throughput: above 1 means the second endpoint is faster; times and latencies: below 1 means it is faster; recall: the difference.</p>");
        }
    }
    o.push_str("</section></body></html>\n");
    o
}

fn recall_qps_points(run: &EndpointRun) -> Vec<(f64, f64)> {
    let from = |s: &Summary| s.recall.map(|r| (r, s.items_per_s));
    let mut pts: Vec<(f64, f64)> = if run.sweep.is_empty() {
        run.search.iter().filter_map(|l| from(&l.summary)).collect()
    } else {
        run.sweep.iter().filter_map(|p| from(&p.summary)).collect()
    };
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

fn histogram_points(s: &Summary) -> Vec<(f64, f64)> {
    let total = s.histogram.iter().sum::<u64>().max(1) as f64;
    // The open last bucket is drawn at twice the last finite bound.
    let last = HISTOGRAM_BOUNDS_MS[HISTOGRAM_BOUNDS_MS.len() - 2] * 2.0;
    // Only the occupied range, with one empty bucket either side.
    let first = s.histogram.iter().position(|&n| n > 0).unwrap_or(0).saturating_sub(1);
    let end = (s.histogram.iter().rposition(|&n| n > 0).unwrap_or(0) + 2).min(s.histogram.len());
    HISTOGRAM_BOUNDS_MS
        .iter()
        .zip(&s.histogram)
        .map(|(&b, &n)| (if b.is_finite() { b } else { last }, n as f64 / total))
        .skip(first)
        .take(end - first)
        .collect()
}

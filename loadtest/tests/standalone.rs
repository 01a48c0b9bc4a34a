//! End to end: the `loadtest` binary against a real `ferrovec run standalone` process
//! (small synthetic data, a few seconds), checking the report is complete and that FLAT
//! search has recall 1.0.
//!
//! The server binary comes from `FERROVEC_BIN`, else from the target directory this test
//! was built in (`cargo build --workspace` builds it; `scripts/test.sh` does that first).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn ferrovec_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FERROVEC_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/standalone-<hash> → target/<profile>/ferrovec
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("ferrovec");
    assert!(bin.is_file(), "{} not found: build it first (cargo build -p ferrovec) or set FERROVEC_BIN", bin.display());
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data: &Path) -> (Server, u16) {
    let (port, http) = (free_port(), free_port());
    let child = Command::new(ferrovec_bin())
        .args(["run", "standalone", "--log-level", "warn"])
        .arg("--data-dir")
        .arg(data)
        .args(["--port", &port.to_string(), "--http-port", &http.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ferrovec starts");
    let server = Server(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "ferrovec did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

fn loadtest(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadtest")).args(args).output().expect("loadtest runs")
}

const SECTIONS: [&str; 12] = [
    "summary",
    "setup",
    "search",
    "recall-qps",
    "latency",
    "throughput",
    "sweep",
    "filtered",
    "query",
    "mixed",
    "errors",
    "comparison",
];

fn recall(summary: &Value) -> f64 {
    summary["recall"].as_f64().expect("a recall figure")
}

fn no_errors(what: &str, summary: &Value) {
    assert_eq!(summary["errors"], serde_json::json!({}), "{what} had errors: {summary}");
    assert!(summary["requests"].as_u64().unwrap() > 0, "{what} made no request");
}

#[test]
fn a_short_run_against_standalone_reports_every_section_and_exact_recall() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_server(&dir.path().join("data"));
    let uri = format!("http://127.0.0.1:{port}");
    let out = dir.path().join("report");
    let a = format!("first={uri}");
    let b = format!("second={uri}");
    #[rustfmt::skip]
    let args = [
        "--endpoint", &a, "--endpoint", &b,
        "--synth-rows", "3000", "--synth-dim", "16", "--synth-queries", "50",
        "--index-type", "FLAT", "--concurrency", "1,2", "--count", "40",
        "--sweep", "nprobe=1,8", "--selectivities", "0.05,0.5", "--filtered-queries", "20",
        "--mixed-duration", "2s", "--mixed-batch", "20", "--consistency", "Strong",
        "--batch-size", "700", "--quiet", "--out", out.to_str().unwrap(),
    ];
    let run = loadtest(&args);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "loadtest failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("second / first"), "ratios printed:\n{stdout}");

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for id in SECTIONS {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "section {id} missing");
    }
    assert!(html.matches("<svg").count() >= 5, "plots: throughput, recall-QPS, 2 histograms, timelines");
    // Self-contained: no scripts, nothing fetched.
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"), "self-contained");

    let json: Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["workload"]["rows"], 3000);
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let phases: Vec<&str> = run["setup"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(phases, ["create", "insert", "flush", "index", "load"]);
        let insert = &run["setup"][1];
        assert_eq!(insert["rows"], 3000);
        no_errors("insert", &insert["summary"]);
        let levels = run["search"].as_array().unwrap();
        assert_eq!(levels.len(), 2);
        for l in levels {
            no_errors("search", &l["summary"]);
            assert_eq!(l["summary"]["requests"], 40, "--count requests per level");
            assert_eq!(recall(&l["summary"]), 1.0, "FLAT is exact: {l}");
            assert!(l["summary"]["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
            assert!(!l["summary"]["timeline"].as_array().unwrap().is_empty());
        }
        assert_eq!(run["sweep"].as_array().unwrap().len(), 2);
        for f in run["filtered"].as_array().unwrap() {
            no_errors("filtered search", &f["summary"]);
            assert_eq!(recall(&f["summary"]), 1.0, "filtered FLAT is exact: {f}");
        }
        let queries = run["query"].as_array().unwrap();
        assert_eq!(queries.len(), 3);
        for q in queries {
            no_errors("query", &q["summary"]);
        }
        let mixed = &run["mixed"];
        no_errors("mixed inserts", &mixed["inserts"]);
        no_errors("mixed searches", &mixed["searches"]);
        assert!(mixed["checks"].as_u64().unwrap() > 0);
        assert_eq!(mixed["violations"], 0, "acknowledged writes visible at Strong: {mixed}");
        assert_eq!(mixed["count_after"], mixed["count_expected"]);
    }
    let ratios = json["comparison"].as_array().unwrap();
    assert!(ratios.iter().any(|r| r["what"] == "search c=1 QPS" && r["ratio"].as_f64().unwrap() > 0.0));
    assert!(ratios.iter().any(|r| r["what"] == "search c=2 recall" && r["ratio"].as_f64().unwrap() == 0.0));
}

#[test]
fn help_documents_the_options() {
    let help = loadtest(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--endpoint",
        "--dataset",
        "--index-type",
        "--concurrency",
        "--sweep",
        "--selectivities",
        "--mixed-duration",
        "--out",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn an_unreachable_endpoint_fails_with_a_clear_message() {
    let port = free_port();
    let run = loadtest(&[
        "--endpoint",
        &format!("http://127.0.0.1:{port}"),
        "--synth-rows",
        "100",
        "--synth-queries",
        "5",
        "--quiet",
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("cannot connect"), "{err}");
}

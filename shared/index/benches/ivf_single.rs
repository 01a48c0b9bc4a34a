//! IVF_FLAT single-query latency, the measure issue 5 compares with faiss: every public
//! query searched alone on the calling thread, µs per query, median of `RUNS` passes over
//! the 1,000 queries, at nprobe 8 / 16 / 32 / 64 (wall time, and on-CPU time of the
//! searching thread) (nlist=1024, IP), the same method as
//! `scripts/bench/faiss_peer.py`. A plain timer rather than criterion, so that two builds
//! (before / after a change) can be run alternately against one saved index: the index is
//! built once and kept at `$FV_IVF_INDEX` (default in the system temp directory), so A/B
//! runs search identical lists.
//!
//! `cargo bench -p fv-index --bench ivf_single [-- RUNS]`

mod common;

use std::time::Instant;

use fv_index::{IndexParams, IndexType, Metric, SearchContext, SearchParams, VectorIndex};

/// Nanoseconds the calling thread has run on a CPU (Linux schedstat), or 0 elsewhere.
/// Wall time on a shared 2-core machine includes the time other processes hold the core;
/// on-CPU time of the (single) searching thread does not, so it separates A from B under
/// load. It misses work handed to other threads: that is why wall time is printed too.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let path = std::env::var("FV_IVF_INDEX")
        .unwrap_or_else(|_| std::env::temp_dir().join("fv-ivf-flat-1024.idx").display().to_string());
    let queries = common::queries(1000);
    let dim = 384;
    let index = match std::fs::read(&path).ok().and_then(|b| VectorIndex::from_bytes(&b).ok()) {
        Some(i) => i,
        None => {
            let (base, d, source) = common::base(50_000);
            assert_eq!(d, dim);
            eprintln!("building IVF_FLAT nlist=1024 on {source} (kept at {path})");
            let p = IndexParams { nlist: 1024, ..IndexParams::new(IndexType::IvfFlat, Metric::Ip) };
            let i = VectorIndex::build(&p, common::m(&base, dim)).expect("builds");
            std::fs::write(&path, i.to_bytes()).expect("writes the index");
            i
        }
    };
    let (mut line, mut cpu_line) = (Vec::new(), Vec::new());
    // `FV_NPROBES=1,8` narrows the sweep (nprobe=1 is about the cost of the coarse probe).
    let nprobes: Vec<usize> = std::env::var("FV_NPROBES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![8, 16, 32, 64]);
    for nprobe in nprobes {
        let s = SearchParams { nprobe: Some(nprobe), ..Default::default() };
        let nq = (queries.len() / dim) as f64;
        let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..runs)
            .map(|_| {
                let (t, c) = (Instant::now(), thread_cpu_ns());
                for q in queries.chunks_exact(dim) {
                    std::hint::black_box(
                        index.search(common::m(q, dim), 10, &s, SearchContext::new()).expect("searches"),
                    );
                }
                (t.elapsed().as_secs_f64() * 1e6 / nq, (thread_cpu_ns() - c) as f64 / 1e3 / nq)
            })
            .unzip();
        wall.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        line.push(format!("{:.1}", wall[runs / 2]));
        cpu_line.push(format!("{:.1}", cpu[runs / 2]));
    }
    eprintln!("ferrovec {}", line.join(" "));
    eprintln!("ferrovec-cpu {}", cpu_line.join(" "));
}

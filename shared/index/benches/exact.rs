//! Exact search over 50,000 × 384 (the real MiniLM set when present), metric IP:
//! - one query (memory-bound: 76.8 MB per query, floor ≈ 2.7 ms at 28 GB/s);
//! - 1,000 queries in one call through GEMM (38.4 GFLOP; sgemm peak here ≈ 190–230 GFLOP/s);
//! - small batches, GEMM vs per-row, to place `flat::GEMM_MIN_QUERIES`.
//!
//! Throughput is in rows scored (query × row pairs) per second.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fv_index::flat::{self, SearchParams};
use fv_index::{Metric, SearchContext};

fn bench(c: &mut Criterion) {
    let (base, dim, source) = common::base(50_000);
    let rows = base.len() / dim;
    let queries = common::queries(1000);
    eprintln!("exact data: {source}, {rows} × {dim}, {} rayon threads", rayon::current_num_threads());
    let p = SearchParams { metric: Metric::Ip, k: 10, radius: None, range_filter: None };
    let mut g = c.benchmark_group("exact");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function("single/50000x384", |b| {
        b.iter(|| flat::search(common::m(&base, dim), common::m(&queries[..dim], dim), &p, None, None))
    });
    g.bench_function("single_one_thread/50000x384", |b| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        b.iter(|| pool.install(|| flat::search(common::m(&base, dim), common::m(&queries[..dim], dim), &p, None, None)))
    });
    for nq in [2usize, 4, 8, 32] {
        let q = &queries[..nq * dim];
        g.throughput(Throughput::Elements((nq * rows) as u64));
        g.bench_function(format!("gemm/{nq}x50000x384"), |b| {
            b.iter(|| flat::search_gemm(common::m(&base, dim), common::m(q, dim), &p, SearchContext::new(), None))
        });
        g.bench_function(format!("per_row/{nq}x50000x384"), |b| {
            b.iter(|| flat::search_per_row(common::m(&base, dim), common::m(q, dim), &p, SearchContext::new(), None))
        });
    }
    g.throughput(Throughput::Elements((1000 * rows) as u64));
    g.bench_function("batch/1000x50000x384", |b| {
        b.iter(|| flat::search(common::m(&base, dim), common::m(&queries, dim), &p, None, None))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! IVF indexes on 50,000 × 384 (the real MiniLM set and its exact top-10 when present),
//! metric IP as in shared/research/peers.md: build time, recall@10 and bytes per vector
//! (printed), then timed searches: one query per call and 1,000 per call.

mod common;

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fv_index::{Hit, IndexParams, IndexType, Metric, SearchContext, SearchParams, VectorIndex};

fn recall(got: &[Vec<Hit>], truth: &[Vec<u32>]) -> f64 {
    let hits: usize = got.iter().zip(truth).map(|(g, t)| g.iter().filter(|h| t.contains(&h.row)).count()).sum();
    hits as f64 / (10 * got.len()) as f64
}

fn bench(c: &mut Criterion) {
    let (base, dim, source) = common::base(50_000);
    let queries = common::queries(1000);
    let nq = queries.len() / dim;
    let truth = match common::ground_truth(10) {
        Some(t) if source != "synthetic" => t,
        _ => {
            let p = fv_index::flat::SearchParams { metric: Metric::Ip, k: 10, radius: None, range_filter: None };
            fv_index::flat::search(common::m(&base, dim), common::m(&queries, dim), &p, None, None)
                .iter()
                .map(|h| h.iter().map(|h| h.row).collect())
                .collect()
        }
    };
    eprintln!("ivf data: {source}, {} × {dim}, {nq} queries", base.len() / dim);
    let configs: [(&str, IndexParams); 3] = [
        ("IVF_FLAT,nlist=1024", IndexParams { nlist: 1024, ..IndexParams::new(IndexType::IvfFlat, Metric::Ip) }),
        ("IVF_SQ8,nlist=1024", IndexParams { nlist: 1024, ..IndexParams::new(IndexType::IvfSq8, Metric::Ip) }),
        (
            "IVF_PQ,nlist=1024,m=48",
            IndexParams { nlist: 1024, m: Some(48), ..IndexParams::new(IndexType::IvfPq, Metric::Ip) },
        ),
    ];
    let mut g = c.benchmark_group("ivf");
    g.sample_size(10);
    for (name, p) in configs {
        let t = Instant::now();
        let index = VectorIndex::build(&p, common::m(&base, dim)).expect("builds");
        let build = t.elapsed().as_secs_f64();
        let bytes = index.memory_bytes() as f64 / index.rows() as f64;
        eprintln!("{name}: built in {build:.2} s, nlist {}, {bytes:.1} bytes/vector", index.nlist());
        for nprobe in [Some(8), Some(16), Some(32), Some(64)] {
            let s = SearchParams { nprobe, ..Default::default() };
            let got = index.search(common::m(&queries, dim), 10, &s, SearchContext::new()).expect("searches");
            let np = nprobe.unwrap_or(index.default_nprobe());
            eprintln!("{name} nprobe={np}: recall@10 {:.3}", recall(&got, &truth));
            if p.index_type == IndexType::IvfPq && np != 16 {
                continue;
            }
            g.throughput(Throughput::Elements(1));
            g.bench_function(format!("{name}/nprobe={np}/single"), |b| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % nq;
                    index
                        .search(common::m(&queries[i * dim..(i + 1) * dim], dim), 10, &s, SearchContext::new())
                        .expect("searches")
                })
            });
            g.throughput(Throughput::Elements(nq as u64));
            g.bench_function(format!("{name}/nprobe={np}/batch1000"), |b| {
                b.iter(|| index.search(common::m(&queries, dim), 10, &s, SearchContext::new()).expect("searches"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

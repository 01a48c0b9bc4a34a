//! k-means: one Lloyd iteration (the target: n=50,000, d=384, k=1,024 at most
//! faiss' 0.26–0.32 s per iteration on this machine) and full training runs.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use fv_index::kmeans::{self, KMeansInit, KMeansParams};
use fv_index::ndarray::Array2;

fn bench(c: &mut Criterion) {
    let (data, dim, source) = common::base(50_000);
    eprintln!("kmeans data: {source}, {} × {dim}, {} rayon threads", data.len() / dim, rayon::current_num_threads());
    let mut g = c.benchmark_group("kmeans");
    g.sample_size(10);
    for (n, k) in [(10_000usize, 64usize), (50_000, 1024)] {
        let x = &data[..n * dim];
        let init: Vec<f32> = x.chunks_exact(dim).step_by(n / k).take(k).flatten().copied().collect();
        let init = Array2::from_shape_vec((k, dim), init).expect("k whole centroids");
        let gflop = 2.0 * n as f64 * k as f64 * dim as f64 / 1e9;
        eprintln!("kmeans n={n} k={k}: {gflop:.1} GFLOP per assignment");
        g.bench_function(format!("iteration/n={n}/d={dim}/k={k}"), |b| {
            b.iter_batched_ref(
                || init.clone(),
                |c| kmeans::iterate(common::m(x, dim), c.view_mut(), true).expect("iterates"),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    for (n, k, init) in [
        (10_000usize, 64usize, KMeansInit::PlusPlus),
        (50_000, 1024, KMeansInit::Random),
        (50_000, 1024, KMeansInit::PlusPlus),
    ] {
        let x = &data[..n * dim];
        let p = KMeansParams { spherical: true, init, ..KMeansParams::new(k) };
        let t = std::time::Instant::now();
        let km = kmeans::train(common::m(x, dim), &p).expect("trains");
        eprintln!(
            "train n={n} k={k} {init:?}: {} iterations in {:.3} s, objective {:.1} -> {:.1}",
            km.iterations,
            t.elapsed().as_secs_f64(),
            km.objective[0],
            km.objective[km.objective.len() - 1]
        );
        g.bench_function(format!("train10/n={n}/d={dim}/k={k}/{init:?}"), |b| {
            b.iter(|| kmeans::train(common::m(x, dim), &p).expect("trains"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

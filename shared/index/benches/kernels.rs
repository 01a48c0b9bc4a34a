//! Distance kernels (the run-time dispatched SIMD path) on one pair of vectors in L1, and
//! a one-query scan over 50,000 rows (memory-bound; the floor is bytes / bandwidth).

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fv_index::distance::{self, dot, l2_sq};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    eprintln!("kernel set: {}", distance::kernel_name());
    let mut g = c.benchmark_group("kernels");
    for dim in [128usize, 384, 768] {
        let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.11).cos()).collect();
        g.throughput(Throughput::Bytes((dim * 8) as u64));
        g.bench_function(format!("dot/{dim}"), |bn| bn.iter(|| dot(black_box(&a), black_box(&b))));
        g.bench_function(format!("l2/{dim}"), |bn| bn.iter(|| l2_sq(black_box(&a), black_box(&b))));
        g.bench_function(format!("portable_dot/{dim}"), |bn| {
            bn.iter(|| distance::portable_dot(black_box(&a), black_box(&b)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

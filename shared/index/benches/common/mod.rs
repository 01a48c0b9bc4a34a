//! Bench data: the real MiniLM embeddings when present, seeded synthetic data otherwise.
#![allow(dead_code)]

use std::io::Read;

use fv_index::ndarray::ArrayView2;

/// `x` (whole `dim`-d vectors, row-major) as a matrix view.
pub fn m(x: &[f32], dim: usize) -> ArrayView2<'_, f32> {
    fv_index::matrix_view(x, dim).expect("whole vectors")
}

/// The PyPI MiniLM-384 base set (50,000 × 384, unit norm), see shared/research/peers.md.
pub const REAL_BASE: &str = "/work/shared/data/pypi-minilm-384/base.fvecs";
/// Its public queries.
pub const REAL_QUERIES: &str = "/work/shared/data/pypi-minilm-384/queries_public.fvecs";

/// Reads up to `max_rows` rows of an fvecs file (per row: i32 dim, then dim f32 LE).
pub fn read_fvecs(path: &str, max_rows: usize) -> Option<(Vec<f32>, usize)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.read_to_end(&mut bytes).ok()?;
    let dim = i32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let stride = 4 + 4 * dim;
    let rows = (bytes.len() / stride).min(max_rows);
    let mut out = Vec::with_capacity(rows * dim);
    for r in 0..rows {
        let rec = &bytes[r * stride + 4..(r + 1) * stride];
        out.extend(rec.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    }
    Some((out, dim))
}

/// Seeded Gaussian-mixture data, normalised (like sentence embeddings).
pub fn synthetic(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut gauss = move || {
        let (u, v) = (next().max(1e-12), next());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    };
    let centers = 256;
    let c: Vec<f32> = (0..centers * dim).map(|_| gauss()).collect();
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        let j = (i * 7919) % centers;
        let start = out.len();
        for t in 0..dim {
            out.push(c[j * dim + t] + 0.5 * gauss());
        }
        let norm = out[start..].iter().map(|x| x * x).sum::<f32>().sqrt();
        out[start..].iter_mut().for_each(|x| *x /= norm);
    }
    out
}

/// `n × 384` base vectors: the real set when present (first n rows), else synthetic.
pub fn base(n: usize) -> (Vec<f32>, usize, &'static str) {
    match read_fvecs(REAL_BASE, n) {
        Some((v, d)) if v.len() == n * d => (v, d, "pypi-minilm-384"),
        _ => (synthetic(n, 384, 1), 384, "synthetic"),
    }
}

/// `n` queries like `base`.
pub fn queries(n: usize) -> Vec<f32> {
    match read_fvecs(REAL_QUERIES, n) {
        Some((v, d)) if v.len() == n * d && d == 384 => v,
        _ => synthetic(n, 384, 2),
    }
}

/// Exact top-k ground truth of the public queries (ivecs), when present.
pub fn ground_truth(k: usize) -> Option<Vec<Vec<u32>>> {
    let mut bytes = Vec::new();
    std::fs::File::open("/work/shared/data/pypi-minilm-384/gt_public.ivecs").ok()?.read_to_end(&mut bytes).ok()?;
    let dim = i32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let stride = 4 + 4 * dim;
    Some(
        bytes
            .chunks_exact(stride)
            .map(|rec| rec[4..].chunks_exact(4).take(k).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            .collect(),
    )
}

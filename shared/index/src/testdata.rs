//! Seeded synthetic data for the tests: a Gaussian mixture (clustered like real
//! embeddings, unlike uniform noise, on which no IVF index can reach useful recall).

use ndarray::ArrayView2;

use crate::rng::Rng;

/// `x` as `rows × dim` (tests hold whole vectors; `dim` 0 gives an empty matrix).
pub(crate) fn view(x: &[f32], dim: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((x.len().checked_div(dim).unwrap_or(0), dim), x).expect("whole vectors")
}

/// Standard normal sample (Box-Muller).
pub(crate) fn gauss(rng: &mut Rng) -> f32 {
    let u = rng.next_f64().max(1e-12);
    let v = rng.next_f64();
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

/// `n` points of a `centers`-component mixture in `dim` dimensions: centres ~ N(0, 1),
/// points = centre + N(0, 0.35²). Different seeds give different centres.
pub(crate) fn clustered(n: usize, dim: usize, centers: usize, seed: u64) -> Vec<f32> {
    mixture(n, dim, centers, seed, seed ^ 0xabc)
}

/// `n` points drawn from the same mixture as `clustered(_, dim, centers, seed)` (same
/// centres), with other noise: queries that look like the data.
pub(crate) fn queries_like(n: usize, dim: usize, centers: usize, seed: u64) -> Vec<f32> {
    mixture(n, dim, centers, seed, seed ^ 0xdef)
}

fn mixture(n: usize, dim: usize, centers: usize, center_seed: u64, point_seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(center_seed);
    let c: Vec<f32> = (0..centers * dim).map(|_| gauss(&mut rng)).collect();
    let mut rng = Rng::new(point_seed);
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let j = rng.below(centers);
        for t in 0..dim {
            out.push(c[j * dim + t] + 0.35 * gauss(&mut rng));
        }
    }
    out
}

//! The one GEMM shape the crate needs, on faer: inner products of two row-major blocks of
//! vectors. Row-major buffers are viewed as transposed column-major matrices, so nothing
//! is copied (see `shared/research/deps.md`: faer reaches ~90 % of this machine's FMA peak
//! per core on these shapes).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Inner products of every row of `a` (`na × dim`, row-major) with every row of `b`
/// (`nb × dim`, row-major), written column-major: `out[j * na + i] = a_i · b_j`, so the
/// scores of one `b` row against all `a` rows are contiguous.
///
/// Callers guarantee whole vectors and `out.len() == na * nb`.
pub(crate) fn dots(a: &[f32], b: &[f32], dim: usize, out: &mut [f32], par: Par) {
    let (na, nb) = (a.len() / dim, b.len() / dim);
    debug_assert_eq!(out.len(), na * nb);
    if na == 0 || nb == 0 {
        return;
    }
    let lhs = MatRef::from_column_major_slice(a, dim, na).transpose();
    let rhs = MatRef::from_column_major_slice(b, dim, nb);
    let dst = MatMut::from_column_major_slice_mut(out, na, nb);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_products() {
        let dim = 5;
        let a: Vec<f32> = (0..3 * dim).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..4 * dim).map(|i| 1.0 - i as f32 * 0.25).collect();
        let mut out = vec![0f32; 12];
        dots(&a, &b, dim, &mut out, Par::Seq);
        for j in 0..4 {
            for i in 0..3 {
                let want: f32 = (0..dim).map(|t| a[i * dim + t] * b[j * dim + t]).sum();
                assert!((out[j * 3 + i] - want).abs() < 1e-4, "{i},{j}");
            }
        }
    }
}

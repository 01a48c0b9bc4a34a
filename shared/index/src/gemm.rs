//! The one GEMM shape the crate needs, on faer: inner products of two blocks of vectors.
//! Operands arrive as ndarray views (the crate's matrix type at its boundary) and are seen
//! by faer through the same pointer and strides, so nothing is copied; a row-major block
//! is a transposed column-major matrix to faer (see `shared/research/deps.md`: faer
//! reaches ~90 % of this machine's FMA peak per core on these shapes).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{ArrayView2, ArrayViewMut2};

/// `a` as a faer matrix over the same memory.
fn faer_ref<'a>(a: ArrayView2<'a, f32>) -> MatRef<'a, f32> {
    let (rows, cols) = a.dim();
    let s = a.strides();
    // SAFETY: ndarray guarantees that `ptr + i·s[0] + j·s[1]` is a valid element of the
    // view for every `i < rows`, `j < cols`, alive and unaliased by writers for `'a`;
    // faer reads exactly those elements.
    unsafe { MatRef::from_raw_parts(a.as_ptr(), rows, cols, s[0], s[1]) }
}

/// `a` as a mutable faer matrix over the same memory.
fn faer_mut<'a>(mut a: ArrayViewMut2<'a, f32>) -> MatMut<'a, f32> {
    let (rows, cols) = a.dim();
    let (s0, s1) = (a.strides()[0], a.strides()[1]);
    // SAFETY: as in `faer_ref`; a mutable ndarray view never maps two indices to one
    // element, and the view is consumed, so faer has the only access for `'a`.
    unsafe { MatMut::from_raw_parts_mut(a.as_mut_ptr(), rows, cols, s0, s1) }
}

/// Inner products of every row of `a` (`na × dim`) with every row of `b` (`nb × dim`):
/// `out[(i, j)] = a_i · b_j` (`na × nb`). Callers lay `out` out column-major so that the
/// scores of one `b` row against all `a` rows are contiguous.
pub(crate) fn dots(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, out: ArrayViewMut2<'_, f32>, par: Par) {
    debug_assert_eq!(a.ncols(), b.ncols());
    debug_assert_eq!(out.dim(), (a.nrows(), b.nrows()));
    if a.nrows() == 0 || b.nrows() == 0 {
        return;
    }
    matmul(faer_mut(out), Accum::Replace, faer_ref(a), faer_ref(b.t()), 1.0f32, par);
}

/// [`dots`] over row-major buffers (`a`: `na × dim`, `b`: `nb × dim`) into a column-major
/// `out` of `na · nb` scores: `out[j · na + i] = a_i · b_j`. Callers guarantee whole
/// vectors and `out.len() == na · nb`.
pub(crate) fn dots_rows(a: &[f32], b: &[f32], dim: usize, out: &mut [f32], par: Par) {
    let (na, nb) = (a.len() / dim, b.len() / dim);
    let a = ArrayView2::from_shape((na, dim), a).expect("whole vectors, checked by the caller");
    let b = ArrayView2::from_shape((nb, dim), b).expect("whole vectors, checked by the caller");
    let out = ArrayViewMut2::from_shape(ndarray::ShapeBuilder::f((na, nb)), out).expect("na · nb scores");
    dots(a, b, out, par);
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ShapeBuilder, s};

    use super::*;

    #[test]
    fn matches_naive_products() {
        let dim = 5;
        let a: Vec<f32> = (0..3 * dim).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..4 * dim).map(|i| 1.0 - i as f32 * 0.25).collect();
        let mut out = vec![0f32; 12];
        dots_rows(&a, &b, dim, &mut out, Par::Seq);
        for j in 0..4 {
            for i in 0..3 {
                let want: f32 = (0..dim).map(|t| a[i * dim + t] * b[j * dim + t]).sum();
                assert!((out[j * 3 + i] - want).abs() < 1e-4, "{i},{j}");
            }
        }
    }

    /// Any strides work: a transposed operand, a strided slice, a row-major output.
    #[test]
    fn views_of_any_layout() {
        let a = Array2::from_shape_fn((6, 4), |(i, t)| (i * 4 + t) as f32 * 0.1);
        let b_t = Array2::from_shape_fn((4, 9), |(t, j)| 1.0 - (j * 4 + t) as f32 * 0.05);
        let b = b_t.t(); // 9 × 4, column-major
        let a_odd = a.slice(s![..;2, ..]); // rows 0, 2, 4
        let mut out = Array2::<f32>::zeros((3, 9)); // row-major
        dots(a_odd, b, out.view_mut(), Par::Seq);
        let want = a_odd.dot(&b.t());
        for (x, y) in out.iter().zip(want.iter()) {
            assert!((x - y).abs() < 1e-4);
        }
        let mut colmajor = Array2::<f32>::zeros((3, 9).f());
        dots(a_odd, b, colmajor.view_mut(), Par::Seq);
        assert_eq!(colmajor, out);
    }
}

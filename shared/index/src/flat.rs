//! Exact (FLAT) search: every allowed row is scored against every query.
//!
//! Two paths with one contract: few queries go row by row through the SIMD kernels
//! (`scan`: rows split over the cores when a single query meets a large segment); batches
//! of at least [`GEMM_MIN_QUERIES`] queries go through GEMM (`batch`, [`search_gemm`]),
//! which reads each row once per query block instead of once per query. What both need
//! (the parameters, the per-row score that fixes every returned score) is in `score`.

mod batch;
mod scan;
mod score;

pub use score::{SearchParams, row_norms, score};

use ndarray::ArrayView2;

use crate::context::SearchContext;
use crate::error::{IndexError, Result};
use crate::filter::FixedBitSet;
use crate::rows_of;
use crate::topk::Hit;
use scan::Scan;

/// Batches of at least this many queries use the GEMM path.
pub const GEMM_MIN_QUERIES: usize = 4;

/// Searches the rows of `queries` against the rows of `base` (`rows × dim`). Rows whose
/// bit is clear in `filter` are excluded (filter, deletes, visibility). Returns, per
/// query, up to `k` hits best first. Large batches are split over the available cores.
///
/// # Panics
/// If the dimensions differ or `filter`/`norms` do not cover every row;
/// [`search_filtered`] returns an error instead.
pub fn search(
    base: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    p: &SearchParams,
    filter: Option<&FixedBitSet>,
    norms: Option<&[f32]>,
) -> Vec<Vec<Hit>> {
    // No stop flag, so the only errors are the input errors the caller rules out.
    search_filtered(base, queries, p, SearchContext::new().with_filter(filter), norms).expect("valid flat search input")
}

/// [`search`] with a [`SearchContext`] (filter and stop flag), returning an error on
/// inconsistent input or [`IndexError::Cancelled`] once the stop flag is set.
pub fn search_filtered(
    base: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    p: &SearchParams,
    ctx: SearchContext<'_>,
    norms: Option<&[f32]>,
) -> Result<Vec<Vec<Hit>>> {
    let dim = check(base, queries)?;
    search_rows(&rows_of(base), dim, &rows_of(queries), p, ctx, norms)
}

/// [`search_filtered`] over row-major buffers: what the indexes call on the rows they hold.
pub(crate) fn search_rows(
    base: &[f32],
    dim: usize,
    queries: &[f32],
    p: &SearchParams,
    ctx: SearchContext<'_>,
    norms: Option<&[f32]>,
) -> Result<Vec<Vec<Hit>>> {
    validate(base, dim, queries, ctx, norms)?;
    let rows = base.len() / dim;
    let nq = queries.len() / dim;
    if nq >= GEMM_MIN_QUERIES && rows >= 2 * GEMM_MIN_QUERIES && p.k > 0 {
        return batch::search(base, dim, queries, p, ctx, norms);
    }
    Scan::new(base, dim, p, ctx, norms).queries(queries, true)
}

/// The common dimension of `base` and `queries`.
fn check(base: ArrayView2<'_, f32>, queries: ArrayView2<'_, f32>) -> Result<usize> {
    if base.ncols() != queries.ncols() {
        return Err(IndexError::input(format!("{}-d queries for {}-d rows", queries.ncols(), base.ncols())));
    }
    Ok(base.ncols())
}

fn validate(base: &[f32], dim: usize, queries: &[f32], ctx: SearchContext<'_>, norms: Option<&[f32]>) -> Result<()> {
    if dim == 0 || !base.len().is_multiple_of(dim) || !queries.len().is_multiple_of(dim) {
        return Err(IndexError::input(format!(
            "buffers of {} and {} floats do not hold whole {dim}-d vectors",
            base.len(),
            queries.len()
        )));
    }
    let rows = base.len() / dim;
    ctx.rows().check(rows)?;
    match norms {
        Some(n) if n.len() != rows => Err(IndexError::input(format!("{} norms for {rows} rows", n.len()))),
        _ => Ok(()),
    }
}

/// The per-row path only (no GEMM), for tests and benchmarks comparing the two. Same
/// contract as [`search_filtered`].
pub fn search_per_row(
    base: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    p: &SearchParams,
    ctx: SearchContext<'_>,
    norms: Option<&[f32]>,
) -> Result<Vec<Vec<Hit>>> {
    let dim = check(base, queries)?;
    let (base, queries) = (rows_of(base), rows_of(queries));
    validate(&base, dim, &queries, ctx, norms)?;
    Scan::new(&base, dim, p, ctx, norms).queries(&queries, false)
}

/// The GEMM path only, for tests and benchmarks comparing the two. Same contract as
/// [`search_filtered`].
pub fn search_gemm(
    base: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    p: &SearchParams,
    ctx: SearchContext<'_>,
    norms: Option<&[f32]>,
) -> Result<Vec<Vec<Hit>>> {
    let dim = check(base, queries)?;
    let (base, queries) = (rows_of(base), rows_of(queries));
    validate(&base, dim, &queries, ctx, norms)?;
    batch::search(&base, dim, &queries, p, ctx, norms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::from_bools;
    use crate::metric::Metric;
    use crate::testdata::view;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn naive(base: &[f32], dim: usize, q: &[f32], metric: Metric, k: usize, allowed: &[bool]) -> Vec<u32> {
        let mut scored: Vec<(f64, u32)> = base
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| allowed[*i])
            .map(|(i, v)| {
                let d: f64 = q.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum();
                let l2: f64 = q.iter().zip(v).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
                let qn: f64 = q.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
                let vn: f64 = v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
                let s = match metric {
                    Metric::L2 => l2,
                    Metric::Ip => -d,
                    Metric::Cosine => -d / (qn * vn),
                };
                (s, i as u32)
            })
            .collect();
        scored.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        scored.into_iter().take(k).map(|(_, i)| i).collect()
    }

    #[test]
    fn matches_brute_force_reference() {
        let mut rng = StdRng::seed_from_u64(11);
        let (rows, dim) = (2000, 33);
        let base: Vec<f32> = (0..rows * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let queries: Vec<f32> = (0..8 * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let allowed: Vec<bool> = (0..rows).map(|i| i % 3 != 0).collect();
        let norms = row_norms(&base, dim);
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let p = SearchParams { metric, k: 10, radius: None, range_filter: None };
            let got = search(view(&base, dim), view(&queries, dim), &p, Some(&from_bools(&allowed)), Some(&norms));
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                let want = naive(&base, dim, q, metric, 10, &allowed);
                let rows: Vec<u32> = got[qi].iter().map(|h| h.row).collect();
                assert_eq!(rows, want, "{metric:?} query {qi}");
            }
        }
    }

    #[test]
    fn range_search_keeps_only_the_window() {
        let base = vec![0.0f32, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0];
        let p = SearchParams { metric: Metric::L2, k: 10, radius: Some(5.0), range_filter: Some(1.0) };
        let got = search(view(&base, 2), view(&[0.0, 0.0], 2), &p, None, None);
        let rows: Vec<u32> = got[0].iter().map(|h| h.row).collect();
        assert_eq!(rows, vec![1, 2]); // distances 1 and 4 lie in [1, 5)
    }

    #[test]
    fn large_batches_use_threads_and_agree() {
        let mut rng = StdRng::seed_from_u64(5);
        let (rows, dim, nq) = (3000, 64, 40);
        let base: Vec<f32> = (0..rows * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let queries: Vec<f32> = (0..nq * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let p = SearchParams { metric: Metric::Ip, k: 5, radius: None, range_filter: None };
        let batched = search(view(&base, dim), view(&queries, dim), &p, None, None);
        for (qi, q) in queries.chunks_exact(dim).enumerate() {
            assert_eq!(batched[qi], search(view(&base, dim), view(q, dim), &p, None, None)[0]);
        }
    }
}

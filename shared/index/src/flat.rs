//! Exact (FLAT) search: every allowed row is scored against every query.

use crate::distance::{dot, l2_sq, norm};
use crate::metric::Metric;
use crate::topk::{Hit, TopK};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchParams {
    pub metric: Metric,
    /// Hits wanted per query.
    pub k: usize,
    /// Range search bounds (see [`Metric::in_range`]).
    pub radius: Option<f32>,
    pub range_filter: Option<f32>,
}

/// Row norms, for cosine scoring (computed once per sealed segment).
pub fn row_norms(base: &[f32], dim: usize) -> Vec<f32> {
    base.chunks_exact(dim).map(norm).collect()
}

/// Scores one query against one row.
#[inline]
pub fn score(metric: Metric, query: &[f32], query_norm: f32, row: &[f32], row_norm: Option<f32>) -> f32 {
    match metric {
        Metric::L2 => l2_sq(query, row),
        Metric::Ip => dot(query, row),
        Metric::Cosine => {
            let n = row_norm.unwrap_or_else(|| norm(row)) * query_norm;
            if n > 0.0 { dot(query, row) / n } else { 0.0 }
        }
    }
}

fn search_one(
    base: &[f32],
    dim: usize,
    q: &[f32],
    p: &SearchParams,
    allowed: Option<&[bool]>,
    norms: Option<&[f32]>,
) -> Vec<Hit> {
    let mut top = TopK::new(p.metric, p.k);
    let qn = if p.metric == Metric::Cosine { norm(q) } else { 0.0 };
    let ranged = p.radius.is_some() || p.range_filter.is_some();
    for (row, v) in base.chunks_exact(dim).enumerate() {
        if allowed.is_some_and(|a| !a[row]) {
            continue;
        }
        let s = score(p.metric, q, qn, v, norms.map(|n| n[row]));
        if s.is_nan() || (ranged && !p.metric.in_range(s, p.radius, p.range_filter)) {
            continue;
        }
        top.push(Hit { row: row as u32, score: s });
    }
    top.into_sorted()
}

/// Searches `queries` (row-major, `nq * dim`) against `base` (row-major `rows * dim`).
/// `allowed[row] == false` excludes a row (filter, deletes, visibility). Returns, per
/// query, up to `k` hits best first. Large batches are split over the available cores.
pub fn search(
    base: &[f32],
    dim: usize,
    queries: &[f32],
    p: &SearchParams,
    allowed: Option<&[bool]>,
    norms: Option<&[f32]>,
) -> Vec<Vec<Hit>> {
    assert!(
        dim > 0 && base.len().is_multiple_of(dim) && queries.len().is_multiple_of(dim),
        "buffers must hold whole vectors"
    );
    if let Some(a) = allowed {
        assert_eq!(a.len(), base.len() / dim, "one filter flag per row");
    }
    let nq = queries.len() / dim;
    let rows = base.len() / dim;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(nq);
    if threads <= 1 || (nq * rows * dim) < 4_000_000 {
        return queries.chunks_exact(dim).map(|q| search_one(base, dim, q, p, allowed, norms)).collect();
    }
    let per = nq.div_ceil(threads);
    let mut out: Vec<Vec<Hit>> = Vec::with_capacity(nq);
    std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per * dim)
            .map(|chunk| {
                s.spawn(move || {
                    chunk.chunks_exact(dim).map(|q| search_one(base, dim, q, p, allowed, norms)).collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            out.extend(h.join().expect("search worker does not panic"));
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
            let got = search(&base, dim, &queries, &p, Some(&allowed), Some(&norms));
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
        let got = search(&base, 2, &[0.0, 0.0], &p, None, None);
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
        let batched = search(&base, dim, &queries, &p, None, None);
        for (qi, q) in queries.chunks_exact(dim).enumerate() {
            assert_eq!(batched[qi], search(&base, dim, q, &p, None, None)[0]);
        }
    }
}

//! What both exact-search paths share: the search's parameters and the per-row scoring
//! that fixes every returned score (the GEMM path rescores its hits with it, so both paths
//! return the same scores bit for bit).

use crate::distance::{dot, l2_sq, norm};
use crate::metric::Metric;

/// How to score and select in an exact search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchParams {
    /// Metric of the vectors.
    pub metric: Metric,
    /// Hits wanted per query.
    pub k: usize,
    /// Range search bounds (see [`Metric::in_range`]).
    pub radius: Option<f32>,
    /// Range search bounds (see [`Metric::in_range`]).
    pub range_filter: Option<f32>,
}

impl SearchParams {
    /// Whether the search has range bounds.
    #[inline]
    pub(crate) fn ranged(&self) -> bool {
        self.radius.is_some() || self.range_filter.is_some()
    }
}

/// Row norms, for cosine scoring (computed once per sealed segment).
pub fn row_norms(base: &[f32], dim: usize) -> Vec<f32> {
    base.chunks_exact(dim).map(norm).collect()
}

/// Scores one query against one row (`query_norm` is used for COSINE only; `row_norm`
/// is computed when absent).
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

/// The norm `score` needs of a query: its norm for COSINE, unused (0) otherwise.
#[inline]
pub(crate) fn query_norm(metric: Metric, q: &[f32]) -> f32 {
    if metric == Metric::Cosine { norm(q) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_the_metric_values() {
        let (q, r) = ([1.0f32, 2.0, 2.0], [2.0f32, 0.0, 1.0]);
        assert_eq!(score(Metric::L2, &q, 0.0, &r, None), 1.0 + 4.0 + 1.0);
        assert_eq!(score(Metric::Ip, &q, 0.0, &r, None), 4.0);
        let qn = query_norm(Metric::Cosine, &q);
        assert_eq!(qn, 3.0);
        let c = score(Metric::Cosine, &q, qn, &r, None);
        assert!((c - 4.0 / (3.0 * 5f32.sqrt())).abs() < 1e-6);
        assert_eq!(score(Metric::Cosine, &q, qn, &r, Some(norm(&r))), c);
        assert_eq!(score(Metric::Cosine, &q, qn, &[0.0; 3], None), 0.0);
        assert_eq!(row_norms(&[3.0, 4.0, 0.0, 0.0], 2), vec![5.0, 0.0]);
        let p = SearchParams { metric: Metric::L2, k: 1, radius: None, range_filter: None };
        assert!(!p.ranged() && SearchParams { radius: Some(1.0), ..p }.ranged());
    }
}

//! How HNSW compares a query with rows: exact distances on the f32 rows, or approximate
//! ones through 8-bit codes of every row, which the graph walks use (a 384-d row is
//! 1,536 bytes fetched from a random place for one inner product; its code is 384).
//!
//! Internally every metric is a distance, smaller is closer: squared L2, or the negated
//! inner product for IP and COSINE (whose vectors are normalised).

use crate::distance::{dot, l2_sq};
use crate::memory::prefetch;
use crate::metric::Metric;
use crate::sq8::{self, Sq8Range};

/// The vectors and how to compare them.
#[derive(Clone, Copy)]
pub(super) struct Space<'a> {
    pub v: &'a [f32],
    pub dim: usize,
    pub l2: bool,
}

impl<'a> Space<'a> {
    pub fn new(v: &'a [f32], dim: usize, metric: Metric) -> Space<'a> {
        Space { v, dim, l2: metric == Metric::L2 }
    }

    pub fn rows(&self) -> usize {
        self.v.len() / self.dim
    }

    #[inline(always)]
    pub fn row(&self, i: u32) -> &'a [f32] {
        let s = i as usize * self.dim;
        &self.v[s..s + self.dim]
    }

    /// Distance of `q` to row `i`: squared L2, or the negated inner product.
    #[inline(always)]
    pub fn dist(&self, q: &[f32], i: u32) -> f32 {
        if self.l2 { l2_sq(q, self.row(i)) } else { -dot(q, self.row(i)) }
    }
}

/// The metric score of an internal distance.
#[inline]
pub(super) fn score(metric: Metric, d: f32) -> f32 {
    if metric == Metric::L2 { d } else { -d }
}

/// Distances of one query to rows: what the graph walks need.
pub(super) trait QueryDist {
    /// Distance to row `i` (smaller is closer).
    fn dist(&self, i: u32) -> f32;
    /// Starts loading what `dist(i)` reads.
    fn prefetch(&self, i: u32);
}

/// Exact distances to the f32 rows.
pub(super) struct Exact<'a> {
    pub sp: Space<'a>,
    pub q: &'a [f32],
}

impl QueryDist for Exact<'_> {
    #[inline(always)]
    fn dist(&self, i: u32) -> f32 {
        self.sp.dist(self.q, i)
    }

    /// The first lines only: the hardware prefetcher follows the rest once the kernel
    /// streams through the row, and prefetching all of it stalls on fill buffers.
    #[inline(always)]
    fn prefetch(&self, i: u32) {
        let row = self.sp.row(i);
        prefetch(&row[..row.len().min(64)]);
    }
}

/// 8-bit codes of the rows, one per dimension, with the per-dimension minimum and step
/// over all rows (the quantiser IVF_SQ8 fits to its residuals). Derived from the vectors
/// at build and load, not stored.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RowCodes {
    range: Sq8Range,
    /// `rows × dim`, row order.
    codes: Vec<u8>,
}

impl RowCodes {
    pub fn encode(v: &[f32], dim: usize) -> RowCodes {
        let range = Sq8Range::fit_rows(v, dim);
        let codes = range.encode_rows(v, dim);
        RowCodes { range, codes }
    }

    pub fn memory_bytes(&self) -> usize {
        self.codes.len() + self.range.memory_bytes()
    }
}

/// Approximate distances through the codes: for L2 `Σ (a_i − step_i·c_i)²` with
/// `a = q − vmin`; for IP `−(q·vmin + Σ (q_i·step_i)·c_i)`.
pub(super) struct Coded<'a> {
    rc: &'a RowCodes,
    dim: usize,
    l2: bool,
    w: Vec<f32>,
    qv: f32,
}

impl<'a> Coded<'a> {
    pub fn new(rc: &'a RowCodes, q: &[f32], l2: bool) -> Coded<'a> {
        if l2 {
            let w = q.iter().zip(&rc.range.vmin).map(|(q, m)| q - m).collect();
            Coded { rc, dim: q.len(), l2, w, qv: 0.0 }
        } else {
            let (qv, w) = rc.range.ip_query(q);
            Coded { rc, dim: q.len(), l2, w, qv }
        }
    }

    #[inline(always)]
    fn code(&self, i: u32) -> &'a [u8] {
        &self.rc.codes[i as usize * self.dim..(i as usize + 1) * self.dim]
    }
}

impl QueryDist for Coded<'_> {
    #[inline(always)]
    fn dist(&self, i: u32) -> f32 {
        let c = self.code(i);
        if self.l2 { sq8::l2(&self.w, &self.rc.range.step, c) } else { -(self.qv + sq8::dot(&self.w, c)) }
    }

    /// The whole code (a few lines): it is read at once.
    #[inline(always)]
    fn prefetch(&self, i: u32) {
        prefetch(self.code(i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::clustered;

    #[test]
    fn coded_distances_approximate_exact_ones() {
        let (n, dim) = (200, 24);
        let v = clustered(n, dim, 5, 40);
        let rc = RowCodes::encode(&v, dim);
        assert_eq!(rc.memory_bytes(), n * dim + dim * 8);
        for metric in [Metric::L2, Metric::Ip] {
            let sp = Space::new(&v, dim, metric);
            assert_eq!(sp.rows(), n);
            let q = sp.row(7);
            let (exact, coded) = (Exact { sp, q }, Coded::new(&rc, q, sp.l2));
            for i in 0..n as u32 {
                let (e, c) = (exact.dist(i), coded.dist(i));
                assert!((e - c).abs() <= 0.05 * e.abs().max(1.0), "{metric:?} row {i}: {e} vs {c}");
                exact.prefetch(i);
                coded.prefetch(i);
            }
            assert_eq!(score(metric, exact.dist(7)), if metric == Metric::L2 { 0.0 } else { dot(q, q) });
        }
    }
}

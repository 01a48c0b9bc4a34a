//! The per-row exact path: each query against every allowed row through the SIMD kernels,
//! 64 scores at a time into the selection. A single query over a large segment is split
//! into row chunks over the cores; several queries over a large segment are spread over
//! the cores one query per task.

use rayon::prelude::*;

use super::score::{SearchParams, query_norm, score};
use crate::context::{SearchContext, Stop};
use crate::error::Result;
use crate::filter::RowFilter;
use crate::topk::{Hit, TopK};

/// At most this many rows per task when one query's scan is split over the cores.
const SCAN_CHUNK: usize = 4096;
/// A single query's scan is split over the cores from this many floats (4 MiB) on.
const SPLIT_FLOATS: usize = 1 << 20;
/// Queries are spread over the cores from this many multiply-adds (queries × rows × dim) on.
const PARALLEL_QUERIES_WORK: usize = 4_000_000;
/// A scan polls its stop flag every this many 64-row blocks (4,096 rows).
const STOP_BLOCKS: usize = 64;

/// One exact search's inputs, shared by its row scans.
#[derive(Clone, Copy)]
pub(super) struct Scan<'a> {
    pub base: &'a [f32],
    pub dim: usize,
    pub p: &'a SearchParams,
    pub filter: RowFilter<'a>,
    pub stop: Stop<'a>,
    pub norms: Option<&'a [f32]>,
}

impl<'a> Scan<'a> {
    pub fn new(
        base: &'a [f32],
        dim: usize,
        p: &'a SearchParams,
        ctx: SearchContext<'a>,
        norms: Option<&'a [f32]>,
    ) -> Scan<'a> {
        Scan { base, dim, p, filter: ctx.rows(), stop: ctx.stop(), norms }
    }

    /// Every query, best first per query. `spread` lets large batches take one query per
    /// task (the dispatching search); without it queries run in order, each split over the
    /// cores when large (the per-row path of tests and benchmarks).
    pub fn queries(&self, queries: &[f32], spread: bool) -> Result<Vec<Vec<Hit>>> {
        let (dim, rows) = (self.dim, self.base.len() / self.dim);
        let nq = queries.len() / dim;
        if spread && rayon::current_num_threads() > 1 && nq > 1 && nq * rows * dim >= PARALLEL_QUERIES_WORK {
            return queries.par_chunks_exact(dim).map(|q| self.one(q, false)).collect();
        }
        queries.chunks_exact(dim).map(|q| self.one(q, true)).collect()
    }

    /// Scans rows `range` for one query into `top`, 64 rows at a time: a block the filter
    /// excludes whole is skipped on one word test, the others' scores go through
    /// [`TopK::push_block`] (which skips chunks that cannot enter).
    fn rows(&self, q: &[f32], qn: f32, range: std::ops::Range<usize>, top: &mut TopK) -> Result<()> {
        let (p, dim) = (self.p, self.dim);
        let ranged = p.ranged();
        let (mut scores, mut ids) = ([0f32; 64], [0u32; 64]);
        let mut start = range.start;
        let mut blocks = 0usize;
        while start < range.end {
            if blocks.is_multiple_of(STOP_BLOCKS) {
                self.stop.check()?;
            }
            blocks += 1;
            let end = (start + 64).min(range.end);
            let mut n = 0;
            let mut push = |row: usize| {
                let s = score(p.metric, q, qn, &self.base[row * dim..(row + 1) * dim], self.norms.map(|n| n[row]));
                if !ranged || p.metric.in_range(s, p.radius, p.range_filter) {
                    scores[n] = s;
                    ids[n] = row as u32;
                    n += 1;
                }
            };
            if self.filter.is_all() {
                (start..end).for_each(&mut push);
            } else {
                let mut w = self.filter.word(start, end - start);
                while w != 0 {
                    push(start + w.trailing_zeros() as usize);
                    w &= w - 1;
                }
            }
            top.push_block(&scores[..n], 0, Some(&ids[..n]));
            start = end;
        }
        Ok(())
    }

    /// One query over all rows; `split` spreads large scans over the cores.
    fn one(&self, q: &[f32], split: bool) -> Result<Vec<Hit>> {
        let p = self.p;
        let qn = query_norm(p.metric, q);
        let rows = self.base.len() / self.dim;
        let threads = rayon::current_num_threads();
        if !split || threads < 2 || rows * self.dim < SPLIT_FLOATS {
            let mut top = TopK::new(p.metric, p.k);
            self.rows(q, qn, 0..rows, &mut top)?;
            return Ok(top.into_sorted());
        }
        let chunk = rows.div_ceil(threads * 4).clamp(256, SCAN_CHUNK);
        let parts: Vec<TopK> = (0..rows.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let mut top = TopK::new(p.metric, p.k);
                self.rows(q, qn, c * chunk..((c + 1) * chunk).min(rows), &mut top)?;
                Ok(top)
            })
            .collect::<Result<_>>()?;
        let mut top = TopK::new(p.metric, p.k);
        for part in parts {
            top.merge(part);
        }
        Ok(top.into_sorted())
    }
}

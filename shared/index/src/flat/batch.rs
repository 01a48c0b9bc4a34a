//! Batched exact search: many queries against many rows as GEMM.
//!
//! Scores come from one product per (row block × query block): `x·y` for IP, `x·y / (‖x‖‖y‖)`
//! for COSINE and `‖x‖² − 2x·y + ‖y‖²` for L2. Blocks keep memory bounded (a score block is
//! at most `ROW_BLOCK × QUERY_BLOCK` floats per task) and let the row block stay in cache
//! across query blocks. Rows excluded by the filter are gathered out before the product
//! (a word of 64 excluded rows at a time), so they are never scored; the stop flag is
//! polled before every block product. Each query's column goes through [`TopK::push_block`].
//!
//! The kept hits are then rescored with the per-row kernels ([`score`]) so that scores
//! equal the per-row path bit for bit; rankings can differ from it only for candidates
//! whose GEMM and kernel scores straddle a float tie at the k-th place (or a range bound).

use faer::Par;
use rayon::prelude::*;

use super::score::{SearchParams, query_norm, score};
use crate::context::{SearchContext, Stop};
use crate::distance::{dot, norm};
use crate::error::Result;
use crate::filter::RowFilter;
use crate::gemm;
use crate::metric::Metric;
use crate::topk::{Hit, TopK};

/// Rows per GEMM block.
const ROW_BLOCK: usize = 2048;
/// Queries per GEMM block.
const QUERY_BLOCK: usize = 512;
/// Fewest queries a task is given when queries are split over tasks.
const MIN_TASK_QUERIES: usize = 32;

/// Exact search of `queries` against `base` through GEMM. Same contract as
/// [`super::search_filtered`] (whole vectors, filter and norms cover every row).
pub(super) fn search(
    base: &[f32],
    dim: usize,
    queries: &[f32],
    p: &SearchParams,
    ctx: SearchContext<'_>,
    norms: Option<&[f32]>,
) -> Result<Vec<Vec<Hit>>> {
    let rows = base.len() / dim;
    let nq = queries.len() / dim;
    let metric = p.metric;
    let qterm: Vec<f32> = match metric {
        Metric::L2 => queries.chunks_exact(dim).map(|q| dot(q, q)).collect(),
        Metric::Cosine => queries.chunks_exact(dim).map(norm).collect(),
        Metric::Ip => Vec::new(),
    };
    // Tasks: row-block ranges × query ranges, enough of them to keep every core busy
    // (few rows, e.g. IVF centroids, are split by queries instead).
    let nblocks = rows.div_ceil(ROW_BLOCK);
    let want = rayon::current_num_threads() * 4;
    let row_tasks = nblocks.min(want).max(1);
    let per_rows = nblocks.div_ceil(row_tasks);
    let query_tasks = want.div_ceil(row_tasks).min(nq.div_ceil(MIN_TASK_QUERIES)).max(1);
    let per_queries = nq.div_ceil(query_tasks);
    let tasks: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> = (0..row_tasks)
        .flat_map(|t| {
            let blocks = t * per_rows..((t + 1) * per_rows).min(nblocks);
            (0..query_tasks).map(move |u| (blocks.clone(), u * per_queries..((u + 1) * per_queries).min(nq)))
        })
        .filter(|(b, q)| !b.is_empty() && !q.is_empty())
        .collect();
    let job = Ctx { base, dim, queries, p, filter: ctx.rows(), stop: ctx.stop(), norms, qterm: &qterm };
    let partial: Vec<(usize, Vec<TopK>)> =
        tasks.into_par_iter().map(|(blocks, qs)| Ok((qs.start, job.run(blocks, qs)?))).collect::<Result<_>>()?;
    let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(metric, p.k)).collect();
    for (start, part) in partial {
        for (t, o) in tops[start..].iter_mut().zip(part) {
            t.merge(o);
        }
    }
    Ok(tops.into_iter().zip(queries.chunks_exact(dim)).map(|(top, q)| rescore(base, dim, q, p, norms, top)).collect())
}

/// Rescores the selected hits with the per-row kernel and sorts them best first.
fn rescore(base: &[f32], dim: usize, q: &[f32], p: &SearchParams, norms: Option<&[f32]>, top: TopK) -> Vec<Hit> {
    let qn = query_norm(p.metric, q);
    let ranged = p.ranged();
    let mut out = TopK::new(p.metric, p.k);
    for h in top.into_sorted() {
        let r = h.row as usize;
        let s = score(p.metric, q, qn, &base[r * dim..(r + 1) * dim], norms.map(|n| n[r]));
        if !s.is_nan() && (!ranged || p.metric.in_range(s, p.radius, p.range_filter)) {
            out.push(Hit { row: h.row, score: s });
        }
    }
    out.into_sorted()
}

struct Ctx<'a> {
    base: &'a [f32],
    dim: usize,
    queries: &'a [f32],
    p: &'a SearchParams,
    filter: RowFilter<'a>,
    stop: Stop<'a>,
    norms: Option<&'a [f32]>,
    qterm: &'a [f32],
}

impl Ctx<'_> {
    /// Scores queries `qs` against row blocks `blocks`; returns the best k of each query
    /// (index 0 is query `qs.start`).
    fn run(&self, blocks: std::ops::Range<usize>, qs: std::ops::Range<usize>) -> Result<Vec<TopK>> {
        let (dim, p) = (self.dim, self.p);
        let rows = self.base.len() / dim;
        let ranged = p.ranged();
        let mut tops: Vec<TopK> = qs.clone().map(|_| TopK::new(p.metric, p.k)).collect();
        let (mut ids, mut gathered, mut rterm, mut out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for b in blocks {
            let (start, end) = (b * ROW_BLOCK, ((b + 1) * ROW_BLOCK).min(rows));
            let mut block = &self.base[start * dim..end * dim];
            let mut block_ids: Option<&[u32]> = None;
            if !self.filter.is_all() {
                ids.clear();
                ids.extend(self.filter.allowed_in(start..end).map(|r| r as u32));
                if ids.is_empty() {
                    continue;
                }
                if ids.len() < end - start {
                    gathered.clear();
                    for &r in &ids {
                        let r = r as usize;
                        gathered.extend_from_slice(&self.base[r * dim..(r + 1) * dim]);
                    }
                    block = &gathered;
                    block_ids = Some(&ids);
                }
            }
            let nb = block.len() / dim;
            let row_of = |j: usize| block_ids.map_or(start + j, |ids| ids[j] as usize);
            rterm.clear();
            match p.metric {
                Metric::L2 => rterm.extend(block.chunks_exact(dim).map(|r| dot(r, r))),
                Metric::Cosine => match self.norms {
                    Some(n) => rterm.extend((0..nb).map(|j| n[row_of(j)])),
                    None => rterm.extend(block.chunks_exact(dim).map(norm)),
                },
                Metric::Ip => {}
            }
            for qb in qs.clone().step_by(QUERY_BLOCK) {
                let qe = (qb + QUERY_BLOCK).min(qs.end);
                self.stop.check()?;
                out.clear();
                out.resize(nb * (qe - qb), 0f32);
                gemm::dots_rows(block, &self.queries[qb * dim..qe * dim], dim, &mut out, Par::Seq);
                for (qi, col) in (qb..qe).zip(out.chunks_exact_mut(nb)) {
                    to_scores(p.metric, col, &rterm, self.qterm.get(qi).copied().unwrap_or(0.0));
                    if ranged {
                        for (j, &s) in col.iter().enumerate() {
                            if !s.is_nan() && p.metric.in_range(s, p.radius, p.range_filter) {
                                tops[qi - qs.start].push(Hit { row: row_of(j) as u32, score: s });
                            }
                        }
                    } else {
                        tops[qi - qs.start].push_block(col, start as u32, block_ids);
                    }
                }
            }
        }
        Ok(tops)
    }
}

/// Turns inner products into metric scores in place (vectorisable loops).
#[inline]
fn to_scores(metric: Metric, col: &mut [f32], rterm: &[f32], qterm: f32) {
    match metric {
        Metric::Ip => {}
        Metric::L2 => {
            for (g, &r) in col.iter_mut().zip(rterm) {
                *g = (qterm + r - 2.0 * *g).max(0.0);
            }
        }
        Metric::Cosine => {
            for (g, &r) in col.iter_mut().zip(rterm) {
                let den = qterm * r;
                *g = if den > 0.0 { *g / den } else { 0.0 };
            }
        }
    }
}

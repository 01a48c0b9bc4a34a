//! IVF_FLAT: inverted lists holding the (COSINE: normalised) vectors themselves, stored
//! in list order next to the row ids so a list scan reads one contiguous block. The index
//! carries its own copy of the vectors, as faiss' IndexIVFFlat does: the file is
//! self-contained and a query node needs nothing else to search it.
//!
//! Few queries are searched one by one (probe, then scan each probed list with the SIMD
//! kernels). Batches of at least [`LIST_GEMM_MIN_QUERIES`] are searched *list-major*: the
//! queries probing a list are gathered and scored against the whole list with one GEMM,
//! so each list is read once per batch instead of once per query (a per-query scan is
//! memory-bound; this is compute-bound). Kept hits are rescored with the per-row kernels,
//! so both paths return the same scores.

use std::ops::Range;

use faer::Par;
use rayon::prelude::*;

use crate::context::{SearchContext, Stop};
use crate::distance::{dot, dot_rows, l2_rows, l2_sq};
use crate::error::{IndexError, Result};
use crate::filter::RowFilter;
use crate::format::{Meta, Reader, Writer};
use crate::gemm;
use crate::memory::{prefetch, scan_vec};
use crate::metric::Metric;
use crate::params::{Bounds, IndexParams};
use crate::topk::{Hit, TopK};

use super::ivf::{self, IvfLists, ListScan};

/// Batches of at least this many queries are searched list-major with GEMM.
pub const LIST_GEMM_MIN_QUERIES: usize = 8;
/// Queries searched list-major together (bounds the per-task selection state).
const QUERY_CHUNK: usize = 1024;

/// Rows scored per prefetch request in a one-query list scan: small, so that the requests
/// spread over the scan instead of queueing on the core's fill buffers in bursts (8-row
/// bursts stalled on the prefetch instructions themselves).
const SCAN_STEP: usize = 4;

/// How far ahead a one-query list scan requests rows: about 8 KiB of vectors (5 rows at
/// d=384; in a micro-benchmark 4 and 8 rows of 1.5 KB did equally well).
fn prefetch_rows(dim: usize) -> usize {
    const PREFETCH_BYTES: usize = 8 << 10;
    (PREFETCH_BYTES / (dim * 4).max(1)).clamp(1, 64)
}

/// Inverted lists of raw vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct IvfFlatIndex {
    pub(crate) meta: Meta,
    pub(crate) ivf: IvfLists,
    /// `rows × dim` in list order (position `p` holds row `ivf.ids[p]`).
    vectors: Vec<f32>,
    /// Squared norms per position, for L2 by GEMM (derived, not stored).
    sq_norms: Vec<f32>,
}

fn sq_norms(metric: Metric, vectors: &[f32], dim: usize) -> Vec<f32> {
    if metric == Metric::L2 { vectors.chunks_exact(dim).map(|v| dot(v, v)).collect() } else { Vec::new() }
}

impl IvfFlatIndex {
    /// Builds from prepared (COSINE: normalised) vectors.
    pub(crate) fn build(meta: Meta, x: &[f32], p: &IndexParams, stop: Stop<'_>) -> Result<IvfFlatIndex> {
        let (ivf, _) = IvfLists::build(x, meta.dim, meta.metric, p, stop)?;
        let dim = meta.dim;
        let mut vectors = scan_vec(x.len());
        for &id in &ivf.ids {
            vectors.extend_from_slice(&x[id as usize * dim..(id as usize + 1) * dim]);
        }
        let meta = Meta { nlist: ivf.nlist(), default_nprobe: meta.default_nprobe.min(ivf.nlist()), ..meta };
        let sq_norms = sq_norms(meta.metric, &vectors, dim);
        Ok(IvfFlatIndex { meta, ivf, vectors, sq_norms })
    }

    pub(crate) fn search(
        &self,
        queries: &[f32],
        k: usize,
        nprobe: usize,
        ctx: SearchContext<'_>,
        b: &Bounds,
    ) -> Result<Vec<Vec<Hit>>> {
        let dim = self.meta.dim;
        if queries.len() / dim < LIST_GEMM_MIN_QUERIES {
            return ivf::search(&self.ivf, self, self.meta.metric, queries, k, nprobe, ctx, b);
        }
        let mut out = Vec::with_capacity(queries.len() / dim);
        for chunk in queries.chunks(QUERY_CHUNK * dim) {
            out.extend(self.search_list_major(chunk, k, nprobe, ctx, b)?);
        }
        Ok(out)
    }

    /// The list-major GEMM path for one chunk of queries (the stop flag polled before each
    /// list).
    fn search_list_major(
        &self,
        queries: &[f32],
        k: usize,
        nprobe: usize,
        ctx: SearchContext<'_>,
        b: &Bounds,
    ) -> Result<Vec<Vec<Hit>>> {
        let (dim, metric, ivf) = (self.meta.dim, self.meta.metric, &self.ivf);
        let (nq, nlist) = (queries.len() / dim, ivf.nlist());
        let probes = ivf.probe(queries, nprobe.clamp(1, nlist), metric, ctx.stop())?;
        // Queries of each list (CSR).
        let mut qoff = vec![0usize; nlist + 1];
        for h in probes.iter().flatten() {
            qoff[h.row as usize + 1] += 1;
        }
        for l in 0..nlist {
            qoff[l + 1] += qoff[l];
        }
        let mut fill = qoff.clone();
        let mut qids = vec![0u32; qoff[nlist]];
        for (qi, p) in probes.iter().enumerate() {
            for h in p {
                qids[fill[h.row as usize]] = qi as u32;
                fill[h.row as usize] += 1;
            }
        }
        // Contiguous list ranges of about equal work (list rows × queries).
        let work = |l: usize| ivf.list(l).len() * (qoff[l + 1] - qoff[l]) + 1;
        let total: usize = (0..nlist).map(work).sum();
        let per_task = total.div_ceil(rayon::current_num_threads() * 4).max(1);
        let mut ranges = Vec::new();
        let (mut start, mut acc) = (0, 0);
        for l in 0..nlist {
            acc += work(l);
            if acc >= per_task || l + 1 == nlist {
                ranges.push(start..l + 1);
                (start, acc) = (l + 1, 0);
            }
        }
        let qsq: Vec<f32> =
            if metric == Metric::L2 { queries.chunks_exact(dim).map(|q| dot(q, q)).collect() } else { Vec::new() };
        let job = ListMajor {
            index: self,
            queries,
            qoff: &qoff,
            qids: &qids,
            qsq: &qsq,
            k,
            filter: ctx.rows(),
            stop: ctx.stop(),
            bounds: b,
        };
        let partial: Vec<Vec<TopK>> = ranges.into_par_iter().map(|r| job.run(r)).collect::<Result<_>>()?;
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(metric, k)).collect();
        for part in partial {
            for (t, o) in tops.iter_mut().zip(part) {
                t.merge(o);
            }
        }
        // Rescore the kept positions exactly and map them to row ids.
        Ok(tops
            .into_iter()
            .zip(queries.chunks_exact(dim))
            .map(|(top, q)| {
                let mut out = TopK::new(metric, k);
                for h in top.into_sorted() {
                    let p = h.row as usize;
                    let v = &self.vectors[p * dim..(p + 1) * dim];
                    let s = if metric == Metric::L2 { l2_sq(q, v) } else { dot(q, v) };
                    if !b.active() || metric.in_range(s, b.radius, b.range_filter) {
                        out.push(Hit { row: ivf.ids[p], score: s });
                    }
                }
                out.into_sorted()
            })
            .collect())
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.ivf.memory_bytes() + self.vectors.len() * 4
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        self.ivf.write(w);
        w.f32s(&self.vectors);
    }

    pub(crate) fn read(meta: Meta, r: &mut Reader<'_>) -> Result<IvfFlatIndex> {
        let ivf = IvfLists::read(r, meta.dim, meta.rows, meta.nlist, meta.metric)?;
        let vectors = r.f32s(meta.rows * meta.dim, "vectors")?;
        if meta.m != 0 || meta.nbits != 0 {
            return Err(IndexError::corrupt("IVF_FLAT header carries PQ parameters"));
        }
        let sq_norms = sq_norms(meta.metric, &vectors, meta.dim);
        Ok(IvfFlatIndex { meta, ivf, vectors, sq_norms })
    }
}

/// One list-major batch: the queries of each list, scored list by list.
struct ListMajor<'a> {
    index: &'a IvfFlatIndex,
    queries: &'a [f32],
    qoff: &'a [usize],
    qids: &'a [u32],
    qsq: &'a [f32],
    k: usize,
    filter: RowFilter<'a>,
    stop: Stop<'a>,
    bounds: &'a Bounds,
}

impl ListMajor<'_> {
    /// Scores lists `lists` against their queries; hits carry list *positions*.
    fn run(&self, lists: Range<usize>) -> Result<Vec<TopK>> {
        let ix = self.index;
        let (dim, metric, ivf) = (ix.meta.dim, ix.meta.metric, &ix.ivf);
        let nq = self.queries.len() / dim;
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(metric, self.k)).collect();
        let (mut pos, mut gathered, mut qbuf, mut out, mut rterm) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for l in lists {
            let qs = &self.qids[self.qoff[l]..self.qoff[l + 1]];
            let range = ivf.list(l);
            if qs.is_empty() || range.is_empty() {
                continue;
            }
            self.stop.check()?;
            let mut block = &ix.vectors[range.start * dim..range.end * dim];
            let mut positions: Option<&[u32]> = None;
            if !self.filter.is_all() {
                pos.clear();
                pos.extend(range.clone().filter(|&p| self.filter.allows(ivf.ids[p] as usize)).map(|p| p as u32));
                if pos.is_empty() {
                    continue;
                }
                if pos.len() < range.len() {
                    gathered.clear();
                    for &p in &pos {
                        gathered.extend_from_slice(&ix.vectors[p as usize * dim..(p as usize + 1) * dim]);
                    }
                    block = &gathered;
                    positions = Some(&pos);
                }
            }
            let nb = block.len() / dim;
            if metric == Metric::L2 {
                rterm.clear();
                rterm.extend((0..nb).map(|j| ix.sq_norms[positions.map_or(range.start + j, |p| p[j] as usize)]));
            }
            qbuf.clear();
            for &qi in qs {
                qbuf.extend_from_slice(&self.queries[qi as usize * dim..(qi as usize + 1) * dim]);
            }
            out.clear();
            out.resize(nb * qs.len(), 0f32);
            gemm::dots_rows(block, &qbuf, dim, &mut out, Par::Seq);
            for (col, &qi) in out.chunks_exact_mut(nb).zip(qs) {
                let top = &mut tops[qi as usize];
                if metric == Metric::L2 {
                    let qn = self.qsq[qi as usize];
                    for (g, &r) in col.iter_mut().zip(&rterm) {
                        *g = (qn + r - 2.0 * *g).max(0.0);
                    }
                }
                if self.bounds.active() {
                    for (j, &s) in col.iter().enumerate() {
                        if metric.in_range(s, self.bounds.radius, self.bounds.range_filter) {
                            let p = positions.map_or(range.start + j, |p| p[j] as usize);
                            top.push(Hit { row: p as u32, score: s });
                        }
                    }
                } else {
                    top.push_block(col, range.start as u32, positions);
                }
            }
        }
        Ok(tops)
    }
}

impl ListScan for IvfFlatIndex {
    type Scratch = ();

    fn prepare(&self, _q: &[f32]) {}

    fn prefetch_list(&self, ivf: &IvfLists, l: usize) {
        let dim = self.meta.dim;
        let range = ivf.list(l);
        let end = (range.start + prefetch_rows(dim)).min(range.end);
        prefetch(&self.vectors[range.start * dim..end * dim]);
    }

    fn scan(
        &self,
        ivf: &IvfLists,
        _s: &mut (),
        q: &[f32],
        l: usize,
        _coarse: f32,
        filter: RowFilter<'_>,
        bounds: &Bounds,
        top: &mut TopK,
    ) {
        let dim = self.meta.dim;
        let metric = self.meta.metric;
        let v = &self.vectors;
        if filter.is_all() && !bounds.active() {
            // Every row of the list is scored: one blocked pass over its contiguous
            // vectors (the query loaded once per 4 rows), 64 scores per selection step,
            // every `SCAN_STEP` rows first requesting those `ahead` rows further on (the
            // list's first rows were requested by `prefetch_list`). Same kernels as the per-row
            // path, so the same scores bit for bit.
            let range = ivf.list(l);
            let ahead = prefetch_rows(dim);
            let mut scores = [0f32; 64];
            let mut start = range.start;
            while start < range.end {
                let end = (start + 64).min(range.end);
                let mut step = start;
                while step < end {
                    let step_end = (step + SCAN_STEP).min(end);
                    let next = (step + ahead).min(range.end)..(step_end + ahead).min(range.end);
                    prefetch(&v[next.start * dim..next.end * dim]);
                    let out = &mut scores[step - start..step_end - start];
                    let rows = &v[step * dim..step_end * dim];
                    if metric == Metric::L2 {
                        l2_rows(q, rows, out)
                    } else {
                        dot_rows(q, rows, out)
                    }
                    step = step_end;
                }
                top.push_block(&scores[..end - start], 0, Some(&ivf.ids[start..end]));
                start = end;
            }
        } else if metric == Metric::L2 {
            ivf::scan_rows(ivf, l, filter, bounds, metric, top, |p| l2_sq(q, &v[p * dim..(p + 1) * dim]));
        } else {
            ivf::scan_rows(ivf, l, filter, bounds, metric, top, |p| dot(q, &v[p * dim..(p + 1) * dim]));
        }
    }
}

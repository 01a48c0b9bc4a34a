//! What the IVF types share: the coarse quantiser (k-means centroids), the inverted lists
//! (row ids grouped by nearest centroid, stored as one CSR array so a list is a contiguous
//! slice and the file is three arrays), probing, and the per-query search driver. Each
//! type only says how to score one list ([`ListScan`]).

use std::ops::Range;

use rayon::prelude::*;

use crate::context::{SearchContext, Stop};
use crate::distance::{dot_rows, l2_rows};
use crate::error::{IndexError, Result};
use crate::filter::RowFilter;
use crate::flat;
use crate::format::{Reader, Writer};
use crate::kmeans::{self, KMeansInit, KMeansParams};
use crate::metric::Metric;
use crate::params::{Bounds, IndexParams};
use crate::topk::{Hit, TopK};

use super::half::HalfCentroids;

/// A single query's list scans are split over two tasks from this many floats on (4 MiB
/// of vectors, ~2,700 rows at d=384; on MiniLM 50k with nlist=1024 that is nprobe 64 but
/// not 32). Waking a second thread costs more than it saves on smaller scans: at 1 << 18
/// (nprobe >= ~16) single-query wall time was 5-10 % worse than scanning on the calling
/// thread under load, while at nprobe 64 splitting from here was ~15 % faster than
/// from 8 MiB (criterion A/B, alternating, on an otherwise idle machine).
const SPLIT_FLOATS: usize = 1 << 20;

/// Coarse centroids and inverted lists.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IvfLists {
    pub dim: usize,
    /// `nlist × dim`; unit norm for IP/COSINE (spherical k-means).
    pub centroids: Vec<f32>,
    /// List `l` holds positions `offsets[l]..offsets[l + 1]`.
    pub offsets: Vec<usize>,
    /// Row id at each position (ascending within a list).
    pub ids: Vec<u32>,
    /// f16 copy of IP centroids for one-query probes (derived, not stored in the file).
    pub half: Option<HalfCentroids>,
}

/// The coarse metric: L2 for L2, inner product (unit centroids) for IP and COSINE.
pub(crate) fn coarse_metric(metric: Metric) -> Metric {
    if metric == Metric::L2 { Metric::L2 } else { Metric::Ip }
}

impl IvfLists {
    /// Trains `min(nlist, rows)` centroids on `x` and files every row under its nearest.
    /// Returns the lists and each row's list.
    pub fn build(
        x: &[f32],
        dim: usize,
        metric: Metric,
        p: &IndexParams,
        stop: Stop<'_>,
    ) -> Result<(IvfLists, Vec<u32>)> {
        let rows = x.len() / dim;
        if rows == 0 {
            return Err(IndexError::input(format!("{} needs at least one row", p.index_type.name())));
        }
        let spherical = metric != Metric::L2;
        let km = kmeans::train_until(
            x,
            dim,
            &KMeansParams {
                k: p.nlist.min(rows),
                iterations: p.kmeans_iterations,
                max_points_per_centroid: p.max_points_per_centroid,
                seed: p.seed,
                spherical,
                init: KMeansInit::PlusPlus,
            },
            stop,
        )?;
        let nlist = km.k();
        let centroids = km.into_rows();
        let labels = kmeans::assign_rows(x, dim, &centroids, spherical)?.labels;
        let mut offsets = vec![0usize; nlist + 1];
        for &l in &labels {
            offsets[l as usize + 1] += 1;
        }
        for l in 0..nlist {
            offsets[l + 1] += offsets[l];
        }
        let mut fill = offsets.clone();
        let mut ids = vec![0u32; rows];
        for (row, &l) in labels.iter().enumerate() {
            ids[fill[l as usize]] = row as u32;
            fill[l as usize] += 1;
        }
        Ok((IvfLists::new(dim, centroids, offsets, ids, metric), labels))
    }

    /// Assembles the lists, deriving the f16 centroids when the coarse metric is IP.
    pub fn new(dim: usize, centroids: Vec<f32>, offsets: Vec<usize>, ids: Vec<u32>, metric: Metric) -> IvfLists {
        let half = if coarse_metric(metric) == Metric::Ip { HalfCentroids::new(&centroids, dim) } else { None };
        IvfLists { dim, centroids, offsets, ids, half }
    }

    pub fn nlist(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn list(&self, l: usize) -> Range<usize> {
        self.offsets[l]..self.offsets[l + 1]
    }

    pub fn centroid(&self, l: usize) -> &[f32] {
        &self.centroids[l * self.dim..(l + 1) * self.dim]
    }

    pub fn memory_bytes(&self) -> usize {
        self.centroids.len() * 4
            + self.offsets.len() * 8
            + self.ids.len() * 4
            + self.half.as_ref().map_or(0, HalfCentroids::memory_bytes)
    }

    /// The `nprobe` nearest lists of each query, with the coarse score (L2 distance or
    /// inner product to the centroid), best first.
    pub fn probe(&self, queries: &[f32], nprobe: usize, metric: Metric, stop: Stop<'_>) -> Result<Vec<Vec<Hit>>> {
        let p = flat::SearchParams { metric: coarse_metric(metric), k: nprobe, radius: None, range_filter: None };
        flat::search_rows(&self.centroids, self.dim, queries, &p, SearchContext::stopped_by(stop), None)
    }

    /// [`IvfLists::probe`] for one query, equal to it (same kernels, so the same scores
    /// bit for bit; ties to the lower list). Many queries are best probed with GEMM; one
    /// is a matrix-vector product whose cost is streaming the centroid matrix (1.5 MB at
    /// nlist=1024, d=384) through the core, so this walks it once with the blocked
    /// kernels into a stack buffer and selects as it goes: no allocation but the result,
    /// no per-row dispatch, no thread hand-off.
    pub fn probe_one(&self, q: &[f32], nprobe: usize, metric: Metric) -> Vec<Hit> {
        const BLOCK: usize = 64;
        let coarse = coarse_metric(metric);
        if let Some(h) = self.half.as_ref().filter(|_| coarse == Metric::Ip) {
            return h.probe(&self.centroids, q, nprobe);
        }
        let mut top = TopK::new(coarse, nprobe);
        let mut scores = [0f32; BLOCK];
        for (b, block) in self.centroids.chunks(BLOCK * self.dim).enumerate() {
            let out = &mut scores[..block.len() / self.dim];
            if coarse == Metric::L2 {
                l2_rows(q, block, out)
            } else {
                dot_rows(q, block, out)
            }
            top.push_block(out, (b * BLOCK) as u32, None);
        }
        top.into_sorted()
    }

    pub fn write(&self, w: &mut Writer) {
        w.f32s(&self.centroids);
        w.u64s(self.offsets.iter().map(|&o| o as u64));
        w.u32s(&self.ids);
    }

    /// Reads and checks centroids, offsets (monotone, ending at `rows`) and ids (each row
    /// exactly once).
    pub fn read(r: &mut Reader<'_>, dim: usize, rows: usize, nlist: usize, metric: Metric) -> Result<IvfLists> {
        if nlist == 0 || nlist > crate::params::MAX_NLIST || nlist > rows.max(1) {
            return Err(IndexError::corrupt(format!("nlist {nlist} out of range for {rows} rows")));
        }
        let centroids = r.f32s(nlist * dim, "centroids")?;
        let raw = r.u64s(nlist + 1, "list offsets")?;
        if raw[0] != 0 || raw[nlist] != rows as u64 || raw.windows(2).any(|w| w[0] > w[1]) {
            return Err(IndexError::corrupt("list offsets are not monotone from 0 to rows"));
        }
        let offsets: Vec<usize> = raw.into_iter().map(|o| o as usize).collect();
        let ids = r.u32s(rows, "row ids")?;
        let mut seen = vec![false; rows];
        for &id in &ids {
            let id = id as usize;
            if id >= rows || seen[id] {
                return Err(IndexError::corrupt(format!("row id {id} out of range or repeated")));
            }
            seen[id] = true;
        }
        Ok(IvfLists::new(dim, centroids, offsets, ids, metric))
    }
}

/// How one IVF type scores the rows of a list.
pub(crate) trait ListScan: Sync {
    /// Per-query scratch (tables, adjusted query).
    type Scratch: Send;

    /// Prepares a query (already normalised for COSINE).
    fn prepare(&self, q: &[f32]) -> Self::Scratch;

    /// Requests the first rows of list `l` into the cache: called before the list
    /// scanned ahead of it, so its first reads do not wait on memory (see
    /// [`crate::memory`]). Only a hint; nothing by default.
    fn prefetch_list(&self, _ivf: &IvfLists, _l: usize) {}

    /// Pushes the allowed, in-range rows of list `l` into `top`. `coarse` is the query's
    /// coarse score for the list.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        ivf: &IvfLists,
        s: &mut Self::Scratch,
        q: &[f32],
        l: usize,
        coarse: f32,
        filter: RowFilter<'_>,
        bounds: &Bounds,
        top: &mut TopK,
    );
}

/// Searches every query: probe, then scan the probed lists (polling the stop flag before
/// each); queries in parallel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search<S: ListScan>(
    ivf: &IvfLists,
    scanner: &S,
    metric: Metric,
    queries: &[f32],
    k: usize,
    nprobe: usize,
    ctx: SearchContext<'_>,
    bounds: &Bounds,
) -> Result<Vec<Vec<Hit>>> {
    let dim = ivf.dim;
    let (filter, stop) = (ctx.rows(), ctx.stop());
    let nprobe = nprobe.clamp(1, ivf.nlist());
    let probes = if queries.len() == dim {
        vec![ivf.probe_one(queries, nprobe, metric)]
    } else {
        ivf.probe(queries, nprobe, metric, stop)?
    };
    let scan = |q: &[f32], probe: &[Hit]| -> Result<TopK> {
        let mut top = TopK::new(metric, k);
        let mut s = scanner.prepare(q);
        if let Some(first) = probe.first() {
            scanner.prefetch_list(ivf, first.row as usize);
        }
        for (i, h) in probe.iter().enumerate() {
            stop.check()?;
            if let Some(next) = probe.get(i + 1) {
                scanner.prefetch_list(ivf, next.row as usize);
            }
            scanner.scan(ivf, &mut s, q, h.row as usize, h.score, filter, bounds, &mut top);
        }
        Ok(top)
    };
    if queries.len() / dim > 1 {
        return queries
            .par_chunks_exact(dim)
            .zip(probes.par_iter())
            .map(|(q, p)| Ok(scan(q, p)?.into_sorted()))
            .collect();
    }
    // One query: split its probed lists over two tasks when there is enough to scan.
    let Some(probe) = probes.first() else { return Ok(Vec::new()) };
    let work: usize = probe.iter().map(|h| ivf.list(h.row as usize).len()).sum::<usize>() * dim;
    if work < SPLIT_FLOATS || probe.len() < 2 || rayon::current_num_threads() < 2 {
        return Ok(vec![scan(queries, probe)?.into_sorted()]);
    }
    let (a, b) = probe.split_at(probe.len() / 2);
    let (ta, tb) = rayon::join(|| scan(queries, a), || scan(queries, b));
    let mut ta = ta?;
    ta.merge(tb?);
    Ok(vec![ta.into_sorted()])
}

/// Shared row loop: skips filtered rows before scoring, keeps in-range scores, and
/// feeds the selection 64 scores at a time ([`TopK::push_block`]).
#[inline(always)]
pub(crate) fn scan_rows(
    ivf: &IvfLists,
    l: usize,
    filter: RowFilter<'_>,
    bounds: &Bounds,
    metric: Metric,
    top: &mut TopK,
    mut score: impl FnMut(usize) -> f32,
) {
    let range = ivf.list(l);
    let (mut scores, mut ids) = ([0f32; 64], [0u32; 64]);
    let mut start = range.start;
    while start < range.end {
        let end = (start + 64).min(range.end);
        let mut n = 0;
        for p in start..end {
            let id = ivf.ids[p];
            if !filter.allows(id as usize) {
                continue;
            }
            let s = score(p);
            if bounds.active() && !metric.in_range(s, bounds.radius, bounds.range_filter) {
                continue;
            }
            scores[n] = s;
            ids[n] = id;
            n += 1;
        }
        top.push_block(&scores[..n], 0, Some(&ids[..n]));
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Stop;
    use crate::testdata::{clustered, queries_like};

    /// Lists over `nlist` centroids taken from the data itself (no training needed to
    /// compare two probes of the same centroids).
    fn lists(dim: usize, nlist: usize, seed: u64) -> IvfLists {
        let centroids = clustered(nlist, dim, 7, seed);
        IvfLists { dim, centroids, offsets: vec![0; nlist + 1], ids: Vec::new(), half: None }
    }

    #[test]
    fn probe_one_equals_probe() {
        for dim in [1usize, 3, 17, 383] {
            // nlist not a multiple of the 64-centroid block, nor of the 4-row kernel block.
            for nlist in [1usize, 5, 64, 131] {
                let ivf = lists(dim, nlist, dim as u64);
                // The same lists with the f16 IP probe (where the CPU has it).
                let l = lists(dim, nlist, dim as u64);
                let with_half = IvfLists::new(dim, l.centroids, l.offsets, l.ids, Metric::Ip);
                let queries = queries_like(6, dim, 7, dim as u64);
                for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
                    for nprobe in [1, 4, nlist] {
                        let many = ivf.probe(&queries, nprobe, metric, Stop::NEVER).expect("probes");
                        for (q, want) in queries.chunks_exact(dim).zip(&many) {
                            let got = ivf.probe_one(q, nprobe, metric);
                            assert_eq!(&got, want, "dim {dim} nlist {nlist} {metric:?} nprobe {nprobe}");
                            let got = with_half.probe_one(q, nprobe, metric);
                            assert_eq!(&got, want, "f16: dim {dim} nlist {nlist} {metric:?} nprobe {nprobe}");
                        }
                    }
                }
            }
        }
        // Equal scores go to the lower list, as in the exact search.
        let ivf = IvfLists {
            dim: 2,
            centroids: vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0],
            offsets: vec![0; 5],
            ids: vec![],
            half: None,
        };
        let got: Vec<u32> = ivf.probe_one(&[1.0, 0.0], 3, Metric::Ip).iter().map(|h| h.row).collect();
        assert_eq!(got, vec![0, 2, 3]);
    }
}

//! HNSW: a hierarchical navigable small-world graph (Malkov & Yashunin, 2016/2018) over
//! the (COSINE: normalised) vectors, which the index keeps in row order.
//!
//! **Graph.** Every row is a node with a level drawn from the seeded generator
//! (`⌊−ln U · 1/ln M⌋`, capped at [`MAX_LEVEL`]); a node has a neighbour list on each
//! layer up to its level: at most `M` links on the upper layers and `2·M` on layer 0.
//! Lists are chosen by the paper's heuristic (a candidate is kept only if it is closer to
//! the node than to every neighbour kept before it), which keeps diverse directions.
//! Internally every metric is a distance (smaller is closer): squared L2, or the negated
//! inner product for IP and COSINE.
//!
//! **Codes for the walks.** Graph walks are bound by memory, not arithmetic: a 384-d row
//! is 1,536 bytes fetched from a random place for one inner product. The index therefore
//! also keeps an 8-bit code of every row (per-dimension min/step over the segment, as
//! IVF_SQ8 codes residuals; derived from the vectors, not stored in the file): k-NN
//! searches and the build walk the graph with code distances (384 bytes a row), then
//! rescore what they found with the exact vectors, so returned scores are exact and
//! neighbour selection compares exact distances. A visited row then costs a quarter of
//! the bytes; on the MiniLM set recall moves by less than 0.001 at any `ef`.
//!
//! **Build (parallel and deterministic).** Rows are inserted in row order in batches;
//! every row of a batch searches the graph as it stood before the batch (beam
//! `efConstruction`), in parallel, and picks its own neighbours. Then the batch's reverse
//! links are grouped by target node and each target's new list (its old links plus the
//! new ones, re-selected by the heuristic when over capacity) is computed in parallel.
//! Nothing depends on thread interleaving, so a seed gives the same graph on any number
//! of threads. Batches grow with the graph (1/16 of the rows inserted so far, at most
//! [`MAX_BATCH`]), so rows rarely miss a neighbour inserted in the same batch; a row
//! whose level exceeds the graph's top goes in a batch of its own and becomes the entry
//! point.
//!
//! **Search.** Greedy descent through the upper layers, then a best-first search of
//! layer 0 with a beam of `ef` (default `max(k, 16)`; `ef < k` is an error, as in
//! Milvus); the `ef` rows found are rescored exactly and the best `k` returned. Rows'
//! codes and the next node's list are prefetched while the current node is expanded.
//! The visited set is a generation-stamped array in thread-local scratch, reused by
//! every search on the thread. Filtered rows are traversed (they keep the graph
//! connected) but never returned; the search goes on until `ef` allowed rows are held.
//! When the filter allows at most [`BRUTE_FORCE_MAX_ALLOWED`] of the rows (it excludes
//! 90 % or more; knowhere switches at 93 %), the allowed rows are scanned exactly
//! instead: the walk then mostly visits excluded rows. Measured on the MiniLM set (50,000
//! rows, ef 64, one query, a filter uncorrelated with the vectors): 8 % allowed, walk
//! 829 µs against a 545 µs scan; 12 %, 810 against 723; 20 %, 448 against 722 (recall of
//! the walk ≥ 0.996 throughout). Filters correlated with the vectors make walks longer.
//!
//! **Range search** (radius / range_filter), with exact distances throughout: the beam
//! search (ef default 512) finds the region, then a breadth-first expansion follows
//! every link out of rows inside the radius, so every row inside it that the graph connects to the region is scored; rows
//! in the window (see [`Metric::in_range`]) are returned, at most k, best first.
//!
//! Batches of queries are spread over the cores (rayon), one query per task.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::distance::{dot, l2_sq};
use crate::error::{IndexError, Result};
use crate::filter::RowFilter;
use crate::flat;
use crate::format::{Meta, Reader, Writer};
use crate::metric::Metric;
use crate::params::{Bounds, HNSW_M_RANGE, IndexParams, MAX_EF};
use crate::rng::Rng;
use crate::sq8;
use crate::topk::{Hit, TopK};

/// Highest level a node may get.
pub const MAX_LEVEL: usize = 30;
/// Largest insertion batch of the build.
pub const MAX_BATCH: usize = 1024;
/// Default `ef` is `max(k, DEFAULT_MIN_EF)` (knowhere's rule).
pub const DEFAULT_MIN_EF: usize = 16;
/// Default `ef` of a range search (knowhere's).
pub const DEFAULT_RANGE_EF: usize = 512;
/// A filtered search scans the allowed rows exactly when they are at most this fraction
/// of the segment (the filter excludes 90 % or more).
pub const BRUTE_FORCE_MAX_ALLOWED: f64 = 0.10;

/// A node and its distance to the current query (smaller is closer; ties by id).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cand {
    d: f32,
    id: u32,
}

impl Eq for Cand {}

impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.d.total_cmp(&other.d).then(self.id.cmp(&other.id))
    }
}

/// The vectors and how to compare them.
#[derive(Clone, Copy)]
struct Space<'a> {
    v: &'a [f32],
    dim: usize,
    l2: bool,
}

impl Space<'_> {
    #[inline(always)]
    fn row(&self, i: u32) -> &[f32] {
        let s = i as usize * self.dim;
        &self.v[s..s + self.dim]
    }

    /// Distance of `q` to row `i`: squared L2, or the negated inner product.
    #[inline(always)]
    fn dist(&self, q: &[f32], i: u32) -> f32 {
        if self.l2 { l2_sq(q, self.row(i)) } else { -dot(q, self.row(i)) }
    }
}

/// Asks the CPU to start loading `bytes` bytes at `p` (a hint: nothing is read).
#[inline(always)]
fn prefetch(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let mut off = 0;
        while off < bytes {
            // SAFETY: a prefetch never faults and reads nothing into the program,
            // whatever the address. SSE is part of the x86-64 baseline.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off) as *const i8);
            }
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// Distances of one query to rows: what the graph walks need.
trait QueryDist {
    /// Distance to row `i` (smaller is closer).
    fn dist(&self, i: u32) -> f32;
    /// Starts loading what `dist(i)` reads.
    fn prefetch(&self, i: u32);
}

/// Exact distances to the f32 rows.
struct Exact<'a> {
    sp: Space<'a>,
    q: &'a [f32],
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
        let p = self.sp.v.as_ptr().wrapping_add(i as usize * self.sp.dim) as *const u8;
        prefetch(p, (self.sp.dim * 4).min(256));
    }
}

/// 8-bit codes of the rows, one per dimension: `x̂ = vmin + step·code` with per-dimension
/// minimum and step over all rows (as IVF_SQ8 codes residuals). Derived from the vectors
/// at build and load, not stored.
#[derive(Debug, Clone, PartialEq)]
struct Sq8 {
    vmin: Vec<f32>,
    step: Vec<f32>,
    codes: Vec<u8>,
}

impl Sq8 {
    fn encode(v: &[f32], dim: usize) -> Sq8 {
        let mut vmin = vec![f32::INFINITY; dim];
        let mut vmax = vec![f32::NEG_INFINITY; dim];
        for r in v.chunks_exact(dim) {
            for t in 0..dim {
                vmin[t] = vmin[t].min(r[t]);
                vmax[t] = vmax[t].max(r[t]);
            }
        }
        let step: Vec<f32> = vmin.iter().zip(&vmax).map(|(lo, hi)| (hi - lo) / 255.0).collect();
        let mut codes = vec![0u8; v.len()];
        codes.par_chunks_mut(dim.max(1) * 1024).zip(v.par_chunks(dim.max(1) * 1024)).for_each(|(c, x)| {
            for (i, (c, x)) in c.iter_mut().zip(x).enumerate() {
                let t = i % dim;
                *c = if step[t] > 0.0 { ((x - vmin[t]) / step[t]).round().clamp(0.0, 255.0) as u8 } else { 0 };
            }
        });
        Sq8 { vmin, step, codes }
    }

    fn memory_bytes(&self) -> usize {
        self.codes.len() + self.vmin.len() * 8
    }
}

/// Approximate distances through the codes: for L2 `Σ (a_i − step_i·c_i)²` with
/// `a = q − vmin`; for IP `−(q·vmin + Σ (q_i·step_i)·c_i)`.
struct Coded<'a> {
    sq: &'a Sq8,
    dim: usize,
    l2: bool,
    w: Vec<f32>,
    qv: f32,
}

impl<'a> Coded<'a> {
    fn new(sq: &'a Sq8, q: &[f32], l2: bool) -> Coded<'a> {
        if l2 {
            let w = q.iter().zip(&sq.vmin).map(|(q, m)| q - m).collect();
            Coded { sq, dim: q.len(), l2, w, qv: 0.0 }
        } else {
            let w = q.iter().zip(&sq.step).map(|(q, s)| q * s).collect();
            Coded { sq, dim: q.len(), l2, w, qv: dot(q, &sq.vmin) }
        }
    }
}

impl QueryDist for Coded<'_> {
    #[inline(always)]
    fn dist(&self, i: u32) -> f32 {
        let c = &self.sq.codes[i as usize * self.dim..(i as usize + 1) * self.dim];
        if self.l2 { sq8::l2(&self.w, &self.sq.step, c) } else { -(self.qv + sq8::dot(&self.w, c)) }
    }

    /// The whole code (a few lines): it is read at once.
    #[inline(always)]
    fn prefetch(&self, i: u32) {
        prefetch(self.sq.codes.as_ptr().wrapping_add(i as usize * self.dim), self.dim);
    }
}

/// Per-thread search state: visited marks (a generation stamp per row, so starting a
/// search costs nothing) and the two heaps of the best-first search.
struct Scratch {
    marks: Vec<u16>,
    stamp: u16,
    /// Nodes to expand, closest first.
    cand: BinaryHeap<Reverse<Cand>>,
    /// The best `ef` allowed nodes so far, farthest on top.
    res: BinaryHeap<Cand>,
    /// Unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
}

impl Scratch {
    const fn new() -> Scratch {
        Scratch { marks: Vec::new(), stamp: 0, cand: BinaryHeap::new(), res: BinaryHeap::new(), fresh: Vec::new() }
    }

    /// Starts a search over `rows` nodes: nothing is visited.
    fn begin(&mut self, rows: usize) {
        if self.marks.len() < rows {
            self.marks.resize(rows, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
        self.cand.clear();
        self.res.clear();
    }

    /// Marks `i` visited; true if it was not yet.
    #[inline(always)]
    fn visit(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        if *m == self.stamp {
            false
        } else {
            *m = self.stamp;
            true
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

/// Link capacities for `m` and `rows`: (upper layers, layer 0). A node cannot have more
/// distinct neighbours than there are other rows.
fn capacities(m: usize, rows: usize) -> (usize, usize) {
    let others = rows.saturating_sub(1).max(1);
    (m.min(others), (2 * m).min(others))
}

/// The layered graph: layer-0 lists in one fixed-stride array, upper-layer lists in a
/// CSR array of the nodes with a level above 0.
#[derive(Debug, Clone, PartialEq)]
struct Graph {
    /// `M`.
    m: usize,
    /// Link capacity on the upper layers and on layer 0.
    cap: usize,
    cap0: usize,
    levels: Vec<u8>,
    /// Node `i`'s layer-0 list: count at `i·(cap0+1)`, then `cap0` slots.
    links0: Vec<u32>,
    /// Node `i`'s layer `l ≥ 1` list starts at `upper_start[i] + (l−1)·(cap+1)`: count,
    /// then `cap` slots (derived from the levels, not stored).
    upper_start: Vec<usize>,
    upper: Vec<u32>,
    entry: u32,
    top: usize,
}

impl Graph {
    /// An empty graph (no links) for nodes of the given levels.
    fn new(m: usize, levels: Vec<u8>) -> Graph {
        let (len0, upper_start) = Graph::layout(m, &levels);
        let upper = vec![0; upper_start[levels.len()]];
        Graph::from_parts(m, levels, vec![0; len0], upper_start, upper)
    }

    /// Sizes of a graph of these levels: the layer-0 array's length, and where each
    /// node's upper lists start (one more entry: the upper array's length).
    fn layout(m: usize, levels: &[u8]) -> (usize, Vec<usize>) {
        let rows = levels.len();
        let (cap, cap0) = capacities(m, rows);
        let mut upper_start = Vec::with_capacity(rows + 1);
        let mut at = 0usize;
        for &l in levels {
            upper_start.push(at);
            at += l as usize * (cap + 1);
        }
        upper_start.push(at);
        (rows * (cap0 + 1), upper_start)
    }

    fn from_parts(m: usize, levels: Vec<u8>, links0: Vec<u32>, upper_start: Vec<usize>, upper: Vec<u32>) -> Graph {
        let (cap, cap0) = capacities(m, levels.len());
        Graph { m, cap, cap0, levels, links0, upper_start, upper, entry: 0, top: 0 }
    }

    fn rows(&self) -> usize {
        self.levels.len()
    }

    /// Where node `i`'s list on `layer` starts (its count) and its capacity.
    #[inline(always)]
    fn slot(&self, i: u32, layer: usize) -> (usize, usize) {
        if layer == 0 {
            (i as usize * (self.cap0 + 1), self.cap0)
        } else {
            (self.upper_start[i as usize] + (layer - 1) * (self.cap + 1), self.cap)
        }
    }

    #[inline(always)]
    fn neighbours(&self, i: u32, layer: usize) -> &[u32] {
        let (s, _) = self.slot(i, layer);
        let a = if layer == 0 { &self.links0 } else { &self.upper };
        let n = a[s] as usize;
        &a[s + 1..s + 1 + n]
    }

    /// Starts loading node `i`'s list on `layer`.
    #[inline(always)]
    fn prefetch_links(&self, i: u32, layer: usize) {
        let (s, cap) = self.slot(i, layer);
        let a = if layer == 0 { &self.links0 } else { &self.upper };
        prefetch(a.as_ptr().wrapping_add(s) as *const u8, (cap + 1) * 4);
    }

    fn set_neighbours(&mut self, i: u32, layer: usize, list: &[u32]) {
        let (s, cap) = self.slot(i, layer);
        debug_assert!(list.len() <= cap);
        let a = if layer == 0 { &mut self.links0 } else { &mut self.upper };
        a[s] = list.len() as u32;
        a[s + 1..s + 1 + list.len()].copy_from_slice(list);
        a[s + 1 + list.len()..s + 1 + cap].fill(0);
    }

    /// Greedy walk on `layer` from `cur` to a local minimum.
    fn greedy(&self, qd: &impl QueryDist, mut cur: Cand, layer: usize) -> Cand {
        loop {
            let mut moved = false;
            for &n in self.neighbours(cur.id, layer) {
                let d = qd.dist(n);
                if d < cur.d || (d == cur.d && n < cur.id) {
                    cur = Cand { d, id: n };
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    /// Best-first search of `layer` from `entries` with a beam of `ef`; returns the best
    /// `ef` allowed nodes, closest first. Excluded nodes are expanded but not kept. With
    /// `seen`, every scored node is also appended there (range search). `s` must have
    /// been begun, with the entries not yet visited.
    #[allow(clippy::too_many_arguments)]
    fn beam(
        &self,
        qd: &impl QueryDist,
        entries: &[Cand],
        ef: usize,
        layer: usize,
        filter: Option<RowFilter<'_>>,
        s: &mut Scratch,
        mut seen: Option<&mut Vec<Cand>>,
    ) -> Vec<Cand> {
        let allowed = |i: u32| filter.is_none_or(|f| f.allows(i as usize));
        for &e in entries {
            if !s.visit(e.id) {
                continue;
            }
            s.cand.push(Reverse(e));
            if allowed(e.id) {
                s.res.push(e);
            }
            if let Some(v) = seen.as_deref_mut() {
                v.push(e);
            }
        }
        while s.res.len() > ef {
            s.res.pop();
        }
        let mut bound = if s.res.len() >= ef { s.res.peek().map_or(f32::INFINITY, |c| c.d) } else { f32::INFINITY };
        let mut fresh = std::mem::take(&mut s.fresh);
        while let Some(Reverse(c)) = s.cand.pop() {
            if c.d > bound {
                break;
            }
            // The next node to expand is likely the current best candidate: start
            // loading its list while this one's neighbours are scored.
            if let Some(Reverse(next)) = s.cand.peek() {
                self.prefetch_links(next.id, layer);
            }
            fresh.clear();
            for &n in self.neighbours(c.id, layer) {
                if s.visit(n) {
                    fresh.push(n);
                    qd.prefetch(n);
                }
            }
            for &n in &fresh {
                let d = qd.dist(n);
                if let Some(v) = seen.as_deref_mut() {
                    v.push(Cand { d, id: n });
                }
                if d <= bound {
                    let e = Cand { d, id: n };
                    s.cand.push(Reverse(e));
                    if allowed(n) {
                        s.res.push(e);
                        if s.res.len() > ef {
                            s.res.pop();
                        }
                        if s.res.len() >= ef {
                            bound = s.res.peek().map_or(f32::INFINITY, |c| c.d);
                        }
                    }
                }
            }
        }
        s.fresh = fresh;
        let mut out: Vec<Cand> = s.res.drain().collect();
        out.sort_unstable();
        out
    }

    /// The paper's neighbour-selection heuristic: walking `cands` closest first, keep a
    /// candidate only if it is closer to the base node than to every candidate kept so
    /// far; at most `max`. Fewer than `max` candidates are all kept.
    fn select(sp: &Space<'_>, cands: &[Cand], max: usize) -> Vec<Cand> {
        if cands.len() <= max {
            return cands.to_vec();
        }
        let mut kept: Vec<Cand> = Vec::with_capacity(max);
        for c in cands {
            if kept.len() >= max {
                break;
            }
            let v = sp.row(c.id);
            if kept.iter().all(|r| sp.dist(v, r.id) >= c.d) {
                kept.push(*c);
            }
        }
        kept
    }

    /// Where node `x` (level `level`) links to on each layer it shares with the graph:
    /// `(layer, neighbours with their distances)`, top layer first.
    fn plan_insert(&self, sp: &Space<'_>, sq: &Sq8, x: u32, ef_construction: usize) -> Vec<(usize, Vec<Cand>)> {
        self.plan_with(sp, &Coded::new(sq, sp.row(x), sp.l2), x, ef_construction)
    }

    fn plan_with(
        &self,
        sp: &Space<'_>,
        qd: &impl QueryDist,
        x: u32,
        ef_construction: usize,
    ) -> Vec<(usize, Vec<Cand>)> {
        let exact = Exact { sp: *sp, q: sp.row(x) };
        let level = self.levels[x as usize] as usize;
        let mut cur = Cand { d: qd.dist(self.entry), id: self.entry };
        for layer in (level + 1..=self.top).rev() {
            cur = self.greedy(qd, cur, layer);
        }
        let mut entries = vec![cur];
        let mut plan = Vec::with_capacity(level.min(self.top) + 1);
        with_scratch(|s| {
            for layer in (0..=level.min(self.top)).rev() {
                s.begin(self.rows());
                let found = self.beam(qd, &entries, ef_construction, layer, None, s, None);
                let mut rescored: Vec<Cand> = found.iter().map(|c| Cand { d: exact.dist(c.id), id: c.id }).collect();
                rescored.sort_unstable();
                let max = self.m.min(if layer == 0 { self.cap0 } else { self.cap });
                plan.push((layer, Self::select(sp, &rescored, max)));
                entries = found;
            }
        });
        plan
    }

    /// Node `t`'s new list on `layer` after gaining links to `new` (distances to `t`),
    /// re-selected by the heuristic when over capacity.
    fn merged(&self, sp: &Space<'_>, t: u32, layer: usize, new: &[Cand]) -> Vec<u32> {
        let old = self.neighbours(t, layer);
        let cap = if layer == 0 { self.cap0 } else { self.cap };
        if old.len() + new.len() <= cap {
            return old.iter().copied().chain(new.iter().map(|c| c.id)).collect();
        }
        let q = sp.row(t);
        let mut all: Vec<Cand> =
            old.iter().map(|&o| Cand { d: sp.dist(q, o), id: o }).chain(new.iter().copied()).collect();
        all.sort_unstable();
        Self::select(sp, &all, cap).into_iter().map(|c| c.id).collect()
    }

    /// Builds the graph of every row of `sp` (see the module documentation).
    fn build(sp: &Space<'_>, sq: &Sq8, m: usize, ef_construction: usize, seed: u64) -> Graph {
        let rows = sp.v.len() / sp.dim;
        let ml = 1.0 / (m as f64).ln();
        let mut rng = Rng::new(seed);
        let levels: Vec<u8> = (0..rows)
            .map(|_| {
                let u = 1.0 - rng.next_f64(); // (0, 1]
                ((-u.ln() * ml).floor() as usize).min(MAX_LEVEL) as u8
            })
            .collect();
        let mut g = Graph::new(m, levels);
        if rows == 0 {
            return g;
        }
        g.entry = 0;
        g.top = g.levels[0] as usize;
        let mut done = 1;
        while done < rows {
            let want = (done / 16).clamp(1, MAX_BATCH);
            let mut end = done + 1;
            if g.levels[done] as usize <= g.top {
                while end < rows && end - done < want && g.levels[end] as usize <= g.top {
                    end += 1;
                }
            }
            let plans: Vec<Vec<(usize, Vec<Cand>)>> =
                (done..end).into_par_iter().map(|x| g.plan_insert(sp, sq, x as u32, ef_construction)).collect();
            // Reverse links, grouped by (layer, target), in a fixed order.
            let mut reverse: Vec<(usize, u32, Cand)> = Vec::new();
            for (x, plan) in (done..end).zip(&plans) {
                for (layer, chosen) in plan {
                    for c in chosen {
                        reverse.push((*layer, c.id, Cand { d: c.d, id: x as u32 }));
                    }
                }
            }
            reverse.sort_unstable_by_key(|a| (a.0, a.1, a.2.id));
            let mut groups: Vec<(usize, u32, std::ops::Range<usize>)> = Vec::new();
            let mut i = 0;
            while i < reverse.len() {
                let j = i + reverse[i..].iter().take_while(|r| (r.0, r.1) == (reverse[i].0, reverse[i].1)).count();
                groups.push((reverse[i].0, reverse[i].1, i..j));
                i = j;
            }
            let updates: Vec<Vec<u32>> = groups
                .par_iter()
                .map(|(layer, t, r)| {
                    let new: Vec<Cand> = reverse[r.clone()].iter().map(|e| e.2).collect();
                    g.merged(sp, *t, *layer, &new)
                })
                .collect();
            for ((layer, t, _), list) in groups.iter().zip(&updates) {
                g.set_neighbours(*t, *layer, list);
            }
            for (x, plan) in (done..end).zip(&plans) {
                for (layer, chosen) in plan {
                    let ids: Vec<u32> = chosen.iter().map(|c| c.id).collect();
                    g.set_neighbours(x as u32, *layer, &ids);
                }
            }
            if end == done + 1 && g.levels[done] as usize > g.top {
                g.entry = done as u32;
                g.top = g.levels[done] as usize;
            }
            done = end;
        }
        g
    }

    fn memory_bytes(&self) -> usize {
        self.levels.len() + self.links0.len() * 4 + self.upper.len() * 4 + self.upper_start.len() * 8
    }
}

/// A graph index over the vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct HnswIndex {
    pub(crate) meta: Meta,
    ef_construction: usize,
    /// `ef = max(k, default_ef)` when a search sets none; 0: [`DEFAULT_MIN_EF`].
    default_ef: usize,
    graph: Graph,
    /// `rows × dim` in row order (COSINE: normalised).
    vectors: Vec<f32>,
    /// Their 8-bit codes, which k-NN searches walk the graph with.
    sq: Sq8,
}

impl HnswIndex {
    /// Builds from prepared (COSINE: normalised) vectors; `default_ef` 0 means
    /// [`DEFAULT_MIN_EF`].
    pub(crate) fn build(meta: Meta, x: Vec<f32>, p: &IndexParams, default_ef: usize) -> Result<HnswIndex> {
        if meta.rows == 0 {
            return Err(IndexError::input("HNSW needs at least one row"));
        }
        let sp = Space { v: &x, dim: meta.dim, l2: meta.metric == Metric::L2 };
        let sq = Sq8::encode(&x, meta.dim);
        let graph = Graph::build(&sp, &sq, p.hnsw_m, p.ef_construction, p.seed);
        Ok(HnswIndex { meta, ef_construction: p.ef_construction, default_ef, graph, vectors: x, sq })
    }

    /// `M` and `efConstruction` of the build.
    pub fn params(&self) -> (usize, usize) {
        (self.graph.m, self.ef_construction)
    }

    /// The `ef` floor of searches that set none.
    pub fn default_ef(&self) -> usize {
        if self.default_ef == 0 { DEFAULT_MIN_EF } else { self.default_ef }
    }

    /// Number of layers (the entry point's level + 1).
    pub fn layers(&self) -> usize {
        self.graph.top + 1
    }

    fn space(&self) -> Space<'_> {
        Space { v: &self.vectors, dim: self.meta.dim, l2: self.meta.metric == Metric::L2 }
    }

    /// The metric score of an internal distance.
    #[inline]
    fn score(&self, d: f32) -> f32 {
        if self.meta.metric == Metric::L2 { d } else { -d }
    }

    pub(crate) fn search(
        &self,
        queries: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<RowFilter<'_>>,
        b: &Bounds,
    ) -> Result<Vec<Vec<Hit>>> {
        let dim = self.meta.dim;
        let rows = self.meta.rows;
        if let Some(ef) = ef {
            if !(1..=MAX_EF).contains(&ef) {
                return Err(IndexError::param("ef", ef, format!("an integer in 1..={MAX_EF}")));
            }
            if !b.active() && ef < k {
                return Err(IndexError::param("ef", ef, format!("ef({ef}) should be larger than k({k})")));
            }
        }
        let ef = match ef {
            Some(ef) => ef,
            None if b.active() => DEFAULT_RANGE_EF,
            None => k.max(self.default_ef()),
        };
        let allowed = filter.map_or(rows, |f| allowed_count(f, rows));
        if allowed == 0 {
            return Ok(vec![Vec::new(); queries.len() / dim]);
        }
        // Heavy filters, and a range search without an outer bound, scan exactly.
        if (allowed as f64) <= BRUTE_FORCE_MAX_ALLOWED * rows as f64
            || allowed <= k
            || (b.active() && b.radius.is_none())
        {
            let metric = if self.meta.metric == Metric::L2 { Metric::L2 } else { Metric::Ip };
            let p = flat::SearchParams { metric, k, radius: b.radius, range_filter: b.range_filter };
            return flat::search_filtered(&self.vectors, dim, queries, &p, filter, None);
        }
        let one = |q: &[f32]| self.search_one(q, k, ef, filter, b);
        if queries.len() / dim > 1 {
            Ok(queries.par_chunks_exact(dim).map(one).collect())
        } else {
            Ok(queries.chunks_exact(dim).map(one).collect())
        }
    }

    fn search_one(&self, q: &[f32], k: usize, ef: usize, filter: Option<RowFilter<'_>>, b: &Bounds) -> Vec<Hit> {
        let g = &self.graph;
        let sp = self.space();
        let metric = self.meta.metric;
        if !b.active() {
            // Walk with the codes, then rescore the beam exactly.
            let qd = Coded::new(&self.sq, q, sp.l2);
            let mut cur = Cand { d: qd.dist(g.entry), id: g.entry };
            for layer in (1..=g.top).rev() {
                cur = g.greedy(&qd, cur, layer);
            }
            let found = with_scratch(|s| {
                s.begin(g.rows());
                g.beam(&qd, &[cur], ef, 0, filter, s, None)
            });
            let exact = Exact { sp, q };
            found.iter().for_each(|c| exact.prefetch(c.id));
            let mut top = TopK::new(metric, k);
            for c in &found {
                top.push(Hit { row: c.id, score: self.score(exact.dist(c.id)) });
            }
            return top.into_sorted();
        }
        let qd = Exact { sp, q };
        let mut cur = Cand { d: qd.dist(g.entry), id: g.entry };
        for layer in (1..=g.top).rev() {
            cur = g.greedy(&qd, cur, layer);
        }
        with_scratch(|s| {
            s.begin(g.rows());
            let mut top = TopK::new(metric, k);
            // Range search, exact throughout: the beam finds the region, then every link
            // out of a row inside the radius is followed.
            let mut seen = Vec::new();
            g.beam(&qd, &[cur], ef, 0, None, s, Some(&mut seen));
            let inside = |d: f32| metric.in_range(self.score(d), b.radius, None);
            let allowed = |i: u32| filter.is_none_or(|f| f.allows(i as usize));
            let mut queue: Vec<u32> = Vec::new();
            for c in &seen {
                if inside(c.d) {
                    queue.push(c.id);
                    let score = self.score(c.d);
                    if allowed(c.id) && metric.in_range(score, b.radius, b.range_filter) {
                        top.push(Hit { row: c.id, score });
                    }
                }
            }
            let mut fresh = Vec::new();
            while let Some(c) = queue.pop() {
                fresh.clear();
                for &n in g.neighbours(c, 0) {
                    if s.visit(n) {
                        fresh.push(n);
                        qd.prefetch(n);
                    }
                }
                for &n in &fresh {
                    let d = qd.dist(n);
                    if inside(d) {
                        queue.push(n);
                        let score = self.score(d);
                        if allowed(n) && metric.in_range(score, b.radius, b.range_filter) {
                            top.push(Hit { row: n, score });
                        }
                    }
                }
            }
            top.into_sorted()
        })
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.vectors.len() * 4 + self.sq.memory_bytes() + self.graph.memory_bytes()
    }

    /// Body: `M`, `efConstruction`, entry point, top level, default ef (0: the
    /// knowhere rule) (u32 each); the level of
    /// every row (one byte each); the layer-0 lists (`rows × (cap0 + 1)` u32: count,
    /// then `cap0` slots, unused ones 0); the upper-layer lists of every row with a level
    /// above 0 in row order, layers 1..=level, each `cap + 1` u32 likewise; the vectors
    /// (`rows × dim` f32). `cap = min(M, rows − 1)`, `cap0 = min(2·M, rows − 1)`.
    pub(crate) fn write(&self, w: &mut Writer) {
        let g = &self.graph;
        w.u32(g.m as u32);
        w.u32(self.ef_construction as u32);
        w.u32(g.entry);
        w.u32(g.top as u32);
        w.u32(self.default_ef as u32);
        w.bytes(&g.levels);
        w.u32s(&g.links0);
        w.u32s(&g.upper);
        w.f32s(&self.vectors);
    }

    pub(crate) fn read(meta: Meta, r: &mut Reader<'_>) -> Result<HnswIndex> {
        if meta.nlist != 0 || meta.m != 0 || meta.nbits != 0 || meta.default_nprobe != 0 {
            return Err(IndexError::corrupt("HNSW header carries IVF parameters"));
        }
        let rows = meta.rows;
        if rows == 0 {
            return Err(IndexError::corrupt("HNSW index of no rows"));
        }
        let head = r.u32s(5, "HNSW parameters")?;
        let (m, ef_construction, entry, top) = (head[0] as usize, head[1] as usize, head[2], head[3] as usize);
        let default_ef = head[4] as usize;
        if !(HNSW_M_RANGE.0..=HNSW_M_RANGE.1).contains(&m)
            || !(1..=MAX_EF).contains(&ef_construction)
            || default_ef > MAX_EF
        {
            return Err(IndexError::corrupt(format!("HNSW M {m} / efConstruction {ef_construction} out of range")));
        }
        let levels = r.bytes(rows, "HNSW levels")?;
        if levels.iter().any(|&l| l as usize > MAX_LEVEL) {
            return Err(IndexError::corrupt("HNSW level out of range"));
        }
        let max_level = levels.iter().copied().max().unwrap_or(0) as usize;
        if entry as usize >= rows || levels[entry as usize] as usize != top || top != max_level {
            return Err(IndexError::corrupt(format!("HNSW entry point {entry} at level {top} is not a top node")));
        }
        // Sizes follow from the levels; the reader checks them against the bytes present
        // before anything is allocated.
        let (len0, upper_start) = Graph::layout(m, &levels);
        let links0 = r.u32s(len0, "HNSW layer-0 links")?;
        let upper = r.u32s(upper_start[rows], "HNSW upper links")?;
        let mut graph = Graph::from_parts(m, levels, links0, upper_start, upper);
        graph.entry = entry;
        graph.top = top;
        for i in 0..rows as u32 {
            for layer in 0..=graph.levels[i as usize] as usize {
                let (s, cap) = graph.slot(i, layer);
                let a = if layer == 0 { &graph.links0 } else { &graph.upper };
                let n = a[s] as usize;
                if n > cap {
                    return Err(IndexError::corrupt(format!("HNSW node {i} has {n} links on layer {layer}")));
                }
                for &t in &a[s + 1..s + 1 + n] {
                    if t as usize >= rows || t == i || (graph.levels[t as usize] as usize) < layer {
                        return Err(IndexError::corrupt(format!("HNSW link {i} -> {t} on layer {layer} is invalid")));
                    }
                }
            }
        }
        let vectors = r.f32s(rows * meta.dim, "vectors")?;
        let sq = Sq8::encode(&vectors, meta.dim);
        Ok(HnswIndex { meta, ef_construction, default_ef, graph, vectors, sq })
    }
}

/// Rows `filter` allows among `0..rows`.
fn allowed_count(filter: RowFilter<'_>, rows: usize) -> usize {
    match filter {
        RowFilter::Allowed(a) => a[..rows].iter().filter(|&&x| x).count(),
        RowFilter::Excluded(w) => {
            let full = rows / 64;
            let mut excluded: usize = w[..full].iter().map(|x| x.count_ones() as usize).sum();
            if !rows.is_multiple_of(64) {
                excluded += (w[full] & ((1u64 << (rows % 64)) - 1)).count_ones() as usize;
            }
            rows - excluded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::IndexError;
    use crate::filter::Bitset;
    use crate::index::VectorIndex;
    use crate::params::{IndexType, SearchParams};
    use crate::testdata::{clustered, queries_like};

    const METRICS: [Metric; 3] = [Metric::L2, Metric::Ip, Metric::Cosine];

    fn params(metric: Metric, m: usize, ef_construction: usize) -> IndexParams {
        IndexParams { hnsw_m: m, ef_construction, ..IndexParams::new(IndexType::Hnsw, metric) }
    }

    fn ef(ef: usize) -> SearchParams {
        SearchParams { ef: Some(ef), ..Default::default() }
    }

    /// Exact hits (f64 scores), best first, ties by row.
    fn exact(base: &[f32], dim: usize, q: &[f32], metric: Metric, allowed: &dyn Fn(usize) -> bool) -> Vec<(u32, f64)> {
        let qn = q.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let mut v: Vec<(u32, f64)> = base
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| allowed(*i))
            .map(|(i, r)| {
                let d: f64 = q.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum();
                let s = match metric {
                    Metric::L2 => q.iter().zip(r).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum(),
                    Metric::Ip => d,
                    Metric::Cosine => d / (qn * r.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()),
                };
                (i as u32, s)
            })
            .collect();
        v.sort_by(|a, b| {
            let o = a.1.partial_cmp(&b.1).expect("finite");
            (if metric.higher_is_better() { o.reverse() } else { o }).then(a.0.cmp(&b.0))
        });
        v
    }

    fn recall(got: &[Vec<Hit>], want: &[Vec<(u32, f64)>], k: usize) -> f64 {
        let mut hit = 0;
        for (g, w) in got.iter().zip(want) {
            let truth: Vec<u32> = w.iter().take(k).map(|x| x.0).collect();
            hit += g.iter().take(k).filter(|h| truth.contains(&h.row)).count();
        }
        hit as f64 / (k * got.len()) as f64
    }

    #[test]
    fn recall_against_brute_force() {
        let (n, dim, nq, k) = (4000, 32, 100, 10);
        // As many mixture components as rows: close to Gaussian noise in 32-d, far
        // harder for a graph than well-separated clusters.
        let base = clustered(n, dim, n, 31);
        let queries = queries_like(nq, dim, n, 31);
        for metric in METRICS {
            let index = VectorIndex::build(&params(metric, 16, 100), dim, &base).expect("builds");
            let VectorIndex::Hnsw(h) = &index else { panic!("not HNSW") };
            assert_eq!(h.params(), (16, 100));
            let truth: Vec<_> = queries.chunks_exact(dim).map(|q| exact(&base, dim, q, metric, &|_| true)).collect();
            let got = index.search(&queries, k, &ef(64), None).expect("searches");
            let r = recall(&got, &truth, k);
            let low = recall(&index.search(&queries, k, &ef(10), None).expect("searches"), &truth, k);
            eprintln!("{metric:?} HNSW: recall@10 {r:.3} at ef 64, {low:.3} at ef 10, {} layers", h.layers());
            assert!(r >= 0.95, "{metric:?}: recall@10 {r:.3} at ef 64");
            assert!(low <= r);
            for (g, w) in got.iter().zip(&truth) {
                assert_eq!(g.len(), k);
                assert!(g.windows(2).all(|p| !metric.better(p[1].score, p[0].score)));
                for h in g {
                    let want = w.iter().find(|x| x.0 == h.row).expect("row exists").1;
                    assert!((h.score as f64 - want).abs() <= 1e-3 * want.abs().max(1.0), "{metric:?} {h:?} vs {want}");
                }
            }
            // One query at a time gives what the batch gave.
            for (qi, q) in queries.chunks_exact(dim).enumerate().take(10) {
                assert_eq!(index.search(q, k, &ef(64), None).expect("searches")[0], got[qi]);
            }
        }
    }

    #[test]
    fn filters_are_honoured_light_and_heavy() {
        let (n, dim, nq, k) = (3000, 24, 50, 10);
        let base = clustered(n, dim, 300, 32);
        let queries = queries_like(nq, dim, 300, 32);
        for metric in METRICS {
            let index = VectorIndex::build(&params(metric, 16, 100), dim, &base).expect("builds");
            // Light: a third excluded, searched through the graph.
            let light: Vec<bool> = (0..n).map(|i| i % 3 != 1).collect();
            // 80 % excluded: still a walk, which goes on until ef allowed rows are held.
            let sparse: Vec<bool> = (0..n).map(|i| i % 5 == 2).collect();
            // Heavy: 97 % excluded, below the brute-force threshold: exact.
            let heavy: Vec<bool> = (0..n).map(|i| i % 33 == 5).collect();
            for (allowed, min_recall) in [(&light, 0.95), (&sparse, 0.95), (&heavy, 1.0)] {
                let bits = Bitset::from_allowed(allowed);
                let truth: Vec<_> =
                    queries.chunks_exact(dim).map(|q| exact(&base, dim, q, metric, &|i| allowed[i])).collect();
                let a = index.search(&queries, k, &ef(64), Some(RowFilter::Allowed(allowed))).expect("searches");
                let b = index.search(&queries, k, &ef(64), Some(bits.as_filter())).expect("searches");
                assert_eq!(a, b, "bools and bitset agree");
                assert!(a.iter().flatten().all(|h| allowed[h.row as usize]));
                assert!(a.iter().all(|g| g.len() == k));
                let r = recall(&a, &truth, k);
                assert!(r >= min_recall, "{metric:?}: filtered recall {r:.3} < {min_recall}");
            }
            // Everything excluded: nothing; fewer allowed rows than k: all of them.
            let none = vec![false; n];
            assert!(index.search(&queries, k, &ef(64), Some(RowFilter::Allowed(&none))).expect("s")[0].is_empty());
            let few: Vec<bool> = (0..n).map(|i| i == 7 || i == 2000).collect();
            let got = index.search(&queries[..dim], k, &ef(64), Some(RowFilter::Allowed(&few))).expect("s");
            let mut rows: Vec<u32> = got[0].iter().map(|h| h.row).collect();
            rows.sort_unstable();
            assert_eq!(rows, vec![7, 2000]);
        }
    }

    #[test]
    fn deleted_rows_are_never_returned() {
        let (n, dim) = (2000, 16);
        let base = clustered(n, dim, 100, 33);
        let index = VectorIndex::build(&params(Metric::L2, 8, 60), dim, &base).expect("builds");
        // Delete each query's exact neighbours (the query is a stored row): the search
        // must step over them (they stay in the graph) and return the next ones.
        for qrow in [0usize, 517, 1999] {
            let q = &base[qrow * dim..(qrow + 1) * dim];
            let truth = exact(&base, dim, q, Metric::L2, &|_| true);
            let mut deleted = Bitset::new(n);
            for (row, _) in truth.iter().take(20) {
                deleted.exclude(*row as usize);
            }
            let got = index.search(q, 10, &ef(100), Some(deleted.as_filter())).expect("searches");
            assert_eq!(got[0].len(), 10);
            assert!(got[0].iter().all(|h| !deleted.is_excluded(h.row as usize)));
            let next: Vec<u32> = truth[20..30].iter().map(|x| x.0).collect();
            let found = got[0].iter().filter(|h| next.contains(&h.row)).count();
            assert!(found >= 9, "query row {qrow}: {found} of the next 10");
        }
    }

    #[test]
    fn range_search_matches_brute_force() {
        let (n, dim, nq) = (3000, 16, 10);
        let base = clustered(n, dim, 60, 34);
        let queries = queries_like(nq, dim, 60, 34);
        let allowed: Vec<bool> = (0..n).map(|i| i % 4 != 0).collect();
        for metric in METRICS {
            let index = VectorIndex::build(&params(metric, 16, 100), dim, &base).expect("builds");
            let t0 = exact(&base, dim, &queries[..dim], metric, &|_| true);
            // A window between the 5th and the 150th best score of the first query.
            let (radius, range_filter) = (t0[150].1 as f32, t0[5].1 as f32);
            let s = SearchParams { radius: Some(radius), range_filter: Some(range_filter), ..Default::default() };
            for filter in [None, Some(RowFilter::Allowed(&allowed))] {
                let got = index.search(&queries, 1000, &s, filter).expect("searches");
                let (mut found, mut want_total) = (0, 0);
                for (g, q) in got.iter().zip(queries.chunks_exact(dim)) {
                    let want: Vec<u32> = exact(&base, dim, q, metric, &|i| filter.is_none() || allowed[i])
                        .into_iter()
                        .filter(|x| metric.in_range(x.1 as f32, Some(radius), Some(range_filter)))
                        .map(|x| x.0)
                        .collect();
                    assert!(g.iter().all(|h| metric.in_range(h.score, Some(radius), Some(range_filter))));
                    assert!(g.iter().all(|h| filter.is_none() || allowed[h.row as usize]));
                    assert!(g.windows(2).all(|p| !metric.better(p[1].score, p[0].score)));
                    found += g.iter().filter(|h| want.contains(&h.row)).count();
                    want_total += want.len();
                }
                assert!(want_total >= 100);
                // Float rounding at a bound may move a row either side; the walk may
                // miss a row the graph does not connect to the region.
                assert!(found as f64 >= 0.98 * want_total as f64, "{metric:?}: {found} of {want_total}");
                // k caps a range search too.
                let capped = index.search(&queries[..dim], 3, &s, filter).expect("searches");
                assert_eq!(capped[0].len(), 3);
                assert_eq!(capped[0], got[0][..3].to_vec());
            }
        }
    }

    #[test]
    fn serialisation_round_trips_and_builds_are_deterministic() {
        let (n, dim) = (1500, 12);
        let base = clustered(n, dim, 30, 35);
        let queries = queries_like(8, dim, 30, 35);
        for metric in METRICS {
            let p = params(metric, 6, 40);
            let index = VectorIndex::build(&p, dim, &base).expect("builds");
            let bytes = index.to_bytes();
            let back = VectorIndex::from_bytes(&bytes).expect("loads");
            assert_eq!(back, index);
            assert_eq!(back.to_bytes(), bytes);
            assert_eq!(back.search(&queries, 5, &ef(20), None), index.search(&queries, 5, &ef(20), None));
            // Same seed: the same file, whatever the thread count.
            let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
            assert_eq!(one.install(|| VectorIndex::build(&p, dim, &base)).expect("builds").to_bytes(), bytes);
            let other = VectorIndex::build(&IndexParams { seed: 7, ..p }, dim, &base).expect("builds");
            assert_ne!(other.to_bytes(), bytes);
        }
    }

    #[test]
    fn corrupt_files_are_detected() {
        let (n, dim) = (300, 8);
        let base = clustered(n, dim, 6, 36);
        let index = VectorIndex::build(&params(Metric::L2, 4, 20), dim, &base).expect("builds");
        let bytes = index.to_bytes();
        for pos in (0..bytes.len()).step_by(11) {
            let mut b = bytes.clone();
            b[pos] ^= 0x10;
            assert!(matches!(VectorIndex::from_bytes(&b), Err(IndexError::Corrupt(_))), "flip at {pos}");
        }
        for len in (0..bytes.len()).step_by(17).chain([bytes.len() - 1]) {
            assert!(matches!(VectorIndex::from_bytes(&bytes[..len]), Err(IndexError::Corrupt(_))), "cut at {len}");
        }
        // Structural lies behind a valid checksum.
        let reseal = |b: &mut Vec<u8>| {
            let n = b.len() - 4;
            let crc = crc32fast::hash(&b[..n]);
            b[n..].copy_from_slice(&crc.to_le_bytes());
        };
        let body = crate::format::HEADER_LEN;
        let cap0 = 8; // min(2·M, rows − 1)
        let links0 = body + 20 + n;
        for (at, value) in [
            (body, 1u32),                 // M below 2
            (body + 8, n as u32),         // entry point out of range
            (links0, cap0 as u32 + 1),    // more links than slots
            (links0 + 4, n as u32),       // a link out of range
            (links0 + 4 * (cap0 + 2), 1), // node 1 links to itself
            (32, 4),                      // an nlist in the header
        ] {
            let mut b = bytes.clone();
            b[at..at + 4].copy_from_slice(&value.to_le_bytes());
            reseal(&mut b);
            let e = VectorIndex::from_bytes(&b).expect_err("lie detected");
            assert!(matches!(e, IndexError::Corrupt(_)), "{at}: {e}");
        }
    }

    #[test]
    fn parameters_are_checked() {
        let dim = 8;
        let base = clustered(200, dim, 4, 37);
        let index = VectorIndex::build(&params(Metric::Ip, 8, 32), dim, &base).expect("builds");
        let q = &base[..dim];
        let e = index.search(q, 10, &ef(9), None).expect_err("ef < k");
        assert_eq!(e.to_string(), "invalid parameter ef=9: ef(9) should be larger than k(10)");
        assert!(index.search(q, 10, &ef(10), None).is_ok());
        // Default ef: max(k, 16); a range search ignores k for ef.
        assert_eq!(index.search(q, 40, &SearchParams::default(), None).expect("default ef")[0].len(), 40);
        let ranged = SearchParams { ef: Some(4), radius: Some(-1e9), ..Default::default() };
        assert!(index.search(q, 10, &ranged, None).is_ok());
        let e = VectorIndex::build(&params(Metric::Ip, 1, 32), dim, &base).expect_err("M");
        assert_eq!(e.to_string(), "invalid parameter M=1: an integer in 2..=2048");
        assert!(VectorIndex::build(&params(Metric::Ip, 2049, 32), dim, &base).is_err());
        assert!(VectorIndex::build(&params(Metric::Ip, 8, 0), dim, &base).is_err());
        assert!(VectorIndex::build(&params(Metric::Ip, 8, 32), dim, &[]).is_err());
        let p = IndexParams::from_kv([("index_type", "HNSW"), ("params", r#"{"M": 2049}"#)]).expect_err("M");
        assert_eq!(p.to_string(), "invalid parameter M=2049: an integer in 2..=2048");
        let p = IndexParams::from_kv([("params", r#"{"efConstruction": 0}"#)]).expect_err("efConstruction");
        assert_eq!(p.to_string(), "invalid parameter efConstruction=0: an integer in 1..=2147483647");
        let e = SearchParams::from_json(r#"{"ef": 0}"#).expect_err("ef");
        assert_eq!(e.to_string(), "invalid parameter ef=0: an integer in 1..=2147483647");
    }

    #[test]
    fn tiny_segments() {
        let dim = 4;
        for n in [1usize, 2, 3, 17] {
            let base = clustered(n, dim, 2, 38);
            for metric in METRICS {
                let index = VectorIndex::build(&params(metric, 2, 8), dim, &base).expect("builds");
                let got = index.search(&base, 3, &ef(8), None).expect("searches");
                for (i, g) in got.iter().enumerate() {
                    assert_eq!(g.len(), 3.min(n));
                    if metric == Metric::L2 {
                        assert_eq!(g[0].row as usize, i);
                    }
                }
                assert_eq!(VectorIndex::from_bytes(&index.to_bytes()).expect("loads"), index);
            }
        }
    }
}

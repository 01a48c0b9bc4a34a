//! Walking the graph for one query: greedy descent through the upper layers, then a
//! best-first search of layer 0 with a beam of `ef`, and for range searches a
//! breadth-first expansion around what the beam found. Per-search state (visited marks,
//! heaps) lives in thread-local scratch reused by every search on the thread.
//!
//! Rows' codes and the next node's list are prefetched while the current node is
//! expanded. Filtered rows are traversed (they keep the graph connected) but never
//! returned; the beam goes on until `ef` allowed rows are held. Walks poll the stop flag
//! every [`STOP_EXPANSIONS`] node expansions.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::graph::Graph;
use super::scoring::{Coded, Exact, QueryDist, RowCodes, Space, score};
use crate::context::Stop;
use crate::error::Result;
use crate::filter::RowFilter;
use crate::metric::Metric;
use crate::params::Bounds;
use crate::topk::{Hit, TopK};

/// A walk polls its stop flag every this many node expansions (a few microseconds of
/// work at d=384).
const STOP_EXPANSIONS: usize = 64;

/// A node and its distance to the current query (smaller is closer; ties by id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cand {
    pub d: f32,
    pub id: u32,
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

/// Per-thread search state: visited marks (a generation stamp per row, so starting a
/// search costs nothing) and the two heaps of the best-first search.
pub(super) struct Scratch {
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
    pub fn begin(&mut self, rows: usize) {
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

/// Runs `f` with this thread's search state.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

impl Graph {
    /// Greedy walk on `layer` from `cur` to a local minimum.
    pub(super) fn greedy(&self, qd: &impl QueryDist, mut cur: Cand, layer: usize) -> Cand {
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

    /// Greedy descent from the entry point to layer `down_to + 1`'s local minimum, the
    /// start of the search on layer `down_to`.
    pub(super) fn descend(&self, qd: &impl QueryDist, down_to: usize) -> Cand {
        let mut cur = Cand { d: qd.dist(self.entry), id: self.entry };
        for layer in (down_to + 1..=self.top).rev() {
            cur = self.greedy(qd, cur, layer);
        }
        cur
    }

    /// Best-first search of `layer` from `entries` with a beam of `ef`; returns the best
    /// `ef` allowed nodes, closest first. Excluded nodes are expanded but not kept. With
    /// `seen`, every scored node is also appended there (range search). `s` must have
    /// been begun, with the entries not yet visited.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn beam(
        &self,
        qd: &impl QueryDist,
        entries: &[Cand],
        ef: usize,
        layer: usize,
        filter: RowFilter<'_>,
        stop: Stop<'_>,
        s: &mut Scratch,
        mut seen: Option<&mut Vec<Cand>>,
    ) -> Result<Vec<Cand>> {
        let allowed = |i: u32| filter.allows(i as usize);
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
        let mut expanded = 0usize;
        while let Some(Reverse(c)) = s.cand.pop() {
            if c.d > bound {
                break;
            }
            if expanded.is_multiple_of(STOP_EXPANSIONS)
                && let Err(e) = stop.check()
            {
                s.fresh = fresh;
                return Err(e);
            }
            expanded += 1;
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
        Ok(out)
    }
}

/// What one search reads: the graph, the rows, their codes and the metric.
#[derive(Clone, Copy)]
pub(super) struct Walk<'a> {
    pub graph: &'a Graph,
    pub sp: Space<'a>,
    pub codes: &'a RowCodes,
    pub metric: Metric,
}

impl Walk<'_> {
    /// The best `k` allowed rows for `q`: a walk with the codes and a beam of `ef`, then
    /// the beam rescored exactly.
    pub fn knn(&self, q: &[f32], k: usize, ef: usize, filter: RowFilter<'_>, stop: Stop<'_>) -> Result<Vec<Hit>> {
        let g = self.graph;
        let qd = Coded::new(self.codes, q, self.sp.l2);
        let cur = g.descend(&qd, 0);
        let found = with_scratch(|s| {
            s.begin(g.rows());
            g.beam(&qd, &[cur], ef, 0, filter, stop, s, None)
        })?;
        let exact = Exact { sp: self.sp, q };
        found.iter().for_each(|c| exact.prefetch(c.id));
        let mut top = TopK::new(self.metric, k);
        for c in &found {
            top.push(Hit { row: c.id, score: score(self.metric, exact.dist(c.id)) });
        }
        Ok(top.into_sorted())
    }

    /// Range search, exact throughout: the beam (`ef`) finds the region, then every link
    /// out of a row inside the radius is followed, so every row inside it that the graph
    /// connects to the region is scored; the best `k` allowed rows in the window.
    #[allow(clippy::too_many_arguments)]
    pub fn range(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        filter: RowFilter<'_>,
        stop: Stop<'_>,
        b: &Bounds,
    ) -> Result<Vec<Hit>> {
        let (g, metric) = (self.graph, self.metric);
        let qd = Exact { sp: self.sp, q };
        let cur = g.descend(&qd, 0);
        with_scratch(|s| {
            s.begin(g.rows());
            let mut top = TopK::new(metric, k);
            let mut seen = Vec::new();
            g.beam(&qd, &[cur], ef, 0, RowFilter::ALL, stop, s, Some(&mut seen))?;
            let inside = |d: f32| metric.in_range(score(metric, d), b.radius, None);
            let allowed = |i: u32| filter.allows(i as usize);
            let mut queue: Vec<u32> = Vec::new();
            for c in &seen {
                if inside(c.d) {
                    queue.push(c.id);
                    let sc = score(metric, c.d);
                    if allowed(c.id) && metric.in_range(sc, b.radius, b.range_filter) {
                        top.push(Hit { row: c.id, score: sc });
                    }
                }
            }
            let mut fresh = Vec::new();
            let mut expanded = 0usize;
            while let Some(c) = queue.pop() {
                if expanded.is_multiple_of(STOP_EXPANSIONS) {
                    stop.check()?;
                }
                expanded += 1;
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
                        let sc = score(metric, d);
                        if allowed(n) && metric.in_range(sc, b.radius, b.range_filter) {
                            top.push(Hit { row: n, score: sc });
                        }
                    }
                }
            }
            Ok(top.into_sorted())
        })
    }
}

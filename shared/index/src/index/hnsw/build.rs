//! Building the graph, parallel and deterministic. Every row is a node with a level drawn
//! from the seeded generator (`⌊−ln U · 1/ln M⌋`, capped at [`MAX_LEVEL`]). Rows are
//! inserted in row order in batches; every row of a batch searches the graph as it stood
//! before the batch (beam `efConstruction`, with the codes, rescored exactly), in
//! parallel, and picks its own neighbours by the paper's heuristic (a candidate is kept
//! only if it is closer to the node than to every neighbour kept before it, which keeps
//! diverse directions). Then the batch's reverse links are grouped by target node and
//! each target's new list (its old links plus the new ones, re-selected by the heuristic
//! when over capacity) is computed in parallel. Nothing depends on thread interleaving,
//! so a seed gives the same graph on any number of threads. Batches grow with the graph
//! (1/16 of the rows inserted so far, at most [`MAX_BATCH`]), so rows rarely miss a
//! neighbour inserted in the same batch; a row whose level exceeds the graph's top goes in
//! a batch of its own and becomes the entry point.

use rayon::prelude::*;

use super::graph::{Graph, MAX_LEVEL};
use super::scoring::{Coded, Exact, QueryDist, RowCodes, Space};
use super::search::{Cand, with_scratch};
use crate::context::Stop;
use crate::error::Result;
use crate::filter::RowFilter;
use crate::rng::Rng;

/// Largest insertion batch of the build.
pub const MAX_BATCH: usize = 1024;

impl Graph {
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

    /// Where node `x` links to on each layer it shares with the graph:
    /// `(layer, neighbours with their distances)`, top layer first. The walk uses the
    /// codes; the neighbours are chosen on exact distances.
    fn plan_insert(
        &self,
        sp: &Space<'_>,
        codes: &RowCodes,
        x: u32,
        ef_construction: usize,
    ) -> Result<Vec<(usize, Vec<Cand>)>> {
        let qd = Coded::new(codes, sp.row(x), sp.l2);
        let exact = Exact { sp: *sp, q: sp.row(x) };
        let level = self.levels[x as usize] as usize;
        let mut entries = vec![self.descend(&qd, level)];
        let mut plan = Vec::with_capacity(level.min(self.top) + 1);
        with_scratch(|s| {
            for layer in (0..=level.min(self.top)).rev() {
                s.begin(self.rows());
                // Never stopped inside a row's insertion: the build polls between batches.
                let found = self.beam(&qd, &entries, ef_construction, layer, RowFilter::ALL, Stop::NEVER, s, None)?;
                let mut rescored: Vec<Cand> = found.iter().map(|c| Cand { d: exact.dist(c.id), id: c.id }).collect();
                rescored.sort_unstable();
                let max = self.m.min(if layer == 0 { self.cap0 } else { self.cap });
                plan.push((layer, Self::select(sp, &rescored, max)));
                entries = found;
            }
            Ok(())
        })?;
        Ok(plan)
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

    /// Builds the graph of every row of `sp` (see the module documentation), polling
    /// `stop` before every batch.
    pub(super) fn build(
        sp: &Space<'_>,
        codes: &RowCodes,
        m: usize,
        ef_construction: usize,
        seed: u64,
        stop: Stop<'_>,
    ) -> Result<Graph> {
        let rows = sp.rows();
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
            return Ok(g);
        }
        g.entry = 0;
        g.top = g.levels[0] as usize;
        let mut done = 1;
        while done < rows {
            stop.check()?;
            let want = (done / 16).clamp(1, MAX_BATCH);
            let mut end = done + 1;
            if g.levels[done] as usize <= g.top {
                while end < rows && end - done < want && g.levels[end] as usize <= g.top {
                    end += 1;
                }
            }
            let plans: Vec<Vec<(usize, Vec<Cand>)>> = (done..end)
                .into_par_iter()
                .map(|x| g.plan_insert(sp, codes, x as u32, ef_construction))
                .collect::<Result<_>>()?;
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
        Ok(g)
    }
}

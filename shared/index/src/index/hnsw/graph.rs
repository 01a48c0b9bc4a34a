//! The stored graph: node levels and every node's neighbour lists, in the layout searches
//! read and the file holds. Layer-0 lists sit in one fixed-stride array (node `i`'s list
//! at `i·(cap0+1)`: a count, then `cap0` slots); the upper-layer lists of the nodes with a
//! level above 0 sit in a CSR-like array, whose offsets follow from the levels (so they
//! are not stored). `cap = min(M, rows − 1)`, `cap0 = min(2·M, rows − 1)`.

use crate::error::{IndexError, Result};
use crate::format::{Reader, Writer};
use crate::memory::prefetch;

/// Highest level a node may get.
pub const MAX_LEVEL: usize = 30;

/// Link capacities for `m` and `rows`: (upper layers, layer 0). A node cannot have more
/// distinct neighbours than there are other rows.
fn capacities(m: usize, rows: usize) -> (usize, usize) {
    let others = rows.saturating_sub(1).max(1);
    (m.min(others), (2 * m).min(others))
}

/// The layered graph.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Graph {
    /// `M`.
    pub m: usize,
    /// Link capacity on the upper layers and on layer 0.
    pub cap: usize,
    pub cap0: usize,
    pub levels: Vec<u8>,
    /// Node `i`'s layer-0 list: count at `i·(cap0+1)`, then `cap0` slots.
    links0: Vec<u32>,
    /// Node `i`'s layer `l ≥ 1` list starts at `upper_start[i] + (l−1)·(cap+1)`: count,
    /// then `cap` slots (derived from the levels, not stored).
    upper_start: Vec<usize>,
    upper: Vec<u32>,
    /// The entry point: a node of the top level.
    pub entry: u32,
    pub top: usize,
}

impl Graph {
    /// An empty graph (no links) for nodes of the given levels.
    pub fn new(m: usize, levels: Vec<u8>) -> Graph {
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

    pub fn rows(&self) -> usize {
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
    fn array(&self, layer: usize) -> &[u32] {
        if layer == 0 { &self.links0 } else { &self.upper }
    }

    #[inline(always)]
    pub fn neighbours(&self, i: u32, layer: usize) -> &[u32] {
        let (s, _) = self.slot(i, layer);
        let a = self.array(layer);
        let n = a[s] as usize;
        &a[s + 1..s + 1 + n]
    }

    /// Starts loading node `i`'s list on `layer`.
    #[inline(always)]
    pub fn prefetch_links(&self, i: u32, layer: usize) {
        let (s, cap) = self.slot(i, layer);
        prefetch(&self.array(layer)[s..s + cap + 1]);
    }

    pub fn set_neighbours(&mut self, i: u32, layer: usize, list: &[u32]) {
        let (s, cap) = self.slot(i, layer);
        debug_assert!(list.len() <= cap);
        let a = if layer == 0 { &mut self.links0 } else { &mut self.upper };
        a[s] = list.len() as u32;
        a[s + 1..s + 1 + list.len()].copy_from_slice(list);
        a[s + 1 + list.len()..s + 1 + cap].fill(0);
    }

    pub fn memory_bytes(&self) -> usize {
        self.levels.len() + self.links0.len() * 4 + self.upper.len() * 4 + self.upper_start.len() * 8
    }

    /// Writes the level of every row (one byte each), the layer-0 lists
    /// (`rows × (cap0 + 1)` u32: count, then `cap0` slots, unused ones 0) and the
    /// upper-layer lists of every row with a level above 0 in row order, layers
    /// 1..=level, each `cap + 1` u32 likewise.
    pub fn write_links(&self, w: &mut Writer) {
        w.bytes(&self.levels);
        w.u32s(&self.links0);
        w.u32s(&self.upper);
    }

    /// Reads what [`Graph::write_links`] wrote for `rows` nodes of degree `m` with the
    /// given entry point, and checks it: levels in range, the entry point a node of the
    /// top level, no list over its capacity, every link to another node that has the
    /// layer.
    pub fn read_links(r: &mut Reader<'_>, m: usize, rows: usize, entry: u32, top: usize) -> Result<Graph> {
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
                let a = graph.array(layer);
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
        Ok(graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_lists() {
        // Levels 0, 2, 1 with M = 2: cap 2, cap0 2 (only two other rows).
        let mut g = Graph::new(2, vec![0, 2, 1]);
        assert_eq!((g.cap, g.cap0, g.rows()), (2, 2, 3));
        assert_eq!(g.links0.len(), 3 * 3);
        assert_eq!(g.upper_start, vec![0, 0, 6, 9]);
        g.set_neighbours(1, 2, &[2]);
        g.set_neighbours(1, 0, &[0, 2]);
        g.set_neighbours(2, 1, &[1]);
        assert_eq!(g.neighbours(1, 2), &[2]);
        assert_eq!(g.neighbours(1, 0), &[0, 2]);
        assert_eq!(g.neighbours(2, 1), &[1]);
        assert!(g.neighbours(0, 0).is_empty());
        g.set_neighbours(1, 0, &[2]);
        assert_eq!(g.links0[3..6], [1, 2, 0], "unused slots are cleared");
        g.prefetch_links(1, 2);
        assert_eq!(capacities(30, 1), (1, 1));
        assert_eq!(capacities(30, 1000), (30, 60));
    }
}

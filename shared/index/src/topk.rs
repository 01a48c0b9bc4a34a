//! Bounded best-k selection: a heap whose root is the worst kept candidate, so each new
//! candidate costs one comparison unless it enters the top k.

use crate::metric::Metric;

/// One search hit: a row (segment offset) and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub row: u32,
    pub score: f32,
}

pub struct TopK {
    metric: Metric,
    k: usize,
    heap: Vec<Hit>,
}

impl TopK {
    pub fn new(metric: Metric, k: usize) -> TopK {
        TopK { metric, k, heap: Vec::with_capacity(k.min(4096)) }
    }

    /// Whether `a` ranks after `b` (worse score, or equal score and larger row).
    #[inline]
    fn worse(&self, a: &Hit, b: &Hit) -> bool {
        self.metric.better(b.score, a.score) || (a.score == b.score && a.row > b.row)
    }

    /// The score a candidate must beat to enter, once k are kept.
    #[inline]
    pub fn threshold(&self) -> Option<f32> {
        (self.heap.len() == self.k).then(|| self.heap[0].score)
    }

    #[inline]
    pub fn push(&mut self, hit: Hit) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(hit);
            self.sift_up(self.heap.len() - 1);
        } else if self.worse(&self.heap[0], &hit) {
            self.heap[0] = hit;
            self.sift_down(0);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.worse(&self.heap[i], &self.heap[parent]) {
                self.heap.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut worst = i;
            if l < n && self.worse(&self.heap[l], &self.heap[worst]) {
                worst = l;
            }
            if r < n && self.worse(&self.heap[r], &self.heap[worst]) {
                worst = r;
            }
            if worst == i {
                break;
            }
            self.heap.swap(i, worst);
            i = worst;
        }
    }

    /// The kept hits, best first (ties: smaller row first).
    pub fn into_sorted(self) -> Vec<Hit> {
        let metric = self.metric;
        let mut v = self.heap;
        v.sort_by(|a, b| {
            if metric.better(a.score, b.score) {
                std::cmp::Ordering::Less
            } else if metric.better(b.score, a.score) {
                std::cmp::Ordering::Greater
            } else {
                a.row.cmp(&b.row)
            }
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_k() {
        let scores = [5.0f32, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0];
        let mut t = TopK::new(Metric::L2, 3);
        for (i, s) in scores.iter().enumerate() {
            t.push(Hit { row: i as u32, score: *s });
        }
        let rows: Vec<u32> = t.into_sorted().iter().map(|h| h.row).collect();
        assert_eq!(rows, vec![1, 5, 3]);
        let mut t = TopK::new(Metric::Ip, 2);
        for (i, s) in scores.iter().enumerate() {
            t.push(Hit { row: i as u32, score: *s });
        }
        let rows: Vec<u32> = t.into_sorted().iter().map(|h| h.row).collect();
        assert_eq!(rows, vec![2, 6]);
    }

    #[test]
    fn ties_prefer_smaller_rows() {
        let mut t = TopK::new(Metric::Ip, 2);
        for row in [4u32, 1, 3, 0] {
            t.push(Hit { row, score: 1.0 });
        }
        let rows: Vec<u32> = t.into_sorted().iter().map(|h| h.row).collect();
        assert_eq!(rows, vec![0, 1]);
    }
}

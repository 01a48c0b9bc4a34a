//! Bounded best-k selection: a heap whose root is the worst kept candidate, so each new
//! candidate costs one comparison unless it enters the top k. [`TopK::push_block`] scans a
//! block of scores (a GEMM output column) 64 at a time and skips a whole chunk when none of
//! its scores can enter, so selection stays far below the cost of scoring.

use crate::metric::Metric;

/// One search hit: a row (segment offset) and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Row (offset) in the segment the index was built from.
    pub row: u32,
    /// True metric score: squared L2 distance, inner product or cosine similarity.
    pub score: f32,
}

/// The best `k` hits seen so far under a metric (ties: smaller row wins).
pub struct TopK {
    metric: Metric,
    k: usize,
    heap: Vec<Hit>,
}

impl TopK {
    /// An empty selection of at most `k` hits.
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

    /// Offers one hit; kept if fewer than k are kept or it beats the worst kept one.
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

    /// Number of hits kept so far.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no hit is kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds every hit kept by `other` (same metric assumed).
    pub fn merge(&mut self, other: TopK) {
        for h in other.heap {
            self.push(h);
        }
    }

    /// Pushes `scores[j]` as row `ids[j]` (or `first_row + j` without ids), skipping NaN
    /// scores. Once k hits are kept, a SIMD search jumps to the next score that reaches
    /// the (tightening) threshold, so rejected scores cost a fraction of a cycle each.
    pub fn push_block(&mut self, scores: &[f32], first_row: u32, ids: Option<&[u32]>) {
        if self.k == 0 {
            return;
        }
        let higher = self.metric.higher_is_better();
        let row_of = |j: usize| ids.map_or(first_row + j as u32, |ids| ids[j]);
        let mut j = 0;
        while self.heap.len() < self.k && j < scores.len() {
            if !scores[j].is_nan() {
                self.push(Hit { row: row_of(j), score: scores[j] });
            }
            j += 1;
        }
        let find = finder();
        while j < scores.len() {
            // SAFETY: `finder` returns a variant whose CPU features were detected.
            match unsafe { find(scores, j, self.heap[0].score, higher) } {
                Some(i) => {
                    self.push(Hit { row: row_of(i), score: scores[i] });
                    j = i + 1;
                }
                None => break,
            }
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

/// Finds the first index `>= from` whose score reaches `t` (`>=` when higher is better,
/// `<=` otherwise; NaN never does).
type Finder = unsafe fn(&[f32], usize, f32, bool) -> Option<usize>;

fn finder() -> Finder {
    static F: std::sync::OnceLock<Finder> = std::sync::OnceLock::new();
    *F.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return find_avx512;
            }
        }
        find_portable
    })
}

/// Portable search: 16-wide branch-free "any" checks (vectorised by the compiler).
unsafe fn find_portable(s: &[f32], from: usize, t: f32, higher: bool) -> Option<usize> {
    let reaches = |x: f32| if higher { x >= t } else { x <= t };
    let mut i = from;
    while i + 16 <= s.len() {
        let c = &s[i..i + 16];
        let mut any = false;
        for &x in c {
            any |= reaches(x);
        }
        if any {
            return c.iter().position(|&x| reaches(x)).map(|p| i + p);
        }
        i += 16;
    }
    s[i..].iter().position(|&x| reaches(x)).map(|p| i + p)
}

/// AVX-512 search: one compare-to-mask per 16 scores.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn find_avx512(s: &[f32], from: usize, t: f32, higher: bool) -> Option<usize> {
    use std::arch::x86_64::*;
    let tv = _mm512_set1_ps(t);
    let mut i = from;
    while i + 16 <= s.len() {
        // SAFETY: i + 16 <= s.len().
        let x = unsafe { _mm512_loadu_ps(s.as_ptr().add(i)) };
        let m = if higher { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, tv) } else { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(x, tv) };
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    s[i..].iter().position(|&x| if higher { x >= t } else { x <= t }).map(|p| i + p)
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
    fn push_block_equals_push() {
        let scores: Vec<f32> = (0..1000u32).map(|i| ((i * 7919) % 1013) as f32 * 0.5).collect();
        for metric in [Metric::L2, Metric::Ip] {
            for k in [1, 5, 40] {
                let mut a = TopK::new(metric, k);
                let mut b = TopK::new(metric, k);
                for (i, s) in scores.iter().enumerate() {
                    a.push(Hit { row: 100 + i as u32, score: *s });
                }
                b.push_block(&scores[..500], 100, None);
                let ids: Vec<u32> = (600..1100).collect();
                b.push_block(&scores[500..], 0, Some(&ids));
                assert_eq!(a.into_sorted(), b.into_sorted(), "{metric:?} k={k}");
            }
        }
        let mut t = TopK::new(Metric::L2, 3);
        t.push_block(&[f32::NAN, 1.0, f32::NAN], 0, None);
        assert_eq!(t.into_sorted(), vec![Hit { row: 1, score: 1.0 }]);
    }

    #[test]
    fn finders_agree() {
        let s: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32).chain([f32::NAN, 5.0]).collect();
        for from in [0usize, 3, 17, 50, 99, 101] {
            for (t, higher) in [(90.0f32, true), (3.0, false), (1000.0, true), (-1.0, false), (5.0, true)] {
                // SAFETY: only variants whose features are present are called.
                let want = unsafe { find_portable(&s, from, t, higher) };
                assert_eq!(
                    want,
                    s[from..].iter().position(|&x| if higher { x >= t } else { x <= t }).map(|p| p + from)
                );
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    assert_eq!(unsafe { find_avx512(&s, from, t, higher) }, want, "from {from} t {t}");
                }
            }
        }
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

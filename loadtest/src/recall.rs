//! Recall@k, tie-aware.
//!
//! A returned id counts as found when it is one of the true top k, or when its true score
//! ties (or beats) the k-th true score: with ties at the boundary several answers are
//! equally right, and an exact engine that breaks the tie differently must still score
//! 1.0. The true score of a returned id is computed from the dataset, never taken from the
//! server's answer.

use fv_common::Metric;

/// Relative tolerance for "ties the k-th score" (scores travel as f32 through two
/// different summation orders).
const TIE_TOLERANCE: f32 = 1e-5;

/// Recall@k of one query's answer.
///
/// - `returned`: the ids the server answered, best first (only the first `k` count;
///   repeated ids count once).
/// - `truth_ids`/`truth_scores`: the exact neighbours, best first (at least `k` of them,
///   or every row that qualifies when fewer do).
/// - `true_score`: the exact score of any id (None when the id is not a base row).
///
/// Returns a value in [0, 1]; with no qualifying rows at all, 1.0 when nothing was
/// returned either and 0.0 otherwise.
pub fn recall_at_k(
    metric: Metric,
    k: usize,
    returned: &[i64],
    truth_ids: &[i64],
    truth_scores: &[f32],
    true_score: impl Fn(i64) -> Option<f32>,
) -> f64 {
    let wanted = k.min(truth_ids.len());
    if wanted == 0 {
        return if returned.is_empty() { 1.0 } else { 0.0 };
    }
    let top = &truth_ids[..wanted];
    let kth = truth_scores[wanted - 1];
    let tolerance = TIE_TOLERANCE * kth.abs().max(1.0);
    let mut seen = Vec::with_capacity(k);
    let mut found = 0usize;
    for &id in returned.iter().take(k) {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        let hit =
            top.contains(&id) || true_score(id).is_some_and(|s| metric.better(s, kth) || (s - kth).abs() <= tolerance);
        if hit {
            found += 1;
        }
    }
    found.min(wanted) as f64 / wanted as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made case: base scores under L2 for ids 0..6 are
    /// 0.0, 1.0, 2.0, 2.0, 2.0, 9.0 (ids 2, 3, 4 tie at the k=3 boundary).
    fn score(id: i64) -> Option<f32> {
        [0.0, 1.0, 2.0, 2.0, 2.0, 9.0].get(id as usize).copied()
    }
    const IDS: [i64; 6] = [0, 1, 2, 3, 4, 5];
    const SCORES: [f32; 6] = [0.0, 1.0, 2.0, 2.0, 2.0, 9.0];

    fn r(returned: &[i64]) -> f64 {
        recall_at_k(Metric::L2, 3, returned, &IDS, &SCORES, score)
    }

    #[test]
    fn exact_answers_score_one() {
        assert_eq!(r(&[0, 1, 2]), 1.0);
    }

    #[test]
    fn a_tie_at_the_boundary_is_as_good_as_the_listed_neighbour() {
        assert_eq!(r(&[0, 1, 4]), 1.0);
        assert_eq!(r(&[0, 1, 3]), 1.0);
    }

    #[test]
    fn misses_count_and_order_within_k_does_not_matter() {
        assert_eq!(r(&[5, 1, 0]), 2.0 / 3.0);
        assert_eq!(r(&[5]), 0.0);
        assert_eq!(r(&[]), 0.0);
        // Only the first k answers count.
        assert_eq!(r(&[5, 5, 0, 1, 2]), 1.0 / 3.0);
    }

    #[test]
    fn repeated_ids_and_unknown_ids_do_not_inflate_recall() {
        assert_eq!(r(&[0, 0, 0]), 1.0 / 3.0);
        assert_eq!(r(&[0, 99, 1]), 2.0 / 3.0);
    }

    #[test]
    fn similarity_metrics_rank_higher_first() {
        let ids = [7, 8, 9];
        let scores = [0.9, 0.8, 0.1];
        let sc = |id: i64| {
            Some(match id {
                7 => 0.9,
                8 => 0.8,
                9 => 0.1,
                10 => 0.8,
                _ => 0.0,
            })
        };
        assert_eq!(recall_at_k(Metric::Ip, 2, &[7, 10], &ids, &scores, sc), 1.0, "10 ties 8");
        assert_eq!(recall_at_k(Metric::Ip, 2, &[7, 9], &ids, &scores, sc), 0.5);
    }

    #[test]
    fn fewer_qualifying_rows_than_k() {
        // A filter that admits two rows: finding both is full recall.
        assert_eq!(recall_at_k(Metric::L2, 10, &[1, 0], &[0, 1], &[0.0, 1.0], score), 1.0);
        assert_eq!(recall_at_k(Metric::L2, 10, &[], &[], &[], score), 1.0);
        assert_eq!(recall_at_k(Metric::L2, 10, &[3], &[], &[], score), 0.0);
    }
}

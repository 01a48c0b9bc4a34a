//! HNSW against brute force: recall, filters (light, heavy, deletes), range search,
//! serialisation, corruption, parameters and tiny segments.

use crate::context::SearchContext;
use crate::error::IndexError;
use crate::filter::{FixedBitSet, from_bools};
use crate::index::VectorIndex;
use crate::metric::Metric;
use crate::params::{IndexParams, IndexType, SearchParams};
use crate::testdata::{clustered, queries_like, view};
use crate::topk::Hit;

const METRICS: [Metric; 3] = [Metric::L2, Metric::Ip, Metric::Cosine];

fn params(metric: Metric, m: usize, ef_construction: usize) -> IndexParams {
    IndexParams { hnsw_m: m, ef_construction, ..IndexParams::new(IndexType::Hnsw, metric) }
}

/// No filter, no stop flag.
fn all() -> SearchContext<'static> {
    SearchContext::new()
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
        let index = VectorIndex::build(&params(metric, 16, 100), view(&base, dim)).expect("builds");
        let VectorIndex::Hnsw(h) = &index else { panic!("not HNSW") };
        assert_eq!(h.params(), (16, 100));
        let truth: Vec<_> = queries.chunks_exact(dim).map(|q| exact(&base, dim, q, metric, &|_| true)).collect();
        let got = index.search(view(&queries, dim), k, &ef(64), all()).expect("searches");
        let r = recall(&got, &truth, k);
        let low = recall(&index.search(view(&queries, dim), k, &ef(10), all()).expect("searches"), &truth, k);
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
            assert_eq!(index.search(view(q, dim), k, &ef(64), all()).expect("searches")[0], got[qi]);
        }
    }
}

#[test]
fn filters_are_honoured_light_and_heavy() {
    let (n, dim, nq, k) = (3000, 24, 50, 10);
    let base = clustered(n, dim, 300, 32);
    let queries = queries_like(nq, dim, 300, 32);
    for metric in METRICS {
        let index = VectorIndex::build(&params(metric, 16, 100), view(&base, dim)).expect("builds");
        // Light: a third excluded, searched through the graph.
        let light: Vec<bool> = (0..n).map(|i| i % 3 != 1).collect();
        // 80 % excluded: still a walk, which goes on until ef allowed rows are held.
        let sparse: Vec<bool> = (0..n).map(|i| i % 5 == 2).collect();
        // Heavy: 97 % excluded, below the brute-force threshold: exact.
        let heavy: Vec<bool> = (0..n).map(|i| i % 33 == 5).collect();
        for (allowed, min_recall) in [(&light, 0.95), (&sparse, 0.95), (&heavy, 1.0)] {
            let bits = from_bools(allowed);
            let truth: Vec<_> =
                queries.chunks_exact(dim).map(|q| exact(&base, dim, q, metric, &|i| allowed[i])).collect();
            let a = index.search(view(&queries, dim), k, &ef(64), (&bits).into()).expect("searches");
            assert!(a.iter().flatten().all(|h| allowed[h.row as usize]));
            assert!(a.iter().all(|g| g.len() == k));
            let r = recall(&a, &truth, k);
            assert!(r >= min_recall, "{metric:?}: filtered recall {r:.3} < {min_recall}");
        }
        // Everything excluded: nothing; fewer allowed rows than k: all of them.
        let none = FixedBitSet::with_capacity(n);
        assert!(index.search(view(&queries, dim), k, &ef(64), (&none).into()).expect("s")[0].is_empty());
        let few: FixedBitSet = from_bools(&(0..n).map(|i| i == 7 || i == 2000).collect::<Vec<bool>>());
        let got = index.search(view(&queries[..dim], dim), k, &ef(64), (&few).into()).expect("s");
        let mut rows: Vec<u32> = got[0].iter().map(|h| h.row).collect();
        rows.sort_unstable();
        assert_eq!(rows, vec![7, 2000]);
    }
}

#[test]
fn deleted_rows_are_never_returned() {
    let (n, dim) = (2000, 16);
    let base = clustered(n, dim, 100, 33);
    let index = VectorIndex::build(&params(Metric::L2, 8, 60), view(&base, dim)).expect("builds");
    // Delete each query's exact neighbours (the query is a stored row): the search
    // must step over them (they stay in the graph) and return the next ones.
    for qrow in [0usize, 517, 1999] {
        let q = &base[qrow * dim..(qrow + 1) * dim];
        let truth = exact(&base, dim, q, Metric::L2, &|_| true);
        let mut visible = FixedBitSet::with_capacity(n);
        visible.insert_range(..);
        for (row, _) in truth.iter().take(20) {
            visible.remove(*row as usize);
        }
        let got = index.search(view(q, dim), 10, &ef(100), (&visible).into()).expect("searches");
        assert_eq!(got[0].len(), 10);
        assert!(got[0].iter().all(|h| visible.contains(h.row as usize)));
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
    let bits = from_bools(&allowed);
    for metric in METRICS {
        let index = VectorIndex::build(&params(metric, 16, 100), view(&base, dim)).expect("builds");
        let t0 = exact(&base, dim, &queries[..dim], metric, &|_| true);
        // A window between the 5th and the 150th best score of the first query.
        let (radius, range_filter) = (t0[150].1 as f32, t0[5].1 as f32);
        let s = SearchParams { radius: Some(radius), range_filter: Some(range_filter), ..Default::default() };
        for filter in [None, Some(&bits)] {
            let ctx = SearchContext::new().with_filter(filter);
            let got = index.search(view(&queries, dim), 1000, &s, ctx).expect("searches");
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
            let capped = index.search(view(&queries[..dim], dim), 3, &s, ctx).expect("searches");
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
        let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
        let bytes = index.to_bytes();
        let back = VectorIndex::from_bytes(&bytes).expect("loads");
        assert_eq!(back, index);
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(
            back.search(view(&queries, dim), 5, &ef(20), all()),
            index.search(view(&queries, dim), 5, &ef(20), all())
        );
        // Same seed: the same file, whatever the thread count.
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        assert_eq!(one.install(|| VectorIndex::build(&p, view(&base, dim))).expect("builds").to_bytes(), bytes);
        let other = VectorIndex::build(&IndexParams { seed: 7, ..p }, view(&base, dim)).expect("builds");
        assert_ne!(other.to_bytes(), bytes);
    }
}

#[test]
fn corrupt_files_are_detected() {
    let (n, dim) = (300, 8);
    let base = clustered(n, dim, 6, 36);
    let index = VectorIndex::build(&params(Metric::L2, 4, 20), view(&base, dim)).expect("builds");
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
    let index = VectorIndex::build(&params(Metric::Ip, 8, 32), view(&base, dim)).expect("builds");
    let q = &base[..dim];
    let e = index.search(view(q, dim), 10, &ef(9), all()).expect_err("ef < k");
    assert_eq!(e.to_string(), "invalid parameter ef=9: ef(9) should be larger than k(10)");
    assert!(index.search(view(q, dim), 10, &ef(10), all()).is_ok());
    // Default ef: max(k, 16); a range search ignores k for ef.
    assert_eq!(index.search(view(q, dim), 40, &SearchParams::default(), all()).expect("default ef")[0].len(), 40);
    let ranged = SearchParams { ef: Some(4), radius: Some(-1e9), ..Default::default() };
    assert!(index.search(view(q, dim), 10, &ranged, all()).is_ok());
    let e = VectorIndex::build(&params(Metric::Ip, 1, 32), view(&base, dim)).expect_err("M");
    assert_eq!(e.to_string(), "invalid parameter M=1: an integer in 2..=2048");
    assert!(VectorIndex::build(&params(Metric::Ip, 2049, 32), view(&base, dim)).is_err());
    assert!(VectorIndex::build(&params(Metric::Ip, 8, 0), view(&base, dim)).is_err());
    assert!(VectorIndex::build(&params(Metric::Ip, 8, 32), view(&[], dim)).is_err());
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
            let index = VectorIndex::build(&params(metric, 2, 8), view(&base, dim)).expect("builds");
            let got = index.search(view(&base, dim), 3, &ef(8), all()).expect("searches");
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

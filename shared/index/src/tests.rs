//! Cross-module tests: every index type against brute force (recall, filters, ranges),
//! the GEMM path against the per-row path, serialisation and corruption, parameter errors.

use crate::context::SearchContext;
use crate::error::IndexError;
use crate::filter::{FixedBitSet, from_bools};
use crate::flat;
use crate::index::{AUTO_FLAT_MAX_ROWS, VectorIndex, auto_index};
use crate::metric::Metric;
use crate::params::{IndexParams, IndexType, SearchParams};
use crate::testdata::{clustered, queries_like, view};
use crate::topk::Hit;

const METRICS: [Metric; 3] = [Metric::L2, Metric::Ip, Metric::Cosine];

/// Exact scores in f64, best first, ties by row; `None` rows are excluded.
fn brute(base: &[f32], dim: usize, q: &[f32], metric: Metric, allowed: &dyn Fn(usize) -> bool) -> Vec<(u32, f64)> {
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

fn params(t: IndexType, metric: Metric, nlist: usize) -> IndexParams {
    IndexParams { nlist, ..IndexParams::new(t, metric) }
}

/// No filter, no stop flag.
fn all() -> SearchContext<'static> {
    SearchContext::new()
}

fn sp(nprobe: usize) -> SearchParams {
    SearchParams { nprobe: Some(nprobe), ..Default::default() }
}

#[test]
fn recall_of_each_index_type() {
    let (n, dim, nq, k) = (8000, 32, 100, 10);
    let base = clustered(n, dim, 1000, 11);
    let queries = queries_like(nq, dim, 1000, 11);
    for metric in METRICS {
        let truth: Vec<_> = queries.chunks_exact(dim).map(|q| brute(&base, dim, q, metric, &|_| true)).collect();
        let cases = [
            (IndexType::Flat, None, 1.0),
            (IndexType::IvfFlat, None, 0.95),
            (IndexType::IvfSq8, None, 0.90),
            (IndexType::IvfPq, Some(16), 0.80),
        ];
        for (t, m, threshold) in cases {
            let p = IndexParams { m, ..params(t, metric, 64) };
            let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
            assert_eq!(index.index_type(), t);
            let got = index.search(view(&queries, dim), k, &sp(20), all()).expect("searches");
            let r = recall(&got, &truth, k);
            eprintln!("{metric:?} {}: recall@10 {r:.3} ({} bytes)", t.name(), index.memory_bytes());
            assert!(r >= threshold, "{metric:?} {}: recall@10 {r:.3} < {threshold}", t.name());
            // Scores are true metric scores: within tolerance of the exact score for
            // exact types, and hits are sorted best first.
            for (g, w) in got.iter().zip(&truth) {
                assert!(g.windows(2).all(|p| !metric.better(p[1].score, p[0].score)));
                if matches!(t, IndexType::Flat | IndexType::IvfFlat) {
                    for h in g {
                        let exact = w.iter().find(|x| x.0 == h.row).expect("row exists").1;
                        assert!(
                            (h.score as f64 - exact).abs() <= 1e-3 * exact.abs().max(1.0),
                            "{metric:?} {h:?} vs {exact}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn exhaustive_ivf_with_filters_equals_brute_force() {
    let (n, dim, nq, k) = (3000, 24, 20, 10);
    let base = clustered(n, dim, 30, 12);
    let queries = queries_like(nq, dim, 30, 12);
    let allowed: Vec<bool> = (0..n).map(|i| i % 7 != 3 && i % 5 != 0).collect();
    let bits = from_bools(&allowed);
    for metric in METRICS {
        let truth: Vec<_> = queries.chunks_exact(dim).map(|q| brute(&base, dim, q, metric, &|i| allowed[i])).collect();
        for t in [IndexType::Flat, IndexType::IvfFlat] {
            let index = VectorIndex::build(&params(t, metric, 16), view(&base, dim)).expect("builds");
            for filter in [from_bools(&allowed), bits.clone()] {
                // nprobe above nlist is clamped: every list is probed, the search is exact.
                let got = index.search(view(&queries, dim), k, &sp(1000), (&filter).into()).expect("searches");
                for (g, w) in got.iter().zip(&truth) {
                    let rows: Vec<u32> = g.iter().map(|h| h.row).collect();
                    let want: Vec<u32> = w.iter().take(k).map(|x| x.0).collect();
                    assert_eq!(rows, want, "{metric:?} {}", t.name());
                    assert!(g.iter().all(|h| allowed[h.row as usize]));
                }
            }
        }
        // Approximate types never return an excluded row either.
        for t in [IndexType::IvfSq8, IndexType::IvfPq] {
            let p = IndexParams { m: Some(6), ..params(t, metric, 16) };
            let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
            let got = index.search(view(&queries, dim), k, &sp(4), (&bits).into()).expect("searches");
            assert!(got.iter().flatten().all(|h| allowed[h.row as usize]));
            assert!(got.iter().all(|g| g.len() == k));
        }
    }
}

#[test]
fn range_search_equals_brute_force() {
    let (n, dim, nq) = (2000, 16, 10);
    let base = clustered(n, dim, 20, 13);
    let queries = queries_like(nq, dim, 20, 13);
    for metric in METRICS {
        let truth: Vec<_> = queries.chunks_exact(dim).map(|q| brute(&base, dim, q, metric, &|_| true)).collect();
        // A window between the 5th and the 40th best score of the first query.
        let (inner, outer) = (truth[0][5].1 as f32, truth[0][40].1 as f32);
        let (radius, range_filter) = (outer, inner);
        let s = SearchParams { nprobe: Some(64), radius: Some(radius), range_filter: Some(range_filter), ef: None };
        for t in [IndexType::Flat, IndexType::IvfFlat] {
            let index = VectorIndex::build(&params(t, metric, 16), view(&base, dim)).expect("builds");
            let got = index.search(view(&queries, dim), 1000, &s, all()).expect("searches");
            for (g, w) in got.iter().zip(&truth) {
                let mut rows: Vec<u32> = g.iter().map(|h| h.row).collect();
                let mut want: Vec<u32> = w
                    .iter()
                    .filter(|x| metric.in_range(x.1 as f32, Some(radius), Some(range_filter)))
                    .map(|x| x.0)
                    .collect();
                rows.sort_unstable();
                want.sort_unstable();
                // Scores within float rounding of a bound may fall either side.
                let diff = rows.iter().filter(|r| !want.contains(r)).count()
                    + want.iter().filter(|r| !rows.contains(r)).count();
                assert!(diff <= 1, "{metric:?} {}: {} vs {} rows", t.name(), rows.len(), want.len());
                assert!(g.iter().all(|h| metric.in_range(h.score, Some(radius), Some(range_filter))));
            }
            assert!(got[0].len() >= 30);
        }
    }
}

#[test]
fn gemm_search_equals_per_row_search() {
    // Odd dimension, rows crossing GEMM row blocks, query blocks, filter and range.
    let (n, dim, nq, k) = (4500, 33, 40, 10);
    let base = clustered(n, dim, 40, 14);
    let queries = queries_like(nq, dim, 40, 14);
    let allowed = from_bools(&(0..n).map(|i| i % 4 != 1).collect::<Vec<bool>>());
    let norms = flat::row_norms(&base, dim);
    for metric in METRICS {
        for (filter, ranged) in [(None, false), (Some(&allowed), false), (None, true)] {
            let ctx = SearchContext::new().with_filter(filter);
            let mut p = flat::SearchParams { metric, k, radius: None, range_filter: None };
            if ranged {
                let t = brute(&base, dim, &queries[..dim], metric, &|_| true);
                p.radius = Some(t[200].1 as f32);
                p.k = 1000;
            }
            for norms in [None, Some(norms.as_slice())] {
                let (b_, q_) = (view(&base, dim), view(&queries, dim));
                let a = flat::search_gemm(b_, q_, &p, ctx, norms).expect("gemm");
                let b = flat::search_per_row(b_, q_, &p, ctx, norms).expect("per row");
                let c = flat::search_filtered(b_, q_, &p, ctx, norms).expect("dispatch");
                assert_eq!(a, c, "dispatch uses GEMM for {nq} queries");
                for (qa, qb) in a.iter().zip(&b) {
                    // Same scores (rescored by the same kernels); rows equal unless two
                    // candidates tie within float rounding at the boundary.
                    let same = qa.iter().zip(qb).filter(|(x, y)| x == y).count();
                    assert!(same + 1 >= qb.len().max(qa.len()), "{metric:?} ranged={ranged}: {qa:?} vs {qb:?}");
                }
            }
        }
    }
}

#[test]
fn serialisation_round_trips() {
    let (n, dim) = (1500, 16);
    let base = clustered(n, dim, 10, 15);
    let queries = queries_like(8, dim, 10, 15);
    for metric in METRICS {
        for t in [
            IndexType::Flat,
            IndexType::IvfFlat,
            IndexType::IvfSq8,
            IndexType::IvfPq,
            IndexType::Hnsw,
            IndexType::AutoIndex,
        ] {
            let p = IndexParams { m: Some(4), nbits: 6, hnsw_m: 8, ef_construction: 40, ..params(t, metric, 20) };
            let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
            let bytes = index.to_bytes();
            let back = VectorIndex::from_bytes(&bytes).expect("loads");
            assert_eq!(back, index, "{metric:?} {}", t.name());
            assert_eq!(back.to_bytes(), bytes);
            let s = sp(5);
            assert_eq!(
                back.search(view(&queries, dim), 10, &s, all()),
                index.search(view(&queries, dim), 10, &s, all())
            );
            // Same parameters and seed: the same file.
            assert_eq!(VectorIndex::build(&p, view(&base, dim)).expect("builds").to_bytes(), bytes);
        }
    }
    // 16-bit PQ codes (two bytes each) round-trip too.
    let p = IndexParams { m: Some(2), nbits: 10, ..params(IndexType::IvfPq, Metric::L2, 4) };
    let index = VectorIndex::build(&p, view(&base[..300 * dim], dim)).expect("builds");
    assert_eq!(index.pq_shape(), (2, 10));
    assert_eq!(VectorIndex::from_bytes(&index.to_bytes()).expect("loads"), index);
}

/// Rewrites the CRC after a deliberate edit, to test the structural checks behind it.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn corruption_and_truncation_are_detected() {
    let (n, dim) = (600, 8);
    let base = clustered(n, dim, 6, 16);
    for t in [IndexType::Flat, IndexType::IvfFlat, IndexType::IvfSq8, IndexType::IvfPq, IndexType::Hnsw] {
        let p = IndexParams { m: Some(2), nbits: 4, hnsw_m: 4, ef_construction: 20, ..params(t, Metric::L2, 8) };
        let bytes = VectorIndex::build(&p, view(&base, dim)).expect("builds").to_bytes();
        // Every single-byte flip (sampled) is caught.
        for pos in (0..bytes.len()).step_by(7).chain([0, 8, 12, 20, 48, bytes.len() - 1]) {
            let mut b = bytes.clone();
            b[pos] ^= 0x20;
            assert!(matches!(VectorIndex::from_bytes(&b), Err(IndexError::Corrupt(_))), "{} flip at {pos}", t.name());
        }
        // Every truncation is caught.
        for len in (0..bytes.len()).step_by(13).chain([bytes.len() - 1, bytes.len() - 4, 59, 60]) {
            let e = VectorIndex::from_bytes(&bytes[..len]).expect_err("truncated");
            assert!(matches!(e, IndexError::Corrupt(_)), "{} truncated to {len}: {e}", t.name());
        }
        // Trailing garbage too.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 8]);
        assert!(VectorIndex::from_bytes(&longer).is_err());
        // A newer format version is refused as unsupported, not misread.
        let mut v2 = bytes.clone();
        v2[8] = 2;
        reseal(&mut v2);
        let e = VectorIndex::from_bytes(&v2).expect_err("version");
        assert!(matches!(e, IndexError::Unsupported(_)), "{e}");
        // Structural lies behind a valid checksum: rows, dim, type.
        for (off, val) in [(24usize, 601u32), (20, 9), (12, 9), (16, 7), (32, 3)] {
            let mut b = bytes.clone();
            b[off..off + 4].copy_from_slice(&val.to_le_bytes());
            reseal(&mut b);
            assert!(VectorIndex::from_bytes(&b).is_err(), "{} field at {off} = {val}", t.name());
        }
    }
    // A repeated row id behind a valid checksum.
    let p = params(IndexType::IvfFlat, Metric::L2, 4);
    let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
    let mut b = index.to_bytes();
    let ids_at = crate::format::HEADER_LEN + 4 * dim * index.nlist() + 8 * (index.nlist() + 1);
    let first: [u8; 4] = b[ids_at..ids_at + 4].try_into().expect("4 bytes");
    b[ids_at + 4..ids_at + 8].copy_from_slice(&first);
    reseal(&mut b);
    let e = VectorIndex::from_bytes(&b).expect_err("repeated id");
    assert!(e.to_string().contains("repeated"), "{e}");
    assert!(VectorIndex::from_bytes(b"not an index at all, just some bytes here ok.....................").is_err());
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dim = 8;
    let base = clustered(300, dim, 4, 17);
    let p = params(IndexType::IvfFlat, Metric::L2, 8);
    let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
    let q = &base[..dim];
    let input_err = |r: crate::Result<Vec<Vec<Hit>>>| matches!(r, Err(IndexError::InvalidInput(_)));
    assert!(input_err(index.search(view(&base[..dim - 1], dim - 1), 5, &sp(2), all())));
    assert!(input_err(index.search(view(&[f32::NAN; 8], dim), 5, &sp(2), all())));
    assert!(input_err(index.search(view(q, dim), 5, &sp(2), (&from_bools(&[true; 3])).into())));
    assert!(input_err(index.search(view(q, dim), 5, &sp(2), (&FixedBitSet::with_capacity(256)).into())));
    assert!(input_err(crate::matrix_view(&base[..dim + 1], dim).map(|_| Vec::new())));
    let bad_range = SearchParams { radius: Some(1.0), range_filter: Some(2.0), ..Default::default() };
    let e = index.search(view(q, dim), 5, &bad_range, all()).expect_err("range");
    assert!(e.to_string().contains("range_filter"), "{e}");
    assert_eq!(index.search(view(q, dim), 0, &sp(2), all()).expect("k=0"), vec![Vec::<Hit>::new()]);
    assert_eq!(index.search(view(&[], dim), 5, &sp(2), all()).expect("nq=0"), Vec::<Vec<Hit>>::new());
    // Build errors.
    let pq = IndexParams { m: Some(3), ..params(IndexType::IvfPq, Metric::L2, 8) };
    let e = VectorIndex::build(&pq, view(&base, dim)).expect_err("m");
    assert_eq!(e.to_string(), "invalid parameter m=3: a divisor of dim 8");
    assert!(VectorIndex::build(&IndexParams { nlist: 0, ..p.clone() }, view(&base, dim)).is_err());
    assert!(VectorIndex::build(&IndexParams { nbits: 17, ..p.clone() }, view(&base, dim)).is_err());
    assert!(crate::matrix_view(&base, 0).is_err());
    assert!(VectorIndex::build(&p, view(&[], dim)).is_err());
    assert!(VectorIndex::build(&p, view(&base, 0)).is_err());
    let mut nan = base.clone();
    nan[17] = f32::INFINITY;
    assert!(VectorIndex::build(&p, view(&nan, dim)).is_err());
    // FLAT over no rows is fine (an empty segment).
    let empty = VectorIndex::build(&params(IndexType::Flat, Metric::Ip, 1), view(&[], dim)).expect("empty");
    assert_eq!(
        empty.search(view(q, dim), 5, &SearchParams::default(), all()).expect("searches"),
        vec![Vec::<Hit>::new()]
    );
}

#[test]
fn small_segments_clamp_nlist_and_codebooks() {
    let dim = 8;
    let base = clustered(40, dim, 3, 18);
    for t in [IndexType::IvfFlat, IndexType::IvfSq8, IndexType::IvfPq] {
        let p = IndexParams { m: Some(4), ..params(t, Metric::Cosine, 1024) };
        let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
        assert_eq!(index.nlist(), 40);
        let got = index.search(view(&base[..dim], dim), 3, &SearchParams::default(), all()).expect("searches");
        assert_eq!(got[0].len(), 3);
        if t != IndexType::IvfPq {
            assert_eq!(got[0][0].row, 0, "{}", t.name());
        }
        assert!(VectorIndex::from_bytes(&index.to_bytes()).is_ok());
    }
}

#[test]
fn autoindex_rule() {
    let base = IndexParams::default();
    let (p, nprobe) = auto_index(AUTO_FLAT_MAX_ROWS - 1, &base);
    assert_eq!((p.index_type, nprobe), (IndexType::Flat, 0));
    // Milvus' AUTOINDEX build parameters, whatever the user sent.
    let user = IndexParams { hnsw_m: 4, ef_construction: 10, ..base.clone() };
    let (p, ef) = auto_index(50_000, &user);
    assert_eq!((p.index_type, p.hnsw_m, p.ef_construction, ef), (IndexType::Hnsw, 18, 240, 64));
    let (p, _) = auto_index(AUTO_FLAT_MAX_ROWS, &base);
    assert_eq!(p.index_type, IndexType::Hnsw);
    // Built: FLAT below the threshold, HNSW above; COSINE by default.
    let dim = 8;
    let small = VectorIndex::build(&base, view(&clustered(100, dim, 4, 19), dim)).expect("builds");
    assert_eq!((small.index_type(), small.metric()), (IndexType::Flat, Metric::Cosine));
    let data = clustered(AUTO_FLAT_MAX_ROWS, dim, 4, 19);
    let big = VectorIndex::build(&base, view(&data, dim)).expect("builds");
    assert_eq!((big.index_type(), big.nlist(), big.default_nprobe(), big.default_ef()), (IndexType::Hnsw, 0, 0, 64));
    // A search without ef uses max(k, 64); the floor survives a round trip.
    let back = VectorIndex::from_bytes(&big.to_bytes()).expect("loads");
    assert_eq!(back.default_ef(), 64);
    let q = &data[..4 * dim];
    let ef64 = SearchParams { ef: Some(64), ..Default::default() };
    assert_eq!(
        back.search(view(q, dim), 10, &SearchParams::default(), all()),
        big.search(view(q, dim), 10, &ef64, all())
    );
    let explicit = VectorIndex::build(&IndexParams::new(IndexType::Hnsw, Metric::L2), view(&data[..800 * dim], dim));
    assert_eq!(explicit.expect("builds").default_ef(), 16);
}

#[test]
fn ivf_flat_batches_equal_single_queries() {
    // Batches of >= 8 queries go list-major through GEMM; one query at a time does not.
    let (n, dim, nq) = (3000, 20, 30);
    let base = clustered(n, dim, 200, 20);
    let queries = queries_like(nq, dim, 200, 20);
    let allowed = from_bools(&(0..n).map(|i| i % 3 != 2).collect::<Vec<bool>>());
    for metric in METRICS {
        let index = VectorIndex::build(&params(IndexType::IvfFlat, metric, 32), view(&base, dim)).expect("builds");
        let t = brute(&base, dim, &queries[..dim], metric, &|_| true);
        let ranged = SearchParams { nprobe: Some(6), radius: Some(t[60].1 as f32), range_filter: None, ef: None };
        for (s, k, filter) in [(sp(6), 10, all()), (sp(6), 10, (&allowed).into()), (ranged, 500, all())] {
            let batch = index.search(view(&queries, dim), k, &s, filter).expect("batch");
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                let one = index.search(view(q, dim), k, &s, filter).expect("single");
                let same = one[0].iter().zip(&batch[qi]).filter(|(a, b)| a == b).count();
                assert!(
                    same + 1 >= one[0].len().max(batch[qi].len()),
                    "{metric:?} query {qi}: {:?} vs {:?}",
                    one[0],
                    batch[qi]
                );
            }
        }
    }
}

#[test]
fn a_set_stop_flag_cancels_every_search_and_build() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (n, dim) = (2000, 16);
    let base = clustered(n, dim, 20, 21);
    let queries = queries_like(20, dim, 20, 21);
    let stop = AtomicBool::new(false);
    let bits = from_bools(&(0..n).map(|i| i % 2 == 0).collect::<Vec<bool>>());
    for t in [IndexType::Flat, IndexType::IvfFlat, IndexType::IvfSq8, IndexType::IvfPq, IndexType::Hnsw] {
        let p = IndexParams { m: Some(4), hnsw_m: 8, ef_construction: 40, ..params(t, Metric::L2, 16) };
        let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
        let ranged = SearchParams { nprobe: Some(4), radius: Some(1e9), ..Default::default() };
        let ctx = SearchContext::new().with_stop(&stop);
        for (s, k) in [(sp(4), 10), (ranged, 100)] {
            for nq in [1, 20] {
                for c in [ctx, ctx.with_filter(Some(&bits))] {
                    let q = view(&queries[..nq * dim], dim);
                    let want = index.search(q, k, &s, c.with_filter(None)).map(|_| ());
                    assert!(want.is_ok(), "{} runs while the flag is clear", t.name());
                    stop.store(true, Ordering::Relaxed);
                    let got = index.search(q, k, &s, c);
                    stop.store(false, Ordering::Relaxed);
                    assert_eq!(got, Err(IndexError::Cancelled), "{} nq={nq}", t.name());
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        if t != IndexType::Flat {
            assert_eq!(VectorIndex::build_cancellable(&p, view(&base, dim), &stop), Err(IndexError::Cancelled));
        }
        stop.store(false, Ordering::Relaxed);
        assert_eq!(VectorIndex::build_cancellable(&p, view(&base, dim), &stop).expect("builds"), index);
    }
    let fp = flat::SearchParams { metric: Metric::Ip, k: 5, radius: None, range_filter: None };
    stop.store(true, Ordering::Relaxed);
    let ctx = SearchContext::new().with_stop(&stop);
    for nq in [1, 3, 20] {
        let q = view(&queries[..nq * dim], dim);
        assert_eq!(flat::search_filtered(view(&base, dim), q, &fp, ctx, None), Err(IndexError::Cancelled));
        assert_eq!(flat::search_per_row(view(&base, dim), q, &fp, ctx, None), Err(IndexError::Cancelled));
        assert_eq!(flat::search_gemm(view(&base, dim), q, &fp, ctx, None), Err(IndexError::Cancelled));
    }
    let kp = crate::kmeans::KMeansParams::new(8);
    assert_eq!(crate::kmeans::train_cancellable(view(&base, dim), &kp, &stop), Err(IndexError::Cancelled));
}

/// A flag set while a long search runs stops it within one coarse step: 100 GFLOP of
/// exact batched search (seconds on two cores) end long before they could finish.
#[test]
fn a_stop_flag_set_mid_way_stops_a_large_search_early() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (n, dim, nq) = (200_000, 64, 4000);
    let base = clustered(n, dim, 50, 22);
    let queries = queries_like(nq, dim, 50, 22);
    let index = VectorIndex::build(&params(IndexType::Flat, Metric::L2, 1), view(&base, dim)).expect("builds");
    let stop = AtomicBool::new(false);
    let t = std::time::Instant::now();
    let got = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(30));
            stop.store(true, Ordering::Relaxed);
        });
        index.search(view(&queries, dim), 10, &sp(1), SearchContext::new().with_stop(&stop))
    });
    let elapsed = t.elapsed();
    assert_eq!(got, Err(IndexError::Cancelled));
    eprintln!("stopped after {elapsed:?}");
    // The whole search takes seconds here; stopping waits for at most one block product
    // per core (a few milliseconds) after the flag is seen.
    assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
}

#[test]
fn filtered_scans_skip_whole_excluded_words_and_agree_with_bit_tests() {
    // Long runs of excluded rows (whole 64-row words) between allowed ones, at unaligned
    // offsets, through the per-row and GEMM paths and every index type.
    let (n, dim) = (3000, 12);
    let base = clustered(n, dim, 30, 23);
    let queries = queries_like(9, dim, 30, 23);
    let allowed: Vec<bool> = (0..n).map(|i| (i / 100) % 3 == 0 || i % 97 == 5).collect();
    let bits = from_bools(&allowed);
    for metric in METRICS {
        let truth: Vec<_> = queries.chunks_exact(dim).map(|q| brute(&base, dim, q, metric, &|i| allowed[i])).collect();
        let fp = flat::SearchParams { metric, k: 10, radius: None, range_filter: None };
        for nq in [1, 9] {
            let q = view(&queries[..nq * dim], dim);
            let ctx = SearchContext::from(&bits);
            let a = flat::search_per_row(view(&base, dim), q, &fp, ctx, None).expect("per row");
            let b = flat::search_gemm(view(&base, dim), q, &fp, ctx, None).expect("gemm");
            for (qi, (a, b)) in a.iter().zip(&b).enumerate() {
                let want: Vec<u32> = truth[qi].iter().take(10).map(|x| x.0).collect();
                assert_eq!(a.iter().map(|h| h.row).collect::<Vec<_>>(), want, "{metric:?}");
                assert_eq!(b.iter().map(|h| h.row).collect::<Vec<_>>(), want, "{metric:?}");
            }
        }
        for t in [IndexType::IvfFlat, IndexType::IvfSq8, IndexType::IvfPq, IndexType::Hnsw] {
            let p = IndexParams { m: Some(4), hnsw_m: 8, ef_construction: 40, ..params(t, metric, 16) };
            let index = VectorIndex::build(&p, view(&base, dim)).expect("builds");
            let got = index.search(view(&queries, dim), 10, &sp(16), (&bits).into()).expect("searches");
            assert!(got.iter().flatten().all(|h| allowed[h.row as usize]), "{}", t.name());
            assert!(got.iter().all(|g| g.len() == 10), "{}", t.name());
        }
    }
}

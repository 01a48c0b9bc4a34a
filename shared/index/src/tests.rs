//! Cross-module tests: every index type against brute force (recall, filters, ranges),
//! the GEMM path against the per-row path, serialisation and corruption, parameter errors.

use crate::error::IndexError;
use crate::filter::{Bitset, RowFilter};
use crate::flat;
use crate::index::{AUTO_FLAT_MAX_ROWS, VectorIndex, auto_index};
use crate::metric::Metric;
use crate::params::{IndexParams, IndexType, SearchParams};
use crate::testdata::{clustered, queries_like};
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
            let index = VectorIndex::build(&p, dim, &base).expect("builds");
            assert_eq!(index.index_type(), t);
            let got = index.search(&queries, k, &sp(20), None).expect("searches");
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
    let bits = Bitset::from_allowed(&allowed);
    for metric in METRICS {
        let truth: Vec<_> = queries.chunks_exact(dim).map(|q| brute(&base, dim, q, metric, &|i| allowed[i])).collect();
        for t in [IndexType::Flat, IndexType::IvfFlat] {
            let index = VectorIndex::build(&params(t, metric, 16), dim, &base).expect("builds");
            for filter in [RowFilter::Allowed(&allowed), bits.as_filter()] {
                // nprobe above nlist is clamped: every list is probed, the search is exact.
                let got = index.search(&queries, k, &sp(1000), Some(filter)).expect("searches");
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
            let index = VectorIndex::build(&p, dim, &base).expect("builds");
            let got = index.search(&queries, k, &sp(4), Some(bits.as_filter())).expect("searches");
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
            let index = VectorIndex::build(&params(t, metric, 16), dim, &base).expect("builds");
            let got = index.search(&queries, 1000, &s, None).expect("searches");
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
    let allowed: Vec<bool> = (0..n).map(|i| i % 4 != 1).collect();
    let norms = flat::row_norms(&base, dim);
    for metric in METRICS {
        for (filter, ranged) in [(None, false), (Some(RowFilter::Allowed(&allowed)), false), (None, true)] {
            let mut p = flat::SearchParams { metric, k, radius: None, range_filter: None };
            if ranged {
                let t = brute(&base, dim, &queries[..dim], metric, &|_| true);
                p.radius = Some(t[200].1 as f32);
                p.k = 1000;
            }
            for norms in [None, Some(norms.as_slice())] {
                let a = flat::search_gemm(&base, dim, &queries, &p, filter, norms).expect("gemm");
                let b = flat::search_per_row(&base, dim, &queries, &p, filter, norms);
                let c = flat::search_filtered(&base, dim, &queries, &p, filter, norms).expect("dispatch");
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
            let index = VectorIndex::build(&p, dim, &base).expect("builds");
            let bytes = index.to_bytes();
            let back = VectorIndex::from_bytes(&bytes).expect("loads");
            assert_eq!(back, index, "{metric:?} {}", t.name());
            assert_eq!(back.to_bytes(), bytes);
            let s = sp(5);
            assert_eq!(back.search(&queries, 10, &s, None), index.search(&queries, 10, &s, None));
            // Same parameters and seed: the same file.
            assert_eq!(VectorIndex::build(&p, dim, &base).expect("builds").to_bytes(), bytes);
        }
    }
    // 16-bit PQ codes (two bytes each) round-trip too.
    let p = IndexParams { m: Some(2), nbits: 10, ..params(IndexType::IvfPq, Metric::L2, 4) };
    let index = VectorIndex::build(&p, dim, &base[..300 * dim]).expect("builds");
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
        let bytes = VectorIndex::build(&p, dim, &base).expect("builds").to_bytes();
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
    let index = VectorIndex::build(&p, dim, &base).expect("builds");
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
    let index = VectorIndex::build(&p, dim, &base).expect("builds");
    let q = &base[..dim];
    let input_err = |r: crate::Result<Vec<Vec<Hit>>>| matches!(r, Err(IndexError::InvalidInput(_)));
    assert!(input_err(index.search(&base[..dim - 1], 5, &sp(2), None)));
    assert!(input_err(index.search(&[f32::NAN; 8], 5, &sp(2), None)));
    assert!(input_err(index.search(q, 5, &sp(2), Some(RowFilter::Allowed(&[true; 3])))));
    assert!(input_err(index.search(q, 5, &sp(2), Some(RowFilter::Excluded(&[0; 4])))));
    let bad_range = SearchParams { radius: Some(1.0), range_filter: Some(2.0), ..Default::default() };
    let e = index.search(q, 5, &bad_range, None).expect_err("range");
    assert!(e.to_string().contains("range_filter"), "{e}");
    assert_eq!(index.search(q, 0, &sp(2), None).expect("k=0"), vec![Vec::<Hit>::new()]);
    assert_eq!(index.search(&[], 5, &sp(2), None).expect("nq=0"), Vec::<Vec<Hit>>::new());
    // Build errors.
    let pq = IndexParams { m: Some(3), ..params(IndexType::IvfPq, Metric::L2, 8) };
    let e = VectorIndex::build(&pq, dim, &base).expect_err("m");
    assert_eq!(e.to_string(), "invalid parameter m=3: a divisor of dim 8");
    assert!(VectorIndex::build(&IndexParams { nlist: 0, ..p.clone() }, dim, &base).is_err());
    assert!(VectorIndex::build(&IndexParams { nbits: 17, ..p.clone() }, dim, &base).is_err());
    assert!(VectorIndex::build(&p, dim, &base[..dim + 1]).is_err());
    assert!(VectorIndex::build(&p, dim, &[]).is_err());
    assert!(VectorIndex::build(&p, 0, &base).is_err());
    let mut nan = base.clone();
    nan[17] = f32::INFINITY;
    assert!(VectorIndex::build(&p, dim, &nan).is_err());
    // FLAT over no rows is fine (an empty segment).
    let empty = VectorIndex::build(&params(IndexType::Flat, Metric::Ip, 1), dim, &[]).expect("empty");
    assert_eq!(empty.search(q, 5, &SearchParams::default(), None).expect("searches"), vec![Vec::<Hit>::new()]);
}

#[test]
fn small_segments_clamp_nlist_and_codebooks() {
    let dim = 8;
    let base = clustered(40, dim, 3, 18);
    for t in [IndexType::IvfFlat, IndexType::IvfSq8, IndexType::IvfPq] {
        let p = IndexParams { m: Some(4), ..params(t, Metric::Cosine, 1024) };
        let index = VectorIndex::build(&p, dim, &base).expect("builds");
        assert_eq!(index.nlist(), 40);
        let got = index.search(&base[..dim], 3, &SearchParams::default(), None).expect("searches");
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
    let small = VectorIndex::build(&base, dim, &clustered(100, dim, 4, 19)).expect("builds");
    assert_eq!((small.index_type(), small.metric()), (IndexType::Flat, Metric::Cosine));
    let data = clustered(AUTO_FLAT_MAX_ROWS, dim, 4, 19);
    let big = VectorIndex::build(&base, dim, &data).expect("builds");
    assert_eq!((big.index_type(), big.nlist(), big.default_nprobe(), big.default_ef()), (IndexType::Hnsw, 0, 0, 64));
    // A search without ef uses max(k, 64); the floor survives a round trip.
    let back = VectorIndex::from_bytes(&big.to_bytes()).expect("loads");
    assert_eq!(back.default_ef(), 64);
    let q = &data[..4 * dim];
    let ef64 = SearchParams { ef: Some(64), ..Default::default() };
    assert_eq!(back.search(q, 10, &SearchParams::default(), None), big.search(q, 10, &ef64, None));
    let explicit = VectorIndex::build(&IndexParams::new(IndexType::Hnsw, Metric::L2), dim, &data[..800 * dim]);
    assert_eq!(explicit.expect("builds").default_ef(), 16);
}

#[test]
fn ivf_flat_batches_equal_single_queries() {
    // Batches of >= 8 queries go list-major through GEMM; one query at a time does not.
    let (n, dim, nq) = (3000, 20, 30);
    let base = clustered(n, dim, 200, 20);
    let queries = queries_like(nq, dim, 200, 20);
    let allowed: Vec<bool> = (0..n).map(|i| i % 3 != 2).collect();
    for metric in METRICS {
        let index = VectorIndex::build(&params(IndexType::IvfFlat, metric, 32), dim, &base).expect("builds");
        let t = brute(&base, dim, &queries[..dim], metric, &|_| true);
        let ranged = SearchParams { nprobe: Some(6), radius: Some(t[60].1 as f32), range_filter: None, ef: None };
        for (s, k, filter) in [(sp(6), 10, None), (sp(6), 10, Some(RowFilter::Allowed(&allowed))), (ranged, 500, None)]
        {
            let batch = index.search(&queries, k, &s, filter).expect("batch");
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                let one = index.search(q, k, &s, filter).expect("single");
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

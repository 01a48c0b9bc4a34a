//! Benchmark data: TEXMEX-layout files (fvecs/ivecs with ground truth, as in
//! `../shared/data/`) or a seeded synthetic generator for scale runs, plus the scalar
//! fields the workload derives from row ids and the exact ground truth it computes when
//! the shipped one does not apply.

use std::path::{Path, PathBuf};

use fv_common::Metric;
use fv_index::flat::{self, SearchParams};
use fv_index::matrix_view;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, Normal};

use crate::error::{LoadError, Result};

/// Values of the derived `rnd` field lie in `0..RND_RANGE`, uniformly, so `rnd < t`
/// selects a share `t / RND_RANGE` of the rows: the knob for filtered-search selectivity.
pub const RND_RANGE: i64 = 10_000;

/// Exact nearest neighbours of each query, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// Per query: row ids (= primary keys), best first.
    pub ids: Vec<Vec<i64>>,
    /// Per query: the true score of each of those rows (squared L2, IP or cosine).
    pub scores: Vec<Vec<f32>>,
}

impl Truth {
    /// How many neighbours per query it holds (the smallest list).
    pub fn depth(&self) -> usize {
        self.ids.iter().map(Vec::len).min().unwrap_or(0)
    }
}

/// Vectors to insert and to search with.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// A short name for reports ("pypi-minilm-384", "synth-128-100000").
    pub name: String,
    pub dim: usize,
    pub metric: Metric,
    /// Row-major `rows × dim`; row `i` is inserted with primary key `i`.
    pub base: Vec<f32>,
    /// Row-major `nq × dim`.
    pub queries: Vec<f32>,
    /// Ground truth over the whole of `base`, when known.
    pub truth: Option<Truth>,
    /// One text per row, inserted as the varchar field `text`.
    pub texts: Option<Vec<String>>,
}

impl Dataset {
    pub fn rows(&self) -> usize {
        self.base.len() / self.dim
    }

    pub fn num_queries(&self) -> usize {
        self.queries.len() / self.dim
    }

    pub fn query(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }

    pub fn row(&self, id: i64) -> Option<&[f32]> {
        let i = usize::try_from(id).ok()?;
        self.base.get(i * self.dim..(i + 1) * self.dim)
    }

    /// The derived filter field of row `id`.
    pub fn rnd(id: i64) -> i64 {
        (splitmix64(id as u64) % RND_RANGE as u64) as i64
    }

    /// The true score of row `id` for query `q` (None for ids outside the base).
    pub fn true_score(&self, q: usize, id: i64) -> Option<f32> {
        let row = self.row(id)?;
        let query = self.query(q);
        Some(flat::score(self.metric, query, fv_index::distance::norm(query), row, None))
    }

    /// Exact top-`k` of every query among the rows `allowed` admits (all rows when None),
    /// computed with the same kernels the server uses (GEMM for batches).
    pub fn exact_truth(&self, k: usize, queries: std::ops::Range<usize>, allowed: Option<&[bool]>) -> Truth {
        let qs = &self.queries[queries.start * self.dim..queries.end * self.dim];
        let p = SearchParams { metric: self.metric, k, radius: None, range_filter: None };
        let norms = (self.metric == Metric::Cosine).then(|| flat::row_norms(&self.base, self.dim));
        let allowed = allowed.map(fv_index::filter::from_bools);
        let view = |x| matrix_view(x, self.dim).expect("the dataset holds whole vectors");
        let (base, qs) = (view(&self.base), view(qs));
        let hits = flat::search(base, qs, &p, allowed.as_ref(), norms.as_deref());
        Truth {
            ids: hits.iter().map(|h| h.iter().map(|x| i64::from(x.row)).collect()).collect(),
            scores: hits.iter().map(|h| h.iter().map(|x| x.score).collect()).collect(),
        }
    }

    /// Makes sure `truth` covers the base as inserted and at least `k` neighbours,
    /// computing it exactly otherwise.
    pub fn ensure_truth(&mut self, k: usize) {
        if self.truth.as_ref().is_some_and(|t| t.depth() >= k && t.ids.len() >= self.num_queries()) {
            return;
        }
        self.truth = Some(self.exact_truth(k, 0..self.num_queries(), None));
    }

    /// The longest text in bytes (for the varchar field's max_length).
    pub fn max_text_bytes(&self) -> usize {
        self.texts.as_ref().map(|t| t.iter().map(String::len).max().unwrap_or(0)).unwrap_or(0)
    }
}

/// A SplitMix64 step: a cheap, well-mixed hash so derived fields look random yet are
/// reproducible by anyone from the id alone.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which data to use, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A directory with `base.fvecs`, `queries_public.fvecs` (or `query.fvecs`) and
    /// optionally `gt_public.ivecs`, `gt_public.dist.fvecs`, `texts_base.tsv`.
    Dir(PathBuf),
    /// The seeded generator: `rows × dim` base, `queries` queries.
    Synth { rows: usize, dim: usize, queries: usize, seed: u64 },
}

/// Loads (or generates) the data; `rows`/`queries` cut the base and query set short.
/// Ground truth shipped with a directory is kept only when the whole base is used.
pub fn load(source: &Source, rows: Option<usize>, queries: Option<usize>, metric: Option<Metric>) -> Result<Dataset> {
    let mut ds = match source {
        Source::Dir(dir) => load_dir(dir, rows, metric)?,
        Source::Synth { rows, dim, queries, seed } => synth(*rows, *dim, *queries, *seed),
    };
    if let Some(m) = metric {
        if m != ds.metric {
            // The shipped truth was computed for another metric.
            ds.truth = None;
        }
        ds.metric = m;
    }
    if let Some(q) = queries {
        let q = q.min(ds.num_queries());
        ds.queries.truncate(q * ds.dim);
        if let Some(t) = &mut ds.truth {
            t.ids.truncate(q);
            t.scores.truncate(q);
        }
    }
    if ds.num_queries() == 0 {
        return Err(LoadError::Dataset(format!("{} has no queries", ds.name)));
    }
    Ok(ds)
}

fn load_dir(dir: &Path, rows: Option<usize>, metric: Option<Metric>) -> Result<Dataset> {
    let (dim, mut base) = read_vecs_f32(&dir.join("base.fvecs"))?;
    let full_rows = base.len() / dim;
    let keep = rows.map_or(full_rows, |r| r.min(full_rows));
    base.truncate(keep * dim);
    let qpath = ["queries_public.fvecs", "query.fvecs", "queries.fvecs"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| LoadError::Dataset(format!("{}: no queries_public.fvecs or query.fvecs", dir.display())))?;
    let (qdim, queries) = read_vecs_f32(&qpath)?;
    if qdim != dim {
        return Err(LoadError::Dataset(format!("queries are {qdim}-d but the base is {dim}-d")));
    }
    let gt = dir.join("gt_public.ivecs");
    let gt_dist = dir.join("gt_public.dist.fvecs");
    let truth = if keep == full_rows && gt.exists() && gt_dist.exists() {
        let (k, ids) = read_vecs_i32(&gt)?;
        let (k2, scores) = read_vecs_f32(&gt_dist)?;
        if k != k2 || ids.len() != scores.len() {
            return Err(LoadError::Dataset("gt_public.ivecs and gt_public.dist.fvecs disagree".into()));
        }
        Some(Truth {
            ids: ids.chunks_exact(k).map(|c| c.iter().map(|&i| i64::from(i)).collect()).collect(),
            scores: scores.chunks_exact(k).map(<[f32]>::to_vec).collect(),
        })
    } else {
        None
    };
    // Similarity ground truth lists scores in decreasing order, distances increasing.
    let inferred = match &truth {
        Some(t) if t.scores.first().is_some_and(|s| s.len() >= 2 && s[0] > s[s.len() - 1]) => Metric::Ip,
        _ => Metric::L2,
    };
    let texts_path = dir.join("texts_base.tsv");
    let texts = if texts_path.exists() { Some(read_texts(&texts_path, keep)?) } else { None };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
    let name = if keep == full_rows { name } else { format!("{name} (first {keep} rows)") };
    Ok(Dataset { name, dim, metric: metric.unwrap_or(inferred), base, queries, truth, texts })
}

fn read_texts(path: &Path, rows: usize) -> Result<Vec<String>> {
    let raw = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
    let mut texts = vec![String::new(); rows];
    for line in raw.lines() {
        let Some((id, text)) = line.split_once('\t') else { continue };
        if let Ok(id) = id.parse::<usize>()
            && id < rows
        {
            texts[id] = text.to_string();
        }
    }
    Ok(texts)
}

fn read_vecs_raw(path: &Path) -> Result<(usize, Vec<[u8; 4]>)> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::io(path, e))?;
    let bad = |why: &str| LoadError::Dataset(format!("{}: {why}", path.display()));
    if bytes.len() < 4 {
        return Err(bad("too short for a vecs file"));
    }
    let dim = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    if dim == 0 || dim > 65_536 {
        return Err(bad(&format!("implausible dimension {dim}")));
    }
    let stride = 4 * (dim + 1);
    if !bytes.len().is_multiple_of(stride) {
        return Err(bad(&format!("{} bytes is not a whole number of {dim}-d rows", bytes.len())));
    }
    let mut out = Vec::with_capacity(bytes.len() / stride * dim);
    for row in bytes.chunks_exact(stride) {
        if u32::from_le_bytes(row[..4].try_into().expect("4 bytes")) as usize != dim {
            return Err(bad("rows of different dimensions"));
        }
        out.extend(row[4..].chunks_exact(4).map(|c| <[u8; 4]>::try_from(c).expect("4 bytes")));
    }
    Ok((dim, out))
}

/// Reads an `.fvecs` file: (dimension, row-major values).
pub fn read_vecs_f32(path: &Path) -> Result<(usize, Vec<f32>)> {
    let (dim, raw) = read_vecs_raw(path)?;
    Ok((dim, raw.into_iter().map(f32::from_le_bytes).collect()))
}

/// Reads an `.ivecs` file: (dimension, row-major values).
pub fn read_vecs_i32(path: &Path) -> Result<(usize, Vec<i32>)> {
    let (dim, raw) = read_vecs_raw(path)?;
    Ok((dim, raw.into_iter().map(i32::from_le_bytes).collect()))
}

/// The seeded SIFT-like generator, with the distribution of
/// `../shared/data/synth-128-1m/gen_synth.py`: a mixture of (up to) 1,000 Gaussian
/// clusters whose centres draw each coordinate from Gamma(0.6, 40), cluster weights from
/// Dirichlet(5), per-cluster noise σ ~ U(8, 20); values rounded and clipped to [0, 255].
/// Queries come from the same mixture. The same arguments give the same data; it is not
/// bit-identical to the numpy script (different random streams), so the script's shipped
/// ground truth does not apply and the truth is computed exactly instead.
pub fn synth(rows: usize, dim: usize, queries: usize, seed: u64) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let clusters = 1000.min(rows.max(1));
    let gamma = Gamma::new(0.6f32, 40.0).expect("valid gamma");
    let centres: Vec<f32> = (0..clusters * dim).map(|_| gamma.sample(&mut rng)).collect();
    let weight = Gamma::new(5.0f64, 1.0).expect("valid gamma");
    let mut cdf: Vec<f64> = (0..clusters).map(|_| weight.sample(&mut rng)).collect();
    let total: f64 = cdf.iter().sum();
    let mut acc = 0.0;
    for w in &mut cdf {
        acc += *w / total;
        *w = acc;
    }
    let sigmas: Vec<f32> = (0..clusters).map(|_| rng.random_range(8.0f32..20.0)).collect();
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    let draw = |n: usize, rng: &mut StdRng| -> Vec<f32> {
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let u: f64 = rng.random();
            let c = cdf.partition_point(|&x| x < u).min(clusters - 1);
            let centre = &centres[c * dim..(c + 1) * dim];
            out.extend(centre.iter().map(|&m| (m + sigmas[c] * normal.sample(rng)).clamp(0.0, 255.0).round()));
        }
        out
    };
    let base = draw(rows, &mut rng);
    let queries = draw(queries, &mut rng);
    Dataset {
        name: format!("synth-{dim}-{rows} (seed {seed})"),
        dim,
        metric: Metric::L2,
        base,
        queries,
        truth: None,
        texts: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_vecs(path: &Path, dim: usize, rows: &[Vec<u8>]) {
        let mut out = Vec::new();
        for r in rows {
            out.extend((dim as u32).to_le_bytes());
            out.extend(r);
        }
        std::fs::write(path, out).unwrap();
    }

    fn floats(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_a_directory_and_infers_the_metric() {
        let dir = tempfile::tempdir().unwrap();
        write_vecs(&dir.path().join("base.fvecs"), 2, &[floats(&[1.0, 0.0]), floats(&[0.0, 1.0]), floats(&[0.6, 0.8])]);
        write_vecs(&dir.path().join("queries_public.fvecs"), 2, &[floats(&[1.0, 0.0])]);
        let ids: Vec<u8> = [0i32, 2].iter().flat_map(|x| x.to_le_bytes()).collect();
        write_vecs(&dir.path().join("gt_public.ivecs"), 2, &[ids]);
        write_vecs(&dir.path().join("gt_public.dist.fvecs"), 2, &[floats(&[1.0, 0.6])]);
        std::fs::write(dir.path().join("texts_base.tsv"), "0\tzero\n1\tone\n2\ttwo\n").unwrap();
        let ds = load(&Source::Dir(dir.path().into()), None, None, None).unwrap();
        assert_eq!((ds.dim, ds.rows(), ds.num_queries()), (2, 3, 1));
        assert_eq!(ds.metric, Metric::Ip, "decreasing truth scores mean a similarity");
        assert_eq!(ds.truth.as_ref().unwrap().ids, vec![vec![0, 2]]);
        assert_eq!(ds.texts.as_ref().unwrap()[2], "two");
        // The computed truth agrees with the shipped one.
        assert_eq!(ds.exact_truth(2, 0..1, None).ids, vec![vec![0, 2]]);
        // Cutting the base drops the shipped truth (it covered rows no longer inserted).
        let cut = load(&Source::Dir(dir.path().into()), Some(2), None, None).unwrap();
        assert!(cut.truth.is_none());
        assert_eq!(cut.texts.unwrap().len(), 2);
    }

    #[test]
    fn rejects_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.fvecs"), [2u8, 0, 0, 0, 1, 2, 3]).unwrap();
        let err = load(&Source::Dir(dir.path().into()), None, None, None).unwrap_err();
        assert!(err.to_string().contains("whole number"), "{err}");
        let missing = load(&Source::Dir(dir.path().join("nope")), None, None, None).unwrap_err();
        assert!(missing.to_string().contains("base.fvecs"), "{missing}");
    }

    #[test]
    fn synth_is_seeded_and_sift_like() {
        let a = synth(2000, 16, 10, 7);
        let b = synth(2000, 16, 10, 7);
        assert_eq!(a.base, b.base);
        assert_ne!(a.base, synth(2000, 16, 10, 8).base);
        assert!(a.base.iter().all(|&x| (0.0..=255.0).contains(&x) && x.fract() == 0.0));
        assert_eq!((a.rows(), a.num_queries(), a.metric), (2000, 10, Metric::L2));
    }

    #[test]
    fn rnd_is_uniform_enough() {
        let below = (0..100_000).filter(|&id| Dataset::rnd(id) < RND_RANGE / 10).count();
        assert!((9_000..11_000).contains(&below), "{below} of 100000 below 10 %");
    }
}

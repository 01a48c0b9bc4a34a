//! k-means for the coarse quantiser of IVF indexes and the codebooks of PQ.
//!
//! Why it looks like this (faiss' `Clustering` is the model):
//! - **Bounded training sample**: at most `max_points_per_centroid` points per centroid
//!   (default 256) are drawn, so training cost does not grow with the segment.
//! - **Assignment by GEMM**: `argmin ‖c‖² − 2x·c` (or `argmax x·c` when spherical) over
//!   blocks of points, each block one faer product on one core, blocks spread over the
//!   cores with rayon; this is nearly all the work and runs near the FMA peak.
//! - **Init**: k-means++ on a pool of at most [`PLUS_PLUS_POOL_PER_CENTROID`]·k sampled
//!   points (full k-means++ over the sample would cost k sequential passes), or uniform.
//! - **Empty clusters** are repaired by splitting the largest cluster in two symmetric,
//!   slightly perturbed copies (as faiss does).
//! - **Deterministic** for a given seed whatever the thread count: blocks have fixed
//!   boundaries, each centroid is summed by one task in point order, and reductions are
//!   combined in block order.
//! - **Spherical** mode (IP / COSINE) normalises the centroids after each update.
//!
//! Samples and centroids cross the crate boundary as ndarray matrices (one row per
//! vector); a view in standard (row-major) layout is used in place, any other layout is
//! copied once into it. Inside, the rows are plain slices and the products see them as
//! faer matrices ([`crate::gemm`]).

use std::sync::atomic::AtomicBool;

use faer::Par;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::context::Stop;
use crate::distance::{dot, l2_sq, normalize};
use crate::error::{IndexError, Result};
use crate::gemm;
use crate::rng::Rng;
use crate::rows_of;

/// Default number of Lloyd iterations (faiss' default as well).
pub const DEFAULT_ITERATIONS: usize = 10;
/// Default cap on training points per centroid (faiss' default).
pub const DEFAULT_MAX_POINTS_PER_CENTROID: usize = 256;
/// k-means++ draws its seeds from at most this many sampled points per centroid.
pub const PLUS_PLUS_POOL_PER_CENTROID: usize = 4;
/// Perturbation of a split centroid (faiss' `EPS`).
const SPLIT_EPS: f32 = 1.0 / 1024.0;
/// Bound on the floats of one assignment score block (per task).
const BLOCK_FLOATS: usize = 1 << 20;

/// How initial centroids are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KMeansInit {
    /// k distinct sample points, uniformly.
    Random,
    /// k-means++ (D² sampling) over a pool of sampled points.
    PlusPlus,
}

/// Training parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansParams {
    /// Number of centroids.
    pub k: usize,
    /// Lloyd iterations (stops earlier once no assignment changes).
    pub iterations: usize,
    /// At most this many training points per centroid are sampled.
    pub max_points_per_centroid: usize,
    /// Seed of every random choice (sample, init).
    pub seed: u64,
    /// Maximise inner product with unit-norm centroids (IP / COSINE) instead of minimising L2.
    pub spherical: bool,
    /// Initialisation.
    pub init: KMeansInit,
}

impl KMeansParams {
    /// Defaults for `k` centroids: 10 iterations, 256 points per centroid, seed 42,
    /// L2, k-means++.
    pub fn new(k: usize) -> KMeansParams {
        KMeansParams {
            k,
            iterations: DEFAULT_ITERATIONS,
            max_points_per_centroid: DEFAULT_MAX_POINTS_PER_CENTROID,
            seed: 42,
            spherical: false,
            init: KMeansInit::PlusPlus,
        }
    }
}

/// A trained clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// `k × dim` centroids, one per row (standard layout).
    pub centroids: Array2<f32>,
    /// Lloyd iterations run.
    pub iterations: usize,
    /// Objective after each iteration's assignment over the training sample: the sum of
    /// squared distances (L2) or of inner products (spherical).
    pub objective: Vec<f64>,
    /// Training points used (after sampling).
    pub train_points: usize,
}

/// Nearest centroid of each point.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Centroid index per point.
    pub labels: Vec<u32>,
    /// Squared distance (L2) or inner product (spherical) to that centroid.
    pub scores: Vec<f32>,
}

impl KMeans {
    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.centroids.nrows()
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.centroids.ncols()
    }

    /// Assigns the rows of `data` to the nearest centroids.
    pub fn assign(&self, data: ArrayView2<'_, f32>, spherical: bool) -> Result<Assignment> {
        assign(data, self.centroids.view(), spherical)
    }

    /// The centroids as one row-major buffer, without a copy.
    pub(crate) fn into_rows(self) -> Vec<f32> {
        // Built by `Array2::from_shape_vec` in standard layout: the buffer is the matrix,
        // from offset 0.
        let (v, offset) = self.centroids.into_raw_vec_and_offset();
        debug_assert_eq!(offset.unwrap_or(0), 0);
        v
    }
}

fn check_data(data: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(IndexError::input(format!("{} floats do not hold whole {dim}-d vectors", data.len())));
    }
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(IndexError::input(format!("row {} holds a NaN or infinite value", i / dim)));
    }
    Ok(data.len() / dim)
}

/// Assigns each row of `data` to its nearest row of `centroids` (L2, or largest inner
/// product when `spherical`). Ties go to the smaller centroid index.
pub fn assign(data: ArrayView2<'_, f32>, centroids: ArrayView2<'_, f32>, spherical: bool) -> Result<Assignment> {
    if centroids.ncols() != data.ncols() {
        return Err(IndexError::input(format!("{}-d centroids for {}-d vectors", centroids.ncols(), data.ncols())));
    }
    assign_rows(&rows_of(data), data.ncols(), &rows_of(centroids), spherical)
}

pub(crate) fn assign_rows(data: &[f32], dim: usize, centroids: &[f32], spherical: bool) -> Result<Assignment> {
    let n = check_data(data, dim)?;
    if centroids.is_empty() || !centroids.len().is_multiple_of(dim) {
        return Err(IndexError::input("centroids do not hold whole vectors"));
    }
    let mut a = Assignment { labels: vec![0; n], scores: vec![0.0; n] };
    assign_into(data, dim, centroids, spherical, &mut a.labels, &mut a.scores);
    Ok(a)
}

/// GEMM assignment; returns the objective (sum of scores). Deterministic: fixed blocks,
/// sequential GEMM per block, block sums combined in order.
fn assign_into(
    data: &[f32],
    dim: usize,
    centroids: &[f32],
    spherical: bool,
    labels: &mut [u32],
    scores: &mut [f32],
) -> f64 {
    let k = centroids.len() / dim;
    let cnorms: Vec<f32> =
        if spherical { Vec::new() } else { centroids.chunks_exact(dim).map(|c| dot(c, c)).collect() };
    let pb = (BLOCK_FLOATS / k).clamp(16, 1024);
    let sums: Vec<f64> = data
        .par_chunks(pb * dim)
        .zip(labels.par_chunks_mut(pb))
        .zip(scores.par_chunks_mut(pb))
        .map_init(Vec::new, |buf: &mut Vec<f32>, ((x, l), s)| {
            let nb = x.len() / dim;
            buf.clear();
            buf.resize(k * nb, 0.0);
            gemm::dots_rows(centroids, x, dim, buf, Par::Seq);
            let mut sum = 0f64;
            for (j, col) in buf.chunks_exact_mut(k).enumerate() {
                let (c, v) = if spherical {
                    argmax(col)
                } else {
                    for (g, &cn) in col.iter_mut().zip(&cnorms) {
                        *g = cn - 2.0 * *g;
                    }
                    let (c, v) = argmin(col);
                    let xj = &x[j * dim..(j + 1) * dim];
                    (c, (dot(xj, xj) + v).max(0.0))
                };
                l[j] = c as u32;
                s[j] = v;
                sum += v as f64;
            }
            sum
        })
        .collect();
    sums.iter().sum()
}

/// Index and value of the smallest element (first on ties), vectorised over 16 lanes.
fn argmin(v: &[f32]) -> (usize, f32) {
    let mut m = [f32::INFINITY; 16];
    let chunks = v.chunks_exact(16);
    let rem = chunks.remainder();
    for c in chunks {
        for (m, &x) in m.iter_mut().zip(c) {
            *m = if x < *m { x } else { *m };
        }
    }
    let best = m.iter().chain(rem).fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    (v.iter().position(|&x| x == best).unwrap_or(0), best)
}

/// Index and value of the largest element (first on ties), vectorised over 16 lanes.
fn argmax(v: &[f32]) -> (usize, f32) {
    let mut m = [f32::NEG_INFINITY; 16];
    let chunks = v.chunks_exact(16);
    let rem = chunks.remainder();
    for c in chunks {
        for (m, &x) in m.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let best = m.iter().chain(rem).fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    (v.iter().position(|&x| x == best).unwrap_or(0), best)
}

/// Trains `p.k` centroids on the rows of `data` (`n × dim`, finite values, `n >= k`).
pub fn train(data: ArrayView2<'_, f32>, p: &KMeansParams) -> Result<KMeans> {
    train_until(&rows_of(data), data.ncols(), p, Stop::NEVER)
}

/// [`train`] that stops with [`IndexError::Cancelled`] once `stop` is set (polled before
/// every k-means++ seed and every Lloyd iteration).
pub fn train_cancellable(data: ArrayView2<'_, f32>, p: &KMeansParams, stop: &AtomicBool) -> Result<KMeans> {
    train_until(&rows_of(data), data.ncols(), p, Stop::new(Some(stop)))
}

pub(crate) fn train_until(data: &[f32], dim: usize, p: &KMeansParams, stop: Stop<'_>) -> Result<KMeans> {
    let n = check_data(data, dim)?;
    let k = p.k;
    if k == 0 {
        return Err(IndexError::param("k", 0, "at least 1"));
    }
    if n < k {
        return Err(IndexError::input(format!("k-means with k={k} needs at least {k} points, got {n}")));
    }
    let mut rng = Rng::new(p.seed);
    let cap = k.saturating_mul(p.max_points_per_centroid.max(1));
    let sampled: Vec<f32>;
    let x: &[f32] = if n > cap {
        let idx = rng.sample_indices(n, cap);
        sampled = gather(data, dim, &idx);
        &sampled
    } else {
        data
    };
    let n = x.len() / dim;
    let mut centroids = match p.init {
        KMeansInit::Random => gather(x, dim, &rng.sample_indices(n, k)),
        KMeansInit::PlusPlus => plus_plus(x, dim, k, &mut rng, stop)?,
    };
    if p.spherical {
        centroids.chunks_exact_mut(dim).for_each(|c| {
            normalize(c);
        });
    }
    let mut labels = vec![0u32; n];
    let mut prev = vec![u32::MAX; n];
    let mut scores = vec![0f32; n];
    let mut objective = Vec::with_capacity(p.iterations);
    for it in 0..p.iterations {
        stop.check()?;
        objective.push(assign_into(x, dim, &centroids, p.spherical, &mut labels, &mut scores));
        if it > 0 && labels == prev {
            return Ok(KMeans { centroids: matrix(centroids, dim), iterations: it + 1, objective, train_points: n });
        }
        std::mem::swap(&mut labels, &mut prev);
        update(x, dim, &prev, &mut centroids, p.spherical);
    }
    Ok(KMeans { centroids: matrix(centroids, dim), iterations: p.iterations, objective, train_points: n })
}

/// `v` (whole `dim`-d rows) as a matrix, without a copy.
fn matrix(v: Vec<f32>, dim: usize) -> Array2<f32> {
    Array2::from_shape_vec((v.len() / dim, dim), v).expect("whole vectors")
}

/// One Lloyd iteration over the rows of `data` from `centroids` (`k × dim`, updated in
/// place): assignment by GEMM, then the centroid update with empty-cluster repair (and
/// normalisation when spherical). Returns the objective of the assignment. For benchmarks
/// and incremental training.
pub fn iterate(data: ArrayView2<'_, f32>, mut centroids: ArrayViewMut2<'_, f32>, spherical: bool) -> Result<f64> {
    let dim = data.ncols();
    let data = rows_of(data);
    let n = check_data(&data, dim)?;
    if centroids.is_empty() || centroids.ncols() != dim {
        return Err(IndexError::input(format!("{}-d centroids for {dim}-d vectors", centroids.ncols())));
    }
    let mut labels = vec![0u32; n];
    let mut scores = vec![0f32; n];
    let mut step = |c: &mut [f32]| {
        let obj = assign_into(&data, dim, c, spherical, &mut labels, &mut scores);
        update(&data, dim, &labels, c, spherical);
        obj
    };
    Ok(match centroids.as_slice_mut() {
        Some(c) => step(c),
        None => {
            // Not row-major: update a row-major copy, then write it back.
            let mut c: Vec<f32> = centroids.iter().copied().collect();
            let obj = step(&mut c);
            let shape = centroids.raw_dim();
            centroids.assign(&ArrayView2::from_shape(shape, &c).expect("same shape"));
            obj
        }
    })
}

fn gather(data: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * dim);
    for &i in idx {
        out.extend_from_slice(&data[i * dim..(i + 1) * dim]);
    }
    out
}

/// Greedy k-means++ seeding over a sampled pool (as scikit-learn): each step draws
/// `2 + ln k` candidates with probability proportional to their squared distance to the
/// nearest seed so far and keeps the one that lowers the total most. The candidate
/// distances are one small GEMM per pool chunk.
fn plus_plus(x: &[f32], dim: usize, k: usize, rng: &mut Rng, stop: Stop<'_>) -> Result<Vec<f32>> {
    const CHUNK: usize = 512;
    let n = x.len() / dim;
    let pool_n = n.min(k.saturating_mul(PLUS_PLUS_POOL_PER_CENTROID));
    let pool_owned: Vec<f32>;
    let pool: &[f32] = if pool_n < n {
        pool_owned = gather(x, dim, &rng.sample_indices(n, pool_n));
        &pool_owned
    } else {
        x
    };
    let row = |i: usize| &pool[i * dim..(i + 1) * dim];
    let pn: Vec<f32> = pool.chunks_exact(dim).map(|r| dot(r, r)).collect();
    let trials = 2 + (k as f64).ln() as usize;
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.below(pool_n);
    centroids.extend_from_slice(row(first));
    let mut d2: Vec<f32> = (0..pool_n).map(|i| l2_sq(row(i), row(first))).collect();
    let mut all = vec![0f32; pool_n * trials];
    let mut cands = Vec::with_capacity(trials * dim);
    for _ in 1..k {
        stop.check()?;
        let total: f64 = d2.iter().map(|&d| d as f64).sum();
        cands.clear();
        for _ in 0..trials {
            let pick = if total > 0.0 {
                let target = rng.next_f64() * total;
                let mut acc = 0f64;
                d2.iter()
                    .position(|&d| {
                        acc += d as f64;
                        acc > target
                    })
                    .unwrap_or(pool_n - 1)
            } else {
                rng.below(pool_n)
            };
            cands.extend_from_slice(row(pick));
        }
        let cn: Vec<f32> = cands.chunks_exact(dim).map(|c| dot(c, c)).collect();
        // Per chunk: new nearest distance under each candidate, column-major chunk × trials.
        let pots: Vec<Vec<f64>> = all
            .par_chunks_mut(CHUNK * trials)
            .zip(pool.par_chunks(CHUNK * dim))
            .enumerate()
            .map(|(b, (out, rows))| {
                let nb = rows.len() / dim;
                gemm::dots_rows(rows, &cands, dim, out, Par::Seq);
                let mut pots = vec![0f64; trials];
                for (l, col) in out.chunks_exact_mut(nb).enumerate() {
                    for (i, v) in col.iter_mut().enumerate() {
                        let r = b * CHUNK + i;
                        *v = (pn[r] + cn[l] - 2.0 * *v).max(0.0).min(d2[r]);
                        pots[l] += *v as f64;
                    }
                }
                pots
            })
            .collect();
        let pot = |l: usize| pots.iter().map(|p| p[l]).sum::<f64>();
        let best = (1..trials).fold(0, |b, l| if pot(l) < pot(b) { l } else { b });
        centroids.extend_from_slice(&cands[best * dim..(best + 1) * dim]);
        for (out, d) in all.chunks(CHUNK * trials).zip(d2.chunks_mut(CHUNK)) {
            let nb = d.len();
            d.copy_from_slice(&out[best * nb..(best + 1) * nb]);
        }
    }
    Ok(centroids)
}

/// Centroids as member means (f64 sums, point order), then empty-cluster repair and, when
/// spherical, normalisation.
fn update(x: &[f32], dim: usize, labels: &[u32], centroids: &mut [f32], spherical: bool) {
    let k = centroids.len() / dim;
    let mut counts = vec![0usize; k];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let mut offsets = vec![0usize; k + 1];
    for c in 0..k {
        offsets[c + 1] = offsets[c] + counts[c];
    }
    let mut fill = offsets.clone();
    let mut members = vec![0u32; labels.len()];
    for (i, &l) in labels.iter().enumerate() {
        members[fill[l as usize]] = i as u32;
        fill[l as usize] += 1;
    }
    centroids.par_chunks_mut(dim).enumerate().for_each_init(
        || vec![0f64; dim],
        |acc, (c, out)| {
            let m = &members[offsets[c]..offsets[c + 1]];
            if m.is_empty() {
                return;
            }
            acc.iter_mut().for_each(|a| *a = 0.0);
            for &i in m {
                let i = i as usize;
                for (a, &v) in acc.iter_mut().zip(&x[i * dim..(i + 1) * dim]) {
                    *a += v as f64;
                }
            }
            let inv = 1.0 / m.len() as f64;
            for (o, a) in out.iter_mut().zip(acc.iter()) {
                *o = (a * inv) as f32;
            }
        },
    );
    split_empty(centroids, dim, &mut counts);
    if spherical {
        centroids.chunks_exact_mut(dim).for_each(|c| {
            normalize(c);
        });
    }
}

/// Gives each empty cluster half of the largest cluster: both get its centroid, perturbed
/// in opposite directions (faiss' rule; "largest" instead of a random pick keeps it
/// deterministic without a generator).
fn split_empty(centroids: &mut [f32], dim: usize, counts: &mut [usize]) {
    for c in 0..counts.len() {
        if counts[c] != 0 {
            continue;
        }
        let big = counts.iter().enumerate().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0))).map_or(0, |(i, _)| i);
        if counts[big] < 2 {
            continue;
        }
        let src: Vec<f32> = centroids[big * dim..(big + 1) * dim].to_vec();
        for (j, &v) in src.iter().enumerate() {
            let (up, down) = (v * (1.0 + SPLIT_EPS), v * (1.0 - SPLIT_EPS));
            let (ce, cb) = if j % 2 == 0 { (up, down) } else { (down, up) };
            centroids[c * dim + j] = ce;
            centroids[big * dim + j] = cb;
        }
        counts[c] = counts[big] / 2;
        counts[big] -= counts[c];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{clustered, view};

    /// Naive Lloyd (f64 distances, argmin loops) from given centroids.
    fn naive_lloyd(x: &[f32], dim: usize, mut c: Vec<f32>, iters: usize) -> f64 {
        let n = x.len() / dim;
        let k = c.len() / dim;
        let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum::<f64>();
        let mut inertia = 0.0;
        for _ in 0..iters {
            let mut sums = vec![0f64; k * dim];
            let mut counts = vec![0usize; k];
            inertia = 0.0;
            for i in 0..n {
                let xi = &x[i * dim..(i + 1) * dim];
                let (best, d) = (0..k)
                    .map(|j| (j, dist(xi, &c[j * dim..(j + 1) * dim])))
                    .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
                inertia += d;
                counts[best] += 1;
                for t in 0..dim {
                    sums[best * dim + t] += xi[t] as f64;
                }
            }
            for j in 0..k {
                if counts[j] > 0 {
                    for t in 0..dim {
                        c[j * dim + t] = (sums[j * dim + t] / counts[j] as f64) as f32;
                    }
                }
            }
        }
        inertia
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (x, dim) = (clustered(3000, 24, 20, 1), 24);
        let p = KMeansParams { iterations: 8, ..KMeansParams::new(32) };
        let a = train(view(&x, dim), &p).expect("trains");
        let b = train(view(&x, dim), &p).expect("trains");
        assert_eq!(a, b);
        // Same result on a single-thread pool: blocks and sums do not depend on threads.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        let c = pool.install(|| train(view(&x, dim), &p)).expect("trains");
        assert_eq!(a, c);
        let d = train(view(&x, dim), &KMeansParams { seed: 7, ..p }).expect("trains");
        assert_ne!(a.centroids, d.centroids);
    }

    #[test]
    fn quality_matches_naive_lloyd() {
        let (x, dim, k) = (clustered(4000, 16, 40, 2), 16, 40);
        let final_objective = |init| {
            let p = KMeansParams { iterations: 15, init, ..KMeansParams::new(k) };
            let km = train(view(&x, dim), &p).expect("trains");
            // Objective never increases (Lloyd), up to float noise.
            assert!(km.objective.windows(2).all(|w| w[1] <= w[0] * 1.000_01), "{:?}", km.objective);
            // Assignment agrees with the stored objective.
            let a = km.assign(view(&x, dim), false).expect("assigns");
            let total: f64 = a.scores.iter().map(|&s| s as f64).sum();
            let last = km.objective[km.objective.len() - 1];
            assert!(total <= last * 1.001 + 1e-6, "{total} vs {last}");
            (last, km.iterations)
        };
        // Same start as our Random init (seed 42, no sampling at this size): the same
        // algorithm, so the same objective up to float rounding.
        let start = gather(&x, dim, &Rng::new(42).sample_indices(4000, k));
        let (random, iters) = final_objective(KMeansInit::Random);
        let reference = naive_lloyd(&x, dim, start, iters - 1);
        assert!((random - reference).abs() <= 1e-3 * reference, "ours {random} vs naive {reference}");
        // k-means++ must not be worse than 5 % above the best of naive Lloyd from 3 random
        // starts.
        let best_naive = (0..3)
            .map(|s| naive_lloyd(&x, dim, gather(&x, dim, &Rng::new(100 + s).sample_indices(4000, k)), 15))
            .fold(f64::INFINITY, f64::min);
        let (pp, _) = final_objective(KMeansInit::PlusPlus);
        assert!(pp <= best_naive * 1.05, "k-means++ {pp} vs naive best {best_naive}");
    }

    #[test]
    fn spherical_centroids_are_unit_norm() {
        let (x, dim) = (clustered(2000, 32, 10, 3), 32);
        let p = KMeansParams { spherical: true, ..KMeansParams::new(10) };
        let km = train(view(&x, dim), &p).expect("trains");
        for c in km.centroids.rows() {
            let c = c.to_slice().expect("row-major");
            assert!((crate::distance::norm(c) - 1.0).abs() < 1e-4);
        }
        assert!(km.objective.windows(2).all(|w| w[1] >= w[0] * 0.99999 - 1e-6), "{:?}", km.objective);
    }

    #[test]
    fn sampling_and_early_stop() {
        let (x, dim) = (clustered(5000, 8, 4, 4), 8);
        let p = KMeansParams { max_points_per_centroid: 100, iterations: 50, ..KMeansParams::new(4) };
        let km = train(view(&x, dim), &p).expect("trains");
        assert_eq!(km.train_points, 400);
        assert!(km.iterations < 50, "well separated clusters converge early");
    }

    #[test]
    fn empty_clusters_are_split() {
        // 3 distinct points repeated, k = 6: duplicates force empty clusters.
        let mut x = Vec::new();
        for i in 0..60 {
            x.extend_from_slice(&[(i % 3) as f32 * 10.0 + 1.0, 1.0]);
        }
        let p = KMeansParams { init: KMeansInit::Random, ..KMeansParams::new(6) };
        let km = train(view(&x, 2), &p).expect("trains");
        assert!(km.centroids.iter().all(|v| v.is_finite()));
        let a = km.assign(view(&x, 2), false).expect("assigns");
        assert!(a.scores.iter().all(|&s| s < 1e-2));
        // Splitting directly: the largest cluster is halved, centroids perturbed apart.
        let mut c = vec![1.0f32, 1.0, 0.0, 0.0];
        let mut counts = vec![10, 0];
        split_empty(&mut c, 2, &mut counts);
        assert_eq!(counts, vec![5, 5]);
        assert!(c[0] != c[2] && c[0] > 0.99 && c[2] > 0.99);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(crate::matrix_view(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(train(view(&[1.0, 2.0], 2), &KMeansParams::new(2)).is_err());
        assert!(train(view(&[1.0, f32::NAN], 2), &KMeansParams::new(1)).is_err());
        assert!(train(view(&[1.0, 2.0], 2), &KMeansParams::new(0)).is_err());
        assert!(train(view(&[], 0), &KMeansParams::new(1)).is_err());
        assert!(assign(view(&[1.0, 2.0], 2), view(&[1.0], 1), false).is_err());
        assert!(assign(view(&[1.0, 2.0], 2), view(&[], 2), false).is_err());
    }

    #[test]
    fn argmin_argmax_first_on_ties() {
        let v: Vec<f32> = (0..37).map(|i| ((i * 13) % 7) as f32).collect();
        assert_eq!(argmin(&v), (0, 0.0));
        assert_eq!(argmax(&v), (1, 6.0));
        assert_eq!(argmin(&[3.0, 1.0, 1.0]), (1, 1.0));
    }
}

//! 8-bit scalar quantisation for IVF_SQ8 (codes of residuals) and HNSW's graph walk (codes
//! of the rows): a code `c` decodes to `vmin + step·c` per dimension, with the minimum and
//! `step = (max − min)/255` of each dimension over the coded vectors ([`Sq8Range`]: the one
//! training and encoding both index types use). The two sums needed by the scan are written
//! once as plain loops with 64 accumulators (four independent 16-lane FMA chains at
//! AVX-512, so the adds do not wait on each other's latency) and compiled three times (AVX-512F, AVX2+FMA, baseline) behind a
//! run-time dispatch, so the u8→f32 widening vectorises at the machine's width. On
//! aarch64 the baseline build already vectorises them with NEON (part of the baseline).

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::distance::dot as dot_f32;

/// The quantiser: per dimension the minimum of the coded vectors and the step between two
/// of the 256 levels (0 for a constant dimension, whose codes are all 0).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sq8Range {
    pub vmin: Vec<f32>,
    pub step: Vec<f32>,
}

/// The running per-dimension minimum and maximum of the vectors a quantiser is fitted to.
pub(crate) struct Sq8Fit {
    vmin: Vec<f32>,
    vmax: Vec<f32>,
}

impl Sq8Fit {
    pub fn new(dim: usize) -> Sq8Fit {
        Sq8Fit { vmin: vec![f32::INFINITY; dim], vmax: vec![f32::NEG_INFINITY; dim] }
    }

    /// Widens the range to cover `r` (one vector).
    #[inline]
    pub fn add(&mut self, r: &[f32]) {
        for ((lo, hi), &x) in self.vmin.iter_mut().zip(&mut self.vmax).zip(r) {
            *lo = lo.min(x);
            *hi = hi.max(x);
        }
    }

    pub fn finish(self) -> Sq8Range {
        let step = self.vmin.iter().zip(&self.vmax).map(|(lo, hi)| (hi - lo) / 255.0).collect();
        Sq8Range { vmin: self.vmin, step }
    }
}

impl Sq8Range {
    /// The quantiser of the rows of `v` (`rows × dim`, row-major).
    pub fn fit_rows(v: &[f32], dim: usize) -> Sq8Range {
        let mut fit = Sq8Fit::new(dim);
        v.chunks_exact(dim).for_each(|r| fit.add(r));
        fit.finish()
    }

    /// The code of one vector, each value rounded to the nearest level (error at most
    /// step/2 inside the fitted range; values outside it are clamped).
    #[inline]
    pub fn encode(&self, x: &[f32], code: &mut [u8]) {
        for (((c, &x), &lo), &step) in code.iter_mut().zip(x).zip(&self.vmin).zip(&self.step) {
            *c = if step > 0.0 { ((x - lo) / step).round().clamp(0.0, 255.0) as u8 } else { 0 };
        }
    }

    /// The codes of every row of `v` (`rows × dim`, row-major), in row order, encoded in
    /// parallel.
    pub fn encode_rows(&self, v: &[f32], dim: usize) -> Vec<u8> {
        let mut codes = vec![0u8; v.len()];
        let chunk = dim.max(1) * 1024;
        codes.par_chunks_mut(chunk).zip(v.par_chunks(chunk)).for_each(|(c, x)| {
            c.chunks_exact_mut(dim).zip(x.chunks_exact(dim)).for_each(|(c, x)| self.encode(x, c));
        });
        codes
    }

    /// What an inner product with a code needs of the query `q`: `q·vmin` and the weights
    /// `q∘step`, so that `q·x̂ = q·vmin + dot(weights, code)`.
    pub fn ip_query(&self, q: &[f32]) -> (f32, Vec<f32>) {
        (dot_f32(q, &self.vmin), q.iter().zip(&self.step).map(|(q, s)| q * s).collect())
    }

    /// Heap bytes of the quantiser.
    pub fn memory_bytes(&self) -> usize {
        self.vmin.len() * 8
    }
}

type L2Kernel = unsafe fn(&[f32], &[f32], &[u8]) -> f32;
type DotKernel = unsafe fn(&[f32], &[u8]) -> f32;

struct Kernels {
    l2: L2Kernel,
    dot: DotKernel,
}

fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernels { l2: x86::l2_avx512, dot: x86::dot_avx512 };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Kernels { l2: x86::l2_avx2, dot: x86::dot_avx2 };
            }
        }
        Kernels { l2: l2_portable_unsafe, dot: dot_portable_unsafe }
    })
}

/// `Σ (a_i − step_i·c_i)²`: squared L2 between `a` (query − centroid − vmin) and a code.
#[inline]
pub(crate) fn l2(a: &[f32], step: &[f32], codes: &[u8]) -> f32 {
    // SAFETY: the kernel's CPU features were detected at run time; the bodies only read
    // within the shortest slice.
    unsafe { (kernels().l2)(a, step, codes) }
}

/// `Σ w_i·c_i`: the code-dependent part of an inner product.
#[inline]
pub(crate) fn dot(w: &[f32], codes: &[u8]) -> f32 {
    // SAFETY: as in `l2`.
    unsafe { (kernels().dot)(w, codes) }
}

/// Sums the accumulators by halving (each level one vector add): a plain `iter().sum()`
/// is a chain of 80 dependent scalar adds, longer than the loop itself.
#[inline(always)]
fn hsum(acc: &[f32; 64], acc16: &[f32; 16]) -> f32 {
    let mut v = [0f32; 16];
    for j in 0..16 {
        v[j] = (acc[j] + acc[j + 16]) + (acc[j + 32] + acc[j + 48]) + acc16[j];
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            v[j] += v[j + w];
        }
    }
    v[0]
}

#[inline(always)]
fn l2_body(a: &[f32], step: &[f32], codes: &[u8]) -> f32 {
    let n = a.len().min(step.len()).min(codes.len());
    let (a, step, codes) = (&a[..n], &step[..n], &codes[..n]);
    let mut acc = [0f32; 64];
    let mut it = a.chunks_exact(64).zip(step.chunks_exact(64)).zip(codes.chunks_exact(64));
    for ((a, s), c) in &mut it {
        for j in 0..64 {
            let d = a[j] - s[j] * c[j] as f32;
            acc[j] += d * d;
        }
    }
    let mut tail = n - n % 64;
    let mut acc16 = [0f32; 16];
    while tail + 16 <= n {
        for j in 0..16 {
            let d = a[tail + j] - step[tail + j] * codes[tail + j] as f32;
            acc16[j] += d * d;
        }
        tail += 16;
    }
    let mut sum = 0f32;
    for i in tail..n {
        let d = a[i] - step[i] * codes[i] as f32;
        sum += d * d;
    }
    hsum(&acc, &acc16) + sum
}

#[inline(always)]
fn dot_body(w: &[f32], codes: &[u8]) -> f32 {
    let n = w.len().min(codes.len());
    let (w, codes) = (&w[..n], &codes[..n]);
    let mut acc = [0f32; 64];
    for (w, c) in w.chunks_exact(64).zip(codes.chunks_exact(64)) {
        for j in 0..64 {
            acc[j] += w[j] * c[j] as f32;
        }
    }
    let mut tail = n - n % 64;
    let mut acc16 = [0f32; 16];
    while tail + 16 <= n {
        for j in 0..16 {
            acc16[j] += w[tail + j] * codes[tail + j] as f32;
        }
        tail += 16;
    }
    let mut sum = 0f32;
    for i in tail..n {
        sum += w[i] * codes[i] as f32;
    }
    hsum(&acc, &acc16) + sum
}

unsafe fn l2_portable_unsafe(a: &[f32], step: &[f32], codes: &[u8]) -> f32 {
    l2_body(a, step, codes)
}

unsafe fn dot_portable_unsafe(w: &[f32], codes: &[u8]) -> f32 {
    dot_body(w, codes)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{dot_body, l2_body};

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn l2_avx512(a: &[f32], step: &[f32], codes: &[u8]) -> f32 {
        l2_body(a, step, codes)
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(w: &[f32], codes: &[u8]) -> f32 {
        dot_body(w, codes)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_avx2(a: &[f32], step: &[f32], codes: &[u8]) -> f32 {
        l2_body(a, step, codes)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(w: &[f32], codes: &[u8]) -> f32 {
        dot_body(w, codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The quantiser both index types used before they shared one: training and codes
    /// must stay bit for bit what the files written then hold.
    #[test]
    fn fit_and_encode_match_the_reference_formula() {
        let mut rng = Rng::new(9);
        let (rows, dim) = (300, 13);
        let mut v: Vec<f32> = (0..rows * dim).map(|_| (rng.next_f64() as f32 - 0.3) * 7.0).collect();
        for r in 0..rows {
            v[r * dim + 4] = 1.25; // a constant dimension: step 0, code 0
        }
        let range = Sq8Range::fit_rows(&v, dim);
        let (mut vmin, mut vmax) = (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]);
        for r in v.chunks_exact(dim) {
            for t in 0..dim {
                vmin[t] = vmin[t].min(r[t]);
                vmax[t] = vmax[t].max(r[t]);
            }
        }
        let step: Vec<f32> = vmin.iter().zip(&vmax).map(|(lo, hi)| (hi - lo) / 255.0).collect();
        assert_eq!(range, Sq8Range { vmin: vmin.clone(), step: step.clone() });
        let want: Vec<u8> = v
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let t = i % dim;
                if step[t] > 0.0 { ((x - vmin[t]) / step[t]).round().clamp(0.0, 255.0) as u8 } else { 0 }
            })
            .collect();
        assert_eq!(range.encode_rows(&v, dim), want);
        assert!(want.iter().skip(4).step_by(dim).all(|&c| c == 0));
        // Decoding is within half a step.
        for (i, (&x, &c)) in v.iter().zip(&want).enumerate() {
            let t = i % dim;
            assert!((vmin[t] + step[t] * c as f32 - x).abs() <= step[t] * 0.5001 + 1e-6);
        }
        // Clamped outside the fitted range.
        let mut code = vec![0u8; dim];
        range.encode(&vec![1e9; dim], &mut code);
        assert!(code.iter().enumerate().all(|(t, &c)| c == if t == 4 { 0 } else { 255 }));
        let q: Vec<f32> = (0..dim).map(|t| t as f32 - 6.0).collect();
        let (qv, w) = range.ip_query(&q);
        assert_eq!(qv, dot_f32(&q, &vmin));
        assert_eq!(w, q.iter().zip(&step).map(|(a, b)| a * b).collect::<Vec<_>>());
    }

    #[test]
    fn kernels_match_reference() {
        let mut rng = Rng::new(5);
        for n in [1usize, 7, 15, 16, 17, 33, 100, 384, 385] {
            let a: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect();
            let s: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 * 0.01).collect();
            let c: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
            let want_l2: f64 = (0..n).map(|i| (a[i] as f64 - s[i] as f64 * c[i] as f64).powi(2)).sum();
            let want_dot: f64 = (0..n).map(|i| a[i] as f64 * c[i] as f64).sum();
            #[allow(unused_mut)] // only x86-64 adds variants
            let mut variants: Vec<(L2Kernel, DotKernel)> = vec![(l2_portable_unsafe, dot_portable_unsafe)];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    variants.push((x86::l2_avx2, x86::dot_avx2));
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    variants.push((x86::l2_avx512, x86::dot_avx512));
                }
            }
            for (l2k, dotk) in variants {
                // SAFETY: only variants whose features were detected are tested.
                let (l, d) = unsafe { (l2k(&a, &s, &c), dotk(&a, &c)) };
                assert!((l as f64 - want_l2).abs() <= 1e-4 * want_l2.max(1.0), "l2 n={n}: {l} vs {want_l2}");
                assert!((d as f64 - want_dot).abs() <= 1e-3 * (n as f64).max(1.0), "dot n={n}: {d} vs {want_dot}");
            }
            assert!((l2(&a, &s, &c) as f64 - want_l2).abs() <= 1e-4 * want_l2.max(1.0));
            assert!((dot(&a, &c) as f64 - want_dot).abs() <= 1e-3 * (n as f64).max(1.0));
        }
    }
}

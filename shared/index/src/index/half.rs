//! A half-precision copy of the IP coarse centroids, to probe one query with half the
//! bytes. A single query's probe streams the whole centroid matrix (1.5 MB at nlist=1024,
//! d=384) for ~1,000 dot products, so it is bound by memory bandwidth, not arithmetic;
//! at 2 bytes per value the matrix also stays in a 2 MB L2 next to the lists a query
//! scans. The result must still be the exact probe, so every approximate score comes
//! with a rigorous error bound and the centroids that could be in the exact top-nprobe
//! are rescored with the f32 kernel (see [`HalfCentroids::probe`]).

use crate::distance::dot;
use crate::metric::Metric;
use crate::topk::{Hit, TopK};

/// f16 centroids (rows padded with zeros to whole 16-lane vectors) and per centroid the
/// bound factor `w_c`: |f16 score − f32-kernel score| ≤ ‖q‖·w_c for every query q.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HalfCentroids {
    dim: usize,
    stride: usize,
    data: Vec<u16>,
    w: Vec<f32>,
}

impl HalfCentroids {
    /// The copy, on CPUs with AVX-512F (whose conversion instructions the kernel uses);
    /// `None` elsewhere or for values outside f16's range (then the f32 probe is used).
    pub fn new(centroids: &[f32], dim: usize) -> Option<HalfCentroids> {
        #[cfg(target_arch = "x86_64")]
        {
            if dim == 0
                || !std::arch::is_x86_feature_detected!("avx512f")
                || centroids.iter().any(|x| !x.is_finite() || x.abs() > 60_000.0)
            {
                return None;
            }
            let stride = dim.div_ceil(16) * 16;
            let n = centroids.len() / dim;
            let mut data = vec![0u16; n * stride];
            let mut back = vec![0f32; stride];
            let mut w = Vec::with_capacity(n);
            // Worst-case relative rounding error of an f32 dot product of `dim` terms in any
            // summation order (Higham's γ_n with u = 2^-24), over Σ|q_i c_i| ≤ ‖q‖‖c‖.
            let u = (2f64).powi(-24);
            let gamma = dim as f64 * u / (1.0 - dim as f64 * u);
            for (c, h) in centroids.chunks_exact(dim).zip(data.chunks_exact_mut(stride)) {
                // SAFETY: AVX-512F was detected; both slices hold `stride` values.
                unsafe { x86::to_half(c, h, &mut back) };
                let err: f64 = c.iter().zip(&back).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>().sqrt();
                let nc: f64 = c.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
                let nh: f64 = back.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
                // Both scores' rounding plus the conversion's |q·(c̃ − c)| ≤ ‖q‖‖c̃ − c‖,
                // doubled to cover the rounding of ‖q‖ and of the bound arithmetic itself.
                w.push((2.0 * (err + gamma * (nc + nh)) + 1e-30) as f32);
            }
            Some(HalfCentroids { dim, stride, data, w })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (centroids, dim);
            None
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.data.len() * 2 + self.w.len() * 4
    }

    /// The exact inner-product probe of `q` (equal to the f32 one, hits and scores, ties to
    /// the lower list): bounds `s̃_c ± ‖q‖w_c` from the f16 scores; with `T` the nprobe-th
    /// largest lower bound, nprobe centroids score at least `T`, so a centroid whose upper
    /// bound is below `T` cannot be among the best nprobe. The others are rescored exactly.
    pub fn probe(&self, centroids: &[f32], q: &[f32], nprobe: usize) -> Vec<Hit> {
        let n = self.w.len();
        let mut approx = vec![0f32; n];
        // SAFETY: `new` returned Some only with AVX-512F present; shapes are the index's.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::dot_half_rows(q, &self.data, self.stride, &mut approx)
        };
        let qn = crate::distance::norm(q) * (1.0 + 1e-5);
        let mut lower = TopK::new(Metric::Ip, nprobe);
        for (c, (&s, &w)) in approx.iter().zip(&self.w).enumerate() {
            lower.push(Hit { row: c as u32, score: s - qn * w });
        }
        let t = lower.threshold().unwrap_or(f32::NEG_INFINITY);
        let mut top = TopK::new(Metric::Ip, nprobe);
        for (c, (&s, &w)) in approx.iter().zip(&self.w).enumerate() {
            if s + qn * w >= t {
                top.push(Hit { row: c as u32, score: dot(q, &centroids[c * self.dim..(c + 1) * self.dim]) });
            }
        }
        top.into_sorted()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// f32 → f16 (round to nearest even) into `h` (`stride` values, zero padded), and the
    /// f16 values back in f32 into `back`.
    ///
    /// # Safety
    /// AVX-512F present; `h.len() == back.len()`, a multiple of 16, `>= c.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn to_half(c: &[f32], h: &mut [u16], back: &mut [f32]) {
        let mut padded = vec![0f32; h.len()];
        padded[..c.len()].copy_from_slice(c);
        for i in (0..h.len()).step_by(16) {
            // SAFETY: i + 16 <= len for all three buffers.
            unsafe {
                let v = _mm512_loadu_ps(padded.as_ptr().add(i));
                let half = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                _mm256_storeu_si256(h.as_mut_ptr().add(i) as *mut __m256i, half);
                _mm512_storeu_ps(back.as_mut_ptr().add(i), _mm512_cvtph_ps(half));
            }
        }
    }

    /// `out[r] = q · f32(h row r)` over zero-padded rows of `stride` halves; 4 rows share
    /// each load of `q` (its tail lanes are masked to zero).
    ///
    /// # Safety
    /// AVX-512F present; `h.len() == out.len() * stride`, `stride` a multiple of 16 and
    /// `>= q.len() > stride - 16`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_half_rows(q: &[f32], h: &[u16], stride: usize, out: &mut [f32]) {
        let (d, n) = (q.len(), out.len());
        let steps = stride / 16;
        let load_q = |s: usize| {
            let rem = d - s * 16;
            let mask: __mmask16 = if rem >= 16 { 0xffff } else { ((1u32 << rem) - 1) as u16 };
            // SAFETY: the mask keeps the read within q.
            unsafe { _mm512_maskz_loadu_ps(mask, q.as_ptr().add(s * 16)) }
        };
        let row = |r: usize, s: usize| {
            // SAFETY: r < n and s < steps keep the 16 halves within h.
            unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(h.as_ptr().add(r * stride + s * 16) as *const __m256i)) }
        };
        let mut r = 0;
        while r + 4 <= n {
            let mut acc = [[_mm512_setzero_ps(); 2]; 4];
            for s in 0..steps {
                let qv = load_q(s);
                for (j, a) in acc.iter_mut().enumerate() {
                    a[s & 1] = _mm512_fmadd_ps(qv, row(r + j, s), a[s & 1]);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                out[r + j] = _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1]));
            }
            r += 4;
        }
        while r < n {
            let mut acc = [_mm512_setzero_ps(); 2];
            for s in 0..steps {
                acc[s & 1] = _mm512_fmadd_ps(load_q(s), row(r, s), acc[s & 1]);
            }
            out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
            r += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{clustered, queries_like};

    /// The bounded f16 probe equals the exact f32 probe, hits and scores, on odd
    /// dimensions, including ties and nprobe = nlist.
    #[test]
    fn half_probe_equals_exact_probe() {
        for dim in [1usize, 3, 17, 383, 384] {
            for nlist in [1usize, 5, 131, 300] {
                let mut c = clustered(nlist, dim, 7, dim as u64);
                c.chunks_exact_mut(dim).for_each(|r| {
                    crate::distance::normalize(r);
                });
                if nlist > 3 {
                    // Two equal centroids: the tie goes to the lower list.
                    let (a, b) = c.split_at_mut(3 * dim);
                    b[..dim].copy_from_slice(&a[dim..2 * dim]);
                }
                let Some(h) = HalfCentroids::new(&c, dim) else { return };
                for q in queries_like(8, dim, 7, dim as u64).chunks_exact(dim) {
                    for nprobe in [1, 4, 16, nlist] {
                        let nprobe = nprobe.min(nlist);
                        let mut want = TopK::new(Metric::Ip, nprobe);
                        for (i, r) in c.chunks_exact(dim).enumerate() {
                            want.push(Hit { row: i as u32, score: dot(q, r) });
                        }
                        assert_eq!(
                            h.probe(&c, q, nprobe),
                            want.into_sorted(),
                            "dim {dim} nlist {nlist} nprobe {nprobe}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_range_values_keep_f32() {
        assert_eq!(HalfCentroids::new(&[1.0, 70_000.0], 2), None);
    }
}

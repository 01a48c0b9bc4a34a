//! Distance kernels with runtime CPU dispatch.
//!
//! Each kernel exists as a portable version (eight independent accumulators, which the
//! compiler vectorises for the baseline target), on x86-64 as explicit AVX2+FMA and
//! AVX-512F versions chosen once at run time (so no `-C target-cpu=native` build is
//! needed), and on aarch64 as NEON versions (NEON is part of the aarch64 baseline, the
//! run-time check is a formality). Every variant is tested against a naive reference on
//! odd dimensions; the NEON path is compiled and tested only on aarch64 hosts.
//!
//! These kernels serve one query against one row (single-query scans, IVF list scans,
//! rescoring). Many queries against many rows go through GEMM instead (see [`crate::flat::search_gemm`]).

use std::sync::OnceLock;

type Kernel = unsafe fn(&[f32], &[f32]) -> f32;

struct Kernels {
    dot: Kernel,
    l2: Kernel,
    name: &'static str,
}

fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernels { dot: x86::dot_avx512, l2: x86::l2_avx512, name: "avx512f" };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Kernels { dot: x86::dot_avx2, l2: x86::l2_avx2, name: "avx2+fma" };
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Kernels { dot: neon::dot_neon, l2: neon::l2_neon, name: "neon" };
            }
        }
        Kernels { dot: portable_dot_unsafe, l2: portable_l2_unsafe, name: "portable" }
    })
}

/// Name of the kernel set chosen for this CPU (for logs and benchmarks).
pub fn kernel_name() -> &'static str {
    kernels().name
}

/// Inner product of two equal-length vectors.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    // SAFETY: the chosen kernel's CPU features were detected at run time, and both
    // slices have the same length (checked above), which is all the kernels read.
    unsafe { (kernels().dot)(a, b) }
}

/// Squared Euclidean distance of two equal-length vectors.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors must have the same length");
    // SAFETY: as in `dot`.
    unsafe { (kernels().l2)(a, b) }
}

/// Euclidean norm.
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// Scales `v` to unit length in place and returns its former norm; a zero vector stays
/// zero (its cosine similarity to anything is then 0, as in [`crate::flat::score`]).
pub fn normalize(v: &mut [f32]) -> f32 {
    let n = norm(v);
    if n > 0.0 && n.is_finite() {
        let inv = 1.0 / n;
        v.iter_mut().for_each(|x| *x *= inv);
    }
    n
}

/// Portable inner product with eight accumulators.
pub fn portable_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        let (x, y) = (&a[i * 8..i * 8 + 8], &b[i * 8..i * 8 + 8]);
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..a.len() {
        tail += a[i] * b[i];
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

/// Portable squared L2 with eight accumulators.
pub fn portable_l2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        let (x, y) = (&a[i * 8..i * 8 + 8], &b[i * 8..i * 8 + 8]);
        for j in 0..8 {
            let d = x[j] - y[j];
            acc[j] += d * d;
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..a.len() {
        let d = a[i] - b[i];
        tail += d * d;
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

unsafe fn portable_dot_unsafe(a: &[f32], b: &[f32]) -> f32 {
    portable_dot(a, b)
}

unsafe fn portable_l2_unsafe(a: &[f32], b: &[f32]) -> f32 {
    portable_l2(a, b)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n resp. i + 8 <= n keeps every read in bounds.
        while i + 32 <= n {
            unsafe {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
                acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)), acc2);
                acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)), acc3);
            }
            i += 32;
        }
        while i + 8 <= n {
            unsafe {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            }
            i += 8;
        }
        let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        let mut sum = hsum256(acc);
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            unsafe {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
            }
            i += 16;
        }
        while i + 8 <= n {
            unsafe {
                let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                acc0 = _mm256_fmadd_ps(d, d, acc0);
            }
            i += 8;
        }
        let mut sum = hsum256(_mm256_add_ps(acc0, acc1));
        while i < n {
            let d = a[i] - b[i];
            sum += d * d;
            i += 1;
        }
        sum
    }

    #[target_feature(enable = "avx2")]
    fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU must support AVX-512F; `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut acc2 = _mm512_setzero_ps();
        let mut acc3 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 64 <= n {
            unsafe {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), acc1);
                acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 32)), _mm512_loadu_ps(pb.add(i + 32)), acc2);
                acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 48)), _mm512_loadu_ps(pb.add(i + 48)), acc3);
            }
            i += 64;
        }
        while i + 16 <= n {
            unsafe {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            }
            i += 16;
        }
        if i < n {
            // Masked tail: lanes beyond n read nothing.
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            unsafe {
                let x = _mm512_maskz_loadu_ps(mask, pa.add(i));
                let y = _mm512_maskz_loadu_ps(mask, pb.add(i));
                acc1 = _mm512_fmadd_ps(x, y, acc1);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)))
    }

    /// # Safety
    /// The CPU must support AVX-512F; `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            unsafe {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                let d1 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)));
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                acc1 = _mm512_fmadd_ps(d1, d1, acc1);
            }
            i += 32;
        }
        while i + 16 <= n {
            unsafe {
                let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                acc0 = _mm512_fmadd_ps(d, d, acc0);
            }
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            unsafe {
                let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, pa.add(i)), _mm512_maskz_loadu_ps(mask, pb.add(i)));
                acc1 = _mm512_fmadd_ps(d, d, acc1);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    /// # Safety
    /// The CPU must support NEON (every aarch64 CPU does); `a.len() == b.len()`.
    #[target_feature(enable = "neon")]
    pub unsafe fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = vdupq_n_f32(0.0);
        let mut acc1 = vdupq_n_f32(0.0);
        let mut acc2 = vdupq_n_f32(0.0);
        let mut acc3 = vdupq_n_f32(0.0);
        let mut i = 0;
        // SAFETY (all loads): i + 16 <= n resp. i + 4 <= n keeps every read in bounds.
        while i + 16 <= n {
            unsafe {
                acc0 = vfmaq_f32(acc0, vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
                acc1 = vfmaq_f32(acc1, vld1q_f32(pa.add(i + 4)), vld1q_f32(pb.add(i + 4)));
                acc2 = vfmaq_f32(acc2, vld1q_f32(pa.add(i + 8)), vld1q_f32(pb.add(i + 8)));
                acc3 = vfmaq_f32(acc3, vld1q_f32(pa.add(i + 12)), vld1q_f32(pb.add(i + 12)));
            }
            i += 16;
        }
        while i + 4 <= n {
            unsafe {
                acc0 = vfmaq_f32(acc0, vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
            }
            i += 4;
        }
        let mut sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    /// # Safety
    /// The CPU must support NEON (every aarch64 CPU does); `a.len() == b.len()`.
    #[target_feature(enable = "neon")]
    pub unsafe fn l2_neon(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = vdupq_n_f32(0.0);
        let mut acc1 = vdupq_n_f32(0.0);
        let mut i = 0;
        while i + 8 <= n {
            unsafe {
                let d0 = vsubq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
                let d1 = vsubq_f32(vld1q_f32(pa.add(i + 4)), vld1q_f32(pb.add(i + 4)));
                acc0 = vfmaq_f32(acc0, d0, d0);
                acc1 = vfmaq_f32(acc1, d1, d1);
            }
            i += 8;
        }
        while i + 4 <= n {
            unsafe {
                let d = vsubq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
                acc0 = vfmaq_f32(acc0, d, d);
            }
            i += 4;
        }
        let mut sum = vaddvq_f32(vaddq_f32(acc0, acc1));
        while i < n {
            let d = a[i] - b[i];
            sum += d * d;
            i += 1;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }
    fn naive_l2(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum()
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        (got as f64 - want).abs() <= 1e-4 * scale.max(1.0)
    }

    fn check(name: &str, dot_k: Kernel, l2_k: Kernel) {
        let mut rng = StdRng::seed_from_u64(7);
        for dim in [1usize, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 129, 384, 385, 1000] {
            for _ in 0..5 {
                let a: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                let b: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                // SAFETY: only kernels whose features are present are passed in.
                let (d, l) = unsafe { (dot_k(&a, &b), l2_k(&a, &b)) };
                assert!(close(d, naive_dot(&a, &b), dim as f64), "{name} dot dim {dim}: {d} vs {}", naive_dot(&a, &b));
                assert!(close(l, naive_l2(&a, &b), dim as f64), "{name} l2 dim {dim}: {l} vs {}", naive_l2(&a, &b));
            }
        }
    }

    #[test]
    fn portable_matches_reference() {
        check("portable", portable_dot_unsafe, portable_l2_unsafe);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_kernels_match_reference() {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            check("avx2", x86::dot_avx2, x86::l2_avx2);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            check("avx512", x86::dot_avx512, x86::l2_avx512);
        }
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_kernels_match_reference() {
        check("neon", neon::dot_neon, neon::l2_neon);
    }

    #[test]
    fn normalize_unit_and_zero() {
        let mut v = vec![3.0f32, 4.0];
        assert_eq!(normalize(&mut v), 5.0);
        assert!((norm(&v) - 1.0).abs() < 1e-6);
        let mut z = vec![0.0f32; 3];
        assert_eq!(normalize(&mut z), 0.0);
        assert_eq!(z, vec![0.0; 3]);
    }

    #[test]
    fn dispatched_matches_reference() {
        let a: Vec<f32> = (0..129).map(|i| i as f32 * 0.01).collect();
        let b: Vec<f32> = (0..129).map(|i| 1.0 - i as f32 * 0.02).collect();
        assert!(close(dot(&a, &b), naive_dot(&a, &b), 129.0));
        assert!(close(l2_sq(&a, &b), naive_l2(&a, &b), 129.0));
        assert!(!kernel_name().is_empty());
    }
}

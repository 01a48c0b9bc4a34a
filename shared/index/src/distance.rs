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
/// One query against consecutive rows: `out[r] = kernel(q, rows[r·d..(r+1)·d])`.
type RowsKernel = unsafe fn(&[f32], &[f32], &mut [f32]);

struct Kernels {
    dot: Kernel,
    l2: Kernel,
    dot_rows: RowsKernel,
    l2_rows: RowsKernel,
    name: &'static str,
}

fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernels {
                    dot: x86::dot_avx512,
                    l2: x86::l2_avx512,
                    dot_rows: x86::dot_rows_avx512,
                    l2_rows: x86::l2_rows_avx512,
                    name: "avx512f",
                };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Kernels {
                    dot: x86::dot_avx2,
                    l2: x86::l2_avx2,
                    dot_rows: x86::dot_rows_avx2,
                    l2_rows: x86::l2_rows_avx2,
                    name: "avx2+fma",
                };
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Kernels {
                    dot: neon::dot_neon,
                    l2: neon::l2_neon,
                    dot_rows: neon::dot_rows_neon,
                    l2_rows: neon::l2_rows_neon,
                    name: "neon",
                };
            }
        }
        Kernels {
            dot: portable_dot_unsafe,
            l2: portable_l2_unsafe,
            dot_rows: portable_dot_rows,
            l2_rows: portable_l2_rows,
            name: "portable",
        }
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

/// Inner products of `q` with each row of `rows` (`out.len()` rows of `q.len()` floats,
/// contiguous): `out[r] = dot(q, row r)`, bit for bit, so a blocked scan and a per-row
/// rescoring agree exactly. The x86 kernels score several rows per pass over `q`, so each
/// query chunk is loaded once per block of rows and the rows' FMA chains overlap; this is
/// what probing a centroid matrix and scanning an inverted list need.
///
/// # Panics
/// If `rows.len() != out.len() * q.len()` or `q` is empty while rows are asked for.
#[inline]
pub fn dot_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    check_rows(q, rows, out);
    // SAFETY: the kernel's CPU features were detected at run time; the shapes were checked.
    unsafe { (kernels().dot_rows)(q, rows, out) }
}

/// Squared L2 distances of `q` to each row of `rows`: `out[r] = l2_sq(q, row r)` bit for
/// bit (see [`dot_rows`]).
///
/// # Panics
/// As [`dot_rows`].
#[inline]
pub fn l2_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    check_rows(q, rows, out);
    // SAFETY: as in `dot_rows`.
    unsafe { (kernels().l2_rows)(q, rows, out) }
}

#[inline]
fn check_rows(q: &[f32], rows: &[f32], out: &[f32]) {
    assert!(
        rows.len() == out.len() * q.len() && (!q.is_empty() || out.is_empty()),
        "{} floats are not {} rows of {}",
        rows.len(),
        out.len(),
        q.len()
    );
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

/// Row by row with the portable kernel (the compiler is free to interleave the rows).
unsafe fn portable_dot_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = portable_dot(q, r);
    }
}

unsafe fn portable_l2_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = portable_l2(q, r);
    }
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

    /// `R` rows against `q` in one pass. Each row is accumulated exactly as [`dot_avx2`]
    /// accumulates one (same lanes, same order, same reduction and scalar tail), so every
    /// result equals it bit for bit; sharing the loads of `q` and interleaving the rows'
    /// FMA chains is the whole gain. R = 2 keeps the 8 accumulators and 4 query vectors
    /// within the 16 ymm registers.
    ///
    /// # Safety
    /// AVX2 and FMA present; `q` and every `rows[r]` readable for `n` floats.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dot_block_avx2<const R: usize>(q: *const f32, rows: [*const f32; R], n: usize) -> [f32; R] {
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n resp. i + 8 <= n resp. i < n.
        unsafe {
            while i + 32 <= n {
                let qv = [
                    _mm256_loadu_ps(q.add(i)),
                    _mm256_loadu_ps(q.add(i + 8)),
                    _mm256_loadu_ps(q.add(i + 16)),
                    _mm256_loadu_ps(q.add(i + 24)),
                ];
                for r in 0..R {
                    for j in 0..4 {
                        acc[r][j] = _mm256_fmadd_ps(qv[j], _mm256_loadu_ps(rows[r].add(i + 8 * j)), acc[r][j]);
                    }
                }
                i += 32;
            }
            while i + 8 <= n {
                let qv = _mm256_loadu_ps(q.add(i));
                for r in 0..R {
                    acc[r][0] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[r].add(i)), acc[r][0]);
                }
                i += 8;
            }
            let mut out = [0f32; R];
            for r in 0..R {
                let a = &acc[r];
                out[r] = hsum256(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
                for t in i..n {
                    out[r] += *q.add(t) * *rows[r].add(t);
                }
            }
            out
        }
    }

    /// # Safety
    /// AVX2 and FMA present; `rows.len() == out.len() * q.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_rows_avx2(q: &[f32], rows: &[f32], out: &mut [f32]) {
        let (d, n) = (q.len(), out.len());
        let (pq, pr) = (q.as_ptr(), rows.as_ptr());
        let mut r = 0;
        // SAFETY: row r + 1 < n ends within `rows` (checked shape).
        unsafe {
            while r + 2 <= n {
                let p = pr.add(r * d);
                let s = dot_block_avx2::<2>(pq, [p, p.add(d)], d);
                out[r..r + 2].copy_from_slice(&s);
                r += 2;
            }
            if r < n {
                out[r] = dot_block_avx2::<1>(pq, [pr.add(r * d)], d)[0];
            }
        }
    }

    /// Like [`dot_block_avx2`], for [`l2_avx2`] (2 accumulators per row, so 4 rows fit).
    ///
    /// # Safety
    /// As [`dot_block_avx2`].
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn l2_block_avx2<const R: usize>(q: *const f32, rows: [*const f32; R], n: usize) -> [f32; R] {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut i = 0;
        // SAFETY (all loads): i + 16 <= n resp. i + 8 <= n resp. i < n.
        unsafe {
            while i + 16 <= n {
                let (q0, q1) = (_mm256_loadu_ps(q.add(i)), _mm256_loadu_ps(q.add(i + 8)));
                for r in 0..R {
                    let d0 = _mm256_sub_ps(q0, _mm256_loadu_ps(rows[r].add(i)));
                    let d1 = _mm256_sub_ps(q1, _mm256_loadu_ps(rows[r].add(i + 8)));
                    acc[r][0] = _mm256_fmadd_ps(d0, d0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(d1, d1, acc[r][1]);
                }
                i += 16;
            }
            while i + 8 <= n {
                let q0 = _mm256_loadu_ps(q.add(i));
                for r in 0..R {
                    let d = _mm256_sub_ps(q0, _mm256_loadu_ps(rows[r].add(i)));
                    acc[r][0] = _mm256_fmadd_ps(d, d, acc[r][0]);
                }
                i += 8;
            }
            let mut out = [0f32; R];
            for r in 0..R {
                out[r] = hsum256(_mm256_add_ps(acc[r][0], acc[r][1]));
                for t in i..n {
                    let d = *q.add(t) - *rows[r].add(t);
                    out[r] += d * d;
                }
            }
            out
        }
    }

    /// # Safety
    /// AVX2 and FMA present; `rows.len() == out.len() * q.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_rows_avx2(q: &[f32], rows: &[f32], out: &mut [f32]) {
        let (d, n) = (q.len(), out.len());
        let (pq, pr) = (q.as_ptr(), rows.as_ptr());
        let mut r = 0;
        // SAFETY: row r + 3 < n ends within `rows` (checked shape).
        unsafe {
            while r + 4 <= n {
                let p = pr.add(r * d);
                let s = l2_block_avx2::<4>(pq, [p, p.add(d), p.add(2 * d), p.add(3 * d)], d);
                out[r..r + 4].copy_from_slice(&s);
                r += 4;
            }
            while r < n {
                out[r] = l2_block_avx2::<1>(pq, [pr.add(r * d)], d)[0];
                r += 1;
            }
        }
    }

    /// `R` rows against `q` in one pass, each accumulated exactly as [`dot_avx512`] does
    /// (same lanes, order, masked tail and reduction): equal results bit for bit, with the
    /// query loaded once per block and 4·R independent FMA chains in flight. R = 4 uses
    /// 16 accumulators and 4 query vectors of the 32 zmm registers.
    ///
    /// # Safety
    /// AVX-512F present; `q` and every `rows[r]` readable for `n` floats.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn dot_block_avx512<const R: usize>(q: *const f32, rows: [*const f32; R], n: usize) -> [f32; R] {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let mut i = 0;
        // SAFETY (all loads): i + 64 <= n resp. i + 16 <= n; the tail is masked to n.
        unsafe {
            while i + 64 <= n {
                let qv = [
                    _mm512_loadu_ps(q.add(i)),
                    _mm512_loadu_ps(q.add(i + 16)),
                    _mm512_loadu_ps(q.add(i + 32)),
                    _mm512_loadu_ps(q.add(i + 48)),
                ];
                for r in 0..R {
                    for j in 0..4 {
                        acc[r][j] = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(rows[r].add(i + 16 * j)), acc[r][j]);
                    }
                }
                i += 64;
            }
            while i + 16 <= n {
                let qv = _mm512_loadu_ps(q.add(i));
                for r in 0..R {
                    acc[r][0] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(rows[r].add(i)), acc[r][0]);
                }
                i += 16;
            }
            if i < n {
                let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
                let qv = _mm512_maskz_loadu_ps(mask, q.add(i));
                for r in 0..R {
                    acc[r][1] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(mask, rows[r].add(i)), acc[r][1]);
                }
            }
        }
        let mut out = [0f32; R];
        for r in 0..R {
            let a = &acc[r];
            out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
        }
        out
    }

    /// # Safety
    /// AVX-512F present; `rows.len() == out.len() * q.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_rows_avx512(q: &[f32], rows: &[f32], out: &mut [f32]) {
        let (d, n) = (q.len(), out.len());
        let (pq, pr) = (q.as_ptr(), rows.as_ptr());
        let mut r = 0;
        // SAFETY: row r + 3 < n ends within `rows` (checked shape).
        unsafe {
            while r + 4 <= n {
                let p = pr.add(r * d);
                let s = dot_block_avx512::<4>(pq, [p, p.add(d), p.add(2 * d), p.add(3 * d)], d);
                out[r..r + 4].copy_from_slice(&s);
                r += 4;
            }
            while r < n {
                out[r] = dot_block_avx512::<1>(pq, [pr.add(r * d)], d)[0];
                r += 1;
            }
        }
    }

    /// Like [`dot_block_avx512`], for [`l2_avx512`] (2 accumulators per row).
    ///
    /// # Safety
    /// As [`dot_block_avx512`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn l2_block_avx512<const R: usize>(q: *const f32, rows: [*const f32; R], n: usize) -> [f32; R] {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n resp. i + 16 <= n; the tail is masked to n.
        unsafe {
            while i + 32 <= n {
                let (q0, q1) = (_mm512_loadu_ps(q.add(i)), _mm512_loadu_ps(q.add(i + 16)));
                for r in 0..R {
                    let d0 = _mm512_sub_ps(q0, _mm512_loadu_ps(rows[r].add(i)));
                    let d1 = _mm512_sub_ps(q1, _mm512_loadu_ps(rows[r].add(i + 16)));
                    acc[r][0] = _mm512_fmadd_ps(d0, d0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(d1, d1, acc[r][1]);
                }
                i += 32;
            }
            while i + 16 <= n {
                let q0 = _mm512_loadu_ps(q.add(i));
                for r in 0..R {
                    let d = _mm512_sub_ps(q0, _mm512_loadu_ps(rows[r].add(i)));
                    acc[r][0] = _mm512_fmadd_ps(d, d, acc[r][0]);
                }
                i += 16;
            }
            if i < n {
                let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
                let q0 = _mm512_maskz_loadu_ps(mask, q.add(i));
                for r in 0..R {
                    let d = _mm512_sub_ps(q0, _mm512_maskz_loadu_ps(mask, rows[r].add(i)));
                    acc[r][1] = _mm512_fmadd_ps(d, d, acc[r][1]);
                }
            }
        }
        let mut out = [0f32; R];
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
        }
        out
    }

    /// # Safety
    /// AVX-512F present; `rows.len() == out.len() * q.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn l2_rows_avx512(q: &[f32], rows: &[f32], out: &mut [f32]) {
        let (d, n) = (q.len(), out.len());
        let (pq, pr) = (q.as_ptr(), rows.as_ptr());
        let mut r = 0;
        // SAFETY: row r + 3 < n ends within `rows` (checked shape).
        unsafe {
            while r + 4 <= n {
                let p = pr.add(r * d);
                let s = l2_block_avx512::<4>(pq, [p, p.add(d), p.add(2 * d), p.add(3 * d)], d);
                out[r..r + 4].copy_from_slice(&s);
                r += 4;
            }
            while r < n {
                out[r] = l2_block_avx512::<1>(pq, [pr.add(r * d)], d)[0];
                r += 1;
            }
        }
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

    /// Row by row with [`dot_neon`] (not blocked yet: this could not be measured on an
    /// aarch64 host), so results equal it bit for bit.
    ///
    /// # Safety
    /// NEON present; `rows.len() == out.len() * q.len()`.
    #[target_feature(enable = "neon")]
    pub unsafe fn dot_rows_neon(q: &[f32], rows: &[f32], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            // SAFETY: NEON present, equal lengths.
            *o = unsafe { dot_neon(q, r) };
        }
    }

    /// Row by row with [`l2_neon`], as [`dot_rows_neon`].
    ///
    /// # Safety
    /// NEON present; `rows.len() == out.len() * q.len()`.
    #[target_feature(enable = "neon")]
    pub unsafe fn l2_rows_neon(q: &[f32], rows: &[f32], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            // SAFETY: NEON present, equal lengths.
            *o = unsafe { l2_neon(q, r) };
        }
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

    /// A rows kernel against its per-row kernel (bit for bit: scans and rescoring must
    /// agree) and against the f64 reference, on odd dimensions and every row-count
    /// remainder of the blocking.
    fn check_rows(name: &str, rows_k: RowsKernel, one_k: Kernel, naive: fn(&[f32], &[f32]) -> f64) {
        let mut rng = StdRng::seed_from_u64(11);
        for dim in [1usize, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 383, 384, 385] {
            for n in [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13] {
                let q: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                let rows: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                let mut out = vec![f32::NAN; n];
                // SAFETY: only kernels whose features are present are passed in; shapes match.
                unsafe { rows_k(&q, &rows, &mut out) };
                for (r, row) in rows.chunks_exact(dim).enumerate() {
                    // SAFETY: as above.
                    let one = unsafe { one_k(&q, row) };
                    assert_eq!(out[r].to_bits(), one.to_bits(), "{name} dim {dim} n {n} row {r}: {} vs {one}", out[r]);
                    assert!(close(out[r], naive(&q, row), dim as f64), "{name} dim {dim} row {r}");
                }
            }
        }
    }

    #[test]
    fn rows_kernels_equal_per_row_kernels() {
        check_rows("portable dot", portable_dot_rows, portable_dot_unsafe, naive_dot);
        check_rows("portable l2", portable_l2_rows, portable_l2_unsafe, naive_l2);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                check_rows("avx2 dot", x86::dot_rows_avx2, x86::dot_avx2, naive_dot);
                check_rows("avx2 l2", x86::l2_rows_avx2, x86::l2_avx2, naive_l2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                check_rows("avx512 dot", x86::dot_rows_avx512, x86::dot_avx512, naive_dot);
                check_rows("avx512 l2", x86::l2_rows_avx512, x86::l2_avx512, naive_l2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            check_rows("neon dot", neon::dot_rows_neon, neon::dot_neon, naive_dot);
            check_rows("neon l2", neon::l2_rows_neon, neon::l2_neon, naive_l2);
        }
        // The dispatched entry points, and their shape check.
        let q = [0.5f32, -1.0, 2.0];
        let rows = [1.0f32, 2.0, 3.0, -1.0, 0.0, 0.25];
        let mut out = [0f32; 2];
        dot_rows(&q, &rows, &mut out);
        assert_eq!(out, [dot(&q, &rows[..3]), dot(&q, &rows[3..])]);
        l2_rows(&q, &rows, &mut out);
        assert_eq!(out, [l2_sq(&q, &rows[..3]), l2_sq(&q, &rows[3..])]);
        assert!(std::panic::catch_unwind(|| dot_rows(&q, &rows[..5], &mut [0f32; 2])).is_err());
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

//! How index arrays sit in memory for one-query scans, which hop between short
//! contiguous runs of rows (inverted lists, graph neighbours) spread over tens of MB.
//!
//! Two things keep such a scan waiting on memory rather than streaming (measured on the
//! 2 vCPU Xeon, one thread, 50-row lists of 1.5 KB rows at random places in 77 MB; see
//! docs/benchmarks.md):
//! - **TLB misses.** With 4 KiB pages every list is ~19 pages, each a page walk. Arrays
//!   from [`scan_vec`] ask for transparent huge pages (2 MiB), which alone took a 32-list
//!   scan from ~10–14 to ~17 GB/s.
//! - **Prefetcher start-up.** The hardware prefetchers follow a stream only within a
//!   page and need a few misses to start on each new list. Requesting every line of the
//!   rows a few steps ahead, and the next list's first rows, with [`prefetch`] took it
//!   to ~18–23 GB/s (both together 1.6–2× the plain scan).
//!
//! Both are hints: neither can fault or change a result, and both do nothing where the
//! platform has no such hint.

/// Requests every cache line of `x` into the cache hierarchy (all levels). A no-op on
/// targets other than x86_64. The one software prefetch of the crate: list scans, graph
/// walks (codes, rows and neighbour lists) all go through it.
#[inline(always)]
pub(crate) fn prefetch<T>(x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        const LINE: usize = 64;
        let Some(last) = std::mem::size_of_val(x).checked_sub(1) else { return };
        // One request per line the slice touches, from the line holding its first byte
        // to the line holding its last.
        let start = x.as_ptr().cast::<i8>();
        let lines = ((start as usize % LINE) + last) / LINE + 1;
        let first = start.wrapping_sub(start as usize % LINE);
        for l in 0..lines {
            // SAFETY: a prefetch is a hint that never faults and reads nothing into the
            // program, whatever the address (here each is a line `x` overlaps); SSE is
            // part of the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(l * LINE)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Transparent huge pages are 2 MiB on x86_64 and (with 4 KiB base pages) on aarch64.
const HUGE_PAGE: usize = 2 << 20;

/// An empty vector with room for `len` values whose memory (the whole 2 MiB pages inside
/// it) is advised to be backed by transparent huge pages. Fill it before anything else
/// reads it: the advice applies to pages not yet touched, which is all of them in a
/// fresh large allocation (glibc maps allocations of 32 MiB and more freshly; smaller
/// ones may reuse touched heap pages, which then stay small until khugepaged merges
/// them). Arrays under 4 MiB are left alone: they hold at most one huge page.
pub(crate) fn scan_vec<T>(len: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(v.as_ptr().cast(), v.capacity() * std::mem::size_of::<T>());
    v
}

/// Advises the whole huge pages inside `len` bytes from `start`; returns whether the
/// kernel took the advice (false also where there is nothing to advise or no such call).
fn advise_huge_pages(start: *const u8, len: usize) -> bool {
    if len < 2 * HUGE_PAGE {
        return false;
    }
    let first = (start as usize).next_multiple_of(HUGE_PAGE);
    let end = (start as usize + len) / HUGE_PAGE * HUGE_PAGE;
    if end <= first {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the range lies inside one live allocation of `len` bytes; the advice
        // changes how the kernel backs those pages, never their contents or mapping.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_takes_any_slice() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        for (a, b) in [(0, 0), (0, 1), (3, 17), (1, 1000), (0, 1000)] {
            prefetch(&v[a..b]);
        }
        let bytes = [7u8; 100];
        prefetch(&bytes[1..99]);
        prefetch::<u32>(&[]);
        assert_eq!(v[999], 999.0);
    }

    #[test]
    fn small_vectors_are_not_advised() {
        let v: Vec<f32> = scan_vec(1000);
        assert!(v.is_empty() && v.capacity() >= 1000);
        assert!(!advise_huge_pages(v.as_ptr().cast(), v.capacity() * 4));
    }

    /// The advice reaches the kernel: the mapping holding a large scan array carries the
    /// `hg` (MADV_HUGEPAGE) flag. Whether huge pages are then used depends on the
    /// system's THP setting and free memory, so that is not asserted.
    #[cfg(target_os = "linux")]
    #[test]
    fn large_vectors_are_advised() {
        let len = 16 << 20; // 64 MiB of f32
        let mut v: Vec<f32> = scan_vec(len);
        v.resize(len, 1.0);
        let inside = (v.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut in_range = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                in_range = (a..b).contains(&inside);
            } else if in_range && let Some(f) = line.strip_prefix("VmFlags:") {
                flags = Some(f.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
            }
        }
        let flags = flags.expect("the mapping of the array is in smaps");
        assert!(flags.iter().any(|f| f == "hg"), "VmFlags {flags:?}");
        assert_eq!(v[len - 1], 1.0);
    }
}

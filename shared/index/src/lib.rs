//! Vector search kernels and indexes. Pure, synchronous code with no I/O: the query node
//! calls it on segment data, the index node to build indexes, both on bytes they move.
//!
//! - [`distance`]: L2², inner product and norms with runtime CPU dispatch (AVX-512F,
//!   AVX2+FMA, NEON, portable fallback), each kernel tested against a naive reference.
//! - [`topk`]: bounded best-k selection without sorting every candidate.
//! - [`flat`]: exact search over a row-major block of vectors with a row filter and
//!   optional range bounds; batches go through GEMM (faer), single queries through the
//!   SIMD kernels, large scans spread over the cores (rayon).
//! - [`kmeans`]: seeded, deterministic k-means on GEMM (coarse quantisers, PQ codebooks).
//! - [`index`]: FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW and AUTOINDEX behind one closed enum,
//!   [`VectorIndex`] (build, search with filter and range bounds, serialise).
//! - [`params`]: Milvus-style build/search parameters with range-checked parsing.
//! - [`mod@format`]: the versioned, checksummed index file format.
//! - [`filter`]: the one row-filter type, [`FixedBitSet`] (a set bit allows the row),
//!   and [`SearchContext`]: a search's filter and the stop flag that cancels it.
//! - `memory`: huge-page advice for large index arrays and the one software prefetch, for
//!   one-query scans that hop between inverted lists and graph walks.
//! - `sq8`: the 8-bit scalar quantiser (training, codes, scan kernels) that IVF_SQ8 and
//!   HNSW's walk codes share.
//!
//! Matrices: what crosses the crate boundary as a matrix (index build input, batched
//! queries, exact search's base, k-means samples and centroids) is an ndarray view, one
//! vector per row ([`matrix_view`] views a row-major buffer); inside, rows are slices of
//! the standard-layout buffer and GEMM products see the same memory as faer matrices.
//! Results stay `Vec<Vec<Hit>>`: a filtered or range search returns a different number of
//! hits per query, which no dense matrix holds without padding.
//!
//! Threads: parallel work runs on rayon's global pool (faer products inside a task run
//! sequentially, so one pool schedules everything). Results never depend on the thread
//! count.

#![warn(missing_docs)]
mod context;
pub mod distance;
mod error;
pub mod filter;
pub mod flat;
pub mod format;
mod gemm;
pub mod index;
pub mod kmeans;
mod memory;
pub mod params;
mod rng;
mod sq8;
#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;
pub mod topk;

pub use context::SearchContext;
pub use error::{IndexError, Result};
pub use filter::FixedBitSet;
/// The Milvus metric enum lives in fv-common (the proxy parses metric names without this
/// crate); re-exported so that `fv_index::Metric` and `fv_index::metric::Metric` keep working.
pub use fv_common::metric::{self, Metric};
pub use index::{VectorIndex, auto_index};
pub use params::{IndexParams, IndexType, SearchParams};
pub use topk::Hit;

/// The matrix crate of the API, for callers that build views.
pub use ndarray;

use std::borrow::Cow;

use ndarray::ArrayView2;

/// Views `data` as `rows × dim` vectors, one per row (row-major, as segments and requests
/// hold them); an [`IndexError::InvalidInput`] unless it holds whole `dim`-d vectors.
pub fn matrix_view(data: &[f32], dim: usize) -> Result<ArrayView2<'_, f32>> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(IndexError::InvalidInput(format!("{} floats do not hold whole {dim}-d vectors", data.len())));
    }
    Ok(ArrayView2::from_shape((data.len() / dim, dim), data).expect("whole vectors"))
}

/// The rows of `m` as one row-major slice: the view's own memory when it is in standard
/// layout (the usual case: no copy), else a row-major copy.
pub(crate) fn rows_of<'a>(m: ArrayView2<'a, f32>) -> Cow<'a, [f32]> {
    match m.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(m.iter().copied().collect()),
    }
}

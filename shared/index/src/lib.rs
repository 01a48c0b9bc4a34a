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
//! - [`filter`]: row filters (`&[bool]` or a Milvus-style exclusion bitset).
//! - `memory`: huge-page advice for large index arrays and software prefetch for
//!   one-query scans that hop between inverted lists.
//!
//! Threads: parallel work runs on rayon's global pool (faer products inside a task run
//! sequentially, so one pool schedules everything). Results never depend on the thread
//! count.

#![warn(missing_docs)]
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

pub use error::{IndexError, Result};
pub use filter::{Bitset, RowFilter};
/// The Milvus metric enum lives in fv-common (the proxy parses metric names without this
/// crate); re-exported so that `fv_index::Metric` and `fv_index::metric::Metric` keep working.
pub use fv_common::metric::{self, Metric};
pub use index::{VectorIndex, auto_index};
pub use params::{IndexParams, IndexType, SearchParams};
pub use topk::Hit;

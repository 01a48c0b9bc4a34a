//! Vector search kernels. Pure, synchronous code with no I/O: the query node calls it on
//! segment data, the index node (later) to build indexes.
//!
//! - [`distance`]: L2², inner product and norms with runtime CPU dispatch (AVX-512F,
//!   AVX2+FMA, portable fallback), each kernel tested against a naive reference.
//! - [`topk`]: bounded best-k selection without sorting every candidate.
//! - [`flat`]: exact search over a row-major block of vectors with a row filter and
//!   optional range bounds.

pub mod distance;
pub mod flat;
pub mod metric;
pub mod topk;

pub use metric::Metric;

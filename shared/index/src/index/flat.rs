//! FLAT as an index: no structure, the (COSINE: normalised) vectors themselves, searched
//! exactly by [`crate::flat`] (GEMM for batches). Kept as an index type so that a segment
//! always has one search entry point and one file format.

use crate::context::SearchContext;
use crate::error::{IndexError, Result};
use crate::flat;
use crate::format::{Meta, Reader, Writer};
use crate::metric::Metric;
use crate::params::Bounds;
use crate::topk::Hit;

/// The raw vectors, searched exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatIndex {
    pub(crate) meta: Meta,
    vectors: Vec<f32>,
}

impl FlatIndex {
    /// Wraps prepared (COSINE: normalised) vectors.
    pub(crate) fn build(meta: Meta, x: Vec<f32>) -> FlatIndex {
        FlatIndex { meta, vectors: x }
    }

    pub(crate) fn search(
        &self,
        queries: &[f32],
        k: usize,
        ctx: SearchContext<'_>,
        b: &Bounds,
    ) -> Result<Vec<Vec<Hit>>> {
        // COSINE data and queries are normalised: the inner product is the cosine.
        let metric = if self.meta.metric == Metric::L2 { Metric::L2 } else { Metric::Ip };
        let p = flat::SearchParams { metric, k, radius: b.radius, range_filter: b.range_filter };
        flat::search_rows(&self.vectors, self.meta.dim, queries, &p, ctx, None)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.vectors.len() * 4
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.f32s(&self.vectors);
    }

    pub(crate) fn read(meta: Meta, r: &mut Reader<'_>) -> Result<FlatIndex> {
        if meta.nlist != 0 || meta.m != 0 || meta.nbits != 0 {
            return Err(IndexError::corrupt("FLAT header carries IVF parameters"));
        }
        let vectors = r.f32s(meta.rows * meta.dim, "vectors")?;
        Ok(FlatIndex { meta, vectors })
    }
}

//! IVF_SQ8: inverted lists of 8-bit codes of the *residuals* `x − centroid` (faiss'
//! default for IVF scalar quantisers), one code per dimension, with per-dimension min/max
//! over all residuals: `r̂_i = vmin_i + step_i·code_i`, `step_i = (vmax_i − vmin_i)/255`,
//! codes rounded to nearest (error at most step/2). Residuals span a much smaller range
//! than the vectors, so the codes are finer. The raw vectors are not kept: d + 4 bytes per
//! row (codes and row id).
//!
//! Scores (q already normalised for COSINE):
//! - L2: `‖q − c − r̂‖² = Σ (a_i − step_i·code_i)²` with `a = q − c − vmin` per list;
//! - IP/COSINE: `q·c + q·vmin + Σ (q_i·step_i)·code_i`, where `q·c` is the coarse score.

use rayon::prelude::*;

use crate::context::{SearchContext, Stop};
use crate::error::{IndexError, Result};
use crate::filter::RowFilter;
use crate::format::{Meta, Reader, Writer};
use crate::memory::scan_vec;
use crate::metric::Metric;
use crate::params::{Bounds, IndexParams};
use crate::sq8::{self, Sq8Fit, Sq8Range};
use crate::topk::{Hit, TopK};

use super::ivf::{self, IvfLists, ListScan};

/// Inverted lists of scalar-quantised residuals.
#[derive(Debug, Clone, PartialEq)]
pub struct IvfSq8Index {
    pub(crate) meta: Meta,
    pub(crate) ivf: IvfLists,
    /// The quantiser of the residuals.
    range: Sq8Range,
    /// `rows × dim` codes in list order.
    codes: Vec<u8>,
}

impl IvfSq8Index {
    /// Builds from prepared (COSINE: normalised) vectors.
    pub(crate) fn build(meta: Meta, x: &[f32], p: &IndexParams, stop: Stop<'_>) -> Result<IvfSq8Index> {
        let dim = meta.dim;
        let (ivf, labels) = IvfLists::build(x, dim, meta.metric, p, stop)?;
        let residual = |row: usize, out: &mut [f32]| {
            let c = ivf.centroid(labels[row] as usize);
            for ((o, &v), &c) in out.iter_mut().zip(&x[row * dim..(row + 1) * dim]).zip(c) {
                *o = v - c;
            }
        };
        let mut fit = Sq8Fit::new(dim);
        let mut r = vec![0f32; dim];
        for row in 0..labels.len() {
            residual(row, &mut r);
            fit.add(&r);
        }
        let range = fit.finish();
        let mut codes = scan_vec(labels.len() * dim);
        codes.resize(labels.len() * dim, 0u8);
        codes.par_chunks_mut(dim).zip(ivf.ids.par_iter()).for_each_init(
            || vec![0f32; dim],
            |r, (code, &id)| {
                residual(id as usize, r);
                range.encode(r, code);
            },
        );
        let meta = Meta { nlist: ivf.nlist(), default_nprobe: meta.default_nprobe.min(ivf.nlist()), ..meta };
        Ok(IvfSq8Index { meta, ivf, range, codes })
    }

    pub(crate) fn search(
        &self,
        queries: &[f32],
        k: usize,
        nprobe: usize,
        ctx: SearchContext<'_>,
        b: &Bounds,
    ) -> Result<Vec<Vec<Hit>>> {
        ivf::search(&self.ivf, self, self.meta.metric, queries, k, nprobe, ctx, b)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.ivf.memory_bytes() + self.codes.len() + self.range.memory_bytes()
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        self.ivf.write(w);
        w.f32s(&self.range.vmin);
        w.f32s(&self.range.step);
        w.bytes(&self.codes);
    }

    pub(crate) fn read(meta: Meta, r: &mut Reader<'_>) -> Result<IvfSq8Index> {
        let ivf = IvfLists::read(r, meta.dim, meta.rows, meta.nlist, meta.metric)?;
        let vmin = r.f32s(meta.dim, "sq8 minimum")?;
        let step = r.f32s(meta.dim, "sq8 step")?;
        let codes = r.bytes(meta.rows * meta.dim, "sq8 codes")?;
        if meta.m != 0 || meta.nbits != 0 {
            return Err(IndexError::corrupt("IVF_SQ8 header carries PQ parameters"));
        }
        Ok(IvfSq8Index { meta, ivf, range: Sq8Range { vmin, step }, codes })
    }
}

/// Per query: `q·vmin` and `q∘step` (IP), or the buffer for `q − c − vmin` (L2).
pub(crate) struct Sq8Scratch {
    qv: f32,
    w: Vec<f32>,
}

impl ListScan for IvfSq8Index {
    type Scratch = Sq8Scratch;

    fn prepare(&self, q: &[f32]) -> Sq8Scratch {
        if self.meta.metric == Metric::L2 {
            Sq8Scratch { qv: 0.0, w: vec![0.0; self.meta.dim] }
        } else {
            let (qv, w) = self.range.ip_query(q);
            Sq8Scratch { qv, w }
        }
    }

    fn scan(
        &self,
        ivf: &IvfLists,
        s: &mut Sq8Scratch,
        q: &[f32],
        l: usize,
        coarse: f32,
        filter: RowFilter<'_>,
        bounds: &Bounds,
        top: &mut TopK,
    ) {
        let dim = self.meta.dim;
        let metric = self.meta.metric;
        let codes = &self.codes;
        if metric == Metric::L2 {
            let c = ivf.centroid(l);
            for t in 0..dim {
                s.w[t] = q[t] - c[t] - self.range.vmin[t];
            }
            let (a, step) = (&s.w, &self.range.step);
            ivf::scan_rows(ivf, l, filter, bounds, metric, top, |p| sq8::l2(a, step, &codes[p * dim..(p + 1) * dim]));
        } else {
            let base = coarse + s.qv;
            let w = &s.w;
            ivf::scan_rows(ivf, l, filter, bounds, metric, top, |p| base + sq8::dot(w, &codes[p * dim..(p + 1) * dim]));
        }
    }
}

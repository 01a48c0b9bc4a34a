//! IVF_PQ: inverted lists of product-quantised residuals `x − centroid` (faiss'
//! IndexIVFPQ with `by_residual`). The dimension is cut into `m` sub-vectors of
//! `dsub = dim/m` dimensions; each has its own codebook of `ksub = 2^nbits` centroids
//! trained by L2 k-means on (a sample of at most `max_points_per_centroid·ksub`)
//! residuals. A row is `m` codes (one byte each for nbits ≤ 8, two bytes little-endian
//! above) plus its id; raw vectors are not kept.
//!
//! Search uses asymmetric distance tables (the query is not quantised):
//! - L2, per probed list: `T[j][c] = ‖(q − centroid)_j − C_j[c]‖²`, score `Σ_j T[j][code_j]`;
//! - IP/COSINE, once per query: `T[j][c] = q_j·C_j[c]`, score `q·centroid + Σ_j T[j][code_j]`.
//!
//! Codebooks are also kept transposed (`dsub × ksub` per sub-quantiser) so that table
//! construction runs over contiguous centroids and vectorises.
//! Segments with fewer training rows than `ksub` train fewer codebook entries and repeat
//! the first one in the unused slots (never chosen: ties go to the smaller code).

use rayon::prelude::*;

use crate::context::{SearchContext, Stop};
use crate::error::{IndexError, Result};
use crate::filter::RowFilter;
use crate::format::{Meta, Reader, Writer};
use crate::kmeans::{self, KMeansInit, KMeansParams};
use crate::memory::scan_vec;
use crate::metric::Metric;
use crate::params::{Bounds, IndexParams};
use crate::rng::Rng;
use crate::topk::{Hit, TopK};

use super::ivf::{self, IvfLists, ListScan};

/// Inverted lists of product-quantised residuals.
#[derive(Debug, Clone, PartialEq)]
pub struct IvfPqIndex {
    pub(crate) meta: Meta,
    pub(crate) ivf: IvfLists,
    /// `m × ksub × dsub`.
    codebooks: Vec<f32>,
    /// `m × dsub × ksub` (derived).
    transposed: Vec<f32>,
    /// `rows × m × code_bytes`, list order.
    codes: Vec<u8>,
}

fn code_bytes(nbits: usize) -> usize {
    if nbits <= 8 { 1 } else { 2 }
}

impl IvfPqIndex {
    /// Builds from prepared (COSINE: normalised) vectors; `meta.m` divides `meta.dim`.
    pub(crate) fn build(meta: Meta, x: &[f32], p: &IndexParams, stop: Stop<'_>) -> Result<IvfPqIndex> {
        let (dim, m, nbits) = (meta.dim, meta.m, meta.nbits);
        let (dsub, ksub) = (dim / m, 1usize << nbits);
        let (ivf, labels) = IvfLists::build(x, dim, meta.metric, p, stop)?;
        let rows = labels.len();
        let mut residuals = vec![0f32; x.len()];
        residuals.par_chunks_mut(dim).enumerate().for_each(|(row, r)| {
            let c = ivf.centroid(labels[row] as usize);
            for ((o, &v), &c) in r.iter_mut().zip(&x[row * dim..(row + 1) * dim]).zip(c) {
                *o = v - c;
            }
        });
        // Training sample of residual rows.
        let cap = ksub.saturating_mul(p.max_points_per_centroid);
        let sample: Vec<usize> =
            if rows > cap { Rng::new(p.seed ^ 0x5051).sample_indices(rows, cap) } else { (0..rows).collect() };
        let sub = |j: usize, rows: &mut dyn Iterator<Item = usize>| -> Vec<f32> {
            let mut out = Vec::new();
            for r in rows {
                out.extend_from_slice(&residuals[r * dim + j * dsub..r * dim + (j + 1) * dsub]);
            }
            out
        };
        let books: Vec<Result<Vec<f32>>> = (0..m)
            .into_par_iter()
            .map(|j| {
                let data = sub(j, &mut sample.iter().copied());
                let k = ksub.min(sample.len());
                let km = kmeans::train_until(
                    &data,
                    dsub,
                    &KMeansParams {
                        k,
                        iterations: p.kmeans_iterations,
                        max_points_per_centroid: p.max_points_per_centroid,
                        seed: p.seed.wrapping_add(j as u64 + 1),
                        spherical: false,
                        init: KMeansInit::PlusPlus,
                    },
                    stop,
                )?;
                let mut book = km.into_rows();
                while book.len() < ksub * dsub {
                    let first: Vec<f32> = book[..dsub].to_vec();
                    book.extend_from_slice(&first);
                }
                Ok(book)
            })
            .collect();
        let mut codebooks = Vec::with_capacity(m * ksub * dsub);
        for b in books {
            codebooks.extend_from_slice(&b?);
        }
        // Codes per row (row order), then permuted into list order.
        let per_sub: Vec<Result<Vec<u32>>> = (0..m)
            .into_par_iter()
            .map(|j| {
                let data = sub(j, &mut (0..rows));
                Ok(kmeans::assign_rows(&data, dsub, &codebooks[j * ksub * dsub..(j + 1) * ksub * dsub], false)?.labels)
            })
            .collect();
        let per_sub: Vec<Vec<u32>> = per_sub.into_iter().collect::<Result<_>>()?;
        let cb = code_bytes(nbits);
        let mut codes = scan_vec(rows * m * cb);
        codes.resize(rows * m * cb, 0u8);
        for (pos, &id) in ivf.ids.iter().enumerate() {
            for (j, labels) in per_sub.iter().enumerate() {
                let c = labels[id as usize] as u16;
                let at = (pos * m + j) * cb;
                if cb == 1 {
                    codes[at] = c as u8;
                } else {
                    codes[at..at + 2].copy_from_slice(&c.to_le_bytes());
                }
            }
        }
        let meta = Meta { nlist: ivf.nlist(), default_nprobe: meta.default_nprobe.min(ivf.nlist()), ..meta };
        let transposed = transpose(&codebooks, m, ksub, dsub);
        Ok(IvfPqIndex { meta, ivf, codebooks, transposed, codes })
    }

    fn ksub(&self) -> usize {
        1 << self.meta.nbits
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
        self.ivf.memory_bytes() + self.codes.len() + self.codebooks.len() * 8
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        self.ivf.write(w);
        w.f32s(&self.codebooks);
        w.bytes(&self.codes);
    }

    pub(crate) fn read(meta: Meta, r: &mut Reader<'_>) -> Result<IvfPqIndex> {
        let (dim, m, nbits) = (meta.dim, meta.m, meta.nbits);
        if m == 0 || !dim.is_multiple_of(m) || !(1..=16).contains(&nbits) {
            return Err(IndexError::corrupt(format!("IVF_PQ m={m} nbits={nbits} invalid for dim {dim}")));
        }
        let (dsub, ksub) = (dim / m, 1usize << nbits);
        let ivf = IvfLists::read(r, dim, meta.rows, meta.nlist, meta.metric)?;
        let codebooks = r.f32s(m * ksub * dsub, "pq codebooks")?;
        let cb = code_bytes(nbits);
        let codes = r.bytes(meta.rows * m * cb, "pq codes")?;
        let bad = if cb == 1 {
            codes.iter().any(|&c| c as usize >= ksub)
        } else {
            codes.chunks_exact(2).any(|c| u16::from_le_bytes([c[0], c[1]]) as usize >= ksub)
        };
        if bad {
            return Err(IndexError::corrupt(format!("pq code out of range for nbits={nbits}")));
        }
        let transposed = transpose(&codebooks, m, ksub, dsub);
        Ok(IvfPqIndex { meta, ivf, codebooks, transposed, codes })
    }

    /// `T[j][c] = ‖r_j − C_j[c]‖²` (L2) or `q_j·C_j[c]` (IP), over the transposed books.
    fn table(&self, v: &[f32], l2: bool, table: &mut [f32]) {
        let (m, ksub) = (self.meta.m, self.ksub());
        let dsub = self.meta.dim / m;
        for j in 0..m {
            let t = &mut table[j * ksub..(j + 1) * ksub];
            t.iter_mut().for_each(|x| *x = 0.0);
            for d in 0..dsub {
                let qv = v[j * dsub + d];
                let col = &self.transposed[(j * dsub + d) * ksub..(j * dsub + d + 1) * ksub];
                if l2 {
                    for (t, &c) in t.iter_mut().zip(col) {
                        let e = qv - c;
                        *t += e * e;
                    }
                } else {
                    for (t, &c) in t.iter_mut().zip(col) {
                        *t += qv * c;
                    }
                }
            }
        }
    }
}

fn transpose(books: &[f32], m: usize, ksub: usize, dsub: usize) -> Vec<f32> {
    let mut t = vec![0f32; books.len()];
    for j in 0..m {
        for c in 0..ksub {
            for d in 0..dsub {
                t[(j * dsub + d) * ksub + c] = books[(j * ksub + c) * dsub + d];
            }
        }
    }
    t
}

/// Sum of table entries selected by one row's codes (four partial sums for ILP).
#[inline(always)]
fn adc(table: &[f32], ksub: usize, code: &[u8], wide: bool) -> f32 {
    let mut s = [0f32; 4];
    if wide {
        for (j, c) in code.chunks_exact(2).enumerate() {
            s[j & 3] += table[j * ksub + u16::from_le_bytes([c[0], c[1]]) as usize];
        }
    } else {
        for (j, &c) in code.iter().enumerate() {
            s[j & 3] += table[j * ksub + c as usize];
        }
    }
    (s[0] + s[1]) + (s[2] + s[3])
}

/// Per query: the distance table and, for L2, the residual buffer.
pub(crate) struct PqScratch {
    table: Vec<f32>,
    residual: Vec<f32>,
}

impl ListScan for IvfPqIndex {
    type Scratch = PqScratch;

    fn prepare(&self, q: &[f32]) -> PqScratch {
        let mut s = PqScratch { table: vec![0.0; self.meta.m * self.ksub()], residual: vec![0.0; self.meta.dim] };
        if self.meta.metric != Metric::L2 {
            self.table(q, false, &mut s.table);
        }
        s
    }

    fn scan(
        &self,
        ivf: &IvfLists,
        s: &mut PqScratch,
        q: &[f32],
        l: usize,
        coarse: f32,
        filter: RowFilter<'_>,
        bounds: &Bounds,
        top: &mut TopK,
    ) {
        let metric = self.meta.metric;
        let (m, ksub) = (self.meta.m, self.ksub());
        let wide = self.meta.nbits > 8;
        let stride = m * code_bytes(self.meta.nbits);
        let base = if metric == Metric::L2 {
            let c = ivf.centroid(l);
            for ((r, &qv), &cv) in s.residual.iter_mut().zip(q).zip(c) {
                *r = qv - cv;
            }
            let mut table = std::mem::take(&mut s.table);
            self.table(&s.residual, true, &mut table);
            s.table = table;
            0.0
        } else {
            coarse
        };
        let (table, codes) = (&s.table, &self.codes);
        ivf::scan_rows(ivf, l, filter, bounds, metric, top, |p| {
            base + adc(table, ksub, &codes[p * stride..(p + 1) * stride], wide)
        });
    }
}

//! Row filters: which rows of a segment a search may return. One bitset type runs from the
//! scalar expression to the index: [`FixedBitSet`], a **set bit allows the row** (it passes
//! the filter, is visible at the search's timestamp and not deleted). The query node ANDs
//! the expression's bitset with its visibility and delete bitsets a word at a time
//! (`intersect_with`) and hands the result to the search; every index tests the bit
//! *before* scoring a row, so an excluded row costs one bit test, and scans that walk rows
//! in order skip a whole word of 64 excluded rows at once.

pub use fv_common::bitset::{FixedBitSet, from_bools};

use crate::error::{IndexError, Result};

/// The rows one search may consider, as the indexes test them: every row (no bitset), or
/// the set bits of one bitset. Rows at or beyond the bitset's length are excluded;
/// [`RowFilter::check`] makes sure a search never asks about them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowFilter<'a>(Option<&'a FixedBitSet>);

impl<'a> RowFilter<'a> {
    /// Every row.
    pub const ALL: RowFilter<'static> = RowFilter(None);

    pub fn new(bits: Option<&'a FixedBitSet>) -> RowFilter<'a> {
        RowFilter(bits)
    }

    /// Whether every row is allowed without looking (no bitset).
    #[inline]
    pub fn is_all(&self) -> bool {
        self.0.is_none()
    }

    /// Whether `row` may be returned.
    #[inline(always)]
    pub fn allows(&self, row: usize) -> bool {
        self.0.is_none_or(|b| b.contains(row))
    }

    /// Checks that the filter covers `rows` rows.
    pub fn check(&self, rows: usize) -> Result<()> {
        match self.0 {
            Some(b) if b.len() < rows => Err(IndexError::input(format!("bitset has {} bits for {rows} rows", b.len()))),
            _ => Ok(()),
        }
    }

    /// Rows allowed among `0..rows`.
    pub fn count(&self, rows: usize) -> usize {
        self.0.map_or(rows, |b| b.count_ones(..rows.min(b.len())))
    }

    /// The allowed rows among `start..start + len` (`len <= 64`) as a word: bit `j` stands
    /// for row `start + j`. A zero word lets a scan skip all of them at once.
    #[inline]
    pub fn word(&self, start: usize, len: usize) -> u64 {
        debug_assert!(len <= 64);
        let keep = if len >= 64 { u64::MAX } else { (1u64 << len) - 1 };
        match self.0 {
            None => keep,
            Some(b) => bits_at(b.as_slice(), start) & keep,
        }
    }

    /// The allowed rows of `range` in ascending order, a word at a time.
    pub fn allowed_in(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = usize> + 'a {
        let this = *self;
        range.clone().step_by(64).flat_map(move |start| {
            let mut w = this.word(start, (range.end - start).min(64));
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let j = w.trailing_zeros() as usize;
                    w &= w - 1;
                    start + j
                })
            })
        })
    }
}

/// The 64 bits from bit `start` of `blocks` (bits past the end read as 0), whatever the
/// block width.
#[inline]
fn bits_at(blocks: &[usize], start: usize) -> u64 {
    const B: usize = usize::BITS as usize;
    let mut out = 0u64;
    let mut got = 0;
    while got < 64 {
        let pos = start + got;
        let Some(&block) = blocks.get(pos / B) else { break };
        let off = pos % B;
        let take = (B - off).min(64 - got);
        let part = (block >> off) as u64;
        let part = if take >= 64 { part } else { part & ((1u64 << take) - 1) };
        out |= part << got;
        got += take;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_bools_agree() {
        let allowed: Vec<bool> = (0..130).map(|i| i % 3 != 0).collect();
        let bits = from_bools(&allowed);
        assert_eq!(bits.len(), 130);
        assert_eq!(bits.count_ones(..), 86);
        let f = RowFilter::new(Some(&bits));
        for (i, a) in allowed.iter().enumerate() {
            assert_eq!(f.allows(i), *a);
            assert!(RowFilter::ALL.allows(i));
        }
        assert!(f.check(130).is_ok() && f.check(131).is_err() && RowFilter::ALL.check(1 << 40).is_ok());
        assert_eq!((f.count(130), f.count(64), RowFilter::ALL.count(7)), (86, 42, 7));
        assert!(!f.is_all() && RowFilter::ALL.is_all());
    }

    #[test]
    fn words_and_iteration_match_bit_tests() {
        let allowed: Vec<bool> = (0..300).map(|i| (i * 37) % 11 < 4 || (128..192).contains(&i)).collect();
        let mut bits = from_bools(&allowed);
        bits.remove_range(200..264); // a whole empty word
        let f = RowFilter::new(Some(&bits));
        for start in [0usize, 1, 63, 64, 65, 100, 200, 236, 290] {
            for len in [0usize, 1, 10, 64] {
                let len = len.min(300 - start);
                let w = f.word(start, len);
                for j in 0..64 {
                    assert_eq!(w >> j & 1 == 1, j < len && bits.contains(start + j), "start {start} len {len} bit {j}");
                }
            }
        }
        assert_eq!(f.word(200, 64), 0);
        assert_eq!(RowFilter::ALL.word(5, 3), 0b111);
        for range in [0..300, 3..250, 64..128, 70..71, 200..264, 5..5] {
            let want: Vec<usize> = range.clone().filter(|&r| bits.contains(r)).collect();
            assert_eq!(f.allowed_in(range.clone()).collect::<Vec<_>>(), want, "{range:?}");
            assert_eq!(RowFilter::ALL.allowed_in(range.clone()).collect::<Vec<_>>(), range.collect::<Vec<_>>());
        }
        // Past the last block every bit reads 0.
        assert_eq!(bits_at(bits.as_slice(), 1 << 20), 0);
        assert_eq!(bits_at(bits.as_slice(), 290) >> 10, 0);
    }
}

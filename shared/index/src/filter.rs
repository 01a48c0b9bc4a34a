//! Row filters: which rows of a segment a search may return. The query node builds one
//! from the scalar filter, deletes and MVCC visibility; every index checks it *before*
//! scoring a row, so excluded rows cost one bit test.

use crate::error::{IndexError, Result};

/// Rows a search may consider.
#[derive(Debug, Clone, Copy)]
pub enum RowFilter<'a> {
    /// One flag per row; `false` excludes the row.
    Allowed(&'a [bool]),
    /// A Milvus-style bitset over rows: a *set* bit excludes the row (filtered out,
    /// deleted or not visible). Bit `row % 64` of word `row / 64`.
    Excluded(&'a [u64]),
}

impl<'a> From<&'a [bool]> for RowFilter<'a> {
    fn from(a: &'a [bool]) -> Self {
        RowFilter::Allowed(a)
    }
}

impl<'a> From<&'a Bitset> for RowFilter<'a> {
    fn from(b: &'a Bitset) -> Self {
        RowFilter::Excluded(&b.words)
    }
}

impl RowFilter<'_> {
    /// Whether `row` may be returned. `row` must be below the checked row count.
    #[inline]
    pub fn allows(&self, row: usize) -> bool {
        match self {
            RowFilter::Allowed(a) => a[row],
            RowFilter::Excluded(w) => (w[row >> 6] >> (row & 63)) & 1 == 0,
        }
    }

    /// Checks that the filter covers `rows` rows.
    pub fn check(&self, rows: usize) -> Result<()> {
        match self {
            RowFilter::Allowed(a) if a.len() != rows => {
                Err(IndexError::input(format!("filter has {} flags for {rows} rows", a.len())))
            }
            RowFilter::Excluded(w) if w.len() * 64 < rows => {
                Err(IndexError::input(format!("bitset has {} bits for {rows} rows", w.len() * 64)))
            }
            _ => Ok(()),
        }
    }
}

/// An owned bitset of excluded rows (set bit = skip), usable as [`RowFilter::Excluded`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl Bitset {
    /// A bitset over `len` rows with no row excluded.
    pub fn new(len: usize) -> Bitset {
        Bitset { words: vec![0; len.div_ceil(64)], len }
    }

    /// Excludes the rows whose flag is `false`.
    pub fn from_allowed(allowed: &[bool]) -> Bitset {
        let mut b = Bitset::new(allowed.len());
        for (i, &a) in allowed.iter().enumerate() {
            if !a {
                b.exclude(i);
            }
        }
        b
    }

    /// Number of rows covered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitset covers no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Marks `row` as excluded; rows beyond `len` are ignored.
    pub fn exclude(&mut self, row: usize) {
        if row < self.len {
            self.words[row >> 6] |= 1 << (row & 63);
        }
    }

    /// Whether `row` is excluded (rows beyond `len` count as excluded).
    pub fn is_excluded(&self, row: usize) -> bool {
        row >= self.len || (self.words[row >> 6] >> (row & 63)) & 1 == 1
    }

    /// Number of excluded rows.
    pub fn count_excluded(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The backing words (bit `row % 64` of word `row / 64`).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// As a search filter.
    pub fn as_filter(&self) -> RowFilter<'_> {
        RowFilter::Excluded(&self.words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_and_bools_agree() {
        let allowed: Vec<bool> = (0..130).map(|i| i % 3 != 0).collect();
        let b = Bitset::from_allowed(&allowed);
        assert_eq!(b.len(), 130);
        assert_eq!(b.count_excluded(), 44);
        let (fa, fb) = (RowFilter::from(allowed.as_slice()), b.as_filter());
        for (i, a) in allowed.iter().enumerate() {
            assert_eq!(fa.allows(i), fb.allows(i));
            assert_eq!(b.is_excluded(i), !a);
        }
        assert!(fa.check(130).is_ok() && fa.check(131).is_err());
        assert!(fb.check(192).is_ok() && fb.check(193).is_err());
    }
}

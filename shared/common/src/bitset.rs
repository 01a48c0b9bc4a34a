//! The one row bitset of Ferrovec, [`FixedBitSet`] (one bit per row, set = the row is
//! in: it matches the filter, is visible, is allowed to be returned), from the
//! expression evaluator through the query node's visibility and delete masks to the
//! indexes, and how to build one a whole word at a time.
//!
//! The tight loops fill the bitset's blocks directly: 64 rows (one `usize` block) per
//! output word, with no branch in the inner loop, so the compiler can vectorise simple
//! predicates. Bits past the row count are never set, so `count_ones`, `is_full` and
//! equality see only rows; the in-place operations (`intersect_with`, `union_with`,
//! `difference_with`) keep them zero, and [`not`] flips only the rows.

pub use fixedbitset::{Block, FixedBitSet};

/// Rows per block of a [`FixedBitSet`].
const WORD: usize = Block::BITS as usize;

/// No row.
pub fn zeros(len: usize) -> FixedBitSet {
    FixedBitSet::with_capacity(len)
}

/// Every row.
pub fn ones(len: usize) -> FixedBitSet {
    let mut b = FixedBitSet::with_capacity(len);
    b.insert_range(..);
    b
}

/// The complement over the rows (the bits past `len` stay zero).
pub fn not(b: &FixedBitSet) -> FixedBitSet {
    let mut out = b.clone();
    out.toggle_range(..);
    out
}

/// The bits of one block's worth of elements: bit `j` is `f(chunk[j])`.
#[inline(always)]
fn word<T>(chunk: &[T], f: &impl Fn(&T) -> bool) -> Block {
    let mut w: Block = 0;
    for (j, x) in chunk.iter().enumerate() {
        w |= Block::from(f(x)) << j;
    }
    w
}

/// One bit per element of `data`: set where `f` holds.
#[inline]
pub fn from_slice<T>(data: &[T], f: impl Fn(&T) -> bool) -> FixedBitSet {
    let mut out = FixedBitSet::with_capacity(data.len());
    let blocks = out.as_mut_slice();
    let mut chunks = data.chunks_exact(WORD);
    // The full chunks have a constant length, which is what lets the inner loop unroll.
    for (b, ch) in blocks.iter_mut().zip(&mut chunks) {
        *b = word(ch, &f);
    }
    let rem = chunks.remainder();
    if !rem.is_empty()
        && let Some(last) = blocks.last_mut()
    {
        *last = word(rem, &f);
    }
    out
}

/// One bit per pair of elements of `a` and `b` (over the shorter of the two).
#[inline]
pub fn from_pairs<A, B>(a: &[A], b: &[B], f: impl Fn(&A, &B) -> bool) -> FixedBitSet {
    let len = a.len().min(b.len());
    let mut out = FixedBitSet::with_capacity(len);
    for ((w, ca), cb) in out.as_mut_slice().iter_mut().zip(a[..len].chunks(WORD)).zip(b[..len].chunks(WORD)) {
        let mut acc: Block = 0;
        for (j, (x, y)) in ca.iter().zip(cb).enumerate() {
            acc |= Block::from(f(x, y)) << j;
        }
        *w = acc;
    }
    out
}

/// One bit per row index `0..len`, for per-row (dynamic) predicates.
pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> bool) -> FixedBitSet {
    let mut out = FixedBitSet::with_capacity(len);
    let blocks = out.as_mut_slice();
    for i in 0..len {
        blocks[i / WORD] |= Block::from(f(i)) << (i % WORD);
    }
    out
}

/// Two bitsets over the rows `0..len` from a per-row three-valued function: the rows
/// where it is `Some(true)`, and those where it is `Some(false)`.
pub fn from_opt_fn(len: usize, mut f: impl FnMut(usize) -> Option<bool>) -> (FixedBitSet, FixedBitSet) {
    let mut t = FixedBitSet::with_capacity(len);
    let mut fl = FixedBitSet::with_capacity(len);
    let (tb, fb) = (t.as_mut_slice(), fl.as_mut_slice());
    for i in 0..len {
        let bit: Block = 1 << (i % WORD);
        match f(i) {
            Some(true) => tb[i / WORD] |= bit,
            Some(false) => fb[i / WORD] |= bit,
            None => {}
        }
    }
    (t, fl)
}

/// The set flags of a `Vec<bool>` (e.g. a column's validity).
pub fn from_bools(v: &[bool]) -> FixedBitSet {
    from_slice(v, |b| *b)
}

/// `a & b`, where `None` means every row.
pub fn and_opt(a: Option<&FixedBitSet>, b: Option<&FixedBitSet>) -> Option<FixedBitSet> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(x), Some(y)) => {
            let mut out = x.clone();
            out.intersect_with(y);
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bools(b: &FixedBitSet) -> Vec<bool> {
        (0..b.len()).map(|i| b.contains(i)).collect()
    }

    /// The bits past the length, which must stay zero.
    fn tail(b: &FixedBitSet) -> Block {
        let r = b.len() % WORD;
        match b.as_slice().last() {
            Some(w) if r != 0 => w >> r,
            _ => 0,
        }
    }

    #[test]
    fn construction_matches_the_predicate() {
        let b = from_bools(&[true, false, true]);
        assert_eq!(bools(&b), vec![true, false, true]);
        assert_eq!(bools(&not(&b)), vec![false, true, false]);
        assert_eq!(not(&b).count_ones(..), 1);
        for n in [0, 1, 63, 64, 65, 130, 1000] {
            assert_eq!(ones(n).count_ones(..), n);
            assert!(ones(n).is_full());
            assert_eq!(tail(&ones(n)), 0);
            assert_eq!(zeros(n).count_ones(..), 0);
            assert_eq!(not(&zeros(n)), ones(n));
            assert_eq!(not(&ones(n)), zeros(n));
            let v: Vec<i32> = (0..n as i32).collect();
            let odd = from_slice(&v, |x| x % 2 == 1);
            assert_eq!(odd.len(), n);
            assert_eq!(odd.count_ones(..), n / 2);
            assert_eq!(bools(&odd), (0..n).map(|i| i % 2 == 1).collect::<Vec<_>>());
            assert_eq!(from_fn(n, |i| i % 2 == 1), odd);
            assert_eq!(from_pairs(&v, &v, |a, b| a == b && a % 2 == 1), odd);
            let (t, f) = from_opt_fn(n, |i| (i % 3 != 0).then_some(i % 2 == 1));
            assert_eq!(t, from_fn(n, |i| i % 3 != 0 && i % 2 == 1));
            assert_eq!(f, from_fn(n, |i| i % 3 != 0 && i % 2 == 0));
            assert_eq!(odd.ones().collect::<Vec<_>>(), (0..n).filter(|i| i % 2 == 1).collect::<Vec<_>>());
        }
    }

    #[test]
    fn tail_bits_stay_zero() {
        for n in [1, 63, 65, 130] {
            let v: Vec<i32> = (0..n as i32).collect();
            let all = from_slice(&v, |_| true);
            assert_eq!(all, ones(n));
            assert_eq!(tail(&all), 0);
            let flipped = not(&from_slice(&v, |x| x % 2 == 0));
            assert_eq!(tail(&flipped), 0);
            assert_eq!(flipped.count_ones(..), n / 2);
            assert_eq!(not(&not(&flipped)), flipped);
            let mut u = flipped.clone();
            u.union_with(&not(&flipped));
            assert!(u.is_full());
            assert_eq!(tail(&u), 0);
            assert_eq!(u.count_ones(..), n);
            let mut d = ones(n);
            d.difference_with(&flipped);
            assert_eq!(d, not(&flipped));
        }
    }

    #[test]
    fn optional_intersection() {
        let a = from_bools(&[true, true, false]);
        let b = from_bools(&[true, false, true]);
        assert_eq!(and_opt(None, None), None);
        assert_eq!(and_opt(Some(&a), None), Some(a.clone()));
        assert_eq!(and_opt(None, Some(&b)), Some(b.clone()));
        assert_eq!(and_opt(Some(&a), Some(&b)), Some(from_bools(&[true, false, false])));
    }
}

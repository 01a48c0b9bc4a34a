//! Three-valued predicate results: which rows are definitely true, which definitely
//! false; the rest are unknown (SQL's null logic, Kleene's `and` / `or` / `not`).

use fv_common::bitset::FixedBitSet;

use fv_common::bitset as bits;

/// The result of a predicate: rows definitely true (`t`), definitely false (`f`); the
/// rest are unknown. `t` and `f` never overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tri {
    pub t: FixedBitSet,
    pub f: FixedBitSet,
}

impl Tri {
    /// Every row `b`.
    pub(crate) fn constant(b: bool, n: usize) -> Tri {
        if b { Tri { t: bits::ones(n), f: bits::zeros(n) } } else { Tri { t: bits::zeros(n), f: bits::ones(n) } }
    }

    /// Every row unknown.
    pub(crate) fn unknown(n: usize) -> Tri {
        Tri { t: bits::zeros(n), f: bits::zeros(n) }
    }

    /// Every row `v` (`None`: unknown).
    pub(crate) fn of_opt(v: Option<bool>, n: usize) -> Tri {
        v.map_or_else(|| Tri::unknown(n), |b| Tri::constant(b, n))
    }

    /// A raw truth bitset restricted to the valid rows (the others unknown; `None`:
    /// every row valid).
    pub(crate) fn from_raw(raw: FixedBitSet, valid: Option<&FixedBitSet>) -> Tri {
        match valid {
            None => Tri { f: bits::not(&raw), t: raw },
            Some(v) => {
                let mut f = v.clone();
                f.difference_with(&raw);
                let mut t = raw;
                t.intersect_with(v);
                Tri { t, f }
            }
        }
    }

    /// Rows that are never unknown: true in `t`, false elsewhere.
    pub(crate) fn from_known(t: FixedBitSet) -> Tri {
        Tri { f: bits::not(&t), t }
    }

    /// Row by row, for dynamic (per-row typed) values.
    pub(crate) fn from_opt(n: usize, f: impl FnMut(usize) -> Option<bool>) -> Tri {
        let (t, f) = bits::from_opt_fn(n, f);
        Tri { t, f }
    }

    /// Kleene `and`, in place: true where both are, false where either is.
    pub(crate) fn and_with(&mut self, o: &Tri) {
        self.t.intersect_with(&o.t);
        self.f.union_with(&o.f);
    }

    /// Kleene `or`, in place: true where either is, false where both are.
    pub(crate) fn or_with(&mut self, o: &Tri) {
        self.t.union_with(&o.t);
        self.f.intersect_with(&o.f);
    }

    /// Kleene `not`: true and false swap, unknown stays unknown.
    pub(crate) fn not(self) -> Tri {
        Tri { t: self.f, f: self.t }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bools(b: &FixedBitSet) -> Vec<bool> {
        (0..b.len()).map(|i| b.contains(i)).collect()
    }

    fn and(a: &Tri, b: &Tri) -> Tri {
        let mut out = a.clone();
        out.and_with(b);
        out
    }

    fn or(a: &Tri, b: &Tri) -> Tri {
        let mut out = a.clone();
        out.or_with(b);
        out
    }

    #[test]
    fn kleene_logic() {
        // rows: true, false, unknown
        let a = Tri { t: bits::from_bools(&[true, false, false]), f: bits::from_bools(&[false, true, false]) };
        let all = |v: bool| Tri::constant(v, 3);
        assert_eq!(and(&a, &all(false)), all(false));
        assert_eq!(or(&a, &all(true)), all(true));
        assert_eq!(and(&a, &all(true)), a);
        assert_eq!(or(&a, &all(false)), a);
        let n = a.clone().not();
        assert_eq!(bools(&n.t), vec![false, true, false]);
        assert_eq!(bools(&n.f), vec![true, false, false]);
        // unknown and unknown stays unknown; unknown or true is true
        let u = Tri::unknown(3);
        assert_eq!(and(&u, &u), u);
        assert_eq!(bools(&or(&u, &a).t), vec![true, false, false]);
        assert_eq!(Tri::of_opt(None, 3), u);
        assert_eq!(Tri::of_opt(Some(true), 3), all(true));
    }

    #[test]
    fn validity_makes_rows_unknown() {
        let raw = bits::from_bools(&[true, false, true, false]);
        let valid = bits::from_bools(&[true, true, false, false]);
        let t = Tri::from_raw(raw.clone(), Some(&valid));
        assert_eq!(bools(&t.t), vec![true, false, false, false]);
        assert_eq!(bools(&t.f), vec![false, true, false, false]);
        let t = Tri::from_raw(raw.clone(), None);
        assert_eq!(t, Tri::from_known(raw));
        assert_eq!(bools(&t.f), vec![false, true, false, true]);
        // 65 rows: the complement must not leak into the tail of the last block.
        let t = Tri::from_known(bits::zeros(65));
        assert_eq!(t.f.count_ones(..), 65);
        assert_eq!(t, Tri::constant(false, 65));
    }
}

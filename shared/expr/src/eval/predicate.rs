//! Typed predicates over values: comparisons (with a constant, between two values,
//! ranges), `in`, `like` and `is null`.
//!
//! Typed columns and computed numbers run as tight loops over their slices, with the
//! operator chosen outside the loop; the raw result is then restricted to the valid
//! rows. Dynamic values (JSON) are compared row by row with the rules of
//! [`crate::compare`].

use fv_common::bitset::FixedBitSet;
use fv_storage::ColumnData;

use super::tri::Tri;
use super::values::{Num, Vals, num_of};
use crate::ast::CmpOp;
use crate::compare::{Dyn, dyn_cmp, dyn_in, lit_cmp, lit_f64};
use crate::ir::{InSet, Lit};
use crate::like::LikePattern;
use fv_common::bitset as bits;

/// `data[i] op c` for every row, with the operator chosen outside the loop.
#[inline]
fn cmp_scalar<T, U: PartialOrd + Copy>(data: &[T], conv: impl Fn(&T) -> U, op: CmpOp, c: U) -> FixedBitSet {
    match op {
        CmpOp::Eq => bits::from_slice(data, |x| conv(x) == c),
        CmpOp::Ne => bits::from_slice(data, |x| conv(x) != c),
        CmpOp::Lt => bits::from_slice(data, |x| conv(x) < c),
        CmpOp::Le => bits::from_slice(data, |x| conv(x) <= c),
        CmpOp::Gt => bits::from_slice(data, |x| conv(x) > c),
        CmpOp::Ge => bits::from_slice(data, |x| conv(x) >= c),
    }
}

/// `a[i] op b[i]` for every row.
#[inline]
fn cmp_pairs<T: PartialOrd>(a: &[T], op: CmpOp, b: &[T]) -> FixedBitSet {
    match op {
        CmpOp::Eq => bits::from_pairs(a, b, |x, y| x == y),
        CmpOp::Ne => bits::from_pairs(a, b, |x, y| x != y),
        CmpOp::Lt => bits::from_pairs(a, b, |x, y| x < y),
        CmpOp::Le => bits::from_pairs(a, b, |x, y| x <= y),
        CmpOp::Gt => bits::from_pairs(a, b, |x, y| x > y),
        CmpOp::Ge => bits::from_pairs(a, b, |x, y| x >= y),
    }
}

/// `data[i] op c` on strings (byte order).
fn cmp_str(data: &[String], op: CmpOp, c: &str) -> FixedBitSet {
    match op {
        CmpOp::Eq => bits::from_slice(data, |x| x == c),
        CmpOp::Ne => bits::from_slice(data, |x| x != c),
        CmpOp::Lt => bits::from_slice(data, |x| x.as_str() < c),
        CmpOp::Le => bits::from_slice(data, |x| x.as_str() <= c),
        CmpOp::Gt => bits::from_slice(data, |x| x.as_str() > c),
        CmpOp::Ge => bits::from_slice(data, |x| x.as_str() >= c),
    }
}

/// The typed fast path of `column op constant`; None when the combination has none.
fn cmp_col_lit(data: &ColumnData, op: CmpOp, c: &Lit) -> Option<FixedBitSet> {
    Some(match (data, c) {
        (ColumnData::Int8(s), Lit::Int(k)) => cmp_scalar(s, |x| i64::from(*x), op, *k),
        (ColumnData::Int16(s), Lit::Int(k)) => cmp_scalar(s, |x| i64::from(*x), op, *k),
        (ColumnData::Int32(s), Lit::Int(k)) => cmp_scalar(s, |x| i64::from(*x), op, *k),
        (ColumnData::Int64(s), Lit::Int(k)) => cmp_scalar(s, |x| *x, op, *k),
        (ColumnData::Int8(s), Lit::Float(k)) => cmp_scalar(s, |x| f64::from(*x), op, *k),
        (ColumnData::Int16(s), Lit::Float(k)) => cmp_scalar(s, |x| f64::from(*x), op, *k),
        (ColumnData::Int32(s), Lit::Float(k)) => cmp_scalar(s, |x| f64::from(*x), op, *k),
        (ColumnData::Int64(s), Lit::Float(k)) => cmp_scalar(s, |x| *x as f64, op, *k),
        (ColumnData::Float(s), _) => cmp_scalar(s, |x| f64::from(*x), op, lit_f64(c)?),
        (ColumnData::Double(s), _) => cmp_scalar(s, |x| *x, op, lit_f64(c)?),
        (ColumnData::VarChar(s), Lit::Str(k)) => cmp_str(s, op, k),
        (ColumnData::Bool(s), Lit::Bool(k)) if !op.is_ordering() => cmp_scalar(s, |x| *x, op, *k),
        _ => return None,
    })
}

/// `value op constant`.
pub(crate) fn compare_lit(v: &Vals<'_>, op: CmpOp, c: &Lit, n: usize) -> Tri {
    let fast = match v {
        Vals::Null => return Tri::unknown(n),
        Vals::Lit(x) => return Tri::of_opt(lit_cmp(x, op, c), n),
        Vals::Col { data, valid } => cmp_col_lit(data, op, c).map(|b| (b, valid.as_ref())),
        Vals::Int { data, valid } => match c {
            Lit::Int(k) => Some((cmp_scalar(data, |x| *x, op, *k), valid.as_ref())),
            Lit::Float(k) => Some((cmp_scalar(data, |x| *x as f64, op, *k), valid.as_ref())),
            _ => None,
        },
        Vals::Float { data, valid } => lit_f64(c).map(|k| (cmp_scalar(data, |x| *x, op, k), valid.as_ref())),
        Vals::Dyn(d) => {
            let k = Dyn::of_lit(c);
            return Tri::from_opt(n, |i| dyn_cmp(d[i], op, k));
        }
    };
    match fast {
        Some((raw, valid)) => Tri::from_raw(raw, valid),
        None => {
            let k = Dyn::of_lit(c);
            Tri::from_opt(n, |i| dyn_cmp(v.dyn_at(i), op, k))
        }
    }
}

/// `lhs op rhs`, both non-constant or either constant.
pub(crate) fn compare(l: &Vals<'_>, op: CmpOp, r: &Vals<'_>, n: usize) -> Tri {
    match (l, r) {
        (Vals::Null, _) | (_, Vals::Null) => return Tri::unknown(n),
        (_, Vals::Lit(c)) => return compare_lit(l, op, c, n),
        (Vals::Lit(c), _) => return compare_lit(r, op.flip(), c, n),
        _ => {}
    }
    if let (Some((a, va)), Some((b, vb))) = (num_of(l), num_of(r)) {
        let valid = bits::and_opt(va, vb);
        let raw = match (&a, &b) {
            (Num::I(x), Num::I(y)) => cmp_pairs(x, op, y),
            _ => match (a.to_f(), b.to_f()) {
                (Num::F(x), Num::F(y)) => cmp_pairs(&x, op, &y),
                _ => return Tri::from_opt(n, |i| dyn_cmp(l.dyn_at(i), op, r.dyn_at(i))),
            },
        };
        return Tri::from_raw(raw, valid.as_ref());
    }
    if let (
        Vals::Col { data: ColumnData::VarChar(a), valid: va },
        Vals::Col { data: ColumnData::VarChar(b), valid: vb },
    ) = (l, r)
    {
        let valid = bits::and_opt(va.as_ref(), vb.as_ref());
        return Tri::from_raw(cmp_pairs(a, op, b), valid.as_ref());
    }
    Tri::from_opt(n, |i| dyn_cmp(l.dyn_at(i), op, r.dyn_at(i)))
}

/// `x` in a sorted float set (a linear scan for short sets).
#[inline]
fn has_float(set: &[f64], x: f64) -> bool {
    if set.len() <= 16 { set.contains(&x) } else { set.binary_search_by(|y| y.total_cmp(&(x + 0.0))).is_ok() }
}

/// `value in list`, through the typed set when the value is a typed column or number.
pub(crate) fn eval_in(v: &Vals<'_>, set: &InSet, list: &[Lit], n: usize) -> Tri {
    let fast = match (v, set) {
        (Vals::Null, _) => return Tri::unknown(n),
        (Vals::Col { data, valid }, _) => {
            let raw = match (data, set) {
                (ColumnData::Int8(s), InSet::Ints(k)) => Some(bits::from_slice(s, |x| k.contains(i64::from(*x)))),
                (ColumnData::Int16(s), InSet::Ints(k)) => Some(bits::from_slice(s, |x| k.contains(i64::from(*x)))),
                (ColumnData::Int32(s), InSet::Ints(k)) => Some(bits::from_slice(s, |x| k.contains(i64::from(*x)))),
                (ColumnData::Int64(s), InSet::Ints(k)) => Some(bits::from_slice(s, |x| k.contains(*x))),
                (ColumnData::Float(s), InSet::Floats(k)) => Some(bits::from_slice(s, |x| has_float(k, f64::from(*x)))),
                (ColumnData::Double(s), InSet::Floats(k)) => Some(bits::from_slice(s, |x| has_float(k, *x))),
                (ColumnData::VarChar(s), InSet::Strs(k)) => Some(bits::from_slice(s, |x| k.contains(x.as_str()))),
                (ColumnData::Bool(s), InSet::Bools { has_true, has_false }) => {
                    Some(bits::from_slice(s, |x| if *x { *has_true } else { *has_false }))
                }
                _ => None,
            };
            raw.map(|r| (r, valid.as_ref()))
        }
        (Vals::Int { data, valid }, InSet::Ints(k)) => {
            Some((bits::from_slice(data, |x| k.contains(*x)), valid.as_ref()))
        }
        (Vals::Float { data, valid }, InSet::Floats(k)) => {
            Some((bits::from_slice(data, |x| has_float(k, *x)), valid.as_ref()))
        }
        _ => None,
    };
    match fast {
        Some((raw, valid)) => Tri::from_raw(raw, valid),
        None => Tri::from_opt(n, |i| dyn_in(v.dyn_at(i), list)),
    }
}

/// `value like pattern`; VarChar columns take the exact / prefix / suffix / infix fast paths.
pub(crate) fn eval_like(v: &Vals<'_>, pattern: &LikePattern, n: usize) -> Tri {
    if let Vals::Col { data: ColumnData::VarChar(s), valid } = v {
        let raw = match pattern {
            LikePattern::Exact(p) => bits::from_slice(s, |x| x == p),
            LikePattern::Prefix(p) => bits::from_slice(s, |x| x.as_bytes().starts_with(p.as_bytes())),
            LikePattern::Suffix(p) => bits::from_slice(s, |x| x.as_bytes().ends_with(p.as_bytes())),
            LikePattern::Infix(p) => bits::from_slice(s, |x| x.contains(p.as_str())),
            LikePattern::General(_) => bits::from_slice(s, |x| pattern.matches(x)),
        };
        return Tri::from_raw(raw, valid.as_ref());
    }
    Tri::from_opt(n, |i| match v.dyn_at(i) {
        Dyn::Str(s) => Some(pattern.matches(s)),
        _ => None,
    })
}

/// The null rows of `value` (never unknown).
pub(crate) fn eval_is_null(v: &Vals<'_>, n: usize) -> FixedBitSet {
    match v {
        Vals::Null => bits::ones(n),
        Vals::Col { valid, .. } | Vals::Int { valid, .. } | Vals::Float { valid, .. } => {
            valid.as_ref().map_or_else(|| bits::zeros(n), bits::not)
        }
        Vals::Lit(_) => bits::zeros(n),
        Vals::Dyn(d) => bits::from_slice(d, |x| x.is_null()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::ir::IntSet;

    fn bools(b: &FixedBitSet) -> Vec<bool> {
        (0..b.len()).map(|i| b.contains(i)).collect()
    }

    /// (true rows, false rows)
    fn tv(t: &Tri) -> (Vec<bool>, Vec<bool>) {
        (bools(&t.t), bools(&t.f))
    }

    #[test]
    fn comparisons_respect_validity() {
        let data = ColumnData::Int32(vec![1, 5, 9, 5]);
        let v = Vals::Col { data: &data, valid: Some(bits::from_bools(&[true, true, true, false])) };
        let t = compare_lit(&v, CmpOp::Ge, &Lit::Int(5), 4);
        assert_eq!(tv(&t), (vec![false, true, true, false], vec![true, false, false, false]));
        // 4.5 < x, through the float path of an integer column
        let t = compare_lit(&v, CmpOp::Gt, &Lit::Float(4.5), 4);
        assert_eq!(bools(&t.t), vec![false, true, true, false]);
        assert_eq!(compare_lit(&Vals::Null, CmpOp::Eq, &Lit::Int(1), 4), Tri::unknown(4));
        let other = ColumnData::Int32(vec![1, 4, 10, 0]);
        let w = Vals::Col { data: &other, valid: None };
        let t = compare(&v, CmpOp::Lt, &w, 4);
        assert_eq!(tv(&t), (vec![false, false, true, false], vec![true, true, false, false]));
        let strs = ColumnData::VarChar(vec!["b".into(), "a".into(), "c".into(), "b".into()]);
        let s = Vals::Col { data: &strs, valid: None };
        assert_eq!(bools(&compare_lit(&s, CmpOp::Le, &Lit::Str("b".into()), 4).t), vec![true, true, false, true]);
    }

    #[test]
    fn in_sets_like_and_is_null() {
        let data = ColumnData::Int64(vec![1, 2, 3, 4]);
        let v = Vals::Col { data: &data, valid: None };
        let list = [Lit::Int(2), Lit::Int(4)];
        let t = eval_in(&v, &InSet::Ints(IntSet::new(vec![2, 4])), &list, 4);
        assert_eq!(tv(&t), (vec![false, true, false, true], vec![true, false, true, false]));
        let strs = ColumnData::VarChar(vec!["abc".into(), "xab".into(), "ab".into()]);
        let valid = bits::from_bools(&[true, true, false]);
        let s = Vals::Col { data: &strs, valid: Some(valid.clone()) };
        let set: HashSet<String> = ["ab".to_string(), "abc".to_string()].into();
        let list = [Lit::Str("ab".into()), Lit::Str("abc".into())];
        assert_eq!(tv(&eval_in(&s, &InSet::Strs(set), &list, 3)), (vec![true, false, false], vec![false, true, false]));
        let t = eval_like(&s, &LikePattern::compile("ab%"), 3);
        assert_eq!(tv(&t), (vec![true, false, false], vec![false, true, false]));
        let t = eval_like(&s, &LikePattern::compile("%ab%"), 3);
        assert_eq!(bools(&t.t), vec![true, true, false]);
        assert_eq!(bools(&eval_is_null(&s, 3)), vec![false, false, true]);
        assert_eq!(eval_is_null(&Vals::Null, 3), bits::ones(3));
        let dyns = Vals::Dyn(vec![Dyn::Int(1), Dyn::Null, Dyn::Missing, Dyn::Str("a")]);
        assert_eq!(bools(&eval_is_null(&dyns, 4)), vec![false, true, true, false]);
        let list = [Lit::Int(1), Lit::Str("b".into())];
        assert_eq!(
            tv(&eval_in(&dyns, &InSet::Dyn, &list, 4)),
            (vec![true, false, false, false], vec![false, false, false, true])
        );
    }
}

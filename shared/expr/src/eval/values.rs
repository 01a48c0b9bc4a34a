//! The values of an expression over all rows ([`Vals`]), and their
//! numeric view for vectorised arithmetic and comparisons ([`Num`]).

use std::borrow::Cow;

use fv_common::bitset::FixedBitSet;
use fv_storage::ColumnData;

use crate::compare::Dyn;
use crate::ir::Lit;

/// The values of a [`VExpr`](crate::ir::VExpr) over all rows. `valid` marks the non-null
/// rows (`None`: every row).
pub(crate) enum Vals<'a> {
    /// Every row is null (the column is absent from the data).
    Null,
    /// The same constant in every row.
    Lit(&'a Lit),
    /// A typed column, borrowed.
    Col { data: &'a ColumnData, valid: Option<FixedBitSet> },
    /// Computed integers (arithmetic).
    Int { data: Vec<i64>, valid: Option<FixedBitSet> },
    /// Computed floats (arithmetic).
    Float { data: Vec<f64>, valid: Option<FixedBitSet> },
    /// Per-row typed values (JSON paths and what is computed from them).
    Dyn(Vec<Dyn<'a>>),
}

impl Vals<'_> {
    /// Row `i` as a dynamic value, for the generic per-row paths.
    pub(crate) fn dyn_at(&self, i: usize) -> Dyn<'_> {
        let valid = |v: &Option<FixedBitSet>| v.as_ref().is_none_or(|b| b.contains(i));
        match self {
            Vals::Null => Dyn::Missing,
            Vals::Lit(l) => Dyn::of_lit(l),
            Vals::Col { data, valid: v } => {
                if !valid(v) {
                    return Dyn::Null;
                }
                let d = match data {
                    ColumnData::Bool(s) => s.get(i).map(|x| Dyn::Bool(*x)),
                    ColumnData::Int8(s) => s.get(i).map(|x| Dyn::Int(i64::from(*x))),
                    ColumnData::Int16(s) => s.get(i).map(|x| Dyn::Int(i64::from(*x))),
                    ColumnData::Int32(s) => s.get(i).map(|x| Dyn::Int(i64::from(*x))),
                    ColumnData::Int64(s) => s.get(i).map(|x| Dyn::Int(*x)),
                    ColumnData::Float(s) => s.get(i).map(|x| Dyn::Float(f64::from(*x))),
                    ColumnData::Double(s) => s.get(i).map(|x| Dyn::Float(*x)),
                    ColumnData::VarChar(s) => s.get(i).map(|x| Dyn::Str(x)),
                    ColumnData::Json(s) => s.get(i).map(Dyn::of_json),
                    ColumnData::FloatVector { .. } => None,
                };
                d.unwrap_or(Dyn::Missing)
            }
            Vals::Int { data, valid: v } => match data.get(i) {
                Some(x) if valid(v) => Dyn::Int(*x),
                _ => Dyn::Null,
            },
            Vals::Float { data, valid: v } => match data.get(i) {
                Some(x) if valid(v) => Dyn::Float(*x),
                _ => Dyn::Null,
            },
            Vals::Dyn(d) => d.get(i).copied().unwrap_or(Dyn::Missing),
        }
    }
}

/// A numeric operand of a vectorised operation.
pub(crate) enum Num<'a> {
    /// One integer per row (narrower integer columns widened).
    I(Cow<'a, [i64]>),
    /// One float per row (Float columns widened).
    F(Cow<'a, [f64]>),
    /// The same integer in every row.
    ScalarI(i64),
    /// The same float in every row.
    ScalarF(f64),
}

impl Num<'_> {
    /// Integral (so arithmetic stays integral).
    pub(crate) fn is_int(&self) -> bool {
        matches!(self, Num::I(_) | Num::ScalarI(_))
    }
    /// The same values as floats (borrowed when they already are).
    pub(crate) fn to_f(&self) -> Num<'_> {
        match self {
            Num::I(v) => Num::F(Cow::Owned(v.iter().map(|x| *x as f64).collect())),
            Num::ScalarI(x) => Num::ScalarF(*x as f64),
            Num::F(v) => Num::F(Cow::Borrowed(v)),
            Num::ScalarF(x) => Num::ScalarF(*x),
        }
    }
}

/// The numeric view of typed values (None for strings, booleans, dynamic values).
pub(crate) fn num_of<'v>(v: &'v Vals<'_>) -> Option<(Num<'v>, Option<&'v FixedBitSet>)> {
    Some(match v {
        Vals::Lit(Lit::Int(i)) => (Num::ScalarI(*i), None),
        Vals::Lit(Lit::Float(f)) => (Num::ScalarF(*f), None),
        Vals::Col { data, valid } => {
            let n = match data {
                ColumnData::Int8(s) => Num::I(Cow::Owned(s.iter().map(|x| i64::from(*x)).collect())),
                ColumnData::Int16(s) => Num::I(Cow::Owned(s.iter().map(|x| i64::from(*x)).collect())),
                ColumnData::Int32(s) => Num::I(Cow::Owned(s.iter().map(|x| i64::from(*x)).collect())),
                ColumnData::Int64(s) => Num::I(Cow::Borrowed(s)),
                ColumnData::Float(s) => Num::F(Cow::Owned(s.iter().map(|x| f64::from(*x)).collect())),
                ColumnData::Double(s) => Num::F(Cow::Borrowed(s)),
                _ => return None,
            };
            (n, valid.as_ref())
        }
        Vals::Int { data, valid } => (Num::I(Cow::Borrowed(data)), valid.as_ref()),
        Vals::Float { data, valid } => (Num::F(Cow::Borrowed(data)), valid.as_ref()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fv_common::bitset as bits;

    #[test]
    fn rows_read_as_dynamic_values() {
        let data = ColumnData::Int16(vec![3, -4, 5]);
        let v = Vals::Col { data: &data, valid: Some(bits::from_bools(&[true, false, true])) };
        assert_eq!(v.dyn_at(0), Dyn::Int(3));
        assert_eq!(v.dyn_at(1), Dyn::Null);
        let all_valid = Vals::Col { data: &data, valid: None };
        assert_eq!(all_valid.dyn_at(1), Dyn::Int(-4));
        let lit = Lit::Str("x".into());
        assert_eq!(Vals::Lit(&lit).dyn_at(7), Dyn::Str("x"));
        assert_eq!(Vals::Null.dyn_at(0), Dyn::Missing);
        let f = Vals::Float { data: vec![0.5], valid: None };
        assert_eq!(f.dyn_at(0), Dyn::Float(0.5));
    }

    #[test]
    fn numeric_views() {
        let data = ColumnData::Int8(vec![1, 2]);
        let col = Vals::Col { data: &data, valid: None };
        let Some((Num::I(v), None)) = num_of(&col) else { panic!("Int8 reads as integers") };
        assert_eq!(&v[..], &[1, 2]);
        let strs = ColumnData::VarChar(vec!["a".into()]);
        assert!(num_of(&Vals::Col { data: &strs, valid: None }).is_none());
        let k = Lit::Int(4);
        let kv = Vals::Lit(&k);
        let (n, _) = num_of(&kv).expect("an integer constant is numeric");
        assert!(n.is_int());
        assert!(matches!(n.to_f(), Num::ScalarF(x) if x == 4.0));
    }
}

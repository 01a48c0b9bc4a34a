//! How values compare: constants ([`Lit`]), JSON values and column values seen
//! dynamically ([`Dyn`]), in three-valued logic. Both the compiler (folding constant
//! comparisons and `in` tests) and the evaluator (per-row JSON comparisons) use these
//! rules, so a folded constant and an evaluated row can never disagree.
//!
//! Numbers compare with numbers (as f64 when either is a float), strings with strings
//! (byte order), booleans with booleans (`==` / `!=` only), arrays element-wise with
//! arrays and JSON objects by equality; anything else, and any null, is unknown. A float
//! constant compared with a Float (f32) column is first rounded to f32 ([`round_for`]).

use serde_json::Value;

use crate::ast::CmpOp;
use crate::ir::{ColKind, Lit, VExpr};

/// One row's value where its type is only known at run time (JSON paths and anything
/// computed from them), or a typed value taken out of a column for a generic comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Dyn<'a> {
    /// The JSON path does not exist in the row (or the column is absent).
    Missing,
    /// A null row of a nullable field, JSON null, or a null computed value.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// A JSON array or object.
    Json(&'a Value),
    /// An array literal.
    Arr(&'a [Lit]),
}

impl<'a> Dyn<'a> {
    pub(crate) fn of_json(v: &'a Value) -> Dyn<'a> {
        match v {
            Value::Null => Dyn::Null,
            Value::Bool(b) => Dyn::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Dyn::Int(i),
                None => n.as_f64().map_or(Dyn::Null, Dyn::Float),
            },
            Value::String(s) => Dyn::Str(s),
            Value::Array(_) | Value::Object(_) => Dyn::Json(v),
        }
    }

    pub(crate) fn of_lit(l: &'a Lit) -> Dyn<'a> {
        match l {
            Lit::Bool(b) => Dyn::Bool(*b),
            Lit::Int(i) => Dyn::Int(*i),
            Lit::Float(f) => Dyn::Float(*f),
            Lit::Str(s) => Dyn::Str(s),
            Lit::Array(a) => Dyn::Arr(a),
        }
    }

    pub(crate) fn is_null(self) -> bool {
        matches!(self, Dyn::Missing | Dyn::Null)
    }
}

enum ArrRef<'a> {
    J(&'a [Value]),
    L(&'a [Lit]),
}

impl<'a> ArrRef<'a> {
    fn of(d: Dyn<'a>) -> Option<ArrRef<'a>> {
        match d {
            Dyn::Json(Value::Array(a)) => Some(ArrRef::J(a)),
            Dyn::Arr(a) => Some(ArrRef::L(a)),
            _ => None,
        }
    }
    fn len(&self) -> usize {
        match self {
            ArrRef::J(a) => a.len(),
            ArrRef::L(a) => a.len(),
        }
    }
    fn get(&self, i: usize) -> Dyn<'a> {
        match self {
            ArrRef::J(a) => a.get(i).map_or(Dyn::Missing, Dyn::of_json),
            ArrRef::L(a) => a.get(i).map_or(Dyn::Missing, Dyn::of_lit),
        }
    }
}

#[inline]
fn apply<T: PartialOrd>(x: T, op: CmpOp, y: T) -> bool {
    match op {
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
        CmpOp::Lt => x < y,
        CmpOp::Le => x <= y,
        CmpOp::Gt => x > y,
        CmpOp::Ge => x >= y,
    }
}

/// Equality of two dynamic values: `None` when either is null or the types are not
/// comparable (numbers compare with numbers, strings with strings, booleans with
/// booleans, arrays element-wise with arrays).
pub(crate) fn dyn_eq(a: Dyn<'_>, b: Dyn<'_>) -> Option<bool> {
    dyn_cmp(a, CmpOp::Eq, b)
}

/// A comparison of two dynamic values; `None` (unknown) when either is null or the
/// types cannot be compared with `op`.
pub(crate) fn dyn_cmp(a: Dyn<'_>, op: CmpOp, b: Dyn<'_>) -> Option<bool> {
    Some(match (a, b) {
        (Dyn::Missing | Dyn::Null, _) | (_, Dyn::Missing | Dyn::Null) => return None,
        (Dyn::Int(x), Dyn::Int(y)) => apply(x, op, y),
        (Dyn::Int(x), Dyn::Float(y)) => apply(x as f64, op, y),
        (Dyn::Float(x), Dyn::Int(y)) => apply(x, op, y as f64),
        (Dyn::Float(x), Dyn::Float(y)) => apply(x, op, y),
        (Dyn::Str(x), Dyn::Str(y)) => apply(x, op, y),
        (Dyn::Bool(x), Dyn::Bool(y)) if !op.is_ordering() => apply(x, op, y),
        (x, y) if !op.is_ordering() => {
            let eq = if let (Some(p), Some(q)) = (ArrRef::of(x), ArrRef::of(y)) {
                p.len() == q.len() && (0..p.len()).all(|i| dyn_eq(p.get(i), q.get(i)) == Some(true))
            } else if let (Dyn::Json(p @ Value::Object(_)), Dyn::Json(q @ Value::Object(_))) = (x, y) {
                p == q
            } else {
                return None;
            };
            eq == (op == CmpOp::Eq)
        }
        _ => return None,
    })
}

pub(crate) fn lit_cmp(a: &Lit, op: CmpOp, b: &Lit) -> Option<bool> {
    dyn_cmp(Dyn::of_lit(a), op, Dyn::of_lit(b))
}

pub(crate) fn lit_eq(a: &Lit, b: &Lit) -> bool {
    lit_cmp(a, CmpOp::Eq, b) == Some(true)
}

pub(crate) fn lit_f64(l: &Lit) -> Option<f64> {
    match l {
        Lit::Int(i) => Some(*i as f64),
        Lit::Float(f) => Some(*f),
        _ => None,
    }
}

/// `v in list` for a dynamic value: unknown for null, true on a match, false when some
/// element was comparable (or the list is empty), unknown when none was.
pub(crate) fn dyn_in(v: Dyn<'_>, list: &[Lit]) -> Option<bool> {
    if v.is_null() {
        return None;
    }
    let mut comparable = list.is_empty();
    for l in list {
        match dyn_eq(v, Dyn::of_lit(l)) {
            Some(true) => return Some(true),
            Some(false) => comparable = true,
            None => {}
        }
    }
    comparable.then_some(false)
}

/// A float literal compared with a Float (f32) column is rounded to f32 first, as
/// Milvus does, so that `f == 0.1` finds the rows that stored 0.1.
pub(crate) fn round_for(col: &VExpr, l: Lit) -> Lit {
    match (col, l) {
        (VExpr::Column { kind: ColKind::Float, .. }, Lit::Float(v)) => Lit::Float(f64::from(v as f32)),
        (VExpr::Column { kind: ColKind::Float, .. }, Lit::Int(v)) => Lit::Float(f64::from(v as f32)),
        (_, l) => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_comparisons() {
        use CmpOp::*;
        assert_eq!(dyn_cmp(Dyn::Int(2), Lt, Dyn::Float(2.5)), Some(true));
        assert_eq!(dyn_cmp(Dyn::Str("b"), Gt, Dyn::Str("a")), Some(true));
        assert_eq!(dyn_cmp(Dyn::Str("b"), Eq, Dyn::Int(1)), None);
        assert_eq!(dyn_cmp(Dyn::Bool(true), Lt, Dyn::Bool(false)), None);
        assert_eq!(dyn_cmp(Dyn::Null, Eq, Dyn::Int(1)), None);
        let arr: Value = serde_json::json!([1, "a", 2.0]);
        let lits = [Lit::Int(1), Lit::Str("a".into()), Lit::Int(2)];
        assert_eq!(dyn_cmp(Dyn::of_json(&arr), Eq, Dyn::Arr(&lits)), Some(true));
        assert_eq!(dyn_cmp(Dyn::of_json(&arr), Ne, Dyn::Arr(&lits[..2])), Some(true));
        assert_eq!(dyn_in(Dyn::Str("x"), &[Lit::Int(1)]), None);
        assert_eq!(dyn_in(Dyn::Str("x"), &[Lit::Int(1), Lit::Str("y".into())]), Some(false));
        assert_eq!(dyn_in(Dyn::Int(1), &[Lit::Float(1.0)]), Some(true));
        assert_eq!(dyn_in(Dyn::Int(1), &[]), Some(false));
    }

    #[test]
    fn literal_comparisons() {
        use CmpOp::*;
        assert_eq!(lit_cmp(&Lit::Int(1), Lt, &Lit::Float(1.5)), Some(true));
        assert_eq!(lit_cmp(&Lit::Str("a".into()), Lt, &Lit::Int(1)), None);
        assert_eq!(lit_cmp(&Lit::Bool(true), Ge, &Lit::Bool(true)), None);
        let a = Lit::Array(vec![Lit::Int(1), Lit::Str("x".into())]);
        assert!(lit_eq(&a, &a.clone()));
        assert!(!lit_eq(&a, &Lit::Array(vec![Lit::Int(1)])));
        assert!(lit_eq(&Lit::Int(2), &Lit::Float(2.0)));
        assert_eq!(lit_f64(&Lit::Int(-3)), Some(-3.0));
        assert_eq!(lit_f64(&Lit::Str("3".into())), None);
    }

    #[test]
    fn float_columns_round_constants_to_f32() {
        let f32_col = VExpr::Column { field: 1, kind: ColKind::Float };
        let f64_col = VExpr::Column { field: 1, kind: ColKind::Double };
        assert_eq!(round_for(&f32_col, Lit::Float(0.1)), Lit::Float(f64::from(0.1f32)));
        assert_eq!(round_for(&f32_col, Lit::Int(16_777_217)), Lit::Float(16_777_216.0));
        assert_eq!(round_for(&f64_col, Lit::Float(0.1)), Lit::Float(0.1));
        assert_eq!(round_for(&f32_col, Lit::Str("0.1".into())), Lit::Str("0.1".into()));
    }
}

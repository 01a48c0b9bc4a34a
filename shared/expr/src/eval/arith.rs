//! Arithmetic over values: vectorised loops over typed columns (integers wrap on
//! overflow, a zero divisor makes the row null), per-row arithmetic on dynamic values.

use fv_common::bitset::FixedBitSet;

use super::values::{Num, Vals, num_of};
use crate::ast::ArithOp;
use crate::compare::Dyn;
use crate::ir::Ty;
use fv_common::bitset as bits;

fn int_arith(op: ArithOp, x: i64, y: i64) -> Option<i64> {
    Some(match op {
        ArithOp::Add => x.wrapping_add(y),
        ArithOp::Sub => x.wrapping_sub(y),
        ArithOp::Mul => x.wrapping_mul(y),
        ArithOp::Div if y != 0 => x.wrapping_div(y),
        ArithOp::Mod if y != 0 => x.wrapping_rem(y),
        _ => return None,
    })
}

fn float_arith(op: ArithOp, x: f64, y: f64) -> Option<f64> {
    Some(match op {
        ArithOp::Add => x + y,
        ArithOp::Sub => x - y,
        ArithOp::Mul => x * y,
        ArithOp::Div if y != 0.0 => x / y,
        _ => return None,
    })
}

pub(crate) fn dyn_arith<'a>(op: ArithOp, a: Dyn<'_>, b: Dyn<'_>) -> Dyn<'a> {
    match (a, b) {
        (Dyn::Int(x), Dyn::Int(y)) => int_arith(op, x, y).map_or(Dyn::Null, Dyn::Int),
        (Dyn::Int(_) | Dyn::Float(_), Dyn::Int(_) | Dyn::Float(_)) => {
            let f = |d| match d {
                Dyn::Int(i) => i as f64,
                Dyn::Float(f) => f,
                _ => 0.0,
            };
            float_arith(op, f(a), f(b)).map_or(Dyn::Null, Dyn::Float)
        }
        _ => Dyn::Null,
    }
}

#[inline]
fn zip_map<T: Copy>(a: NumRef<'_, T>, b: NumRef<'_, T>, n: usize, f: impl Fn(T, T) -> T) -> Vec<T> {
    match (a, b) {
        (NumRef::Scalar(x), NumRef::Scalar(y)) => vec![f(x, y); n],
        (NumRef::Slice(x), NumRef::Scalar(y)) => x.iter().map(|v| f(*v, y)).collect(),
        (NumRef::Scalar(x), NumRef::Slice(y)) => y.iter().map(|v| f(x, *v)).collect(),
        (NumRef::Slice(x), NumRef::Slice(y)) => x.iter().zip(y.iter()).map(|(p, q)| f(*p, *q)).collect(),
    }
}

enum NumRef<'a, T> {
    Scalar(T),
    Slice(&'a [T]),
}

fn ints<'a>(n: &'a Num<'_>) -> NumRef<'a, i64> {
    match n {
        Num::I(v) => NumRef::Slice(v),
        Num::ScalarI(x) => NumRef::Scalar(*x),
        _ => NumRef::Scalar(0),
    }
}

fn floats<'a>(n: &'a Num<'_>) -> NumRef<'a, f64> {
    match n {
        Num::F(v) => NumRef::Slice(v),
        Num::ScalarF(x) => NumRef::Scalar(*x),
        _ => NumRef::Scalar(0.0),
    }
}

/// The rows where a divisor is not zero.
fn nonzero(b: &Num<'_>, n: usize) -> Option<FixedBitSet> {
    match b {
        Num::I(v) => Some(bits::from_slice(v, |x| *x != 0)),
        Num::F(v) => Some(bits::from_slice(v, |x| *x != 0.0)),
        Num::ScalarI(0) => Some(bits::zeros(n)),
        Num::ScalarF(x) if *x == 0.0 => Some(bits::zeros(n)),
        _ => None,
    }
}

pub(crate) fn arith_vals<'a>(op: ArithOp, l: &Vals<'a>, r: &Vals<'a>, ty: Ty, n: usize) -> Vals<'a> {
    if let (Ty::Int | Ty::Float, Some((a, va)), Some((b, vb))) = (ty, num_of(l), num_of(r)) {
        let mut valid = bits::and_opt(va, vb);
        if matches!(op, ArithOp::Div | ArithOp::Mod)
            && let Some(nz) = nonzero(&b, n)
        {
            valid = Some(match valid {
                None => nz,
                Some(mut v) => {
                    v.intersect_with(&nz);
                    v
                }
            });
        }
        if a.is_int() && b.is_int() {
            let data = match op {
                ArithOp::Add => zip_map(ints(&a), ints(&b), n, i64::wrapping_add),
                ArithOp::Sub => zip_map(ints(&a), ints(&b), n, i64::wrapping_sub),
                ArithOp::Mul => zip_map(ints(&a), ints(&b), n, i64::wrapping_mul),
                ArithOp::Div => zip_map(ints(&a), ints(&b), n, |x, y| if y == 0 { 0 } else { x.wrapping_div(y) }),
                ArithOp::Mod => zip_map(ints(&a), ints(&b), n, |x, y| if y == 0 { 0 } else { x.wrapping_rem(y) }),
            };
            return Vals::Int { data, valid };
        }
        let (a, b) = (a.to_f(), b.to_f());
        let data = match op {
            ArithOp::Add => zip_map(floats(&a), floats(&b), n, |x, y| x + y),
            ArithOp::Sub => zip_map(floats(&a), floats(&b), n, |x, y| x - y),
            ArithOp::Mul => zip_map(floats(&a), floats(&b), n, |x, y| x * y),
            ArithOp::Div => zip_map(floats(&a), floats(&b), n, |x, y| if y == 0.0 { 0.0 } else { x / y }),
            ArithOp::Mod => zip_map(floats(&a), floats(&b), n, |x, y| if y == 0.0 { 0.0 } else { x % y }),
        };
        return Vals::Float { data, valid };
    }
    if matches!(l, Vals::Null) || matches!(r, Vals::Null) {
        return Vals::Null;
    }
    Vals::Dyn((0..n).map(|i| dyn_arith(op, l.dyn_at(i), r.dyn_at(i))).collect())
}

pub(crate) fn neg_vals<'a>(v: &Vals<'a>, n: usize) -> Vals<'a> {
    match num_of(v) {
        Some((Num::I(d), valid)) => {
            Vals::Int { data: d.iter().map(|x| x.wrapping_neg()).collect(), valid: valid.cloned() }
        }
        Some((Num::F(d), valid)) => Vals::Float { data: d.iter().map(|x| -x).collect(), valid: valid.cloned() },
        Some((Num::ScalarI(x), _)) => Vals::Int { data: vec![x.wrapping_neg(); n], valid: None },
        Some((Num::ScalarF(x), _)) => Vals::Float { data: vec![-x; n], valid: None },
        None if matches!(v, Vals::Null) => Vals::Null,
        None => Vals::Dyn(
            (0..n)
                .map(|i| match v.dyn_at(i) {
                    Dyn::Int(x) => Dyn::Int(x.wrapping_neg()),
                    Dyn::Float(x) => Dyn::Float(-x),
                    _ => Dyn::Null,
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_arithmetic() {
        assert_eq!(dyn_arith(ArithOp::Div, Dyn::Int(7), Dyn::Int(0)), Dyn::Null);
        assert_eq!(dyn_arith(ArithOp::Div, Dyn::Int(7), Dyn::Int(2)), Dyn::Int(3));
        assert_eq!(dyn_arith(ArithOp::Div, Dyn::Int(-7), Dyn::Int(2)), Dyn::Int(-3));
        assert_eq!(dyn_arith(ArithOp::Mod, Dyn::Float(7.0), Dyn::Int(2)), Dyn::Null);
        assert_eq!(dyn_arith(ArithOp::Add, Dyn::Int(i64::MAX), Dyn::Int(1)), Dyn::Int(i64::MIN));
        assert_eq!(dyn_arith(ArithOp::Add, Dyn::Str("a"), Dyn::Int(1)), Dyn::Null);
    }

    #[test]
    fn typed_arithmetic_nulls_zero_divisors() {
        let data = [6i64, 7, 8, 9];
        let divisor = [3i64, 0, 2, 0];
        let a = Vals::Int { data: data.to_vec(), valid: None };
        let b = Vals::Int { data: divisor.to_vec(), valid: Some(bits::from_bools(&[true, true, false, true])) };
        let Vals::Int { data, valid } = arith_vals(ArithOp::Div, &a, &b, Ty::Int, 4) else {
            panic!("integer arithmetic stays integral")
        };
        assert_eq!(data[0], 2);
        // Row 1 divides by zero, row 2 has a null divisor, row 3 both: only row 0 is valid.
        assert_eq!(valid, Some(bits::from_bools(&[true, false, false, false])));
        let Vals::Int { data, valid } = neg_vals(&a, 4) else { panic!("negation of integers") };
        assert_eq!(data, vec![-6, -7, -8, -9]);
        assert_eq!(valid, None);
    }
}

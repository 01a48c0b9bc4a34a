//! The vectorised evaluator.
//!
//! Predicates evaluate to a [`Tri`]: two row bitsets ([`FixedBitSet`], a set bit is a
//! row in), the rows where the predicate is definitely true and those where it is
//! definitely false; the remaining rows are unknown (SQL's three-valued logic).
//! `and` / `or` / `not` are word-wise, in-place bitset operations. Comparisons of typed
//! columns with constants, `in` sets, ranges and LIKE on VarChar run as tight loops over
//! the column slices, one bitset block (64 rows) per output word. Values of JSON paths
//! are looked up per row into [`Dyn`] values and compared dynamically.
//!
//! | module | answers |
//! |---|---|
//! | `fv_common::bitset` | building row bitsets a word at a time (shared with the query node and the indexes) |
//! | `tri` | three-valued results and Kleene logic |
//! | `values` | the values of an expression over all rows, their numeric view |
//! | `arith` | arithmetic over values |
//! | `predicate` | comparisons, ranges, `in`, `like`, `is null` |
//! | `json` | JSON paths and `json_contains*` |
//! | this file | walking the plan over a [`ColumnSource`], the public entry points |

mod arith;
mod json;
mod predicate;
mod tri;
mod values;

use fv_common::FieldId;
use fv_common::bitset::{self as bits, FixedBitSet};
use fv_storage::{Column, ColumnData};
use serde_json::Value;

use self::arith::{arith_vals, neg_vals};
use self::json::{contains_row, resolve};
use self::predicate::{compare, compare_lit, eval_in, eval_is_null, eval_like};
use self::tri::Tri;
use self::values::Vals;
use crate::compare::Dyn;
use crate::depth::{SHALLOW_DEPTH, on_big_stack};
use crate::error::ExprError;
use crate::ir::{ColKind, PExpr, Plan, VExpr};
use crate::source::ColumnSource;

impl Plan {
    /// The rows of `src` that match (where the expression is *true*): one bit per row,
    /// set for a match; its length is the number of rows.
    pub fn evaluate(&self, src: &dyn ColumnSource) -> Result<FixedBitSet, ExprError> {
        let n = src.num_rows();
        let Some(p) = &self.root else {
            return Ok(bits::ones(n));
        };
        if self.depth > SHALLOW_DEPTH {
            return on_big_stack(|| eval_pred(p, src, n).map(|t| t.t))?;
        }
        Ok(eval_pred(p, src, n)?.t)
    }

    /// The indices of the matching rows, ascending.
    pub fn matching_rows(&self, src: &dyn ColumnSource) -> Result<Vec<usize>, ExprError> {
        Ok(self.evaluate(src)?.ones().collect())
    }

    /// How many rows match.
    pub fn count(&self, src: &dyn ColumnSource) -> Result<usize, ExprError> {
        Ok(self.evaluate(src)?.count_ones(..))
    }
}

/// The column of `field`, checked against the row count; None when absent.
fn column(src: &dyn ColumnSource, field: FieldId, n: usize) -> Result<Option<&Column>, ExprError> {
    let Some(c) = src.column(field) else {
        return Ok(None);
    };
    if c.len() != n {
        return Err(ExprError::eval(format!("column of field {field} has {} rows, expected {n}", c.len())));
    }
    if let Some(v) = &c.valid
        && v.len() != n
    {
        return Err(ExprError::eval(format!("column of field {field} has {} validity flags, expected {n}", v.len())));
    }
    Ok(Some(c))
}

/// Whether the column holds the storage the plan was compiled for.
fn kind_matches(kind: ColKind, data: &ColumnData) -> bool {
    matches!(
        (kind, data),
        (ColKind::Bool, ColumnData::Bool(_))
            | (ColKind::Int8, ColumnData::Int8(_))
            | (ColKind::Int16, ColumnData::Int16(_))
            | (ColKind::Int32, ColumnData::Int32(_))
            | (ColKind::Int64, ColumnData::Int64(_))
            | (ColKind::Float, ColumnData::Float(_))
            | (ColKind::Double, ColumnData::Double(_))
            | (ColKind::VarChar, ColumnData::VarChar(_))
    )
}

/// The values of `v` over the `n` rows of `src`.
fn eval_value<'a>(v: &'a VExpr, src: &'a dyn ColumnSource, n: usize) -> Result<Vals<'a>, ExprError> {
    Ok(match v {
        VExpr::Lit(l) => Vals::Lit(l),
        VExpr::Column { field, kind } => match column(src, *field, n)? {
            None => Vals::Null,
            Some(c) => {
                if !kind_matches(*kind, &c.data) {
                    return Err(ExprError::eval(format!(
                        "column of field {field} holds {} data, the filter expects {kind:?}",
                        c.data.data_type().as_str_name()
                    )));
                }
                Vals::Col { data: &c.data, valid: c.valid.as_deref().map(bits::from_bools) }
            }
        },
        VExpr::Json { field, path } => match column(src, *field, n)? {
            None => Vals::Null,
            Some(c) => {
                let ColumnData::Json(rows) = &c.data else {
                    return Err(ExprError::eval(format!(
                        "column of field {field} holds {} data, the filter expects JSON",
                        c.data.data_type().as_str_name()
                    )));
                };
                let d = rows
                    .iter()
                    .enumerate()
                    .map(|(i, row)| {
                        if !c.is_valid(i) {
                            return Dyn::Missing;
                        }
                        resolve(row, path).map_or(Dyn::Missing, Dyn::of_json)
                    })
                    .collect();
                Vals::Dyn(d)
            }
        },
        VExpr::Arith { op, lhs, rhs, ty } => {
            let l = eval_value(lhs, src, n)?;
            let r = eval_value(rhs, src, n)?;
            arith_vals(*op, &l, &r, *ty, n)
        }
        VExpr::Neg { expr, .. } => neg_vals(&eval_value(expr, src, n)?, n),
        VExpr::ArrayLength(inner) => {
            let x = eval_value(inner, src, n)?;
            Vals::Dyn(
                (0..n)
                    .map(|i| match x.dyn_at(i) {
                        Dyn::Json(Value::Array(a)) => Dyn::Int(a.len() as i64),
                        _ => Dyn::Null,
                    })
                    .collect(),
            )
        }
    })
}

/// The three-valued result of `p` over the `n` rows of `src`.
fn eval_pred(p: &PExpr, src: &dyn ColumnSource, n: usize) -> Result<Tri, ExprError> {
    Ok(match p {
        PExpr::Const(b) => Tri::constant(*b, n),
        PExpr::And(items) => {
            let mut acc = Tri::constant(true, n);
            for it in items {
                acc.and_with(&eval_pred(it, src, n)?);
                if acc.f.is_full() {
                    break;
                }
            }
            acc
        }
        PExpr::Or(items) => {
            let mut acc = Tri::constant(false, n);
            for it in items {
                acc.or_with(&eval_pred(it, src, n)?);
                if acc.t.is_full() {
                    break;
                }
            }
            acc
        }
        PExpr::Not(x) => eval_pred(x, src, n)?.not(),
        PExpr::Cmp { lhs, op, rhs } => {
            let l = eval_value(lhs, src, n)?;
            let r = eval_value(rhs, src, n)?;
            compare(&l, *op, &r, n)
        }
        PExpr::Range { value, lower, upper } => {
            let v = eval_value(value, src, n)?;
            let mut t = compare_lit(&v, lower.0, &lower.1, n);
            t.and_with(&compare_lit(&v, upper.0, &upper.1, n));
            t
        }
        PExpr::In { value, list, set, negated } => {
            let t = eval_in(&eval_value(value, src, n)?, set, list, n);
            if *negated { t.not() } else { t }
        }
        PExpr::Like { value, pattern } => eval_like(&eval_value(value, src, n)?, pattern, n),
        PExpr::IsNull { value, negated } => {
            let t = Tri::from_known(eval_is_null(&eval_value(value, src, n)?, n));
            if *negated { t.not() } else { t }
        }
        PExpr::Truthy(value) => {
            let v = eval_value(value, src, n)?;
            match &v {
                Vals::Col { data: ColumnData::Bool(s), valid } => Tri::from_raw(bits::from_bools(s), valid.as_ref()),
                _ => Tri::from_opt(n, |i| match v.dyn_at(i) {
                    Dyn::Bool(b) => Some(b),
                    _ => None,
                }),
            }
        }
        PExpr::Contains { value, mode, items } => {
            let v = eval_value(value, src, n)?;
            Tri::from_opt(n, |i| match v.dyn_at(i) {
                Dyn::Json(Value::Array(a)) => Some(contains_row(a, *mode, items)),
                _ => None,
            })
        }
        PExpr::Exists(value) => {
            let v = eval_value(value, src, n)?;
            Tri::from_known(bits::from_fn(n, |i| v.dyn_at(i) != Dyn::Missing))
        }
    })
}

//! The compiled filter: the typed tree that [`compile`](crate::compile) produces and the
//! evaluator runs, with what can be read off it without evaluating (the fields it reads,
//! the primary keys it names).
//!
//! Names are resolved to field ids, constants are [`Lit`]s, `in` lists come with a lookup
//! set shaped for the tested column ([`InSet`]). [`Plan::evaluate`] lives with the
//! evaluator (`eval.rs`).

use std::collections::HashSet;

use fv_common::bitset::FixedBitSet;
use fv_common::schema::Schema;
use fv_common::{FieldId, PrimaryKey};
use fv_proto::schema::DataType;

use crate::ast::{ArithOp, CmpOp, PathElem};
use crate::like::LikePattern;

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Lit>),
}

/// The static type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Bool,
    Int,
    Float,
    Str,
    /// A JSON value: its type is only known per row.
    Json,
    /// An array literal (only in `in` lists, JSON comparisons and function arguments).
    Array,
}

impl Ty {
    /// How the type reads in an error message.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Int => "integer",
            Ty::Float => "float",
            Ty::Str => "string",
            Ty::Json => "JSON",
            Ty::Array => "array",
        }
    }
    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }
}

/// How a typed scalar column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColKind {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float,
    Double,
    VarChar,
}

impl ColKind {
    /// The storage of a schema type; None for the types filters cannot read.
    pub(crate) fn of(t: DataType) -> Option<ColKind> {
        Some(match t {
            DataType::Bool => ColKind::Bool,
            DataType::Int8 => ColKind::Int8,
            DataType::Int16 => ColKind::Int16,
            DataType::Int32 => ColKind::Int32,
            DataType::Int64 => ColKind::Int64,
            DataType::Float => ColKind::Float,
            DataType::Double => ColKind::Double,
            DataType::VarChar | DataType::String => ColKind::VarChar,
            _ => return None,
        })
    }
    pub(crate) fn ty(self) -> Ty {
        match self {
            ColKind::Bool => Ty::Bool,
            ColKind::Int8 | ColKind::Int16 | ColKind::Int32 | ColKind::Int64 => Ty::Int,
            ColKind::Float | ColKind::Double => Ty::Float,
            ColKind::VarChar => Ty::Str,
        }
    }
}

/// A value-producing expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum VExpr {
    Column {
        field: FieldId,
        kind: ColKind,
    },
    Json {
        field: FieldId,
        path: Vec<PathElem>,
    },
    Lit(Lit),
    Arith {
        op: ArithOp,
        lhs: Box<VExpr>,
        rhs: Box<VExpr>,
        ty: Ty,
    },
    Neg {
        expr: Box<VExpr>,
        ty: Ty,
    },
    /// `array_length(json path)`: the length of a JSON array, null otherwise.
    ArrayLength(Box<VExpr>),
}

/// The constant set of an `in` test, shaped for the type of the tested value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InSet {
    Ints(IntSet),
    /// Sorted by total order, deduplicated, no negative zero.
    Floats(Vec<f64>),
    Strs(HashSet<String>),
    Bools {
        has_true: bool,
        has_false: bool,
    },
    /// Per-row comparison against the literals (JSON values).
    Dyn,
}

/// A set of integers: sorted for binary search, plus a bit table when the values span
/// a small range (the common case of ids and codes), for a branch-light lookup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IntSet {
    sorted: Vec<i64>,
    /// (minimum, one bit per value from the minimum)
    dense: Option<(i64, FixedBitSet)>,
}

impl IntSet {
    /// Sets spanning at most this many values get a bit table (8 KiB).
    const DENSE_SPAN: u64 = 1 << 16;

    pub(crate) fn new(mut values: Vec<i64>) -> IntSet {
        values.sort_unstable();
        values.dedup();
        let dense = match (values.first(), values.last()) {
            (Some(&lo), Some(&hi)) if values.len() > 8 && (hi.wrapping_sub(lo) as u64) < Self::DENSE_SPAN => {
                let span = (hi.wrapping_sub(lo) as u64 + 1) as usize;
                let mut bits = FixedBitSet::with_capacity(span);
                for v in &values {
                    bits.insert(v.wrapping_sub(lo) as u64 as usize);
                }
                Some((lo, bits))
            }
            _ => None,
        };
        IntSet { sorted: values, dense }
    }

    #[inline]
    pub(crate) fn contains(&self, x: i64) -> bool {
        if let Some((lo, bits)) = &self.dense {
            // Values below the minimum wrap to large offsets, outside the table.
            let off = x.wrapping_sub(*lo) as u64;
            return usize::try_from(off).is_ok_and(|o| bits.contains(o));
        }
        if self.sorted.len() <= 8 { self.sorted.contains(&x) } else { self.sorted.binary_search(&x).is_ok() }
    }
}

/// Which of the listed items a `json_contains*` test needs in the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainsMode {
    /// `json_contains(f, v)`: the one item.
    One,
    /// `json_contains_all(f, [..])`: every item.
    All,
    /// `json_contains_any(f, [..])`: at least one item.
    Any,
}

/// A boolean (three-valued) expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PExpr {
    Const(bool),
    And(Vec<PExpr>),
    Or(Vec<PExpr>),
    Not(Box<PExpr>),
    /// `lhs op rhs`; when one side is a constant it is `rhs`.
    Cmp {
        lhs: VExpr,
        op: CmpOp,
        rhs: VExpr,
    },
    /// `value op1 lo and value op2 hi` with constant bounds, `value` evaluated once.
    Range {
        value: VExpr,
        lower: (CmpOp, Lit),
        upper: (CmpOp, Lit),
    },
    In {
        value: VExpr,
        list: Vec<Lit>,
        set: InSet,
        negated: bool,
    },
    Like {
        value: VExpr,
        pattern: LikePattern,
    },
    IsNull {
        value: VExpr,
        negated: bool,
    },
    /// A bool field or JSON path used as a predicate.
    Truthy(VExpr),
    Contains {
        value: VExpr,
        mode: ContainsMode,
        items: Vec<Lit>,
    },
    Exists(VExpr),
}

/// A compiled filter: resolved against a schema, type-checked, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub(crate) root: Option<PExpr>,
    /// Depth of `root` (decides whether evaluation needs a big stack).
    pub(crate) depth: usize,
}

fn lit_depth(l: &Lit) -> usize {
    match l {
        Lit::Array(items) => 1 + items.iter().map(lit_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn lits_depth(items: &[Lit]) -> usize {
    items.iter().map(lit_depth).max().unwrap_or(0)
}

fn value_depth(v: &VExpr) -> usize {
    match v {
        VExpr::Column { .. } | VExpr::Json { .. } => 0,
        VExpr::Lit(l) => lit_depth(l),
        VExpr::Arith { lhs, rhs, .. } => 1 + value_depth(lhs).max(value_depth(rhs)),
        VExpr::Neg { expr, .. } | VExpr::ArrayLength(expr) => 1 + value_depth(expr),
    }
}

/// The nesting depth of a predicate tree (decides whether evaluation needs a big stack).
pub(crate) fn pred_depth(p: &PExpr) -> usize {
    match p {
        PExpr::Const(_) => 0,
        PExpr::And(items) | PExpr::Or(items) => 1 + items.iter().map(pred_depth).max().unwrap_or(0),
        PExpr::Not(x) => 1 + pred_depth(x),
        PExpr::Cmp { lhs, rhs, .. } => 1 + value_depth(lhs).max(value_depth(rhs)),
        PExpr::In { value, list: items, .. } | PExpr::Contains { value, items, .. } => {
            1 + value_depth(value).max(lits_depth(items))
        }
        PExpr::Range { value, .. }
        | PExpr::Like { value, .. }
        | PExpr::IsNull { value, .. }
        | PExpr::Truthy(value)
        | PExpr::Exists(value) => 1 + value_depth(value),
    }
}

impl Plan {
    /// A plan that matches every row.
    pub fn match_all() -> Plan {
        Plan { root: None, depth: 0 }
    }

    /// True for the empty expression (and anything that folded to constant `true`).
    pub fn is_always_true(&self) -> bool {
        matches!(self.root, None | Some(PExpr::Const(true)))
    }

    /// The ids of the fields the expression reads, ascending.
    pub fn referenced_fields(&self) -> Vec<FieldId> {
        let mut out = Vec::new();
        if let Some(r) = &self.root {
            pred_fields(r, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `Some(keys)` when the expression is exactly `pk == v`, `pk in [..]` or an `or` of
    /// those (keys deduplicated, in order of appearance), so that a delete or get can go
    /// straight to the keys without a scan.
    pub fn as_primary_keys(&self, schema: &Schema) -> Option<Vec<PrimaryKey>> {
        let pk = schema.pk();
        let is_int = match pk.data_type {
            DataType::Int64 => true,
            DataType::VarChar | DataType::String => false,
            _ => return None,
        };
        let mut keys = Vec::new();
        if !pk_keys(self.root.as_ref()?, pk.id, is_int, &mut keys) {
            return None;
        }
        let mut seen = HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        Some(keys)
    }
}

fn lit_key(l: &Lit, is_int: bool) -> Option<PrimaryKey> {
    match (l, is_int) {
        (Lit::Int(v), true) => Some(PrimaryKey::Int(*v)),
        (Lit::Str(s), false) => Some(PrimaryKey::Str(s.clone())),
        _ => None,
    }
}

fn pk_keys(p: &PExpr, pk: FieldId, is_int: bool, out: &mut Vec<PrimaryKey>) -> bool {
    match p {
        PExpr::Cmp { lhs: VExpr::Column { field, .. }, op: CmpOp::Eq, rhs: VExpr::Lit(l) } if *field == pk => {
            lit_key(l, is_int).map(|k| out.push(k)).is_some()
        }
        PExpr::In { value: VExpr::Column { field, .. }, list, negated: false, .. } if *field == pk => {
            list.iter().all(|l| lit_key(l, is_int).map(|k| out.push(k)).is_some())
        }
        PExpr::Or(items) => items.iter().all(|i| pk_keys(i, pk, is_int, out)),
        _ => false,
    }
}

fn value_fields(v: &VExpr, out: &mut Vec<FieldId>) {
    match v {
        VExpr::Column { field, .. } | VExpr::Json { field, .. } => out.push(*field),
        VExpr::Lit(_) => {}
        VExpr::Arith { lhs, rhs, .. } => {
            value_fields(lhs, out);
            value_fields(rhs, out);
        }
        VExpr::Neg { expr, .. } | VExpr::ArrayLength(expr) => value_fields(expr, out),
    }
}

fn pred_fields(p: &PExpr, out: &mut Vec<FieldId>) {
    match p {
        PExpr::Const(_) => {}
        PExpr::And(items) | PExpr::Or(items) => items.iter().for_each(|i| pred_fields(i, out)),
        PExpr::Not(x) => pred_fields(x, out),
        PExpr::Cmp { lhs, rhs, .. } => {
            value_fields(lhs, out);
            value_fields(rhs, out);
        }
        PExpr::Range { value, .. }
        | PExpr::In { value, .. }
        | PExpr::Like { value, .. }
        | PExpr::IsNull { value, .. }
        | PExpr::Truthy(value)
        | PExpr::Contains { value, .. }
        | PExpr::Exists(value) => value_fields(value, out),
    }
}

/// The static type of a constant.
pub(crate) fn lit_ty(l: &Lit) -> Ty {
    match l {
        Lit::Bool(_) => Ty::Bool,
        Lit::Int(_) => Ty::Int,
        Lit::Float(_) => Ty::Float,
        Lit::Str(_) => Ty::Str,
        Lit::Array(_) => Ty::Array,
    }
}

/// A constant as it would be written in an expression (for error messages).
pub(crate) fn lit_text(l: &Lit) -> String {
    match l {
        Lit::Bool(b) => b.to_string(),
        Lit::Int(v) => v.to_string(),
        Lit::Float(v) => format!("{v:?}"),
        Lit::Str(s) => {
            let mut out = String::new();
            let _ = crate::ast::write_str_literal(&mut out, s);
            out
        }
        Lit::Array(items) => format!("[{}]", items.iter().map(lit_text).collect::<Vec<_>>().join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_sets_small_sparse_and_dense() {
        let small = IntSet::new(vec![5, -3, 5]);
        assert!(small.dense.is_none());
        assert!(small.contains(5) && small.contains(-3) && !small.contains(4));
        let sparse = IntSet::new((0..20).map(|i| i * 1_000_000).collect());
        assert!(sparse.dense.is_none());
        assert!(sparse.contains(3_000_000) && !sparse.contains(3_000_001));
        let dense = IntSet::new((0..20).map(|i| i * 3 - 10).collect());
        assert!(dense.dense.is_some());
        for x in -20..70 {
            assert_eq!(dense.contains(x), (-10..=47).contains(&x) && (x + 10) % 3 == 0, "{x}");
        }
        assert!(!dense.contains(i64::MIN) && !dense.contains(i64::MAX));
        let edge = IntSet::new((0..10).map(|i| i64::MAX - i).collect());
        assert!(edge.contains(i64::MAX) && edge.contains(i64::MAX - 9) && !edge.contains(i64::MIN));
    }

    #[test]
    fn depth_and_fields() {
        let col = |field| VExpr::Column { field, kind: ColKind::Int64 };
        let cmp = |field| PExpr::Cmp { lhs: col(field), op: CmpOp::Gt, rhs: VExpr::Lit(Lit::Int(1)) };
        let p = PExpr::And(vec![cmp(7), PExpr::Not(Box::new(PExpr::Or(vec![cmp(3), cmp(7)])))]);
        assert_eq!(pred_depth(&p), 4);
        let plan = Plan { root: Some(p), depth: 4 };
        assert_eq!(plan.referenced_fields(), vec![3, 7]);
        assert!(!plan.is_always_true());
        assert!(Plan::match_all().is_always_true());
        assert!(Plan::match_all().referenced_fields().is_empty());
    }

    #[test]
    fn literal_text_and_types() {
        let l = Lit::Array(vec![Lit::Int(1), Lit::Float(2.0), Lit::Str("a\"b".into()), Lit::Bool(true)]);
        assert_eq!(lit_text(&l), r#"[1, 2.0, "a\"b", true]"#);
        assert_eq!(lit_ty(&l), Ty::Array);
        assert_eq!(lit_ty(&Lit::Float(0.5)).name(), "float");
        assert!(Ty::Int.is_numeric() && !Ty::Json.is_numeric());
        assert_eq!(ColKind::of(DataType::String), Some(ColKind::VarChar));
        assert_eq!(ColKind::of(DataType::FloatVector), None);
    }
}

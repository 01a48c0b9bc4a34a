//! Name resolution and type checking: from [`Ast`] to the typed [`Plan`] that the
//! evaluator runs.

use std::collections::{HashMap, HashSet};

use fv_common::schema::Schema;
use fv_common::{FieldId, PrimaryKey};
use fv_proto::schema::{DataType, TemplateArrayValue, TemplateValue, template_array_value, template_value};

use crate::ast::{ArithOp, Ast, CmpOp, Expr, ExprKind, PathElem};
use crate::error::{ExprError, ExprErrorKind};
use crate::like::LikePattern;
use crate::{MAX_DEPTH, SHALLOW_DEPTH, on_big_stack};

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
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Int => "integer",
            Ty::Float => "float",
            Ty::Str => "string",
            Ty::Json => "JSON",
            Ty::Array => "array",
        }
    }
    fn is_numeric(self) -> bool {
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
    fn of(t: DataType) -> Option<ColKind> {
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
    fn ty(self) -> Ty {
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
    dense: Option<(i64, Vec<u64>)>,
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
                let mut bits = vec![0u64; span.div_ceil(64)];
                for v in &values {
                    let off = v.wrapping_sub(lo) as u64 as usize;
                    bits[off / 64] |= 1 << (off % 64);
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
            let off = x.wrapping_sub(*lo) as u64;
            return bits.get((off / 64) as usize).is_some_and(|w| w >> (off % 64) & 1 == 1);
        }
        if self.sorted.len() <= 8 { self.sorted.contains(&x) } else { self.sorted.binary_search(&x).is_ok() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainsMode {
    One,
    All,
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

/// Parses `expr`, resolves its names against `schema`, binds `{name}` placeholders from
/// `params` and type-checks it.
pub fn compile(expr: &str, schema: &Schema, params: &HashMap<String, TemplateValue>) -> Result<Plan, ExprError> {
    let ast = crate::parse(expr)?;
    compile_ast(&ast, schema, params)
}

/// [`compile`] for an already parsed expression.
pub fn compile_ast(ast: &Ast, schema: &Schema, params: &HashMap<String, TemplateValue>) -> Result<Plan, ExprError> {
    let Some(root) = &ast.root else {
        return Ok(Plan::match_all());
    };
    let depth = root.depth();
    if depth > MAX_DEPTH {
        return Err(ExprError::new(
            ExprErrorKind::TooDeep,
            format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
            Some(root.pos),
        ));
    }
    let run = || {
        let c = Compiler { schema, params };
        let p = c.pred(root)?;
        let depth = pred_depth(&p);
        Ok(Plan { root: Some(p), depth })
    };
    if depth > SHALLOW_DEPTH { on_big_stack(run)? } else { run() }
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

fn pred_depth(p: &PExpr) -> usize {
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

/// A compiled value with what the checker needs to know about it.
struct Operand<'e> {
    v: VExpr,
    ty: Ty,
    node: &'e Expr,
    /// The schema type of a typed column.
    dt: Option<DataType>,
}

impl Operand<'_> {
    /// How the operand reads in an error message: `field age (Int64)`,
    /// `string literal "x"`, `JSON value info["a"]`, `integer expression (a + 1)`.
    fn describe(&self) -> String {
        match (&self.v, &self.node.kind) {
            (VExpr::Column { .. }, _) => {
                format!("field {} ({})", self.node, self.dt.map_or("unknown", |d| d.as_str_name()))
            }
            (VExpr::Json { .. }, _) => format!("JSON value {}", self.node),
            (VExpr::Lit(_), ExprKind::Template(_)) => {
                format!("template value {} of type {}", self.node, self.ty.name())
            }
            (VExpr::Lit(_), _) => format!("{} literal {}", self.ty.name(), self.node),
            _ => format!("{} expression {}", self.ty.name(), self.node),
        }
    }
    fn lit(&self) -> Option<&Lit> {
        match &self.v {
            VExpr::Lit(l) => Some(l),
            _ => None,
        }
    }
}

fn lit_ty(l: &Lit) -> Ty {
    match l {
        Lit::Bool(_) => Ty::Bool,
        Lit::Int(_) => Ty::Int,
        Lit::Float(_) => Ty::Float,
        Lit::Str(_) => Ty::Str,
        Lit::Array(_) => Ty::Array,
    }
}

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

struct Compiler<'s> {
    schema: &'s Schema,
    params: &'s HashMap<String, TemplateValue>,
}

fn not_boolean(o: &Operand<'_>) -> ExprError {
    ExprError::type_err(format!("expected a boolean expression, got {}", o.describe()), o.node.pos)
}

/// A float literal compared with a Float (f32) column is rounded to f32 first, as
/// Milvus does, so that `f == 0.1` finds the rows that stored 0.1.
fn round_for(col: &VExpr, l: Lit) -> Lit {
    match (col, l) {
        (VExpr::Column { kind: ColKind::Float, .. }, Lit::Float(v)) => Lit::Float(f64::from(v as f32)),
        (VExpr::Column { kind: ColKind::Float, .. }, Lit::Int(v)) => Lit::Float(f64::from(v as f32)),
        (_, l) => l,
    }
}

fn and_of(items: Vec<PExpr>) -> PExpr {
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        match i {
            PExpr::Const(true) => {}
            PExpr::Const(false) => return PExpr::Const(false),
            PExpr::And(inner) => out.extend(inner),
            other => out.push(other),
        }
    }
    match out.len() {
        0 => PExpr::Const(true),
        1 => out.pop().unwrap_or(PExpr::Const(true)),
        _ => PExpr::And(out),
    }
}

fn or_of(items: Vec<PExpr>) -> PExpr {
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        match i {
            PExpr::Const(false) => {}
            PExpr::Const(true) => return PExpr::Const(true),
            PExpr::Or(inner) => out.extend(inner),
            other => out.push(other),
        }
    }
    match out.len() {
        0 => PExpr::Const(false),
        1 => out.pop().unwrap_or(PExpr::Const(false)),
        _ => PExpr::Or(out),
    }
}

impl<'s> Compiler<'s> {
    fn pred(&self, e: &Expr) -> Result<PExpr, ExprError> {
        match &e.kind {
            ExprKind::And(items) => Ok(and_of(items.iter().map(|i| self.pred(i)).collect::<Result<_, _>>()?)),
            ExprKind::Or(items) => Ok(or_of(items.iter().map(|i| self.pred(i)).collect::<Result<_, _>>()?)),
            ExprKind::Not(x) => Ok(match self.pred(x)? {
                PExpr::Const(b) => PExpr::Const(!b),
                // not not p == p in three-valued logic too.
                PExpr::Not(p) => *p,
                p => PExpr::Not(Box::new(p)),
            }),
            ExprKind::Compare { op, lhs, rhs } => self.compare(*op, lhs, rhs, e.pos),
            ExprKind::Range { lower, lower_op, value, upper_op, upper } => {
                self.range(lower, *lower_op, value, *upper_op, upper, e.pos)
            }
            ExprKind::In { value, list, negated } => self.in_list(value, list, *negated, e.pos),
            ExprKind::Like { value, pattern } => self.like(value, pattern, e.pos),
            ExprKind::IsNull { value, negated } => {
                let o = self.value(value)?;
                if !matches!(o.v, VExpr::Column { .. } | VExpr::Json { .. }) {
                    return Err(ExprError::type_err(
                        format!(
                            "'is {}null' requires a field or JSON path, got {}",
                            if *negated { "not " } else { "" },
                            o.describe()
                        ),
                        e.pos,
                    ));
                }
                Ok(PExpr::IsNull { value: o.v, negated: *negated })
            }
            ExprKind::Exists(x) => {
                let o = self.value(x)?;
                if !matches!(o.v, VExpr::Json { .. }) {
                    return Err(ExprError::type_err(
                        format!("exists requires a JSON field or path, got {}", o.describe()),
                        e.pos,
                    ));
                }
                Ok(PExpr::Exists(o.v))
            }
            ExprKind::Call { name, args } => self.call_pred(name, args, e),
            _ => {
                let o = self.value(e)?;
                match (o.ty, o.v) {
                    (Ty::Bool, VExpr::Lit(Lit::Bool(b))) => Ok(PExpr::Const(b)),
                    (Ty::Bool | Ty::Json, v @ (VExpr::Column { .. } | VExpr::Json { .. })) => Ok(PExpr::Truthy(v)),
                    (ty, v) => Err(not_boolean(&Operand { v, ty, node: o.node, dt: o.dt })),
                }
            }
        }
    }

    fn check_comparable(&self, l: &Operand<'_>, op: CmpOp, r: &Operand<'_>, pos: usize) -> Result<(), ExprError> {
        let plain = || ExprError::type_err(format!("cannot compare {} with {}", l.describe(), r.describe()), pos);
        let ordered = |what: &str| {
            ExprError::type_err(
                format!(
                    "cannot compare {} with {} using '{}' ({what} support only == and !=)",
                    l.describe(),
                    r.describe(),
                    op.as_str()
                ),
                pos,
            )
        };
        match (l.ty, r.ty) {
            (Ty::Json, Ty::Json) => Ok(()),
            (Ty::Json, Ty::Array) | (Ty::Array, Ty::Json) if op.is_ordering() => Err(ordered("arrays")),
            (Ty::Json, Ty::Bool) | (Ty::Bool, Ty::Json) if op.is_ordering() => Err(ordered("booleans")),
            (Ty::Json, _) | (_, Ty::Json) => Ok(()),
            (a, b) if a.is_numeric() && b.is_numeric() => Ok(()),
            (Ty::Str, Ty::Str) => Ok(()),
            (Ty::Bool, Ty::Bool) if op.is_ordering() => Err(ordered("booleans")),
            (Ty::Bool, Ty::Bool) => Ok(()),
            _ => Err(plain()),
        }
    }

    fn compare(&self, op: CmpOp, lhs: &Expr, rhs: &Expr, pos: usize) -> Result<PExpr, ExprError> {
        let l = self.value(lhs)?;
        let r = self.value(rhs)?;
        self.check_comparable(&l, op, &r, pos)?;
        Ok(make_cmp(l.v, op, r.v))
    }

    fn range(
        &self,
        lower: &Expr,
        lower_op: CmpOp,
        value: &Expr,
        upper_op: CmpOp,
        upper: &Expr,
        pos: usize,
    ) -> Result<PExpr, ExprError> {
        let lo = self.value(lower)?;
        let v = self.value(value)?;
        let hi = self.value(upper)?;
        self.check_comparable(&lo, lower_op, &v, pos)?;
        self.check_comparable(&v, upper_op, &hi, pos)?;
        match (lo.v, hi.v) {
            (VExpr::Lit(a), VExpr::Lit(b)) if v.lit().is_none() => Ok(PExpr::Range {
                lower: (lower_op.flip(), round_for(&v.v, a)),
                upper: (upper_op, round_for(&v.v, b)),
                value: v.v,
            }),
            (a, b) => Ok(and_of(vec![make_cmp(a, lower_op, v.v.clone()), make_cmp(v.v, upper_op, b)])),
        }
    }

    fn in_list(&self, value: &Expr, list: &Expr, negated: bool, pos: usize) -> Result<PExpr, ExprError> {
        let v = self.value(value)?;
        let l = self.value(list)?;
        let Some(Lit::Array(items)) = l.lit() else {
            return Err(ExprError::type_err(
                format!("'in' requires an array of literals, got {}", l.describe()),
                list.pos,
            ));
        };
        if v.ty == Ty::Array {
            return Err(ExprError::type_err(format!("cannot test {} with 'in'", v.describe()), pos));
        }
        for (i, item) in items.iter().enumerate() {
            let it = lit_ty(item);
            let ok = match v.ty {
                Ty::Json => true,
                Ty::Int | Ty::Float => it.is_numeric(),
                other => it == other,
            };
            if !ok {
                let at = match &list.kind {
                    ExprKind::Array(nodes) => nodes.get(i).map_or(list.pos, |n| n.pos),
                    _ => list.pos,
                };
                return Err(ExprError::type_err(
                    format!("'in' list element {} ({}) does not match {}", lit_text(item), it.name(), v.describe()),
                    at,
                ));
            }
        }
        let items = items.clone();
        if let VExpr::Lit(x) = &v.v {
            let hit = items.iter().any(|i| crate::eval::lit_eq(x, i));
            return Ok(PExpr::Const(hit != negated));
        }
        let set = build_set(&v.v, v.ty, &items);
        Ok(PExpr::In { value: v.v, list: items, set, negated })
    }

    fn like(&self, value: &Expr, pattern: &Expr, pos: usize) -> Result<PExpr, ExprError> {
        let v = self.value(value)?;
        if !matches!(v.ty, Ty::Str | Ty::Json) {
            return Err(ExprError::type_err(
                format!("like requires a VarChar field or a JSON path, got {}", v.describe()),
                pos,
            ));
        }
        let p = self.value(pattern)?;
        let Some(Lit::Str(text)) = p.lit() else {
            return Err(ExprError::type_err(
                format!("like pattern must be a string, got {}", p.describe()),
                pattern.pos,
            ));
        };
        let pattern = LikePattern::compile(text);
        if let Some(Lit::Str(s)) = v.lit() {
            return Ok(PExpr::Const(pattern.matches(s)));
        }
        Ok(PExpr::Like { value: v.v, pattern })
    }

    fn call_pred(&self, name: &str, args: &[Expr], e: &Expr) -> Result<PExpr, ExprError> {
        let lower = name.to_ascii_lowercase();
        let mode = match lower.as_str() {
            "json_contains" | "array_contains" => ContainsMode::One,
            "json_contains_all" | "array_contains_all" => ContainsMode::All,
            "json_contains_any" | "array_contains_any" => ContainsMode::Any,
            _ => {
                let o = self.value(e)?;
                return Err(not_boolean(&o));
            }
        };
        if args.len() != 2 {
            return Err(ExprError::type_err(format!("{lower} expects 2 arguments, got {}", args.len()), e.pos));
        }
        let target = self.value(&args[0])?;
        if !matches!(target.v, VExpr::Json { .. }) {
            return Err(ExprError::type_err(
                format!("{lower} requires a JSON field or path as its first argument, got {}", target.describe()),
                args[0].pos,
            ));
        }
        let what = self.value(&args[1])?;
        let items = match (mode, what.lit()) {
            (ContainsMode::One, Some(l)) => vec![l.clone()],
            (_, Some(Lit::Array(items))) => items.clone(),
            (ContainsMode::One, None) => {
                return Err(ExprError::type_err(
                    format!("{lower} requires a literal as its second argument, got {}", what.describe()),
                    args[1].pos,
                ));
            }
            _ => {
                return Err(ExprError::type_err(
                    format!("{lower} requires an array literal as its second argument, got {}", what.describe()),
                    args[1].pos,
                ));
            }
        };
        Ok(PExpr::Contains { value: target.v, mode, items })
    }

    fn value<'e>(&self, e: &'e Expr) -> Result<Operand<'e>, ExprError> {
        let lit = |l: Lit| {
            let ty = lit_ty(&l);
            Ok(Operand { v: VExpr::Lit(l), ty, node: e, dt: None })
        };
        match &e.kind {
            ExprKind::Int(v) => lit(Lit::Int(*v)),
            ExprKind::Float(v) => lit(Lit::Float(*v)),
            ExprKind::Bool(v) => lit(Lit::Bool(*v)),
            ExprKind::Str(s) => lit(Lit::Str(s.clone())),
            ExprKind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    let o = self.value(i)?;
                    match o.v {
                        VExpr::Lit(l) => out.push(l),
                        v => {
                            let o = Operand { v, ..o };
                            return Err(ExprError::type_err(
                                format!("array elements must be literals, got {}", o.describe()),
                                i.pos,
                            ));
                        }
                    }
                }
                lit(Lit::Array(out))
            }
            ExprKind::Template(name) => {
                let v = self.params.get(name).ok_or_else(|| {
                    ExprError::new(
                        ExprErrorKind::Template,
                        format!("the value of expression template variable name {{{name}}} is not found"),
                        Some(e.pos),
                    )
                })?;
                lit(template_lit(v).map_err(|why| {
                    ExprError::new(ExprErrorKind::Template, format!("template variable {{{name}}}: {why}"), Some(e.pos))
                })?)
            }
            ExprKind::Field { name, path } => self.field(name, path, e),
            ExprKind::Neg(x) => {
                let o = self.value(x)?;
                if !matches!(o.ty, Ty::Int | Ty::Float | Ty::Json) {
                    return Err(ExprError::type_err(format!("unary '-' cannot be applied to {}", o.describe()), e.pos));
                }
                let v = match o.v {
                    VExpr::Lit(Lit::Int(i)) if i != i64::MIN => VExpr::Lit(Lit::Int(-i)),
                    VExpr::Lit(Lit::Float(f)) => VExpr::Lit(Lit::Float(-f)),
                    v => VExpr::Neg { expr: Box::new(v), ty: o.ty },
                };
                Ok(Operand { v, ty: o.ty, node: e, dt: None })
            }
            ExprKind::Arith { op, lhs, rhs } => self.arith(*op, lhs, rhs, e),
            ExprKind::Call { name, args } if name.eq_ignore_ascii_case("array_length") => {
                if args.len() != 1 {
                    return Err(ExprError::type_err(
                        format!("array_length expects 1 argument, got {}", args.len()),
                        e.pos,
                    ));
                }
                let o = self.value(&args[0])?;
                if !matches!(o.v, VExpr::Json { .. }) {
                    return Err(ExprError::type_err(
                        format!("array_length requires a JSON field or path, got {}", o.describe()),
                        args[0].pos,
                    ));
                }
                Ok(Operand { v: VExpr::ArrayLength(Box::new(o.v)), ty: Ty::Json, node: e, dt: None })
            }
            ExprKind::Call { name, .. } => {
                let lower = name.to_ascii_lowercase();
                if lower.contains("contains") {
                    Err(ExprError::type_err(format!("expected a value, got boolean expression {e}"), e.pos))
                } else {
                    Err(ExprError::type_err(format!("function {name} is not supported"), e.pos))
                }
            }
            ExprKind::Not(_)
            | ExprKind::Compare { .. }
            | ExprKind::Range { .. }
            | ExprKind::In { .. }
            | ExprKind::Like { .. }
            | ExprKind::IsNull { .. }
            | ExprKind::And(_)
            | ExprKind::Or(_)
            | ExprKind::Exists(_) => {
                Err(ExprError::type_err(format!("expected a value, got boolean expression {e}"), e.pos))
            }
        }
    }

    fn field<'e>(&self, name: &str, path: &[PathElem], e: &'e Expr) -> Result<Operand<'e>, ExprError> {
        let json = |field: FieldId, path: Vec<PathElem>| {
            Ok(Operand { v: VExpr::Json { field, path }, ty: Ty::Json, node: e, dt: None })
        };
        if name == fv_common::DYNAMIC_FIELD_NAME {
            return match self.schema.dynamic() {
                Some(d) => json(d.id, path.to_vec()),
                None => Err(ExprError::new(
                    ExprErrorKind::UnknownField,
                    "field $meta not exist (the dynamic field is not enabled)",
                    Some(e.pos),
                )),
            };
        }
        if let Some(f) = self.schema.field(name).filter(|f| !f.is_dynamic) {
            if f.is_vector() {
                return Err(ExprError::type_err(
                    format!("vector field {} ({}) cannot be used in a filter", f.name, f.data_type.as_str_name()),
                    e.pos,
                ));
            }
            if f.data_type == DataType::Json {
                return json(f.id, path.to_vec());
            }
            let Some(kind) = ColKind::of(f.data_type) else {
                return Err(ExprError::type_err(
                    format!("field {} of type {} is not supported in filters", f.name, f.data_type.as_str_name()),
                    e.pos,
                ));
            };
            if !path.is_empty() {
                return Err(ExprError::type_err(
                    format!(
                        "field {} ({}) is not a JSON field and cannot be subscripted",
                        f.name,
                        f.data_type.as_str_name()
                    ),
                    e.pos,
                ));
            }
            return Ok(Operand {
                v: VExpr::Column { field: f.id, kind },
                ty: kind.ty(),
                node: e,
                dt: Some(f.data_type),
            });
        }
        if let Some(d) = self.schema.dynamic() {
            let mut full = Vec::with_capacity(path.len() + 1);
            full.push(PathElem::Key(name.to_string()));
            full.extend_from_slice(path);
            return json(d.id, full);
        }
        Err(ExprError::new(ExprErrorKind::UnknownField, format!("field {name} not exist"), Some(e.pos)))
    }

    fn arith<'e>(&self, op: ArithOp, lhs: &'e Expr, rhs: &'e Expr, e: &'e Expr) -> Result<Operand<'e>, ExprError> {
        let l = self.value(lhs)?;
        let r = self.value(rhs)?;
        for o in [&l, &r] {
            if !matches!(o.ty, Ty::Int | Ty::Float | Ty::Json) {
                return Err(ExprError::type_err(
                    format!("arithmetic operator '{}' cannot be applied to {}", op.as_str(), o.describe()),
                    e.pos,
                ));
            }
            if op == ArithOp::Mod && o.ty == Ty::Float {
                return Err(ExprError::type_err(
                    format!("operator '%' requires integer operands, got {}", o.describe()),
                    e.pos,
                ));
            }
        }
        let ty = match (l.ty, r.ty) {
            (Ty::Json, _) | (_, Ty::Json) => Ty::Json,
            (Ty::Int, Ty::Int) => Ty::Int,
            _ => Ty::Float,
        };
        if let (Some(a), Some(b)) = (l.lit(), r.lit())
            && let Some(folded) = fold_arith(op, a, b)
        {
            return Ok(Operand { v: VExpr::Lit(folded), ty, node: e, dt: None });
        }
        Ok(Operand { v: VExpr::Arith { op, lhs: Box::new(l.v), rhs: Box::new(r.v), ty }, ty, node: e, dt: None })
    }
}

/// `lhs op rhs` with a constant moved to the right, and constant pairs folded.
fn make_cmp(lhs: VExpr, op: CmpOp, rhs: VExpr) -> PExpr {
    match (lhs, rhs) {
        (VExpr::Lit(a), VExpr::Lit(b)) => PExpr::Const(crate::eval::lit_cmp(&a, op, &b) == Some(true)),
        (VExpr::Lit(a), v) => {
            let a = round_for(&v, a);
            PExpr::Cmp { lhs: v, op: op.flip(), rhs: VExpr::Lit(a) }
        }
        (v, VExpr::Lit(b)) => {
            let b = round_for(&v, b);
            PExpr::Cmp { lhs: v, op, rhs: VExpr::Lit(b) }
        }
        (l, r) => PExpr::Cmp { lhs: l, op, rhs: r },
    }
}

/// Folds arithmetic on two constants when the result is defined (no overflow, no
/// division by zero); otherwise the evaluator computes it (wrapping, or null).
fn fold_arith(op: ArithOp, a: &Lit, b: &Lit) -> Option<Lit> {
    match (a, b) {
        (Lit::Int(x), Lit::Int(y)) => {
            let (x, y) = (*x, *y);
            Some(Lit::Int(match op {
                ArithOp::Add => x.checked_add(y)?,
                ArithOp::Sub => x.checked_sub(y)?,
                ArithOp::Mul => x.checked_mul(y)?,
                ArithOp::Div => x.checked_div(y)?,
                ArithOp::Mod => x.checked_rem(y)?,
            }))
        }
        _ => {
            let x = crate::eval::lit_f64(a)?;
            let y = crate::eval::lit_f64(b)?;
            let v = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div if y != 0.0 => x / y,
                _ => return None,
            };
            v.is_finite().then_some(Lit::Float(v))
        }
    }
}

fn build_set(v: &VExpr, ty: Ty, items: &[Lit]) -> InSet {
    let f32_col = matches!(v, VExpr::Column { kind: ColKind::Float, .. });
    match ty {
        Ty::Int => {
            let out: Vec<i64> = items
                .iter()
                .filter_map(|l| match l {
                    Lit::Int(i) => Some(*i),
                    Lit::Float(f)
                        if f.fract() == 0.0 && *f >= -9.223_372_036_854_776e18 && *f < 9.223_372_036_854_776e18 =>
                    {
                        Some(*f as i64)
                    }
                    _ => None,
                })
                .collect();
            InSet::Ints(IntSet::new(out))
        }
        Ty::Float => {
            let mut out: Vec<f64> = items
                .iter()
                .filter_map(crate::eval::lit_f64)
                .map(|f| if f32_col { f64::from(f as f32) } else { f })
                .map(|f| f + 0.0)
                .collect();
            out.sort_unstable_by(f64::total_cmp);
            out.dedup();
            InSet::Floats(out)
        }
        Ty::Str => InSet::Strs(
            items
                .iter()
                .filter_map(|l| match l {
                    Lit::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        Ty::Bool => {
            InSet::Bools { has_true: items.contains(&Lit::Bool(true)), has_false: items.contains(&Lit::Bool(false)) }
        }
        Ty::Json | Ty::Array => InSet::Dyn,
    }
}

fn json_lit(v: serde_json::Value) -> Result<Lit, String> {
    Ok(match v {
        serde_json::Value::Bool(b) => Lit::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Lit::Int(i),
            None => Lit::Float(n.as_f64().ok_or("unsupported JSON number")?),
        },
        serde_json::Value::String(s) => Lit::Str(s),
        serde_json::Value::Array(items) => Lit::Array(items.into_iter().map(json_lit).collect::<Result<_, _>>()?),
        serde_json::Value::Null => return Err("JSON null is not supported".into()),
        serde_json::Value::Object(_) => return Err("JSON objects are not supported".into()),
    })
}

fn template_array_lit(a: &TemplateArrayValue) -> Result<Lit, String> {
    use template_array_value::Data;
    Ok(Lit::Array(match &a.data {
        None => Vec::new(),
        Some(Data::BoolData(x)) => x.data.iter().map(|b| Lit::Bool(*b)).collect(),
        Some(Data::LongData(x)) => x.data.iter().map(|v| Lit::Int(*v)).collect(),
        Some(Data::DoubleData(x)) => x
            .data
            .iter()
            .map(|v| if v.is_finite() { Ok(Lit::Float(*v)) } else { Err(format!("{v} is not a finite number")) })
            .collect::<Result<_, _>>()?,
        Some(Data::StringData(x)) => x.data.iter().map(|s| Lit::Str(s.clone())).collect(),
        Some(Data::ArrayData(x)) => x.data.iter().map(template_array_lit).collect::<Result<_, _>>()?,
        Some(Data::JsonData(x)) => x
            .data
            .iter()
            .map(|b| {
                serde_json::from_slice::<serde_json::Value>(b)
                    .map_err(|e| format!("invalid JSON element: {e}"))
                    .and_then(json_lit)
            })
            .collect::<Result<_, _>>()?,
    }))
}

fn template_lit(v: &TemplateValue) -> Result<Lit, String> {
    use template_value::Val;
    match &v.val {
        None => Err("the value is empty".into()),
        Some(Val::BoolVal(b)) => Ok(Lit::Bool(*b)),
        Some(Val::Int64Val(i)) => Ok(Lit::Int(*i)),
        Some(Val::FloatVal(f)) if f.is_finite() => Ok(Lit::Float(*f)),
        Some(Val::FloatVal(f)) => Err(format!("{f} is not a finite number")),
        Some(Val::StringVal(s)) => Ok(Lit::Str(s.clone())),
        Some(Val::ArrayVal(a)) => template_array_lit(a),
    }
}

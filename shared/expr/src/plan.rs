//! Name resolution and type checking: from [`Ast`] to the typed [`Plan`] (the
//! [`crate::ir`] tree) that the evaluator runs.
//!
//! Constant subtrees are folded here (with the comparison rules of [`crate::compare`], the
//! ones the evaluator applies per row); `{name}` placeholders are bound by
//! [`template`].

mod template;

use std::collections::HashMap;

use fv_common::FieldId;
use fv_common::schema::Schema;
use fv_proto::schema::{DataType, TemplateValue};

use self::template::template_lit;
use crate::ast::{ArithOp, Ast, CmpOp, Expr, ExprKind, PathElem};
use crate::compare::{lit_cmp, lit_eq, lit_f64, round_for};
use crate::depth::{MAX_DEPTH, SHALLOW_DEPTH, on_big_stack};
use crate::error::{ExprError, ExprErrorKind};
use crate::ir::{ColKind, ContainsMode, InSet, IntSet, Lit, PExpr, Plan, Ty, VExpr, lit_text, lit_ty, pred_depth};
use crate::like::LikePattern;

/// Parses `expr`, resolves its names against `schema`, binds `{name}` placeholders from
/// `params` and type-checks it.
pub fn compile(expr: &str, schema: &Schema, params: &HashMap<String, TemplateValue>) -> Result<Plan, ExprError> {
    let ast = crate::parser::parse(expr)?;
    compile_ast(&ast, schema, params)
}

/// [`compile`] with no template parameters.
pub fn compile_simple(expr: &str, schema: &Schema) -> Result<Plan, ExprError> {
    compile(expr, schema, &HashMap::new())
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

struct Compiler<'s> {
    schema: &'s Schema,
    params: &'s HashMap<String, TemplateValue>,
}

fn not_boolean(o: &Operand<'_>) -> ExprError {
    ExprError::type_err(format!("expected a boolean expression, got {}", o.describe()), o.node.pos)
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
            let hit = items.iter().any(|i| lit_eq(x, i));
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
        (VExpr::Lit(a), VExpr::Lit(b)) => PExpr::Const(lit_cmp(&a, op, &b) == Some(true)),
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
            let x = lit_f64(a)?;
            let y = lit_f64(b)?;
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
                .filter_map(lit_f64)
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

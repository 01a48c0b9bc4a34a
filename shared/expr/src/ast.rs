//! The syntax tree produced by [`crate::parse`].
//!
//! Every node carries the byte offset of the token that introduced it (the operator of
//! a binary node, the first token of anything else). `Display` prints a fully
//! parenthesised form that parses back to the same tree.

use std::fmt;

/// A parsed expression; `root == None` for an empty (or whitespace-only) expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    pub root: Option<Expr>,
}

impl Ast {
    /// The depth of the tree (0 for a single leaf or an empty expression).
    pub fn depth(&self) -> usize {
        self.root.as_ref().map_or(0, Expr::depth)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub pos: usize,
}

/// One subscript of a JSON path: `["key"]` or `[3]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathElem {
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
    /// The operator with its operands swapped: `a < b` ⇔ `b > a`.
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Eq,
            CmpOp::Ne => CmpOp::Ne,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
        }
    }
    pub fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// `[a, b, …]`, possibly empty.
    Array(Vec<Expr>),
    /// `{name}`, bound at compile time from the template parameters.
    Template(String),
    /// A field name (or `$meta`) with optional JSON subscripts: `info["a"][0]`.
    Field {
        name: String,
        path: Vec<PathElem>,
    },
    /// Unary minus.
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Arith {
        op: ArithOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Compare {
        op: CmpOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// A chained comparison `lower lower_op value upper_op upper`, both operators
    /// pointing the same way (`1 < x <= 5`, `10 > x >= 2`).
    Range {
        lower: Box<Expr>,
        lower_op: CmpOp,
        value: Box<Expr>,
        upper_op: CmpOp,
        upper: Box<Expr>,
    },
    In {
        value: Box<Expr>,
        list: Box<Expr>,
        negated: bool,
    },
    Like {
        value: Box<Expr>,
        pattern: Box<Expr>,
    },
    IsNull {
        value: Box<Expr>,
        negated: bool,
    },
    /// Two or more operands.
    And(Vec<Expr>),
    /// Two or more operands.
    Or(Vec<Expr>),
    /// A function call; `name` as written.
    Call {
        name: String,
        args: Vec<Expr>,
    },
    /// `exists path`
    Exists(Box<Expr>),
}

impl Expr {
    /// The direct sub-expressions, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Str(_)
            | ExprKind::Template(_)
            | ExprKind::Field { .. } => Vec::new(),
            ExprKind::Array(items)
            | ExprKind::And(items)
            | ExprKind::Or(items)
            | ExprKind::Call { args: items, .. } => items.iter().collect(),
            ExprKind::Neg(e) | ExprKind::Not(e) | ExprKind::Exists(e) => vec![e],
            ExprKind::Arith { lhs, rhs, .. } | ExprKind::Compare { lhs, rhs, .. } => vec![lhs, rhs],
            ExprKind::Range { lower, value, upper, .. } => vec![lower, value, upper],
            ExprKind::In { value, list, .. } => vec![value, list],
            ExprKind::Like { value, pattern } => vec![value, pattern],
            ExprKind::IsNull { value, .. } => vec![value],
        }
    }

    /// The depth of the tree under this node (0 for a leaf), computed without recursion.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 0usize)];
        while let Some((e, d)) = stack.pop() {
            max = max.max(d);
            stack.extend(e.children().into_iter().map(|c| (c, d + 1)));
        }
        max
    }
}

pub(crate) fn write_str_literal(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for PathElem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElem::Key(k) => {
                f.write_str("[")?;
                write_str_literal(f, k)?;
                f.write_str("]")
            }
            PathElem::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Int(v) => write!(f, "{v}"),
            ExprKind::Float(v) => write!(f, "{v:?}"),
            ExprKind::Bool(v) => write!(f, "{v}"),
            ExprKind::Str(s) => write_str_literal(f, s),
            ExprKind::Array(items) => {
                f.write_str("[")?;
                join(f, items, ", ")?;
                f.write_str("]")
            }
            ExprKind::Template(n) => write!(f, "{{{n}}}"),
            ExprKind::Field { name, path } => {
                f.write_str(name)?;
                path.iter().try_for_each(|p| write!(f, "{p}"))
            }
            ExprKind::Neg(e) => write!(f, "(-{e})"),
            ExprKind::Not(e) => write!(f, "(not {e})"),
            ExprKind::Arith { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.as_str()),
            ExprKind::Compare { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.as_str()),
            ExprKind::Range { lower, lower_op, value, upper_op, upper } => {
                write!(f, "({lower} {} {value} {} {upper})", lower_op.as_str(), upper_op.as_str())
            }
            ExprKind::In { value, list, negated } => {
                write!(f, "({value} {}in {list})", if *negated { "not " } else { "" })
            }
            ExprKind::Like { value, pattern } => write!(f, "({value} like {pattern})"),
            ExprKind::IsNull { value, negated } => {
                write!(f, "({value} is {}null)", if *negated { "not " } else { "" })
            }
            ExprKind::And(items) => {
                f.write_str("(")?;
                join(f, items, " and ")?;
                f.write_str(")")
            }
            ExprKind::Or(items) => {
                f.write_str("(")?;
                join(f, items, " or ")?;
                f.write_str(")")
            }
            ExprKind::Call { name, args } => {
                write!(f, "{name}(")?;
                join(f, args, ", ")?;
                f.write_str(")")
            }
            ExprKind::Exists(e) => write!(f, "(exists {e})"),
        }
    }
}

impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.root {
            None => Ok(()),
            Some(e) => write!(f, "{e}"),
        }
    }
}

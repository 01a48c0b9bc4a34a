//! A Pratt parser from tokens to [`Ast`].

use crate::ast::{ArithOp, Ast, CmpOp, Expr, ExprKind, PathElem};
use crate::depth::{MAX_DEPTH, SHALLOW_DEPTH, on_big_stack};
use crate::error::{ExprError, ExprErrorKind};
use crate::lexer::{Tok, Token, tokenize};

// Binding powers, loosest first. A binary operator of power P applies when P >= the
// caller's minimum; its right operand is parsed with minimum P + 1 (left associative).
const BP_OR: u8 = 10;
const BP_AND: u8 = 20;
/// Operand of a prefix `not`: everything tighter than `and`.
const BP_NOT_OPERAND: u8 = 30;
const BP_EQ: u8 = 40;
const BP_REL: u8 = 50;
/// Postfix `in`, `not in`, `like`, `is [not] null`.
const BP_POSTFIX: u8 = 60;
const BP_ADD: u8 = 70;
const BP_MUL: u8 = 80;
/// Operand of unary minus/plus.
const BP_UNARY_OPERAND: u8 = 90;

/// Parses the text of a filter expression (syntax only).
pub fn parse(expr: &str) -> Result<Ast, ExprError> {
    let tokens = tokenize(expr)?;
    if tokens.len() <= 1 {
        return Ok(Ast { root: None });
    }
    // Parse on the caller's stack; input nested deeper than SHALLOW_DEPTH is parsed again
    // on a thread with a stack large enough for MAX_DEPTH.
    let mut p = Parser { tokens, at: 0, nesting: 0, limit: SHALLOW_DEPTH, hit_limit: false };
    match p.run() {
        Err(_) if p.hit_limit => {
            let Parser { tokens, .. } = p;
            on_big_stack(move || Parser { tokens, at: 0, nesting: 0, limit: MAX_DEPTH, hit_limit: false }.run())?
        }
        r => r,
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Current recursion depth of `expr`.
    nesting: usize,
    /// The recursion depth allowed on this thread's stack.
    limit: usize,
    /// Whether parsing stopped at `limit` (below MAX_DEPTH).
    hit_limit: bool,
}

fn rel_op(t: &Tok) -> Option<CmpOp> {
    Some(match t {
        Tok::Lt => CmpOp::Lt,
        Tok::Le => CmpOp::Le,
        Tok::Gt => CmpOp::Gt,
        Tok::Ge => CmpOp::Ge,
        _ => return None,
    })
}

fn too_deep(pos: usize) -> ExprError {
    ExprError::new(
        ExprErrorKind::TooDeep,
        format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
        Some(pos),
    )
}

/// A node and the depth of the tree under it.
type Parsed = (Expr, usize);

/// What the parser does with the token after a complete operand. Computed from a
/// borrowed token so that the recursive path keeps small stack frames (the functions
/// on it are kept tiny on purpose: unoptimised builds give every temporary its own slot).
#[derive(Clone, Copy)]
enum Infix {
    Or,
    And,
    Eq(CmpOp),
    Rel,
    In { negated: bool },
    Like,
    Is,
    Arith(ArithOp, u8),
    Stop,
}

enum Step {
    More(Parsed),
    Done(Parsed),
}

#[cold]
#[inline(never)]
fn unexpected(t: &Token) -> ExprError {
    if t.tok == Tok::Eof {
        ExprError::syntax("unexpected end of expression", t.pos)
    } else {
        ExprError::syntax(format!("unexpected token {}", t.tok.describe()), t.pos)
    }
}

#[cold]
#[inline(never)]
fn expected(what: &str, t: &Token) -> ExprError {
    ExprError::syntax(format!("expected {what}, found {}", t.tok.describe()), t.pos)
}

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `at` never passes it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.at + ahead).min(self.tokens.len() - 1)].tok
    }

    /// Moves past the current token and returns its position.
    fn skip(&mut self) -> usize {
        let pos = self.peek().pos;
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        pos
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        self.skip();
        t
    }

    fn expect(&mut self, want: Tok) -> Result<Token, ExprError> {
        if self.peek().tok == want {
            return Ok(self.bump());
        }
        Err(expected(&want.describe(), self.peek()))
    }

    fn node(kind: ExprKind, pos: usize, depth: usize) -> Result<Parsed, ExprError> {
        if depth > MAX_DEPTH {
            return Err(too_deep(pos));
        }
        Ok((Expr { kind, pos }, depth))
    }

    fn run(&mut self) -> Result<Ast, ExprError> {
        let (root, _) = self.expr(0)?;
        if self.peek().tok != Tok::Eof {
            return Err(unexpected(self.peek()));
        }
        Ok(Ast { root: Some(root) })
    }

    fn expr(&mut self, min_bp: u8) -> Result<Parsed, ExprError> {
        self.nesting += 1;
        if self.nesting > self.limit {
            self.hit_limit = self.limit < MAX_DEPTH;
            return Err(too_deep(self.peek().pos));
        }
        let r = self.expr_inner(min_bp);
        self.nesting -= 1;
        r
    }

    fn expr_inner(&mut self, min_bp: u8) -> Result<Parsed, ExprError> {
        let mut lhs = self.prefix()?;
        loop {
            match self.infix(lhs, min_bp)? {
                Step::More(x) => lhs = x,
                Step::Done(x) => return Ok(x),
            }
        }
    }

    fn classify(&self) -> Infix {
        match &self.peek().tok {
            Tok::Or => Infix::Or,
            Tok::And => Infix::And,
            Tok::Eq => Infix::Eq(CmpOp::Eq),
            Tok::Ne => Infix::Eq(CmpOp::Ne),
            Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge => Infix::Rel,
            Tok::In => Infix::In { negated: false },
            Tok::Not if *self.peek_at(1) == Tok::In => Infix::In { negated: true },
            Tok::Like => Infix::Like,
            Tok::Ident(w) if w.eq_ignore_ascii_case("is") => Infix::Is,
            Tok::Plus => Infix::Arith(ArithOp::Add, BP_ADD),
            Tok::Minus => Infix::Arith(ArithOp::Sub, BP_ADD),
            Tok::Star => Infix::Arith(ArithOp::Mul, BP_MUL),
            Tok::Slash => Infix::Arith(ArithOp::Div, BP_MUL),
            Tok::Percent => Infix::Arith(ArithOp::Mod, BP_MUL),
            _ => Infix::Stop,
        }
    }

    /// Applies the operator after `lhs` if it binds at least as tightly as `min_bp`.
    fn infix(&mut self, lhs: Parsed, min_bp: u8) -> Result<Step, ExprError> {
        let op = self.classify();
        let bp = match op {
            Infix::Or => BP_OR,
            Infix::And => BP_AND,
            Infix::Eq(_) => BP_EQ,
            Infix::Rel => BP_REL,
            Infix::In { .. } | Infix::Like | Infix::Is => BP_POSTFIX,
            Infix::Arith(_, bp) => bp,
            Infix::Stop => return Ok(Step::Done(lhs)),
        };
        if bp < min_bp {
            return Ok(Step::Done(lhs));
        }
        let next = match op {
            Infix::Or | Infix::And => self.nary(lhs, bp)?,
            Infix::Eq(cmp) => self.equality(lhs, cmp)?,
            Infix::Rel => self.relational(lhs)?,
            Infix::In { negated } => self.in_list(lhs, negated)?,
            Infix::Like => self.like(lhs)?,
            Infix::Is => self.is_null(lhs)?,
            Infix::Arith(aop, bp) => self.arith(lhs, aop, bp)?,
            Infix::Stop => lhs,
        };
        Ok(Step::More(next))
    }

    fn nary(&mut self, lhs: Parsed, bp: u8) -> Result<Parsed, ExprError> {
        let is_or = bp == BP_OR;
        let want = if is_or { Tok::Or } else { Tok::And };
        let pos = self.peek().pos;
        let (first, mut depth) = lhs;
        let mut items = vec![first];
        while self.peek().tok == want {
            self.skip();
            let (e, d) = self.expr(bp + 1)?;
            depth = depth.max(d);
            items.push(e);
        }
        let kind = if is_or { ExprKind::Or(items) } else { ExprKind::And(items) };
        Self::node(kind, pos, depth + 1)
    }

    fn equality(&mut self, lhs: Parsed, op: CmpOp) -> Result<Parsed, ExprError> {
        let pos = self.skip();
        let (rhs, d) = self.expr(BP_EQ + 1)?;
        let kind = ExprKind::Compare { op, lhs: Box::new(lhs.0), rhs: Box::new(rhs) };
        Self::node(kind, pos, lhs.1.max(d) + 1)
    }

    fn arith(&mut self, lhs: Parsed, op: ArithOp, bp: u8) -> Result<Parsed, ExprError> {
        let pos = self.skip();
        let (rhs, d) = self.expr(bp + 1)?;
        let kind = ExprKind::Arith { op, lhs: Box::new(lhs.0), rhs: Box::new(rhs) };
        Self::node(kind, pos, lhs.1.max(d) + 1)
    }

    fn in_list(&mut self, lhs: Parsed, negated: bool) -> Result<Parsed, ExprError> {
        let pos = self.skip();
        if negated {
            self.skip();
        }
        let (list, d) = self.expr(BP_POSTFIX + 1)?;
        let kind = ExprKind::In { value: Box::new(lhs.0), list: Box::new(list), negated };
        Self::node(kind, pos, lhs.1.max(d) + 1)
    }

    fn like(&mut self, lhs: Parsed) -> Result<Parsed, ExprError> {
        let pos = self.skip();
        let (pattern, d) = self.expr(BP_POSTFIX + 1)?;
        let kind = ExprKind::Like { value: Box::new(lhs.0), pattern: Box::new(pattern) };
        Self::node(kind, pos, lhs.1.max(d) + 1)
    }

    fn is_null(&mut self, lhs: Parsed) -> Result<Parsed, ExprError> {
        let pos = self.skip();
        let negated = self.peek().tok == Tok::Not;
        if negated {
            self.skip();
        }
        if !matches!(&self.peek().tok, Tok::Ident(w) if w.eq_ignore_ascii_case("null")) {
            return Err(expected(if negated { "'null' after 'is not'" } else { "'null' after 'is'" }, self.peek()));
        }
        self.skip();
        let kind = ExprKind::IsNull { value: Box::new(lhs.0), negated };
        Self::node(kind, pos, lhs.1 + 1)
    }

    /// `lhs < rhs`, or the chained range `lhs < value <= upper`.
    fn relational(&mut self, lhs: Parsed) -> Result<Parsed, ExprError> {
        let op = rel_op(&self.peek().tok).unwrap_or(CmpOp::Lt);
        let pos = self.skip();
        let (mid, d1) = self.expr(BP_REL + 1)?;
        let Some(op2) = rel_op(&self.peek().tok) else {
            let kind = ExprKind::Compare { op, lhs: Box::new(lhs.0), rhs: Box::new(mid) };
            return Self::node(kind, pos, lhs.1.max(d1) + 1);
        };
        let ascending = |o: CmpOp| matches!(o, CmpOp::Lt | CmpOp::Le);
        if ascending(op) != ascending(op2) {
            return Err(mixed_range(op, op2, self.peek().pos));
        }
        self.skip();
        let (upper, d2) = self.expr(BP_REL + 1)?;
        if let Some(op3) = rel_op(&self.peek().tok) {
            return Err(third_comparison(op3, self.peek().pos));
        }
        let kind = ExprKind::Range {
            lower: Box::new(lhs.0),
            lower_op: op,
            value: Box::new(mid),
            upper_op: op2,
            upper: Box::new(upper),
        };
        Self::node(kind, pos, lhs.1.max(d1).max(d2) + 1)
    }

    fn prefix(&mut self) -> Result<Parsed, ExprError> {
        let pos = self.peek().pos;
        match &self.peek().tok {
            Tok::Int(_) | Tok::Float(_) | Tok::Str(_) | Tok::True | Tok::False => self.literal(),
            Tok::Minus => self.negation(),
            Tok::Plus => {
                self.skip();
                self.expr(BP_UNARY_OPERAND)
            }
            Tok::Not => {
                self.skip();
                let (e, d) = self.expr(BP_NOT_OPERAND)?;
                Self::node(ExprKind::Not(Box::new(e)), pos, d + 1)
            }
            Tok::LParen => self.parenthesized(),
            Tok::LBracket => {
                self.skip();
                let (items, d) = self.list(Tok::RBracket)?;
                Self::node(ExprKind::Array(items), pos, d + 1)
            }
            Tok::LBrace => self.template(),
            Tok::Meta => {
                self.skip();
                self.field("$meta".to_string(), pos)
            }
            Tok::Ident(_) => self.name(),
            _ => Err(unexpected(self.peek())),
        }
    }

    fn literal(&mut self) -> Result<Parsed, ExprError> {
        let Token { tok, pos } = self.bump();
        let kind = match tok {
            Tok::Int(v) => ExprKind::Int(int_value(v, false, pos)?),
            Tok::Float(v) => ExprKind::Float(v),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::True => ExprKind::Bool(true),
            Tok::False => ExprKind::Bool(false),
            other => return Err(unexpected(&Token { tok: other, pos })),
        };
        Self::node(kind, pos, 0)
    }

    fn negation(&mut self) -> Result<Parsed, ExprError> {
        let pos = self.skip();
        // A negative literal is one literal.
        let lit = match self.peek().tok {
            Tok::Int(v) => Some(int_value(v, true, pos).map(ExprKind::Int)),
            Tok::Float(v) => Some(Ok(ExprKind::Float(-v))),
            _ => None,
        };
        if let Some(kind) = lit {
            self.skip();
            return Self::node(kind?, pos, 0);
        }
        let (e, d) = self.expr(BP_UNARY_OPERAND)?;
        Self::node(ExprKind::Neg(Box::new(e)), pos, d + 1)
    }

    fn parenthesized(&mut self) -> Result<Parsed, ExprError> {
        let open = self.skip();
        let inner = self.expr(0)?;
        if self.peek().tok != Tok::RParen {
            return Err(unclosed(open, self.peek()));
        }
        self.skip();
        Ok(inner)
    }

    fn template(&mut self) -> Result<Parsed, ExprError> {
        let pos = self.skip();
        let t = self.bump();
        let Tok::Ident(name) = t.tok else {
            return Err(expected("a template variable name after '{'", &t));
        };
        self.expect(Tok::RBrace)?;
        Self::node(ExprKind::Template(name), pos, 0)
    }

    /// A field, a function call or `exists <field>`.
    fn name(&mut self) -> Result<Parsed, ExprError> {
        let Token { tok, pos } = self.bump();
        let Tok::Ident(name) = tok else {
            return Err(unexpected(&Token { tok, pos }));
        };
        if name.eq_ignore_ascii_case("exists") && matches!(self.peek().tok, Tok::Ident(_) | Tok::Meta | Tok::LParen) {
            let (e, d) = self.expr(BP_UNARY_OPERAND)?;
            return Self::node(ExprKind::Exists(Box::new(e)), pos, d + 1);
        }
        if self.peek().tok == Tok::LParen {
            self.skip();
            let (args, d) = self.list(Tok::RParen)?;
            return Self::node(ExprKind::Call { name, args }, pos, d + 1);
        }
        self.field(name, pos)
    }

    /// Comma-separated expressions up to `close` (a trailing comma is allowed).
    fn list(&mut self, close: Tok) -> Result<(Vec<Expr>, usize), ExprError> {
        let mut items = Vec::new();
        let mut depth = 0;
        loop {
            if self.peek().tok == close {
                self.skip();
                return Ok((items, depth));
            }
            let (e, d) = self.expr(0)?;
            depth = depth.max(d);
            items.push(e);
            if self.peek().tok == Tok::Comma {
                self.skip();
            } else if self.peek().tok != close {
                return Err(expected(&format!("',' or {}", close.describe()), self.peek()));
            }
        }
    }

    /// A field name followed by optional JSON subscripts.
    fn field(&mut self, name: String, pos: usize) -> Result<Parsed, ExprError> {
        let mut path = Vec::new();
        while self.peek().tok == Tok::LBracket {
            self.skip();
            let t = self.bump();
            let elem = match t.tok {
                Tok::Str(s) => PathElem::Key(s),
                Tok::Int(v) => PathElem::Index(int_value(v, false, t.pos)?),
                _ => return Err(expected("a subscript (a string or a non-negative integer)", &t)),
            };
            path.push(elem);
            self.expect(Tok::RBracket)?;
        }
        Self::node(ExprKind::Field { name, path }, pos, 0)
    }
}

fn int_value(v: u64, negative: bool, pos: usize) -> Result<i64, ExprError> {
    let r = if negative {
        if v == 1u64 << 63 { Ok(i64::MIN) } else { i64::try_from(v).map(|x| -x) }
    } else {
        i64::try_from(v)
    };
    r.map_err(|_| out_of_range(v, negative, pos))
}

#[cold]
#[inline(never)]
fn out_of_range(v: u64, negative: bool, pos: usize) -> ExprError {
    ExprError::syntax(format!("integer literal {}{v} is out of range for Int64", if negative { "-" } else { "" }), pos)
}

#[cold]
#[inline(never)]
fn unclosed(open: usize, found: &Token) -> ExprError {
    ExprError::syntax(
        format!("expected ')' to close '(' at position {open}, found {}", found.tok.describe()),
        found.pos,
    )
}

#[cold]
#[inline(never)]
fn mixed_range(op: CmpOp, op2: CmpOp, pos: usize) -> ExprError {
    ExprError::syntax(
        format!(
            "cannot chain '{}' with '{}': a range must use '<'/'<=' twice or '>'/'>=' twice",
            op.as_str(),
            op2.as_str()
        ),
        pos,
    )
}

#[cold]
#[inline(never)]
fn third_comparison(op3: CmpOp, pos: usize) -> ExprError {
    ExprError::syntax(format!("a range chains at most two comparisons, found a third '{}'", op3.as_str()), pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fully parenthesised form of `s`.
    fn p(s: &str) -> String {
        match parse(s) {
            Ok(a) => a.to_string(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn err(s: &str) -> String {
        parse(s).expect_err(s).to_string()
    }

    #[test]
    fn empty_expression() {
        assert_eq!(parse("").expect("empty").root, None);
        assert_eq!(parse("  \n\t ").expect("blank").root, None);
    }

    #[test]
    fn literals_and_fields() {
        assert_eq!(p("a == 1"), "(a == 1)");
        assert_eq!(p("a == -1"), "(a == -1)");
        assert_eq!(p("a == 0x10"), "(a == 16)");
        assert_eq!(p("a == 0b11 or a == 0o7 or a == 010"), "((a == 3) or (a == 7) or (a == 8))");
        assert_eq!(p("a > 1.5e2"), "(a > 150.0)");
        assert_eq!(p("a > .5"), "(a > 0.5)");
        assert_eq!(p("a == -9223372036854775808"), "(a == -9223372036854775808)");
        assert_eq!(p(r#"s == 'it\'s'"#), r#"(s == "it's")"#);
        assert_eq!(p(r#"s == "tab\there""#), r#"(s == "tab\there")"#);
        assert_eq!(p("b == True and c == FALSE and d == true"), "((b == true) and (c == false) and (d == true))");
        assert_eq!(p(r#"info["a"][0]["b c"] > 1"#), r#"(info["a"][0]["b c"] > 1)"#);
        assert_eq!(p(r#"$meta["k"] == 'v'"#), r#"($meta["k"] == "v")"#);
        assert_eq!(p("$meta is not null"), "($meta is not null)");
        assert_eq!(p("a in [1, 2, 'x', ]"), r#"(a in [1, 2, "x"])"#);
        assert_eq!(p("a in []"), "(a in [])");
        assert_eq!(p("a in [ \n ]"), "(a in [])");
        assert_eq!(p("a not in [1]"), "(a not in [1])");
        assert_eq!(p("a NOT IN {ids}"), "(a not in {ids})");
        assert_eq!(p("flag"), "flag");
        assert_eq!(p("(((flag)))"), "flag");
    }

    #[test]
    fn precedence() {
        assert_eq!(p("a or b and c"), "(a or (b and c))");
        assert_eq!(p("a and b or c"), "((a and b) or c)");
        assert_eq!(p("a or b or c"), "(a or b or c)");
        assert_eq!(p("a && b || !c"), "((a and b) or (not c))");
        assert_eq!(p("not a == b"), "(not (a == b))");
        assert_eq!(p("not a and b"), "((not a) and b)");
        assert_eq!(p("NOT NOT a"), "(not (not a))");
        assert_eq!(p("(a or b) and c"), "((a or b) and c)");
        assert_eq!(p("a + b * c > d - e / f % g"), "((a + (b * c)) > (d - ((e / f) % g)))");
        assert_eq!(p("a - b - c == 0"), "(((a - b) - c) == 0)");
        assert_eq!(p("-a * 2 < 3"), "(((-a) * 2) < 3)");
        assert_eq!(p("a < b == c > d"), "((a < b) == (c > d))");
        assert_eq!(p("a + 1 in [2, 3]"), "((a + 1) in [2, 3])");
        assert_eq!(p("not a in [1] or b like 'x%'"), r#"((not (a in [1])) or (b like "x%"))"#);
        assert_eq!(p("a is null and b IS NOT NULL"), "((a is null) and (b is not null))");
        assert_eq!(p("a == 1 and not (b == 2 or c == 3)"), "((a == 1) and (not ((b == 2) or (c == 3))))");
    }

    #[test]
    fn ranges() {
        assert_eq!(p("1 < x <= 5"), "(1 < x <= 5)");
        assert_eq!(p("10 > x >= 2"), "(10 > x >= 2)");
        assert_eq!(p("1 <= x * 2 < 5 and y"), "((1 <= (x * 2) < 5) and y)");
        assert_eq!(
            err("1 < x > 5"),
            "cannot chain '<' with '>': a range must use '<'/'<=' twice or '>'/'>=' twice at position 6"
        );
        assert_eq!(err("1 < x < 5 < 7"), "a range chains at most two comparisons, found a third '<' at position 10");
    }

    #[test]
    fn functions_templates_exists() {
        assert_eq!(p("json_contains(info['tags'], 'a')"), r#"json_contains(info["tags"], "a")"#);
        assert_eq!(p("ARRAY_CONTAINS_ANY(x, [1, 2])"), "ARRAY_CONTAINS_ANY(x, [1, 2])");
        assert_eq!(p("a > {low} and b in {ids}"), "((a > {low}) and (b in {ids}))");
        assert_eq!(p("exists info['k'] and exists"), r#"((exists info["k"]) and exists)"#);
        assert_eq!(p("EXISTS (info['k']) or exists $meta['x']"), r#"((exists info["k"]) or (exists $meta["x"]))"#);
        assert_eq!(p("name like 'ab%'"), r#"(name like "ab%")"#);
        assert_eq!(p("name LIKE \"%b\\_\""), r#"(name like "%b\\_")"#);
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "a or b and c",
            "1 < x <= 5 and not (y in [1, 2.5, 'q'] or z like \"a\\\"b%\")",
            "-(a + 2) * 3 % 4 != -9223372036854775808",
            "json_contains_all($meta['x'][1], [true, false]) or {t} is null",
        ] {
            let a = parse(s).expect("first parse");
            let b = parse(&a.to_string()).expect("reparse");
            assert_eq!(a.to_string(), b.to_string(), "{s}");
        }
    }

    #[test]
    fn positions() {
        let a = parse("age >= 18").expect("parses");
        let root = a.root.expect("root");
        assert_eq!(root.pos, 4);
        let ExprKind::Compare { lhs, rhs, .. } = root.kind else { panic!("compare expected") };
        assert_eq!((lhs.pos, rhs.pos), (0, 7));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err("(a > 1"), "expected ')' to close '(' at position 0, found end of expression at position 6");
        assert_eq!(err("a > 1)"), "unexpected token ')' at position 5");
        assert_eq!(err("(a > 1) and (b < 2))"), "unexpected token ')' at position 19");
        assert_eq!(err("a > 1 and"), "unexpected end of expression at position 9");
        assert_eq!(err("a >"), "unexpected end of expression at position 3");
        assert_eq!(err("a > > 1"), "unexpected token '>' at position 4");
        assert_eq!(err("a b"), "unexpected token 'b' at position 2");
        assert_eq!(err("a in [1, 2"), "expected ',' or ']', found end of expression at position 10");
        assert_eq!(err("a in [1 2]"), "expected ',' or ']', found '2' at position 8");
        assert_eq!(err("a == 'x"), "unterminated string literal at position 5");
        assert_eq!(err("a is nul"), "expected 'null' after 'is', found 'nul' at position 5");
        assert_eq!(err("a is not"), "expected 'null' after 'is not', found end of expression at position 8");
        assert_eq!(
            err("a[b] == 1"),
            "expected a subscript (a string or a non-negative integer), found 'b' at position 2"
        );
        assert_eq!(err("a['x' == 1"), "expected ']', found '==' at position 6");
        assert_eq!(
            err("a == 9223372036854775808"),
            "integer literal 9223372036854775808 is out of range for Int64 at position 5"
        );
        assert_eq!(err("{1}"), "expected a template variable name after '{', found '1' at position 1");
        assert_eq!(err("a @ 1"), "unexpected character '@' at position 2");
        assert_eq!(err(")"), "unexpected token ')' at position 0");
        assert_eq!(err("f(a,"), "unexpected end of expression at position 4");
    }

    #[test]
    fn nesting_is_capped() {
        let deep = format!("{}a{}", "(".repeat(5000), ")".repeat(5000));
        let e = parse(&deep).expect_err("too deep");
        assert_eq!(e.kind, ExprErrorKind::TooDeep);
        let chain = format!("a{}", " + a".repeat(5000));
        assert_eq!(parse(&format!("{chain} > 1")).expect_err("too deep").kind, ExprErrorKind::TooDeep);
        let nots = format!("{}a", "not ".repeat(5000));
        assert_eq!(parse(&nots).expect_err("too deep").kind, ExprErrorKind::TooDeep);
        let exists = format!("{}a", "exists ".repeat(5000));
        assert_eq!(parse(&exists).expect_err("too deep").kind, ExprErrorKind::TooDeep);
        let arrays = format!("a in {}1{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(parse(&arrays).expect_err("too deep").kind, ExprErrorKind::TooDeep);
        // Long flat chains are fine: `or` and `and` are n-ary.
        let ors = (0..20_000).map(|i| format!("id == {i}")).collect::<Vec<_>>().join(" or ");
        assert!(parse(&ors).is_ok());
        let within = format!("{}a{}", "(".repeat(90), ")".repeat(90));
        assert!(parse(&within).is_ok());
    }
}

//! The Milvus boolean expression language: parser, type checker and vectorised evaluator.
//!
//! This is the `filter` (`expr`) of Milvus' search, query and delete. [`parse`] checks the
//! syntax and yields an [`Ast`]; [`compile`] also resolves names against a [`Schema`],
//! binds `{name}` template placeholders and type-checks, yielding a [`Plan`];
//! [`Plan::evaluate`] answers, for each row of a [`ColumnSource`] (e.g. a
//! [`SegmentData`]), whether it matches.
//!
//! # Grammar
//!
//! Operators from loosest to tightest binding:
//!
//! | level | operators | notes |
//! |---|---|---|
//! | 1 | `or` `OR` `\|\|` | n-ary |
//! | 2 | `and` `AND` `&&` | n-ary |
//! | 3 | `not` `NOT` `!` | prefix; `not a == b` is `not (a == b)` |
//! | 4 | `==` `!=` | left associative |
//! | 5 | `<` `<=` `>` `>=` | also the ranges `1 < x <= 5`, `10 > x >= 2` (both operators pointing the same way) |
//! | 6 | `in` `not in` `like` `is null` `is not null` | postfix on an arithmetic operand |
//! | 7 | `+` `-` | left associative |
//! | 8 | `*` `/` `%` | left associative |
//! | 9 | unary `-` `+` | |
//! | 10 | literals, names, `f["k"][0]`, `(…)`, `[…]`, `{name}`, calls, `exists f["k"]` | |
//!
//! Keywords `and or not in like true false` are reserved and matched without regard to
//! case (`AND`, `And`, `and`); `is`, `null` (after `is` / `is not`) and `exists` (before a
//! name or `(`) are contextual, also in any case. Literals: integers (decimal, `0x…`,
//! `0o…`, C-style octal `017`, `0b…`; a literal outside Int64 is an error), floats
//! (`1.5`, `1.`, `.5`, `1e-3`), strings in `"…"` or `'…'` with C escapes (`\n \t \r \\ \"
//! \' \a \b \f \v \? \0…\777 \xHH \uXXXX` (surrogate pairs combine) `\UXXXXXXXX`; any
//! other `\c` keeps its backslash, so LIKE patterns can escape `\%` and `\_`), booleans
//! `true`/`True`/`TRUE`/…, arrays `[1, 'a']` (also `[]`, trailing comma allowed), template
//! placeholders `{name}`. Functions (names in any case): `json_contains(f, v)`,
//! `json_contains_all(f, [..])`, `json_contains_any(f, [..])` and their `array_contains*`
//! aliases (`f` a JSON field or path holding an array), `array_length(f)`; `exists f["k"]`.
//!
//! Names: a schema field; `$meta` (the dynamic field); any other name is a key of the
//! dynamic field (`color` means `$meta["color"]`) when the schema has one, else the error
//! `field color not exist`. Subscripts `["key"]` / `[0]` walk JSON values (JSON fields and
//! the dynamic field) like a JSON pointer.
//!
//! # Types
//!
//! Int8…Int64 are integers, Float/Double floats, VarChar strings, Bool booleans; JSON
//! values are typed per row. Integers and floats compare with each other (as f64; a Float
//! (f32) field compares with a literal rounded to f32, as Milvus does); strings compare
//! with strings (byte order); booleans only with `==`/`!=`. Arithmetic works on numbers
//! and JSON values: integer arithmetic stays integral (wrapping on overflow, division
//! truncates), any float operand makes it float, `%` needs integers. Compile-time errors
//! name the field, its type and the byte position (see [`ExprError`]). A bare bool field
//! or JSON path may be a predicate; any other non-boolean expression is an error.
//!
//! # Null semantics (three-valued logic)
//!
//! Every predicate is true, false or *unknown* for a row. Unknown arises from:
//! a null row of a nullable field; a missing JSON key, JSON `null`, or a JSON value of a
//! type the operation cannot use (e.g. `info["n"] > 3` where `n` is a string); a division
//! or modulo by zero (the arithmetic result is null); a field whose column is absent from
//! the data (it reads as null). Comparisons, arithmetic, `like`, `in` and the
//! `json_contains*` functions on a null operand are unknown; a JSON `in` test whose
//! value is comparable with no element of the list is unknown, otherwise false when
//! nothing matches (`x in []` is false). `and`, `or` and `not` follow Kleene's rules
//! (`false and unknown = false`, `true or unknown = true`, `not unknown = unknown`).
//! `is null` / `is not null` and `exists` are never unknown: `is null` is true for null
//! rows of nullable fields and for missing or JSON-null paths; `exists` is true where the
//! JSON path is present (even if its value is `null`). A row matches only when the whole
//! expression is *true*; so `not (age > 30)` does not match rows where `age` is null.
//!
//! # Evaluation
//!
//! Predicates evaluate to pairs of bitmaps (definitely true / definitely false).
//! Comparisons of typed columns with constants, ranges, `in` sets, LIKE on VarChar
//! (exact / prefix / suffix / infix fast paths) and arithmetic over typed columns are
//! tight loops over the column slices; `and`/`or`/`not` are word-wise bitmap operations.
//! JSON paths are resolved per row. Nothing panics on any input; nesting deeper than
//! [`MAX_DEPTH`] is rejected, and trees deeper than a few dozen levels are parsed,
//! compiled and evaluated on a helper thread with a large stack (hence
//! [`ColumnSource`]` : Sync`), so deep input cannot overflow the caller's stack.
//!
//! # Not supported
//!
//! Bitwise operators (`& | ^ ~ << >>`), power `**`, regex `=~`/`!~`, raw strings
//! `r'…'`, hex floats, `text_match`, `phrase_match`, `random_sample`, geometry `ST_*`,
//! timestamptz `ISO`/`INTERVAL`, struct/element filters, ARRAY fields: each is a syntax or
//! type error with a position.

use std::collections::HashMap;

use fv_common::FieldId;
use fv_common::schema::Schema;
use fv_storage::{Column, SegmentData};

mod ast;
mod error;
mod eval;
mod lexer;
mod like;
mod parser;
mod plan;

pub use ast::{ArithOp, Ast, CmpOp, Expr, ExprKind, PathElem};
pub use error::{ExprError, ExprErrorKind};
pub use fv_proto::schema::TemplateValue;
pub use parser::parse;
pub use plan::{Plan, compile, compile_ast};

/// The deepest nesting of an expression (parentheses, operators, arrays) accepted.
pub const MAX_DEPTH: usize = 1000;

/// Trees deeper than this are parsed, compiled and evaluated on a helper thread with a
/// large stack, so that nesting up to [`MAX_DEPTH`] cannot overflow the caller's stack
/// (unoptimised builds use kilobytes of stack per level).
pub(crate) const SHALLOW_DEPTH: usize = 48;

/// Stack of the helper thread for deep expressions.
const BIG_STACK_BYTES: usize = 64 << 20;

/// Runs `f` on a helper thread with a [`BIG_STACK_BYTES`] stack.
pub(crate) fn on_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, ExprError> {
    let fail =
        |why: &str| ExprError::new(ExprErrorKind::TooDeep, format!("expression is too deeply nested: {why}"), None);
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("fv-expr-deep".into())
            .stack_size(BIG_STACK_BYTES)
            .spawn_scoped(s, f)
            .map_err(|e| fail(&format!("cannot start a thread for it: {e}")))?;
        handle.join().map_err(|_| fail("its evaluation failed"))
    })
}

/// Columns of a run of rows, by field id. `Sync` so that deeply nested plans can be
/// evaluated on a helper thread.
pub trait ColumnSource: Sync {
    fn num_rows(&self) -> usize;
    /// The column of `field_id`; None reads as all-null.
    fn column(&self, field_id: FieldId) -> Option<&Column>;
}

impl ColumnSource for SegmentData {
    fn num_rows(&self) -> usize {
        SegmentData::num_rows(self)
    }
    fn column(&self, field_id: FieldId) -> Option<&Column> {
        SegmentData::column(self, field_id)
    }
}

/// A set of columns without timestamps (e.g. the columns of an insert message).
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    pub num_rows: usize,
    pub columns: &'a [Column],
}

impl ColumnSource for Columns<'_> {
    fn num_rows(&self) -> usize {
        self.num_rows
    }
    fn column(&self, field_id: FieldId) -> Option<&Column> {
        self.columns.iter().find(|c| c.field_id == field_id)
    }
}

impl Plan {
    /// One flag per row of `src`: does the row match (is the expression *true* for it).
    pub fn evaluate(&self, src: &dyn ColumnSource) -> Result<Vec<bool>, ExprError> {
        Ok(self.evaluate_bitmap(src)?.to_bools())
    }

    fn evaluate_bitmap(&self, src: &dyn ColumnSource) -> Result<eval::Bitmap, ExprError> {
        let n = src.num_rows();
        let Some(p) = &self.root else {
            return Ok(eval::Bitmap::ones(n));
        };
        if self.depth > SHALLOW_DEPTH {
            return on_big_stack(|| eval::eval_pred(p, src, n).map(|t| t.t))?;
        }
        Ok(eval::eval_pred(p, src, n)?.t)
    }

    /// The indices of the matching rows, ascending.
    pub fn matching_rows(&self, src: &dyn ColumnSource) -> Result<Vec<usize>, ExprError> {
        Ok(self.evaluate(src)?.into_iter().enumerate().filter_map(|(i, m)| m.then_some(i)).collect())
    }

    /// How many rows match.
    pub fn count(&self, src: &dyn ColumnSource) -> Result<usize, ExprError> {
        Ok(self.evaluate_bitmap(src)?.count_ones())
    }
}

/// Compiles with no template parameters.
pub fn compile_simple(expr: &str, schema: &Schema) -> Result<Plan, ExprError> {
    compile(expr, schema, &HashMap::new())
}

#[cfg(test)]
mod tests;

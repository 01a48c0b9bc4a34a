//! The Milvus boolean expression language: parser, type checker and vectorised evaluator.
//!
//! This is the `filter` (`expr`) of Milvus' search, query and delete. [`parse`] checks the
//! syntax and yields an [`Ast`]; [`compile`] also resolves names against a
//! [`Schema`](fv_common::schema::Schema), binds `{name}` template placeholders and
//! type-checks, yielding a [`Plan`]; [`Plan::evaluate`] answers, for each row of a
//! [`ColumnSource`] (e.g. a [`SegmentData`](fv_storage::SegmentData)), whether it matches:
//! a bitset with one bit per row, set where the row matches.
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
//! Predicates evaluate to pairs of row bitsets (definitely true / definitely false);
//! [`Plan::evaluate`] returns the first, a [`FixedBitSet`](fv_common::bitset::FixedBitSet) with
//! one bit per row, set where the row matches, ready to be ANDed word by word with other
//! row filters (MVCC visibility, deletes) and handed to a vector index.
//! Comparisons of typed columns with constants, ranges, `in` sets, LIKE on VarChar
//! (exact / prefix / suffix / infix fast paths) and arithmetic over typed columns are
//! tight loops over the column slices; `and`/`or`/`not` are word-wise bitset operations.
//! JSON paths are resolved per row. Nothing panics on any input; nesting deeper than
//! [`MAX_DEPTH`] is rejected, and trees deeper than a few dozen levels are parsed,
//! compiled and evaluated on a helper thread with a large stack (hence
//! [`ColumnSource`]` : Sync`), so deep input cannot overflow the caller's stack.
//!
//! # Modules
//!
//! Text flows one way: `lexer` → `parser` ([`Ast`]) → `plan` (name resolution, templates,
//! type checking) → `ir` (the compiled [`Plan`] tree) → `eval` (bitsets). `compare` holds
//! the comparison rules that both the compiler (folding constants) and the evaluator
//! (per-row JSON values) apply, so `plan` and `eval` each depend on `ir` and `compare`
//! and never on each other. `depth` (nesting limits, the big-stack thread), `source`
//! ([`ColumnSource`]), `like` (LIKE patterns), `ast` and `error` are leaves.
//!
//! # Not supported
//!
//! Bitwise operators (`& | ^ ~ << >>`), power `**`, regex `=~`/`!~`, raw strings
//! `r'…'`, hex floats, `text_match`, `phrase_match`, `random_sample`, geometry `ST_*`,
//! timestamptz `ISO`/`INTERVAL`, struct/element filters, ARRAY fields: each is a syntax or
//! type error with a position.

mod ast;
mod compare;
mod depth;
mod error;
mod eval;
mod ir;
mod lexer;
mod like;
mod parser;
mod plan;
mod source;

pub use ast::{ArithOp, Ast, CmpOp, Expr, ExprKind, PathElem};
pub use depth::MAX_DEPTH;
pub use error::{ExprError, ExprErrorKind};
pub use fv_proto::schema::TemplateValue;
pub use ir::Plan;
pub use parser::parse;
pub use plan::{compile, compile_ast, compile_simple};
pub use source::{ColumnSource, Columns};

#[cfg(test)]
mod tests;

//! The type checker: unknown fields, type errors with their messages and positions, the
//! allowed mixes of types, the fields a plan reads.

use fv_proto::schema::DataType;

use super::fixtures::*;
use crate::{ExprErrorKind, compile};

fn cerr(expr: &str) -> String {
    compile(expr, &schema(), &no_params()).expect_err(expr).to_string()
}

fn cerr_kind(expr: &str) -> ExprErrorKind {
    compile(expr, &schema(), &no_params()).expect_err(expr).kind
}

#[test]
fn unknown_fields() {
    let plain = schema_with(false, DataType::Int64);
    let e = compile("age > 1", &plain, &no_params()).expect_err("unknown");
    assert_eq!(e.kind, ExprErrorKind::UnknownField);
    assert_eq!(e.to_string(), "field age not exist at position 0");
    assert_eq!(
        compile("i8 > 1 and $meta['x'] == 1", &plain, &no_params()).expect_err("no dynamic").to_string(),
        "field $meta not exist (the dynamic field is not enabled) at position 11"
    );
    // With a dynamic field the same names are dynamic keys.
    assert!(compile("age > 1", &schema(), &no_params()).is_ok());
}

#[test]
fn type_errors() {
    assert_eq!(cerr("i64 == 'abc'"), "cannot compare field i64 (Int64) with string literal \"abc\" at position 4");
    assert_eq!(cerr("'abc' < d"), "cannot compare string literal \"abc\" with field d (Double) at position 6");
    assert_eq!(cerr("s > 1"), "cannot compare field s (VarChar) with integer literal 1 at position 2");
    assert_eq!(cerr("b == 1"), "cannot compare field b (Bool) with integer literal 1 at position 2");
    assert_eq!(
        cerr("b < true"),
        "cannot compare field b (Bool) with boolean literal true using '<' (booleans support only == and !=) at position 2"
    );
    assert_eq!(cerr("i8 == s"), "cannot compare field i8 (Int8) with field s (VarChar) at position 3");
    assert_eq!(cerr("i8 == [1]"), "cannot compare field i8 (Int8) with array literal [1] at position 3");
    assert_eq!(
        cerr("j['a'] < [1]"),
        "cannot compare JSON value j[\"a\"] with array literal [1] using '<' (arrays support only == and !=) at position 7"
    );
    assert_eq!(cerr("1 < s <= 5"), "cannot compare integer literal 1 with field s (VarChar) at position 2");
    // like
    assert_eq!(
        cerr("i64 like 'a%'"),
        "like requires a VarChar field or a JSON path, got field i64 (Int64) at position 4"
    );
    assert_eq!(cerr("s like 5"), "like pattern must be a string, got integer literal 5 at position 7");
    assert_eq!(cerr("s like ns"), "like pattern must be a string, got field ns (VarChar) at position 7");
    // arithmetic
    assert_eq!(cerr("s + 1 == 'a'"), "arithmetic operator '+' cannot be applied to field s (VarChar) at position 2");
    assert_eq!(cerr("b * 2 > 1"), "arithmetic operator '*' cannot be applied to field b (Bool) at position 2");
    assert_eq!(cerr("d % 2 == 0"), "operator '%' requires integer operands, got field d (Double) at position 2");
    assert_eq!(cerr("i8 % 2.5 == 0"), "operator '%' requires integer operands, got float literal 2.5 at position 3");
    assert_eq!(cerr("-s == 'a'"), "unary '-' cannot be applied to field s (VarChar) at position 0");
    assert_eq!(
        cerr("'a' + 'b' == s"),
        "arithmetic operator '+' cannot be applied to string literal \"a\" at position 4"
    );
    // in
    assert_eq!(
        cerr("i64 in [1, 'x', 3]"),
        "'in' list element \"x\" (string) does not match field i64 (Int64) at position 11"
    );
    assert_eq!(cerr("s in ['a', 1]"), "'in' list element 1 (integer) does not match field s (VarChar) at position 11");
    assert_eq!(cerr("b in [1]"), "'in' list element 1 (integer) does not match field b (Bool) at position 6");
    assert_eq!(cerr("i64 in 5"), "'in' requires an array of literals, got integer literal 5 at position 7");
    assert_eq!(cerr("i64 in [i8]"), "array elements must be literals, got field i8 (Int8) at position 8");
    // vectors and unsupported uses
    assert_eq!(cerr("vec > 1"), "vector field vec (FloatVector) cannot be used in a filter at position 0");
    assert_eq!(cerr("vec is null"), "vector field vec (FloatVector) cannot be used in a filter at position 0");
    assert_eq!(cerr("i8[0] == 1"), "field i8 (Int8) is not a JSON field and cannot be subscripted at position 0");
    // non-boolean expressions
    assert_eq!(cerr("i64 + 1"), "expected a boolean expression, got integer expression (i64 + 1) at position 4");
    assert_eq!(cerr("i64"), "expected a boolean expression, got field i64 (Int64) at position 0");
    assert_eq!(cerr("s"), "expected a boolean expression, got field s (VarChar) at position 0");
    assert_eq!(cerr("5"), "expected a boolean expression, got integer literal 5 at position 0");
    assert_eq!(cerr("b and i8"), "expected a boolean expression, got field i8 (Int8) at position 6");
    assert_eq!(cerr("not 'x'"), "expected a boolean expression, got string literal \"x\" at position 4");
    assert_eq!(cerr("(i8 > 1) + 1 > 2"), "expected a value, got boolean expression (i8 > 1) at position 4");
    assert_eq!(cerr("i8 == 1 == true"), "expected a value, got boolean expression (i8 == 1) at position 3");
    assert_eq!(
        cerr("array_length(j['arr'])"),
        "expected a boolean expression, got JSON expression array_length(j[\"arr\"]) at position 0"
    );
    // functions
    assert_eq!(cerr("foo(i8) > 1"), "function foo is not supported at position 0");
    assert_eq!(
        cerr("json_contains(i8, 1)"),
        "json_contains requires a JSON field or path as its first argument, got field i8 (Int8) at position 14"
    );
    assert_eq!(cerr("json_contains(j)"), "json_contains expects 2 arguments, got 1 at position 0");
    assert_eq!(
        cerr("json_contains_all(j, 1)"),
        "json_contains_all requires an array literal as its second argument, got integer literal 1 at position 21"
    );
    assert_eq!(
        cerr("json_contains(j, i8)"),
        "json_contains requires a literal as its second argument, got field i8 (Int8) at position 17"
    );
    assert_eq!(cerr("exists i8"), "exists requires a JSON field or path, got field i8 (Int8) at position 0");
    assert_eq!(
        cerr("(i8 + 1) is null"),
        "'is null' requires a field or JSON path, got integer expression (i8 + 1) at position 9"
    );
    // classes
    assert_eq!(cerr_kind("i64 == 'abc'"), ExprErrorKind::Type);
    assert_eq!(cerr_kind("i64 == "), ExprErrorKind::Syntax);
}

#[test]
fn allowed_mixes() {
    let s = schema();
    for e in [
        "i8 > 1.5",
        "d == 3",
        "f < i64",
        "j['a'] == 'x' or j['a'] > 1 or j['a'] == true",
        "j == j",
        "j['a'] == [1, 'b']",
        "color in ['red', 1, true, [1]]",
        "i64 in []",
        "$meta is not null",
        "$meta['a']['b'][0] > 1",
        "j['a'] * 1.5 > i8",
        "-j['a'] < d / 2",
        "json_contains(j['arr'], [1, 2])",
        "i8 < 3 < i16",
        "b == false",
        "b != (j['flag'])",
        "i8 % 2 == 0",
        "I8 > 1 and AND_ > 1", // `I8` is a dynamic key (names are case-sensitive)
    ] {
        compile(e, &s, &no_params()).unwrap_or_else(|x| panic!("{e}: {x}"));
    }
}

#[test]
fn referenced_fields() {
    let s = schema();
    let p = compile("i8 > 1 and (s like 'a%' or color == 'red') and i8 < i32 * 2", &s, &no_params()).expect("compiles");
    assert_eq!(p.referenced_fields(), vec![103, 105, 109, 113]);
    assert_eq!(compile("1 < 2", &s, &no_params()).expect("compiles").referenced_fields(), Vec::<i64>::new());
}

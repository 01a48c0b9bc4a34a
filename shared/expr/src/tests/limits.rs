//! Limits: deep nesting (an error or a result, never a crash), small stacks, large flat
//! expressions, garbage input.

use std::collections::HashMap;

use super::fixtures::*;
use super::reference::{jget, jnum};
use crate::depth::SHALLOW_DEPTH;
use crate::{ExprErrorKind, compile};

#[test]
fn deep_nesting_is_an_error_or_works_never_a_crash() {
    let s = schema();
    let rows = random_rows(8, 70);
    let seg = segment(&rows, &s);
    // Within the limit: deep parentheses, negations, arithmetic and arrays all work.
    let parens = format!("{}i8 > 0{}", "(".repeat(990), ")".repeat(990));
    let p = compile(&parens, &s, &no_params()).expect("deep parentheses");
    assert_eq!(bools(&p.evaluate(&seg).expect("runs")), rows.iter().map(|r| r.i8 > 0).collect::<Vec<_>>());
    let nots = format!("{}b", "not ".repeat(991));
    let p = compile(&nots, &s, &no_params()).expect("deep nots");
    assert_eq!(bools(&p.evaluate(&seg).expect("runs")), rows.iter().map(|r| !r.b).collect::<Vec<_>>());
    let sum = format!("i8{} > 0", " + i8".repeat(990));
    let p = compile(&sum, &s, &no_params()).expect("long sum");
    assert_eq!(bools(&p.evaluate(&seg).expect("runs")), rows.iter().map(|r| r.i8 > 0).collect::<Vec<_>>());
    let jsum = format!("j['a']{} > 0", " - j['a']".repeat(990));
    let p = compile(&jsum, &s, &no_params()).expect("long JSON sum");
    let want: Vec<bool> = rows.iter().map(|r| jnum(jget(&r.j, &["a"])).is_some_and(|x| x - 990.0 * x > 0.0)).collect();
    assert_eq!(bools(&p.evaluate(&seg).expect("runs")), want);
    let nested = format!("j['a'] in [{}1{}]", "[".repeat(990), "]".repeat(990));
    let p = compile(&nested, &s, &no_params()).expect("nested arrays");
    assert!(p.evaluate(&seg).is_ok());
    let mixed = (0..400).fold("b".to_string(), |acc, i| {
        if i % 2 == 0 { format!("({acc} and i8 > {i})") } else { format!("({acc} or not b)") }
    });
    let p = compile(&mixed, &s, &no_params()).expect("alternating");
    assert!(p.evaluate(&seg).is_ok());
    let _ = p.clone();

    // Over the limit: a clean error.
    for e in [
        format!("{}i8 > 0{}", "(".repeat(5000), ")".repeat(5000)),
        format!("{}b", "not ".repeat(5000)),
        format!("{}b", "!".repeat(100_000)),
        format!("i8{} > 0", " + i8".repeat(5000)),
        format!("{}i8 > 0", "-".repeat(5000)),
        format!("j in {}1{}", "[".repeat(5000), "]".repeat(5000)),
        format!("{}1", "[".repeat(100_000)),
    ] {
        let err = compile(&e, &s, &no_params()).expect_err("too deep");
        assert_eq!(err.kind, ExprErrorKind::TooDeep, "{err}");
    }
}

#[test]
fn shallow_expressions_fit_small_stacks() {
    // Below SHALLOW_DEPTH parsing, compiling and evaluating run on the caller's stack;
    // check that this needs well under half of a default 2 MiB thread stack, even
    // unoptimised.
    let worker = std::thread::Builder::new().stack_size(1 << 20).spawn(|| {
        let s = schema();
        let rows = random_rows(8, 70);
        let seg = segment(&rows, &s);
        let d = SHALLOW_DEPTH - 2;
        let exprs = [
            format!("{}i8 > 0{}", "(".repeat(d), ")".repeat(d)),
            format!("{}b", "not (".repeat(d / 2)) + &")".repeat(d / 2),
            format!("i8{} > 0", " + i8".repeat(d)),
            format!("j['a']{} > 0", " * j['a']".repeat(d)),
            format!("j['a'] in [{}1{}]", "[".repeat(d - 2), "]".repeat(d - 2)),
            (0..d / 2).fold("b".to_string(), |acc, i| {
                if i % 2 == 0 {
                    format!("({acc} and (i8 > {i} or s like 'a%'))")
                } else {
                    format!("({acc} or not (n > {i}))")
                }
            }),
            format!("{}i8 > 0", "-".repeat(d)),
        ];
        for e in &exprs {
            let ast = crate::parse(e).unwrap_or_else(|x| panic!("{e}: {x}"));
            assert!(ast.depth() <= SHALLOW_DEPTH, "{e}: depth {}", ast.depth());
            let p = compile(e, &s, &no_params()).unwrap_or_else(|x| panic!("{e}: {x}"));
            p.evaluate(&seg).unwrap_or_else(|x| panic!("{e}: {x}"));
        }
    });
    worker.expect("spawns").join().expect("no overflow, no panic");
}

#[test]
fn large_flat_expressions() {
    let s = schema();
    let rows = random_rows(8, 50);
    let seg = segment(&rows, &s);
    let ors = (0..20_000).map(|i| format!("id == {i}")).collect::<Vec<_>>().join(" or ");
    let p = compile(&ors, &s, &no_params()).expect("compiles");
    assert_eq!(p.as_primary_keys(&s).map(|k| k.len()), Some(20_000));
    assert_eq!(bools(&p.evaluate(&seg).expect("runs")), vec![true; 50]);
    let list = format!("id in [{}]", (0..100_000).map(|i| (i * 2).to_string()).collect::<Vec<_>>().join(","));
    let p = compile(&list, &s, &no_params()).expect("compiles");
    assert_eq!(bools(&p.evaluate(&seg).expect("runs")), rows.iter().map(|r| r.id % 2 == 0).collect::<Vec<_>>());
}

#[test]
fn garbage_input_never_panics() {
    let s = schema();
    let mut r = Rng(99);
    let atoms = [
        "i8",
        "s",
        "j",
        "j['a']",
        "$meta",
        "color",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        "and",
        "or",
        "not",
        "in",
        "like",
        "is",
        "null",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "1",
        "0x",
        "1.5e",
        "'a",
        "\"b\"",
        "'%_'",
        "true",
        "exists",
        "json_contains",
        "array_length",
        "9223372036854775808",
        "\\",
        "$",
        "@",
        "é",
        "1e400",
        "{x}",
        "vec",
        "=",
        "&&",
        "||",
        "!",
        "'\\u12'",
    ];
    let rows = random_rows(2, 10);
    let seg = segment(&rows, &s);
    let params = HashMap::from([("x".to_string(), long_array(&[1]))]);
    let mut ok = 0;
    for _ in 0..5000 {
        let len = r.range(1, 12);
        let e = (0..len).map(|_| *r.pick(&atoms)).collect::<Vec<_>>().join(" ");
        if let Ok(p) = compile(&e, &s, &params) {
            ok += 1;
            p.evaluate(&seg).unwrap_or_else(|x| panic!("{e}: {x}"));
        }
    }
    assert!(ok > 0);
}

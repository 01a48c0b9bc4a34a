//! The evaluator over random segments (against the reference), empty and partial
//! inputs, malformed columns, arithmetic edge cases and large segments.

use fv_storage::{Column, ColumnData};
use serde_json::json;

use super::fixtures::*;
use super::reference::check_against_reference;
use crate::{ColumnSource, Columns, ExprErrorKind, Plan, compile, compile_simple};

#[test]
fn evaluation_matches_reference() {
    // 300 rows: not a multiple of 64, so the tail word of every bitmap is exercised.
    check_against_reference(1, 300);
    check_against_reference(2, 257);
    check_against_reference(3, 64);
    check_against_reference(4, 1);
}

#[test]
fn evaluation_of_empty_segment_and_empty_expression() {
    let schema = schema();
    let seg = segment(&[], &schema);
    assert!(compile("i8 > 1", &schema, &no_params()).expect("compiles").evaluate(&seg).expect("runs").is_empty());
    let rows = random_rows(9, 5);
    let seg = segment(&rows, &schema);
    for e in ["", "   ", "\n\t"] {
        let p = compile(e, &schema, &no_params()).expect("compiles");
        assert!(p.is_always_true());
        assert_eq!(bools(&p.evaluate(&seg).expect("runs")), vec![true; 5]);
        assert!(p.referenced_fields().is_empty());
    }
    assert!(!compile("b", &schema, &no_params()).expect("compiles").is_always_true());
}

#[test]
fn columns_source_and_absent_columns() {
    let schema = schema();
    let rows = random_rows(5, 100);
    let seg = segment(&rows, &schema);
    // Only the columns of `i8` and `n`: the others read as null.
    let cols: Vec<Column> = seg.columns.iter().filter(|c| c.field_id == 103 || c.field_id == 111).cloned().collect();
    let src = Columns { num_rows: 100, columns: &cols };
    let p = compile_simple("i8 > 0", &schema).expect("compiles");
    assert_eq!(bools(&p.evaluate(&src).expect("runs")), rows.iter().map(|r| r.i8 > 0).collect::<Vec<_>>());
    let p = compile_simple("i16 > 0 or i8 > 0", &schema).expect("compiles");
    assert_eq!(bools(&p.evaluate(&src).expect("runs")), rows.iter().map(|r| r.i8 > 0).collect::<Vec<_>>());
    let p = compile_simple("i16 is null and color is null", &schema).expect("compiles");
    assert_eq!(bools(&p.evaluate(&src).expect("runs")), vec![true; 100]);
    assert_eq!(p.matching_rows(&src).expect("runs").len(), 100);
}

#[test]
fn mismatched_columns_are_errors_not_panics() {
    let schema = schema();
    let rows = random_rows(5, 10);
    let mut seg = segment(&rows, &schema);
    seg.timestamps.push(1); // 11 rows claimed, columns hold 10
    let e = compile_simple("i8 > 0", &schema).expect("compiles").evaluate(&seg).expect_err("length mismatch");
    assert_eq!(e.kind, ExprErrorKind::Evaluation);
    assert_eq!(e.to_string(), "column of field 103 has 10 rows, expected 11");
    let mut seg = segment(&rows, &schema);
    seg.columns[3] = Column::new(103, ColumnData::VarChar(vec![String::new(); 10]));
    let e = compile_simple("i8 > 0", &schema).expect("compiles").evaluate(&seg).expect_err("type mismatch");
    assert_eq!(e.to_string(), "column of field 103 holds VarChar data, the filter expects Int8");
    let mut seg = segment(&rows, &schema);
    seg.columns[11].valid = Some(vec![true; 3]);
    assert!(compile_simple("n > 0", &schema).expect("compiles").evaluate(&seg).is_err());
}

#[test]
fn arithmetic_edge_cases_never_panic() {
    let schema = schema();
    let rows: Vec<Row> = random_rows(11, 4)
        .into_iter()
        .zip([i64::MIN, i64::MAX, -1, 0])
        .map(|(mut r, v)| {
            r.i64 = v;
            r.i8 = if v == 0 { 0 } else { -1 };
            r
        })
        .collect();
    let seg = segment(&rows, &schema);
    let run = |e: &str| {
        bools(&compile_simple(e, &schema).unwrap_or_else(|x| panic!("{e}: {x}")).evaluate(&seg).expect("runs"))
    };
    // i64::MIN / -1 and % -1 wrap instead of trapping; division by zero is null.
    assert_eq!(run("i64 / i8 == i64"), vec![true, false, false, false]);
    assert_eq!(run("i64 % i8 == 0"), vec![true, true, true, false]);
    assert_eq!(run("i64 * i64 > 0"), vec![false, true, true, false]);
    assert_eq!(run("-i64 == i64"), vec![true, false, false, true]);
    assert!(compile_simple("i64 / i8 is null", &schema).is_err());
}

#[test]
fn large_segment_fast_paths() {
    // A coarse guard that the common forms stay vectorised: 200k rows in a debug build.
    let schema = schema();
    let n = 200_000;
    let base = random_rows(21, 1).remove(0);
    let mut seg = segment(&vec![base; n], &schema);
    seg.columns[6] = Column::new(106, ColumnData::Int64((0..n as i64).collect()));
    seg.columns[9] = Column::new(109, ColumnData::VarChar((0..n).map(|i| format!("{:x}", i % 4096)).collect()));
    let p = compile_simple("i64 > 30 and s like 'ab%'", &schema).expect("compiles");
    let started = std::time::Instant::now();
    let got = p.evaluate(&seg).expect("runs");
    let elapsed = started.elapsed();
    let want = (0..n).filter(|i| *i > 30 && format!("{:x}", i % 4096).starts_with("ab")).count();
    assert_eq!(got.count_ones(..), want);
    assert!(elapsed.as_secs() < 5, "took {elapsed:?}");
}

/// `cargo test -p fv-expr --release -- --ignored --nocapture bench`
#[test]
#[ignore]
fn bench_million_rows() {
    let schema = schema();
    let n = 1_000_000;
    let base = random_rows(21, 1).remove(0);
    let mut seg = segment(&vec![base; n], &schema);
    let mut r = Rng(5);
    seg.columns[6] = Column::new(106, ColumnData::Int64((0..n).map(|_| r.range(0, 100)).collect()));
    seg.columns[9] =
        Column::new(109, ColumnData::VarChar((0..n).map(|_| format!("{:x}", r.range(0, 1 << 16))).collect()));
    seg.columns[10] = Column::new(110, ColumnData::Json((0..n).map(|_| json!({"a": r.range(0, 100)})).collect()));
    for e in [
        "i64 > 30",
        "i64 > 30 and s like 'ab%'",
        "i64 > 30 and s like 'ab%'",
        "s like 'ab%'",
        "i64 > 30",
        "10 < i64 <= 50",
        "i64 in [1, 5, 7, 20, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43]",
        "s like '%ab%'",
        "i64 * 2 + 1 > 50",
        "j['a'] > 50",
    ] {
        let p = compile_simple(e, &schema).expect("compiles");
        let t = std::time::Instant::now();
        let c = p.count(&seg).expect("runs");
        eprintln!("{e:70} {c:8} rows in {:?}", t.elapsed());
    }
}

#[test]
fn segment_data_is_a_column_source() {
    let s = schema();
    let rows = random_rows(2, 10);
    let seg = segment(&rows, &s);
    let src: &dyn ColumnSource = &seg;
    assert_eq!(src.num_rows(), 10);
    assert!(src.column(103).is_some());
    assert!(src.column(999).is_none());
    let p: Plan = Plan::match_all();
    assert!(p.is_always_true());
    assert_eq!(p.count(&seg).expect("count"), 10);
}

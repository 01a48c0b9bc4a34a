//! Filter evaluation over 1,000,000 rows: the typical shapes of a Milvus filter on typed
//! columns (integer comparison and range, `in` on integers and VarChar, LIKE prefix and
//! infix, arithmetic), a JSON path, and `and` / `or` / `not` combinations, one with a
//! nullable column.
//!
//! `count/*` measures the evaluator alone; `evaluate/*` is the public call the query node
//! makes, result type included. Throughput is in rows per second.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fv_common::schema::{Schema, prepare_new_schema};
use fv_expr::{Plan, compile};
use fv_proto::common::KeyValuePair;
use fv_proto::schema::{CollectionSchema, DataType, FieldSchema};
use fv_storage::{Column, ColumnData, SegmentData};
use serde_json::json;

const ROWS: usize = 1_000_000;

const FILTERS: &[(&str, &str)] = &[
    ("int_cmp", "i64 > 30"),
    ("int_range", "10 < i64 <= 50"),
    ("int_in", "i64 in [1, 5, 7, 20, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43]"),
    ("varchar_in", "s in ['1a', '2b', '3c', 'ff', 'abc', '100', '1000', 'beef', 'cafe', 'f00d']"),
    ("like_prefix", "s like 'ab%'"),
    ("like_infix", "s like '%ab%'"),
    ("arith", "i64 * 2 + 1 > 50"),
    ("json_path", "j['a'] > 50"),
    ("and", "i64 > 30 and s like 'ab%'"),
    ("or_not", "i64 < 10 or not (d > 0.5)"),
    ("nullable_and_or_not", "(n > 20 and not (i64 in [1, 2, 3])) or (s like 'f%' and d < 0.25)"),
];

/// SplitMix64, so that every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn field(name: &str, t: DataType) -> FieldSchema {
    let mut f = FieldSchema { name: name.into(), data_type: t as i32, ..Default::default() };
    let kv = |k: &str, v: &str| KeyValuePair { key: k.into(), value: v.into() };
    match t {
        DataType::VarChar => f.type_params = vec![kv("max_length", "64")],
        DataType::FloatVector => f.type_params = vec![kv("dim", "4")],
        _ => {}
    }
    f
}

/// id(100, pk) vec(101) i64(102) d(103) s(104) j(105) n(106, nullable Int64)
fn schema() -> Schema {
    let mut id = field("id", DataType::Int64);
    id.is_primary_key = true;
    let mut n = field("n", DataType::Int64);
    n.nullable = true;
    let fields = vec![
        id,
        field("vec", DataType::FloatVector),
        field("i64", DataType::Int64),
        field("d", DataType::Double),
        field("s", DataType::VarChar),
        field("j", DataType::Json),
        n,
    ];
    let p = CollectionSchema { name: "bench".into(), fields, ..Default::default() };
    Schema::from_proto(&prepare_new_schema(p, "bench").expect("valid schema")).expect("parses")
}

/// The columns the filters read (the vector column is not needed to filter).
fn segment(schema: &Schema) -> SegmentData {
    let id = |name: &str| schema.field(name).expect("field of the bench schema").id;
    let mut r = Rng(5);
    let columns = vec![
        Column::new(id("id"), ColumnData::Int64((0..ROWS as i64).collect())),
        Column::new(id("i64"), ColumnData::Int64((0..ROWS).map(|_| r.below(100) as i64).collect())),
        Column::new(id("d"), ColumnData::Double((0..ROWS).map(|_| r.below(1000) as f64 / 1000.0).collect())),
        Column::new(id("s"), ColumnData::VarChar((0..ROWS).map(|_| format!("{:x}", r.below(1 << 16))).collect())),
        Column::new(id("j"), ColumnData::Json((0..ROWS).map(|_| json!({"a": r.below(100), "t": "x"})).collect())),
        Column {
            field_id: id("n"),
            data: ColumnData::Int64((0..ROWS).map(|_| r.below(40) as i64).collect()),
            valid: Some((0..ROWS).map(|_| r.below(10) >= 3).collect()),
        },
    ];
    SegmentData { timestamps: vec![1; ROWS], columns }
}

fn bench(c: &mut Criterion) {
    let schema = schema();
    let seg = segment(&schema);
    let plans: Vec<(&str, Plan)> = FILTERS
        .iter()
        .map(|(name, expr)| (*name, compile(expr, &schema, &HashMap::new()).expect("bench filters compile")))
        .collect();
    for (name, plan) in &plans {
        eprintln!("{name:20} matches {:7} of {ROWS} rows", plan.count(&seg).expect("evaluates"));
    }
    for group in ["count", "evaluate"] {
        let mut g = c.benchmark_group(group);
        g.sample_size(20);
        g.warm_up_time(std::time::Duration::from_secs(1));
        g.measurement_time(std::time::Duration::from_secs(3));
        g.throughput(Throughput::Elements(ROWS as u64));
        for (name, plan) in &plans {
            match group {
                "count" => g.bench_function(*name, |b| b.iter(|| black_box(plan.count(&seg).expect("evaluates")))),
                _ => g.bench_function(*name, |b| b.iter(|| black_box(plan.evaluate(&seg).expect("evaluates")))),
            };
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

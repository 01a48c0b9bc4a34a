//! Shared fixtures: a schema with a field of every filterable type, seeded random rows
//! and the segment built from them.

use std::collections::HashMap;

use fv_common::bitset::FixedBitSet;
use fv_common::schema::{Schema, prepare_new_schema};
use fv_proto::common::KeyValuePair;
use fv_proto::schema::{
    CollectionSchema, DataType, FieldSchema, LongArray, TemplateArrayValue, TemplateValue, template_array_value,
    template_value,
};
use fv_storage::{Column, ColumnData, SegmentData};
use serde_json::{Value, json};

pub(super) fn kv(k: &str, v: &str) -> KeyValuePair {
    KeyValuePair { key: k.into(), value: v.into() }
}

pub(super) fn fs(name: &str, t: DataType) -> FieldSchema {
    let mut f = FieldSchema { name: name.into(), data_type: t as i32, ..Default::default() };
    if t == DataType::VarChar {
        f.type_params = vec![kv("max_length", "64")];
    }
    if t == DataType::FloatVector {
        f.type_params = vec![kv("dim", "4")];
    }
    f
}

/// id(100) vec(101) b(102) i8(103) i16(104) i32(105) i64(106) f(107) d(108) s(109)
/// j(110) n(111, nullable Int64) ns(112, nullable VarChar) [$meta(113)]
pub(super) fn schema_with(dynamic: bool, pk_type: DataType) -> Schema {
    let mut id = fs("id", pk_type);
    id.is_primary_key = true;
    let mut n = fs("n", DataType::Int64);
    n.nullable = true;
    let mut ns = fs("ns", DataType::VarChar);
    ns.nullable = true;
    let fields = vec![
        id,
        fs("vec", DataType::FloatVector),
        fs("b", DataType::Bool),
        fs("i8", DataType::Int8),
        fs("i16", DataType::Int16),
        fs("i32", DataType::Int32),
        fs("i64", DataType::Int64),
        fs("f", DataType::Float),
        fs("d", DataType::Double),
        fs("s", DataType::VarChar),
        fs("j", DataType::Json),
        n,
        ns,
    ];
    let p = CollectionSchema { name: "t".into(), fields, enable_dynamic_field: dynamic, ..Default::default() };
    let p = prepare_new_schema(p, "t").expect("valid schema");
    Schema::from_proto(&p).expect("parses")
}

pub(super) fn schema() -> Schema {
    schema_with(true, DataType::Int64)
}

pub(super) fn no_params() -> HashMap<String, TemplateValue> {
    HashMap::new()
}

/// SplitMix64: a small seeded generator, enough for test data.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) b: bool,
    pub(super) i8: i8,
    pub(super) i16: i16,
    pub(super) i32: i32,
    pub(super) i64: i64,
    pub(super) f: f32,
    pub(super) d: f64,
    pub(super) s: String,
    pub(super) j: Value,
    pub(super) n: Option<i64>,
    pub(super) ns: Option<String>,
    pub(super) meta: Value,
}

pub(super) const WORDS: &[&str] =
    &["", "a", "ab", "abc", "b", "ba", "abab", "abba", "x_y", "100%", "é", "aé", "zz", "ab%x"];

fn random_json(r: &mut Rng) -> Value {
    let mut m = serde_json::Map::new();
    // "a": int, float, string, bool, null, array or absent
    match r.range(0, 8) {
        0 => {}
        1 => {
            m.insert("a".into(), Value::Null);
        }
        2 => {
            m.insert("a".into(), json!(*r.pick(WORDS)));
        }
        3 => {
            m.insert("a".into(), json!(r.range(-4, 8) as f64 + 0.5));
        }
        4 => {
            m.insert("a".into(), json!(r.chance(50)));
        }
        5 => {
            m.insert("a".into(), json!([1, 2]));
        }
        _ => {
            m.insert("a".into(), json!(r.range(-5, 15)));
        }
    }
    if r.chance(70) {
        m.insert("b".into(), json!({"c": r.range(0, 5), "d": [r.range(0, 3), "x"]}));
    }
    if r.chance(80) {
        let len = r.range(0, 5);
        let arr: Vec<Value> = (0..len)
            .map(|_| if r.chance(70) { json!(r.range(0, 4)) } else { json!(*r.pick(&["x", "y", "1"])) })
            .collect();
        m.insert("arr".into(), Value::Array(arr));
    } else if r.chance(50) {
        m.insert("arr".into(), json!("not an array"));
    }
    if r.chance(60) {
        m.insert("flag".into(), if r.chance(80) { json!(r.chance(50)) } else { json!(1) });
    }
    if r.chance(5) {
        // Not an object at all.
        return json!([1, 2, 3]);
    }
    Value::Object(m)
}

fn random_meta(r: &mut Rng) -> Value {
    let mut m = serde_json::Map::new();
    if r.chance(75) {
        m.insert("color".into(), json!(*r.pick(&["red", "green", "blue", "Red"])));
    }
    match r.range(0, 5) {
        0 => {}
        1 => {
            m.insert("size".into(), json!(r.range(0, 8) as f64 / 2.0));
        }
        2 => {
            m.insert("size".into(), json!("big"));
        }
        _ => {
            m.insert("size".into(), json!(r.range(0, 8)));
        }
    }
    if r.chance(50) {
        m.insert("tags".into(), json!([*r.pick(&["a", "b", "c"]), *r.pick(&["a", "b", "c"])]));
    }
    Value::Object(m)
}

pub(super) fn random_rows(seed: u64, count: usize) -> Vec<Row> {
    let mut r = Rng(seed);
    (0..count)
        .map(|i| Row {
            id: i as i64 * 3,
            b: r.chance(50),
            i8: r.range(-20, 20) as i8,
            i16: r.range(-100, 100) as i16,
            i32: r.range(-50, 50) as i32,
            i64: r.range(-30, 30),
            f: r.range(-50, 50) as f32 * 0.1,
            d: r.range(-40, 40) as f64 / 4.0,
            s: r.pick(WORDS).to_string(),
            j: random_json(&mut r),
            n: if r.chance(30) { None } else { Some(r.range(-10, 40)) },
            ns: if r.chance(30) { None } else { Some(r.pick(WORDS).to_string()) },
            meta: random_meta(&mut r),
        })
        .collect()
}

/// Builds the segment; null rows of nullable columns hold random garbage so that a
/// filter ignoring validity would show.
pub(super) fn segment(rows: &[Row], schema: &Schema) -> SegmentData {
    let mut garbage = Rng(7);
    let id = |name: &str| schema.field(name).expect("field").id;
    let col = |name: &str, data: ColumnData| Column::new(id(name), data);
    let mut columns = vec![
        col("id", ColumnData::Int64(rows.iter().map(|r| r.id).collect())),
        col("vec", ColumnData::FloatVector { dim: 4, data: vec![0.0; rows.len() * 4] }),
        col("b", ColumnData::Bool(rows.iter().map(|r| r.b).collect())),
        col("i8", ColumnData::Int8(rows.iter().map(|r| r.i8).collect())),
        col("i16", ColumnData::Int16(rows.iter().map(|r| r.i16).collect())),
        col("i32", ColumnData::Int32(rows.iter().map(|r| r.i32).collect())),
        col("i64", ColumnData::Int64(rows.iter().map(|r| r.i64).collect())),
        col("f", ColumnData::Float(rows.iter().map(|r| r.f).collect())),
        col("d", ColumnData::Double(rows.iter().map(|r| r.d).collect())),
        col("s", ColumnData::VarChar(rows.iter().map(|r| r.s.clone()).collect())),
        col("j", ColumnData::Json(rows.iter().map(|r| r.j.clone()).collect())),
        Column {
            field_id: id("n"),
            data: ColumnData::Int64(rows.iter().map(|r| r.n.unwrap_or_else(|| garbage.range(-10, 40))).collect()),
            valid: Some(rows.iter().map(|r| r.n.is_some()).collect()),
        },
        Column {
            field_id: id("ns"),
            data: ColumnData::VarChar(
                rows.iter().map(|r| r.ns.clone().unwrap_or_else(|| garbage.pick(WORDS).to_string())).collect(),
            ),
            valid: Some(rows.iter().map(|r| r.ns.is_some()).collect()),
        },
    ];
    if let Some(d) = schema.dynamic() {
        columns.push(Column::new(d.id, ColumnData::Json(rows.iter().map(|r| r.meta.clone()).collect())));
    }
    SegmentData { timestamps: vec![1; rows.len()], columns }
}

/// The bitset of an evaluation as one flag per row.
pub(super) fn bools(b: &FixedBitSet) -> Vec<bool> {
    (0..b.len()).map(|i| b.contains(i)).collect()
}

/// A template value holding an array of integers.
pub(super) fn long_array(v: &[i64]) -> TemplateValue {
    TemplateValue {
        val: Some(template_value::Val::ArrayVal(TemplateArrayValue {
            data: Some(template_array_value::Data::LongData(LongArray { data: v.to_vec() })),
        })),
    }
}

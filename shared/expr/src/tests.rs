//! Crate-level tests: type checking against a schema, evaluation against a naive
//! row-by-row reference over random data, primary-key extraction, templates, limits.

use std::collections::HashMap;

use fv_common::PrimaryKey;
use fv_common::schema::{Schema, prepare_new_schema};
use fv_proto::common::KeyValuePair;
use fv_proto::schema::{
    CollectionSchema, DataType, FieldSchema, JsonArray, LongArray, StringArray, TemplateArrayValue, TemplateValue,
    template_array_value, template_value,
};
use fv_storage::{Column, ColumnData, SegmentData};
use serde_json::{Value, json};

use crate::{ColumnSource, Columns, ExprErrorKind, Plan, compile, compile_simple};

// ---------------------------------------------------------------------------------------
// Fixtures

fn kv(k: &str, v: &str) -> KeyValuePair {
    KeyValuePair { key: k.into(), value: v.into() }
}

fn fs(name: &str, t: DataType) -> FieldSchema {
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
fn schema_with(dynamic: bool, pk_type: DataType) -> Schema {
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

fn schema() -> Schema {
    schema_with(true, DataType::Int64)
}

fn no_params() -> HashMap<String, TemplateValue> {
    HashMap::new()
}

/// SplitMix64: a small seeded generator, enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

#[derive(Debug, Clone)]
struct Row {
    id: i64,
    b: bool,
    i8: i8,
    i16: i16,
    i32: i32,
    i64: i64,
    f: f32,
    d: f64,
    s: String,
    j: Value,
    n: Option<i64>,
    ns: Option<String>,
    meta: Value,
}

const WORDS: &[&str] = &["", "a", "ab", "abc", "b", "ba", "abab", "abba", "x_y", "100%", "é", "aé", "zz", "ab%x"];

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

fn random_rows(seed: u64, count: usize) -> Vec<Row> {
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
fn segment(rows: &[Row], schema: &Schema) -> SegmentData {
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

// ---------------------------------------------------------------------------------------
// The naive reference: three-valued logic written out per row.

type Tv = Option<bool>;

fn and3(a: Tv, b: Tv) -> Tv {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Tv, b: Tv) -> Tv {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn not3(a: Tv) -> Tv {
    a.map(|x| !x)
}

/// A JSON value at `path`; None when missing.
fn jget<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = match cur {
            Value::Object(m) => m.get(*p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn jnum(v: Option<&Value>) -> Option<f64> {
    v?.as_f64()
}

fn jint(v: Option<&Value>) -> Option<i64> {
    v?.as_i64()
}

fn jstr(v: Option<&Value>) -> Option<&str> {
    v?.as_str()
}

fn jbool(v: Option<&Value>) -> Option<bool> {
    v?.as_bool()
}

fn jnull(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

fn jarr(v: Option<&Value>) -> Option<&Vec<Value>> {
    v?.as_array()
}

/// Element of a JSON array equal to a number or a string.
fn has_num(a: &[Value], x: f64) -> bool {
    a.iter().any(|e| e.as_f64() == Some(x))
}

fn has_str(a: &[Value], x: &str) -> bool {
    a.iter().any(|e| e.as_str() == Some(x))
}

/// LIKE by brute-force recursion over chars.
fn like_ref(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('%') => (0..=s.len()).any(|k| like_ref(&p[1..], &s[k..])),
        Some('_') => !s.is_empty() && like_ref(&p[1..], &s[1..]),
        Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && like_ref(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && like_ref(&p[1..], &s[1..]),
    }
}

fn like(s: &str, p: &str) -> bool {
    like_ref(&p.chars().collect::<Vec<_>>(), &s.chars().collect::<Vec<_>>())
}

type RefFn = fn(&Row) -> Tv;

fn cases() -> Vec<(&'static str, RefFn)> {
    vec![
        // comparisons of each typed column with constants
        ("b", |r| Some(r.b)),
        ("not b", |r| Some(!r.b)),
        ("b == true", |r| Some(r.b)),
        ("b != True", |r| Some(!r.b)),
        ("i8 > 3", |r| Some(r.i8 > 3)),
        ("i8 <= -3", |r| Some(r.i8 <= -3)),
        ("i16 == 7", |r| Some(r.i16 == 7)),
        ("i16 != 7", |r| Some(r.i16 != 7)),
        ("i32 >= 0x10", |r| Some(r.i32 >= 16)),
        ("i64 < -0b11", |r| Some(r.i64 < -3)),
        ("i64 > 2.5", |r| Some(r.i64 as f64 > 2.5)),
        ("i8 == 1000", |_| Some(false)),
        ("i8 != 1000", |_| Some(true)),
        ("f > 0.5", |r| Some(r.f > 0.5)),
        ("f == 0.1", |r| Some(r.f == 0.1f32)),
        ("f <= 2", |r| Some(r.f <= 2.0)),
        ("d >= 1.25", |r| Some(r.d >= 1.25)),
        ("d == -2", |r| Some(r.d == -2.0)),
        ("s == 'ab'", |r| Some(r.s == "ab")),
        ("s > \"abba\"", |r| Some(r.s.as_str() > "abba")),
        ("s <= ''", |r| Some(r.s.is_empty())),
        ("5 < i8", |r| Some(5 < r.i8)),
        ("'b' > s", |r| Some("b" > r.s.as_str())),
        // nullable columns
        ("n > 5", |r| r.n.map(|x| x > 5)),
        ("n == 3", |r| r.n.map(|x| x == 3)),
        ("n != 3", |r| r.n.map(|x| x != 3)),
        ("ns == 'a'", |r| r.ns.as_ref().map(|x| x == "a")),
        ("n is null", |r| Some(r.n.is_none())),
        ("n IS NOT NULL", |r| Some(r.n.is_some())),
        ("ns is null or ns == ''", |r| or3(Some(r.ns.is_none()), r.ns.as_ref().map(|x| x.is_empty()))),
        ("not (n > 5)", |r| r.n.map(|x| x <= 5)),
        ("n > 5 or b", |r| or3(r.n.map(|x| x > 5), Some(r.b))),
        ("n > 5 and i8 > 100", |_| Some(false)),
        ("not (n > 5 and b)", |r| not3(and3(r.n.map(|x| x > 5), Some(r.b)))),
        ("i64 is null", |_| Some(false)),
        // ranges
        ("-5 < i8 <= 5", |r| Some(-5 < r.i8 && r.i8 <= 5)),
        ("10 > d >= -2.5", |r| Some(10.0 > r.d && r.d >= -2.5)),
        ("1 < n < 30", |r| r.n.map(|x| 1 < x && x < 30)),
        ("'a' <= s < 'b'", |r| Some("a" <= r.s.as_str() && r.s.as_str() < "b")),
        ("0 <= i16 * 2 <= 50", |r| Some((0..=50).contains(&(r.i16 as i64 * 2)))),
        ("i8 < i16 < i32", |r| Some((r.i8 as i64) < r.i16 as i64 && (r.i16 as i64) < r.i32 as i64)),
        ("0 < j['a'] < 10", |r| jnum(jget(&r.j, &["a"])).map(|x| 0.0 < x && x < 10.0)),
        // in
        ("i16 in [1, 2, 3, -5]", |r| Some([1, 2, 3, -5].contains(&r.i16))),
        ("i32 not in [0, 1]", |r| Some(![0, 1].contains(&r.i32))),
        ("i64 in [1.0, 2.5]", |r| Some(r.i64 == 1)),
        ("i8 in []", |_| Some(false)),
        ("i8 not in []", |_| Some(true)),
        ("f in [0.5, 1.5, 0.1]", |r| Some(r.f == 0.5 || r.f == 1.5 || r.f == 0.1f32)),
        ("d in [-1, 2.25]", |r| Some(r.d == -1.0 || r.d == 2.25)),
        ("s in ['a', 'ab', '']", |r| Some(["a", "ab", ""].contains(&r.s.as_str()))),
        ("b in [true]", |r| Some(r.b)),
        ("n not in [1, 2, 3]", |r| r.n.map(|x| ![1, 2, 3].contains(&x))),
        ("ns in ['a', 'b']", |r| r.ns.as_ref().map(|x| x == "a" || x == "b")),
        (
            "i16 in [-99, -98, -97, -96, -95, -94, -93, -92, -91, -90, -89, -88, -87, -86, -85, -84, -83, -82, 0, 99]",
            |r| Some((-99..=-82).contains(&r.i16) || r.i16 == 0 || r.i16 == 99),
        ),
        ("i32 * 2 in [4, 6, 8]", |r| Some([4, 6, 8].contains(&(r.i32 * 2)))),
        // like
        ("s like 'ab%'", |r| Some(r.s.starts_with("ab"))),
        ("s like '%b'", |r| Some(r.s.ends_with('b'))),
        ("s like '%b%'", |r| Some(r.s.contains('b'))),
        ("s like 'ab'", |r| Some(r.s == "ab")),
        ("s LIKE 'a_'", |r| Some(like(&r.s, "a_"))),
        ("s like '%a_a%'", |r| Some(like(&r.s, "%a_a%"))),
        ("s like '%\\%'", |r| Some(r.s.ends_with('%'))),
        ("s like 'x\\_%'", |r| Some(r.s.starts_with("x_"))),
        ("s like '_'", |r| Some(r.s.chars().count() == 1)),
        ("not s like 'a%'", |r| Some(!r.s.starts_with('a'))),
        ("ns like 'a%'", |r| r.ns.as_ref().map(|x| x.starts_with('a'))),
        ("j['a'] like 'a%'", |r| jstr(jget(&r.j, &["a"])).map(|x| x.starts_with('a'))),
        // arithmetic
        ("i32 * 2 + i16 > 10", |r| Some(r.i32 as i64 * 2 + r.i16 as i64 > 10)),
        ("(i64 - i8) % 7 == 0", |r| Some((r.i64 - r.i8 as i64) % 7 == 0)),
        ("i32 / i8 > 1", |r| if r.i8 == 0 { None } else { Some(r.i32 / r.i8 as i32 > 1) }),
        ("i32 % i8 == 0", |r| if r.i8 == 0 { None } else { Some(r.i32 % r.i8 as i32 == 0) }),
        ("not (i32 % i8 == 0)", |r| if r.i8 == 0 { None } else { Some(r.i32 % r.i8 as i32 != 0) }),
        ("d / i8 < 1.5", |r| if r.i8 == 0 { None } else { Some(r.d / (r.i8 as f64) < 1.5) }),
        ("f * 2 >= d", |r| Some(r.f as f64 * 2.0 >= r.d)),
        ("-i8 > 3", |r| Some(-(r.i8 as i64) > 3)),
        ("-(i8 + 1) * -1 < 0", |r| Some((r.i8 as i64 + 1) < 0)),
        ("i16 / 0 == 1 or i8 > 0", |r| or3(None, Some(r.i8 > 0))),
        ("n + 1 > 5", |r| r.n.map(|x| x + 1 > 5)),
        ("n * i8 < 0", |r| r.n.map(|x| x * (r.i8 as i64) < 0)),
        ("i8 / 2 == -1", |r| Some(r.i8 / 2 == -1)),
        ("1 + 2 * 3 == i8", |r| Some(r.i8 == 7)),
        ("j['a'] * 2 > 10", |r| jnum(jget(&r.j, &["a"])).map(|x| x * 2.0 > 10.0)),
        ("j['a'] % 3 == 1", |r| jint(jget(&r.j, &["a"])).map(|x| x % 3 == 1)),
        ("j['a'] + i8 > 0", |r| jnum(jget(&r.j, &["a"])).map(|x| x + r.i8 as f64 > 0.0)),
        ("-j['a'] > 2", |r| jnum(jget(&r.j, &["a"])).map(|x| -x > 2.0)),
        // column vs column
        ("i8 < i16", |r| Some((r.i8 as i16) < r.i16)),
        ("f < d", |r| Some((r.f as f64) < r.d)),
        ("i32 == i64", |r| Some(r.i32 as i64 == r.i64)),
        ("s != ns", |r| r.ns.as_ref().map(|x| *x != r.s)),
        ("s >= ns", |r| r.ns.as_ref().map(|x| r.s >= *x)),
        ("i64 > n", |r| r.n.map(|x| r.i64 > x)),
        // JSON field
        ("j['a'] > 5", |r| jnum(jget(&r.j, &["a"])).map(|x| x > 5.0)),
        ("j['a'] == 3", |r| jnum(jget(&r.j, &["a"])).map(|x| x == 3.0)),
        ("j['a'] != 3", |r| jnum(jget(&r.j, &["a"])).map(|x| x != 3.0)),
        ("j['a'] == 'ab'", |r| jstr(jget(&r.j, &["a"])).map(|x| x == "ab")),
        ("j['a'] >= 'b'", |r| jstr(jget(&r.j, &["a"])).map(|x| x >= "b")),
        ("j['a'] == true", |r| jbool(jget(&r.j, &["a"]))),
        ("j['a'] == [1, 2]", |r| jget(&r.j, &["a"]).filter(|v| v.is_array()).map(|v| v == &json!([1, 2]))),
        ("j['a'] in [1, 2, 'ab']", |r| match jget(&r.j, &["a"]) {
            Some(Value::Number(x)) => Some(x.as_f64() == Some(1.0) || x.as_f64() == Some(2.0)),
            Some(Value::String(s)) => Some(s == "ab"),
            _ => None,
        }),
        ("j['a'] not in [1, 2]", |r| jnum(jget(&r.j, &["a"])).map(|x| x != 1.0 && x != 2.0)),
        ("j['a'] in []", |r| (!jnull(jget(&r.j, &["a"]))).then_some(false)),
        ("j['b']['c'] >= 2", |r| jint(jget(&r.j, &["b", "c"])).map(|x| x >= 2)),
        ("j['b']['d'][0] == 1", |r| jint(jget(&r.j, &["b", "d", "0"])).map(|x| x == 1)),
        ("j['b']['d'][1] == 'x'", |r| jstr(jget(&r.j, &["b", "d", "1"])).map(|x| x == "x")),
        ("j['flag']", |r| jbool(jget(&r.j, &["flag"]))),
        ("not j['flag']", |r| jbool(jget(&r.j, &["flag"])).map(|x| !x)),
        ("j['a'] is null", |r| Some(jnull(jget(&r.j, &["a"])))),
        ("j['a'] is not null", |r| Some(!jnull(jget(&r.j, &["a"])))),
        ("j is null", |r| Some(r.j.is_null())),
        ("exists j['a']", |r| Some(jget(&r.j, &["a"]).is_some())),
        ("exists j['b']['c'] and not exists j['flag']", |r| {
            Some(jget(&r.j, &["b", "c"]).is_some() && jget(&r.j, &["flag"]).is_none())
        }),
        ("i8 == j['a']", |r| jnum(jget(&r.j, &["a"])).map(|x| r.i8 as f64 == x)),
        ("json_contains(j['arr'], 1)", |r| jarr(jget(&r.j, &["arr"])).map(|a| has_num(a, 1.0))),
        ("JSON_CONTAINS(j['arr'], 'x')", |r| jarr(jget(&r.j, &["arr"])).map(|a| has_str(a, "x"))),
        ("json_contains_all(j['arr'], [1, 'x'])", |r| {
            jarr(jget(&r.j, &["arr"])).map(|a| has_num(a, 1.0) && has_str(a, "x"))
        }),
        ("json_contains_any(j['arr'], [3, 'y'])", |r| {
            jarr(jget(&r.j, &["arr"])).map(|a| has_num(a, 3.0) || has_str(a, "y"))
        }),
        ("array_contains_any(j['arr'], [])", |r| jarr(jget(&r.j, &["arr"])).map(|_| false)),
        ("array_contains_all(j['arr'], [])", |r| jarr(jget(&r.j, &["arr"])).map(|_| true)),
        ("not json_contains(j['arr'], 2)", |r| jarr(jget(&r.j, &["arr"])).map(|a| !has_num(a, 2.0))),
        ("array_length(j['arr']) >= 2", |r| jarr(jget(&r.j, &["arr"])).map(|a| a.len() >= 2)),
        // dynamic fields
        ("color == 'red'", |r| jstr(jget(&r.meta, &["color"])).map(|x| x == "red")),
        ("$meta['color'] != 'red'", |r| jstr(jget(&r.meta, &["color"])).map(|x| x != "red")),
        ("color like 'r%' or color like 'R%'", |r| jstr(jget(&r.meta, &["color"])).map(|x| x.starts_with(['r', 'R']))),
        ("size > 2", |r| jnum(jget(&r.meta, &["size"])).map(|x| x > 2.0)),
        ("size == 'big'", |r| jstr(jget(&r.meta, &["size"])).map(|x| x == "big")),
        ("size is null", |r| Some(jnull(jget(&r.meta, &["size"])))),
        ("color is not null and size in [1, 2]", |r| {
            and3(
                Some(!jnull(jget(&r.meta, &["color"]))),
                match jget(&r.meta, &["size"]) {
                    Some(Value::Number(x)) => Some(x.as_f64() == Some(1.0) || x.as_f64() == Some(2.0)),
                    Some(Value::String(_)) => None,
                    _ => None,
                },
            )
        }),
        ("json_contains(tags, 'a')", |r| jarr(jget(&r.meta, &["tags"])).map(|a| has_str(a, "a"))),
        ("tags[0] == 'b'", |r| jstr(jget(&r.meta, &["tags", "0"])).map(|x| x == "b")),
        ("undefined_key == 1", |_| None),
        ("undefined_key is null", |_| Some(true)),
        // logic
        ("i8 > 0 and i16 > 0 or i32 > 0", |r| Some(r.i8 > 0 && r.i16 > 0 || r.i32 > 0)),
        ("i8 > 0 and (i16 > 0 or i32 > 0)", |r| Some(r.i8 > 0 && (r.i16 > 0 || r.i32 > 0))),
        ("not i8 > 0 and b", |r| Some(r.i8 <= 0 && r.b)),
        ("not not b", |r| Some(r.b)),
        ("!(i8 > 0) || b && i16 < 0", |r| Some(r.i8 <= 0 || (r.b && r.i16 < 0))),
        ("true", |_| Some(true)),
        ("false or b", |r| Some(r.b)),
        ("1 == 1 and i8 > 0", |r| Some(r.i8 > 0)),
        ("'a' in ['a'] and b", |r| Some(r.b)),
        ("id in [0, 3, 6, 300]", |r| Some([0, 3, 6, 300].contains(&r.id))),
        ("id == 9 or id == 12", |r| Some(r.id == 9 || r.id == 12)),
    ]
}

fn check_against_reference(seed: u64, count: usize) {
    let schema = schema();
    let rows = random_rows(seed, count);
    let seg = segment(&rows, &schema);
    let cases = cases();
    let run = |expr: &str, want: &dyn Fn(&Row) -> Tv| {
        let plan = compile(expr, &schema, &no_params()).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let got = plan.evaluate(&seg).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(got.len(), rows.len());
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(got[i], want(r) == Some(true), "seed {seed}, `{expr}`, row {i}: {r:?}");
        }
        assert_eq!(plan.count(&seg).expect("count"), got.iter().filter(|m| **m).count());
    };
    for (expr, f) in &cases {
        run(expr, f);
        // The negation matches exactly the rows where the expression is false.
        run(&format!("not ({expr})"), &|r| not3(f(r)));
    }
    // Pairs, to exercise Kleene and/or over every kind of operand.
    for w in cases.windows(2) {
        let ((e1, f1), (e2, f2)) = (&w[0], &w[1]);
        run(&format!("({e1}) and ({e2})"), &|r| and3(f1(r), f2(r)));
        run(&format!("({e1}) or not ({e2})"), &|r| or3(f1(r), not3(f2(r))));
    }
}

// ---------------------------------------------------------------------------------------
// Evaluator tests

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
        assert_eq!(p.evaluate(&seg).expect("runs"), vec![true; 5]);
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
    assert_eq!(p.evaluate(&src).expect("runs"), rows.iter().map(|r| r.i8 > 0).collect::<Vec<_>>());
    let p = compile_simple("i16 > 0 or i8 > 0", &schema).expect("compiles");
    assert_eq!(p.evaluate(&src).expect("runs"), rows.iter().map(|r| r.i8 > 0).collect::<Vec<_>>());
    let p = compile_simple("i16 is null and color is null", &schema).expect("compiles");
    assert_eq!(p.evaluate(&src).expect("runs"), vec![true; 100]);
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
    let run = |e: &str| compile_simple(e, &schema).unwrap_or_else(|x| panic!("{e}: {x}")).evaluate(&seg).expect("runs");
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
    assert_eq!(got.iter().filter(|m| **m).count(), want);
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

// ---------------------------------------------------------------------------------------
// Type checker tests

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

// ---------------------------------------------------------------------------------------
// Primary keys

fn pks(expr: &str, schema: &Schema) -> Option<Vec<PrimaryKey>> {
    compile(expr, schema, &no_params()).unwrap_or_else(|e| panic!("{expr}: {e}")).as_primary_keys(schema)
}

#[test]
fn as_primary_keys() {
    let s = schema();
    let ints = |v: &[i64]| Some(v.iter().map(|x| PrimaryKey::Int(*x)).collect::<Vec<_>>());
    assert_eq!(pks("id in [1, 2, 3]", &s), ints(&[1, 2, 3]));
    assert_eq!(pks("id == 5", &s), ints(&[5]));
    assert_eq!(pks("5 == id", &s), ints(&[5]));
    assert_eq!(pks("id == 1 or id in [2, 1] or (id == 3)", &s), ints(&[1, 2, 3]));
    assert_eq!(pks("id in []", &s), ints(&[]));
    assert_eq!(pks("id == -0x10", &s), ints(&[-16]));
    assert_eq!(pks("id != 5", &s), None);
    assert_eq!(pks("id not in [1]", &s), None);
    assert_eq!(pks("id > 5", &s), None);
    assert_eq!(pks("id == 1 and i8 > 0", &s), None);
    assert_eq!(pks("id == 1 or i8 > 0", &s), None);
    assert_eq!(pks("i64 in [1, 2]", &s), None);
    assert_eq!(pks("id == 1.0", &s), None);
    assert_eq!(pks("id in [1, 2.5]", &s), None);
    assert_eq!(pks("not id == 1", &s), None);
    assert_eq!(pks("", &s), None);
    assert_eq!(pks("id + 0 == 1", &s), None);

    let vs = schema_with(true, DataType::VarChar);
    let strs = |v: &[&str]| Some(v.iter().map(|x| PrimaryKey::Str(x.to_string())).collect::<Vec<_>>());
    assert_eq!(pks("id in ['a', \"b\"]", &vs), strs(&["a", "b"]));
    assert_eq!(pks("id == 'x' or id == 'y'", &vs), strs(&["x", "y"]));
    assert_eq!(pks("id like 'x'", &vs), None);

    // Templates bind like literals.
    let params = HashMap::from([("ids".to_string(), long_array(&[7, 8]))]);
    let p = compile("id in {ids}", &s, &params).expect("compiles");
    assert_eq!(p.as_primary_keys(&s), ints(&[7, 8]));
}

// ---------------------------------------------------------------------------------------
// Templates

fn long_array(v: &[i64]) -> TemplateValue {
    TemplateValue {
        val: Some(template_value::Val::ArrayVal(TemplateArrayValue {
            data: Some(template_array_value::Data::LongData(LongArray { data: v.to_vec() })),
        })),
    }
}

fn scalar(v: template_value::Val) -> TemplateValue {
    TemplateValue { val: Some(v) }
}

#[test]
fn templates() {
    let s = schema();
    let rows = random_rows(3, 200);
    let seg = segment(&rows, &s);
    let params = HashMap::from([
        ("lo".to_string(), scalar(template_value::Val::Int64Val(-5))),
        ("hi".to_string(), scalar(template_value::Val::FloatVal(5.5))),
        ("word".to_string(), scalar(template_value::Val::StringVal("ab".into()))),
        ("flag".to_string(), scalar(template_value::Val::BoolVal(true))),
        ("ids".to_string(), long_array(&[1, 2, 3])),
        (
            "words".to_string(),
            TemplateValue {
                val: Some(template_value::Val::ArrayVal(TemplateArrayValue {
                    data: Some(template_array_value::Data::StringData(StringArray {
                        data: vec!["a".into(), "b".into()],
                    })),
                })),
            },
        ),
        (
            "mixed".to_string(),
            TemplateValue {
                val: Some(template_value::Val::ArrayVal(TemplateArrayValue {
                    data: Some(template_array_value::Data::JsonData(JsonArray {
                        data: vec![b"1".to_vec(), b"\"ab\"".to_vec(), b"[1,2]".to_vec()],
                    })),
                })),
            },
        ),
        (
            "obj".to_string(),
            TemplateValue {
                val: Some(template_value::Val::ArrayVal(TemplateArrayValue {
                    data: Some(template_array_value::Data::JsonData(JsonArray { data: vec![b"{}".to_vec()] })),
                })),
            },
        ),
    ]);
    let run = |e: &str| compile(e, &s, &params).unwrap_or_else(|x| panic!("{e}: {x}")).evaluate(&seg).expect("runs");
    let want = |f: &dyn Fn(&Row) -> bool| rows.iter().map(f).collect::<Vec<_>>();
    assert_eq!(run("{lo} < i8 < {hi}"), want(&|r| -5 < r.i8 && (r.i8 as f64) < 5.5));
    assert_eq!(run("s == {word} or s in {words}"), want(&|r| ["ab", "a", "b"].contains(&r.s.as_str())));
    assert_eq!(run("b == {flag}"), want(&|r| r.b));
    assert_eq!(run("{flag}"), vec![true; 200]);
    assert_eq!(run("i16 in {ids}"), want(&|r| [1, 2, 3].contains(&r.i16)));
    assert_eq!(
        run("j['a'] in {mixed}"),
        want(&|r| {
            let a = jget(&r.j, &["a"]);
            a == Some(&json!(1)) || a == Some(&json!("ab")) || a == Some(&json!([1, 2]))
        })
    );
    let e = compile("i8 > {missing}", &s, &params).expect_err("missing");
    assert_eq!(e.kind, ExprErrorKind::Template);
    assert_eq!(e.to_string(), "the value of expression template variable name {missing} is not found at position 5");
    assert_eq!(
        compile("i8 > {word}", &s, &params).expect_err("type").to_string(),
        "cannot compare field i8 (Int8) with template value {word} of type string at position 3"
    );
    assert_eq!(
        compile("s in {ids}", &s, &params).expect_err("type").to_string(),
        "'in' list element 1 (integer) does not match field s (VarChar) at position 5"
    );
    assert_eq!(
        compile("j['a'] in {obj}", &s, &params).expect_err("object").to_string(),
        "template variable {obj}: JSON objects are not supported at position 10"
    );
    assert_eq!(
        compile("i8 in {lo}", &s, &params).expect_err("scalar").to_string(),
        "'in' requires an array of literals, got template value {lo} of type integer at position 6"
    );
}

// ---------------------------------------------------------------------------------------
// Limits

#[test]
fn deep_nesting_is_an_error_or_works_never_a_crash() {
    let s = schema();
    let rows = random_rows(8, 70);
    let seg = segment(&rows, &s);
    // Within the limit: deep parentheses, negations, arithmetic and arrays all work.
    let parens = format!("{}i8 > 0{}", "(".repeat(990), ")".repeat(990));
    let p = compile(&parens, &s, &no_params()).expect("deep parentheses");
    assert_eq!(p.evaluate(&seg).expect("runs"), rows.iter().map(|r| r.i8 > 0).collect::<Vec<_>>());
    let nots = format!("{}b", "not ".repeat(991));
    let p = compile(&nots, &s, &no_params()).expect("deep nots");
    assert_eq!(p.evaluate(&seg).expect("runs"), rows.iter().map(|r| !r.b).collect::<Vec<_>>());
    let sum = format!("i8{} > 0", " + i8".repeat(990));
    let p = compile(&sum, &s, &no_params()).expect("long sum");
    assert_eq!(p.evaluate(&seg).expect("runs"), rows.iter().map(|r| r.i8 > 0).collect::<Vec<_>>());
    let jsum = format!("j['a']{} > 0", " - j['a']".repeat(990));
    let p = compile(&jsum, &s, &no_params()).expect("long JSON sum");
    let want: Vec<bool> = rows.iter().map(|r| jnum(jget(&r.j, &["a"])).is_some_and(|x| x - 990.0 * x > 0.0)).collect();
    assert_eq!(p.evaluate(&seg).expect("runs"), want);
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
        let d = crate::SHALLOW_DEPTH - 2;
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
            assert!(ast.depth() <= crate::SHALLOW_DEPTH, "{e}: depth {}", ast.depth());
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
    assert_eq!(p.evaluate(&seg).expect("runs"), vec![true; 50]);
    let list = format!("id in [{}]", (0..100_000).map(|i| (i * 2).to_string()).collect::<Vec<_>>().join(","));
    let p = compile(&list, &s, &no_params()).expect("compiles");
    assert_eq!(p.evaluate(&seg).expect("runs"), rows.iter().map(|r| r.id % 2 == 0).collect::<Vec<_>>());
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

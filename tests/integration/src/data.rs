//! Test data: a schema with every scalar type, seeded rows, the client columns pymilvus
//! would send for them, readers for results, and brute-force references.

use fv_proto::common::KeyValuePair;
use fv_proto::schema::field_data::Field;
use fv_proto::schema::i_ds::IdField;
use fv_proto::schema::scalar_field::Data;
use fv_proto::schema::vector_field::Data as VData;
use fv_proto::schema::{
    BoolArray, CollectionSchema, DataType, DoubleArray, FieldData, FieldSchema, FloatArray, IntArray, JsonArray,
    LongArray, ScalarField, StringArray, VectorField,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const DIM: usize = 128;
pub const TAGS: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];
pub const COLORS: [&str; 3] = ["red", "green", "blue"];

/// One row of the test collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub vec: Vec<f32>,
    pub age: i32,
    pub level: i8,
    pub score: f64,
    pub price: f32,
    pub tag: String,
    pub flag: bool,
    /// Nullable.
    pub rank: Option<i16>,
    pub meta: serde_json::Value,
    /// A dynamic-field key.
    pub color: String,
}

fn field(name: &str, t: DataType) -> FieldSchema {
    FieldSchema { name: name.into(), data_type: t as i32, ..Default::default() }
}

/// The schema: int64 primary key, a 128-d vector, one field of each scalar type, a
/// nullable field, JSON and the dynamic field.
pub fn schema(name: &str) -> CollectionSchema {
    let mut id = field("id", DataType::Int64);
    id.is_primary_key = true;
    let mut vec = field("vec", DataType::FloatVector);
    vec.type_params = vec![KeyValuePair { key: "dim".into(), value: DIM.to_string() }];
    let mut tag = field("tag", DataType::VarChar);
    tag.type_params = vec![KeyValuePair { key: "max_length".into(), value: "32".into() }];
    let mut rank = field("rank", DataType::Int16);
    rank.nullable = true;
    CollectionSchema {
        name: name.into(),
        fields: vec![
            id,
            vec,
            field("age", DataType::Int32),
            field("level", DataType::Int8),
            field("score", DataType::Double),
            field("price", DataType::Float),
            tag,
            field("flag", DataType::Bool),
            rank,
            field("meta", DataType::Json),
        ],
        enable_dynamic_field: true,
        ..Default::default()
    }
}

pub fn rows(seed: u64, ids: std::ops::Range<i64>) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(seed);
    ids.map(|id| {
        let vec: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let age = rng.random_range(0..100);
        Row {
            id,
            vec,
            age,
            level: rng.random_range(-5i8..=5),
            score: rng.random_range(0.0..1000.0),
            price: (rng.random_range(0..10000) as f32) / 100.0,
            tag: TAGS[rng.random_range(0..TAGS.len())].to_string(),
            flag: rng.random_bool(0.5),
            rank: if rng.random_bool(0.3) { None } else { Some(rng.random_range(0..50)) },
            meta: serde_json::json!({"group": id % 7, "nested": {"weight": rng.random_range(0..20)}}),
            color: COLORS[rng.random_range(0..COLORS.len())].to_string(),
        }
    })
    .collect()
}

fn scalar(name: &str, t: DataType, data: Data) -> FieldData {
    FieldData {
        r#type: t as i32,
        field_name: name.into(),
        field: Some(Field::Scalars(ScalarField { data: Some(data) })),
        ..Default::default()
    }
}

/// Columns as pymilvus sends them (nullable compacted, dynamic keys in `$meta`).
pub fn columns(rows: &[Row]) -> Vec<FieldData> {
    let mut rank = scalar(
        "rank",
        DataType::Int16,
        Data::IntData(IntArray { data: rows.iter().filter_map(|r| r.rank.map(|v| v as i32)).collect() }),
    );
    rank.valid_data = rows.iter().map(|r| r.rank.is_some()).collect();
    let mut dynamic = scalar(
        "$meta",
        DataType::Json,
        Data::JsonData(JsonArray {
            data: rows
                .iter()
                .map(|r| serde_json::to_vec(&serde_json::json!({"color": r.color})).expect("json"))
                .collect(),
        }),
    );
    dynamic.is_dynamic = true;
    vec![
        scalar("id", DataType::Int64, Data::LongData(LongArray { data: rows.iter().map(|r| r.id).collect() })),
        FieldData {
            r#type: DataType::FloatVector as i32,
            field_name: "vec".into(),
            field: Some(Field::Vectors(VectorField {
                dim: DIM as i64,
                data: Some(VData::FloatVector(FloatArray {
                    data: rows.iter().flat_map(|r| r.vec.iter().copied()).collect(),
                })),
            })),
            ..Default::default()
        },
        scalar("age", DataType::Int32, Data::IntData(IntArray { data: rows.iter().map(|r| r.age).collect() })),
        scalar(
            "level",
            DataType::Int8,
            Data::IntData(IntArray { data: rows.iter().map(|r| r.level as i32).collect() }),
        ),
        scalar(
            "score",
            DataType::Double,
            Data::DoubleData(DoubleArray { data: rows.iter().map(|r| r.score).collect() }),
        ),
        scalar("price", DataType::Float, Data::FloatData(FloatArray { data: rows.iter().map(|r| r.price).collect() })),
        scalar(
            "tag",
            DataType::VarChar,
            Data::StringData(StringArray { data: rows.iter().map(|r| r.tag.clone()).collect() }),
        ),
        scalar("flag", DataType::Bool, Data::BoolData(BoolArray { data: rows.iter().map(|r| r.flag).collect() })),
        rank,
        scalar(
            "meta",
            DataType::Json,
            Data::JsonData(JsonArray {
                data: rows.iter().map(|r| serde_json::to_vec(&r.meta).expect("json")).collect(),
            }),
        ),
        dynamic,
    ]
}

pub fn ids_of(ids: &Option<fv_proto::schema::IDs>) -> Vec<i64> {
    match ids.as_ref().and_then(|i| i.id_field.as_ref()) {
        Some(IdField::IntId(a)) => a.data.clone(),
        _ => vec![],
    }
}

pub fn find<'a>(fields: &'a [FieldData], name: &str) -> Option<&'a FieldData> {
    fields.iter().find(|f| f.field_name == name)
}

pub fn longs(fd: &FieldData) -> Vec<i64> {
    match &fd.field {
        Some(Field::Scalars(ScalarField { data: Some(Data::LongData(a)) })) => a.data.clone(),
        _ => vec![],
    }
}

pub fn ints(fd: &FieldData) -> Vec<i32> {
    match &fd.field {
        Some(Field::Scalars(ScalarField { data: Some(Data::IntData(a)) })) => a.data.clone(),
        _ => vec![],
    }
}

pub fn strings(fd: &FieldData) -> Vec<String> {
    match &fd.field {
        Some(Field::Scalars(ScalarField { data: Some(Data::StringData(a)) })) => a.data.clone(),
        _ => vec![],
    }
}

pub fn jsons(fd: &FieldData) -> Vec<serde_json::Value> {
    match &fd.field {
        Some(Field::Scalars(ScalarField { data: Some(Data::JsonData(a)) })) => {
            a.data.iter().map(|b| serde_json::from_slice(b).expect("valid json")).collect()
        }
        _ => vec![],
    }
}

pub fn doubles(fd: &FieldData) -> Vec<f64> {
    match &fd.field {
        Some(Field::Scalars(ScalarField { data: Some(Data::DoubleData(a)) })) => a.data.clone(),
        _ => vec![],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    L2,
    Ip,
    Cosine,
}

/// Score as Ferrovec reports it (L2: squared distance; IP/COSINE: similarity).
pub fn score(m: Metric, q: &[f32], v: &[f32]) -> f64 {
    let dot: f64 = q.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum();
    match m {
        Metric::L2 => q.iter().zip(v).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum(),
        Metric::Ip => dot,
        Metric::Cosine => {
            let nq: f64 = q.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let nv: f64 = v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            dot / (nq * nv)
        }
    }
}

/// Exact top-k ids (best first) among rows passing `keep`.
pub fn brute_force(rows: &[Row], q: &[f32], m: Metric, k: usize, keep: impl Fn(&Row) -> bool) -> Vec<(i64, f64)> {
    let mut scored: Vec<(i64, f64)> = rows.iter().filter(|r| keep(r)).map(|r| (r.id, score(m, q, &r.vec))).collect();
    scored.sort_by(|a, b| {
        let o = if m == Metric::L2 { a.1.total_cmp(&b.1) } else { b.1.total_cmp(&a.1) };
        o.then(a.0.cmp(&b.0))
    });
    scored.truncate(k);
    scored
}

/// Whether a search result equals the reference, allowing reordering only among hits
/// whose scores tie within float tolerance.
pub fn same_hits(got_ids: &[i64], got_scores: &[f32], want: &[(i64, f64)]) -> Result<(), String> {
    if got_ids.len() != want.len() {
        return Err(format!(
            "{} hits, expected {}: got {got_ids:?}, want {:?}",
            got_ids.len(),
            want.len(),
            want.iter().map(|w| w.0).collect::<Vec<_>>()
        ));
    }
    for (i, (id, s)) in got_ids.iter().zip(got_scores).enumerate() {
        let (wid, ws) = want[i];
        if (*s as f64 - ws).abs() > 1e-3 * ws.abs().max(1.0) {
            return Err(format!("hit {i}: score {s} for id {id}, expected {ws} (id {wid})"));
        }
        if *id != wid {
            // Only acceptable when the expected id has the same score somewhere near.
            let tie = want.iter().any(|(x, xs)| x == id && (xs - ws).abs() <= 1e-5 * ws.abs().max(1.0));
            if !tie {
                return Err(format!("hit {i}: id {id}, expected {wid} (score {ws})"));
            }
        }
    }
    Ok(())
}

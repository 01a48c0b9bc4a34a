//! VarChar auto-id keys, the IP metric, partitions and Session consistency.

use fv_common::Code;
use fv_integration_tests::client::{SearchArgs, kv, run};
use fv_proto::common::{ConsistencyLevel, KeyValuePair};
use fv_proto::schema::field_data::Field;
use fv_proto::schema::i_ds::IdField;
use fv_proto::schema::scalar_field::Data;
use fv_proto::schema::vector_field::Data as VData;
use fv_proto::schema::{
    CollectionSchema, DataType, FieldData, FieldSchema, FloatArray, LongArray, ScalarField, VectorField,
};
use rand::{Rng, SeedableRng};

use crate::common;

const NAME: &str = "notes";
const DIM: usize = 16;

fn schema() -> CollectionSchema {
    CollectionSchema {
        name: NAME.into(),
        fields: vec![
            FieldSchema {
                name: "pk".into(),
                data_type: DataType::VarChar as i32,
                is_primary_key: true,
                auto_id: true,
                type_params: vec![KeyValuePair { key: "max_length".into(), value: "64".into() }],
                ..Default::default()
            },
            FieldSchema {
                name: "emb".into(),
                data_type: DataType::FloatVector as i32,
                type_params: vec![KeyValuePair { key: "dim".into(), value: DIM.to_string() }],
                ..Default::default()
            },
            FieldSchema { name: "n".into(), data_type: DataType::Int64 as i32, ..Default::default() },
        ],
        ..Default::default()
    }
}

fn columns(vecs: &[Vec<f32>], ns: &[i64]) -> Vec<FieldData> {
    vec![
        FieldData {
            r#type: DataType::FloatVector as i32,
            field_name: "emb".into(),
            field: Some(Field::Vectors(VectorField {
                dim: DIM as i64,
                data: Some(VData::FloatVector(FloatArray { data: vecs.concat() })),
            })),
            ..Default::default()
        },
        FieldData {
            r#type: DataType::Int64 as i32,
            field_name: "n".into(),
            field: Some(Field::Scalars(ScalarField { data: Some(Data::LongData(LongArray { data: ns.to_vec() })) })),
            ..Default::default()
        },
    ]
}

fn str_ids(ids: &Option<fv_proto::schema::IDs>) -> Vec<String> {
    match ids.as_ref().and_then(|i| i.id_field.as_ref()) {
        Some(IdField::StrId(a)) => a.data.clone(),
        _ => vec![],
    }
}

fn ip(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

#[test]
fn varchar_keys_ip_partitions_and_session_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (s, c) = common::start(common::config(dir.path())).await;
        c.create_collection(NAME, schema(), 2).await.expect("create");
        c.create_partition(NAME, "p1").await.expect("partition");
        c.create_index(NAME, "emb", vec![kv("index_type", "AUTOINDEX"), kv("metric_type", "IP")]).await.expect("index");
        c.load(NAME).await.expect("load");
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut vecs = |n: usize| -> Vec<Vec<f32>> {
            (0..n).map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect()
        };
        let (v0, v1) = (vecs(200), vecs(100));
        let r0 = c.insert(NAME, columns(&v0, &vec![0; 200]), 200).await.expect("insert default");
        let r1 = c.insert_into(NAME, "p1", columns(&v1, &vec![1; 100]), 100).await.expect("insert p1");
        let (ids0, ids1) = (str_ids(&r0.i_ds), str_ids(&r1.i_ds));
        assert_eq!((ids0.len(), ids1.len()), (200, 100), "auto ids are returned as strings");

        // IP search restricted to p1 equals the brute force over p1 only.
        let q = vecs(1).remove(0);
        let res = c
            .search(
                NAME,
                SearchArgs {
                    vectors: std::slice::from_ref(&q),
                    limit: 5,
                    partitions: &["p1"],
                    output_fields: &["n"],
                    ..Default::default()
                },
            )
            .await
            .expect("search p1");
        let mut want: Vec<(String, f64)> = ids1.iter().cloned().zip(v1.iter().map(|v| ip(&q, v))).collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(str_ids(&res.ids), want.iter().take(5).map(|w| w.0.clone()).collect::<Vec<_>>());
        for (got, w) in res.scores.iter().zip(&want) {
            assert!((*got as f64 - w.1).abs() < 1e-4, "IP score {got} vs {}", w.1);
        }

        // Get by VarChar keys, delete by VarChar key.
        let keys = format!("pk in [\"{}\", \"{}\"]", ids0[3], ids1[7]);
        let got = c.query(NAME, &keys, &["n"], None, None).await.expect("get");
        assert_eq!(
            fv_integration_tests::data::longs(fv_integration_tests::data::find(&got.fields_data, "n").expect("n"))
                .len(),
            2
        );
        c.delete(NAME, &format!("pk == \"{}\"", ids0[3])).await.expect("delete");
        assert_eq!(c.count(NAME, "").await.expect("count"), 299);

        // Session: a read carrying the write's timestamp sees the write at once.
        let fresh = vecs(1);
        let r = c.insert(NAME, columns(&fresh, &[42]), 1).await.expect("insert");
        let res = c
            .search(
                NAME,
                SearchArgs {
                    vectors: &fresh,
                    limit: 1,
                    filter: "n == 42",
                    consistency: ConsistencyLevel::Session,
                    guarantee: r.timestamp,
                    ..Default::default()
                },
            )
            .await
            .expect("session read");
        assert_eq!(str_ids(&res.ids), str_ids(&r.i_ds));
        // Eventually never waits and still answers.
        c.search(
            NAME,
            SearchArgs { vectors: &fresh, limit: 1, consistency: ConsistencyLevel::Eventually, ..Default::default() },
        )
        .await
        .expect("eventual read");

        // A loaded partition cannot be dropped; after release it can.
        let e = c.drop_partition(NAME, "p1").await.unwrap_err();
        assert_eq!(e.code, Code::ParameterInvalid);
        assert!(e.message.contains("release it first"), "{e}");
        c.release(NAME).await.expect("release");
        c.drop_partition(NAME, "p1").await.expect("drop partition");
        c.load(NAME).await.expect("reload");
        assert_eq!(c.count(NAME, "").await.expect("count"), 200, "p1's rows are gone with it");
        s.stop().await;
    });
}

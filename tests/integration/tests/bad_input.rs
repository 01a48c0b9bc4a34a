//! Bad input gets a clear Milvus error status (never a panic), and the server keeps
//! serving afterwards.

use fv_common::Code;
use fv_integration_tests::client::{SearchArgs, kv, run};
use fv_integration_tests::data;
use fv_proto::api::milvus_service_server::MilvusService;
use fv_proto::schema::field_data::Field;
use fv_proto::schema::scalar_field::Data;
use fv_proto::schema::{DataType, FieldData, ScalarField, StringArray};

use crate::common;

const NAME: &str = "strict";

fn assert_err<T: std::fmt::Debug>(r: fv_common::FvResult<T>, code: Code, needle: &str) {
    match r {
        Ok(v) => panic!("expected an error containing {needle:?}, got {v:?}"),
        Err(e) => {
            assert_eq!(e.code, code, "unexpected code for {e}");
            assert!(e.message.contains(needle), "error {:?} lacks {needle:?}", e.message);
        }
    }
}

#[test]
fn bad_requests_get_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = common::config(dir.path());
    config.proxy.max_request_bytes = 512 * 1024;
    run(async {
        let (s, c) = common::start(config).await;
        c.create_collection(NAME, data::schema(NAME), 1).await.expect("create");
        let rows = data::rows(5, 0..100);

        // Searching before loading.
        let q = rows[0].vec.clone();
        assert_err(
            c.search(NAME, SearchArgs { vectors: std::slice::from_ref(&q), ..Default::default() }).await,
            Code::CollectionNotLoaded,
            "collection not loaded",
        );
        // Loading without an index.
        assert_err(c.load(NAME).await, Code::IndexNotFound, "there is no vector index");

        c.create_index(NAME, "vec", vec![kv("index_type", "FLAT"), kv("metric_type", "L2")]).await.expect("index");
        c.load(NAME).await.expect("load");
        c.insert(NAME, data::columns(&rows), rows.len()).await.expect("valid insert");

        // Unknown collection.
        assert_err(
            c.insert("nope", data::columns(&rows), rows.len()).await,
            Code::CollectionNotFound,
            "collection not found[database=default][collection=nope]",
        );
        assert_err(c.count("nope", "").await, Code::CollectionNotFound, "nope");

        // Duplicate create: same schema is fine, a different one is not.
        c.create_collection(NAME, data::schema(NAME), 1).await.expect("idempotent create");
        let mut other = data::schema(NAME);
        other.fields.pop();
        assert_err(
            c.create_collection(NAME, other, 1).await,
            Code::ParameterInvalid,
            "create duplicate collection with different parameters",
        );

        // Invalid schemas.
        let mut bad_dim = data::schema("bad_dim");
        bad_dim.fields[1].type_params[0].value = "40000".into();
        assert_err(
            c.create_collection("bad_dim", bad_dim, 1).await,
            Code::ParameterInvalid,
            "invalid dimension: 40000",
        );
        assert_err(
            c.create_collection("1bad", data::schema("1bad"), 1).await,
            Code::ParameterInvalid,
            "Invalid collection name",
        );

        // Wrong dimension in an insert.
        let mut cols = data::columns(&rows[..2]);
        if let Some(Field::Vectors(v)) = cols[1].field.as_mut() {
            v.dim = 64;
        }
        assert_err(c.insert(NAME, cols, 2).await, Code::ParameterInvalid, "dim");

        // Unknown field.
        let mut cols = data::columns(&rows[..2]);
        cols.push(FieldData {
            r#type: DataType::VarChar as i32,
            field_name: "nosuchfield".into(),
            field: Some(Field::Scalars(ScalarField {
                data: Some(Data::StringData(StringArray { data: vec!["a".into(), "b".into()] })),
            })),
            ..Default::default()
        });
        assert_err(c.insert(NAME, cols, 2).await, Code::ParameterInvalid, "nosuchfield");

        // Wrong type: strings for an int32 field.
        let mut cols = data::columns(&rows[..2]);
        cols[2] = FieldData {
            r#type: DataType::VarChar as i32,
            field_name: "age".into(),
            field: Some(Field::Scalars(ScalarField {
                data: Some(Data::StringData(StringArray { data: vec!["x".into(), "y".into()] })),
            })),
            ..Default::default()
        };
        assert_err(c.insert(NAME, cols, 2).await, Code::ParameterInvalid, "age");

        // Row count mismatch.
        assert_err(c.insert(NAME, data::columns(&rows[..3]), 4).await, Code::ParameterInvalid, "num_rows");

        // Oversized request.
        let big = data::rows(6, 1000..2000);
        assert_err(c.insert(NAME, data::columns(&big), big.len()).await, Code::ParameterInvalid, "exceeds the limit");

        // Bad expressions name the problem and where it is.
        assert_err(c.query(NAME, "age > ", &["id"], None, None).await, Code::ParameterInvalid, "position");
        assert_err(
            c.query(NAME, "age > \"old\"", &["id"], None, None).await,
            Code::ParameterInvalid,
            "cannot compare field age",
        );
        assert_err(c.delete(NAME, "(id in [1, 2]").await, Code::ParameterInvalid, "cannot parse expression");
        assert_err(
            c.search(
                NAME,
                SearchArgs { vectors: std::slice::from_ref(&q), filter: "tag like 5", ..Default::default() },
            )
            .await,
            Code::ParameterInvalid,
            "like",
        );
        // Unknown output field (the collection has a dynamic field, so unknown names are
        // dynamic keys; a query on a field-only name without it is fine).
        let r = c.query(NAME, "id < 3", &["nosuch"], None, None).await.expect("dynamic key output");
        assert_eq!(r.output_fields, vec!["id".to_string(), "nosuch".to_string()]);

        // Wrong query vector dimension, bad metric, bad limits.
        let short = vec![0.5f32; 64];
        assert_err(
            c.search(NAME, SearchArgs { vectors: &[short], ..Default::default() }).await,
            Code::ParameterInvalid,
            "dim",
        );
        assert_err(
            c.search(NAME, SearchArgs { vectors: std::slice::from_ref(&q), metric: Some("IP"), ..Default::default() })
                .await,
            Code::ParameterInvalid,
            "metric type not match",
        );
        assert_err(
            c.search(NAME, SearchArgs { vectors: std::slice::from_ref(&q), limit: 0, ..Default::default() }).await,
            Code::ParameterInvalid,
            "topk",
        );
        assert_err(
            c.search(NAME, SearchArgs { vectors: std::slice::from_ref(&q), limit: 20_000, ..Default::default() }).await,
            Code::ParameterInvalid,
            "topk",
        );
        assert_err(
            c.query(NAME, "", &["id"], None, None).await,
            Code::ParameterInvalid,
            "empty expression should be used with limit",
        );
        assert_err(
            c.search(
                NAME,
                SearchArgs { vectors: std::slice::from_ref(&q), partitions: &["nopart"], ..Default::default() },
            )
            .await,
            Code::PartitionNotFound,
            "nopart",
        );

        // Unsupported features answer with a status too.
        let r = c
            .api
            .hybrid_search(tonic::Request::new(Default::default()))
            .await
            .expect("no transport error")
            .into_inner();
        assert_eq!(r.status.expect("status").code, Code::ServiceUnimplemented as i32);

        // And the server still serves correct results.
        let res = c
            .search(
                NAME,
                SearchArgs { vectors: std::slice::from_ref(&q), limit: 3, metric: Some("L2"), ..Default::default() },
            )
            .await
            .expect("search");
        let want = data::brute_force(&rows, &q, data::Metric::L2, 3, |_| true);
        data::same_hits(&data::ids_of(&res.ids), &res.scores, &want).expect("results after bad input");
        assert_eq!(c.count(NAME, "").await.expect("count"), 100);
        s.stop().await;
    });
}

//! A small end-to-end pass through every role.

use fv_integration_tests::client::{SearchArgs, kv, run};
use fv_integration_tests::data::{self, Metric};

use crate::common;

#[test]
fn insert_search_query_flush_delete() {
    fv_integration_smoke();
}

fn fv_integration_smoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (s, c) = common::start(common::config(dir.path())).await;
        c.create_collection("smoke", data::schema("smoke"), 2).await.expect("create");
        c.create_index("smoke", "vec", vec![kv("index_type", "FLAT"), kv("metric_type", "L2")]).await.expect("index");
        c.load("smoke").await.expect("load");
        let rows = data::rows(1, 0..300);
        let r = c.insert("smoke", data::columns(&rows), rows.len()).await.expect("insert");
        assert_eq!(r.insert_cnt, 300);
        assert_eq!(c.count("smoke", "").await.expect("count"), 300);
        let q = rows[7].vec.clone();
        let res = c
            .search("smoke", SearchArgs { vectors: std::slice::from_ref(&q), limit: 5, ..Default::default() })
            .await
            .expect("search");
        let want = data::brute_force(&rows, &q, Metric::L2, 5, |_| true);
        data::same_hits(&data::ids_of(&res.ids), &res.scores, &want).expect("growing results");
        c.flush("smoke").await.expect("flush");
        let res = c
            .search("smoke", SearchArgs { vectors: std::slice::from_ref(&q), limit: 5, ..Default::default() })
            .await
            .expect("search");
        data::same_hits(&data::ids_of(&res.ids), &res.scores, &want).expect("sealed results");
        c.delete("smoke", "id in [7, 8, 9]").await.expect("delete");
        assert_eq!(c.count("smoke", "").await.expect("count"), 297);
        let want = data::brute_force(&rows, &q, Metric::L2, 5, |r| ![7, 8, 9].contains(&r.id));
        let res =
            c.search("smoke", SearchArgs { vectors: &[q], limit: 5, ..Default::default() }).await.expect("search");
        data::same_hits(&data::ids_of(&res.ids), &res.scores, &want).expect("after delete");
        s.stop().await;
    });
}

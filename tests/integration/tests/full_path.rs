//! The whole data path through the proxy's Rust interface: 20,000 rows of 128-d
//! vectors with scalar fields, flush (and handoff), more growing rows, deletes by key
//! and by filter, upserts, filtered searches and queries — each compared with a
//! brute-force reference computed here — then a restart on the same data directory
//! and the same checks again.

use std::collections::BTreeMap;
use std::time::Duration;

use fv_integration_tests::client::{Client, SearchArgs, kv, run};
use fv_integration_tests::data::{self, Metric, Row};
use fv_proto::api::milvus_service_server::MilvusService;
use fv_proto::fv::querynode::GetDataDistributionRequest;
use fv_runtime::Clients;
use fv_runtime::rpc::Role;

use crate::common;

const NAME: &str = "docs";

/// A filter in the expression language and the same predicate over a row.
struct Filter {
    expr: &'static str,
    keep: fn(&Row) -> bool,
}

fn filters() -> Vec<Filter> {
    vec![
        Filter { expr: "", keep: |_| true },
        Filter { expr: "age > 50", keep: |r| r.age > 50 },
        Filter {
            expr: "tag in [\"alpha\", \"beta\"] and flag == true",
            keep: |r| (r.tag == "alpha" || r.tag == "beta") && r.flag,
        },
        Filter { expr: "10 <= age < 30 or level == -5", keep: |r| (10..30).contains(&r.age) || r.level == -5 },
        Filter { expr: "rank is null", keep: |r| r.rank.is_none() },
        Filter { expr: "rank > 20", keep: |r| r.rank.is_some_and(|v| v > 20) },
        Filter { expr: "meta[\"group\"] == 3", keep: |r| r.meta["group"] == 3 },
        Filter {
            expr: "meta[\"nested\"][\"weight\"] >= 15",
            keep: |r| r.meta["nested"]["weight"].as_i64().is_some_and(|w| w >= 15),
        },
        Filter { expr: "color == \"red\"", keep: |r| r.color == "red" },
        Filter { expr: "score / 10 > 50 and price < 50.0", keep: |r| r.score / 10.0 > 50.0 && r.price < 50.0 },
        Filter { expr: "tag like \"ga%\"", keep: |r| r.tag.starts_with("ga") },
        Filter { expr: "not (age % 3 == 0)", keep: |r| r.age % 3 != 0 },
    ]
}

/// Checks searches (three filters × several queries, offsets, output fields) and
/// queries (every filter: ids, values, counts, pagination) against the model.
async fn verify(c: &Client, model: &BTreeMap<i64, Row>, queries: &[Vec<f32>], stage: &str) {
    let rows: Vec<Row> = model.values().cloned().collect();
    for f in filters() {
        // Search: batched queries, each compared with the exact top 10.
        let res = c
            .search(
                NAME,
                SearchArgs {
                    vectors: queries,
                    limit: 10,
                    filter: f.expr,
                    output_fields: &["age", "tag", "color"],
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{stage}: search [{}] failed: {e}", f.expr));
        let ids = data::ids_of(&res.ids);
        let mut at = 0;
        for (qi, q) in queries.iter().enumerate() {
            let n = res.topks[qi] as usize;
            let want = data::brute_force(&rows, q, Metric::Cosine, 10, f.keep);
            data::same_hits(&ids[at..at + n], &res.scores[at..at + n], &want)
                .unwrap_or_else(|e| panic!("{stage}: search [{}] query {qi}: {e}", f.expr));
            at += n;
        }
        // Output fields carry the right values for every hit.
        let ages = data::ints(data::find(&res.fields_data, "age").expect("age returned"));
        let tags = data::strings(data::find(&res.fields_data, "tag").expect("tag returned"));
        let metas = data::jsons(data::find(&res.fields_data, "$meta").expect("dynamic key returned in $meta"));
        for (i, id) in ids.iter().enumerate() {
            let r = &model[id];
            assert_eq!((ages[i], tags[i].as_str()), (r.age, r.tag.as_str()), "{stage}: fields of hit {id}");
            assert_eq!(metas[i], serde_json::json!({"color": r.color}), "{stage}: dynamic key of hit {id}");
        }
        // Query: exact matching ids in key order, and the count.
        let want: Vec<i64> = rows.iter().filter(|r| (f.keep)(r)).map(|r| r.id).collect();
        let expr = if f.expr.is_empty() { "id >= 0" } else { f.expr };
        let q = c
            .query(NAME, expr, &["id", "score"], None, None)
            .await
            .unwrap_or_else(|e| panic!("{stage}: query [{expr}]: {e}"));
        let got = data::longs(data::find(&q.fields_data, "id").expect("id returned"));
        assert_eq!(got, want, "{stage}: query [{expr}]");
        let scores = data::doubles(data::find(&q.fields_data, "score").expect("score returned"));
        for (id, s) in got.iter().zip(&scores) {
            assert_eq!(*s, model[id].score, "{stage}: score of {id}");
        }
        assert_eq!(c.count(NAME, f.expr).await.expect("count") as usize, want.len(), "{stage}: count(*) [{}]", f.expr);
        // Pagination by key.
        let page = c.query(NAME, expr, &["id"], Some(7), Some(3)).await.expect("paged query");
        let got = data::longs(data::find(&page.fields_data, "id").expect("id"));
        assert_eq!(got, want.iter().skip(3).take(7).copied().collect::<Vec<_>>(), "{stage}: page of [{expr}]");
    }
    // Offset: the second page of a search is the reference's hits 5..10.
    let q = &queries[0];
    let res = c
        .search(NAME, SearchArgs { vectors: std::slice::from_ref(q), limit: 5, offset: 5, ..Default::default() })
        .await
        .expect("search with offset");
    let want = data::brute_force(&rows, q, Metric::Cosine, 10, |_| true);
    data::same_hits(&data::ids_of(&res.ids), &res.scores, &want[5..])
        .unwrap_or_else(|e| panic!("{stage}: offset: {e}"));
}

/// Waits until no growing segment remains in any delegator (every flushed segment was
/// handed off to a sealed copy).
async fn wait_handoff(s: &ferrovec::Standalone) {
    let nodes = fv_runtime::session::list(&s.ctx.meta, Role::QueryNode).await.expect("sessions");
    for _ in 0..200 {
        let mut growing = 0;
        let mut sealed = 0;
        for n in &nodes {
            let d = s
                .ctx
                .rpc
                .querynode(n.node_id)
                .get_data_distribution(&GetDataDistributionRequest {})
                .await
                .expect("distribution");
            for ch in d.channels {
                growing += ch.growing_segment_ids.len();
                sealed += ch.sealed_segment_ids.len();
            }
        }
        if growing == 0 && sealed > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("flushed segments were not handed off");
}

#[test]
fn full_data_path_with_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = common::config(dir.path());
    // Small segments: sealing on size happens during the load.
    config.datacoord.segment_max_rows = 3_000;
    let queries: Vec<Vec<f32>> = data::rows(99, 0..8).into_iter().map(|r| r.vec).collect();
    let mut model: BTreeMap<i64, Row> = BTreeMap::new();

    run(async {
        let (s, c) = common::start(config.clone()).await;
        c.create_collection(NAME, data::schema(NAME), 2).await.expect("create");
        c.create_index(NAME, "vec", vec![kv("index_type", "AUTOINDEX"), kv("metric_type", "COSINE")])
            .await
            .expect("create index");
        c.load(NAME).await.expect("load");

        for batch in 0..20 {
            let rows = data::rows(batch, batch as i64 * 1000..(batch as i64 + 1) * 1000);
            let r = c.insert(NAME, data::columns(&rows), rows.len()).await.expect("insert");
            assert_eq!(r.insert_cnt, 1000);
            model.extend(rows.into_iter().map(|r| (r.id, r)));
        }
        c.flush(NAME).await.expect("flush");
        wait_handoff(&s).await;
        let desc = c.describe_index(NAME).await.expect("describe index");
        assert_eq!(desc[0].total_rows, 20_000, "every flushed row is covered by the index");

        // More rows that stay in growing segments.
        let more = data::rows(50, 20_000..22_000);
        c.insert(NAME, data::columns(&more), more.len()).await.expect("insert growing");
        model.extend(more.into_iter().map(|r| (r.id, r)));

        // Deletes by key (sealed and growing rows) and by filter.
        let victims: Vec<i64> = (0..22_000).step_by(97).collect();
        let expr = format!("id in {victims:?}");
        let r = c.delete(NAME, &expr).await.expect("delete by ids");
        assert_eq!(r.delete_cnt, victims.len() as i64);
        for v in &victims {
            model.remove(v);
        }
        let r = c.delete(NAME, "age < 5 and tag == \"alpha\"").await.expect("delete by filter");
        let matched: Vec<i64> = model.values().filter(|r| r.age < 5 && r.tag == "alpha").map(|r| r.id).collect();
        assert_eq!(r.delete_cnt as usize, matched.len());
        for id in matched {
            model.remove(&id);
        }

        // Upserts: 400 existing keys get new values, 100 keys are new.
        let mut ups = data::rows(77, 0..500);
        for (i, r) in ups.iter_mut().enumerate() {
            r.id = if i < 400 { (i as i64) * 50 + 1 } else { 30_000 + i as i64 };
        }
        c.upsert(NAME, data::columns(&ups), ups.len()).await.expect("upsert");
        model.extend(ups.into_iter().map(|r| (r.id, r)));

        assert_eq!(c.count(NAME, "").await.expect("count") as usize, model.len());
        verify(&c, &model, &queries, "before restart").await;

        // Flush again so the restart recovers from binlogs, delta logs and the log.
        c.flush(NAME).await.expect("second flush");
        s.stop().await;
    });

    // A new process life on the same data directory.
    run(async {
        let (s, c) = common::start(config.clone()).await;
        // The collection was loaded before: querycoord loads it again by itself.
        c.wait(Duration::from_secs(60), || async {
            let st = c
                .api
                .get_load_state(tonic::Request::new(fv_proto::api::GetLoadStateRequest {
                    collection_name: NAME.into(),
                    ..Default::default()
                }))
                .await
                .expect("rpc")
                .into_inner();
            Ok(st.state == fv_proto::common::LoadState::Loaded as i32)
        })
        .await
        .expect("reloaded after restart");
        assert_eq!(c.count(NAME, "").await.expect("count") as usize, model.len());
        verify(&c, &model, &queries, "after restart").await;
        s.stop().await;
    });
}

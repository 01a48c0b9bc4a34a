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

/// A growing segment nobody writes to is sealed after `segment_idle_seal_ms` and
/// flushed without any flush call; reads stay exact across the handoff.
#[test]
fn idle_segments_are_sealed_and_flushed() {
    use fv_proto::common::SegmentState;
    use fv_proto::fv::datacoord::GetSegmentInfoRequest;

    use fv_runtime::Clients;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = common::config(dir.path());
    config.datacoord.segment_idle_seal_ms = 300;
    run(async {
        let (s, c) = common::start(config).await;
        c.create_collection("idle", data::schema("idle"), 1).await.expect("create");
        c.create_index("idle", "vec", vec![kv("metric_type", "IP")]).await.expect("index");
        c.load("idle").await.expect("load");
        let rows = data::rows(9, 0..50);
        c.insert("idle", data::columns(&rows), rows.len()).await.expect("insert");
        let id = s.proxy.as_ref().expect("proxy").cache.get("", "idle").await.expect("collection").info.id;
        c.wait(std::time::Duration::from_secs(30), || async {
            let r = s
                .ctx
                .rpc
                .datacoord()
                .get_segment_info(&GetSegmentInfoRequest { collection_id: id, ..Default::default() })
                .await?;
            Ok(!r.segments.is_empty() && r.segments.iter().all(|s| s.state == SegmentState::Flushed as i32))
        })
        .await
        .expect("the idle segment was sealed and flushed");
        let q = rows[3].vec.clone();
        let res = c
            .search("idle", SearchArgs { vectors: std::slice::from_ref(&q), limit: 3, ..Default::default() })
            .await
            .expect("search");
        let want = data::brute_force(&rows, &q, Metric::Ip, 3, |_| true);
        data::same_hits(&data::ids_of(&res.ids), &res.scores, &want).expect("results after the idle flush");
        s.stop().await;
    });
}

/// CheckHealth says healthy when every role runs, and names the roles that have no live
/// process when some are missing (here: no data, query or index node).
#[test]
fn check_health_names_missing_roles() {
    use fv_proto::api::CheckHealthRequest;
    use fv_proto::api::milvus_service_server::MilvusService;
    use fv_runtime::rpc::Role;

    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (s, c) = common::start(common::config(dir.path())).await;
        let r = c.api.check_health(tonic::Request::new(CheckHealthRequest {})).await.expect("rpc").into_inner();
        assert!(r.is_healthy, "every role runs: {:?}", r.reasons);
        assert!(r.reasons.is_empty());
        s.stop().await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let roles = [Role::RootCoord, Role::DataCoord, Role::IndexCoord, Role::QueryCoord, Role::Proxy];
        let s = ferrovec::Standalone::start_roles(common::config(dir.path()), &roles, false).await.expect("starts");
        let api = s.api().expect("a proxy");
        let r = api.check_health(tonic::Request::new(CheckHealthRequest {})).await.expect("rpc").into_inner();
        assert!(!r.is_healthy);
        assert_eq!(r.reasons, vec!["no live datanode", "no live querynode", "no live indexnode"]);
        s.stop().await;
    });
}

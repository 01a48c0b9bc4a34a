//! The index lifecycle across indexcoord, index nodes and query nodes: an IVF_FLAT
//! build whose index node is stopped mid-build finishes on another node; query nodes
//! switch the sealed segment to the index (IVF answers differ from brute force at
//! nprobe 1 and equal it when every list is probed); a corrupt index file is detected,
//! never served, and rebuilt under a new build id; drop_index removes files and meta.
//! An HNSW index serves searches with `ef`, filters and range bounds.

use std::time::Duration;

use ferrovec::Standalone;
use fv_integration_tests::client::{Client, SearchArgs, kv, run};
use fv_integration_tests::data::{self, Metric, Row};
use fv_proto::api::milvus_service_server::MilvusService;
use fv_proto::common::IndexState;
use fv_proto::fv::meta::SegmentIndexTask;
use fv_proto::fv::querynode::GetDataDistributionRequest;
use fv_runtime::Clients;
use fv_runtime::rpc::Role;

use crate::common;

const NAME: &str = "ivf";
const ROWS: i64 = 30_000;
const NLIST: usize = 128;

/// Every role but the index node: index nodes are started beside it, each as its own
/// node of the same cluster, so one can be stopped on its own.
async fn start_without_index_node(config: fv_config::Config) -> (Standalone, Client) {
    fv_runtime::telemetry::init_for_tests();
    let roles: Vec<Role> = ferrovec::roles::START_ORDER.into_iter().filter(|r| *r != Role::IndexNode).collect();
    let s = Standalone::start_roles(config, &roles, false).await.expect("roles start");
    let api = s.api().expect("a proxy runs");
    (s, Client { api })
}

async fn index_node(s: &Standalone, config: &fv_config::Config) -> Standalone {
    Standalone::start_on(config.clone(), s.backends.clone(), &[Role::IndexNode], false).await.expect("index node")
}

async fn tasks(s: &Standalone) -> Vec<SegmentIndexTask> {
    fv_indexcoord::catalog::load(&s.ctx.meta).await.expect("index meta").1
}

/// Polls (bounded) until `f` yields a value.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Build ids the query nodes search each loaded segment with (0: raw vectors).
async fn served_builds(s: &Standalone) -> Vec<i64> {
    let nodes = fv_runtime::session::list(&s.ctx.meta, Role::QueryNode).await.expect("sessions");
    let mut out = Vec::new();
    for n in nodes {
        let d = s
            .ctx
            .rpc
            .querynode(n.node_id)
            .get_data_distribution(&GetDataDistributionRequest {})
            .await
            .expect("distribution");
        out.extend(d.segments.iter().map(|seg| seg.index_build_id));
    }
    out
}

async fn wait_index_finished(c: &Client) {
    c.wait(Duration::from_secs(120), || async {
        let d = c.describe_index(NAME).await?;
        Ok(d[0].state == IndexState::Finished as i32 && d[0].indexed_rows == ROWS)
    })
    .await
    .expect("index finished");
}

/// Searches with `nprobe` and returns recall@10 against brute force, asserting exact
/// equality when `exact`.
async fn recall(c: &Client, rows: &[Row], queries: &[Vec<f32>], nprobe: usize, exact: bool) -> f64 {
    let res = c
        .search(
            NAME,
            SearchArgs {
                vectors: queries,
                limit: 10,
                extra: vec![kv("params", format!("{{\"nprobe\": {nprobe}}}"))],
                ..Default::default()
            },
        )
        .await
        .expect("search");
    let ids = data::ids_of(&res.ids);
    let (mut at, mut hits) = (0, 0);
    for (qi, q) in queries.iter().enumerate() {
        let n = res.topks[qi] as usize;
        let want = data::brute_force(rows, q, Metric::L2, 10, |_| true);
        if exact {
            data::same_hits(&ids[at..at + n], &res.scores[at..at + n], &want)
                .unwrap_or_else(|e| panic!("nprobe {nprobe}, query {qi}: {e}"));
        }
        hits += ids[at..at + n].iter().filter(|id| want.iter().any(|w| w.0 == **id)).count();
        at += n;
    }
    hits as f64 / (10 * queries.len()) as f64
}

#[test]
fn ivf_lifecycle_with_a_stopped_index_node_a_corrupt_file_and_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::config(dir.path());
    let rows = data::rows(5, 0..ROWS);
    let queries: Vec<Vec<f32>> = data::rows(6, 0..20).into_iter().map(|r| r.vec).collect();

    run(async {
        let (s, c) = start_without_index_node(config.clone()).await;
        c.create_collection(NAME, data::schema(NAME), 1).await.expect("create");
        for chunk in rows.chunks(5_000) {
            c.insert(NAME, data::columns(chunk), chunk.len()).await.expect("insert");
        }
        c.flush(NAME).await.expect("flush");

        // Node A takes the build; it is stopped while the build runs.
        let a = index_node(&s, &config).await;
        let a_id = a.ctx.node_id;
        // Many k-means iterations keep the build running long enough to be interrupted.
        c.create_index(
            NAME,
            "vec",
            vec![
                kv("index_type", "IVF_FLAT"),
                kv("metric_type", "L2"),
                kv("params", format!("{{\"nlist\": {NLIST}, \"kmeans_iterations\": 300}}")),
            ],
        )
        .await
        .expect("create index");
        let first = eventually("the build to start on node A", Duration::from_secs(60), || async {
            tasks(&s).await.into_iter().find(|t| t.state == IndexState::InProgress as i32 && t.node_id == a_id)
        })
        .await;
        a.stop().await;
        let d = c.describe_index(NAME).await.expect("describe");
        assert_ne!(d[0].state, IndexState::Finished as i32, "the build was still running when node A stopped");
        assert_eq!((d[0].total_rows, d[0].pending_index_rows), (ROWS, ROWS));

        // Node B finishes it.
        let b = index_node(&s, &config).await;
        wait_index_finished(&c).await;
        let done = tasks(&s).await.into_iter().find(|t| t.build_id == first.build_id).expect("task kept");
        assert_eq!(done.node_id, b.ctx.node_id, "the task was re-issued to the live node");
        assert_eq!(done.index_files.len(), 1);
        let file = s.backends.objects.get(&done.index_files[0]).await.expect("index file written");
        assert_eq!(file.len() as i64, done.serialized_size);

        // Loaded, the segment is searched through the index.
        c.load(NAME).await.expect("load");
        eventually("the query node to use the index", Duration::from_secs(60), || async {
            (served_builds(&s).await == vec![done.build_id]).then_some(())
        })
        .await;
        let r1 = recall(&c, &rows, &queries, 1, false).await;
        assert!(r1 < 1.0, "nprobe 1 scans one list of {NLIST}: results must be approximate (recall {r1})");
        let r16 = recall(&c, &rows, &queries, 16, false).await;
        // Uniform random vectors have no clusters, so IVF recall grows slowly with nprobe.
        assert!(r16 > r1, "recall@10 at nprobe 16: {r16} (nprobe 1: {r1})");
        recall(&c, &rows, &queries, NLIST, true).await;

        // A corrupt file is never served: the segment falls back to brute force on the
        // next load, the build is redone under a new id and swapped in.
        c.release(NAME).await.expect("release");
        eventually("the release", Duration::from_secs(30), || async {
            served_builds(&s).await.is_empty().then_some(())
        })
        .await;
        let mut bytes = file.to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        s.backends.objects.put(&done.index_files[0], bytes.into()).await.expect("corrupt the file");
        c.load(NAME).await.expect("load again");
        recall(&c, &rows, &queries, 1, true).await; // brute force: exact whatever nprobe says
        let rebuilt = eventually("a rebuild under a new build id", Duration::from_secs(120), || async {
            let ts = tasks(&s).await;
            let served = served_builds(&s).await;
            ts.into_iter()
                .find(|t| t.build_id != done.build_id && !t.deleted && t.state == IndexState::Finished as i32)
                .filter(|t| served == vec![t.build_id])
        })
        .await;
        assert_eq!(rebuilt.segment_id, done.segment_id);
        recall(&c, &rows, &queries, NLIST, true).await;
        assert!(recall(&c, &rows, &queries, 1, false).await < 1.0, "the rebuilt index is in use");
        eventually("the corrupt build's files to be collected", Duration::from_secs(30), || async {
            s.backends.objects.get(&done.index_files[0]).await.is_err().then_some(())
        })
        .await;

        // drop_index (after release, as Milvus requires): files and records go.
        c.release(NAME).await.expect("release");
        let r = c
            .api
            .drop_index(tonic::Request::new(fv_proto::api::DropIndexRequest {
                collection_name: NAME.into(),
                field_name: "vec".into(),
                ..Default::default()
            }))
            .await
            .expect("no transport error")
            .into_inner();
        assert_eq!(r.code, 0, "drop index: {}", r.reason);
        eventually("dropped index files and meta to be collected", Duration::from_secs(30), || async {
            let gone = s.backends.objects.get(&rebuilt.index_files[0]).await.is_err();
            (gone && tasks(&s).await.is_empty()).then_some(())
        })
        .await;
        assert!(c.describe_index(NAME).await.is_err(), "no index is described after the drop");

        b.stop().await;
        s.stop().await;
    });
}

/// Searches `queries` with `ef` (and an optional filter) and returns recall@10 against
/// brute force over the rows the filter keeps.
async fn hnsw_recall(c: &Client, rows: &[Row], queries: &[Vec<f32>], ef: usize, filter: &str) -> f64 {
    let res = c
        .search(
            HNSW,
            SearchArgs {
                vectors: queries,
                limit: 10,
                filter,
                extra: vec![kv("params", format!("{{\"ef\": {ef}}}"))],
                ..Default::default()
            },
        )
        .await
        .expect("search");
    let ids = data::ids_of(&res.ids);
    let (mut at, mut hits) = (0, 0);
    for (qi, q) in queries.iter().enumerate() {
        let n = res.topks[qi] as usize;
        assert_eq!(n, 10);
        let want = data::brute_force(rows, q, Metric::L2, 10, |r| filter.is_empty() || r.age < 30);
        for id in &ids[at..at + n] {
            assert!(filter.is_empty() || rows[*id as usize].age < 30, "row {id} fails the filter");
        }
        hits += ids[at..at + n].iter().filter(|id| want.iter().any(|w| w.0 == **id)).count();
        at += n;
    }
    hits as f64 / (10 * queries.len()) as f64
}

const HNSW: &str = "hnsw";

#[test]
fn hnsw_index_serves_ef_filters_and_range_search() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = data::rows(7, 0..10_000);
    let queries: Vec<Vec<f32>> = data::rows(8, 0..20).into_iter().map(|r| r.vec).collect();
    run(async {
        let (s, c) = common::start(common::config(dir.path())).await;
        c.create_collection(HNSW, data::schema(HNSW), 1).await.expect("create");
        for chunk in rows.chunks(5_000) {
            c.insert(HNSW, data::columns(chunk), chunk.len()).await.expect("insert");
        }
        c.flush(HNSW).await.expect("flush");
        c.create_index(
            HNSW,
            "vec",
            vec![
                kv("index_type", "HNSW"),
                kv("metric_type", "L2"),
                kv("params", r#"{"M": 16, "efConstruction": 100}"#.to_string()),
            ],
        )
        .await
        .expect("create index");
        c.wait(Duration::from_secs(120), || async {
            let d = c.describe_index(HNSW).await?;
            Ok(d[0].state == IndexState::Finished as i32 && d[0].indexed_rows == 10_000)
        })
        .await
        .expect("index finished");
        let d = c.describe_index(HNSW).await.expect("describe");
        let param = |k: &str| d[0].params.iter().find(|p| p.key == k).map(|p| p.value.clone());
        assert_eq!((param("index_type"), param("M")), (Some("HNSW".into()), Some("16".into())));
        c.load(HNSW).await.expect("load");
        eventually("the query node to use the index", Duration::from_secs(60), || async {
            let served = served_builds(&s).await;
            (!served.is_empty() && served.iter().all(|b| *b != 0)).then_some(())
        })
        .await;

        // 128-d uniform noise is hard for a graph: recall grows with ef.
        let low = hnsw_recall(&c, &rows, &queries, 10, "").await;
        let high = hnsw_recall(&c, &rows, &queries, 400, "").await;
        assert!(high >= 0.95 && high > low, "recall@10 {low} at ef 10, {high} at ef 400");
        // A filter keeping 30 % of the rows: the walk steps over the others.
        let filtered = hnsw_recall(&c, &rows, &queries, 400, "age < 30").await;
        assert!(filtered >= 0.95, "filtered recall@10 {filtered} at ef 400");
        // ef below the top-k is refused, as Milvus does.
        let e = c
            .search(
                HNSW,
                SearchArgs {
                    vectors: &queries[..1],
                    limit: 10,
                    extra: vec![kv("params", r#"{"ef": 5}"#.to_string())],
                    ..Default::default()
                },
            )
            .await
            .expect_err("ef < k");
        assert!(e.to_string().contains("ef(5) should be larger than k(10)"), "{e}");
        // Range search: every hit inside the window, best first.
        let want = data::brute_force(&rows, &queries[0], Metric::L2, 50, |_| true);
        let (inner, outer) = (want[5].1 as f32, want[40].1 as f32);
        let res = c
            .search(
                HNSW,
                SearchArgs {
                    vectors: &queries[..1],
                    limit: 100,
                    extra: vec![kv("params", format!("{{\"radius\": {outer}, \"range_filter\": {inner}}}"))],
                    ..Default::default()
                },
            )
            .await
            .expect("range search");
        assert!(res.scores.iter().all(|d| *d >= inner && *d < outer), "{:?}", res.scores);
        assert!(res.scores.len() >= 30, "{} hits in the window of 35", res.scores.len());
        s.stop().await;
    });
}

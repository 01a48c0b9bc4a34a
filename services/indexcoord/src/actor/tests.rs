//! indexcoord's task lifecycle against fake peers on the test bus: rootcoord
//! (allocation), datacoord (the flushed segments) and index nodes (job stats and
//! builds, with sessions that a test can end).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fv_common::FvResult;
use fv_proto::common::{IndexState, KeyValuePair, SegmentState};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::datacoord::{GetSegmentInfoResponse, data_coord_rpc};
use fv_proto::fv::index::{CreateIndexRequest, GetJobStatsResponse, ReportBuildResultRequest, index_node_rpc};
use fv_proto::fv::meta::SegmentInfo;
use fv_proto::fv::rootcoord::{AllocIdResponse, AllocTimestampResponse, root_coord_rpc};
use fv_runtime::rpc::{Role, Route, Target};
use fv_runtime::testing::TestContext;
use fv_runtime::{RoleContext, session};
use parking_lot::{Mutex, RwLock};

use super::{Core, State};
use crate::MAX_RETRIES;

const COLLECTION: i64 = 3;

/// Builds the fake index nodes were asked for: (build id, node).
type Builds = Arc<Mutex<Vec<(i64, i64)>>>;

struct Fakes {
    builds: Builds,
    /// Index nodes by id, with their own context (its shutdown ends their session).
    nodes: BTreeMap<i64, RoleContext>,
}

async fn serve_fakes(t: &TestContext, segments: Vec<SegmentInfo>, nodes: &[i64]) -> Fakes {
    let next_id = Arc::new(AtomicI64::new(1000));
    let alloc = Route::new::<root_coord_rpc::AllocId, _, _, _>(move |req| {
        let id = next_id.fetch_add(req.count as i64, Ordering::SeqCst);
        async move { FvResult::Ok(AllocIdResponse { id_begin: id, count: req.count, ..Default::default() }) }
    });
    let ts = Route::new::<root_coord_rpc::AllocTimestamp, _, _, _>(|req| async move {
        FvResult::Ok(AllocTimestampResponse { timestamp: 77, count: req.count, ..Default::default() })
    });
    let info = Route::new::<data_coord_rpc::GetSegmentInfo, _, _, _>(move |req| {
        let segments: Vec<SegmentInfo> = segments
            .iter()
            .filter(|s| req.segment_ids.is_empty() || req.segment_ids.contains(&s.id))
            .cloned()
            .collect();
        async move { FvResult::Ok(GetSegmentInfoResponse { segments, ..Default::default() }) }
    });
    t.serve(Target::Coord, vec![alloc, ts, info]).await;
    let builds: Builds = Default::default();
    let mut contexts = BTreeMap::new();
    for &node in nodes {
        contexts.insert(node, add_index_node(t, node, &builds).await);
    }
    Fakes { builds, nodes: contexts }
}

/// A fake index node `node` with a live session; its builds are recorded in `builds`.
async fn add_index_node(t: &TestContext, node: i64, builds: &Builds) -> RoleContext {
    let ctx = t.node(node);
    let b = builds.clone();
    let build = Route::new::<index_node_rpc::BuildIndex, _, _, _>(move |req| {
        b.lock().push((req.task.map(|t| t.build_id).unwrap_or_default(), node));
        async { FvResult::Ok(StatusResponse::ok()) }
    });
    let stats = Route::new::<index_node_rpc::GetJobStats, _, _, _>(|_req| async {
        FvResult::Ok(GetJobStatsResponse { running: 0, slots: 4, ..Default::default() })
    });
    ctx.server.serve(Target::Node(node), vec![build, stats]).await.unwrap();
    session::register(
        ctx.meta.clone(),
        Role::IndexNode,
        node,
        String::new(),
        Duration::from_secs(30),
        ctx.shutdown.clone(),
    )
    .await
    .unwrap();
    ctx
}

fn flushed(id: i64, rows: i64) -> SegmentInfo {
    SegmentInfo {
        id,
        collection_id: COLLECTION,
        partition_id: 1,
        num_rows: rows,
        state: SegmentState::Flushed as i32,
        ..Default::default()
    }
}

fn core(t: &TestContext) -> Core {
    Core { ctx: t.ctx.clone(), state: RwLock::new(State::default()) }
}

fn kv(k: &str, v: &str) -> KeyValuePair {
    KeyValuePair { key: k.into(), value: v.into() }
}

fn ivf_index() -> CreateIndexRequest {
    CreateIndexRequest {
        collection_id: COLLECTION,
        field_id: 101,
        index_name: "v_idx".into(),
        type_params: vec![kv("dim", "8")],
        index_params: vec![kv("index_type", "IVF_FLAT"), kv("metric_type", "L2"), kv("nlist", "16")],
        user_index_params: vec![],
    }
}

fn report(build_id: i64, node_id: i64, state: IndexState) -> ReportBuildResultRequest {
    ReportBuildResultRequest {
        build_id,
        node_id,
        state: state as i32,
        index_files: vec![format!("index_files/{build_id}")],
        fail_reason: if state == IndexState::Failed { "out of memory (test)".into() } else { String::new() },
        serialized_size: 10,
    }
}

/// The one index's state as describe reports it: (state, indexed rows, total rows).
fn described(c: &Core) -> (i32, i64, i64) {
    let d = c.describe(COLLECTION, "").unwrap();
    let s = &d.indexes[0];
    (s.state, s.indexed_rows, s.total_rows)
}

#[actix_rt::test]
async fn every_flushed_segment_is_built_once_and_the_index_finishes() {
    let t = TestContext::new();
    let fakes = serve_fakes(&t, vec![flushed(10, 100), flushed(11, 50)], &[21]).await;
    let c = core(&t);
    c.create_index(ivf_index()).await.unwrap();
    // Creating the same index again changes nothing.
    c.create_index(ivf_index()).await.unwrap();
    assert_eq!(described(&c), (IndexState::InProgress as i32, 0, 150));
    c.schedule().await.unwrap();
    let issued = fakes.builds.lock().clone();
    assert_eq!(issued.len(), 2, "{issued:?}");
    // Another round issues nothing new: both tasks are in progress.
    c.schedule().await.unwrap();
    assert_eq!(fakes.builds.lock().len(), 2);
    for (build, node) in issued {
        c.report(report(build, node, IndexState::Finished)).await.unwrap();
    }
    assert_eq!(described(&c), (IndexState::Finished as i32, 150, 150));
    assert_eq!(c.segment_indexes(COLLECTION, &[]).tasks.len(), 2);
    // A restarted indexcoord reads the same state from the meta store.
    let (indexes, tasks) = crate::catalog::load(&t.ctx.meta).await.unwrap();
    assert_eq!((indexes.len(), tasks.len()), (1, 2));
    assert!(tasks.iter().all(|t| t.state == IndexState::Finished as i32));
}

#[actix_rt::test]
async fn failed_builds_are_retried_then_reported_failed() {
    let t = TestContext::new();
    let fakes = serve_fakes(&t, vec![flushed(10, 100)], &[21]).await;
    let c = core(&t);
    c.create_index(ivf_index()).await.unwrap();
    for attempt in 1..=MAX_RETRIES {
        c.schedule().await.unwrap();
        let (build, node) = *fakes.builds.lock().last().unwrap();
        assert_eq!(fakes.builds.lock().len(), attempt as usize, "one build per attempt");
        c.report(report(build, node, IndexState::Failed)).await.unwrap();
    }
    c.schedule().await.unwrap();
    assert_eq!(fakes.builds.lock().len(), MAX_RETRIES as usize, "not issued after the last retry");
    let d = c.describe(COLLECTION, "v_idx").unwrap();
    assert_eq!(d.indexes[0].state, IndexState::Failed as i32);
    assert!(d.indexes[0].fail_reason.contains("out of memory"), "{:?}", d.indexes[0]);
}

#[actix_rt::test]
async fn a_build_whose_node_left_goes_to_another_and_the_late_report_is_ignored() {
    let t = TestContext::new();
    let fakes = serve_fakes(&t, vec![flushed(10, 100)], &[21]).await;
    let c = core(&t);
    c.create_index(ivf_index()).await.unwrap();
    c.schedule().await.unwrap();
    let (build, first) = fakes.builds.lock()[0];
    // Node 21 leaves (its session is revoked); node 22 joins.
    fakes.nodes[&first].shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !session::list(&t.ctx.meta, Role::IndexNode).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("node 21's session is revoked");
    let _node22 = add_index_node(&t, 22, &fakes.builds).await;
    c.schedule().await.unwrap();
    let issued = fakes.builds.lock().clone();
    assert_eq!(issued, vec![(build, first), (build, 22)], "the same build goes to node 22");
    // Node 21 finishing late does not count; node 22's result does.
    c.report(report(build, first, IndexState::Finished)).await.unwrap();
    assert_eq!(described(&c).0, IndexState::InProgress as i32);
    c.report(report(build, 22, IndexState::Finished)).await.unwrap();
    assert_eq!(described(&c), (IndexState::Finished as i32, 100, 100));
}

#[actix_rt::test]
async fn bad_index_requests_are_refused_and_store_nothing() {
    let t = TestContext::new();
    serve_fakes(&t, vec![flushed(10, 100)], &[21]).await;
    let c = core(&t);
    let mut unknown = ivf_index();
    unknown.index_params[0] = kv("index_type", "DISKANN_PLUS");
    assert_eq!(c.create_index(unknown).await.unwrap_err().code, fv_common::Code::IndexNotSupported);
    let mut bad_nlist = ivf_index();
    bad_nlist.index_params[2] = kv("nlist", "0");
    let e = c.create_index(bad_nlist).await.unwrap_err();
    assert!(e.message.contains("invalid index params"), "{e:?}");
    c.create_index(ivf_index()).await.unwrap();
    let mut other_name = ivf_index();
    other_name.index_name = "second".into();
    assert!(c.create_index(other_name).await.is_err(), "one index per field");
    let (indexes, _) = crate::catalog::load(&t.ctx.meta).await.unwrap();
    assert_eq!(indexes.len(), 1);
}

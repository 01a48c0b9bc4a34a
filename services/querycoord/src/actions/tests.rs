//! The persisted distribution procedures against fake query nodes on the test bus.

use std::sync::Arc;

use fv_common::FvResult;
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::meta::{CollectionInfo, SegmentInfo};
use fv_proto::fv::querycoord::distribution_procedure::Op;
use fv_proto::fv::querycoord::{DistributionProcedure, MoveSegmentProcedure, move_segment_procedure};
use fv_proto::fv::querynode::query_node_rpc;
use fv_proto::fv::rootcoord::{AllocIdResponse, DescribeCollectionResponse, root_coord_rpc};
use fv_runtime::rpc::{Route, Target};
use fv_runtime::testing::TestContext;
use parking_lot::Mutex;

use crate::actor::Core;

const COLLECTION: i64 = 7;
const SEGMENT: i64 = 70;

/// Requests the fake query nodes got, in order: (node, method, segment).
type Calls = Arc<Mutex<Vec<(i64, &'static str, i64)>>>;

async fn serve_fakes(t: &TestContext, nodes: &[i64]) -> Calls {
    let calls: Calls = Default::default();
    for &node in nodes {
        let c = calls.clone();
        let load = Route::new::<query_node_rpc::LoadSegments, _, _, _>(move |req| {
            let c = c.clone();
            async move {
                c.lock().push((node, "load", req.segments[0].id));
                FvResult::Ok(StatusResponse::ok())
            }
        });
        let c = calls.clone();
        let sync = Route::new::<query_node_rpc::SyncDistribution, _, _, _>(move |req| {
            let c = c.clone();
            async move {
                c.lock().push((node, "route", req.actions[0].segment_id));
                FvResult::Ok(StatusResponse::ok())
            }
        });
        let c = calls.clone();
        let release = Route::new::<query_node_rpc::ReleaseSegments, _, _, _>(move |req| {
            let c = c.clone();
            async move {
                c.lock().push((node, "release", req.segment_ids[0]));
                FvResult::Ok(StatusResponse::ok())
            }
        });
        t.serve(Target::Node(node), vec![load, sync, release]).await;
    }
    let describe = Route::new::<root_coord_rpc::DescribeCollection, _, _, _>(|req| async move {
        let collection = CollectionInfo { id: req.collection_id, ..Default::default() };
        FvResult::Ok(DescribeCollectionResponse { collection: Some(collection), ..Default::default() })
    });
    let alloc = Route::new::<root_coord_rpc::AllocId, _, _, _>(|_req| async {
        FvResult::Ok(AllocIdResponse { id_begin: 1000, count: 1, ..Default::default() })
    });
    t.serve(Target::Coord, vec![describe, alloc]).await;
    calls
}

fn move_from(step: move_segment_procedure::Step) -> MoveSegmentProcedure {
    MoveSegmentProcedure {
        step: step as i32,
        collection_id: COLLECTION,
        vchannel: "v0".into(),
        delegator: 2,
        segment: Some(SegmentInfo { id: SEGMENT, collection_id: COLLECTION, ..Default::default() }),
        index: None,
        from: 2,
        to: 3,
        checkpoint: None,
    }
}

#[actix_rt::test]
async fn a_move_loads_routes_then_releases_and_leaves_no_record() {
    let t = TestContext::new();
    let calls = serve_fakes(&t, &[2, 3]).await;
    let core = Core::recover(t.ctx.clone()).await.unwrap();
    core.run_procedure(Op::MoveSegment(move_from(move_segment_procedure::Step::Load))).await.unwrap();
    assert_eq!(*calls.lock(), vec![(3, "load", SEGMENT), (2, "route", SEGMENT), (2, "release", SEGMENT)]);
    assert!(core.procedures.pending::<DistributionProcedure>().await.unwrap().is_empty());
}

#[actix_rt::test]
async fn a_move_interrupted_after_its_load_resumes_at_the_route() {
    let t = TestContext::new();
    let calls = serve_fakes(&t, &[2, 3]).await;
    let core = Core::recover(t.ctx.clone()).await.unwrap();
    // As a querycoord killed after the copy on node 3 was loaded left it.
    let staged = DistributionProcedure { op: Some(Op::MoveSegment(move_from(move_segment_procedure::Step::Route))) };
    core.procedures.save(5, &staged).await.unwrap();
    drop(core);
    let core = Core::recover(t.ctx.clone()).await.unwrap();
    core.resume_procedures().await.unwrap();
    // Not loaded again; routed to the copy on 3, then released on 2, in that order.
    assert_eq!(*calls.lock(), vec![(2, "route", SEGMENT), (2, "release", SEGMENT)]);
    assert!(core.procedures.pending::<DistributionProcedure>().await.unwrap().is_empty());
}

#[actix_rt::test]
async fn a_resumed_move_that_fails_is_dropped_for_the_rounds_to_replan() {
    let t = TestContext::new();
    // Node 3 is gone: nobody serves its requests.
    let calls = serve_fakes(&t, &[2]).await;
    let core = Core::recover(t.ctx.clone()).await.unwrap();
    let staged = DistributionProcedure { op: Some(Op::MoveSegment(move_from(move_segment_procedure::Step::Load))) };
    core.procedures.save(6, &staged).await.unwrap();
    core.resume_procedures().await.unwrap();
    assert!(calls.lock().is_empty(), "nothing routed or released: {:?}", calls.lock());
    assert!(core.procedures.pending::<DistributionProcedure>().await.unwrap().is_empty());
}

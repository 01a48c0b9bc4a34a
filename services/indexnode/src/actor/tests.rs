//! Index builds against fake coordinators on the test bus, from binlogs in the test's
//! object store.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use fv_common::FvResult;
use fv_proto::common::{IndexState, KeyValuePair};
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::index::{BuildIndexRequest, ReportBuildResultRequest, index_coord_rpc};
use fv_proto::fv::meta::{Binlog, CollectionInfo, FieldBinlog, IndexInfo, SegmentIndexTask, SegmentInfo};
use fv_proto::fv::rootcoord::{DescribeCollectionResponse, root_coord_rpc};
use fv_runtime::rpc::{Route, Target};
use fv_runtime::testing::TestContext;
use fv_storage::binlog::{LogHeader, LogKind, encode_insert_log};
use fv_storage::paths;
use fv_storage::testing::{VECTOR_FIELD, rows, schema_proto};
use tokio::sync::mpsc;

use super::Core;

const DIM: usize = 8;

/// Serves rootcoord's describe and indexcoord's report; reports arrive on the receiver.
async fn serve_fakes(t: &TestContext) -> mpsc::UnboundedReceiver<ReportBuildResultRequest> {
    let describe = Route::new::<root_coord_rpc::DescribeCollection, _, _, _>(|req| async move {
        let info = CollectionInfo { id: req.collection_id, schema: Some(schema_proto("c", DIM)), ..Default::default() };
        FvResult::Ok(DescribeCollectionResponse { collection: Some(info), ..Default::default() })
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let report = Route::new::<index_coord_rpc::ReportBuildResult, _, _, _>(move |req| {
        let _ = tx.send(req);
        async { FvResult::Ok(StatusResponse::ok()) }
    });
    t.serve(Target::Coord, vec![describe, report]).await;
    rx
}

/// Writes the vector binlog of a segment of `n` rows (in `files` pieces) and returns its
/// meta, claiming `claimed_rows` rows.
async fn segment(t: &TestContext, id: i64, n: usize, files: usize, claimed_rows: i64) -> SegmentInfo {
    let mut binlogs = Vec::new();
    let per = n.div_ceil(files);
    for (log_id, chunk) in (0..n as i64).collect::<Vec<_>>().chunks(per).enumerate() {
        let data = rows(chunk, 1, DIM, |i, j| ((i * 31 + j as i64 * 7) % 97) as f32);
        let column = data.columns.into_iter().find(|c| c.field_id == VECTOR_FIELD).unwrap();
        let header = LogHeader {
            kind: LogKind::Insert,
            collection: 1,
            partition: 2,
            segment: id,
            field_id: VECTOR_FIELD,
            data_type: fv_proto::schema::DataType::FloatVector as i32,
            row_count: chunk.len() as u64,
            ts_from: 1,
            ts_to: 1,
        };
        let path = paths::insert_log(1, 2, id, VECTOR_FIELD, log_id as i64);
        t.ctx.objects.put(&path, encode_insert_log(header, &column).into()).await.unwrap();
        binlogs.push(Binlog {
            entries_num: chunk.len() as i64,
            log_path: path,
            log_id: log_id as i64,
            ..Default::default()
        });
    }
    SegmentInfo {
        id,
        collection_id: 1,
        partition_id: 2,
        num_rows: claimed_rows,
        binlogs: vec![FieldBinlog { field_id: VECTOR_FIELD, binlogs }],
        ..Default::default()
    }
}

fn kv(k: &str, v: &str) -> KeyValuePair {
    KeyValuePair { key: k.into(), value: v.into() }
}

fn build(seg: SegmentInfo, index_type: &str, build_id: i64) -> BuildIndexRequest {
    BuildIndexRequest {
        task: Some(SegmentIndexTask {
            build_id,
            collection_id: 1,
            partition_id: 2,
            segment_id: seg.id,
            index_id: 9,
            retries: 1,
            ..Default::default()
        }),
        index: Some(IndexInfo {
            collection_id: 1,
            field_id: VECTOR_FIELD,
            index_id: 9,
            index_params: vec![kv("index_type", index_type), kv("metric_type", "L2"), kv("nlist", "8")],
            ..Default::default()
        }),
        segment: Some(seg),
        dim: 0,
    }
}

fn core(t: &TestContext) -> Core {
    Core { ctx: t.ctx.clone(), running: Arc::new(AtomicI64::new(0)) }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<ReportBuildResultRequest>) -> ReportBuildResultRequest {
    tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.expect("a report in time").expect("a report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ivf_build_reads_every_binlog_and_writes_a_file_named_for_node_and_attempt() {
    let t = TestContext::new();
    let mut reports = serve_fakes(&t).await;
    let c = core(&t);
    let seg = segment(&t, 40, 300, 3, 300).await;
    c.accept(build(seg, "IVF_FLAT", 77)).await.unwrap();
    let r = next(&mut reports).await;
    assert_eq!((r.build_id, r.node_id, r.state), (77, 1, IndexState::Finished as i32), "{r:?}");
    assert_eq!(r.index_files, vec![paths::index_file(1, 40, 77, &format!("{VECTOR_FIELD}.node1.try1.fvidx"))]);
    let bytes = t.ctx.objects.get(&r.index_files[0]).await.unwrap();
    assert_eq!(bytes.len() as i64, r.serialized_size);
    let index = fv_index::VectorIndex::from_bytes(&bytes).unwrap();
    assert_eq!((index.index_type(), index.dim(), index.nlist()), (fv_index::IndexType::IvfFlat, DIM, 8));
    assert_eq!(c.running.load(std::sync::atomic::Ordering::Acquire), 0, "the slot is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_writes_no_file_and_a_row_count_mismatch_fails_the_build() {
    let t = TestContext::new();
    let mut reports = serve_fakes(&t).await;
    let c = core(&t);
    c.accept(build(segment(&t, 41, 50, 1, 50).await, "FLAT", 78)).await.unwrap();
    let r = next(&mut reports).await;
    assert_eq!(r.state, IndexState::Finished as i32);
    assert!(r.index_files.is_empty(), "{r:?}");
    // The meta claims more rows than the binlogs hold: refused, not built from a part.
    c.accept(build(segment(&t, 42, 50, 1, 60).await, "IVF_FLAT", 79)).await.unwrap();
    let r = next(&mut reports).await;
    assert_eq!((r.build_id, r.state), (79, IndexState::Failed as i32));
    assert!(r.fail_reason.contains("holds 50 vectors but its meta says 60"), "{}", r.fail_reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_beyond_the_slots_is_refused_as_retriable() {
    let t = TestContext::new();
    let _reports = serve_fakes(&t).await;
    let c = core(&t);
    c.running.store(c.slots(), std::sync::atomic::Ordering::Release);
    let e = c.accept(build(segment(&t, 43, 10, 1, 10).await, "FLAT", 80)).await.unwrap_err();
    assert_eq!(e.code, fv_common::Code::ServiceRequestLimitExceeded);
    assert!(e.retriable);
}

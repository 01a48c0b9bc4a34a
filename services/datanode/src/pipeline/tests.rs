//! A pipeline over the test bus's log: it buffers inserts, flushes a sealed segment once
//! a time tick passes its seal timestamp (binlogs readable, the checkpoint reported with
//! the paths), and after a restart from that checkpoint it does not flush the segment
//! twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fv_common::channel::{pchannel_name, tick_subject, vchannel_name, vchannel_subject};
use fv_common::{FvResult, SegmentId};
use fv_logbroker::OutgoingMessage;
use fv_proto::common::SegmentState;
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::datacoord::{SaveBinlogPathsRequest, VchannelInfo, data_coord_rpc};
use fv_proto::fv::datanode::WatchDmChannelRequest;
use fv_proto::fv::meta::{CollectionInfo, SegmentInfo};
use fv_proto::fv::msg::{DmlMessage, InsertMsg, MsgPosition, TimeTickMsg, dml_message::Body};
use fv_proto::fv::rootcoord::{AllocIdResponse, SyncTimeTickResponse, root_coord_rpc};
use fv_runtime::rpc::{Route, Target};
use fv_runtime::testing::TestContext;
use fv_storage::binlog::decode_insert_log;
use fv_storage::testing::{PK_FIELD, rows, schema, schema_proto};
use prost::Message;
use tokio::sync::mpsc;

use super::{Command, Pipeline, spawn};

const COLLECTION: i64 = 5;
const PARTITION: i64 = 6;
const DIM: usize = 4;

fn vchannel() -> String {
    vchannel_name(&pchannel_name(0), COLLECTION, 0)
}

async fn serve_fakes(t: &TestContext) -> mpsc::UnboundedReceiver<SaveBinlogPathsRequest> {
    let (tx, rx) = mpsc::unbounded_channel();
    let save = Route::new::<data_coord_rpc::SaveBinlogPaths, _, _, _>(move |req| {
        let _ = tx.send(req);
        async { FvResult::Ok(StatusResponse::ok()) }
    });
    let checkpoint = Route::new::<data_coord_rpc::UpdateChannelCheckpoint, _, _, _>(|_req| async {
        FvResult::Ok(StatusResponse::ok())
    });
    let stats =
        Route::new::<data_coord_rpc::ReportDataNodeStats, _, _, _>(|_req| async { FvResult::Ok(StatusResponse::ok()) });
    let next_id = Arc::new(AtomicI64::new(500));
    let alloc = Route::new::<root_coord_rpc::AllocId, _, _, _>(move |req| {
        let id = next_id.fetch_add(req.count as i64, Ordering::SeqCst);
        async move { FvResult::Ok(AllocIdResponse { id_begin: id, count: req.count, ..Default::default() }) }
    });
    let sync = Route::new::<root_coord_rpc::SyncTimeTick, _, _, _>(|_req| async {
        FvResult::Ok(SyncTimeTickResponse::default())
    });
    t.serve(Target::Coord, vec![save, checkpoint, stats, alloc, sync]).await;
    rx
}

/// Appends an insert of rows `ids` into `segment` at `ts`; returns its log position.
async fn insert(t: &TestContext, segment: SegmentId, ids: &[i64], ts: u64) -> u64 {
    let s = schema(DIM);
    let data = rows(ids, ts, DIM, |i, j| (i as f32) + j as f32 / 10.0);
    let fields = data.columns.iter().map(|c| c.to_field_data(s.field_by_id(c.field_id).unwrap())).collect();
    let msg = DmlMessage {
        body: Some(Body::Insert(InsertMsg {
            collection_id: COLLECTION,
            partition_id: PARTITION,
            segment_id: segment,
            vchannel: vchannel(),
            timestamp: ts,
            num_rows: ids.len() as u64,
            fields,
            schema_version: 0,
        })),
    };
    let out = OutgoingMessage::new(vchannel_subject(&vchannel()), Bytes::from(msg.encode_to_vec()));
    t.ctx.broker.produce(&pchannel_name(0), vec![out]).await.unwrap()[0]
}

async fn tick(t: &TestContext, ts: u64) {
    let msg = DmlMessage { body: Some(Body::TimeTick(TimeTickMsg { timestamp: ts, source_id: 1 })) };
    let out = OutgoingMessage::new(tick_subject(&pchannel_name(0)), Bytes::from(msg.encode_to_vec()));
    t.ctx.broker.produce(&pchannel_name(0), vec![out]).await.unwrap();
}

fn watch(seek: Option<MsgPosition>, segments: Vec<SegmentInfo>) -> WatchDmChannelRequest {
    WatchDmChannelRequest {
        channel: Some(VchannelInfo {
            collection_id: COLLECTION,
            vchannel: vchannel(),
            seek_position: seek,
            ..Default::default()
        }),
        collection: Some(CollectionInfo { id: COLLECTION, schema: Some(schema_proto("c", DIM)), ..Default::default() }),
        segments,
    }
}

async fn next_flush(rx: &mut mpsc::UnboundedReceiver<SaveBinlogPathsRequest>) -> SaveBinlogPathsRequest {
    loop {
        let r = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a flush in time").unwrap();
        if r.flushed {
            return r;
        }
    }
}

/// The primary keys in a flushed segment's binlog of the key field.
async fn flushed_keys(t: &TestContext, r: &SaveBinlogPathsRequest) -> Vec<i64> {
    let s = schema(DIM);
    let mut keys = Vec::new();
    for log in &r.field_binlogs.iter().find(|f| f.field_id == PK_FIELD).unwrap().binlogs {
        let bytes = t.ctx.objects.get(&log.log_path).await.unwrap();
        let (_, col) = decode_insert_log(&bytes, &log.log_path, s.pk()).unwrap();
        keys.extend((0..col.len()).map(|i| match col.pk(i) {
            Some(fv_common::PrimaryKey::Int(k)) => k,
            other => panic!("int64 key expected, got {other:?}"),
        }));
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_segment_is_flushed_once_its_tick_passes_and_not_again_after_a_restart() {
    let t = TestContext::new();
    let mut flushes = serve_fakes(&t).await;
    t.ctx.broker.ensure_topic(&pchannel_name(0)).await.unwrap();

    let p = Pipeline::prepare(t.ctx.clone(), &watch(None, vec![])).await.unwrap();
    let handle = spawn(p, &t.ctx.shutdown);
    let last = insert(&t, 1, &[1, 2, 3], 100).await;
    insert(&t, 1, &[4, 5], 110).await;
    handle.commands.send(Command::Flush { segment_ids: vec![1], seal_ts: 120, flush_deletes: false }).unwrap();
    // Not before a tick at or past the seal timestamp: no row of the segment can follow.
    tick(&t, 115).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(flushes.try_recv().map(|r| !r.flushed).unwrap_or(true), "flushed before the seal tick");
    tick(&t, 120).await;
    let r = next_flush(&mut flushes).await;
    assert_eq!((r.segment_id, r.num_rows, r.partition_id), (1, 5, PARTITION));
    assert_eq!(flushed_keys(&t, &r).await, vec![1, 2, 3, 4, 5]);
    let checkpoint = r.checkpoint.clone().unwrap();
    assert!(checkpoint.seq >= last, "the checkpoint covers the flushed rows");
    handle.stop.trigger();

    // Restart from the reported checkpoint with segment 1 flushed: only new rows flush.
    let flushed = SegmentInfo {
        id: 1,
        collection_id: COLLECTION,
        partition_id: PARTITION,
        state: SegmentState::Flushed as i32,
        num_rows: 5,
        statslogs: r.statslogs.clone(),
        binlogs: r.field_binlogs.clone(),
        ..Default::default()
    };
    let p = Pipeline::prepare(t.ctx.clone(), &watch(Some(checkpoint), vec![flushed])).await.unwrap();
    let handle = spawn(p, &t.ctx.shutdown);
    insert(&t, 2, &[6, 7], 130).await;
    handle.commands.send(Command::Flush { segment_ids: vec![2], seal_ts: 140, flush_deletes: false }).unwrap();
    tick(&t, 140).await;
    let r = next_flush(&mut flushes).await;
    assert_eq!((r.segment_id, r.num_rows), (2, 2));
    assert_eq!(flushed_keys(&t, &r).await, vec![6, 7]);
}

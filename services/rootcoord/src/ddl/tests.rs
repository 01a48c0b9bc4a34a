//! DDL procedures against fake coordinators on the test bus: each runs to the end,
//! refuses bad input without leaving a record, and one interrupted after its meta step
//! finishes after a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fv_common::{FvError, FvResult};
use fv_proto::common::LoadState;
use fv_proto::fv::common::StatusResponse;
use fv_proto::fv::datacoord::{DropCollectionDataRequest, data_coord_rpc};
use fv_proto::fv::index::index_coord_rpc;
use fv_proto::fv::querycoord::{GetLoadStateResponse, query_coord_rpc};
use fv_proto::fv::rootcoord::{
    CreateCollectionRequest, CreatePartitionRequest, DdlProcedure, DropCollectionRequest, DropPartitionRequest,
    RenameCollectionRequest,
};
use fv_runtime::rpc::{Route, Target};
use fv_runtime::testing::TestContext;
use parking_lot::{Mutex, RwLock};
use prost::Message;

use super::Ddl;
use crate::catalog;
use crate::tso::TsoHandle;

/// What the fake coordinators were asked, and whether datacoord refuses drops.
#[derive(Default)]
struct Coords {
    dropped: Mutex<Vec<DropCollectionDataRequest>>,
    released: Mutex<Vec<i64>>,
    data_unavailable: AtomicBool,
}

/// Serves the coordinator methods DDL calls, answering from `coords`.
async fn serve_fakes(t: &TestContext, coords: Arc<Coords>) {
    let c = coords.clone();
    let drop_data = Route::new::<data_coord_rpc::DropCollectionData, _, _, _>(move |req| {
        let c = c.clone();
        async move {
            if c.data_unavailable.load(Ordering::SeqCst) {
                return Err(FvError::unavailable("datacoord is down (test)"));
            }
            c.dropped.lock().push(req);
            Ok(StatusResponse::ok())
        }
    });
    let watch =
        Route::new::<data_coord_rpc::WatchChannels, _, _, _>(|_req| async { FvResult::Ok(StatusResponse::ok()) });
    let c = coords.clone();
    let release = Route::new::<query_coord_rpc::ReleaseCollection, _, _, _>(move |req| {
        let c = c.clone();
        async move {
            c.released.lock().push(req.collection_id);
            FvResult::Ok(StatusResponse::ok())
        }
    });
    let load_state = Route::new::<query_coord_rpc::GetLoadState, _, _, _>(|_req| async {
        FvResult::Ok(GetLoadStateResponse { state: LoadState::NotLoad as i32, ..Default::default() })
    });
    let drop_indexes = Route::new::<index_coord_rpc::DropCollectionIndexes, _, _, _>(|_req| async {
        FvResult::Ok(StatusResponse::ok())
    });
    t.serve(Target::Coord, vec![drop_data, watch, release, load_state, drop_indexes]).await;
}

/// rootcoord's DDL as after a (re)start: catalog and allocators from the meta store.
async fn start_ddl(t: &TestContext) -> Ddl {
    let tso = TsoHandle::start(&t.ctx.meta).await.unwrap();
    let catalog = Arc::new(RwLock::new(catalog::recover(&t.ctx.meta).await.unwrap()));
    Ddl::new(t.ctx.clone(), catalog, tso)
}

fn create(name: &str) -> CreateCollectionRequest {
    CreateCollectionRequest {
        collection_name: name.into(),
        schema: fv_storage::testing::schema_proto(name, 4).encode_to_vec(),
        shards_num: 2,
        ..Default::default()
    }
}

async fn pending(ddl: &Ddl) -> Vec<DdlProcedure> {
    ddl.procedures.pending::<DdlProcedure>().await.unwrap().into_iter().map(|(_, p)| p).collect()
}

#[actix_rt::test]
async fn every_ddl_runs_to_its_end_and_leaves_no_record() {
    let t = TestContext::new();
    let coords = Arc::new(Coords::default());
    serve_fakes(&t, coords.clone()).await;
    let ddl = start_ddl(&t).await;

    ddl.create_collection(create("c1")).await.unwrap();
    // Creating it again with the same schema succeeds and changes nothing.
    ddl.create_collection(create("c1")).await.unwrap();
    let c1 = ddl.catalog.read().by_name("default", "c1").unwrap();
    assert_eq!((c1.shards_num, c1.vchannels.len(), c1.partitions.len()), (2, 2, 1));

    let part = |name: &str| CreatePartitionRequest {
        collection_name: "c1".into(),
        partition_name: name.into(),
        ..Default::default()
    };
    ddl.create_partition(part("p1")).await.unwrap();
    ddl.rename_collection(RenameCollectionRequest {
        old_name: "c1".into(),
        new_name: "c2".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let c2 = ddl.catalog.read().by_name("default", "c2").unwrap();
    assert_eq!(c2.id, c1.id);
    assert!(ddl.catalog.read().by_name("default", "c1").is_none());
    assert_eq!(c2.partitions.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["_default", "p1"]);

    let p1 = c2.partitions[1].id;
    ddl.drop_partition(DropPartitionRequest {
        collection_name: "c2".into(),
        partition_name: "p1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ddl.catalog.read().by_name("default", "c2").unwrap().partitions.len(), 1);
    assert_eq!(coords.dropped.lock()[0].partition_ids, vec![p1]);

    ddl.drop_collection(DropCollectionRequest { collection_name: "c2".into(), ..Default::default() }).await.unwrap();
    assert!(ddl.catalog.read().any_by_id(c2.id).is_none());
    assert_eq!(*coords.released.lock(), vec![c2.id]);
    assert!(coords.dropped.lock().iter().any(|d| d.collection_id == c2.id && d.partition_ids.is_empty()));
    assert!(catalog::load_all(&t.ctx.meta).await.unwrap().is_empty());
    assert!(pending(&ddl).await.is_empty());
}

#[actix_rt::test]
async fn refused_requests_leave_nothing_behind() {
    let t = TestContext::new();
    serve_fakes(&t, Arc::new(Coords::default())).await;
    let ddl = start_ddl(&t).await;
    ddl.create_collection(create("c")).await.unwrap();
    let mut other = create("c");
    other.shards_num = 1;
    let e = ddl.create_collection(other).await.unwrap_err();
    assert!(e.message.contains("different parameters"), "{e:?}");
    let e = ddl
        .drop_partition(DropPartitionRequest {
            collection_name: "c".into(),
            partition_name: "_default".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message.contains("default partition"), "{e:?}");
    let e = ddl
        .create_partition(CreatePartitionRequest {
            collection_name: "missing".into(),
            partition_name: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, fv_common::Code::CollectionNotFound, "{e:?}");
    assert!(pending(&ddl).await.is_empty());
}

#[actix_rt::test]
async fn a_drop_interrupted_after_its_meta_step_finishes_after_a_restart() {
    let t = TestContext::new();
    let coords = Arc::new(Coords::default());
    serve_fakes(&t, coords.clone()).await;
    let ddl = start_ddl(&t).await;
    ddl.create_collection(create("c")).await.unwrap();
    ddl.create_partition(CreatePartitionRequest {
        collection_name: "c".into(),
        partition_name: "p".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let info = ddl.catalog.read().by_name("default", "c").unwrap();
    let p = info.partitions.iter().find(|p| p.name == "p").unwrap().id;

    // datacoord is down: the partition leaves the meta, its data cannot be dropped yet.
    coords.data_unavailable.store(true, Ordering::SeqCst);
    let req = DropPartitionRequest { collection_name: "c".into(), partition_name: "p".into(), ..Default::default() };
    assert!(ddl.drop_partition(req).await.is_err());
    let stored = catalog::load_all(&t.ctx.meta).await.unwrap();
    assert_eq!(stored[0].partitions.len(), 1, "the partition is gone from the meta");
    assert_eq!(pending(&ddl).await.len(), 1);
    assert!(coords.dropped.lock().is_empty());

    // A restarted rootcoord finds the procedure and finishes it once datacoord is back.
    drop(ddl);
    let ddl = start_ddl(&t).await;
    coords.data_unavailable.store(false, Ordering::SeqCst);
    ddl.finish_pending().await.unwrap();
    let dropped = coords.dropped.lock().clone();
    assert_eq!(dropped.len(), 1);
    assert_eq!((dropped[0].collection_id, dropped[0].partition_ids.clone()), (info.id, vec![p]));
    assert!(pending(&ddl).await.is_empty());
    // Nothing else changed: the collection and its default partition are there.
    assert_eq!(ddl.catalog.read().by_name("default", "c").unwrap().partitions.len(), 1);
}

#[actix_rt::test]
async fn a_collection_left_dropping_without_a_procedure_is_dropped() {
    let t = TestContext::new();
    let coords = Arc::new(Coords::default());
    serve_fakes(&t, coords.clone()).await;
    let ddl = start_ddl(&t).await;
    ddl.create_collection(create("old")).await.unwrap();
    // As a build before DDL procedures left it: marked Dropping, nothing else.
    let mut info = (*ddl.catalog.read().by_name("default", "old").unwrap()).clone();
    info.state = fv_proto::fv::meta::CollectionState::CollectionDropping as i32;
    catalog::save(&t.ctx.meta, &info, None).await.unwrap();
    drop(ddl);
    let ddl = start_ddl(&t).await;
    ddl.finish_pending().await.unwrap();
    assert!(catalog::load_all(&t.ctx.meta).await.unwrap().is_empty());
    assert_eq!(*coords.released.lock(), vec![info.id]);
    assert!(pending(&ddl).await.is_empty());
}

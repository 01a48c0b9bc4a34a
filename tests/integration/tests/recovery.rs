//! Crash recovery: a real `ferrovec run standalone` process is killed with SIGKILL
//! while clients insert and delete; after a restart on the same data directory every
//! acknowledged insert is present and every acknowledged delete is gone.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{connect, free_port, index_and_load, ok, wait_loaded};
use fv_integration_tests::data;
use fv_proto::api::milvus_service_client::MilvusServiceClient;
use fv_proto::api::*;
use fv_proto::common::ConsistencyLevel;
use prost::Message;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

const NAME: &str = "crashy";

fn spawn(dir: &Path, port: u16, http: u16) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrovec-test-server"))
        .args(["run", "standalone", "--log-level", "warn"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--port", &port.to_string(), "--http-port", &http.to_string()])
        .env("FERROVEC__PROXY__HOST", "127.0.0.1")
        .env("FERROVEC__HTTP__HOST", "127.0.0.1")
        .env("FERROVEC__ROOTCOORD__DML_CHANNELS", "4")
        .env("FERROVEC__ROOTCOORD__TIME_TICK_INTERVAL_MS", "100")
        .env("FERROVEC__QUERYCOORD__CHECK_INTERVAL_MS", "200")
        .env("FERROVEC__DATACOORD__SEGMENT_MAX_ROWS", "700")
        .env("FERROVEC__META__SESSION_TTL_MS", "2000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts");
    Server(child)
}

async fn all_ids(c: &mut MilvusServiceClient<Channel>) -> BTreeSet<i64> {
    let r = c
        .query(QueryRequest {
            collection_name: NAME.into(),
            expr: "id >= 0".into(),
            output_fields: vec!["id".into()],
            consistency_level: ConsistencyLevel::Strong as i32,
            ..Default::default()
        })
        .await
        .expect("rpc")
        .into_inner();
    assert!(ok(r.status.as_ref()), "query failed: {:?}", r.status);
    data::longs(data::find(&r.fields_data, "id").expect("ids")).into_iter().collect()
}

#[derive(Default)]
struct Acked {
    inserted: BTreeSet<i64>,
    deleted: BTreeSet<i64>,
    /// Deletes sent but not acknowledged (the server died): they may or may not apply.
    maybe_deleted: BTreeSet<i64>,
}

/// Kills the server process when dropped, so a failing test leaves no orphan.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Inserts batches and deletes some acknowledged keys until the server dies.
async fn write_until_error(port: u16, first_id: i64, acked: Arc<Mutex<Acked>>, seed: u64) {
    let mut c = connect(port, Duration::from_secs(60)).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut next = first_id;
    loop {
        let rows = data::rows(next as u64, next..next + 40);
        let r = c
            .insert(InsertRequest {
                collection_name: NAME.into(),
                fields_data: data::columns(&rows),
                num_rows: 40,
                ..Default::default()
            })
            .await;
        match r {
            Ok(r) if ok(r.get_ref().status.as_ref()) => {
                acked.lock().expect("lock").inserted.extend(data::ids_of(&r.get_ref().i_ds));
            }
            _ => return,
        }
        next += 40;
        if rng.random_bool(0.3) {
            let victims: Vec<i64> = {
                let a = acked.lock().expect("lock");
                a.inserted.iter().filter(|_| rng.random_bool(0.02)).copied().collect()
            };
            if victims.is_empty() {
                continue;
            }
            let r = c
                .delete(DeleteRequest {
                    collection_name: NAME.into(),
                    expr: format!("id in {victims:?}"),
                    ..Default::default()
                })
                .await;
            match r {
                Ok(r) if ok(r.get_ref().status.as_ref()) => acked.lock().expect("lock").deleted.extend(victims),
                _ => {
                    acked.lock().expect("lock").maybe_deleted.extend(victims);
                    return;
                }
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, http) = (free_port(), free_port());
    let acked = Arc::new(Mutex::new(Acked::default()));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut child = spawn(dir.path(), port, http);
        let mut c = connect(port, Duration::from_secs(60)).await;
        let st = c
            .create_collection(CreateCollectionRequest {
                collection_name: NAME.into(),
                schema: data::schema(NAME).encode_to_vec(),
                shards_num: 2,
                ..Default::default()
            })
            .await
            .expect("rpc")
            .into_inner();
        assert!(ok(Some(&st)), "create: {st:?}");
        index_and_load(&mut c, NAME, "vec").await;

        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for round in 0..3i64 {
            // Two writers; the process is killed at a random moment while they write.
            let w1 = tokio::spawn(write_until_error(port, round * 1_000_000, acked.clone(), round as u64));
            let w2 =
                tokio::spawn(write_until_error(port, round * 1_000_000 + 500_000, acked.clone(), round as u64 + 100));
            if round == 1 {
                // Some data goes through a flush, so recovery uses binlogs too.
                tokio::time::sleep(Duration::from_millis(400)).await;
                let _ = c.flush(FlushRequest { collection_names: vec![NAME.into()], ..Default::default() }).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(600..1500))).await;
            child.0.kill().expect("SIGKILL");
            let _ = child.0.wait();
            let _ = tokio::join!(w1, w2);

            child = spawn(dir.path(), port, http);
            c = connect(port, Duration::from_secs(60)).await;
            wait_loaded(&mut c, NAME).await;
            let present = all_ids(&mut c).await;
            let a = acked.lock().expect("lock");
            assert!(!a.inserted.is_empty(), "round {round}: nothing was acknowledged before the kill");
            let lost: Vec<_> = a
                .inserted
                .iter()
                .filter(|id| !a.deleted.contains(id) && !a.maybe_deleted.contains(id) && !present.contains(id))
                .take(10)
                .collect();
            assert!(lost.is_empty(), "round {round}: acknowledged inserts lost after kill -9: {lost:?}");
            let resurrected: Vec<_> = a.deleted.iter().filter(|id| present.contains(id)).take(10).collect();
            assert!(
                resurrected.is_empty(),
                "round {round}: acknowledged deletes undone after kill -9: {resurrected:?}"
            );
        }
        drop(child);
    });
}

//! Shared setup for the integration tests.

use std::path::Path;

use ferrovec::Standalone;
use fv_config::Config;
use fv_integration_tests::client::Client;

/// A standalone configuration on `dir` with fast periodic work for tests.
pub fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        rootcoord: fv_config::RootCoordConfig { dml_channels: 4, time_tick_interval_ms: 100, ..Default::default() },
        querycoord: fv_config::QueryCoordConfig { check_interval_ms: 200 },
        meta: fv_config::MetaConfig { session_ttl_ms: 3_000, ..Default::default() },
        ..Default::default()
    }
}

pub async fn start(config: Config) -> (Standalone, Client) {
    fv_runtime::telemetry::init_for_tests();
    let s = Standalone::start(config).await.expect("standalone starts");
    let api = s.api().expect("standalone runs a proxy");
    (s, Client { api })
}

// ---- tests that talk to a `ferrovec` process over the Milvus gRPC API --------------------

use std::time::{Duration, Instant};

use fv_integration_tests::client::kv;
use fv_proto::api::milvus_service_client::MilvusServiceClient;
use fv_proto::api::{ConnectRequest, CreateIndexRequest, GetLoadStateRequest, LoadCollectionRequest};
use fv_proto::common::LoadState;
use tonic::transport::Channel;

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A Milvus API client of the process listening on `port`, once it answers `Connect`;
/// panics after `within`.
pub async fn connect(port: u16, within: Duration) -> MilvusServiceClient<Channel> {
    let start = Instant::now();
    loop {
        if let Ok(ch) = Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri").connect().await {
            let mut c = MilvusServiceClient::new(ch);
            if c.connect(ConnectRequest::default()).await.is_ok() {
                return c;
            }
        }
        assert!(start.elapsed() < within, "the server on port {port} did not come up within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Milvus status that means success.
pub fn ok(st: Option<&fv_proto::common::Status>) -> bool {
    st.is_some_and(|s| s.code == 0 && s.error_code == 0)
}

/// Indexes `field` (AUTOINDEX, L2) of `name`, loads it and waits until it is loaded.
pub async fn index_and_load(c: &mut MilvusServiceClient<Channel>, name: &str, field: &str) {
    let st = c
        .create_index(CreateIndexRequest {
            collection_name: name.into(),
            field_name: field.into(),
            extra_params: vec![kv("metric_type", "L2")],
            ..Default::default()
        })
        .await
        .expect("rpc")
        .into_inner();
    assert!(ok(Some(&st)), "index: {st:?}");
    let st = c
        .load_collection(LoadCollectionRequest { collection_name: name.into(), ..Default::default() })
        .await
        .expect("rpc")
        .into_inner();
    assert!(ok(Some(&st)), "load: {st:?}");
    wait_loaded(c, name).await;
}

/// Waits (up to 2 minutes) until `name` is loaded.
pub async fn wait_loaded(c: &mut MilvusServiceClient<Channel>, name: &str) {
    let start = Instant::now();
    loop {
        let r = c
            .get_load_state(GetLoadStateRequest { collection_name: name.into(), ..Default::default() })
            .await
            .expect("rpc")
            .into_inner();
        if r.state == LoadState::Loaded as i32 {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{name} not loaded: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

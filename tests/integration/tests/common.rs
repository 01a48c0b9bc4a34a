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
